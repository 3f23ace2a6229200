//! Sessions at scale on the real stack (issue 5, item 5): two `ext-authz-adapter` replicas
//! behind Envoy (an ext_authz cluster with both as endpoints, round robin), real Redis, and the
//! shared Keycloak 26 that `cargo xtask test` starts, each test with its own copy of the
//! `mytest` realm with refresh-token rotation on ("Revoke Refresh Token", reuse 0) and events
//! stored.
//!
//! - One refresh for 200 concurrent requests on a session due for refresh, spread over both
//!   replicas: every request allowed, Keycloak records exactly one `REFRESH_TOKEN` event (and
//!   no `REFRESH_TOKEN_ERROR`), the replicas' `oidc_authz_refreshes_total` add up to 1; the old
//!   cookie keeps working afterwards. For the cookie store (with Redis) and the Redis store.
//! - Keycloak's admin "sign out" of a user (`POST /admin/realms/<realm>/users/<id>/logout`,
//!   which sends a back-channel logout token to replica A before it answers): once replica A
//!   has processed the token, both replicas deny that user's session at their next check;
//!   another user's session is untouched. Both stores.
//! - Redis killed and restarted (AOF on) under a steady load through Envoy: every check while
//!   it is down is refused (the replicas answer 503, quickly, with a clear log line), never
//!   allowed, and the same session works again afterwards without a new login.
//! - Keycloak unreachable (the replicas reach it through a TCP forwarder the test cuts):
//!   existing sessions keep working although their refresh is due, a new login gets a clear
//!   error page, a replica started during the outage serves existing sessions and answers 503
//!   to a new login; once Keycloak is back the session is refreshed (once).
//! - One replica killed: Envoy's health check takes it out, the other replica serves the same
//!   session; no request is answered 401/302 (no session is lost); restarted, the replica
//!   serves the session again.
//!
//! What Envoy does with the adapter's answers, as asserted here (Envoy 1.40, HTTP mode as in
//! the seed): any 5xx of the authorization server is an ext_authz *error*, answered with
//! `status_on_error` (Istio's default 403) and an empty body, so the adapter's 503/502 pages
//! reach the browser only in gRPC mode (checked with a second, gRPC-mode Envoy in the Redis
//! test); other denials (401, 302) reach the client as the adapter answered them. The check
//! request carries the headers of Istio's `includeRequestHeadersInCheck` as the seed's
//! renderer lists them, `Accept` included, so an API call gets 401 and a navigation 302. A
//! killed replica's endpoint gets a few checks (Envoy's 403) until the active health check,
//! standing in for Kubernetes' readiness probe, takes it out: there is no ext_authz retry.
//!
//! Nothing is skipped: without Keycloak, Redis or Envoy the tests fail and say to run
//! `cargo xtask test`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod scale;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use scale::*;
use test_support::free_port;
use test_support::keycloak::{ALICE, BOB, Keycloak, keycloak};
use test_support::redis::RedisServer;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Status -> count, for messages.
fn histogram(statuses: impl IntoIterator<Item = u16>) -> BTreeMap<u16, usize> {
    let mut h = BTreeMap::new();
    for s in statuses {
        *h.entry(s).or_default() += 1;
    }
    h
}

/// Waits (at most `within`) until Keycloak has stored at least one `event_type` event for
/// the realm's `nginx` client; returns the count then.
async fn wait_for_events(
    kc: &Keycloak,
    realm: &TestRealm,
    event_type: &str,
    within: Duration,
) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = realm.count(kc, event_type).await;
        if n > 0 || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `name=value` pairs of the session cookies (`auth`, `auth_<n>`) a response sets, as a
