//! Why the command line cannot start the adapter: a flag the command line itself cannot use,
//! or a setting the library refused (printed with the flag's name).

use oauth2_proxy_compat::LoadError;
use oidc_core::ConfigError;
use oidc_core::token::bearer::BearerConfigError;

use super::flags::flag;

/// A start-up error, printed with flag names. `source()` keeps the error it comes from; print
/// the whole chain with [`oidc_core::error::chain`].
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// The library refused a setting; `Display` names the flags ([`flag`]).
    Config(ConfigError),
    /// A flag's value the command line cannot use.
    Invalid {
        /// The flag.
        flag: &'static str,
        /// The value (quoted) and what to give instead.
        message: String,
    },
    /// A file named by a flag cannot be read.
    Unreadable {
        /// The flag.
        flag: &'static str,
        /// The file as given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bearer-token settings cannot be used.
    Bearer {
        /// The flag.
        flag: &'static str,
        /// The library's error.
        source: BearerConfigError,
    },
    /// The `--config` file cannot be used, or oauth2-proxy flags were given whose meaning the
    /// adapter cannot honour (never [`LoadError::Args`]: that is [`CliError::Args`]).
    Load(LoadError),
    /// The arguments do not parse (clap's error: print it with [`clap::Error::exit`], which
    /// also answers `--help` and `--version`).
    Args(clap::Error),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => e.display_with(flag).fmt(f),
            Self::Invalid { flag, message } => write!(f, "{flag}: {message}"),
            Self::Unreadable { flag, path, .. } => write!(f, "{flag}: cannot read {path:?}"),
            Self::Bearer { flag, .. } => write!(f, "{flag}: invalid bearer-token settings"),
            Self::Load(e) => e.fmt(f),
            Self::Args(e) => {
                let text = e.to_string();
                f.write_str(text.trim_start_matches("error: ").trim_end())
            }
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The library's message is this one, with flag names: go on with its source.
            Self::Config(e) => std::error::Error::source(e),
            Self::Invalid { .. } => None,
            Self::Unreadable { source, .. } => Some(source),
            Self::Bearer { source, .. } => Some(source),
            // Its message is this one: go on with its source.
            Self::Load(e) => std::error::Error::source(e),
            Self::Args(_) => None,
        }
    }
}

impl From<LoadError> for CliError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Args(e) => Self::Args(e),
            other => Self::Load(other),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use oidc_core::Setting;

    use super::*;

    #[test]
    fn library_errors_are_printed_with_flags_and_their_sources() {
        let e = CliError::from(ConfigError::Missing {
            setting: Setting::CookieSecret,
        });
        let text = oidc_core::error::chain(&e);
        assert!(
            text.starts_with("--cookie-secret is required") && text.contains("openssl rand"),
            "{text}"
        );
        let e = CliError::from(ConfigError::Unreadable {
            setting: Setting::ProviderCaFiles,
            path: "/nonexistent/ca.pem".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(
            oidc_core::error::chain(&e),
            "--provider-ca-file: cannot read /nonexistent/ca.pem: entity not found"
        );
    }
}
