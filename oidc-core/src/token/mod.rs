//! Token validation: ID tokens at login and refresh, bearer access tokens, and the logout
//! tokens of back-channel logout, each checked against the provider's keys.

pub mod algorithms;
pub mod bearer;
pub(crate) mod error;
pub mod id_token;
pub mod logout;

pub use error::TokenError;
