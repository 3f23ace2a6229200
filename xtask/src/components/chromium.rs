//! Chromium and chromedriver for the browser tests: Debian's `chromium` and `chromium-driver`
//! packages, installed with apt-get when `/usr/bin/chromium` or `/usr/bin/chromedriver` is
//! missing (needs root; `apt-get update` only when the first install attempt fails).
//!
//! Sets `OIDC_AUTHZ_CHROMIUM` and `OIDC_AUTHZ_CHROMEDRIVER` for the tests
//! (`test_support::browser`).

use std::path::Path;
use std::process::Command;

use super::{Component, Env};
use crate::util;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PACKAGES: &[&str] = &["chromium", "chromium-driver"];

/// The environment variables read by `test_support::browser`.
const CHROMIUM_ENV: &str = "OIDC_AUTHZ_CHROMIUM";
const CHROMEDRIVER_ENV: &str = "OIDC_AUTHZ_CHROMEDRIVER";

/// Chromium + chromedriver, from Debian.
pub struct Chromium;

impl Component for Chromium {
    fn ensure_installed(&self) -> Result<Env, String> {
        let installed = || Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file();
        if !installed() {
            println!(
                "[xtask] chromium: installing Debian packages {} with apt-get ...",
                PACKAGES.join(" ")
            );
            apt_install()?;
            if !installed() {
                return Err(format!(
                    "apt-get installed {} but {CHROMIUM} or {CHROMEDRIVER} is still missing",
                    PACKAGES.join(" ")
                ));
            }
        }
        let hint = "reinstall Debian's chromium and chromium-driver";
        let chromium = util::tool_version(CHROMIUM, hint)?;
        let driver = util::tool_version(CHROMEDRIVER, hint)?;
        println!("[xtask] chromium: {chromium} at {CHROMIUM}; {driver} at {CHROMEDRIVER}");
        Ok(vec![
            (CHROMIUM_ENV.to_owned(), CHROMIUM.into()),
            (CHROMEDRIVER_ENV.to_owned(), CHROMEDRIVER.into()),
        ])
    }
}

fn apt_install() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if uid != "0" {
        return Err(format!(
            "{CHROMIUM} or {CHROMEDRIVER} is missing and only root can install them: run \
             `sudo apt-get install {}`",
            PACKAGES.join(" ")
        ));
    }
    let mut args = vec!["-q"];
    args.extend_from_slice(PACKAGES);
    util::apt_install("chromium", &args)
}
