//! Small helpers shared by the components: paths, running commands.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};

/// The workspace root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// `$XDG_CACHE_HOME/oidc-authz`, or `~/.cache/oidc-authz`. Kept in step with
/// `test_support::cache_root`.
pub fn cache_root() -> Result<PathBuf, String> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = match (non_empty("XDG_CACHE_HOME"), non_empty("HOME")) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => PathBuf::from(home).join(".cache"),
        (None, None) => return Err("neither XDG_CACHE_HOME nor HOME is set".into()),
    };
    Ok(base.join("oidc-authz"))
}

/// Runs `program --version` and returns its first output line, or an error naming what to
/// install.
pub fn tool_version(program: &str, hint: &str) -> Result<String, String> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{program}` not found ({e}); {hint}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program} --version` failed ({}); {hint}",
            output.status
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// Runs a command with inherited stdout/stderr and returns its exit status.
pub fn status(cmd: &mut Command) -> Result<ExitStatus, String> {
    cmd.stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))
}

/// Runs a command with inherited stdout/stderr and fails unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let status = status(cmd)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// The process exit code for a child's exit status (1 when killed by a signal).
pub fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)),
        None => ExitCode::FAILURE,
    }
}

/// Replaces `dest` by the fully prepared directory `staging` (same file system), tolerating a
/// concurrent install that got there first when `is_complete(dest)` says so.
pub fn publish_dir(
    staging: &Path,
    dest: &Path,
    is_complete: impl Fn(&Path) -> bool,
) -> Result<(), String> {
    if dest.exists() {
        if is_complete(dest) {
            let _ = std::fs::remove_dir_all(staging);
            return Ok(());
        }
        std::fs::remove_dir_all(dest)
            .map_err(|e| format!("cannot remove broken {}: {e}", dest.display()))?;
    }
    match std::fs::rename(staging, dest) {
        Ok(()) => Ok(()),
        Err(_) if is_complete(dest) => {
            let _ = std::fs::remove_dir_all(staging);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot move {} to {}: {e}",
            staging.display(),
            dest.display()
        )),
    }
}
