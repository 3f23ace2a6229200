//! `ext-authz-adapter istio --check` on the seed's own manifests (every mistake reported, with
//! its file and line), on the same manifests fixed as the findings say (none), and on what
//! `ext-authz-adapter istio` generates (none).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser as _;
use istio_manifests::{
    CheckOptions, Finding, IstioArgs, MeshFormat, Mode, Settings, Source, check_sources,
    read_sources, render,
};

fn data(dir: &str) -> PathBuf {
    // The seed's manifests are the adapter's fixtures (its migration guide checks them too).
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ext-authz-adapter/tests/data/istio")
        .join(dir)
}

fn check_dir(dir: &str) -> Vec<Finding> {
    let sources = read_sources(&[data(dir)]).expect("fixtures are readable");
    check_sources(&sources, &CheckOptions::default())
}

/// `(file name, line, rule)` of each finding.
fn located(findings: &[Finding]) -> Vec<(String, usize, &'static str)> {
    findings
        .iter()
        .map(|f| {
            let file = Path::new(&f.file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (file, f.line, f.rule)
        })
        .collect()
}

fn show(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("[{}] {f}\n", f.rule))
        .collect()
}

#[test]
fn every_mistake_of_the_seed_is_reported_at_its_line() {
    let findings = check_dir("seed");
    let expected: Vec<(&str, usize, &str)> = vec![
        // The AuthorizationPolicy.
        ("authorization-policy.yaml", 4, "metadata-name"), // nginx=oauth2-policy
        (
            "authorization-policy.yaml",
            10,
            "policy-nested-under-selector",
        ), // action/provider/rules under selector
        ("authorization-policy.yaml", 10, "underscore-headers"), // no EnvoyFilter for the gateway
        ("authorization-policy.yaml", 12, "provider-undeclared"), // nginx-oauth2-proxy vs oauth2-proxy
        (
            "authorization-policy.yaml",
            14,
            "backchannel-logout-checked",
        ), // the IdP's logout POST
        // The mesh ConfigMap.
        ("istio-configmap.yaml", 4, "mesh-namespace"), // no namespace: not istio-system/istio
        ("istio-configmap.yaml", 21, "path-normalization"), // no pathNormalization: `//` kept
        ("istio-configmap.yaml", 23, "allow-headers"), // no headersToDownstreamOnAllow: set-cookie
        ("istio-configmap.yaml", 25, "provider-port"), // port 80, the Service has 4180
        ("istio-configmap.yaml", 27, "deprecated-field"), // includeHeadersInCheck
        ("istio-configmap.yaml", 27, "check-headers"), // no x-forwarded-proto
        // The nginx Gateway and VirtualService.
        ("nginx-virtual-service.yaml", 24, "hosts-do-not-meet"), // nginx.example.com vs nginx.dev.3d-excellence.com
        ("nginx-virtual-service.yaml", 28, "yaml-syntax"),       // `- match:` at column 1
        ("nginx-virtual-service.yaml", 32, "rewrite-strips-prefix"), // rewrite uri: "/"
        ("nginx-virtual-service.yaml", 37, "destination-port"),  // port 80, the Service has 4180
        // The oauth2-proxy Deployment.
        ("oauth2-proxy.yaml", 7, "key-case"),       // Spec:
        ("oauth2-proxy.yaml", 34, "cookie-domain"), // .3d-excellence.com for nginx.example.com
        ("oauth2-proxy.yaml", 35, "inline-secret"), // --cookie-secret=...
        ("oauth2-proxy.yaml", 35, "cookie-secret"), // 34 bytes
        ("oauth2-proxy.yaml", 41, "inline-secret"), // OAUTH2_PROXY_CLIENT_SECRET value
        ("oauth2-proxy.yaml", 48, "probe-path"),    // readiness on /ping
    ];
    let got = located(&findings);
    let expected: Vec<(String, usize, &str)> = expected
        .into_iter()
        .map(|(f, l, r)| (f.to_owned(), l, r))
        .collect();
    assert_eq!(got, expected, "\n{}", show(&findings));
}

