//! nginx: the second reference row of `cargo xtask bench` (`return 200;`, the fastest answer
//! a web server gives), beside the hyper no-op server.
//!
//! Debian's `nginx` package, downloaded with `apt-get download` and unpacked with `dpkg-deb -x`
//! into the cache (`~/.cache/oidc-authz/nginx-<Debian version>/`): nothing is installed in the
//! system, so no service starts and nothing listens beyond what the bench starts on 127.0.0.1.
//! An `nginx` on `PATH` or `$OIDC_AUTHZ_NGINX` is used as is. Bench-only: not in `super::all`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util;

/// The environment variable naming an nginx binary to use instead of Debian's.
const BINARY_ENV: &str = "OIDC_AUTHZ_NGINX";

/// The nginx binary, downloaded into the cache first if missing; prints one progress line.
pub fn ensure() -> Result<PathBuf, String> {
    if let Some(binary) = find_binary() {
        println!(
            "[xtask] nginx {}: found at {}",
            version(&binary).unwrap_or_else(|| "(unknown version)".into()),
            binary.display()
        );
        return Ok(binary);
    }
    let debian = candidate()?;
    let dir = util::cache_root()?.join(format!("nginx-{debian}"));
    let binary = dir.join("usr/sbin/nginx");
    if binary.is_file() {
        println!("[xtask] nginx {debian}: cached at {}", dir.display());
        return Ok(binary);
    }
    println!("[xtask] nginx {debian}: downloading Debian's package ...");
    let staging = util::cache_root()?.join(format!("nginx-{debian}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    util::run(
        Command::new("apt-get")
            .args(["download", &format!("nginx={debian}")])
            .current_dir(&staging),
    )
    .map_err(|e| format!("{e}; install nginx yourself or set {BINARY_ENV} to an nginx binary"))?;
    let deb = std::fs::read_dir(&staging)
        .map_err(|e| format!("cannot read {}: {e}", staging.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download nginx left no .deb")?;
    util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staging))?;
    let _ = std::fs::remove_file(&deb);
    util::publish_dir(&staging, &dir, |d| d.join("usr/sbin/nginx").is_file())?;
    println!("[xtask] nginx {debian}: unpacked at {}", dir.display());
    Ok(binary)
}

/// `$OIDC_AUTHZ_NGINX` if it names a file, else `nginx` on `PATH`.
fn find_binary() -> Option<PathBuf> {
    util::find_program(Some(BINARY_ENV), "nginx", &[])
}

/// The Debian version apt would install (`apt-cache policy nginx`'s `Candidate:`).
fn candidate() -> Result<String, String> {
    let out = Command::new("apt-cache")
        .args(["policy", "nginx"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("apt-cache: {e}; install nginx yourself or set {BINARY_ENV}"))?;
    parse_candidate(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        format!("apt-cache knows no nginx package; install nginx yourself or set {BINARY_ENV}")
    })
}

fn parse_candidate(policy: &str) -> Option<String> {
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_owned)
}

/// `1.22.1` from `nginx -v` (`nginx version: nginx/1.22.1`, on stderr).
pub fn version(binary: &Path) -> Option<String> {
    let out = Command::new(binary)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("nginx/"))
        .map(str::to_owned)
}

/// An nginx configuration for the bench: one process (no master), no logs, `return 200;` on
/// `listen`, every file under `dir`.
pub fn config(dir: &Path, listen: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/nginx-tmp;\n  \
         proxy_temp_path {d}/nginx-tmp;\n  fastcgi_temp_path {d}/nginx-tmp;\n  \
         uwsgi_temp_path {d}/nginx-tmp;\n  scgi_temp_path {d}/nginx-tmp;\n  \
         server {{ listen {listen}; keepalive_requests 1000000; location / {{ return 200; }} }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_candidate_version() {
        let policy =
            "nginx:\n  Installed: (none)\n  Candidate: 1.22.1-9+deb12u12\n  Version table:";
        assert_eq!(
            parse_candidate(policy).as_deref(),
            Some("1.22.1-9+deb12u12")
        );
        assert_eq!(parse_candidate("nginx:\n  Candidate: (none)\n"), None);
        assert_eq!(parse_candidate(""), None);
    }
}
