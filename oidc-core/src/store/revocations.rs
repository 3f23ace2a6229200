//! Revocations kept in this process (after a back-channel logout): by `sid` and by `sub`,
//! read without a lock while nothing is revoked.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Revocations kept in this process: `sid -> revoked at` and `sub -> revoked at`.
#[derive(Default)]
pub(crate) struct LocalRevocations {
    len: AtomicUsize,
    entries: RwLock<Revoked>,
}

#[derive(Default)]
struct Revoked {
    sids: HashMap<String, u64>,
    subs: HashMap<String, u64>,
}

impl LocalRevocations {
    pub(crate) fn revoke(&self, sid: Option<&str>, sub: Option<&str>, now: u64, keep_for: u64) {
        let mut e = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = |at: &mut u64| at.saturating_add(keep_for) > now;
        e.sids.retain(|_, at| live(at));
        e.subs.retain(|_, at| live(at));
        match (sid, sub) {
            (Some(sid), _) => e.sids.insert(sid.to_owned(), now),
            (None, Some(sub)) => e.subs.insert(sub.to_owned(), now),
            (None, None) => None,
        };
        self.len.store(e.sids.len() + e.subs.len(), Relaxed);
    }

    /// Whether `sid` was revoked at or after `sid_since`, or `sub` at or after `sub_since`.
    /// No allocation; no lock while nothing was ever revoked.
    pub(crate) fn is_revoked(
        &self,
        sid: Option<&str>,
        sid_since: u64,
        sub: &str,
        sub_since: u64,
    ) -> bool {
        if self.len.load(Relaxed) == 0 {
            return false;
        }
        let e = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sid.and_then(|sid| e.sids.get(sid))
            .is_some_and(|at| *at >= sid_since)
            || e.subs.get(sub).is_some_and(|at| *at >= sub_since)
    }
}
