//! A real `redis-server` per test, with no persistence, on a port from
//! [`crate::reserve_port`]: `redis-server` cannot bind port 0 and report it, so the port is
//! reserved (below the kernel's ephemeral range, locked against every other test process) and
//! stays this server's across [`RedisServer::stop`] and [`RedisServer::restart`].
//!
//! The binary comes from `OIDC_AUTHZ_REDIS_SERVER`, which `cargo xtask test` sets after
//! installing Debian's `redis-server` if it is missing; without the variable, `redis-server` is
//! looked up on `PATH`. A test that needs Redis when there is none panics and says so: it is
//! never skipped.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::redis::RedisServer;
//! let mut redis = RedisServer::start().await;
//! // ... connect to redis.url; for fault tests:
//! redis.stop().await;
//! redis.restart().await; // same port, empty data
//! # }
//! ```

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::reserve_port;

/// Environment variable naming the `redis-server` binary. Set by `cargo xtask test`.
pub const REDIS_SERVER_ENV: &str = "OIDC_AUTHZ_REDIS_SERVER";

/// How long [`RedisServer::start`] and [`RedisServer::restart`] wait for `PING` to answer
/// `PONG`: well under a second on an idle machine, but the tests run in parallel on 2 cores.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`RedisServer::stop`] waits for the killed server to exit and its port to close.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

const LOG_TAIL_LINES: usize = 100;

/// The `redis-server` binary: `$OIDC_AUTHZ_REDIS_SERVER`, else `redis-server` on `PATH`.
/// Panics (never skips) when there is none.
pub fn redis_server_binary() -> PathBuf {
    if let Some(binary) = std::env::var_os(REDIS_SERVER_ENV).filter(|v| !v.is_empty()) {
        let binary = PathBuf::from(binary);
        if !binary.is_file() {
            panic!(
                "{REDIS_SERVER_ENV}={} is not a file: run `cargo xtask test` (it installs \
                 Debian's redis-server and sets {REDIS_SERVER_ENV})",
                binary.display()
            );
        }
        return binary;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server is not installed and {REDIS_SERVER_ENV} is not set: run `cargo \
                 xtask test` (or `cargo xtask install` once: it installs Debian's redis-server)"
            )
        })
}

type Lines = Arc<Mutex<VecDeque<String>>>;

/// A running `redis-server` on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    /// The port it listens on; kept across [`RedisServer::restart`].
    pub port: u16,
    binary: PathBuf,
    /// The server's own working directory (`--dir`): a replica's or a Sentinel's files land
    /// there, never in a directory another server would load a `dump.rdb` from. Deleted on drop.
    dir: PathBuf,
    /// A config file in `dir`, passed first (Sentinel needs one to write its state to).
    config_file: Option<PathBuf>,
    extra_args: Vec<String>,
    child: Option<Child>,
    log: Lines,
}

impl RedisServer {
    /// Starts `redis-server --port <free> --bind 127.0.0.1 --save '' --appendonly no` and waits
    /// (at most [`START_TIMEOUT`]) until it answers `PING`. Panics, with the end of its log, if
    /// it does not.
    pub async fn start() -> RedisServer {
        Self::start_with_args(&[]).await
    }

    /// Like [`RedisServer::start`], with more `redis-server` options appended (e.g.
    /// `["--requirepass", "pw"]`, or cluster mode); they are kept across restarts.
    pub async fn start_with_args(extra_args: &[&str]) -> RedisServer {
        Self::start_on(reserve_port("redis-server"), extra_args).await
    }

