//! Sessions in Redis, shared by replicas; back-channel logout; Redis outages
//! fail closed and heal on their own. Real Redis, real provider, real binary.

mod common;

use std::time::Duration;

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

/// A second replica, reached by the same browser: its requests go to `port_b`
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
    let (port_a, port_b) = (port(), test_support::free_port());
    let idp = OidcProvider::start(vec![client_spec(port_a)]).await;
    let a = start(&idp, port_a, &redis_args(&redis)).await;
    let b = start(&idp, port_b, &redis_args(&redis)).await;
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
        check_with_cookie(port_b, &cookie).await,
        200,
        "the other replica reads the same session"
    );
    // A restart of a replica loses nothing.
    drop(b);
    let b = start(&idp, port_b, &redis_args(&redis)).await;
    assert_eq!(check_with_cookie(port_b, &cookie).await, 200);
    // Sign-out deletes the session in Redis: the copied cookie is dead everywhere.
    let r = c
        .get(format!("{}/oauth2/sign_out", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(check_with_cookie(port_a, &cookie).await, 401);
    assert_eq!(check_with_cookie(port_b, &cookie).await, 401);
    drop(b);
}

#[tokio::test]
async fn redis_outage_fails_closed_and_heals() {
    // Persistence on, as in production: a Redis restart must lose no session.
    let mut redis =
        RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    let port = port();
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
    let mut status = 0;
    for _ in 0..50 {
        status = check_with_cookie(port, &cookie).await.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "back on its own once Redis is back, and the session survived"
    );
}

#[tokio::test]
async fn cookie_sessions_refresh_once_across_replicas() {
    let redis = RedisServer::start().await;
    refresh_once_case(vec![
        format!("--redis-connection-url={}", redis.url),
        "--cookie-refresh=1s".into(),
    ])
    .await;
}

#[tokio::test]
async fn redis_sessions_refresh_once_across_replicas() {
    let redis = RedisServer::start().await;
    let mut args = redis_args(&redis);
    args.push("--cookie-refresh=1s".into());
    refresh_once_case(args).await;
}

async fn refresh_once_case(args: Vec<String>) {
    let (port_a, port_b) = (port(), test_support::free_port());
    let idp = OidcProvider::start(vec![client_spec(port_a)]).await;
    let a = start(&idp, port_a, &args).await;
    let _b = start(&idp, port_b, &args).await;
    let c = client(port_a);
    login(&c, &a, "/", "alice").await;
    let cookie = cookie_header(&c, &a.base);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let cookie = cookie.clone();
        let port = if i % 2 == 0 { port_a } else { port_b };
        tasks.push(tokio::spawn(async move {
            check_with_cookie(port, &cookie).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200, "nobody is logged out by the race");
    }
    let refreshes = idp
        .output_tail()
        .lines()
        .filter(|l| l.contains("grant.success refresh_token"))
        .count();
    assert_eq!(
        refreshes,
        1,
        "one refresh across both replicas:\n{}",
        idp.output_tail()
    );
    assert_eq!(
        idp.output_tail()
            .lines()
            .filter(|l| l.contains("grant.error"))
            .count(),
        0
    );
}

async fn backchannel_case(store_args: Vec<String>) {
    let (port_a, port_b) = (port(), test_support::free_port());
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
    let _b = start(&idp, port_b, &store_args).await;
    let c = client(port_a);
    login(&c, &a, "/", "alice").await;
    let cookie = cookie_header(&c, &a.base);
    assert_eq!(check_with_cookie(port_a, &cookie).await, 200);
    assert_eq!(check_with_cookie(port_b, &cookie).await, 200);
    // The user signs out at the provider directly (not through us): the
    // provider POSTs a logout_token to replica A's back-channel endpoint.
    let end_session = format!("{}/session/end", idp.issuer);
    test_support::logout_at_provider(&c, &end_session).await;
    let mut ok = false;
    for _ in 0..40 {
        if idp.output_tail().contains("backchannel.success") {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ok,
        "the provider delivered the logout token:\n{}",
        idp.output_tail()
    );
    assert_eq!(
        check_with_cookie(port_a, &cookie).await,
        401,
        "replica A ended the session"
    );
    assert_eq!(
        check_with_cookie(port_b, &cookie).await,
        401,
        "replica B too, within moments"
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
    let port = port();
    let idp = provider_for(port).await;
    let a = Adapter::start(&idp.issuer, port, &[]).await;
    let raw = raw_client(port);
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
}
