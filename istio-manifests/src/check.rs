//! `ext-authz-adapter istio --check FILE...`: reads Kubernetes/Istio manifests and reports,
//! with file, line and fix, the mistakes that make an ext_authz setup fail (the seed's, and the
//! traps of DESIGN.md §5).
//!
//! The checks, by rule name (see [`RULES`]): each document on its own (syntax, spelling,
//! names), then across documents and files (the provider the policy names must be declared,
//! its port must be the Service's, the VirtualService must meet its Gateway, ...). A rule that
//! needs two resources only runs when both are among the files: checking one file never
//! complains about what another file may hold.

use std::collections::BTreeSet;

use oidc_core::CookieSecret;

use super::names::{
    ENDPOINTS, cookie_domain_covers, hosts_meet, is_dns1035_label, is_dns1123_label,
    is_dns1123_subdomain, istio_match, service_of, split_gateway_host,
};
use super::render::{
    HCM_FILTER, HCM_TYPE_URL, HEADERS_WITH_UNDERSCORES_ACTION, PATH_NORMALIZATION,
};
use super::yaml::{self, Document, Lines, Node, Value};
use crate::envoy_contract::header_allowed;

mod envoy_filters;
mod gateway_api;
mod model;
mod policies;
mod resources;
mod rules;

pub use model::{CheckOptions, Finding, Source};
pub use rules::RULES;

use envoy_filters::underscore_settings;
use model::Out;
use policies::{Policy, operations, policies, policy_checks, policy_hosts, policy_matches};
use resources::{AdapterService, Res, find_services, list, same_ns, service_ports};

/// An `extensionProviders` entry.
struct Provider<'a> {
    file: &'a str,
    name: &'a str,
    name_line: usize,
    /// `envoyExtAuthzHttp` or `envoyExtAuthzGrpc` (with its key's line), if it is one.
    authz: Option<(bool, &'a Node, usize)>,
}

/// A container of a workload that looks like the adapter (or oauth2-proxy).
struct Adapter<'a> {
    res: &'a Res<'a>,
    container: &'a Node,
    labels: Vec<(&'a str, &'a str)>,
    /// `(flag without dashes, value, line)` from args, command and env (`OAUTH2_PROXY_*`).
    flags: Vec<(String, &'a str, usize, bool)>,
}

impl Adapter<'_> {
    fn flag(&self, name: &str) -> Vec<(&str, usize)> {
        self.flags
            .iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, v, l, _)| (*v, *l))
            .collect()
    }

    fn listen_port(&self, flag: &str) -> Option<u64> {
        let (value, _) = *self.flag(flag).last()?;
        value.rsplit(':').next()?.parse().ok()
    }
}

/// Checks the given files' manifests together.
pub fn check_sources(sources: &[Source], opts: &CheckOptions) -> Vec<Finding> {
    let mut out = Out {
        findings: Vec::new(),
    };
    let parsed: Vec<(&str, &str, Vec<Document>)> = sources
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.text.as_str(),
                yaml::parse_documents(&s.text, Lines::Offset(0)),
            )
        })
        .collect();

    let mut resources = Vec::new();
    for (file, text, docs) in &parsed {
        for doc in docs {
            if let Some(error) = &doc.error {
                let template = text.contains("{{") && text.contains("}}");
                if template {
                    out.add(
                        file,
                        error.line,
                        "yaml-syntax",
                        format!("this is a template, not YAML ({})", error.message),
                        "render it first: helm template RELEASE CHART | ext-authz-adapter istio --check -".to_owned(),
                    );
                } else {
                    syntax_finding(&mut out, file, error, "");
                }
            }
            if let Some(root) = &doc.root {
                duplicate_keys(&mut out, file, root);
                match list_items(root) {
                    // `kubectl get ... -o yaml`: a `List` of the objects.
                    Some(items) => resources.extend(
                        items
                            .iter()
                            .filter(|item| item.is_map())
                            .map(|item| Res::new(file, item)),
                    ),
                    None if root.is_map() => resources.push(Res::new(file, root)),
                    None => {}
                }
            }
        }
    }

    // Mesh configs embedded in ConfigMaps (`data.mesh`), parsed with their file lines.
    let mut embedded: Vec<(&str, Document)> = Vec::new();
    for res in resources.iter().filter(|r| r.is("ConfigMap")) {
        let Some((key, mesh)) = res.root.get_ci("data").and_then(|d| d.entry("mesh")) else {
            continue;
        };
        let Some(text) = mesh.as_str() else { continue };
        let source = parsed
            .iter()
            .find(|(f, ..)| *f == res.file)
            .map_or("", |(_, t, _)| *t);
        let lines = yaml::embedded_lines(mesh, yaml::is_literal_block(source, key.line));
        let lines = match lines {
            Lines::Fixed(_) => Lines::Fixed(key.line),
            offset => offset,
        };
        if let Some(doc) = yaml::parse_one(text, lines) {
            if let Some(error) = &doc.error {
                syntax_finding(&mut out, res.file, error, "the mesh config in data.mesh: ");
            }
            embedded.push((res.file, doc));
        }
    }

    let mut mesh_roots: Vec<(&str, &Node)> = embedded
        .iter()
        .filter_map(|(f, d)| d.root.as_ref().map(|r| (*f, r)))
        .collect();
    for res in &resources {
        if res.is("IstioOperator") {
            if let Some(mesh) = res.spec.and_then(|s| s.get_ci("meshConfig")) {
                mesh_roots.push((res.file, mesh));
            }
        } else if res.kind.is_empty() {
            // A bare mesh config file, or istiod chart values (`meshConfig:`).
            if res.root.get("extensionProviders").is_some() {
                mesh_roots.push((res.file, res.root));
            } else if let Some(mesh) = res.root.get("meshConfig") {
                mesh_roots.push((res.file, mesh));
            }
        }
    }
    let providers: Vec<Provider> = mesh_roots
        .iter()
        .flat_map(|(file, mesh)| {
            mesh.get_ci("extensionProviders")
                .map(Node::items)
                .unwrap_or(&[])
                .iter()
                .filter_map(|p| {
                    let name = p.get("name")?;
                    let authz = p
                        .entry("envoyExtAuthzHttp")
                        .map(|(k, v)| (false, v, k.line))
                        .or_else(|| p.entry("envoyExtAuthzGrpc").map(|(k, v)| (true, v, k.line)));
                    Some(Provider {
                        file,
                        name: name.as_str()?,
                        name_line: name.line,
                        authz,
                    })
                })
        })
        .collect();

    for res in &resources {
        key_case(&mut out, res.file, res.root, 0);
        metadata_names(&mut out, res);
    }
    mesh_configmaps(&mut out, &resources, &embedded, opts);

    let adapters = adapters(&resources);
    let proxy_prefix = opts
        .proxy_prefix
        .clone()
        .or_else(|| {
            adapters
                .iter()
                .find_map(|a| a.flag("proxy-prefix").first().map(|(v, _)| (*v).to_owned()))
        })
        .unwrap_or_else(|| "/oauth2".to_owned());
    let proxy_prefix = proxy_prefix.trim_end_matches('/').to_owned();
    let callback = opts
        .callback_path
        .clone()
        .or_else(|| {
            adapters.iter().find_map(|a| {
                let (url, _) = *a.flag("redirect-url").first()?;
                url::Url::parse(url).ok().map(|u| u.path().to_owned())
            })
        })
        .unwrap_or_else(|| format!("{proxy_prefix}/callback"));

    for provider in &providers {
        provider_fields(&mut out, provider);
        provider_target(&mut out, provider, &resources);
    }
    path_normalization(&mut out, &mesh_roots);
    let policies = policies(&mut out, &resources);
    for policy in &policies {
        policy_provider(&mut out, policy, &providers, !mesh_roots.is_empty());
        policy_callback(&mut out, policy, &proxy_prefix, &callback);
    }
    if providers.iter().any(|p| p.authz.is_some()) {
        underscore_headers(&mut out, &resources, &policies, opts);
    }
    let protected = protected_hosts(&policies);
    let adapter_services = adapter_services(&resources, &adapters, &providers);
    virtual_services(
        &mut out,
        &resources,
        &protected,
        &adapter_services,
        &proxy_prefix,
        &callback,
    );
    gateway_api::check(
        &mut out,
        &resources,
        &policies,
        &protected,
        &adapter_services,
        &proxy_prefix,
        &callback,
    );
    for policy in policies.iter().filter(|p| p.is_custom()) {
        backchannel_logout(
            &mut out,
            policy,
            &resources,
            &adapter_services,
            &proxy_prefix,
        );
    }
    services(&mut out, &resources, &adapters, &providers);
    for adapter in &adapters {
        adapter_container(&mut out, adapter, &protected, &policies);
    }

    let order = |file: &str| sources.iter().position(|s| s.name == file);
    out.findings.sort_by_key(|f| (order(&f.file), f.line));
    out.findings
}

/// The objects of a `List` (`kind: List`, or `ServiceList` and the like, with `items`), as
/// `kubectl get` prints several objects; `None` for any other document.
fn list_items(root: &Node) -> Option<&[Node]> {
    let kind = root.str_at(&["kind"])?;
    let items = root.get("items")?;
    (kind.ends_with("List") && items.is_seq()).then(|| items.items())
}

fn syntax_finding(out: &mut Out, file: &str, error: &yaml::ParseError, what: &str) {
    let fix = if error.repairs.is_empty() {
        "correct the indentation or syntax here: kubectl rejects the whole file, and the rest of this document was not checked".to_owned()
    } else {
        let repairs: Vec<String> = error
            .repairs
            .iter()
            .map(|r| format!("line {}: {}", r.line, r.description))
            .collect();
        format!(
            "{} (the other findings for this document assume that repair)",
            repairs.join("; ")
        )
    };
    out.add(
        file,
        error.line,
        "yaml-syntax",
        format!("{what}YAML does not parse: {}", error.message),
        fix,
    );
}

fn duplicate_keys(out: &mut Out, file: &str, node: &Node) {
    match &node.value {
        Value::Map(entries) => {
            for (i, (key, value)) in entries.iter().enumerate() {
                if let Some(k) = key.as_str()
                    && let Some((first, _)) =
                        entries[..i].iter().find(|(f, _)| f.as_str() == Some(k))
                {
                    out.add(
                        file,
                        key.line,
                        "duplicate-key",
                        format!("key `{k}` is given twice (first on line {}): kubectl rejects the document, other tools keep only one", first.line),
                        format!("merge the two `{k}:` entries"),
                    );
                }
                duplicate_keys(out, file, value);
            }
        }
        Value::Seq(items) => items.iter().for_each(|n| duplicate_keys(out, file, n)),
        Value::Scalar { .. } => {}
    }
}

/// Field names of the Kubernetes and Istio objects the linter reads, spelt right.
const FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "status",
    "data",
    "stringData",
    "binaryData",
    "type",
    "name",
    "namespace",
    "labels",
    "annotations",
    "generateName",
    "selector",
    "matchLabels",
    "matchExpressions",
    "template",
    "containers",
    "initContainers",
    "image",
    "imagePullPolicy",
    "args",
    "command",
    "env",
    "envFrom",
    "value",
    "valueFrom",
    "secretKeyRef",
    "configMapKeyRef",
    "secretRef",
    "key",
    "optional",
    "ports",
    "containerPort",
    "protocol",
    "port",
    "targetPort",
    "nodePort",
    "appProtocol",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "httpGet",
    "path",
    "periodSeconds",
    "initialDelaySeconds",
    "timeoutSeconds",
    "failureThreshold",
    "successThreshold",
    "resources",
    "limits",
    "requests",
    "securityContext",
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "capabilities",
    "drop",
    "seccompProfile",
    "replicas",
    "strategy",
    "volumes",
    "volumeMounts",
    "mountPath",
    "emptyDir",
    "secret",
    "secretName",
    "serviceAccountName",
    "hosts",
    "gateways",
    "http",
    "tcp",
    "tls",
    "match",
    "uri",
    "prefix",
    "exact",
    "regex",
    "rewrite",
    "route",
    "destination",
    "host",
    "number",
    "subset",
    "weight",
    "servers",
    "credentialName",
    "mode",
    "httpsRedirect",
    "action",
    "provider",
    "rules",
    "to",
    "from",
    "operation",
    "source",
    "paths",
    "notPaths",
    "methods",
    "notMethods",
    "notHosts",
    "when",
    "values",
    "notValues",
    "principals",
    "requestPrincipals",
    "namespaces",
    "ipBlocks",
    "meshConfig",
    "extensionProviders",
    "envoyExtAuthzHttp",
    "envoyExtAuthzGrpc",
    "service",
    "timeout",
    "pathPrefix",
    "failOpen",
    "statusOnError",
    "includeRequestHeadersInCheck",
    "includeAdditionalHeadersInCheck",
    "includeHeadersInCheck",
    "headersToUpstreamOnAllow",
    "headersToDownstreamOnAllow",
    "headersToDownstreamOnDeny",
    "includeRequestBodyInCheck",
    "maxRequestBytes",
    "allowPartialMessage",
    "packAsBytes",
    "clusterIP",
    "sessionAffinity",
    "minAvailable",
    "maxUnavailable",
    "scaleTargetRef",
    "minReplicas",
    "maxReplicas",
    "metrics",
    "accessLogFile",
    "defaultConfig",
    "enableTracing",
    "trustDomain",
    "outboundTrafficPolicy",
    "discoveryAddress",
    "tracing",
    "meshNetworks",
    "headers",
    "retries",
    "attempts",
    "perTryTimeout",
    "redirect",
    "authority",
    "scheme",
    "components",
    "ingressGateways",
    "enabled",
    "k8s",
    "profile",
    "hostname",
    "pathNormalization",
    "normalization",
    "workloadSelector",
    "configPatches",
    "applyTo",
    // The Gateway API (Gateway, HTTPRoute, ReferenceGrant) and targetRefs.
    "targetRefs",
    "group",
    "gatewayClassName",
    "listeners",
    "hostnames",
    "parentRefs",
    "sectionName",
    "backendRefs",
    "matches",
    "method",
    "filters",
    "urlRewrite",
    "requestRedirect",
    "replacePrefixMatch",
    "replaceFullPath",
    "statusCode",
    "certificateRefs",
    "allowedRoutes",
];