    /// Like [`RedisServer::start_with_args`], on `port`: take it from [`crate::reserve_port`]
    /// (any other port may be taken by another process meanwhile).
    pub async fn start_on(port: u16, extra_args: &[&str]) -> RedisServer {
        let binary = redis_server_binary();
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            dir: work_dir(port),
            binary,
            config_file: None,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
            log: Arc::new(Mutex::new(VecDeque::new())),
        };
        server.spawn().await;
        server
    }

    /// A Sentinel (`redis-server <conf> --sentinel`) monitoring the master `master_name` at
    /// 127.0.0.1:`master_port` with quorum 1, declaring it down after 500 ms without answer
    /// (so a failover takes a second or two). [`RedisServer::url`] is the Sentinel's.
    pub async fn start_sentinel(master_name: &str, master_port: u16) -> RedisServer {
        let binary = redis_server_binary();
        let port = reserve_port(&format!("redis-server --sentinel ({master_name})"));
        let dir = work_dir(port);
        let config_file = dir.join("sentinel.conf");
        let config = format!(
            "sentinel monitor {master_name} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {master_name} 500\n\
             sentinel failover-timeout {master_name} 2000\n"
        );
        std::fs::write(&config_file, config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_file.display()));
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            dir,
            binary,
            config_file: Some(config_file),
            extra_args: vec!["--sentinel".to_owned()],
            child: None,
            log: Arc::new(Mutex::new(VecDeque::new())),
        };
        server.spawn().await;
        server
    }

    /// Kills the server (as a crash would) and waits until it is gone and the port is closed.
    /// Idempotent.
    pub async fn stop(&mut self) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            if tokio::time::timeout(STOP_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                panic!(
                    "redis-server ({}) on 127.0.0.1:{} did not exit within {STOP_TIMEOUT:?} \
                     after SIGKILL.\n--- redis-server log (tail) ---\n{}",
                    self.binary.display(),
                    self.port,
                    tail(&self.log)
                );
            }
        }
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
            if Instant::now() > deadline {
                panic!(
                    "127.0.0.1:{} still accepts connections {STOP_TIMEOUT:?} after its \
                     redis-server ({}) was killed: another process listens there.\n\
                     --- redis-server log (tail) ---\n{}",
                    self.port,
                    self.binary.display(),
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server if it runs, then starts a new one on the same port (with no data:
    /// nothing is persisted) and waits until it answers `PING`.
    pub async fn restart(&mut self) {
        self.stop().await;
        let _ = std::fs::remove_file(self.dir.join("dump.rdb"));
        self.spawn().await;
    }

    /// Whether the server process runs (it may still be starting).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines the server wrote.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    async fn spawn(&mut self) {
        let mut child = Command::new(&self.binary)
            .args(self.config_file.iter())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        let readers = [
            collect(child.stdout.take(), self.log.clone()),
            collect(child.stderr.take(), self.log.clone()),
        ];

        let deadline = Instant::now() + START_TIMEOUT;
        let failure = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break format!("it exited ({status}) before PING answered PONG");
            }
            if Instant::now() > deadline {
                break format!("PING did not answer PONG within {START_TIMEOUT:?}");
            }
            if ping(self.port).await {
                self.child = Some(child);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        // Its output ends when it is gone: read to the end for the message.
        for reader in readers.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        let role = if self.extra_args.iter().any(|a| a == "--sentinel") {
            "redis-server --sentinel"
        } else {
            "redis-server"
        };
        panic!(
            "{role} ({}) did not start on 127.0.0.1:{} (reserved for {:?}): {failure}.\n\
             --- redis-server log (tail) ---\n{}",
            self.binary.display(),
            self.port,
            test_ports::reason(self.port).unwrap_or_else(|| "a port the caller chose".into()),
            tail(&self.log)
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- redis-server {} log (tail) ---\n{}\n--- end of redis-server log ---",
                self.url,
                tail(&self.log)
            );
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        // The process may still be writing for a moment after the kill; a leftover directory
        // in the temp dir is harmless (its name is unique).
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new, empty working directory for the server on `port`.
fn work_dir(port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oidc-authz-redis-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// `PING` over a plain TCP connection: `true` on `+PONG` (or `-NOAUTH` when the server
/// requires a password: it is up all the same).
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).await.ok()?;
        (line.starts_with("+PONG") || line.starts_with("-NOAUTH")).then_some(())
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// Reads `stream` line by line into `out` until it closes, in a task that ends then.
fn collect(
    stream: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
    out: Lines,
) -> Option<tokio::task::JoinHandle<()>> {
    let stream = stream?;
    Some(tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            if out.len() == LOG_TAIL_LINES {
                out.pop_front();
            }
            out.push_back(line);
        }
    }))
}

fn tail(lines: &Lines) -> String {
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
    lines.iter().cloned().collect::<Vec<_>>().join("\n")
}
