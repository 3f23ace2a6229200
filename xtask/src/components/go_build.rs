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

/// A Go program built from the repository's sources, `xtask/go/<name>/`, into
/// `<cache>/<name>-<key>/`, the key a hash of its sources and the `go version` ([`cache_key`]),
/// so a warm cache skips the build and an edit rebuilds.
pub struct FromSources {
    /// The directory under `xtask/go/`, and the binary's name.
    pub name: &'static str,
    /// What it is, for messages (`the manifest checker`).
    pub what: &'static str,
    /// How long the first build takes, for the progress line (`a minute or two`).
    pub first_build: &'static str,
    /// Whether a directory holds a complete build.
    pub is_installed: fn(&Path) -> bool,
    /// Builds from the sources (first argument) into an empty staging directory.
    pub build: fn(&Path, &Path) -> Result<(), String>,
}

impl FromSources {
    /// Its sources in the repository.
    pub fn source_dir(&self) -> PathBuf {
        util::repo_root().join("xtask/go").join(self.name)
    }

    /// The binary, built first if its sources or Go changed (in a staging directory renamed
    /// into place when complete); prints one progress line.
    pub fn ensure(&self) -> Result<PathBuf, String> {
        let source = self.source_dir();
        let go = go_version(&format!("to build {} (xtask/go/{})", self.what, self.name))?;
        let key = cache_key(&source_files(&source)?, &go);
        let dir = util::cache_root()?.join(format!("{}-{key}", self.name));
        let label = format!("{} {key}", self.name);
        let binary = dir.join(self.name);
        if (self.is_installed)(&dir) {
            println!("[xtask] {label}: cached at {}", binary.display());
            return Ok(binary);
        }
        println!(
            "[xtask] {label}: building {} from {} into {} ({go}; {} on 2 cores the first time) ...",
            self.what,
            source.display(),
            dir.display(),
            self.first_build,
        );
        let staging = staging_for(&dir)?;
        let result = (self.build)(&source, &staging)
            .and_then(|()| util::publish_dir(&staging, &dir, self.is_installed));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result?;
        println!("[xtask] {label}: installed at {}", binary.display());
        Ok(binary)
    }
}

/// `go.mod`, `go.sum` and the `.go` files of `dir`, sorted by name, with their contents.
pub fn source_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "go.mod" || name == "go.sum" || name.ends_with(".go") {
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            files.push((name, bytes));
        }
    }
    files.sort();
    if !files.iter().any(|(n, _)| n == "go.mod") {
        return Err(format!("{} has no go.mod", dir.display()));
    }
    Ok(files)
}

/// 16 hex digits of FNV-1a (64 bits) over the files (name, length, contents) and the Go
/// version: stable across Rust releases, unlike `DefaultHasher`.
pub fn cache_key(files: &[(String, Vec<u8>)], go_version: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(go_version.as_bytes());
    for (name, contents) in files {
        feed(&[0]);
        feed(name.as_bytes());
        feed(&(contents.len() as u64).to_le_bytes());
        feed(contents);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_sources_and_go() {
        let files = vec![
            ("go.mod".to_owned(), b"module x".to_vec()),
            ("main.go".to_owned(), b"package main".to_vec()),
        ];
        let key = cache_key(&files, "go version go1.26.8 linux/amd64");
        assert_eq!(key.len(), 16);
        assert_eq!(key, cache_key(&files, "go version go1.26.8 linux/amd64"));
        assert_ne!(key, cache_key(&files, "go version go1.26.9 linux/amd64"));
        let mut edited = files.clone();
        edited[1].1.push(b'\n');
        assert_ne!(key, cache_key(&edited, "go version go1.26.8 linux/amd64"));
        // Contents do not leak into names.
        let moved = vec![
            ("go.mod".to_owned(), b"module xmain.go".to_vec()),
            ("".to_owned(), b"package main".to_vec()),
        ];
        assert_ne!(key, cache_key(&moved, "go version go1.26.8 linux/amd64"));
    }
}
