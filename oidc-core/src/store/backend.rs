//! Where sessions live beyond the cookie: the Redis session store (the
//! cookie holds a ticket), revocation after back-channel logout, and one
//! refresh per session across replicas. Without Redis, revocation and
//! replay protection are kept in this process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::builder::{Config, SessionStoreKind};
use crate::refresh::Outcome;
use crate::session::model::Session;
use crate::store::revocations::LocalRevocations;

#[cfg(feature = "redis")]
use crate::store::redis::{RedisSettings, RedisStore, StoreError, Ticket};

/// Type-erases a Redis future. The redis crate's futures nest deeply; boxing
/// them here keeps the engine's own futures shallow and small (and the Redis
/// round trip dwarfs the allocation).
#[cfg(feature = "redis")]
fn boxed<'a, T>(
    f: impl Future<Output = T> + Send + 'a,
) -> std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    Box::pin(f)
}

/// The session store could not be reached: the request fails closed (503).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Down;

/// How long a waiting replica polls for another replica's refresh.
#[cfg(feature = "redis")]
const REFRESH_WAIT: Duration = Duration::from_secs(10);
/// Lock lifetime for a refresh (longer than one token request).
#[cfg(feature = "redis")]
const REFRESH_LOCK_TTL: Duration = Duration::from_secs(15);

#[cfg(feature = "redis")]
struct RedisHandle {
    settings: RedisSettings,
    store: tokio::sync::OnceCell<RedisStore>,
}

#[cfg(feature = "redis")]
impl RedisHandle {
    async fn get(&self) -> Result<&RedisStore, Down> {
        self.store
            .get_or_try_init(|| RedisStore::connect(self.settings.clone()))
            .await
            .map_err(|e| down(&e))
    }
}

#[cfg(feature = "redis")]
fn down(e: &StoreError) -> Down {
    tracing::error!(error = %crate::error::chain::chain(e), "session store (Redis) unavailable; failing closed");
    Down
}

