//! The engine's state, built once from the configuration, and the request facts every
//! step reads (host, scheme, own route).

use std::sync::Arc;

use http::request::Parts;

use crate::config::builder::Config;
use crate::config::error::ConfigError;
use crate::engine::routes::{BACKCHANNEL_LOGOUT, CALLBACK, START};
use crate::http::cookies::CookieWriter;
use crate::http::headers::{HeadersToRemove, removal_list};
use crate::http::request;
use crate::login::flow::Flows;
use crate::metrics::Metrics;
use crate::provider::cell::ProviderCell;
use crate::provider::http::http_client;
use crate::refresh::Refresher;
use crate::session::cache::SessionCache;
use crate::session::cookie::SessionCodec;
use crate::session::model::Session;
use crate::store::backend::Store;

/// Paths of the engine's own routes, computed once from the proxy prefix.
#[derive(Debug)]
pub(crate) struct Routes {
    pub(crate) prefix: String,
    pub(crate) backchannel: String,
    pub(crate) start: String,
    pub(crate) callback: String,
}

/// Everything the engine holds; one per process, shared by every clone of the `Engine`.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Arc<Config>,
    /// The configured issuer, shared by every session's `Principal`.
    pub(crate) issuer: Arc<str>,
    /// The HTTP client for the provider and, once discovered, the provider.
    pub(crate) provider: Arc<ProviderCell>,
    pub(crate) sessions: SessionCodec,
    /// Decoded cookie sessions by their exact cookie bytes.
    pub(crate) decoded: SessionCache,
    pub(crate) flows: Flows,
    pub(crate) writer: CookieWriter,
    pub(crate) remove: HeadersToRemove,
    pub(crate) routes: Routes,
    pub(crate) refresher: Refresher,
    pub(crate) metrics: Metrics,
    /// The session and revocation stores, shared with bearer-token validators.
    pub(crate) store: Arc<Store>,
}

impl State {
    /// Builds the state. No network I/O.
    pub(crate) fn new(config: Config) -> Result<Self, ConfigError> {
        let http = http_client(config.http_timeout, &config.resolve, &config.provider_tls)
            .map_err(ConfigError::HttpClient)?;
        let prefix = config.proxy_prefix.clone();
        let metrics = Metrics::new(config.provider_tls.insecure_skip_verify);
        if config.provider_tls.insecure_skip_verify {
            tracing::warn!(
                issuer = %config.issuer,
                "ssl_insecure_skip_verify (--ssl-insecure-skip-verify) is set: the identity provider's TLS certificate is NOT verified; anyone on the path can impersonate it. For testing only: give its CA with provider_ca_files (--provider-ca-file) instead"
            );
        }
        Ok(Self {
            sessions: SessionCodec::new(&config.cookie.name, &config.cookie_secrets),
            decoded: SessionCache::default(),
            flows: Flows::new(&config),
            writer: CookieWriter::new(config.cookie.clone()),
            remove: removal_list(&config),
            routes: Routes {
                backchannel: format!("{prefix}/{BACKCHANNEL_LOGOUT}"),
                start: format!("{prefix}/{START}"),
                callback: format!("{prefix}/{CALLBACK}"),
                prefix,
            },
            provider: Arc::new(ProviderCell::new(
                http,
                config.issuer.clone(),
                config.jwks_refetch_interval,
            )),
            refresher: Refresher::default(),
            metrics,
            store: Arc::new(Store::new(&config)),
            issuer: config.issuer.as_str().into(),
            config: Arc::new(config),
        })
    }

    /// The host the browser used, for URLs (`X-Forwarded-Host` only with `--reverse-proxy`,
    /// from a `--trusted-proxy-ip`).
    pub(crate) fn host<'p>(&self, parts: &'p Parts) -> Option<&'p str> {
        request::public_host(parts, &self.config.trusted_proxies)
    }

    /// The scheme the browser used (`X-Forwarded-Proto` only from a `--trusted-proxy-ip`).
    pub(crate) fn scheme(&self, parts: &Parts) -> &'static str {
        request::public_scheme(parts, &self.config.trusted_proxies)
    }

    /// For `<prefix>` and `<prefix>/...` (the engine's own routes), the rest of the path.
    pub(crate) fn own_route<'p>(&self, parts: &'p Parts) -> Option<&'p str> {
        parts
            .uri
            .path()
            .strip_prefix(self.routes.prefix.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// A session read from a cookie or the store, with the engine's issuer: what the
    /// serialised form leaves out.
    pub(crate) fn adopt(&self, mut session: Session) -> Session {
        session.principal.issuer = Some(Arc::clone(&self.issuer));
        session
    }
}
