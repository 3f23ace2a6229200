//! The session: who is logged in, with which tokens, until when.

use crate::identity::principal::Principal;
use crate::identity::tokens::{AccessToken, IdToken, RefreshToken};

/// A logged-in user's session, as stored (encrypted) in the session cookie or in Redis.
///
/// The serialised form has short field names, since it travels in every request's `Cookie`
/// header, and they never change (cookies and Redis values outlive versions); the principal's
/// issuer is not part of it (the engine fills in its own). `Debug` shows whether each token is
/// there, never the token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// Who is signed in.
    pub principal: Principal,
    /// Provider session id (`sid`), for back-channel logout.
    pub sid: Option<String>,
    /// The raw ID token (for `id_token_hint` at logout and the Authorization header).
    pub id_token: Option<IdToken>,
    /// The access token.
    pub access_token: Option<AccessToken>,
    /// The refresh token.
    pub refresh_token: Option<RefreshToken>,
    /// When the session was created (Unix seconds).
    pub created_at: u64,
    /// When the session ends regardless of tokens (Unix seconds; `--cookie-expire`).
    pub expires_at: u64,
    /// When the access token expires (Unix seconds), if known.
    pub access_expires_at: Option<u64>,
    /// When the refresh token expires (Unix seconds), if the provider said (Keycloak does).
    pub refresh_expires_at: Option<u64>,
    /// When the tokens were last obtained or refreshed (Unix seconds).
    pub refreshed_at: u64,
}

impl Session {
    /// The value for `X-Auth-Request-User`: the subject, as oauth2-proxy sets it for OIDC.
    #[must_use]
    pub fn user(&self) -> &str {
        &self.principal.subject
    }

    /// `true` once `now` (Unix seconds) is past the session's expiry.
    #[must_use]
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}

impl AsRef<Principal> for Session {
    fn as_ref(&self) -> &Principal {
        &self.principal
    }
}
