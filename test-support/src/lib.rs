//! Test support: starts the real components for the integration tests, and drives a login at
//! them like a browser would.
//!
//! The node `oidc-provider` is installed by `cargo xtask install` (and `cargo xtask test`) into
//! `$XDG_CACHE_HOME/oidc-authz/node-oidc-provider-<version>/` (default `~/.cache/...`); its
//! version is pinned in `test-support/assets/package.json` only. `cargo xtask test` sets
//! `OIDC_AUTHZ_NODE_PROVIDER_DIR` to that directory. A test that needs the provider when it is
//! not installed panics and says so: it is never skipped.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::{ClientSpec, OidcProvider, free_port, http_client, login_at_provider};
//! let callback = format!("http://127.0.0.1:{}/oauth2/callback", free_port());
//! let provider = OidcProvider::start(vec![ClientSpec::new("app", "secret", &callback)]).await;
//! // ... point the relying party at provider.issuer, GET its start URL, then:
//! let client = http_client();
//! let location = login_at_provider(&client, "<authorize url>", "alice", "any password").await;
//! # }
//! ```

pub mod browser;
pub mod envoy;
mod form_walk;
pub mod html;
pub mod keycloak;
pub mod redis;
pub mod rogue;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

use crate::form_walk::{Outcome, Step, form_action, form_fields, walk};

/// Environment variable naming the directory where `oidc-provider` is installed (the one that
/// holds `node_modules/oidc-provider`). Set by `cargo xtask test`.
pub const NODE_PROVIDER_DIR_ENV: &str = "OIDC_AUTHZ_NODE_PROVIDER_DIR";

/// How long [`OidcProvider::start`] waits for the provider's `READY` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

const PACKAGE_JSON: &str = include_str!("../assets/package.json");
const PROVIDER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/provider.mjs");
const STDERR_TAIL_LINES: usize = 200;

/// The `oidc-provider` version pinned in `test-support/assets/package.json`.
pub fn node_provider_version() -> String {
    let manifest: Value =
        serde_json::from_str(PACKAGE_JSON).expect("test-support/assets/package.json is JSON");
    manifest["dependencies"]["oidc-provider"]
        .as_str()
        .expect("test-support/assets/package.json pins dependencies.oidc-provider")
        .to_owned()
}

/// The cache directory of this project's test components: `$XDG_CACHE_HOME/oidc-authz`, or
/// `~/.cache/oidc-authz`.
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .expect("neither XDG_CACHE_HOME nor HOME is set");
    base.join("oidc-authz")
}

/// Where the node provider is installed: `$OIDC_AUTHZ_NODE_PROVIDER_DIR`, or the default cache
/// path for the pinned version.
pub fn node_provider_dir() -> PathBuf {
    match std::env::var_os(NODE_PROVIDER_DIR_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => cache_root().join(format!("node-oidc-provider-{}", node_provider_version())),
    }
}

fn assert_node_provider_installed(dir: &Path) {
    let manifest = dir.join("node_modules/oidc-provider/package.json");
    if !manifest.is_file() {
        panic!(
            "node oidc-provider {} is not installed (no {}): run `cargo xtask test` \
             (or `cargo xtask install` once, then cargo test)",
            node_provider_version(),
            manifest.display()
        );
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with client_id and client_secret.
    #[default]
    ClientSecretBasic,
    /// client_id and client_secret in the form body.
    ClientSecretPost,
}

impl AuthMethod {
    /// The `token_endpoint_auth_method` metadata value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }
}

/// A client (relying party) registered at the test provider.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    /// client_id.
    pub client_id: String,
    /// client_secret.
    pub client_secret: String,
    /// Allowed redirect URIs (exact match).
    pub redirect_uris: Vec<String>,
    /// Allowed post-logout redirect URIs (RP-initiated logout).
    pub post_logout_redirect_uris: Vec<String>,
    /// Token endpoint authentication method.
    pub auth_method: AuthMethod,
    /// Any other client metadata for oidc-provider (for example
    /// `"id_token_signed_response_alg": "ES256"`); overrides the fields above.
    pub extra_metadata: serde_json::Map<String, Value>,
}

