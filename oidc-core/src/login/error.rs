//! Why a login callback did not create a session.

use crate::provider::error::ProviderError;
use crate::token::error::TokenError;

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
