//! Shared helpers: a minimal issuer (discovery + JWKS) serving keys the test
//! generates, and token signing with those or with unknown keys.
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
use serde_json::{Value, json};

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
