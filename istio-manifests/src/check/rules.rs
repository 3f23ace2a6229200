//! The linter's rules, by name, with what each catches: the `rule` of every finding is one of
//! them.

/// Every rule, with what it catches.
pub const RULES: &[(&str, &str)] = &[
    (
        "yaml-syntax",
        "YAML that does not parse (the rest is checked as if repaired, when it can be)",
    ),
    ("duplicate-key", "a key given twice in one mapping"),
    (
        "key-case",
        "a wrongly capitalised field name (`Spec:`): field names are case-sensitive",
    ),
    (
        "metadata-name",
        "an invalid metadata.name or metadata.namespace (`nginx=oauth2-policy`)",
    ),
    (
        "policy-nested-under-selector",
        "AuthorizationPolicy action/provider/rules indented under `selector`",
    ),
    (
        "policy-action",
        "a CUSTOM policy without provider, a provider without CUSTOM, or CUSTOM without rules",
    ),
    (
        "provider-undeclared",
        "the policy's provider.name is not an extensionProviders name",
    ),
    (
        "provider-service",
        "the provider's service is not a Service in the files (wrong name or namespace)",
    ),
    (
        "provider-port",
        "the provider's port is not the Service's (HTTP or gRPC) port",
    ),
    (
        "mesh-namespace",
        "the `istio` mesh ConfigMap is not in istiod's namespace",
    ),
    (
        "check-headers",
        "`cookie` or `x-forwarded-proto` missing from includeRequestHeadersInCheck",
    ),
    (
        "forwarded-host",
        "`x-forwarded-host` in includeRequestHeadersInCheck: the client's value, while Envoy routes by Host",
    ),
    (
        "path-normalization",
        "a mesh config that does not merge `//` (pathNormalization: MERGE_SLASHES or DECODE_AND_MERGE_SLASHES)",
    ),
    (
        "underscore-headers",
        "nothing sets the ingress gateway's (or Gateway API Gateway's) headers_with_underscores_action (an EnvoyFilter with REJECT_REQUEST)",
    ),
    (
        "header-wildcard",
        "a lone \"*\" in a header list (Istio rejects the provider)",
    ),
    (
        "deprecated-field",
        "includeHeadersInCheck (renamed includeRequestHeadersInCheck)",
    ),
    (
        "deny-headers",
        "`set-cookie` or `content-type` missing from headersToDownstreamOnDeny",
    ),
    (
        "allow-headers",
        "`set-cookie` missing from headersToDownstreamOnAllow (refreshed sessions)",
    ),
    (
        "upstream-headers",
        "no identity header in headersToUpstreamOnAllow",
    ),
    (
        "path-prefix",
        "pathPrefix set: the adapter's /oauth2 endpoints move and stop matching",
    ),
    (
        "fail-open",
        "failOpen: true lets every request through when the adapter is down",
    ),
    (
        "callback-not-checked",
        "the callback path (or another of the adapter's endpoints) excluded from the CUSTOM policy (notPaths, paths)",
    ),
    (
        "idp-protected",
        "the identity provider's host behind the CUSTOM policy (login loop)",
    ),
    (
        "backchannel-logout-checked",
        "the provider's back-channel logout POST goes through the check (no body), on a host whose adapter prefix is routed to the adapter",
    ),
    (
        "backchannel-logout-exempt",
        "the exemption of the back-channel logout from the check covers more than POST of that exact path",
    ),
    (
        "backchannel-logout-route",
        "the unchecked back-channel logout POST is routed to something else than the adapter",
    ),
    (
        "hosts-do-not-meet",
        "a VirtualService host that no Gateway it names serves",
    ),
    (
        "gateway-ref",
        "a VirtualService naming a Gateway that is in another namespace, or none",
    ),
    (
        "callback-not-routed",
        "no VirtualService or HTTPRoute rule for the callback path on a protected host",
    ),
    (
        "prefix-route",
        "the adapter's prefix (`/oauth2/`) of a protected host routed to the application, not the adapter (VirtualService or HTTPRoute)",
    ),
    (
        "rewrite-strips-prefix",
        "a VirtualService rewrite or HTTPRoute URLRewrite that strips /oauth2 on the way to the adapter",
    ),
    (
        "destination-port",
        "a VirtualService destination or HTTPRoute backendRef port that the Service does not expose",
    ),
    (
        "route-parent",
        "an HTTPRoute parentRef naming a Gateway API Gateway that is not among the files, is in another namespace, or has no such listener (sectionName)",
    ),
    (
        "route-hosts-do-not-meet",
        "an HTTPRoute hostname that no listener of its parent Gateway serves",
    ),
    (
        "policy-target",
        "a CUSTOM policy's targetRefs naming a Gateway that is not among the files, or in another namespace, or not of group gateway.networking.k8s.io",
    ),
    (
        "policy-hosts",
        "an HTTPRoute hostname on the Gateway a CUSTOM policy targets that the policy does not check",
    ),
    (
        "waypoint-underscore-headers",
        "a CUSTOM policy on an ambient waypoint, for which nothing refuses header names with underscores (no verified equivalent of the gateway's EnvoyFilter)",
    ),
    (
        "grpc-port-name",
        "a gRPC Service port not named `grpc` or `grpc-*`",
    ),
    (
        "target-port",
        "a Service targetPort on which the selected pods do not listen",
    ),
    (
        "listen-address",
        "the adapter listening on loopback only (unreachable from the gateway)",
    ),
    (
        "probe-path",
        "readiness probe on /ping (use /ready) or liveness probe on /ready (use /ping)",
    ),
    (
        "cookie-secret",
        "a cookie secret that is not 16, 24 or 32 bytes (raw or base64)",
    ),
    (
        "inline-secret",
        "a client or cookie secret written into the manifest instead of a Secret",
    ),
    (
        "cookie-domain",
        "a --cookie-domain that does not cover the protected hosts",
    ),
];
