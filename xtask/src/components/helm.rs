//! Helm, for `helm lint` and `helm template` of the chart in the tests
//! (`ext-authz-adapter/tests/manifests_validate.rs`).
//!
//! Built from the Go module proxy with `go install helm.sh/helm/v4/cmd/helm@v<VERSION>` into
//! `<cache>/helm-<version>/` (`GOBIN`), pinned by [`VERSION`] only, with the version stamped in
//! as Helm's own build does. Its default Kubernetes version (`helm template` without
//! `--kube-version`) follows the client-go it was built with. The binary is built in a
//! temporary sibling directory and renamed into place when complete; a cached binary counts
//! only if `helm version` names the pinned version. Exported as `OIDC_AUTHZ_HELM`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Component, Env, go_build};
use crate::util;

/// The one pin of the Helm version (Go module `helm.sh/helm/v4`).
pub const VERSION: &str = "4.3.2";

/// The Go module path.
const MODULE: &str = "helm.sh/helm/v4";

/// Helm, for the chart's tests.
pub struct Helm;

impl Component for Helm {
    fn ensure_installed(&self) -> Result<Env, String> {
        Ok(vec![("OIDC_AUTHZ_HELM".to_owned(), ensure()?.into())])
    }
}

/// The binary, built first if missing; prints one progress line.
pub fn ensure() -> Result<PathBuf, String> {
    let dir = util::cache_root()?.join(format!("helm-{VERSION}"));
    let label = format!("helm {VERSION}");
    let binary = dir.join("helm");
    if is_installed(&binary) {
        println!("[xtask] {label}: cached at {}", binary.display());
        return Ok(binary);
    }
    let go = go_build::go_version("to build Helm")?;
    println!(
        "[xtask] {label}: building with `go install {MODULE}/cmd/helm@v{VERSION}` into {} ({go}; \
         about 3 minutes on 2 cores) ...",
        dir.display()
    );
    install(&dir)?;
    if !is_installed(&binary) {
        return Err(format!(
            "go install finished, but {} is not Helm v{VERSION}",
            binary.display()
        ));
    }
    println!("[xtask] {label}: installed at {}", binary.display());
    Ok(binary)
}

/// Whether `binary` exists and says it is the pinned version.
fn is_installed(binary: &Path) -> bool {
    binary.is_file()
        && Command::new(binary)
            .args(["version", "--template", "{{.Version}}"])
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .is_some_and(|o| is_pinned_version(&String::from_utf8_lossy(&o.stdout)))
}

/// Whether `helm version --template {{.Version}}` printed the pinned version.
fn is_pinned_version(output: &str) -> bool {
    output.trim() == format!("v{VERSION}")
}

fn install(dir: &Path) -> Result<(), String> {
    go_build::install_binary(
        dir,
        &format!("Helm v{VERSION}"),
        &format!("{MODULE}/cmd/helm@v{VERSION}"),
        &format!("-s -w -X {MODULE}/internal/version.version=v{VERSION}"),
        |d| is_installed(&d.join("helm")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_pinned_version() {
        assert!(is_pinned_version(&format!("v{VERSION}\n")));
        assert!(!is_pinned_version("v4.3"));
        assert!(!is_pinned_version("v4.3.1"));
    }

    #[test]
    fn the_pin_is_helm_4() {
        assert!(VERSION.starts_with("4."), "{VERSION}");
    }
}
