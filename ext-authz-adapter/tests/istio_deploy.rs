//! Structural checks of deploy/helm and of the Dockerfile (no Docker engine here to build it):
//! the chart's templates are balanced and reference only values and templates that exist, its
//! defaults agree with `ext-authz-adapter istio`'s, and the Dockerfile keeps its promises
//! (multi-stage, distroless, non-root, the binary only).
//!
//! The chart is read as text, not rendered: the project does not install Helm yet. Rendering it
//! (`helm template` piped to `ext-authz-adapter istio --check -`, and the rendered objects
//! compared with the generator's) comes with the Helm issue (issue 18). Until then every check
//! here is one that can fail: the scanners are run on broken templates too
//! (`the_template_scanners_find_what_they_look_for`), and each needle is looked for in the one
//! template that must hold it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use istio_manifests::envoy_contract::{
    HEADERS_TO_DOWNSTREAM_ON_ALLOW, HEADERS_TO_DOWNSTREAM_ON_DENY, HEADERS_TO_UPSTREAM_ON_ALLOW,
    INCLUDE_REQUEST_HEADERS_IN_CHECK,
};
use istio_manifests::render::{
    HCM_FILTER, HCM_TYPE_URL, HEADERS_WITH_UNDERSCORES_ACTION, PATH_NORMALIZATION,
};
use istio_manifests::yaml::{Lines, Node, parse_documents};
use istio_manifests::{Part, Settings, render, render_parts};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    root().join("deploy/helm/ext-authz-adapter")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_one(path: &Path) -> Node {
    let docs = parse_documents(&read(path), Lines::Offset(0));
    assert_eq!(docs.len(), 1, "{}", path.display());
    assert!(
        docs[0].error.is_none(),
        "{}: {:?}",
        path.display(),
        docs[0].error
    );
    docs[0].root.clone().expect("a document")
}

fn values() -> Node {
    parse_one(&chart().join("values.yaml"))
}

fn templates() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(chart().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect();
    found.sort();
    found
}

/// The `{{ ... }}` actions of a template, trimmed of `-` and spaces.
fn actions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed action: {}", &after[..after.len().min(60)]));
        out.push(
            after[..end]
                .trim_start_matches('-')
                .trim_end_matches('-')
                .trim()
                .to_owned(),
        );
        rest = &after[end + 2..];
    }
    out
}

#[test]
fn chart_metadata() {
    let chart_yaml = parse_one(&chart().join("Chart.yaml"));
    assert_eq!(chart_yaml.str_at(&["apiVersion"]), Some("v2"));
    assert_eq!(chart_yaml.str_at(&["name"]), Some("ext-authz-adapter"));
    assert!(chart_yaml.str_at(&["version"]).is_some());
    assert!(chart_yaml.str_at(&["appVersion"]).is_some());
    let expected: BTreeSet<&str> = [
        "NOTES.txt",
        "_helpers.tpl",
        "deployment.yaml",
        "hpa.yaml",
        "istio.yaml",
        "networkpolicy.yaml",
        "pdb.yaml",
        "redis.yaml",
        "secret.yaml",
        "service.yaml",
        "serviceaccount.yaml",
        "servicemonitor.yaml",
    ]
    .into_iter()
    .collect();
    let names: Vec<String> = templates().into_iter().map(|(n, _)| n).collect();
    let have: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(have, expected);
}

/// What is unbalanced in one template: `{{`/`}}` counts, block actions without `end`, `end`
/// without a block, unclosed comments.
fn unbalanced(name: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if text.matches("{{").count() != text.matches("}}").count() {
        problems.push(format!("{name}: unbalanced braces"));
        return problems;
    }
    let mut depth: i32 = 0;
    for action in actions(text) {
        if action.starts_with("/*") {
            if !action.ends_with("*/") {
                problems.push(format!("{name}: comment {action:?}"));
            }
            continue;
        }
        let word = action.split_whitespace().next().unwrap_or("");
        match word {
            "if" | "range" | "with" | "define" | "block" => depth += 1,
            "end" => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            problems.push(format!("{name}: `end` without an opening action"));
            return problems;
        }
    }
    if depth != 0 {
        problems.push(format!("{name}: an if/range/with/define is not closed"));
    }
    problems
}

