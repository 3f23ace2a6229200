//! Graceful shutdown of the real binary (a rolling update, `kubectl delete pod`, Ctrl-C): on
//! SIGTERM or SIGINT the adapter refuses new connections at once, closes idle keep-alive
//! connections (HTTP/2: GOAWAY), lets a check already in flight finish with its real answer,
//! and exits 0; `--shutdown-drain-timeout` bounds the wait.
//!
//! The check kept in flight is a login callback: its code exchange waits at the
//! [`RogueProvider`]'s token endpoint until the test lifts the hold.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use ext_authz_adapter::grpc::HttpResponse;
use reqwest::cookie::CookieStore;
use test_support::rogue::RogueProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a fact (a request reached the provider, a log line, an exit).
const WAIT: Duration = START_DEADLINE;

/// An adapter against the rogue provider, on ports of its own choosing.
async fn start(rogue: &RogueProvider, extra: &[&str]) -> (AdapterProcess, Bound) {
    let args = seed_args(
        &rogue.issuer,
        ["--http-address=127.0.0.1:0".to_owned()],
        extra,
    );
    let mut process = AdapterProcess::spawn(
        "to be shut down",
        args,
        &[("OAUTH2_PROXY_CLIENT_SECRET", CLIENT_SECRET)],
        Log::default(),
    );
    let bound = process.bound().await;
    process.wait_for(bound.http, "/ready").await;
    (process, bound)
}

