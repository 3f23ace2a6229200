//! Headless Chromium over WebDriver (chromedriver) for browser tests.
//!
//! chromedriver comes from `OIDC_AUTHZ_CHROMEDRIVER` (default `/usr/bin/chromedriver`) and
//! Chromium from `OIDC_AUTHZ_CHROMIUM` (default `/usr/bin/chromium`), Debian's `chromium` and
//! `chromium-driver` packages. A test that needs them when they are missing panics and says
//! so: it is never skipped.
//!
//! Each [`Browser`] has its own chromedriver (on a port it picks), a fresh profile (no cookies),
//! and host name mappings (`--host-resolver-rules`) so the seed's host names reach 127.0.0.1
//! without touching system files:
//!
//! ```no_run
//! # async fn demo(port: u16) {
//! use std::time::Duration;
//! use test_support::browser::{Browser, host_rules};
//! let browser = Browser::start(&host_rules(&["nginx.example.com", "keycloak.example.com"])).await;
//! browser.goto(&format!("http://nginx.example.com:{port}/")).await;
//! browser.wait_for_url_prefix("http://keycloak.example.com:", Duration::from_secs(10)).await;
//! browser.fill("#username", "alice").await;
//! browser.fill("#password", "secret").await;
//! browser.click("#kc-login").await;
//! browser.wait_for_text("alice@example.com", Duration::from_secs(10)).await;
//! browser.close().await;
//! # }
//! ```
//!
//! Helpers panic with the current URL and page text when something is not there, like the
//! rest of this crate; [`Browser::client`] gives the fantoccini client for anything else.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, Value, json};
use tokio::process::{Child, Command};

use crate::envoy::{LogTail, http_status};

/// Environment variable naming the chromedriver binary (default [`DEFAULT_CHROMEDRIVER`]).
pub const CHROMEDRIVER_ENV: &str = "OIDC_AUTHZ_CHROMEDRIVER";

/// Environment variable naming the Chromium binary (default [`DEFAULT_CHROMIUM`]).
pub const CHROMIUM_ENV: &str = "OIDC_AUTHZ_CHROMIUM";

/// Debian's chromedriver (package `chromium-driver`).
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Debian's Chromium launcher (package `chromium`).
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// How long [`Browser::start`] waits for chromedriver, and then for the browser session: a
/// few seconds on an idle machine, much more while parallel tests and cargo load both cores.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Page load timeout of the session (WebDriver `timeouts.pageLoad`).
pub const PAGE_LOAD_TIMEOUT: Duration = Duration::from_secs(30);

const LOG_TAIL_LINES: usize = 200;
const POLL: Duration = Duration::from_millis(100);

