//! Sessions in Redis, shared by replicas; back-channel logout; Redis outages
//! fail closed and heal on their own. Real Redis, real provider, real binary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use test_support::OidcProvider;
use test_support::redis::RedisServer;

fn redis_args(redis: &RedisServer) -> Vec<String> {
    vec![
        "--session-store-type=redis".into(),
        format!("--redis-connection-url={}", redis.url),
    ]
}

async fn start(idp: &OidcProvider, port: u16, extra: &[String]) -> Adapter {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    Adapter::start(&idp.issuer, port, &extra).await
}

/// A second replica, reached by the same browser: its requests go to `port`
/// with the cookies the jar holds for the first replica's origin.
async fn check_with_cookie(port: u16, cookie: &str) -> reqwest::StatusCode {
    raw_client(port)
        .get(format!("http://{HOST}:{port}/page"))
        .header("cookie", cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
}

fn cookie_header(c: &Browser, base: &str) -> String {
    use reqwest::cookie::CookieStore;
    c.jar
        .cookies(&base.parse().unwrap())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn redis_sessions_are_small_shared_by_replicas_and_end_at_sign_out() {
    let redis = RedisServer::start().await;
    // Logins go through replica A only; B (any port) is asked with copied cookies.
    let port_a = callback_port();
    let idp = OidcProvider::start(vec![client_spec(port_a)]).await;
    let a = start(&idp, port_a, &redis_args(&redis)).await;
    let b = start(&idp, 0, &redis_args(&redis)).await;
    let c = client(port_a);
    login(&c, &a, "/", "alice").await;
    let ticket = c.cookie(&a.base, "auth").expect("session cookie");
    assert!(
        ticket.len() < 200,
        "the cookie holds a ticket, not the session ({} bytes)",
        ticket.len()
    );
    assert_eq!(check(&c, &a, "/").await.status(), 200);
    let cookie = cookie_header(&c, &a.base);
    assert_eq!(
        check_with_cookie(b.port, &cookie).await,
        200,
        "the other replica reads the same session"
    );
    // A restart of a replica loses nothing.
    drop(b);
    let b = start(&idp, 0, &redis_args(&redis)).await;
    assert_eq!(check_with_cookie(b.port, &cookie).await, 200);
    // Sign-out deletes the session in Redis: the copied cookie is dead everywhere.
    let r = c
        .get(format!("{}/oauth2/sign_out", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(check_with_cookie(port_a, &cookie).await, 401);
    assert_eq!(check_with_cookie(b.port, &cookie).await, 401);
    drop(b);
}

#[tokio::test]
async fn redis_outage_fails_closed_and_heals() {
    // Persistence on, as in production: a Redis restart must lose no session.
    let mut redis =
        RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    let port = callback_port();
    let idp = provider_for(port).await;
    let a = start(&idp, port, &redis_args(&redis)).await;
    let c = client(port);
    login(&c, &a, "/", "alice").await;
    let cookie = cookie_header(&c, &a.base);
    assert_eq!(check_with_cookie(port, &cookie).await, 200);
    redis.stop().await;
    let started = std::time::Instant::now();
    assert_eq!(
        check_with_cookie(port, &cookie).await,
        503,
        "never an allow without the store"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    // A navigation gets a page that says so.
    let r = check(&c, &a, "/").await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("session store"));
    redis.restart().await;
    // It reconnects on its own: wait for that (generously: the machine is shared), then the
    // session must be there.
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let status = check_with_cookie(port, &cookie).await;
        if status != 503 {
            assert_eq!(
                status, 200,
                "back on its own once Redis is back, and the session survived"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still 503 {START_DEADLINE:?} after Redis came back\n{}",
            a.log().tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--cookie-refresh` of the refresh tests, in seconds. Sessions hold Unix seconds: a session
/// made or refreshed at second `s` is due from second `s + REFRESH_EVERY` on.
const REFRESH_EVERY: u64 = 3;

/// Unix time in seconds, as the adapter counts it.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Sleeps until Unix second `second` has begun.
async fn sleep_until_second(second: u64) {
    let target = std::time::UNIX_EPOCH + Duration::from_secs(second);
    if let Ok(left) = target.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}

/// Lines of the provider's log containing `needle`.
fn provider_count(idp: &OidcProvider, needle: &str) -> usize {
    idp.output_tail()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test]
async fn cookie_sessions_refresh_once_across_replicas() {
    let redis = RedisServer::start().await;
    refresh_once_case(vec![format!("--redis-connection-url={}", redis.url)], false).await;
}

#[tokio::test]
async fn redis_sessions_refresh_once_across_replicas() {
    let redis = RedisServer::start().await;
    refresh_once_case(redis_args(&redis), true).await;
}

/// 40 concurrent requests with one session due for refresh, spread over two replicas:
/// exactly one refresh at the provider, nobody logged out, no refresh token replayed.
///
/// `tickets` (the Redis store): the cookie, a ticket, stays the same, so a request that reaches
/// a replica once the refreshed session is due again (`REFRESH_EVERY` after the refresh)
/// refreshes it again, legitimately. Such a burst proves nothing about "exactly one": the
/// attempt is repeated with a new login until a burst ends before any request could find the
/// refreshed session due. With the cookie store every request carries the old cookie, whose
/// refresh outcome the replicas share for 60 s, so one refresh is expected however long the
/// burst takes.
async fn refresh_once_case(store_args: Vec<String>, tickets: bool) {
    const ATTEMPTS: usize = 5;
    let mut args = store_args;
    args.push(format!("--cookie-refresh={REFRESH_EVERY}s"));
    let port_a = callback_port();
    let idp = OidcProvider::start(vec![client_spec(port_a)]).await;
    let a = start(&idp, port_a, &args).await;
    // Logins go through replica A only; B (any port) is asked with copied cookies.
    let b = start(&idp, 0, &args).await;
    let mut bursts = Vec::new();
    for _ in 0..ATTEMPTS {
        let c = client(port_a);
        login(&c, &a, "/", "alice").await;
        // The session was made at this second or before: due from `made + REFRESH_EVERY`.
        let made = unix_now();
        let cookie = cookie_header(&c, &a.base);
        sleep_until_second(made + REFRESH_EVERY).await;
        let before = provider_count(&idp, "grant.success refresh_token");

        let sent = unix_now();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let cookie = cookie.clone();
            let port = if i % 2 == 0 { a.port } else { b.port };
            tasks.push(tokio::spawn(async move {
                check_with_cookie(port, &cookie).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200, "nobody is logged out by the race");
        }
        let done = unix_now();

        assert_eq!(
            provider_count(&idp, "grant.error"),
            0,
            "no refresh token was used twice:\n{}",
            idp.output_tail()
        );
        let refreshes = provider_count(&idp, "grant.success refresh_token") - before;
        // The refresh happened at second `sent` or later, so the refreshed session is not due
        // before `sent + REFRESH_EVERY`; every request was answered by second `done`.
        if !tickets || done < sent + REFRESH_EVERY {
            assert_eq!(
                refreshes,
                1,
                "one refresh across both replicas for 40 concurrent requests (burst from second \
                 {sent} to {done}):\n{}",
                idp.output_tail()
            );
            return;
        }
        assert!(refreshes >= 1, "the due session was refreshed");
        bursts.push(format!(
            "seconds {sent}..={done}: {refreshes} refresh grants"
        ));
        eprintln!(
            "the burst lasted from second {sent} to {done}: the refreshed session may have been \
             due again ({refreshes} refresh grants); trying again with a new login"
        );
    }
    panic!(
        "no burst of 40 requests ended within {REFRESH_EVERY} s in {ATTEMPTS} attempts, so \
         none could show exactly one refresh: {bursts:?}"
    );
}

async fn backchannel_case(store_args: Vec<String>) {
    // The provider's redirect and back-channel logout URIs name replica A's port; B (any
    // port) is asked with copied cookies.
    let port_a = callback_port();
    let mut spec = client_spec(port_a);
    spec.post_logout_redirect_uris = vec![format!("http://{HOST}:{port_a}/bye")];
    spec.extra_metadata.insert(
        "backchannel_logout_uri".into(),
        format!("http://127.0.0.1:{port_a}/oauth2/backchannel-logout").into(),
    );
    spec.extra_metadata
        .insert("backchannel_logout_session_required".into(), true.into());
    let idp = OidcProvider::start(vec![spec]).await;
    let a = start(&idp, port_a, &store_args).await;
    let b = start(&idp, 0, &store_args).await;
    let c = client(port_a);
    login(&c, &a, "/", "alice").await;
    let cookie = cookie_header(&c, &a.base);
    assert_eq!(check_with_cookie(port_a, &cookie).await, 200);
    assert_eq!(check_with_cookie(b.port, &cookie).await, 200);
    // The user signs out at the provider directly (not through us): the
    // provider POSTs a logout_token to replica A's back-channel endpoint.
    let end_session = format!("{}/session/end", idp.issuer);
    test_support::logout_at_provider(&c, &end_session).await;
    // The provider may deliver the logout token after answering the browser: wait for it.
    let deadline = Instant::now() + START_DEADLINE;
    while !idp.output_tail().contains("backchannel.success") {
        assert!(
            Instant::now() < deadline,
            "the provider did not report delivering the logout token within {START_DEADLINE:?}:\n{}",
            idp.output_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        check_with_cookie(port_a, &cookie).await,
        401,
        "replica A ended the session"
    );
    assert_eq!(
        check_with_cookie(b.port, &cookie).await,
        401,
        "replica B too: it consults Redis on every check"
    );
}

#[tokio::test]
async fn backchannel_logout_ends_redis_sessions_in_every_replica() {
    let redis = RedisServer::start().await;
    backchannel_case(redis_args(&redis)).await;
}

#[tokio::test]
async fn backchannel_logout_revokes_cookie_sessions_in_every_replica() {
    let redis = RedisServer::start().await;
    backchannel_case(vec![format!("--redis-connection-url={}", redis.url)]).await;
}

#[tokio::test]
async fn backchannel_logout_refuses_bad_tokens() {
    let idp = provider_without_logins().await;
    let a = Adapter::start(&idp.issuer, 0, &[]).await;
    let raw = raw_client(a.port);
    let url = format!("{}/oauth2/backchannel-logout", a.base);
    for body in [
        "",
        "logout_token=",
        "logout_token=abc.def.ghi",
        "logout_token=eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.",
    ] {
        let r = raw
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body:?}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request");
    }
    let r = raw.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Envoy's check of that POST (the gateway route missing) carries no `Content-Type`, even
    // with `includeRequestBodyInCheck` sending the body: answered as a check (502, the route
    // is missing), never by the logout endpoint, whose 200 Envoy would take for an allow.
    for body in ["", "logout_token=abc.def.ghi"] {
        let r = raw.post(&url).body(body).send().await.unwrap();
        assert_eq!(r.status(), 502, "a check of the logout POST, body {body:?}");
    }
}
