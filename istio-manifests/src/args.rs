//! The command line of `ext-authz-adapter istio`: [`IstioArgs`], validated into [`Settings`],
//! then rendered or, with `--check`, linted ([`IstioArgs::run`]).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use crate::check::{CheckOptions, Source, check_sources};
use crate::names;
use crate::render::{Ingress, MeshFormat, Mode, Part, Settings, render_parts};

/// Prints the Istio resources for the adapter (mesh config extensionProviders entry and path
/// normalisation, Gateway, VirtualService or HTTPRoute, CUSTOM AuthorizationPolicy, the
/// gateway's EnvoyFilter for header names with underscores, Service), or checks existing
/// manifests with --check.
#[derive(Debug, Parser)]
#[command(
    name = "ext-authz-adapter istio",
    version,
    max_term_width = 100,
    after_help = "Examples:\n  \
      ext-authz-adapter istio --provider-name oidc-authz --namespace oidc-authz \\\n    \
        --host nginx.example.com --gateway nginx/nginx-gateway \\\n    \
        --app-service hello-nginx.nginx --app-port 80 --with-service | kubectl apply -f -\n  \
      ext-authz-adapter istio --ingress gateway-api --host nginx.example.com \\\n    \
        --gateway nginx/nginx-gateway --app-service hello-nginx.nginx | kubectl apply -f -\n  \
      ext-authz-adapter istio --check deploy/istio/ mesh.yaml\n  \
      helm template my-release deploy/helm/ext-authz-adapter | ext-authz-adapter istio --check -"
)]
pub struct IstioArgs {
    /// Name of the ext_authz provider: extensionProviders[].name in the mesh config and the
    /// AuthorizationPolicy's provider.name.
    #[arg(long, default_value = "oidc-authz")]
    pub provider_name: String,

    /// Namespace of the adapter's Service.
    #[arg(long, default_value = "oidc-authz")]
    pub namespace: String,

    /// Name of the adapter's Service.
    #[arg(long, default_value = "ext-authz-adapter")]
    pub service: String,

    /// The Service's HTTP port (port name `http`): the provider's port in HTTP mode.
    #[arg(long, default_value_t = 4180)]
    pub port: u16,

    /// The Service's gRPC port (port name `grpc-ext-authz`): the provider's port in gRPC mode.
    #[arg(long, default_value_t = 4181)]
    pub grpc_port: u16,

    /// A host to protect (repeatable): Gateway, VirtualService and policy hosts.
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// How requests reach the application: Istio's ingress gateway (Gateway, VirtualService,
    /// policy on the gateway pods' selector), a Gateway API Gateway of class `istio` (Gateway,
    /// HTTPRoute, policy with targetRefs), or an ambient waypoint in front of --app-service
    /// (waypoint Gateway, HTTPRoute on the Service, policy with targetRefs).
    #[arg(long, value_enum, default_value = "istio")]
    pub ingress: IngressArg,

    /// The Gateway to create, NAME or NAMESPACE/NAME (default: <provider-name>-gateway in the
    /// application's namespace; with --ingress waypoint, the waypoint: `waypoint`).
    #[arg(long, value_name = "[NAMESPACE/]NAME")]
    pub gateway: Option<String>,

    /// The application's Service (NAME.NAMESPACE or its full host): the VirtualService (or
    /// HTTPRoute) routes the hosts there. Without it no VirtualService or HTTPRoute is printed.
    #[arg(long, value_name = "NAME.NAMESPACE")]
    pub app_service: Option<String>,

    /// The application Service's port.
    #[arg(long, default_value_t = 80)]
    pub app_port: u16,

    /// Namespace of the Gateway and VirtualService, or HTTPRoute (and with --ingress gateway-api
    /// or waypoint, of the policy) (default: the application's, else the adapter's).
    #[arg(long)]
    pub app_namespace: Option<String>,

    /// The adapter's --proxy-prefix.
    #[arg(long, default_value = "/oauth2")]
    pub proxy_prefix: String,

    /// The callback path (default: <proxy-prefix>/callback).
    #[arg(long)]
    pub callback_path: Option<String>,

