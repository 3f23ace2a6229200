//! `tower-oidc`: OpenID Connect login, bearer tokens and role checks for any
//! axum or hyper service, as one Tower layer.
//!
//! # In ten lines
//!
//! `tower-oidc = "0.1"` (and `axum`, `tokio`) in `Cargo.toml`; in Keycloak, a confidential
//! client `myapp` with the valid redirect URI `http://127.0.0.1:3000/oauth2/callback`:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tower_oidc::{Identity, OidcLayer, oidc_core::{ClientSecret, Config}};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("https://keycloak.example.com/realms/mytest", "myapp")
//!     .client_secret(ClientSecret::new(std::env::var("CLIENT_SECRET")?))
//!     .cookie_secret(std::env::var("COOKIE_SECRET")?) // openssl rand -base64 32
//!     .build()?;
//! let app = Router::new()
//!     .route("/", get(|me: Identity| async move { format!("hello {}", me.username()) }))
//!     .layer(OidcLayer::discover(config).await?);
//! axum::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
//! # Ok(()) }
//! ```
//!
//! Any signed-in user gets in (a library has no email-domain default; see
//! `ConfigBuilder::email_domains`); narrow it with [`Rule`]s.
//!
//! It embeds the same engine as the `ext-authz-adapter` (`oidc-core`: login
//! with state, nonce and PKCE, encrypted session cookies, ID-token and JWKS
//! handling), configured the same way, so an application can drop its
//! oauth2-proxy sidecar and keep its Keycloak setup.
//!
//! # What the layer does
//!
//! [`OidcLayer`] protects the service it wraps:
//!
//! - it serves the login routes itself under the proxy prefix (`/oauth2/start`,
//!   `/oauth2/callback`, `/oauth2/sign_in`, `/oauth2/sign_out`, ...);
//! - it authenticates a browser session cookie, or an `Authorization: Bearer
//!   <JWT>` access token checked against the issuer's keys (issuer, audience,
//!   expiry, not-before; see [`BearerValidator`]);
//! - it applies a [`Rule`]: [`Rule::public`], [`Rule::authenticated`] (the
//!   default), [`Rule::group`], [`Rule::realm_role`], [`Rule::client_role`],
//!   combined with [`Rule::or`], [`Rule::and`], [`Rule::any_of`],
//!   [`Rule::all_of`];
//! - nobody signed in: `302` to the identity provider for a browser
//!   navigation, `401` with `WWW-Authenticate: Bearer` for an API call (and a
//!   precise `invalid_token` description for a refused token); signed in but
//!   refused by the rule: `403`;
//! - allowed: the handler finds an [`Identity`] (subject, email, name,
//!   username, groups, realm and client roles, raw claims) and an
//!   [`AccessToken`] in the request extensions, and a refreshed session cookie
//!   is written onto its response.
//!
//! For different rules on different routes, put one `OidcLayer` with
//! [`Rule::public`] around the whole application and a [`RequireRuleLayer`]
//! on each route or sub-router that needs more.
//!
//! The layer answers with the inner service's response body type through
//! `ResBody: From<Bytes>` (axum's `Body` and `http_body_util::Full<Bytes>`
//! qualify), and its error type is the inner service's own: every failure is
//! a response, so axum needs no `HandleErrorLayer`.
//!
//! # Example
//!
//! The layer with a plain Tower service: an API call without credentials is
//! answered with `401` before it reaches the service.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_oidc::oidc_core::{Config, Engine};
//! use tower_oidc::{Identity, OidcLayer, Rule};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("https://keycloak.example.com/realms/mytest", "nginx")
//!     .cookie_secret("0123456789abcdef0123456789abcdef")
//!     .build()?;
//! let engine = Engine::new(config)?;
//! // A real service runs discovery before serving (or in a task):
//! // engine.discover().await?;
//!
//! let app = ServiceBuilder::new()
//!     .layer(OidcLayer::new(engine).require(Rule::realm_role("admin")))
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let identity = req.extensions().get::<Identity>().expect("set by OidcLayer");
//!         let hello = format!("hello {}", identity.username());
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(hello))))
//!     }));
//!
//! let request = Request::get("/reports")
//!     .header(header::ACCEPT, "application/json")
//!     .body(Full::default())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
//! # Ok(()) }
//! ```
//!
//! With axum: public pages, a page for any signed-in user, an admin page and
//! a JSON API, with the extractors of the `axum` feature (on by default).
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use tower_oidc::oidc_core::{ClientSecret, Config};
//! use tower_oidc::{Identity, OidcLayer, RequireRuleLayer, Rule};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("https://keycloak.example.com/realms/mytest", "nginx")
//!     .client_secret(ClientSecret::new("from-a-secret-store"))
//!     .cookie_secret("0123456789abcdef0123456789abcdef")
//!     .skip_provider_button(true)
//!     .build()?;
//! let oidc = OidcLayer::discover(config).await?.require(Rule::public());
//!
//! let app = Router::new()
//!     .route("/me", get(|me: Identity| async move { format!("hello {}", me.username()) }))
//!     .route("/admin", get(|| async { "admins only" })
//!         .route_layer(RequireRuleLayer::new(Rule::realm_role("admin"))))
//!     .route("/api/reports", get(|me: Identity| async move { Json(me.client_roles().to_vec()) })
//!         .route_layer(RequireRuleLayer::new(Rule::client_role("nginx", "editor"))))
//!     .route("/", get(|me: Option<Identity>| async move {
//!         match me {
//!             Some(me) => format!("welcome back, {}", me.username()),
//!             None => "welcome, stranger: <a href=\"/oauth2/start?rd=/me\">sign in</a>".to_owned(),
//!         }
//!     }))
//!     .layer(oidc);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Bearer tokens from Keycloak
//!
//! Keycloak access tokens carry `aud: account` unless an audience mapper adds
//! the client; the default expected audience is the client id. Either add the
//! mapper, or accept what your tokens carry:
//!
//! ```no_run
//! # fn f(engine: tower_oidc::oidc_core::Engine) -> Result<(), Box<dyn std::error::Error>> {
//! use tower_oidc::{BearerValidator, OidcLayer, TrustedIssuer};
//! let bearer = BearerValidator::builder(engine.clone())
//!     .audience("nginx")
//!     .audience_claim("aud")
//!     .audience_claim("azp") // a token issued to the client itself
//!     .trusted_issuer(TrustedIssuer::new("https://partner.example.com/realms/b2b").audience("nginx"))
//!     .build()?;
//! let layer = OidcLayer::new(engine).bearer(bearer);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod error;
#[cfg(feature = "axum")]
mod extract;
pub mod future;
mod identity;
mod layer;
mod service;

pub use error::SetupError;
#[cfg(feature = "axum")]
pub use extract::IdentityRejection;
pub use identity::{AccessToken, Identity, IdentitySource};
pub use layer::{OidcLayer, RequireRuleLayer};
pub use service::{OidcService, RequireRule};

pub use oidc_core;
pub use oidc_core::authz::{Principal, Rule, Verdict};
pub use oidc_core::bearer::{
    BearerClaims, BearerConfigError, BearerError, BearerValidator, TrustedIssuer,
};
