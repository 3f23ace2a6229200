//! The provider's signing keys, cached. A token whose `kid` is unknown
//! triggers one JWKS refetch (key rotation), rate-limited, before it is refused.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use url::Url;

use super::get_json;
use crate::error::{ProviderError, TokenError};

/// One usable verification key.
#[derive(Clone)]
pub(crate) struct Key {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    alg: Option<String>,
    params: AlgorithmParameters,
    key: DecodingKey,
}

impl Key {
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            // Symmetric keys are never accepted for ID tokens.
            return None;
        }
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(Self {
            kid: jwk.common.key_id.clone(),
            alg: jwk.common.key_algorithm.map(|a| a.to_string()),
            params: jwk.algorithm.clone(),
            key,
        })
    }

    /// Whether this key can verify a signature made with `alg`.
    fn fits(&self, alg: Algorithm) -> bool {
        if let Some(own) = &self.alg
            && *own != format!("{alg:?}")
        {
            return false;
        }
        match (&self.params, alg) {
            (
                AlgorithmParameters::RSA(_),
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
            ) => true,
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => {
                p.curve == EllipticCurve::P256
            }
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => {
                p.curve == EllipticCurve::P384
            }
            (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
                p.curve == EllipticCurve::Ed25519
            }
            _ => false,
        }
    }
}

#[derive(serde::Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// Cached JWKS with rate-limited refetch.
pub(crate) struct JwksCache {
    uri: Url,
    keys: RwLock<Arc<Vec<Key>>>,
    /// Held while fetching; remembers when the last fetch happened.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_interval: Duration,
    /// Fetches made (start-up and rotation), for metrics.
    pub(crate) fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("uri", &self.uri.as_str())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub(crate) fn new(uri: Url, min_interval: Duration) -> Self {
        Self {
            uri,
            keys: RwLock::new(Arc::new(Vec::new())),
            last_fetch: tokio::sync::Mutex::new(None),
            min_interval,
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn current(&self) -> Arc<Vec<Key>> {
        match self.keys.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Fetches the JWKS now and replaces the cached keys. This fetch does not
    /// count against the unknown-`kid` refetch rate limit: a key rotated in
    /// just after start-up must still be found by one refetch.
    pub(crate) async fn refresh(&self, http: &reqwest::Client) -> Result<(), ProviderError> {
        let _one_fetch_at_a_time = self.last_fetch.lock().await;
        self.fetch_locked(http, &mut None).await
    }

    async fn fetch_locked(
        &self,
        http: &reqwest::Client,
        last: &mut Option<Instant>,
    ) -> Result<(), ProviderError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *last = Some(Instant::now());
        let raw: RawSet = get_json(http, &self.uri).await?;
        // Parse key by key: one key of a type we do not know must not hide the others.
        let keys: Vec<Key> = raw
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| Key::from_jwk(&jwk))
            .collect();
        tracing::info!(uri = %self.uri, keys = keys.len(), "fetched the provider's signing keys");
        let mut guard = match self.keys.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(keys);
        Ok(())
    }

    fn find(keys: &[Key], kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        keys.iter()
            .filter(|k| k.fits(alg))
            .filter(|k| match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => true,
            })
            .map(|k| k.key.clone())
            .collect()
    }

