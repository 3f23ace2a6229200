//! `ext-authz-adapter istio --ingress gateway-api|waypoint`: the Gateway API side of the same
//! routing story as the Istio Gateway and VirtualService. Everything under the proxy prefix goes
//! to the adapter's `http` port (prefix kept: no URLRewrite) and through the check, except
//! exactly `POST <prefix>/backchannel-logout`; everything else goes to the application. The
//! CUSTOM policy names its Gateway (or waypoint) in `targetRefs`.

use super::envoy_filter::envoy_filter;
use super::policy::policy;
use super::settings::{Ingress, Part, Settings};
use super::targets::GATEWAY_API_GROUP;
use super::yaml_out::{Y, map, metadata, s};

/// The `apiVersion` of the Gateway, HTTPRoute and ReferenceGrant printed.
pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// The GatewayClass of the gateways Istio deploys for a Gateway API `Gateway`.
pub const GATEWAY_CLASS: &str = "istio";

/// The GatewayClass of Istio's ambient waypoints.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";

/// The listener names: `http`/`https` for one host, `http-1`, `http-2`, ... for several.
fn listener_name(scheme: &str, settings: &Settings, index: usize) -> String {
    if settings.hosts.len() == 1 {
        scheme.to_owned()
    } else {
        format!("{scheme}-{}", index + 1)
    }
}

/// The Gateway of class `istio`: one HTTP listener per host, and with a TLS Secret one HTTPS
/// listener per host on 443 (the HTTP ones then only redirect, see [`redirect_route`]).
fn gateway(settings: &Settings) -> Y {
    let mut listeners = Vec::new();
    for (i, host) in settings.hosts.iter().enumerate() {
        listeners.push(map(vec![
            ("name", s(listener_name("http", settings, i))),
            ("hostname", s(host)),
            ("port", Y::Int(settings.gateway_port.into())),
            ("protocol", s("HTTP")),
        ]));
    }
    if let Some(credential) = &settings.tls_credential {
        for (i, host) in settings.hosts.iter().enumerate() {
            listeners.push(map(vec![
                ("name", s(listener_name("https", settings, i))),
                ("hostname", s(host)),
                ("port", Y::Int(443)),
                ("protocol", s("HTTPS")),
                (
                    "tls",
                    map(vec![
                        ("mode", s("Terminate")),
                        (
                            "certificateRefs",
                            Y::Seq(vec![map(vec![("name", s(credential))])]),
                        ),
                    ]),
                ),
            ]));
        }
    }
    map(vec![
        ("apiVersion", s(GATEWAY_API_VERSION)),
        ("kind", s("Gateway")),
        (
            "metadata",
            metadata(&settings.gateway, &settings.app_namespace),
        ),
        (
            "spec",
            map(vec![
                ("gatewayClassName", s(GATEWAY_CLASS)),
                ("listeners", Y::Seq(listeners)),
            ]),
        ),
    ])
}

/// The waypoint (what `istioctl waypoint generate --for service` prints): a Gateway of class
/// `istio-waypoint` with its HBONE listener.
fn waypoint(settings: &Settings) -> Y {
    map(vec![
        ("apiVersion", s(GATEWAY_API_VERSION)),
        ("kind", s("Gateway")),
        (
            "metadata",
            map(vec![
                ("name", s(&settings.gateway)),
                ("namespace", s(&settings.app_namespace)),
                ("labels", map(vec![("istio.io/waypoint-for", s("service"))])),
            ]),
        ),
        (
            "spec",
            map(vec![
                ("gatewayClassName", s(WAYPOINT_CLASS)),
                (
                    "listeners",
                    Y::Seq(vec![map(vec![
                        ("name", s("mesh")),
                        ("port", Y::Int(15008)),
                        ("protocol", s("HBONE")),
                    ])]),
                ),
            ]),
        ),
    ])
}

/// A backendRef to the Service `name` in `namespace` (left out when it is the route's own).
fn backend(name: &str, namespace: &str, route_namespace: &str, port: u16) -> Y {
    let mut entries = vec![("name", s(name))];
    if namespace != route_namespace {
        entries.push(("namespace", s(namespace)));
    }
    entries.push(("port", Y::Int(port.into())));
    Y::Seq(vec![map(entries)])
}

/// The application's Service `(name, namespace)` from its host `name.namespace.svc...`.
fn app_service(app: &str) -> (&str, &str) {
    let mut parts = app.split('.');
    let name = parts.next().unwrap_or_default();
    (name, parts.next().unwrap_or_default())
}

