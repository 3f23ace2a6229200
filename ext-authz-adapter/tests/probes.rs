//! Probes never let a request through: `/ping` and `/ready` of a protected host, sent through
//! the real Envoy (HTTP and gRPC ext_authz), are checked like any other path, whatever the
//! method, the host's spelling or the identity headers a client forges; the kubelet's probe
//! (the pod's address as `Host`) still gets its 200 from the adapter.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use common::{CLIENT_SECRET, HOST, provider_for, seed_args};
use ext_authz_adapter::cli::Cli;
use ext_authz_adapter::envoy::{AuthzTarget, EnvoyConfig, VirtualHost};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use oidc_core::Engine;
use test_support::envoy::Envoy;
use tokio::sync::oneshot;

/// The paths and methods a client could try; every one must be checked (no session: denied).
const PROBE_PATHS: &[&str] = &["/ping", "/ready", "/ping?x=1", "/ready?full=1"];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS"];

async fn engine(issuer: &str) -> Engine {
    let args = seed_args(issuer, [format!("--client-secret={CLIENT_SECRET}")], &[]);
    let config = Cli::parse_from(std::iter::once("ext-authz-adapter".to_owned()).chain(args))
        .to_config()
        .unwrap();
    let engine = Engine::new(config).unwrap();
    engine.discover().await.unwrap();
    engine
}

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

/// Every request the app received, as `METHOD path`.
type Seen = Arc<Mutex<Vec<String>>>;

/// An upstream that records each request and answers 200 "app".
async fn app() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    log.lock()
                        .unwrap()
                        .push(format!("{} {}", req.method(), req.uri()));
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"app",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A raw HTTP/1.1 request to `addr` with exactly these headers; returns the status code.
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
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

async fn probes_of_a_protected_host_are_checked(http: bool) {
    let mode = if http { "HTTP" } else { "gRPC" };
    let port = common::port(); // Envoy's listener: the gateway
    let idp = provider_for(port).await;
    let (authz, _stop) = start_adapter(engine(&idp.issuer).await, http).await;
    let (upstream, seen) = app().await;
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
    config.hosts.push(VirtualHost::protected(HOST, upstream));
    let envoy = Envoy::start(&config.render()).await;
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
                        seen.lock().unwrap(),
                        envoy.log_tail()
                    );
                }
            }
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{mode}: requests reached the app without a session: {:?}",
        seen.lock().unwrap()
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
    let (adapter, _stop) = start_adapter(engine(&idp.issuer).await, true).await;
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
