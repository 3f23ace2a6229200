//! The gate cannot be walked around, through the real Envoy in HTTP and gRPC ext_authz modes:
//!
//! - probes: `/ping` and `/ready` of a protected host are checked like any other path,
//!   whatever the method, the host's spelling or the identity headers a client forges; the
//!   kubelet's probe (the pod's address as `Host`) still gets its 200 from the adapter;
//! - paths: a route rule on `^/admin/` also covers every spelling an upstream serves as
//!   `/admin/...` (`//admin`, `/%2Fadmin`, `/public//..%2Fadmin` past a skip-auth route);
//! - hosts: a host rule judges the host Envoy routes by (`Host`, `:authority`), never the
//!   `X-Forwarded-Host` a client writes, with or without `--reverse-proxy`;
//! - identity headers: a client's copies never reach the app, in any mix of `-` and `_`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{HOST, engine, provider_for};
use envoy_bootstrap::{AuthzTarget, EnvoyConfig, VirtualHost};
use oidc_core::Engine;
use test_support::envoy::Envoy;
use tokio::sync::oneshot;

/// The paths and methods a client could try; every one must be checked (no session: denied).
const PROBE_PATHS: &[&str] = &["/ping", "/ready", "/ping?x=1", "/ready?full=1"];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS"];

/// The adapter's HTTP (`http == true`) or gRPC server on a port of its own.
async fn start_adapter(engine: Engine, http: bool) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    if http {
        tokio::spawn(ext_authz_adapter::server::serve(listener, engine, shutdown));
    } else {
        tokio::spawn(ext_authz_adapter::grpc::serve(listener, engine, shutdown));
    }
    (addr, stop)
}

/// A raw HTTP/1.1 request to `addr` with exactly these headers; returns the status code.
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    // By hand: HTTP clients normalise paths (`/a/../b`, `//`) before sending them.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("an answer within 30 s");
    let head = String::from_utf8_lossy(&response);
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

/// The gateway: Envoy on `port` in front of `upstream` for [`HOST`], asking the adapter at
/// `authz` in HTTP or gRPC mode.
async fn gateway(port: u16, authz: SocketAddr, http: bool, upstream: SocketAddr) -> Envoy {
    let target = if http {
        AuthzTarget::Http {
            addr: authz,
            timeout: Duration::from_secs(10),
        }
    } else {
        AuthzTarget::Grpc {
            addr: authz,
            timeout: Duration::from_secs(10),
        }
    };
    let mut config = EnvoyConfig::new(SocketAddr::from(([127, 0, 0, 1], port)), target);
    for host in [HOST, REPORTS, WWW] {
        config.hosts.push(VirtualHost::protected(host, upstream));
    }
    Envoy::start(&config.render()).await
}

/// A second protected host, behind a host rule.
const REPORTS: &str = "reports.example.com";
/// A third protected host, with no rule of its own.
const WWW: &str = "www.example.com";

async fn probes_of_a_protected_host_are_checked(http: bool) {
    let mode = if http { "HTTP" } else { "gRPC" };
    let port = common::port(); // Envoy's listener: the gateway
    let idp = provider_for(port).await;
    let (authz, _stop) = start_adapter(engine(&idp.issuer, &[]).await, http).await;
    let (upstream, seen) = common::recording_app().await;
    let envoy = gateway(port, authz, http, upstream).await;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));

    // The control: an ordinary page of the host is denied without a session, so the 200s
    // below, had there been any, could only come from the probe paths.
    let host_port = format!("{HOST}:{port}");
    let upper = HOST.to_ascii_uppercase();
    for host in [HOST, host_port.as_str(), upper.as_str()] {
        for path in PROBE_PATHS.iter().chain(&["/page"]) {
            for method in METHODS {
                for accept in ["text/html", "application/json"] {
                    let status = send(
                        gateway,
                        method,
                        path,
                        &[
                            ("Host", host),
                            ("Accept", accept),
                            ("User-Agent", "kube-probe/1.31"),
                            ("X-Auth-Request-User", "admin"),
                            ("X-Auth-Request-Email", "admin@example.com"),
                            ("X-Forwarded-Host", "127.0.0.1"),
                        ],
                    )
                    .await;
                    // Navigations go to the login, everything else gets 401 (a CORS
                    // preflight without its headers is no preflight either).
                    let navigation = matches!(*method, "GET" | "HEAD") && accept == "text/html";
                    let expected = if navigation { 302 } else { 401 };
                    assert_eq!(
                        status,
                        expected,
                        "{mode}: {method} {path} Host {host} Accept {accept}: expected {expected}, \
                         got {status}; the app saw {:?}\n{}",
                        common::requests(&seen),
                        envoy.log_tail()
                    );
                }
            }
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{mode}: requests reached the app without a session: {:?}",
        common::requests(&seen)
    );
}

