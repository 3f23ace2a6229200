//! Credentials: the request's session, from its cookie (decoded once, then cached by the
//! cookie's bytes) or from Redis by the cookie's ticket, and writing a session back.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::request::Parts;

use crate::engine::state::State;
use crate::http::headers::identity_headers;
use crate::refresh;
use crate::session::cache::Decoded;
use crate::session::cookie::SessionError;
use crate::session::model::Session;
use crate::store::backend::Down;

/// Why a request has no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// No session cookie at all.
    NoSession,
    /// A session cookie that was refused (tampered, expired, foreign).
    Invalid(SessionError),
}

/// The request's session, decoded, with its identity headers.
pub(crate) struct Current {
    pub(crate) decoded: Arc<Decoded>,
    /// The Redis ticket (encoded) when the session lives in Redis.
    pub(crate) ticket: Option<String>,
}

pub(crate) enum LoadFailure {
    Unauthenticated(Unauthenticated),
    /// The session store is down: fail closed.
    Down,
}

impl State {
    /// A cookie-store session from the request's session cookie(s): from the
    /// cache when these exact cookie bytes were decoded before, else decrypted,
    /// parsed and cached. Expiry is checked on every call, cached or not.
    pub(crate) fn cookie_session(
        &self,
        parts: &Parts,
        now: u64,
    ) -> Result<Arc<Decoded>, Unauthenticated> {
        let sessions = &self.sessions;
        let presented = sessions
            .find(&parts.headers)
            .map_err(Unauthenticated::Invalid)?
            .ok_or(Unauthenticated::NoSession)?;
        let cache = &self.decoded;
        let probe = cache.probe(&presented);
        if let Some(hit) = cache.get(&probe) {
            if hit.session.is_expired(now) {
                return Err(Unauthenticated::Invalid(SessionError::Expired));
            }
            return Ok(hit);
        }
        let session = sessions
            .open(&presented)
            .and_then(|plain| sessions.decode(&plain, now))
            .map_err(Unauthenticated::Invalid)?;
        let session = self.adopt(session);
        let headers = identity_headers(&self.config, &session);
        Ok(cache.insert(&probe, Decoded::new(session, headers)))
    }

    /// The request's session: from the cookie, or from Redis by the cookie's
    /// ticket; revoked sessions (back-channel logout) are refused.
    pub(crate) async fn load(&self, parts: &Parts, now: u64) -> Result<Current, LoadFailure> {
        use LoadFailure::Unauthenticated as Unauth;
        let store = &self.store;
        if store.tickets() {
            let raw = self
                .sessions
                .read_raw(&parts.headers)
                .map_err(|e| Unauth(Unauthenticated::Invalid(e)))?
                .ok_or(Unauth(Unauthenticated::NoSession))?;
            let ticket = String::from_utf8(raw)
                .map_err(|_| Unauth(Unauthenticated::Invalid(SessionError::Format)))?;
            return match store.load_ticket(&ticket).await {
                Ok(Some(session)) if !session.is_expired(now) => {
                    let session = self.adopt(session);
                    let headers = identity_headers(&self.config, &session);
                    Ok(Current {
                        decoded: Arc::new(Decoded::new(session, headers)),
                        ticket: Some(ticket),
                    })
                }
                Ok(_) => Err(Unauth(Unauthenticated::Invalid(SessionError::Expired))),
                Err(Down) => Err(LoadFailure::Down),
            };
        }
        let decoded = self.cookie_session(parts, now).map_err(Unauth)?;
        match store.is_revoked(&decoded.session).await {
            Ok(false) => Ok(Current {
                decoded,
                ticket: None,
            }),
            Ok(true) => Err(Unauth(Unauthenticated::Invalid(SessionError::Revoked))),
            Err(Down) => Err(LoadFailure::Down),
        }
    }

    /// `Set-Cookie` values for a new or refreshed session: the session itself
    /// (cookie store) or its ticket, after saving it in Redis.
    pub(crate) async fn store_session(
        &self,
        parts: &Parts,
        session: &Session,
        ticket: Option<&str>,
        now: u64,
    ) -> Result<Vec<HeaderValue>, Down> {
        let host = self.host(parts);
        let max_age = Duration::from_secs(session.expires_at.saturating_sub(now));
        if self.store.tickets() {
            let ticket = self.store.save(ticket, session, now).await?;
            return Ok(self.sessions.write_raw(
                ticket.as_bytes(),
                &parts.headers,
                &self.writer,
                host,
                max_age,
            ));
        }
        let minimal;
        let session = if self.config.minimal_session {
            minimal = Session {
                id_token: None,
                access_token: None,
                refresh_token: None,
                ..session.clone()
            };
            &minimal
        } else {
            session
        };
        Ok(self
            .sessions
            .write(session, &parts.headers, &self.writer, host, max_age))
    }

    /// Refresh when the access token is about to expire or `--cookie-refresh` has passed.
    pub(crate) fn needs_refresh(&self, s: &Session, now: u64) -> bool {
        if s.refresh_token.is_none() {
            return false;
        }
        let access_due = s
            .access_expires_at
            .is_some_and(|t| now + refresh::MARGIN_SECS >= t);
        let age_due = self
            .config
            .cookie
            .refresh
            .is_some_and(|every| now >= s.refreshed_at.max(s.created_at) + every.as_secs());
        access_due || age_due
    }
}
