//! `cargo xtask bench`.

use std::process::ExitCode;

/// Runs `cargo xtask bench` with the arguments after it.
pub fn run(_args: &[String]) -> Result<ExitCode, String> {
    Err("cargo xtask bench: not built yet".to_owned())
}
