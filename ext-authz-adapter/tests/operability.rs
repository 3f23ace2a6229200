//! Metrics, JSON logs with Envoy's x-request-id, and no secret in any log line.

mod common;

use common::*;

#[tokio::test]
async fn metrics_count_decisions_logins_and_jwks_fetches() {
    let port = callback_port();
    let idp = provider_for(port).await;
    // Port 0: the adapter logs where its metrics server listens.
    let adapter = Adapter::start(&idp.issuer, port, &["--metrics-address=127.0.0.1:0"]).await;
    let metrics = adapter.bound.metrics.expect("--metrics-address was given");
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
    let body = reqwest::get(format!("http://{metrics}/metrics"))
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
    let port = callback_port();
    let idp = provider_for(port).await;
    let args = seed_args(
        &idp.issuer,
        [format!("--http-address=127.0.0.1:{port}")],
        &["--log-format=json"],
    );
    let mut adapter = AdapterProcess::spawn(
        "with JSON logs",
        args,
        &[
            ("OAUTH2_PROXY_CLIENT_SECRET", CLIENT_SECRET),
            ("RUST_LOG", "debug"),
        ],
        Log::default(),
    );
    // Its own lines say where it listens (JSON `fields.address`), then it must become ready.
    let bound = adapter.bound().await;
    assert_eq!(bound.http.port(), port);
    adapter.wait_for(bound.http, "/ready").await;
    let c = client(port);
    let adapter_base = format!("http://{HOST}:{port}");

    // A login (tokens, code, cookies all pass through), a tampered cookie, a forged state.
    let r = c.get(format!("{adapter_base}/")).send().await.unwrap();
    assert_eq!(r.status(), 302, "a navigation without a session");
    let authorize = location(r.headers());
    assert!(authorize.starts_with(&idp.issuer), "{authorize}");
    let callback = test_support::login_at_provider(&c, &authorize, "alice", "pw").await;
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 302, "the callback creates the session");
    assert_session_started(&set_cookies(r.headers()));
    let cookie = c.cookie(&adapter_base, "auth").unwrap();
    let raw = raw_client(port);
    let r = raw
        .get(format!("{adapter_base}/x"))
        .header("x-request-id", "req-4711")
        .header("cookie", format!("auth={}x", &cookie[..cookie.len() - 1]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        302,
        "a navigation with a tampered cookie is sent to the login"
    );
    let r = c
        .get(format!(
            "{adapter_base}/oauth2/callback?code=abc&state=forged-state-value"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a callback with a forged state");
    // Every line the adapter wrote for these requests precedes its answers; once it is gone
    // and its stderr is read to the end, the log is complete.
    adapter.stop().await;
    let logs = adapter.log().lines().join("\n");

    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() >= 5, "JSON lines expected:\n{logs}");
    assert!(
        lines.iter().any(|l| l["fields"]["request_id"] == "req-4711"
            && l["fields"]["message"] == "session cookie refused"),
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
