//! The manifest checker (`xtask/go/manifest-check/`): validates Kubernetes objects by strict
//! decoding into k8s.io/api's types, and Istio's custom resources against the CRD schemas of
//! istio.io/api with k8s.io/apiextensions-apiserver (see its `main.go`).
//!
//! Built with `go build` from the repository's sources (`go.mod`/`go.sum` pin every module; the
//! build refuses to change them) into `<cache>/manifest-check-<hash>/`, keyed by a hash of its
//! sources and the `go version`, so a warm cache skips the build. Istio's CRDs
//! (`kubernetes/customresourcedefinitions.gen.yaml` of the pinned istio.io/api) and the Gateway
//! API's standard Gateway, HTTPRoute and ReferenceGrant CRDs (`config/crd/standard/` of the
//! pinned sigs.k8s.io/gateway-api) are copied next to it into `crds/`, where the checker reads
//! them. Exported as `OIDC_AUTHZ_MANIFEST_CHECK`.

use std::path::{Path, PathBuf};

use super::{Component, Env, go_build};
use crate::util;

/// The manifest checker, for the chart's and the renderer's tests.
pub struct ManifestCheck;

impl Component for ManifestCheck {
    fn ensure_installed(&self) -> Result<Env, String> {
        Ok(vec![(
            "OIDC_AUTHZ_MANIFEST_CHECK".to_owned(),
            ensure()?.into(),
        )])
    }
}

/// How it is built and cached.
const PROGRAM: go_build::FromSources = go_build::FromSources {
    name: "manifest-check",
    what: "the manifest checker",
    first_build: "a minute or two",
    is_installed,
    build,
};

/// The binary, built first if its sources or Go changed; prints one progress line.
pub fn ensure() -> Result<PathBuf, String> {
    PROGRAM.ensure()
}

/// Whether `dir` holds the binary and at least one CRD file.
fn is_installed(dir: &Path) -> bool {
    dir.join("manifest-check").is_file()
        && std::fs::read_dir(dir.join("crds")).is_ok_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml")))
        })
}

/// The Gateway API CRDs the checker knows: the kinds `ext-authz-adapter istio --ingress
/// gateway-api|waypoint` renders (the standard channel's files, without the
/// ValidatingAdmissionPolicy that shares the directory).
const GATEWAY_API_CRDS: &[&str] = &["gateways", "httproutes", "referencegrants"];

/// The directory and version of a Go module the checker pins (`go list -m`).
fn module_dir(source: &Path, module: &str) -> Result<(String, PathBuf), String> {
    let listed = go_build::go_output(
        go_build::go_command()?
            .args(["list", "-m", "-f", "{{.Version}} {{.Dir}}", module])
            .current_dir(source),
    )?;
    let (version, dir) = listed
        .split_once(' ')
        .filter(|(_, d)| !d.is_empty())
        .ok_or_else(|| format!("`go list -m {module}` said {listed:?}"))?;
    Ok((version.to_owned(), PathBuf::from(dir)))
}

/// Copies one CRD file into `crds/`.
fn copy_crds(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map(drop).map_err(|e| {
        format!(
            "cannot copy the CRDs {} to {}: {e}",
            from.display(),
            to.display()
        )
    })
}

/// Builds the binary into `staging` and copies istio.io/api's and sigs.k8s.io/gateway-api's
/// CRDs into `staging/crds/`.
fn build(source: &Path, staging: &Path) -> Result<(), String> {
    let crds = staging.join("crds");
    std::fs::create_dir_all(&crds).map_err(|e| format!("cannot create {}: {e}", crds.display()))?;
    // -mod=readonly (the default): a go.mod or go.sum that does not pin everything fails the
    // build instead of being changed.
    util::run(
        go_build::go_command()?
            .args(["build", "-trimpath", "-ldflags=-s -w", "-o"])
            .arg(staging.join("manifest-check"))
            .arg(".")
            .current_dir(source),
    )?;
    let (version, istio) = module_dir(source, "istio.io/api")?;
    copy_crds(
        &istio.join("kubernetes/customresourcedefinitions.gen.yaml"),
        &crds.join(format!("istio-api-{version}.yaml")),
    )?;
    let (version, gateway_api) = module_dir(source, "sigs.k8s.io/gateway-api")?;
    for kind in GATEWAY_API_CRDS {
        copy_crds(
            &gateway_api.join(format!(
                "config/crd/standard/gateway.networking.k8s.io_{kind}.yaml"
            )),
            &crds.join(format!("gateway-api-{version}-{kind}.yaml")),
        )?;
    }
    if is_installed(staging) {
        Ok(())
    } else {
        Err(format!(
            "the build left no checker in {}",
            staging.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sources_are_in_the_repository() {
        let files = go_build::source_files(&PROGRAM.source_dir()).expect("xtask/go/manifest-check");
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for name in ["go.mod", "go.sum", "main.go"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
    }
}
