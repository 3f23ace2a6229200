//! The HTTP pieces every transport shares: the facts of a request (host, scheme, forwarded
//! headers from trusted proxies), cookies, the identity headers, and the pages the engine
//! answers with.

pub(crate) mod cookies;
pub(crate) mod forbidden;
pub mod headers;
pub(crate) mod pages;
pub(crate) mod request;
pub mod trusted_proxy;

pub use forbidden::{forbidden_for, forbidden_response};
