//! The rendered Envoy configuration in a real Envoy 1.40, with an in-process upstream and a
//! fake ext_authz server (allow if cookie `ok=1`, else 302 + Set-Cookie): what the adapter can
//! rely on in HTTP mode, and that the gRPC rendering is accepted.
//!
//! Needs `OIDC_AUTHZ_ENVOY` (set by `cargo xtask test`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ext_authz_adapter::envoy::{
    AuthzTarget, EnvoyConfig, SEED_APP_HOST, SEED_IDP_HOST, VirtualHost,
};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use test_support::envoy::Envoy;
use test_support::free_port;

/// What a server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: BTreeMap<String, Vec<String>>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        let values = self.headers.get(name)?;
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        Some(&values[0])
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn seen(request: &Request<Incoming>) -> Seen {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(value.to_str().unwrap_or("<binary>").to_owned());
    }
    Seen {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        headers,
    }
}

/// Serves HTTP/1.1 on a loopback port with `handler`, recording every request.
async fn serve<F>(handler: F) -> (SocketAddr, Log)
where
    F: Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let handler = Arc::new(handler);
    let task_log = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let log = task_log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let seen = seen(&request);
                    log.lock().unwrap().push(seen.clone());
                    let response = handler(&seen);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, log)
}

/// An upstream that answers with the headers it received, as JSON.
async fn echo_upstream(name: &'static str) -> (SocketAddr, Log) {
    serve(move |seen| {
        let body = json!({ "upstream": name, "uri": seen.uri, "headers": seen.headers });
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    })
    .await
}

/// The fake authz server: allows when the cookie has `ok=1`.
async fn fake_authz() -> (SocketAddr, Log) {
    serve(|seen| {
        let allowed = seen
            .headers
            .get("cookie")
            .is_some_and(|c| c.iter().any(|c| c.split("; ").any(|kv| kv == "ok=1")));
        if allowed {
            Response::builder()
                .status(200)
                .header("x-auth-request-user", "alice")
                .header("x-auth-request-email", "alice@example.com")
                .header("authorization", "Bearer token-of-alice")
                .header("x-envoy-auth-headers-to-remove", "x-auth-request-groups")
                .header("x-not-for-upstream", "leak")
                .header("set-cookie", "refreshed=1; Path=/; HttpOnly")
                .body(Full::new(Bytes::new()))
                .unwrap()
        } else {
            Response::builder()
                .status(302)
                .header("location", "http://keycloak.example.com/login?from=authz")
                .header("set-cookie", "flow=abc; Path=/; HttpOnly")
                .header("set-cookie", "flow2=def; Path=/")
                .header("content-type", "text/html")
                .header("x-not-for-client", "leak")
                .body(Full::new(Bytes::from_static(b"<a>login</a>")))
                .unwrap()
        }
    })
    .await
}

struct Stack {
    envoy: Envoy,
    port: u16,
    authz: Log,
    app: Log,
    idp: Log,
}

async fn stack(authz_target: impl FnOnce(SocketAddr) -> AuthzTarget) -> Stack {
    let (authz_addr, authz) = fake_authz().await;
    let (app_addr, app) = echo_upstream("app").await;
    let (idp_addr, idp) = echo_upstream("idp").await;
    // Port 0: Envoy picks the port, read back from its admin API.
    let mut config = EnvoyConfig::seed(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        authz_target(authz_addr),
        app_addr,
        idp_addr,
    );
    config.hosts[0].unprotected_prefixes = vec!["/public/".to_owned()];
    config.access_log = true;
    let envoy = Envoy::start(&config.render()).await;
    let port = envoy.listener().port();
    assert_ne!(port, 0);
    Stack {
        envoy,
        port,
        authz,
        app,
        idp,
    }
}

fn http_authz(addr: SocketAddr) -> AuthzTarget {
    AuthzTarget::Http {
        addr,
        timeout: Duration::from_secs(5),
    }
}

