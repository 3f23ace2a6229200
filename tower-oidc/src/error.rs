//! Errors raised while setting the layer up (never per request: requests get
//! responses).

use oidc_core::{ConfigError, ProviderError};

/// Why an [`OidcLayer`](crate::OidcLayer) could not be built. `Display` says which part (and
/// which setting); `source()` is the library's error: print the whole chain with
/// [`oidc_core::error::chain`] to see what is wrong and how to fix it.
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
            Self::Config(e) => match e.setting() {
                Some(setting) => {
                    write!(f, "the OpenID Connect configuration is invalid ({setting})")
                }
                None => f.write_str("the OpenID Connect configuration is invalid"),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_setting_and_keeps_the_library_error_as_source() {
        let config = oidc_core::Config::builder("https://idp.example.com", "app")
            .cookie_secret("0123456789abcdef")
            .skip_auth_regexes(vec!["[".to_owned()])
            .build()
            .unwrap_err();
        let e = SetupError::from(config);
        assert_eq!(
            e.to_string(),
            "the OpenID Connect configuration is invalid (skip_auth_regexes)"
        );
        let source = std::error::Error::source(&e).expect("the configuration error");
        assert!(source.is::<ConfigError>(), "{source}");
        let text = oidc_core::error::chain(&e);
        assert!(text.contains("\"[\" is not a valid regex"), "{text}");
        assert!(!text.contains("--"), "{text}");
    }
}
