//! Shared helpers: start the real `ext-authz-adapter` binary against a real
//! provider, and a browser-like HTTP client.
//!
//! Adapters listen on `127.0.0.1:0` unless a test needs the port before the
//! start (a redirect URI registered at the provider) or restarts the adapter
//! on the same port: the process binds a free port itself and logs where it
//! listens, and [`AdapterProcess::bound`] reads that from its log, so no
//! other process can take the port between choosing and binding it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use test_support::{ClientSpec, OidcProvider, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub const CLIENT_ID: &str = "nginx";
pub const CLIENT_SECRET: &str = "nginx-client-secret";
pub const COOKIE_SECRET: &str = "dGVzdC1jb29raWUtc2VjcmV0LW9mLTMyLWJ5dGVzISE="; // 32 bytes, base64
pub const HOST: &str = "nginx.example.com";

/// The seed's Deployment args (DESIGN.md §4), minus issuer, address and secret.
pub const SEED_ARGS: &[&str] = &[
    "--provider=oidc",
    "--cookie-secure=false",
    "--cookie-samesite=lax",
    "--cookie-refresh=1h",
    "--cookie-expire=4h",
    "--cookie-name=auth",
    "--set-authorization-header=true",
    "--email-domain=*",
    "--upstream=static://200",
    "--skip-provider-button=true",
    "--whitelist-domain=*.example.com",
    "--cookie-domain=.example.com",
];

/// The adapter's command-line arguments: the seed's args, issuer `issuer`,
/// the test cookie secret and client id, `defaults`, then `extra`.
/// Repeatable flags append (as in oauth2-proxy), so a flag in `extra`
/// replaces the default of the same name instead of adding to it.
pub fn seed_args(
    issuer: &str,
    defaults: impl IntoIterator<Item = String>,
    extra: &[&str],
) -> Vec<String> {
    let base = SEED_ARGS
        .iter()
        .map(|a| (*a).to_owned())
        .chain([
            format!("--oidc-issuer-url={issuer}"),
            format!("--cookie-secret={COOKIE_SECRET}"),
            format!("--client-id={CLIENT_ID}"),
        ])
        .chain(defaults);
    overridden(base, extra)
}

/// `base`, without the flags `extra` names, then `extra`: repeatable flags append (as in
/// oauth2-proxy), so a flag given again replaces the earlier ones instead of adding to them.
pub fn overridden(base: impl IntoIterator<Item = String>, extra: &[&str]) -> Vec<String> {
    let flag = |a: &str| a.split('=').next().unwrap_or(a).to_owned();
    let own: Vec<String> = extra.iter().map(|a| flag(a)).collect();
    base.into_iter()
        .filter(|a| !own.contains(&flag(a)))
        .chain(extra.iter().map(|a| (*a).to_owned()))
        .collect()
}

/// How long a test waits for a fact about an adapter process (it logged
/// where it listens, `/ready` answers 200). Generous: the machine's cores are
/// shared with other tests and builds, and the wait ends as soon as the fact holds.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// Lines of an adapter's log shown in failure messages.
const TAIL_LINES: usize = 200;

/// The log (stderr) of an adapter process: every line, in order, as written
/// (without ANSI colours, see [`AdapterProcess::spawn`]).
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, line: String) {
        self.lock().push(line);
    }

    /// The number of lines so far: a mark for [`Log::since`] and [`Log::find_since`].
    pub fn mark(&self) -> usize {
        self.lock().len()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().clone()
    }

    /// The lines after `mark`, joined.
    pub fn since(&self, mark: usize) -> String {
        self.lock().get(mark..).unwrap_or_default().join("\n")
    }

    /// The last lines, joined (for failure messages).
    pub fn tail(&self) -> String {
        let lines = self.lock();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    /// Whether any line so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.lock().iter().any(|l| l.contains(needle))
    }

    /// The first line after `mark` that contains every needle, if there is one yet.
    pub fn find_since(&self, mark: usize, needles: &[&str]) -> Option<String> {
        self.lock()
            .get(mark..)
            .unwrap_or_default()
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .cloned()
    }

    /// Waits (at most `within`) for a line after `mark` that contains every needle.
    pub async fn wait_since(
        &self,
        mark: usize,
        needles: &[&str],
        within: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.find_since(mark, needles) {
                return Some(line);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Where an adapter process listens, as it logged it after binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// `--http-address`: ext_authz, `/oauth2/*`, `/ping`, `/ready`.
    pub http: SocketAddr,
    /// `--grpc-address`, when given.
    pub grpc: Option<SocketAddr>,
    /// `--metrics-address`, when given.
    pub metrics: Option<SocketAddr>,
}

/// One of the adapter's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Http,
    Grpc,
    Metrics,
}

