//! Keycloak's own back-channel logout through the real gateway (issue 14, points 4 and 5): two
//! `ext-authz-adapter` replicas sharing Redis behind Envoy (an ext_authz cluster over both, HTTP
//! or gRPC mode), the adapter's prefix routed to its HTTP port as `ext-authz-adapter istio` and
//! the Helm chart route it ([`EnvoyConfig::with_adapter_routes`]), and a per-test copy of the
//! `mytest` realm whose `nginx` client registers `http://<gateway>/oauth2/backchannel-logout`.
//!
//! - The user has a browser session (cookie) and, from another login, a bearer access token;
//!   both are accepted by both replicas (the token from their validation caches). Keycloak's
//!   admin "sign out" of the user makes Keycloak POST one logout token per session to the
//!   gateway, which routes exactly that POST to replica A without ext_authz (a check carries no
//!   body); from then on both replicas refuse the cookie and the bearer token within a second.
//!   Another user's token is untouched, and a token of a new login (a new `sid`) is accepted.
//! - The exemption cannot be widened: other methods, `//`, `%2F`, longer paths, dot segments,
//!   another case go through the check; a query string or a forged token only reaches the
//!   adapter's logout endpoint, which refuses it; nothing reaches the application.
//! - Without that route (the seed's gateway), the logout arrives as a check: the adapter
//!   never allows it and logs which route is missing.
//!
//! Nothing is skipped: without Keycloak, Redis or Envoy the tests fail and say to run
//! `cargo xtask test`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod scale;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use envoy_bootstrap::{EnvoyConfig, VirtualHost};
use istio_manifests::envoy_contract::ADAPTER_PREFIX;
use reqwest::StatusCode;
use scale::*;
use serde_json::json;
use test_support::envoy::Envoy;
use test_support::keycloak::{ALICE, BOB, CLIENT_ID, Keycloak, keycloak};
use test_support::redis::RedisServer;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The logout path under the adapter's prefix.
const LOGOUT: &str = "/oauth2/backchannel-logout";
/// How long after Keycloak delivered the logout both replicas may still accept the session.
const WITHIN: Duration = Duration::from_secs(1);
/// The log line of a replica that processed a logout token.
const REVOKED: &str = "back-channel logout: sessions revoked";

/// Points the realm's `nginx` client's back-channel logout URL at `url` (session required).
async fn register_backchannel_logout(kc: &Keycloak, realm: &TestRealm, url: &str) {
    let clients = kc
        .admin_get(&format!("{}/clients?clientId={CLIENT_ID}", realm.name))
        .await;
    let mut client = clients[0].clone();
    let id = client["id"].as_str().expect("client id").to_owned();
    client["attributes"]["backchannel.logout.url"] = json!(url);
    client["attributes"]["backchannel.logout.session.required"] = json!("true");
    let (status, body) = kc
        .admin_send(
            reqwest::Method::PUT,
            &format!("{}/clients/{id}", realm.name),
            Some(&client),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "updating the client: {body}"
    );
}

/// An API call (`Accept: application/json`) at `base` (Envoy, or a replica's HTTP port) with
/// `cookie` or a bearer `token`: its status.
async fn api_call(base: &str, cookie: Option<&str>, token: Option<&str>) -> StatusCode {
    let mut r = app_client(None)
        .get(format!("{base}/api"))
        .header("accept", "application/json");
    if let Some(cookie) = cookie {
        r = r.header("cookie", cookie);
    }
    if let Some(token) = token {
        r = r.bearer_auth(token);
    }
    r.send()
        .await
        .unwrap_or_else(|e| panic!("GET {base}/api: {e}"))
        .status()
}

/// `http://nginx.example.com:<port of addr>` (the client maps the host to 127.0.0.1).
fn base_of(addr: SocketAddr) -> String {
    format!("http://{APP_HOST}:{}", addr.port())
}

/// The statuses of the session cookie and the bearer token at each replica, directly.
async fn at_replicas(replicas: &[&Replica; 2], cookie: &str, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in replicas {
        let base = base_of(r.http);
        let c = api_call(&base, Some(cookie), None).await;
        let t = api_call(&base, None, Some(token)).await;
        out.push(format!("{}: cookie {c}, bearer {t}", r.name));
    }
    out
}

