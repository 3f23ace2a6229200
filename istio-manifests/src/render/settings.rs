//! What the resources are made from: the [`Settings`] (how the adapter is called, how requests
//! reach the application, its hosts, names and ports) and the [`Part`]s that can be printed.

use crate::envoy_contract::BACKCHANNEL_LOGOUT;

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
