//! The one HTTP client for the identity provider (discovery, JWKS, token, userinfo, logout,
//! extra JWT issuers), built from the TLS settings, and the JSON GET they share.

use std::time::Duration;

use url::Url;

use crate::config::tls::ProviderTls;
use crate::provider::error::ProviderError;

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
    apply(tls, builder)
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

/// Applies the trust settings to a client builder.
pub(crate) fn apply(
    tls: &ProviderTls,
    mut builder: reqwest::ClientBuilder,
) -> reqwest::ClientBuilder {
    if let Some(id) = &tls.client_identity {
        builder = builder.identity(id.identity.clone());
    }
    if tls.insecure_skip_verify {
        return builder.danger_accept_invalid_certs(true);
    }
    let system = tls.ca_files.is_empty() || tls.use_system_trust_store;
    // The webpki (Mozilla) roots are built in; the OS store is added to them.
    builder = builder.tls_built_in_root_certs(system);
    if system {
        for der in native_roots() {
            if let Ok(cert) = reqwest::Certificate::from_der(&der) {
                builder = builder.add_root_certificate(cert);
            }
        }
    }
    for file in &tls.ca_files {
        for cert in &file.certs {
            builder = builder.add_root_certificate(cert.clone());
        }
    }
    builder
}

/// The operating system's trust store (empty where there is none, e.g. the
/// distroless image without CA certificates). Certificates that do not parse
/// are skipped, as Go's system pool does.
fn native_roots() -> Vec<Vec<u8>> {
    let found = rustls_native_certs::load_native_certs();
    if !found.errors.is_empty() {
        tracing::debug!(
            errors = found.errors.len(),
            "some system CA certificates could not be loaded"
        );
    }
    let mut store = rustls::RootCertStore::empty();
    found
        .certs
        .into_iter()
        .filter(|c| store.add(c.clone()).is_ok())
        .map(|c| c.as_ref().to_vec())
        .collect()
}
