//! The rendered Envoy configuration in a real Envoy 1.40, with an in-process upstream and a
//! fake ext_authz server (allow if cookie `ok=1`, else 302 + Set-Cookie): what the adapter can
//! rely on in HTTP mode, that the gRPC rendering is accepted and calls a gRPC server, that the
//! adapter's prefix is routed to the adapter in both modes, and that the EnvoyFilter that
//! `ext-authz-adapter istio` renders for header names with underscores works in Envoy.
//!
//! Needs `OIDC_AUTHZ_ENVOY` (set by `cargo xtask test`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use envoy_bootstrap::{AuthzTarget, EnvoyConfig, SEED_APP_HOST, SEED_IDP_HOST, VirtualHost};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use istio_manifests::envoy_contract::ADAPTER_PREFIX;
use istio_manifests::yaml::{Lines, Node, Value as YamlValue, parse_documents};
use istio_manifests::{Part, Settings, render_parts};
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

fn has_ok_cookie(headers: &BTreeMap<String, Vec<String>>) -> bool {
    headers
        .get("cookie")
        .is_some_and(|c| c.iter().any(|c| c.split("; ").any(|kv| kv == "ok=1")))
}

/// The fake authz server: allows when the cookie has `ok=1`. Like the adapter, it answers its
/// own `/oauth2/userinfo` itself, as a check and when the gateway routes the request to it:
/// 200 with JSON (and every identity header to remove) with the cookie, 401 without.
async fn fake_authz() -> (SocketAddr, Log) {
    serve(|seen| {
        let allowed = has_ok_cookie(&seen.headers);
        if seen.uri.starts_with("/oauth2/userinfo") {
            let (status, body) = if allowed {
                (
                    200,
                    json!({ "from": "adapter", "email": "alice@example.com" }),
                )
            } else {
                (401, json!({ "error": "unauthorized" }))
            };
            return Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header(
                    "x-envoy-auth-headers-to-remove",
                    "x-auth-request-user,x-auth-request-email",
                )
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap();
        }
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
    stack_with(authz_target, |config, _| config).await
}

/// [`stack`], with the rendered configuration changed by `edit` (given the fake authz
/// server's address) before Envoy starts.
async fn stack_with(
    authz_target: impl FnOnce(SocketAddr) -> AuthzTarget,
    edit: impl FnOnce(EnvoyConfig, SocketAddr) -> EnvoyConfig,
) -> Stack {
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
    let config = edit(config, authz_addr);
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
    // A client's X-Forwarded-Host is not in the check's header list: the adapter judges the
    // Host Envoy routes by.
    assert!(check.header("x-forwarded-host").is_none(), "{check:?}");
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
    // No gRPC server listening: the rendering must load, protect the app host (fail closed)
    // and leave the IdP host alone.
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

/// The demo's and Istio's routing of the adapter's prefix, in HTTP mode: `/oauth2/` of the
/// protected host goes to the adapter's HTTP port, still behind the check. `/oauth2/userinfo`
/// answered 200 by the check is an allow for Envoy, which then forwards the request to the
/// adapter (not the application), so the browser gets the adapter's JSON.
#[tokio::test]
async fn http_mode_routes_the_adapter_prefix_to_the_adapter() {
    let s = stack_with(http_authz, |config, authz| {
        config.with_adapter_routes(ADAPTER_PREFIX, authz)
    })
    .await;
    let client = client(s.port);
    let userinfo = format!("http://{SEED_APP_HOST}:{}/oauth2/userinfo", s.port);
    let response = client
        .get(&userinfo)
        .header("cookie", "ok=1")
        .header("x-random", "for the routed request only")
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["from"], "adapter", "{body}");
    assert!(
        s.app.lock().unwrap().is_empty(),
        "the app answered userinfo"
    );
    // Two requests reached the adapter: the check (listed headers only), then the request
    // itself, routed there, with the client's identity header removed as the check said.
    let seen = s.authz.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let (check, routed) = (&seen[0], &seen[1]);
    assert_eq!(check.uri, "/oauth2/userinfo");
    assert!(check.header("x-random").is_none(), "{check:?}");
    assert_eq!(routed.uri, "/oauth2/userinfo");
    assert_eq!(
        routed.header("x-random"),
        Some("for the routed request only")
    );
    assert!(routed.header("x-auth-request-user").is_none(), "{routed:?}");
    assert_eq!(
        routed.header("host"),
        Some(format!("{SEED_APP_HOST}:{}", s.port).as_str())
    );

    // Without a session: the check's 401 is the answer; nothing is routed.
    let response = client.get(&userinfo).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.authz.lock().unwrap().len(), 3);

    // Only the prefix: `/oauth2x` and the rest still go to the application, checked.
    for path in ["/oauth2x", "/", "/oauth2"] {
        let response = client
            .get(format!("http://{SEED_APP_HOST}:{}{path}", s.port))
            .header("cookie", "ok=1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["upstream"], "app", "{path}: {body}");
    }
    assert_eq!(s.app.lock().unwrap().len(), 3);
    assert_eq!(s.authz.lock().unwrap().len(), 6, "each of them was checked");

    // The IdP's host has no such route: its /oauth2/ is the IdP's.
    let response = client
        .get(format!("http://{SEED_IDP_HOST}:{}/oauth2/userinfo", s.port))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["upstream"], "idp", "{body}");

    // Without the route (the seed's Envoy as it was): the application answers the adapter's
    // 200, the walk-around the route closes.
    let plain = stack(http_authz).await;
    let response = self::client(plain.port)
        .get(format!(
            "http://{SEED_APP_HOST}:{}/oauth2/userinfo",
            plain.port
        ))
        .header("cookie", "ok=1")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["upstream"], "app", "{body}");
}

