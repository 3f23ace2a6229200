//! `ext-authz-adapter istio` with Istio's ingress gateway (the default `--ingress istio`): the
//! Istio `Gateway` and `VirtualService`, with the CUSTOM policy and the EnvoyFilter on the
//! gateway's pods.

use super::envoy_filter::envoy_filter;
use super::policy::policy;
use super::settings::{Part, Settings};
use super::yaml_out::{Y, labels, map, metadata, s};

fn gateway(settings: &Settings) -> Y {
    let hosts = || Y::Seq(settings.hosts.iter().map(s).collect());
    let mut http = vec![
        (
            "port",
            map(vec![
                ("number", Y::Int(settings.gateway_port.into())),
                ("name", s("http")),
                ("protocol", s("HTTP")),
            ]),
        ),
        ("hosts", hosts()),
    ];
    let mut servers = Vec::new();
    if let Some(credential) = &settings.tls_credential {
        http.push(("tls", map(vec![("httpsRedirect", Y::Bool(true))])));
        servers.push(map(http));
        servers.push(map(vec![
            (
                "port",
                map(vec![
                    ("number", Y::Int(443)),
                    ("name", s("https")),
                    ("protocol", s("HTTPS")),
                ]),
            ),
            ("hosts", hosts()),
            (
                "tls",
                map(vec![
                    ("mode", s("SIMPLE")),
                    ("credentialName", s(credential)),
                ]),
            ),
        ]));
    } else {
        servers.push(map(http));
    }
    map(vec![
        (
            "apiVersion",
            s(format!("networking.istio.io/{}", settings.api_version)),
        ),
        ("kind", s("Gateway")),
        (
            "metadata",
            metadata(&settings.gateway, &settings.app_namespace),
        ),
        (
            "spec",
            map(vec![
                ("selector", labels(&settings.gateway_selector)),
                ("servers", Y::Seq(servers)),
            ]),
        ),
    ])
}

fn destination(host: String, port: u16) -> Y {
    Y::Seq(vec![map(vec![(
        "destination",
        map(vec![
            ("host", s(host)),
            ("port", map(vec![("number", Y::Int(port.into()))])),
        ]),
    )])])
}

fn virtual_service(settings: &Settings, app: &str) -> Y {
    map(vec![
        (
            "apiVersion",
            s(format!("networking.istio.io/{}", settings.api_version)),
        ),
        ("kind", s("VirtualService")),
        (
            "metadata",
            metadata(&settings.virtual_service_name(), &settings.app_namespace),
        ),
        (
            "spec",
            map(vec![
                ("hosts", Y::Seq(settings.hosts.iter().map(s).collect())),
                ("gateways", Y::Seq(vec![s(&settings.gateway)])),
                (
                    "http",
                    Y::Seq(vec![
                        map(vec![
                            ("name", s("oidc-backchannel-logout")),
                            (
                                "match",
                                Y::Seq(vec![map(vec![
                                    (
                                        "uri",
                                        map(vec![("exact", s(settings.backchannel_logout_path()))]),
                                    ),
                                    ("method", map(vec![("exact", s("POST"))])),
                                ])]),
                            ),
                            ("route", destination(settings.service_host(), settings.port)),
                        ]),
                        map(vec![
                            ("name", s("oidc-endpoints")),
                            (
                                "match",
                                Y::Seq(vec![map(vec![(
                                    "uri",
                                    map(vec![("prefix", s(format!("{}/", settings.proxy_prefix)))]),
                                )])]),
                            ),
                            ("route", destination(settings.service_host(), settings.port)),
                        ]),
                        map(vec![
                            ("name", s("app")),
                            ("route", destination(app.to_owned(), settings.app_port)),
                        ]),
                    ]),
                ),
            ]),
        ),
    ])
}

/// Istio's ingress gateway: the Gateway, VirtualService, CUSTOM policy (on the gateway pods'
/// selector) and the EnvoyFilter, each when `wanted`; a note in `out` for what is left out.
pub(super) fn classic_documents(
    settings: &Settings,
    wanted: &dyn Fn(Part) -> bool,
    out: &mut String,
    docs: &mut Vec<(String, Y)>,
) {
    if wanted(Part::Gateway) {
        docs.push((
            format!(
                "# Gateway: the ingress gateway serves {} on port {}.\n",
                settings.hosts.join(", "),
                settings.gateway_port
            ),
            gateway(settings),
        ));
    }
    if wanted(Part::VirtualService) {
        match &settings.app_service {
            Some(app) => docs.push((
                format!(
                    "# VirtualService: {prefix}/ goes to the adapter (its endpoints, prefix kept: no rewrite),\n\
                     # everything else to the application. The CUSTOM policy checks both first: the check\n\
                     # answers the adapter's endpoints, and in HTTP mode the ones it answers with 200\n\
                     # ({prefix}/userinfo, the sign-in page) are an allow for Envoy, which then forwards them\n\
                     # here, to the adapter, not to the application. The one route the policy does not check:\n\
                     # POST {logout} (exactly), the identity provider's back-channel logout, whose\n\
                     # signed logout token is in the body that a check never carries; the adapter verifies it.\n",
                    prefix = settings.proxy_prefix,
                    logout = settings.backchannel_logout_path(),
                ),
                virtual_service(settings, app),
            )),
            None => out.push_str(&format!(
                "# (No VirtualService: pass --app-service to route the hosts to the application. The\n\
                 # policy then checks every path, POST {} included: back-channel logouts\n\
                 # cannot arrive until a route takes that POST to the adapter without the check.)\n",
                settings.backchannel_logout_path()
            )),
        }
    }
    if wanted(Part::Policy) {
        docs.push((
            format!(
                "# AuthorizationPolicy: every request for these hosts at the ingress gateway is checked by\n\
                 # provider {:?} ({}/*, the adapter's endpoints, included: never put them in notPaths),\n\
                 # but a POST of exactly {} when the VirtualService routes it to the adapter:\n\
                 # the first rule leaves that path out, the second checks it for every other method.\n",
                settings.provider_name, settings.proxy_prefix, settings.backchannel_logout_path()
            ),
            policy(settings),
        ));
    }
    if wanted(Part::EnvoyFilter) {
        docs.push((
            "# EnvoyFilter: the ingress gateway refuses (400) header names with underscores, so a client's\n\
             # X-Auth_Request-User never reaches an application that reads it as X-Auth-Request-User\n\
             # (CGI, PHP, WSGI: both are HTTP_X_AUTH_REQUEST_USER). Istio has no mesh setting for Envoy's\n\
             # headers_with_underscores_action (default ALLOW).\n"
                .to_owned(),
            envoy_filter(settings),
        ));
    }
}
