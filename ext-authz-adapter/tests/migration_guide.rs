//! `docs/migrate-from-oauth2-proxy.md` is true: every command of its `sh` blocks runs here, as
//! written and in order, from a copy of the repository's layout, and must end with the exit
//! status the guide states (`# exits N`, else 0). The cluster is a real Kubernetes API server
//! (`test_support::cluster`: kube-apiserver, etcd, kubectl; no nodes, so no pod runs) holding
//! what the seed's reader has: Istio's CRDs and the seed's objects
//! (`tests/data/istio/seed-applied/`). `kubectl edit` gets an editor that makes the merge the
//! guide asks for. Only blocks whose first line is `# needs a Docker engine` are not run (the
//! test machines have the docker client, no engine), and the guide says so.
//!
//! `cargo xtask test` sets `OIDC_AUTHZ_HELM` (Helm v4), `OIDC_AUTHZ_TEST_CLUSTER` and
//! `OIDC_AUTHZ_MANIFEST_CHECK` (whose directory holds Istio's CRDs), built and cached by xtask.

use std::path::{Path, PathBuf};
use std::process::Command;

use test_support::cluster::TestCluster;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const GUIDE: &str = "docs/migrate-from-oauth2-proxy.md";

/// The mark of blocks this test cannot run.
const NOT_RUN_MARK: &str = "# needs a Docker engine";

/// Programs that need a Docker engine: never run here, and only in a marked block.
const NEEDS_DOCKER: &[&str] = &["docker"];

/// The seed's objects as the cluster holds them before the migration.
const SEED_APPLIED: &str = "ext-authz-adapter/tests/data/istio/seed-applied";

/// The guide's placeholders, and what this cluster has in their place.
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("<your oauth2-proxy policy>", "nginx-oauth2-policy"),
    ("<your oauth2-proxy manifests>", SEED_APPLIED),
];

/// One command of the guide: its line, its text (continuations joined, a `for ... done` loop as
/// one), the status it must end with, and whether its block is marked as not run.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    exit: i32,
    marked: bool,
}

/// The shell words that open and close a compound command spanning lines.
fn nesting(line: &str) -> i32 {
    let first = line.split_whitespace().next().unwrap_or_default();
    match first {
        "for" | "while" | "until" | "if" | "case" => 1,
        "done" | "fi" | "esac" => -1,
        _ => 0,
    }
}

/// The commands of the guide's `sh` blocks, in order.
fn steps(guide: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut marked = false;
    let mut first = false;
    let mut continued: Option<(usize, String)> = None;
    let mut compound: Option<(usize, String)> = None;
    let mut depth = 0;
    for (n, raw) in guide.lines().enumerate() {
        let line = raw.trim_end();
        if !in_block {
            if line.trim_start() == "```sh" {
                in_block = true;
                first = true;
                marked = false;
            }
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_block = false;
            assert!(
                continued.is_none() && compound.is_none(),
                "{GUIDE}:{n}: a command ends in `\\` or a loop is not closed"
            );
            continue;
        }
        if first {
            first = false;
            if line.trim() == NOT_RUN_MARK {
                marked = true;
                continue;
            }
        }
        // A logical line: physical lines joined where they end in `\`.
        let (line_start, mut logical) = continued.take().unwrap_or((n + 1, String::new()));
        if let Some(body) = line.strip_suffix('\\') {
            logical.push_str(body.trim_start());
            continued = Some((line_start, logical));
            continue;
        }
        logical.push_str(line.trim_start());
        // A command: logical lines joined while a loop (or `if`, `case`) is open.
        let (start, mut text) = compound.take().unwrap_or((line_start, String::new()));
        if text.is_empty() && logical.starts_with('#') {
            continue;
        }
        depth += nesting(&logical);
        text.push_str(&logical);
        if depth > 0 {
            text.push('\n');
            compound = Some((start, text));
            continue;
        }
        if text.trim().is_empty() {
            continue;
        }
        // `command   # exits 1`: the comment states the status.
        let (command, exit) = match text.split_once("# exits ") {
            Some((command, status)) => (
                command.trim().to_owned(),
                // The first word; the rest is a note for the reader.
                status
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| {
                        panic!("{GUIDE}:{start}: `# exits {status}` does not start with a number")
                    }),
            ),
            None => (text.trim().to_owned(), 0),
        };
        out.push(Step {
            line: start,
            command,
            exit,
            marked,
        });
    }
    out
}

