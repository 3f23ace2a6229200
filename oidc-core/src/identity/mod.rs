//! Who a request is from: the [`Principal`], the tokens that vouch for it (redacting
//! newtypes), and the claim readers that build it.

pub(crate) mod claims;
pub mod jwt;
pub(crate) mod principal;
pub mod tokens;

pub use principal::Principal;
pub use tokens::{AccessToken, IdToken, RefreshToken};