#[test]
fn seed_findings_say_what_to_write() {
    let findings = check_dir("seed");
    let text = show(&findings);
    for needle in [
        "name it \"nginx-oauth2-policy\"",
        "set provider.name: oauth2-proxy",
        "port: 4180",
        "write `spec:`",
        "indent `- match:` by 2 spaces",
        "remove the rewrite",
        "add `namespace: istio-system`",
        "headersToDownstreamOnAllow: [\"set-cookie\"]",
        "--cookie-domain=.example.com",
        "path: /ready",
        "rename it includeRequestHeadersInCheck",
        "add pathNormalization: {normalization: MERGE_SLASHES}",
        "headers_with_underscores_action: REJECT_REQUEST",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    // FILE:LINE: problem. fix: ...
    for f in &findings {
        let line = f.to_string();
        assert!(
            line.starts_with(&format!("{}:{}: ", f.file, f.line)),
            "{line}"
        );
        assert_eq!(line.matches(". fix: ").count(), 1, "{line}");
    }
}

#[test]
fn the_seed_fixed_as_the_findings_say_has_no_finding() {
    let findings = check_dir("seed-fixed");
    assert!(findings.is_empty(), "\n{}", show(&findings));
}

/// The seed as fixed, with one of the fixes for the gateway's walk-arounds undone at a time:
/// each is reported at its line, with the fix.
#[test]
fn undoing_a_fix_of_the_seed_reports_it() {
    let fixed = read_sources(&[data("seed-fixed")]).unwrap();
    let undo = |file: &str, edit: &dyn Fn(&str) -> String| -> Vec<Finding> {
        let mut sources = fixed.clone();
        let source = sources
            .iter_mut()
            .find(|s| s.name.ends_with(file))
            .unwrap_or_else(|| panic!("no {file}"));
        let edited = edit(&source.text);
        assert_ne!(edited, source.text, "{file}: the edit changed nothing");
        source.text = edited;
        check_sources(&sources, &CheckOptions::default())
    };
    let one = |findings: Vec<Finding>, file: &str, line: usize, rule: &str, fix: &str| {
        assert_eq!(
            located(&findings),
            [(file.to_owned(), line, rule)],
            "\n{}",
            show(&findings)
        );
        assert!(findings[0].fix.contains(fix), "{}", findings[0]);
    };
    // x-forwarded-host back in the check: a client's value.
    one(
        undo("istio-configmap.yaml", &|t| {
            t.replace(
                "\"x-forwarded-proto\"]",
                "\"x-forwarded-proto\", \"x-forwarded-host\"]",
            )
        }),
        "istio-configmap.yaml",
        30,
        "forwarded-host",
        "remove \"x-forwarded-host\" from includeRequestHeadersInCheck",
    );
    // No path normalisation (reported at extensionProviders, two lines up once it is gone),
    // or Istio's BASE spelt out.
    one(
        undo("istio-configmap.yaml", &|t| {
            t.replace(
                "    pathNormalization:\n      normalization: MERGE_SLASHES\n",
                "",
            )
        }),
        "istio-configmap.yaml",
        22,
        "path-normalization",
        "pathNormalization: {normalization: MERGE_SLASHES}",
    );
    one(
        undo("istio-configmap.yaml", &|t| {
            t.replace("normalization: MERGE_SLASHES", "normalization: BASE")
        }),
        "istio-configmap.yaml",
        23,
        "path-normalization",
        "MERGE_SLASHES",
    );
    // The EnvoyFilter allowing underscores (Envoy's default), or on a sidecar only.
    let allow = undo("gateway-envoy-filter.yaml", &|t| {
        t.replace("REJECT_REQUEST", "ALLOW")
    });
    assert_eq!(
        located(&allow),
        [
            (
                "authorization-policy.yaml".to_owned(),
                10,
                "underscore-headers"
            ),
            (
                "gateway-envoy-filter.yaml".to_owned(),
                27,
                "underscore-headers"
            ),
        ],
        "\n{}",
        show(&allow)
    );
    one(
        undo("gateway-envoy-filter.yaml", &|t| {
            t.replace("context: GATEWAY", "context: SIDECAR_INBOUND")
        }),
        "authorization-policy.yaml",
        10,
        "underscore-headers",
        "context: GATEWAY",
    );
    // /oauth2 routed to the application (nginx) instead of the adapter: the unchecked
    // back-channel logout POST goes there too.
    let and_the_logout = |findings: Vec<Finding>| {
        let (logout, rest): (Vec<Finding>, Vec<Finding>) = findings
            .into_iter()
            .partition(|f| f.rule == "backchannel-logout-route");
        assert_eq!(
            located(&logout),
            [(
                "authorization-policy.yaml".to_owned(),
                14,
                "backchannel-logout-route"
            )],
            "\n{}",
            show(&logout)
        );
        assert!(
            logout[0].problem.contains("sends it to hello-nginx"),
            "{}",
            logout[0]
        );
        rest
    };
    one(
        and_the_logout(undo("nginx-virtual-service.yaml", &|t| {
            t.replacen(
                "host: nginx-oauth2-proxy.nginx.svc.cluster.local\n        port:\n          number: 4180",
                "host: hello-nginx.nginx.svc.cluster.local\n        port:\n          number: 80",
                1,
            )
        })),
        "nginx-virtual-service.yaml",
        33,
        "prefix-route",
        "to nginx-oauth2-proxy.nginx.svc.cluster.local:4180",
    );
    // ... or no /oauth2 route at all: the catch-all (the app) gets it.
    one(
        and_the_logout(undo("nginx-virtual-service.yaml", &|t| {
            t.replace(
                "  - match:\n    - uri:\n        prefix: \"/oauth2\"\n    route:\n    - destination:\n        host: nginx-oauth2-proxy.nginx.svc.cluster.local\n        port:\n          number: 4180\n",
                "",
            )
        })),
        "nginx-virtual-service.yaml",
        30,
        "prefix-route",
        "prefix: /oauth2/",
    );
    // One of the adapter's endpoints taken out of the check.
    one(
        undo("authorization-policy.yaml", &|t| {
            t.replace(
                "notPaths: [\"/auth/*\",",
                "notPaths: [\"/auth/*\", \"/oauth2/userinfo\",",
            )
        }),
        "authorization-policy.yaml",
        17,
        "callback-not-checked",
        "remove \"/oauth2/userinfo\" from notPaths",
    );
    // The back-channel logout's exemption widened to a pattern: longer paths skip the check.
    one(
        undo("authorization-policy.yaml", &|t| {
            t.replace(
                "\"/oauth2/backchannel-logout\"] # ",
                "\"/oauth2/backchannel-logout*\"] # ",
            )
        }),
        "authorization-policy.yaml",
        14,
        "backchannel-logout-exempt",
        "notMethods: [\"POST\"]",
    );
    // ... or the second rule gone: every method skips it (GET of an endpoint unchecked too).
    let findings = undo("authorization-policy.yaml", &|t| {
        t.split("  # The IdP's back-channel")
            .next()
            .unwrap_or(t)
            .to_owned()
    });
    assert_eq!(
        located(&findings),
        [
            (
                "authorization-policy.yaml".to_owned(),
                14,
                "backchannel-logout-exempt"
            ),
            (
                "authorization-policy.yaml".to_owned(),
                17,
                "callback-not-checked"
            ),
        ],
        "\n{}",
        show(&findings)
    );
    // ... or not exempt at all: the logout never arrives.
    one(
        undo("authorization-policy.yaml", &|t| {
            t.replace(", \"/oauth2/backchannel-logout\"] # ", "] # ")
        }),
        "authorization-policy.yaml",
        14,
        "backchannel-logout-checked",
        "route POST /oauth2/backchannel-logout to the adapter",
    );
}

/// What the generator prints, with one part left out or changed: the linter reports the hole.
#[test]
fn generated_manifests_with_a_part_missing_are_reported() {
    use istio_manifests::{Part, render_parts};
    let settings = Settings::seed();
    let check = |yaml: String| {
        let findings = check_sources(
            &[Source {
                name: "generated.yaml".to_owned(),
                text: yaml,
            }],
            &CheckOptions::default(),
        );
        findings.iter().map(|f| f.rule).collect::<Vec<_>>()
    };
    // Without the EnvoyFilter.
    let without = render_parts(
        &settings,
        &[
            Part::Mesh,
            Part::Gateway,
            Part::VirtualService,
            Part::Policy,
            Part::Service,
        ],
    );
    assert_eq!(check(without), ["underscore-headers"]);
    // Without the VirtualService's route for /oauth2/.
    let all = render(&settings);
    let no_route = all.replace(
        "  - name: oidc-endpoints\n    match:\n    - uri:\n        prefix: /oauth2/\n    route:\n    - destination:\n        host: ext-authz-adapter.oidc-authz.svc.cluster.local\n        port:\n          number: 4180\n",
        "",
    );
    assert_ne!(no_route, all);
    assert_eq!(check(no_route), ["prefix-route"]);
    // Without the path normalisation.
    let no_normalization = all.replace(
        "    pathNormalization:\n      normalization: MERGE_SLASHES\n",
        "",
    );
    assert_ne!(no_normalization, all);
    assert_eq!(check(no_normalization), ["path-normalization"]);
}

#[test]
fn each_seed_file_alone_reports_only_its_own_mistakes() {
    // Cross-file rules need both files: alone, a file is judged on what it holds.
    let sources = read_sources(&[data("seed/authorization-policy.yaml")]).unwrap();
    let findings = check_sources(&sources, &CheckOptions::default());
    let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    assert_eq!(
        rules,
        ["metadata-name", "policy-nested-under-selector"],
        "\n{}",
        show(&findings)
    );
}

/// One code block of `seed/post-manifests.md` (the excerpt of the blog post's manifests): the
/// fixture it is, the post's lines of its two fences, and its text without the fences.
struct PostBlock {
    file: String,
    first: usize,
    last: usize,
    text: String,
}

fn post_blocks() -> Vec<PostBlock> {
    let path = data("seed/post-manifests.md");
    let excerpt =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut blocks = Vec::new();
    let mut lines = excerpt.split('\n');
    while let Some(line) = lines.next() {
        // `## post lines 162-224: `oauth2-proxy.yaml``
        let Some(heading) = line.strip_prefix("## post lines ") else {
            continue;
        };
        let (range, file) = heading
            .split_once(": ")
            .unwrap_or_else(|| panic!("heading {line:?}: no `: FILE`"));
        let (first, last) = range
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .unwrap_or_else(|| panic!("heading {line:?}: no FIRST-LAST line range"));
        assert_eq!(lines.next(), Some(""), "a blank line after {line:?}");
        let fence = lines.next().unwrap_or_default();
        assert_eq!(fence.trim_end(), "```", "a code block after {line:?}");
        let mut text = String::new();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("the block of {file} is not closed"));
            if line.starts_with("```") {
                assert_eq!(
                    line.trim_end(),
                    "```",
                    "the block of {file} ends with a bare fence"
                );
                break;
            }
            text.push_str(line);
            text.push('\n');
        }
        blocks.push(PostBlock {
            file: file.trim_matches('`').to_owned(),
            first,
            last,
            text,
        });
    }
    blocks
}