/// The HTTPRoute's parents: the Gateway (its HTTPS listeners when TLS is on), or for a waypoint
/// the application's Service on its port (Istio's GAMMA routing, applied by the waypoint).
fn parent_refs(settings: &Settings, app: &str) -> Y {
    match settings.ingress {
        Ingress::Waypoint => {
            let (name, namespace) = app_service(app);
            let mut entries = vec![("group", s("")), ("kind", s("Service")), ("name", s(name))];
            if namespace != settings.app_namespace {
                entries.push(("namespace", s(namespace)));
            }
            entries.push(("port", Y::Int(settings.app_port.into())));
            Y::Seq(vec![map(entries)])
        }
        Ingress::GatewayApi | Ingress::Istio => match settings.tls_credential {
            None => Y::Seq(vec![map(vec![("name", s(&settings.gateway))])]),
            Some(_) => Y::Seq(
                (0..settings.hosts.len())
                    .map(|i| {
                        map(vec![
                            ("name", s(&settings.gateway)),
                            ("sectionName", s(listener_name("https", settings, i))),
                        ])
                    })
                    .collect(),
            ),
        },
    }
}

/// The HTTPRoute: `POST <prefix>/backchannel-logout` (exactly) and `<prefix>` (path prefix, by
/// path elements) to the adapter's `http` port without a URLRewrite, everything else to the
/// application.
fn route(settings: &Settings, app: &str) -> Y {
    let ns = &settings.app_namespace;
    let adapter = || backend(&settings.service, &settings.namespace, ns, settings.port);
    let (app_name, app_ns) = app_service(app);
    let path = |kind: &str, value: String| map(vec![("type", s(kind)), ("value", s(value))]);
    let mut spec = vec![("parentRefs", parent_refs(settings, app))];
    if settings.ingress == Ingress::GatewayApi {
        spec.push(("hostnames", Y::Seq(settings.hosts.iter().map(s).collect())));
    }
    spec.push((
        "rules",
        Y::Seq(vec![
            map(vec![
                ("name", s("oidc-backchannel-logout")),
                (
                    "matches",
                    Y::Seq(vec![map(vec![
                        ("path", path("Exact", settings.backchannel_logout_path())),
                        ("method", s("POST")),
                    ])]),
                ),
                ("backendRefs", adapter()),
            ]),
            map(vec![
                ("name", s("oidc-endpoints")),
                (
                    "matches",
                    Y::Seq(vec![map(vec![(
                        "path",
                        path("PathPrefix", settings.proxy_prefix.clone()),
                    )])]),
                ),
                ("backendRefs", adapter()),
            ]),
            map(vec![
                ("name", s("app")),
                (
                    "backendRefs",
                    backend(app_name, app_ns, ns, settings.app_port),
                ),
            ]),
        ]),
    ));
    map(vec![
        ("apiVersion", s(GATEWAY_API_VERSION)),
        ("kind", s("HTTPRoute")),
        ("metadata", metadata(&settings.virtual_service_name(), ns)),
        ("spec", map(spec)),
    ])
}

/// With TLS: the route of the HTTP listeners, which redirects every request to HTTPS.
fn redirect_route(settings: &Settings) -> Y {
    let parents = (0..settings.hosts.len())
        .map(|i| {
            map(vec![
                ("name", s(&settings.gateway)),
                ("sectionName", s(listener_name("http", settings, i))),
            ])
        })
        .collect();
    map(vec![
        ("apiVersion", s(GATEWAY_API_VERSION)),
        ("kind", s("HTTPRoute")),
        (
            "metadata",
            metadata(
                &format!("{}-https-redirect", settings.virtual_service_name()),
                &settings.app_namespace,
            ),
        ),
        (
            "spec",
            map(vec![
                ("parentRefs", Y::Seq(parents)),
                ("hostnames", Y::Seq(settings.hosts.iter().map(s).collect())),
                (
                    "rules",
                    Y::Seq(vec![map(vec![(
                        "filters",
                        Y::Seq(vec![map(vec![
                            ("type", s("RequestRedirect")),
                            (
                                "requestRedirect",
                                map(vec![("scheme", s("https")), ("statusCode", Y::Int(301))]),
                            ),
                        ])]),
                    )])]),
                ),
            ]),
        ),
    ])
}

/// A ReferenceGrant in `namespace` letting the HTTPRoutes of the route's namespace use its
/// Services as backends (a backendRef to another namespace is refused without one).
fn reference_grant(settings: &Settings, namespace: &str) -> Y {
    map(vec![
        ("apiVersion", s(GATEWAY_API_VERSION)),
        ("kind", s("ReferenceGrant")),
        (
            "metadata",
            metadata(
                &format!(
                    "{}-routes-from-{}",
                    settings.provider_name, settings.app_namespace
                ),
                namespace,
            ),
        ),
        (
            "spec",
            map(vec![
                (
                    "from",
                    Y::Seq(vec![map(vec![
                        ("group", s(GATEWAY_API_GROUP)),
                        ("kind", s("HTTPRoute")),
                        ("namespace", s(&settings.app_namespace)),
                    ])]),
                ),
                (
                    "to",
                    Y::Seq(vec![map(vec![("group", s("")), ("kind", s("Service"))])]),
                ),
            ]),
        ),
    ])
}

