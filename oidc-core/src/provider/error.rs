//! Errors of talking to the identity provider.

use crate::error::chain::is_certificate_error;

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
