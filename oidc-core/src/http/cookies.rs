//! Reading the request's `Cookie` headers and writing `Set-Cookie` values.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};

use crate::config::builder::{CookieSettings, SameSite};

/// Iterates `(name, value)` over every `Cookie` header, without allocating.
pub(crate) fn iter(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim(), value))
        })
}

/// The first cookie called `name`.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    iter(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Builds `Set-Cookie` header values with the configured attributes.
#[derive(Clone, Debug)]
pub(crate) struct CookieWriter {
    settings: CookieSettings,
}

impl CookieWriter {
    pub(crate) fn new(settings: CookieSettings) -> Self {
        Self { settings }
    }

    /// The cookie domain for a request host: the first configured domain the
    /// host equals or ends with (oauth2-proxy's rule), else none (host-only).
    fn domain_for(&self, host: Option<&str>) -> Option<&str> {
        let host = host?.split(':').next()?;
        self.settings.domains.iter().map(String::as_str).find(|d| {
            let d = d.trim_start_matches('.');
            let (h, d) = (host.as_bytes(), d.as_bytes());
            h.eq_ignore_ascii_case(d)
                || (h.len() > d.len()
                    && h[h.len() - d.len()..].eq_ignore_ascii_case(d)
                    && h[h.len() - d.len() - 1] == b'.')
        })
    }

    /// `Set-Cookie` for `name=value` with a lifetime.
    pub(crate) fn set(
        &self,
        name: &str,
        value: &str,
        max_age: Duration,
        host: Option<&str>,
    ) -> HeaderValue {
        self.build(name, value, Some(max_age), host)
    }

    /// `Set-Cookie` that deletes `name`.
    pub(crate) fn clear(&self, name: &str, host: Option<&str>) -> HeaderValue {
        self.build(name, "", None, host)
    }

    fn build(
        &self,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
        host: Option<&str>,
    ) -> HeaderValue {
        let s = &self.settings;
        let mut out = String::with_capacity(name.len() + value.len() + 96);
        out.push_str(name);
        out.push('=');
        out.push_str(value);
        out.push_str("; Path=");
        out.push_str(&s.path);
        if let Some(domain) = self.domain_for(host) {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        match max_age {
            Some(age) => {
                out.push_str("; Max-Age=");
                out.push_str(&age.as_secs().to_string());
            }
            None => out.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        }
        if s.http_only {
            out.push_str("; HttpOnly");
        }
        if s.secure {
            out.push_str("; Secure");
        }
        match s.same_site {
            SameSite::Unset => {}
            SameSite::Lax => out.push_str("; SameSite=Lax"),
            SameSite::Strict => out.push_str("; SameSite=Strict"),
            SameSite::None => out.push_str("; SameSite=None"),
        }
        // Names and values are cookie-safe by construction (config-validated
        // names, base64url values), so this cannot fail; fall back to a
        // harmless empty cookie rather than panic.
        let mut v = HeaderValue::from_str(&out)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"));
        // A session or flow cookie is a credential: `Debug` of a response shows `Sensitive`.
        v.set_sensitive(!value.is_empty());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_several_headers_and_pairs() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=\"2\""));
        h.append(header::COOKIE, HeaderValue::from_static("c=3;d"));
        let all: Vec<_> = iter(&h).collect();
        assert_eq!(all, vec![("a", "1"), ("b", "2"), ("c", "3")]);
        assert_eq!(get(&h, "c"), Some("3"));
        assert_eq!(get(&h, "d"), None);
    }

    #[test]
    fn domain_matching() {
        let w = CookieWriter::new(CookieSettings {
            domains: vec![".example.com".into()],
            ..CookieSettings::default()
        });
        assert_eq!(
            w.domain_for(Some("nginx.example.com:8080")),
            Some(".example.com")
        );
        assert_eq!(w.domain_for(Some("example.com")), Some(".example.com"));
        assert_eq!(w.domain_for(Some("badexample.com")), None);
        assert_eq!(w.domain_for(None), None);
        let v = w.set("auth", "v", Duration::from_secs(60), Some("a.example.com"));
        let v = v.to_str().unwrap();
        assert!(
            v.starts_with("auth=v; Path=/; Domain=.example.com; Max-Age=60; HttpOnly; Secure"),
            "{v}"
        );
    }
}
