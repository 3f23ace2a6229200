//! A discovered identity provider: its endpoints and its cached signing keys.

use std::time::Duration;

use url::Url;

use crate::provider::discovery::{self, Endpoints};
use crate::provider::error::ProviderError;
use crate::provider::jwks::JwksCache;

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
