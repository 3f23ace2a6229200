//! Test support: starts the real components for the integration tests, and drives a login at
//! them like a browser would.
//!
//! The node `oidc-provider` is installed by `cargo xtask install` (and `cargo xtask test`) into
//! `$XDG_CACHE_HOME/oidc-authz/node-oidc-provider-<version>/` (default `~/.cache/...`); its
//! version is pinned in `test-support/assets/package.json` only. `cargo xtask test` sets
//! `OIDC_AUTHZ_NODE_PROVIDER_DIR` to that directory, and `OIDC_AUTHZ_NODE` to a Node.js that
//! oidc-provider supports (an LTS release, 22 or newer: the machine's own, or the one pinned
//! as `nodeRuntime` in that package.json, installed from npm). A test that needs the provider
//! when it is not installed panics and says so: it is never skipped.
//!
//! Ports: servers that can bind port 0 do so and report the port they got (the node provider,
//! Envoy, chromedriver, the rogue provider). For the others (Redis, an adapter a test restarts
//! on the same port, a callback URL) [`reserve_port`] hands out a port below the kernel's
//! ephemeral range that no other process of this workspace gets during the run (see the
//! `test-ports` crate for why).
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::{ClientSpec, OidcProvider, http_client, login_at_provider, reserve_port};
//! let callback = format!("http://127.0.0.1:{}/oauth2/callback", reserve_port("callback of app"));
//! let provider = OidcProvider::start(vec![ClientSpec::new("app", "secret", &callback)]).await;
//! // ... point the relying party at provider.issuer, GET its start URL, then:
//! let client = http_client();
//! let location = login_at_provider(&client, "<authorize url>", "alice", "any password").await;
//! # }
//! ```

pub mod browser;
pub mod cluster;
pub mod envoy;
mod form_walk;
pub mod html;
pub mod import_graph;
pub mod keycloak;
pub mod redis;
pub mod rogue;
pub mod tls;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

use crate::form_walk::{Outcome, Step, form_action, form_fields, walk};
pub use crate::tls::TestCa;

/// Environment variable naming the directory where `oidc-provider` is installed (the one that
/// holds `node_modules/oidc-provider`). Set by `cargo xtask test`.
pub const NODE_PROVIDER_DIR_ENV: &str = "OIDC_AUTHZ_NODE_PROVIDER_DIR";

/// Environment variable naming the `node` binary that runs the provider. Set by `cargo xtask
/// test` to a Node.js that oidc-provider supports (`cargo xtask install` prints its path).
pub const NODE_ENV: &str = "OIDC_AUTHZ_NODE";

/// How long [`OidcProvider::start`] waits for the provider's `READY` line: it takes about a
/// second on an idle machine, much more while the other tests (and cargo) load both cores.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The Node.js version pinned as `nodeRuntime` in `test-support/assets/package.json`: what
/// `cargo xtask install` installs from npm when the machine's node is older than 22 or not an
/// LTS release (oidc-provider warns "Unsupported runtime" on those).
pub fn node_runtime_version() -> String {
    let manifest: Value =
        serde_json::from_str(PACKAGE_JSON).expect("test-support/assets/package.json is JSON");
    manifest["nodeRuntime"]
        .as_str()
        .expect("test-support/assets/package.json pins nodeRuntime")
        .to_owned()
}