/// A plain client (no cookie jar, no redirects) that maps the seed's hosts to Envoy.
fn client(port: u16) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let envoy = SocketAddr::from(([127, 0, 0, 1], port));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(SEED_APP_HOST, envoy)
        .resolve(SEED_IDP_HOST, envoy)
        .resolve("other.example.com", envoy)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn values(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn http_mode_denies_with_the_authz_response() {
    let s = stack(http_authz).await;
    let response = client(s.port)
        .get(format!("http://{SEED_APP_HOST}:{}/private?x=1", s.port))
        .header("x-forwarded-proto", "https")
        .header("x-random", "not for authz")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        values(&response, "location"),
        ["http://keycloak.example.com/login?from=authz"]
    );
    // headersToDownstreamOnDeny: both cookies and the content type; nothing else.
    assert_eq!(
        values(&response, "set-cookie"),
        ["flow=abc; Path=/; HttpOnly", "flow2=def; Path=/"]
    );
    assert_eq!(values(&response, "content-type"), ["text/html"]);
    assert!(values(&response, "x-not-for-client").is_empty());
    assert_eq!(response.text().await.unwrap(), "<a>login</a>");
    assert!(s.app.lock().unwrap().is_empty(), "the app was reached");

    // The check request: same method and path (no prefix), the original Host, only the
    // listed headers, and x-forwarded-proto set by the gateway from the connection's scheme.
    let checks = s.authz.lock().unwrap().clone();
    assert_eq!(checks.len(), 1, "{checks:?}");
    let check = &checks[0];
    assert_eq!(check.method, "GET");
    assert_eq!(check.uri, "/private?x=1");
    assert_eq!(
        check.header("host"),
        Some(format!("{SEED_APP_HOST}:{}", s.port).as_str()),
        "{check:?}"
    );
    assert_eq!(check.header("x-forwarded-proto"), Some("http"), "{check:?}");
    assert!(check.header("x-random").is_none(), "{check:?}");
    assert!(check.header("cookie").is_none(), "{check:?}");
}

