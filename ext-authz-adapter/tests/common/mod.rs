//! Shared helpers: start the real `ext-authz-adapter` binary against a real
//! provider, and a browser-like HTTP client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use test_support::{ClientSpec, OidcProvider, free_port};
use tokio::process::{Child, Command};

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
    let flag = |a: &str| a.split('=').next().unwrap_or(a).to_owned();
    let own: Vec<String> = extra.iter().map(|a| flag(a)).collect();
    SEED_ARGS
        .iter()
        .map(|a| (*a).to_owned())
        .chain([
            format!("--oidc-issuer-url={issuer}"),
            format!("--cookie-secret={COOKIE_SECRET}"),
            format!("--client-id={CLIENT_ID}"),
        ])
        .chain(defaults)
        .filter(|a| !own.contains(&flag(a)))
        .chain(extra.iter().map(|a| (*a).to_owned()))
        .collect()
}

/// A running adapter process, killed on drop.
pub struct Adapter {
    pub port: u16,
    /// `http://nginx.example.com:<port>`.
    pub base: String,
    child: Child,
}

impl Adapter {
    /// Starts the binary with the seed's args plus `extra`, issuer `issuer`,
    /// client secret from the environment variable; waits for `/ready`.
    pub async fn start(issuer: &str, port: u16, extra: &[&str]) -> Adapter {
        let adapter = Self::spawn(issuer, port, extra);
        adapter.wait_ready().await;
        adapter
    }

    /// Starts without waiting for readiness.
    pub fn spawn(issuer: &str, port: u16, extra: &[&str]) -> Adapter {
        let args = seed_args(issuer, [format!("--http-address=127.0.0.1:{port}")], extra);
        let child = Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"))
            .args(args)
            .env("OAUTH2_PROXY_CLIENT_SECRET", CLIENT_SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn ext-authz-adapter");
        Adapter {
            port,
            base: format!("http://{HOST}:{port}"),
            child,
        }
    }

    pub async fn wait_ready(&self) {
        let client = client(self.port);
        for _ in 0..400 {
            if let Ok(r) = client.get(format!("{}/ready", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("adapter on port {} did not become ready", self.port);
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        // Wait until the process is gone, so the next adapter can bind the same port.
        let _ = self.child.start_kill();
        for _ in 0..300 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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

pub fn port() -> u16 {
    free_port()
}
