//! End-to-end login through the real adapter binary against a real,
//! OpenID-certified provider (node oidc-provider), with a cookie-jar client.

mod common;

use std::time::Duration;

use common::*;
use test_support::{AuthMethod, OidcProvider};

#[tokio::test]
async fn seed_args_full_login_ends_in_200_with_identity_headers() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &[
            "--set-xauthrequest=true",
            "--pass-access-token",
            "--scope=openid email profile groups",
        ],
    )
    .await;
    let c = client(port);

    // Not logged in: the ext_authz check answers with a redirect to the provider.
    let r = check(&c, &adapter, "/some/page?x=1").await;
    assert_eq!(r.status(), 302);
    let authorize = location(r.headers());
    assert!(authorize.starts_with(&idp.issuer), "{authorize}");
    for p in [
        "state=",
        "nonce=",
        "code_challenge=",
        "code_challenge_method=S256",
        "response_type=code",
        "client_id=nginx",
    ] {
        assert!(
            authorize.contains(p),
            "authorize URL lacks {p}: {authorize}"
        );
    }
    let flow_cookie = set_cookies(r.headers())
        .into_iter()
        .find(|c| c.starts_with("auth_csrf_"))
        .expect("flow cookie");
    assert!(
        flow_cookie.contains("HttpOnly") && flow_cookie.contains("SameSite=Lax"),
        "{flow_cookie}"
    );

    let callback = test_support::login_at_provider(&c, &authorize, "alice", "pw").await;
    assert!(
        callback.starts_with(&format!("{}/oauth2/callback?", adapter.base)),
        "{callback}"
    );
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        location(r.headers()),
        "/some/page?x=1",
        "back where the user started"
    );
    assert_session_started(&set_cookies(r.headers()));

    // Logged in: 200 with the identity headers.
    let r = check(&c, &adapter, "/some/page").await;
    assert_eq!(
        r.status(),
        200,
        "allowed requests answer 200 (Envoy denies anything else)"
    );
    let h = r.headers();
    assert_eq!(h["x-auth-request-email"], "alice@example.com");
    assert_eq!(h["x-auth-request-user"], "alice");
    assert_eq!(h["x-auth-request-preferred-username"], "alice");
    assert_eq!(h["x-auth-request-groups"], "users,alice-group");
    assert!(!h["x-auth-request-access-token"].is_empty());
    let bearer = h["authorization"].to_str().unwrap();
    assert!(bearer.starts_with("Bearer ey"), "{bearer}");
    let remove = h["x-envoy-auth-headers-to-remove"].to_str().unwrap();
    for forged in [
        "x_auth_request_user",
        "x_auth_request_email",
        "x-forwarded-user",
    ] {
        assert!(
            remove.split(',').any(|x| x == forged),
            "{forged} not removed: {remove}"
        );
    }
    assert!(
        !remove.split(',').any(|x| x == "x-auth-request-user"),
        "set headers overwrite, not removed"
    );

    // oauth2-proxy's other endpoints see the same session.
    let r = c
        .get(format!("{}/oauth2/auth", adapter.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-auth-request-email"], "alice@example.com");
    let info: serde_json::Value = c
        .get(format!("{}/oauth2/userinfo", adapter.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["groups"][0], "users");
}

#[tokio::test]
async fn without_a_session_navigations_redirect_and_api_calls_get_401() {
    let idp = provider_without_logins().await;
    let adapter = Adapter::start(&idp.issuer, 0, &[]).await;
    let c = client(adapter.port);
    let url = format!("{}/api/items", adapter.base);
    for (name, value) in [
        ("accept", "application/json"),
        ("sec-fetch-mode", "cors"),
        ("x-requested-with", "XMLHttpRequest"),
    ] {
        let r = c.get(&url).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}: {value}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    let r = c
        .get(&url)
        .header("sec-fetch-mode", "navigate")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = c
        .get(format!("{}/oauth2/auth", adapter.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "nginx auth_request endpoint");
}

#[tokio::test]
async fn without_skip_provider_button_navigations_get_a_sign_in_page() {
    let idp = provider_without_logins().await;
    let adapter = Adapter::start(&idp.issuer, 0, &["--skip-provider-button=false"]).await;
    let c = client(adapter.port);
    let r = check(&c, &adapter, "/page").await;
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(body.contains("/oauth2/start?rd=%2Fpage"), "{body}");
}

#[tokio::test]
async fn tampered_expired_and_foreign_cookies_are_denied() {
    let (port, port2) = (callback_port(), callback_port());
    let idp = OidcProvider::start(vec![client_spec(port), {
        let mut s = client_spec(port2);
        s.client_id = "other".into();
        s
    }])
    .await;
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &["--cookie-expire=3s", "--cookie-refresh=0"],
    )
    .await;
    let c = client(port);
    login(&c, &adapter, "/", "alice").await;
    let r = check(&c, &adapter, "/").await;
    assert_eq!(r.status(), 200);

    // Read the session cookie the way the browser holds it.
    let cookie = session_cookie(&c, &adapter).await;
    let raw = raw_client(port);
    let check_with = |cookie: String| {
        let raw = raw.clone();
        let url = format!("{}/x", adapter.base);
        async move {
            raw.get(url)
                .header("accept", "application/json")
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        check_with(format!("auth={cookie}")).await.status(),
        200,
        "the cookie itself is valid"
    );

    // Tampered: flip one character.
    let mut bytes = cookie.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let r = check_with(format!("auth={}", String::from_utf8(bytes).unwrap())).await;
    assert_eq!(r.status(), 401);
    assert!(
        set_cookies(r.headers())
            .iter()
            .any(|c| c.starts_with("auth=;") || c.starts_with("auth=; ")),
        "refused cookie is cleared"
    );

    // Copied under another name (a chunk name) fails: the name is authenticated.
    assert_eq!(check_with(format!("auth_0={cookie}")).await.status(), 401);

    // Foreign: a cookie made by another deployment with another secret.
    let other = Adapter::start(
        &idp.issuer,
        port2,
        &[
            "--client-id=other",
            "--cookie-secret=another-secret-of-32-bytes-long!",
        ],
    )
    .await;
    let c2 = client(port2);
    login(&c2, &other, "/", "bob").await;
    let foreign = session_cookie(&c2, &other).await;
    assert_eq!(check_with(format!("auth={foreign}")).await.status(), 401);

    // Expired: --cookie-expire=3s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(check_with(format!("auth={cookie}")).await.status(), 401);
}

async fn session_cookie(c: &Browser, adapter: &Adapter) -> String {
    c.cookie(&adapter.base, "auth")
        .expect("auth cookie in the jar")
}

#[tokio::test]
async fn two_tabs_of_one_browser_log_in_at_the_same_time() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(&idp.issuer, port, &[]).await;
    let c = client(port);
    // Both tabs start before either finishes; each has its own flow cookie.
    let r_a = check(&c, &adapter, "/tab-a").await;
    let r_b = check(&c, &adapter, "/tab-b").await;
    let (auth_a, auth_b) = (location(r_a.headers()), location(r_b.headers()));
    assert_ne!(auth_a, auth_b);
    let flows: Vec<_> = c
        .cookie_names(&adapter.base)
        .into_iter()
        .filter(|n| n.starts_with("auth_csrf_"))
        .collect();
    assert_eq!(flows.len(), 2, "{flows:?}");
    let cb_a = test_support::login_at_provider(&c, &auth_a, "alice", "pw").await;
    let cb_b = test_support::login_at_provider(&c, &auth_b, "alice", "pw").await;
    // Finish in the other order.
    assert_eq!(finish_login(&c, &cb_b).await, "/tab-b");
    assert_eq!(finish_login(&c, &cb_a).await, "/tab-a");
    assert_eq!(check(&c, &adapter, "/").await.status(), 200);
    // Replaying a finished callback (same state and code) creates nothing.
    let fresh = client(port);
    let r = fresh.get(&cb_a).send().await.unwrap();
    assert_eq!(
        r.status(),
        403,
        "no flow cookie in this browser: state check fails"
    );
    assert!(fresh.cookie(&adapter.base, "auth").is_none());
}

#[tokio::test]
async fn abandoned_logins_do_not_pile_up() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(&idp.issuer, port, &[]).await;
    let c = client(port);
    for i in 0..12 {
        let r = check(&c, &adapter, &format!("/abandoned/{i}")).await;
        assert_eq!(r.status(), 302);
    }
    let flows = c
        .cookie_names(&adapter.base)
        .into_iter()
        .filter(|n| n.starts_with("auth_csrf_"))
        .count();
    assert!(flows <= 5, "flow cookies are bounded, found {flows}");
    // The newest one still completes.
    login(&c, &adapter, "/newest", "alice").await;
    assert_eq!(check(&c, &adapter, "/").await.status(), 200);
}

#[tokio::test]
async fn callback_with_a_forged_state_or_a_replayed_code_creates_no_session() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(&idp.issuer, port, &[]).await;
    let c = client(port);
    let callback = begin_login(&c, &adapter, "/", "alice").await;
    let mut forged = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    forged.query_pairs_mut().clear();
    for (k, v) in &pairs {
        let v = if k == "state" {
            format!("{}x", &v[..v.len() - 1])
        } else {
            v.clone()
        };
        forged.query_pairs_mut().append_pair(k, &v);
    }
    let r = c.get(forged.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(c.cookie(&adapter.base, "auth").is_none());
    // The genuine callback still works once ...
    finish_login(&c, &callback).await;
    assert_eq!(check(&c, &adapter, "/").await.status(), 200);
    // ... and never twice: its flow cookie is gone.
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn sign_out_clears_every_chunk_and_ends_the_session() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(&idp.issuer, port, &[]).await;
    let c = client(port);
    login(&c, &adapter, "/", "alice").await;
    assert_eq!(check(&c, &adapter, "/").await.status(), 200);
    let r = c
        .get(format!("{}/oauth2/sign_out?rd=%2Fbye", adapter.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(r.headers()), "/bye");
    assert_eq!(
        check(&c, &adapter, "/").await.status(),
        302,
        "session ended"
    );

    // A chunked session (as a large Keycloak session would be) is cleared chunk by chunk.
    let raw = raw_client(port);
    let r = raw
        .get(format!(
            "{}/oauth2/sign_out?rd=https%3A%2F%2Fevil.com%2F",
            adapter.base
        ))
        .header("cookie", "auth_0=a; auth_1=b; auth_2=c; other=1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(r.headers()),
        "/",
        "rd outside the whitelist falls back to /"
    );
    let cleared: Vec<String> = set_cookies(r.headers())
        .into_iter()
        .filter(|c| c.contains("Max-Age=0"))
        .map(|c| c.split('=').next().unwrap().to_owned())
        .collect();
    for name in ["auth_0", "auth_1", "auth_2"] {
        assert!(
            cleared.iter().any(|c| c == name),
            "{name} not cleared: {cleared:?}"
        );
    }
    assert!(!cleared.iter().any(|c| c == "other"));
}

#[tokio::test]
async fn rd_is_validated_on_login() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(&idp.issuer, port, &[]).await;
    let c = client(port);
    let evil = login(&c, &adapter, "/oauth2/start?rd=%2F%2Fevil.com%2Fx", "alice").await;
    assert_eq!(evil, "/");
    let c = client(port);
    let ok = login(
        &c,
        &adapter,
        "/oauth2/start?rd=http%3A%2F%2Fapp.example.com%2Fhome",
        "alice",
    )
    .await;
    assert_eq!(
        ok, "http://app.example.com/home",
        "whitelisted by --whitelist-domain=*.example.com"
    );
}

#[tokio::test]
async fn client_secret_post_works_and_a_wrong_method_is_refused() {
    let port = callback_port();
    let mut spec = client_spec(port);
    spec.auth_method = AuthMethod::ClientSecretPost;
    let idp = OidcProvider::start(vec![spec]).await;
    let good = Adapter::start(
        &idp.issuer,
        port,
        &["--token-endpoint-auth-method=client_secret_post"],
    )
    .await;
    let c = client(port);
    login(&c, &good, "/", "alice").await;
    assert_eq!(check(&c, &good, "/").await.status(), 200);
    drop(good);

    // The same port again: the provider's redirect URI names it.
    let bad = Adapter::start(&idp.issuer, port, &[]).await; // client_secret_basic
    let c = client(port);
    let callback = begin_login(&c, &bad, "/", "alice").await;
    let r = c.get(&callback).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    // The provider refuses the client authentication (invalid_client, not invalid_grant): the
    // code exchange failed at the provider, which the adapter answers with 502 and its
    // "Sign-in failed" page (oidc-core engine.rs, login_error_page).
    assert_eq!(
        status, 502,
        "a code exchange the provider refuses with invalid_client: {body}"
    );
    assert!(body.contains("Sign-in failed"), "{body}");
    assert!(
        c.cookie(&bad.base, "auth").is_none(),
        "no session after a failed exchange"
    );
}

#[tokio::test]
async fn unverified_email_is_refused_unless_allowed() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(&idp.issuer, port, &[]).await;
    let c = client(port);
    let callback = begin_login(&c, &adapter, "/", "unverified-eve").await;
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("not verified"), "{body}");
    assert!(c.cookie(&adapter.base, "auth").is_none());
    drop(adapter);

    // The same port again: the provider's redirect URI names it.
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &["--insecure-oidc-allow-unverified-email"],
    )
    .await;
    let c = client(port);
    login(&c, &adapter, "/", "unverified-eve").await;
    assert_eq!(check(&c, &adapter, "/").await.status(), 200);
}

