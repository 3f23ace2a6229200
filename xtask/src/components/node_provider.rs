//! node `oidc-provider`: the test OpenID provider run by `test-support/assets/provider.mjs`.
//!
//! Installed with npm into `<cache>/node-oidc-provider-<version>/`, the version taken from the
//! one pin in `test-support/assets/package.json` (copied there as the install's package.json).
//! Sets `OIDC_AUTHZ_NODE_PROVIDER_DIR` for the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Component, Env};
use crate::util;

/// The environment variable read by `test_support::node_provider_dir`.
const DIR_ENV: &str = "OIDC_AUTHZ_NODE_PROVIDER_DIR";

pub struct NodeProvider;

impl Component for NodeProvider {
    fn ensure_installed(&self) -> Result<Env, String> {
        let hint = "install Node.js 20+ with npm (Debian: apt-get install nodejs npm)";
        let node = util::tool_version("node", hint)?;
        let npm = util::tool_version("npm", hint)?;

        let manifest_path = util::repo_root().join("test-support/assets/package.json");
        let manifest = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
        let version = pinned_version(&manifest).ok_or_else(|| {
            format!(
                "{} pins no exact oidc-provider version",
                manifest_path.display()
            )
        })?;

        let dir = util::cache_root()?.join(format!("node-oidc-provider-{version}"));
        let label = format!("node oidc-provider {version}");
        if is_installed(&dir, &version) {
            println!("[xtask] {label}: cached at {} (node {node})", dir.display());
        } else {
            println!(
                "[xtask] {label}: installing into {} (node {node}, npm {npm}) ...",
                dir.display()
            );
            install(&manifest, &dir, &version)?;
            println!("[xtask] {label}: installed at {}", dir.display());
        }
        Ok(vec![(DIR_ENV.to_owned(), dir.into_os_string())])
    }
}

/// The exact version of `"oidc-provider"` under `"dependencies"` (digits and dots, no range).
fn pinned_version(manifest: &str) -> Option<String> {
    let deps = &manifest[manifest.find("\"dependencies\"")?..];
    let key = "\"oidc-provider\"";
    let rest = deps[deps.find(key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let version = &rest[..rest.find('"')?];
    let exact = !version.is_empty()
        && version.split('.').count() == 3
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    exact.then(|| version.to_owned())
}

fn is_installed(dir: &Path, version: &str) -> bool {
    let manifest = dir.join("node_modules/oidc-provider/package.json");
    std::fs::read_to_string(manifest)
        .ok()
        .and_then(|text| installed_version(&text))
        .is_some_and(|v| v == version)
}

/// `"version"` of an installed package.json.
fn installed_version(manifest: &str) -> Option<String> {
    let key = "\"version\"";
    let rest = manifest[manifest.find(key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn install(manifest: &str, dir: &Path, version: &str) -> Result<(), String> {
    let parent = dir.parent().ok_or("cache dir has no parent")?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging: PathBuf = parent.join(format!(
        ".node-oidc-provider-{version}.tmp-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    std::fs::write(staging.join("package.json"), manifest)
        .map_err(|e| format!("cannot write package.json in {}: {e}", staging.display()))?;

    let result = util::run(Command::new("npm").current_dir(&staging).args([
        "install",
        "--no-audit",
        "--no-fund",
        "--no-package-lock",
        "--omit=dev",
        "--loglevel=error",
    ]))
    .and_then(|()| {
        if is_installed(&staging, version) {
            Ok(())
        } else {
            Err(format!(
                "npm install did not install oidc-provider {version}"
            ))
        }
    })
    .and_then(|()| util::publish_dir(&staging, dir, |d| is_installed(d, version)));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pin() {
        let manifest = r#"{ "description": "the "oidc-provider" pin", "dependencies": { "oidc-provider": "9.13.3" } }"#;
        assert_eq!(pinned_version(manifest).as_deref(), Some("9.13.3"));
        let ranged = r#"{ "dependencies": { "oidc-provider": "^9.13.3" } }"#;
        assert_eq!(pinned_version(ranged), None);
    }

    #[test]
    fn the_repo_pin_is_exact_9x() {
        let manifest =
            std::fs::read_to_string(util::repo_root().join("test-support/assets/package.json"))
                .expect("package.json");
        let version = pinned_version(&manifest).expect("exact pin");
        assert!(version.starts_with("9."), "{version}");
    }
}