/// The fixtures are the blog post's code blocks, byte for byte: each `seed/*.yaml` is exactly
/// the block of `seed/post-manifests.md` that names it, and every block there is a fixture. The
/// excerpt was copied from the post (see its header); this keeps the fixtures from drifting
/// from it (a "fixed" mistake in a fixture fails here).
#[test]
fn seed_fixtures_are_verbatim_from_the_blog_post() {
    let blocks = post_blocks();
    let sources = read_sources(&[data("seed")]).unwrap();
    let file_name = |source: &Source| {
        Path::new(&source.name)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let mut fixtures: Vec<String> = sources.iter().map(file_name).collect();
    let mut quoted: Vec<String> = blocks.iter().map(|b| b.file.clone()).collect();
    fixtures.sort();
    quoted.sort();
    assert_eq!(fixtures.len(), 6, "{fixtures:?}");
    assert_eq!(
        fixtures, quoted,
        "one fixture per block of post-manifests.md"
    );
    for block in &blocks {
        let source = sources.iter().find(|s| file_name(s) == block.file).unwrap();
        if let Some((n, (have, want))) = source
            .text
            .split('\n')
            .zip(block.text.split('\n'))
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "seed/{} line {}: {have:?}, the post (line {}) has {want:?}",
                block.file,
                n + 1,
                block.first + 1 + n
            );
        }
        assert!(
            source.text == block.text,
            "seed/{} and the post's lines {}-{} differ in length",
            block.file,
            block.first,
            block.last
        );
        // The recorded lines are the two fences and every line between them.
        assert_eq!(
            block.last - block.first + 1,
            block.text.lines().count() + 2,
            "post-manifests.md: the line range of {}",
            block.file
        );
    }
    assert!(
        blocks.windows(2).all(|w| w[0].last < w[1].first),
        "post-manifests.md: the blocks are in the post's order, apart"
    );
}

fn settings_variants() -> Vec<Settings> {
    let seed = Settings::seed();
    vec![
        seed.clone(),
        Settings {
            mode: Mode::Grpc,
            ..seed.clone()
        },
        Settings {
            mesh_format: MeshFormat::IstioOperator,
            api_version: "v1beta1".to_owned(),
            ..seed.clone()
        },
        Settings {
            hosts: vec![
                "app.example.com".to_owned(),
                "*.apps.example.com".to_owned(),
            ],
            tls_credential: Some("app-tls".to_owned()),
            skip_paths: vec!["/healthz".to_owned(), "/public/*".to_owned()],
            proxy_prefix: "/auth".to_owned(),
            callback_path: "/auth/callback".to_owned(),
            ..seed.clone()
        },
        Settings {
            app_service: None,
            with_service: false,
            ..seed
        },
    ]
}

#[test]
fn generated_manifests_have_no_finding() {
    for settings in settings_variants() {
        let yaml = render(&settings);
        let sources = vec![Source {
            name: "generated.yaml".to_owned(),
            text: yaml.clone(),
        }];
        let options = CheckOptions {
            proxy_prefix: Some(settings.proxy_prefix.clone()),
            callback_path: Some(settings.callback_path.clone()),
            ..CheckOptions::default()
        };
        let findings = check_sources(&sources, &options);
        assert!(findings.is_empty(), "{yaml}\n{}", show(&findings));
    }
}

