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
        }
    }

    fn current(&self) -> Arc<Vec<Key>> {
        match self.keys.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Fetches the JWKS now and replaces the cached keys.
    pub(crate) async fn refresh(&self, http: &reqwest::Client) -> Result<(), ProviderError> {
        let mut last = self.last_fetch.lock().await;
        self.fetch_locked(http, &mut last).await
    }

    async fn fetch_locked(
        &self,
        http: &reqwest::Client,
        last: &mut Option<Instant>,
    ) -> Result<(), ProviderError> {
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
