//! Error types. Each says what went wrong and, for configuration, what to fix.
//! None of them carries a secret or a token.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::cookie_prefix::CookiePrefixError;
use crate::config::setting::Setting;
use crate::http::trusted_proxy::TrustedProxyError;
use crate::policy::redirect::RedirectConfigError;
use crate::policy::route_rules::RouteRuleError;
use crate::policy::skip_auth::SkipAuthError;

/// How to make a cookie secret, for the messages that ask for one.
const COOKIE_SECRET_FIX: &str = "16, 24 or 32 bytes, raw or base64-encoded; generate one with: openssl rand -base64 32 | tr -- '+/' '-_'";

/// A configuration value that cannot be used. Raised at start-up, never per request.
///
/// Each variant names the [`Setting`] concerned ([`ConfigError::setting`]) and says what is
/// wrong in typed form; the error it comes from (an unreadable file's `io::Error`, a rule's
/// parse error, ...) is its [`source`](StdError::source), which `Display` does not repeat
/// (print the whole chain with [`chain`](crate::error::chain::chain)). `Display` spells settings by their library names
/// ([`Setting::name`]); a front end with other names prints
/// [`ConfigError::display_with`] instead.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting is not given.
    Missing {
        /// The setting.
        setting: Setting,
    },
    /// A value that must be an absolute http(s) URL is not one.
    NotHttpUrl {
        /// The setting.
        setting: Setting,
        /// The value given.
        value: String,
        /// Why it does not parse, when it does not (`None`: it parses, but is not http(s)
        /// or has no host).
        source: Option<url::ParseError>,
    },
    /// A secret has a length AES cannot use.
    SecretLength {
        /// The setting.
        setting: Setting,
        /// Length in bytes after decoding.
        len: usize,
    },
    /// A setting that must be given together with one that is given.
    RequiredWith {
        /// The setting that is missing.
        setting: Setting,
        /// The setting given without it.
        with: Setting,
    },
    /// Two settings that cannot be honoured together.
    Conflict {
        /// The first setting.
        setting: Setting,
        /// The setting it conflicts with.
        other: Setting,
        /// Why, and what to do (names no setting).
        why: &'static str,
    },
    /// A duration that must be shorter than another setting's.
    NotShorter {
        /// The setting.
        setting: Setting,
        /// Its value.
        value: Duration,
        /// The setting it must be shorter than.
        than: Setting,
        /// That setting's value.
        limit: Duration,
    },
    /// Any other value that cannot be used.
    Invalid {
        /// The setting.
        setting: Setting,
        /// The value (quoted) and what is wrong with it; names no setting.
        reason: String,
    },
    /// A file named by a setting cannot be read.
    Unreadable {
        /// The setting.
        setting: Setting,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file named by a setting holds no usable certificate or key.
    Pem {
        /// The setting.
        setting: Setting,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: PemError,
    },
    /// A skip-auth rule that cannot be used.
    SkipAuth(SkipAuthError),
    /// An authorization rule that cannot be used.
    RouteRule(RouteRuleError),
    /// A trusted proxy entry that cannot be used.
    TrustedProxy(TrustedProxyError),
    /// A cookie attribute that the cookie name's prefix forbids.
    CookiePrefix(CookiePrefixError),
    /// A whitelisted redirect domain that cannot be used.
    Redirect(RedirectConfigError),
    /// The HTTP client for the identity provider could not be built (TLS settings).
    HttpClient(reqwest::Error),
}

impl ConfigError {
    /// The setting the error is about; `None` for [`ConfigError::HttpClient`], which is
    /// about the provider's TLS settings together.
    #[must_use]
    pub fn setting(&self) -> Option<Setting> {
        Some(match self {
            Self::Missing { setting }
            | Self::NotHttpUrl { setting, .. }
            | Self::SecretLength { setting, .. }
            | Self::RequiredWith { setting, .. }
            | Self::Conflict { setting, .. }
            | Self::NotShorter { setting, .. }
            | Self::Invalid { setting, .. }
            | Self::Unreadable { setting, .. }
            | Self::Pem { setting, .. } => *setting,
            Self::SkipAuth(e) => e.setting(),
            Self::RouteRule(_) => Setting::AuthorizationRules,
            Self::TrustedProxy(_) => Setting::TrustedProxyIps,
            Self::CookiePrefix(e) => e.setting(),
            Self::Redirect(_) => Setting::WhitelistDomains,
            Self::HttpClient(_) => return None,
        })
    }

