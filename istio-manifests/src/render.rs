//! `ext-authz-adapter istio ...`: the Istio resources that must agree with each other and with
//! the adapter, printed from one set of [`Settings`].

use std::fmt::Write as _;

mod gateway_api;

use crate::envoy_contract::{
    BACKCHANNEL_LOGOUT, HEADERS_TO_DOWNSTREAM_ON_ALLOW, HEADERS_TO_DOWNSTREAM_ON_DENY,
    HEADERS_TO_UPSTREAM_ON_ALLOW, INCLUDE_REQUEST_HEADERS_IN_CHECK,
};

/// The mesh config's `pathNormalization.normalization`: `BASE` (Istio's default) plus merged
/// runs of `/`, so the CUSTOM policy, the routes and the adapter see `//admin` as the `/admin`
/// that nginx (`merge_slashes on`), Tomcat and many frameworks serve. `istio --check` also
/// accepts the stricter `DECODE_AND_MERGE_SLASHES` (which decodes `%2F` first).
pub const PATH_NORMALIZATION: &str = "MERGE_SLASHES";

/// The ingress gateway's `headers_with_underscores_action` (Envoy's default is `ALLOW`; Istio
/// has no mesh field for it, hence an EnvoyFilter): a request with `X-Auth_Request-User` is
/// refused with 400 instead of reaching a CGI-style application as `HTTP_X_AUTH_REQUEST_USER`.
pub const HEADERS_WITH_UNDERSCORES_ACTION: &str = "REJECT_REQUEST";

/// The name of Envoy's HTTP connection manager network filter, as an EnvoyFilter matches it.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";

/// The `@type` of the HTTP connection manager's `typed_config`.
pub const HCM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// How the adapter is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `envoyExtAuthzHttp` on the Service's `http` port.
    Http,
    /// `envoyExtAuthzGrpc` on the Service's `grpc-ext-authz` port.
    Grpc,
}

/// How requests reach the application, hence which objects route them and what the CUSTOM
/// policy attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// Istio's ingress gateway: an Istio `Gateway` and `VirtualService`, the policy on the
    /// gateway pods' `selector` in istiod's namespace.
    Istio,
    /// A Gateway API `Gateway` of class `istio` and an `HTTPRoute`, the policy's `targetRefs`
    /// naming that Gateway (in its namespace).
    GatewayApi,
    /// Ambient mode: a waypoint (a Gateway API `Gateway` of class `istio-waypoint`) in front of
    /// the application's Service, an `HTTPRoute` whose parent is that Service, the policy's
    /// `targetRefs` naming the waypoint.
    Waypoint,
}

/// How the mesh config's `extensionProviders` entry is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshFormat {
    /// istiod's `istio` ConfigMap (`data.mesh`), for `kubectl apply`.
    ConfigMap,
    /// An `IstioOperator` (`spec.meshConfig`), for `istioctl install -f`.
    IstioOperator,
}

/// Everything the resources are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `extensionProviders[].name` = the policy's `provider.name`.
    pub provider_name: String,
    /// The adapter's namespace.
    pub namespace: String,
    /// The adapter's Service name.
    pub service: String,
    /// The Service's HTTP port (named `http`).
    pub port: u16,
    /// The Service's gRPC port (named `grpc-ext-authz`).
    pub grpc_port: u16,
    /// The protected hosts.
    pub hosts: Vec<String>,
    /// How requests reach the application.
    pub ingress: Ingress,
    /// The Gateway's name (the waypoint's, in ambient mode).
    pub gateway: String,
    /// The namespace of the Gateway and the VirtualService.
    pub app_namespace: String,
    /// The application's Service host (`name.namespace.svc.cluster.local`), if any.
    pub app_service: Option<String>,
    /// The application's Service port.
    pub app_port: u16,
    /// The adapter's `--proxy-prefix` (no trailing `/`).
    pub proxy_prefix: String,
    /// The callback path (`<prefix>/callback` unless `--redirect-url` says otherwise).
    pub callback_path: String,
    /// HTTP or gRPC.
    pub mode: Mode,
    /// Where istiod and the ingress gateway run.
    pub istio_namespace: String,
    /// The ingress gateway's pod labels.
    pub gateway_selector: Vec<(String, String)>,
    /// The Gateway's plain-HTTP port.
    pub gateway_port: u16,
    /// A TLS Secret (in the gateway's namespace) for an HTTPS server on 443.
    pub tls_credential: Option<String>,
    /// How long Envoy waits for a decision (Istio duration).
    pub timeout: String,
    /// Paths that skip the check (`notPaths`); never the callback.
    pub skip_paths: Vec<String>,
    /// ConfigMap or IstioOperator.
    pub mesh_format: MeshFormat,
    /// `v1` (Istio 1.22+) or `v1beta1`.
    pub api_version: String,
    /// Also print the adapter's Service.
    pub with_service: bool,
    /// The adapter pods' labels (the Service's selector).
    pub selector: Vec<(String, String)>,
}

