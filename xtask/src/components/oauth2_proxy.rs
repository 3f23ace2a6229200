//! oauth2-proxy: the peer of `cargo xtask bench` (the project replaces it, flag for flag).
//!
//! Built from the Go module proxy with `go install
//! github.com/oauth2-proxy/oauth2-proxy/v7@v<VERSION>` into `<cache>/oauth2-proxy-<version>/`
//! (`GOBIN`), pinned by [`VERSION`] only, with the version stamped in (`--version` says it). The
//! binary is built in a temporary sibling directory and renamed into place when complete. A
//! cached binary counts only if `go version -m` names the pinned module version. Bench-only: not
//! in `super::all`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util;

/// The one pin of the oauth2-proxy version (Go module `github.com/oauth2-proxy/oauth2-proxy/v7`).
pub const VERSION: &str = "7.15.6";

/// The Go module path.
const MODULE: &str = "github.com/oauth2-proxy/oauth2-proxy/v7";

/// The binary, built first if missing; prints one progress line.
pub fn ensure() -> Result<PathBuf, String> {
    let dir = util::cache_root()?.join(format!("oauth2-proxy-{VERSION}"));
    let label = format!("oauth2-proxy {VERSION}");
    let binary = dir.join("oauth2-proxy");
    if is_installed(&binary) {
        println!("[xtask] {label}: cached at {}", binary.display());
        return Ok(binary);
    }
    let go = go_version()?;
    println!(
        "[xtask] {label}: building with `go install {MODULE}@v{VERSION}` into {} ({go}; a few \
         minutes on 2 cores) ...",
        dir.display()
    );
    install(&dir)?;
    if !is_installed(&binary) {
        return Err(format!(
            "go install finished, but {} is not oauth2-proxy v{VERSION}",
            binary.display()
        ));
    }
    println!("[xtask] {label}: installed at {}", binary.display());
    Ok(binary)
}

/// `go version` (`go version go1.26.8 linux/amd64`), or an error naming what to install.
fn go_version() -> Result<String, String> {
    let hint = "install Go (Debian: golang-go) to build oauth2-proxy";
    let out = Command::new("go")
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`go` not found ({e}); {hint}"))?;
    if !out.status.success() {
        return Err(format!("`go version` failed ({}); {hint}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether `binary` exists and was built from the pinned module version.
fn is_installed(binary: &Path) -> bool {
    if !binary.is_file() {
        return false;
    }
    Command::new("go")
        .args(["version", "-m"])
        .arg(binary)
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| built_from_pin(&String::from_utf8_lossy(&o.stdout)))
}

/// Whether `go version -m` output has the line `mod <MODULE> v<VERSION> ...`.
fn built_from_pin(output: &str) -> bool {
    output.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("mod")
            && words.next() == Some(MODULE)
            && words.next() == Some(&format!("v{VERSION}"))
    })
}

fn install(dir: &Path) -> Result<(), String> {
    let parent = dir.parent().ok_or("cache dir has no parent")?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = parent.join(format!(
        ".oauth2-proxy-{VERSION}.tmp-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let result = util::run(
        Command::new("go")
            .arg("install")
            .arg(format!(
                "-ldflags=-X {MODULE}/pkg/version.VERSION=v{VERSION}"
            ))
            .arg(format!("{MODULE}@v{VERSION}"))
            .env("GOBIN", &staging)
            // Module mode whatever the caller's environment says.
            .env("GO111MODULE", "on")
            .current_dir(parent),
    )
    .and_then(|()| {
        if is_installed(&staging.join("oauth2-proxy")) {
            Ok(())
        } else {
            Err(format!(
                "go install did not produce oauth2-proxy v{VERSION} in {}",
                staging.display()
            ))
        }
    })
    .and_then(|()| util::publish_dir(&staging, dir, |d| is_installed(&d.join("oauth2-proxy"))));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_pinned_build() {
        let out = "/x/oauth2-proxy: go1.26.8\n\tpath\tgithub.com/oauth2-proxy/oauth2-proxy/v7\n\
                   \tmod\tgithub.com/oauth2-proxy/oauth2-proxy/v7\tv7.15.6\th1:abc=\n";
        assert_eq!(built_from_pin(out), VERSION == "7.15.6");
        let other = out.replace("v7.15.6", "v7.15.5");
        assert!(!built_from_pin(&other));
    }

    #[test]
    fn the_pin_is_7_15_x() {
        assert!(VERSION.starts_with("7.15."), "{VERSION}");
    }
}
