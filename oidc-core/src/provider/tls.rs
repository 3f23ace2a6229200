//! TLS to the identity provider: which roots are trusted (`--provider-ca-file`,
//! `--use-system-trust-store`), or no verification at all
//! (`--ssl-insecure-skip-verify`). One place builds the provider's HTTP client
//! from these settings ([`super::http_client`]), used for discovery, JWKS,
//! token, userinfo, logout and extra JWT issuers.

use std::path::{Path, PathBuf};

use crate::config::Setting;
use crate::error::{ConfigError, PemError};

/// The provider TLS settings, with oauth2-proxy's flag names and defaults.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ProviderTls {
    /// `--provider-ca-file`: PEM bundles of the CAs that sign the provider's
    /// certificate, already read and checked by the builder.
    pub ca_files: Vec<CaFile>,
    /// `--use-system-trust-store`: with CA files, also trust the public roots
    /// and the operating system's store (default: only the CA files).
    pub use_system_trust_store: bool,
    /// `--ssl-insecure-skip-verify`: no verification of the provider's
    /// certificate at all. For testing only.
    pub insecure_skip_verify: bool,
    /// `--provider-client-cert-file` and `--provider-client-key-file`: a client
    /// certificate for mutual TLS to the provider.
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate and its key, read and parsed (the key never shows in `Debug`).
#[derive(Clone)]
pub struct ClientIdentity {
    /// `--provider-client-cert-file`.
    pub cert_path: PathBuf,
    /// `--provider-client-key-file`.
    pub key_path: PathBuf,
    identity: reqwest::Identity,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Reads the certificate (PEM, with its chain) and the private key (PEM).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Unreadable`] (the `io::Error` as source) or [`ConfigError::Pem`],
    /// naming [`Setting::ProviderClientCertFile`] or [`Setting::ProviderClientKeyFile`] and
    /// the file.
    pub fn read(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, ConfigError> {
        let mut pem = read(Setting::ProviderClientCertFile, &cert_path)?;
        if pem_ders(&pem).is_empty() {
            return Err(ConfigError::Pem {
                setting: Setting::ProviderClientCertFile,
                path: cert_path,
                source: PemError::NoCertificate,
            });
        }
        pem.push(b'\n');
        pem.extend(read(Setting::ProviderClientKeyFile, &key_path)?);
        let identity = match reqwest::Identity::from_pem(&pem) {
            Ok(identity) => identity,
            Err(source) => {
                return Err(ConfigError::Pem {
                    setting: Setting::ProviderClientKeyFile,
                    path: key_path,
                    source: PemError::NotKeyFor {
                        cert: cert_path,
                        source,
                    },
                });
            }
        };
        Ok(Self {
            cert_path,
            key_path,
            identity,
        })
    }
}

/// One `--provider-ca-file`, read and parsed.
#[derive(Clone, Debug)]
pub struct CaFile {
    /// The path given.
    pub path: PathBuf,
    pub(crate) certs: Vec<reqwest::Certificate>,
}

impl CaFile {
    /// Reads a PEM bundle.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Unreadable`] (the `io::Error` as source) or [`ConfigError::Pem`]
    /// (no certificate, or one that is not a usable CA certificate), naming
    /// [`Setting::ProviderCaFiles`] and the file.
    pub fn read(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        let setting = Setting::ProviderCaFiles;
        let pem = read(setting, &path)?;
        let unusable = |source| ConfigError::Pem {
            setting,
            path: path.clone(),
            source,
        };
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| unusable(PemError::NotCertificates(e)))?;
        if certs.is_empty() {
            return Err(unusable(PemError::NoCertificate));
        }
        // Check each certificate parses now rather than when the client is built.
        let mut store = rustls::RootCertStore::empty();
        for (i, der) in pem_ders(&pem).into_iter().enumerate() {
            store.add(der.into()).map_err(|source| {
                unusable(PemError::UnusableCa {
                    number: i + 1,
                    source,
                })
            })?;
        }
        Ok(Self { path, certs })
    }
}

