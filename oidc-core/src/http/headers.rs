//! Identity headers set on allowed requests, and the client copies that must go.

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::config::builder::Config;
use crate::identity::principal::Principal;
use crate::identity::tokens::{AccessToken, IdToken};
use crate::session::model::Session;

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

/// The identity headers the gate owns, in their canonical (`-`) spelling.
const IDENTITY: [&str; 10] = [
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
];

/// Every spelling of `name` with each `-` written as `-` or `_`, canonical first.
///
/// Envoy passes `_` in header names unless the gateway rejects them, and many
/// servers (CGI, WSGI, PHP, Rack) read `X-Auth_Request-User` as the very same
/// variable as `X-Auth-Request-User`: removing only the all-`-` and all-`_`
/// forms would let a mixed one through.
fn spellings(name: &'static str) -> impl Iterator<Item = &'static str> {
    let dashes: Vec<usize> = name.match_indices('-').map(|(i, _)| i).collect();
    (0u32..1 << dashes.len()).map(move |mask| {
        if mask == 0 {
            return name;
        }
        let mut bytes = name.as_bytes().to_vec();
        for (bit, &i) in dashes.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                bytes[i] = b'_';
            }
        }
        // Built once per process (the lists below are statics): never freed on purpose.
        let spelled: &'static str = String::from_utf8(bytes).unwrap_or_default().leak();
        spelled
    })
}

/// [`all_identity`] without the canonical names `keep_canonical` refuses.
fn spelled(keep_canonical: impl Fn(&str) -> bool) -> Box<[&'static str]> {
    all_identity()
        .iter()
        .copied()
        .filter(|s| !IDENTITY.contains(s) || keep_canonical(s))
        .collect()
}

/// Every identity header a client could forge, in every spelling (each `-` as `-`
/// or `_`; header names are case-insensitive, so lower case covers every case).
/// Requests let through without a login (skip-auth routes) lose all of them.
#[must_use]
pub fn all_identity() -> &'static [&'static str] {
    static ALL: LazyLock<Box<[&'static str]>> =
        LazyLock::new(|| IDENTITY.into_iter().flat_map(spellings).collect());
    &ALL
}

/// Whether `name` (lower case, as [`http::HeaderName`] holds it) is an identity header
/// in any spelling: what an in-process transport strips from a request by looking at
/// the few names it has instead of removing every spelling one by one.
#[must_use]
pub fn is_identity(name: &str) -> bool {
    let same = |canonical: &str| {
        canonical.len() == name.len()
            && canonical
                .bytes()
                .zip(name.bytes())
                .all(|(c, n)| c == n || (c == b'-' && n == b'_'))
    };
    (name.starts_with("x-") || name.starts_with("x_")) && IDENTITY.iter().any(|c| same(c))
}

/// Removes every identity header from `headers`, in any spelling.
pub fn strip_identity(headers: &mut HeaderMap) {
    // Nearly always none: look before collecting anything.
    if !headers.keys().any(|n| is_identity(n.as_str())) {
        return;
    }
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_identity(n.as_str()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// The client headers an allowed request must lose before the upstream sees it: identity
/// headers the engine does not set itself, in every spelling (those it sets overwrite the
/// client's canonical copy; the other spellings always go). One list per combination of
/// settings, built once per process; `Copy`, so an allow carries it for free.
#[derive(Clone, Copy)]
pub struct HeadersToRemove {
    names: &'static [&'static str],
    value: Option<&'static HeaderValue>,
}

impl HeadersToRemove {
    /// No header to remove (an allow built by hand).
    pub const NONE: Self = Self {
        names: &[],
        value: None,
    };

    /// The header names, lower-case.
    #[must_use]
    pub fn names(&self) -> &'static [&'static str] {
        self.names
    }

    /// The names joined with `,` as one header value (Envoy's
    /// `x-envoy-auth-headers-to-remove`), built once; `None` when there are none.
    #[must_use]
    pub fn header_value(&self) -> Option<&'static HeaderValue> {
        self.value
    }
}

impl std::fmt::Debug for HeadersToRemove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names).finish()
    }
}

