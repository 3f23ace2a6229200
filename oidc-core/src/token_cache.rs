//! A bounded cache of validated bearer tokens, so that a client sending the same
//! `Authorization: Bearer` token again is not verified again (an RSA or ECDSA signature
//! check costs 100-300 µs; a hit, a hash and a comparison).
//!
//! The key is the whole token, stored and compared in full; only tokens that passed every
//! check of [`BearerValidator`](crate::bearer::BearerValidator) are inserted, and a hit is
//! used only while the token is unexpired (`exp` against the clock on every request). A
//! cache belongs to one validator, so its audiences and issuers are the ones that accepted
//! the token. A signing key withdrawn from the issuer's JWKS is noticed when a token of it
//! is next verified, so a cached token stays accepted until its `exp` at the latest, as in
//! every JWT cache; keep access tokens short-lived.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::session::cache::Decoded;

/// Most bytes the cache holds (tokens and their identities, estimated).
const WEIGHT_CAPACITY: u64 = 8 << 20;
/// Entries it is sized for up front.
const ESTIMATED_ITEMS: usize = 256;

#[derive(Clone, Copy, Debug)]
struct ByBytes;

impl Weighter<Box<str>, Arc<Decoded>> for ByBytes {
    fn weight(&self, key: &Box<str>, val: &Arc<Decoded>) -> u64 {
        key.len() as u64 + val.weight()
    }
}

/// Validated tokens, by their exact text.
pub(crate) struct TokenCache {
    cache: Cache<Box<str>, Arc<Decoded>, ByBytes>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            cache: Cache::with_weighter(ESTIMATED_ITEMS, WEIGHT_CAPACITY, ByBytes),
        }
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.cache.len())
            .finish()
    }
}

impl TokenCache {
    /// The identity of `token` if it was validated before and is unexpired at `now`.
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<Arc<Decoded>> {
        self.cache.get(token).filter(|d| now < d.session.expires_at)
    }

    /// Remembers a validated token's identity.
    pub(crate) fn insert(&self, token: &str, decoded: Decoded) -> Arc<Decoded> {
        let decoded = Arc::new(decoded);
        self.cache.insert(token.into(), Arc::clone(&decoded));
        decoded
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;
    use crate::session::Session;

    fn decoded(sub: &str, expires_at: u64) -> Decoded {
        Decoded::new(
            Session {
                subject: sub.into(),
                expires_at,
                ..Session::default()
            },
            HeaderMap::new(),
        )
    }

    #[test]
    fn hits_only_the_exact_unexpired_token() {
        let c = TokenCache::default();
        c.insert("a.b.c", decoded("alice", 100));
        assert_eq!(c.get("a.b.c", 99).unwrap().session.subject, "alice");
        assert!(c.get("a.b.c", 100).is_none(), "expired");
        assert!(c.get("a.b.C", 50).is_none());
        assert!(c.get("a.b.c ", 50).is_none());
        assert!(c.get("a.b", 50).is_none());
    }

    #[test]
    fn stays_bounded() {
        let c = TokenCache::default();
        let token = "x".repeat(4000);
        for i in 0..5000 {
            c.insert(&format!("{token}{i}"), decoded("s", u64::MAX));
        }
        assert!(c.cache.weight() <= WEIGHT_CAPACITY, "{}", c.cache.weight());
        assert!(c.cache.len() < 5000);
    }
}
