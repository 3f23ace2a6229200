//! A bounded cache of validated bearer tokens, so that a client sending the same
//! `Authorization: Bearer` token again is not verified again (an RSA or ECDSA signature
//! check costs 100-300 µs; a hit, a hash and a comparison).
//!
//! The key is the whole token, stored and compared in full; only tokens that passed every
//! check of `BearerValidator` are inserted, and a hit is
//! used only while the token is unexpired (`exp` against the clock on every request). A
//! cache belongs to one validator, so its audiences and issuers are the ones that accepted
//! the token. A signing key withdrawn from the issuer's JWKS is noticed when a token of it
//! is next verified, so a cached token stays accepted until its `exp` at the latest, as in
//! every JWT cache; keep access tokens short-lived. A back-channel logout is not cached: the
//! validator checks revocation on every use of a token, hit or miss.

use std::sync::{Arc, OnceLock};

use http::HeaderMap;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::token::bearer::claims::BearerClaims;

/// Most bytes the cache holds (tokens and what was built from them, estimated).
const WEIGHT_CAPACITY: u64 = 8 << 20;
/// Entries it is sized for up front.
const ESTIMATED_ITEMS: usize = 256;
/// Bytes an entry costs beyond its token (parsed claims, the headers built from them).
const ENTRY_OVERHEAD: u64 = 1024;

/// A token the validator accepted: its claims, and (built on first use by the engine's
/// check) the identity headers for the upstream.
pub(crate) struct Accepted {
    pub(crate) claims: Arc<BearerClaims>,
    pub(crate) headers: OnceLock<HeaderMap>,
}

#[derive(Clone, Copy, Debug)]
struct ByBytes;

impl Weighter<Box<str>, Arc<Accepted>> for ByBytes {
    fn weight(&self, key: &Box<str>, _: &Arc<Accepted>) -> u64 {
        // The claims hold the token's payload, the headers the token itself again.
        3 * key.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Accepted tokens, by their exact text.
pub(crate) struct TokenCache {
    cache: Cache<Box<str>, Arc<Accepted>, ByBytes>,
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
    /// `token` if it was accepted before and is unexpired at `now`.
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<Arc<Accepted>> {
        self.cache.get(token).filter(|a| now < a.claims.expires_at)
    }

    /// Remembers an accepted token's claims.
    pub(crate) fn insert(&self, token: &str, claims: BearerClaims) -> Arc<Accepted> {
        let accepted = Arc::new(Accepted {
            claims: Arc::new(claims),
            headers: OnceLock::new(),
        });
        self.cache.insert(token.into(), Arc::clone(&accepted));
        accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, expires_at: u64) -> BearerClaims {
        BearerClaims {
            principal: crate::identity::principal::Principal::new(sub),
            expires_at,
            ..BearerClaims::default()
        }
    }

    #[test]
    fn hits_only_the_exact_unexpired_token() {
        let c = TokenCache::default();
        c.insert("a.b.c", claims("alice", 100));
        assert_eq!(
            c.get("a.b.c", 99).unwrap().claims.principal.subject,
            "alice"
        );
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
            c.insert(&format!("{token}{i}"), claims("s", u64::MAX));
        }
        assert!(c.cache.weight() <= WEIGHT_CAPACITY, "{}", c.cache.weight());
        assert!(c.cache.len() < 5000);
    }
}
