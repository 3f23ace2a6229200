//! The identity provider as the engine sees it: endpoints from discovery, a
//! cached JWKS with rotation, and the token endpoint.

mod discovery;
mod jwks;
mod tls;
mod token;

pub use discovery::Endpoints;
pub(crate) use jwks::JwksCache;
pub use tls::{CaFile, ClientIdentity, ProviderTls};
pub(crate) use token::TokenResponse;

use std::time::Duration;

use url::Url;

use crate::error::ProviderError;

/// A discovered identity provider.
#[derive(Debug)]
pub struct Provider {
    endpoints: Endpoints,
    pub(crate) jwks: JwksCache,
    pub(crate) http: reqwest::Client,
}

impl Provider {
    /// Runs discovery at `issuer` and fetches the signing keys once.
    pub async fn discover(
        http: reqwest::Client,
        issuer: &Url,
        jwks_refetch_interval: Duration,
    ) -> Result<Self, ProviderError> {
        let endpoints = discovery::discover(&http, issuer).await?;
        let jwks = JwksCache::new(endpoints.jwks_uri.clone(), jwks_refetch_interval);
        jwks.refresh(&http).await?;
        Ok(Self {
            endpoints,
            jwks,
            http,
        })
    }

    /// The endpoints from the discovery document.
    #[must_use]
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }
}

/// Builds the HTTP client used to talk to the provider (the only place one is
/// built): rustls with the roots [`ProviderTls`] names, no redirects followed,
/// a timeout on every call.
pub fn http_client(
    timeout: Duration,
    resolve: &[(String, std::net::IpAddr)],
    tls: &ProviderTls,
) -> Result<reqwest::Client, reqwest::Error> {
    // Selecting the process-wide provider is idempotent; a second call is a no-op error.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder();
    for (host, ip) in resolve {
        // Port 0: the URL's port is used.
        builder = builder.resolve(host, std::net::SocketAddr::new(*ip, 0));
    }
    tls::apply(tls, builder)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("oidc-authz/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// GETs `url` and parses JSON, mapping failures to [`ProviderError`].
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
) -> Result<T, ProviderError> {
    let unreachable = |source| ProviderError::Unreachable {
        url: url.to_string(),
        source,
    };
    let resp = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ProviderError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            detail: None,
        });
    }
    let body = resp.bytes().await.map_err(unreachable)?;
    serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed {
        url: url.to_string(),
        what: e.to_string(),
    })
}
