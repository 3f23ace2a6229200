//! The identity provider as the engine sees it: endpoints from discovery, a cached JWKS with
//! rotation, the token endpoint, and the one HTTP client that talks to it.

pub(crate) mod cell;
pub(crate) mod discovered;
pub(crate) mod discovery;
pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod jwks;
pub(crate) mod token;

pub use discovered::Provider;
pub use discovery::Endpoints;
pub use error::ProviderError;
pub use http::http_client;
