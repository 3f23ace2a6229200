//! The login: the flow state of each started login (state, nonce, PKCE S256) and why a
//! callback fails.

pub(crate) mod error;
pub(crate) mod flow;
