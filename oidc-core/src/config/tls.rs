//! TLS to the identity provider, as configured: which roots are trusted (`--provider-ca-file`,
//! `--use-system-trust-store`), or no verification at all (`--ssl-insecure-skip-verify`), and
//! a client certificate. The files are read and checked here, at start-up; the provider's HTTP
//! client is built from these settings in one place (`provider::http`).

use std::path::{Path, PathBuf};

use crate::config::error::{ConfigError, PemError};
use crate::config::setting::Setting;

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
    pub(crate) identity: reqwest::Identity,
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
    /// How many CA certificates the bundle holds.
    #[must_use]
    pub fn certificate_count(&self) -> usize {
        self.certs.len()
    }

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
