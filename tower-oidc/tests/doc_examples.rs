//! The crate-doc examples run as users run them: each file of `examples/` that the crate docs
//! show verbatim (`minimal.rs`, `axum_app.rs`, `tower_service.rs`) runs its `main` in a
//! process of its own, configured through the environment as a deployment would be, against
//! the node oidc-provider of test-support; a cookie-jar client signs in for real.
//!
//! That process is this test binary again, running only [`run_example`] (no cargo inside a
//! test: the outer cargo holds the build lock). The example prints `listening on http://...`
//! once it accepts connections: that line is the readiness signal.
//!
//! Accounts of the test provider: any login name, any password; the email
//! `<login>@example.com` is verified; groups are `users` and `<login>-group`, plus `admins`
//! for logins starting with "admin".

#[path = "../examples/axum_app.rs"]
mod axum_app;
#[path = "../examples/minimal.rs"]
mod minimal;
#[path = "../examples/tower_service.rs"]
mod tower_service;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use test_support::{ClientSpec, OidcProvider, http_client, login_at_provider, reserve_port};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Names the example a child process runs: `minimal`, `axum_app` or `tower_service`.
const EXAMPLE_ENV: &str = "TOWER_OIDC_DOC_EXAMPLE";
/// How long an example may take to discover the provider and bind its port.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

const CLIENT_ID: &str = "myapp";
const CLIENT_SECRET: &str = "myapp-secret";
const COOKIE_SECRET: &str = "dGVzdC1jb29raWUtc2VjcmV0LW9mLTMyLWJ5dGVzISE=";
/// A service client of the provider: its (client_credentials) access tokens are JWTs with
/// `aud` = [`CLIENT_ID`], the bearer tokens an API of the examples accepts.
const SERVICE_ID: &str = "reports-job";
const SERVICE_SECRET: &str = "reports-job-secret";

/// The child process's side: runs the example that [`EXAMPLE_ENV`] names until the parent
/// test closes this process's stdin (or kills it). Without that variable (someone running
/// the ignored tests) it does nothing.
#[test]
#[ignore = "a child process of the other tests runs it"]
fn run_example() {
    let Ok(name) = std::env::var(EXAMPLE_ENV) else {
        return;
    };
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let result = match name.as_str() {
        "minimal" => minimal::main(),
        "axum_app" => axum_app::main(),
        "tower_service" => tower_service::main(),
        other => panic!("no example {other:?}"),
    };
    if let Err(e) = result {
        panic!("example {name} failed: {e}");
    }
}

/// An example running against its own provider, stopped when dropped.
struct Example {
    name: &'static str,
    base: String,
    provider: OidcProvider,
    output: Arc<Mutex<String>>,
    _process: Child,
}

impl Example {
    /// Starts the provider (with the example's client and a service client), then the
    /// example on a reserved port, and waits until it listens.
    async fn start(name: &'static str) -> Example {
        let port = reserve_port(&format!("doc example {name}"));
        let base = format!("http://127.0.0.1:{port}");
        let provider = OidcProvider::start(vec![
            ClientSpec::new(CLIENT_ID, CLIENT_SECRET, &format!("{base}/oauth2/callback")),
            ClientSpec::jwt_service(SERVICE_ID, SERVICE_SECRET, CLIENT_ID),
        ])
        .await;
        let mut process = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["run_example", "--exact", "--ignored", "--nocapture"])
            .env(EXAMPLE_ENV, name)
            .env("OIDC_ISSUER", &provider.issuer)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("COOKIE_SECRET", COOKIE_SECRET)
            .env("LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the example's process");

        let output = Arc::new(Mutex::new(String::new()));
        let stderr = process.stderr.take().expect("stderr is piped");
        let stderr = tokio::spawn(collect(stderr, output.clone(), None));
        let stdout = process.stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = oneshot::channel();
        let ready_line = format!("listening on {base}");
        tokio::spawn(collect(
            stdout,
            output.clone(),
            Some((ready_line, ready_tx)),
        ));

        let failure = match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(())) => {
                return Example {
                    name,
                    base,
                    provider,
                    output,
                    _process: process,
                };
            }
            Ok(Err(_)) => "it ended without".to_owned(),
            Err(_) => format!("within {READY_TIMEOUT:?}, it did not print"),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), process.wait()).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), stderr).await;
        panic!(
            "example {name}: {failure} `listening on {base}`; its output:\n{}",
            output.lock().unwrap_or_else(|e| e.into_inner())
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- example {} output ---\n{}--- end of example output ---",
                self.name,
                self.output.lock().unwrap_or_else(|e| e.into_inner())
            );
        }
    }
}

/// Appends the lines of `stream` to `out`; sends on `ready` when the line it names appears.
async fn collect(
    stream: impl AsyncRead + Unpin,
    out: Arc<Mutex<String>>,
    mut ready: Option<(String, oneshot::Sender<()>)>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if ready.as_ref().is_some_and(|(wanted, _)| line == *wanted)
            && let Some((_, tx)) = ready.take()
        {
            let _ = tx.send(());
        }
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str(&line);
        out.push('\n');
    }
}