    /// The keys that may have signed a token with this `kid` and `alg`. When
    /// none is cached, refetches the JWKS once (at most every `min_interval`).
    pub(crate) async fn keys_for(
        &self,
        http: &reqwest::Client,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<DecodingKey>, TokenError> {
        let found = Self::find(&self.current(), kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        let mut last = self.last_fetch.lock().await;
        // Another task may have refetched while we waited for the lock.
        let found = Self::find(&self.current(), kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        if last.is_some_and(|t| t.elapsed() < self.min_interval) {
            return Err(TokenError::UnknownKey {
                kid: kid.map(str::to_owned),
            });
        }
        tracing::info!(kid = ?kid, "unknown signing key; refetching the JWKS (key rotation)");
        self.fetch_locked(http, &mut last)
            .await
            .map_err(TokenError::Jwks)?;
        let found = Self::find(&self.current(), kid, alg);
        if found.is_empty() {
            return Err(TokenError::UnknownKey {
                kid: kid.map(str::to_owned),
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Modulus of a real 2048-bit RSA key (test-support/assets/keys/rsa-1, a public test fixture).
    const N: &str = "se8fIDcA94YG8BSA_4usOqlYRQZfZPHkWjhdmg1Qp5w11aLqHsuG8iYjZ-ORRNT6aaMTOJZe7-tg1dwrW_KzrJSfU1IPXb6af4HBcO5Tt-7B144hgw8snxRoXK1ZB0yuj9a1KKcQnw5u39x0j7g-U9_AzR1KD3h6MuyxvFlP8U6e_vHAgZg56qxMFjQ-mmoLEZAkIwpRf5Ojnh0WiANsX8TkRkTkh6rD7e0sdreLuoHoboL4QjT51avQ5dlkEMEqiUHb51eFjAKCFkfiqYGKlFPcjeCfa5uFXFWnOiITievjqPceIpyP0nTFevPduDBJ5xaYTZtS4Qso6e6B7vW_cw";

    fn rsa(kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": N, "e": "AQAB"})
    }

    fn ec(kid: &str) -> Value {
        json!({
            "kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
            "x": "gFsHVZH9M8KSLPD7wIeUiAyXoC_mRu-hyuhfvtSDBq0",
            "y": "7hyCKe9ZyV7YZ-T7lfGbXO3tFQtJEvCTsy-uokYoF8A",
        })
    }

    /// A symmetric key, as a misconfigured provider might publish one.
    fn oct(kid: &str) -> Value {
        json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": "c2hhcmVkLXNlY3JldC1zaGFyZWQtc2VjcmV0"})
    }

    /// Keycloak's encryption key, published next to its signing keys.
    fn keycloak_enc(kid: &str) -> Value {
        json!({
            "kid": kid, "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": N, "e": "AQAB",
            "x5c": ["MIICmzCCAYMCBgGQ"], "x5t": "q7bV5Bz0", "x5t#S256": "2n0o0hH1",
        })
    }

    /// A tiny HTTP server that answers every request with the current JWKS
    /// (or status) and counts the requests.
    struct JwksServer {
        uri: Url,
        answer: Arc<Mutex<(u16, String)>>,
        fetches: Arc<AtomicUsize>,
    }

    impl JwksServer {
        async fn start(keys: Value) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let answer = Arc::new(Mutex::new((200, json!({"keys": keys}).to_string())));
            let fetches = Arc::new(AtomicUsize::new(0));
            let (a, f) = (answer.clone(), fetches.clone());
            tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    f.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = a.lock().expect("lock").clone();
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                }
            });
            Self {
                uri: Url::parse(&format!("http://127.0.0.1:{port}/jwks")).expect("url"),
                answer,
                fetches,
            }
        }

        fn publish(&self, keys: Value) {
            *self.answer.lock().expect("lock") = (200, json!({"keys": keys}).to_string());
        }

        fn go_down(&self) {
            *self.answer.lock().expect("lock") = (503, "{}".to_owned());
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    fn http() -> reqwest::Client {
        crate::provider::http_client(Duration::from_secs(5), &[]).expect("client")
    }

    /// A cache that has done its start-up fetch, as `Provider::discover` leaves it.
    async fn started(server: &JwksServer, min_interval: Duration) -> JwksCache {
        let cache = JwksCache::new(server.uri.clone(), min_interval);
        cache.refresh(&http()).await.expect("initial fetch");
        assert_eq!(server.fetches(), 1);
        cache
    }

    fn unknown(r: Result<Vec<DecodingKey>, TokenError>) -> bool {
        matches!(r, Err(TokenError::UnknownKey { .. }))
    }

    #[tokio::test]
    async fn known_kid_is_served_from_the_cache() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let keys = cache
            .keys_for(&http(), Some("a"), Algorithm::RS256)
            .await
            .expect("known key");
        assert_eq!(keys.len(), 1);
        assert_eq!(server.fetches(), 1, "no fetch for a cached kid");
    }

    #[tokio::test]
    async fn unknown_kid_triggers_exactly_one_refetch() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        // Right after start-up, with a long rate limit: the start-up fetch does
        // not use up the refetch.
        let cache = started(&server, Duration::from_secs(60)).await;
        assert!(unknown(
            cache
                .keys_for(&http(), Some("nope"), Algorithm::RS256)
                .await
        ));
        assert_eq!(server.fetches(), 2, "one refetch, then refused");
    }

    #[tokio::test]
    async fn refetches_are_rate_limited() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(unknown(
                cache
                    .keys_for(&http(), Some("nope"), Algorithm::RS256)
                    .await
            ));
        }
        assert!(unknown(
            cache
                .keys_for(&http(), Some("another"), Algorithm::RS256)
                .await
        ));
        assert_eq!(server.fetches(), 2, "one refetch within min_interval");
        // A key published meanwhile is not found until the interval has passed.
        server.publish(json!([rsa("a"), rsa("nope")]));
        assert!(unknown(
            cache
                .keys_for(&http(), Some("nope"), Algorithm::RS256)
                .await
        ));
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn the_rate_limit_expires() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_millis(100)).await;
        assert!(unknown(
            cache
                .keys_for(&http(), Some("nope"), Algorithm::RS256)
                .await
        ));
        assert!(unknown(
            cache
                .keys_for(&http(), Some("nope"), Algorithm::RS256)
                .await
        ));
        assert_eq!(server.fetches(), 2);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(unknown(
            cache
                .keys_for(&http(), Some("nope"), Algorithm::RS256)
                .await
        ));
        assert_eq!(server.fetches(), 3, "one more refetch after min_interval");
    }