/// Reads a file named by `setting`.
fn read(setting: Setting, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Unreadable {
        setting,
        path: path.to_path_buf(),
        source,
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

/// The DER bodies of the `CERTIFICATE` blocks of a PEM bundle (rustls' PEM reader;
/// malformed blocks are left out, and then refused by the callers' checks).
fn pem_ders(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|der| der.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> crate::config::ConfigBuilder {
        crate::Config::builder("https://idp.example.com", "app")
            .cookie_secret("0123456789abcdef0123456789abcdef")
    }

    /// The error's whole chain.
    fn error(files: Vec<PathBuf>) -> String {
        let e = builder()
            .provider_ca_files(files)
            .build()
            .expect_err("a bad CA file is refused");
        crate::error::chain(&e)
    }

    #[test]
    fn an_unreadable_ca_file_names_the_setting_and_the_file_and_keeps_the_io_error() {
        let e = error(vec!["/nonexistent/ca.pem".into()]);
        assert!(
            e.starts_with("provider_ca_files: cannot read /nonexistent/ca.pem: "),
            "{e}"
        );
        let err = builder()
            .provider_ca_files(vec!["/nonexistent/ca.pem".into()])
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), Some(Setting::ProviderCaFiles));
        let io = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_file_without_certificates_names_the_setting_and_the_file() {
        let dir = std::env::temp_dir().join(format!("oidc-core-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = error(vec![empty.clone()]);
        assert!(
            e.starts_with("provider_ca_files: ")
                && e.contains(&*empty.to_string_lossy())
                && e.contains("holds no PEM certificate"),
            "{e}"
        );
        let garbled = dir.join("garbled.pem");
        std::fs::write(
            &garbled,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = error(vec![garbled.clone()]);
        assert!(
            e.starts_with("provider_ca_files: ") && e.contains(&*garbled.to_string_lossy()),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ca_files_are_read_and_the_client_builds_in_every_mode() {
        let ca = test_support::TestCa::new();
        let config = builder()
            .provider_ca_files(vec![ca.ca_cert.clone(), ca.ca_cert.clone()])
            .build()
            .expect("a CA bundle is accepted");
        assert_eq!(config.provider_tls.ca_files.len(), 2);
        assert_eq!(config.provider_tls.ca_files[0].certs.len(), 1);
        for (system, insecure) in [(false, false), (true, false), (false, true)] {
            let mut tls = config.provider_tls.clone();
            tls.use_system_trust_store = system;
            tls.insecure_skip_verify = insecure;
            crate::provider::http_client(std::time::Duration::from_secs(1), &[], &tls)
                .expect("client");
        }
        crate::provider::http_client(
            std::time::Duration::from_secs(1),
            &[],
            &ProviderTls::default(),
        )
        .expect("public and system roots");
    }

    #[test]
    fn client_certificate_and_key_go_together_and_are_checked() {
        let ca = test_support::TestCa::new();
        let e =
            |b: crate::config::ConfigBuilder| crate::error::chain(&b.build().expect_err("refused"));
        let only_cert = e(builder().provider_client_cert_file(Some(ca.client_cert.clone())));
        assert_eq!(
            only_cert,
            "provider_client_key_file is required with provider_client_cert_file"
        );
        let only_key = e(builder().provider_client_key_file(Some(ca.client_key.clone())));
        assert_eq!(
            only_key,
            "provider_client_cert_file is required with provider_client_key_file"
        );
        let key_as_cert = e(builder()
            .provider_client_cert_file(Some(ca.client_key.clone()))
            .provider_client_key_file(Some(ca.client_key.clone())));
        assert!(
            key_as_cert.starts_with("provider_client_cert_file: "),
            "{key_as_cert}"
        );
        let cert_as_key = e(builder()
            .provider_client_cert_file(Some(ca.client_cert.clone()))
            .provider_client_key_file(Some(ca.ca_cert.clone())));
        assert!(
            cert_as_key.starts_with("provider_client_key_file: ")
                && cert_as_key.contains(&*ca.ca_cert.to_string_lossy()),
            "{cert_as_key}"
        );
        let config = builder()
            .provider_client_cert_file(Some(ca.client_cert.clone()))
            .provider_client_key_file(Some(ca.client_key.clone()))
            .build()
            .expect("a certificate and its key");
        let debug = format!("{:?}", config.provider_tls);
        assert!(
            debug.contains("client.key") && !debug.contains("PRIVATE"),
            "{debug}"
        );
        crate::provider::http_client(std::time::Duration::from_secs(1), &[], &config.provider_tls)
            .expect("client with a certificate");
    }

    #[test]
    fn the_insecure_gauge_is_0_unless_the_flag_is_set() {
        let engine = crate::Engine::new(builder().build().unwrap()).unwrap();
        assert!(
            engine
                .metrics()
                .render()
                .contains("\noidc_authz_insecure_tls 0\n")
        );
        let engine =
            crate::Engine::new(builder().ssl_insecure_skip_verify(true).build().unwrap()).unwrap();
        assert!(
            engine
                .metrics()
                .render()
                .contains("\noidc_authz_insecure_tls 1\n")
        );
        assert!(engine.insecure_tls());
    }
}