/// Maps whose keys are data (labels, header names, ConfigMap keys), not field names.
const FREE_FORM: &[&str] = &[
    "labels",
    "annotations",
    "matchLabels",
    "data",
    "stringData",
    "binaryData",
    "nodeSelector",
    "headers",
    "queryParams",
    "withoutHeaders",
    "sourceLabels",
    "proxyMetadata",
    "values",
];

fn key_case(out: &mut Out, file: &str, node: &Node, depth: usize) {
    match &node.value {
        Value::Map(entries) => {
            for (key, value) in entries {
                let Some(k) = key.as_str() else { continue };
                if !FIELDS.contains(&k)
                    && let Some(right) = FIELDS.iter().find(|f| f.eq_ignore_ascii_case(k))
                {
                    out.add(
                        file,
                        key.line,
                        "key-case",
                        format!("`{k}:` is not a field: field names are case-sensitive, so kubectl rejects it (or it is ignored) and the object has no `{right}`"),
                        format!("write `{right}:`"),
                    );
                }
                let free = FREE_FORM.iter().any(|f| f.eq_ignore_ascii_case(k))
                    || (k.eq_ignore_ascii_case("selector") && label_map_of(value))
                    || (k == "data" && depth == 0);
                if !free {
                    key_case(out, file, value, depth + 1);
                }
            }
        }
        Value::Seq(items) => items.iter().for_each(|n| key_case(out, file, n, depth + 1)),
        Value::Scalar { .. } => {}
    }
}

/// A `selector:` that is a plain label map (Service, Gateway), not `matchLabels`.
fn label_map_of(node: &Node) -> bool {
    node.is_map()
        && node.entries().iter().all(|(k, v)| {
            k.as_str().is_some_and(|k| {
                !k.eq_ignore_ascii_case("matchLabels")
                    && !k.eq_ignore_ascii_case("matchExpressions")
            }) && v.as_str().is_some()
        })
}

fn metadata_names(out: &mut Out, res: &Res) {
    if let Some(name) = res.name.and_then(|n| n.as_str().map(|s| (s, n.line))) {
        let (ok, rule) = if res.is("Service") {
            (
                is_dns1035_label(name.0),
                "a DNS-1035 label: lower-case letters, digits and '-', starting with a letter, at most 63 characters",
            )
        } else if res.is("Namespace") {
            (
                is_dns1123_label(name.0),
                "a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters",
            )
        } else {
            (
                is_dns1123_subdomain(name.0),
                "a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
            )
        };
        if !ok {
            out.add(
                res.file,
                name.1,
                "metadata-name",
                format!(
                    "{} name {:?} is invalid: it must be {rule}; the API server rejects the object",
                    kind_or(res),
                    name.0
                ),
                format!("name it {:?}", suggest_name(name.0)),
            );
        }
    }
    if let (Some(ns), Some(node)) = (res.namespace, res.root.path(&["metadata", "namespace"]))
        && !is_dns1123_label(ns)
    {
        out.add(
            res.file,
            node.line,
            "metadata-name",
            format!("namespace {ns:?} is invalid: it must be a DNS-1123 label"),
            format!("use {:?}", suggest_name(ns).replace('.', "-")),
        );
    }
}

fn kind_or(res: &Res) -> String {
    if res.kind.is_empty() {
        "object".to_owned()
    } else {
        res.kind.clone()
    }
}

fn suggest_name(name: &str) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches(|c| c == '-' || c == '.').to_owned();
    if s.is_empty() {
        "my-object".to_owned()
    } else {
        s
    }
}

fn mesh_configmaps(
    out: &mut Out,
    resources: &[Res],
    embedded: &[(&str, Document)],
    opts: &CheckOptions,
) {
    for res in resources.iter().filter(|r| r.is("ConfigMap")) {
        let name = res.name();
        if !(name == "istio" || name.starts_with("istio-"))
            || res.root.path(&["data", "mesh"]).is_none()
        {
            continue;
        }
        let declares = embedded.iter().any(|(f, d)| {
            *f == res.file
                && d.root
                    .as_ref()
                    .is_some_and(|r| r.get("extensionProviders").is_some())
        });
        if res.namespace != Some(opts.istio_namespace.as_str()) {
            let (problem, where_) = match res.namespace {
                None => (
                    "has no namespace".to_owned(),
                    "kubectl puts it in the current namespace".to_owned(),
                ),
                Some(ns) => (
                    format!("is in namespace {ns:?}"),
                    "that is not where istiod runs".to_owned(),
                ),
            };
            out.add(
                res.file,
                res.line(),
                "mesh-namespace",
                format!(
                    "mesh ConfigMap {name} {problem}: {where_}, and istiod only reads {}/{name}{}",
                    opts.istio_namespace,
                    if declares { ", so the extensionProviders it declares do not exist" } else { "" }
                ),
                format!("add `namespace: {}` under metadata (or set meshConfig.extensionProviders with istioctl/helm)", opts.istio_namespace),
            );
        }
    }
}

fn provider_fields(out: &mut Out, p: &Provider) {
    let Some((grpc, body, line)) = p.authz else {
        return;
    };
    let file = p.file;
    let name = p.name;
    if let Some(prefix) = body.get("pathPrefix").filter(|n| !n.is_null())
        && !grpc
    {
        let value = prefix.as_str().unwrap_or("");
        out.add(
            file,
            prefix.line,
            "path-prefix",
            format!(
                "provider {name} sets pathPrefix {value:?}: Envoy prepends it to every checked path, so the adapter sees {value}/oauth2/callback and none of its endpoints match"
            ),
            "remove pathPrefix (the adapter checks every path as it is)".to_owned(),
        );
    }
    if let Some(fail_open) = body.get("failOpen").filter(|n| n.as_bool() == Some(true)) {
        out.add(
            file,
            fail_open.line,
            "fail-open",
            format!("provider {name} has failOpen: true: when the adapter is down or slow, every request reaches the application unauthenticated"),
            "remove failOpen (Envoy then answers 403 when the adapter cannot decide)".to_owned(),
        );
    }
    if grpc {
        return;
    }
    for field in [
        "includeRequestHeadersInCheck",
        "includeHeadersInCheck",
        "headersToUpstreamOnAllow",
        "headersToDownstreamOnAllow",
        "headersToDownstreamOnDeny",
    ] {
        for (header, header_line) in list(body.get(field)) {
            if header == "*" {
                out.add(
                    file,
                    header_line,
                    "header-wildcard",
                    format!("provider {name}: a lone \"*\" in {field} is not supported: Istio rejects the provider"),
                    "list the headers, or use a prefix or suffix pattern (\"x-auth-request-*\")".to_owned(),
                );
            }
        }
    }
    let include = body.entry("includeRequestHeadersInCheck");
    let deprecated = body.entry("includeHeadersInCheck");
    if let (Some((key, _)), None) = (deprecated, include) {
        out.add(
            file,
            key.line,
            "deprecated-field",
            format!("provider {name} uses includeHeadersInCheck, a deprecated name that Istio reads only while includeRequestHeadersInCheck is unset and means to remove"),
            "rename it includeRequestHeadersInCheck".to_owned(),
        );
    }
    let (headers_line, headers) = match include.or(deprecated) {
        Some((key, value)) => (key.line, list(Some(value))),
        None => (line, Vec::new()),
    };
    let names: Vec<&str> = headers.iter().map(|(h, _)| *h).collect();
    let field = if include.is_some() || deprecated.is_none() {
        "includeRequestHeadersInCheck"
    } else {
        "includeHeadersInCheck"
    };
    if !header_allowed(&names, "cookie") {
        out.add(
            file,
            headers_line,
            "check-headers",
            format!("provider {name}: `cookie` is not in {field}, so Envoy does not send the session cookie to the adapter and every request looks signed out (login loop)"),
            format!("add \"cookie\" to includeRequestHeadersInCheck: {}", flow(crate::envoy_contract::INCLUDE_REQUEST_HEADERS_IN_CHECK)),
        );
    }
    if !header_allowed(&names, "x-forwarded-proto") {
        out.add(
            file,
            headers_line,
            "check-headers",
            format!("provider {name}: `x-forwarded-proto` is not in {field}, so behind a TLS gateway the adapter builds http:// callback URLs that the IdP rejects"),
            format!("add \"x-forwarded-proto\" (the gateway sets it from the connection): {}", flow(crate::envoy_contract::INCLUDE_REQUEST_HEADERS_IN_CHECK)),
        );
    }
    for (header, header_line) in &headers {
        if header_allowed(&[header], "x-forwarded-host") {
            let exact = header.eq_ignore_ascii_case("x-forwarded-host");
            let (what, fix) = if exact {
                (
                    "`x-forwarded-host`".to_owned(),
                    format!("remove \"{header}\" from {field}"),
                )
            } else {
                (
                    format!("`x-forwarded-host` (through {header:?})"),
                    format!("list the headers instead of {header:?}, without x-forwarded-host"),
                )
            };
            out.add(
                file,
                *header_line,
                "forwarded-host",
                format!("provider {name}: {field} passes {what} to the adapter: the gateway neither sets nor checks it, so it is whatever the client sent, while Envoy routes by Host, which the check carries and the adapter judges"),
                format!("{fix}: {}", flow(crate::envoy_contract::INCLUDE_REQUEST_HEADERS_IN_CHECK)),
            );
        }
    }
    let deny = body.entry("headersToDownstreamOnDeny");
    let deny_line = deny.map_or(line, |(k, _)| k.line);
    let deny_names: Vec<&str> = list(deny.map(|(_, v)| v)).iter().map(|(h, _)| *h).collect();
    for (header, why) in [
        (
            "set-cookie",
            "the login flow's state cookie and the new session cookie never reach the browser, so the callback fails",
        ),
        (
            "content-type",
            "the adapter's sign-in page and JSON errors reach the browser without their content type",
        ),
    ] {
        if !header_allowed(&deny_names, header) {
            out.add(
                file,
                deny_line,
                "deny-headers",
                format!("provider {name}: `{header}` is not in headersToDownstreamOnDeny: {why}"),
                format!(
                    "headersToDownstreamOnDeny: {}",
                    flow(crate::envoy_contract::HEADERS_TO_DOWNSTREAM_ON_DENY)
                ),
            );
        }
    }
    let allow = body.entry("headersToDownstreamOnAllow");
    let allow_names: Vec<&str> = list(allow.map(|(_, v)| v))
        .iter()
        .map(|(h, _)| *h)
        .collect();
    if !header_allowed(&allow_names, "set-cookie") {
        out.add(
            file,
            allow.map_or(line, |(k, _)| k.line),
            "allow-headers",
            format!("provider {name}: `set-cookie` is not in headersToDownstreamOnAllow{}, so a session refreshed on an allowed request (--cookie-refresh) never reaches the browser", if allow.is_none() { " (not set)" } else { "" }),
            format!("headersToDownstreamOnAllow: {}", flow(crate::envoy_contract::HEADERS_TO_DOWNSTREAM_ON_ALLOW)),
        );
    }
    let upstream = body.entry("headersToUpstreamOnAllow");
    let upstream_names: Vec<&str> = list(upstream.map(|(_, v)| v))
        .iter()
        .map(|(h, _)| *h)
        .collect();
    if ![
        "authorization",
        "x-auth-request-user",
        "x-auth-request-email",
    ]
    .iter()
    .any(|h| header_allowed(&upstream_names, h))
    {
        out.add(
            file,
            upstream.map_or(line, |(k, _)| k.line),
            "upstream-headers",
            format!("provider {name}: headersToUpstreamOnAllow passes none of the adapter's identity headers, so the application never learns who signed in"),
            format!("headersToUpstreamOnAllow: {}", flow(crate::envoy_contract::HEADERS_TO_UPSTREAM_ON_ALLOW)),
        );
    }
}