/// A protected page → the rogue's authorize endpoint → its redirect back: the callback URL
/// (not visited yet; the browser holds the login's flow cookie).
async fn begin_login(c: &Browser, base: &str) -> String {
    let r = c
        .get(format!("{base}/private"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "not logged in: sent to the provider");
    let r = c.get(location(r.headers())).send().await.unwrap();
    assert_eq!(r.status(), 302, "the rogue provider redirects back at once");
    location(r.headers())
}

/// Waits (at most [`WAIT`]) until `fact` holds; panics naming `what` otherwise.
async fn wait_until(what: &str, mut fact: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !fact() {
        assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the check started last waits at the provider's token endpoint, then sends
/// `signal` and waits until the adapter logs that it shuts down.
async fn signal_with_a_check_in_flight(
    adapter: &mut AdapterProcess,
    rogue: &RogueProvider,
    signal: &str,
) {
    wait_until(
        "token request at the provider (the check in flight)",
        || rogue.token_requests() == 1,
    )
    .await;
    let mark = adapter.log().mark();
    adapter.signal(signal);
    adapter
        .log()
        .wait_since(mark, &["shutting down"], WAIT)
        .await
        .expect("the adapter logs that it shuts down");
}

/// Waits (at most [`WAIT`]) until connecting to `addr` is refused.
async fn wait_refused(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            other => assert!(
                Instant::now() < deadline,
                "{what} ({addr}) still accepts connections {WAIT:?} after the signal: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads `stream` until the peer closes it (at most [`WAIT`]); returns what it read.
async fn read_until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut all = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{what} still open {WAIT:?} after the signal");
    all
}

/// An HTTP/1.1 keep-alive connection that has had one answer (`/ping`) and is now idle.
async fn idle_http1(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"OK") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering /ping");
        got.extend_from_slice(&buf[..n]);
    }
    s
}

#[tokio::test]
async fn sigterm_lets_the_check_in_flight_answer_refuses_new_connections_and_exits_0() {
    let rogue = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let (mut adapter, bound) = start(&rogue, &["--shutdown-drain-timeout=60s"]).await;
    let base = format!("http://{HOST}:{}", bound.http.port());
    let c = client(bound.http.port());
    let callback = begin_login(&c, &base).await;
    let mut idle = idle_http1(bound.http).await;

    rogue.hold_token_endpoint(true);
    let in_flight = {
        let c = c.http.clone();
        tokio::spawn(async move { c.get(&callback).send().await })
    };
    signal_with_a_check_in_flight(&mut adapter, &rogue, "TERM").await;
    wait_refused(bound.http, "the HTTP server").await;
    let rest = read_until_closed(&mut idle, "the idle keep-alive connection").await;
    assert!(
        rest.is_empty(),
        "nothing more on the idle connection: {rest:?}"
    );
    assert!(
        !in_flight.is_finished(),
        "the check is still waiting for the provider"
    );

    rogue.hold_token_endpoint(false);
    let answer = in_flight
        .await
        .unwrap()
        .expect("the check in flight gets its answer after SIGTERM");
    assert_eq!(answer.status(), 302, "the callback's real answer");
    assert_session_started(&set_cookies(answer.headers()));

    let status = adapter
        .wait_exit(WAIT)
        .await
        .expect("the adapter exits once the check in flight has answered");
    assert!(status.success(), "exit status {status}");
    assert!(
        adapter.log().contains("stopped"),
        "{}",
        adapter.log().tail()
    );
}

#[tokio::test]
async fn the_drain_ends_after_shutdown_drain_timeout() {
    let rogue = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let (mut adapter, bound) = start(&rogue, &["--shutdown-drain-timeout=1s"]).await;
    let base = format!("http://{HOST}:{}", bound.http.port());
    let c = client(bound.http.port());
    let callback = begin_login(&c, &base).await;

    // Never released: the check cannot finish.
    rogue.hold_token_endpoint(true);
    let in_flight = {
        let c = c.http.clone();
        tokio::spawn(async move { c.get(&callback).send().await })
    };
    wait_until("token request at the provider", || {
        rogue.token_requests() == 1
    })
    .await;
    let mark = adapter.log().mark();
    adapter.signal("TERM");
    let status = adapter
        .wait_exit(WAIT)
        .await
        .expect("the adapter exits although a check never finishes");
    assert!(status.success(), "exit status {status}");
    assert!(
        adapter
            .log()
            .find_since(mark, &["still in flight after --shutdown-drain-timeout"])
            .is_some(),
        "the cut is logged:\n{}",
        adapter.log().since(mark)
    );
    assert!(
        in_flight.await.unwrap().is_err(),
        "the check that never finished is cut"
    );
}

/// The CheckRequest Envoy sends for `GET <target>` from `browser` (whose cookies for
/// `authority` go in the `cookie` header).
fn check_request(browser: &Browser, authority: &str, target: &str) -> CheckRequest {
    let mut headers: HashMap<String, String> = [
        (":authority", authority),
        (":path", target),
        (":method", "GET"),
        (":scheme", "http"),
        ("x-forwarded-proto", "http"),
        ("accept", "text/html"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let url = format!("http://{authority}/").parse().unwrap();
    if let Some(cookie) = browser.jar.cookies(&url) {
        headers.insert("cookie".into(), cookie.to_str().unwrap().to_owned());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    headers,
                    path: target.into(),
                    host: authority.into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// An HTTP/2 connection (the client preface and an empty SETTINGS frame sent) with no stream:
/// an idle gRPC connection.
async fn idle_http2(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    s
}

/// Plays a well-behaved, idle HTTP/2 client on `stream` until the server closes it (at most
/// [`WAIT`]): acknowledges SETTINGS and answers PINGs (hyper's graceful shutdown sends a PING
/// after its first GOAWAY and closes once it is answered). Returns the frame types received.
async fn idle_http2_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut types = Vec::new();
    let mut input: Vec<u8> = Vec::new();
    let run = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => input.extend_from_slice(&buf[..n]),
            }
            // Every complete frame: 3 bytes length, type, flags, 4 bytes stream id, payload.
            while input.len() >= 9 {
                let len = usize::from(input[0]) << 16
                    | usize::from(input[1]) << 8
                    | usize::from(input[2]);
                if input.len() < 9 + len {
                    break;
                }
                let frame: Vec<u8> = input.drain(..9 + len).collect();
                let (kind, ack) = (frame[3], frame[4] & 1 == 1);
                types.push(kind);
                let reply = match (kind, ack) {
                    (SETTINGS, false) => Some(vec![0, 0, 0, SETTINGS, 1, 0, 0, 0, 0]),
                    (PING, false) => {
                        let mut pong = vec![0, 0, 8, PING, 1, 0, 0, 0, 0];
                        pong.extend_from_slice(&frame[9..]);
                        Some(pong)
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    let _ = stream.write_all(&reply).await;
                }
            }
        }
    })
    .await;
    assert!(
        run.is_ok(),
        "the idle HTTP/2 connection still open {WAIT:?} after the signal (frames {types:?})"
    );
    types
}

/// HTTP/2 frame type SETTINGS.
const SETTINGS: u8 = 0x4;
/// HTTP/2 frame type PING.
const PING: u8 = 0x6;
/// HTTP/2 frame type GOAWAY.
const GOAWAY: u8 = 0x7;

#[tokio::test]
async fn sigint_in_grpc_mode_sends_goaway_and_lets_the_check_in_flight_answer() {
    let rogue = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let (mut adapter, bound) = start(
        &rogue,
        &["--grpc-address=127.0.0.1:0", "--shutdown-drain-timeout=60s"],
    )
    .await;
    let grpc = bound.grpc.expect("--grpc-address was given");
    let authority = format!("{HOST}:{}", bound.http.port());
    let c = client(bound.http.port());
    let callback = begin_login(&c, &format!("http://{authority}")).await;
    let target = callback
        .strip_prefix(&format!("http://{authority}"))
        .unwrap()
        .to_owned();
    let mut idle = idle_http2(grpc).await;

    rogue.hold_token_endpoint(true);
    let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let request = check_request(&c, &authority, &target);
    let in_flight = tokio::spawn(async move { client.check(request).await });
    signal_with_a_check_in_flight(&mut adapter, &rogue, "INT").await;
    wait_refused(grpc, "the gRPC server").await;
    wait_refused(bound.http, "the HTTP server").await;
    let frames = idle_http2_until_closed(&mut idle).await;
    assert!(
        frames.contains(&GOAWAY),
        "the idle gRPC connection gets a GOAWAY before it is closed: frame types {frames:?}"
    );
    assert!(!in_flight.is_finished(), "the check still waits");

    rogue.hold_token_endpoint(false);
    let answer = in_flight
        .await
        .unwrap()
        .expect("the gRPC check in flight gets its answer after SIGINT")
        .into_inner();
    let Some(HttpResponse::DeniedResponse(denied)) = answer.http_response else {
        panic!("the callback answers with a redirect: {answer:?}");
    };
    assert_eq!(denied.status.map(|s| s.code), Some(302), "{denied:?}");
    let cookies: Vec<String> = denied
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .filter(|h| h.key.eq_ignore_ascii_case("set-cookie"))
        .map(|h| h.value.clone())
        .collect();
    assert_session_started(&cookies);

    let status = adapter
        .wait_exit(WAIT)
        .await
        .expect("the adapter exits once the check in flight has answered");
    assert!(status.success(), "exit status {status}");
}
