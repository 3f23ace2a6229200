//! A Kubernetes API server on 127.0.0.1 for tests that run `kubectl` and `helm` against a
//! cluster: the real `kube-apiserver` and `kubectl` of `k8s.io/kubernetes`, with etcd embedded,
//! in one program that `cargo xtask test` builds from `xtask/go/test-cluster/` and names in
//! `OIDC_AUTHZ_TEST_CLUSTER`. There are no nodes and no controllers: objects are validated,
//! admitted, stored and served as by any cluster (CRDs included), but no pod runs.
//!
//! Its ports (API server, etcd client and peer) come from [`crate::reserve_port`]: the API
//! server cannot report a port it picked itself.
//!
//! ```no_run
//! use test_support::cluster::TestCluster;
//! let cluster = TestCluster::start();
//! let out = std::process::Command::new(cluster.kubectl())
//!     .args(["get", "namespaces"])
//!     .env("KUBECONFIG", cluster.kubeconfig())
//!     .output()
//!     .unwrap();
//! assert!(out.status.success());
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::reserve_port;

/// Environment variable naming the `test-cluster` binary. Set by `cargo xtask test`.
pub const TEST_CLUSTER_ENV: &str = "OIDC_AUTHZ_TEST_CLUSTER";

/// How long [`TestCluster::start`] waits for `ready`: the program itself gives up after two
/// minutes of `/readyz` not answering ok (a few seconds on an idle machine).
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A running API server, killed (etcd with it) and its files deleted when dropped.
#[derive(Debug)]
pub struct TestCluster {
    binary: PathBuf,
    dir: PathBuf,
    kubeconfig: PathBuf,
    child: Child,
}

impl TestCluster {
    /// Starts etcd and the API server and waits until `/readyz` answers ok. Panics, with the
    /// end of their logs, if they do not; panics (never skips) when `OIDC_AUTHZ_TEST_CLUSTER`
    /// is not set.
    pub fn start() -> TestCluster {
        let binary = match std::env::var_os(TEST_CLUSTER_ENV) {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => panic!(
                "{TEST_CLUSTER_ENV} is not set: run this test with `cargo xtask test` (it builds \
                 the API server of xtask/go/test-cluster and sets {TEST_CLUSTER_ENV})"
            ),
        };
        let port = reserve_port("kube-apiserver of a test cluster");
        let etcd = reserve_port("etcd client port of a test cluster");
        let peer = reserve_port("etcd peer port of a test cluster");
        let dir = std::env::temp_dir().join(format!("oidc-authz-cluster-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(&binary)
            .args(["serve", "--dir"])
            .arg(&dir)
            .args([
                format!("--port={port}"),
                format!("--etcd-port={etcd}"),
                format!("--etcd-peer-port={peer}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(path) = line.strip_prefix("ready ") {
                    let _ = tx.send(PathBuf::from(path.trim()));
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(kubeconfig) => TestCluster {
                binary,
                dir,
                kubeconfig,
                child,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let logs = ["etcd.log", "apiserver.log"]
                    .iter()
                    .map(|name| format!("--- {name}:\n{}", tail(&dir.join(name), 40)))
                    .collect::<Vec<_>>()
                    .join("\n");
                let _ = std::fs::remove_dir_all(&dir);
                panic!("the test cluster did not become ready:\n{logs}");
            }
        }
    }

    /// The kubeconfig file of its administrator (a token of `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `kubectl` (the same program, called by that name).
    pub fn kubectl(&self) -> PathBuf {
        self.binary.with_file_name("kubectl")
    }

    /// `kubectl ARGS` against this cluster; panics with its output unless it succeeds, else
    /// returns its standard output.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = Command::new(self.kubectl())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // etcd and the API server die with it (SIGKILL as their parent dies).
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last `lines` lines of a log file, or why there are none.
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
