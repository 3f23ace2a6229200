//! A bounded cache of decoded cookie sessions, so that a browser sending the
//! same session cookie again is not decrypted and parsed again.
//!
//! The key is the exact session cookie(s) the request carried: every
//! `(name, value)` pair, in order (the single cookie, or each chunk), stored in
//! full and compared in full on every hit. A cookie that differs in one byte,
//! is renamed, split differently or has its chunks reordered is a different key,
//! so it goes through decryption (and fails there when tampered). Only cookies
//! that decrypted to an unexpired session are inserted; what the cache returns
//! is still checked per request against the clock (expiry) and the revocation
//! list by the engine, exactly as a freshly decoded session is. A refreshed
//! session comes with new cookies, hence a new key; the old entry ages out.
//!
//! Bounded by weight (about the bytes an entry holds: key, session, headers),
//! with quick_cache's eviction (CLOCK-Pro-like, scan resistant): many distinct
//! valid cookies evict each other instead of growing memory. Lookups take a
//! shard's read lock for the duration of a hash probe, never across an await.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

use http::HeaderMap;
use quick_cache::sync::Cache;
use quick_cache::{Equivalent, Weighter};

use crate::session::cookie::Presented;
use crate::session::model::Session;

/// Most bytes the cache holds (keys, sessions and headers, estimated): a few
/// thousand sessions of a typical provider (a Keycloak cookie is 2 to 4 KB).
pub(crate) const WEIGHT_CAPACITY: u64 = 16 << 20;
/// Entries the cache is sized for up front; it grows up to the weight capacity.
const ESTIMATED_ITEMS: usize = 256;
/// Bytes an entry costs beyond what it holds (allocations, table slot, Arcs).
const ENTRY_OVERHEAD: u64 = 320;
/// The end of each cookie value that goes into the hash (see [`SessionCache::probe`]).
const HASHED_TAIL: usize = 32;

/// A session decoded from a cookie, with what every allowed request needs from it.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// The session.
    pub(crate) session: Arc<Session>,
    /// The identity headers for the upstream, computed once per session.
    pub(crate) headers: HeaderMap,
    weight: u64,
}

impl Decoded {
    pub(crate) fn new(session: Session, headers: HeaderMap) -> Self {
        let (s, p) = (&session, &session.principal);
        let strings = [
            p.subject.as_str(),
            p.email.as_deref().unwrap_or_default(),
            p.preferred_username.as_deref().unwrap_or_default(),
            p.name.as_deref().unwrap_or_default(),
            s.sid.as_deref().unwrap_or_default(),
            s.id_token.as_ref().map_or("", |t| t.expose()),
            s.access_token.as_ref().map_or("", |t| t.expose()),
            s.refresh_token.as_ref().map_or("", |t| t.expose()),
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>()
            + [&p.groups, &p.realm_roles, &p.client_roles]
                .iter()
                .flat_map(|l| l.iter())
                .map(|v| v.len() + 24)
                .sum::<usize>();
        let headers_len: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 64)
            .sum();
        Self {
            session: Arc::new(session),
            headers,
            weight: (strings + headers_len) as u64 + ENTRY_OVERHEAD,
        }
    }
}

/// The stored key: every `(name, value)` pair of the session cookie(s), each
/// part prefixed with its length, and the hash computed from them once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    hash: u64,
    bytes: Box<[u8]>,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A lookup for the cookie(s) of one request, without copying them.
pub(crate) struct Probe<'p, 'a> {
    hash: u64,
    presented: &'p Presented<'a>,
}

impl Hash for Probe<'_, '_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<Key> for Probe<'_, '_> {
    /// The full bytes, compared part by part: equal only if every name and
    /// every value is equal, in the same order and with the same boundaries.
    fn equivalent(&self, key: &Key) -> bool {
        if self.hash != key.hash {
            return false;
        }
        let mut rest: &[u8] = &key.bytes;
        for (name, value) in self.presented.pieces() {
            for part in [name.as_bytes(), value.as_bytes()] {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return false;
                };
                let len = u32::from_le_bytes(*len) as usize;
                if len != part.len() || tail.len() < len || &tail[..len] != part {
                    return false;
                }
                rest = &tail[len..];
            }
        }
        rest.is_empty()
    }
}