/// The server and address a start-up line of the adapter (`src/main.rs`) reports:
/// `listening`, `gRPC ext_authz listening` or `metrics at /metrics`, each with
/// `address=<the bound address>`; in the text format without colours
/// (`<time>  INFO <target>: <message> address=<addr> ...`) or in the JSON format.
fn parse_listening(line: &str) -> Option<(Server, SocketAddr)> {
    let (message, address) = if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = &v["fields"];
        (
            fields["message"].as_str()?.to_owned(),
            fields["address"].as_str()?.to_owned(),
        )
    } else {
        let (_, rest) = line.split_once(": ")?;
        let (message, fields) = rest.split_once(" address=")?;
        (
            message.to_owned(),
            fields.split_whitespace().next()?.to_owned(),
        )
    };
    let server = match message.as_str() {
        "listening" => Server::Http,
        "gRPC ext_authz listening" => Server::Grpc,
        "metrics at /metrics" => Server::Metrics,
        _ => return None,
    };
    Some((server, address.parse().ok()?))
}

/// Whether `args` set `flag` (`--flag=value` or `--flag value`).
fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|v| v.starts_with('=')))
}

/// An `ext-authz-adapter` process: its log is collected, where it listens is
/// read from the log, and it is killed when dropped (printing the end of its
/// log if the test failed).
pub struct AdapterProcess {
    /// A name for messages.
    pub name: String,
    /// Its command-line arguments.
    pub args: Vec<String>,
    child: Child,
    log: Log,
    /// The first line of `log` that is this process's (a log can outlive a process).
    first_line: usize,
    reader: Option<JoinHandle<()>>,
}

