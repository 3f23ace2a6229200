//! The email rule holds at every refresh, on the real stack: the shared Keycloak 26 of
//! `cargo xtask test` (a realm of the test's own), two replicas of the adapter binary and
//! Envoy in front of them.
//!
//! A user signs in; then their address changes at Keycloak (as an admin, or the user's own
//! "update profile", can do) to one the login would refuse: an unverified address, or one of
//! a domain `--email-domain` does not allow. At the next refresh (`--cookie-refresh=1s`) the
//! session ends: the check answers 401 and the new address never reaches the app in
//! `X-Auth-Request-Email`. (Bearer tokens are held to the same rule in `keycloak_e2e.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod scale;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::StatusCode;
use scale::*;
use serde_json::json;
use test_support::keycloak::{ALICE, Keycloak, keycloak};

/// Where the replicas reach Keycloak.
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// One check sent straight to a replica, as an API call with `cookie`: the status and the
/// `X-Auth-Request-Email` the app would get.
/// The check's status, the email the app would see, and the session cookie a refresh set (as a
/// `Cookie` header value), if it set one.
async fn check(replica: &Replica, cookie: &str) -> (StatusCode, Option<String>, Option<String>) {
    let r = app_client(Some(replica.http))
        .get(format!("http://{APP_HOST}:{}/api", replica.http.port()))
        .header("cookie", cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("check at replica {}: {e}", replica.name));
    let email = r
        .headers()
        .get("x-auth-request-email")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.contains("Max-Age=0"))
        .filter_map(|v| v.split(';').next())
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, value)| !value.is_empty())
        })
        .collect();
    let refreshed = (!set.is_empty()).then(|| set.join("; "));
    (r.status(), email, refreshed)
}

/// Changes the email of `username` in `realm` at Keycloak (the whole representation is sent
/// back, so the user profile's other attributes stay as they were).
async fn change_email(
    kc: &Keycloak,
    realm: &TestRealm,
    username: &str,
    email: &str,
    verified: bool,
) {
    let id = realm.user_id(kc, username).await;
    let mut user = kc.admin_get(&format!("{}/users/{id}", realm.name)).await;
    user["email"] = json!(email);
    user["emailVerified"] = json!(verified);
    let (status, body) = kc
        .admin_send(
            reqwest::Method::PUT,
            &format!("{}/users/{id}", realm.name),
            Some(&user),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "changing {username}'s email: {body}"
    );
}

async fn a_refresh_to_a_refused_email_ends_the_session(tag: &str, email: &str, verified: bool) {
    let kc = keycloak();
    let realm = TestRealm::create(&kc, tag, None).await;
    let args = [
        "--cookie-refresh=1s",
        "--set-xauthrequest=true",
        "--email-domain=example.com",
    ]
    .map(str::to_owned);
    let stack = Stack::start(&kc, &realm, ANY, ANY, LOCALHOST, &args, false).await;
    let browser = Browser::new(&kc);
    let cookie = browser.login(&stack, &ALICE).await;
    // The control: the session works and carries the address she signed in with.
    let (status, seen, refreshed) = check(&stack.a, &cookie).await;
    assert_eq!(status, StatusCode::OK, "{}", stack.logs());
    assert_eq!(seen.as_deref(), Some(ALICE.email));
    // Like a browser, keep the cookie a refresh sets: the control may already refresh (it can
    // fall in a later second than the login), and for a while the engine answers the old
    // cookie with that refresh's result (one refresh per session, docs/sessions.md), so the old
    // cookie would not show the next refresh.
    let cookie = refreshed.unwrap_or(cookie);

    change_email(&kc, &realm, ALICE.username, email, verified).await;
    // Sessions count Unix seconds: after a whole second the session is due for refresh.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for replica in stack.replicas() {
        let (status, seen, _) = check(replica, &cookie).await;
        assert_ne!(
            seen.as_deref(),
            Some(email),
            "replica {}: the refused address reached the app\n{}",
            replica.name,
            stack.logs()
        );
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "replica {}: a refresh bringing {email} (verified: {verified}) ends the session\n{}",
            replica.name,
            stack.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_bringing_an_unverified_email_ends_the_session() {
    a_refresh_to_a_refused_email_ends_the_session("unverified", "mallory@example.com", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_bringing_an_email_of_another_domain_ends_the_session() {
    a_refresh_to_a_refused_email_ends_the_session("other-domain", "alice@elsewhere.test", true)
        .await;
}
