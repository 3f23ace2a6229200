//! Cookie name prefixes (`__Host-`, `__Secure-`), checked when the configuration is built.
//!
//! Browsers only store a cookie whose name starts with `__Secure-` when it is `Secure`
//! (and set over https), and one whose name starts with `__Host-` when it is also
//! `Path=/` and has no `Domain` attribute (RFC 6265bis §4.1.3). A `__Host-` session cookie
//! therefore cannot be set by a sibling subdomain nor scoped to a sub-path: a stolen
//! subdomain cannot plant or overwrite it. Current browsers match the prefixes without
//! regard to case, so `__host-` is held to the same rules.
//!
//! Every cookie the engine writes is named after the cookie name (`NAME`, `NAME_0`,
//! `NAME_1`, ..., `NAME_csrf_...`), so the prefix carries over to all of them. With a
//! prefix the browser would silently drop a cookie that breaks these rules and every login
//! would loop; [`validate_cookie_prefix`] refuses such a configuration at start-up instead.

use crate::config::setting::Setting;

/// A cookie name prefix that browsers enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookiePrefix {
    /// `__Host-`: Secure, `Path=/`, no `Domain`.
    Host,
    /// `__Secure-`: Secure.
    Secure,
}

impl CookiePrefix {
    /// The prefix's canonical spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CookiePrefix::Host => "__Host-",
            CookiePrefix::Secure => "__Secure-",
        }
    }

    /// The prefix `name` starts with (compared without regard to ASCII case).
    #[must_use]
    pub fn of(name: &str) -> Option<Self> {
        let starts = |prefix: &str| {
            name.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        };
        if starts("__Host-") {
            Some(CookiePrefix::Host)
        } else if starts("__Secure-") {
            Some(CookiePrefix::Secure)
        } else {
            None
        }
    }
}

/// A cookie configuration that a browser would refuse because of the name's prefix. Its
/// message says why, without naming settings; [`CookiePrefixError::setting`] is the one to
/// change and [`CookiePrefixError::required`] its required value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookiePrefixError {
    /// The prefix needs a `Secure` cookie.
    #[error(
        "the cookie name {name:?} starts with {}, which browsers accept only on Secure cookies set over https; for plain-http testing use a name without the prefix",
        prefix.as_str()
    )]
    NotSecure {
        /// The cookie name.
        name: String,
        /// Its prefix.
        prefix: CookiePrefix,
    },
    /// `__Host-` needs `Path=/`.
    #[error(
        "the cookie name {name:?} starts with __Host-, which browsers accept only with Path=/ (not {path:?}); to keep the path, use the __Secure- prefix"
    )]
    HostPath {
        /// The cookie name.
        name: String,
        /// The path given.
        path: String,
    },
    /// `__Host-` needs a host-only cookie (no `Domain`).
    #[error(
        "the cookie name {name:?} starts with __Host-, which browsers accept only without a Domain attribute (host-only), not with {domains}; to share the cookie across subdomains, use the __Secure- prefix"
    )]
    HostDomain {
        /// The cookie name.
        name: String,
        /// The domains given, comma-separated.
        domains: String,
    },
}

impl CookiePrefixError {
    /// The setting to change: [`Setting::CookieSecure`], [`Setting::CookiePath`] or
    /// [`Setting::CookieDomains`].
    #[must_use]
    pub fn setting(&self) -> Setting {
        match self {
            Self::NotSecure { .. } => Setting::CookieSecure,
            Self::HostPath { .. } => Setting::CookiePath,
            Self::HostDomain { .. } => Setting::CookieDomains,
        }
    }

    /// What the setting must be: `true`, `/` or `empty`.
    #[must_use]
    pub fn required(&self) -> &'static str {
        match self {
            Self::NotSecure { .. } => "true",
            Self::HostPath { .. } => "/",
            Self::HostDomain { .. } => "empty",
        }
    }
}