impl AdapterProcess {
    /// Spawns the binary with `args` and `env` (the client secret goes in
    /// `OAUTH2_PROXY_CLIENT_SECRET`, as in the seed's Deployment), with
    /// `RUST_LOG=info` unless `env` sets it and `NO_COLOR`, since the tests read
    /// its log. Appends its stderr to `log` (a new one, or the log of the process
    /// it replaces). Does not wait.
    pub fn spawn(name: &str, args: Vec<String>, env: &[(&str, &str)], log: Log) -> AdapterProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"));
        command
            .args(&args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn ext-authz-adapter {name}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let first_line = log.mark();
        let sink = log.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.push(line);
            }
        });
        AdapterProcess {
            name: name.to_owned(),
            args,
            child,
            log,
            first_line,
            reader: Some(reader),
        }
    }

    /// Its log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Panics, with the end of its log, if the process has exited while the
    /// test was waiting for `awaited`.
    fn assert_running(&mut self, awaited: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "ext-authz-adapter {} exited ({status}) while the test waited for {awaited}; \
                 args {:?}\n--- its log ---\n{}",
                self.name,
                self.args,
                self.log.tail()
            );
        }
    }

    /// Waits (at most [`START_DEADLINE`]) until the process has logged where it
    /// listens: HTTP, and gRPC and metrics when its args ask for them. Panics
    /// with the end of its log if it exits first or the deadline passes.
    pub async fn bound(&mut self) -> Bound {
        let want_grpc = has_flag(&self.args, "--grpc-address");
        let want_metrics = has_flag(&self.args, "--metrics-address");
        let mut awaited =
            String::from("the log lines that say where it listens (\"listening address=\"");
        if want_grpc {
            awaited.push_str(", \"gRPC ext_authz listening address=\"");
        }
        if want_metrics {
            awaited.push_str(", \"metrics at /metrics address=\"");
        }
        awaited.push(')');
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let (mut http, mut grpc, mut metrics) = (None, None, None);
            for line in self.log.lines().iter().skip(self.first_line) {
                match parse_listening(line) {
                    Some((Server::Http, a)) => http = Some(a),
                    Some((Server::Grpc, a)) => grpc = Some(a),
                    Some((Server::Metrics, a)) => metrics = Some(a),
                    None => {}
                }
            }
            if let Some(http) = http
                && (grpc.is_some() || !want_grpc)
                && (metrics.is_some() || !want_metrics)
            {
                return Bound {
                    http,
                    grpc,
                    metrics,
                };
            }
            self.assert_running(&awaited);
            assert!(
                Instant::now() < deadline,
                "ext-authz-adapter {}: no {awaited} within {START_DEADLINE:?}; args {:?}\n\
                 --- its log ---\n{}",
                self.name,
                self.args,
                self.log.tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (at most [`START_DEADLINE`]) until `GET http://<http><path>`
    /// answers 200 (`/ping`: it serves; `/ready`: discovery is done). Panics with
    /// the end of its log if it exits first or the deadline passes.
    pub async fn wait_for(&mut self, http: SocketAddr, path: &str) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let url = format!("http://{http}{path}");
        let awaited = format!("GET {url} to answer 200");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let last = match client.get(&url).send().await {
                Ok(r) if r.status() == reqwest::StatusCode::OK => return,
                Ok(r) => format!("last answer {}", r.status()),
                Err(e) => format!("last error: {e}"),
            };
            self.assert_running(&awaited);
            assert!(
                Instant::now() < deadline,
                "ext-authz-adapter {}: expected {awaited} within {START_DEADLINE:?} ({last}); \
                 args {:?}\n--- its log ---\n{}",
                self.name,
                self.args,
                self.log.tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends it `signal` (`TERM`, `INT`: what Kubernetes and Ctrl-C send), with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the process still runs");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// Waits at most `within` for the process to exit by itself; returns its status, or
    /// `None` if it still runs then. Its whole log is read afterwards.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .ok()?
            .expect("wait for the adapter");
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(START_DEADLINE, reader).await;
        }
        Some(status)
    }

    /// Kills the process (SIGKILL, as a crashed pod) and waits until it is gone
    /// and its whole log is read: afterwards [`AdapterProcess::log`] is complete
    /// and its ports are free.
    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let exited = tokio::time::timeout(START_DEADLINE, self.child.wait()).await;
        assert!(
            exited.is_ok(),
            "ext-authz-adapter {} still runs {START_DEADLINE:?} after SIGKILL",
            self.name
        );
        if let Some(reader) = self.reader.take() {
            // Its stderr closes with the process: the reader ends at EOF.
            let _ = tokio::time::timeout(START_DEADLINE, reader).await;
        }
    }
}

impl Drop for AdapterProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- ext-authz-adapter {} log (tail) ---\n{}\n--- end of its log ---",
                self.name,
                self.log.tail()
            );
        }
        // Wait until the process is gone: a test may start the next adapter on the same port.
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A running adapter with the seed's args, killed on drop.
pub struct Adapter {
    /// The port it listens on: the one asked for, or the one it chose for port 0.
    pub port: u16,
    /// `http://nginx.example.com:<port>`.
    pub base: String,
    /// Where its servers listen.
    pub bound: Bound,
    process: AdapterProcess,
}

impl Adapter {
    /// Starts the binary with the seed's args plus `extra` for `issuer`, the
    /// client secret from the environment variable, on `127.0.0.1:<port>`, and
    /// waits for `/ready`.
    ///
    /// `port` 0 lets the adapter bind a free port itself ([`Adapter::port`] says
    /// which). Pass a port from [`port`] only when something must name the port
    /// before the start (the node provider's exact redirect URI) or the test
    /// restarts the adapter on the same port. `--grpc-address=127.0.0.1:0` and
    /// `--metrics-address=127.0.0.1:0` in `extra` work the same way
    /// ([`Adapter::bound`]).
    pub async fn start(issuer: &str, port: u16, extra: &[&str]) -> Adapter {
        let mut adapter = Self::spawn(issuer, port, extra).await;
        adapter.wait_ready().await;
        adapter
    }

    /// Like [`Adapter::start`], but waits only until it listens, not for `/ready`.
    pub async fn spawn(issuer: &str, port: u16, extra: &[&str]) -> Adapter {
        Self::spawn_with_secret(issuer, CLIENT_SECRET, port, extra).await
    }