/// `--host-resolver-rules` mapping each host name to 127.0.0.1:
/// `MAP nginx.example.com 127.0.0.1, MAP keycloak.example.com 127.0.0.1`.
pub fn host_rules(hosts: &[&str]) -> String {
    hosts
        .iter()
        .map(|host| format!("MAP {host} 127.0.0.1"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn binary(env: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    if !path.is_file() {
        panic!(
            "{} not found ({env} or the default {default}): run `cargo xtask test`, which \
             installs it (Debian: apt-get install -y {package})",
            path.display()
        );
    }
    path
}

/// A headless Chromium session with its own chromedriver; both end when dropped.
pub struct Browser {
    client: Option<Client>,
    session_id: String,
    driver_addr: SocketAddr,
    driver: Child,
    driver_log: LogTail,
    profile: PathBuf,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("session_id", &self.session_id)
            .field("driver_addr", &self.driver_addr)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver (on a reserved port) and a headless Chromium session with a fresh
    /// profile and these `--host-resolver-rules` (see [`host_rules`]; empty for none).
    ///
    /// Panics if chromedriver or Chromium is missing or does not start, with chromedriver's
    /// log.
    pub async fn start(host_rules: &str) -> Browser {
        let chromedriver = binary(CHROMEDRIVER_ENV, DEFAULT_CHROMEDRIVER, "chromium-driver");
        let chromium = binary(CHROMIUM_ENV, DEFAULT_CHROMIUM, "chromium");
        let profile = fresh_profile_dir();

        // Not `--port=0`: chromedriver then binds [::1]:0 and tries the same port on
        // 127.0.0.1, which another process may hold ("bind() failed: Address already in use
        // ... IPv4 port not available. Exiting..."). A reserved port is free on both.
        let port = crate::reserve_port("chromedriver");
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--log-level=WARNING")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromedriver.display()));
        let driver_log = LogTail::new(LOG_TAIL_LINES);
        let mut start = Start {
            chromedriver: &chromedriver,
            readers: vec![
                driver_log.collect(driver.stdout.take().expect("stdout is piped")),
                driver_log.collect(driver.stderr.take().expect("stderr is piped")),
            ],
            log: &driver_log,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        let mut waiting_for =
            format!("the line `ChromeDriver was started successfully on port {port}`");
        let driver_addr = loop {
            if let Ok(Some(status)) = driver.try_wait() {
                start
                    .fail(
                        &mut driver,
                        &format!("it exited ({status}) while waiting for {waiting_for}"),
                    )
                    .await;
            }
            if Instant::now() > deadline {
                start
                    .fail(
                        &mut driver,
                        &format!("still waiting for {waiting_for} after {START_TIMEOUT:?}"),
                    )
                    .await;
            }
            if let Some(port) = started_port(&driver_log.text()) {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                match http_status(addr, "/status").await {
                    Some(200) => break addr,
                    Some(status) => {
                        waiting_for =
                            format!("GET http://{addr}/status to answer 200 (got {status})");
                    }
                    None => waiting_for = format!("GET http://{addr}/status to answer 200"),
                }
            }
            tokio::time::sleep(POLL).await;
        };

        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-default-apps".to_owned(),
            "--disable-extensions".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--no-proxy-server".to_owned(),
            "--password-store=basic".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        if !host_rules.is_empty() {
            args.push(format!("--host-resolver-rules={host_rules}"));
        }
        let mut capabilities = Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("pageLoadStrategy".into(), json!("normal"));
        capabilities.insert(
            "timeouts".into(),
            json!({ "pageLoad": PAGE_LOAD_TIMEOUT.as_millis() as u64, "script": 30_000, "implicit": 0 }),
        );
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium.to_string_lossy(), "args": args }),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let driver_url = format!("http://{driver_addr}");
        let connect = builder.connect(&driver_url);
        let client = match tokio::time::timeout(START_TIMEOUT, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                start
                    .fail(
                        &mut driver,
                        &format!(
                            "POST {driver_url}/session did not start {}: {e}",
                            chromium.display()
                        ),
                    )
                    .await
            }
            Err(_) => {
                start
                    .fail(
                        &mut driver,
                        &format!(
                            "POST {driver_url}/session (starting {}) did not answer within \
                             {START_TIMEOUT:?}",
                            chromium.display()
                        ),
                    )
                    .await
            }
        };
        let session_id = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a new WebDriver session has an id");
        Browser {
            client: Some(client),
            session_id,
            driver_addr,
            driver,
            driver_log,
            profile,
        }
    }

    /// The fantoccini client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// Navigates to `url` and waits for the page to load (following redirects).
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client().goto(url).await {
            self.fail(&format!("goto {url} failed: {e}")).await;
        }
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> String {
        match self.client().current_url().await {
            Ok(url) => url.into(),
            Err(e) => panic!("current_url failed: {e}"),
        }
    }

    /// The current page's HTML (the DOM, serialised).
    pub async fn page_source(&self) -> String {
        match self.client().source().await {
            Ok(source) => source,
            Err(e) => panic!("page_source failed: {e}"),
        }
    }

    /// The current page's visible text (`document.body.innerText`), empty if it has no body.
    pub async fn text(&self) -> String {
        let script = "return document.body ? document.body.innerText : '';";
        match self.client().execute(script, Vec::new()).await {
            Ok(Value::String(text)) => text,
            Ok(_) => String::new(),
            Err(e) => panic!("reading the page text failed: {e}"),
        }
    }

    /// Clears the form field matched by `css` and types `text` into it. Waits up to 10 s for
    /// the field to appear.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.element(css).await;
        if let Err(e) = field.clear().await {
            self.fail(&format!("clearing {css} failed: {e}")).await;
        }
        if let Err(e) = field.send_keys(text).await {
            self.fail(&format!("typing into {css} failed: {e}")).await;
        }
    }

    /// Clicks the element matched by `css`. Waits up to 10 s for it to appear.
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        if let Err(e) = element.click().await {
            self.fail(&format!("clicking {css} failed: {e}")).await;
        }
    }

    /// Waits until an element matches `css`, and returns it.
    pub async fn wait_for_element(
        &self,
        css: &str,
        timeout: Duration,
    ) -> fantoccini::elements::Element {
        let found = self
            .client()
            .wait()
            .at_most(timeout)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => {
                self.fail(&format!("no element {css} within {timeout:?}: {e}"))
                    .await
            }
        }
    }

    /// Waits until the current URL starts with `prefix`, and returns it.
    pub async fn wait_for_url_prefix(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self.current_url().await;
            if url.starts_with(prefix) {
                return url;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the URL did not start with {prefix:?} within {timeout:?}"
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the page's visible text contains `needle`, and returns the text.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the page did not show {needle:?} within {timeout:?}"
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last lines chromedriver wrote.
    pub fn driver_log(&self) -> String {
        self.driver_log.text()
    }

    /// Ends the session (closing Chromium) and chromedriver. Dropping does the same, blocking
    /// briefly.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
        // Drop kills chromedriver and removes the profile.
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_for_element(css, Duration::from_secs(10)).await
    }

    /// Panics with `what`, the current URL and the page text.
    async fn fail(&self, what: &str) -> ! {
        let url = match self.client().current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("<unknown: {e}>"),
        };
        let text = match self
            .client()
            .execute(
                "return document.body ? document.body.innerText : '';",
                Vec::new(),
            )
            .await
        {
            Ok(Value::String(text)) => text,
            Ok(other) => other.to_string(),
            Err(e) => format!("<unknown: {e}>"),
        };
        panic!("browser: {what}\n--- at {url}, page text ---\n{text}\n--- end of page text ---");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.driver_log.text().is_empty() {
            eprintln!(
                "--- chromedriver log (tail) ---\n{}\n--- end of chromedriver log ---",
                self.driver_log.text()
            );
        }
        if self.client.is_some() {
            // End the session (chromedriver quits Chromium before it answers) synchronously,
            // while the client is still held: fantoccini's own shutdown, sent when the client is
            // dropped, would race with this and with the kill below.
            delete_session(self.driver_addr, &self.session_id);
        }
        let _ = self.driver.start_kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.driver.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Chromium may still be writing its profile for a moment.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What [`Browser::start`] needs to report a failed start.
struct Start<'a> {
    chromedriver: &'a std::path::Path,
    readers: Vec<tokio::task::JoinHandle<()>>,
    log: &'a LogTail,
}

