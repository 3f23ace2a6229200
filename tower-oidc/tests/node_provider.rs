//! Browser sessions end to end: an axum app behind `OidcLayer`, served on
//! 127.0.0.1, logging in at a real, OpenID-certified provider (node
//! oidc-provider, see test-support) with a cookie-jar client.
//!
//! Accounts of the test provider: any login name, any password; groups are
//! `users` and `<login>-group`, plus `admins` for logins starting with "admin".

mod common;

use axum::Json;
use axum::Router;
use axum::routing;
use common::COOKIE_SECRET;
use http::HeaderMap;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use test_support::{ClientSpec, OidcProvider, free_port, http_client, login_at_provider};
use tower_oidc::oidc_core::{ClientSecret, Config, CookieSettings};
use tower_oidc::{AccessToken, Identity, OidcLayer, RequireRuleLayer, Rule};

const CLIENT_ID: &str = "app";
const CLIENT_SECRET: &str = "app-secret";

struct App {
    base: String,
    provider: OidcProvider,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn me(me: Identity, token: Option<AccessToken>, headers: HeaderMap) -> Json<Value> {
    Json(json!({
        "sub": me.subject(),
        "email": me.email(),
        "username": me.username(),
        "name": me.name(),
        "groups": me.groups(),
        "source": format!("{:?}", me.source()),
        "aud": me.claim("aud"),
        "access_token": token.as_ref().map(AccessToken::expose),
        "id_token": me.session().and_then(|s| s.id_token.clone()),
        "x_auth_request_user": headers.get("x-auth-request-user").and_then(|v| v.to_str().ok()),
    }))
}

/// The app: a public home page, a page for anyone signed in, an admin page
/// for the `admins` group, and a nested team area for the `users` group.
async fn start() -> App {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(vec![ClientSpec::new(
        CLIENT_ID,
        CLIENT_SECRET,
        &format!("{base}/oauth2/callback"),
    )])
    .await;
    let config = Config::builder(&provider.issuer, CLIENT_ID)
        .client_secret(ClientSecret::new(CLIENT_SECRET))
        .cookie_secret(COOKIE_SECRET)
        .cookie(CookieSettings {
            name: "auth".into(),
            secure: false,
            ..CookieSettings::default()
        })
        .scope("openid email profile groups".into())
        .skip_provider_button(true)
        .set_xauthrequest(true)
        .email_domains(vec!["*".into()])
        .build()
        .expect("config");
    let oidc = OidcLayer::discover(config)
        .await
        .expect("discovery")
        .require(Rule::public());
    let app = Router::new()
        .route(
            "/",
            routing::get(|me: Option<Identity>| async move {
                match me {
                    Some(me) => format!("hello {}", me.username()),
                    None => "hello stranger".to_owned(),
                }
            }),
        )
        .route("/me", routing::get(me))
        .route(
            "/admin",
            routing::get(|| async { "admin area" })
                .route_layer(RequireRuleLayer::new(Rule::group("admins"))),
        )
        .nest(
            "/team",
            Router::new()
                .route("/page", routing::get(|| async { "team page" }))
                .route_layer(RequireRuleLayer::new(Rule::group("users"))),
        )
        .layer(oidc);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    App {
        base,
        provider,
        server,
    }
}

fn location(h: &reqwest::header::HeaderMap) -> String {
    h.get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Navigates to `path` without a session, logs in as `user` at the
/// provider, follows the callback; returns where the callback sends the
/// browser.
async fn login(c: &reqwest::Client, app: &App, path: &str, user: &str) -> String {
    let r = c
        .get(format!("{}{path}", app.base))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "{path} sends to the provider"
    );
    let authorize = location(r.headers());
    assert!(authorize.starts_with(&app.provider.issuer), "{authorize}");
    let callback = login_at_provider(c, &authorize, user, "any password").await;
    assert!(
        callback.starts_with(&format!("{}/oauth2/callback?", app.base)),
        "{callback}"
    );
    let r = c.get(&callback).send().await.expect("callback");
    assert_eq!(r.status(), StatusCode::FOUND, "callback");
    assert!(
        r.headers()
            .get_all(SET_COOKIE)
            .iter()
            .any(|v| v.to_str().unwrap_or_default().starts_with("auth=")),
        "the session cookie is set"
    );
    location(r.headers())
}

async fn get(c: &reqwest::Client, app: &App, path: &str, accept: &str) -> reqwest::Response {
    c.get(format!("{}{path}", app.base))
        .header(ACCEPT, accept)
        .send()
        .await
        .expect("GET")
}

#[tokio::test]
async fn a_session_reaches_the_pages_its_groups_allow() {
    let app = start().await;
    let c = http_client();

    let r = get(&c, &app, "/", "text/html").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body"), "hello stranger");

    assert_eq!(login(&c, &app, "/me", "alice").await, "/me");

    let r = c
        .get(format!("{}/me", app.base))
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["source"], "Session");
    assert_eq!(me["groups"], json!(["users", "alice-group"]));
    assert_eq!(me["aud"], CLIENT_ID, "raw claims come from the ID token");
    assert!(me["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(
        me["x_auth_request_user"], "alice",
        "a forged identity header is replaced"
    );

    let r = get(&c, &app, "/", "text/html").await;
    assert_eq!(r.text().await.expect("body"), "hello alice");

    let r = get(&c, &app, "/team/page", "text/html").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body"), "team page");

    // Signed in, not an admin: 403, as a page or as JSON.
    let r = get(&c, &app, "/admin", "text/html").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("body").contains("Forbidden"));
    let r = get(&c, &app, "/admin", "application/json").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "forbidden");
}