/// `Cookie` header, or `None` when it sets none (deletions do not count).
fn session_cookie_from(set_cookies: &[String]) -> Option<String> {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .filter_map(|c| c.split(';').next())
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            name == "auth"
                || name
                    .strip_prefix("auth_")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

// ---------------------------------------------------------------------------------------------
// 1. One refresh for 200 concurrent requests across both replicas.

/// The realm's access token lifespan at the login: under the adapter's 30 s refresh margin,
/// so the session is due for refresh from the start. Afterwards the realm issues tokens for
/// [`REFRESHED_LIFESPAN`], so the refreshed session is not due again during the test, however
/// long the burst takes on a loaded machine (a second refresh would then be legitimate).
const LOGIN_LIFESPAN: Duration = Duration::from_secs(20);
/// The realm's access token lifespan for the refresh (Keycloak caps it at the SSO session idle
/// timeout, 30 min in `mytest`).
const REFRESHED_LIFESPAN: Duration = Duration::from_secs(3600);

/// `n` concurrent checks through Envoy with `cookie`: (status, Set-Cookie values) each.
async fn concurrent_checks(
    client: &reqwest::Client,
    stack: &Stack,
    cookie: &str,
    n: usize,
) -> Vec<(u16, Vec<String>)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, cookie) = (
                client.clone(),
                format!("{}/api", stack.base),
                cookie.to_owned(),
            );
            tokio::spawn(async move {
                let r = client
                    .get(url)
                    .header("cookie", cookie)
                    .header("accept", "application/json")
                    .send()
                    .await
                    .expect("request through Envoy");
                (r.status().as_u16(), set_cookies(&r))
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

async fn refresh_once_case(store: Store) {
    let kc = keycloak();
    let redis = RedisServer::start().await;
    let realm = TestRealm::create(&kc, "refresh", None).await;
    // The seed's --cookie-refresh: never due during the test. The session is due because its
    // access token expires within the adapter's margin (see LOGIN_LIFESPAN).
    let mut extra = store_args(store, &redis.url);
    extra.push("--cookie-refresh=1h".to_owned());
    let stack = Stack::start(&kc, &realm, ANY, ANY, LOCALHOST, &extra, false).await;
    realm.set_access_token_lifespan(&kc, LOGIN_LIFESPAN).await;
    let browser = Browser::new(&kc);
    let cookie = browser.login(&stack, &ALICE).await;
    realm
        .set_access_token_lifespan(&kc, REFRESHED_LIFESPAN)
        .await;
    // No request between the login and the burst: the burst is the session's first use.
    let allowed_before = [stack.a.allowed().await, stack.b.allowed().await];
    assert_eq!(stack.a.refreshes().await + stack.b.refreshes().await, 0);

    let client = app_client(None);
    let started = Instant::now();
    let results = concurrent_checks(&client, &stack, &cookie, 200).await;
    let burst = started.elapsed();
    // Requests that come a moment later with the old cookie get the refreshed session too.
    let later = concurrent_checks(&client, &stack, &cookie, 20).await;
    let both = started.elapsed();

    let statuses = histogram(results.iter().map(|(s, _)| *s));
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 200)]),
        "every one of the 200 concurrent requests is allowed (no 401, no 302)\n{}",
        stack.logs()
    );
    assert_eq!(
        histogram(later.iter().map(|(s, _)| *s)),
        BTreeMap::from([(200, 20)]),
        "the old cookie a moment later\n{}",
        stack.logs()
    );

    let served = [
        stack.a.allowed().await - allowed_before[0],
        stack.b.allowed().await - allowed_before[1],
    ];
    assert_eq!(served[0] + served[1], 220, "{served:?}");
    assert!(
        served.iter().all(|n| *n >= 50),
        "Envoy spread the requests over both replicas: {served:?}"
    );

    let refreshes = [stack.a.refreshes().await, stack.b.refreshes().await];
    assert_eq!(
        refreshes.iter().sum::<u64>(),
        1,
        "one refresh-token grant across both replicas (A, B): {refreshes:?}\n{}",
        stack.logs()
    );
    assert_eq!(
        stack.a.refresh_failures().await + stack.b.refresh_failures().await,
        0
    );
    let events = wait_for_events(&kc, &realm, REFRESH_TOKEN, Duration::from_secs(5)).await;
    assert_eq!(events, 1, "Keycloak saw exactly one refresh");
    assert_eq!(
        realm.count(&kc, REFRESH_TOKEN_ERROR).await,
        0,
        "no spent refresh token was replayed"
    );

    let new_cookies: Vec<String> = results
        .iter()
        .chain(&later)
        .filter_map(|(_, set)| session_cookie_from(set))
        .collect();
    match store {
        Store::Redis => assert!(
            new_cookies.is_empty(),
            "the ticket stays the same: no new cookie ({} responses set one)",
            new_cookies.len()
        ),
        Store::Cookie => {
            assert_eq!(
                new_cookies.len(),
                220,
                "every allowed response carries the refreshed session"
            );
            // The refreshed session works on both replicas.
            for r in stack.replicas() {
                assert_eq!(
                    r.check(&new_cookies[0]).await,
                    StatusCode::OK,
                    "replica {}",
                    r.name
                );
            }
        }
    }
    eprintln!(
        "[keycloak_scale] refresh once ({store:?} store): 200 concurrent requests in {burst:?} \
         (+20 with the old cookie: {both:?}), served by A/B {served:?}, refreshes A/B \
         {refreshes:?}, Keycloak REFRESH_TOKEN events {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_once_for_200_concurrent_requests_cookie_store() {
    refresh_once_case(Store::Cookie).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_once_for_200_concurrent_requests_redis_store() {
    refresh_once_case(Store::Redis).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Keycloak's admin sign-out reaches every replica.

async fn admin_sign_out_case(store: Store) {
    let kc = keycloak();
    let redis = RedisServer::start().await;
    // Keycloak POSTs logout tokens to replica A (one URL per client, as in a cluster where it
    // would be the Service's); replica B learns of it through Redis. The realm names A's
    // address before A starts: a reserved port.
    let a_http = local(free_port());
    let realm = TestRealm::create(&kc, "signout", Some(a_http)).await;
    let stack = Stack::start(
        &kc,
        &realm,
        a_http,
        ANY,
        LOCALHOST,
        &store_args(store, &redis.url),
        false,
    )
    .await;
    let alice = Browser::new(&kc);
    let alice_cookie = alice.login(&stack, &ALICE).await;
    let bob = Browser::new(&kc);
    let bob_cookie = bob.login(&stack, &BOB).await;
    for r in stack.replicas() {
        assert_eq!(
            r.check(&alice_cookie).await,
            StatusCode::OK,
            "alice at {}",
            r.name
        );
        assert_eq!(
            r.check(&bob_cookie).await,
            StatusCode::OK,
            "bob at {}",
            r.name
        );
    }
    assert_eq!(kc.user_sessions(&realm.name, "alice").await.len(), 1);

    let mark = stack.a.log().mark();
    let signed_out = Instant::now();
    realm.sign_out(&kc, "alice").await;
    let acknowledged = signed_out.elapsed();

    // Keycloak sends the logout token to replica A before it answers the admin; A revokes
    // the session in Redis before it answers Keycloak. Wait for the fact that A did (how long
    // Keycloak takes under load is not the adapter's business) ...
    let revoked = stack
        .a
        .log()
        .wait_since(
            mark,
            &["back-channel logout: sessions revoked"],
            common::START_DEADLINE,
        )
        .await;
    assert!(
        revoked.is_some(),
        "replica A logged no \"back-channel logout: sessions revoked\" within {:?} of \
         Keycloak's answer to the admin sign-out\n{}",
        common::START_DEADLINE,
        stack.logs()
    );
    let processed = signed_out.elapsed();
    // ... then both replicas deny alice's session at once: each consults Redis on every
    // check, so there is nothing to wait for.
    for r in stack.replicas() {
        let (status, body) = r.check_full(&alice_cookie).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "replica {}: alice's session after the back-channel logout: {body}\n{}",
            r.name,
            stack.logs()
        );
    }
    // Through Envoy too, the session is over. The check request carries `Accept`, so the API
    // call gets the adapter's 401 (README: not a navigation) ...
    let client = app_client(None);
    let (status, body) = stack.check(&client, &alice_cookie).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an API call with the ended session, through Envoy: {body}"
    );
    // ... and a navigation goes to Keycloak's login.
    let r = alice.navigate(&format!("{}/", stack.base)).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(location(&r).starts_with(&realm.issuer), "{}", location(&r));
    // Bob's session is another one: untouched.
    for r in stack.replicas() {
        assert_eq!(
            r.check(&bob_cookie).await,
            StatusCode::OK,
            "bob at {}",
            r.name
        );
    }
    assert!(kc.user_sessions(&realm.name, "alice").await.is_empty());
    assert_eq!(kc.user_sessions(&realm.name, "bob").await.len(), 1);
    eprintln!(
        "[keycloak_scale] admin sign-out ({store:?} store): Keycloak answered in \
         {acknowledged:?}; replica A's log showed the revocation after {processed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keycloak_admin_sign_out_ends_the_session_on_both_replicas_redis_store() {
    admin_sign_out_case(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keycloak_admin_sign_out_ends_the_session_on_both_replicas_cookie_store() {
    admin_sign_out_case(Store::Cookie).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Faults.

/// Envoy's HTTP ext_authz counters: checks the adapter allowed, denied (its non-5xx answers,
/// passed to the client), and errors (no answer, or a 5xx answer: Envoy then answers
/// `status_on_error`, Istio's default 403, with an empty body).
const EXT_AUTHZ_OK: &str = "http.ingress_http.ext_authz.ok";
const EXT_AUTHZ_DENIED: &str = "http.ingress_http.ext_authz.denied";
const EXT_AUTHZ_ERROR: &str = "http.ingress_http.ext_authz.error";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_and_restarted_fails_closed_then_the_session_works_again() {
    let kc = keycloak();
    let mut redis = persistent_redis().await;
    let realm = TestRealm::create(&kc, "redis-outage", None).await;
    let stack = Stack::start(
        &kc,
        &realm,
        ANY,
        ANY,
        LOCALHOST,
        &store_args(Store::Redis, &redis.url),
        true,
    )
    .await;
    let browser = Browser::new(&kc);
    let cookie = browser.login(&stack, &ALICE).await;
    for r in stack.replicas() {
        assert_eq!(r.check(&cookie).await, StatusCode::OK, "replica {}", r.name);
    }
    let grpc_base = stack.grpc_base();
    let grpc_client = app_client(None);
    let grpc_check = |base: String, cookie: String, accept: &'static str| {
        let client = grpc_client.clone();
        async move {
            let r = client
                .get(format!("{base}/"))
                .header("cookie", cookie)
                .header("accept", accept)
                .send()
                .await
                .expect("request through the gRPC-mode Envoy");
            (r.status(), r.text().await.unwrap_or_default())
        }
    };
    assert_eq!(
        grpc_check(grpc_base.clone(), cookie.clone(), "text/html")
            .await
            .0,
        StatusCode::OK
    );
    let denied_before = Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_DENIED).await;
    let errors_before = Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_ERROR).await;

    let load = Load::start(&stack.base, &cookie, Duration::from_millis(20), 2000);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stop_begin = load.now();
    redis.stop().await;
    let stopped = load.now();

    // While Redis is down: each replica answers 503, quickly, saying why.
    for r in stack.replicas() {
        let asked = Instant::now();
        let (status, body) = r.check_full(&cookie).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "replica {}: {body}",
            r.name
        );
        assert!(body.contains("session store"), "replica {}: {body}", r.name);
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "fails fast: {:?}",
            asked.elapsed()
        );
    }
    assert!(
        stack
            .a
            .log_tail()
            .contains("session store (Redis) unavailable")
            || stack
                .b
                .log_tail()
                .contains("session store (Redis) unavailable"),
        "a clear log line\n{}",
        stack.logs()
    );
    // Behind the gRPC-mode Envoy the 503 reaches the browser: a page that says so.
    let (status, page) = grpc_check(grpc_base.clone(), cookie.clone(), "text/html").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert!(page.contains("session store"), "{page}");
    // Behind the HTTP-mode Envoy (the seed's), Envoy turns any 5xx of the authorization
    // server into its status_on_error (Istio's default 403, empty; README, "Through Envoy's
    // HTTP ext_authz"): still denied, but not the adapter's page.
    let errors_then = Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_ERROR).await;
    let page = browser.navigate(&format!("{}/", stack.base)).await;
    let status = page.status();
    let body = page.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a navigation through the HTTP-mode Envoy while Redis is down: {body}"
    );
    assert!(
        body.is_empty(),
        "Envoy's status_on_error has no body: {body}"
    );
    assert!(
        Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_ERROR).await > errors_then,
        "the 403 is Envoy's status_on_error for the adapter's 503"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let restart_begin = load.now();
    redis.restart().await;
    let restarted = load.now();
    // Back on its own, with the same session (it was persisted): no new login.
    let deadline = Instant::now() + Duration::from_secs(10);
    for r in stack.replicas() {
        loop {
            let (status, body) = r.check_full(&cookie).await;
            if status == StatusCode::OK {
                break;
            }
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "replica {}: {body}",
                r.name
            );
            assert!(
                Instant::now() < deadline,
                "replica {} still {status} 10 s after Redis came back\n{}",
                r.name,
                stack.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let healed = load.now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let samples = load.stop().await;
    assert_eq!(
        grpc_check(grpc_base, cookie.clone(), "text/html").await.0,
        StatusCode::OK
    );

    let listing = describe(&samples);
    let before: Vec<&Sample> = samples.iter().filter(|s| s.done < stop_begin).collect();
    assert!(before.len() >= 5, "load before the outage: {listing}");
    assert!(
        before.iter().all(|s| s.status == 200),
        "before the outage: {listing}"
    );
    let down: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= stopped && s.done <= restart_begin)
        .collect();
    // Each refused check takes a few hundred ms (the adapter tries to reconnect first).
    assert!(down.len() >= 3, "load during the outage: {listing}");
    assert!(
        down.iter().all(|s| s.status == 403),
        "every check while Redis is down is refused (the adapter's 503, answered by Envoy with \
         status_on_error 403), never an allow: {listing}"
    );
    assert!(
        samples.iter().all(|s| [200, 403].contains(&s.status)),
        "no 401/302 (the session was never lost): {listing}"
    );
    let after: Vec<&Sample> = samples.iter().filter(|s| s.sent >= healed).collect();
    assert!(
        !after.is_empty() && after.iter().all(|s| s.status == 200),
        "after: {listing}"
    );
    // Every refusal came from the check (Envoy 1.40: the adapter's 503 counted as an
    // ext_authz error and answered with status_on_error), none from anywhere else.
    let refused = samples.iter().filter(|s| s.status != 200).count() as u64 + 1;
    let denied = Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_DENIED).await - denied_before;
    let errors = Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_ERROR).await - errors_before;
    assert_eq!(
        denied + errors,
        refused,
        "denied {denied}, errors {errors}: {listing}"
    );
    eprintln!(
        "[keycloak_scale] Redis outage: stopped at {stopped:?}, restarted at {restarted:?}, both \
         replicas 200 again at {healed:?}; {} checks through Envoy while down, none allowed; \
         statuses {:?}; Envoy ext_authz ok={} error={}",
        down.len(),
        histogram(samples.iter().map(|s| s.status)),
        Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_OK).await,
        Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_ERROR).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keycloak_unreachable_keeps_sessions_refuses_new_logins_clearly_and_refresh_resumes() {
    let kc = keycloak();
    let redis = RedisServer::start().await;
    let realm = TestRealm::create(&kc, "kc-outage", None).await;
    let mut path = KeycloakPath::start(&kc).await;
    let mut extra = store_args(Store::Redis, &redis.url);
    extra.push("--cookie-refresh=2s".to_owned());
    let stack = Stack::start(&kc, &realm, ANY, ANY, path.ip(), &extra, false).await;
    let alice = Browser::new(&kc);
    let cookie = alice.login(&stack, &ALICE).await;
    let logged_in = Instant::now();

    path.cut().await;
    tokio::time::sleep(
        (logged_in + Duration::from_millis(3100)).saturating_duration_since(Instant::now()),
    )
    .await;

    // Existing sessions keep working although their refresh is due and fails.
    let client = app_client(None);
    let asked = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (client, url, cookie) = (
                client.clone(),
                format!("{}/api", stack.base),
                cookie.clone(),
            );
            tokio::spawn(async move {
                client
                    .get(url)
                    .header("cookie", cookie)
                    .header("accept", "application/json")
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let outage_latency = asked.elapsed();
    assert_eq!(
        histogram(statuses),
        BTreeMap::from([(200, 20)]),
        "sessions keep working while Keycloak is unreachable\n{}",
        stack.logs()
    );
    for r in stack.replicas() {
        assert_eq!(r.check(&cookie).await, StatusCode::OK, "replica {}", r.name);
    }
    let failures = stack.a.refresh_failures().await + stack.b.refresh_failures().await;
    assert!(
        failures >= 1,
        "a refresh was due and attempted\n{}",
        stack.logs()
    );
    assert_eq!(realm.count(&kc, REFRESH_TOKEN).await, 0);

    // A new login: Keycloak's page works for the browser (only the replicas' path to it is
    // cut), but the replica cannot redeem the code. Through the seed's Envoy (HTTP mode) the
    // adapter's 5xx becomes Envoy's status_on_error (403, empty); the adapter's own answer,
    // seen by logging in straight at replica A, is a page that says the sign-in failed. No
    // session either way.
    let bob = Browser::new(&kc);
    let callback = bob
        .login_until_callback(&stack.base, &realm.issuer, &BOB)
        .await;
    let errors_before = Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_ERROR).await;
    let r = bob.navigate(&callback).await;
    let through_envoy = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(
        through_envoy,
        StatusCode::FORBIDDEN,
        "a new login while Keycloak is unreachable, through Envoy: the adapter's 502 becomes \
         Envoy's status_on_error (README, \"Through Envoy's HTTP ext_authz\"): {body}"
    );
    assert_eq!(
        Stack::envoy_stat(&stack.envoy, EXT_AUTHZ_ERROR).await,
        errors_before + 1,
        "the 403 is Envoy's status_on_error"
    );
    let at_a = format!("http://{APP_HOST}:{}", stack.a.http.port());
    // Bob has a Keycloak session now: no login form this time.
    let callback = bob.login_until_callback(&at_a, &realm.issuer, &BOB).await;
    let r = bob.navigate(&callback).await;
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let login_page = r.text().await.unwrap_or_default();
    // The replica is ready (discovery was done before the cut): the code exchange itself
    // fails, which the engine answers with 502 (oidc-core engine.rs, login_error_page: an
    // exchange error other than invalid_grant). 503 is for a provider not discovered yet
    // (replica C below).
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "a new login while Keycloak is unreachable, at the replica: {login_page}"
    );
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(login_page.contains("Sign-in failed"), "{login_page}");
    assert!(login_page.contains("Sign in again"), "{login_page}");
    assert!(
        !bob.cookie_header(&stack.base)
            .split("; ")
            .any(|c| c.starts_with("auth=") || c.starts_with("auth_0=")),
        "no session for bob"
    );

    // A replica started during the outage: not ready, 503 to a new login, and it serves the
    // existing session (a restart loses nothing).
    let mut c = Replica::spawn("C", ANY, &realm.issuer, &kc.client_secret, &stack.args).await;
    c.wait_for("/ping").await;
    let ready = plain_client()
        .get(format!("http://{}/ready", c.http))
        .send()
        .await
        .unwrap()
        .status();
    assert_ne!(ready, StatusCode::OK, "not ready without Keycloak");
    let r = Browser::new(&kc)
        .navigate(&format!("http://{APP_HOST}:{}/", c.http.port()))
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("identity provider cannot be reached"),
        "{page}"
    );
    assert_eq!(
        c.check(&cookie).await,
        StatusCode::OK,
        "replica C serves the session"
    );
    drop(c);

    // Keycloak is back: the session is refreshed (once), and nothing failed meanwhile.
    path.restore().await;
    let back = Instant::now();
    let mut requests = 0;
    let refreshed_after = loop {
        let (status, body) = stack.check(&client, &cookie).await;
        requests += 1;
        assert_eq!(status, StatusCode::OK, "{body}\n{}", stack.logs());
        if realm.count(&kc, REFRESH_TOKEN).await > 0 {
            break back.elapsed();
        }
        // A failed refresh is retried after 5 s: generous, the wait ends with the refresh.
        assert!(
            back.elapsed() < common::START_DEADLINE,
            "no refresh within {:?} of Keycloak coming back\n{}",
            common::START_DEADLINE,
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(realm.count(&kc, REFRESH_TOKEN).await, 1);
    assert_eq!(realm.count(&kc, REFRESH_TOKEN_ERROR).await, 0);
    let attempts = stack.a.refreshes().await + stack.b.refreshes().await;
    let failed = stack.a.refresh_failures().await + stack.b.refresh_failures().await;
    assert_eq!(
        attempts - failed,
        1,
        "one successful refresh ({attempts} attempts)"
    );
    for r in stack.replicas() {
        assert_eq!(r.check(&cookie).await, StatusCode::OK, "replica {}", r.name);
    }
    // And logins work again (bob still has his Keycloak session: no form this time).
    let bob_cookie = bob.login(&stack, &BOB).await;
    assert_eq!(stack.check(&client, &bob_cookie).await.0, StatusCode::OK);
    eprintln!(
        "[keycloak_scale] Keycloak outage: 20 concurrent checks with a due refresh answered in \
         {outage_latency:?} (all 200, {failures} failed refresh attempts); new login -> \
         {through_envoy} through Envoy, {status} at the replica; \
         refreshed {refreshed_after:?} after Keycloak came back ({requests} requests)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_is_taken_out_and_the_other_serves_the_session() {
    let kc = keycloak();
    let redis = RedisServer::start().await;
    let realm = TestRealm::create(&kc, "kill", None).await;
    // B is restarted on the same port (Envoy's cluster names it): a reserved port.
    let mut stack = Stack::start(
        &kc,
        &realm,
        ANY,
        local(free_port()),
        LOCALHOST,
        &store_args(Store::Cookie, &redis.url),
        false,
    )
    .await;
    let browser = Browser::new(&kc);
    let cookie = browser.login(&stack, &ALICE).await;
    let client = app_client(None);
    let before = [stack.a.allowed().await, stack.b.allowed().await];
    for _ in 0..20 {
        assert_eq!(stack.check(&client, &cookie).await.0, StatusCode::OK);
    }
    let spread = [
        stack.a.allowed().await - before[0],
        stack.b.allowed().await - before[1],
    ];
    assert!(
        spread.iter().all(|n| *n >= 5),
        "round robin over A and B: {spread:?}"
    );

    let load = Load::start(&stack.base, &cookie, Duration::from_millis(10), 3000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = load.now();
    stack.b.kill().await;
    // Wait for the fact: Envoy's health check took B out (three refused checks).
    let failed = format!("{}::health_flags::/failed_active_hc", stack.b.http);
    let deadline = Instant::now() + common::START_DEADLINE;
    let mut endpoints = stack.envoy_authz_endpoints().await;
    while !endpoints.contains(&failed) {
        assert!(
            Instant::now() < deadline,
            "Envoy did not take the killed replica B out within {:?}:\n{endpoints}\n{}",
            common::START_DEADLINE,
            stack.envoy.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        endpoints = stack.envoy_authz_endpoints().await;
    }
    let taken_out = load.now();
    // Envoy's workers learn of the flag from its main thread (where the admin endpoint reads
    // it) a moment later: checks sent from 1 s after that are routed to A only.
    let grace = taken_out + Duration::from_secs(1);
    let deadline = Instant::now() + common::START_DEADLINE;
    while load.answered_since(grace) < 20 {
        assert!(
            Instant::now() < deadline,
            "the load got fewer than 20 answers in {:?} after B was taken out",
            common::START_DEADLINE
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let samples = load.stop().await;
    let listing = describe(&samples);

    assert!(
        samples
            .iter()
            .filter(|s| s.done < killed_at)
            .all(|s| s.status == 200),
        "before the kill: {listing}"
    );
    assert!(
        samples.iter().all(|s| s.status == 200 || s.status == 403),
        "no 401/302 (no session lost) and no other error: {listing}"
    );
    // 403 is Envoy's status_on_error for a check sent to the dead endpoint before the health
    // check took it out (there is no ext_authz retry); only until then.
    let errors: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(
        errors.iter().all(|s| s.sent < grace),
        "errors only until Envoy took B out (at {taken_out:?}, killed at {killed_at:?}): \
         {listing}\nEnvoy's endpoints:\n{endpoints}\n{}",
        stack.envoy.log_tail()
    );
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.sent >= grace).collect();
    assert!(settled.len() >= 20, "{listing}");
    assert!(settled.iter().all(|s| s.status == 200), "{listing}");

    // B restarted: it serves the same session again, and Envoy sends it requests again.
    stack.b.restart(&kc.client_secret).await;
    assert_eq!(stack.b.check(&cookie).await, StatusCode::OK);
    let deadline = Instant::now() + common::START_DEADLINE;
    while !stack
        .envoy_authz_endpoints()
        .await
        .contains(&format!("{}::health_flags::healthy", stack.b.http))
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            stack.envoy_authz_endpoints().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b_before = stack.b.allowed().await;
    for _ in 0..20 {
        assert_eq!(stack.check(&client, &cookie).await.0, StatusCode::OK);
    }
    assert!(
        stack.b.allowed().await - b_before >= 5,
        "Envoy uses B again"
    );
    eprintln!(
        "[keycloak_scale] replica killed at {killed_at:?}, taken out by Envoy at \
         {taken_out:?}: {} checks, statuses {:?}, errors at {:?}",
        samples.len(),
        histogram(samples.iter().map(|s| s.status)),
        errors.iter().map(|s| s.sent).collect::<Vec<_>>()
    );
}

/// Regression test of an adapter bug (see the comment in the body): a replica waiting for
/// another's refresh stops waiting when that refresh gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keycloak_failing_slowly_does_not_stall_the_other_replica() {
    let kc = keycloak();
    let redis = RedisServer::start().await;
    let realm = TestRealm::create(&kc, "kc-slow", None).await;
    let mut path = KeycloakPath::start(&kc).await;
    let mut extra = store_args(Store::Redis, &redis.url);
    extra.push("--cookie-refresh=2s".to_owned());
    let stack = Stack::start(&kc, &realm, ANY, ANY, path.ip(), &extra, false).await;
    let cookie = Browser::new(&kc).login(&stack, &ALICE).await;
    // Keycloak fails slowly: every connection is closed after 1 s without an answer.
    path.cut().await;
    path.hang_up_after(Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;

    // A's check takes the Redis refresh lock; its refresh fails after 1 s (a network error:
    // the session is kept) and A releases the lock without publishing anything. B's check,
    // 200 ms later, finds the lock taken and polls for a published result until its deadline
    // (store.rs REFRESH_WAIT, 10 s), although A gave up 9 s earlier: every request on B
    // stalls 10 s. Behind Istio with an ext_authz timeout under 10 s that is a 403 for every
    // user of B during a Keycloak outage.
    let a = stack.a.http;
    let first = tokio::spawn({
        let cookie = cookie.clone();
        async move {
            let started = Instant::now();
            let status = app_client(Some(a))
                .get(format!("http://{APP_HOST}:{}/api", a.port()))
                .header("cookie", cookie)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .status();
            (status, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let status_b = stack.b.check(&cookie).await;
    let waited_b = started.elapsed();
    let (status_a, waited_a) = first.await.unwrap();
    assert_eq!(status_a, StatusCode::OK);
    assert_eq!(status_b, StatusCode::OK);
    assert!(
        waited_b < waited_a + Duration::from_secs(1),
        "replica B waited {waited_b:?} for a refresh replica A gave up after {waited_a:?}\n{}",
        stack.logs()
    );
}
