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

pub mod authz;
pub mod bearer;
mod claims;
pub mod config;
pub mod cookie_prefix;
mod cookies;
pub mod decision;
mod engine;
pub mod error;
mod flow;
pub mod headers;
pub mod id_token;
pub mod jwt;
pub mod logout;
pub mod metrics;
mod pages;
mod principal;
pub mod provider;
pub mod redirect;
mod refresh;
mod request;
pub mod route_rules;
pub mod secret;
pub mod session;
pub mod skip_auth;
mod store;
mod token_cache;
pub mod tokens;
pub mod trusted_proxy;

pub use config::{
    ClientAuthMethod, Config, ConfigBuilder, CookieSettings, SameSite, SessionStoreKind, Setting,
};
pub use decision::{Allow, Decision, Deny, DenyReason};
pub use engine::{Engine, Unauthenticated};
/// The engine's own endpoints under its proxy prefix.
pub mod endpoints {
    pub use crate::engine::{
        AUTH, BACKCHANNEL_LOGOUT, CALLBACK, ENDPOINTS, SIGN_IN, SIGN_OUT, START, USERINFO,
    };
}
pub use error::{ConfigError, LoginError, ProviderError, TokenError};
pub use principal::Principal;
pub use redirect::RedirectValidator;
pub use secret::{ClientSecret, CookieSecret};
pub use session::Session;
pub use tokens::{AccessToken, IdToken, RefreshToken};