    /// How the gateway calls the adapter.
    #[arg(long, value_enum, default_value = "http")]
    pub mode: ModeArg,

    /// How to print the mesh config: istiod's `istio` ConfigMap (kubectl apply) or an
    /// IstioOperator (istioctl install -f).
    #[arg(long, value_enum, default_value = "configmap")]
    pub mesh_format: MeshFormatArg,

    /// Namespace of istiod and the ingress gateway (mesh ConfigMap; with --ingress istio the
    /// AuthorizationPolicy and EnvoyFilter).
    #[arg(long, default_value = "istio-system")]
    pub istio_namespace: String,

    /// The ingress gateway pods' label KEY=VALUE (repeatable; --ingress istio).
    #[arg(long, value_name = "KEY=VALUE", default_value = "istio=ingressgateway")]
    pub gateway_selector: Vec<String>,

    /// The Gateway's HTTP port.
    #[arg(long, default_value_t = 80)]
    pub gateway_port: u16,

    /// A TLS Secret in the gateway's namespace: adds an HTTPS server (listener) on 443 and
    /// redirects HTTP.
    #[arg(long, value_name = "SECRET")]
    pub tls_credential: Option<String>,

    /// How long the gateway waits for a decision (a login callback includes a token request
    /// to the IdP).
    #[arg(long, default_value = "10s")]
    pub timeout: String,

    /// A path that skips the check (policy notPaths, Istio syntax: /exact, /prefix/*, *suffix;
    /// repeatable). Refused if it covers the callback path or another of the adapter's
    /// endpoints under --proxy-prefix (they travel through the check).
    #[arg(long = "skip-path", value_name = "PATH")]
    pub skip_paths: Vec<String>,

    /// Istio API version of Gateway, VirtualService and AuthorizationPolicy (v1 needs Istio
    /// 1.22+).
    #[arg(long, value_enum, default_value = "v1")]
    pub api_version: ApiVersionArg,

    /// Also print the adapter's Service (ports `http` and `grpc-ext-authz`).
    #[arg(long)]
    pub with_service: bool,

    /// The adapter pods' label KEY=VALUE, the Service's selector (repeatable).
    #[arg(
        long,
        value_name = "KEY=VALUE",
        default_value = "app.kubernetes.io/name=ext-authz-adapter"
    )]
    pub selector: Vec<String>,

    /// Print only these resources (repeatable; default: all), e.g. `--only mesh
    /// --mesh-format istiooperator` for `istioctl install -f`.
    #[arg(long, value_enum, value_name = "PART")]
    pub only: Vec<PartArg>,

    /// Check manifests instead (files or directories of *.yaml/*.yml; `-` for stdin): print
    /// `FILE:LINE: problem. fix: ...` for each problem, exit 1 if any.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub check: Vec<PathBuf>,
}

/// Printed after the findings when the manifests run oauth2-proxy itself.
pub const MIGRATION_HINT: &str = "Replacing oauth2-proxy with ext-authz-adapter? \
    docs/migrate-from-oauth2-proxy.md walks through it from manifests like these, names kept.";

/// `true` when a container of the manifests runs oauth2-proxy's image.
fn runs_oauth2_proxy(sources: &[Source]) -> bool {
    sources.iter().any(|source| {
        source.text.lines().any(|line| {
            let line = line.trim_start().trim_start_matches("- ");
            line.starts_with("image:") && line.contains("oauth2-proxy/oauth2-proxy")
        })
    })
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// envoyExtAuthzHttp.
    Http,
    /// envoyExtAuthzGrpc.
    Grpc,
}

/// `--ingress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IngressArg {
    /// Istio's ingress gateway: Gateway and VirtualService (networking.istio.io).
    Istio,
    /// A Gateway API Gateway (class `istio`) and HTTPRoute; the policy's targetRefs name it.
    GatewayApi,
    /// Ambient mode: a waypoint (class `istio-waypoint`) for --app-service; the policy's
    /// targetRefs name it.
    Waypoint,
}