/// Checks the cookie attributes against the prefix of the cookie `name`: `__Host-` needs
/// `secure`, `path` `/` and no `domains`; `__Secure-` needs `secure`. Names without a
/// prefix always pass.
pub fn validate_cookie_prefix(
    name: &str,
    secure: bool,
    path: &str,
    domains: &[String],
) -> Result<(), CookiePrefixError> {
    let Some(prefix) = CookiePrefix::of(name) else {
        return Ok(());
    };
    if !secure {
        return Err(CookiePrefixError::NotSecure {
            name: name.to_owned(),
            prefix,
        });
    }
    if prefix == CookiePrefix::Host {
        if path != "/" {
            return Err(CookiePrefixError::HostPath {
                name: name.to_owned(),
                path: path.to_owned(),
            });
        }
        let domains: Vec<&str> = domains
            .iter()
            .map(|d| d.trim())
            .filter(|d| !d.is_empty())
            .collect();
        if !domains.is_empty() {
            return Err(CookiePrefixError::HostDomain {
                name: name.to_owned(),
                domains: domains.join(","),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error as its parts say it: the setting, what it must be, then the reason.
    fn check(name: &str, secure: bool, path: &str, domains: &[&str]) -> Result<(), String> {
        let domains: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
        validate_cookie_prefix(name, secure, path, &domains).map_err(|e| {
            format!(
                "{} must be {} with this cookie.name: {e}",
                e.setting().name(),
                e.required()
            )
        })
    }

    #[test]
    fn prefixes() {
        assert_eq!(CookiePrefix::of("__Host-auth"), Some(CookiePrefix::Host));
        assert_eq!(CookiePrefix::of("__host-auth"), Some(CookiePrefix::Host));
        assert_eq!(
            CookiePrefix::of("__Secure-auth"),
            Some(CookiePrefix::Secure)
        );
        assert_eq!(CookiePrefix::of("__SECURE-x"), Some(CookiePrefix::Secure));
        assert_eq!(CookiePrefix::of("_oauth2_proxy"), None);
        assert_eq!(CookiePrefix::of("__Host"), None);
        assert_eq!(CookiePrefix::of("é__Host-"), None);
        assert_eq!(CookiePrefix::of(""), None);
    }

    #[test]
    fn unprefixed_names_always_pass() {
        assert_eq!(
            check("_oauth2_proxy", false, "/app", &[".example.com"]),
            Ok(())
        );
    }

    #[test]
    fn host_prefix_needs_secure_root_path_and_no_domain() {
        assert_eq!(check("__Host-auth", true, "/", &[]), Ok(()));
        assert_eq!(check("__Host-auth", true, "/", &["", " "]), Ok(()));
        let e = check("__Host-auth", false, "/", &[]).unwrap_err();
        assert!(
            e.starts_with("cookie.secure must be true with this cookie.name: "),
            "{e}"
        );
        let e = check("__Host-auth", true, "/app", &[]).unwrap_err();
        assert!(
            e.starts_with("cookie.path must be / with this cookie.name: ")
                && e.contains("\"/app\""),
            "{e}"
        );
        let e = check("__host-auth", true, "/", &[".example.com"]).unwrap_err();
        assert!(
            e.starts_with("cookie.domains must be empty with this cookie.name: ")
                && e.contains(".example.com"),
            "{e}"
        );
    }

    #[test]
    fn secure_prefix_needs_secure_only() {
        assert_eq!(
            check("__Secure-auth", true, "/app", &[".example.com"]),
            Ok(())
        );
        let e = check("__Secure-auth", false, "/", &[]).unwrap_err();
        assert!(e.starts_with("cookie.secure "), "{e}");
    }

    #[test]
    fn error_parts() {
        let e = validate_cookie_prefix("__Host-a", true, "/x", &[]).unwrap_err();
        assert_eq!(e.setting(), Setting::CookiePath);
        assert_eq!(e.required(), "/");
        assert!(!e.to_string().contains("--"), "{e}");
        assert!(!e.to_string().contains("cookie.path"), "{e}");
    }
}
