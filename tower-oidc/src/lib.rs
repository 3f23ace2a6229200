//! `tower-oidc`: OpenID Connect login, bearer tokens and role checks for any
//! axum or hyper service, as one Tower layer.
//!
//! # In ten lines
//!
//! ```toml
//! [dependencies]
//! tower-oidc = "0.1"
//! axum = "0.8"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! In Keycloak, a confidential client `myapp` (client authentication on, standard flow) with
//! the valid redirect URI **`http://127.0.0.1:3000/oauth2/callback`**: the layer's callback at
//! the example's listen address. Then, with this as `src/main.rs`:
//!
#![doc = concat!("```no_run\n", include_str!("../examples/minimal.rs"), "```")]
//!
//! ```sh
//! OIDC_ISSUER=https://keycloak.example.com/realms/mytest CLIENT_SECRET='<the client secret>' \
//!     COOKIE_SECRET="$(openssl rand -base64 32)" cargo run
//! ```
//!
//! Open `http://127.0.0.1:3000/`: the browser goes through Keycloak's login and comes back to
//! `hello alice` (for the user `alice`). Optional: `OIDC_ISSUER` (default
//! `http://127.0.0.1:8080/realms/mytest`), `CLIENT_ID` (`myapp`) and `LISTEN`
//! (`127.0.0.1:3000`; the redirect URI to register follows it). In this repository:
//! `cargo run -p tower-oidc --example minimal`.
//!
//! Any signed-in user gets in (a library has no email-domain default; see
//! [`ConfigBuilder::email_domains`]) unless the provider says the user's email is not verified
//! (in Keycloak, tick "Email verified" on the user, or see
//! [`ConfigBuilder::allow_unverified_email`]); narrow it with [`Rule`]s.
//!
//! [`ConfigBuilder::email_domains`]: oidc_core::ConfigBuilder::email_domains
//! [`ConfigBuilder::allow_unverified_email`]: oidc_core::ConfigBuilder::allow_unverified_email
//!
//! Every example of these docs is a file of the crate's `examples/` directory, shown verbatim,
//! and `tests/doc_examples.rs` runs each one (its `main` is `pub` for that) against a real
//! OpenID provider and signs in, so what you copy is what is tested.
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
//!   navigation (or a "Sign in" page without `skip_provider_button`), `401` with
//!   `WWW-Authenticate: Bearer` for an API call (and a precise `invalid_token`
//!   description for a refused token); signed in but refused by the rule: `403`;
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
//! # Examples
//!
//! Both read the same environment as the ten-line example and need the same Keycloak client.
//!
//! ## axum: public, signed-in and admin pages, a JSON API
//!
//! With the extractors of the `axum` feature (on by default), and `serde_json = "1"` for the
//! API. The groups come from a `groups` claim: in Keycloak, a client scope `groups` with a
//! "Group Membership" mapper (full group path off) assigned to the client. Bearer tokens must
//! name the client id in `aud` (see [below](#bearer-tokens-from-keycloak)).
//!
#![doc = concat!("```no_run\n", include_str!("../examples/axum_app.rs"), "```")]
//!
//! ## A plain Tower service, served by hyper
//!
//! Without axum: `tower = { version = "0.5", features = ["util"] }`, `hyper = { version = "1",
//! features = ["server", "http1"] }`, `hyper-util = { version = "0.1", features = ["tokio",
//! "service"] }`, `http = "1"`, `http-body-util = "0.1"`, `bytes = "1"`. The service finds the
//! [`Identity`] in the request extensions; an API call without credentials gets `401`.
//!
#![doc = concat!("```no_run\n", include_str!("../examples/tower_service.rs"), "```")]
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
//! let bearer = engine.bearer_validator()
//!     .audience("myapp")
//!     .audience_claim("aud")
//!     .audience_claim("azp") // a token issued to the client itself
//!     .trusted_issuer(TrustedIssuer::new("https://partner.example.com/realms/b2b").audience("myapp"))
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
pub use oidc_core::Principal;
pub use oidc_core::policy::{Rule, Verdict};
pub use oidc_core::token::bearer::{
    BearerClaims, BearerConfigError, BearerError, BearerValidator, TrustedIssuer,
};
