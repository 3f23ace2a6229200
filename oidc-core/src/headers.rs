//! Identity headers set on allowed requests, and the client copies that must go.

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::config::Config;
use crate::session::Session;

/// `X-Auth-Request-User`: the subject.
pub const X_AUTH_REQUEST_USER: HeaderName = HeaderName::from_static("x-auth-request-user");
/// `X-Auth-Request-Email`.
pub const X_AUTH_REQUEST_EMAIL: HeaderName = HeaderName::from_static("x-auth-request-email");
/// `X-Auth-Request-Preferred-Username`.
pub const X_AUTH_REQUEST_PREFERRED_USERNAME: HeaderName =
    HeaderName::from_static("x-auth-request-preferred-username");
/// `X-Auth-Request-Groups`: comma-separated.
pub const X_AUTH_REQUEST_GROUPS: HeaderName = HeaderName::from_static("x-auth-request-groups");
/// `X-Auth-Request-Access-Token`.
pub const X_AUTH_REQUEST_ACCESS_TOKEN: HeaderName =
    HeaderName::from_static("x-auth-request-access-token");

/// Every identity header a client could forge, in both `-` and `_` spellings.
/// Header names are case-insensitive, so lower case covers every case.
pub const ALL_IDENTITY: &[&str] = &[
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    "x-auth-request-access-token",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x_auth_request_user",
    "x_auth_request_email",
    "x_auth_request_preferred_username",
    "x_auth_request_groups",
    "x_auth_request_access_token",
    "x_forwarded_user",
    "x_forwarded_email",
    "x_forwarded_preferred_username",
    "x_forwarded_groups",
    "x_forwarded_access_token",
];

/// The subset of [`ALL_IDENTITY`] that an allow response must name for
/// removal, given which headers it sets itself (those overwrite the client's).
/// Computed once per configuration.
pub(crate) fn removal_list(config: &Config) -> &'static [&'static str] {
    let sets_xauth = config.set_xauthrequest;
    let sets_token = config.pass_access_token;
    let list: Vec<&'static str> = ALL_IDENTITY
        .iter()
        .copied()
        .filter(|h| match *h {
            "x-auth-request-user"
            | "x-auth-request-email"
            | "x-auth-request-preferred-username"
            | "x-auth-request-groups" => !sets_xauth,
            "x-auth-request-access-token" => !sets_token,
            _ => true,
        })
        .collect();
    // One small list per engine, kept for the process lifetime.
    Box::leak(list.into_boxed_slice())
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// The upstream headers for an allowed session.
pub(crate) fn identity_headers(config: &Config, session: &Session) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(6);
    if config.set_xauthrequest {
        // The user header is always set, so a client copy never survives.
        h.insert(
            X_AUTH_REQUEST_USER,
            value(session.user()).unwrap_or(HeaderValue::from_static("")),
        );
        h.insert(
            X_AUTH_REQUEST_EMAIL,
            session
                .email
                .as_deref()
                .and_then(value)
                .unwrap_or(HeaderValue::from_static("")),
        );
        h.insert(
            X_AUTH_REQUEST_PREFERRED_USERNAME,
            session
                .preferred_username
                .as_deref()
                .and_then(value)
                .unwrap_or(HeaderValue::from_static("")),
        );
        h.insert(
            X_AUTH_REQUEST_GROUPS,
            value(&session.groups.join(",")).unwrap_or(HeaderValue::from_static("")),
        );
    }
    if config.pass_access_token {
        h.insert(
            X_AUTH_REQUEST_ACCESS_TOKEN,
            session
                .access_token
                .as_deref()
                .and_then(value)
                .unwrap_or(HeaderValue::from_static("")),
        );
    }
    if config.set_authorization_header
        && let Some(v) = session
            .id_token
            .as_deref()
            .and_then(|t| value(&format!("Bearer {t}")))
    {
        h.insert(header::AUTHORIZATION, v);
    }
    h
}