async fn get(c: &Client, url: &str, accept: &str) -> reqwest::Response {
    c.get(url)
        .header(ACCEPT, accept)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Status and body of a GET.
async fn fetch(c: &Client, url: &str, accept: &str) -> (StatusCode, String) {
    let r = get(c, url, accept).await;
    (r.status(), r.text().await.expect("body"))
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The link of the engine's "Sign in" page (`/oauth2/start?rd=...`).
fn sign_in_link(page: &str) -> String {
    let href = page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.contains("/oauth2/start"))
        .unwrap_or_else(|| panic!("no sign-in link in {page}"));
    test_support::html::decode_entities(href)
}

/// Follows `redirect` (the app's answer sending the browser to the provider), signs in as
/// `user` and follows the callback; returns where the app sends the browser then.
async fn sign_in(c: &Client, app: &Example, redirect: reqwest::Response, user: &str) -> String {
    assert_eq!(redirect.status(), StatusCode::FOUND, "to the provider");
    let authorize = location(&redirect);
    assert!(
        authorize.starts_with(&app.provider.issuer),
        "to the provider: {authorize}"
    );
    let callback = login_at_provider(c, &authorize, user, "any password").await;
    assert!(
        callback.starts_with(&app.url("/oauth2/callback?")),
        "{callback}"
    );
    let r = get(c, &callback, "text/html").await;
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "the callback signs {user} in"
    );
    location(&r)
}

/// Signs in from a page that shows the engine's "Sign in" page (no `skip_provider_button`).
async fn sign_in_from_page(c: &Client, app: &Example, path: &str, user: &str) -> String {
    let (status, page) = fetch(c, &app.url(path), "text/html").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: the sign-in page");
    let start = get(c, &app.url(&sign_in_link(&page)), "text/html").await;
    sign_in(c, app, start, user).await
}

/// An access token of the service client (client_credentials): a JWT for [`CLIENT_ID`].
async fn service_token(provider: &OidcProvider) -> String {
    let c = http_client();
    let discovery: Value = c
        .get(provider.discovery_url())
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery JSON");
    let token_endpoint = discovery["token_endpoint"]
        .as_str()
        .expect("token_endpoint");
    let r = c
        .post(token_endpoint)
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token request");
    let status = r.status();
    let body: Value = r.json().await.expect("token JSON");
    assert_eq!(status, StatusCode::OK, "client_credentials: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn minimal_greets_any_signed_in_user_by_name() {
    let app = Example::start("minimal").await;
    let c = http_client();
    assert_eq!(sign_in_from_page(&c, &app, "/", "alice").await, "/");

    let (status, body) = fetch(&c, &app.url("/"), "text/html").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello alice"),
        "the minimal example must let in any signed-in user with a verified email (the \
         library's default, no email-domain setting); it answered {status}: {body}"
    );
}

#[tokio::test]
async fn axum_app_serves_its_public_signed_in_and_admin_pages() {
    let app = Example::start("axum_app").await;
    let bob = http_client();
    assert_eq!(
        fetch(&bob, &app.url("/"), "text/html").await,
        (
            StatusCode::OK,
            "welcome, stranger: sign in at /me".to_owned()
        )
    );

    let to_provider = get(&bob, &app.url("/me"), "text/html").await;
    assert_eq!(sign_in(&bob, &app, to_provider, "bob").await, "/me");
    assert_eq!(
        fetch(&bob, &app.url("/me"), "text/html").await,
        (StatusCode::OK, "hello bob".to_owned())
    );
    assert_eq!(
        fetch(&bob, &app.url("/"), "text/html").await,
        (StatusCode::OK, "welcome back, bob".to_owned())
    );
    let (status, _) = fetch(&bob, &app.url("/admin"), "text/html").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "bob is not in `admins`");

    let ann = http_client();
    let to_provider = get(&ann, &app.url("/admin"), "text/html").await;
    assert_eq!(
        sign_in(&ann, &app, to_provider, "admin-ann").await,
        "/admin"
    );
    assert_eq!(
        fetch(&ann, &app.url("/admin"), "text/html").await,
        (StatusCode::OK, "admins only".to_owned()),
        "admin-ann is in `admins`"
    );
}

#[tokio::test]
async fn axum_app_api_takes_sessions_and_bearer_tokens() {
    let app = Example::start("axum_app").await;
    let api = app.url("/api/me");

    let anonymous = http_client();
    let r = get(&anonymous, &api, "application/json").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");

    let token = service_token(&app.provider).await;
    let r = anonymous
        .get(&api)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .expect("GET with a bearer token");
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.expect("JSON");
    assert_eq!(
        me,
        json!({ "sub": SERVICE_ID, "email": null, "groups": [] })
    );

    let alice = http_client();
    let to_provider = get(&alice, &api, "text/html").await;
    assert_eq!(sign_in(&alice, &app, to_provider, "alice").await, "/api/me");
    let r = get(&alice, &api, "application/json").await;
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.expect("JSON");
    assert_eq!(
        me,
        json!({ "sub": "alice", "email": "alice@example.com", "groups": ["users", "alice-group"] })
    );
}

#[tokio::test]
async fn tower_service_answers_401_then_lets_a_token_and_a_session_in() {
    let app = Example::start("tower_service").await;
    let c = http_client();

    let r = get(&c, &app.url("/reports"), "application/json").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");

    let token = service_token(&app.provider).await;
    let r = c
        .get(app.url("/reports"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .expect("GET with a bearer token");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body"), format!("hello {SERVICE_ID}"));

    assert_eq!(
        sign_in_from_page(&c, &app, "/reports?week=2", "alice").await,
        "/reports?week=2"
    );
    assert_eq!(
        fetch(&c, &app.url("/reports"), "text/html").await,
        (StatusCode::OK, "hello alice".to_owned())
    );
}