fn flow(list: &[&str]) -> String {
    let quoted: Vec<String> = list.iter().map(|h| format!("{h:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn is_grpc_name(name: Option<&str>, app_protocol: Option<&str>) -> bool {
    name.is_some_and(|n| n == "grpc" || n.starts_with("grpc-"))
        || app_protocol.is_some_and(|p| p.eq_ignore_ascii_case("grpc"))
}

fn provider_target(out: &mut Out, p: &Provider, resources: &[Res]) {
    let Some((grpc, body, line)) = p.authz else {
        return;
    };
    let Some(service) = body
        .get("service")
        .and_then(|s| s.as_str().map(|v| (v, s.line)))
    else {
        out.add(
            p.file,
            line,
            "provider-service",
            format!("provider {} has no service", p.name),
            "set service: <name>.<namespace>.svc.cluster.local".to_owned(),
        );
        return;
    };
    let (found, elsewhere) = find_services(resources, service.0, None);
    if found.is_empty() {
        if let Some(other) = elsewhere.first() {
            out.add(
                p.file,
                service.1,
                "provider-service",
                format!(
                    "provider {} points at {}, but Service {} is in namespace {} ({}:{})",
                    p.name,
                    service.0,
                    other.name(),
                    other.namespace.unwrap_or("?"),
                    other.file,
                    other.line()
                ),
                format!(
                    "service: {}.{}.svc.cluster.local",
                    other.name(),
                    other.namespace.unwrap_or("default")
                ),
            );
        }
        return;
    }
    let port = body.get("port");
    let Some(svc) = found.first() else { return };
    let ports = service_ports(svc);
    let wanted = ports.iter().find(|(name, _, node)| {
        is_grpc_name(name.as_deref(), node.str_at(&["appProtocol"])) == grpc
    });
    let listing: Vec<String> = ports
        .iter()
        .map(|(name, number, _)| match (name, number) {
            (Some(n), Some(p)) => format!("{p} ({n})"),
            (None, Some(p)) => p.to_string(),
            _ => "?".to_owned(),
        })
        .collect();
    let mode = if grpc { "gRPC" } else { "HTTP" };
    match port.and_then(|n| n.as_u64().map(|v| (v, n.line))) {
        None => out.add(
            p.file,
            line,
            "provider-port",
            format!("provider {} has no port", p.name),
            format!(
                "port: {}",
                wanted
                    .and_then(|w| w.1)
                    .map_or("<the Service's port>".to_owned(), |v| v.to_string())
            ),
        ),
        Some((number, port_line)) => {
            let hit = ports.iter().find(|(_, n, _)| *n == Some(number));
            match hit {
                None => out.add(
                    p.file,
                    port_line,
                    "provider-port",
                    format!(
                        "provider {} sends checks to port {number} of {}, but Service {} ({}:{}) exposes {}",
                        p.name, service.0, svc.id(), svc.file, svc.line(), listing.join(", ")
                    ),
                    format!(
                        "port: {} (the Service's port, not the container's)",
                        wanted.and_then(|w| w.1).map_or_else(|| listing.join(" or "), |v| v.to_string())
                    ),
                ),
                Some((name, _, node)) if is_grpc_name(name.as_deref(), node.str_at(&["appProtocol"])) != grpc => out.add(
                    p.file,
                    port_line,
                    "provider-port",
                    format!(
                        "provider {} is {mode} (envoyExtAuthz{}) but port {number} of Service {} is its {} port",
                        p.name,
                        if grpc { "Grpc" } else { "Http" },
                        svc.id(),
                        if grpc { "HTTP" } else { "gRPC" }
                    ),
                    match wanted.and_then(|w| w.1) {
                        Some(v) => format!("port: {v}"),
                        None => format!("give Service {} a port named {}", svc.name(), if grpc { "grpc-ext-authz" } else { "http" }),
                    },
                ),
                Some(_) => {}
            }
        }
    }
}

fn policy_provider(out: &mut Out, policy: &Policy, providers: &[Provider], mesh_seen: bool) {
    if !mesh_seen || !policy.is_custom() {
        return;
    }
    let Some(name_node) = policy.provider.and_then(|p| p.get_ci("name")) else {
        return;
    };
    let Some(name) = name_node.as_str() else {
        return;
    };
    if providers.iter().any(|p| p.name == name) {
        return;
    }
    let declared: Vec<String> = providers
        .iter()
        .map(|p| format!("{:?} ({}:{})", p.name, p.file, p.name_line))
        .collect();
    let fix = match providers
        .iter()
        .find(|p| p.authz.is_some())
        .or(providers.first())
    {
        Some(p) => format!(
            "set provider.name: {} (or declare {name:?} under meshConfig.extensionProviders)",
            p.name
        ),
        None => format!("declare {name:?} under meshConfig.extensionProviders"),
    };
    out.add(
        policy.res.file,
        name_node.line,
        "provider-undeclared",
        format!(
            "AuthorizationPolicy {} names provider {name:?}, which extensionProviders does not declare ({}): Istio rejects the policy and the gateway denies the protected hosts",
            policy.res.name(),
            if declared.is_empty() { "it declares none".to_owned() } else { format!("declared: {}", declared.join(", ")) }
        ),
        fix,
    );
}

fn policy_callback(out: &mut Out, policy: &Policy, prefix: &str, callback: &str) {
    if !policy.is_custom() {
        return;
    }
    let hosts: BTreeSet<String> = policy_hosts(policy)
        .iter()
        .map(|(h, _)| h.trim_end_matches(":*").trim_end_matches('*').to_owned())
        .filter(|h| !h.is_empty())
        .collect();
    let hosts: Vec<String> = if hosts.is_empty() {
        vec!["app.example.com".to_owned()]
    } else {
        hosts.into_iter().collect()
    };
    // The callback first, then the adapter's other endpoints: all travel through the check.
    let endpoints: Vec<String> = std::iter::once(callback.to_owned())
        .chain(ENDPOINTS.iter().map(|e| format!("{prefix}/{e}")))
        .collect();
    let name = policy.res.name();
    for host in hosts {
        for endpoint in &endpoints {
            if policy_matches(policy, &host, endpoint) {
                continue;
            }
            // The host is protected (some path matches) but this endpoint is not: find why.
            for rule in policy.rules.map(Node::items).unwrap_or(&[]) {
                for op in operations(rule).into_iter().flatten() {
                    // Only the operations meant for this host.
                    let for_host = |key: &str| {
                        op.get_ci(key)
                            .map(|n| n.strings().iter().any(|(p, _)| istio_match(p, &host, true)))
                    };
                    if !for_host("hosts").unwrap_or(true) || for_host("notHosts").unwrap_or(false) {
                        continue;
                    }
                    if let Some((pattern, line)) = list(op.get_ci("notPaths"))
                        .into_iter()
                        .find(|(p, _)| istio_match(p, endpoint, false))
                    {
                        // One finding per pattern: the first endpoint it takes out.
                        let first = endpoints
                            .iter()
                            .find(|e| istio_match(pattern, e, false))
                            .is_some_and(|e| e == endpoint);
                        if !first {
                            continue;
                        }
                        let problem = if endpoint == callback {
                            format!(
                                "AuthorizationPolicy {name}: notPaths {pattern:?} takes the callback path {callback} out of the check, so the login callback reaches the adapter only if a VirtualService routes it there (else the application gets it and sign-in cannot finish); the adapter's endpoints travel through the check like every path"
                            )
                        } else {
                            format!(
                                "AuthorizationPolicy {name}: notPaths {pattern:?} takes {endpoint}, one of the adapter's endpoints, out of the check, so it reaches the adapter only if a VirtualService routes it there (else the application answers it); the adapter's endpoints travel through the check like every path"
                            )
                        };
                        out.add(
                            policy.res.file,
                            line,
                            "callback-not-checked",
                            problem,
                            format!("remove {pattern:?} from notPaths (never exclude {prefix}/* or the callback: the check answers them)"),
                        );
                    } else if endpoint == callback
                        && let Some(paths) = op.get_ci("paths")
                        && !paths
                            .strings()
                            .iter()
                            .any(|(p, _)| istio_match(p, callback, false))
                    {
                        out.add(
                            policy.res.file,
                            paths.line,
                            "callback-not-checked",
                            format!("AuthorizationPolicy {name}: paths do not include the callback path {callback}, so the login callback never reaches the adapter through the check"),
                            format!("add \"{}/*\" to paths", callback.rsplit_once('/').map_or("", |(p, _)| p)),
                        );
                    }
                }
            }
        }
    }
}

/// The accepted `pathNormalization.normalization` values: both merge runs of `/`.
const MERGING_NORMALIZATIONS: &[&str] = &["MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"];

/// The mesh config must merge slashes (`pathNormalization`), as the applications behind the
/// gateway do: checked where a mesh config declares an ext_authz provider.
fn path_normalization(out: &mut Out, mesh_roots: &[(&str, &Node)]) {
    let fix = format!(
        "pathNormalization: {{normalization: {PATH_NORMALIZATION}}} in the mesh config (DECODE_AND_MERGE_SLASHES also decodes %2F first; `ext-authz-adapter istio --only mesh` prints it)"
    );
    let why = "so the CUSTOM policy, the routes and the adapter see `//admin` where nginx (merge_slashes on), Tomcat and many frameworks serve `/admin`";
    let mut settled = false;
    for (file, mesh) in mesh_roots {
        let Some((key, value)) = mesh.entry_ci("pathNormalization") else {
            continue;
        };
        settled = true;
        let normalization = value.get_ci("normalization");
        match normalization.and_then(Node::as_str) {
            Some(n) if MERGING_NORMALIZATIONS.contains(&n) => {}
            other => out.add(
                file,
                normalization.map_or(key.line, |n| n.line),
                "path-normalization",
                format!(
                    "the mesh config's pathNormalization is {}, which does not merge runs of `/`, {why}",
                    other.map_or("BASE (no normalization set)".to_owned(), |n| n.to_owned())
                ),
                fix.clone(),
            ),
        }
    }
    if settled {
        return;
    }
    for (file, mesh) in mesh_roots {
        let Some((key, providers)) = mesh.entry_ci("extensionProviders") else {
            continue;
        };
        let authz: Vec<&str> = providers
            .items()
            .iter()
            .filter(|p| {
                p.get("envoyExtAuthzHttp").is_some() || p.get("envoyExtAuthzGrpc").is_some()
            })
            .filter_map(|p| p.str_at(&["name"]))
            .collect();
        if authz.is_empty() {
            continue;
        }
        out.add(
            file,
            key.line,
            "path-normalization",
            format!(
                "the mesh config that declares the ext_authz provider {} sets no pathNormalization: Istio's default (BASE) resolves `..` but keeps `//`, {why}",
                authz.join(", ")
            ),
            format!("add {fix}"),
        );
    }
}

/// Label pairs (`key`, `value`).
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// The labels of a policy's `selector.matchLabels`.
fn policy_selector<'a>(policy: &Policy<'a>) -> Labels<'a> {
    policy
        .res
        .spec
        .and_then(|s| s.path(&["selector", "matchLabels"]))
        .map(Node::entries)
        .unwrap_or(&[])
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
        .collect()
}

/// Every CUSTOM policy's gateway must refuse (or drop) header names with underscores: an
/// EnvoyFilter merging `headers_with_underscores_action` into its HTTP connection manager.
/// Checked when the files hold the setup (a mesh config declaring an ext_authz provider and
/// the policy).
fn underscore_headers(out: &mut Out, resources: &[Res], policies: &[Policy], opts: &CheckOptions) {
    let settings = underscore_settings(out, resources);
    gateway_api::underscore_headers(out, resources, policies, &settings, opts);
    // The gateways already judged: `(namespace, selector labels)`.
    let mut seen: Vec<(Option<&str>, Labels)> = Vec::new();
    for policy in policies
        .iter()
        .filter(|p| p.is_custom() && gateway_api::target_refs(p).is_empty())
    {
        let selector = policy_selector(policy);
        let key = (policy.res.namespace, selector.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let applies = |filter: &Res| {
            let in_namespace = same_ns(filter.namespace, policy.res.namespace)
                || filter.namespace == Some(opts.istio_namespace.as_str());
            let labels: Vec<(&str, &str)> = filter
                .spec
                .and_then(|s| s.path(&["workloadSelector", "labels"]))
                .map(Node::entries)
                .unwrap_or(&[])
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
                .collect();
            in_namespace && labels.iter().all(|l| selector.contains(l))
        };
        let covered = settings.iter().any(|(filter, action, gateway, _)| {
            *gateway
                && matches!(action.as_str(), Some("REJECT_REQUEST" | "DROP_HEADER"))
                && applies(filter)
        });
        if covered {
            continue;
        }
        let elsewhere: Vec<String> = settings
            .iter()
            .filter(|(_, action, ..)| action.as_str() != Some("ALLOW"))
            .map(|(filter, action, ..)| {
                format!(
                    "EnvoyFilter {} ({}:{}) does not apply to this gateway (its namespace, workloadSelector, applyTo or context)",
                    filter.id(),
                    filter.file,
                    action.line
                )
            })
            .collect();
        let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let namespace = policy
            .res
            .namespace
            .unwrap_or(opts.istio_namespace.as_str());
        out.add(
            policy.res.file,
            policy.action.map_or(policy.res.line(), |n| n.line),
            "underscore-headers",
            format!(
                "AuthorizationPolicy {}: nothing sets the headers_with_underscores_action of its ingress gateway ({}){}: Envoy's default (ALLOW) passes `X-Auth_Request-User`, which CGI, PHP and WSGI applications read as X-Auth-Request-User (HTTP_X_AUTH_REQUEST_USER), and Istio has no mesh setting for it",
                policy.res.name(),
                if labels.is_empty() { "every workload".to_owned() } else { labels.join(", ") },
                if elsewhere.is_empty() { String::new() } else { format!("; {}", elsewhere.join("; ")) },
            ),
            format!(
                "apply an EnvoyFilter in {namespace} with workloadSelector.labels {{{}}} and a configPatch applyTo: NETWORK_FILTER, match: {{context: GATEWAY, listener: {{filterChain: {{filter: {{name: {HCM_FILTER}}}}}}}}}, patch: {{operation: MERGE, value: {{typed_config: {{\"@type\": {HCM_TYPE_URL}, common_http_protocol_options: {{headers_with_underscores_action: {HEADERS_WITH_UNDERSCORES_ACTION}}}}}}}}} (`ext-authz-adapter istio --host HOST --only envoy-filter` prints it)",
                labels.join(", ")
            ),
        );
    }
}

/// The hosts CUSTOM policies protect (exact names, ports and wildcards left out).
fn protected_hosts(policies: &[Policy]) -> Vec<(String, String, usize)> {
    let mut hosts: Vec<(String, String, usize)> = Vec::new();
    for policy in policies.iter().filter(|p| p.is_custom()) {
        for (host, line) in policy_hosts(policy) {
            let host = host.trim_end_matches(":*");
            if !host.contains('*') && !host.contains(':') && !hosts.iter().any(|(h, ..)| h == host)
            {
                hosts.push((host.to_ascii_lowercase(), policy.res.file.to_owned(), line));
            }
        }
    }
    hosts
}

/// The adapter's Services: the providers' services, and the Services that select an adapter
/// workload among the files.
fn adapter_services(
    resources: &[Res],
    adapters: &[Adapter],
    providers: &[Provider],
) -> Vec<AdapterService> {
    let http_port = |name: &str, ns: Option<&str>| {
        let (found, _) = find_services(resources, name, ns);
        found.first().and_then(|svc| {
            service_ports(svc)
                .into_iter()
                .find(|(n, _, node)| !is_grpc_name(n.as_deref(), node.str_at(&["appProtocol"])))
                .and_then(|(_, port, _)| port)
        })
    };
    let mut found: Vec<AdapterService> = Vec::new();
    for provider in providers {
        let Some((grpc, body, _)) = provider.authz else {
            continue;
        };
        let Some((name, ns)) = body.str_at(&["service"]).and_then(|h| service_of(h, None)) else {
            continue;
        };
        let port = http_port(&name, ns.as_deref()).or(if grpc {
            None
        } else {
            body.get("port").and_then(Node::as_u64)
        });
        found.push((name, ns, port));
    }
    for svc in resources.iter().filter(|r| r.is("Service")) {
        let selector: Vec<(&str, &str)> = svc
            .spec
            .and_then(|s| s.get_ci("selector"))
            .map(Node::entries)
            .unwrap_or(&[])
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
            .collect();
        let selects_adapter = !selector.is_empty()
            && adapters.iter().any(|a| {
                same_ns(a.res.namespace, svc.namespace)
                    && selector.iter().all(|l| a.labels.contains(l))
            });
        if selects_adapter {
            let port = http_port(svc.name(), svc.namespace);
            found.push((
                svc.name().to_owned(),
                svc.namespace.map(str::to_owned),
                port,
            ));
        }
    }
    found
}

/// Whether an HTTP route's match covers a GET of `path`; with the matched prefix, if any.
fn route_covers<'a>(route: &'a Node, path: &str) -> Option<Option<&'a str>> {
    let Some(matches) = route.get_ci("match") else {
        return Some(None);
    };
    for m in matches.items() {
        let Some(uri) = m.get_ci("uri") else {
            return Some(None);
        };
        if let Some(prefix) = uri.str_at(&["prefix"]) {
            if path.starts_with(prefix) {
                return Some(Some(prefix));
            }
        } else if let Some(exact) = uri.str_at(&["exact"]) {
            if path == exact {
                return Some(Some(exact));
            }
        } else {
            // A regex: assume it may match.
            return Some(None);
        }
    }
    None
}

