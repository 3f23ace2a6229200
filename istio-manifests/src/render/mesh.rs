//! The mesh config: the `extensionProviders` entry that declares the adapter as an ext_authz
//! provider, and the path normalization, printed as istiod's `istio` ConfigMap or as an
//! `IstioOperator`.

use super::settings::{MeshFormat, Mode, Settings};
use super::yaml_out::{Y, flow, map, metadata, s, to_yaml};
use crate::envoy_contract::{
    HEADERS_TO_DOWNSTREAM_ON_ALLOW, HEADERS_TO_DOWNSTREAM_ON_DENY, HEADERS_TO_UPSTREAM_ON_ALLOW,
    INCLUDE_REQUEST_HEADERS_IN_CHECK,
};

/// The mesh config's `pathNormalization.normalization`: `BASE` (Istio's default) plus merged
/// runs of `/`, so the CUSTOM policy, the routes and the adapter see `//admin` as the `/admin`
/// that nginx (`merge_slashes on`), Tomcat and many frameworks serve. `istio --check` also
/// accepts the stricter `DECODE_AND_MERGE_SLASHES` (which decodes `%2F` first).
pub const PATH_NORMALIZATION: &str = "MERGE_SLASHES";

/// The `extensionProviders` entry.
fn provider(settings: &Settings) -> Y {
    let body = match settings.mode {
        Mode::Http => (
            "envoyExtAuthzHttp",
            map(vec![
                ("service", s(settings.service_host())),
                ("port", Y::Int(settings.port.into())),
                ("timeout", s(&settings.timeout)),
                (
                    "includeRequestHeadersInCheck",
                    flow(INCLUDE_REQUEST_HEADERS_IN_CHECK),
                ),
                (
                    "headersToUpstreamOnAllow",
                    flow(HEADERS_TO_UPSTREAM_ON_ALLOW),
                ),
                (
                    "headersToDownstreamOnAllow",
                    flow(HEADERS_TO_DOWNSTREAM_ON_ALLOW),
                ),
                (
                    "headersToDownstreamOnDeny",
                    flow(HEADERS_TO_DOWNSTREAM_ON_DENY),
                ),
            ]),
        ),
        Mode::Grpc => (
            "envoyExtAuthzGrpc",
            map(vec![
                ("service", s(settings.service_host())),
                ("port", Y::Int(settings.grpc_port.into())),
                ("timeout", s(&settings.timeout)),
            ]),
        ),
    };
    map(vec![("name", s(&settings.provider_name)), body])
}

/// `pathNormalization: {normalization: MERGE_SLASHES}`.
fn path_normalization() -> Y {
    map(vec![("normalization", s(PATH_NORMALIZATION))])
}

/// The mesh config fragment (`pathNormalization`, and the `extensionProviders:` list), as YAML
/// text.
pub fn mesh_config(settings: &Settings) -> String {
    to_yaml(&map(vec![
        ("pathNormalization", path_normalization()),
        ("extensionProviders", Y::Seq(vec![provider(settings)])),
    ]))
}

pub(super) fn mesh_document(settings: &Settings) -> (String, Y) {
    match settings.mesh_format {
        MeshFormat::ConfigMap => (
            format!(
                "# Mesh config: declares the ext_authz provider {name:?} that the AuthorizationPolicy names,\n\
                 # and merges runs of / in paths (pathNormalization) before the policy, the routes and\n\
                 # the adapter see them, as nginx and most frameworks do for the application.\n\
                 # This is istiod's own ConfigMap: applying it REPLACES the mesh config. Merge the\n\
                 # pathNormalization and extensionProviders entries into your current one first\n\
                 # (kubectl -n {ns} get configmap istio -o yaml), or set them at install time\n\
                 # (--mesh-format istiooperator, or istiod's Helm values meshConfig.pathNormalization\n\
                 # and meshConfig.extensionProviders).\n",
                name = settings.provider_name,
                ns = settings.istio_namespace,
            ),
            map(vec![
                ("apiVersion", s("v1")),
                ("kind", s("ConfigMap")),
                ("metadata", metadata("istio", &settings.istio_namespace)),
                (
                    "data",
                    map(vec![("mesh", Y::Literal(mesh_config(settings)))]),
                ),
            ]),
        ),
        MeshFormat::IstioOperator => (
            format!(
                "# Mesh config for `istioctl install -f`: declares the ext_authz provider {:?}, and merges\n\
                 # runs of / in paths (pathNormalization) as nginx and most frameworks do.\n",
                settings.provider_name
            ),
            map(vec![
                ("apiVersion", s("install.istio.io/v1alpha1")),
                ("kind", s("IstioOperator")),
                (
                    "metadata",
                    metadata(
                        &format!("{}-mesh", settings.provider_name),
                        &settings.istio_namespace,
                    ),
                ),
                (
                    "spec",
                    map(vec![(
                        "meshConfig",
                        map(vec![
                            ("pathNormalization", path_normalization()),
                            ("extensionProviders", Y::Seq(vec![provider(settings)])),
                        ]),
                    )]),
                ),
            ]),
        ),
    }
}
