//! Shared helpers: a minimal issuer (discovery + JWKS) serving keys the test
//! generates, and token signing with those or with unknown keys; the app's
//! configuration for a Keycloak realm and a browser login through it.
//!
//! The fake issuer exists for the token checks that need control over keys
//! and claims (expiry, not-before, rotation); logins and real tokens come from
//! the real providers (node oidc-provider, Keycloak).

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, LOCATION};
use serde_json::{Value, json};
use test_support::keycloak::{CLIENT_ID, CLIENT_SECRET, TestUser, login_at_keycloak};
use tower_oidc::oidc_core::{ClientSecret, Config, ConfigBuilder, CookieSettings};

pub const COOKIE_SECRET: &str = "dGVzdC1jb29raWUtc2VjcmV0LW9mLTMyLWJ5dGVzISE=";

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A fresh ES256 key pair (generated for each test run).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret.to_pkcs8_der().expect("PKCS#8 encoding");
        let encoding = EncodingKey::from_ec_der(der.as_bytes());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("JWK");
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
        Self {
            kid: kid.to_owned(),
            encoding,
            jwk,
        }
    }

    /// Signs `claims` as an ES256 JWT with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// An issuer that serves discovery and a JWKS the test controls, on 127.0.0.1.
pub struct FakeIssuer {
    pub issuer: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeIssuer {
    pub async fn start(keys: &[&SigningKey]) -> FakeIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let jwks = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let state = (issuer.clone(), Arc::clone(&jwks));
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(
                    |State((iss, _)): State<(String, Arc<Mutex<Vec<Jwk>>>)>| async move {
                        Json(json!({
                            "issuer": iss,
                            "authorization_endpoint": format!("{iss}/auth"),
                            "token_endpoint": format!("{iss}/token"),
                            "jwks_uri": format!("{iss}/jwks"),
                            "response_types_supported": ["code"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": ["ES256"],
                        }))
                    },
                ),
            )
            .route(
                "/jwks",
                get(
                    |State((_, keys)): State<(String, Arc<Mutex<Vec<Jwk>>>)>| async move {
                        let keys = keys.lock().expect("lock").clone();
                        Json(JwkSet { keys })
                    },
                ),
            )
            .with_state(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        FakeIssuer {
            issuer,
            keys: jwks,
            server,
        }
    }

    /// Publishes another key (key rotation).
    pub fn add_key(&self, key: &SigningKey) {
        self.keys.lock().expect("lock").push(key.jwk.clone());
    }

    /// Standard claims of an access token from this issuer for `aud`, valid for 5 minutes.
    pub fn claims(&self, sub: &str, aud: &str) -> Value {
        json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": aud,
            "azp": aud,
            "typ": "Bearer",
            "iat": now(),
            "exp": now() + 300,
            "email": format!("{sub}@example.com"),
            "preferred_username": sub,
            "realm_access": {"roles": ["user"]},
            "resource_access": {"app": {"roles": ["reader"]}},
        })
    }
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The configuration of an app (served over plain HTTP on 127.0.0.1) for the `nginx` client
/// of the Keycloak realm `issuer` (a copy of `mytest`): its secret, the test cookie secret, a
/// cookie `cookie_name` without `Secure`, no provider button, any email domain.
pub fn keycloak_config(issuer: &str, cookie_name: &str) -> ConfigBuilder {
    Config::builder(issuer, CLIENT_ID)
        .client_secret(ClientSecret::new(CLIENT_SECRET))
        .cookie_secret(COOKIE_SECRET)
        .cookie(CookieSettings {
            name: cookie_name.into(),
            secure: false,
            ..CookieSettings::default()
        })
        .skip_provider_button(true)
        .email_domains(vec!["*".into()])
}

/// Logs `user` in with `browser` (a cookie-jar client without redirects that reaches
/// Keycloak) through Keycloak's login form, starting at the page `path` of the app at `base`
/// whose issuer is `issuer`: the page sends to Keycloak, Keycloak back to the app's callback,
/// and the callback back to `path`.
pub async fn keycloak_browser_login(
    browser: &reqwest::Client,
    base: &str,
    issuer: &str,
    path: &str,
    user: &TestUser,
) {
    let r = browser
        .get(format!("{base}{path}"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::FOUND, "{path} sends to Keycloak");
    let authorize = r.headers()[LOCATION].to_str().expect("ascii").to_owned();
    assert!(authorize.starts_with(&format!("{issuer}/")), "{authorize}");
    let callback = login_at_keycloak(browser, &authorize, user.username, user.password).await;
    assert!(
        callback.starts_with(&format!("{base}/oauth2/callback?")),
        "{callback}"
    );
    let r = browser.get(&callback).send().await.expect("callback");
    let status = r.status();
    let location = r.headers().get(LOCATION).cloned();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::FOUND, "callback {callback}: {body}");
    assert_eq!(
        location.as_ref().and_then(|l| l.to_str().ok()),
        Some(path),
        "back where the login started"
    );
}