fn virtual_services(
    out: &mut Out,
    resources: &[Res],
    protected: &[(String, String, usize)],
    adapter_services: &[AdapterService],
    prefix: &str,
    callback: &str,
) {
    let gateways: Vec<&Res> = resources.iter().filter(|r| r.is_istio_gateway()).collect();
    for vs in resources.iter().filter(|r| r.is("VirtualService")) {
        let Some(spec) = vs.spec else { continue };
        let hosts = list(spec.get_ci("hosts"));
        let refs = list(spec.get_ci("gateways"));
        // Gateway binding.
        let mut served_by: Vec<(&Res, Vec<(String, usize)>)> = Vec::new();
        for (gw_ref, ref_line) in refs.iter().filter(|(g, _)| *g != "mesh") {
            let (ns, name) = match gw_ref.split_once('/') {
                Some((ns, name)) => (Some(ns), name),
                None => (vs.namespace, *gw_ref),
            };
            let named: Vec<&&Res> = gateways.iter().filter(|g| g.name() == name).collect();
            let here: Vec<&&Res> = named
                .iter()
                .copied()
                .filter(|g| same_ns(g.namespace, ns))
                .collect();
            if here.is_empty() {
                if let Some(other) = named.first() {
                    out.add(
                        vs.file,
                        *ref_line,
                        "gateway-ref",
                        format!("VirtualService {} names Gateway {gw_ref:?}, which resolves to namespace {}, but Gateway {name} is in {} ({}:{})", vs.name(), ns.unwrap_or("(current)"), other.namespace.unwrap_or("(current)"), other.file, other.line()),
                        format!("write {}/{name}", other.namespace.unwrap_or("<namespace>")),
                    );
                }
                continue;
            }
            for gw in here {
                let server_hosts: Vec<(String, usize)> = gw
                    .spec
                    .and_then(|s| s.get_ci("servers"))
                    .map(Node::items)
                    .unwrap_or(&[])
                    .iter()
                    .flat_map(|s| list(s.get_ci("hosts")))
                    .filter(|(h, _)| {
                        let (ns_part, _) = split_gateway_host(h);
                        match ns_part {
                            "*" => true,
                            "." => same_ns(gw.namespace, vs.namespace),
                            ns => same_ns(Some(ns), vs.namespace),
                        }
                    })
                    .map(|(h, l)| (split_gateway_host(h).1.to_owned(), l))
                    .collect();
                served_by.push((gw, server_hosts));
            }
        }
        if !served_by.is_empty() {
            for (host, line) in &hosts {
                let meets = served_by
                    .iter()
                    .any(|(_, hs)| hs.iter().any(|(h, _)| hosts_meet(h, host)));
                if !meets {
                    let theirs: Vec<String> = served_by
                        .iter()
                        .map(|(gw, hs)| {
                            format!(
                                "Gateway {} serves {} ({}:{})",
                                gw.id(),
                                hs.iter()
                                    .map(|(h, _)| h.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                gw.file,
                                hs.first().map_or(gw.line(), |(_, l)| *l)
                            )
                        })
                        .collect();
                    out.add(
                        vs.file,
                        *line,
                        "hosts-do-not-meet",
                        format!("VirtualService {} routes host {host}, but {}: the gateway never applies this route and answers 404", vs.name(), theirs.join("; ")),
                        format!("use the same host in both: add {host:?} to the Gateway's server hosts (or change this host to the Gateway's)"),
                    );
                }
            }
        } else if refs.is_empty() {
            let bound = gateways.iter().find(|g| {
                g.spec
                    .and_then(|s| s.get_ci("servers"))
                    .map(Node::items)
                    .unwrap_or(&[])
                    .iter()
                    .flat_map(|s| list(s.get_ci("hosts")))
                    .any(|(h, _)| {
                        hosts.iter().any(|(vh, _)| {
                            hosts_meet(split_gateway_host(h).1, vh)
                                && split_gateway_host(h).1 != "*"
                        })
                    })
            });
            if let Some(gw) = bound {
                out.add(
                    vs.file,
                    spec.entry_ci("hosts").map_or(vs.line(), |(k, _)| k.line),
                    "gateway-ref",
                    format!("VirtualService {} has no `gateways`, so it only applies inside the mesh, not at the ingress gateway that serves its hosts", vs.name()),
                    format!("add `gateways: [{}]`", if gw.namespace == vs.namespace { gw.name().to_owned() } else { gw.id() }),
                );
            }
        }

        // Routes.
        let routes = spec.get_ci("http").map(Node::items).unwrap_or(&[]);
        for route in routes {
            if let Some(rewrite) = route
                .path(&["rewrite", "uri"])
                .and_then(|n| n.as_str().map(|s| (s, n.line)))
                && let Some(matched) = route_covers(route, callback)
            {
                let rest = matched.map_or("", |m| &callback[m.len().min(callback.len())..]);
                let rewritten = format!("{}{rest}", rewrite.0);
                if !rewritten.starts_with(&format!("{prefix}/")) {
                    out.add(
                        vs.file,
                        rewrite.1,
                        "rewrite-strips-prefix",
                        format!("VirtualService {}: the route for {} rewrites the path to {:?}, so {callback} arrives at its destination as {rewritten} and the adapter does not recognise its own endpoints ({prefix}/callback, /sign_out, /userinfo)", vs.name(), matched.unwrap_or("this path"), rewrite.0),
                        format!("remove the rewrite: the adapter serves everything under {prefix}"),
                    );
                }
            }
            for dest in route.get_ci("route").map(Node::items).unwrap_or(&[]) {
                let Some(host) = dest.path(&["destination", "host"]).and_then(Node::as_str) else {
                    continue;
                };
                let (found, _) = find_services(resources, host, vs.namespace);
                let Some(svc) = found.first() else { continue };
                let ports = service_ports(svc);
                match dest.path(&["destination", "port", "number"]) {
                    Some(number) => {
                        if let Some(n) = number.as_u64()
                            && !ports.iter().any(|(_, p, _)| *p == Some(n))
                        {
                            let listing: Vec<String> = ports.iter().filter_map(|(_, p, _)| p.map(|p| p.to_string())).collect();
                            out.add(
                                vs.file,
                                number.line,
                                "destination-port",
                                format!("VirtualService {} sends {host} traffic to port {n}, but Service {} ({}:{}) exposes {}", vs.name(), svc.id(), svc.file, svc.line(), listing.join(", ")),
                                format!("port: {{ number: {} }}", listing.first().map_or("<the Service's port>", String::as_str)),
                            );
                        }
                    }
                    None if ports.len() > 1 => out.add(
                        vs.file,
                        dest.line,
                        "destination-port",
                        format!("VirtualService {}: Service {} has {} ports, so the destination must say which", vs.name(), svc.id(), ports.len()),
                        "add port: { number: <port> }".to_owned(),
                    ),
                    None => {}
                }
            }
        }
        // The callback must be routed on protected hosts.
        let guarded: Vec<&(String, String, usize)> = protected
            .iter()
            .filter(|(p, ..)| hosts.iter().any(|(h, _)| hosts_meet(h, p)))
            .collect();
        if !guarded.is_empty()
            && !routes.is_empty()
            && !routes.iter().any(|r| route_covers(r, callback).is_some())
        {
            out.add(
                vs.file,
                spec.entry_ci("http").map_or(vs.line(), |(k, _)| k.line),
                "callback-not-routed",
                format!("VirtualService {}: no route matches the callback path {callback} on {}, so the gateway answers 404 to the IdP's redirect", vs.name(), guarded[0].0),
                format!("add a route for prefix {prefix}/ to the adapter's http port, before the application's"),
            );
        }
        if !guarded.is_empty() {
            prefix_route(out, vs, routes, &guarded[0].0, adapter_services, prefix);
        }
    }
}

/// The adapter's prefix on a protected host must be routed to the adapter: what the check
/// answers with 200 (`<prefix>/userinfo`, the sign-in page) is an allow for Envoy, which then
/// forwards the request to the route's destination.
fn prefix_route(
    out: &mut Out,
    vs: &Res,
    routes: &[Node],
    host: &str,
    adapter_services: &[AdapterService],
    prefix: &str,
) {
    let probe = format!("{prefix}/userinfo");
    let Some((route, matched)) = routes
        .iter()
        .find_map(|r| route_covers(r, &probe).map(|m| (r, m)))
    else {
        // No route at all: `callback-not-routed`.
        return;
    };
    let is_adapter = |dest: &str| {
        service_of(dest, vs.namespace).is_some_and(|(name, ns)| {
            adapter_services
                .iter()
                .any(|(n, n_ns, _)| *n == name && same_ns(n_ns.as_deref(), ns.as_deref()))
        })
    };
    let destinations: Vec<(&str, usize)> = route
        .get_ci("route")
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .filter_map(|d| {
            let host = d.path(&["destination", "host"])?;
            Some((host.as_str()?, host.line))
        })
        .collect();
    let specific = matched.is_some_and(|m| m.starts_with(prefix));
    let wrong = if adapter_services.is_empty() {
        // Without the adapter among the files, only a catch-all route is known to be wrong.
        (!specific).then(|| destinations.first().copied())
    } else {
        destinations
            .iter()
            .find(|(d, _)| !is_adapter(d))
            .map(|d| Some(*d))
    };
    let Some(wrong) = wrong else { return };
    let which = if specific {
        format!("the route for {}", matched.unwrap_or(prefix))
    } else {
        "the catch-all route".to_owned()
    };
    let line = wrong.map_or(route.line, |(_, l)| l);
    let target = adapter_services.first().map_or_else(
        || "<the adapter's Service>:<its http port>".to_owned(),
        |(name, ns, port)| {
            format!(
                "{name}.{}.svc.cluster.local:{}",
                ns.as_deref().unwrap_or("<namespace>"),
                port.map_or("<its http port>".to_owned(), |p| p.to_string())
            )
        },
    );
    out.add(
        vs.file,
        line,
        "prefix-route",
        format!(
            "VirtualService {}: {prefix}/ on {host} goes to {} ({which}), not to the adapter: the check answers the adapter's endpoints, but in HTTP mode those it answers with 200 ({prefix}/userinfo, the sign-in page) are an allow for Envoy, which forwards them there, and the application answers in the adapter's place",
            vs.name(),
            wrong.map_or("no destination", |(d, _)| d),
        ),
        format!(
            "add a first route `match: [{{uri: {{prefix: {prefix}/}}}}]` to {target} (no rewrite), before the application's (`ext-authz-adapter istio` renders it)"
        ),
    );
}

/// Whether an HTTP route's match takes a `method` request of `path` (a GET: [`route_covers`]).
fn route_takes(route: &Node, method: &str, path: &str) -> bool {
    let Some(matches) = route.get_ci("match") else {
        return true;
    };
    matches.items().iter().any(|m| {
        let method_ok = m.get_ci("method").is_none_or(|pattern| {
            match (pattern.str_at(&["exact"]), pattern.str_at(&["prefix"])) {
                (Some(exact), _) => method == exact,
                (None, Some(prefix)) => method.starts_with(prefix),
                // A regex: assume it may match.
                (None, None) => true,
            }
        });
        let uri_ok = match m.get_ci("uri") {
            None => true,
            Some(uri) => match (uri.str_at(&["prefix"]), uri.str_at(&["exact"])) {
                (Some(prefix), _) => path.starts_with(prefix),
                (None, Some(exact)) => path == exact,
                // A regex: assume it may match.
                (None, None) => true,
            },
        };
        method_ok && uri_ok
    })
}

/// The identity provider's back-channel logout (`POST <prefix>/backchannel-logout`) carries
/// its logout token in the body, which an ext_authz check never has: the gateway must take
/// exactly that request to the adapter without the check (a CUSTOM policy that leaves it out,
/// a VirtualService route to the adapter), and nothing more.
fn backchannel_logout(
    out: &mut Out,
    policy: &Policy,
    resources: &[Res],
    adapter_services: &[AdapterService],
    prefix: &str,
) {
    let path = format!("{prefix}/{}", crate::envoy_contract::BACKCHANNEL_LOGOUT);
    let name = policy.res.name();
    let line = policy.rules.map_or(policy.res.line(), |r| r.line);
    let exact_fix = format!(
        "leave out exactly that request: notPaths: [\"{path}\"] in the host's rule, and a second rule `to: [{{operation: {{hosts: [...], paths: [\"{path}\"], notMethods: [\"POST\"]}}}}]` (`ext-authz-adapter istio` renders both)"
    );
    let hosts: BTreeSet<String> = policy_hosts(policy)
        .iter()
        .map(|(h, _)| h.trim_end_matches(":*").to_owned())
        .filter(|h| !h.is_empty() && !h.contains('*'))
        .collect();
    // One finding per rule and policy, naming the first host it concerns.
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    let mut add = |out: &mut Out, rule: &'static str, problem: String, fix: String| {
        if reported.insert(rule) {
            out.add(policy.res.file, line, rule, problem, fix);
        }
    };
    for host in hosts {
        // The VirtualServices of this host among the files, and where they send a request.
        let routes: Vec<(&Res, &Node)> = resources
            .iter()
            .filter(|r| r.is("VirtualService"))
            .filter(|vs| {
                vs.spec.is_some_and(|s| {
                    list(s.get_ci("hosts"))
                        .iter()
                        .any(|(h, _)| hosts_meet(h, &host))
                })
            })
            .flat_map(|vs| {
                vs.spec
                    .and_then(|s| s.get_ci("http"))
                    .map(Node::items)
                    .unwrap_or(&[])
                    .iter()
                    .map(move |r| (vs, r))
            })
            .collect();
        let destination = |method: &str, path: &str| {
            let Some((vs, route)) = routes.iter().find(|(_, r)| route_takes(r, method, path))
            else {
                // The HTTPRoutes of this host, if any.
                return gateway_api::destination(resources, &host, adapter_services, method, path);
            };
            let dest = route
                .get_ci("route")
                .map(Node::items)
                .unwrap_or(&[])
                .iter()
                .filter_map(|d| d.path(&["destination", "host"])?.as_str())
                .find(|d| {
                    !service_of(d, vs.namespace).is_some_and(|(n, ns)| {
                        adapter_services
                            .iter()
                            .any(|(a, a_ns, _)| *a == n && same_ns(a_ns.as_deref(), ns.as_deref()))
                    })
                });
            Some(dest.map(str::to_owned))
        };
        if policy_checks(policy, &host, "POST", &path) {
            // Only where the adapter's prefix is routed to the adapter: the setup this is for.
            let probe = format!("{prefix}/userinfo");
            if !adapter_services.is_empty() && destination("GET", &probe) == Some(None) {
                add(
                    out,
                    "backchannel-logout-checked",
                    format!(
                        "AuthorizationPolicy {name}: the identity provider's back-channel logout (POST {path} on {host}) goes through the check, which carries no body: the logout token never reaches the adapter (it answers 502 and logs the missing route), and sessions and bearer tokens of a user signed out at the provider stay valid"
                    ),
                    format!("{exact_fix}; and route POST {path} to the adapter's http port first"),
                );
            }
            continue;
        }
        // A policy that does not check the adapter's prefix at all: `callback-not-checked`.
        if !policy_checks(policy, &host, "GET", &format!("{prefix}/userinfo")) {
            continue;
        }
        let wider: Vec<String> = [
            ("GET", path.clone()),
            ("PUT", path.clone()),
            ("DELETE", path.clone()),
            ("POST", format!("{path}/x")),
            ("POST", format!("{path}x")),
            ("POST", format!("{prefix}/x")),
        ]
        .into_iter()
        .filter(|(method, p)| !policy_checks(policy, &host, method, p))
        .map(|(method, p)| format!("{method} {p}"))
        .collect();
        if !wider.is_empty() {
            add(
                out,
                "backchannel-logout-exempt",
                format!(
                    "AuthorizationPolicy {name}: on {host}, not only POST {path} skips the check but also {}: the adapter's other endpoints answer through the check, and what skips it reaches its route's destination unchecked",
                    wider.join(", ")
                ),
                exact_fix.clone(),
            );
        }
        match destination("POST", &path) {
            Some(Some(dest)) if !adapter_services.is_empty() => add(
                out,
                "backchannel-logout-route",
                format!(
                    "AuthorizationPolicy {name}: POST {path} on {host} skips the check, and the VirtualService sends it to {dest}, not to the adapter: an unchecked request reaches it, and the logout is lost"
                ),
                format!(
                    "add a first route `match: [{{uri: {{exact: {path}}}, method: {{exact: POST}}}}]` to the adapter's http port (`ext-authz-adapter istio` renders it)"
                ),
            ),
            _ => {}
        }
    }
}

