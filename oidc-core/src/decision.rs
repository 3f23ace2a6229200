//! The result of `Engine::check`, shared by every transport.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response};

use crate::http::headers::HeadersToRemove;
use crate::identity::principal::Principal;
use crate::session::model::Session;
use crate::token::bearer::BearerClaims;

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Let the request through to the upstream.
    Allow(Box<Allow>),
    /// Answer the browser directly (login redirect, 401, 403, callback, sign-out, ...).
    Deny(Box<Deny>),
}

/// An allowed request: who it is from ([`Allow::principal`]) and what to do with it.
#[derive(Debug)]
pub struct Allow {
    /// The session that allowed it, when a session cookie did (`None` for a bearer token).
    pub session: Option<Arc<Session>>,
    /// Headers to set on the upstream request (identity headers), overwriting the client's.
    pub upstream_headers: HeaderMap,
    /// Client headers that must not reach the upstream (identity headers this
    /// response does not set, in every spelling), lower-case.
    pub headers_to_remove: HeadersToRemove,
    /// Headers for the response to the browser (e.g. a refreshed `Set-Cookie`).
    pub response_headers: HeaderMap,
    /// The token's claims when an `Authorization: Bearer` token, not a session cookie,
    /// allowed the request.
    pub bearer: Option<Arc<BearerClaims>>,
}

impl Allow {
    /// The signed-in user, from the bearer token's claims or the session. The engine always
    /// sets one of the two; an `Allow` built by hand with neither has an empty principal.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        static NOBODY: Principal = Principal {
            subject: String::new(),
            email: None,
            preferred_username: None,
            name: None,
            groups: Vec::new(),
            realm_roles: Vec::new(),
            client_roles: Vec::new(),
            issuer: None,
        };
        match (&self.bearer, &self.session) {
            (Some(claims), _) => &claims.principal,
            (None, Some(session)) => &session.principal,
            (None, None) => &NOBODY,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(session: Option<&str>, bearer: Option<&str>) -> Allow {
        let session = session.map(|sub| {
            Arc::new(Session {
                principal: Principal::new(sub),
                ..Session::default()
            })
        });
        let bearer = bearer.map(|sub| {
            Arc::new(BearerClaims {
                principal: Principal::new(sub),
                ..BearerClaims::default()
            })
        });
        Allow {
            session,
            upstream_headers: HeaderMap::new(),
            headers_to_remove: HeadersToRemove::NONE,
            response_headers: HeaderMap::new(),
            bearer,
        }
    }

    #[test]
    fn the_principal_is_the_tokens_or_the_sessions() {
        assert_eq!(allow(Some("s"), None).principal().subject, "s");
        assert_eq!(allow(None, Some("b")).principal().subject, "b");
        assert_eq!(allow(Some("s"), Some("b")).principal().subject, "b");
        assert_eq!(allow(None, None).principal(), &Principal::default());
    }
}