#[test]
fn generated_manifests_agree_with_each_other() {
    use istio_manifests::yaml::{Lines, parse_documents};
    for settings in settings_variants() {
        let yaml = render(&settings);
        let docs = parse_documents(&yaml, Lines::Offset(0));
        let kind = |k: &str| {
            docs.iter()
                .filter_map(|d| d.root.as_ref())
                .find(|r| r.str_at(&["kind"]) == Some(k))
        };
        let policy = kind("AuthorizationPolicy").unwrap();
        assert_eq!(
            policy.str_at(&["spec", "provider", "name"]),
            Some(settings.provider_name.as_str())
        );
        assert_eq!(policy.str_at(&["spec", "action"]), Some("CUSTOM"));
        let mesh_text = match settings.mesh_format {
            MeshFormat::ConfigMap => kind("ConfigMap")
                .unwrap()
                .str_at(&["data", "mesh"])
                .unwrap()
                .to_owned(),
            MeshFormat::IstioOperator => String::new(),
        };
        if !mesh_text.is_empty() {
            assert!(mesh_text.contains(&format!("- name: {}", settings.provider_name)));
            let port = match settings.mode {
                Mode::Http => settings.port,
                Mode::Grpc => settings.grpc_port,
            };
            assert!(mesh_text.contains(&format!("port: {port}")), "{mesh_text}");
            assert!(mesh_text.contains(&settings.service_host()));
        }
        if let Some(vs) = kind("VirtualService") {
            let gw = kind("Gateway").unwrap();
            assert_eq!(
                vs.path(&["spec", "gateways"]).unwrap().items()[0].as_str(),
                gw.str_at(&["metadata", "name"])
            );
            assert_eq!(
                vs.str_at(&["metadata", "namespace"]),
                gw.str_at(&["metadata", "namespace"])
            );
            let routes = vs.path(&["spec", "http"]).unwrap().items();
            let first_match = |i: usize| &routes[i].path(&["match"]).unwrap().items()[0];
            // The provider's back-channel logout (POST, exactly), then the adapter's prefix.
            assert_eq!(
                first_match(0).str_at(&["uri", "exact"]),
                Some(settings.backchannel_logout_path().as_str())
            );
            assert_eq!(first_match(0).str_at(&["method", "exact"]), Some("POST"));
            let prefix = first_match(1).str_at(&["uri", "prefix"]).unwrap();
            assert_eq!(prefix, format!("{}/", settings.proxy_prefix));
        }
        if let Some(svc) = kind("Service") {
            let names: Vec<&str> = svc
                .path(&["spec", "ports"])
                .unwrap()
                .items()
                .iter()
                .map(|p| p.str_at(&["name"]).unwrap())
                .collect();
            assert_eq!(names, ["http", "grpc-ext-authz"]);
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The examples in deploy/istio/ and the settings they are generated from. Regenerate with
/// `UPDATE_ISTIO_EXAMPLES=1 cargo test -p istio-manifests --test istio_check`.
fn examples() -> Vec<(&'static str, Settings)> {
    vec![
        ("deploy/istio/nginx-http.yaml", Settings::seed()),
        (
            "deploy/istio/nginx-grpc.yaml",
            Settings {
                mode: Mode::Grpc,
                ..Settings::seed()
            },
        ),
    ]
}

#[test]
fn committed_examples_are_the_generators_output() {
    for (file, settings) in examples() {
        let path = repo_root().join(file);
        let want = render(&settings);
        if std::env::var_os("UPDATE_ISTIO_EXAMPLES").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{file}: {e} (regenerate with UPDATE_ISTIO_EXAMPLES=1)"));
        assert!(
            have == want,
            "{file} differs from `{}`: regenerate it with UPDATE_ISTIO_EXAMPLES=1 cargo test -p istio-manifests --test istio_check",
            settings.command_line()
        );
    }
}

#[test]
fn the_examples_command_lines_produce_them() {
    // The command line printed in each example's header parses back to the same settings.
    let all = examples()
        .into_iter()
        .map(|(_, s)| s)
        .chain(settings_variants());
    for settings in all {
        let line = settings.command_line();
        // No word here needs more than single quotes.
        let args = line.split(' ').skip(2).map(|w| w.trim_matches('\''));
        let parsed = IstioArgs::try_parse_from(std::iter::once("istio").chain(args))
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(parsed, settings, "{line}");
    }
}

#[test]
fn deploy_istio_examples_pass_the_check_with_the_idp_route() {
    for (file, _) in examples() {
        let sources = read_sources(&[
            repo_root().join(file),
            repo_root().join("deploy/istio/keycloak.yaml"),
        ])
        .unwrap();
        let findings = check_sources(&sources, &CheckOptions::default());
        assert!(findings.is_empty(), "{file}:\n{}", show(&findings));
    }
}

#[test]
fn run_exits_non_zero_on_findings_and_zero_without() {
    let arg = |p: PathBuf| p.to_string_lossy().into_owned();
    let run = |args: Vec<String>| {
        IstioArgs::try_parse_from(std::iter::once("istio".to_owned()).chain(args))
            .expect("the flags parse")
            .run()
    };
    assert_eq!(
        run(vec!["--check".into(), arg(data("seed"))]),
        ExitCode::from(1)
    );
    assert_eq!(
        run(vec!["--check".into(), arg(data("seed-fixed"))]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        run(vec![
            "--check".into(),
            arg(repo_root().join("deploy/istio/nginx-http.yaml")),
            arg(repo_root().join("deploy/istio/keycloak.yaml")),
        ]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        run(vec!["--check".into(), "/nonexistent/x.yaml".into()]),
        ExitCode::from(2)
    );
    // An unknown flag is clap's error (the adapter's binary exits 2 with it: tests/flags.rs).
    assert!(IstioArgs::try_parse_from(["istio", "--bogus"]).is_err());
    assert_eq!(run(vec![]), ExitCode::from(2), "--host is required");
    assert_eq!(
        run(vec!["--host".into(), "nginx.example.com".into()]),
        ExitCode::SUCCESS
    );
}

// What `kubectl apply -f` / `kubectl kustomize` need of a manifest stream, checked without
// kubectl, with saphyr-parser (the YAML 1.2 parser the adapter already depends on) on the whole
// stream at once, with none of the linter's repairs (`istio_manifests::yaml` splits on `---` and retries
// broken documents; this does not). Plain scalars are typed as Kubernetes' YAML decoder
// (sigs.k8s.io/yaml, YAML 1.1) types them, so `on`, `yes` or `80` where a string is needed is an
// error. The negative cases in `the_manifest_reader_rejects_what_kubectl_rejects` show each rule
// can fail.

/// A YAML node as a Kubernetes client reads it.
#[derive(Debug)]
enum Y {
    /// A scalar and whether it was written without quotes (plain).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Y>),
    /// A mapping, keys in source order (no duplicates: they are an error).
    Map(Vec<(String, Y)>),
}

impl Y {
    fn get(&self, key: &str) -> Option<&Y> {
        match self {
            Y::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn path(&self, keys: &[&str]) -> Option<&Y> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The scalar's text if the decoder reads it as a string (quoted, or plain and not a
    /// null, bool or number).
    fn string(&self) -> Option<&str> {
        match self {
            Y::Scalar { text, plain } if !plain || plain_type(text) == "string" => Some(text),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Y::Scalar { text, plain: true } if plain_type(text) == "null")
    }
}

/// The type sigs.k8s.io/yaml (go-yaml v2, YAML 1.1) gives a plain scalar.
fn plain_type(text: &str) -> &'static str {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return "null",
        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO" | "true" | "True"
        | "TRUE" | "false" | "False" | "FALSE" | "on" | "On" | "ON" | "off" | "Off" | "OFF" => {
            return "bool";
        }
        ".inf" | ".Inf" | ".INF" | "-.inf" | "-.Inf" | "-.INF" | "+.inf" | ".nan" | ".NaN"
        | ".NAN" => return "float",
        _ => {}
    }
    let unsigned = text
        .strip_prefix(['-', '+'])
        .unwrap_or(text)
        .replace('_', "");
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = unsigned.strip_prefix("0x") {
        if digits(hex, 16) {
            return "int";
        }
    } else if let Some(bin) = unsigned.strip_prefix("0b") {
        if digits(bin, 2) {
            return "int";
        }
    } else if digits(&unsigned, 10) {
        return "int";
    }
    let starts_numeric = unsigned.starts_with(|c: char| c.is_ascii_digit())
        || (unsigned.starts_with('.') && unsigned[1..].starts_with(|c: char| c.is_ascii_digit()));
    if starts_numeric && unsigned.parse::<f64>().is_ok() {
        return "float";
    }
    "string"
}

/// Every document's root in `text`, parsed strictly. `Err` on a syntax error, an anchor or
/// alias, a key that is not a scalar, or a key given twice in one mapping.
fn parse_stream(text: &str) -> Result<Vec<Y>, String> {
    use saphyr_parser::{Event, Parser, ScalarStyle};
    enum Frame {
        Seq(Vec<Y>),
        Map(Vec<(String, Y)>, Option<String>),
    }
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) =
            event.map_err(|e| format!("line {}: {}", e.marker().line(), e.info()))?;
        let line = span.start.line();
        let node = match event {
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _)
                if anchor != 0 =>
            {
                return Err(format!("line {line}: an anchor"));
            }
            Event::Alias(_) => return Err(format!("line {line}: an alias")),
            Event::Scalar(text, style, _, _) => Y::Scalar {
                text: text.into_owned(),
                plain: style == ScalarStyle::Plain,
            },
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(Vec::new(), None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(items)) => Y::Seq(items),
                Some(Frame::Map(entries, None)) => Y::Map(entries),
                _ => return Err(format!("line {line}: unbalanced events")),
            },
            _ => continue,
        };
        match stack.last_mut() {
            None => docs.push(node),
            Some(Frame::Seq(items)) => items.push(node),
            Some(Frame::Map(entries, pending)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let Y::Scalar { text: key, .. } = node else {
                        return Err(format!("line {line}: a key that is not a scalar"));
                    };
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(format!("line {line}: key {key:?} given twice"));
                    }
                    *pending = Some(key);
                }
            },
        }
    }
    Ok(docs)
}

