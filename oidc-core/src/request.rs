//! Facts about an incoming request: is it a navigation, what is its public URL.

use http::{HeaderMap, Method, header, request::Parts};

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

/// The host the browser used: `X-Forwarded-Host`, else `Host`, else the URI's authority.
pub(crate) fn host(parts: &Parts) -> Option<&str> {
    let from_header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or(v).trim())
            .filter(|v| !v.is_empty())
    };
    from_header("x-forwarded-host")
        .or_else(|| from_header("host"))
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

/// The scheme the browser used: `X-Forwarded-Proto`, else the URI's, else http.
pub(crate) fn scheme(headers: &HeaderMap, uri: &http::Uri) -> &'static str {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or(v).trim());
    match forwarded.or_else(|| uri.scheme_str()) {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
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
        let p = parts(
            "GET",
            &[
                ("host", "internal:4180"),
                ("x-forwarded-host", "app.example.com"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(host(&p), Some("app.example.com"));
        assert_eq!(scheme(&p.headers, &p.uri), "https");
        let p = parts("GET", &[("host", "app.example.com")]);
        assert_eq!(scheme(&p.headers, &p.uri), "http");
    }
}
