//! The session's serialised form: the JSON sealed into the cookie or stored in Redis.
//!
//! Field names are short on purpose (the cookie travels in every request) and fixed: cookies
//! and Redis values written by earlier versions must still decode, so this is the one place
//! that names them. [`Session`] is flat here (its [`Principal`] inlined, its issuer left out:
//! the engine fills in its own); encoding borrows every field, decoding moves them.

/// The format version of sealed sessions this release writes: the first byte of a sealed
/// session cookie (after base64) and of a session's value in Redis.
///
/// Cookies and Redis values outlive releases (a rolling update, a rollback, a week-long
/// session), so every version ever written must keep opening. When the sealed or serialised
/// form changes: bump this, keep reading every earlier version, and add
/// `tests/fixtures/session-vN.cookie` and `session-vN.redis` written by the new release;
/// `tests/session_format.rs` opens the fixtures of every version up to this one and fails
/// while one is missing.
pub const FORMAT_VERSION: u8 = 1;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::principal::Principal;
use crate::identity::tokens::{AccessToken, IdToken, RefreshToken};
use crate::session::model::Session;

/// What [`Session`] serialises as, borrowed.
#[derive(Serialize)]
struct Encode<'a> {
    #[serde(rename = "s")]
    subject: &'a str,
    #[serde(rename = "e", skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(rename = "u", skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(rename = "n", skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "g", skip_serializing_if = "is_empty")]
    groups: &'a [String],
    #[serde(rename = "rr", skip_serializing_if = "is_empty")]
    realm_roles: &'a [String],
    #[serde(rename = "cr", skip_serializing_if = "is_empty")]
    client_roles: &'a [String],
    #[serde(rename = "sid", skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(rename = "it", skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a IdToken>,
    #[serde(rename = "at", skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a AccessToken>,
    #[serde(rename = "rt", skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a RefreshToken>,
    #[serde(rename = "c")]
    created_at: u64,
    #[serde(rename = "x")]
    expires_at: u64,
    #[serde(rename = "ax", skip_serializing_if = "Option::is_none")]
    access_expires_at: Option<u64>,
    #[serde(rename = "rx", skip_serializing_if = "Option::is_none")]
    refresh_expires_at: Option<u64>,
    #[serde(rename = "ra")]
    refreshed_at: u64,
}

fn is_empty(list: &&[String]) -> bool {
    list.is_empty()
}

/// What [`Session`] deserialises from, owned (moved into the session, never copied).
/// Unknown fields are ignored; `s`, `c` and `x` are required.
#[derive(Deserialize)]
struct Decode {
    #[serde(rename = "s")]
    subject: String,
    #[serde(rename = "e", default)]
    email: Option<String>,
    #[serde(rename = "u", default)]
    preferred_username: Option<String>,
    #[serde(rename = "n", default)]
    name: Option<String>,
    #[serde(rename = "g", default)]
    groups: Vec<String>,
    #[serde(rename = "rr", default)]
    realm_roles: Vec<String>,
    #[serde(rename = "cr", default)]
    client_roles: Vec<String>,
    #[serde(rename = "sid", default)]
    sid: Option<String>,
    #[serde(rename = "it", default)]
    id_token: Option<IdToken>,
    #[serde(rename = "at", default)]
    access_token: Option<AccessToken>,
    #[serde(rename = "rt", default)]
    refresh_token: Option<RefreshToken>,
    #[serde(rename = "c")]
    created_at: u64,
    #[serde(rename = "x")]
    expires_at: u64,
    #[serde(rename = "ax", default)]
    access_expires_at: Option<u64>,
    #[serde(rename = "rx", default)]
    refresh_expires_at: Option<u64>,
    #[serde(rename = "ra", default)]
    refreshed_at: u64,
}

impl Serialize for Session {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = &self.principal;
        Encode {
            subject: &p.subject,
            email: p.email.as_deref(),
            preferred_username: p.preferred_username.as_deref(),
            name: p.name.as_deref(),
            groups: &p.groups,
            realm_roles: &p.realm_roles,
            client_roles: &p.client_roles,
            sid: self.sid.as_deref(),
            id_token: self.id_token.as_ref(),
            access_token: self.access_token.as_ref(),
            refresh_token: self.refresh_token.as_ref(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            access_expires_at: self.access_expires_at,
            refresh_expires_at: self.refresh_expires_at,
            refreshed_at: self.refreshed_at,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Session {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let d = Decode::deserialize(deserializer)?;
        Ok(Session {
            principal: Principal {
                subject: d.subject,
                email: d.email,
                preferred_username: d.preferred_username,
                name: d.name,
                groups: d.groups,
                realm_roles: d.realm_roles,
                client_roles: d.client_roles,
                issuer: None,
            },
            sid: d.sid,
            id_token: d.id_token,
            access_token: d.access_token,
            refresh_token: d.refresh_token,
            created_at: d.created_at,
            expires_at: d.expires_at,
            access_expires_at: d.access_expires_at,
            refresh_expires_at: d.refresh_expires_at,
            refreshed_at: d.refreshed_at,
        })
    }
}