#[tokio::test]
async fn email_domain_rule_is_applied() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let args = ["--email-domain=company.com"];
    let adapter = Adapter::start(&idp.issuer, port, &args).await;
    let c = client(port);
    login(&c, &adapter, "/", "alice").await; // alice@example.com
    assert_eq!(check(&c, &adapter, "/").await.status(), 403);
    let c = client(port);
    login(&c, &adapter, "/", "a@evil.com@company.com").await;
    assert_eq!(
        check(&c, &adapter, "/").await.status(),
        403,
        "two @ never pass a domain rule"
    );
    let c = client(port);
    login(&c, &adapter, "/", "carol@company.com").await;
    assert_eq!(check(&c, &adapter, "/").await.status(), 200);
}

#[tokio::test]
async fn ping_answers_at_once_and_ready_waits_for_discovery() {
    // A reserved port nothing listens on: the provider is unreachable.
    let dead_issuer = format!("http://127.0.0.1:{}", test_support::free_port());
    let adapter = Adapter::spawn(&dead_issuer, 0, &[]).await;
    let c = client(adapter.port);
    // Probes as the kubelet sends them (the pod's address as Host). The adapter listens (it
    // logged so) and discovery keeps failing: /ping answers 200 anyway, /ready 503.
    let probe = format!("http://127.0.0.1:{}", adapter.port);
    let r = c
        .get(format!("{probe}/ping"))
        .send()
        .await
        .expect("GET /ping");
    assert_eq!(
        (r.status(), r.text().await.unwrap()),
        (reqwest::StatusCode::OK, "OK".to_owned())
    );
    assert_eq!(
        c.get(format!("{probe}/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    // A login cannot start while the provider is unreachable: a clear 503 page.
    let r = check(&c, &adapter, "/").await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("cannot be reached"));
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_provider_session_too() {
    let port = callback_port();
    let mut spec = client_spec(port);
    spec.post_logout_redirect_uris = vec![format!("http://{HOST}:{port}/bye")];
    let idp = OidcProvider::start(vec![spec]).await;
    let adapter = Adapter::start(&idp.issuer, port, &["--oidc-rp-initiated-logout"]).await;
    let c = client(port);
    login(&c, &adapter, "/", "alice").await;
    let r = c
        .get(format!("{}/oauth2/sign_out?rd=%2Fbye", adapter.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let end_session = location(r.headers());
    assert!(end_session.starts_with(&idp.issuer), "{end_session}");
    assert!(end_session.contains("id_token_hint=ey"), "{end_session}");
    assert!(
        end_session.contains("post_logout_redirect_uri=http%3A%2F%2Fnginx.example.com"),
        "{end_session}"
    );
    assert!(
        set_cookies(r.headers())
            .iter()
            .any(|c| c.starts_with("auth=;")),
        "local session cleared"
    );
    let back = test_support::logout_at_provider(&c, &end_session).await;
    assert_eq!(back, format!("http://{HOST}:{port}/bye"));
    assert_eq!(
        check(&c, &adapter, "/").await.status(),
        302,
        "local session ended"
    );
    // The provider session ended too: the next login shows the login form again,
    // so another user can sign in with the same browser.
    let callback = begin_login(&c, &adapter, "/", "bob").await;
    finish_login(&c, &callback).await;
    let r = c
        .get(format!("{}/oauth2/userinfo", adapter.base))
        .send()
        .await
        .unwrap();
    let info: serde_json::Value = r.json().await.unwrap();
    assert_eq!(info["user"], "bob");
}

/// Counts lines of the provider's log containing `needle`.
fn provider_log_count(idp: &OidcProvider, needle: &str) -> usize {
    idp.output_tail()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test]
async fn concurrent_requests_due_for_refresh_share_one_refresh() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &["--cookie-refresh=1s", "--set-xauthrequest"],
    )
    .await;
    let c = client(port);
    login(&c, &adapter, "/", "alice").await;
    let old_cookie = c.cookie(&adapter.base, "auth").unwrap();
    // Due once a whole second has passed (sessions count Unix seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // 40 parallel requests, all with the same (now due) session cookie. However long they
    // take, a second refresh cannot be legitimate: every request here, and the late one
    // below, carries the old cookie, and the adapter hands the outcome of its refresh token's
    // one refresh to every holder of that token for 60 s (oidc-core refresh.rs, GRACE); the
    // refreshed cookie, which would be due again 1 s later, is never sent.
    let raw = raw_client(port);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let raw = raw.clone();
        let url = format!("{}/p/{i}", adapter.base);
        let cookie = format!("auth={old_cookie}");
        tasks.push(tokio::spawn(async move {
            let r = raw
                .get(url)
                .header("cookie", cookie)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            (r.status(), set_cookies(r.headers()))
        }));
    }
    let mut refreshed_cookies = 0;
    for t in tasks {
        let (status, cookies) = t.await.unwrap();
        assert_eq!(status, 200, "nobody is logged out by a refresh race");
        if cookies
            .iter()
            .any(|c| c.starts_with("auth=") && !c.contains("Max-Age=0"))
        {
            refreshed_cookies += 1;
        }
    }
    assert_eq!(
        refreshed_cookies, 40,
        "every request gets the refreshed session's cookie"
    );
    assert_eq!(
        provider_log_count(&idp, "grant.success refresh_token"),
        1,
        "{}",
        idp.output_tail()
    );
    assert_eq!(provider_log_count(&idp, "grant.error refresh_token"), 0);

    // A request a moment later with the old cookie still gets the refreshed session.
    let r = raw
        .get(format!("{}/late", adapter.base))
        .header("cookie", format!("auth={old_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(provider_log_count(&idp, "grant.success refresh_token"), 1);
}

#[tokio::test]
async fn a_refused_refresh_token_ends_the_session() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let first = Adapter::start(&idp.issuer, port, &["--cookie-refresh=1s"]).await;
    let c = client(port);
    login(&c, &first, "/", "alice").await;
    let old_cookie = c.cookie(&first.base, "auth").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The session is refreshed once (rotating the refresh token) ...
    assert_eq!(check(&c, &first, "/").await.status(), 200);
    assert_eq!(provider_log_count(&idp, "grant.success refresh_token"), 1);
    drop(first);
    // ... so a fresh process that sees the old cookie (its outcome cache is gone)
    // replays a consumed refresh token: the provider refuses it and the session ends.
    // No login at this one (the cookie is presented by hand): any port.
    let second = Adapter::start(&idp.issuer, 0, &["--cookie-refresh=1s"]).await;
    let raw = raw_client(second.port);
    let r = raw
        .get(format!("{}/", second.base))
        .header("cookie", format!("auth={old_cookie}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        set_cookies(r.headers())
            .iter()
            .any(|c| c.starts_with("auth=;")),
        "the dead session's cookie is cleared"
    );
    assert_eq!(
        provider_log_count(&idp, "grant.error refresh_token invalid_grant"),
        1,
        "{}",
        idp.output_tail()
    );
}

#[tokio::test]
async fn allowed_groups_and_authenticated_emails_decide_who_passes() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &[
            "--allowed-group=admins",
            "--allowed-role=nginx:editor",
            "--scope=openid email profile groups",
            "--set-xauthrequest",
        ],
    )
    .await;
    let c = client(port);
    login(&c, &adapter, "/", "alice").await; // groups: users, alice-group
    let r = check(&c, &adapter, "/").await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("group(admins) or client_role(nginx:editor)")
            && !body.contains("alice-group"),
        "says what is missing, leaks no claims: {body}"
    );
    let c = client(port);
    login(&c, &adapter, "/", "admin-ann").await; // in admins
    assert_eq!(check(&c, &adapter, "/").await.status(), 200);
    drop(adapter);

    let dir = std::env::temp_dir().join(format!("emails-{port}"));
    std::fs::write(&dir, "# allowed\nCarol@Elsewhere.org\n").unwrap();
    let file_flag = format!("--authenticated-emails-file={}", dir.display());
    // The same port again: the provider's redirect URI names it.
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &["--email-domain=example.com", file_flag.as_str()],
    )
    .await;
    let c = client(port);
    login(&c, &adapter, "/", "carol@elsewhere.org").await;
    assert_eq!(
        check(&c, &adapter, "/").await.status(),
        200,
        "listed address passes"
    );
    let c = client(port);
    login(&c, &adapter, "/", "dan@elsewhere.org").await;
    assert_eq!(
        check(&c, &adapter, "/").await.status(),
        403,
        "unlisted address of another domain"
    );
    let c = client(port);
    login(&c, &adapter, "/", "eve").await; // eve@example.com
    assert_eq!(
        check(&c, &adapter, "/").await.status(),
        200,
        "allowed domain"
    );
    let _ = std::fs::remove_file(dir);
}