    /// Like [`Adapter::spawn`], with another client secret in `OAUTH2_PROXY_CLIENT_SECRET`
    /// (Keycloak's; never in the args, which failure messages print).
    pub async fn spawn_with_secret(
        issuer: &str,
        client_secret: &str,
        port: u16,
        extra: &[&str],
    ) -> Adapter {
        let args = seed_args(issuer, [format!("--http-address=127.0.0.1:{port}")], extra);
        let name = if port == 0 {
            "(port 0)".to_owned()
        } else {
            format!("on port {port}")
        };
        let mut process = AdapterProcess::spawn(
            &name,
            args,
            &[("OAUTH2_PROXY_CLIENT_SECRET", client_secret)],
            Log::default(),
        );
        let bound = process.bound().await;
        assert!(
            port == 0 || bound.http.port() == port,
            "asked to listen on port {port}, the adapter reports {}",
            bound.http
        );
        process.name = format!("on {}", bound.http);
        Adapter {
            port: bound.http.port(),
            base: format!("http://{HOST}:{}", bound.http.port()),
            bound,
            process,
        }
    }

    /// Waits (at most [`START_DEADLINE`]) until `/ready` answers 200.
    pub async fn wait_ready(&mut self) {
        self.process.wait_for(self.bound.http, "/ready").await;
    }

    /// Its log.
    pub fn log(&self) -> &Log {
        self.process.log()
    }

    /// Kills it and waits until it is gone and its log is complete.
    pub async fn stop(&mut self) {
        self.process.stop().await;
    }
}

/// A browser-like client: cookie jar, no automatic redirects, and
/// nginx.example.com / app.example.com resolved to 127.0.0.1.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl std::ops::Deref for Browser {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.http
    }
}

impl Browser {
    /// The value of cookie `name` the jar would send to `base`.
    pub fn cookie(&self, base: &str, name: &str) -> Option<String> {
        let url: url::Url = base.parse().ok()?;
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .map(str::to_owned)
    }

