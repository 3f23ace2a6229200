//! The result of [`crate::Engine::check`], shared by every transport.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response};

use crate::bearer::BearerClaims;
use crate::session::Session;

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Let the request through to the upstream.
    Allow(Box<Allow>),
    /// Answer the browser directly (login redirect, 401, 403, callback, sign-out, ...).
    Deny(Box<Deny>),
}

/// An allowed request.
#[derive(Debug)]
pub struct Allow {
    /// The session that allowed it.
    pub session: Arc<Session>,
    /// Headers to set on the upstream request (identity headers), overwriting the client's.
    pub upstream_headers: HeaderMap,
    /// Client headers that must not reach the upstream (identity headers this
    /// response does not set, in every spelling), lower-case.
    pub headers_to_remove: &'static [&'static str],
    /// Headers for the response to the browser (e.g. a refreshed `Set-Cookie`).
    pub response_headers: HeaderMap,
    /// The token's claims when an `Authorization: Bearer` token, not a session cookie,
    /// allowed the request ([`Allow::session`] then holds the same identity).
    pub bearer: Option<Arc<BearerClaims>>,
}

/// Why a request was answered directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// No valid session: a login redirect, sign-in page or 401.
    Unauthenticated,
    /// Logged in but not allowed (403).
    Forbidden,
    /// One of the engine's own routes answered (start, callback, sign-out, userinfo, ...).
    Endpoint,
    /// The login callback failed.
    LoginFailed,
    /// The identity provider is not reachable yet.
    Unavailable,
}

/// A direct answer to the browser.
#[derive(Debug)]
pub struct Deny {
    /// Why.
    pub reason: DenyReason,
    /// The full response to send.
    pub response: Response<Bytes>,
}

impl Decision {
    /// `true` for [`Decision::Allow`].
    #[must_use]
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow(_))
    }
}
