//! oauth2-proxy: the peer of `cargo xtask bench` (the project replaces it, flag for flag).
//!
//! Built from the Go module proxy with `go install
//! github.com/oauth2-proxy/oauth2-proxy/v7@v<VERSION>` into `<cache>/oauth2-proxy-<version>/`
//! (`GOBIN`, downloads in `<cache>/go/`), pinned by [`VERSION`] only, with the version stamped in (`--version` says it). The
//! binary is built in a temporary sibling directory and renamed into place when complete. A
//! cached binary counts only if `go version -m` names the pinned module version. Bench-only: not
//! in `super::all`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::go_build;
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
    let go = go_build::go_version("to build oauth2-proxy")?;
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
    go_build::install_binary(
        dir,
        &format!("oauth2-proxy v{VERSION}"),
        &format!("{MODULE}@v{VERSION}"),
        &format!("-X {MODULE}/pkg/version.VERSION=v{VERSION}"),
        |d| is_installed(&d.join("oauth2-proxy")),
    )
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
