//! What the product promises Envoy: the header lists of the mesh config's
//! `envoyExtAuthzHttp` provider, its `statusOnError`, and the path prefix of the adapter's own
//! endpoints.
//!
//! The lists are written as one writes them in Istio's mesh config, so the renderer, the
//! linter, the deploy manifests and the Envoy bootstrap of the tests all use the same lists and
//! cannot drift. [`header_matchers`] renders a list as Istio does for Envoy, and
//! [`header_allowed`] says whether a header name passes it as Envoy will apply it.

use serde_json::{Value, json};

/// Istio `includeRequestHeadersInCheck`: the client request headers Envoy copies into the HTTP
/// check request (besides method, path and Host, which it always sends). Without `cookie` the
/// adapter cannot see the session; without `x-forwarded-proto` (which the gateway sets itself
/// from the connection) it cannot build `https` redirect URLs behind a TLS-terminating gateway.
/// `accept`, `sec-fetch-mode` and `x-requested-with` tell a browser navigation (302 to the
/// login) from an API call (401), which cannot follow a cross-origin redirect.
///
/// Never `x-forwarded-host`: the gateway passes a client's value untouched, and routes by
/// `Host`, which the check carries anyway (`istio --check` reports it).
pub const INCLUDE_REQUEST_HEADERS_IN_CHECK: &[&str] = &[
    "authorization",
    "cookie",
    "x-forwarded-proto",
    "accept",
    "sec-fetch-mode",
    "x-requested-with",
];

/// Istio `headersToUpstreamOnAllow`: headers of a 200 check response that Envoy sets on the
/// upstream request, overwriting the client's. A trailing `*` is a prefix match.
pub const HEADERS_TO_UPSTREAM_ON_ALLOW: &[&str] = &["authorization", "x-auth-request-*"];

/// Istio `headersToDownstreamOnAllow`: headers of a 200 check response that Envoy adds to the
/// response to the client (a refreshed session cookie).
pub const HEADERS_TO_DOWNSTREAM_ON_ALLOW: &[&str] = &["set-cookie"];

/// Istio `headersToDownstreamOnDeny`: headers of a non-200 check response that Envoy passes to
/// the client (besides `Location` and `WWW-Authenticate`, which it always passes).
pub const HEADERS_TO_DOWNSTREAM_ON_DENY: &[&str] = &["content-type", "set-cookie"];

/// Istio's default `statusOnError`: the status Envoy answers when the authz server cannot be
/// reached or errs.
pub const STATUS_ON_ERROR: u16 = 403;

/// The adapter's back-channel logout endpoint under its prefix (`/oauth2/backchannel-logout`):
/// the provider POSTs its signed logout token there, so the gateway routes a `POST` of exactly
/// that path to the adapter's HTTP port without ext_authz (a check carries no body).
pub use oidc_core::endpoints::BACKCHANNEL_LOGOUT;

/// The adapter's default `--proxy-prefix`, as a route prefix: the path prefix of its own
/// endpoints (`/oauth2/start`, `/oauth2/callback`, `/oauth2/userinfo`, ...).
pub const ADAPTER_PREFIX: &str = "/oauth2/";

/// Istio's rendering of a mesh-config header list as an Envoy `ListStringMatcher`: each entry
/// case-insensitive, `prefix` for `name*`, `suffix` for `*name`, `exact` otherwise.
#[must_use]
pub fn header_matchers(headers: &[&str]) -> Value {
    let patterns: Vec<Value> = headers
        .iter()
        .map(|header| {
            if let Some(suffix) = header.strip_prefix('*') {
                json!({ "suffix": suffix, "ignore_case": true })
            } else if let Some(prefix) = header.strip_suffix('*') {
                json!({ "prefix": prefix, "ignore_case": true })
            } else {
                json!({ "exact": header, "ignore_case": true })
            }
        })
        .collect();
    json!({ "patterns": patterns })
}

/// Whether Envoy lets header `name` through a list rendered by [`header_matchers`] (for
/// example, whether an identity header the adapter sets on allow reaches the upstream).
#[must_use]
pub fn header_allowed(headers: &[&str], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    headers.iter().any(|header| {
        let header = header.to_ascii_lowercase();
        if let Some(suffix) = header.strip_prefix('*') {
            name.ends_with(suffix)
        } else if let Some(prefix) = header.strip_suffix('*') {
            name.starts_with(prefix)
        } else {
            name == header
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_match_like_envoy() {
        assert!(header_allowed(
            HEADERS_TO_UPSTREAM_ON_ALLOW,
            "X-Auth-Request-User"
        ));
        assert!(header_allowed(
            HEADERS_TO_UPSTREAM_ON_ALLOW,
            "x-auth-request-access-token"
        ));
        assert!(header_allowed(
            HEADERS_TO_UPSTREAM_ON_ALLOW,
            "Authorization"
        ));
        assert!(!header_allowed(HEADERS_TO_UPSTREAM_ON_ALLOW, "set-cookie"));
        assert!(!header_allowed(HEADERS_TO_UPSTREAM_ON_ALLOW, "x-auth-user"));
        assert!(header_allowed(HEADERS_TO_DOWNSTREAM_ON_DENY, "Set-Cookie"));
        assert!(header_allowed(&["*-token"], "x-access-token"));
        assert_eq!(
            header_matchers(&["*-token", "x-a*", "b"]),
            json!({ "patterns": [
                { "suffix": "-token", "ignore_case": true },
                { "prefix": "x-a", "ignore_case": true },
                { "exact": "b", "ignore_case": true },
            ] })
        );
        // Cookie and the gateway's x-forwarded-proto reach the check.
        for name in ["cookie", "authorization", "x-forwarded-proto"] {
            assert!(
                header_allowed(INCLUDE_REQUEST_HEADERS_IN_CHECK, name),
                "{name}"
            );
        }
        // A client's X-Forwarded-Host does not: the adapter judges the Host Envoy routes by.
        assert!(!header_allowed(
            INCLUDE_REQUEST_HEADERS_IN_CHECK,
            "X-Forwarded-Host"
        ));
    }
}