/// `(group, kind, namespace, name)`: what kustomize keeps unique in one stream.
type ObjectId = (String, String, String, String);

/// DNS-1123 subdomain (object names): lower-case alphanumerics, `-` and `.`, at most 253.
fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// DNS-1123 label (namespaces): one subdomain label, at most 63.
fn dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && dns_subdomain(s)
}

/// `v1`, `v1beta1`, `v1alpha3`.
fn api_version_part(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (number, tail) = rest.split_at(digits_end);
    let tail_ok = tail.is_empty()
        || ["alpha", "beta"].iter().any(|stage| {
            tail.strip_prefix(stage)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        });
    !number.is_empty() && tail_ok
}

/// Problems with a `map[string]string` field (labels, selectors, ConfigMap data).
fn string_map(node: &Y, what: &str, problems: &mut Vec<String>) {
    let Y::Map(entries) = node else {
        problems.push(format!("{what}: not a mapping"));
        return;
    };
    for (key, value) in entries {
        if value.string().is_none() {
            problems.push(format!("{what}.{key}: {value:?} is not a string"));
        }
    }
}

/// Lists of strings anywhere in the object (hosts, paths, gateways): every item a string.
fn string_lists(node: &Y, problems: &mut Vec<String>) {
    match node {
        Y::Map(entries) => {
            for (key, value) in entries {
                if let ("hosts" | "notHosts" | "paths" | "notPaths" | "gateways", Y::Seq(items)) =
                    (key.as_str(), value)
                {
                    for item in items {
                        if item.string().is_none() {
                            problems.push(format!("{key}: {item:?} is not a string"));
                        }
                    }
                }
                string_lists(value, problems);
            }
        }
        Y::Seq(items) => items.iter().for_each(|i| string_lists(i, problems)),
        Y::Scalar { .. } => {}
    }
}

/// istiod's reading of `extensionProviders`: each with a name and one ext_authz service and
/// numeric port.
fn extension_providers(mesh: &Y, problems: &mut Vec<String>) {
    let Some(Y::Seq(providers)) = mesh.get("extensionProviders") else {
        problems.push("mesh config: no extensionProviders list".to_owned());
        return;
    };
    for provider in providers {
        if provider.get("name").and_then(Y::string).is_none() {
            problems.push(format!("extensionProviders: no name in {provider:?}"));
        }
        let authz: Vec<&Y> = ["envoyExtAuthzHttp", "envoyExtAuthzGrpc"]
            .iter()
            .filter_map(|k| provider.get(k))
            .collect();
        let [authz] = authz.as_slice() else {
            problems.push(format!(
                "extensionProviders: not one envoyExtAuthz* in {provider:?}"
            ));
            continue;
        };
        if authz.get("service").and_then(Y::string).is_none() {
            problems.push(format!("extensionProviders: no service in {authz:?}"));
        }
        if !matches!(authz.get("port"), Some(Y::Scalar { text, plain: true }) if plain_type(text) == "int")
        {
            problems.push(format!(
                "extensionProviders: port not a number in {authz:?}"
            ));
        }
    }
}

