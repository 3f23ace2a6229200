//! The provider's signing keys, cached. A token whose `kid` is unknown
//! triggers one JWKS refetch (key rotation), rate-limited, before it is refused.
//!
//! [`JwksCache::decode`] is the one place where a JWS is checked against
//! these keys, for ID tokens, logout tokens and bearer access tokens alike.

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use url::Url;

use crate::provider::error::ProviderError;
use crate::provider::http::get_json;
use crate::token::algorithms::ALLOWED_ALGORITHMS;
use crate::token::error::TokenError;

/// One usable verification key.
struct Key {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one: the only algorithm this key verifies.
    alg: Option<Algorithm>,
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
        // A key whose `alg` is no signature algorithm (RSA-OAEP, or one we do
        // not know) verifies nothing.
        let alg = match jwk.common.key_algorithm {
            Some(a) => Some(Algorithm::from_str(&a.to_string()).ok()?),
            None => None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(Self {
            kid: jwk.common.key_id.clone(),
            alg,
            params: jwk.algorithm.clone(),
            key,
        })
    }

    /// Whether this key can verify a signature made with `alg`.
    fn fits(&self, alg: Algorithm) -> bool {
        if self.alg.is_some_and(|own| own != alg) {
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

/// The usable keys of one JWKS fetch. Replaced as a whole on refetch and
/// shared read-only, so a lookup borrows its keys instead of copying them.
struct KeySet(Box<[Key]>);

impl KeySet {
    /// The keys that may have signed a token with this `kid` and `alg`.
    fn matching<'s>(
        &'s self,
        kid: Option<&'s str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'s DecodingKey> + 's {
        self.0
            .iter()
            .filter(move |k| k.fits(alg))
            .filter(move |k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .map(|k| &k.key)
    }

    fn has_match(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        self.matching(kid, alg).next().is_some()
    }
}

/// The cached keys that fit a token's `kid` and `alg` (at least one): a
/// snapshot, unaffected by a refetch while the token is checked.
struct Candidates<'t> {
    set: Arc<KeySet>,
    kid: Option<&'t str>,
    alg: Algorithm,
}

impl Candidates<'_> {
    fn iter(&self) -> impl Iterator<Item = &DecodingKey> {
        self.set.matching(self.kid, self.alg)
    }
}

#[derive(serde::Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// Cached JWKS with rate-limited refetch.
pub(crate) struct JwksCache {
    uri: Url,
    /// The current key set. The lock is held only to clone or replace the
    /// `Arc`, never while verifying or fetching.
    keys: RwLock<Arc<KeySet>>,
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
            keys: RwLock::new(Arc::new(KeySet(Box::default()))),
            last_fetch: tokio::sync::Mutex::new(None),
            min_interval,
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn current(&self) -> Arc<KeySet> {
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
        let keys: Box<[Key]> = raw
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| Key::from_jwk(&jwk))
            .collect();
        tracing::info!(uri = %self.uri, keys = keys.len(), "fetched the provider's signing keys");
        let keys = Arc::new(KeySet(keys));
        let mut guard = match self.keys.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = keys;
        Ok(())
    }