/// The `.Values.a.b` paths the templates use (`(template, path)`), and those of them that
/// `values` lacks.
fn value_references(values: &Node, templates: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let mut used = Vec::new();
    let mut missing = Vec::new();
    for (name, text) in templates {
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".Values.") {
            let tail = &rest[at + ".Values.".len()..];
            let path: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                .collect();
            let path = path.trim_end_matches('.').to_owned();
            let keys: Vec<&str> = path.split('.').collect();
            if values.path(&keys).is_none() {
                missing.push(format!("{name}: .Values.{path}"));
            }
            used.push(path);
            rest = tail;
        }
    }
    (used, missing)
}

/// The template names that are `include`d (in order), and those with no `define`.
fn includes(templates: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let all: String = templates.iter().map(|(_, t)| t.as_str()).collect();
    let defined: BTreeSet<String> = actions(&all)
        .iter()
        .filter_map(|a| a.strip_prefix("define "))
        .map(|d| d.trim().trim_matches('"').to_owned())
        .collect();
    let mut used = Vec::new();
    let mut undefined = Vec::new();
    let mut rest = all.as_str();
    while let Some(at) = rest.find("include \"") {
        let tail = &rest[at + "include \"".len()..];
        let name = &tail[..tail.find('"').expect("a closing quote")];
        if !defined.contains(name) {
            undefined.push(name.to_owned());
        }
        used.push(name.to_owned());
        rest = tail;
    }
    (used, undefined)
}

