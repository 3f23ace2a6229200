//! The Helm chart and the Istio objects, validated by their own tools: `helm lint --strict` and
//! `helm template` (Helm v4), then the manifest checker (`xtask/go/manifest-check`): Kubernetes
//! objects strictly decoded into k8s.io/api's types, Istio's objects against the CRD schemas of
//! istio.io/api (structural schema, unknown fields, CEL rules, as the API server does), the mesh
//! config decoded strictly into istio.io/api's MeshConfig.
//!
//! `cargo xtask test` builds both and sets `OIDC_AUTHZ_HELM` and `OIDC_AUTHZ_MANIFEST_CHECK`;
//! without them these tests fail. Each check is also shown failing on a broken copy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The path in `var`, set by `cargo xtask test`.
fn tool(var: &str, what: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "{var} is not set: run these tests with `cargo xtask test` (it builds {what} and sets \
             {var})"
        ),
    }
}

/// A directory of one test's own (tests run in parallel threads), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oidc-authz-manifests-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/ext-authz-adapter")
}

fn seed_values() -> PathBuf {
    repo().join("deploy/helm/seed-values.yaml")
}

/// Runs `cmd` with `stdin` (if any), bounded by the tools themselves (no network, local files).
fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Helm, with its config, cache and data directories in `home` (nothing of the user's read).
fn helm(home: &Scratch) -> Command {
    let mut cmd = Command::new(tool("OIDC_AUTHZ_HELM", "Helm"));
    for (var, dir) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ] {
        cmd.env(var, home.0.join(dir));
    }
    cmd
}

fn helm_lint(chart: &Path, args: &[&str]) -> Output {
    let home = Scratch::new("helm-lint");
    run(
        helm(&home)
            .arg("lint")
            .arg("--strict")
            .arg(chart)
            .args(args),
        None,
    )
}

/// `helm template RELEASE CHART -n NAMESPACE ARGS`, which must succeed.
fn helm_template(chart: &Path, release: &str, namespace: &str, args: &[&str]) -> String {
    let home = Scratch::new("helm-template");
    let out = run(
        helm(&home)
            .args(["template", release])
            .arg(chart)
            .args(["-n", namespace])
            .args(args),
        None,
    );
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The manifest checker on `yaml` (stdin): its exit code and output.
fn check(yaml: &str) -> (Option<i32>, String) {
    let out = run(
        Command::new(tool(
            "OIDC_AUTHZ_MANIFEST_CHECK",
            "the manifest checker (xtask/go/manifest-check)",
        ))
        .arg("-"),
        Some(yaml),
    );
    (out.status.code(), text(&out))
}

/// `yaml` passes the checker, which checked exactly `kinds` (in any order, with repeats).
fn assert_valid(what: &str, yaml: &str, kinds: &[&str]) {
    let (code, output) = check(yaml);
    assert_eq!(
        code,
        Some(0),
        "{what}: the checker found problems:\n{output}"
    );
    let mut checked: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("ok "))
        .map(|l| {
            // "ok -: document N: API KIND NAME (how)"
            let object = l.split(": ").nth(2).unwrap_or_default();
            object.split_whitespace().nth(1).unwrap_or_default()
        })
        .collect();
    checked.sort_unstable();
    let mut expected = kinds.to_vec();
    expected.sort_unstable();
    assert_eq!(checked, expected, "{what}: objects checked:\n{output}");
    assert!(
        output.contains(&format!("{} objects checked, 0 problems", kinds.len())),
        "{output}"
    );
}

/// `yaml` fails the checker (exit 1) with a line containing each of `problems`.
fn assert_invalid(what: &str, yaml: &str, problems: &[&str]) {
    let (code, output) = check(yaml);
    assert_eq!(code, Some(1), "{what}: expected problems, got:\n{output}");
    for problem in problems {
        assert!(
            output.lines().any(|l| l.contains(problem)),
            "{what}: no line with {problem:?} in:\n{output}"
        );
    }
}

/// `text` with the first `from` replaced by `to` (which must be there).
fn break_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in:\n{text}");
    text.replacen(from, to, 1)
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the chart with `file` (relative to the chart) edited by `edit`.
fn chart_copy(scratch: &Scratch, file: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let copy = scratch.0.join("ext-authz-adapter");
    copy_tree(&chart(), &copy);
    let path = copy.join(file);
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&original)).unwrap();
    copy
}

