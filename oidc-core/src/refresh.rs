//! Session refresh with the refresh token: one refresh per session at a time.
//!
//! Requests carrying the same session (the same refresh token) share one
//! refresh: the first runs it, the others wait for its outcome. The outcome
//! is kept for [`GRACE`] so that requests arriving a moment later with the
//! old cookie get the refreshed session too instead of replaying a refresh
//! token the provider has already rotated (Keycloak's "Revoke Refresh Token").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::identity::tokens::RefreshToken;
use crate::session::model::Session;

/// How long a refresh outcome is reused for requests with the old cookie.
pub(crate) const GRACE: Duration = Duration::from_secs(60);
/// How long a failed refresh (provider unreachable) is remembered before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Refresh this long before the access token expires.
pub(crate) const MARGIN_SECS: u64 = 30;

/// What came of a refresh.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// New tokens; the new session.
    Refreshed(Arc<Session>),
    /// The provider refused the refresh token (`invalid_grant`): the session is over.
    Ended,
    /// The provider could not be reached or failed: keep the old session for now.
    Unavailable,
    /// The session store (Redis) could not be reached: fail closed.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    StoreDown,
}

struct Entry {
    started: Instant,
    cell: Arc<OnceCell<Outcome>>,
}

/// Single flight per refresh token, plus the short-lived outcome cache.
#[derive(Default)]
pub(crate) struct Refresher {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher").finish_non_exhaustive()
    }
}

/// The key of a session's refresh: a hash of its refresh token (never the token itself).
pub(crate) fn key(refresh_token: &RefreshToken) -> [u8; 32] {
    Sha256::digest(refresh_token.expose().as_bytes()).into()
}

impl Refresher {
    /// Runs `refresh` once per `key` at a time and shares its outcome with
    /// every caller with the same key until the outcome expires.
    pub(crate) async fn run<F, Fut>(&self, key: [u8; 32], refresh: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let cell = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            entries.retain(|_, e| {
                let keep_for = match e.cell.get() {
                    Some(Outcome::Unavailable | Outcome::StoreDown) => RETRY_AFTER,
                    _ => GRACE,
                };
                now.duration_since(e.started) < keep_for
            });
            Arc::clone(
                &entries
                    .entry(key)
                    .or_insert_with(|| Entry {
                        started: now,
                        cell: Arc::new(OnceCell::new()),
                    })
                    .cell,
            )
        };
        cell.get_or_init(refresh).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_refresh() {
        let r = Arc::new(Refresher::default());
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (r, calls) = (Arc::clone(&r), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                r.run(key(&RefreshToken::new("rt-1")), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Outcome::Refreshed(Arc::new(Session {
                        principal: crate::identity::principal::Principal::new("a"),
                        ..Session::default()
                    }))
                })
                .await
            }));
        }
        for t in tasks {
            assert!(
                matches!(t.await.unwrap(), Outcome::Refreshed(s) if s.principal.subject == "a")
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A late arrival with the same (old) refresh token reuses the outcome.
        let late = r
            .run(key(&RefreshToken::new("rt-1")), || async { Outcome::Ended })
            .await;
        assert!(matches!(late, Outcome::Refreshed(_)));
        // Another session refreshes on its own.
        let other = r
            .run(key(&RefreshToken::new("rt-2")), || async { Outcome::Ended })
            .await;
        assert!(matches!(other, Outcome::Ended));
    }
}