#[tokio::test]
async fn skip_auth_routes_pass_without_identity_and_2xx_pages_strip_forged_headers() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &[
            "--skip-auth-route=GET=^/public/",
            "--skip-auth-preflight",
            "--skip-provider-button=false",
        ],
    )
    .await;
    let raw = raw_client(port);
    let get = |path: &'static str| {
        let raw = raw.clone();
        let url = format!("{}{path}", adapter.base);
        async move {
            raw.get(url)
                .header("x-auth-request-user", "mallory")
                .send()
                .await
                .unwrap()
        }
    };
    let r = get("/public/logo.png").await;
    assert_eq!(r.status(), 200);
    let removed = r.headers()["x-envoy-auth-headers-to-remove"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        removed.split(',').any(|h| h == "x-auth-request-user"),
        "{removed}"
    );
    assert_eq!(
        get("/private?next=/public/").await.status(),
        401,
        "the query never matches"
    );
    assert_eq!(
        get("/public%2F..%2Fprivate").await.status(),
        401,
        "decoded path tricks do not match"
    );
    let r = raw
        .request(reqwest::Method::OPTIONS, format!("{}/api", adapter.base))
        .header("origin", "http://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "CORS preflight");
    // The sign-in page answers 200, which Envoy takes as an allow: forged headers are removed.
    let r = get("/oauth2/sign_in").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-envoy-auth-headers-to-remove"));
}
