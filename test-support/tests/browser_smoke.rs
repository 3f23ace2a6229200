//! Headless Chromium over chromedriver reads a page served locally under a mapped host name.
//!
//! Needs Debian's `chromium` and `chromium-driver` (installed by `cargo xtask test`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use test_support::browser::{Browser, host_rules};

/// A tiny HTTP/1.1 server: `/` is a page with a form that GETs `/hello?name=...`, which
/// greets by name and shows the Host header the browser sent.
async fn tiny_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let target = request.split(' ').nth(1).unwrap_or("/").to_owned();
                let host = request
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("Host: ")
                            .or_else(|| l.strip_prefix("host: "))
                    })
                    .unwrap_or("?")
                    .to_owned();
                let (status, body) = if target == "/" {
                    (
                        "200 OK",
                        "<!doctype html><title>smoke</title><h1>Hello from the tiny server</h1>\
                         <form action=/hello><input id=name name=name>\
                         <button id=go type=submit>Go</button></form>"
                            .to_owned(),
                    )
                } else if let Some(query) = target.strip_prefix("/hello?name=") {
                    (
                        "200 OK",
                        format!("<!doctype html><p id=greeting>Hi {query} via {host}</p>"),
                    )
                } else {
                    ("404 Not Found", "nope".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_reads_a_page_under_a_mapped_host_and_submits_a_form() {
    let port = tiny_server().await;
    let browser = Browser::start(&host_rules(&["nginx.example.com", "keycloak.example.com"])).await;

    let url = format!("http://nginx.example.com:{port}/");
    browser.goto(&url).await;
    assert_eq!(browser.current_url().await, url);
    let text = browser
        .wait_for_text("Hello from the tiny server", Duration::from_secs(10))
        .await;
    assert!(!text.contains("<h1>"), "{text}");
    assert!(
        browser
            .page_source()
            .await
            .contains("<h1>Hello from the tiny server</h1>"),
        "{}",
        browser.page_source().await
    );

    browser.fill("#name", "alice").await;
    browser.click("#go").await;
    let landed = browser
        .wait_for_url_prefix(
            &format!("http://nginx.example.com:{port}/hello"),
            Duration::from_secs(10),
        )
        .await;
    assert!(landed.ends_with("?name=alice"), "{landed}");
    browser
        .wait_for_text(
            &format!("Hi alice via nginx.example.com:{port}"),
            Duration::from_secs(10),
        )
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_browser_has_its_own_profile_and_dropping_ends_it() {
    let port = tiny_server().await;
    let first = Browser::start(&host_rules(&["a.example.com"])).await;
    let second = Browser::start(&host_rules(&["b.example.com"])).await;
    first.goto(&format!("http://a.example.com:{port}/")).await;
    second.goto(&format!("http://b.example.com:{port}/")).await;
    first
        .wait_for_text("tiny server", Duration::from_secs(10))
        .await;
    second
        .wait_for_text("tiny server", Duration::from_secs(10))
        .await;
    // Dropped, not closed: the session and chromedriver still end.
    drop(first);
    drop(second);
}