#[tokio::test]
async fn probes_of_a_protected_host_are_checked_in_http_mode() {
    probes_of_a_protected_host_are_checked(true).await;
}

#[tokio::test]
async fn probes_of_a_protected_host_are_checked_in_grpc_mode() {
    probes_of_a_protected_host_are_checked(false).await;
}

/// The seed's `readinessProbe: httpGet /ping port 4180` (Host: the pod's address, User-Agent
/// `kube-probe/...`) and a liveness probe of `/ready` still get their answers.
#[tokio::test]
async fn the_kubelets_probes_still_answer() {
    let idp = provider_for(common::port()).await;
    let (adapter, _stop) = start_adapter(engine(&idp.issuer, &[]).await, true).await;
    let pod = adapter.to_string();
    for path in ["/ping", "/ready"] {
        for host in [pod.as_str(), "localhost:4180", "[::1]:4180"] {
            let status = send(
                adapter,
                "GET",
                path,
                &[("Host", host), ("User-Agent", "kube-probe/1.31")],
            )
            .await;
            assert_eq!(status, 200, "GET {path} with Host {host}");
        }
    }
    // Not from the pod's address: a check (no session: a navigation goes to the login).
    let status = send(
        adapter,
        "GET",
        "/ping",
        &[("Host", HOST), ("User-Agent", "kube-probe/1.31")],
    )
    .await;
    assert_eq!(status, 302, "GET /ping of {HOST} is a check");
}

