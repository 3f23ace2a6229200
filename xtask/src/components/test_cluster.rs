//! The test cluster (`xtask/go/test-cluster/`): the real `kube-apiserver` and `kubectl` of
//! `k8s.io/kubernetes` with etcd embedded, one program, for the tests that run the migration
//! guide's `kubectl` and `helm` commands against a cluster (`test_support::cluster`).
//!
//! Built with `go build` from the repository's sources (`go.mod`/`go.sum` pin every module,
//! `k8s.io/kubernetes` at [`KUBERNETES_VERSION`]) into `<cache>/test-cluster-<hash>/`, keyed by
//! a hash of its sources and the `go version`; a warm cache skips the build (the first one takes
//! about 10 minutes on 2 cores). The Kubernetes version is stamped in as Kubernetes' own build
//! does, so `kubectl version` and Helm's `kubeVersion` checks see it. A `kubectl` link to the
//! program sits next to it. Exported as `OIDC_AUTHZ_TEST_CLUSTER`.

use std::path::{Path, PathBuf};

use super::{Component, Env, go_build};
use crate::util;

/// The Kubernetes release the program is built from: `k8s.io/kubernetes` in its `go.mod`
/// (checked by a test), its staging modules at the matching `v0.x.y`.
pub const KUBERNETES_VERSION: &str = "1.37.2";

/// The test cluster, for the migration guide's test.
pub struct TestCluster;

impl Component for TestCluster {
    fn ensure_installed(&self) -> Result<Env, String> {
        Ok(vec![(
            "OIDC_AUTHZ_TEST_CLUSTER".to_owned(),
            ensure()?.into(),
        )])
    }
}

/// How it is built and cached.
const PROGRAM: go_build::FromSources = go_build::FromSources {
    name: "test-cluster",
    what: "the test cluster (kube-apiserver, etcd, kubectl)",
    first_build: "about 10 minutes",
    is_installed,
    build,
};

/// The binary, built first if its sources or Go changed; prints one progress line.
pub fn ensure() -> Result<PathBuf, String> {
    PROGRAM.ensure()
}

/// Whether `dir` holds the program and its `kubectl` link.
fn is_installed(dir: &Path) -> bool {
    dir.join("test-cluster").is_file() && dir.join("kubectl").is_file()
}

/// The `-ldflags` that stamp the Kubernetes version in (`k8s.io/component-base/version`).
fn ldflags() -> String {
    let (major, minor) = major_minor(KUBERNETES_VERSION);
    let var = "k8s.io/component-base/version";
    format!(
        "-s -w -X {var}.gitVersion=v{KUBERNETES_VERSION} -X {var}.gitMajor={major} \
         -X {var}.gitMinor={minor} -X {var}.gitTreeState=clean"
    )
}

/// `("1", "37")` of `"1.37.2"`.
fn major_minor(version: &str) -> (&str, &str) {
    let mut parts = version.split('.');
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

/// Builds the program into `staging` and links `kubectl` to it.
fn build(source: &Path, staging: &Path) -> Result<(), String> {
    // -mod=readonly (the default): a go.mod or go.sum that does not pin everything fails the
    // build instead of being changed.
    util::run(
        go_build::go_command()?
            .args(["build", "-trimpath"])
            .arg(format!("-ldflags={}", ldflags()))
            .arg("-o")
            .arg(staging.join("test-cluster"))
            .arg(".")
            .current_dir(source),
    )?;
    std::os::unix::fs::symlink("test-cluster", staging.join("kubectl"))
        .map_err(|e| format!("cannot link kubectl in {}: {e}", staging.display()))?;
    if is_installed(staging) {
        Ok(())
    } else {
        Err(format!(
            "the build left no test cluster in {}",
            staging.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_is_the_go_mod_s() {
        let files = go_build::source_files(&PROGRAM.source_dir()).expect("xtask/go/test-cluster");
        let go_mod = files
            .iter()
            .find(|(n, _)| n == "go.mod")
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .expect("go.mod");
        assert!(
            go_mod.contains(&format!("k8s.io/kubernetes v{KUBERNETES_VERSION}\n")),
            "go.mod does not require k8s.io/kubernetes v{KUBERNETES_VERSION}:\n{go_mod}"
        );
        let (_, minor) = major_minor(KUBERNETES_VERSION);
        assert!(
            go_mod.contains(&format!("k8s.io/api => k8s.io/api v0.{minor}.")),
            "the staging modules are not at v0.{minor}: {go_mod}"
        );
    }

    #[test]
    fn the_version_is_stamped() {
        assert_eq!(major_minor("1.37.2"), ("1", "37"));
        let flags = ldflags();
        assert!(flags.contains(&format!("version.gitVersion=v{KUBERNETES_VERSION} ")));
        assert!(flags.contains("version.gitMajor=1 "));
    }
}