/// The same in gRPC mode: the check goes to the gRPC port, and `/oauth2/` of the protected host
/// to the adapter's HTTP port (the gRPC port speaks only the Check service). The fake gRPC
/// server allows with the cookie `ok=1` (the adapter itself answers its endpoints in the check;
/// an allow shows where Envoy routes an allowed request).
#[tokio::test]
async fn grpc_mode_routes_the_adapter_prefix_to_the_adapters_http_port() {
    let (grpc_addr, checks) = fake_grpc_authz().await;
    let (adapter_http, adapter_seen) = echo_upstream("adapter-http").await;
    let s = stack_with(
        |_| AuthzTarget::Grpc {
            addr: grpc_addr,
            timeout: Duration::from_secs(5),
        },
        |config, _| config.with_adapter_routes(ADAPTER_PREFIX, adapter_http),
    )
    .await;
    let client = client(s.port);
    let get = |path: &str, cookie: bool| {
        let mut request = client.get(format!("http://{SEED_APP_HOST}:{}{path}", s.port));
        if cookie {
            request = request.header("cookie", "ok=1");
        }
        request.send()
    };
    let response = get("/oauth2/userinfo", true).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["upstream"], "adapter-http", "{body}");
    assert_eq!(body["uri"], "/oauth2/userinfo");
    let response = get("/app/page", true).await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["upstream"], "app", "{body}");
    // Denied: the denied response, nothing routed.
    let response = get("/oauth2/userinfo", false).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.text().await.unwrap(), "denied by the fake");
    assert_eq!(adapter_seen.lock().unwrap().len(), 1);
    assert_eq!(s.app.lock().unwrap().len(), 1);
    assert!(
        s.authz.lock().unwrap().is_empty(),
        "no HTTP check in gRPC mode"
    );
    // Every request was checked over gRPC, with its path and (all) its headers.
    let checks = checks.lock().unwrap().clone();
    let paths: Vec<&str> = checks.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/oauth2/userinfo", "/app/page", "/oauth2/userinfo"]);
    assert_eq!(
        checks[0].1.get("cookie").map(String::as_str),
        Some("ok=1"),
        "{checks:?}"
    );
}

/// The EnvoyFilter `ext-authz-adapter istio` renders, applied as Istio applies a MERGE patch to
/// the gateway's HTTP connection manager: Envoy then refuses a header name with an underscore
/// (400) before the check, and serves the rest as before. The gateway of the other tests keeps
/// Envoy's default (ALLOW), as a default Istio installation does.
#[tokio::test]
async fn the_rendered_envoy_filter_makes_the_gateway_refuse_underscores() {
    let yaml = render_parts(&Settings::seed(), &[Part::EnvoyFilter]);
    let docs = parse_documents(&yaml, Lines::Offset(0));
    let filter = docs[0].root.as_ref().unwrap();
    let patch = &filter.path(&["spec", "configPatches"]).unwrap().items()[0];
    assert_eq!(patch.str_at(&["applyTo"]), Some("NETWORK_FILTER"));
    assert_eq!(
        patch.str_at(&["match", "listener", "filterChain", "filter", "name"]),
        Some("envoy.filters.network.http_connection_manager")
    );
    assert_eq!(patch.str_at(&["patch", "operation"]), Some("MERGE"));
    let value = to_json(patch.path(&["patch", "value"]).unwrap());

    // The seed's bootstrap with the patch merged into the HCM's typed_config.
    let (authz_addr, authz) = fake_authz().await;
    let (app_addr, app) = echo_upstream("app").await;
    let config = EnvoyConfig::seed(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        http_authz(authz_addr),
        app_addr,
        app_addr,
    );
    let mut bootstrap = config.to_json();
    let filter =
        &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
    assert_eq!(
        filter["name"],
        "envoy.filters.network.http_connection_manager"
    );
    assert_eq!(
        filter["typed_config"]["@type"], value["typed_config"]["@type"],
        "the patch is for this filter's type"
    );
    merge(filter, &value);
    assert_eq!(
        filter["typed_config"]["common_http_protocol_options"]["headers_with_underscores_action"],
        "REJECT_REQUEST"
    );
    let envoy = Envoy::start(&bootstrap.to_string()).await;
    let port = envoy.listener().port();
    let client = client(port);
    let url = format!("http://{SEED_APP_HOST}:{port}/");
    let response = client
        .get(&url)
        .header("cookie", "ok=1")
        .header("x_auth_request_user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(authz.lock().unwrap().is_empty(), "refused before the check");
    assert!(app.lock().unwrap().is_empty());
    // Without an underscore: checked and served as before.
    let response = client
        .get(&url)
        .header("cookie", "ok=1")
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.lock().unwrap()[0].header("x-auth-request-user"),
        Some("alice")
    );
}