/// Signs Alice in through the gateway on `port` (as a browser: the login page at the provider,
/// the callback through Envoy) and returns the `Cookie` header her browser would send.
async fn sign_in_alice(port: u16, mode: &str, envoy: &Envoy) -> String {
    let base = format!("http://{HOST}:{port}");
    let c = common::client(port);
    let r = c
        .get(format!("{base}/page"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{mode}: {}", envoy.log_tail());
    let authorize = common::location(r.headers());
    let callback = common::login_at_provider(&c, &authorize, "alice").await;
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 302, "{mode}: the callback");
    let url: url::Url = base.parse().unwrap();
    reqwest::cookie::CookieStore::cookies(c.jar.as_ref(), &url)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn host_rules_judge_the_routed_host(http: bool, reverse_proxy: bool) {
    let mode = format!(
        "{} mode, --reverse-proxy={reverse_proxy}",
        if http { "HTTP" } else { "gRPC" }
    );
    let port = common::port();
    let idp = provider_for(port).await;
    let rule = format!("--authorization-rule={REPORTS}=group:reporting");
    let proxy = format!("--reverse-proxy={reverse_proxy}");
    let (authz, _stop) = start_adapter(
        engine(&idp.issuer, &[rule.as_str(), proxy.as_str()]).await,
        http,
    )
    .await;
    let (upstream, seen) = common::recording_app().await;
    let envoy = gateway(port, authz, http, upstream).await;
    let cookies = sign_in_alice(port, &mode, &envoy).await;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));
    let ask = |host: String, extra: Vec<(&'static str, String)>| {
        let cookies = cookies.clone();
        async move {
            let mut headers: Vec<(&str, &str)> = vec![
                ("Host", &host),
                ("Accept", "text/html"),
                ("Cookie", &cookies),
            ];
            headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            send(gateway, "GET", "/q3", &headers).await
        }
    };
    // The controls: Alice (not in `reporting`) may use the other hosts, not reports.
    assert_eq!(ask(format!("{WWW}:{port}"), vec![]).await, 200, "{mode}");
    assert_eq!(
        ask(format!("{REPORTS}:{port}"), vec![]).await,
        403,
        "{mode}"
    );
    seen.lock().unwrap().clear();
    // Routed to reports, claiming another host in every spelling a client could try.
    for (name, value) in [
        ("X-Forwarded-Host", format!("{WWW}:{port}")),
        ("X-Forwarded-Host", WWW.to_owned()),
        ("x-forwarded-host", format!("{WWW}, {REPORTS}")),
        ("X_Forwarded_Host", WWW.to_owned()),
        ("Forwarded", format!("host={WWW}")),
        ("X-Original-Host", WWW.to_owned()),
    ] {
        for host in [format!("{REPORTS}:{port}"), REPORTS.to_ascii_uppercase()] {
            let status = ask(host.clone(), vec![(name, value.clone())]).await;
            assert_eq!(
                status, 403,
                "{mode}: Host {host} with {name}: {value}: expected 403, got {status}"
            );
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{mode}: a request for {REPORTS} reached the app: {:?}",
        common::requests(&seen)
    );
}

#[tokio::test]
async fn host_rules_judge_the_routed_host_in_http_mode() {
    host_rules_judge_the_routed_host(true, false).await;
    host_rules_judge_the_routed_host(true, true).await;
}

#[tokio::test]
async fn host_rules_judge_the_routed_host_in_grpc_mode() {
    host_rules_judge_the_routed_host(false, false).await;
    host_rules_judge_the_routed_host(false, true).await;
}

/// What a route rule on `^/admin/` must also cover: each of these is `/admin/users` to nginx
/// (`merge_slashes on`), Tomcat and many frameworks; Envoy (Istio's default `BASE`
/// normalisation) passes them on as they are. (`/public//../admin/users` is not among them:
/// Envoy resolves it to `/public/admin/users` before the check, and that is what the app gets.)
const ADMIN_SPELLINGS: &[&str] = &[
    "/admin/users",
    "//admin/users",
    "///admin/users",
    "/%2Fadmin/users",
    "/%2fadmin/users",
    "/public//..%2Fadmin/users",
    "/public/%2F..%2Fadmin/users",
    "/./admin/users",
    "/x/..//admin/users",
];

async fn admin_paths_are_refused_in_every_spelling(http: bool) {
    let mode = if http { "HTTP" } else { "gRPC" };
    let port = common::port();
    let idp = provider_for(port).await;
    let rules = [
        "--authorization-rule=^/admin/=role:admin",
        "--skip-auth-route=GET=^/public/",
    ];
    let (authz, _stop) = start_adapter(engine(&idp.issuer, &rules).await, http).await;
    let (upstream, seen) = common::recording_app().await;
    let envoy = gateway(port, authz, http, upstream).await;
    // Alice signs in through the gateway; she has no `admin` role.
    let cookies = sign_in_alice(port, mode, &envoy).await;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));
    let host = format!("{HOST}:{port}");
    let ask = |method: &'static str, path: &'static str| {
        let (cookies, host) = (cookies.clone(), host.clone());
        async move {
            send(
                gateway,
                method,
                path,
                &[
                    ("Host", &host),
                    ("Accept", "text/html"),
                    ("Cookie", &cookies),
                ],
            )
            .await
        }
    };

    // The controls: her session works, and the public prefix is open.
    assert_eq!(ask("GET", "/page").await, 200, "{mode}: /page");
    assert_eq!(ask("GET", "/public/a").await, 200, "{mode}: /public/a");
    seen.lock().unwrap().clear();

    for path in ADMIN_SPELLINGS {
        for method in ["GET", "POST"] {
            let status = ask(method, path).await;
            assert_eq!(
                status,
                403,
                "{mode}: {method} {path}: expected 403 (no admin role), got {status}; the app \
                 saw {:?}",
                common::requests(&seen)
            );
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{mode}: an admin path reached the app: {:?}",
        common::requests(&seen)
    );
}

#[tokio::test]
async fn admin_paths_are_refused_in_every_spelling_in_http_mode() {
    admin_paths_are_refused_in_every_spelling(true).await;
}

#[tokio::test]
async fn admin_paths_are_refused_in_every_spelling_in_grpc_mode() {
    admin_paths_are_refused_in_every_spelling(false).await;
}

