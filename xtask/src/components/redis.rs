//! Redis: the session store, lock and revocation list of the Redis-mode tests.
//!
//! Debian's `redis-server` package, installed with apt-get when no `redis-server` is found
//! (`apt-get update` only when the install fails without it). An explicit
//! `OIDC_AUTHZ_REDIS_SERVER` pointing at a binary is used as is. The tests start their own
//! servers on free ports (`test_support::redis`); the package's system service is not used.
//!
//! Sets `OIDC_AUTHZ_REDIS_SERVER` to the binary for the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Component, Env};
use crate::util;

/// The environment variable read by `test_support::redis::RedisServer::start`.
const BINARY_ENV: &str = "OIDC_AUTHZ_REDIS_SERVER";

/// Redis, from Debian's `redis-server` package.
pub struct Redis;

impl Component for Redis {
    fn ensure_installed(&self) -> Result<Env, String> {
        let binary = match find_binary() {
            Some(binary) => {
                println!(
                    "[xtask] redis-server {}: found at {}",
                    version(&binary).unwrap_or_else(|| "(unknown version)".into()),
                    binary.display()
                );
                binary
            }
            None => {
                println!("[xtask] redis-server: not found, installing Debian's redis-server ...");
                install()?;
                let binary = find_binary().ok_or(
                    "apt-get installed redis-server, but no redis-server binary is on PATH or \
                     in /usr/bin",
                )?;
                println!(
                    "[xtask] redis-server {}: installed at {}",
                    version(&binary).unwrap_or_else(|| "(unknown version)".into()),
                    binary.display()
                );
                binary
            }
        };
        Ok(vec![(BINARY_ENV.to_owned(), binary.into_os_string())])
    }
}

/// `$OIDC_AUTHZ_REDIS_SERVER` if it names a file, else `redis-server` on `PATH` or in
/// `/usr/bin` (where Debian puts it).
fn find_binary() -> Option<PathBuf> {
    util::find_program(Some(BINARY_ENV), "redis-server", &["/usr/bin"])
}

/// The `v=` field of `redis-server --version` (`Redis server v=7.0.15 sha=...`).
fn version(binary: &Path) -> Option<String> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_version(output: &str) -> Option<String> {
    output
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .map(str::to_owned)
}

fn install() -> Result<(), String> {
    let hint = "install redis-server yourself (Debian: apt-get install redis-server, as root) \
                or set OIDC_AUTHZ_REDIS_SERVER to a redis-server binary";
    util::apt_install("redis-server", &["--no-install-recommends", "redis-server"])
        .map_err(|e| format!("{e}; {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_line() {
        let line = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d";
        assert_eq!(parse_version(line).as_deref(), Some("7.0.15"));
        assert_eq!(parse_version("nonsense"), None);
    }
}
