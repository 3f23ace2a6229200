//! Why an ID token was refused.

use crate::provider::error::ProviderError;

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
