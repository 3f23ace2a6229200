//! The EnvoyFilter that makes the ingress gateway refuse header names with underscores (Envoy's
//! `headers_with_underscores_action`, which Istio has no mesh setting for).

use super::settings::{Ingress, Settings};
use super::targets::gateway_ref;
use super::yaml_out::{Y, labels, map, metadata, s};

/// The ingress gateway's `headers_with_underscores_action` (Envoy's default is `ALLOW`; Istio
/// has no mesh field for it, hence an EnvoyFilter): a request with `X-Auth_Request-User` is
/// refused with 400 instead of reaching a CGI-style application as `HTTP_X_AUTH_REQUEST_USER`.
pub const HEADERS_WITH_UNDERSCORES_ACTION: &str = "REJECT_REQUEST";

/// The name of Envoy's HTTP connection manager network filter, as an EnvoyFilter matches it.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";

/// The `@type` of the HTTP connection manager's `typed_config`.
pub const HCM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// The EnvoyFilter that sets the ingress gateway's `headers_with_underscores_action` (the
/// shape of Istio's own EnvoyFilter example that merges into the HTTP connection manager): on
/// the gateway's pods (`workloadSelector`, in istiod's namespace), or for a Gateway API
/// Gateway on that Gateway (`targetRefs`, in its namespace).
pub(super) fn envoy_filter(settings: &Settings) -> Y {
    let (namespace, attachment) = match settings.ingress {
        Ingress::GatewayApi | Ingress::Waypoint => (
            &settings.app_namespace,
            ("targetRefs", Y::Seq(vec![gateway_ref(&settings.gateway)])),
        ),
        Ingress::Istio => (
            &settings.istio_namespace,
            (
                "workloadSelector",
                map(vec![("labels", labels(&settings.gateway_selector))]),
            ),
        ),
    };
    map(vec![
        ("apiVersion", s("networking.istio.io/v1alpha3")),
        ("kind", s("EnvoyFilter")),
        (
            "metadata",
            metadata(&settings.envoy_filter_name(), namespace),
        ),
        (
            "spec",
            map(vec![
                attachment,
                (
                    "configPatches",
                    Y::Seq(vec![map(vec![
                        ("applyTo", s("NETWORK_FILTER")),
                        (
                            "match",
                            map(vec![
                                ("context", s("GATEWAY")),
                                (
                                    "listener",
                                    map(vec![(
                                        "filterChain",
                                        map(vec![("filter", map(vec![("name", s(HCM_FILTER))]))]),
                                    )]),
                                ),
                            ]),
                        ),
                        (
                            "patch",
                            map(vec![
                                ("operation", s("MERGE")),
                                (
                                    "value",
                                    map(vec![(
                                        "typed_config",
                                        map(vec![
                                            ("@type", s(HCM_TYPE_URL)),
                                            (
                                                "common_http_protocol_options",
                                                map(vec![(
                                                    "headers_with_underscores_action",
                                                    s(HEADERS_WITH_UNDERSCORES_ACTION),
                                                )]),
                                            ),
                                        ]),
                                    )]),
                                ),
                            ]),
                        ),
                    ])]),
                ),
            ]),
        ),
    ])
}
