//! Shared set-up for the fuzz targets: one [`Engine`] and one current-thread runtime.
//!
//! The engine never runs discovery, so nothing reaches the network: checks that would need
//! the identity provider (login start, callback, refresh) answer without it, and a session
//! cookie can only be valid when it was sealed with [`COOKIE_SECRET`] by
//! [`canned_cookies`].

use std::sync::LazyLock;

use http::HeaderValue;
use oidc_core::{ClientSecret, Config, Engine, Session};

/// The engine's cookie secret.
pub const COOKIE_SECRET: &str = "0123456789abcdef0123456789abcdef";
/// The session cookie's name.
pub const COOKIE_NAME: &str = "_oauth2_proxy";
/// The host the requests are for.
pub const HOST: &str = "app.example.com";
/// The subject of every session the targets seal.
pub const SUBJECT: &str = "fuzz-user";

/// The engine, configured like a typical deployment (no network use).
pub static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let config = Config::builder("https://idp.example.com/realms/fuzz", "fuzz-client")
        .client_secret(ClientSecret::new("fuzz-client-secret"))
        .cookie_secret(COOKIE_SECRET)
        .whitelist_domains(vec![".example.com".into(), "app.example.org:8443".into()])
        .email_domains(vec!["example.com".into()])
        .set_xauthrequest(true)
        .pass_access_token(true)
        .set_authorization_header(true)
        .build()
        .expect("the fuzz configuration is valid");
    Engine::new(config).expect("the fuzz engine builds")
});

/// A runtime for the engine's async `check`.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
});

/// A session for [`SUBJECT`]: small (one cookie) or large (several chunks).
#[must_use]
pub fn canned_session(large: bool) -> Session {
    let mut s = Session::default();
    s.principal.subject = SUBJECT.to_owned();
    s.principal.email = Some("alice@example.com".to_owned());
    s.principal.preferred_username = Some("alice".to_owned());
    s.principal.groups = vec!["admins".to_owned(), "dev".to_owned()];
    s.id_token = Some(oidc_core::IdToken::new(
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2ln",
    ));
    s.access_token = Some(oidc_core::AccessToken::new(if large {
        "a".repeat(9000)
    } else {
        "access".to_owned()
    }));
    s.created_at = 1;
    // Far in the future (2096), so seeds never expire; no refresh token, so no refresh.
    s.expires_at = 4_000_000_000;
    s
}

/// The `(name, value)` cookies the engine sets for [`canned_session`].
#[must_use]
pub fn canned_cookies(large: bool) -> Vec<(String, String)> {
    ENGINE
        .session_cookies(&canned_session(large), Some(HOST))
        .iter()
        .filter_map(|v: &HeaderValue| {
            let pair = v.to_str().ok()?.split(';').next()?;
            let (n, v) = pair.split_once('=')?;
            Some((n.to_owned(), v.to_owned()))
        })
        .collect()
}
