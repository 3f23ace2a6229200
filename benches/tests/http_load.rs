//! `benches::http_load` against a tiny in-test server: exact status counts with rotating
//! credentials, chunked answers and closed connections, the open loop's request count, and a
//! probe that fails.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use benches::http_load::{Options, Stop, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the test server answers.
#[derive(Clone, Copy)]
enum Style {
    /// `Content-Length` bodies, keep-alive.
    Plain,
    /// Chunked bodies; every 10th answer of a connection closes it.
    ChunkedClosing,
}

/// The `Cookie` lines the server received, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// A keep-alive HTTP/1.1 server on 127.0.0.1 (any port): 200 to a request with the line
/// `Cookie: good`, 302 to any other.
async fn server(style: Style) -> SocketAddr {
    server_seeing(style).await.0
}

/// [`server`], with the `Cookie` lines it receives.
async fn server_seeing(style: Style) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let seen = Seen::default();
    let recorder = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, style, recorder.clone()));
        }
    });
    (addr, seen)
}

async fn serve(mut stream: TcpStream, style: Style, seen: Seen) {
    let mut buf = Vec::new();
    let mut answered = 0;
    loop {
        // One request head (the load generator sends no body), maybe over several reads.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let mut good = false;
        for line in head.lines().filter(|l| l.starts_with("Cookie: ")) {
            good |= line == "Cookie: good";
            seen.lock().expect("lock").push(line.to_owned());
        }
        let status = if good { "200 OK" } else { "302 Found" };
        answered += 1;
        let close = matches!(style, Style::ChunkedClosing) && answered % 10 == 0;
        let answer = match style {
            Style::Plain => format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\nhello"),
            Style::ChunkedClosing => format!(
                "HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n{}\r\n3\r\nabc\r\n0\r\n\r\n",
                if close { "Connection: close\r\n" } else { "" }
            ),
        };
        if stream.write_all(answer.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

fn options(addr: SocketAddr, stop: Stop) -> Options {
    Options {
        credentials: vec!["Cookie: good".into(), "Cookie: bad".into()],
        connections: 4,
        ..Options::new(addr, "test.example", stop)
    }
}

#[tokio::test]
async fn every_status_is_counted_and_credentials_rotate() {
    let addr = server(Style::Plain).await;
    let report = run(options(addr, Stop::Requests(1000))).await.expect("run");
    assert_eq!(report.requests, 1000, "{report}");
    assert_eq!(report.statuses.get(&200), Some(&500), "{report}");
    assert_eq!(report.statuses.get(&302), Some(&500), "{report}");
    assert_eq!(report.unexpected, 500, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.reconnects, 0, "{report}");
    let line = report.to_string();
    assert!(line.starts_with("requests=1000 errors=0 unexpected=500 seconds="));
    assert!(line.contains(" statuses=200:500,302:500"), "{line}");
    assert!(!line.contains("offered_rps"), "{line}");
}

#[tokio::test]
async fn a_one_pass_run_presents_each_credential_once() {
    let (addr, seen) = server_seeing(Style::Plain).await;
    // The probe takes the first credential; the pass of 10 requests then presents the other
    // ten, each once (as the bench's cold passes mint one session more than they present).
    let mut credentials = vec!["Cookie: good".to_owned()];
    credentials.extend((1..=10).map(|i| format!("Cookie: c{i}")));
    let report = run(Options {
        credentials: credentials.clone(),
        ..options(addr, Stop::Requests(10))
    })
    .await
    .expect("run");
    assert_eq!(report.requests, 10, "{report}");
    assert_eq!(report.unexpected, 10, "{report}");
    let mut seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.remove(0), "Cookie: good", "the probe");
    seen.sort();
    let mut pass = credentials[1..].to_vec();
    pass.sort();
    assert_eq!(seen, pass, "each credential but the probe's, once");
}

#[tokio::test]
async fn the_warm_up_is_not_counted() {
    let (addr, seen) = server_seeing(Style::Plain).await;
    let report = run(Options {
        warmup: Duration::from_millis(100),
        ..options(addr, Stop::Requests(100))
    })
    .await
    .expect("run");
    assert_eq!(report.requests, 100, "{report}");
    assert_eq!(report.unexpected, 50, "{report}");
    assert!(seen.lock().expect("lock").len() > 101, "some warm-up load");
}

#[tokio::test]
async fn chunked_answers_and_closed_connections() {
    let addr = server(Style::ChunkedClosing).await;
    let report = run(options(addr, Stop::Requests(1000))).await.expect("run");
    assert_eq!(report.requests, 1000, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.statuses.get(&200), Some(&500), "{report}");
    // Each connection is closed after 10 answers: about 100 new ones.
    assert!((95..=100).contains(&report.reconnects), "{report}");
}

#[tokio::test]
async fn the_open_loop_sends_rate_times_duration() {
    let addr = server(Style::Plain).await;
    let report = run(Options {
        credentials: vec!["Cookie: good".into()],
        rate: Some(2000.0),
        ..options(addr, Stop::Duration(Duration::from_millis(500)))
    })
    .await
    .expect("run");
    assert!((990..=1010).contains(&report.requests), "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.unexpected, 0, "{report}");
    assert!(
        report.to_string().contains(" offered_rps=2000.0 late="),
        "{report}"
    );
}

#[tokio::test]
async fn a_probe_with_the_wrong_status_fails_clearly() {
    let addr = server(Style::Plain).await;
    let error = run(Options {
        credentials: vec!["Cookie: bad".into()],
        ..options(addr, Stop::Requests(10))
    })
    .await
    .expect_err("the probe answers 302");
    assert!(error.contains("302") && error.contains("hello"), "{error}");
}
