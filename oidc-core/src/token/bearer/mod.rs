//! Bearer tokens: `Authorization: Bearer <JWT>` access tokens, validated
//! locally against the issuer's signing keys.
//!
//! A [`BearerValidator`] checks a token's signature with an allow-listed
//! asymmetric algorithm against the issuer's JWKS (the engine's own cache for
//! the engine's issuer, so key rotation and the rate-limited refetch on an
//! unknown `kid` behave exactly as for ID tokens), then `iss`, the audience,
//! `exp` and `nbf` (with the configured leeway), and that the token is an
//! access token rather than an ID token of the same issuer. Extra issuers can be trusted,
//! each with its own audiences; they are discovered on their first token or
//! up front with [`BearerValidator::discover`].
//!
//! Keycloak puts `aud: account` in access tokens unless an audience mapper
//! adds the client: the default expected audience is the client id, so either
//! add the mapper or list the audiences you accept with
//! [`BearerBuilder::audience`] (or match `azp` with
//! [`BearerBuilder::audience_claim`]).
//!
//! ```no_run
//! use oidc_core::token::bearer::{TrustedIssuer, token_from_headers};
//! use oidc_core::{Config, Engine};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("https://keycloak.example.com/realms/mytest", "nginx")
//!     .cookie_secret("0123456789abcdef0123456789abcdef")
//!     .build()?;
//! let engine = Engine::new(config)?;
//! engine.discover().await?;
//! let bearer = engine
//!     .bearer_validator()
//!     .audience("nginx")
//!     .audience("account")
//!     .trusted_issuer(TrustedIssuer::new("https://partner.example.com/realms/b2b").audience("nginx"))
//!     .build()?;
//!
//! let (parts, ()) = http::Request::get("/api").body(())?.into_parts();
//! match token_from_headers(&parts.headers) {
//!     Ok(Some(token)) => match bearer.validate(token).await {
//!         Ok(claims) => println!("token of {} with roles {:?}", claims.principal.subject, claims.principal.realm_roles),
//!         Err(e) => println!("answer {} ({e})", e.status()),
//!     },
//!     Ok(None) => println!("no bearer token"),
//!     Err(e) => println!("answer {} ({e})", e.status()),
//! }
//! # Ok(()) }
//! ```

pub(crate) mod cache;
pub(crate) mod claims;
pub(crate) mod error;
pub(crate) mod header;
pub(crate) mod validator;

pub use claims::BearerClaims;
pub use error::{BearerConfigError, BearerError};
pub use header::{forbidden_response, missing_token_response, token_from_headers};
pub use validator::{BearerBuilder, BearerValidator, TrustedIssuer};
