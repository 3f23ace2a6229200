//! `--authorization-rule` (per host and path) and `--trusted-proxy-ip`, through the real
//! adapter binary and a real login at the node test provider.
//!
//! The provider puts users whose name starts with `admin-` in the `admins` group; `alice`
//! is in `users` and `alice-group`.

mod common;

use common::*;

async fn status_with(c: &Browser, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = c.get(url).header("accept", "text/html");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("check");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn rules_per_path_and_host_narrow_access_on_every_reading_of_the_path() {
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &[
            "--scope=openid email profile groups",
            "--authorization-rule=^/admin/=group:admins",
            "--authorization-rule=app.example.com=group:app-users,group:admins",
            // nginx auth_request names the target in X-Forwarded-Uri (below).
            "--reverse-proxy",
        ],
    )
    .await;
    let base = adapter.base.clone();
    let app = format!("http://app.example.com:{port}");

    let alice = client(port);
    login(&alice, &adapter, "/", "alice").await;
    assert_eq!(status_with(&alice, &format!("{base}/"), &[]).await.0, 200);
    for path in [
        "/admin/",
        "/admin/users?x=1",
        "/%61dmin/users",
        "/public/../admin/",
        "/admin;x=1/",
        "/ad%ZZmin/",
    ] {
        let (status, body) = status_with(&alice, &format!("{base}{path}"), &[]).await;
        assert_eq!(status, 403, "{path} needs the admins group");
        if path == "/admin/" {
            assert!(
                body.contains("group(admins)") && !body.contains("alice-group"),
                "the 403 says what is missing and leaks no claim: {body}"
            );
        }
    }
    // The query is never a path.
    assert_eq!(
        status_with(&alice, &format!("{base}/home?next=/admin/"), &[])
            .await
            .0,
        200
    );
    // Host rule: alice is in neither group.
    let (status, body) = status_with(&alice, &format!("{app}/"), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("group(app-users) or group(admins)"), "{body}");

    let ann = client(port);
    login(&ann, &adapter, "/", "admin-ann").await;
    for url in [
        format!("{base}/admin/users"),
        format!("{base}/%61dmin/users"),
        format!("{app}/admin/"),
    ] {
        assert_eq!(status_with(&ann, &url, &[]).await.0, 200, "{url}");
    }

    // nginx auth_request: <prefix>/auth judges X-Forwarded-Uri (with --reverse-proxy, from
    // the default --trusted-proxy-ip: everyone).
    let auth = format!("{base}/oauth2/auth");
    let xfu = |uri: &'static str| [("x-forwarded-uri", uri)];
    assert_eq!(status_with(&alice, &auth, &xfu("/home")).await.0, 202);
    assert_eq!(status_with(&alice, &auth, &xfu("/admin/x")).await.0, 403);
    assert_eq!(status_with(&ann, &auth, &xfu("/admin/x")).await.0, 202);
    // Without the header the target is unknown: every path rule applies.
    assert_eq!(status_with(&alice, &auth, &[]).await.0, 403);
    assert_eq!(status_with(&ann, &auth, &[]).await.0, 202);
}

/// Runs the adapter with one more flag and returns its stderr; asserts that it refused to start.
fn refused_start(flag: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"))
        .args([
            "--oidc-issuer-url=http://127.0.0.1:9/realms/x",
            "--client-id=nginx",
            "--client-secret=s",
            "--cookie-secret=dGVzdC1jb29raWUtc2VjcmV0LW9mLTMyLWJ5dGVzISE=",
            "--email-domain=*",
            flag,
        ])
        .output()
        .expect("run");
    assert!(!out.status.success(), "{flag} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_rules_stop_the_start_naming_the_flag() {
    let err = refused_start("--authorization-rule=^/admin/=admins");
    assert!(
        err.contains("--authorization-rule") && err.contains("group:NAME"),
        "{err}"
    );
    let err = refused_start("--trusted-proxy-ip=10.0.0.0/33");
    assert!(err.contains("--trusted-proxy-ip"), "{err}");
}

/// Starts an adapter with `--reverse-proxy=<reverse_proxy>` trusting only `trusted` and
/// returns where a navigation without a session is sent when it claims
/// `X-Forwarded-Host: app.example.com` and https.
async fn login_redirect_with_forged_forwarding(trusted: &str, reverse_proxy: bool) -> String {
    let idp = provider_without_logins().await;
    let flag = format!("--trusted-proxy-ip={trusted}");
    let proxy = format!("--reverse-proxy={reverse_proxy}");
    let adapter = Adapter::start(&idp.issuer, 0, &[flag.as_str(), proxy.as_str()]).await;
    let c = client(adapter.port);
    let r = c
        .get(format!("{}/", adapter.base))
        .header("accept", "text/html")
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("check");
    assert_eq!(r.status(), 302);
    location(r.headers())
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    // The tests connect from 127.0.0.1.
    let trusted = login_redirect_with_forged_forwarding("127.0.0.0/8", true).await;
    assert!(
        trusted.contains("redirect_uri=https%3A%2F%2Fapp.example.com%2Foauth2%2Fcallback"),
        "a trusted proxy's host and scheme make the callback URL: {trusted}"
    );
    let untrusted = login_redirect_with_forged_forwarding("192.0.2.0/24", true).await;
    assert!(
        untrusted.contains("redirect_uri=http%3A%2F%2Fnginx.example.com"),
        "an untrusted peer's X-Forwarded-* are ignored: {untrusted}"
    );
    let off = login_redirect_with_forged_forwarding("127.0.0.0/8", false).await;
    assert!(
        off.contains("redirect_uri=http%3A%2F%2Fnginx.example.com"),
        "without --reverse-proxy nothing forwarded is believed, even from a listed peer: {off}"
    );

    // An untrusted peer cannot move a request onto another host's rules or path.
    let port = callback_port();
    let idp = provider_for(port).await;
    let adapter = Adapter::start(
        &idp.issuer,
        port,
        &[
            "--scope=openid email profile groups",
            "--reverse-proxy=true",
            "--trusted-proxy-ip=192.0.2.0/24",
            "--authorization-rule=nginx.example.com^/admin/=group:admins",
        ],
    )
    .await;
    let alice = client(port);
    login(&alice, &adapter, "/", "alice").await;
    let base = adapter.base.clone();
    let forged = [("x-forwarded-host", "elsewhere.example.com")];
    assert_eq!(
        status_with(&alice, &format!("{base}/admin/"), &forged)
            .await
            .0,
        403,
        "a forged X-Forwarded-Host does not escape the host rule"
    );
    let auth = format!("{base}/oauth2/auth");
    assert_eq!(
        status_with(&alice, &auth, &[("x-forwarded-uri", "/home")])
            .await
            .0,
        403,
        "an untrusted X-Forwarded-Uri is not believed: every path rule applies"
    );
}
