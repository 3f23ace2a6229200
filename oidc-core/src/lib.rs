//! `oidc-core`: the OpenID Connect relying-party engine behind `tower-oidc`
//! and `ext-authz-adapter`.
//!
//! It discovers the provider, runs the login (state, nonce, PKCE S256),
//! validates ID tokens, keeps the session in an encrypted cookie, and decides
//! every request with one function, [`Engine::check`], whose [`Decision`]
//! each transport maps to its own answer.
//!
//! ```no_run
//! use oidc_core::{Config, Decision, Engine};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("https://keycloak.example.com/realms/mytest", "nginx")
//!     .client_secret(oidc_core::ClientSecret::new("from-a-secret-store"))
//!     .cookie_secret("0123456789abcdef0123456789abcdef")
//!     .skip_provider_button(true)
//!     .set_xauthrequest(true)
//!     .build()?;
//! let engine = Engine::new(config)?;
//! engine.discover().await?;
//!
//! let (parts, ()) = http::Request::get("/").body(())?.into_parts();
//! match engine.check(&parts).await {
//!     Decision::Allow(allow) => println!("hello {}", allow.principal().username()),
//!     Decision::Deny(deny) => println!("answer {}", deny.response.status()),
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
// Request data never panics the engine: no unwrap outside tests.
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod clock;
pub mod config;
pub mod decision;
mod engine;
pub mod error;
pub mod http;
pub mod identity;
mod login;
pub mod metrics;
pub mod policy;
pub mod provider;
mod refresh;
pub mod session;
pub mod store;
pub mod token;

pub use config::{
    ClientAuthMethod, ClientSecret, Config, ConfigBuilder, CookieSecret, CookieSettings, SameSite,
    SessionStoreKind, Setting,
};
pub use decision::{Allow, Decision, Deny, DenyReason};
pub use engine::{Engine, Unauthenticated, endpoints};
pub use error::{ConfigError, LoginError, ProviderError, TokenError};
pub use identity::{AccessToken, IdToken, Principal, RefreshToken};
pub use policy::{RedirectValidator, Rule};
pub use session::Session;