/// The subset of [`all_identity`] that an allow response must name for removal, given which
/// headers it sets itself.
pub(crate) fn removal_list(config: &Config) -> HeadersToRemove {
    fn sets(name: &str, xauth: bool, token: bool) -> bool {
        match name {
            "x-auth-request-user"
            | "x-auth-request-email"
            | "x-auth-request-preferred-username"
            | "x-auth-request-groups" => xauth,
            "x-auth-request-access-token" => token,
            _ => false,
        }
    }
    type List = (Box<[&'static str]>, Option<HeaderValue>);
    fn list(keep: impl Fn(&str) -> bool) -> List {
        let names = spelled(keep);
        let value = (!names.is_empty())
            .then(|| HeaderValue::from_str(&names.join(",")).ok())
            .flatten();
        (names, value)
    }
    static LISTS: [LazyLock<List>; 4] = [
        LazyLock::new(|| list(|n| !sets(n, false, false))),
        LazyLock::new(|| list(|n| !sets(n, true, false))),
        LazyLock::new(|| list(|n| !sets(n, false, true))),
        LazyLock::new(|| list(|n| !sets(n, true, true))),
    ];
    let index = usize::from(config.set_xauthrequest) | usize::from(config.pass_access_token) << 1;
    let (names, value): &'static List = &LISTS[index];
    HeadersToRemove {
        names,
        value: value.as_ref(),
    }
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// A header value holding a token: marked sensitive, so `Debug` shows `Sensitive` (and
/// HTTP/2 never indexes it).
fn secret(s: &str) -> Option<HeaderValue> {
    let mut v = value(s)?;
    v.set_sensitive(true);
    Some(v)
}

/// The upstream headers for an allowed session.
pub(crate) fn identity_headers(config: &Config, session: &Session) -> HeaderMap {
    headers_for(
        config,
        &session.principal,
        session.access_token.as_ref().map(AccessToken::expose),
        session.id_token.as_ref().map(IdToken::expose),
    )
}

/// The upstream headers for `who`: the identity headers (`--set-xauthrequest`), the access
/// token (`--pass-access-token`) and the ID token as `Authorization: Bearer`
/// (`--set-authorization-header`). A bearer token is passed as both tokens, as
/// oauth2-proxy does for its JWT sessions.
pub(crate) fn headers_for(
    config: &Config,
    who: &Principal,
    access_token: Option<&str>,
    id_token: Option<&str>,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(6);
    if config.set_xauthrequest {
        // The user header is always set, so a client copy never survives.
        h.insert(
            X_AUTH_REQUEST_USER,
            value(&who.subject).unwrap_or(HeaderValue::from_static("")),
        );
        h.insert(
            X_AUTH_REQUEST_EMAIL,
            who.email
                .as_deref()
                .and_then(value)
                .unwrap_or(HeaderValue::from_static("")),
        );
        h.insert(
            X_AUTH_REQUEST_PREFERRED_USERNAME,
            who.preferred_username
                .as_deref()
                .and_then(value)
                .unwrap_or(HeaderValue::from_static("")),
        );
        h.insert(
            X_AUTH_REQUEST_GROUPS,
            value(&who.groups.join(",")).unwrap_or(HeaderValue::from_static("")),
        );
    }
    if config.pass_access_token {
        h.insert(
            X_AUTH_REQUEST_ACCESS_TOKEN,
            access_token
                .and_then(secret)
                .unwrap_or(HeaderValue::from_static("")),
        );
    }
    if config.set_authorization_header
        && let Some(v) = id_token.and_then(|t| secret(&format!("Bearer {t}")))
    {
        h.insert(header::AUTHORIZATION, v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::tokens::RefreshToken;

    #[test]
    fn every_spelling_is_listed_and_recognised() {
        let all = all_identity();
        // 2^(number of dashes) spellings of each name.
        let expected: usize = IDENTITY.iter().map(|n| 1 << n.matches('-').count()).sum();
        assert_eq!(all.len(), expected);
        for mixed in [
            "x-auth_request-user",
            "x_auth-request_email",
            "x-auth-request-preferred_username",
            "x_forwarded-access_token",
        ] {
            assert!(all.contains(&mixed), "{mixed} not listed");
            assert!(is_identity(mixed), "{mixed} not recognised");
        }
        assert!(!is_identity("x-auth-request-userx"));
        assert!(!is_identity("x-request-id"));
        assert!(!is_identity("authorization"));
    }

    #[test]
    fn removal_lists_keep_only_what_the_gate_sets() {
        let c = Config::builder("https://idp.example.com/realms/x", "app")
            .cookie_secret("0123456789abcdef")
            .set_xauthrequest(true)
            .build()
            .expect("config");
        let removal = removal_list(&c);
        let list = removal.names();
        assert!(
            !list.contains(&"x-auth-request-user"),
            "set, so overwritten"
        );
        assert!(list.contains(&"x-auth_request-user"), "other spellings go");
        assert!(
            list.contains(&"x-auth-request-access-token"),
            "not set: removed"
        );
        assert_eq!(list.len(), all_identity().len() - 4);
        // The header value Envoy reads is the same list, joined once.
        let value = removal.header_value().expect("a list to remove");
        assert_eq!(value.to_str().unwrap(), list.join(","));
        assert!(std::ptr::eq(
            value,
            removal_list(&c).header_value().unwrap()
        ));
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let c = Config::builder("https://idp.example.com/realms/x", "app")
            .cookie_secret("0123456789abcdef")
            .pass_access_token(true)
            .set_authorization_header(true)
            .build()
            .expect("config");
        let session = Session {
            principal: Principal::new("alice"),
            id_token: Some(IdToken::new("id-token-secret")),
            access_token: Some(AccessToken::new("access-token-secret")),
            refresh_token: Some(RefreshToken::new("refresh-token-secret")),
            ..Session::default()
        };
        let shown = format!("{session:?} {:?}", identity_headers(&c, &session));
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("-token-secret"), "{shown}");
    }

    #[test]
    fn strip_removes_mixed_spellings_only() {
        let mut h = HeaderMap::new();
        h.insert("x-auth_request-user", HeaderValue::from_static("admin"));
        h.insert("x_forwarded_email", HeaderValue::from_static("a@b"));
        h.insert("x-request-id", HeaderValue::from_static("1"));
        strip_identity(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-request-id"));
    }
}