impl Probe<'_, '_> {
    fn to_key(&self) -> Key {
        let mut bytes = Vec::new();
        for (name, value) in self.presented.pieces() {
            for part in [name.as_bytes(), value.as_bytes()] {
                // Cookie headers are far below 4 GiB (hyper and Envoy cap headers at 64 KiB or so).
                bytes.extend_from_slice(
                    &u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes(),
                );
                bytes.extend_from_slice(part);
            }
        }
        Key {
            hash: self.hash,
            bytes: bytes.into_boxed_slice(),
        }
    }
}

/// Weight: the key's bytes and the entry's estimated size.
#[derive(Clone, Copy, Debug)]
struct ByBytes;

impl Weighter<Key, Arc<Decoded>> for ByBytes {
    fn weight(&self, key: &Key, val: &Arc<Decoded>) -> u64 {
        key.bytes.len() as u64 + val.weight
    }
}

/// Decoded sessions by their exact cookie bytes. Shared by all requests.
pub(crate) struct SessionCache {
    cache: Cache<Key, Arc<Decoded>, ByBytes, RandomState>,
    /// Keyed hash of the cookies (random per process).
    hasher: RandomState,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("len", &self.cache.len())
            .field("weight", &self.cache.weight())
            .finish()
    }
}

impl Default for SessionCache {
    fn default() -> Self {
        Self::with_capacity(WEIGHT_CAPACITY)
    }
}

impl SessionCache {
    /// A cache holding at most about `weight_capacity` bytes.
    pub(crate) fn with_capacity(weight_capacity: u64) -> Self {
        Self {
            cache: Cache::with(
                ESTIMATED_ITEMS,
                weight_capacity,
                ByBytes,
                RandomState::new(),
                Default::default(),
            ),
            hasher: RandomState::new(),
        }
    }

    /// The lookup key of a request's session cookie(s). The hash (SipHash with
    /// a per-process random key) covers each name, each value's length and the
    /// last bytes of each value; it only spreads entries, since a hit compares
    /// the full bytes. The end of a sealed value is its AES-GCM tag, which no
    /// one can choose without the cookie secret, and only values that opened
    /// are ever stored, so stored entries cannot be made to collide.
    pub(crate) fn probe<'p, 'a>(&self, presented: &'p Presented<'a>) -> Probe<'p, 'a> {
        let mut h = self.hasher.build_hasher();
        for (name, value) in presented.pieces() {
            let v = value.as_bytes();
            h.write(name.as_bytes());
            h.write_usize(v.len());
            h.write(&v[v.len().saturating_sub(HASHED_TAIL)..]);
        }
        Probe {
            hash: h.finish(),
            presented,
        }
    }

    /// The session decoded from exactly these cookie bytes, if cached.
    pub(crate) fn get(&self, probe: &Probe<'_, '_>) -> Option<Arc<Decoded>> {
        self.cache.get(probe)
    }