/// `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PartArg {
    /// The mesh config (ConfigMap or IstioOperator).
    Mesh,
    /// The Gateway (Istio's, or the Gateway API's, or the waypoint).
    Gateway,
    /// The VirtualService.
    VirtualService,
    /// The HTTPRoutes and ReferenceGrants (--ingress gateway-api or waypoint).
    HttpRoute,
    /// The CUSTOM AuthorizationPolicy.
    Policy,
    /// The EnvoyFilter that refuses header names with underscores at the ingress gateway.
    EnvoyFilter,
    /// The adapter's Service (with --with-service).
    Service,
}

impl From<PartArg> for Part {
    fn from(part: PartArg) -> Part {
        match part {
            PartArg::Mesh => Part::Mesh,
            PartArg::Gateway => Part::Gateway,
            PartArg::VirtualService => Part::VirtualService,
            PartArg::Policy => Part::Policy,
            PartArg::EnvoyFilter => Part::EnvoyFilter,
            PartArg::Service => Part::Service,
            PartArg::HttpRoute => Part::HttpRoute,
        }
    }
}

/// `--api-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiVersionArg {
    /// `v1` (Istio 1.22+).
    V1,
    /// `v1beta1`.
    V1beta1,
}

/// `--mesh-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MeshFormatArg {
    /// istiod's `istio` ConfigMap.
    Configmap,
    /// An IstioOperator for istioctl.
    Istiooperator,
}

fn pairs(values: &[String], flag: &str) -> Result<Vec<(String, String)>, String> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("{flag} {v:?} is not KEY=VALUE"))
        })
        .collect()
}

fn valid_host(host: &str) -> bool {
    let bare = host.strip_prefix("*.").unwrap_or(host);
    bare.contains('.') && names::is_dns1123_subdomain(bare)
}

fn valid_duration(s: &str) -> bool {
    let number = s
        .strip_suffix("ms")
        .or_else(|| s.strip_suffix('s'))
        .or_else(|| s.strip_suffix('m'))
        .or_else(|| s.strip_suffix('h'));
    number.is_some_and(|n| n.parse::<f64>().is_ok_and(|v| v > 0.0))
}

