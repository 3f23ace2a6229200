//! Building Go programs for the tests (Helm, the manifest checker) with the machine's Go, every
//! download going to the Go module proxy and into `<cache>/go/` (`GOPATH`, `GOMODCACHE`), never
//! into the repository or `~/go`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util;

/// `go` with the cache's `GOPATH`/`GOMODCACHE` (writable, so the cache can be deleted), module
/// mode, the machine's toolchain only (`GOTOOLCHAIN=local`) and no VCS stamping.
pub fn go_command() -> Result<Command, String> {
    let gopath = util::cache_root()?.join("go");
    let mut cmd = Command::new("go");
    cmd.env("GOPATH", &gopath)
        .env("GOMODCACHE", gopath.join("pkg").join("mod"))
        .env("GOFLAGS", "-modcacherw -buildvcs=false")
        .env("GO111MODULE", "on")
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null());
    Ok(cmd)
}

/// `go version` (`go version go1.26.8 linux/amd64`), or an error naming what to install and
/// why (`what`: "to build Helm").
pub fn go_version(what: &str) -> Result<String, String> {
    let hint = format!("install Go 1.26 or later (Debian: golang-go) {what}");
    let out = go_command()?
        .arg("version")
        .output()
        .map_err(|e| format!("`go` not found ({e}); {hint}"))?;
    if !out.status.success() {
        return Err(format!("`go version` failed ({}); {hint}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The standard output of a `go` command that must succeed, trimmed.
pub fn go_output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `go install PACKAGE@VERSION` (with `ldflags`) into `dir`: built in a temporary sibling
/// directory (`GOBIN`), checked with `is_installed(staging)`, and renamed into place when
/// complete ([`util::publish_dir`]). `what` names it in messages (`Helm v4.3.2`).
pub fn install_binary(
    dir: &Path,
    what: &str,
    package_at_version: &str,
    ldflags: &str,
    is_installed: impl Fn(&Path) -> bool,
) -> Result<(), String> {
    let staging = staging_for(dir)?;
    let parent = staging.parent().ok_or("cache dir has no parent")?;
    let result = go_command()
        .and_then(|mut cmd| {
            util::run(
                cmd.args(["install", "-trimpath"])
                    .arg(format!("-ldflags={ldflags}"))
                    .arg(package_at_version)
                    .env("GOBIN", &staging)
                    .current_dir(parent),
            )
        })
        .and_then(|()| {
            if is_installed(&staging) {
                Ok(())
            } else {
                Err(format!(
                    "go install did not produce {what} in {}",
                    staging.display()
                ))
            }
        })
        .and_then(|()| util::publish_dir(&staging, dir, &is_installed));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// A new, empty temporary sibling of the cache directory `dir`, to build in before
/// [`util::publish_dir`] renames it into place.
pub fn staging_for(dir: &Path) -> Result<PathBuf, String> {
    let parent = dir.parent().ok_or("cache dir has no parent")?;
    let name = dir
        .file_name()
        .ok_or("cache dir has no name")?
        .to_string_lossy();
    let staging = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    Ok(staging)
}