impl Settings {
    /// The seed's setup: nginx.example.com protected, the app `hello-nginx` in namespace
    /// `nginx`, the adapter in `oidc-authz`.
    pub fn seed() -> Settings {
        Settings {
            provider_name: "oidc-authz".to_owned(),
            namespace: "oidc-authz".to_owned(),
            service: "ext-authz-adapter".to_owned(),
            port: 4180,
            grpc_port: 4181,
            hosts: vec!["nginx.example.com".to_owned()],
            ingress: Ingress::Istio,
            gateway: "nginx-gateway".to_owned(),
            app_namespace: "nginx".to_owned(),
            app_service: Some("hello-nginx.nginx.svc.cluster.local".to_owned()),
            app_port: 80,
            proxy_prefix: "/oauth2".to_owned(),
            callback_path: "/oauth2/callback".to_owned(),
            mode: Mode::Http,
            istio_namespace: "istio-system".to_owned(),
            gateway_selector: vec![("istio".to_owned(), "ingressgateway".to_owned())],
            gateway_port: 80,
            tls_credential: None,
            timeout: "10s".to_owned(),
            skip_paths: Vec::new(),
            mesh_format: MeshFormat::ConfigMap,
            api_version: "v1".to_owned(),
            with_service: true,
            selector: vec![(
                "app.kubernetes.io/name".to_owned(),
                "ext-authz-adapter".to_owned(),
            )],
        }
    }

