//! The example application (`examples/axum-app`) against the real Keycloak
//! that `cargo xtask test` starts: browser logins through Keycloak's login
//! form for the pages, and access tokens from Keycloak for the JSON API.
//!
//! Each run creates its own copy of the `mytest` realm (the helper's advice
//! for tests that need other settings), with:
//! - the frontend URL `http://127.0.0.1:<port>`, so the issuer resolves
//!   without mapping `keycloak.example.com` (the engine's HTTP client cannot
//!   map host names);
//! - the password grant enabled on `nginx`, to get tokens without a browser;
//! - a client `reports` without the `nginx` audience (tokens for another
//!   audience) and a client `shortlived` whose tokens live 4 s.
//!
//! Tokens from another issuer come from the imported realms, unchanged: `mytest`
//! itself (same client, user, audience and roles: only the issuer and its keys
//! differ) and `upstream-idp`, both by the authorization code flow.
//!
//! Users (from `deploy/keycloak`): alice has realm role `admin` and client
//! role `nginx:editor`; bob has neither.
//!
//! The app's clock leeway is the default (30 s) except where expiry is tested
//! to the second: with no leeway, a login fails whenever Keycloak issues the
//! ID token in a later second than the one the callback started in (the engine
//! checks `iat` against the time before the code exchange).
//!
//! Fails (never skips) when Keycloak is not there: run `cargo xtask test`.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::SigningKey;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use test_support::keycloak::{
    ALICE, BOB, CAROL, CLIENT_ID, CLIENT_SECRET, IDP_ALIAS, Keycloak, REALM, TestUser,
    UPSTREAM_REALM, keycloak,
};
use tower_oidc::OidcLayer;

const REPORTS_SECRET: &str = "reports-secret-for-tests-only";
const SHORT_SECRET: &str = "shortlived-secret-for-tests-only";
/// How long the `shortlived` client's access tokens live.
const SHORT_LIFESPAN: u64 = 4;
/// The client of `upstream-idp` that `mytest` brokers through
/// (deploy/keycloak/realm-upstream-idp.json).
const BROKER_CLIENT: (&str, &str) = ("mytest-broker", "mytest-broker-secret-for-tests-only");

struct Realm {
    issuer: String,
}

impl Realm {
    fn token_url(&self) -> String {
        format!("{}/protocol/openid-connect/token", self.issuer)
    }
}

/// A fresh copy of `mytest` for this test (see the module docs).
async fn create_realm(kc: &Keycloak) -> Realm {
    let mut realm = kc.mytest_realm_json();
    let name = format!("tower-oidc-{:016x}", rand::random::<u64>());
    realm["realm"] = json!(name);
    realm["displayName"] = json!(name);
    realm["attributes"] = json!({ "frontendUrl": format!("http://{}", kc.addr) });
    let clients = realm["clients"].as_array_mut().expect("clients");
    let nginx = clients
        .iter_mut()
        .find(|c| c["clientId"] == CLIENT_ID)
        .expect("nginx client");
    nginx["directAccessGrantsEnabled"] = json!(true);
    let mut short = nginx.clone();
    short["clientId"] = json!("shortlived");
    short["name"] = json!("shortlived");
    short["secret"] = json!(SHORT_SECRET);
    short["standardFlowEnabled"] = json!(false);
    short["attributes"]["access.token.lifespan"] = json!(SHORT_LIFESPAN.to_string());
    clients.push(short);
    clients.push(json!({
        "clientId": "reports",
        "name": "reports",
        "enabled": true,
        "protocol": "openid-connect",
        "publicClient": false,
        "clientAuthenticatorType": "client-secret",
        "secret": REPORTS_SECRET,
        "standardFlowEnabled": false,
        "directAccessGrantsEnabled": true,
        "fullScopeAllowed": false,
        "defaultClientScopes": ["basic", "profile", "email"],
    }));
    kc.create_realm(&realm).await;
    Realm {
        issuer: format!("http://{}/realms/{name}", kc.addr),
    }
}

