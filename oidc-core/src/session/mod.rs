//! Sessions: the model, its serialised form, sealing, the cookie codec and the cache of
//! decoded cookies.

pub(crate) mod cache;
pub(crate) mod cookie;
pub(crate) mod crypto;
pub(crate) mod model;
pub(crate) mod wire;

pub use cookie::SessionError;
pub use model::Session;
pub use wire::FORMAT_VERSION;
