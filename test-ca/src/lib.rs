//! A certificate authority made for tests with the `openssl` CLI: a CA certificate, a server
//! certificate for `127.0.0.1` and `localhost`, and a client certificate (mutual TLS), all
//! signed by the CA, as PEM files. Std only: `test-support` makes one per test ([`TestCa`]),
//! and `xtask` one per run for Keycloak's HTTPS listener ([`CaFiles::create`]).
//!
//! ```no_run
//! let ca = test_ca::TestCa::new();
//! assert!(ca.ca_cert.is_file() && ca.server_cert.is_file() && ca.server_key.is_file());
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The PEM files of a CA and the certificates it signed, in one directory.
#[derive(Debug, Clone)]
pub struct CaFiles {
    /// The CA certificate (`CN=oidc-authz test CA`): what `--provider-ca-file` is given.
    pub ca_cert: PathBuf,
    /// The server certificate, for `127.0.0.1` and `localhost` (serverAuth).
    pub server_cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub server_key: PathBuf,
    /// A client certificate (`CN=oidc-authz test client`, clientAuth), for mutual TLS.
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
}

/// Extensions of the server certificate.
const SERVER_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,\
                          keyEncipherment\nextendedKeyUsage=serverAuth\n\
                          subjectAltName=IP:127.0.0.1,DNS:localhost\n";
/// Extensions of the client certificate.
const CLIENT_EXT: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";

/// How long the certificates are valid.
const DAYS: &str = "2";

impl CaFiles {
    /// Makes the CA and both certificates in `dir` (created if missing; files of an earlier
    /// CA there are overwritten): `ca.pem`, `ca.key`, `server.pem`, `server.key`,
    /// `client.pem`, `client.key`. Fails with openssl's output, or saying how to install it.
    pub fn create(dir: &Path) -> Result<CaFiles, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                DAYS,
                "-subj",
                "/CN=oidc-authz test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        )?;
        sign(dir, "server", "/CN=localhost", SERVER_EXT)?;
        sign(dir, "client", "/CN=oidc-authz test client", CLIENT_EXT)?;
        Ok(CaFiles {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        })
    }
}

/// A key and a certificate `<name>.pem` for `subject` with the extensions `ext`, signed by the
/// CA in `dir`.
fn sign(dir: &Path, name: &str, subject: &str, ext: &str) -> Result<(), String> {
    let (key, csr, ext_file, cert) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out", &csr,
        ],
    )?;
    std::fs::write(dir.join(&ext_file), ext)
        .map_err(|e| format!("cannot write {}: {e}", dir.join(&ext_file).display()))?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            DAYS,
            "-extfile",
            &ext_file,
            "-out",
            &cert,
        ],
    )
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            format!(
                "cannot run openssl (needed to make a test CA): {e}; run `cargo xtask test` (it \
                 installs Debian's openssl) or `apt-get install openssl`"
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A CA made for one test in a fresh directory under the system's temp directory, removed on
/// drop. Its files are [`CaFiles`] (`ca.ca_cert`, `ca.server_cert`, ...).
#[derive(Debug)]
pub struct TestCa {
    /// The directory holding the files.
    pub dir: PathBuf,
    files: CaFiles,
}

impl TestCa {
    /// Makes a CA and its certificates ([`CaFiles::create`]). Panics, with openssl's output,
    /// if `openssl` fails.
    pub fn new() -> TestCa {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oidc-authz-ca-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let files = CaFiles::create(&dir).unwrap_or_else(|e| panic!("{e}"));
        TestCa { dir, files }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for TestCa {
    type Target = CaFiles;
    fn deref(&self) -> &CaFiles {
        &self.files
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