impl IstioArgs {
    /// Validates the flags into [`Settings`].
    pub fn settings(&self) -> Result<Settings, String> {
        if self.hosts.is_empty() {
            return Err("at least one --host is required (the host to protect, e.g. --host nginx.example.com)".to_owned());
        }
        for host in &self.hosts {
            if !valid_host(host) {
                return Err(format!(
                    "--host {host:?} is not a host name (lower-case, e.g. app.example.com or *.example.com; never \"*\", which would put the identity provider behind the check too)"
                ));
            }
        }
        for (flag, value) in [
            ("--provider-name", &self.provider_name),
            ("--service", &self.service),
        ] {
            if !names::is_dns1035_label(value) {
                return Err(format!(
                    "{flag} {value:?} must be a DNS label (lower-case letters, digits, '-')"
                ));
            }
        }
        if !names::is_dns1123_label(&self.namespace)
            || !names::is_dns1123_label(&self.istio_namespace)
        {
            return Err("--namespace and --istio-namespace must be DNS labels".to_owned());
        }
        if !valid_duration(&self.timeout) {
            return Err(format!(
                "--timeout {:?} is not a duration (e.g. 10s, 500ms)",
                self.timeout
            ));
        }
        let proxy_prefix = self.proxy_prefix.trim_end_matches('/').to_owned();
        if !proxy_prefix.starts_with('/') {
            return Err(format!(
                "--proxy-prefix {:?} must start with '/'",
                self.proxy_prefix
            ));
        }
        let callback_path = self
            .callback_path
            .clone()
            .unwrap_or_else(|| format!("{proxy_prefix}/callback"));
        if !callback_path.starts_with('/') {
            return Err(format!(
                "--callback-path {callback_path:?} must start with '/'"
            ));
        }
        for path in &self.skip_paths {
            match names::covered_endpoint(path, &proxy_prefix, &callback_path) {
                Some(endpoint) if endpoint == callback_path => {
                    return Err(format!(
                        "--skip-path {path:?} covers the callback path {callback_path}: the login could never finish"
                    ));
                }
                Some(endpoint) => {
                    return Err(format!(
                        "--skip-path {path:?} covers {endpoint}, one of the adapter's endpoints: they travel through the check, like every path of the host"
                    ));
                }
                None => {}
            }
        }
        let app_service = match &self.app_service {
            None => None,
            Some(app) => {
                let (name, ns) = names::service_of(app, None)
                    .filter(|(_, ns)| ns.is_some())
                    .ok_or_else(|| format!("--app-service {app:?} must be NAME.NAMESPACE (or NAME.NAMESPACE.svc.cluster.local)"))?;
                Some((name, ns.unwrap_or_default()))
            }
        };
        let (gateway_ns, gateway) = match self.gateway.as_deref().map(|g| g.split_once('/')) {
            Some(Some((ns, name))) => (Some(ns.to_owned()), name.to_owned()),
            Some(None) => (None, self.gateway.clone().unwrap_or_default()),
            None if self.ingress == IngressArg::Waypoint => (None, "waypoint".to_owned()),
            None => (None, format!("{}-gateway", self.provider_name)),
        };
        let app_namespace = self
            .app_namespace
            .clone()
            .or(gateway_ns.clone())
            .or_else(|| app_service.as_ref().map(|(_, ns)| ns.clone()))
            .unwrap_or_else(|| self.namespace.clone());
        if gateway_ns.is_some_and(|ns| ns != app_namespace) {
            return Err("--gateway NAMESPACE/NAME: the Gateway goes in the VirtualService's (HTTPRoute's) namespace (--app-namespace)".to_owned());
        }
        if !names::is_dns1123_subdomain(&gateway) {
            return Err(format!("--gateway {gateway:?} is not a valid name"));
        }
        Ok(Settings {
            provider_name: self.provider_name.clone(),
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            port: self.port,
            grpc_port: self.grpc_port,
            hosts: self.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            ingress: match self.ingress {
                IngressArg::Istio => Ingress::Istio,
                IngressArg::GatewayApi => Ingress::GatewayApi,
                IngressArg::Waypoint => Ingress::Waypoint,
            },
            gateway,
            app_namespace,
            app_service: app_service.map(|(name, ns)| format!("{name}.{ns}.svc.cluster.local")),
            app_port: self.app_port,
            proxy_prefix,
            callback_path,
            mode: match self.mode {
                ModeArg::Http => Mode::Http,
                ModeArg::Grpc => Mode::Grpc,
            },
            istio_namespace: self.istio_namespace.clone(),
            gateway_selector: pairs(&self.gateway_selector, "--gateway-selector")?,
            gateway_port: self.gateway_port,
            tls_credential: self.tls_credential.clone(),
            timeout: self.timeout.clone(),
            skip_paths: self.skip_paths.clone(),
            mesh_format: match self.mesh_format {
                MeshFormatArg::Configmap => MeshFormat::ConfigMap,
                MeshFormatArg::Istiooperator => MeshFormat::IstioOperator,
            },
            api_version: match self.api_version {
                ApiVersionArg::V1 => "v1",
                ApiVersionArg::V1beta1 => "v1beta1",
            }
            .to_owned(),
            with_service: self.with_service,
            selector: pairs(&self.selector, "--selector")?,
        })
    }

    fn check_options(&self) -> CheckOptions {
        CheckOptions {
            proxy_prefix: (self.proxy_prefix != "/oauth2").then(|| self.proxy_prefix.clone()),
            callback_path: self.callback_path.clone(),
            istio_namespace: self.istio_namespace.clone(),
        }
    }
}

/// Reads the files (directories: their `*.yaml`/`*.yml`, sorted; `-`: stdin).
pub fn read_sources(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    for path in paths {
        if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("stdin: {e}"))?;
            sources.push(Source {
                name: "<stdin>".to_owned(),
                text,
            });
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> =
                walk(path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.sort();
            for file in files {
                sources.push(read_source(&file)?);
            }
        } else {
            sources.push(read_source(path)?);
        }
    }
    Ok(sources)
}