#[tokio::test]
async fn an_admin_reaches_the_admin_page() {
    let app = start().await;
    let c = http_client();
    assert_eq!(login(&c, &app, "/admin", "admin-ann").await, "/admin");
    let r = get(&c, &app, "/admin", "text/html").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body"), "admin area");
}

#[tokio::test]
async fn a_login_from_a_nested_route_returns_to_its_full_path() {
    let app = start().await;
    let c = http_client();
    assert_eq!(
        login(&c, &app, "/team/page?tab=2", "bob").await,
        "/team/page?tab=2"
    );
}

#[tokio::test]
async fn api_calls_without_a_session_get_401_and_navigations_a_redirect() {
    let app = start().await;
    let c = http_client();
    for path in ["/me", "/admin", "/team/page"] {
        let r = get(&c, &app, path, "application/json").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer", "{path}");
        let r = get(&c, &app, path, "text/html").await;
        assert_eq!(r.status(), StatusCode::FOUND, "{path}");
        assert!(location(r.headers()).starts_with(&app.provider.issuer));
    }
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = start().await;
    let c = http_client();
    login(&c, &app, "/me", "alice").await;
    assert_eq!(
        get(&c, &app, "/me", "text/html").await.status(),
        StatusCode::OK
    );
    let r = get(&c, &app, "/oauth2/sign_out?rd=%2F", "text/html").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(location(r.headers()), "/");
    let r = get(&c, &app, "/me", "text/html").await;
    assert_eq!(r.status(), StatusCode::FOUND, "signed out");
    let r = get(&c, &app, "/", "text/html").await;
    assert_eq!(r.text().await.expect("body"), "hello stranger");
}

#[tokio::test]
async fn tokens_of_the_session_are_not_bearer_credentials_here() {
    let app = start().await;
    let c = http_client();
    login(&c, &app, "/me", "alice").await;
    let me: Value = get(&c, &app, "/me", "application/json")
        .await
        .json()
        .await
        .expect("json");

    // node oidc-provider issues opaque access tokens: refused with a clear reason.
    // The ID token is signed by the issuer for the client id, but it is not an
    // access token.
    let stranger = http_client();
    for (token, reason) in [
        ("access_token", "the access token is not a JWT"),
        ("id_token", "the token is not an access token"),
    ] {
        let value = me[token]
            .as_str()
            .unwrap_or_else(|| panic!("no {token} in {me}"));
        let r = stranger
            .get(format!("{}/me", app.base))
            .header(AUTHORIZATION, format!("Bearer {value}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            format!("Bearer error=\"invalid_token\", error_description=\"{reason}\""),
            "{token}"
        );
    }
}
