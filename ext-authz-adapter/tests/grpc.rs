//! gRPC ext_authz (`envoy.service.auth.v3.Authorization/Check`): the adapter's gRPC server
//! in-process, with the seed's flags, against a real provider (node oidc-provider), called
//! with a tonic client as Envoy calls it; and the same login through a real Envoy 1.40 in
//! gRPC mode (`OIDC_AUTHZ_ENVOY`, set by `cargo xtask test`).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{HOST, engine, login_at_provider, provider_for};
use envoy_bootstrap::{AuthzTarget, EnvoyConfig, VirtualHost};
use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use ext_authz_adapter::grpc::{
    CheckResponse, DeniedHttpResponse, HeaderAppendAction, HttpResponse, OkHttpResponse, code,
};
use oidc_core::Engine;
use reqwest::cookie::CookieStore;
use test_support::envoy::Envoy;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use url::Url;

/// The gRPC server on a loopback port; stops when the returned sender is dropped.
async fn start_grpc(engine: Engine) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(ext_authz_adapter::grpc::serve(listener, engine, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

async fn grpc_client(addr: SocketAddr) -> AuthorizationClient<Channel> {
    AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// A browser seen through Envoy's eyes: the cookie jar of [`common::Browser`] for
/// `http://nginx.example.com:<port>`, whose requests reach the adapter as gRPC checks.
struct Browser {
    web: common::Browser,
    base: Url,
    authority: String,
}

impl Browser {
    fn new(port: u16) -> Browser {
        let authority = format!("{HOST}:{port}");
        Browser {
            web: common::client(port),
            base: format!("http://{authority}/").parse().unwrap(),
            authority,
        }
    }

    /// The CheckRequest Envoy sends for `GET <target>` from this browser (all headers,
    /// lower-cased, with Envoy's pseudo-headers and x-forwarded-proto).
    fn check_request(&self, target: &str, headers: &[(&str, &str)]) -> CheckRequest {
        let mut map: HashMap<String, String> = [
            (":authority", self.authority.as_str()),
            (":path", target),
            (":method", "GET"),
            (":scheme", "http"),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "2b5c5ef3-0c1c-4e55-9b0a-6f0d1b1b7d6e"),
            ("user-agent", "grpc-test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(cookie) = self.web.jar.cookies(&self.base) {
            map.insert("cookie".into(), cookie.to_str().unwrap().to_owned());
        }
        for (k, v) in headers {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        id: "1".into(),
                        method: "GET".into(),
                        headers: map,
                        path: target.into(),
                        host: self.authority.clone(),
                        scheme: "http".into(),
                        protocol: "HTTP/1.1".into(),
                        size: -1,
                        ..HttpRequest::default()
                    }),
                    ..Request::default()
                }),
                ..AttributeContext::default()
            }),
        }
    }

    async fn check(
        &self,
        client: &mut AuthorizationClient<Channel>,
        target: &str,
        headers: &[(&str, &str)],
    ) -> CheckResponse {
        let response = client
            .check(self.check_request(target, headers))
            .await
            .unwrap()
            .into_inner();
        // Keep what the browser would keep.
        let set_cookies: Vec<String> = match &response.http_response {
            Some(HttpResponse::DeniedResponse(d)) => values(&d.headers, "set-cookie"),
            Some(HttpResponse::OkResponse(ok)) => values(&ok.response_headers_to_add, "set-cookie"),
            _ => Vec::new(),
        };
        for c in set_cookies {
            self.web.jar.add_cookie_str(&c, &self.base);
        }
        response
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.web.cookie(self.base.as_str(), name)
    }

    /// Logs `user` in at the provider from `authorize` (the Location of the
    /// redirect to it) and brings the callback back through Check, as Envoy
    /// does. Returns the callback's response.
    async fn finish_login(
        &self,
        grpc: &mut AuthorizationClient<Channel>,
        authorize: &str,
        user: &str,
    ) -> CheckResponse {
        let callback = login_at_provider(&self.web, authorize, user).await;
        let callback = Url::parse(&callback).unwrap();
        assert_eq!(callback.path(), "/oauth2/callback", "{callback}");
        let target = format!("/oauth2/callback?{}", callback.query().unwrap());
        self.check(grpc, &target, &[("accept", "text/html")]).await
    }
}