    /// Caches a session that was just decoded from exactly these cookie bytes
    /// (decrypted, parsed and not expired: never a refused cookie).
    pub(crate) fn insert(&self, probe: &Probe<'_, '_>, decoded: Decoded) -> Arc<Decoded> {
        let decoded = Arc::new(decoded);
        self.cache.insert(probe.to_key(), Arc::clone(&decoded));
        decoded
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    /// Bytes held (estimated).
    #[cfg(test)]
    pub(crate) fn weight(&self) -> u64 {
        self.cache.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::cookie::SessionCodec;
    use http::{HeaderValue, header};

    fn codec() -> SessionCodec {
        let secrets =
            [
                crate::config::secret::CookieSecret::parse("0123456789abcdef0123456789abcdef")
                    .unwrap(),
            ];
        SessionCodec::new("auth", &secrets)
    }

    fn cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    fn decoded(subject: &str) -> Decoded {
        Decoded::new(
            Session {
                principal: crate::identity::principal::Principal::new(subject),
                expires_at: 1_000,
                ..Session::default()
            },
            HeaderMap::new(),
        )
    }

    fn cache_for(c: &SessionCodec, cache: &SessionCache, header: &str, subject: &str) {
        let h = cookie(header);
        let p = c.find(&h).unwrap().unwrap();
        cache.insert(&cache.probe(&p), decoded(subject));
    }

    fn lookup(c: &SessionCodec, cache: &SessionCache, header: &str) -> Option<String> {
        let h = cookie(header);
        let p = c.find(&h).ok()??;
        cache
            .get(&cache.probe(&p))
            .map(|d| d.session.principal.subject.clone())
    }

    #[test]
    fn only_the_exact_cookie_hits() {
        let (c, cache) = (codec(), SessionCache::default());
        let value = "A".repeat(100) + "tagtagtagtagtagtagtagtagtagtagtagtag";
        cache_for(&c, &cache, &format!("auth={value}"), "alice");
        assert_eq!(
            lookup(&c, &cache, &format!("x=1; auth={value}")).as_deref(),
            Some("alice"),
            "other cookies around it do not matter"
        );
        // One byte changed anywhere: at the start (outside the hashed tail), or in the tail.
        let front = format!("B{}", &value[1..]);
        assert_eq!(lookup(&c, &cache, &format!("auth={front}")), None);
        let end = format!("{}X", &value[..value.len() - 1]);
        assert_eq!(lookup(&c, &cache, &format!("auth={end}")), None);
        // Truncated, extended.
        assert_eq!(lookup(&c, &cache, &format!("auth={}", &value[1..])), None);
        assert_eq!(lookup(&c, &cache, &format!("auth=A{value}")), None);
        // The same value as a chunk: another cookie name, another key.
        assert_eq!(lookup(&c, &cache, &format!("auth_0={value}")), None);
    }

    #[test]
    fn chunks_hit_only_whole_and_in_order() {
        let (c, cache) = (codec(), SessionCache::default());
        let (a, b) = ("a".repeat(50) + "first", "b".repeat(50) + "second");
        cache_for(&c, &cache, &format!("auth_0={a}; auth_1={b}"), "alice");
        assert_eq!(
            lookup(&c, &cache, &format!("auth_0={a}; auth_1={b}")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            lookup(&c, &cache, &format!("auth_1={b}; auth_0={a}")).as_deref(),
            Some("alice"),
            "the same chunks in another header order are the same cookies"
        );
        assert_eq!(lookup(&c, &cache, &format!("auth_0={b}; auth_1={a}")), None);
        assert_eq!(lookup(&c, &cache, &format!("auth_0={a}")), None);
        assert_eq!(
            lookup(&c, &cache, &format!("auth_0={a}; auth_1={b}; auth_2=x")),
            None
        );
        // The same bytes split at another boundary.
        let (a2, b2) = (format!("{a}{}", &b[..1]), b[1..].to_owned());
        assert_eq!(
            lookup(&c, &cache, &format!("auth_0={a2}; auth_1={b2}")),
            None
        );
        // The same bytes as one cookie.
        assert_eq!(lookup(&c, &cache, &format!("auth={a}{b}")), None);
    }

    #[test]
    fn distinct_cookies_with_equal_hash_inputs_do_not_mix() {
        // Same length and same tail: the hash collides by construction, the bytes differ.
        let (c, cache) = (codec(), SessionCache::default());
        let tail = "T".repeat(HASHED_TAIL);
        let (one, two) = (format!("x{tail}"), format!("y{tail}"));
        cache_for(&c, &cache, &format!("auth={one}"), "alice");
        cache_for(&c, &cache, &format!("auth={two}"), "bob");
        assert_eq!(
            lookup(&c, &cache, &format!("auth={one}")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            lookup(&c, &cache, &format!("auth={two}")).as_deref(),
            Some("bob")
        );
        assert_eq!(lookup(&c, &cache, &format!("auth=z{tail}")), None);
    }

    #[test]
    fn bounded_by_weight() {
        let c = codec();
        let cache = SessionCache::with_capacity(64 * 1024);
        for i in 0..5_000 {
            cache_for(&c, &cache, &format!("auth={i:0>200}"), "alice");
        }
        assert!(cache.weight() <= 64 * 1024, "weight {}", cache.weight());
        assert!(cache.len() < 200, "{} entries", cache.len());
        assert!(
            lookup(&c, &cache, &format!("auth={:0>200}", 4_999)).is_some(),
            "recent entries stay"
        );
    }
}
