//! The `openssl` command: the tests make a throwaway CA with it (`test_ca::TestCa`) for the
//! identity provider over HTTPS, and xtask one for Keycloak's HTTPS listener.
//!
//! Debian's `openssl` package, installed with apt-get when no `openssl` is on `PATH`. Sets
//! nothing: the tests run `openssl` from `PATH`.

use std::process::{Command, Stdio};

use super::{Component, Env};
use crate::util;

/// `openssl`, from Debian's `openssl` package.
pub struct Openssl;

impl Component for Openssl {
    fn ensure_installed(&self) -> Result<Env, String> {
        if let Some(version) = version() {
            println!("[xtask] openssl: found ({version})");
            return Ok(Vec::new());
        }
        println!("[xtask] openssl: not found, installing Debian's openssl ...");
        util::apt_install("openssl", &["--no-install-recommends", "openssl"]).map_err(|e| {
            format!("{e}; install openssl yourself (Debian: apt-get install openssl, as root)")
        })?;
        let version = version().ok_or("apt-get installed openssl, but `openssl` does not run")?;
        println!("[xtask] openssl: installed ({version})");
        Ok(Vec::new())
    }
}

/// `openssl version`'s line, when `openssl` runs.
fn version() -> Option<String> {
    let out = Command::new("openssl")
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