    /// The adapter's Service host.
    pub fn service_host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.service, self.namespace)
    }

    /// The VirtualService's name: the first host with `-` for `.`.
    pub fn virtual_service_name(&self) -> String {
        self.hosts
            .first()
            .map_or_else(|| "app".to_owned(), |h| h.replace(['.', '*'], "-"))
            .trim_matches('-')
            .to_owned()
    }

    /// The AuthorizationPolicy's name.
    pub fn policy_name(&self) -> String {
        format!("{}-{}", self.provider_name, self.virtual_service_name())
    }

    /// `<proxy-prefix>/backchannel-logout`: the one path that a `POST` takes to the adapter
    /// without the check (the provider's logout token is in the body, which a check lacks).
    pub fn backchannel_logout_path(&self) -> String {
        format!(
            "{}/{BACKCHANNEL_LOGOUT}",
            self.proxy_prefix.trim_end_matches('/')
        )
    }

    /// The EnvoyFilter's name (one per ingress gateway and provider).
    pub fn envoy_filter_name(&self) -> String {
        format!("{}-reject-underscore-headers", self.provider_name)
    }

    /// The equivalent command line (every setting spelt out).
    pub fn command_line(&self) -> String {
        let mut args = vec![
            "ext-authz-adapter istio".to_owned(),
            format!("--provider-name {}", self.provider_name),
            format!("--namespace {}", self.namespace),
            format!("--service {}", self.service),
            format!("--port {}", self.port),
            format!("--grpc-port {}", self.grpc_port),
        ];
        args.extend(self.hosts.iter().map(|h| format!("--host {h}")));
        match self.ingress {
            Ingress::Istio => {}
            Ingress::GatewayApi => args.push("--ingress gateway-api".to_owned()),
            Ingress::Waypoint => args.push("--ingress waypoint".to_owned()),
        }
        args.push(format!("--gateway {}/{}", self.app_namespace, self.gateway));
        if let Some(app) = &self.app_service {
            args.push(format!("--app-service {app}"));
            args.push(format!("--app-port {}", self.app_port));
        }
        args.push(format!("--proxy-prefix {}", self.proxy_prefix));
        if self.callback_path != format!("{}/callback", self.proxy_prefix) {
            args.push(format!("--callback-path {}", self.callback_path));
        }
        args.push(format!(
            "--mode {}",
            match self.mode {
                Mode::Http => "http",
                Mode::Grpc => "grpc",
            }
        ));
        args.push(format!("--timeout {}", self.timeout));
        args.extend(
            self.skip_paths
                .iter()
                .map(|p| format!("--skip-path {}", sh_quote(p))),
        );
        if let Some(tls) = &self.tls_credential {
            args.push(format!("--tls-credential {tls}"));
        }
        if self.istio_namespace != "istio-system" {
            args.push(format!("--istio-namespace {}", self.istio_namespace));
        }
        if self.gateway_selector != [("istio".to_owned(), "ingressgateway".to_owned())] {
            args.extend(
                self.gateway_selector
                    .iter()
                    .map(|(k, v)| format!("--gateway-selector {}", sh_quote(&format!("{k}={v}")))),
            );
        }
        if self.gateway_port != 80 {
            args.push(format!("--gateway-port {}", self.gateway_port));
        }
        if self.mesh_format == MeshFormat::IstioOperator {
            args.push("--mesh-format istiooperator".to_owned());
        }
        if self.api_version != "v1" {
            args.push(format!("--api-version {}", self.api_version));
        }
        if self.with_service {
            args.push("--with-service".to_owned());
            let default = [(
                "app.kubernetes.io/name".to_owned(),
                "ext-authz-adapter".to_owned(),
            )];
            if self.selector != default {
                args.extend(
                    self.selector
                        .iter()
                        .map(|(k, v)| format!("--selector {}", sh_quote(&format!("{k}={v}")))),
                );
            }
        }
        args.join(" ")
    }
}

/// A word for a POSIX shell: as it is when safe, else in single quotes.
fn sh_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A YAML value to print.
enum Y {
    Str(String),
    Int(u64),
    Bool(bool),
    Map(Vec<(String, Y)>),
    Seq(Vec<Y>),
    /// A flow sequence of quoted strings (`["a", "b"]`), as Istio's docs write header lists.
    Flow(Vec<String>),
    /// A literal block scalar (`|-`).
    Literal(String),
}

fn s(v: impl Into<String>) -> Y {
    Y::Str(v.into())
}

fn map(entries: Vec<(&str, Y)>) -> Y {
    Y::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn labels(pairs: &[(String, String)]) -> Y {
    Y::Map(pairs.iter().map(|(k, v)| (k.clone(), s(v))).collect())
}

fn flow(items: &[&str]) -> Y {
    Y::Flow(items.iter().map(|s| (*s).to_owned()).collect())
}

/// A string as a YAML scalar: plain when that is unambiguous, double-quoted otherwise.
fn scalar(v: &str) -> String {
    let plain = !v.is_empty()
        && v.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c))
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        )
        && v.parse::<f64>().is_err();
    if plain { v.to_owned() } else { quote(v) }
}

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