/// The containers that look like the adapter or oauth2-proxy.
fn adapters<'a>(resources: &'a [Res<'a>]) -> Vec<Adapter<'a>> {
    let mut found = Vec::new();
    for res in resources {
        let Some(template) = res.spec.and_then(|s| s.get_ci("template")) else {
            continue;
        };
        let labels: Vec<(&str, &str)> = template
            .path(&["metadata", "labels"])
            .map(Node::entries)
            .unwrap_or(&[])
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
            .collect();
        for container in template
            .path(&["spec", "containers"])
            .map(Node::items)
            .unwrap_or(&[])
        {
            let mut flags = Vec::new();
            let mut words: Vec<(&str, usize)> = Vec::new();
            for key in ["command", "args"] {
                words.extend(list(container.get_ci(key)));
            }
            let mut i = 0;
            while i < words.len() {
                let (word, line) = words[i];
                if let Some(flag) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) {
                    match flag.split_once('=') {
                        Some((name, value)) => flags.push((name.to_owned(), value, line, true)),
                        None => {
                            if let Some((next, next_line)) =
                                words.get(i + 1).filter(|(n, _)| !n.starts_with('-'))
                            {
                                flags.push((flag.to_owned(), *next, *next_line, true));
                                i += 1;
                            } else {
                                flags.push((flag.to_owned(), "true", line, true));
                            }
                        }
                    }
                }
                i += 1;
            }
            for var in container.get_ci("env").map(Node::items).unwrap_or(&[]) {
                let Some(name) = var.str_at(&["name"]) else {
                    continue;
                };
                let Some(flag) = name.strip_prefix("OAUTH2_PROXY_") else {
                    continue;
                };
                let flag = flag.to_ascii_lowercase().replace('_', "-");
                let flag = match flag.as_str() {
                    "cookie-domains" => "cookie-domain".to_owned(),
                    "upstreams" => "upstream".to_owned(),
                    "email-domains" => "email-domain".to_owned(),
                    _ => flag,
                };
                match var.get("value") {
                    Some(value) => {
                        if let Some(v) = value.as_str() {
                            flags.push((flag, v, value.line, false));
                        }
                    }
                    None => flags.push((flag, "", var.line, false)),
                }
            }
            let image = container.str_at(&["image"]).unwrap_or("");
            let looks_like = ["oauth2-proxy", "ext-authz-adapter", "oidc-authz"]
                .iter()
                .any(|i| image.contains(i))
                || flags.iter().any(|(n, ..)| n == "oidc-issuer-url");
            if looks_like {
                found.push(Adapter {
                    res,
                    container,
                    labels: labels.clone(),
                    flags,
                });
            }
        }
    }
    found
}

/// A workload whose pods a Service selects: the workload, its pod template, the pods' labels.
type Pod<'a> = (&'a Res<'a>, &'a Node, Vec<(&'a str, &'a str)>);

fn services(out: &mut Out, resources: &[Res], adapters: &[Adapter], providers: &[Provider]) {
    for svc in resources.iter().filter(|r| r.is("Service")) {
        let selector: Vec<(&str, &str)> = svc
            .spec
            .and_then(|s| s.get_ci("selector"))
            .map(Node::entries)
            .unwrap_or(&[])
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
            .collect();
        // Workloads whose pods this Service selects.
        let pods: Vec<Pod> = resources
            .iter()
            .filter(|w| same_ns(w.namespace, svc.namespace))
            .filter_map(|w| {
                let template = w.spec?.get_ci("template")?;
                let labels: Vec<(&str, &str)> = template
                    .path(&["metadata", "labels"])
                    .map(Node::entries)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
                    .collect();
                (!selector.is_empty() && selector.iter().all(|s| labels.contains(s)))
                    .then_some((w, template, labels))
            })
            .collect();
        let selected_adapters: Vec<&Adapter> = adapters
            .iter()
            .filter(|a| {
                same_ns(a.res.namespace, svc.namespace)
                    && !selector.is_empty()
                    && selector.iter().all(|s| a.labels.contains(s))
            })
            .collect();
        let grpc_provider_ports: Vec<u64> = providers
            .iter()
            .filter_map(|p| {
                let (grpc, body, _) = p.authz?;
                let (name, ns) = service_of(body.str_at(&["service"])?, None)?;
                (grpc && name == svc.name() && same_ns(ns.as_deref(), svc.namespace))
                    .then_some(body.get("port")?.as_u64()?)
            })
            .collect();
        let adapter_grpc_ports: Vec<u64> = selected_adapters
            .iter()
            .filter_map(|a| a.listen_port("grpc-address"))
            .collect();
        for (name, number, node) in service_ports(svc) {
            let app_protocol = node.str_at(&["appProtocol"]);
            let target = node.get("targetPort");
            let target_number =
                target
                    .and_then(Node::as_u64)
                    .or(if target.is_none() { number } else { None });
            let is_grpc_port = number.is_some_and(|n| grpc_provider_ports.contains(&n))
                || target_number.is_some_and(|t| adapter_grpc_ports.contains(&t))
                || name.as_deref().is_some_and(|n| n.contains("grpc"));
            if is_grpc_port && !is_grpc_name(name.as_deref(), app_protocol) {
                let line = node.get("name").map_or(node.line, |n| n.line);
                out.add(
                    svc.file,
                    line,
                    "grpc-port-name",
                    format!(
                        "Service {} port {} carries gRPC but is named {}: Istio picks the protocol from the port name, treats it as plain TCP, and the ext_authz gRPC calls fail",
                        svc.id(),
                        number.map_or("?".to_owned(), |n| n.to_string()),
                        name.as_deref().map_or("nothing".to_owned(), |n| format!("{n:?}"))
                    ),
                    "name it grpc-ext-authz (or `grpc`, or set appProtocol: grpc)".to_owned(),
                );
            }
            // The pods must listen on the target port.
            let mut listening: Vec<u64> = Vec::new();
            let mut names: Vec<&str> = Vec::new();
            for (_, template, _) in &pods {
                for c in template
                    .path(&["spec", "containers"])
                    .map(Node::items)
                    .unwrap_or(&[])
                {
                    for p in c.get_ci("ports").map(Node::items).unwrap_or(&[]) {
                        listening.extend(p.get("containerPort").and_then(Node::as_u64));
                        names.extend(p.str_at(&["name"]));
                    }
                }
            }
            for a in &selected_adapters {
                listening.extend(a.listen_port("http-address"));
                listening.extend(a.listen_port("grpc-address"));
                listening.extend(a.listen_port("metrics-address"));
            }
            if pods.is_empty() || (listening.is_empty() && names.is_empty()) {
                continue;
            }
            let ok = match (target_number, target.and_then(Node::as_str)) {
                (Some(t), _) => listening.contains(&t),
                (None, Some(named)) => names.contains(&named),
                (None, None) => true,
            };
            if !ok {
                let shown = target.and_then(Node::as_str).map_or_else(
                    || number.map_or("?".to_owned(), |n| n.to_string()),
                    str::to_owned,
                );
                let mut listening: Vec<String> = listening.iter().map(u64::to_string).collect();
                listening.dedup();
                out.add(
                    svc.file,
                    target.map_or(node.line, |t| t.line),
                    "target-port",
                    format!(
                        "Service {} forwards to targetPort {shown}, but the pods of {} listen on {}",
                        svc.id(),
                        pods.iter().map(|(w, ..)| format!("{} {}", w.kind, w.name())).collect::<Vec<_>>().join(", "),
                        listening.join(", ")
                    ),
                    format!("targetPort: {}", listening.first().map_or("<a container port>", String::as_str)),
                );
            }
        }
    }
}

