//! Configuration: the typed, validated [`Config`] and its builder, the settings it names,
//! its errors, secrets and the provider TLS settings.

pub(crate) mod builder;
pub mod cookie_prefix;
pub(crate) mod error;
pub(crate) mod secret;
pub(crate) mod setting;
pub(crate) mod tls;

pub use builder::{
    ClientAuthMethod, Config, ConfigBuilder, CookieSettings, SameSite, SessionStoreKind,
};
pub use error::{ConfigError, PemError};
pub use secret::{ClientSecret, CookieSecret};
pub use setting::Setting;
pub use tls::{CaFile, ClientIdentity, ProviderTls};