#[test]
fn templates_are_balanced() {
    let templates = templates();
    assert!(templates.len() >= 10, "{templates:?}");
    for (name, text) in templates {
        let problems = unbalanced(&name, &text);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn every_referenced_value_exists() {
    let (used, missing) = value_references(&values(), &templates());
    assert!(
        missing.is_empty(),
        "not in values.yaml:\n{}",
        missing.join("\n")
    );
    // The scan found the references (not a pass for finding none).
    for path in [
        "istio.providerName",
        "service.httpPort",
        "config.proxyPrefix",
    ] {
        assert!(
            used.iter().any(|p| p == path),
            "{path} not seen in {used:?}"
        );
    }
}

#[test]
fn every_included_template_is_defined() {
    let (used, undefined) = includes(&templates());
    assert!(
        undefined.is_empty(),
        "include without a define: {undefined:?}"
    );
    for name in ["ext-authz-adapter.fullname", "ext-authz-adapter.labels"] {
        assert!(
            used.iter().any(|u| u == name),
            "{name} not seen in {used:?}"
        );
    }
}

/// The scanners above report what they are for, on templates broken on purpose (so their
/// empty reports on the chart mean something).
#[test]
fn the_template_scanners_find_what_they_look_for() {
    assert!(unbalanced("t", "{{ if .Values.a }}x{{ end }}").is_empty());
    assert_eq!(
        unbalanced("t", "{{ if .Values.a }}x"),
        ["t: an if/range/with/define is not closed"]
    );
    assert_eq!(
        unbalanced("t", "x{{ end }}{{ if .Values.a }}"),
        ["t: `end` without an opening action"]
    );
    assert_eq!(unbalanced("t", "{{ .Values.a }"), ["t: unbalanced braces"]);
    assert_eq!(unbalanced("t", "{{/* note }}"), ["t: comment \"/* note\""]);

    let values = parse_documents("a:\n  b: 1\nc: x\n", Lines::Offset(0))[0]
        .root
        .clone()
        .unwrap();
    let broken = vec![(
        "t".to_owned(),
        "{{ .Values.a.b }} {{ $.Values.c }} {{ .Values.a.z }} {{ .Values.d }}.".to_owned(),
    )];
    let (used, missing) = value_references(&values, &broken);
    assert_eq!(used, ["a.b", "c", "a.z", "d"]);
    assert_eq!(missing, ["t: .Values.a.z", "t: .Values.d"]);

    let broken = vec![(
        "t".to_owned(),
        "{{- define \"x\" -}}1{{- end }}{{ include \"x\" . }}{{ include \"y\" . }}".to_owned(),
    )];
    assert_eq!(includes(&broken), (owned(&["x", "y"]), owned(&["y"])));
}

fn strings(node: &Node) -> Vec<String> {
    node.items()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The chart's defaults and `ext-authz-adapter istio`'s describe the same deployment, with the
/// same header lists.
#[test]
fn chart_defaults_agree_with_the_generator() {
    let values = values();
    let headers = values.path(&["istio", "headers"]).unwrap();
    for (key, list) in [
        (
            "includeRequestHeadersInCheck",
            INCLUDE_REQUEST_HEADERS_IN_CHECK,
        ),
        ("headersToUpstreamOnAllow", HEADERS_TO_UPSTREAM_ON_ALLOW),
        ("headersToDownstreamOnAllow", HEADERS_TO_DOWNSTREAM_ON_ALLOW),
        ("headersToDownstreamOnDeny", HEADERS_TO_DOWNSTREAM_ON_DENY),
    ] {
        assert_eq!(strings(headers.get(key).unwrap()), owned(list), "{key}");
    }
    let seed = Settings::seed();
    let get = |keys: &[&str]| values.str_at(keys).unwrap().to_owned();
    assert_eq!(get(&["istio", "providerName"]), seed.provider_name);
    assert_eq!(get(&["service", "httpPort"]), seed.port.to_string());
    assert_eq!(get(&["service", "grpcPort"]), seed.grpc_port.to_string());
    assert_eq!(get(&["istio", "timeout"]), seed.timeout);
    assert_eq!(get(&["istio", "apiVersion"]), seed.api_version);
    assert_eq!(get(&["istio", "namespace"]), seed.istio_namespace);
    assert_eq!(get(&["istio", "gateway", "name"]), seed.gateway);
    assert_eq!(get(&["istio", "gateway", "namespace"]), seed.app_namespace);
    assert_eq!(
        get(&["istio", "gateway", "port"]),
        seed.gateway_port.to_string()
    );
    assert_eq!(
        Some(get(&["istio", "virtualService", "app", "service"])),
        seed.app_service
    );
    assert_eq!(
        get(&["istio", "virtualService", "app", "port"]),
        seed.app_port.to_string()
    );
    assert_eq!(get(&["config", "proxyPrefix"]), seed.proxy_prefix);
    // The mesh config's path normalisation and the gateway's underscore action.
    assert_eq!(get(&["istio", "pathNormalization"]), PATH_NORMALIZATION);
    assert_eq!(
        get(&["istio", "headersWithUnderscoresAction"]),
        HEADERS_WITH_UNDERSCORES_ACTION
    );
    assert_eq!(
        strings(values.path(&["istio", "hosts"]).unwrap()),
        seed.hosts
    );
    let selector: Vec<(String, String)> = values
        .path(&["istio", "ingressSelector"])
        .unwrap()
        .entries()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(selector, seed.gateway_selector);

    // The templates spell the shared names the way the generator does, each in the template
    // that renders it.
    let templates = templates();
    let template = |name: &str| {
        templates
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no template {name}"))
    };
    let generated = render(&seed);
    let generated = parse_documents(&generated, Lines::Offset(0));
    let service = generated
        .iter()
        .filter_map(|d| d.root.as_ref())
        .find(|r| r.str_at(&["kind"]) == Some("Service"))
        .expect("the generator renders the Service");
    let port_names: Vec<&str> = service
        .path(&["spec", "ports"])
        .unwrap()
        .items()
        .iter()
        .map(|p| p.str_at(&["name"]).unwrap())
        .collect();
    assert_eq!(port_names, ["http", "grpc-ext-authz"]);
    for port in port_names {
        let needle = format!("- name: {port}\n");
        assert!(
            template("service.yaml").contains(&needle),
            "service.yaml lacks {needle:?}"
        );
    }
    for (file, needle) in [
        ("istio.yaml", "- name: oidc-endpoints\n"),
        ("istio.yaml", "  action: CUSTOM\n"),
        ("istio.yaml", "printf \"%s:*\""),
        ("istio.yaml", "kind: EnvoyFilter\n"),
        (
            "istio.yaml",
            "prefix: {{ printf \"%s/\" (trimSuffix \"/\" .Values.config.proxyPrefix) | quote }}",
        ),
        ("_helpers.tpl", "envoyExtAuthzHttp:"),
        (
            "_helpers.tpl",
            "pathNormalization:\n  normalization: {{ .Values.istio.pathNormalization }}\n",
        ),
        ("_helpers.tpl", "covers the adapter's endpoints under"),
        ("_helpers.tpl", "envoyExtAuthzGrpc:"),
        ("_helpers.tpl", "printf \"%s.%s.svc.cluster.local\""),
    ] {
        assert!(template(file).contains(needle), "{file} lacks {needle:?}");
    }
}

/// The chart's EnvoyFilter is the generator's, line for line from `configPatches:` on (the
/// action is the value), and its VirtualService routes the adapter's prefix to the adapter
/// before the application.
#[test]
fn the_chart_closes_the_walk_arounds_like_the_generator() {
    let templates = templates();
    let istio = &templates
        .iter()
        .find(|(n, _)| n == "istio.yaml")
        .expect("istio.yaml")
        .1;
    let generated = render_parts(&Settings::seed(), &[Part::EnvoyFilter]);
    let patches = &generated[generated.find("  configPatches:\n").expect("configPatches")..];
    assert!(patches.contains(HCM_FILTER) && patches.contains(HCM_TYPE_URL));
    let templated = patches.replace(
        &format!("headers_with_underscores_action: {HEADERS_WITH_UNDERSCORES_ACTION}"),
        "headers_with_underscores_action: {{ . }}",
    );
    assert_ne!(&templated, patches);
    assert!(
        istio.contains(&templated),
        "istio.yaml's EnvoyFilter differs from the generator's:\n{templated}"
    );
    // The rendering is inside `istio.enabled` and can be turned off with an empty action.
    let filter = istio.find("kind: EnvoyFilter").unwrap();
    let with = istio
        .find("{{- with .Values.istio.headersWithUnderscoresAction }}")
        .unwrap();
    let enabled = istio.find("{{- if .Values.istio.enabled }}").unwrap();
    assert!(enabled < with && with < filter);
    // The adapter's endpoints first, then the application.
    let endpoints = istio.find("- name: oidc-endpoints").unwrap();
    let app = istio.find("- name: app").unwrap();
    assert!(endpoints < app);
    // No walk-around through the values either.
    let values = values();
    let check: Vec<String> = strings(
        values
            .path(&["istio", "headers", "includeRequestHeadersInCheck"])
            .unwrap(),
    );
    assert!(check.iter().any(|h| h == "x-forwarded-proto"), "{check:?}");
    assert!(check.iter().all(|h| h != "x-forwarded-host"), "{check:?}");
    assert!(
        values
            .path(&["istio", "skipPaths"])
            .unwrap()
            .items()
            .is_empty()
    );
}

#[test]
fn the_deployment_is_hardened_and_probed() {
    let (_, deployment) = templates()
        .into_iter()
        .find(|(n, _)| n == "deployment.yaml")
        .unwrap();
    for needle in [
        "path: /ping",
        "path: /ready",
        "toYaml .Values.securityContext",
        "toYaml .Values.podSecurityContext",
        "secretKeyRef",
        "OAUTH2_PROXY_COOKIE_SECRET",
        "OAUTH2_PROXY_CLIENT_SECRET",
        "--http-address=0.0.0.0:%v",
        "--grpc-address=0.0.0.0:%v",
        "--reverse-proxy=%t\" .Values.config.reverseProxy",
        "automountServiceAccountToken: false",
    ] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks {needle:?}"
        );
    }
    // Liveness on /ping, readiness on /ready, in that order in the file.
    let live = deployment.find("livenessProbe").unwrap();
    let ready = deployment.find("readinessProbe").unwrap();
    let ping = deployment.find("path: /ping").unwrap();
    let ready_path = deployment.find("path: /ready").unwrap();
    assert!(live < ping && ping < ready && ready < ready_path);
    // No secret value is ever put on the command line.
    assert!(!deployment.contains("--cookie-secret"));
    assert!(!deployment.contains("--client-secret"));

    let values = values();
    assert_eq!(
        values
            .path(&["podSecurityContext", "runAsNonRoot"])
            .and_then(Node::as_bool),
        Some(true)
    );
    assert_eq!(
        values
            .path(&["securityContext", "readOnlyRootFilesystem"])
            .and_then(Node::as_bool),
        Some(true)
    );
    // Behind the gateway, which sets X-Forwarded-Proto: believed by default.
    assert_eq!(
        values
            .path(&["config", "reverseProxy"])
            .and_then(Node::as_bool),
        Some(true)
    );
    assert_eq!(
        values
            .path(&["podDisruptionBudget", "enabled"])
            .and_then(Node::as_bool),
        Some(true)
    );
    assert!(values.path(&["autoscaling", "enabled"]).is_some());
    assert!(values.path(&["redis", "enabled"]).is_some());
    assert!(values.path(&["oidc", "existingSecret"]).is_some());
    assert!(values.path(&["resources", "requests", "cpu"]).is_some());

    // Shutdown: a preStop sleep (the kubelet's own action: the distroless image has no shell),
    // the drain bound passed to the adapter, and a grace period longer than both.
    for needle in [
        "preStop:",
        "sleep:",
        "--shutdown-drain-timeout=%ds\" (int .Values.shutdown.drainTimeoutSeconds)",
        "terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}",
    ] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks {needle:?}"
        );
    }
    assert!(!deployment.contains("/bin/sh"), "no shell in the image");
    let number = |path: &[&str]| {
        values
            .path(path)
            .and_then(Node::as_u64)
            .unwrap_or_else(|| panic!("values.yaml: {path:?} is a number"))
    };
    let pre_stop = number(&["shutdown", "preStopSleepSeconds"]);
    let drain = number(&["shutdown", "drainTimeoutSeconds"]);
    let grace = number(&["terminationGracePeriodSeconds"]);
    assert!(pre_stop > 0 && drain > 0, "{pre_stop} {drain}");
    assert!(
        grace > pre_stop + drain,
        "terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + drain {drain}"
    );
}