#[tokio::test]
async fn http_mode_allows_and_sets_identity_headers() {
    let s = stack(http_authz).await;
    let response = client(s.port)
        .get(format!("http://{SEED_APP_HOST}:{}/app/page", s.port))
        .header("cookie", "a=b; ok=1")
        .header("authorization", "Basic bWFsbG9yeTp4")
        .header("x-forwarded-host", "nginx.example.com")
        .header("x-auth-request-user", "mallory")
        .header("X-Auth-Request-Groups", "admins")
        .header("x-auth-request-email", "mallory@evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // headersToDownstreamOnAllow: the refreshed cookie reaches the client.
    assert_eq!(
        values(&response, "set-cookie"),
        ["refreshed=1; Path=/; HttpOnly"]
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["upstream"], "app");

    let upstream = s.app.lock().unwrap()[0].clone();
    // The authz server's identity overwrites the client's.
    assert_eq!(upstream.header("x-auth-request-user"), Some("alice"));
    assert_eq!(
        upstream.header("x-auth-request-email"),
        Some("alice@example.com")
    );
    assert_eq!(
        upstream.header("authorization"),
        Some("Bearer token-of-alice")
    );
    // x-envoy-auth-headers-to-remove removes a client header the authz server did not set.
    assert!(
        upstream.header("x-auth-request-groups").is_none(),
        "{upstream:?}"
    );
    // Headers outside headersToUpstreamOnAllow do not pass.
    assert!(
        upstream.header("x-not-for-upstream").is_none(),
        "{upstream:?}"
    );
    assert!(
        upstream.header("x-envoy-auth-headers-to-remove").is_none(),
        "{upstream:?}"
    );
    assert_eq!(upstream.header("cookie"), Some("a=b; ok=1"));
    assert_eq!(
        upstream.header("host"),
        Some(format!("{SEED_APP_HOST}:{}", s.port).as_str())
    );

    let check = s.authz.lock().unwrap()[0].clone();
    assert_eq!(check.header("cookie"), Some("a=b; ok=1"));
    assert_eq!(check.header("authorization"), Some("Basic bWFsbG9yeTp4"));
    assert_eq!(check.header("x-forwarded-host"), Some("nginx.example.com"));
    assert!(check.header("x-auth-request-user").is_none(), "{check:?}");
}

#[tokio::test]
async fn a_client_identity_header_survives_unless_set_or_removed() {
    // The reason identity headers must always be set or removed by the adapter: Envoy passes
    // a client's header that the allow response does not mention, including the underscore
    // spelling (Istio leaves headers_with_underscores_action at ALLOW).
    let s = stack(http_authz).await;
    let response = client(s.port)
        .get(format!("http://{SEED_APP_HOST}:{}/", s.port))
        .header("cookie", "ok=1")
        .header("x-auth-request-preferred-username", "mallory")
        .header("x_auth_request_user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let upstream = s.app.lock().unwrap()[0].clone();
    assert_eq!(
        upstream.header("x-auth-request-preferred-username"),
        Some("mallory")
    );
    assert_eq!(upstream.header("x_auth_request_user"), Some("mallory"));
    assert_eq!(upstream.header("x-auth-request-user"), Some("alice"));
}

#[tokio::test]
async fn unprotected_hosts_and_paths_bypass_authz() {
    let s = stack(http_authz).await;
    let client = client(s.port);
    let response = client
        .get(format!("http://{SEED_IDP_HOST}:{}/realms/mytest", s.port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["upstream"], "idp");
    assert_eq!(body["uri"], "/realms/mytest");

    // Without a port in Host too.
    let response = client
        .get(format!("http://{SEED_IDP_HOST}:{}/x", s.port))
        .header("host", SEED_IDP_HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(s.idp.lock().unwrap().len(), 2);

    // notPaths-style prefix on the protected host.
    let response = client
        .get(format!("http://{SEED_APP_HOST}:{}/public/logo.png", s.port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(s.app.lock().unwrap().len(), 1);
    assert!(s.authz.lock().unwrap().is_empty(), "authz was asked");

    // Any other host: 404 from the gateway.
    let response = client
        .get(format!("http://other.example.com:{}/", s.port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The admin listener answers at `admin_url`: Envoy is live, and its router counted the
    // requests above (2 to the IdP cluster, 1 to the app's, the 404 to none).
    let admin = client
        .get(s.envoy.admin_url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    assert_eq!(admin.text().await.unwrap().trim(), "LIVE");
    let stats = client
        .get(s.envoy.admin_url("/stats?filter=upstream_rq_total$"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut totals: Vec<u64> = stats
        .lines()
        .filter_map(|l| l.split_once(": ")?.1.parse().ok())
        .filter(|n| *n > 0)
        .collect();
    totals.sort_unstable();
    assert_eq!(totals, [1, 2], "{stats}");
}

#[tokio::test]
async fn an_unreachable_authz_server_fails_closed_with_403() {
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let s = stack(|_| http_authz(closed)).await;
    let response = client(s.port)
        .get(format!("http://{SEED_APP_HOST}:{}/", s.port))
        .header("cookie", "ok=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(s.app.lock().unwrap().is_empty());
}

#[tokio::test]
async fn grpc_mode_config_is_accepted_and_fails_closed_without_a_server() {
    // No gRPC server yet (a later issue): the rendering must load, protect the app host and
    // leave the IdP host alone.
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let s = stack(|_| AuthzTarget::Grpc {
        addr: closed,
        timeout: Duration::from_secs(2),
    })
    .await;
    let client = client(s.port);
    let response = client
        .get(format!("http://{SEED_APP_HOST}:{}/", s.port))
        .header("cookie", "ok=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(s.app.lock().unwrap().is_empty());
    let response = client
        .get(format!("http://{SEED_IDP_HOST}:{}/", s.port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn several_envoys_run_side_by_side() {
    let (app_addr, _) = echo_upstream("app").await;
    let mut envoys = Vec::new();
    for _ in 0..3 {
        let mut config = EnvoyConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            http_authz(SocketAddr::from(([127, 0, 0, 1], free_port()))),
        );
        config
            .hosts
            .push(VirtualHost::unprotected("app.test", app_addr));
        envoys.push(Envoy::start(&config.render()).await);
    }
    let admins: std::collections::BTreeSet<_> = envoys.iter().map(|e| e.admin).collect();
    assert_eq!(admins.len(), 3);
    let client = client(0);
    for envoy in &envoys {
        let response = client
            .get(format!("http://{}/", envoy.listener()))
            .header("host", "app.test")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
#[should_panic(expected = "did not start")]
async fn a_bad_config_panics_with_the_log() {
    // A listener port of 0 is fine, but an unknown cluster is not.
    let config = json!({
        "static_resources": {
            "clusters": [{ "name": "c", "type": "NO_SUCH_TYPE" }],
        },
    });
    Envoy::start(&config.to_string()).await;
}