    /// Names of every cookie the jar would send to `base`.
    pub fn cookie_names(&self, base: &str) -> Vec<String> {
        let url: url::Url = base.parse().expect("url");
        self.jar
            .cookies(&url)
            .map(|h| {
                h.to_str()
                    .unwrap_or_default()
                    .split("; ")
                    .filter_map(|p| p.split('=').next())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn client(port: u16) -> Browser {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let jar = Arc::new(Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .resolve(HOST, addr)
        .resolve("app.example.com", addr)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    Browser { http, jar }
}

/// A client without cookie jar, for hand-made Cookie headers.
pub fn raw_client(port: u16) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(HOST, ([127, 0, 0, 1], port).into())
        .build()
        .expect("client")
}

/// The provider's client registration matching an adapter on `port`.
pub fn client_spec(port: u16) -> ClientSpec {
    ClientSpec::new(
        CLIENT_ID,
        CLIENT_SECRET,
        &format!("http://{HOST}:{port}/oauth2/callback"),
    )
}

/// Starts a provider with the `nginx` client registered for `port`.
pub async fn provider_for(port: u16) -> OidcProvider {
    OidcProvider::start(vec![client_spec(port)]).await
}

/// Starts a provider for tests that never finish a login: the `nginx` client is
/// registered (the adapter's authorization requests name it), with a callback
/// URL no adapter serves, so the adapter can listen on port 0.
pub async fn provider_without_logins() -> OidcProvider {
    OidcProvider::start(vec![ClientSpec::new(
        CLIENT_ID,
        CLIENT_SECRET,
        &format!("http://{HOST}/no-login-in-this-test"),
    )])
    .await
}

pub fn location(h: &HeaderMap) -> String {
    h.get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// Asserts that `authorize`, where a navigation without a session was sent,
/// is at the provider `issuer` with the callback on `port` as `redirect_uri`.
pub fn assert_authorize_url(authorize: &str, issuer: &str, port: u16) {
    assert!(authorize.starts_with(issuer), "{authorize}");
    let redirect_uri = format!("redirect_uri=http%3A%2F%2F{HOST}%3A{port}%2Foauth2%2Fcallback");
    assert!(authorize.contains(&redirect_uri), "{authorize}");
}

/// Asserts that a login callback's Set-Cookie headers set the session cookie
/// (for the seed's `.example.com` domain) and clear the login-flow cookie in
/// the same response.
pub fn assert_session_started(cookies: &[String]) {
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("auth=") && c.contains("Domain=.example.com")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("auth_csrf_") && c.contains("Max-Age=0")),
        "the flow cookie is cleared in the same response: {cookies:?}"
    );
}

/// Full login through the adapter: GET `start_path` (a protected path or
/// /oauth2/start), follow to the provider's login form, log in, and GET the
/// callback. Returns the callback response's Location.
pub async fn login(
    client: &reqwest::Client,
    adapter: &Adapter,
    start_path: &str,
    user: &str,
) -> String {
    let callback = begin_login(client, adapter, start_path, user).await;
    finish_login(client, &callback).await
}

/// From start to the provider's redirect back: returns the callback URL (not yet visited).
pub async fn begin_login(
    client: &reqwest::Client,
    adapter: &Adapter,
    start_path: &str,
    user: &str,
) -> String {
    let r = client
        .get(format!("{}{start_path}", adapter.base))
        .header("accept", "text/html")
        .send()
        .await
        .expect("start");
    assert_eq!(
        r.status(),
        302,
        "navigation without a session is sent to the provider"
    );
    login_at_provider(client, &location(r.headers()), user).await
}

/// Logs `user` in on the provider's login page, starting from `authorize`
/// (where the adapter redirected to); returns the callback URL the provider
/// sends the browser back to (not yet visited).
pub async fn login_at_provider(client: &reqwest::Client, authorize: &str, user: &str) -> String {
    test_support::login_at_provider(client, authorize, user, "any-password").await
}

/// Visits the callback; asserts it redirects and returns the Location.
pub async fn finish_login(client: &reqwest::Client, callback: &str) -> String {
    let r = client.get(callback).send().await.expect("callback");
    let status = r.status();
    let loc = location(r.headers());
    let body = r.text().await.unwrap_or_default();
    assert_eq!(
        status, 302,
        "callback should redirect after login; body: {body}"
    );
    loc
}

/// Ext_authz check of `path` as Envoy would send it (GET with the browser's cookies).
pub async fn check(client: &reqwest::Client, adapter: &Adapter, path: &str) -> reqwest::Response {
    client
        .get(format!("{}{path}", adapter.base))
        .header("accept", "text/html")
        .send()
        .await
        .expect("check")
}

/// A port reserved for an adapter that must be named before the adapter starts
/// or that a test restarts on the same port. Everything else starts adapters on
/// port 0 ([`Adapter::start`]).
pub fn port() -> u16 {
    free_port()
}

/// A port reserved for an adapter whose login a test finishes at the node
/// provider: the provider matches redirect URIs exactly and must be started
/// (with [`provider_for`] or [`client_spec`]) before the adapter, whose issuer
/// it is, so the callback URL names the port before the adapter can bind it.
pub fn callback_port() -> u16 {
    port()
}

/// One request the upstream app received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The method.
    pub method: String,
    /// The request target as the app got it (Envoy may have normalised it).
    pub target: String,
    /// Header name (lower case) -> values.
    pub headers: std::collections::BTreeMap<String, Vec<String>>,
}

impl std::fmt::Display for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.target)
    }
}

/// What the upstream app received, in order.
pub type Seen = Arc<Mutex<Vec<Received>>>;

/// `METHOD target` of every request in `seen`, for failure messages.
pub fn requests(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// An upstream app on a port of its own that records every request and answers 200 "app":
/// what reaches it went through the gate.
pub async fn recording_app() -> (SocketAddr, Seen) {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let mut headers = std::collections::BTreeMap::<String, Vec<String>>::new();
                    for (name, value) in req.headers() {
                        headers
                            .entry(name.as_str().to_owned())
                            .or_default()
                            .push(value.to_str().unwrap_or("<binary>").to_owned());
                    }
                    log.lock().unwrap().push(Received {
                        method: req.method().to_string(),
                        target: req.uri().to_string(),
                        headers,
                    });
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"app"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// An engine in this process, configured like the adapter binary with the seed's args plus
/// `extra`, and discovered at `issuer`.
pub async fn engine(issuer: &str, extra: &[&str]) -> oidc_core::Engine {
    use clap::Parser as _;
    let args = seed_args(issuer, [format!("--client-secret={CLIENT_SECRET}")], extra);
    let config = ext_authz_adapter::cli::Cli::parse_from(
        std::iter::once("ext-authz-adapter".to_owned()).chain(args),
    )
    .to_config()
    .unwrap();
    let engine = oidc_core::Engine::new(config).unwrap();
    engine.discover().await.unwrap();
    engine
}
