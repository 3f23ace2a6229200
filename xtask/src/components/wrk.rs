//! wrk: the HTTP load generator of `cargo xtask bench`.
//!
//! Debian's `wrk` package, installed with apt-get when no `wrk` is found (`apt-get update` only
//! when the install fails without it). An explicit `OIDC_AUTHZ_WRK` pointing at a binary is used
//! as is. Bench-only: not in `super::all`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util;

/// The environment variable naming a wrk binary to use instead of Debian's.
const BINARY_ENV: &str = "OIDC_AUTHZ_WRK";

/// The wrk binary, installed first if missing; prints one progress line.
pub fn ensure() -> Result<PathBuf, String> {
    if let Some(binary) = find_binary() {
        println!(
            "[xtask] wrk {}: found at {}",
            version(&binary).unwrap_or_else(|| "(unknown version)".into()),
            binary.display()
        );
        return Ok(binary);
    }
    println!("[xtask] wrk: not found, installing Debian's wrk ...");
    install()?;
    let binary = find_binary()
        .ok_or("apt-get installed wrk, but no wrk binary is on PATH or in /usr/bin")?;
    println!(
        "[xtask] wrk {}: installed at {}",
        version(&binary).unwrap_or_else(|| "(unknown version)".into()),
        binary.display()
    );
    Ok(binary)
}

/// `$OIDC_AUTHZ_WRK` if it names a file, else `wrk` on `PATH` or in `/usr/bin`.
fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(BINARY_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("wrk"))
        .find(|p| p.is_file())
}

/// `4.1.0` from `wrk -v` (`wrk 4.1.0 [epoll] Copyright (C) 2012 Will Glozer`; it exits 1), or
/// `4.1.0 (Debian 4.1.0-3+b2)` from Debian's build (`wrk debian/4.1.0-3+b2 [epoll] ...`).
pub fn version(binary: &Path) -> Option<String> {
    let out = Command::new(binary)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_version(&text)
}

fn parse_version(output: &str) -> Option<String> {
    let mut words = output.split_whitespace();
    words.find(|w| *w == "wrk")?;
    let word = words.next()?;
    if let Some(debian) = word.strip_prefix("debian/") {
        let upstream = debian.split('-').next().unwrap_or(debian);
        return Some(format!("{upstream} (Debian {debian})"));
    }
    word.starts_with(|c: char| c.is_ascii_digit())
        .then(|| word.to_owned())
}

fn install() -> Result<(), String> {
    let hint = "install wrk yourself (Debian: apt-get install wrk, as root) or set \
                OIDC_AUTHZ_WRK to a wrk binary";
    util::apt_install("wrk", &["--no-install-recommends", "wrk"])
        .map_err(|e| format!("{e}; {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_line() {
        let line = "wrk 4.1.0 [epoll] Copyright (C) 2012 Will Glozer\nUsage: wrk <options> <url>";
        assert_eq!(parse_version(line).as_deref(), Some("4.1.0"));
        assert_eq!(parse_version("nonsense"), None);
        let debian = "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer";
        assert_eq!(
            parse_version(debian).as_deref(),
            Some("4.1.0 (Debian 4.1.0-3+b2)")
        );
    }
}
