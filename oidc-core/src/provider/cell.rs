//! The configured issuer, discovered once and then shared: by the engine (logins, refresh,
//! logout tokens) and by the bearer-token validator (its own issuer's keys).

use std::sync::OnceLock;
use std::time::Duration;

use url::Url;

use crate::provider::discovered::Provider;
use crate::provider::error::ProviderError;

/// The HTTP client for the provider and, once discovery succeeded, the [`Provider`].
#[derive(Debug)]
pub(crate) struct ProviderCell {
    http: reqwest::Client,
    issuer: Url,
    jwks_refetch_interval: Duration,
    provider: OnceLock<Provider>,
}

impl ProviderCell {
    /// Nothing discovered yet; no I/O.
    pub(crate) fn new(http: reqwest::Client, issuer: Url, jwks_refetch_interval: Duration) -> Self {
        Self {
            http,
            issuer,
            jwks_refetch_interval,
            provider: OnceLock::new(),
        }
    }

    /// The one HTTP client for the identity provider.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The discovered provider, once discovery succeeded.
    pub(crate) fn get(&self) -> Option<&Provider> {
        self.provider.get()
    }

    /// Runs discovery and fetches the JWKS once; a no-op once it succeeded.
    pub(crate) async fn discover(&self) -> Result<(), ProviderError> {
        if self.provider.get().is_some() {
            return Ok(());
        }
        let p =
            Provider::discover(self.http.clone(), &self.issuer, self.jwks_refetch_interval).await?;
        tracing::info!(issuer = %p.endpoints().issuer, "identity provider discovered");
        let _ = self.provider.set(p);
        Ok(())
    }
}
