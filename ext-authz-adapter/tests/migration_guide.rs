//! `docs/migrate-from-oauth2-proxy.md` is true: every command of its `sh` blocks that needs no
//! cluster and no Docker engine is run here, as written, from a copy of the repository's layout,
//! and must end with the exit status the guide states (`# exits N`, else 0). `helm install` and
//! `helm upgrade` run with `--dry-run=client` added (Helm renders the release as it would
//! install it, without a cluster). Every other command must sit in a block whose first line is
//! `# needs a cluster` or `# needs a Docker engine`: those are not run by any test, and the
//! guide says so.
//!
//! `cargo xtask test` sets `OIDC_AUTHZ_HELM` (Helm v4, built and cached by xtask).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const GUIDE: &str = "docs/migrate-from-oauth2-proxy.md";

/// The marks of blocks this test cannot run, and what each needs.
const NOT_RUN_MARKS: &[&str] = &["# needs a cluster", "# needs a Docker engine"];

/// Programs that reach a cluster or a Docker engine: never run here, marked or not.
const NEEDS_INFRASTRUCTURE: &[&str] = &["kubectl", "docker", "istioctl"];

/// One command of the guide: its line, its text (continuations joined), the status it must end
/// with, and whether its block is marked as not run.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    exit: i32,
    marked: Option<&'static str>,
}

/// The commands of the guide's `sh` blocks, in order.
fn steps(guide: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut marked = None;
    let mut first = false;
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in guide.lines().enumerate() {
        let line = raw.trim_end();
        if !in_block {
            if line.trim_start() == "```sh" {
                in_block = true;
                first = true;
                marked = None;
            }
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_block = false;
            assert!(pending.is_none(), "{GUIDE}:{n}: a command ends in `\\`");
            continue;
        }
        if first {
            first = false;
            if let Some(mark) = NOT_RUN_MARKS.iter().find(|m| line.trim() == **m) {
                marked = Some(*mark);
                continue;
            }
        }
        let (start, mut text) = pending.take().unwrap_or((n + 1, String::new()));
        if let Some(body) = line.strip_suffix('\\') {
            text.push_str(body.trim_start());
            pending = Some((start, text));
            continue;
        }
        text.push_str(line.trim_start());
        if text.trim().is_empty() || text.trim_start().starts_with('#') {
            continue;
        }
        // `command   # exits 1`: the comment states the status.
        let (command, exit) = match text.split_once("# exits ") {
            Some((command, status)) => (
                command.trim().to_owned(),
                status.trim().parse().unwrap_or_else(|_| {
                    panic!("{GUIDE}:{start}: `# exits {status}` is not a number")
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

/// The Helm of `cargo xtask test`.
fn helm() -> PathBuf {
    match std::env::var_os("OIDC_AUTHZ_HELM") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!("OIDC_AUTHZ_HELM is not set: run this test with `cargo xtask test`"),
    }
}

/// A scratch directory laid out like the repository root (the paths the guide names), where
/// the guide's commands may write their files.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Workdir {
        let dir = std::env::temp_dir().join(format!("oidc-authz-guide-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in ["deploy", "ext-authz-adapter", "docs"] {
            std::os::unix::fs::symlink(repo().join(entry), dir.join(entry)).unwrap();
        }
        // The guide's commands find the adapter and Helm on PATH, as a user's shell would.
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_ext-authz-adapter"),
            bin.join("ext-authz-adapter"),
        )
        .unwrap();
        std::os::unix::fs::symlink(helm(), bin.join("helm")).unwrap();
        Workdir(dir)
    }

    fn run(&self, command: &str) -> (i32, String) {
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", command])
            .current_dir(&self.0)
            // Only the guide's tools, and nothing that could reach a cluster.
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.0.join("bin").display()),
            )
            .env("KUBECONFIG", self.0.join("no-kubeconfig"))
            .env("HELM_CACHE_HOME", self.0.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.0.join("helm/config"))
            .env("HELM_DATA_HOME", self.0.join("helm/data"))
            .output()
            .unwrap();
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
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn program(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or_default()
}

#[test]
fn every_command_of_the_migration_guide_runs_or_is_marked() {
    let guide = std::fs::read_to_string(repo().join(GUIDE)).unwrap();
    let steps = steps(&guide);
    let work = Workdir::new();
    let mut ran = Vec::new();
    for step in &steps {
        let unmarked_infrastructure = step.marked.is_none()
            && step
                .command
                .split(['|', ';', '&'])
                .any(|part| NEEDS_INFRASTRUCTURE.contains(&program(part.trim())));
        assert!(
            !unmarked_infrastructure,
            "{GUIDE}:{}: `{}` needs a cluster or a Docker engine: put it in a block whose first \
             line is one of {NOT_RUN_MARKS:?}",
            step.line, step.command
        );
        if step.marked.is_some() {
            continue;
        }
        let mut command = step.command.clone();
        if command.starts_with("helm install ") || command.starts_with("helm upgrade ") {
            command.push_str(" --dry-run=client");
        }
        let (status, output) = work.run(&command);
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
    assert!(install.contains("STATUS: pending-install"), "{install}");
    assert!(
        ran.len() >= 5 && steps.iter().filter(|s| s.marked.is_some()).count() >= 5,
        "the scanner found only {} commands run and {} marked: {steps:#?}",
        ran.len(),
        steps.len() - ran.len()
    );
}

#[test]
fn the_guide_scanner_reads_blocks_marks_continuations_and_statuses() {
    let text = "text\n```sh\nfoo a \\\n  b   # exits 1\n# a comment\nbar\n```\n\
                ```sh\n# needs a cluster\nkubectl get x\n```\n```yaml\nnot: run\n```\n";
    let found = steps(text);
    let summary: Vec<(usize, &str, i32, bool)> = found
        .iter()
        .map(|s| (s.line, s.command.as_str(), s.exit, s.marked.is_some()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (3, "foo a b", 1, false),
            (6, "bar", 0, false),
            (10, "kubectl get x", 0, true)
        ]
    );
}