/// Identity headers a client forges, in the spellings Envoy passes on (a default gateway
/// accepts `_` in names, and CGI, WSGI, PHP and Rack apps read `X-Auth_Request-User` as
/// `X-Auth-Request-User`).
const FORGED: &[&str] = &[
    "X-Auth-Request-User",
    "X-Auth_Request-User",
    "x_auth-request_user",
    "X_AUTH_REQUEST_USER",
    "X-Auth-Request-Email",
    "X-Auth_Request_Email",
    "X-Auth-Request-Preferred_Username",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username",
    "X-Auth-Request_Groups",
    "X-Auth-Request-Access_Token",
    "X-Forwarded-User",
    "X-Forwarded_User",
    "X_Forwarded-Email",
    "X-Forwarded-Preferred_Username",
    "X-Forwarded_Groups",
    "X-Forwarded-Access_Token",
];
/// The value every forged header carries: it must never reach the app.
const MALLORY: &str = "mallory";

/// Header names as a CGI-style app reads them: lower case, `_` and `-` the same.
fn cgi_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// `scope`: the scopes the adapter asks for; without `profile` and `groups` the ID token has no
/// `preferred_username` or `groups`, and the gate overwrites those headers with empty values
/// (which must still replace the client's copies).
async fn forged_identity_headers_never_reach_the_app(http: bool, scope: &str) {
    let mode = if http { "HTTP" } else { "gRPC" };
    let port = common::port();
    let idp = provider_for(port).await;
    let scope = format!("--scope={scope}");
    let flags = [
        "--set-xauthrequest=true",
        "--skip-auth-route=GET=^/public/",
        scope.as_str(),
    ];
    let (authz, _stop) = start_adapter(engine(&idp.issuer, &flags).await, http).await;
    let (upstream, seen) = common::recording_app().await;
    let envoy = gateway(port, authz, http, upstream).await;
    let cookies = sign_in_alice(port, mode, &envoy).await;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));
    let host = format!("{HOST}:{port}");
    seen.lock().unwrap().clear();

    // Signed in (the gate sets some identity headers), and on a public route (it sets none).
    for (path, cookie) in [("/page", cookies.as_str()), ("/public/a", "")] {
        let mut headers: Vec<(&str, &str)> = vec![("Host", &host), ("Accept", "text/html")];
        if !cookie.is_empty() {
            headers.push(("Cookie", cookie));
        }
        headers.extend(FORGED.iter().map(|name| (*name, MALLORY)));
        let status = send(gateway, "GET", path, &headers).await;
        assert_eq!(status, 200, "{mode}: GET {path}: {}", envoy.log_tail());
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{mode}: the app saw {seen:?}");
    for request in seen.iter() {
        let forged: Vec<_> = request
            .headers
            .iter()
            .filter(|(_, values)| values.iter().any(|v| v == MALLORY))
            .map(|(name, _)| name.clone())
            .collect();
        assert!(
            forged.is_empty(),
            "{mode}: {request}: forged identity headers reached the app: {forged:?}"
        );
    }
    // The control: the gate's own header is there, with Alice's name, in the session request.
    let user = seen[0].headers.iter().find_map(|(name, values)| {
        (cgi_name(name) == "x-auth-request-user").then(|| values.join(","))
    });
    assert!(
        user.is_some_and(|u| !u.is_empty() && u != MALLORY),
        "{mode}: the gate's X-Auth-Request-User is missing: {:?}",
        seen[0].headers
    );
    // The control of the empty case: the ID token had no groups, so the gate set none.
    if scope.ends_with(NO_PROFILE) {
        let groups = seen[0].headers.iter().find_map(|(name, values)| {
            (cgi_name(name) == "x-auth-request-groups").then(|| values.join(","))
        });
        assert!(
            groups.as_deref().is_none_or(str::is_empty),
            "{mode}: groups without the groups scope: {groups:?}"
        );
    }
}

/// Every claim the gate passes on.
const ALL_SCOPES: &str = "openid email profile groups";
/// No `preferred_username`, no `groups`: the gate sets those headers empty.
const NO_PROFILE: &str = "openid email";

#[tokio::test]
async fn forged_identity_headers_never_reach_the_app_in_http_mode() {
    forged_identity_headers_never_reach_the_app(true, ALL_SCOPES).await;
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_app_in_grpc_mode() {
    forged_identity_headers_never_reach_the_app(false, ALL_SCOPES).await;
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_app_when_the_gate_sets_them_empty_http() {
    forged_identity_headers_never_reach_the_app(true, NO_PROFILE).await;
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_app_when_the_gate_sets_them_empty_grpc() {
    forged_identity_headers_never_reach_the_app(false, NO_PROFILE).await;
}
