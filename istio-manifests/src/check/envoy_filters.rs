//! The EnvoyFilters among the manifests that set the gateway's
//! `headers_with_underscores_action`, each as an [`UnderscoreSetting`].

use super::model::Out;
use super::resources::Res;
use crate::render::HEADERS_WITH_UNDERSCORES_ACTION;
use crate::yaml::Node;

/// The value of the first of `keys` present (protobuf JSON takes `snake_case` and `camelCase`).
fn get_any<'a>(node: &'a Node, keys: &[&str]) -> Option<&'a Node> {
    keys.iter().find_map(|k| node.get(k))
}

/// An EnvoyFilter's patch setting `headers_with_underscores_action`: the filter, the action's
/// node, whether the patch applies to gateways (`NETWORK_FILTER`, context `GATEWAY` or `ANY`),
/// and the patch.
pub(super) type UnderscoreSetting<'a> = (&'a Res<'a>, &'a Node, bool, &'a Node);

/// The EnvoyFilters' patches that set `headers_with_underscores_action`; an `ALLOW` (Envoy's
/// default, spelt out) is reported on the way.
pub(super) fn underscore_settings<'a>(
    out: &mut Out,
    resources: &'a [Res<'a>],
) -> Vec<UnderscoreSetting<'a>> {
    // `(filter, its action node, whether the patch applies to gateways, the patch)`.
    let mut settings: Vec<UnderscoreSetting> = Vec::new();
    for filter in resources.iter().filter(|r| r.is("EnvoyFilter")) {
        for patch in filter
            .spec
            .and_then(|s| s.get_ci("configPatches"))
            .map(Node::items)
            .unwrap_or(&[])
        {
            let Some(action) = patch
                .path(&["patch", "value"])
                .and_then(|v| get_any(v, &["typed_config", "typedConfig"]))
                .and_then(|t| {
                    get_any(
                        t,
                        &["common_http_protocol_options", "commonHttpProtocolOptions"],
                    )
                })
                .and_then(|o| {
                    get_any(
                        o,
                        &[
                            "headers_with_underscores_action",
                            "headersWithUnderscoresAction",
                        ],
                    )
                })
            else {
                continue;
            };
            let gateway = patch.str_at(&["applyTo"]) == Some("NETWORK_FILTER")
                && patch
                    .str_at(&["match", "context"])
                    .is_none_or(|c| c == "GATEWAY" || c == "ANY");
            if action.as_str() == Some("ALLOW") {
                out.add(
                    filter.file,
                    action.line,
                    "underscore-headers",
                    format!("EnvoyFilter {} sets headers_with_underscores_action: ALLOW, Envoy's default: `X-Auth_Request-User` passes, and CGI, PHP and WSGI applications read it as X-Auth-Request-User (HTTP_X_AUTH_REQUEST_USER)", filter.name()),
                    format!("headers_with_underscores_action: {HEADERS_WITH_UNDERSCORES_ACTION}"),
                );
            }
            settings.push((filter, action, gateway, patch));
        }
    }
    settings
}