/// Tokens by the password grant (`client_secret_basic`); the whole response.
async fn password_grant(
    kc: &Keycloak,
    realm: &Realm,
    client: (&str, &str),
    user: &TestUser,
) -> Value {
    let r = kc
        .client_builder()
        .build()
        .expect("client")
        .post(realm.token_url())
        .basic_auth(client.0, Some(client.1))
        .form(&[
            ("grant_type", "password"),
            ("username", user.username),
            ("password", user.password),
            ("scope", "openid"),
        ])
        .send()
        .await
        .expect("token request");
    let status = r.status();
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(status, StatusCode::OK, "password grant: {body}");
    body
}

/// The `access_token` of a token response.
fn access_token_of(response: &Value) -> String {
    response["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {response}"))
        .to_owned()
}

async fn access_token(kc: &Keycloak, realm: &Realm, user: &TestUser) -> String {
    access_token_of(&password_grant(kc, realm, (CLIENT_ID, CLIENT_SECRET), user).await)
}

struct App {
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const HTML: &str = "text/html";
const JSON: &str = "application/json";

impl App {
    /// A GET of `path` on the app with `client`, asking for `accept` ([`HTML`] for a page,
    /// [`JSON`] for the API).
    fn request(
        &self,
        client: &reqwest::Client,
        path: &str,
        accept: &str,
    ) -> reqwest::RequestBuilder {
        client
            .get(format!("{}{path}", self.base))
            .header(ACCEPT, accept)
    }

    /// [`App::request`], sent.
    async fn get(&self, client: &reqwest::Client, path: &str, accept: &str) -> reqwest::Response {
        self.request(client, path, accept)
            .send()
            .await
            .expect("GET")
    }
}

/// The example app for `realm`, on 127.0.0.1; `leeway` for the clock checks of
/// tokens (the engine's default when `None`).
async fn start_app(realm: &Realm, leeway: Option<Duration>) -> App {
    let mut config = common::keycloak_config(&realm.issuer, "_axum_app");
    if let Some(leeway) = leeway {
        config = config.leeway(leeway);
    }
    let oidc = OidcLayer::discover(config.build().expect("config"))
        .await
        .expect("discovery");
    let roles = axum_app::Roles {
        admin_realm_role: "admin".into(),
        api_client: CLIENT_ID.into(),
        api_client_role: "editor".into(),
    };
    let app = axum_app::app(oidc, &roles);
    // Port 0: a port picked before binding could be taken in between.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    App {
        base: format!("http://127.0.0.1:{port}"),
        server,
    }
}

async fn api(app: &App, path: &str, token: &str) -> reqwest::Response {
    app.request(&reqwest::Client::new(), path, JSON)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .expect("GET")
}

fn challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `token` with its signature replaced: the same claims signed by `key`.
fn resign(token: &str, header: &Value, key: &jsonwebtoken::EncodingKey) -> String {
    let payload = token.split('.').nth(1).expect("payload");
    let message = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
    let alg = match header["alg"].as_str() {
        Some("ES256") => jsonwebtoken::Algorithm::ES256,
        _ => jsonwebtoken::Algorithm::RS256,
    };
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("sign");
    format!("{message}.{signature}")
}