    /// The message with every setting spelt by `name` instead of [`Setting::name`]: the
    /// adapter passes its flag names. Like `Display`, it leaves out the sources.
    #[must_use]
    pub fn display_with(&self, name: fn(Setting) -> &'static str) -> impl fmt::Display + '_ {
        Named { error: self, name }
    }
}

/// A [`ConfigError`] whose settings are spelt by `name`.
struct Named<'a> {
    error: &'a ConfigError,
    name: fn(Setting) -> &'static str,
}

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.name;
        match self.error {
            ConfigError::Missing { setting } => {
                write!(f, "{} is required", n(*setting))?;
                match setting {
                    Setting::Issuer => {
                        f.write_str(" (e.g. https://keycloak.example.com/realms/mytest)")
                    }
                    Setting::ClientId => {
                        f.write_str(": the OAuth client id registered at the identity provider")
                    }
                    Setting::CookieSecret => write!(f, " ({COOKIE_SECRET_FIX})"),
                    _ => Ok(()),
                }
            }
            ConfigError::NotHttpUrl { setting, value, .. } => {
                write!(
                    f,
                    "{}: {value:?} is not an absolute http(s) URL",
                    n(*setting)
                )?;
                if *setting == Setting::Issuer {
                    f.write_str(" (give the issuer as the provider's discovery document names it, e.g. https://keycloak.example.com/realms/mytest)")?;
                }
                Ok(())
            }
            ConfigError::SecretLength { setting, len } => write!(
                f,
                "{}: the secret is {len} bytes; it must be {COOKIE_SECRET_FIX}",
                n(*setting)
            ),
            ConfigError::RequiredWith { setting, with } => {
                write!(f, "{} is required with {}", n(*setting), n(*with))
            }
            ConfigError::Conflict {
                setting,
                other,
                why,
            } => write!(f, "{} conflicts with {}: {why}", n(*setting), n(*other)),
            ConfigError::NotShorter {
                setting,
                value,
                than,
                limit,
            } => write!(
                f,
                "{} ({}s) must be shorter than {} ({}s)",
                n(*setting),
                value.as_secs(),
                n(*than),
                limit.as_secs()
            ),
            ConfigError::Invalid { setting, reason } => write!(f, "{}: {reason}", n(*setting)),
            ConfigError::Unreadable { setting, path, .. } => {
                write!(f, "{}: cannot read {}", n(*setting), path.display())
            }
            ConfigError::Pem { setting, path, .. } => {
                write!(f, "{}: cannot use {}", n(*setting), path.display())
            }
            ConfigError::SkipAuth(e) => write!(f, "{}: invalid rule", n(e.setting())),
            ConfigError::RouteRule(RouteRuleError::Everywhere { .. }) => write!(
                f,
                "{}: a requirement for every request belongs in {}",
                n(Setting::AuthorizationRules),
                n(Setting::Authorization)
            ),
            ConfigError::RouteRule(_) => {
                write!(f, "{}: invalid rule", n(Setting::AuthorizationRules))
            }
            ConfigError::TrustedProxy(_) => {
                write!(f, "{}: invalid entry", n(Setting::TrustedProxyIps))
            }
            ConfigError::Redirect(_) => {
                write!(f, "{}: invalid entry", n(Setting::WhitelistDomains))
            }
            ConfigError::CookiePrefix(e) => write!(
                f,
                "{} must be {} with this {}",
                n(e.setting()),
                e.required(),
                n(Setting::CookieName)
            ),
            ConfigError::HttpClient(_) => {
                f.write_str("cannot build the HTTP client for the identity provider")
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display_with(Setting::name).fmt(f)
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::NotHttpUrl {
                source: Some(e), ..
            } => Some(e),
            Self::Unreadable { source, .. } => Some(source),
            Self::Pem { source, .. } => Some(source),
            Self::SkipAuth(e) => Some(e),
            Self::RouteRule(e) => Some(e),
            Self::TrustedProxy(e) => Some(e),
            Self::CookiePrefix(e) => Some(e),
            Self::Redirect(e) => Some(e),
            Self::HttpClient(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SkipAuthError> for ConfigError {
    fn from(e: SkipAuthError) -> Self {
        Self::SkipAuth(e)
    }
}

impl From<RouteRuleError> for ConfigError {
    fn from(e: RouteRuleError) -> Self {
        Self::RouteRule(e)
    }
}

impl From<TrustedProxyError> for ConfigError {
    fn from(e: TrustedProxyError) -> Self {
        Self::TrustedProxy(e)
    }
}

impl From<CookiePrefixError> for ConfigError {
    fn from(e: CookiePrefixError) -> Self {
        Self::CookiePrefix(e)
    }
}

impl From<RedirectConfigError> for ConfigError {
    fn from(e: RedirectConfigError) -> Self {
        Self::Redirect(e)
    }
}

/// Why a PEM file cannot be used (the source of [`ConfigError::Pem`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// The file is not a PEM bundle of certificates.
    #[error("it is not a PEM bundle of CA certificates")]
    NotCertificates(#[source] reqwest::Error),
    /// The file holds no `CERTIFICATE` block.
    #[error("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// A certificate of the bundle is not a usable CA certificate.
    #[error("certificate {number} in it is not a usable CA certificate")]
    UnusableCa {
        /// Its place in the file, from 1.
        number: usize,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The file is not a PEM private key for the client certificate.
    #[error("it is not a PEM private key for {}", cert.display())]
    NotKeyFor {
        /// The client certificate's file.
        cert: PathBuf,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sub-parsers' errors say what is wrong; the `ConfigError` that carries one names
    /// the setting first, as every configuration error does.
    #[test]
    fn sub_parser_errors_name_their_setting() {
        let rules = crate::policy::route_rules::RouteRules::new(&["^/(admin=group:x".to_owned()])
            .expect_err("an invalid regex");
        let c = ConfigError::from(rules);
        assert!(c.to_string().starts_with("authorization_rules: "), "{c}");
        let proxies = crate::http::trusted_proxy::TrustedProxies::new(&["10.0.0.0/33".to_owned()])
            .expect_err("an invalid prefix length");
        let c = ConfigError::from(proxies);
        assert!(c.to_string().starts_with("trusted_proxy_ips: "), "{c}");
        let prefix =
            crate::config::cookie_prefix::validate_cookie_prefix("__Host-a", false, "/", &[])
                .expect_err("not secure");
        let c = ConfigError::from(prefix);
        assert_eq!(
            c.to_string(),
            "cookie.secure must be true with this cookie.name"
        );
        let why = crate::error::chain::chain(&c);
        assert!(
            why.contains(": the cookie name \"__Host-a\" starts with __Host-"),
            "{why}"
        );
    }
}