impl Start<'_> {
    /// Kills chromedriver, reads its output to the end (at most 2 s more), and panics with
    /// `what` and the end of its log.
    async fn fail(&mut self, driver: &mut Child, what: &str) -> ! {
        let _ = driver.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), driver.wait()).await;
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        panic!(
            "chromedriver ({}) did not start a browser: {what}.\n\
             --- chromedriver log (tail) ---\n{}",
            self.chromedriver.display(),
            self.log.text()
        );
    }
}

/// `DELETE /session/<id>` at chromedriver over blocking HTTP/1.1 (it refuses HTTP/1.0),
/// waiting for the answer (chromedriver quits Chromium before answering). Errors are ignored.
fn delete_session(driver: SocketAddr, session_id: &str) {
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&driver, Duration::from_secs(2))
    else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: {driver}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // The status line is enough: chromedriver answers once Chromium is gone (it may keep
        // the connection open after that).
        let mut head = [0; 64];
        let _ = stream.read(&mut head);
    }
}

/// The port in chromedriver's `ChromeDriver was started successfully on port N.` line.
fn started_port(log: &str) -> Option<u16> {
    log.lines().find_map(|line| {
        let rest = line.split("started successfully on port ").nth(1)?;
        rest.trim_end_matches('.').trim().parse().ok()
    })
}

fn fresh_profile_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oidc-authz-chromium-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_driver_port() {
        let log = "Starting ChromeDriver 156.0.8078.108 (730482a9) on port 0\n\
                   Only local connections are allowed.\n\
                   ChromeDriver was started successfully on port 40711.";
        assert_eq!(started_port(log), Some(40711));
        assert_eq!(started_port("Starting ChromeDriver on port 0"), None);
    }

    #[test]
    fn maps_hosts_to_loopback() {
        assert_eq!(
            host_rules(&["nginx.example.com", "keycloak.example.com"]),
            "MAP nginx.example.com 127.0.0.1, MAP keycloak.example.com 127.0.0.1"
        );
        assert_eq!(host_rules(&[]), "");
    }
}