/// The claims of a JWT (not verified).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// The test fixture `rsa-unpublished.pem` (PKCS#1): a key no JWKS publishes.
fn unpublished_rsa_key() -> jsonwebtoken::EncodingKey {
    let pem = include_str!("../../test-support/assets/keys/rsa-unpublished.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    jsonwebtoken::EncodingKey::from_rsa_der(&STANDARD.decode(body).expect("PEM body"))
}

#[tokio::test]
async fn api_tokens_from_keycloak() {
    let kc = keycloak();
    let realm = create_realm(&kc).await;
    let app = start_app(&realm, None).await;
    let alice = access_token(&kc, &realm, &ALICE).await;
    let bob = access_token(&kc, &realm, &BOB).await;

    // Valid tokens: the identity comes from the token.
    let r = api(&app, "/api/me", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.expect("JSON");
    assert_eq!(me["preferred_username"], "alice");
    assert_eq!(me["email"], ALICE.email);
    assert_eq!(me["source"], "bearer");
    assert!(
        me["realm_roles"]
            .as_array()
            .expect("roles")
            .contains(&json!("admin"))
    );
    assert!(
        me["client_roles"]
            .as_array()
            .expect("roles")
            .contains(&json!("nginx:editor"))
    );
    assert!(
        me["groups"]
            .as_array()
            .expect("groups")
            .contains(&json!("admins"))
    );

    // With the role: 200; without: 403.
    let r = api(&app, "/api/reports", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["requested_by"], "alice");
    let r = api(&app, "/api/reports", &bob).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&r).starts_with("Bearer error=\"insufficient_scope\""));
    let r = api(&app, "/admin", &bob).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = api(&app, "/admin", &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = api(&app, "/api/me", &bob).await;
    assert_eq!(r.status(), StatusCode::OK);

    // No token on the API: 401 with a bare challenge, not a redirect.
    let r = app.get(&reqwest::Client::new(), "/api/reports", JSON).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&r), "Bearer");
}

#[tokio::test]
async fn refused_tokens_get_401() {
    let kc = keycloak();
    let realm = create_realm(&kc).await;
    // Expiry to the second.
    let app = start_app(&realm, Some(Duration::ZERO)).await;
    let grant = password_grant(&kc, &realm, (CLIENT_ID, CLIENT_SECRET), &ALICE).await;
    let alice = grant["access_token"].as_str().expect("access token");
    let kid = {
        let header = alice.split('.').next().expect("header");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("JSON");
        header["kid"].as_str().expect("kid").to_owned()
    };

    let other_issuer = kc.admin_token().await; // the master realm
    // The imported mytest: the same client, user, audience and roles; only the
    // issuer (and with it the signing keys) differs.
    let imported_realm = access_token_of(
        &kc.code_flow_tokens(
            REALM,
            CLIENT_ID,
            CLIENT_SECRET,
            "http://127.0.0.1:1/oauth2/callback",
            &ALICE,
        )
        .await,
    );
    let c = claims(&imported_realm);
    assert_eq!(c["iss"], kc.issuer.as_str());
    assert_ne!(c["iss"], realm.issuer.as_str());
    assert!(
        c["aud"] == CLIENT_ID
            || c["aud"]
                .as_array()
                .is_some_and(|a| a.contains(&json!(CLIENT_ID))),
        "{c}"
    );
    assert!(
        c["realm_access"]["roles"]
            .as_array()
            .expect("roles")
            .contains(&json!("admin"))
    );
    // The realm that stands in for Google/GitHub, through its broker client.
    let upstream = access_token_of(
        &kc.code_flow_tokens(
            UPSTREAM_REALM,
            BROKER_CLIENT.0,
            BROKER_CLIENT.1,
            &format!("{}/broker/{IDP_ALIAS}/endpoint", kc.realm_url(REALM)),
            &CAROL,
        )
        .await,
    );
    assert_eq!(claims(&upstream)["iss"], kc.upstream_issuer.as_str());
    let other_audience =
        access_token_of(&password_grant(&kc, &realm, ("reports", REPORTS_SECRET), &ALICE).await);
    let fresh = SigningKey::generate("not-in-the-jwks");
    let unknown_key = resign(
        alice,
        &json!({"alg": "ES256", "typ": "JWT", "kid": fresh.kid}),
        &fresh.encoding,
    );
    let forged = resign(
        alice,
        &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
        &unpublished_rsa_key(),
    );
    // The short-lived token works now, and is refused once expired (its `exp`
    // in the past: with no leeway, from the second after it).
    let short =
        access_token_of(&password_grant(&kc, &realm, ("shortlived", SHORT_SECRET), &ALICE).await);
    assert_eq!(
        api(&app, "/api/reports", &short).await.status(),
        StatusCode::OK
    );
    let exp = claims(&short)["exp"].as_u64().expect("exp");
    let expired_at = std::time::UNIX_EPOCH + Duration::from_secs(exp + 1);
    if let Ok(wait) = expired_at.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(100)).await;
    }

    let cases = [
        (
            "another issuer (the master realm)",
            other_issuer,
            "the access token's issuer is not trusted",
        ),
        (
            "another issuer (the imported mytest, otherwise valid)",
            imported_realm,
            "the access token's issuer is not trusted",
        ),
        (
            "another issuer (upstream-idp)",
            upstream,
            "the access token's issuer is not trusted",
        ),
        (
            "another audience",
            other_audience,
            "the access token is meant for another audience",
        ),
        ("expired", short, "the access token expired"),
        (
            "signed by an unknown key",
            unknown_key,
            "the access token is signed by an unknown key",
        ),
        (
            "forged under a published kid",
            forged,
            "the access token's signature is invalid",
        ),
        (
            "an ID token",
            grant["id_token"].as_str().expect("id token").to_owned(),
            "the token is not an access token",
        ),
        (
            "a refresh token (HS512)",
            grant["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_owned(),
            "the access token's signature algorithm is not allowed",
        ),
        (
            "opaque",
            "8xLOxBtZp8".to_owned(),
            "the access token is not a JWT",
        ),
    ];
    for (what, token, description) in cases {
        for path in ["/api/me", "/api/reports"] {
            let r = api(&app, path, &token).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what} on {path}");
            assert_eq!(
                challenge(&r),
                format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
                "{what} on {path}"
            );
            let body: Value = r.json().await.expect("JSON");
            assert_eq!(body["error"], "invalid_token", "{what}");
        }
    }
    // The public page stays public for a refused token.
    let r = api(&app, "/", "8xLOxBtZp8").await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Logs `user` in through Keycloak's login form, starting at `path`; returns