/// The objects of a manifest stream as kubectl reads them, or every problem it would refuse.
fn kubernetes_objects(stream: &str) -> Result<Vec<ObjectId>, Vec<String>> {
    let docs = parse_stream(stream).map_err(|e| vec![e])?;
    let mut ids: Vec<ObjectId> = Vec::new();
    let mut problems = Vec::new();
    for doc in docs.iter().filter(|d| !d.is_null()) {
        let Y::Map(entries) = doc else {
            problems.push(format!("a document that is not a mapping: {doc:?}"));
            continue;
        };
        for (key, _) in entries {
            if ![
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "data",
                "binaryData",
                "immutable",
            ]
            .contains(&key.as_str())
            {
                problems.push(format!("unknown top-level field {key:?}"));
            }
        }
        let api_version = doc.get("apiVersion").and_then(Y::string).unwrap_or("");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if !api_version_part(version) || !(group.is_empty() || dns_subdomain(group)) {
            problems.push(format!("apiVersion {api_version:?}"));
        }
        let kind = doc.get("kind").and_then(Y::string).unwrap_or("");
        if !kind.starts_with(|c: char| c.is_ascii_uppercase())
            || !kind.chars().all(|c| c.is_ascii_alphanumeric())
        {
            problems.push(format!("kind {kind:?}"));
        }
        let name = doc.path(&["metadata", "name"]).and_then(Y::string);
        let name = name.unwrap_or("");
        if !dns_subdomain(name) {
            problems.push(format!("{kind}: metadata.name {name:?}"));
        }
        let namespace = match doc.path(&["metadata", "namespace"]) {
            None => "",
            Some(ns) => ns.string().unwrap_or("<not a string>"),
        };
        if !namespace.is_empty() && !dns_label(namespace) {
            problems.push(format!("{kind} {name}: metadata.namespace {namespace:?}"));
        }
        for field in ["labels", "annotations"] {
            if let Some(map) = doc.path(&["metadata", field]) {
                string_map(
                    map,
                    &format!("{kind} {name}: metadata.{field}"),
                    &mut problems,
                );
            }
        }
        let selector: &[&str] = match kind {
            "Service" | "Gateway" => &["spec", "selector"],
            "AuthorizationPolicy" => &["spec", "selector", "matchLabels"],
            "ConfigMap" => &["data"],
            _ => &[],
        };
        if let Some(map) = doc.path(selector).filter(|_| !selector.is_empty()) {
            string_map(
                map,
                &format!("{kind} {name}: {}", selector.join(".")),
                &mut problems,
            );
        }
        string_lists(doc, &mut problems);
        // The mesh config is YAML in a string (ConfigMap) or in the IstioOperator: istiod
        // parses it too.
        if kind == "ConfigMap"
            && let Some(mesh) = doc.path(&["data", "mesh"]).and_then(Y::string)
        {
            match parse_stream(mesh) {
                Ok(docs) if docs.len() == 1 => extension_providers(&docs[0], &mut problems),
                Ok(docs) => problems.push(format!("data.mesh: {} documents", docs.len())),
                Err(e) => problems.push(format!("data.mesh: {e}")),
            }
        }
        if kind == "IstioOperator" {
            match doc.path(&["spec", "meshConfig"]) {
                Some(mesh) => extension_providers(mesh, &mut problems),
                None => problems.push("IstioOperator: no spec.meshConfig".to_owned()),
            }
        }
        let id = (
            group.to_owned(),
            kind.to_owned(),
            namespace.to_owned(),
            name.to_owned(),
        );
        if ids.contains(&id) {
            problems.push(format!("{kind} {namespace}/{name} twice"));
        }
        ids.push(id);
    }
    if problems.is_empty() {
        Ok(ids)
    } else {
        Err(problems)
    }
}

/// The generated streams are Kubernetes objects as kubectl reads them (no kubectl needed: see
/// `kubernetes_objects`), with the resources each variant promises.
#[test]
fn generated_manifests_are_kubernetes_objects() {
    for settings in settings_variants() {
        let yaml = render(&settings);
        let ids = kubernetes_objects(&yaml)
            .unwrap_or_else(|problems| panic!("{}\n{yaml}", problems.join("\n")));
        let kinds: Vec<&str> = ids.iter().map(|(_, kind, _, _)| kind.as_str()).collect();
        let mut expected = vec![match settings.mesh_format {
            MeshFormat::ConfigMap => "ConfigMap",
            MeshFormat::IstioOperator => "IstioOperator",
        }];
        expected.push("Gateway");
        if settings.app_service.is_some() {
            expected.push("VirtualService");
        }
        expected.push("AuthorizationPolicy");
        expected.push("EnvoyFilter");
        if settings.with_service {
            expected.push("Service");
        }
        assert_eq!(kinds, expected, "{}", settings.command_line());
    }
    // The committed examples too, with the IdP route.
    for file in [
        "deploy/istio/nginx-http.yaml",
        "deploy/istio/nginx-grpc.yaml",
        "deploy/istio/keycloak.yaml",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        if let Err(problems) = kubernetes_objects(&text) {
            panic!("{file}:\n{}", problems.join("\n"));
        }
    }
}

