//! Error types. Each says what went wrong and, for configuration, what to fix.
//! None of them carries a secret or a token.

use std::error::Error as StdError;

/// A configuration value that cannot be used. Raised at start-up, never per request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer URL does not parse or is not http(s).
    #[error(
        "--oidc-issuer-url: {value:?} is not an http(s) URL; give the issuer as it appears in the provider's discovery document, e.g. https://keycloak.example.com/realms/mytest"
    )]
    IssuerUrl {
        /// The value given.
        value: String,
    },
    /// The cookie secret has a length AES cannot use.
    #[error(
        "--cookie-secret: the secret is {len} bytes; it must be 16, 24 or 32 bytes, raw or base64-encoded (generate one with: openssl rand -base64 32 | tr -- '+/' '-_')"
    )]
    CookieSecretLength {
        /// Length in bytes after decoding.
        len: usize,
    },
    /// No cookie secret was configured.
    #[error(
        "--cookie-secret is required (16, 24 or 32 bytes; generate one with: openssl rand -base64 32 | tr -- '+/' '-_')"
    )]
    MissingCookieSecret,
    /// No client id was configured.
    #[error("--client-id is required: the OAuth client id registered at the identity provider")]
    MissingClientId,
    /// A value that must be a URL is not one.
    #[error("{flag}: {value:?} is not a valid absolute http(s) URL")]
    Url {
        /// The flag concerned.
        flag: &'static str,
        /// The value given.
        value: String,
    },
    /// Any other flag with a value we cannot use.
    #[error("{flag}: {message}")]
    Invalid {
        /// The flag concerned.
        flag: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Two settings that cannot be honoured together.
    #[error("{flag} cannot be used with {other}: {message}")]
    Conflict {
        /// The first flag.
        flag: &'static str,
        /// The flag it conflicts with.
        other: &'static str,
        /// Why, and what to do.
        message: String,
    },
    /// A `--whitelist-domain` entry that cannot be used.
    #[error(transparent)]
    Redirect(#[from] crate::redirect::RedirectConfigError),
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
        "the discovery document at {url} names issuer {found:?}, but --oidc-issuer-url is {expected:?}; they must be identical"
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
        "the email address is not verified (email_verified=false); pass --insecure-oidc-allow-unverified-email to accept it"
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
