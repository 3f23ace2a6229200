//! Facts about an incoming request: is it a navigation, what is its public URL.

use http::{Method, header, request::Parts};

use crate::http::trusted_proxy::TrustedProxies;

/// Envoy's `x-request-id` (any request id a proxy in front set), for the log lines of one
/// request: `""` when absent or not visible ASCII, at most 128 bytes (it comes from the
/// request; a proxy usually sets it, but the log must stay one plain line whatever it holds).
pub(crate) fn request_id(parts: &Parts) -> &str {
    parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("")
}

/// `true` when a browser is navigating (a redirect to the login page makes
/// sense); `false` for API calls, which get 401 instead: XHR/fetch cannot
/// follow a cross-origin redirect to the identity provider.
pub(crate) fn is_navigation(parts: &Parts) -> bool {
    let h = &parts.headers;
    if let Some(mode) = h.get("sec-fetch-mode") {
        return mode.as_bytes().eq_ignore_ascii_case(b"navigate");
    }
    if h.contains_key("x-requested-with") {
        return false;
    }
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        return false;
    }
    match h.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(accept) => {
            let accept = accept.to_ascii_lowercase();
            !accept.contains("application/json") || accept.contains("text/html")
        }
        None => true,
    }
}

/// The host the browser used, for building URLs it is sent to: a trusted proxy's
/// `X-Forwarded-Host` (only with `--reverse-proxy`, see [`TrustedProxies`]), else
/// [`routed_host`].
pub(crate) fn public_host<'p>(parts: &'p Parts, trusted: &TrustedProxies) -> Option<&'p str> {
    trusted
        .forwarded_for(parts)
        .and_then(|f| f.host)
        .or_else(|| routed_host(parts))
}

/// The host Envoy routes by: `Host`, else the URI's authority (HTTP/2's `:authority`). What
/// host rules judge: a client cannot make it differ from where its request goes, unlike
/// `X-Forwarded-Host`.
pub(crate) fn routed_host(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

/// The scheme the browser used: a trusted proxy's `X-Forwarded-Proto`, else the URI's, else
/// http.
pub(crate) fn public_scheme(parts: &Parts, trusted: &TrustedProxies) -> &'static str {
    match trusted.forwarded_for(parts).and_then(|f| f.proto) {
        Some(proto) => proto,
        None if parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS) => "https",
        None => "http",
    }
}

/// A trusted proxy's `X-Forwarded-Uri`: the target of the request being authorized by
/// `<prefix>/auth` (nginx `auth_request`). `None` when absent or not believed.
pub(crate) fn forwarded_uri<'p>(parts: &'p Parts, trusted: &TrustedProxies) -> Option<&'p str> {
    trusted.forwarded_for(parts).and_then(|f| f.uri)
}

/// A query parameter, percent-decoded.
pub(crate) fn query_param(parts: &Parts, name: &str) -> Option<String> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_plain_and_short() {
        let parts = |id: &str| {
            let mut p = http::Request::get("/").body(()).unwrap().into_parts().0;
            p.headers.insert("x-request-id", id.parse().unwrap());
            p
        };
        assert_eq!(request_id(&parts("5d0c1f0e-8a4b")), "5d0c1f0e-8a4b");
        assert_eq!(request_id(&parts("a b")), "");
        assert_eq!(request_id(&parts(&"x".repeat(129))), "");
        assert_eq!(
            request_id(&http::Request::get("/").body(()).unwrap().into_parts().0),
            ""
        );
    }
    use crate::http::trusted_proxy::PeerAddr;
    use http::Request;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn navigation_rules() {
        assert!(is_navigation(&parts("GET", &[])));
        assert!(is_navigation(&parts(
            "GET",
            &[("accept", "text/html,application/xhtml+xml,*/*")]
        )));
        assert!(is_navigation(&parts(
            "GET",
            &[
                ("sec-fetch-mode", "navigate"),
                ("accept", "application/json")
            ]
        )));
        assert!(!is_navigation(&parts(
            "GET",
            &[("accept", "application/json")]
        )));
        assert!(!is_navigation(&parts("GET", &[("sec-fetch-mode", "cors")])));
        assert!(!is_navigation(&parts(
            "GET",
            &[("x-requested-with", "XMLHttpRequest")]
        )));
        assert!(!is_navigation(&parts("POST", &[])));
    }

    #[test]
    fn forwarded_host_and_scheme() {
        let everyone = TrustedProxies::all();
        let p = parts(
            "GET",
            &[
                ("host", "internal:4180"),
                ("x-forwarded-host", "app.example.com"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(public_host(&p, &everyone), Some("app.example.com"));
        assert_eq!(public_scheme(&p, &everyone), "https");
        let p = parts("GET", &[("host", "app.example.com")]);
        assert_eq!(public_host(&p, &everyone), Some("app.example.com"));
        assert_eq!(public_scheme(&p, &everyone), "http");
        // A malformed forwarded host is ignored.
        let p = parts(
            "GET",
            &[("host", "app.example.com"), ("x-forwarded-host", "a b/c")],
        );
        assert_eq!(public_host(&p, &everyone), Some("app.example.com"));
    }

    #[test]
    fn forwarded_headers_are_believed_only_from_trusted_peers() {
        let envoy = TrustedProxies::new(&["10.0.0.0/8".to_owned()]).unwrap();
        let mut p = parts(
            "GET",
            &[
                ("host", "app.example.com"),
                ("x-forwarded-host", "evil.example.net"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-uri", "/admin"),
            ],
        );
        // No peer known: not trusted when a list is given.
        assert_eq!(public_host(&p, &envoy), Some("app.example.com"));
        assert_eq!(public_scheme(&p, &envoy), "http");
        assert_eq!(forwarded_uri(&p, &envoy), None);
        p.extensions.insert(PeerAddr("192.0.2.1".parse().unwrap()));
        assert_eq!(public_host(&p, &envoy), Some("app.example.com"));
        assert_eq!(forwarded_uri(&p, &envoy), None);
        p.extensions.insert(PeerAddr("10.1.2.3".parse().unwrap()));
        assert_eq!(public_host(&p, &envoy), Some("evil.example.net"));
        assert_eq!(public_scheme(&p, &envoy), "https");
        assert_eq!(forwarded_uri(&p, &envoy), Some("/admin"));
        // The default trusts every peer, as oauth2-proxy does.
        let everyone = TrustedProxies::all();
        p.extensions.insert(PeerAddr("192.0.2.1".parse().unwrap()));
        assert_eq!(public_host(&p, &everyone), Some("evil.example.net"));
    }

    #[test]
    fn the_routed_host_ignores_forwarded_headers() {
        let mut p = parts(
            "GET",
            &[
                ("host", "reports.example.com"),
                ("x-forwarded-host", "www.example.com"),
            ],
        );
        assert_eq!(routed_host(&p), Some("reports.example.com"));
        assert_eq!(
            public_host(&p, &TrustedProxies::all()),
            Some("www.example.com")
        );
        assert_eq!(
            public_host(&p, &TrustedProxies::none()),
            Some("reports.example.com")
        );
        p.headers.remove("host");
        assert_eq!(routed_host(&p), None);
    }
}