    #[tokio::test]
    async fn a_rotated_kid_is_found_after_one_refetch() {
        let server = JwksServer::start(json!([rsa("old")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        server.publish(json!([rsa("new")]));
        let keys = cache
            .keys_for(&http(), Some("new"), Algorithm::RS256)
            .await
            .expect("rotated key found");
        assert_eq!(keys.len(), 1);
        assert_eq!(server.fetches(), 2);
        // Cached now; the withdrawn key is gone.
        assert!(
            cache
                .keys_for(&http(), Some("new"), Algorithm::RS256)
                .await
                .is_ok()
        );
        assert!(unknown(
            cache.keys_for(&http(), Some("old"), Algorithm::RS256).await
        ));
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn unsupported_keys_do_not_hide_the_good_one() {
        let server = JwksServer::start(json!([
            oct("hmac"),
            keycloak_enc("enc"),
            {"kty": "nonsense", "kid": "x"},
            {"kty": "RSA", "kid": "broken"},
            rsa("good"),
            ec("ec"),
        ]))
        .await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let kids: Vec<_> = cache.current().iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, [Some("good".to_owned()), Some("ec".to_owned())]);
        assert_eq!(
            cache
                .keys_for(&http(), Some("good"), Algorithm::RS256)
                .await
                .expect("good key")
                .len(),
            1
        );
        assert_eq!(
            cache
                .keys_for(&http(), Some("ec"), Algorithm::ES256)
                .await
                .expect("ec key")
                .len(),
            1
        );
        // The encryption key never verifies a signature, even when named.
        assert!(unknown(
            cache.keys_for(&http(), Some("enc"), Algorithm::RS256).await
        ));
    }

    #[tokio::test]
    async fn symmetric_keys_are_never_returned() {
        let server = JwksServer::start(json!([oct("hmac"), rsa("rsa")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        for (kid, alg) in [
            (Some("hmac"), Algorithm::HS256),
            (Some("hmac"), Algorithm::RS256),
            (None, Algorithm::HS256),
            // An HMAC algorithm never gets an asymmetric key as its secret either.
            (Some("rsa"), Algorithm::HS256),
            (Some("rsa"), Algorithm::HS512),
        ] {
            assert!(
                unknown(cache.keys_for(&http(), kid, alg).await),
                "{kid:?} {alg:?}"
            );
        }
        let jwk: Jwk = serde_json::from_value(oct("k")).expect("oct jwk");
        assert!(Key::from_jwk(&jwk).is_none());
    }

    #[tokio::test]
    async fn algorithm_and_curve_must_fit_the_key() {
        let server = JwksServer::start(json!([rsa("rsa"), ec("ec")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        // The JWK says RS256: not for PS256; an EC P-256 key is not for ES384 or RS256.
        for (kid, alg) in [
            (Some("rsa"), Algorithm::PS256),
            (Some("rsa"), Algorithm::ES256),
            (Some("ec"), Algorithm::ES384),
            (Some("ec"), Algorithm::RS256),
        ] {
            assert!(
                unknown(cache.keys_for(&http(), kid, alg).await),
                "{kid:?} {alg:?}"
            );
        }
        // No kid in the token: every key that fits the algorithm.
        let keys = cache
            .keys_for(&http(), None, Algorithm::RS256)
            .await
            .expect("kid-less lookup");
        assert_eq!(keys.len(), 1);
    }

    #[tokio::test]
    async fn a_jwks_endpoint_that_is_down_fails_the_lookup_and_counts_as_a_fetch() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        server.go_down();
        let r = cache.keys_for(&http(), Some("new"), Algorithm::RS256).await;
        assert!(
            matches!(
                r,
                Err(TokenError::Jwks(ProviderError::Status { status: 503, .. }))
            ),
            "{:?}",
            r.err()
        );
        // The failure is rate-limited too, and the cached keys survive it.
        assert!(unknown(
            cache.keys_for(&http(), Some("new"), Algorithm::RS256).await
        ));
        assert_eq!(server.fetches(), 2);
        assert!(
            cache
                .keys_for(&http(), Some("a"), Algorithm::RS256)
                .await
                .is_ok()
        );
    }
}
