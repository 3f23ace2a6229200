//! Every error type of the library, in one place, and [`chain`] to print one whole. Each says
//! what went wrong and, for configuration, what to fix; none carries a secret or a token.

pub(crate) mod chain;

pub use crate::config::error::{ConfigError, PemError};
pub use crate::login::error::LoginError;
pub use crate::provider::error::ProviderError;
pub use crate::token::error::TokenError;
pub use chain::chain;