impl ClientSpec {
    /// A client_secret_basic client with one redirect URI and no post-logout redirect URI.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        ClientSpec {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            ..ClientSpec::default()
        }
    }

    /// A service client (client_secret_basic) that may only use the client_credentials grant
    /// and gets JWT access tokens (typ `at+jwt`, RS256) with `aud` = `audience`, `sub` =
    /// `client_id` = `client_id` and `iss` = the provider's issuer: the bearer tokens a
    /// resource server (the relying party registered as `audience`) is sent. See
    /// `assets/provider.mjs`, "JWT access tokens".
    pub fn jwt_service(client_id: &str, client_secret: &str, audience: &str) -> Self {
        let mut extra_metadata = serde_json::Map::new();
        extra_metadata.insert("jwt_access_token_audience".to_owned(), json!(audience));
        ClientSpec {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            extra_metadata,
            ..ClientSpec::default()
        }
    }

    fn to_json(&self) -> Value {
        let mut client = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
            "token_endpoint_auth_method": self.auth_method.as_str(),
        });
        if let Value::Object(map) = &mut client {
            map.extend(self.extra_metadata.clone());
        }
        client
    }
}

/// Everything the test provider can be started with.
#[derive(Debug, Clone, Default)]
pub struct ProviderConfig {
    /// Registered clients.
    pub clients: Vec<ClientSpec>,
    /// Port to listen on (127.0.0.1); 0 (the default) picks a free one.
    pub port: u16,
    /// Lifetimes in seconds by oidc-provider model name: `AccessToken`, `IdToken`,
    /// `RefreshToken`, `AuthorizationCode`, `Session`, `Grant`, `Interaction`. Unset ones keep
    /// oidc-provider's defaults (1 hour for access and ID tokens).
    pub ttl: BTreeMap<String, u64>,
}

type Lines = Arc<Mutex<VecDeque<String>>>;

/// A running node `oidc-provider`, killed when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub issuer: String,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    child: Child,
    output: Lines,
}

impl OidcProvider {
    /// Starts the provider with these clients on a free port; see [`OidcProvider::start_with`].
    pub async fn start(clients: Vec<ClientSpec>) -> OidcProvider {
        Self::start_with(ProviderConfig {
            clients,
            ..ProviderConfig::default()
        })
        .await
    }

    /// Starts the provider and waits (at most [`START_TIMEOUT`]) until it serves requests.
    ///
    /// Panics if it is not installed (run `cargo xtask test`), or does not start; the panic
    /// message carries the end of the provider's stderr.
    pub async fn start_with(config: ProviderConfig) -> OidcProvider {
        let dir = node_provider_dir();
        assert_node_provider_installed(&dir);

        let config_json = json!({
            "port": config.port,
            "clients": config.clients.iter().map(ClientSpec::to_json).collect::<Vec<_>>(),
            "ttl": if config.ttl.is_empty() { Value::Null } else { json!(config.ttl) },
            "exit_on_stdin_close": true,
        });

        let mut child = Command::new("node")
            .arg(PROVIDER_SCRIPT)
            .arg(config_json.to_string())
            .env(NODE_PROVIDER_DIR_ENV, &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `node {PROVIDER_SCRIPT}`: {e} (is node installed? `cargo xtask test` checks)")
            });

        let output: Lines = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_task = tokio::spawn(collect_lines(stderr, output.clone(), None));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(collect_lines(stdout, output.clone(), Some(ready_tx)));

        let failure = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(issuer)) => match parse_issuer(&issuer) {
                Some(port) => {
                    return OidcProvider {
                        issuer,
                        port,
                        child,
                        output,
                    };
                }
                None => format!("it printed a bad READY line: {issuer:?}"),
            },
            Ok(Err(_)) => "it closed stdout without printing READY".to_owned(),
            Err(_) => format!("no READY line within {START_TIMEOUT:?}"),
        };
        // Give it a moment to finish writing its error, then make sure it is gone.
        let status = match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
                "killed".to_owned()
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), stderr_task).await;
        panic!(
            "node oidc-provider did not start: {failure} (exit: {status}).\n\
             --- provider output (tail) ---\n{}",
            tail(&output)
        );
    }

    /// `issuer` + `path` (path starting with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    /// The last lines the provider wrote (its request log, warnings and errors).
    pub fn output_tail(&self) -> String {
        tail(&self.output)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- node oidc-provider {} output (tail) ---\n{}\n--- end of provider output ---",
                self.issuer,
                tail(&self.output)
            );
        }
        let _ = self.child.start_kill();
    }
}

fn parse_issuer(issuer: &str) -> Option<u16> {
    let url = Url::parse(issuer).ok()?;
    (url.host_str() == Some("127.0.0.1")).then_some(())?;
    url.port()
}

fn tail(lines: &Lines) -> String {
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
    lines.iter().cloned().collect::<Vec<_>>().join("\n")
}