/// The one value the chart requires (no image is published yet).
const IMAGE: &[&str] = &[
    "--set",
    "image.repository=registry.example.com/ext-authz-adapter",
];

/// Every value that adds or changes an object, on top of the seed's values.
const EVERY_OPTION: &[&str] = &[
    "--set",
    "autoscaling.enabled=true",
    "--set",
    "redis.sessionStore=true",
    "--set",
    "metrics.enabled=true",
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "networkPolicy.enabled=true",
    "--set",
    "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
    "--set",
    "istio.mode=grpc",
    "--set",
    "istio.gateway.tlsCredential=nginx-tls",
    "--set",
    "istio.skipPaths={/healthz,/static/*}",
    "--set",
    "providerTls.caBundle.configMap=corporate-ca",
    "--set",
    "podDisruptionBudget.maxUnavailable=1",
    "--set",
    "serviceAccount.annotations.team=identity",
    "--set",
    "config.rpInitiatedLogout=true",
];

/// The chart's objects with its defaults (the Secret aside): the adapter and the chart's Redis
/// (a Deployment and a Service each), the PDB, the ServiceAccount and the Istio objects.
const CHART_KINDS: &[&str] = &[
    "PodDisruptionBudget",
    "ServiceAccount",
    "Service",
    "Deployment",
    "Service",
    "Deployment",
    "AuthorizationPolicy",
    "EnvoyFilter",
    "Gateway",
    "VirtualService",
];

fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn helm_lint_passes_with_the_defaults_the_seed_values_and_every_option() {
    let seed = seed_values();
    let seed = seed.to_str().unwrap();
    for args in [
        IMAGE.to_vec(),
        vec!["-f", seed],
        with(&["-f", seed], EVERY_OPTION),
    ] {
        let out = helm_lint(&chart(), &args);
        assert!(
            out.status.success(),
            "helm lint --strict {args:?}:\n{}",
            text(&out)
        );
        assert!(
            text(&out).contains("1 chart(s) linted, 0 chart(s) failed"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn helm_lint_fails_on_a_broken_chart_copy() {
    // A misspelled field of Chart.yaml (a warning, which --strict makes a failure).
    let scratch = Scratch::new("lint-chart-yaml");
    let copy = chart_copy(&scratch, "Chart.yaml", |t| {
        break_once(t, "appVersion:", "appVersoin:")
    });
    let out = helm_lint(&copy, IMAGE);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("unknown field \"appVersoin\""),
        "{}",
        text(&out)
    );

    // A template that renders YAML no parser takes.
    let scratch = Scratch::new("lint-template");
    let copy = chart_copy(&scratch, "templates/service.yaml", |t| {
        break_once(t, "      protocol: TCP\n", "     protocol: TCP\n")
    });
    let out = helm_lint(&copy, IMAGE);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("templates/service.yaml: unable to parse YAML"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_chart_defaults_render_valid_objects() {
    let yaml = helm_template(&chart(), "ext-authz-adapter", "oidc-authz", IMAGE);
    // Two replicas share the chart's Redis; sessions stay in the cookie.
    assert!(yaml.contains("replicas: 2"), "{yaml}");
    assert!(yaml.contains("--redis-connection-url=redis://"), "{yaml}");
    assert!(!yaml.contains("--session-store-type=redis"), "{yaml}");
    assert!(yaml.contains("\"--cookie-refresh=15m\""), "{yaml}");
    assert_valid(
        "the chart's defaults",
        &yaml,
        &with(CHART_KINDS, &["Secret"]),
    );
}

#[test]
fn the_chart_with_the_seed_values_renders_valid_objects() {
    let seed = seed_values();
    let yaml = helm_template(
        &chart(),
        "nginx-oauth2-proxy",
        "nginx",
        &["-f", seed.to_str().unwrap()],
    );
    // The seed's names: oauth2-proxy's Service, its VirtualService, its provider.
    for name in [
        "name: nginx-oauth2-proxy\n",
        "name: nginx-route\n",
        "name: oauth2-proxy\n",
    ] {
        assert!(yaml.contains(name), "{name:?} not in:\n{yaml}");
    }
    // existingSecret: no Secret of the chart's own.
    assert_valid("the seed's values", &yaml, CHART_KINDS);
}

#[test]
fn the_chart_with_every_option_renders_valid_objects() {
    let seed = seed_values();
    let args = with(&["-f", seed.to_str().unwrap()], EVERY_OPTION);
    let yaml = helm_template(&chart(), "nginx-oauth2-proxy", "nginx", &args);
    assert!(yaml.contains("credentialName: nginx-tls"), "{yaml}");
    assert!(yaml.contains("--session-store-type=redis"), "{yaml}");
    // The HPA, the ServiceMonitor and the NetworkPolicies of the adapter and of the Redis.
    let kinds = with(
        CHART_KINDS,
        &[
            "HorizontalPodAutoscaler",
            "ServiceMonitor",
            "NetworkPolicy",
            "NetworkPolicy",
        ],
    );
    assert_valid("every option", &yaml, &kinds);
    // Istio's v1beta1 objects too.
    let args = with(&args, &["--set", "istio.apiVersion=v1beta1"]);
    let yaml = helm_template(&chart(), "nginx-oauth2-proxy", "nginx", &args);
    assert!(yaml.contains("networking.istio.io/v1beta1"), "{yaml}");
    assert_valid("every option, Istio v1beta1", &yaml, &kinds);
}

/// `helm template` of the chart with `args`, which must fail naming `problem`.
fn assert_refused(args: &[&str], problem: &str) {
    let home = Scratch::new("helm-refused");
    let out = run(
        helm(&home)
            .args(["template", "ext-authz-adapter"])
            .arg(chart())
            .args(args),
        None,
    );
    assert!(
        !out.status.success(),
        "helm template {args:?} should fail:\n{}",
        text(&out)
    );
    assert!(
        text(&out).contains(problem),
        "helm template {args:?}: no {problem:?} in:\n{}",
        text(&out)
    );
}

/// `helm template` of the chart with `args` succeeds.
fn assert_accepted(args: &[&str]) {
    helm_template(&chart(), "ext-authz-adapter", "oidc-authz", args);
}

#[test]
fn the_chart_refuses_values_that_contradict_docs_sessions() {
    assert_refused(&[], "image.repository is required");
    // Replicas without Redis: refused, unless one replica or acknowledged.
    let no_redis = with(IMAGE, &["--set", "redis.enabled=false"]);
    assert_refused(&no_redis, "more than one replica without Redis");
    assert_refused(
        &with(
            &no_redis,
            &[
                "--set",
                "replicaCount=1",
                "--set",
                "autoscaling.enabled=true",
            ],
        ),
        "more than one replica without Redis",
    );
    assert_accepted(&with(&no_redis, &["--set", "replicaCount=1"]));
    assert_accepted(&with(
        &no_redis,
        &["--set", "redis.replicasWithoutRedis=true"],
    ));
    assert_refused(
        &with(
            &no_redis,
            &[
                "--set",
                "replicaCount=1",
                "--set",
                "redis.sessionStore=true",
            ],
        ),
        "redis.sessionStore needs redis.enabled=true",
    );
    // Cookie refresh against Keycloak's SSO Session Idle.
    for refresh in ["30m", "1h", "29m60s"] {
        assert_refused(
            &with(
                IMAGE,
                &["--set", &format!("config.cookieRefresh={refresh}")],
            ),
            "must be shorter than oidc.ssoSessionIdle",
        );
    }
    assert_accepted(&with(IMAGE, &["--set", "config.cookieRefresh=29m59s"]));
    assert_accepted(&with(IMAGE, &["--set", "config.cookieRefresh=0"]));
    assert_accepted(&with(
        IMAGE,
        &[
            "--set",
            "config.cookieRefresh=1h",
            "--set",
            "oidc.ssoSessionIdle=2h",
        ],
    ));
    assert_refused(
        &with(IMAGE, &["--set", "config.cookieRefresh=15min"]),
        "config.cookieRefresh: \"15min\" is not a duration",
    );
    // A ServiceMonitor scrapes the metrics port, which must be on.
    assert_refused(
        &with(IMAGE, &["--set", "metrics.serviceMonitor.enabled=true"]),
        "metrics.serviceMonitor.enabled needs metrics.enabled=true",
    );
}

#[test]
fn the_network_policies_admit_the_gateway_and_the_adapter_only() {
    let yaml = helm_template(
        &chart(),
        "ext-authz-adapter",
        "oidc-authz",
        &with(IMAGE, &["--set", "networkPolicy.enabled=true"]),
    );
    let policies: Vec<&str> = yaml
        .split("\n---")
        .filter(|d| d.contains("kind: NetworkPolicy"))
        .collect();
    assert_eq!(policies.len(), 2, "{yaml}");
    let adapter = policies
        .iter()
        .find(|p| !p.contains("-redis\n"))
        .expect("the adapter's policy");
    // The ingress gateway pods of istio-system, on the check ports; no metrics peer given.
    for needle in [
        "kubernetes.io/metadata.name: istio-system",
        "istio: ingressgateway",
        "port: http\n",
        "port: grpc\n",
    ] {
        assert!(adapter.contains(needle), "{needle:?} not in:\n{adapter}");
    }
    assert!(!adapter.contains("http-metrics"), "{adapter}");
    let redis = policies
        .iter()
        .find(|p| p.contains("-redis\n"))
        .expect("the Redis policy");
    assert!(
        redis.contains("app.kubernetes.io/name: ext-authz-adapter\n"),
        "{redis}"
    );
    assert!(redis.contains("port: redis"), "{redis}");
}

/// `ext-authz-adapter istio ARGS`, which must succeed.
fn render(args: &[&str]) -> String {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"))
            .arg("istio")
            .args([
                "--provider-name",
                "oidc-authz",
                "--namespace",
                "oidc-authz",
                "--service",
                "ext-authz-adapter",
                "--host",
                "nginx.example.com",
                "--gateway",
                "nginx/nginx-gateway",
                "--app-service",
                "hello-nginx.nginx",
                "--app-port",
                "80",
            ])
            .args(args),
        None,
    );
    assert!(
        out.status.success(),
        "ext-authz-adapter istio {args:?}:\n{}",
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

const RENDERED_KINDS: &[&str] = &[
    "ConfigMap",
    "Gateway",
    "VirtualService",
    "AuthorizationPolicy",
    "EnvoyFilter",
];

#[test]
fn the_renderers_output_is_valid() {
    let service = with(RENDERED_KINDS, &["Service"]);
    let cases: &[(&[&str], &[&str])] = &[
        (&["--with-service"], &service),
        (&["--with-service", "--mode", "grpc"], &service),
        (
            &["--tls-credential", "nginx-tls", "--skip-path", "/healthz"],
            RENDERED_KINDS,
        ),
        (
            &["--api-version", "v1beta1", "--host", "*.apps.example.com"],
            RENDERED_KINDS,
        ),
    ];
    for (args, kinds) in cases {
        assert_valid(&format!("istio {args:?}"), &render(args), kinds);
    }
    // The mesh config as an IstioOperator (for istioctl install -f).
    for mode in ["http", "grpc"] {
        let yaml = render(&[
            "--only",
            "mesh",
            "--mesh-format",
            "istiooperator",
            "--mode",
            mode,
        ]);
        assert_valid(&format!("IstioOperator, {mode}"), &yaml, &["IstioOperator"]);
    }
    // And the checked-in examples.
    for file in ["nginx-http.yaml", "nginx-grpc.yaml", "keycloak.yaml"] {
        let yaml = std::fs::read_to_string(repo().join("deploy/istio").join(file)).unwrap();
        let kinds: &[&str] = if file == "keycloak.yaml" {
            &["Gateway", "VirtualService"]
        } else {
            &service
        };
        assert_valid(file, &yaml, kinds);
    }
}

#[test]
fn a_chart_copy_with_misspelled_fields_fails_the_checker() {
    let scratch = Scratch::new("misspelled");
    let copy = chart_copy(&scratch, "templates/deployment.yaml", |t| {
        break_once(t, "readinessProbe:", "readinesProbe:")
    });
    let yaml = helm_template(&copy, "ext-authz-adapter", "oidc-authz", IMAGE);
    assert_invalid(
        "Deployment readinesProbe",
        &yaml,
        &[
            "Deployment oidc-authz/ext-authz-adapter: unknown field \"spec.template.spec.containers[0].readinesProbe\"",
        ],
    );

    let scratch = Scratch::new("misspelled-istio");
    let copy = chart_copy(&scratch, "templates/istio.yaml", |t| {
        break_once(t, "  gateways:\n", "  gateway:\n")
    });
    let yaml = helm_template(&copy, "ext-authz-adapter", "oidc-authz", IMAGE);
    assert_invalid(
        "VirtualService gateway",
        &yaml,
        &["VirtualService nginx/nginx-example-com: unknown field \"spec.gateway\""],
    );
}

#[test]
fn kubernetes_objects_with_unknown_fields_or_wrong_types_fail() {
    let yaml = helm_template(&chart(), "ext-authz-adapter", "oidc-authz", IMAGE);
    let cases = [
        (
            "  replicas: 2\n",
            "  replica: 2\n",
            "Deployment oidc-authz/ext-authz-adapter: unknown field \"spec.replica\"",
        ),
        (
            "  replicas: 2\n",
            "  replicas: \"2\"\n",
            "Deployment oidc-authz/ext-authz-adapter: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        ),
        // Field names are case-sensitive (the seed's `Spec:`).
        (
            "kind: Deployment\nmetadata:",
            "kind: Deployment\nSpec: {}\nmetadata:",
            "unknown field \"Spec\"",
        ),
        (
            "  minAvailable: 1\n",
            "  minAvailable: 1\n  minAvailabel: 1\n",
            "PodDisruptionBudget oidc-authz/ext-authz-adapter: unknown field \"spec.minAvailabel\"",
        ),
        (
            "  name: ext-authz-adapter\n  namespace: oidc-authz\n",
            "  name: ext_authz_adapter\n  namespace: oidc-authz\n",
            "metadata.name: Invalid value: \"ext_authz_adapter\"",
        ),
    ];
    for (from, to, problem) in cases {
        assert_invalid(to, &break_once(&yaml, from, to), &[problem]);
    }
}

#[test]
fn istio_objects_with_wrong_fields_types_or_rules_fail() {
    let yaml = render(&["--with-service"]);
    let cases = [
        (
            "        prefix: /oauth2/\n",
            "        prefx: /oauth2/\n",
            // http[0] is the back-channel logout's exact route, http[1] the prefix's.
            "VirtualService nginx/nginx-example-com: unknown field \"spec.http[1].match[0].uri.prefx\"",
        ),
        (
            "      number: 80\n",
            "      number: \"80\"\n",
            "Gateway nginx/nginx-gateway: spec.servers[0].port.number: Invalid value: \"string\": spec.servers[0].port.number in body must be of type integer",
        ),
        (
            "  action: CUSTOM\n",
            "  action: CUSTOMER\n",
            "spec.action: Unsupported value: \"CUSTOMER\"",
        ),
        // A rule of the CRD's x-kubernetes-validations (CEL): selector or targetRefs, not both.
        (
            "  action: CUSTOM\n",
            "  action: CUSTOM\n  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: ingress\n",
            "AuthorizationPolicy istio-system/oidc-authz-nginx-example-com: spec: Invalid value: only one of targetRefs or selector can be set",
        ),
        (
            "applyTo: NETWORK_FILTER",
            "applyTo: NETWORK_FILTERS",
            "EnvoyFilter istio-system/oidc-authz-reject-underscore-headers: spec.configPatches[0].applyTo: Unsupported value: \"NETWORK_FILTERS\"",
        ),
        // The mesh config: istio.io/api's MeshConfig.
        (
            "headersToDownstreamOnDeny:",
            "headersToDownstreamOnDenied:",
            "ConfigMap istio-system/istio: data.mesh: not an istio.io/api MeshConfig",
        ),
        (
            "        port: 4180\n",
            "        port: \"http\"\n",
            "data.mesh: not an istio.io/api MeshConfig",
        ),
        // A kind with no schema is a problem, never skipped.
        (
            "kind: EnvoyFilter",
            "kind: EnvoyFiltre",
            "no schema known for networking.istio.io/v1alpha3, Kind=EnvoyFiltre",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: Gateway",
            "apiVersion: networking.istio.io/v2\nkind: Gateway",
            "version \"v2\" of Gateway.networking.istio.io is not served (served: v1, v1alpha3, v1beta1)",
        ),
    ];
    for (from, to, problem) in cases {
        assert_invalid(to, &break_once(&yaml, from, to), &[problem]);
    }
}

/// The files of a directory of `tests/data/istio/`, as one stream.
fn istio_data(dir: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/istio")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    texts.join("\n---\n")
}

#[test]
fn the_seeds_schema_mistakes_are_found_and_its_fixed_copy_passes() {
    assert_invalid(
        "the seed",
        &istio_data("seed"),
        &[
            "AuthorizationPolicy istio-system/nginx=oauth2-policy: unknown field \"spec.selector.action\"",
            "metadata.name: Invalid value: \"nginx=oauth2-policy\"",
            "Deployment nginx/nginx-oauth2-proxy: unknown field \"Spec\"",
            "YAML: yaml: line 11: did not find expected key",
        ],
    );
    assert_valid(
        "the seed, fixed",
        &istio_data("seed-fixed"),
        &[
            "AuthorizationPolicy",
            "EnvoyFilter",
            "ConfigMap",
            "Gateway",
            "VirtualService",
            "Gateway",
            "VirtualService",
            "Deployment",
            "Service",
            "Deployment",
            "Service",
        ],
    );
}

/// What `istio --ingress gateway-api` prints (the Gateway API's standard CRDs of
/// sigs.k8s.io/gateway-api v1.6.3 for Gateway, HTTPRoute and ReferenceGrant; Istio's for the
/// policy with targetRefs and the EnvoyFilter).
const GATEWAY_API_KINDS: &[&str] = &[
    "ConfigMap",
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "AuthorizationPolicy",
    "EnvoyFilter",
];

#[test]
fn the_renderers_gateway_api_and_waypoint_output_is_valid() {
    let service = with(GATEWAY_API_KINDS, &["Service"]);
    let tls = with(GATEWAY_API_KINDS, &["HTTPRoute"]);
    let waypoint: &[&str] = &[
        "ConfigMap",
        "Gateway",
        "HTTPRoute",
        "ReferenceGrant",
        "AuthorizationPolicy",
    ];
    let cases: &[(&[&str], &[&str])] = &[
        (&["--ingress", "gateway-api", "--with-service"], &service),
        (
            &[
                "--ingress",
                "gateway-api",
                "--mode",
                "grpc",
                "--with-service",
            ],
            &service,
        ),
        // HTTPS listeners, and the HTTP listeners' redirect route.
        (
            &[
                "--ingress",
                "gateway-api",
                "--tls-credential",
                "nginx-tls",
                "--host",
                "*.apps.example.com",
                "--skip-path",
                "/healthz",
            ],
            &tls,
        ),
        (&["--ingress", "waypoint"], waypoint),
    ];
    for (args, kinds) in cases {
        assert_valid(&format!("istio {args:?}"), &render(args), kinds);
    }
}

#[test]
fn broken_gateway_api_objects_fail_the_checker() {
    let yaml = render(&["--ingress", "gateway-api"]);
    let cases = [
        // The OpenAPI schema: an enum.
        (
            "        type: PathPrefix\n",
            "        type: Prefix\n",
            "HTTPRoute nginx/nginx-example-com: spec.rules[1].matches[0].path.type: Unsupported value: \"Prefix\"",
        ),
        // A required field.
        (
            "  gatewayClassName: istio\n",
            "",
            "Gateway nginx/nginx-gateway: spec.gatewayClassName: Required value",
        ),
        // Unknown (pruned) fields.
        (
            "  hostnames:\n",
            "  hostname:\n",
            "HTTPRoute nginx/nginx-example-com: unknown field \"spec.hostname\"",
        ),
        // A CEL rule that reads defaulted fields (a backendRef's kind): a Service needs a port.
        (
            "      port: 80\n",
            "",
            "HTTPRoute nginx/nginx-example-com: spec.rules[2].backendRefs[0]: Invalid value: Must have port for Service reference",
        ),
        // A CEL rule comparing integers: two listeners on the same port, protocol and host.
        (
            "    protocol: HTTP\n",
            "    protocol: HTTP\n  - name: http-2\n    hostname: nginx.example.com\n    port: 80\n    protocol: HTTP\n",
            "Combination of port, protocol and hostname must be unique for each listener",
        ),
    ];
    for (from, to, problem) in cases {
        assert_invalid(to, &break_once(&yaml, from, to), &[problem]);
    }
}