#[test]
fn the_dockerfile_builds_one_binary_into_a_distroless_nonroot_image() {
    let dockerfile = read(&root().join("Dockerfile"));
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    assert!(froms[0].contains("rust:") && froms[0].ends_with("AS builder"));
    assert!(froms[1].contains("gcr.io/distroless/") && froms[1].contains(":nonroot"));
    // The toolchain the repository pins.
    let toolchain = read(&root().join("rust-toolchain.toml"));
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        dockerfile.contains(&format!("ARG RUST_VERSION={channel}")),
        "the Dockerfile's RUST_VERSION must be rust-toolchain.toml's {channel}"
    );
    // The final stage: only the binary, as a numeric non-root user, both ports, the adapter as
    // entry point.
    let last_stage: Vec<&&str> = instructions
        .iter()
        .skip_while(|l| !l.starts_with("FROM gcr.io/distroless/"))
        .collect();
    let copies: Vec<&&&str> = last_stage
        .iter()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(
        copies[0].contains("--from=builder")
            && copies[0].ends_with("/usr/local/bin/ext-authz-adapter")
    );
    assert!(last_stage.iter().any(|l| **l == "USER 65532:65532"));
    assert!(last_stage.iter().any(|l| **l == "EXPOSE 4180 4181"));
    assert!(
        last_stage
            .iter()
            .any(|l| **l == "ENTRYPOINT [\"/usr/local/bin/ext-authz-adapter\"]")
    );
    assert!(
        last_stage.iter().all(|l| !l.starts_with("RUN")),
        "no shell in distroless"
    );
    assert!(dockerfile.contains("--locked --package ext-authz-adapter"));
    // What ships is what `cargo xtask bench` measures: the `dist` profile of Cargo.toml.
    assert!(dockerfile.contains("cargo build --profile dist "));
    assert!(read(&root().join("Cargo.toml")).contains("[profile.dist]"));

    let ignore = read(&root().join(".dockerignore"));
    for needle in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l == needle),
            ".dockerignore lacks {needle}"
        );
    }
    // The members cargo needs to resolve the workspace stay in the context.
    let members = read(&root().join("Cargo.toml"));
    for line in ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let dir = line.trim_end_matches('/');
        assert!(
            !members.contains(&format!("\"{dir}\"")),
            ".dockerignore drops the workspace member {dir}"
        );
    }
}

/// `istio --check deploy/` reads the Istio examples and the chart's values, skips the chart's
/// templates (Go templates, not YAML), and finds nothing.
#[test]
fn the_deploy_directory_passes_the_check() {
    use istio_manifests::{CheckOptions, check_sources, read_sources};
    let sources = read_sources(&[root().join("deploy")]).unwrap();
    let names: Vec<String> = sources
        .iter()
        .map(|s| {
            Path::new(&s.name)
                .strip_prefix(root().join("deploy"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert!(names.iter().all(|n| !n.contains("templates")), "{names:?}");
    for expected in [
        "helm/ext-authz-adapter/Chart.yaml",
        "helm/ext-authz-adapter/values.yaml",
        "istio/keycloak.yaml",
        "istio/nginx-http.yaml",
        "istio/nginx-grpc.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    let findings = check_sources(&sources, &CheckOptions::default());
    let text: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert!(findings.is_empty(), "{}", text.join("\n"));
}
