//! Error types. Each says what went wrong and, for configuration, what to fix.
//! None of them carries a secret or a token.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Setting;
use crate::cookie_prefix::CookiePrefixError;
use crate::redirect::RedirectConfigError;
use crate::route_rules::RouteRuleError;
use crate::skip_auth::SkipAuthError;
use crate::trusted_proxy::TrustedProxyError;

/// How to make a cookie secret, for the messages that ask for one.
const COOKIE_SECRET_FIX: &str = "16, 24 or 32 bytes, raw or base64-encoded; generate one with: openssl rand -base64 32 | tr -- '+/' '-_'";

/// A configuration value that cannot be used. Raised at start-up, never per request.
///
/// Each variant names the [`Setting`] concerned ([`ConfigError::setting`]) and says what is
/// wrong in typed form; the error it comes from (an unreadable file's `io::Error`, a rule's
/// parse error, ...) is its [`source`](StdError::source), which `Display` does not repeat
/// (print the whole chain with [`chain`]). `Display` spells settings by their library names
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

/// Talking to the identity provider failed (discovery, JWKS, token endpoint).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider could not be reached or answered with a transport error.
    #[error("could not reach the identity provider at {url}")]
    Unreachable {
        /// The URL we tried (never carries secrets).
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The provider answered with an unexpected HTTP status.
    #[error("the identity provider answered {status} at {url}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        /// The URL we tried.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code from the body, when there is one.
        detail: Option<String>,
    },
    /// The provider's answer could not be parsed.
    #[error("the identity provider's answer at {url} is not valid: {what}")]
    Malformed {
        /// The URL we tried.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// The discovery document names another issuer than the one configured.
    #[error(
        "the discovery document at {url} names issuer {found:?}, but the configured issuer is {expected:?}; they must be identical"
    )]
    IssuerMismatch {
        /// Where the document came from.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The issuer in the document.
        found: String,
    },
}

impl ProviderError {
    /// `true` when the provider rejected a grant (`invalid_grant`): the code or
    /// refresh token is dead and only a new login helps.
    #[must_use]
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Status { detail: Some(d), .. } if d == "invalid_grant")
    }
}

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not a well-formed JWS.
    #[error("ID token is malformed")]
    Malformed(#[source] Option<jsonwebtoken::errors::Error>),
    /// The algorithm is not on the allow-list (never `none`, never HMAC).
    #[error("ID token algorithm {0} is not allowed")]
    Algorithm(String),
    /// No key in the provider's JWKS matches the token's `kid` and algorithm,
    /// even after refetching the JWKS.
    #[error("no signing key matches the ID token (kid {})", kid.as_deref().unwrap_or("none"))]
    UnknownKey {
        /// The token's `kid`, when it has one.
        kid: Option<String>,
    },
    /// The signature or a standard claim (iss, aud, exp) is invalid.
    #[error("ID token rejected: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// A claim failed one of our own checks (azp, iat, nonce, at_hash, ...).
    #[error("ID token rejected: {0}")]
    Claim(&'static str),
    /// The JWKS could not be fetched while looking for the key.
    #[error("could not fetch the provider's signing keys")]
    Jwks(#[source] ProviderError),
}

/// Why a login callback did not create a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The identity provider reported an error instead of a code.
    #[error("the identity provider returned error {0:?}")]
    Provider(String),
    /// The callback lacks `code` or `state`.
    #[error("the callback is missing the {0} parameter")]
    MissingParameter(&'static str),
    /// No login-flow cookie matches `state` (expired, another browser, or forged).
    #[error(
        "no login in progress matches this callback's state (expired, replayed, or started in another browser)"
    )]
    State,
    /// The code exchange failed.
    #[error("the code exchange failed")]
    Exchange(#[source] ProviderError),
    /// The token response has no ID token.
    #[error("the token response carries no id_token")]
    NoIdToken,
    /// The ID token was refused.
    #[error(transparent)]
    IdToken(#[from] TokenError),
    /// The user's email is not verified and unverified emails are not allowed.
    #[error(
        "the email address is not verified (email_verified=false); allow_unverified_email accepts it"
    )]
    EmailNotVerified,
    /// The identity provider is not ready (discovery has not succeeded yet).
    #[error("the identity provider is not reachable yet")]
    NotReady,
}

impl ProviderError {
    /// `true` when the provider could not be reached because its TLS
    /// certificate was refused (unknown CA, wrong name, expired): the fix is
    /// `--provider-ca-file`.
    #[must_use]
    pub fn is_certificate_error(&self) -> bool {
        match self {
            Self::Unreachable { source, .. } => is_certificate_error(source),
            _ => false,
        }
    }
}

/// Walks an error's sources for a rustls certificate error (also inside an
/// `io::Error`, whose `source()` skips the error it wraps).
pub(crate) fn is_certificate_error(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        // hyper-util wraps the connector's io::Error in another io::Error.
        let mut inner = e;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            inner = wrapped;
        }
        let tls = inner.downcast_ref::<rustls::Error>();
        // rustls's own wording is the fallback, should the wrapping change.
        if matches!(
            tls,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) || e.to_string().starts_with("invalid peer certificate")
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Walks an error's `source()` chain into one line, for logs.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