fn adapter_container(
    out: &mut Out,
    a: &Adapter,
    protected: &[(String, String, usize)],
    policies: &[Policy],
) {
    let file = a.res.file;
    let who = format!("{} {}", a.res.kind, a.res.name());
    for flag in ["http-address", "grpc-address"] {
        for (value, line) in a.flag(flag) {
            let host = value
                .trim_start_matches("http://")
                .rsplit_once(':')
                .map_or("", |(h, _)| h);
            if matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1") {
                out.add(
                    file,
                    line,
                    "listen-address",
                    format!("{who} listens on {value} (loopback): the ingress gateway and the kubelet's probes cannot reach it"),
                    format!("--{flag}=0.0.0.0:{}", value.rsplit(':').next().unwrap_or("4180")),
                );
            }
        }
    }
    for (probe, wrong, right, why) in [
        (
            "readinessProbe",
            "/ping",
            "/ready",
            "/ping answers before the identity provider is discovered, so traffic arrives at a pod that cannot log anyone in",
        ),
        (
            "livenessProbe",
            "/ready",
            "/ping",
            "/ready fails while the identity provider is down, and the kubelet then restarts every pod",
        ),
    ] {
        if let Some(path) = a.container.path(&[probe, "httpGet", "path"])
            && path.as_str() == Some(wrong)
        {
            out.add(
                file,
                path.line,
                "probe-path",
                format!("{who}: the {probe} uses {wrong}: {why}"),
                format!("path: {right} (readiness on /ready, liveness on /ping)"),
            );
        }
    }
    for flag in ["cookie-secret", "client-secret", "redis-password"] {
        for (_, value, line, arg) in a.flags.iter().filter(|(n, ..)| n == flag) {
            if value.is_empty() {
                continue;
            }
            out.add(
                file,
                *line,
                "inline-secret",
                format!(
                    "{who}: the {} is written into the manifest ({}), readable by anyone who can read the {}",
                    flag.replace('-', " "),
                    if *arg { format!("--{flag} argument") } else { format!("env value of OAUTH2_PROXY_{}", flag.to_ascii_uppercase().replace('-', "_")) },
                    a.res.kind
                ),
                format!(
                    "keep it in a Secret and use env OAUTH2_PROXY_{} with valueFrom.secretKeyRef (the Helm chart does)",
                    flag.to_ascii_uppercase().replace('-', "_")
                ),
            );
            if flag == "cookie-secret" {
                for secret in value.split(',') {
                    if CookieSecret::parse(secret).is_err() {
                        out.add(
                            file,
                            *line,
                            "cookie-secret",
                            format!("{who}: the cookie secret is {} bytes; it must be 16, 24 or 32 bytes (raw, or base64 of that many), so the adapter refuses to start", secret.len()),
                            "generate one: openssl rand -base64 32 | tr -- '+/' '-_'".to_owned(),
                        );
                    }
                }
            }
        }
    }
    let domains: Vec<(&str, usize)> = a
        .flag("cookie-domain")
        .into_iter()
        .flat_map(|(v, l)| v.split(',').map(move |d| (d.trim(), l)))
        .filter(|(d, _)| !d.is_empty())
        .collect();
    if !domains.is_empty() {
        let uncovered: Vec<&(String, String, usize)> = protected
            .iter()
            .filter(|(h, ..)| !domains.iter().any(|(d, _)| cookie_domain_covers(d, h)))
            .collect();
        if let Some(first) = uncovered.first() {
            let names: Vec<&str> = uncovered.iter().map(|(h, ..)| h.as_str()).collect();
            let parent = first.0.split_once('.').map_or(first.0.as_str(), |(_, p)| p);
            out.add(
                file,
                domains[0].1,
                "cookie-domain",
                format!(
                    "{who}: --cookie-domain {} does not cover {} (protected at {}:{}): the browser drops the session cookie, so every sign-in loops back to the IdP",
                    domains.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(","),
                    names.join(", "),
                    first.1,
                    first.2
                ),
                format!("--cookie-domain=.{parent} (or leave it out: the cookie then belongs to the request's host)"),
            );
        }
    }
    if let Some((issuer, _)) = a.flag("oidc-issuer-url").first()
        && let Ok(url) = url::Url::parse(issuer)
        && let Some(host) = url.host_str()
    {
        for policy in policies.iter().filter(|p| p.is_custom()) {
            if policy_matches(policy, host, url.path()) {
                let line = policy_hosts(policy)
                    .into_iter()
                    .find(|(h, _)| istio_match(h, host, true))
                    .map_or(policy.res.line(), |(_, l)| l);
                out.add(
                    policy.res.file,
                    line,
                    "idp-protected",
                    format!("AuthorizationPolicy {} also sends the identity provider's host {host} (--oidc-issuer-url) to the adapter: the login page itself needs a login, a redirect loop", policy.res.name()),
                    format!("list only the application hosts in the policy's hosts (not {host})"),
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(files: &[(&str, &str)]) -> Vec<Finding> {
        let sources: Vec<Source> = files
            .iter()
            .map(|(n, t)| Source {
                name: (*n).to_owned(),
                text: (*t).to_owned(),
            })
            .collect();
        check_sources(&sources, &CheckOptions::default())
    }

    fn rules(findings: &[Finding]) -> Vec<(&'static str, usize)> {
        findings.iter().map(|f| (f.rule, f.line)).collect()
    }

    const MESH: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    extensionProviders:
    - name: authz
      envoyExtAuthzHttp:
        service: adapter.auth.svc.cluster.local
        port: 4180
        includeRequestHeadersInCheck: [\"authorization\", \"cookie\", \"x-forwarded-proto\"]
        headersToUpstreamOnAllow: [\"authorization\", \"x-auth-request-*\"]
        headersToDownstreamOnAllow: [\"set-cookie\"]
        headersToDownstreamOnDeny: [\"content-type\", \"set-cookie\"]
    pathNormalization:
      normalization: MERGE_SLASHES
";

    /// The ingress gateway's underscore setting, as `ext-authz-adapter istio` renders it.
    const ENVOY_FILTER: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: underscores
  namespace: istio-system
spec:
  workloadSelector:
    labels:
      istio: ingressgateway
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      context: GATEWAY
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
    patch:
      operation: MERGE
      value:
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          common_http_protocol_options:
            headers_with_underscores_action: REJECT_REQUEST
";

    const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: adapter
  namespace: auth
spec:
  selector:
    app: adapter
  ports:
  - name: http
    port: 4180
  - name: grpc-ext-authz
    port: 4181
";

    const POLICY: &str = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: authz
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  action: CUSTOM
  provider:
    name: authz
  rules:
  - to:
    - operation:
        hosts: [\"app.example.com\"]
";

    #[test]
    fn a_consistent_set_has_no_finding() {
        let f = run(&[
            ("mesh.yaml", MESH),
            ("svc.yaml", SERVICE),
            ("policy.yaml", POLICY),
            ("ef.yaml", ENVOY_FILTER),
        ]);
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn findings_print_as_file_line_problem_fix() {
        let f = run(&[(
            "p.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a=b\n",
        )]);
        assert_eq!(f.len(), 1);
        let text = f[0].to_string();
        assert!(
            text.starts_with("p.yaml:4: ConfigMap name \"a=b\" is invalid"),
            "{text}"
        );
        assert!(text.contains(". fix: name it \"a-b\""), "{text}");
    }

    #[test]
    fn syntax_errors_have_the_line_and_the_rest_is_still_checked() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n- name: grpcx\n  port: 1\n";
        let f = run(&[("s.yaml", text)]);
        assert_eq!(
            rules(&f),
            vec![("yaml-syntax", 7), ("grpc-port-name", 7)],
            "{f:#?}"
        );
        assert!(
            f[0].fix.contains("indent `- name: grpcx` by 2 spaces"),
            "{}",
            f[0]
        );
        let f = run(&[("s.yaml", "a: [1\n")]);
        assert_eq!(f[0].rule, "yaml-syntax");
        assert!(f[0].fix.contains("rest of this document was not checked"));
    }

    #[test]
    fn templates_are_not_yaml() {
        let f = run(&[(
            "t.yaml",
            "metadata:\n  labels:\n    {{- include \"x\" . | nindent 4 }}\n",
        )]);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].fix.contains("helm template"), "{}", f[0]);
    }

    #[test]
    fn duplicate_keys() {
        let f = run(&[("d.yaml", "kind: X\nmetadata:\n  name: a\nkind: Y\n")]);
        assert_eq!(rules(&f), vec![("duplicate-key", 4)]);
    }

    #[test]
    fn capitalised_keys() {
        let f = run(&[(
            "d.yaml",
            "apiVersion: apps/v1\nKind: Deployment\nmetadata:\n  name: a\n  labels:\n    Name: x\nSpec:\n  selector:\n    matchLabels:\n      Host: x\n  template:\n    spec:\n      Containers: []\n",
        )]);
        assert_eq!(
            rules(&f),
            vec![("key-case", 2), ("key-case", 7), ("key-case", 13)],
            "{f:#?}"
        );
        assert_eq!(f[1].fix, "write `spec:`");
        let f = run(&[(
            "m.yaml",
            "meshConfig:\n  PathNormalization:\n    normalization: MERGE_SLASHES\n",
        )]);
        assert_eq!(rules(&f), vec![("key-case", 2)], "{f:#?}");
    }

    #[test]
    fn invalid_names() {
        let f = run(&[(
            "n.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: 1svc\n  namespace: My_NS\n",
        )]);
        assert_eq!(rules(&f), vec![("metadata-name", 4), ("metadata-name", 5)]);
    }

    #[test]
    fn policy_fields_nested_under_selector() {
        let policy = POLICY.replace("\n  action:", "\n    action:").replace(
            "\n  provider:\n    name: authz",
            "\n    provider:\n      name: authz",
        );
        let f = run(&[("p.yaml", &policy)]);
        assert_eq!(
            rules(&f),
            vec![("policy-nested-under-selector", 10)],
            "{f:#?}"
        );
        assert!(f[0].problem.contains("`action`, `provider`"), "{}", f[0]);
    }

    #[test]
    fn policy_action_and_provider_and_rules() {
        let no_provider = POLICY.replace("  provider:\n    name: authz\n", "");
        assert_eq!(
            rules(&run(&[("p.yaml", &no_provider)])),
            vec![("policy-action", 10)]
        );
        let not_custom = POLICY.replace("CUSTOM", "ALLOW");
        assert_eq!(
            rules(&run(&[("p.yaml", &not_custom)])),
            vec![("policy-action", 12)]
        );
        let no_rules = POLICY.split("  rules:").next().unwrap().to_owned();
        assert_eq!(
            rules(&run(&[("p.yaml", &no_rules)])),
            vec![("policy-action", 10)]
        );
    }

    #[test]
    fn undeclared_provider() {
        let policy = POLICY.replace("name: authz\n  rules", "name: oauth2-proxy\n  rules");
        let f = run(&[
            ("mesh.yaml", MESH),
            ("p.yaml", &policy),
            ("ef.yaml", ENVOY_FILTER),
        ]);
        assert_eq!(rules(&f), vec![("provider-undeclared", 12)], "{f:#?}");
        assert!(f[0].fix.starts_with("set provider.name: authz"));
        // Without a mesh config among the files, nothing to compare with.
        assert!(run(&[("p.yaml", &policy)]).is_empty());
    }

    #[test]
    fn provider_port_must_be_the_services() {
        let mesh = MESH.replace("port: 4180", "port: 80");
        let f = run(&[("mesh.yaml", &mesh), ("svc.yaml", SERVICE)]);
        assert_eq!(rules(&f), vec![("provider-port", 12)], "{f:#?}");
        assert!(f[0].fix.starts_with("port: 4180"), "{}", f[0]);
        // The HTTP provider on the gRPC port.
        let mesh = MESH.replace("port: 4180", "port: 4181");
        assert_eq!(
            rules(&run(&[("mesh.yaml", &mesh), ("svc.yaml", SERVICE)])),
            vec![("provider-port", 12)]
        );
        // Wrong namespace.
        let mesh = MESH.replace("adapter.auth.svc", "adapter.other.svc");
        assert_eq!(
            rules(&run(&[("mesh.yaml", &mesh), ("svc.yaml", SERVICE)])),
            vec![("provider-service", 11)]
        );
    }

    #[test]
    fn grpc_provider_and_port_names() {
        let mesh = MESH
            .replace("envoyExtAuthzHttp", "envoyExtAuthzGrpc")
            .replace("port: 4180", "port: 4181");
        let f = run(&[("mesh.yaml", &mesh), ("svc.yaml", SERVICE)]);
        assert!(f.is_empty(), "{f:#?}");
        let svc = SERVICE.replace("grpc-ext-authz", "ext-authz");
        let f = run(&[("mesh.yaml", &mesh), ("svc.yaml", &svc)]);
        assert_eq!(
            rules(&f),
            vec![("provider-port", 12), ("grpc-port-name", 12)],
            "{f:#?}"
        );
        let svc = SERVICE.replace("grpc-ext-authz", "grpc_authz");
        assert_eq!(
            rules(&run(&[("svc.yaml", &svc)])),
            vec![("grpc-port-name", 12)]
        );
    }

    #[test]
    fn mesh_configmap_namespace() {
        let mesh = MESH.replace("  namespace: istio-system\n", "");
        let f = run(&[("mesh.yaml", &mesh)]);
        assert_eq!(rules(&f), vec![("mesh-namespace", 4)]);
        assert!(f[0].problem.contains("do not exist"));
    }

    #[test]
    fn header_lists() {
        let mesh = MESH.replace("\"cookie\", ", "");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("check-headers", 13)]
        );
        let mesh = MESH.replace(", \"x-forwarded-proto\"", "");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("check-headers", 13)]
        );
        let mesh = MESH.replace("includeRequestHeadersInCheck", "includeHeadersInCheck");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("deprecated-field", 13)]
        );
        let mesh = MESH.replace("[\"content-type\", \"set-cookie\"]", "[\"content-type\"]");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("deny-headers", 16)]
        );
        let mesh = MESH.replace("[\"content-type\", \"set-cookie\"]", "[\"set-cookie\"]");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("deny-headers", 16)]
        );
        let mesh = MESH.replace("        headersToDownstreamOnAllow: [\"set-cookie\"]\n", "");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("allow-headers", 10)]
        );
        let mesh = MESH.replace("[\"authorization\", \"x-auth-request-*\"]", "[\"x-foo\"]");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("upstream-headers", 14)]
        );
        let mesh = MESH.replace("[\"set-cookie\"]", "[\"*\"]");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("header-wildcard", 15)]
        );
        // Patterns count: `x-auth-request-*`, `*` ...
        let mesh = MESH.replace("\"cookie\"", "\"cook*\"");
        assert!(run(&[("m.yaml", &mesh)]).is_empty());
    }

    #[test]
    fn forwarded_host_in_the_check() {
        let mesh = MESH.replace(
            "\"x-forwarded-proto\"]",
            "\"x-forwarded-proto\", \"X-Forwarded-Host\"]",
        );
        let f = run(&[("m.yaml", &mesh)]);
        assert_eq!(rules(&f), vec![("forwarded-host", 13)], "{f:#?}");
        assert!(
            f[0].problem.contains("whatever the client sent"),
            "{}",
            f[0]
        );
        assert!(
            f[0].fix.starts_with(
                "remove \"X-Forwarded-Host\" from includeRequestHeadersInCheck: [\"authorization\""
            ),
            "{}",
            f[0]
        );
        assert!(!f[0].fix.contains("x-forwarded-host"), "{}", f[0]);
        // A pattern that lets it through counts too; the deprecated field as well.
        let mesh = MESH.replace("\"x-forwarded-proto\"]", "\"x-forwarded-*\"]");
        let f = run(&[("m.yaml", &mesh)]);
        assert_eq!(rules(&f), vec![("forwarded-host", 13)], "{f:#?}");
        assert!(
            f[0].fix.starts_with("list the headers instead of"),
            "{}",
            f[0]
        );
        let mesh = MESH
            .replace("includeRequestHeadersInCheck", "includeHeadersInCheck")
            .replace(
                "\"x-forwarded-proto\"]",
                "\"x-forwarded-proto\", \"x-forwarded-host\"]",
            );
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("deprecated-field", 13), ("forwarded-host", 13)]
        );
        // x-forwarded-proto alone (or with x-forwarded-for) is what the adapter needs.
        let mesh = MESH.replace(
            "\"x-forwarded-proto\"]",
            "\"x-forwarded-proto\", \"x-forwarded-for\"]",
        );
        assert!(run(&[("m.yaml", &mesh)]).is_empty());
    }

    #[test]
    fn path_normalization_must_merge_slashes() {
        let bare = MESH.replace(
            "    pathNormalization:\n      normalization: MERGE_SLASHES\n",
            "",
        );
        let f = run(&[("m.yaml", &bare)]);
        assert_eq!(rules(&f), vec![("path-normalization", 8)], "{f:#?}");
        assert!(
            f[0].problem
                .contains("provider authz sets no pathNormalization"),
            "{}",
            f[0]
        );
        assert!(
            f[0].fix
                .starts_with("add pathNormalization: {normalization: MERGE_SLASHES}"),
            "{}",
            f[0]
        );
        for weak in ["BASE", "NONE", "DEFAULT"] {
            let mesh = MESH.replace("MERGE_SLASHES", weak);
            let f = run(&[("m.yaml", &mesh)]);
            assert_eq!(
                rules(&f),
                vec![("path-normalization", 18)],
                "{weak}: {f:#?}"
            );
            assert!(f[0].problem.contains(&format!("is {weak},")), "{}", f[0]);
        }
        let mesh = MESH.replace("      normalization: MERGE_SLASHES\n", "      {}\n");
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("path-normalization", 17)]
        );
        let strict = MESH.replace("MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES");
        assert!(run(&[("m.yaml", &strict)]).is_empty());
        // Set in another mesh config among the files (an IstioOperator): fine.
        let op = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata:\n  name: x\n  namespace: istio-system\nspec:\n  meshConfig:\n    pathNormalization:\n      normalization: MERGE_SLASHES\n";
        assert!(run(&[("m.yaml", &bare), ("op.yaml", op)]).is_empty());
        // A mesh config without an ext_authz provider is not the one the gateway's checks use.
        let other = "meshConfig:\n  extensionProviders:\n  - name: zipkin\n    zipkin:\n      service: z.istio-system\n      port: 9411\n";
        assert!(run(&[("values.yaml", other)]).is_empty());
    }

    #[test]
    fn the_gateway_must_refuse_underscores() {
        let setup = |extra: &[(&'static str, &str)]| {
            let mut files = vec![
                ("mesh.yaml", MESH.to_owned()),
                ("p.yaml", POLICY.to_owned()),
            ];
            files.extend(extra.iter().map(|(n, t)| (*n, (*t).to_owned())));
            let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
            run(&files)
        };
        let f = setup(&[]);
        assert_eq!(rules(&f), vec![("underscore-headers", 10)], "{f:#?}");
        assert!(f[0].problem.contains("(istio: ingressgateway)"), "{}", f[0]);
        assert!(
            f[0].fix
                .contains("headers_with_underscores_action: REJECT_REQUEST"),
            "{}",
            f[0]
        );
        assert!(
            f[0].fix
                .contains("in istio-system with workloadSelector.labels {istio: ingressgateway}"),
            "{}",
            f[0]
        );
        assert!(setup(&[("ef.yaml", ENVOY_FILTER)]).is_empty());
        // DROP_HEADER closes it too; camelCase keys are protobuf JSON as well; no context is ANY.
        let drop = ENVOY_FILTER
            .replace("REJECT_REQUEST", "DROP_HEADER")
            .replace("common_http_protocol_options", "commonHttpProtocolOptions")
            .replace("      context: GATEWAY\n", "");
        assert!(setup(&[("ef.yaml", &drop)]).is_empty());
        // ALLOW, another gateway, a sidecar context, another namespace: not this gateway's.
        let allow = ENVOY_FILTER.replace("REJECT_REQUEST", "ALLOW");
        assert_eq!(
            rules(&setup(&[("ef.yaml", &allow)])),
            vec![("underscore-headers", 10), ("underscore-headers", 24)]
        );
        for (other, why) in [
            (
                ENVOY_FILTER.replace("istio: ingressgateway", "istio: egressgateway"),
                "selector",
            ),
            (
                ENVOY_FILTER.replace("context: GATEWAY", "context: SIDECAR_INBOUND"),
                "context",
            ),
            (
                ENVOY_FILTER.replace("namespace: istio-system", "namespace: app"),
                "namespace",
            ),
            (
                ENVOY_FILTER.replace("applyTo: NETWORK_FILTER", "applyTo: HTTP_FILTER"),
                "applyTo",
            ),
        ] {
            let f = setup(&[("ef.yaml", &other)]);
            assert_eq!(rules(&f), vec![("underscore-headers", 10)], "{why}: {f:#?}");
            assert!(
                f[0].problem
                    .contains("EnvoyFilter istio-system/underscores (ef.yaml:24)")
                    || why == "namespace",
                "{why}: {}",
                f[0]
            );
        }
        // A policy alone, or without a mesh config declaring the provider: nothing to judge.
        assert!(run(&[("p.yaml", POLICY)]).is_empty());
    }

    #[test]
    fn path_prefix_and_fail_open() {
        let mesh = MESH.replace(
            "        port: 4180\n",
            "        port: 4180\n        pathPrefix: /check\n        failOpen: true\n",
        );
        assert_eq!(
            rules(&run(&[("m.yaml", &mesh)])),
            vec![("path-prefix", 13), ("fail-open", 14)]
        );
    }

    #[test]
    fn istio_operator_and_bare_mesh_config_declare_providers() {
        let op = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata:\n  name: x\n  namespace: istio-system\nspec:\n  meshConfig:\n    extensionProviders:\n    - name: authz\n      envoyExtAuthzHttp:\n        service: adapter.auth.svc.cluster.local\n        port: 80\n";
        let f = run(&[("op.yaml", op), ("svc.yaml", SERVICE), ("p.yaml", POLICY)]);
        assert!(
            f.iter().any(|f| f.rule == "provider-port" && f.line == 12),
            "{f:#?}"
        );
        assert!(!f.iter().any(|f| f.rule == "provider-undeclared"));
        let values = "meshConfig:\n  extensionProviders:\n  - name: other\n    envoyExtAuthzGrpc:\n      service: x.y\n      port: 1\n  pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}\n";
        let f = run(&[
            ("values.yaml", values),
            ("p.yaml", POLICY),
            ("ef.yaml", ENVOY_FILTER),
        ]);
        assert_eq!(rules(&f), vec![("provider-undeclared", 12)]);
    }

    #[test]
    fn callback_rules_look_only_at_the_hosts_operations() {
        // api.example.com protects only /v1/*: its callback is not checked (line 20); the
        // rule does not blame app.example.com's operation for it.
        let policy = format!(
            "{POLICY}  - to:\n    - operation:\n        hosts: [\"api.example.com\"]\n        paths: [\"/v1/*\"]\n"
        );
        let f = run(&[("p.yaml", &policy)]);
        assert_eq!(rules(&f), vec![("callback-not-checked", 20)], "{f:#?}");
        let policy = policy.replace("paths: [\"/v1/*\"]", "notPaths: [\"/oauth2/*\"]");
        assert_eq!(
            rules(&run(&[("p.yaml", &policy)])),
            vec![("callback-not-checked", 20)]
        );
        // The same operations on app.example.com's own host are fine once it covers the callback.
        let policy = policy.replace("notPaths: [\"/oauth2/*\"]", "notPaths: [\"/healthz\"]");
        assert!(run(&[("p.yaml", &policy)]).is_empty());
    }

    #[test]
    fn the_adapters_endpoints_are_not_skipped() {
        let policy = format!("{POLICY}        notPaths: [\"/healthz\", \"/oauth2/userinfo\"]\n");
        let f = run(&[("p.yaml", &policy)]);
        assert_eq!(rules(&f), vec![("callback-not-checked", 17)], "{f:#?}");
        assert!(
            f[0].problem
                .contains("takes /oauth2/userinfo, one of the adapter's endpoints"),
            "{}",
            f[0]
        );
        assert!(
            f[0].fix
                .starts_with("remove \"/oauth2/userinfo\" from notPaths"),
            "{}",
            f[0]
        );
        // One finding for a pattern that takes them all out: the callback's.
        let policy = format!("{POLICY}        notPaths: [\"/oauth2/*\"]\n");
        let f = run(&[("p.yaml", &policy)]);
        assert_eq!(rules(&f), vec![("callback-not-checked", 17)], "{f:#?}");
        assert!(
            f[0].problem.contains("callback path /oauth2/callback"),
            "{}",
            f[0]
        );
        // Near misses are other paths.
        let policy = format!("{POLICY}        notPaths: [\"/oauth2\", \"/oauth2x/*\"]\n");
        assert!(run(&[("p.yaml", &policy)]).is_empty());
    }

    #[test]
    fn callback_excluded_by_not_paths_or_paths() {
        let policy = format!("{POLICY}        notPaths: [\"/healthz\", \"/oauth2/*\"]\n");
        let f = run(&[("p.yaml", &policy)]);
        assert_eq!(rules(&f), vec![("callback-not-checked", 17)], "{f:#?}");
        let policy = format!("{POLICY}        paths: [\"/api/*\"]\n");
        assert_eq!(
            rules(&run(&[("p.yaml", &policy)])),
            vec![("callback-not-checked", 17)]
        );
        // Another rule covering the callback is enough.
        let policy = format!(
            "{POLICY}        paths: [\"/api/*\"]\n  - to:\n    - operation:\n        paths: [\"/oauth2/*\"]\n"
        );
        assert!(run(&[("p.yaml", &policy)]).is_empty());
        // Unrelated notPaths are fine.
        let policy = format!("{POLICY}        notPaths: [\"/auth/*\"]\n");
        assert!(run(&[("p.yaml", &policy)]).is_empty());
    }

    const GATEWAY: &str = "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: app
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - app.example.com
";

    const VS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: app
  namespace: app
spec:
  hosts:
  - app.example.com
  gateways:
  - gw
  http:
  - match:
    - uri:
        prefix: /oauth2/
    route:
    - destination:
        host: adapter.auth.svc.cluster.local
        port:
          number: 4180
  - route:
    - destination:
        host: app
";

    #[test]
    fn gateway_and_virtual_service_hosts_must_meet() {
        assert!(run(&[("gw.yaml", GATEWAY), ("vs.yaml", VS), ("svc.yaml", SERVICE)]).is_empty());
        let gw = GATEWAY.replace("- app.example.com", "- app.dev.example.org");
        let f = run(&[("gw.yaml", &gw), ("vs.yaml", VS)]);
        assert_eq!(rules(&f), vec![("hosts-do-not-meet", 8)], "{f:#?}");
        assert!(f[0].problem.contains("gw.yaml:15"), "{}", f[0]);
        // Wildcards meet; a namespace-scoped server host does not serve other namespaces.
        let gw = GATEWAY.replace("- app.example.com", "- \"*.example.com\"");
        assert!(run(&[("gw.yaml", &gw), ("vs.yaml", VS)]).is_empty());
        let gw = GATEWAY.replace("- app.example.com", "- other/app.example.com");
        assert_eq!(
            rules(&run(&[("gw.yaml", &gw), ("vs.yaml", VS)])),
            vec![("hosts-do-not-meet", 8)]
        );
    }

    #[test]
    fn gateway_references() {
        let vs = VS.replace("  - gw\n", "  - elsewhere/gw\n");
        assert_eq!(
            rules(&run(&[("gw.yaml", GATEWAY), ("vs.yaml", &vs)])),
            vec![("gateway-ref", 10)]
        );
        let vs = VS.replace("  gateways:\n  - gw\n", "");
        assert_eq!(
            rules(&run(&[("gw.yaml", GATEWAY), ("vs.yaml", &vs)])),
            vec![("gateway-ref", 7)]
        );
    }

    #[test]
    fn rewrites_that_strip_the_prefix() {
        let vs = VS.replace(
            "        prefix: /oauth2/\n",
            "        prefix: /oauth2\n    rewrite:\n      uri: /\n",
        );
        let f = run(&[("vs.yaml", &vs)]);
        assert_eq!(rules(&f), vec![("rewrite-strips-prefix", 16)], "{f:#?}");
        assert!(f[0].problem.contains("as //callback"), "{}", f[0]);
        // A rewrite that keeps the prefix is fine.
        let vs = VS.replace(
            "        prefix: /oauth2/\n",
            "        prefix: /oauth2/\n    rewrite:\n      uri: /oauth2/\n",
        );
        assert!(run(&[("vs.yaml", &vs)]).is_empty());
    }

    #[test]
    fn the_objects_of_a_list_are_checked() {
        // `kubectl get virtualservices -o yaml`: the objects indented under `items`.
        let vs = VS.replace(
            "        prefix: /oauth2/\n",
            "        prefix: /oauth2\n    rewrite:\n      uri: /\n",
        );
        let items: String = vs
            .lines()
            .enumerate()
            .map(|(i, l)| format!("{}{l}\n", if i == 0 { "- " } else { "  " }))
            .collect();
        let list = format!(
            "apiVersion: v1\nitems:\n{items}kind: List\nmetadata:\n  resourceVersion: \"\"\n"
        );
        let f = run(&[("live.yaml", &list)]);
        assert_eq!(rules(&f), vec![("rewrite-strips-prefix", 18)], "{f:#?}");
        // Without the rewrite, no finding: the List itself is not an object to check.
        let clean: String = VS
            .lines()
            .enumerate()
            .map(|(i, l)| format!("{}{l}\n", if i == 0 { "- " } else { "  " }))
            .collect();
        let list = format!("apiVersion: v1\nitems:\n{clean}kind: List\n");
        assert!(run(&[("live.yaml", &list)]).is_empty());
    }

    #[test]
    fn destination_ports() {
        let vs = VS.replace("number: 4180", "number: 80");
        let f = run(&[("vs.yaml", &vs), ("svc.yaml", SERVICE)]);
        assert_eq!(rules(&f), vec![("destination-port", 19)]);
        let vs = VS.replace("        port:\n          number: 4180\n", "");
        assert_eq!(
            rules(&run(&[("vs.yaml", &vs), ("svc.yaml", SERVICE)])),
            vec![("destination-port", 16)]
        );
    }

    #[test]
    fn callback_must_be_routed_on_protected_hosts() {
        let vs = VS
            .replace("  - route:\n    - destination:\n        host: app\n", "")
            .replace("prefix: /oauth2/", "prefix: /api/");
        let f = run(&[("vs.yaml", &vs), ("p.yaml", POLICY)]);
        assert_eq!(rules(&f), vec![("callback-not-routed", 11)], "{f:#?}");
        // Not protected: not our business.
        assert!(run(&[("vs.yaml", &vs)]).is_empty());
    }

    #[test]
    fn the_adapters_prefix_is_routed_to_the_adapter() {
        // Only the application's catch-all route: /oauth2/userinfo falls to the app (line 14).
        let catch_all = VS.replace(
            "  - match:\n    - uri:\n        prefix: /oauth2/\n    route:\n    - destination:\n        host: adapter.auth.svc.cluster.local\n        port:\n          number: 4180\n",
            "",
        );
        let f = run(&[("vs.yaml", &catch_all), ("p.yaml", POLICY)]);
        assert_eq!(rules(&f), vec![("prefix-route", 14)], "{f:#?}");
        assert!(
            f[0].problem
                .contains("/oauth2/ on app.example.com goes to app (the catch-all route)"),
            "{}",
            f[0]
        );
        assert!(f[0].fix.contains("<the adapter's Service>"), "{}", f[0]);
        // With the provider among the files, the fix names its Service and HTTP port.
        let f = run(&[
            ("vs.yaml", &catch_all),
            ("p.yaml", POLICY),
            ("mesh.yaml", MESH),
            ("ef.yaml", ENVOY_FILTER),
        ]);
        assert_eq!(rules(&f), vec![("prefix-route", 14)], "{f:#?}");
        assert!(
            f[0].fix.contains("to adapter.auth.svc.cluster.local:4180"),
            "{}",
            f[0]
        );
        let slash = catch_all.replace(
            "  - route:\n",
            "  - match:\n    - uri:\n        prefix: /\n    route:\n",
        );
        assert_eq!(
            rules(&run(&[("vs.yaml", &slash), ("p.yaml", POLICY)])),
            vec![("prefix-route", 17)]
        );
        // /oauth2/ routed on purpose, but to the application (the adapter is known).
        let to_app = VS.replace("host: adapter.auth.svc.cluster.local", "host: app");
        let f = run(&[
            ("vs.yaml", &to_app),
            ("p.yaml", POLICY),
            ("mesh.yaml", MESH),
            ("ef.yaml", ENVOY_FILTER),
        ]);
        assert_eq!(rules(&f), vec![("prefix-route", 17)], "{f:#?}");
        assert!(
            f[0].problem.contains("(the route for /oauth2/)"),
            "{}",
            f[0]
        );
        // Known as the adapter through its Deployment and Service, without a mesh config.
        let f = run(&[
            ("vs.yaml", &to_app),
            ("p.yaml", POLICY),
            ("d.yaml", DEPLOYMENT),
            ("svc.yaml", SERVICE),
        ]);
        assert_eq!(rules(&f), vec![("prefix-route", 17)], "{f:#?}");
        // The adapter's route, as rendered: fine, with or without the adapter among the files.
        assert!(run(&[("vs.yaml", VS), ("p.yaml", POLICY)]).is_empty());
        let all = |vs: &str, policy: &str| {
            rules(&run(&[
                ("vs.yaml", vs),
                ("p.yaml", policy),
                ("mesh.yaml", MESH),
                ("ef.yaml", ENVOY_FILTER),
                ("d.yaml", DEPLOYMENT),
                ("svc.yaml", SERVICE),
            ]))
        };
        // With the adapter known, the back-channel logout must skip the check.
        assert_eq!(all(VS, POLICY), vec![("backchannel-logout-checked", 14)]);
        assert!(all(VS, &logout_exempt(POLICY)).is_empty());
        // Not a protected host: not our business.
        assert!(run(&[("vs.yaml", &catch_all)]).is_empty());
    }

    /// `policy` with the rendered exemption of `POST /oauth2/backchannel-logout`.
    fn logout_exempt(policy: &str) -> String {
        format!(
            "{policy}        notPaths: [\"/oauth2/backchannel-logout\"]\n  - to:\n    - operation:\n        hosts: [\"app.example.com\"]\n        paths: [\"/oauth2/backchannel-logout\"]\n        notMethods: [\"POST\"]\n"
        )
    }

    #[test]
    fn the_backchannel_logout_skips_the_check_exactly_and_reaches_the_adapter() {
        let files = |vs: &str, policy: &str| {
            run(&[
                ("vs.yaml", vs),
                ("p.yaml", policy),
                ("mesh.yaml", MESH),
                ("ef.yaml", ENVOY_FILTER),
                ("svc.yaml", SERVICE),
            ])
        };
        let exempt = logout_exempt(POLICY);
        // As rendered: its own route first, then the prefix; or the prefix route alone.
        let with_route = VS.replace(
            "  http:\n",
            "  http:\n  - match:\n    - uri:\n        exact: /oauth2/backchannel-logout\n      method:\n        exact: POST\n    route:\n    - destination:\n        host: adapter.auth.svc.cluster.local\n        port:\n          number: 4180\n",
        );
        assert!(files(&with_route, &exempt).is_empty());
        assert!(files(VS, &exempt).is_empty());
        // The unchecked POST routed to the application.
        let to_app = with_route.replacen("host: adapter.auth.svc.cluster.local", "host: app", 1);
        let f = files(&to_app, &exempt);
        assert_eq!(rules(&f), vec![("backchannel-logout-route", 14)], "{f:#?}");
        assert!(f[0].problem.contains("sends it to app"), "{}", f[0]);
        // Without the second rule, every method skips the check.
        let all_methods = format!("{POLICY}        notPaths: [\"/oauth2/backchannel-logout\"]\n");
        let f = files(VS, &all_methods);
        // (GET of an adapter's endpoint unchecked: `callback-not-checked` says so too.)
        assert_eq!(
            rules(&f),
            vec![
                ("backchannel-logout-exempt", 14),
                ("callback-not-checked", 17)
            ],
            "{f:#?}"
        );
        assert!(
            f[0].problem.contains("GET /oauth2/backchannel-logout"),
            "{}",
            f[0]
        );
        // A pattern: longer paths skip it too.
        let pattern = exempt.replace(
            "notPaths: [\"/oauth2/backchannel-logout\"]",
            "notPaths: [\"/oauth2/backchannel-logout*\"]",
        );
        let f = files(VS, &pattern);
        assert_eq!(rules(&f), vec![("backchannel-logout-exempt", 14)], "{f:#?}");
        assert!(
            f[0].problem
                .contains("POST /oauth2/backchannel-logout/x, POST /oauth2/backchannel-logoutx"),
            "{}",
            f[0]
        );
    }

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: adapter
  namespace: auth
spec:
  selector:
    matchLabels:
      app: adapter
  template:
    metadata:
      labels:
        app: adapter
    spec:
      containers:
      - name: adapter
        image: ghcr.io/oidc-authz/ext-authz-adapter:0.1.0
        args:
        - --http-address=0.0.0.0:4180
        - --grpc-address=0.0.0.0:4181
        - --oidc-issuer-url=https://keycloak.example.com/realms/mytest
        - --cookie-domain=.example.com
        env:
        - name: OAUTH2_PROXY_COOKIE_SECRET
          valueFrom:
            secretKeyRef:
              name: adapter
              key: cookie-secret
        ports:
        - name: http
          containerPort: 4180
        - name: grpc
          containerPort: 4181
        readinessProbe:
          httpGet:
            path: /ready
            port: http
        livenessProbe:
          httpGet:
            path: /ping
            port: http
";

    #[test]
    fn a_good_deployment_has_no_finding() {
        let f = run(&[
            ("d.yaml", DEPLOYMENT),
            ("svc.yaml", SERVICE),
            ("p.yaml", POLICY),
        ]);
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn probes_and_listen_address() {
        let d = DEPLOYMENT
            .replace("path: /ready", "path: /x")
            .replace("path: /ping", "path: /ready")
            .replace("path: /x", "path: /ping")
            .replace("0.0.0.0:4180", "127.0.0.1:4180");
        let f = run(&[("d.yaml", &d)]);
        assert_eq!(
            rules(&f),
            vec![
                ("listen-address", 19),
                ("probe-path", 36),
                ("probe-path", 40)
            ],
            "{f:#?}"
        );
    }

    #[test]
    fn inline_and_malformed_secrets() {
        let d = DEPLOYMENT.replace("        - --cookie-domain=.example.com\n", "        - --cookie-domain=.example.com\n        - --cookie-secret=short\n        - --client-secret\n        - hunter2\n");
        let f = run(&[("d.yaml", &d)]);
        assert_eq!(
            rules(&f),
            vec![
                ("inline-secret", 23),
                ("cookie-secret", 23),
                ("inline-secret", 25)
            ],
            "{f:#?}"
        );
        let d = DEPLOYMENT.replace("          valueFrom:\n            secretKeyRef:\n              name: adapter\n              key: cookie-secret\n", "          value: 0123456789abcdef0123456789abcdef\n");
        assert_eq!(rules(&run(&[("d.yaml", &d)])), vec![("inline-secret", 25)]);
    }

    #[test]
    fn cookie_domain_must_cover_protected_hosts() {
        let d = DEPLOYMENT.replace(".example.com", ".example.org");
        let f = run(&[("d.yaml", &d), ("p.yaml", POLICY)]);
        assert_eq!(rules(&f), vec![("cookie-domain", 22)], "{f:#?}");
        assert!(f[0].fix.starts_with("--cookie-domain=.example.com"));
    }

    #[test]
    fn identity_provider_must_not_be_protected() {
        let policy = POLICY.replace(
            "[\"app.example.com\"]",
            "[\"app.example.com\", \"keycloak.example.com\"]",
        );
        let f = run(&[("d.yaml", DEPLOYMENT), ("p.yaml", &policy)]);
        assert_eq!(rules(&f), vec![("idp-protected", 16)], "{f:#?}");
    }

    #[test]
    fn service_target_ports_must_be_listened_on() {
        let svc = SERVICE.replace("    port: 4180\n", "    port: 80\n    targetPort: 8080\n");
        let f = run(&[("d.yaml", DEPLOYMENT), ("svc.yaml", &svc)]);
        assert_eq!(rules(&f), vec![("target-port", 12)], "{f:#?}");
        let svc = SERVICE.replace("    port: 4180\n", "    port: 80\n    targetPort: http\n");
        assert!(run(&[("d.yaml", DEPLOYMENT), ("svc.yaml", &svc)]).is_empty());
        let svc = SERVICE.replace("    port: 4180\n", "    port: 80\n    targetPort: web\n");
        assert_eq!(
            rules(&run(&[("d.yaml", DEPLOYMENT), ("svc.yaml", &svc)])),
            vec![("target-port", 12)]
        );
    }

    #[test]
    fn every_rule_is_listed_once() {
        let mut names: Vec<&str> = RULES.iter().map(|(n, _)| *n).collect();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