fn read_source(path: &Path) -> Result<Source, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Source {
        name: path.display().to_string(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// `*.yaml`/`*.yml` under `dir`, leaving out Helm charts' `templates/` (Go templates, not YAML:
/// render them with `helm template` and check the output).
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            let chart_templates = path.file_name().is_some_and(|n| n == "templates")
                && dir.join("Chart.yaml").is_file();
            if !chart_templates {
                found.extend(walk(&path)?);
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
    Ok(found)
}

impl IstioArgs {
    /// Runs `ext-authz-adapter istio`: prints the resources, or checks the `--check` files.
    /// Exit 0: printed, or checked with no finding; 1: findings; 2: bad flags or unreadable
    /// files.
    #[must_use]
    pub fn run(&self) -> ExitCode {
        if !self.check.is_empty() {
            return self.run_check();
        }
        match self.settings() {
            Ok(settings) => {
                let parts: Vec<Part> = self.only.iter().map(|p| Part::from(*p)).collect();
                print!("{}", render_parts(&settings, &parts));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    }

    /// `--check FILE...`: prints each finding, then a summary on stderr.
    fn run_check(&self) -> ExitCode {
        let sources = match read_sources(&self.check) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let findings = check_sources(&sources, &self.check_options());
        for finding in &findings {
            println!("{finding}");
        }
        if findings.is_empty() {
            eprintln!("{} file(s) checked: no problem found", sources.len());
            return ExitCode::SUCCESS;
        }
        eprintln!("{} problem(s) in {} file(s)", findings.len(), sources.len());
        if runs_oauth2_proxy(&sources) {
            eprintln!("{MIGRATION_HINT}");
        }
        ExitCode::from(1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> IstioArgs {
        IstioArgs::try_parse_from(std::iter::once("istio").chain(list.iter().copied())).unwrap()
    }

    #[test]
    fn seed_settings_from_flags() {
        let settings = args(&[
            "--host",
            "nginx.example.com",
            "--gateway",
            "nginx/nginx-gateway",
            "--app-service",
            "hello-nginx.nginx",
            "--with-service",
        ])
        .settings()
        .unwrap();
        assert_eq!(settings, Settings::seed());
    }

    #[test]
    fn flags_are_validated() {
        let err = |list: &[&str]| args(list).settings().unwrap_err();
        assert!(err(&[]).contains("--host"));
        assert!(err(&["--host", "*"]).contains("never \"*\""));
        assert!(err(&["--host", "a.b", "--skip-path", "/oauth2/*"]).contains("callback"));
        assert!(err(&["--host", "a.b", "--skip-path", "/oauth2/userinfo"]).contains("endpoints"));
        assert!(
            err(&[
                "--host",
                "a.b",
                "--proxy-prefix",
                "/auth",
                "--skip-path",
                "/auth/sign_out"
            ])
            .contains("/auth/sign_out")
        );
        assert!(err(&["--host", "a.b", "--timeout", "soon"]).contains("--timeout"));
        assert!(err(&["--host", "a.b", "--app-service", "web"]).contains("NAME.NAMESPACE"));
        assert!(err(&["--host", "a.b", "--provider-name", "Bad_Name"]).contains("DNS label"));
        assert!(err(&["--host", "a.b", "--gateway-selector", "x"]).contains("KEY=VALUE"));
        for fine in ["/healthz", "/oauth2x/*", "/oauth2"] {
            assert!(
                args(&["--host", "a.b", "--skip-path", fine])
                    .settings()
                    .is_ok(),
                "{fine}"
            );
        }
    }

    #[test]
    fn only_the_envoy_filter() {
        let yaml = render_parts(
            &args(&["--host", "a.example.com", "--gateway-selector", "app=gw"])
                .settings()
                .unwrap(),
            &[Part::from(PartArg::EnvoyFilter)],
        );
        assert_eq!(yaml.matches("\n---\n").count(), 1, "{yaml}");
        assert!(yaml.contains("kind: EnvoyFilter\n"), "{yaml}");
        assert!(yaml.contains("      app: gw\n"), "{yaml}");
    }

    #[test]
    fn check_takes_several_files() {
        let cli = args(&["--check", "a.yaml", "b.yaml"]);
        assert_eq!(cli.check.len(), 2);
    }
}