async fn collect_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    out: Lines,
    mut ready: Option<tokio::sync::oneshot::Sender<String>>,
) {
    let mut reader = BufReader::new(stream).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if let Some(issuer) = line.strip_prefix("READY ")
            && let Some(tx) = ready.take()
        {
            let _ = tx.send(issuer.trim().to_owned());
        }
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        if out.len() == STDERR_TAIL_LINES {
            out.pop_front();
        }
        out.push_back(line);
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released: another process may take it first,
/// which is unlikely but possible). Never the same port twice in one test process: the kernel
/// may hand a port that one test has picked but not bound yet to a parallel test's `bind(0)`.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

/// A free port on 127.0.0.1 **below the kernel's ephemeral range**, which [`free_port`] (and
/// every other `bind(0)`) never hands out: for a server a test stops and whose port must not
/// be taken over by a server of a parallel test (a Redis master in a failover test). Falls back
/// to [`free_port`] when the range starts too low to leave room.
pub fn port_below_ephemeral_range() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (first, last) = (10_000u16, low.saturating_sub(1));
    if last <= first {
        return free_port();
    }
    let span = u32::from(last - first);
    let start = std::process::id() % span;
    (0..span)
        .map(|i| first + u16::try_from((start + i) % span).unwrap_or(0))
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .unwrap_or_else(free_port)
}

/// A client like a browser's for [`login_at_provider`]: a cookie jar, no automatic redirects.
pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default rustls provider in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}

/// The node provider, for [`form_walk::walk`].
const NODE_PROVIDER: form_walk::Site = form_walk::Site {
    name: "the provider",
    max_steps: 20,
    send_hint: |_| String::new(),
    page_hint: |_| "",
};

/// Logs in at the provider the way a browser would, with a client from [`http_client`].
///
/// GETs `authorize_url`, follows redirects on its origin (the provider), fills in and posts the
/// login form with `username` and `password` (and posts a consent form, should one appear),
/// and returns the first redirect `Location` that leaves the provider's origin: normally the
/// relying party's callback URL with `code`, `state` and `iss` (or with `error`). Panics with
/// the status, URL and an excerpt of the page on anything else.
///
/// If the client's cookie jar already holds a provider session, no login form is shown and the
/// existing session's user is used: take a fresh [`http_client`] for another user.
pub async fn login_at_provider(
    client: &reqwest::Client,
    authorize_url: &str,
    username: &str,
    password: &str,
) -> String {
    let what = "login at provider";
    let mut logins = 0;
    let mut consents = 0;
    let outcome = walk(
        client,
        &NODE_PROVIDER,
        what,
        authorize_url,
        None,
        |page, body| {
            let forms = html::forms(body);
            if let Some(form) = forms
                .iter()
                .find(|f| f.method == "post" && f.has_input("login") && f.has_input("password"))
            {
                logins += 1;
                if logins > 1 {
                    panic!("{what}: the login form was shown again at {page} (login rejected?)");
                }
                let mut fields = form_fields(form);
                for (name, value) in &mut fields {
                    match name.as_str() {
                        "login" => *value = username.to_owned(),
                        "password" => *value = password.to_owned(),
                        _ => {}
                    }
                }
                return Some(Step::Post(form_action(what, page, form), fields));
            }
            if let Some(form) = forms
                .iter()
                .find(|f| f.method == "post" && f.value("prompt") == Some("consent"))
            {
                consents += 1;
                if consents > 2 {
                    panic!("{what}: the consent form keeps coming back at {page}");
                }
                return Some(Step::Post(form_action(what, page, form), form_fields(form)));
            }
            None
        },
    )
    .await;
    match outcome {
        Outcome::Left(url) => url.into(),
        Outcome::Page { url, body } => panic!(
            "{what}: {url} shows a page without a login or consent form: {}",
            html::text_excerpt(&body, 1500)
        ),
    }
}

/// RP-initiated logout at the provider with a client from [`http_client`]: GETs
/// `end_session_url` (the provider's `end_session_endpoint` with the RP's parameters), confirms
/// the "sign out?" form with "yes", and returns the first redirect `Location` that leaves the
/// provider (the `post_logout_redirect_uri`), or, when there is none, the URL of the provider's
/// final page (its "Sign-out Success" page).
pub async fn logout_at_provider(client: &reqwest::Client, end_session_url: &str) -> String {
    form_walk::logout(
        client,
        &NODE_PROVIDER,
        "logout at provider",
        end_session_url,
        "xsrf",
        &[("logout", "yes")],
    )
    .await
}