async fn case(mode: Mode, store: Store) {
    let kc = keycloak();
    let redis = RedisServer::start().await;
    let realm = TestRealm::create(&kc, "bcl", None).await;
    let mut args = store_args(store, &redis.url);
    args.push(format!("--resolve={}={LOCALHOST}", kc.host()));
    args.push("--skip-jwt-bearer-tokens=true".to_owned());
    let (a, b) = tokio::join!(
        Replica::start("A", ANY, &realm.issuer, &kc.client_secret, &args),
        Replica::start("B", ANY, &realm.issuer, &kc.client_secret, &args),
    );
    let (app, upstream_hits) = upstream().await;
    let checked = match mode {
        Mode::Http => [a.http, b.http],
        Mode::Grpc => [a.grpc, b.grpc],
    };
    // The app host, and 127.0.0.1 (the host Keycloak's POST names), both protected, their
    // adapter prefix routed to replica A's HTTP port.
    let gateway = EnvoyConfig {
        hosts: vec![
            VirtualHost::protected(APP_HOST, app),
            VirtualHost::protected("127.0.0.1", app),
        ],
        ..EnvoyConfig::new(ANY, authz_target(mode, &checked))
    }
    .with_adapter_routes(ADAPTER_PREFIX, a.http);
    let envoy = Envoy::start(&spread_over(&gateway, mode, &checked)).await;
    let base = base_of(envoy.listener());
    let logs = || {
        format!(
            "--- Envoy ---\n{}\n--- A ---\n{}\n--- B ---\n{}",
            envoy.log_tail(),
            a.log_tail(),
            b.log_tail()
        )
    };
    register_backchannel_logout(
        &kc,
        &realm,
        &format!("http://127.0.0.1:{}{LOGOUT}", envoy.listener().port()),
    )
    .await;

    // What an attacker can send to the exempt path: nothing is allowed, nothing reaches the
    // application, and only the exact POST reaches the adapter's logout endpoint.
    attacks(envoy.listener(), &a, mode).await;
    assert_eq!(
        upstream_hits.load(Ordering::Relaxed),
        0,
        "nothing reached the application unchecked\n{}",
        logs()
    );

    // Alice: a browser session through the gateway, and a bearer token of another login.
    let browser = Browser::new(&kc);
    let callback = browser
        .login_until_callback(&base, &realm.issuer, &ALICE)
        .await;
    let r = browser.navigate(&callback).await;
    assert_eq!(r.status(), StatusCode::FOUND, "callback\n{}", logs());
    let cookie = browser.cookie_header(&base);
    let token = kc.access_token(&realm.name, &ALICE).await;
    let bob = kc.access_token(&realm.name, &BOB).await;
    let replicas = [&a, &b];
    assert_eq!(
        at_replicas(&replicas, &cookie, &token).await,
        [
            "A: cookie 200 OK, bearer 200 OK",
            "B: cookie 200 OK, bearer 200 OK"
        ],
        "before the logout (the token now in both validation caches)\n{}",
        logs()
    );
    for _ in 0..4 {
        // Round robin: both replicas, through the gateway.
        assert_eq!(api_call(&base, Some(&cookie), None).await, StatusCode::OK);
        assert_eq!(api_call(&base, None, Some(&token)).await, StatusCode::OK);
    }

    // Keycloak's admin signs alice out: Keycloak POSTs a logout token for each of her two
    // sessions to the URL registered above, through the gateway.
    let mark = a.log().mark();
    realm.sign_out(&kc, "alice").await;
    // How long Keycloak takes to deliver under load is not the adapter's business: wait for
    // replica A to have processed both logout tokens ...
    let deadline = Instant::now() + common::START_DEADLINE;
    while a.log().since(mark).matches(REVOKED).count() < 2 {
        assert!(
            Instant::now() < deadline,
            "replica A did not log {REVOKED:?} twice (one logout token per session of alice) \
             within {:?} of the admin sign-out: the POST did not reach it through the \
             gateway\n{}",
            common::START_DEADLINE,
            logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... then both replicas refuse the cookie and the (cached) bearer token within a second.
    let delivered = Instant::now();
    let refused = [
        "A: cookie 401 Unauthorized, bearer 401 Unauthorized",
        "B: cookie 401 Unauthorized, bearer 401 Unauthorized",
    ];
    loop {
        let now = at_replicas(&replicas, &cookie, &token).await;
        if now == refused {
            break;
        }
        assert!(
            delivered.elapsed() < WITHIN,
            "{WITHIN:?} after replica A processed the logout tokens: {now:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..4 {
        assert_eq!(
            api_call(&base, Some(&cookie), None).await,
            StatusCode::UNAUTHORIZED,
            "the cookie through the gateway"
        );
        assert_eq!(
            api_call(&base, None, Some(&token)).await,
            StatusCode::UNAUTHORIZED,
            "the bearer token through the gateway"
        );
    }
    // Bob's token is another user's; a new login of alice is a new session (new sid).
    let again = kc.access_token(&realm.name, &ALICE).await;
    for r in replicas {
        let base = base_of(r.http);
        assert_eq!(api_call(&base, None, Some(&bob)).await, StatusCode::OK);
        assert_eq!(
            api_call(&base, None, Some(&again)).await,
            StatusCode::OK,
            "replica {}: alice's token of a new login\n{}",
            r.name,
            logs()
        );
    }
    assert!(
        upstream_hits.load(Ordering::Relaxed) > 0,
        "the allowed calls reached the application"
    );

    // The seed's gateway, without the route: the logout arrives as a check, never an allow,
    // and the adapter says which route is missing.
    let (seed_app, seed_hits) = upstream().await;
    let seed = Envoy::start(&spread_over(
        &EnvoyConfig::seed(ANY, authz_target(mode, &checked), seed_app, kc.addr),
        mode,
        &checked,
    ))
    .await;
    let marks = [a.log().mark(), b.log().mark()];
    let status = raw(seed.listener(), "POST", LOGOUT, "logout_token=a.b.c").await;
    assert_eq!(
        status,
        match mode {
            // A 5xx of the authorization server is an ext_authz error: status_on_error.
            Mode::Http => 403,
            Mode::Grpc => 502,
        },
        "the logout POST as a check\n{}",
        logs()
    );
    assert_eq!(seed_hits.load(Ordering::Relaxed), 0);
    // The replica writes the line before it answers, but the test reads its stderr in a task
    // of its own: wait (bounded) until one replica's line has been read.
    let needles = ["reached the adapter as an ext_authz check", LOGOUT];
    let said = async {
        loop {
            if [&a, &b]
                .iter()
                .zip(marks)
                .any(|(r, mark)| r.log().find_since(mark, &needles).is_some())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(
        tokio::time::timeout(common::START_DEADLINE, said)
            .await
            .is_ok(),
        "no replica logged the missing route\n{}",
        logs()
    );
}

/// `method path` with a form `body`, sent as is (no client-side normalisation of the path) to
/// the gateway at `addr` for the app host: the response's status.
async fn raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {APP_HOST}\r\nAccept: application/json\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response);
        text.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer from the gateway"))
}

/// Requests around the exempt path, through the gateway at `gateway`, without a session.
async fn attacks(gateway: SocketAddr, a: &Replica, mode: Mode) {
    let forged = "logout_token=eyJhbGciOiJSUzI1NiJ9.eyJzaWQiOiJ4In0.c2ln";
    // The exact POST reaches the adapter's logout endpoint (no check): it refuses the token.
    for path in [LOGOUT.to_owned(), format!("{LOGOUT}?x=1")] {
        let mark = a.log().mark();
        assert_eq!(
            raw(gateway, "POST", &path, forged).await,
            400,
            "POST {path}"
        );
        assert!(
            a.log()
                .wait_since(
                    mark,
                    &["back-channel logout refused"],
                    common::START_DEADLINE
                )
                .await
                .is_some(),
            "POST {path} reached replica A's logout endpoint"
        );
    }
    // Other methods on the path go through the check: the adapter answers 405.
    for method in ["GET", "PUT", "DELETE"] {
        assert_eq!(raw(gateway, method, LOGOUT, forged).await, 405, "{method}");
    }
    let variants = a.log().mark();
    // Every variant of the path goes through the check, which refuses it (the adapter's own
    // answers: 404, 401, or a check of the logout POST, 502, which Envoy turns into 403 in HTTP
    // mode): nothing is allowed, and the application never sees them (asserted by the caller).
    for path in [
        format!("{LOGOUT}/x"),
        format!("{LOGOUT}x"),
        format!("{LOGOUT}/"),
        "/oauth2//backchannel-logout".to_owned(),
        "//oauth2/backchannel-logout".to_owned(),
        format!("{LOGOUT}%2F..%2F..%2Fapi"),
        "/oauth2%2Fbackchannel-logout".to_owned(),
        "/oauth2%2fbackchannel-logout".to_owned(),
        "/OAUTH2/backchannel-logout".to_owned(),
        "/oauth2/Backchannel-Logout".to_owned(),
        format!("{LOGOUT}/../../api"),
        format!("{LOGOUT}/%2e%2e/%2e%2e/api"),
        format!("{LOGOUT};x=1"),
        format!("{LOGOUT}%00"),
        "/api/../oauth2/backchannel-logout/../../api".to_owned(),
    ] {
        let status = raw(gateway, "POST", &path, forged).await;
        assert!(
            matches!(status, 400 | 401 | 403 | 404 | 405 | 502),
            "POST {path} ({mode:?} mode): {status}"
        );
    }
    // A 400 above could also be the logout endpoint refusing the token unchecked: it must not
    // be. Replica A's log is read in order, so once the refusal of one last exact POST is
    // there, a refusal of any variant would be there too: exactly one since the mark.
    assert_eq!(
        raw(gateway, "POST", LOGOUT, forged).await,
        400,
        "the control"
    );
    let refused = a
        .log()
        .wait_since(
            variants,
            &["back-channel logout refused"],
            common::START_DEADLINE,
        )
        .await;
    assert!(
        refused.is_some(),
        "the control POST reached replica A's logout endpoint"
    );
    let reached = a
        .log()
        .since(variants)
        .matches("back-channel logout refused")
        .count();
    assert_eq!(
        reached,
        1,
        "({mode:?} mode) a variant of the path reached the logout endpoint unchecked:\n{}",
        a.log().since(variants)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keycloak_backchannel_logout_through_envoy_http_mode_cookie_store() {
    case(Mode::Http, Store::Cookie).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keycloak_backchannel_logout_through_envoy_grpc_mode_redis_store() {
    case(Mode::Grpc, Store::Redis).await;
}
