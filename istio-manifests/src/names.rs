//! Name rules and matching, as Kubernetes and Istio apply them.

/// A DNS-1123 label: lower-case alphanumerics and `-`, starting and ending alphanumeric, at most
/// 63 characters (namespaces, most label-like names).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters (the names of
/// most objects: Deployments, ConfigMaps, Istio resources).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A DNS-1035 label: a DNS-1123 label that starts with a letter (Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Istio's string match in `AuthorizationPolicy` fields (`hosts`, `paths`, `notPaths`, ...):
/// exact, prefix (`abc*`), suffix (`*abc`) or presence (`*`). Hosts compare case-insensitively.
pub fn istio_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (pattern, value) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), value.to_owned())
    };
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    pattern == value
}

/// The adapter's endpoints under its `--proxy-prefix` (`/oauth2`), as the engine answers them
/// (the callback first).
pub use oidc_core::endpoints::ENDPOINTS;

/// The first of the adapter's endpoints (the callback path first, then `<prefix>/start`, ...)
/// that an `AuthorizationPolicy` path pattern (`notPaths` syntax) covers, if any.
pub fn covered_endpoint(pattern: &str, prefix: &str, callback: &str) -> Option<String> {
    let prefix = prefix.trim_end_matches('/');
    std::iter::once(callback.to_owned())
        .chain(ENDPOINTS.iter().map(|e| format!("{prefix}/{e}")))
        .find(|path| istio_match(pattern, path, false))
}

/// Whether two `Gateway`/`VirtualService` host names can meet: equal, or one is `*`, or a
/// wildcard (`*.example.com`) covers the other.
pub fn hosts_meet(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == "*" || b == "*" || a == b {
        return true;
    }
    let covers = |wild: &str, host: &str| {
        wild.strip_prefix('*')
            .is_some_and(|suffix| host.ends_with(suffix) && host.len() > suffix.len())
    };
    covers(&a, &b) || covers(&b, &a)
}

/// A `Gateway` server host (`[namespace/]host`) as `(namespace part, host)`; the namespace part
/// is `*` when absent.
pub fn split_gateway_host(entry: &str) -> (&str, &str) {
    entry.split_once('/').unwrap_or(("*", entry))
}

/// A Kubernetes service host as Istio resolves it for a resource in `default_ns`:
/// `name`, `name.ns`, `name.ns.svc`, `name.ns.svc.cluster.local`, or `ns/host` (mesh config).
/// `None` for hosts outside the cluster.
pub fn service_of(host: &str, default_ns: Option<&str>) -> Option<(String, Option<String>)> {
    let (ns_part, host) = match host.split_once('/') {
        Some((ns, h)) => (Some(ns), h),
        None => (None, host),
    };
    let host = host.to_ascii_lowercase();
    let host = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))
        .unwrap_or(&host);
    let mut parts = host.split('.');
    let name = parts.next()?.to_owned();
    let ns = match (parts.next(), parts.next()) {
        (None, _) => ns_part.or(default_ns).map(str::to_owned),
        (Some(ns), None) => Some(ns.to_owned()),
        (Some(_), Some(_)) => return None,
    };
    Some((name, ns))
}

/// Whether a cookie `Domain` attribute value lets the cookie be set by and sent to `host`.
pub fn cookie_domain_covers(domain: &str, host: &str) -> bool {
    let domain = domain.trim().trim_start_matches('.').to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_subdomain("nginx-oauth2-policy"));
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("nginx=oauth2-policy"));
        assert!(!is_dns1123_subdomain("Nginx"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain(""));
        assert!(is_dns1035_label("svc-1"));
        assert!(!is_dns1035_label("1svc"));
        assert!(!is_dns1035_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }

    #[test]
    fn endpoints_covered_by_a_pattern() {
        let covered = |p: &str| covered_endpoint(p, "/oauth2", "/oauth2/callback");
        assert_eq!(covered("/oauth2/*").as_deref(), Some("/oauth2/callback"));
        assert_eq!(covered("*").as_deref(), Some("/oauth2/callback"));
        assert_eq!(covered("/oauth*").as_deref(), Some("/oauth2/callback"));
        assert_eq!(
            covered("/oauth2/userinfo").as_deref(),
            Some("/oauth2/userinfo")
        );
        assert_eq!(covered("*/sign_out").as_deref(), Some("/oauth2/sign_out"));
        assert_eq!(
            covered("/oauth2/sign_*").as_deref(),
            Some("/oauth2/sign_in")
        );
        for fine in [
            "/oauth2",
            "/oauth2x/*",
            "/auth/*",
            "/healthz",
            "*.png",
            "/public/*",
        ] {
            assert_eq!(covered(fine), None, "{fine}");
        }
        // A callback outside the prefix (--redirect-url) counts too.
        assert_eq!(
            covered_endpoint("/cb", "/oauth2/", "/cb").as_deref(),
            Some("/cb")
        );
    }

    #[test]
    fn istio_string_match() {
        assert!(istio_match("/oauth2/*", "/oauth2/callback", false));
        assert!(!istio_match("/auth/*", "/oauth2/callback", false));
        assert!(istio_match("*", "x", false));
        assert!(istio_match("*/callback", "/oauth2/callback", false));
        assert!(istio_match("Nginx.Example.com", "nginx.example.com", true));
        assert!(!istio_match("/OAUTH2/*", "/oauth2/callback", false));
        assert!(istio_match(
            "nginx.example.com:*",
            "nginx.example.com:8443",
            true
        ));
    }

    #[test]
    fn host_meeting() {
        assert!(hosts_meet("*", "nginx.example.com"));
        assert!(hosts_meet("*.example.com", "nginx.example.com"));
        assert!(hosts_meet("nginx.example.com", "*.example.com"));
        assert!(!hosts_meet(
            "nginx.dev.3d-excellence.com",
            "nginx.example.com"
        ));
        assert!(!hosts_meet("*.example.com", "example.com"));
        assert_eq!(split_gateway_host("ns/h"), ("ns", "h"));
        assert_eq!(split_gateway_host("h"), ("*", "h"));
    }

    #[test]
    fn service_hosts() {
        let s = |n: &str, ns: Option<&str>| Some((n.to_owned(), ns.map(str::to_owned)));
        assert_eq!(
            service_of("nginx-oauth2-proxy.nginx.svc.cluster.local", None),
            s("nginx-oauth2-proxy", Some("nginx"))
        );
        assert_eq!(service_of("a.b", None), s("a", Some("b")));
        assert_eq!(service_of("a.b.svc", None), s("a", Some("b")));
        assert_eq!(service_of("a", Some("x")), s("a", Some("x")));
        assert_eq!(service_of("x/a", None), s("a", Some("x")));
        assert_eq!(service_of("www.google.com", None), None);
    }

    #[test]
    fn cookie_domains() {
        assert!(cookie_domain_covers(".example.com", "nginx.example.com"));
        assert!(cookie_domain_covers("example.com", "example.com"));
        assert!(!cookie_domain_covers(
            ".3d-excellence.com",
            "nginx.example.com"
        ));
        assert!(!cookie_domain_covers("ample.com", "example.com"));
    }
}
