//! Cookie name prefixes (`__Host-`, `__Secure-`), checked when the configuration is built.
//!
//! Browsers only store a cookie whose name starts with `__Secure-` when it is `Secure`
//! (and set over https), and one whose name starts with `__Host-` when it is also
//! `Path=/` and has no `Domain` attribute (RFC 6265bis §4.1.3). A `__Host-` session cookie
//! therefore cannot be set by a sibling subdomain nor scoped to a sub-path: a stolen
//! subdomain cannot plant or overwrite it. Current browsers match the prefixes without
//! regard to case, so `__host-` is held to the same rules.
//!
//! Every cookie the engine writes is named after `--cookie-name` (`NAME`, `NAME_0`,
//! `NAME_1`, ..., `NAME_csrf_...`), so the prefix carries over to all of them. With a
//! prefix the browser would silently drop a cookie that breaks these rules and every login
//! would loop; [`validate_cookie_prefix`] refuses such a configuration at start-up instead.

use std::fmt;

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

/// A cookie configuration that a browser would refuse because of the name's prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookiePrefixError {
    /// The flag to change (`--cookie-secure`, `--cookie-path` or `--cookie-domain`).
    pub flag: &'static str,
    /// What is wrong and how to fix it (without the flag).
    pub message: String,
}

impl fmt::Display for CookiePrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.message)
    }
}

impl std::error::Error for CookiePrefixError {}

impl From<CookiePrefixError> for String {
    fn from(e: CookiePrefixError) -> Self {
        e.to_string()
    }
}

/// Checks the cookie attributes against the prefix of the cookie `name`
/// (`--cookie-name`): `__Host-` needs `secure`, `path` `/` and no `domains`; `__Secure-`
/// needs `secure`. Names without a prefix always pass.
///
/// The error names the flag to change and how (its `Display` is `--flag: message`).
pub fn validate_cookie_prefix(
    name: &str,
    secure: bool,
    path: &str,
    domains: &[String],
) -> Result<(), CookiePrefixError> {
    let Some(prefix) = CookiePrefix::of(name) else {
        return Ok(());
    };
    let p = prefix.as_str();
    if !secure {
        return Err(CookiePrefixError {
            flag: "--cookie-secure",
            message: format!(
                "--cookie-name {name:?} starts with {p}, which browsers accept only on Secure cookies set over https; set --cookie-secure=true, or for plain-http testing use a --cookie-name without the {p} prefix"
            ),
        });
    }
    if prefix == CookiePrefix::Host {
        if path != "/" {
            return Err(CookiePrefixError {
                flag: "--cookie-path",
                message: format!(
                    "{path:?} cannot be used with --cookie-name {name:?}: browsers accept __Host- cookies only with Path=/; set --cookie-path=/, or use the __Secure- prefix to keep the path"
                ),
            });
        }
        let domains: Vec<&str> = domains
            .iter()
            .map(|d| d.trim())
            .filter(|d| !d.is_empty())
            .collect();
        if !domains.is_empty() {
            return Err(CookiePrefixError {
                flag: "--cookie-domain",
                message: format!(
                    "{} cannot be used with --cookie-name {name:?}: browsers accept __Host- cookies only without a Domain attribute (host-only); remove --cookie-domain, or use the __Secure- prefix to share the cookie across subdomains",
                    domains.join(",")
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, secure: bool, path: &str, domains: &[&str]) -> Result<(), String> {
        let domains: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
        validate_cookie_prefix(name, secure, path, &domains).map_err(String::from)
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
            e.starts_with("--cookie-secure: ") && e.contains("--cookie-secure=true"),
            "{e}"
        );
        let e = check("__Host-auth", true, "/app", &[]).unwrap_err();
        assert!(
            e.starts_with("--cookie-path: \"/app\"") && e.contains("--cookie-path=/"),
            "{e}"
        );
        let e = check("__host-auth", true, "/", &[".example.com"]).unwrap_err();
        assert!(
            e.starts_with("--cookie-domain: .example.com") && e.contains("remove --cookie-domain"),
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
        assert!(e.starts_with("--cookie-secure: "), "{e}");
    }

    #[test]
    fn error_parts() {
        let e = validate_cookie_prefix("__Host-a", true, "/x", &[]).unwrap_err();
        assert_eq!(e.flag, "--cookie-path");
        assert!(!e.message.starts_with("--cookie-path"));
        assert_eq!(e.to_string(), format!("--cookie-path: {}", e.message));
    }
}
