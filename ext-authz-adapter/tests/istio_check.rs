//! `ext-authz-adapter istio --check` on the seed's own manifests (every mistake reported, with
//! its file and line), on the same manifests fixed as the findings say (none), and on what
//! `ext-authz-adapter istio` generates (none).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ext_authz_adapter::istio::{
    CheckOptions, Finding, MeshFormat, Mode, Settings, Source, check_sources, read_sources, render,
    run,
};

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/istio")
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
        ("authorization-policy.yaml", 12, "provider-undeclared"), // nginx-oauth2-proxy vs oauth2-proxy
        // The mesh ConfigMap.
        ("istio-configmap.yaml", 4, "mesh-namespace"), // no namespace: not istio-system/istio
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

/// The fixtures are the blog post's code blocks, byte for byte.
#[test]
fn seed_fixtures_are_verbatim_from_the_blog_post() {
    let post =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seed/000_5a756e439dfcdec4.txt");
    let Ok(post) = std::fs::read_to_string(&post) else {
        eprintln!("skipped: the seed post is not beside the repository");
        return;
    };
    let sources = read_sources(&[data("seed")]).unwrap();
    assert_eq!(sources.len(), 6);
    for source in sources {
        assert!(
            post.contains(&format!("\n{}```", source.text)),
            "{} is not a code block of the post",
            source.name
        );
    }
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
    use ext_authz_adapter::istio::yaml::{Lines, parse_documents};
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
            let prefix = vs.path(&["spec", "http"]).unwrap().items()[0]
                .path(&["match"])
                .unwrap()
                .items()[0]
                .str_at(&["uri", "prefix"])
                .unwrap();
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
/// `UPDATE_ISTIO_EXAMPLES=1 cargo test -p ext-authz-adapter --test istio_check`.
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
            "{file} differs from `{}`: regenerate it with UPDATE_ISTIO_EXAMPLES=1 cargo test -p ext-authz-adapter --test istio_check",
            settings.command_line()
        );
    }
}

#[test]
fn the_examples_command_lines_produce_them() {
    // The command line printed in each example's header parses back to the same settings.
    use clap::Parser;
    use ext_authz_adapter::istio::IstioArgs;
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
    assert_eq!(run(vec!["--bogus".into()]), ExitCode::from(2));
    assert_eq!(run(vec![]), ExitCode::from(2), "--host is required");
    assert_eq!(
        run(vec!["--host".into(), "nginx.example.com".into()]),
        ExitCode::SUCCESS
    );
}

/// kubectl's own YAML reader (kustomize, no cluster needed) accepts the generated streams as
/// Kubernetes objects. Skipped where kubectl is not installed.
#[test]
fn kubectl_reads_the_generated_manifests() {
    let Ok(status) = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
    else {
        eprintln!("skipped: no kubectl");
        return;
    };
    if !status.status.success() {
        eprintln!("skipped: kubectl does not run");
        return;
    }
    for (i, settings) in settings_variants().into_iter().enumerate() {
        let dir = std::env::temp_dir().join(format!("istio-kustomize-{}-{i}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("all.yaml"), render(&settings)).unwrap();
        std::fs::write(dir.join("kustomization.yaml"), "resources:\n- all.yaml\n").unwrap();
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("kind: AuthorizationPolicy"), "{text}");
    }
}
