//! Metrics, JSON logs with Envoy's x-request-id, and no secret in any log line.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn metrics_count_decisions_logins_and_jwks_fetches() {
    let port = port();
    let metrics_port = test_support::free_port();
    let idp = provider_for(port).await;
    let metrics_addr = format!("--metrics-address=127.0.0.1:{metrics_port}");
    let adapter = Adapter::start(&idp.issuer, port, &[metrics_addr.as_str()]).await;
    let c = client(port);
    let r = c
        .get(format!("{}/api", adapter.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    login(&c, &adapter, "/", "alice").await;
    for _ in 0..3 {
        assert_eq!(check(&c, &adapter, "/").await.status(), 200);
    }
    let body = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |line: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line} missing in\n{body}"))
    };
    assert_eq!(value("oidc_authz_decisions_total{outcome=\"allow\"}"), 3.0);
    assert!(
        value("oidc_authz_decisions_total{outcome=\"unauthenticated\"}") >= 2.0,
        "the 401 and the login redirect"
    );
    assert_eq!(value("oidc_authz_logins_total"), 1.0);
    assert_eq!(value("oidc_authz_jwks_fetches_total"), 1.0);
    assert!(value("oidc_authz_check_duration_seconds_count") >= 5.0);
    assert!(body.contains("oidc_authz_check_duration_seconds_bucket{le=\"+Inf\"}"));
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_never_a_secret() {
    let port = port();
    let idp = provider_for(port).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"))
        .args(SEED_ARGS)
        .arg(format!("--oidc-issuer-url={}", idp.issuer))
        .arg(format!("--http-address=127.0.0.1:{port}"))
        .arg(format!("--cookie-secret={COOKIE_SECRET}"))
        .arg(format!("--client-id={CLIENT_ID}"))
        .arg("--log-format=json")
        .env("OAUTH2_PROXY_CLIENT_SECRET", CLIENT_SECRET)
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let c = client(port);
    let adapter_base = format!("http://{HOST}:{port}");
    for _ in 0..200 {
        if c.get(format!("{adapter_base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A login (tokens, code, cookies all pass through), a tampered cookie, a forged state.
    let r = c.get(format!("{adapter_base}/")).send().await.unwrap();
    let authorize = location(r.headers());
    let callback = test_support::login_at_provider(&c, &authorize, "alice", "pw").await;
    c.get(&callback).send().await.unwrap();
    let cookie = c.cookie(&adapter_base, "auth").unwrap();
    let raw = raw_client(port);
    raw.get(format!("{adapter_base}/x"))
        .header("x-request-id", "req-4711")
        .header("cookie", format!("auth={}x", &cookie[..cookie.len() - 1]))
        .send()
        .await
        .unwrap();
    c.get(format!(
        "{adapter_base}/oauth2/callback?code=abc&state=forged-state-value"
    ))
    .send()
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();

    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() >= 5, "JSON lines expected:\n{logs}");
    assert!(
        lines.iter().any(|l| l["span"]["request_id"] == "req-4711"
            || l["spans"].to_string().contains("req-4711")),
        "a line carries Envoy's x-request-id:\n{logs}"
    );
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    for secret in [CLIENT_SECRET, COOKIE_SECRET, cookie.as_str(), code.as_str()] {
        assert!(
            !logs.contains(secret),
            "a secret appears in the logs:\n{logs}"
        );
    }
    assert!(!logs.contains("eyJ"), "no JWT in the logs:\n{logs}");
}
