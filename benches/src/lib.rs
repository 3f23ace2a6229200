//! Benchmarks of the per-request hot path (`cargo bench -p benches`) and, in
//! `cargo xtask bench`, load benchmarks against peers.
//!
//! This library holds the fixtures the benchmarks share, the HTTP load generator
//! ([`http_load`], `bench-agent http-load`), the minted sessions of the cost curves
//! ([`mint`]) and their chart ([`curves_chart`], `bench-agent curves`).

pub mod curves_chart;
pub mod http_load;
pub mod mint;

use http::HeaderValue;
use oidc_core::{Config, Engine, Session};

/// A cookie secret for benchmarks only.
pub const COOKIE_SECRET: &str = "bench-cookie-secret-of-32-bytes!";

/// An engine for a provider that is never contacted (checks of valid sessions need no I/O).
pub fn engine() -> Engine {
    let config = Config::builder("https://idp.example.com/realms/bench", "nginx")
        .cookie_secret(COOKIE_SECRET)
        .set_xauthrequest(true)
        .set_authorization_header(true)
        .email_domains(vec!["*".into()])
        .build()
        .expect("bench config");
    Engine::new(config).expect("bench engine")
}

/// A session whose tokens are `token_len` bytes each (Keycloak's are 1-2 KB).
pub fn session(token_len: usize, groups: usize) -> Session {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut s = Session::default();
    s.principal.subject = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into();
    s.principal.email = Some("alice@example.com".into());
    s.principal.preferred_username = Some("alice".into());
    s.principal.groups = (0..groups).map(|i| format!("group-{i}")).collect();
    s.id_token = Some(oidc_core::IdToken::new("e".repeat(token_len)));
    s.access_token = Some(oidc_core::AccessToken::new("a".repeat(token_len)));
    s.refresh_token = Some(oidc_core::RefreshToken::new("r".repeat(token_len)));
    s.created_at = now;
    s.refreshed_at = now;
    s.expires_at = now + 3600;
    s.access_expires_at = Some(now + 3600);
    s
}

/// The `Cookie` header a browser would send for these `Set-Cookie` values.
pub fn cookie_header(set_cookies: &[HeaderValue]) -> HeaderValue {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect();
    HeaderValue::from_str(&pairs.join("; ")).expect("cookie header")
}