/// `kubernetes_objects` is not a check that cannot fail: it refuses what kubectl refuses, the
/// seed's own mistakes included, and accepts the seed as fixed.
#[test]
fn the_manifest_reader_rejects_what_kubectl_rejects() {
    let seed = |file: &str| std::fs::read_to_string(data("seed").join(file)).unwrap();
    let refused = |what: &str, yaml: &str, needle: &str| {
        let problems = match kubernetes_objects(yaml) {
            Ok(ids) => panic!("{what}: accepted as {ids:?}\n{yaml}"),
            Err(problems) => problems.join("\n"),
        };
        assert!(problems.contains(needle), "{what}: {problems}");
    };
    refused(
        "the seed's `- match:` at column 1",
        &seed("nginx-virtual-service.yaml"),
        "line 28: ",
    );
    refused(
        "the seed's policy name",
        &seed("authorization-policy.yaml"),
        "metadata.name \"nginx=oauth2-policy\"",
    );
    refused(
        "the seed's `Spec:`",
        &seed("oauth2-proxy.yaml"),
        "unknown top-level field \"Spec\"",
    );
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";
    refused(
        "a duplicate key",
        &format!("{config_map}  name: b\n"),
        "given twice",
    );
    refused(
        "no name",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: a\n",
        "metadata.name \"\"",
    );
    refused(
        "a bool label",
        &format!("{config_map}  labels:\n    enabled: on\n"),
        "is not a string",
    );
    refused(
        "a number in data",
        &format!("{config_map}data:\n  port: 4180\n"),
        "is not a string",
    );
    refused(
        "a bad apiVersion",
        "apiVersion: networking.istio.io/1\nkind: Gateway\nmetadata:\n  name: a\n",
        "apiVersion",
    );
    refused(
        "the same object twice",
        &format!("{config_map}---\n{config_map}"),
        "twice",
    );
    refused(
        "an unquoted wildcard host (an alias)",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: a\nspec:\n  servers:\n  - hosts:\n    - *.example.com\n",
        "unknown anchor",
    );
    refused(
        "a quoted mesh port",
        &format!(
            "{config_map}data:\n  mesh: |-\n    extensionProviders:\n    - name: p\n      envoyExtAuthzHttp:\n        service: s\n        port: \"4180\"\n"
        ),
        "port not a number",
    );
    let fixed = read_sources(&[data("seed-fixed")]).unwrap();
    assert_eq!(fixed.len(), 7);
    for source in fixed {
        if let Err(problems) = kubernetes_objects(&source.text) {
            panic!("{}:\n{}", source.name, problems.join("\n"));
        }
    }
}

/// The Gateway API ways in (`--ingress gateway-api`, `--ingress waypoint`) rendered with
/// several settings.
fn gateway_api_variants() -> Vec<Settings> {
    use istio_manifests::Ingress;
    let gateway_api = Settings {
        ingress: Ingress::GatewayApi,
        ..Settings::seed()
    };
    vec![
        gateway_api.clone(),
        Settings {
            mode: Mode::Grpc,
            ..gateway_api.clone()
        },
        Settings {
            hosts: vec![
                "app.example.com".to_owned(),
                "*.apps.example.com".to_owned(),
            ],
            tls_credential: Some("app-tls".to_owned()),
            skip_paths: vec!["/healthz".to_owned()],
            proxy_prefix: "/auth".to_owned(),
            callback_path: "/auth/callback".to_owned(),
            ..gateway_api.clone()
        },
        Settings {
            app_service: None,
            with_service: false,
            ..gateway_api
        },
    ]
}

fn waypoint_settings() -> Settings {
    Settings {
        ingress: istio_manifests::Ingress::Waypoint,
        hosts: vec!["hello-nginx.nginx.svc.cluster.local".to_owned()],
        gateway: "waypoint".to_owned(),
        ..Settings::seed()
    }
}

fn check_text(yaml: &str, settings: &Settings) -> Vec<Finding> {
    let mut sources = vec![Source {
        name: "generated.yaml".to_owned(),
        text: yaml.to_owned(),
    }];
    // With the IdP's route, as in a cluster.
    sources.extend(read_sources(&[repo_root().join("deploy/istio/keycloak.yaml")]).unwrap());
    let options = CheckOptions {
        proxy_prefix: Some(settings.proxy_prefix.clone()),
        callback_path: Some(settings.callback_path.clone()),
        ..CheckOptions::default()
    };
    check_sources(&sources, &options)
}

/// The 1-based line of the first line of `yaml` containing `needle`, after line `after`.
fn line_of(yaml: &str, after: usize, needle: &str) -> usize {
    yaml.lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not found after line {after}:\n{yaml}"))
}

#[test]
fn the_gateway_api_output_has_no_finding_and_the_waypoint_only_its_warning() {
    for settings in gateway_api_variants() {
        let yaml = render(&settings);
        let findings = check_text(&yaml, &settings);
        assert!(findings.is_empty(), "{yaml}\n{}", show(&findings));
        // The command line in the header gives the same settings back.
        let line = settings.command_line();
        let args = line.split(' ').skip(2).map(|w| w.trim_matches('\''));
        let parsed = IstioArgs::try_parse_from(std::iter::once("istio").chain(args))
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(parsed, settings, "{line}");
    }
    // No verified way makes a waypoint refuse header names with underscores: one warning, at
    // the policy's action.
    let settings = waypoint_settings();
    let yaml = render(&settings);
    let findings = check_text(&yaml, &settings);
    let policy = line_of(&yaml, 0, "kind: AuthorizationPolicy");
    assert_eq!(
        located(&findings),
        [(
            "generated.yaml".to_owned(),
            line_of(&yaml, policy, "action: CUSTOM"),
            "waypoint-underscore-headers"
        )],
        "{yaml}\n{}",
        show(&findings)
    );
}