fn values(headers: &[HeaderValueOption], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .filter(|h| h.key == name)
        .map(|h| h.value.clone())
        .collect()
}

fn action(headers: &[HeaderValueOption], name: &str) -> Vec<i32> {
    headers
        .iter()
        .filter(|h| h.header.as_ref().is_some_and(|h| h.key == name))
        .map(|h| h.append_action)
        .collect()
}

#[allow(deprecated)]
fn no_deprecated_append(headers: &[HeaderValueOption]) -> bool {
    headers.iter().all(|h| h.append.is_none())
}

fn denied(response: &CheckResponse) -> &DeniedHttpResponse {
    match &response.http_response {
        Some(HttpResponse::DeniedResponse(d)) => d,
        other => panic!("expected a denied response, got {other:?}"),
    }
}

fn allowed(response: &CheckResponse) -> &OkHttpResponse {
    assert_eq!(
        response.status.as_ref().map(|s| s.code),
        Some(code::OK),
        "{response:?}"
    );
    match &response.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("expected an OK response, got {other:?}"),
    }
}

fn grpc_code(response: &CheckResponse) -> i32 {
    response.status.as_ref().map_or(0, |s| s.code)
}

fn http_status(d: &DeniedHttpResponse) -> i32 {
    d.status.as_ref().map_or(0, |s| s.code)
}

const OVERWRITE: i32 = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
const APPEND: i32 = HeaderAppendAction::AppendIfExistsOrAdd as i32;