    /// The keys that may have signed a token with this `kid` and `alg`. When
    /// none is cached, refetches the JWKS once (at most every `min_interval`).
    async fn keys_for<'t>(
        &self,
        http: &reqwest::Client,
        kid: Option<&'t str>,
        alg: Algorithm,
    ) -> Result<Candidates<'t>, TokenError> {
        let found = |set: Arc<KeySet>| {
            set.has_match(kid, alg)
                .then_some(Candidates { set, kid, alg })
        };
        if let Some(found) = found(self.current()) {
            return Ok(found);
        }
        let mut last = self.last_fetch.lock().await;
        // Another task may have refetched while we waited for the lock.
        if let Some(found) = found(self.current()) {
            return Ok(found);
        }
        let unknown = || TokenError::UnknownKey {
            kid: kid.map(str::to_owned),
        };
        if last.is_some_and(|t| t.elapsed() < self.min_interval) {
            return Err(unknown());
        }
        tracing::info!(kid = ?kid, "unknown signing key; refetching the JWKS (key rotation)");
        self.fetch_locked(http, &mut last)
            .await
            .map_err(TokenError::Jwks)?;
        found(self.current()).ok_or_else(unknown)
    }

    /// Verifies `token`, a JWS whose header names `kid`, with the cached keys,
    /// and the standard claims that `validation` asks for; returns its claims.
    ///
    /// The algorithm is pinned: `validation` (from `Validation::new`, so with
    /// signature checking on) must allow exactly one algorithm, an
    /// allow-listed asymmetric one (never `none`, never HMAC), which must be
    /// the token header's, and only keys that fit it (key type, curve and the
    /// JWK's own `alg`) are tried. An unknown `kid` makes one JWKS
    /// refetch (rate-limited by `min_interval`) before the token is refused.
    ///
    /// Every fitting key is tried (a token without `kid` may match several);
    /// when none verifies, the first error other than a bad signature is
    /// returned (an expired token says so), else the bad signature.
    pub(crate) async fn decode(
        &self,
        http: &reqwest::Client,
        token: &str,
        kid: Option<&str>,
        validation: &Validation,
    ) -> Result<Map<String, Value>, TokenError> {
        let alg = match *validation.algorithms.as_slice() {
            [alg] if ALLOWED_ALGORITHMS.contains(&alg) => alg,
            ref other => return Err(TokenError::Algorithm(format!("{other:?}"))),
        };
        let candidates = self.keys_for(http, kid, alg).await?;
        let mut first_err = None;
        for key in candidates.iter() {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(TokenError::Invalid(
            first_err.unwrap_or_else(|| ErrorKind::InvalidSignature.into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A file of test-support/assets/keys (public test fixtures).
    macro_rules! key_file {
        ($name:literal) => {
            include_str!(concat!("../../../test-support/assets/keys/", $name))
        };
    }

    /// A fixture's public JWK with `extra` members added.
    fn jwk(fixture: &str, extra: Value) -> Value {
        let mut jwk: Value = serde_json::from_str(fixture).expect("fixture JWK");
        if let (Some(jwk), Value::Object(extra)) = (jwk.as_object_mut(), extra) {
            jwk.extend(extra);
        }
        jwk
    }

    fn rsa(kid: &str) -> Value {
        jwk(
            key_file!("rsa-1.jwk.json"),
            json!({"kid": kid, "use": "sig", "alg": "RS256"}),
        )
    }

    fn ec(kid: &str) -> Value {
        jwk(
            key_file!("ec-p256.jwk.json"),
            json!({"kid": kid, "use": "sig", "alg": "ES256"}),
        )
    }

    /// A symmetric key, as a misconfigured provider might publish one.
    fn oct(kid: &str) -> Value {
        json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": "c2hhcmVkLXNlY3JldC1zaGFyZWQtc2VjcmV0"})
    }

    /// Keycloak's encryption key, published next to its signing keys.
    fn keycloak_enc(kid: &str) -> Value {
        jwk(
            key_file!("rsa-1.jwk.json"),
            json!({
                "kid": kid, "alg": "RSA-OAEP", "use": "enc",
                "x5c": ["MIICmzCCAYMCBgGQ"], "x5t": "q7bV5Bz0", "x5t#S256": "2n0o0hH1",
            }),
        )
    }

    /// The signing key of a PKCS#1 RSA fixture.
    fn signer(pem: &str) -> EncodingKey {
        let b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        EncodingKey::from_rsa_der(&STANDARD.decode(b64).expect("PEM body"))
    }

    /// An RS256 token with this `kid`, expiring `exp_in` seconds from now (negative: past).
    fn token(pem: &str, kid: Option<&str>, exp_in: i64) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        let exp = crate::clock::unix_now().cast_signed() + exp_in;
        jsonwebtoken::encode(&header, &json!({"sub": "s", "exp": exp}), &signer(pem)).expect("sign")
    }

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_required_spec_claims(&["exp", "sub"]);
        v
    }

    /// Whether `r` is `jsonwebtoken`'s refusal of this kind.
    fn refused_with(r: &Result<Map<String, Value>, TokenError>, kind: &ErrorKind) -> bool {
        matches!(r, Err(TokenError::Invalid(e)) if e.kind() == kind)
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
        crate::provider::http::http_client(Duration::from_secs(5), &[], &Default::default())
            .expect("client")
    }

    /// A cache that has done its start-up fetch, as `Provider::discover` leaves it.
    async fn started(server: &JwksServer, min_interval: Duration) -> JwksCache {
        let cache = JwksCache::new(server.uri.clone(), min_interval);
        cache.refresh(&http()).await.expect("initial fetch");
        assert_eq!(server.fetches(), 1);
        cache
    }

    /// How many keys `keys_for` offers for `kid` and `alg`.
    async fn lookup(
        cache: &JwksCache,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<usize, TokenError> {
        Ok(cache.keys_for(&http(), kid, alg).await?.iter().count())
    }

    /// Whether an RS256 lookup of `kid` is refused as an unknown key.
    async fn unknown(cache: &JwksCache, kid: &str) -> bool {
        unknown_for(cache, Some(kid), Algorithm::RS256).await
    }

    async fn unknown_for(cache: &JwksCache, kid: Option<&str>, alg: Algorithm) -> bool {
        matches!(
            lookup(cache, kid, alg).await,
            Err(TokenError::UnknownKey { .. })
        )
    }

    #[tokio::test]
    async fn known_kid_is_served_from_the_cache() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let keys = lookup(&cache, Some("a"), Algorithm::RS256).await;
        assert_eq!(keys.expect("known key"), 1);
        assert_eq!(server.fetches(), 1, "no fetch for a cached kid");
    }

    #[tokio::test]
    async fn unknown_kid_triggers_exactly_one_refetch() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        // Right after start-up, with a long rate limit: the start-up fetch does
        // not use up the refetch.
        let cache = started(&server, Duration::from_secs(60)).await;
        assert!(unknown(&cache, "nope").await);
        assert_eq!(server.fetches(), 2, "one refetch, then refused");
    }

    #[tokio::test]
    async fn refetches_are_rate_limited() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(unknown(&cache, "nope").await);
        }
        assert!(unknown(&cache, "another").await);
        assert_eq!(server.fetches(), 2, "one refetch within min_interval");
        // A key published meanwhile is not found until the interval has passed.
        server.publish(json!([rsa("a"), rsa("nope")]));
        assert!(unknown(&cache, "nope").await);
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn the_rate_limit_expires() {
        // No sleeping on a short interval (a busy machine can take longer than it between
        // two calls): a long interval, and the last refetch moved into the past by as much.
        let interval = Duration::from_secs(60);
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, interval).await;
        assert!(unknown(&cache, "nope").await);
        assert!(unknown(&cache, "nope").await);
        assert_eq!(server.fetches(), 2);
        {
            let mut last = cache.last_fetch.lock().await;
            *last = last.and_then(|t| t.checked_sub(interval));
        }
        assert!(unknown(&cache, "nope").await);
        assert_eq!(server.fetches(), 3, "one more refetch after min_interval");
    }

    #[tokio::test]
    async fn a_rotated_kid_is_found_after_one_refetch() {
        let server = JwksServer::start(json!([rsa("old")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        server.publish(json!([rsa("new")]));
        let keys = lookup(&cache, Some("new"), Algorithm::RS256).await;
        assert_eq!(keys.expect("rotated key found"), 1);
        assert_eq!(server.fetches(), 2);
        // Cached now; the withdrawn key is gone.
        assert!(lookup(&cache, Some("new"), Algorithm::RS256).await.is_ok());
        assert!(unknown(&cache, "old").await);
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn a_lookup_keeps_its_keys_across_a_refetch() {
        let server = JwksServer::start(json!([rsa("old")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let held = cache
            .keys_for(&http(), Some("old"), Algorithm::RS256)
            .await
            .expect("known key");
        server.publish(json!([rsa("new")]));
        cache.refresh(&http()).await.expect("refetch");
        assert_eq!(held.iter().count(), 1, "a snapshot, not the live set");
        assert!(unknown(&cache, "old").await);
    }

    #[tokio::test]
    async fn unsupported_keys_do_not_hide_the_good_one() {
        let server = JwksServer::start(json!([
            oct("hmac"),
            keycloak_enc("enc"),
            {"kty": "nonsense", "kid": "x"},
            {"kty": "RSA", "kid": "broken"},
            // Signing use, but an encryption algorithm: it verifies nothing.
            jwk(key_file!("rsa-2.jwk.json"), json!({"kid": "oaep", "alg": "RSA-OAEP"})),
            rsa("good"),
            ec("ec"),
        ]))
        .await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let kids: Vec<_> = cache.current().0.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, [Some("good".to_owned()), Some("ec".to_owned())]);
        let good = lookup(&cache, Some("good"), Algorithm::RS256).await;
        assert_eq!(good.expect("good key"), 1);
        let ec = lookup(&cache, Some("ec"), Algorithm::ES256).await;
        assert_eq!(ec.expect("ec key"), 1);
        // The encryption key never verifies a signature, even when named.
        assert!(unknown(&cache, "enc").await);
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
            assert!(unknown_for(&cache, kid, alg).await, "{kid:?} {alg:?}");
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
            assert!(unknown_for(&cache, kid, alg).await, "{kid:?} {alg:?}");
        }
        // No kid in the token: every key that fits the algorithm.
        let keys = lookup(&cache, None, Algorithm::RS256).await;
        assert_eq!(keys.expect("kid-less lookup"), 1);
    }

    #[tokio::test]
    async fn a_jwks_endpoint_that_is_down_fails_the_lookup_and_counts_as_a_fetch() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        server.go_down();
        let r = lookup(&cache, Some("new"), Algorithm::RS256).await;
        assert!(
            matches!(
                r,
                Err(TokenError::Jwks(ProviderError::Status { status: 503, .. }))
            ),
            "{:?}",
            r.err()
        );
        // The failure is rate-limited too, and the cached keys survive it.
        assert!(unknown(&cache, "new").await);
        assert_eq!(server.fetches(), 2);
        assert!(lookup(&cache, Some("a"), Algorithm::RS256).await.is_ok());
    }

    #[tokio::test]
    async fn decode_verifies_with_the_key_named_by_kid() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let v = validation(Algorithm::RS256);
        let good = token(key_file!("rsa-1.pem"), Some("a"), 600);
        let claims = cache.decode(&http(), &good, Some("a"), &v).await;
        assert_eq!(claims.expect("valid token")["sub"], "s");
        // Signed with another key under the published kid.
        let forged = token(key_file!("rsa-unpublished.pem"), Some("a"), 600);
        let r = cache.decode(&http(), &forged, Some("a"), &v).await;
        assert!(refused_with(&r, &ErrorKind::InvalidSignature), "{r:?}");
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn decode_refetches_once_for_an_unknown_kid() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let v = validation(Algorithm::RS256);
        server.publish(json!([
            rsa("a"),
            jwk(key_file!("rsa-2.jwk.json"), json!({"kid": "b"}))
        ]));
        let rotated = token(key_file!("rsa-2.pem"), Some("b"), 600);
        let claims = cache.decode(&http(), &rotated, Some("b"), &v).await;
        assert!(claims.is_ok(), "{claims:?}");
        assert_eq!(server.fetches(), 2, "one refetch finds the rotated key");
        let stray = token(key_file!("rsa-3.pem"), Some("c"), 600);
        let r = cache.decode(&http(), &stray, Some("c"), &v).await;
        assert!(
            matches!(&r, Err(TokenError::UnknownKey { kid: Some(k) }) if k == "c"),
            "{r:?}"
        );
        assert_eq!(server.fetches(), 2, "the refetch is rate-limited");
    }

    #[tokio::test]
    async fn decode_tries_every_fitting_key_of_a_kidless_token() {
        let no_kid = |fixture| jwk(fixture, json!({"alg": "RS256"}));
        let server = JwksServer::start(json!([
            no_kid(key_file!("rsa-1.jwk.json")),
            no_kid(key_file!("rsa-2.jwk.json")),
        ]))
        .await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let v = validation(Algorithm::RS256);
        let second = token(key_file!("rsa-2.pem"), None, 600);
        assert!(cache.decode(&http(), &second, None, &v).await.is_ok());
        // The first key verifies the signature of an expired token: the error
        // says it expired, not that the second key's signature check failed.
        let expired = token(key_file!("rsa-1.pem"), None, -600);
        let r = cache.decode(&http(), &expired, None, &v).await;
        assert!(refused_with(&r, &ErrorKind::ExpiredSignature), "{r:?}");
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn decode_pins_one_allow_listed_algorithm() {
        let server = JwksServer::start(json!([rsa("a")])).await;
        let cache = started(&server, Duration::from_secs(60)).await;
        let good = token(key_file!("rsa-1.pem"), Some("a"), 600);
        let mut two = validation(Algorithm::RS256);
        two.algorithms.push(Algorithm::PS256);
        for v in [validation(Algorithm::HS256), two] {
            let r = cache.decode(&http(), &good, Some("a"), &v).await;
            assert!(matches!(r, Err(TokenError::Algorithm(_))), "{r:?}");
        }
        assert_eq!(server.fetches(), 1, "refused before any key lookup");
        // The key's JWK says RS256: a PS256 validation finds no key for it.
        let r = cache
            .decode(&http(), &good, Some("a"), &validation(Algorithm::PS256))
            .await;
        assert!(matches!(r, Err(TokenError::UnknownKey { .. })), "{r:?}");
        // HS256 keyed with the public key, checked as RS256: the header's alg
        // must be the pinned one.
        let hmac = jsonwebtoken::encode(
            &Header {
                kid: Some("a".to_owned()),
                ..Header::new(Algorithm::HS256)
            },
            &json!({"sub": "s", "exp": crate::clock::unix_now() + 600}),
            &EncodingKey::from_secret(key_file!("rsa-1.pub.pem").as_bytes()),
        )
        .expect("sign");
        let r = cache
            .decode(&http(), &hmac, Some("a"), &validation(Algorithm::RS256))
            .await;
        assert!(refused_with(&r, &ErrorKind::InvalidAlgorithm), "{r:?}");
    }
}