/// The Gateway API documents, each when `wanted`, in the order they are applied; a note in
/// `out` for what is left out.
pub(super) fn documents(
    settings: &Settings,
    wanted: &dyn Fn(Part) -> bool,
    out: &mut String,
    docs: &mut Vec<(String, Y)>,
) {
    let ambient = settings.ingress == Ingress::Waypoint;
    let prefix = &settings.proxy_prefix;
    let logout = settings.backchannel_logout_path();
    if wanted(Part::Gateway) {
        docs.push(if ambient {
            (
                format!(
                    "# Waypoint: the ambient mesh's proxy for the Services that use it (label the application's\n\
                     # Service or namespace istio.io/use-waypoint={}); it applies the HTTPRoute and the policy.\n",
                    settings.gateway
                ),
                waypoint(settings),
            )
        } else {
            (
                format!(
                    "# Gateway (Gateway API, class {GATEWAY_CLASS}): Istio deploys a gateway serving {} on port {}{}.\n",
                    settings.hosts.join(", "),
                    settings.gateway_port,
                    if settings.tls_credential.is_some() { " and 443" } else { "" }
                ),
                gateway(settings),
            )
        });
    }
    if wanted(Part::HttpRoute) {
        match &settings.app_service {
            Some(app) => {
                docs.push((
                    format!(
                        "# HTTPRoute: {prefix} (by path elements) goes to the adapter, prefix kept (no URLRewrite),\n\
                         # everything else to the application{}. The CUSTOM policy checks both first: the check\n\
                         # answers the adapter's endpoints, and in HTTP mode the ones it answers with 200 are an\n\
                         # allow for Envoy, which then forwards them here, to the adapter. The one route the policy\n\
                         # does not check: POST {logout} (exactly), the identity provider's back-channel\n\
                         # logout, whose signed logout token is in the body that a check never carries.\n",
                        if ambient { ", at the waypoint of the application's Service" } else { "" },
                    ),
                    route(settings, app),
                ));
                if settings.tls_credential.is_some() && !ambient {
                    docs.push((
                        "# HTTPRoute: plain HTTP is redirected to HTTPS.\n".to_owned(),
                        redirect_route(settings),
                    ));
                }
                let (_, app_ns) = app_service(app);
                let mut namespaces = vec![settings.namespace.as_str()];
                if !namespaces.contains(&app_ns) {
                    namespaces.push(app_ns);
                }
                for namespace in namespaces {
                    if namespace != settings.app_namespace {
                        docs.push((
                            format!(
                                "# ReferenceGrant: the HTTPRoutes of {} may send requests to the Services of {namespace}.\n",
                                settings.app_namespace
                            ),
                            reference_grant(settings, namespace),
                        ));
                    }
                }
            }
            None => out.push_str(&format!(
                "# (No HTTPRoute: pass --app-service to route the hosts to the application. The\n\
                 # policy then checks every path, POST {logout} included: back-channel logouts\n\
                 # cannot arrive until a route takes that POST to the adapter without the check.)\n"
            )),
        }
    }
    if wanted(Part::Policy) {
        docs.push((
            format!(
                "# AuthorizationPolicy: every request for these hosts at the {} {:?} is checked by\n\
                 # provider {:?} ({prefix}/*, the adapter's endpoints, included: never put them in notPaths),\n\
                 # but a POST of exactly {logout} when the HTTPRoute routes it to the adapter:\n\
                 # the first rule leaves that path out, the second checks it for every other method.\n",
                if ambient { "waypoint" } else { "Gateway" },
                settings.gateway,
                settings.provider_name,
            ),
            policy(settings),
        ));
    }
    if wanted(Part::EnvoyFilter) {
        if ambient {
            out.push_str(
                "# (No EnvoyFilter: this renderer knows no verified way to make a waypoint refuse header\n\
                 # names with underscores; the adapter removes every spelling of its identity headers from\n\
                 # the requests it allows, and `istio --check` reports the waypoint: see deploy/README.md.)\n",
            );
        } else {
            docs.push((
                format!(
                    "# EnvoyFilter: the gateway of Gateway {:?} refuses (400) header names with underscores, so\n\
                     # a client's X-Auth_Request-User never reaches an application that reads it as\n\
                     # X-Auth-Request-User (CGI, PHP, WSGI). Neither the Gateway API nor Istio's mesh config has\n\
                     # a setting for Envoy's headers_with_underscores_action (default ALLOW).\n",
                    settings.gateway
                ),
                envoy_filter(settings),
            ));
        }
    }
}