#[tokio::test]
async fn login_and_allow_through_grpc_check() {
    let port = common::port(); // the public port in the Host header; nothing listens there
    let idp = provider_for(port).await;
    let engine = engine(
        &idp.issuer,
        &[
            "--set-xauthrequest=true",
            "--pass-access-token",
            "--scope=openid email profile groups",
        ],
    )
    .await;
    let (addr, _stop) = start_grpc(engine).await;
    let mut grpc = grpc_client(addr).await;
    let browser = Browser::new(port);

    // A navigation without a session: 302 to the provider, with the flow cookie.
    let r = browser
        .check(&mut grpc, "/some/page?x=1", &[("accept", "text/html")])
        .await;
    assert_eq!(grpc_code(&r), code::UNAUTHENTICATED);
    let d = denied(&r);
    assert_eq!(http_status(d), 302);
    let location = values(&d.headers, "location");
    assert_eq!(location.len(), 1, "{d:?}");
    let authorize = location[0].clone();
    common::assert_authorize_url(&authorize, &idp.issuer, port);
    let flow = values(&d.headers, "set-cookie");
    assert!(
        flow.iter()
            .any(|c| c.starts_with("auth_csrf_") && c.contains("HttpOnly")),
        "{flow:?}"
    );
    assert!(
        action(&d.headers, "set-cookie")
            .iter()
            .all(|a| *a == APPEND)
    );
    assert!(no_deprecated_append(&d.headers));
    assert!(
        d.headers
            .iter()
            .all(|h| h.header.as_ref().unwrap().key != "content-length"),
        "Envoy frames the body itself"
    );

    // An API call without a session: 401, never a redirect.
    let r = browser
        .check(
            &mut grpc,
            "/api/items",
            &[("accept", "application/json"), ("sec-fetch-mode", "cors")],
        )
        .await;
    assert_eq!(grpc_code(&r), code::UNAUTHENTICATED);
    let d = denied(&r);
    assert_eq!(http_status(d), 401);
    assert_eq!(values(&d.headers, "www-authenticate"), ["Bearer"]);
    assert!(d.body.contains("unauthorized"), "{}", d.body);

    // Log in at the provider; the callback comes back through Check, as in Envoy.
    let r = browser.finish_login(&mut grpc, &authorize, "alice").await;
    let d = denied(&r);
    assert_eq!(http_status(d), 302, "{}", d.body);
    assert_ne!(grpc_code(&r), code::OK);
    assert_eq!(values(&d.headers, "location"), ["/some/page?x=1"]);
    common::assert_session_started(&values(&d.headers, "set-cookie"));
    assert!(
        action(&d.headers, "set-cookie")
            .iter()
            .all(|a| *a == APPEND)
    );
    assert!(browser.cookie("auth").is_some());

    // With the session, and forged identity headers in both spellings: allowed.
    let r = browser
        .check(
            &mut grpc,
            "/some/page",
            &[
                ("accept", "text/html"),
                ("x-auth-request-user", "mallory"),
                ("x_auth_request_email", "mallory@example.com"),
            ],
        )
        .await;
    let ok = allowed(&r);
    assert_eq!(
        values(&ok.headers, "x-auth-request-email"),
        ["alice@example.com"]
    );
    assert_eq!(values(&ok.headers, "x-auth-request-user"), ["alice"]);
    assert_eq!(
        values(&ok.headers, "x-auth-request-preferred-username"),
        ["alice"]
    );
    assert_eq!(
        values(&ok.headers, "x-auth-request-groups"),
        ["users,alice-group"]
    );
    assert_eq!(values(&ok.headers, "x-auth-request-access-token").len(), 1);
    let bearer = values(&ok.headers, "authorization");
    assert!(
        bearer.len() == 1 && bearer[0].starts_with("Bearer ey"),
        "{bearer:?}"
    );
    // Set with OVERWRITE: the client's x-auth-request-user is replaced, never joined.
    assert!(
        ok.headers.iter().all(|h| h.append_action == OVERWRITE),
        "{ok:?}"
    );
    assert!(no_deprecated_append(&ok.headers));
    for forged in [
        "x_auth_request_user",
        "x_auth_request_email",
        "x-forwarded-user",
    ] {
        assert!(
            ok.headers_to_remove.iter().any(|h| h == forged),
            "{forged} not removed: {:?}",
            ok.headers_to_remove
        );
    }
    assert!(
        !ok.headers_to_remove
            .iter()
            .any(|h| h == "x-auth-request-user"),
        "set headers are overwritten, not removed"
    );
    assert!(ok.response_headers_to_add.is_empty(), "no refresh due");

    // oauth2-proxy's endpoints answer through Check too (as a denied response).
    let r = browser.check(&mut grpc, "/oauth2/userinfo", &[]).await;
    let d = denied(&r);
    assert_eq!(http_status(d), 200);
    let info: serde_json::Value = serde_json::from_str(&d.body).unwrap();
    assert_eq!(info["email"], "alice@example.com");
}

#[tokio::test]
async fn a_refreshed_session_cookie_goes_back_on_allow() {
    let port = common::port();
    let idp = provider_for(port).await;
    let engine = engine(&idp.issuer, &["--cookie-refresh=1s", "--set-xauthrequest"]).await;
    let (addr, _stop) = start_grpc(engine).await;
    let mut grpc = grpc_client(addr).await;
    let browser = Browser::new(port);

    let r = browser
        .check(&mut grpc, "/", &[("accept", "text/html")])
        .await;
    let authorize = values(&denied(&r).headers, "location").remove(0);
    let r = browser.finish_login(&mut grpc, &authorize, "alice").await;
    assert_eq!(http_status(denied(&r)), 302);
    let first = browser.cookie("auth").unwrap();

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = browser
        .check(&mut grpc, "/p", &[("accept", "application/json")])
        .await;
    let ok = allowed(&r);
    assert_eq!(values(&ok.headers, "x-auth-request-user"), ["alice"]);
    let refreshed = values(&ok.response_headers_to_add, "set-cookie");
    assert!(
        refreshed
            .iter()
            .any(|c| c.starts_with("auth=") && !c.contains("Max-Age=0")),
        "the refreshed session cookie goes to the browser: {ok:?}"
    );
    assert!(
        action(&ok.response_headers_to_add, "set-cookie")
            .iter()
            .all(|a| *a == APPEND)
    );
    assert!(no_deprecated_append(&ok.response_headers_to_add));
    assert_ne!(browser.cookie("auth").unwrap(), first);
}