/// A path `cargo xtask test` names in `var`.
fn tool(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!("{var} is not set: run this test with `cargo xtask test`"),
    }
}

/// A scratch directory laid out like the repository root (the paths the guide names), where
/// the guide's commands may write their files, with the guide's tools on `PATH` and the test
/// cluster as the current kubeconfig.
struct Workdir {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Workdir {
    fn new(cluster: &TestCluster) -> Workdir {
        let dir = std::env::temp_dir().join(format!("oidc-authz-guide-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in ["deploy", "ext-authz-adapter", "docs"] {
            std::os::unix::fs::symlink(repo().join(entry), dir.join(entry)).unwrap();
        }
        // The guide's commands find their programs on PATH, as a user's shell would.
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, path) in [
            (
                "ext-authz-adapter",
                PathBuf::from(env!("CARGO_BIN_EXE_ext-authz-adapter")),
            ),
            ("helm", tool("OIDC_AUTHZ_HELM")),
            ("kubectl", cluster.kubectl()),
        ] {
            std::os::unix::fs::symlink(path, bin.join(name)).unwrap();
        }
        Workdir {
            dir,
            kubeconfig: cluster.kubeconfig().to_owned(),
        }
    }

    fn run(&self, command: &str, editor: Option<&Path>) -> (i32, String) {
        let mut cmd = Command::new("bash");
        // `-e`: a failing command inside a loop fails the step (a loop's status is its last
        // command's).
        cmd.args(["-e", "-o", "pipefail", "-c", command])
            .current_dir(&self.dir)
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.join("bin").display()),
            )
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .env_remove("EDITOR")
            .env_remove("KUBE_EDITOR");
        if let Some(editor) = editor {
            cmd.env("KUBE_EDITOR", editor);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn program(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or_default()
}

/// The text of a YAML literal block `key: |` (or `|-`) of `yaml`, without its indentation.
fn literal_block(yaml: &str, key: &str) -> Option<String> {
    let mut lines = yaml.lines();
    let opening = lines.find(|l| {
        let t = l.trim_start();
        t.starts_with(&format!("{key}: |"))
    })?;
    let outer = opening.len() - opening.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > outer)
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()?;
    Some(
        body.iter()
            .map(|l| l.get(indent..).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// What an operator does in `kubectl edit configmap istio` (step 7): in the live mesh config,
/// the `extensionProviders` entry named `provider` becomes `ours`'s entry and `ours`'s
/// `pathNormalization` is added; every other line stays. `live` is the ConfigMap as `kubectl
/// get -o yaml` prints it, `ours` the output of `istio --only mesh`.
fn merge_mesh_entry(live: &str, ours: &str, provider: &str) -> String {
    let ours_mesh = literal_block(ours, "mesh").expect("`istio --only mesh` has no data.mesh");
    let live_mesh = literal_block(live, "mesh")
        .unwrap_or_else(|| panic!("the live ConfigMap has no data.mesh literal block:\n{live}"));
    // An entry: from its `- name:` line to the next line at column 0.
    let entry = |mesh: &str| -> (usize, usize) {
        let lines: Vec<&str> = mesh.lines().collect();
        let start = lines
            .iter()
            .position(|l| *l == format!("- name: {provider}"))
            .unwrap_or_else(|| panic!("no provider {provider} at column 0 in:\n{mesh}"));
        let end = lines[start + 1..]
            .iter()
            .position(|l| !l.is_empty() && !l.starts_with(' '))
            .map_or(lines.len(), |i| start + 1 + i);
        (start, end)
    };
    let ours_lines: Vec<&str> = ours_mesh.lines().collect();
    let (os, oe) = entry(&ours_mesh);
    let normalization: Vec<&str> = ours_lines
        .iter()
        .skip_while(|l| !l.starts_with("pathNormalization:"))
        .take_while(|l| l.starts_with("pathNormalization:") || l.starts_with(' '))
        .copied()
        .collect();
    assert!(
        !normalization.is_empty(),
        "no pathNormalization in:\n{ours_mesh}"
    );
    let live_lines: Vec<&str> = live_mesh.lines().collect();
    let (ls, le) = entry(&live_mesh);
    let mut merged: Vec<&str> = normalization;
    merged.extend(&live_lines[..ls]);
    merged.extend(&ours_lines[os..oe]);
    merged.extend(&live_lines[le..]);
    // Back into the ConfigMap, in place of the old block, at its indentation.
    let opening = live
        .lines()
        .find(|l| l.trim_start().starts_with("mesh: |"))
        .unwrap();
    let indent = " ".repeat(opening.len() - opening.trim_start().len() + 2);
    let mut out = String::new();
    let mut lines = live.lines().peekable();
    while let Some(line) = lines.next() {
        if line != opening {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        out.push_str(&format!("{}mesh: |\n", &indent[2..]));
        for m in &merged {
            if !m.is_empty() {
                out.push_str(&indent);
            }
            out.push_str(m);
            out.push('\n');
        }
        while lines
            .peek()
            .is_some_and(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent.len())
        {
            lines.next();
        }
    }
    out
}

/// Applies Istio's CRDs (the ones the manifest checker validates against) and the seed's
/// objects to the cluster.
fn seed_the_cluster(cluster: &TestCluster) {
    let crds = tool("OIDC_AUTHZ_MANIFEST_CHECK")
        .parent()
        .expect("the manifest checker's directory")
        .join("crds");
    let crds = crds.to_str().expect("a UTF-8 path");
    cluster.kubectl_ok(&["apply", "--server-side", "-f", crds]);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=120s",
        "crd",
        "--all",
    ]);
    for namespace in ["istio-system", "nginx", "keycloak"] {
        cluster.kubectl_ok(&["create", "namespace", namespace]);
    }
    let seed = repo().join(SEED_APPLIED);
    cluster.kubectl_ok(&["apply", "-f", seed.to_str().unwrap()]);
}

#[test]
fn every_command_of_the_migration_guide_runs_against_a_cluster() {
    let guide = std::fs::read_to_string(repo().join(GUIDE)).unwrap();
    let steps = steps(&guide);
    let cluster = TestCluster::start();
    seed_the_cluster(&cluster);
    let work = Workdir::new(&cluster);
    let mut ran: Vec<(&Step, String)> = Vec::new();
    for step in &steps {
        let needs_docker = step
            .command
            .split(['|', ';', '&', '\n'])
            .any(|part| NEEDS_DOCKER.contains(&program(part.trim())));
        assert_eq!(
            needs_docker, step.marked,
            "{GUIDE}:{}: `{}`: exactly the commands that need a Docker engine sit in a block \
             whose first line is `{NOT_RUN_MARK}`",
            step.line, step.command
        );
        if step.marked {
            continue;
        }
        let mut command = step.command.clone();
        for (placeholder, value) in PLACEHOLDERS {
            command = command.replace(placeholder, value);
        }
        // `kubectl edit`: the editor writes what the operator would (the merged entry).
        let editor = command.contains(" edit ").then(|| {
            let ours = &ran
                .iter()
                .find(|(s, _)| s.command.starts_with("ext-authz-adapter istio --only mesh"))
                .expect("the guide prints the mesh entry before the edit")
                .1;
            let live = cluster.kubectl_ok(&[
                "-n",
                "istio-system",
                "get",
                "configmap",
                "istio",
                "-o",
                "yaml",
            ]);
            let merged = work.dir.join("merged-mesh.yaml");
            std::fs::write(&merged, merge_mesh_entry(&live, ours, "oauth2-proxy")).unwrap();
            let editor = work.dir.join("editor.sh");
            std::fs::write(
                &editor,
                format!("#!/bin/sh\ncp {} \"$1\"\n", merged.display()),
            )
            .unwrap();
            std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            editor
        });
        let (status, output) = work.run(&command, editor.as_deref());
        assert_eq!(
            status, step.exit,
            "{GUIDE}:{}: `{command}` ended with {status}, the guide says {}:\n{output}",
            step.line, step.exit
        );
        ran.push((step, output));
    }
    // What the guide promises of the commands it runs.
    let output_of = |prefix: &str| {
        ran.iter()
            .find(|(s, _)| s.command.starts_with(prefix))
            .map(|(_, o)| o.as_str())
            .unwrap_or_else(|| panic!("the guide has no command starting with {prefix:?}"))
    };
    let seed =
        output_of("ext-authz-adapter istio --check ext-authz-adapter/tests/data/istio/seed/");
    for finding in [
        "sends checks to port 80",
        "indented under `selector`",
        "\"nginx=oauth2-policy\" is invalid",
        "`Spec:` is not a field",
        "rewrites the path",
        "`x-forwarded-proto` is not in includeHeadersInCheck",
    ] {
        assert!(seed.contains(finding), "{finding:?} not in:\n{seed}");
    }
    // The check points readers of the seed here.
    assert!(
        seed.contains("docs/migrate-from-oauth2-proxy.md walks through it"),
        "{seed}"
    );
    // Step 1 on the live objects finds what the cluster kept of the seed's mistakes.
    let live = output_of("ext-authz-adapter istio --check live.yaml");
    for finding in ["sends checks to port 80", "rewrites the path"] {
        assert!(live.contains(finding), "{finding:?} not in:\n{live}");
    }
    assert!(
        output_of("ext-authz-adapter istio --check ours.yaml").contains("no problem found"),
        "the chart's objects for the seed's names have findings"
    );
    let mesh = output_of("ext-authz-adapter istio --only mesh");
    for needle in [
        "name: oauth2-proxy",
        "service: nginx-oauth2-proxy.nginx.svc.cluster.local",
        "port: 4180",
        "normalization: MERGE_SLASHES",
    ] {
        assert!(mesh.contains(needle), "{needle:?} not in:\n{mesh}");
    }
    let install = output_of("helm install nginx-oauth2-proxy");
    assert!(install.contains("STATUS: deployed"), "{install}");
    // Step 8: the release and the merged mesh config agree.
    let verified = output_of("ext-authz-adapter istio --check release.yaml mesh.yaml");
    assert!(verified.contains("no problem found"), "{verified}");
    // Backed out: oauth2-proxy's Deployment is back, the adapter's Redis is gone.
    let deployments = cluster.kubectl_ok(&["-n", "nginx", "get", "deployments", "-o", "name"]);
    assert!(
        deployments.contains("deployment.apps/nginx-oauth2-proxy")
            && !deployments.contains("redis"),
        "after backing out: {deployments}"
    );
    assert!(
        ran.len() >= 15 && steps.iter().filter(|s| s.marked).count() == 1,
        "the scanner found only {} commands run and {} marked: {steps:#?}",
        ran.len(),
        steps.len() - ran.len()
    );
}

#[test]
fn the_guide_scanner_reads_blocks_marks_loops_continuations_and_statuses() {
    let text = "text\n```sh\nfoo a \\\n  b   # exits 1 here\n# a comment\nbar\n\
                for x in 1 \\\n  2; do\n  baz \"$x\"\ndone\n```\n\
                ```sh\n# needs a Docker engine\ndocker push x\n```\n```yaml\nnot: run\n```\n";
    let found = steps(text);
    let summary: Vec<(usize, &str, i32, bool)> = found
        .iter()
        .map(|s| (s.line, s.command.as_str(), s.exit, s.marked))
        .collect();
    assert_eq!(
        summary,
        vec![
            (3, "foo a b", 1, false),
            (6, "bar", 0, false),
            (7, "for x in 1 2; do\nbaz \"$x\"\ndone", 0, false),
            (14, "docker push x", 0, true)
        ]
    );
}

#[test]
fn the_mesh_merge_replaces_one_entry_and_keeps_the_rest() {
    let live = "apiVersion: v1\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n    \
                extensionProviders: # note\n    - name: other\n      envoyExtAuthzGrpc:\n        \
                port: 1\n    - name: oauth2-proxy\n      envoyExtAuthzHttp:\n        port: 80\n    \
                trustDomain: cluster.local\n  meshNetworks: 'networks: {}'\nkind: ConfigMap\n";
    let ours = "data:\n  mesh: |\n    pathNormalization:\n      normalization: MERGE_SLASHES\n    \
                extensionProviders:\n    - name: oauth2-proxy\n      envoyExtAuthzHttp:\n        \
                port: 4180\nkind: ConfigMap\n";
    assert_eq!(
        merge_mesh_entry(live, ours, "oauth2-proxy"),
        "apiVersion: v1\ndata:\n  mesh: |\n    pathNormalization:\n      normalization: \
         MERGE_SLASHES\n    accessLogFile: /dev/stdout\n    extensionProviders: # note\n    \
         - name: other\n      envoyExtAuthzGrpc:\n        port: 1\n    - name: oauth2-proxy\n      \
         envoyExtAuthzHttp:\n        port: 4180\n    trustDomain: cluster.local\n  meshNetworks: \
         'networks: {}'\nkind: ConfigMap\n"
    );
}
