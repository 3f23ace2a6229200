//! The session: who is logged in, with which tokens, until when.

pub(crate) mod cache;
pub(crate) mod cookie;
pub(crate) mod crypto;
#[cfg(feature = "redis")]
pub mod redis;

pub use cookie::SessionError;

use serde::{Deserialize, Serialize};

use crate::tokens::{AccessToken, IdToken, RefreshToken};

/// A logged-in user's session, as stored (encrypted) in the session cookie.
///
/// Field names are short on purpose: the serialised form travels in every
/// request's `Cookie` header. `Debug` shows whether each token is there, never the token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// Subject (`sub`) at the issuer.
    #[serde(rename = "s")]
    pub subject: String,
    /// Email address (`email`), if the provider released one.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `preferred_username`.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Display name (`name`).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Groups (from the configured groups claim).
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Keycloak realm roles (`realm_access.roles` of the access token).
    #[serde(rename = "rr", default, skip_serializing_if = "Vec::is_empty")]
    pub realm_roles: Vec<String>,
    /// Keycloak client roles as `client:role` (`resource_access` of the access token).
    #[serde(rename = "cr", default, skip_serializing_if = "Vec::is_empty")]
    pub client_roles: Vec<String>,
    /// Provider session id (`sid`), for back-channel logout.
    #[serde(rename = "sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The raw ID token (for `id_token_hint` at logout and the Authorization header).
    #[serde(rename = "it", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<IdToken>,
    /// The access token.
    #[serde(rename = "at", default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<AccessToken>,
    /// The refresh token.
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// When the session was created (Unix seconds).
    #[serde(rename = "c")]
    pub created_at: u64,
    /// When the session ends regardless of tokens (Unix seconds; `--cookie-expire`).
    #[serde(rename = "x")]
    pub expires_at: u64,
    /// When the access token expires (Unix seconds), if known.
    #[serde(rename = "ax", default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<u64>,
    /// When the refresh token expires (Unix seconds), if the provider said (Keycloak does).
    #[serde(rename = "rx", default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<u64>,
    /// When the tokens were last obtained or refreshed (Unix seconds).
    #[serde(rename = "ra", default)]
    pub refreshed_at: u64,
}

impl Session {
    /// The value for `X-Auth-Request-User`: the subject, as oauth2-proxy sets it for OIDC.
    #[must_use]
    pub fn user(&self) -> &str {
        &self.subject
    }

    /// `true` once `now` (Unix seconds) is past the session's expiry.
    #[must_use]
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}