/// The stores the engine uses besides the cookie.
pub(crate) struct Store {
    kind: SessionStoreKind,
    #[cfg(feature = "redis")]
    redis: Option<RedisHandle>,
    revoked: LocalRevocations,
    jtis: Mutex<HashMap<String, u64>>,
    /// How long a revocation must be remembered: the longest a session lives.
    revocation_ttl: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A session as loaded for a request, and where it came from.
pub(crate) struct Loaded {
    pub(crate) session: Session,
    /// The Redis ticket (encoded) when the session lives in Redis.
    pub(crate) ticket: Option<String>,
}

impl Store {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            kind: config.session_store,
            #[cfg(feature = "redis")]
            redis: config.redis.clone().map(|settings| RedisHandle {
                settings,
                store: tokio::sync::OnceCell::new(),
            }),
            revoked: LocalRevocations::default(),
            jtis: Mutex::new(HashMap::new()),
            revocation_ttl: config.cookie.expire.as_secs(),
        }
    }

    /// `true` when sessions live in Redis (the cookie holds a ticket).
    pub(crate) fn tickets(&self) -> bool {
        self.kind == SessionStoreKind::Redis
    }

    /// Loads the session a ticket names. `Ok(None)`: gone (expired, revoked, signed out).
    #[cfg(feature = "redis")]
    pub(crate) async fn load_ticket(&self, encoded: &str) -> Result<Option<Session>, Down> {
        let (Some(r), Some(ticket)) = (&self.redis, Ticket::decode(encoded)) else {
            return Ok(None);
        };
        let store = boxed(r.get()).await?;
        match boxed(store.load(&ticket)).await {
            Ok(s) => Ok(s),
            Err(StoreError::Corrupt) => Ok(None),
            Err(e) => Err(down(&e)),
        }
    }

    #[cfg(not(feature = "redis"))]
    pub(crate) async fn load_ticket(&self, _encoded: &str) -> Result<Option<Session>, Down> {
        Ok(None)
    }

    /// Saves a session under a ticket (a new one when `ticket` is `None`);
    /// returns the encoded ticket for the cookie.
    #[cfg(feature = "redis")]
    pub(crate) async fn save(
        &self,
        ticket: Option<&str>,
        session: &Session,
        now: u64,
    ) -> Result<String, Down> {
        let r = self.redis.as_ref().ok_or(Down)?;
        let ticket = ticket
            .and_then(Ticket::decode)
            .unwrap_or_else(Ticket::generate);
        let ttl = Duration::from_secs(session.expires_at.saturating_sub(now).max(1));
        let store = boxed(r.get()).await?;
        boxed(store.save(&ticket, session, ttl))
            .await
            .map_err(|e| down(&e))?;
        Ok(ticket.encode())
    }

    #[cfg(not(feature = "redis"))]
    pub(crate) async fn save(
        &self,
        _ticket: Option<&str>,
        _session: &Session,
        _now: u64,
    ) -> Result<String, Down> {
        Err(Down)
    }

    /// Deletes a ticket's session (sign-out). Failures are logged only.
    pub(crate) async fn delete(&self, encoded: &str) {
        #[cfg(feature = "redis")]
        if let (Some(r), Some(ticket)) = (&self.redis, Ticket::decode(encoded))
            && let Ok(store) = boxed(r.get()).await
            && let Err(e) = boxed(store.delete(&ticket)).await
        {
            let _ = down(&e);
        }
        #[cfg(not(feature = "redis"))]
        let _ = encoded;
    }

    /// Whether a cookie-mode session was revoked by a back-channel logout: a revocation of its
    /// `sid` or `sub` at or after its creation (the same second counts).
    pub(crate) async fn is_revoked(&self, s: &Session) -> Result<bool, Down> {
        let at = s.created_at;
        self.revoked_since(s.sid.as_deref(), at, &s.principal.subject, at)
            .await
    }

    /// Whether a bearer token of our issuer was revoked by a back-channel logout: any
    /// revocation of its `sid` (one provider session, never reused, so the provider's clock
    /// does not matter), or one of its `sub` at or after its `iat` (the same second counts).
    pub(crate) async fn is_token_revoked(
        &self,
        sid: Option<&str>,
        sub: &str,
        iat: u64,
    ) -> Result<bool, Down> {
        self.revoked_since(sid, 0, sub, iat).await
    }

    /// This process's revocations first (no I/O; no lock while there are none), then, with
    /// Redis, every replica's (one round trip: two `GET`s in parallel).
    async fn revoked_since(
        &self,
        sid: Option<&str>,
        sid_since: u64,
        sub: &str,
        sub_since: u64,
    ) -> Result<bool, Down> {
        if self.revoked.is_revoked(sid, sid_since, sub, sub_since) {
            return Ok(true);
        }
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis {
            let store = boxed(r.get()).await?;
            return boxed(store.is_revoked_since(sid, sid_since, sub, sub_since))
                .await
                .map_err(|e| down(&e));
        }
        Ok(false)
    }

    /// Ends every session of `sid` (or, without one, of `sub`) in every replica.
    pub(crate) async fn revoke(
        &self,
        sid: Option<&str>,
        sub: Option<&str>,
        now: u64,
    ) -> Result<usize, Down> {
        self.revoked.revoke(sid, sub, now, self.revocation_ttl);
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis {
            let store = boxed(r.get()).await?;
            let n = match (sid, sub) {
                (Some(sid), _) => boxed(store.revoke_sid(sid)).await,
                (None, Some(sub)) => boxed(store.revoke_sub(sub)).await,
                (None, None) => Ok(0),
            };
            return n.map_err(|e| down(&e));
        }
        Ok(0)
    }

    /// `true` the first time a logout token's `jti` is seen (replay protection).
    pub(crate) async fn first_jti(&self, jti: &str, ttl: Duration, now: u64) -> Result<bool, Down> {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis {
            let store = boxed(r.get()).await?;
            return boxed(store.remember_jti(jti, ttl))
                .await
                .map_err(|e| down(&e));
        }
        let mut seen = self
            .jtis
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|_, until| *until > now);
        if seen.contains_key(jti) {
            return Ok(false);
        }
        seen.insert(jti.to_owned(), now + ttl.as_secs());
        Ok(true)
    }

    /// Runs `refresh` at most once per session across replicas when Redis is
    /// configured: the lock holder refreshes and publishes the result; the
    /// others wait for it. Without Redis it just runs `refresh` (the caller
    /// already made it single-flight within this process).
    pub(crate) async fn refresh_once<Fut>(
        &self,
        key: &[u8; 32],
        refresh_token: &str,
        loaded: &Loaded,
        refresh: Fut,
    ) -> Outcome
    where
        Fut: Future<Output = Outcome> + Send,
    {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis {
            return match boxed(self.refresh_with_redis(r, key, refresh_token, loaded, refresh))
                .await
            {
                Ok(o) => o,
                Err(Down) => Outcome::StoreDown,
            };
        }
        let _ = (key, refresh_token, loaded);
        refresh.await
    }

    /// A refresh another replica finished: in ticket mode the stored session
    /// (when newer than ours); in cookie mode the result it published, sealed
    /// under a key only holders of the old refresh token can derive.
    #[cfg(feature = "redis")]
    async fn published(
        &self,
        store: &RedisStore,
        key: &[u8; 32],
        refresh_token: &str,
        loaded: &Loaded,
    ) -> Result<Option<std::sync::Arc<Session>>, Down> {
        match &loaded.ticket {
            Some(t) => Ok(self
                .load_ticket(t)
                .await?
                .filter(|s| s.refreshed_at > loaded.session.refreshed_at)
                .map(std::sync::Arc::new)),
            None => match store.get_refresh_result(key).await {
                Ok(Some(sealed)) => Ok(open_result(refresh_token, &sealed)),
                Ok(None) => Ok(None),
                Err(e) => Err(down(&e)),
            },
        }
    }

    #[cfg(feature = "redis")]
    async fn refresh_with_redis<Fut>(
        &self,
        r: &RedisHandle,
        key: &[u8; 32],
        refresh_token: &str,
        loaded: &Loaded,
        refresh: Fut,
    ) -> Result<Outcome, Down>
    where
        Fut: Future<Output = Outcome> + Send,
    {
        use crate::refresh::GRACE;
        let store = r.get().await?;
        let lock_name = format!("refresh:{}", hex(key));
        match store
            .try_lock(&lock_name, REFRESH_LOCK_TTL)
            .await
            .map_err(|e| down(&e))?
        {
            Some(guard) => {
                // Another replica may have finished just before we got the lock.
                if let Some(done) = self.published(store, key, refresh_token, loaded).await? {
                    let _ = guard.release().await;
                    return Ok(Outcome::Refreshed(done));
                }
                let outcome = refresh.await;
                // A session the refresh ended ends for every replica, not only this one.
                if let (Outcome::Ended, Some(t)) = (&outcome, &loaded.ticket) {
                    self.delete(t).await;
                }
                if let Outcome::Refreshed(fresh) = &outcome {
                    let now = crate::clock::unix_now();
                    match &loaded.ticket {
                        Some(t) => {
                            self.save(Some(t), fresh, now).await?;
                        }
                        None => {
                            let sealed = seal_result(refresh_token, fresh);
                            store
                                .put_refresh_result(key, &sealed, GRACE)
                                .await
                                .map_err(|e| down(&e))?;
                        }
                    }
                }
                let _ = guard.release().await;
                Ok(outcome)
            }
            None => {
                let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Some(done) = self.published(store, key, refresh_token, loaded).await? {
                        return Ok(Outcome::Refreshed(done));
                    }
                    if let Some(t) = &loaded.ticket
                        && self.load_ticket(t).await?.is_none()
                    {
                        return Ok(Outcome::Ended);
                    }
                    // The holder let go without publishing: its refresh failed
                    // (provider unreachable). Do not wait out the deadline.
                    if let Some(guard) = boxed(store.try_lock(&lock_name, REFRESH_LOCK_TTL))
                        .await
                        .map_err(|e| down(&e))?
                    {
                        let _ = boxed(guard.release()).await;
                        return Ok(
                            match self.published(store, key, refresh_token, loaded).await? {
                                Some(done) => Outcome::Refreshed(done),
                                None => Outcome::Unavailable,
                            },
                        );
                    }
                }
                Ok(Outcome::Unavailable)
            }
        }
    }
}

#[cfg(feature = "redis")]
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A sealer whose key only holders of `refresh_token` can derive.
#[cfg(feature = "redis")]
fn result_sealer(refresh_token: &str) -> crate::session::crypto::Sealer {
    use sha2::{Digest, Sha256};
    let secret = crate::config::secret::CookieSecret::from_bytes(
        Sha256::digest(refresh_token.as_bytes()).to_vec(),
    );
    crate::session::crypto::Sealer::new(&[secret], crate::session::crypto::Purpose::RefreshResult)
}

#[cfg(feature = "redis")]
fn seal_result(refresh_token: &str, session: &Session) -> Vec<u8> {
    let plain = serde_json::to_vec(session).unwrap_or_default();
    result_sealer(refresh_token)
        .seal(b"refresh-result", &plain)
        .into_bytes()
}

#[cfg(feature = "redis")]
fn open_result(refresh_token: &str, sealed: &[u8]) -> Option<std::sync::Arc<Session>> {
    let text = std::str::from_utf8(sealed).ok()?;
    let plain = result_sealer(refresh_token)
        .open(b"refresh-result", text)
        .ok()?;
    serde_json::from_slice(&plain).ok().map(std::sync::Arc::new)
}