/// A YAML node (as the linter reads it) as JSON: scalars as strings.
fn to_json(node: &Node) -> Value {
    match &node.value {
        YamlValue::Scalar { text, .. } => Value::String(text.clone()),
        YamlValue::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        YamlValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), to_json(v)))
                .collect(),
        ),
    }
}

/// Merges `patch` into `target` as Istio's EnvoyFilter MERGE does for messages: objects field
/// by field, anything else replaced.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// What the fake gRPC server saw: each check's path and headers.
type Checks = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// A minimal `envoy.service.auth.v3.Authorization/Check` server over h2c, with protobuf read
/// and written by hand (test-support has no gRPC stack): allows (gRPC `OK`, no headers) when
/// the cookie has `ok=1`, else denies with 401 and a text body.
async fn fake_grpc_authz() -> (SocketAddr, Checks) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let checks: Checks = Arc::default();
    let task_checks = checks.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let checks = task_checks.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let checks = checks.clone();
                    async move {
                        assert_eq!(
                            request.uri().path(),
                            "/envoy.service.auth.v3.Authorization/Check"
                        );
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        // gRPC framing: compressed flag, 4-byte length, the message.
                        let (path, headers) = read_check_request(&body[5..]);
                        let allowed = headers
                            .get("cookie")
                            .is_some_and(|c| c.split("; ").any(|kv| kv == "ok=1"));
                        checks.lock().unwrap().push((path, headers));
                        let message = if allowed {
                            // CheckResponse { status: { code: OK } }
                            field(1, &[])
                        } else {
                            // CheckResponse { status: { code: UNAUTHENTICATED },
                            //   denied_response: { status: { code: 401 }, body } }
                            let mut m = field(1, &varint_field(1, 16));
                            let mut denied = field(1, &varint_field(1, 401));
                            denied.extend(field(3, b"denied by the fake"));
                            m.extend(field(2, &denied));
                            m
                        };
                        let mut framed = vec![0];
                        framed.extend(u32::try_from(message.len()).unwrap().to_be_bytes());
                        framed.extend(message);
                        let mut trailers = hyper::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let response = Response::builder()
                            .header("content-type", "application/grpc")
                            .body(GrpcBody {
                                data: Some(Bytes::from(framed)),
                                trailers: Some(trailers),
                            })
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    (addr, checks)
}

/// A gRPC response body: one message, then the trailers.
struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<hyper::HeaderMap>,
}

impl hyper::body::Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Ready(None)
    }
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A length-delimited protobuf field.
fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = varint(number << 3 | 2);
    out.extend(varint(bytes.len() as u64));
    out.extend(bytes);
    out
}

fn varint_field(number: u64, value: u64) -> Vec<u8> {
    let mut out = varint(number << 3);
    out.extend(varint(value));
    out
}

fn read_varint(buf: &mut &[u8]) -> u64 {
    let mut n = 0;
    for shift in (0..64).step_by(7) {
        let (byte, rest) = buf.split_first().expect("a complete varint");
        *buf = rest;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    n
}

/// The length-delimited fields of a message, as `(number, bytes)`; other wire types skipped.
fn fields(mut buf: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = read_varint(&mut buf);
        match key & 7 {
            0 => {
                read_varint(&mut buf);
            }
            1 => buf = &buf[8..],
            2 => {
                let len = usize::try_from(read_varint(&mut buf)).unwrap();
                out.push((key >> 3, &buf[..len]));
                buf = &buf[len..];
            }
            5 => buf = &buf[4..],
            other => panic!("wire type {other}"),
        }
    }
    out
}

fn first(buf: &[u8], number: u64) -> &[u8] {
    fields(buf)
        .into_iter()
        .find(|(n, _)| *n == number)
        .map_or(&[], |(_, b)| b)
}

/// `CheckRequest.attributes(1).request(4).http(2)`: `path` (4) and `headers` (3, a map), or
/// `header_map` (13) when Envoy sends raw headers.
fn read_check_request(message: &[u8]) -> (String, BTreeMap<String, String>) {
    let http = first(first(first(message, 1), 4), 2);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let path = text(first(http, 4));
    let mut headers = BTreeMap::new();
    for (number, entry) in fields(http) {
        match number {
            3 => {
                headers.insert(text(first(entry, 1)), text(first(entry, 2)));
            }
            13 => {
                for (_, header) in fields(entry).into_iter().filter(|(n, _)| *n == 1) {
                    let value = match first(header, 2) {
                        [] => first(header, 3),
                        v => v,
                    };
                    headers.insert(text(first(header, 1)), text(value));
                }
            }
            _ => {}
        }
    }
    (path, headers)
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