fn emit(y: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Y::Map(entries) => {
            for (k, v) in entries {
                let _ = write!(out, "{pad}{}:", scalar(k));
                match v {
                    Y::Map(e) if !e.is_empty() => {
                        out.push('\n');
                        emit(v, indent + 2, out);
                    }
                    Y::Seq(items) if !items.is_empty() => {
                        out.push('\n');
                        emit(v, indent, out);
                    }
                    Y::Literal(text) => {
                        out.push_str(" |-\n");
                        for line in text.trim_end_matches('\n').lines() {
                            if line.is_empty() {
                                out.push('\n');
                            } else {
                                let _ = writeln!(out, "{pad}  {line}");
                            }
                        }
                    }
                    other => {
                        out.push(' ');
                        out.push_str(&inline(other));
                        out.push('\n');
                    }
                }
            }
        }
        Y::Seq(items) => {
            for item in items {
                match item {
                    Y::Map(e) if !e.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        let _ = write!(out, "{pad}- {}", &inner[indent + 2..]);
                    }
                    other => {
                        let _ = writeln!(out, "{pad}- {}", inline(other));
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", inline(other));
        }
    }
}

fn inline(y: &Y) -> String {
    match y {
        Y::Str(v) => scalar(v),
        Y::Int(n) => n.to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Flow(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| quote(i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Y::Map(_) => "{}".to_owned(),
        Y::Seq(_) => "[]".to_owned(),
        Y::Literal(text) => quote(text),
    }
}

fn to_yaml(y: &Y) -> String {
    let mut out = String::new();
    emit(y, 0, &mut out);
    out
}

fn metadata(name: &str, namespace: &str) -> Y {
    map(vec![("name", s(name)), ("namespace", s(namespace))])
}

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

fn mesh_document(settings: &Settings) -> (String, Y) {
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

/// The CUSTOM AuthorizationPolicy: on the ingress gateway's pods (`selector`, in istiod's
/// namespace) for Istio's gateway, else on the Gateway API Gateway or waypoint named by
/// `targetRefs` (in its namespace, as Istio requires).
fn policy(settings: &Settings) -> Y {
    let mut hosts = Vec::new();
    for host in &settings.hosts {
        hosts.push(host.clone());
        hosts.push(format!("{host}:*"));
    }
    let rule = |operation: Vec<(&str, Y)>| {
        map(vec![(
            "to",
            Y::Seq(vec![map(vec![("operation", map(operation))])]),
        )])
    };
    // Without the VirtualService's route of the logout path to the adapter, the exemption
    // could hand an unchecked POST to the application: none then.
    let logout = settings
        .app_service
        .is_some()
        .then(|| settings.backchannel_logout_path());
    let mut not_paths = settings.skip_paths.clone();
    not_paths.extend(logout.clone());
    let mut operation = vec![("hosts", Y::Flow(hosts.clone()))];
    if !not_paths.is_empty() {
        operation.push(("notPaths", Y::Flow(not_paths)));
    }
    let mut rules = vec![rule(operation)];
    // The logout path stays checked for every method but POST.
    if let Some(logout) = logout {
        rules.push(rule(vec![
            ("hosts", Y::Flow(hosts)),
            ("paths", Y::Flow(vec![logout])),
            ("notMethods", Y::Flow(vec!["POST".to_owned()])),
        ]));
    }
    map(vec![
        (
            "apiVersion",
            s(format!("security.istio.io/{}", settings.api_version)),
        ),
        ("kind", s("AuthorizationPolicy")),
        (
            "metadata",
            metadata(
                &settings.policy_name(),
                match settings.ingress {
                    Ingress::Istio => &settings.istio_namespace,
                    Ingress::GatewayApi | Ingress::Waypoint => &settings.app_namespace,
                },
            ),
        ),
        (
            "spec",
            map(vec![
                match settings.ingress {
                    Ingress::Istio => (
                        "selector",
                        map(vec![("matchLabels", labels(&settings.gateway_selector))]),
                    ),
                    Ingress::GatewayApi | Ingress::Waypoint => (
                        "targetRefs",
                        Y::Seq(vec![gateway_api::gateway_ref(&settings.gateway)]),
                    ),
                },
                ("action", s("CUSTOM")),
                ("provider", map(vec![("name", s(&settings.provider_name))])),
                ("rules", Y::Seq(rules)),
            ]),
        ),
    ])
}

/// The EnvoyFilter that sets the ingress gateway's `headers_with_underscores_action` (the
/// shape of Istio's own EnvoyFilter example that merges into the HTTP connection manager): on
/// the gateway's pods (`workloadSelector`, in istiod's namespace), or for a Gateway API
/// Gateway on that Gateway (`targetRefs`, in its namespace).
fn envoy_filter(settings: &Settings) -> Y {
    let (namespace, attachment) = match settings.ingress {
        Ingress::GatewayApi | Ingress::Waypoint => (
            &settings.app_namespace,
            (
                "targetRefs",
                Y::Seq(vec![gateway_api::gateway_ref(&settings.gateway)]),
            ),
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

fn service(settings: &Settings) -> Y {
    let port = |name: &str, number: u16, protocol: &str| {
        map(vec![
            ("name", s(name)),
            ("port", Y::Int(number.into())),
            ("targetPort", Y::Int(number.into())),
            ("appProtocol", s(protocol)),
        ])
    };
    map(vec![
        ("apiVersion", s("v1")),
        ("kind", s("Service")),
        (
            "metadata",
            map(vec![
                ("name", s(&settings.service)),
                ("namespace", s(&settings.namespace)),
                ("labels", labels(&settings.selector)),
            ]),
        ),
        (
            "spec",
            map(vec![
                ("selector", labels(&settings.selector)),
                (
                    "ports",
                    Y::Seq(vec![
                        port("http", settings.port, "http"),
                        port("grpc-ext-authz", settings.grpc_port, "grpc"),
                    ]),
                ),
            ]),
        ),
    ])
}

/// Istio's ingress gateway: the Gateway, VirtualService, CUSTOM policy (on the gateway pods'
/// selector) and the EnvoyFilter, each when `wanted`; a note in `out` for what is left out.
fn classic_documents(
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

/// One of the printed resources (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The mesh config (ConfigMap or IstioOperator).
    Mesh,
    /// The Gateway.
    Gateway,
    /// The VirtualService.
    VirtualService,
    /// The CUSTOM AuthorizationPolicy.
    Policy,
    /// The EnvoyFilter refusing header names with underscores at the ingress gateway.
    EnvoyFilter,
    /// The adapter's Service.
    Service,
    /// The Gateway API HTTPRoutes and the ReferenceGrants their backends need.
    HttpRoute,
}

/// The resources, as one multi-document YAML stream ready for `kubectl apply -f -`.
pub fn render(settings: &Settings) -> String {
    render_parts(settings, &[])
}

/// The resources in `parts` (all of them when empty).
pub fn render_parts(settings: &Settings, parts: &[Part]) -> String {
    let wanted = |part: Part| parts.is_empty() || parts.contains(&part);
    let mode = match settings.mode {
        Mode::Http => "HTTP (envoyExtAuthzHttp)",
        Mode::Grpc => "gRPC (envoyExtAuthzGrpc)",
    };
    let mut out = format!(
        "# Istio resources for the ext_authz provider {:?}, {mode}, generated by:\n\
         #   {}\n\
         # They agree with each other: regenerate rather than edit, and lint edits with\n\
         #   ext-authz-adapter istio --check FILE...\n",
        settings.provider_name,
        settings.command_line()
    );
    let mut docs: Vec<(String, Y)> = Vec::new();
    if wanted(Part::Mesh) {
        docs.push(mesh_document(settings));
    }
    match settings.ingress {
        Ingress::Istio => classic_documents(settings, &wanted, &mut out, &mut docs),
        Ingress::GatewayApi | Ingress::Waypoint => {
            gateway_api::documents(settings, &wanted, &mut out, &mut docs);
        }
    }
    if settings.with_service && wanted(Part::Service) {
        docs.push((
            "# The adapter's Service: Istio reads the protocol from the port names (http, grpc-*).\n"
                .to_owned(),
            service(settings),
        ));
    }
    for (comment, doc) in docs {
        out.push_str("---\n");
        out.push_str(&comment);
        out.push_str(&to_yaml(&doc));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::yaml::{Lines, parse_documents};

    #[test]
    fn scalars_are_quoted_when_needed() {
        assert_eq!(scalar("nginx.example.com"), "nginx.example.com");
        assert_eq!(scalar("/oauth2/"), "/oauth2/");
        assert_eq!(scalar("*.example.com"), "\"*.example.com\"");
        assert_eq!(scalar("80"), "\"80\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn output_parses_back() {
        let yaml = render(&Settings::seed());
        let docs = parse_documents(&yaml, Lines::Offset(0));
        assert_eq!(docs.len(), 6);
        assert!(docs.iter().all(|d| d.error.is_none()));
        let kinds: Vec<&str> = docs
            .iter()
            .map(|d| d.root.as_ref().unwrap().str_at(&["kind"]).unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "ConfigMap",
                "Gateway",
                "VirtualService",
                "AuthorizationPolicy",
                "EnvoyFilter",
                "Service"
            ]
        );
        let vs = docs[2].root.as_ref().unwrap();
        let routes = vs.path(&["spec", "http"]).unwrap().items();
        // The provider's back-channel logout first: POST of exactly that path, to the adapter.
        let logout = &routes[0];
        assert_eq!(logout.str_at(&["name"]), Some("oidc-backchannel-logout"));
        let m = &logout.path(&["match"]).unwrap().items()[0];
        assert_eq!(
            m.str_at(&["uri", "exact"]),
            Some("/oauth2/backchannel-logout")
        );
        assert_eq!(m.str_at(&["method", "exact"]), Some("POST"));
        let adapter = "ext-authz-adapter.oidc-authz.svc.cluster.local";
        let host = |r: &crate::yaml::Node| {
            r.path(&["route"]).unwrap().items()[0]
                .str_at(&["destination", "host"])
                .map(str::to_owned)
        };
        assert_eq!(host(logout).as_deref(), Some(adapter));
        assert_eq!(routes[1].str_at(&["name"]).unwrap(), "oidc-endpoints");
        assert_eq!(host(&routes[1]).as_deref(), Some(adapter));
        assert!(routes.iter().all(|r| r.get("rewrite").is_none()));
        // The policy leaves out that request only: the first rule the path, the second checks
        // it for every method but POST.
        let policy = docs[3].root.as_ref().unwrap();
        let rules = policy.path(&["spec", "rules"]).unwrap().items();
        assert_eq!(rules.len(), 2);
        let op = |i: usize| &rules[i].path(&["to"]).unwrap().items()[0];
        let strings = |n: Option<&crate::yaml::Node>| -> Vec<String> {
            n.unwrap()
                .strings()
                .into_iter()
                .map(|(v, _)| v.to_owned())
                .collect()
        };
        assert_eq!(
            strings(op(0).path(&["operation", "notPaths"])),
            ["/oauth2/backchannel-logout"]
        );
        assert_eq!(
            strings(op(1).path(&["operation", "paths"])),
            ["/oauth2/backchannel-logout"]
        );
        assert_eq!(strings(op(1).path(&["operation", "notMethods"])), ["POST"]);
        assert_eq!(
            strings(op(0).path(&["operation", "hosts"])),
            strings(op(1).path(&["operation", "hosts"]))
        );
        // Without a VirtualService, nothing is left out.
        let settings = Settings {
            app_service: None,
            ..Settings::seed()
        };
        let yaml = render_parts(&settings, &[Part::Policy]);
        let docs = parse_documents(&yaml, Lines::Offset(0));
        let rules = docs[0]
            .root
            .as_ref()
            .unwrap()
            .path(&["spec", "rules"])
            .unwrap();
        assert_eq!(rules.items().len(), 1);
        let operation = &rules.items()[0].path(&["to"]).unwrap().items()[0];
        assert!(
            operation.path(&["operation", "notPaths"]).is_none(),
            "{yaml}"
        );
    }

    /// The mesh config (both formats) merges slashes, and declares the provider without
    /// `x-forwarded-host` in the check.
    #[test]
    fn mesh_config_normalises_paths_and_leaves_out_forwarded_host() {
        for format in [MeshFormat::ConfigMap, MeshFormat::IstioOperator] {
            let settings = Settings {
                mesh_format: format,
                ..Settings::seed()
            };
            let yaml = render_parts(&settings, &[Part::Mesh]);
            let docs = parse_documents(&yaml, Lines::Offset(0));
            let root = docs[0].root.as_ref().unwrap();
            let embedded;
            let mesh = match format {
                MeshFormat::ConfigMap => {
                    let text = root.str_at(&["data", "mesh"]).unwrap();
                    embedded = parse_documents(text, Lines::Offset(0));
                    embedded[0].root.as_ref().unwrap()
                }
                MeshFormat::IstioOperator => root.path(&["spec", "meshConfig"]).unwrap(),
            };
            assert_eq!(
                mesh.str_at(&["pathNormalization", "normalization"]),
                Some("MERGE_SLASHES"),
                "{yaml}"
            );
            let provider = &mesh.path(&["extensionProviders"]).unwrap().items()[0];
            let check: Vec<&str> = provider
                .path(&["envoyExtAuthzHttp", "includeRequestHeadersInCheck"])
                .unwrap()
                .strings()
                .into_iter()
                .map(|(h, _)| h)
                .collect();
            assert!(check.contains(&"x-forwarded-proto"), "{check:?}");
            assert!(!check.contains(&"x-forwarded-host"), "{check:?}");
        }
    }

    /// The EnvoyFilter has the shape of Istio's own HCM-merging example, on the gateway's pods.
    #[test]
    fn envoy_filter_rejects_underscores_on_the_gateway() {
        let settings = Settings {
            gateway_selector: vec![("app".to_owned(), "edge".to_owned())],
            istio_namespace: "mesh-root".to_owned(),
            ..Settings::seed()
        };
        let yaml = render_parts(&settings, &[Part::EnvoyFilter]);
        let docs = parse_documents(&yaml, Lines::Offset(0));
        assert_eq!(docs.len(), 1);
        let root = docs[0].root.as_ref().unwrap();
        assert_eq!(
            root.str_at(&["apiVersion"]),
            Some("networking.istio.io/v1alpha3")
        );
        assert_eq!(root.str_at(&["kind"]), Some("EnvoyFilter"));
        assert_eq!(root.str_at(&["metadata", "namespace"]), Some("mesh-root"));
        assert_eq!(
            root.str_at(&["spec", "workloadSelector", "labels", "app"]),
            Some("edge")
        );
        let patches = root.path(&["spec", "configPatches"]).unwrap().items();
        assert_eq!(patches.len(), 1);
        let patch = &patches[0];
        assert_eq!(patch.str_at(&["applyTo"]), Some("NETWORK_FILTER"));
        assert_eq!(patch.str_at(&["match", "context"]), Some("GATEWAY"));
        assert_eq!(
            patch.str_at(&["match", "listener", "filterChain", "filter", "name"]),
            Some(HCM_FILTER)
        );
        assert_eq!(patch.str_at(&["patch", "operation"]), Some("MERGE"));
        let typed = patch.path(&["patch", "value", "typed_config"]).unwrap();
        assert_eq!(typed.str_at(&["@type"]), Some(HCM_TYPE_URL));
        assert_eq!(
            typed.str_at(&[
                "common_http_protocol_options",
                "headers_with_underscores_action"
            ]),
            Some("REJECT_REQUEST")
        );
    }

    #[test]
    fn only_some_parts() {
        let settings = Settings {
            mesh_format: MeshFormat::IstioOperator,
            ..Settings::seed()
        };
        let yaml = render_parts(&settings, &[Part::Mesh]);
        let docs = parse_documents(&yaml, Lines::Offset(0));
        assert_eq!(docs.len(), 1);
        let root = docs[0].root.as_ref().unwrap();
        assert_eq!(root.str_at(&["kind"]), Some("IstioOperator"));
        assert_eq!(
            root.path(&["spec", "meshConfig", "extensionProviders"])
                .unwrap()
                .items()[0]
                .str_at(&["envoyExtAuthzHttp", "port"]),
            Some("4180")
        );
        let yaml = render_parts(&settings, &[Part::Policy, Part::Service]);
        assert_eq!(parse_documents(&yaml, Lines::Offset(0)).len(), 2);
    }

    #[test]
    fn seq_of_maps_layout() {
        let y = map(vec![(
            "a",
            Y::Seq(vec![map(vec![
                ("b", s("c")),
                ("d", map(vec![("e", Y::Int(1))])),
            ])]),
        )]);
        assert_eq!(to_yaml(&y), "a:\n- b: c\n  d:\n    e: 1\n");
    }
}