/// the browser-like client holding the session.
async fn browser_login(
    kc: &Keycloak,
    realm: &Realm,
    app: &App,
    path: &str,
    user: &TestUser,
) -> reqwest::Client {
    let browser = kc.http_client();
    common::keycloak_browser_login(&browser, &app.base, &realm.issuer, path, user).await;
    browser
}

async fn page(browser: &reqwest::Client, app: &App, path: &str) -> (StatusCode, String) {
    let r = app.get(browser, path, HTML).await;
    (r.status(), r.text().await.expect("body"))
}

#[tokio::test]
async fn pages_with_browser_sessions() {
    let kc = keycloak();
    let realm = create_realm(&kc).await;
    let app = start_app(&realm, None).await;

    let anonymous = kc.http_client();
    let (status, body) = page(&anonymous, &app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Hello, stranger"), "{body}");
    for path in ["/me", "/admin"] {
        let r = app.get(&anonymous, path, HTML).await;
        assert_eq!(r.status(), StatusCode::FOUND, "{path}");
        let location = r.headers()[LOCATION].to_str().expect("ascii");
        assert!(location.starts_with(&realm.issuer), "{location}");
    }

    // alice: admin and editor.
    let alice = browser_login(&kc, &realm, &app, "/admin", &ALICE).await;
    let (status, body) = page(&alice, &app, "/admin").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("alice"), "{body}");
    let (status, body) = page(&alice, &app, "/me").await;
    assert_eq!(status, StatusCode::OK);
    for expected in ["alice@example.com", "admins", "nginx:editor", "Session"] {
        assert!(body.contains(expected), "{expected} missing: {body}");
    }
    let r = app.get(&alice, "/api/reports", JSON).await;
    assert_eq!(r.status(), StatusCode::OK, "the API takes the session too");

    // bob: signed in, but neither admin nor editor.
    let bob = browser_login(&kc, &realm, &app, "/me", &BOB).await;
    let (status, body) = page(&bob, &app, "/me").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("bob@example.com"), "{body}");
    let (status, _) = page(&bob, &app, "/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = app.get(&bob, "/api/reports", JSON).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (status, body) = page(&bob, &app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Hello, <b id=\"user\">bob</b>"), "{body}");

    // Signing out ends the session here.
    let r = bob
        .get(format!("{}/oauth2/sign_out?rd=%2F", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::FOUND);
    let r = app.get(&bob, "/me", JSON).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
