//! Errors raised while setting the layer up (never per request: requests get
//! responses).

use oidc_core::{ConfigError, ProviderError};

/// Why an [`OidcLayer`](crate::OidcLayer) could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// The configuration cannot be used.
    Config(ConfigError),
    /// The identity provider could not be discovered.
    Discovery(ProviderError),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(_) => f.write_str("the OpenID Connect configuration is invalid"),
            Self::Discovery(_) => f.write_str("the identity provider could not be discovered"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Discovery(e) => Some(e),
        }
    }
}

impl From<ConfigError> for SetupError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<ProviderError> for SetupError {
    fn from(e: ProviderError) -> Self {
        Self::Discovery(e)
    }
}