/// The `node` that runs the provider: `$OIDC_AUTHZ_NODE`; else the pinned Node.js in the cache
/// (`<cache>/node-<nodeRuntime>/node_modules/node-linux-<arch>/bin/node`, where `cargo xtask
/// install` puts it); else `node` on `PATH`. Panics, naming `cargo xtask test`, when there is
/// none.
pub fn node_binary() -> PathBuf {
    if let Some(node) = std::env::var_os(NODE_ENV).filter(|v| !v.is_empty()) {
        let node = PathBuf::from(node);
        if !node.is_file() {
            panic!(
                "{NODE_ENV}={} is not a file: run `cargo xtask test`, which sets it (`cargo \
                 xtask install` prints the path of the node it installs or finds)",
                node.display()
            );
        }
        return node;
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let cached = cache_root()
        .join(format!("node-{}", node_runtime_version()))
        .join(format!("node_modules/node-linux-{arch}/bin/node"));
    if cached.is_file() {
        return cached;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("node"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no Node.js to run the node oidc-provider: {NODE_ENV} is not set, {} does not \
                 exist and there is no `node` on PATH; run `cargo xtask test` (or `cargo xtask \
                 install` once: it installs Node.js {} if the machine's is older than 22)",
                cached.display(),
                node_runtime_version()
            )
        })
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
    /// Port to listen on (127.0.0.1); 0 (the default, and what to use unless a test needs a
    /// known port before the start) lets the provider bind any free port and report it.
    pub port: u16,
    /// Lifetimes in seconds by oidc-provider model name: `AccessToken`, `IdToken`,
    /// `RefreshToken`, `AuthorizationCode`, `Session`, `Grant`, `Interaction`. Unset ones keep
    /// oidc-provider's defaults (1 hour for access and ID tokens).
    pub ttl: BTreeMap<String, u64>,
    /// Serve HTTPS with this certificate and key (PEM files, e.g. from [`TestCa`]); the
    /// issuer is then `https://127.0.0.1:<port>`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// With [`ProviderConfig::tls`]: demand a client certificate signed by this CA (PEM file)
    /// on every connection (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
}

type Lines = Arc<Mutex<VecDeque<String>>>;

/// A running node `oidc-provider`, killed when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>` (`https://` with [`ProviderConfig::tls`]), without a
    /// trailing slash.
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

    /// Starts the provider (with [`node_binary`]) and waits (at most [`START_TIMEOUT`]) until
    /// it prints `READY http://127.0.0.1:<port>`, which it does once it serves requests.
    ///
    /// Panics if it is not installed (run `cargo xtask test`), or does not start; the panic
    /// message says what was awaited and carries the end of the provider's output.
    pub async fn start_with(config: ProviderConfig) -> OidcProvider {
        let dir = node_provider_dir();
        assert_node_provider_installed(&dir);
        let node = node_binary();

        let config_json = json!({
            "port": config.port,
            "clients": config.clients.iter().map(ClientSpec::to_json).collect::<Vec<_>>(),
            "ttl": if config.ttl.is_empty() { Value::Null } else { json!(config.ttl) },
            "exit_on_stdin_close": true,
            "tls": config.tls.as_ref().map(|(cert, key)| json!({"cert": cert, "key": key, "client_ca": config.tls_client_ca})),
        });

        let mut child = Command::new(&node)
            .arg(PROVIDER_SCRIPT)
            .arg(config_json.to_string())
            .env(NODE_PROVIDER_DIR_ENV, &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{} {PROVIDER_SCRIPT}`: {e} (run `cargo xtask test`, which \
                     installs a supported Node.js and sets {NODE_ENV})",
                    node.display()
                )
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
                None => format!(
                    "it printed a bad READY line: {issuer:?} (expected `READY \
                     http://127.0.0.1:<port>`)"
                ),
            },
            Ok(Err(_)) => {
                "it closed stdout without printing `READY http://127.0.0.1:<port>`".to_owned()
            }
            Err(_) => format!(
                "no `READY http://127.0.0.1:<port>` line on stdout within {START_TIMEOUT:?}"
            ),
        };
        let port = match config.port {
            0 => "port 0: any free port, reported in the READY line".to_owned(),
            port => format!("port {port}"),
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
            "node oidc-provider ({} {PROVIDER_SCRIPT}, 127.0.0.1 {port}) did not start: \
             {failure} (exit: {status}).\n--- provider output (tail) ---\n{}",
            node.display(),
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

/// Reserves a port on 127.0.0.1 for `reason` (e.g. `"redis-server"`, `"adapter restarted by
/// the failover test"`) until the test process ends, for a server that cannot bind port 0 and
/// report its port (or a URL that must name the port before the server starts).
///
/// The port lies below the kernel's ephemeral range, so no `bind(0)` and no outgoing
/// connection of any process gets it; it is locked (`$TMPDIR/oidc-authz-ports/<port>`, which
/// holds `reason`) against every other test binary, xtask's Keycloak and the demo, so a server
/// a test stops and restarts keeps it; it is bindable now; and it is never handed out twice in
/// this process. Prefer port 0 wherever the server reports what it bound. See the
/// `test-ports` crate for the details.
///
/// Panics, naming `reason` and what to fix, when no port is left.
pub fn reserve_port(reason: &str) -> u16 {
    test_ports::reserve(reason).unwrap_or_else(|e| panic!("{e}"))
}

/// [`reserve_port`] for callers that give no reason (recorded as "unnamed").
pub fn free_port() -> u16 {
    reserve_port("unnamed")
}

/// [`reserve_port`] (every reserved port lies below the kernel's ephemeral range); kept for
/// callers that need a port no parallel test can take over after its server stops.
pub fn port_below_ephemeral_range() -> u16 {
    reserve_port("unnamed (port_below_ephemeral_range)")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_a_supported_node_runtime() {
        let runtime = node_runtime_version();
        let major: u32 = runtime
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .expect("nodeRuntime starts with the major version");
        assert!(
            major >= 22,
            "oidc-provider 9 needs Node.js 22+, pinned {runtime}"
        );
        assert!(node_provider_version().starts_with("9."));
    }

    #[test]
    fn reserved_ports_are_distinct_and_below_the_ephemeral_range() {
        let (first, _) = test_ports::ephemeral_range();
        let ports = [
            free_port(),
            port_below_ephemeral_range(),
            reserve_port("test-support unit test"),
        ];
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
        assert!(ports.iter().all(|&p| p < first || p > 60_999), "{ports:?}");
        assert_eq!(
            test_ports::reason(ports[2]).as_deref(),
            Some("test-support unit test")
        );
    }
}