#[tokio::test]
async fn malformed_check_requests() {
    let port = common::port();
    let idp = provider_for(port).await;
    let engine = engine(&idp.issuer, &[]).await;
    let (addr, _stop) = start_grpc(engine).await;
    let mut grpc = grpc_client(addr).await;

    // No HTTP attributes at all: a gRPC error (Envoy answers with its status_on_error).
    let err = grpc.check(CheckRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // A check of `path` and `query` as Envoy's attributes carry them.
    let with_target = |path: &str, query: &str| {
        let mut request = Browser::new(port).check_request("/ok", &[]);
        let http = request
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
            .expect("a check request has HTTP attributes");
        http.path = path.into();
        http.query = query.into();
        request
    };

    // A request target no HTTP server would accept: 400.
    let r = grpc
        .check(with_target("/a b", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc_code(&r), code::INVALID_ARGUMENT);
    assert_eq!(http_status(denied(&r)), 400);

    // The 400 names the bad path, never its query: a token in it stays out of the answer.
    for (path, query) in [
        ("/a b?access_token=SECRET-TOKEN-1", ""),
        ("/a b", "code=SECRET-TOKEN-1"),
    ] {
        let r = grpc
            .check(with_target(path, query))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(http_status(denied(&r)), 400);
        let body = &denied(&r).body;
        assert!(body.contains("/a b"), "{body}");
        assert!(!body.contains("SECRET-TOKEN"), "the query leaked: {body}");
    }
}

/// `--reverse-proxy` and `--trusted-proxy-ip` in gRPC mode: the peer is the gRPC client
/// (Envoy), here 127.0.0.1. Without `--reverse-proxy` nothing forwarded counts.
#[tokio::test]
async fn forwarded_headers_count_only_from_a_trusted_grpc_client() {
    let port = common::port();
    let idp = provider_for(port).await;
    let login_redirect = |r: &CheckResponse| -> String {
        let d = denied(r);
        assert_eq!(http_status(d), 302);
        values(&d.headers, "location").concat()
    };
    let forged = [
        ("accept", "text/html"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-proto", "https"),
    ];
    for (trusted, reverse_proxy, expected) in [
        (
            "127.0.0.1",
            true,
            "redirect_uri=https%3A%2F%2Fapp.example.com%2Foauth2%2Fcallback",
        ),
        (
            "192.0.2.0/24",
            true,
            "redirect_uri=http%3A%2F%2Fnginx.example.com",
        ),
        (
            "127.0.0.1",
            false,
            "redirect_uri=http%3A%2F%2Fnginx.example.com",
        ),
    ] {
        let flag = format!("--trusted-proxy-ip={trusted}");
        let proxy = format!("--reverse-proxy={reverse_proxy}");
        let engine = engine(&idp.issuer, &[flag.as_str(), proxy.as_str()]).await;
        let (addr, _stop) = start_grpc(engine).await;
        let mut grpc = grpc_client(addr).await;
        let r = Browser::new(port).check(&mut grpc, "/", &forged).await;
        let location = login_redirect(&r);
        assert!(
            location.contains(expected),
            "{trusted}, --reverse-proxy={reverse_proxy}: {location}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Through a real Envoy in gRPC mode.

#[tokio::test]
async fn through_envoy_in_grpc_mode() {
    let port = common::port(); // Envoy's listener: the gateway the browser talks to
    let idp = provider_for(port).await;
    let engine = engine(
        &idp.issuer,
        &[
            "--set-xauthrequest=true",
            "--cookie-refresh=2s",
            "--scope=openid email profile groups",
        ],
    )
    .await;
    let (authz, _stop) = start_grpc(engine).await;
    let (app, seen) = common::recording_app().await;
    let mut config = EnvoyConfig::new(
        SocketAddr::from(([127, 0, 0, 1], port)),
        AuthzTarget::Grpc {
            addr: authz,
            timeout: Duration::from_secs(5),
        },
    );
    config.hosts.push(VirtualHost::protected(HOST, app));
    let envoy = Envoy::start(&config.render()).await;
    let c = common::client(port);
    let base = format!("http://{HOST}:{port}");

    // Navigation: 302 to the provider, redirect_uri built from what Envoy saw.
    let r = c
        .get(format!("{base}/some/page?x=1"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", envoy.log_tail());
    let authorize = common::location(r.headers());
    common::assert_authorize_url(&authorize, &idp.issuer, port);
    assert!(
        common::set_cookies(r.headers())
            .iter()
            .any(|c| c.starts_with("auth_csrf_")),
        "{:?}",
        r.headers()
    );

    // API call: 401 with WWW-Authenticate and the JSON body.
    let r = c
        .get(format!("{base}/api/items"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(r.text().await.unwrap().contains("unauthorized"));

    // The callback through Envoy: 302 back, with both Set-Cookie headers intact.
    let callback = login_at_provider(&c, &authorize, "alice").await;
    assert!(
        callback.starts_with(&format!("{base}/oauth2/callback?")),
        "{callback}"
    );
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(common::location(r.headers()), "/some/page?x=1");
    // Several Set-Cookie headers survive Envoy's denied response.
    common::assert_session_started(&common::set_cookies(r.headers()));
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the app yet"
    );

    // Logged in, with forged identity headers: the app sees only Alice's.
    let r = c
        .get(format!("{base}/some/page?x=1"))
        .header("accept", "text/html")
        .header("x-auth-request-user", "mallory")
        .header("x_auth_request_email", "mallory@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", envoy.log_tail());
    assert_eq!(r.text().await.unwrap(), "app");
    let headers = seen.lock().unwrap().last().cloned().unwrap().headers;
    assert_eq!(headers["x-auth-request-user"], ["alice"], "{headers:?}");
    assert_eq!(headers["x-auth-request-email"], ["alice@example.com"]);
    assert_eq!(headers["x-auth-request-groups"], ["users,alice-group"]);
    assert!(!headers.contains_key("x_auth_request_email"), "{headers:?}");
    assert!(!headers.contains_key("x_auth_request_user"), "{headers:?}");

    // A due refresh: the new session cookie reaches the browser on an allowed request.
    let before = c.cookie(&base, "auth").unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = c
        .get(format!("{base}/later"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refreshed = common::set_cookies(r.headers());
    assert!(
        refreshed.iter().any(|c| c.starts_with("auth=")),
        "refreshed cookie via response_headers_to_add: {:?}",
        r.headers()
    );
    assert_ne!(c.cookie(&base, "auth").unwrap(), before);
    drop(envoy);
}

/// The binary itself serves gRPC on `--grpc-address` next to HTTP, with the same engine.
#[tokio::test]
async fn the_binary_serves_grpc_on_grpc_address() {
    let http_port = common::port();
    let grpc_port = common::port();
    let idp = provider_for(http_port).await;
    let grpc_flag = format!("--grpc-address=127.0.0.1:{grpc_port}");
    let adapter = common::Adapter::start(&idp.issuer, http_port, &[grpc_flag.as_str()]).await;
    let _ = &adapter;
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = AuthorizationClient::connect(format!("http://127.0.0.1:{grpc_port}")).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("gRPC port answers");
    let browser = Browser::new(http_port);
    let response = browser
        .check(&mut client, "/page", &[("accept", "text/html")])
        .await;
    assert_eq!(http_status(denied(&response)), 302);
    let location = values(&denied(&response).headers, "location");
    assert!(location[0].starts_with(&idp.issuer), "{location:?}");
}