/// The Gateway API output with one mistake at a time: each rule fires at its line, alone.
#[test]
fn broken_gateway_api_objects_are_reported_at_their_line() {
    let settings = gateway_api_variants().remove(0);
    let yaml = render(&settings);
    let route = line_of(&yaml, 0, "kind: HTTPRoute");
    let policy = line_of(&yaml, 0, "kind: AuthorizationPolicy");
    let filter = line_of(&yaml, 0, "kind: EnvoyFilter");
    let broken = |from: &str, to: &str, after: usize| -> Vec<Finding> {
        let at = yaml
            .match_indices(from)
            .map(|(i, _)| i)
            .find(|i| yaml[..*i].lines().count() >= after)
            .unwrap_or_else(|| panic!("{from:?} not found after line {after}"));
        let edited = format!("{}{to}{}", &yaml[..at], &yaml[at + from.len()..]);
        check_text(&edited, &settings)
    };
    let one = |findings: Vec<Finding>, line: usize, rule: &str, fix: &str| {
        assert_eq!(
            located(&findings),
            [("generated.yaml".to_owned(), line, rule)],
            "\n{}",
            show(&findings)
        );
        assert!(findings[0].fix.contains(fix), "{}", findings[0]);
    };
    // A URLRewrite on the prefix's rule: the adapter gets /callback.
    let prefix_rule = line_of(&yaml, route, "- name: oidc-endpoints");
    one(
        broken(
            "  - name: oidc-endpoints\n",
            "  - name: oidc-endpoints\n    filters:\n    - type: URLRewrite\n      urlRewrite:\n        path:\n          type: ReplacePrefixMatch\n          replacePrefixMatch: /\n",
            route,
        ),
        prefix_rule + 2,
        "rewrite-strips-prefix",
        "remove the filter",
    );
    // The prefix's rule sending to the application.
    let backend = line_of(&yaml, prefix_rule, "- name: ext-authz-adapter");
    one(
        broken(
            "    - name: ext-authz-adapter\n      namespace: oidc-authz\n      port: 4180\n  - name: app",
            "    - name: hello-nginx\n      port: 80\n  - name: app",
            route,
        ),
        backend,
        "prefix-route",
        "value: /oauth2",
    );
    // The Gateway API orders rules by their matches, not as written: the catch-all first
    // changes nothing.
    let app_rule = "  - name: app\n    backendRefs:\n    - name: hello-nginx\n      port: 80\n";
    let reordered = yaml.replacen(app_rule, "", 1).replacen(
        "  rules:\n  - name: oidc-backchannel-logout",
        &format!("  rules:\n{app_rule}  - name: oidc-backchannel-logout"),
        1,
    );
    assert_ne!(reordered, yaml);
    let findings = check_text(&reordered, &settings);
    assert!(findings.is_empty(), "{reordered}\n{}", show(&findings));
    // The policy's notPaths taking every endpoint out of the check.
    // (The second rule, which checks only the logout path, is reported too: as for the
    // classic policy.)
    let not_paths = line_of(&yaml, policy, "notPaths:");
    let findings = broken(
        "notPaths: [\"/oauth2/backchannel-logout\"]",
        "notPaths: [\"/oauth2/*\"]",
        policy,
    );
    assert_eq!(
        located(&findings),
        [
            (
                "generated.yaml".to_owned(),
                not_paths,
                "callback-not-checked"
            ),
            (
                "generated.yaml".to_owned(),
                line_of(&yaml, not_paths, "paths: ["),
                "callback-not-checked"
            ),
        ],
        "\n{}",
        show(&findings)
    );
    assert!(
        findings[0]
            .fix
            .contains("remove \"/oauth2/*\" from notPaths"),
        "{}",
        findings[0]
    );
    // targetRefs naming a Gateway that is not among the files.
    let target = line_of(&yaml, policy, "name: nginx-gateway");
    one(
        broken("    name: nginx-gateway\n", "    name: nginx-gw\n", policy),
        target,
        "policy-target",
        "name: nginx-gateway",
    );
    // ... or of another group.
    one(
        broken(
            "group: gateway.networking.k8s.io\n    name: nginx-gateway\n  action",
            "group: networking.istio.io\n    name: nginx-gateway\n  action",
            policy,
        ),
        target,
        "policy-target",
        "set group: gateway.networking.k8s.io",
    );
    // ... or the policy in another namespace than its Gateway.
    let findings = broken(
        "  namespace: nginx\n",
        "  namespace: istio-system\n",
        policy,
    );
    assert_eq!(
        located(&findings),
        [("generated.yaml".to_owned(), target, "policy-target")],
        "\n{}",
        show(&findings)
    );
    assert!(
        findings[0].fix.contains("namespace nginx"),
        "{}",
        findings[0]
    );
    // A parentRef to another Gateway.
    let parent = line_of(&yaml, route, "- name: nginx-gateway");
    one(
        broken(
            "  - name: nginx-gateway\n",
            "  - name: other-gateway\n",
            route,
        ),
        parent,
        "route-parent",
        "parentRefs: [{name: nginx-gateway}]",
    );
    // ... or to a listener it does not have.
    one(
        broken(
            "  - name: nginx-gateway\n",
            "  - name: nginx-gateway\n    sectionName: https\n",
            route,
        ),
        parent + 1,
        "route-parent",
        "listener names",
    );
    // A hostname the Gateway does not serve (and that the policy does not check).
    let hostname = line_of(&yaml, route, "- nginx.example.com");
    let findings = broken("  - nginx.example.com\n", "  - www.example.com\n", route);
    assert_eq!(
        located(&findings),
        [
            (
                "generated.yaml".to_owned(),
                hostname,
                "route-hosts-do-not-meet"
            ),
            ("generated.yaml".to_owned(), hostname, "policy-hosts"),
        ],
        "\n{}",
        show(&findings)
    );
    // A hostname the Gateway serves but the policy does not check: served without a login.
    let edited = yaml
        .replacen(
            "    hostname: nginx.example.com\n",
            "    hostname: \"*.example.com\"\n",
            1,
        )
        .replacen(
            "  - nginx.example.com\n  rules:",
            "  - nginx.example.com\n  - www.example.com\n  rules:",
            1,
        );
    let findings = check_text(&edited, &settings);
    assert_eq!(
        located(&findings),
        [("generated.yaml".to_owned(), hostname + 1, "policy-hosts")],
        "\n{}",
        show(&findings)
    );
    assert!(
        findings[0].fix.contains("\"www.example.com:*\""),
        "{}",
        findings[0]
    );
    // The back-channel logout's rule sending the unchecked POST to the application.
    let logout_backend = line_of(&yaml, route, "- name: ext-authz-adapter");
    let findings = broken(
        "    - name: ext-authz-adapter\n      namespace: oidc-authz\n      port: 4180\n  - name: oidc-endpoints",
        "    - name: hello-nginx\n      port: 80\n  - name: oidc-endpoints",
        route,
    );
    assert_eq!(
        located(&findings),
        [(
            "generated.yaml".to_owned(),
            line_of(&yaml, policy, "rules:"),
            "backchannel-logout-route"
        )],
        "{logout_backend}\n{}",
        show(&findings)
    );
    // A backendRef port the adapter's Service does not expose.
    let port = line_of(&yaml, prefix_rule, "port: 4180");
    one(
        broken(
            "      port: 4180\n  - name: app",
            "      port: 8080\n  - name: app",
            route,
        ),
        port,
        "destination-port",
        "port: 4180",
    );
    // The EnvoyFilter on another Gateway: nothing refuses underscores at this one.
    one(
        broken(
            "    name: nginx-gateway\n",
            "    name: other-gateway\n",
            filter,
        ),
        line_of(&yaml, policy, "action: CUSTOM"),
        "underscore-headers",
        "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: nginx-gateway}]",
    );
}
