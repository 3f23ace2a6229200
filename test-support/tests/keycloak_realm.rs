//! The realm of `deploy/keycloak` on the real Keycloak that `cargo xtask test` starts:
//! discovery, an authorization code + PKCE login through Keycloak's real login form, the
//! token exchange as the `nginx` client and the claims the adapter relies on (email, groups,
//! audience, realm and client roles), the unverified-email user, redirect URI and PKCE
//! enforcement, RP-initiated logout, and a login brokered through the `upstream-idp` realm
//! (with `kc_idp_hint` and by clicking the provider's link).
//!
//! Fails (never skips) when Keycloak is not there: run `cargo xtask test`.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use test_support::free_port;
use test_support::keycloak::{
    ALICE, BOB, CAROL, DAVE, IDP_ALIAS, Keycloak, REALM, TestUser, keycloak, login_at_keycloak,
    login_via_broker, logout_at_keycloak,
};
use url::Url;

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

fn jwt_payload(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url payload"))
        .expect("JSON payload")
}

struct Flow {
    authorize_url: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    verifier: String,
}

/// A hand-made authorization request for the `nginx` client with PKCE S256, back to
/// `http://nginx.example.com:<free port>/oauth2/callback`.
fn authorize(kc: &Keycloak, scope: &str, extra: &[(&str, &str)]) -> Flow {
    let redirect_uri = format!("http://nginx.example.com:{}/oauth2/callback", free_port());
    let state = random_b64(16);
    let nonce = random_b64(16);
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = Url::parse(&kc.endpoint("auth")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &kc.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    Flow {
        authorize_url: url.into(),
        redirect_uri,
        state,
        nonce,
        verifier,
    }
}

fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The callback `location` is for `flow` and carries a code: returns the code.
fn code_from(flow: &Flow, location: &str, issuer: &str) -> String {
    assert!(location.starts_with(&flow.redirect_uri), "{location}");
    assert_eq!(param(location, "error"), None, "{location}");
    assert_eq!(
        param(location, "state").as_deref(),
        Some(flow.state.as_str())
    );
    assert_eq!(
        param(location, "iss").as_deref(),
        Some(issuer),
        "{location}"
    );
    param(location, "code").expect("code in the callback")
}

fn strings(value: &Value) -> Vec<String> {
    let mut out: Vec<String> = value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// `aud` as a list (Keycloak writes a string for one audience).
fn audiences(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        other => strings(other),
    }
}

/// Logs `user` in with the code flow and returns (ID token claims, access token claims,
/// token response).
async fn login(kc: &Keycloak, user: TestUser) -> (Value, Value, Value) {
    let flow = authorize(kc, "openid email profile groups", &[]);
    let browser = kc.http_client();
    let location =
        login_at_keycloak(&browser, &flow.authorize_url, user.username, user.password).await;
    let code = code_from(&flow, &location, &kc.issuer);
    let tokens = kc
        .exchange_code(&code, &flow.redirect_uri, &flow.verifier)
        .await;
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    let id = jwt_payload(tokens["id_token"].as_str().expect("id_token"));
    let access = jwt_payload(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(id["nonce"], flow.nonce.as_str(), "{id}");
    (id, access, tokens)
}

#[tokio::test]
async fn discovery_of_mytest() {
    let kc = keycloak();
    assert!(
        kc.issuer.starts_with("http://keycloak.example.com:"),
        "{}",
        kc.issuer
    );
    let discovery = kc.discovery().await;
    assert_eq!(discovery["issuer"], kc.issuer.as_str(), "{discovery}");
    assert_eq!(
        discovery["authorization_endpoint"],
        kc.endpoint("auth").as_str()
    );
    assert_eq!(discovery["token_endpoint"], kc.endpoint("token").as_str());
    assert_eq!(discovery["jwks_uri"], kc.endpoint("certs").as_str());
    assert_eq!(
        discovery["end_session_endpoint"],
        kc.endpoint("logout").as_str()
    );
    assert!(
        strings(&discovery["code_challenge_methods_supported"]).contains(&"S256".to_owned()),
        "{discovery}"
    );
    let scopes = strings(&discovery["scopes_supported"]);
    for scope in ["openid", "email", "profile", "groups", "offline_access"] {
        assert!(
            scopes.contains(&scope.to_owned()),
            "{scope} not in {scopes:?}"
        );
    }

    // Reached as 127.0.0.1 (backchannel), the issuer stays the frontend one.
    let direct: Value = kc
        .client_builder()
        .build()
        .unwrap()
        .get(format!(
            "http://{}/realms/{REALM}/.well-known/openid-configuration",
            kc.addr
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(direct["issuer"], kc.issuer.as_str(), "{direct}");
}

#[tokio::test]
async fn alice_code_flow_with_pkce_carries_email_groups_audience_and_roles() {
    let kc = keycloak();
    let (id, access, tokens) = login(&kc, ALICE).await;

    assert_eq!(id["iss"], kc.issuer.as_str(), "{id}");
    assert_eq!(id["aud"], "nginx", "{id}");
    assert_eq!(id["azp"], "nginx", "{id}");
    assert_eq!(id["preferred_username"], "alice", "{id}");
    assert_eq!(id["email"], ALICE.email, "{id}");
    assert_eq!(id["email_verified"], true, "{id}");
    assert_eq!(id["name"], "Alice Admin", "{id}");
    assert_eq!(strings(&id["groups"]), ALICE.groups, "{id}");
    assert!(id["sub"].is_string(), "{id}");

    assert_eq!(access["iss"], kc.issuer.as_str(), "{access}");
    assert!(audiences(&access).contains(&"nginx".to_owned()), "{access}");
    assert_eq!(access["azp"], "nginx", "{access}");
    assert_eq!(access["sub"], id["sub"], "{access}");
    let realm_roles = strings(&access["realm_access"]["roles"]);
    for role in ALICE.realm_roles {
        assert!(realm_roles.contains(&role.to_string()), "{access}");
    }
    assert_eq!(
        strings(&access["resource_access"]["nginx"]["roles"]),
        ALICE.client_roles,
        "{access}"
    );
    assert_eq!(strings(&access["groups"]), ALICE.groups, "{access}");
    assert_eq!(access["email"], ALICE.email, "{access}");
    assert!(
        tokens["expires_in"].as_u64().unwrap() <= 300,
        "access token lifespan: {tokens}"
    );
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    // Userinfo has the groups too.
    let userinfo: Value = kc
        .client_builder()
        .build()
        .unwrap()
        .get(kc.endpoint("userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["email"], ALICE.email, "{userinfo}");
    assert_eq!(strings(&userinfo["groups"]), ALICE.groups, "{userinfo}");

    // The admin helpers see the session.
    assert!(!kc.user_sessions(REALM, "alice").await.is_empty());
    assert!(kc.client_session_count(REALM, "nginx").await >= 1);
}

#[tokio::test]
async fn bob_is_no_admin_and_dave_is_unverified() {
    let kc = keycloak();
    let (id, access, _) = login(&kc, BOB).await;
    assert_eq!(id["email"], BOB.email, "{id}");
    assert_eq!(strings(&id["groups"]), BOB.groups, "{id}");
    let realm_roles = strings(&access["realm_access"]["roles"]);
    assert!(realm_roles.contains(&"user".to_owned()), "{access}");
    assert!(!realm_roles.contains(&"admin".to_owned()), "{access}");
    assert_eq!(
        strings(&access["resource_access"]["nginx"]["roles"]),
        BOB.client_roles,
        "{access}"
    );

    let (id, _, _) = login(&kc, DAVE).await;
    assert_eq!(id["email"], DAVE.email, "{id}");
    assert_eq!(id["email_verified"], false, "{id}");
}

#[tokio::test]
async fn pkce_and_redirect_uris_are_enforced() {
    let kc = keycloak();
    let client = kc.http_client();

    // Without PKCE: back to the callback with an error, before any login.
    let redirect_uri = format!("http://nginx.example.com:{}/oauth2/callback", free_port());
    let mut url = Url::parse(&kc.endpoint("auth")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "nginx")
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("state", "s");
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&redirect_uri), "{location}");
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("invalid_request")
    );

    // PKCE plain is refused too.
    let flow = authorize(&kc, "openid", &[]);
    let plain = flow
        .authorize_url
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let response = client.get(plain).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("invalid_request"),
        "{location}"
    );

    // 127.0.0.1 callbacks on any port are allowed.
    let flow = authorize(&kc, "openid", &[]);
    let loopback = flow.authorize_url.replace(
        &url::form_urlencoded::byte_serialize(flow.redirect_uri.as_bytes()).collect::<String>(),
        &url::form_urlencoded::byte_serialize(
            format!("http://127.0.0.1:{}/oauth2/callback", free_port()).as_bytes(),
        )
        .collect::<String>(),
    );
    let response = client.get(loopback).send().await.unwrap();
    assert_eq!(response.status(), 200, "the login page");

    // An unregistered redirect URI gets Keycloak's error page, no redirect.
    for bad in [
        "http://evil.example.com/oauth2/callback",
        "http://nginx.example.com.evil.test:80/oauth2/callback",
    ] {
        let flow = authorize(&kc, "openid", &[]);
        let evil = flow.authorize_url.replace(
            &url::form_urlencoded::byte_serialize(flow.redirect_uri.as_bytes()).collect::<String>(),
            &url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>(),
        );
        let response = client.get(evil).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }

    // The wrong PKCE verifier fails the exchange.
    let flow = authorize(&kc, "openid", &[]);
    let location = login_at_keycloak(
        &kc.http_client(),
        &flow.authorize_url,
        BOB.username,
        BOB.password,
    )
    .await;
    let code = code_from(&flow, &location, &kc.issuer);
    let response = kc
        .client_builder()
        .build()
        .unwrap()
        .post(kc.endpoint("token"))
        .basic_auth("nginx", Some(&kc.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", flow.redirect_uri.as_str()),
            ("code_verifier", random_b64(32).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_keycloak_session() {
    let kc = keycloak();
    let flow = authorize(&kc, "openid email", &[]);
    let browser = kc.http_client();
    let location =
        login_at_keycloak(&browser, &flow.authorize_url, BOB.username, BOB.password).await;
    let code = code_from(&flow, &location, &kc.issuer);
    let tokens = kc
        .exchange_code(&code, &flow.redirect_uri, &flow.verifier)
        .await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = jwt_payload(id_token)["sid"].as_str().unwrap().to_owned();

    // Signed in, the same browser gets a code without a login form (Keycloak's SSO session):
    // what the logout below must end.
    let again = authorize(&kc, "openid", &[]);
    let response = browser.get(&again.authorize_url).send().await.unwrap();
    let location = login_form_or_redirect(response).await.unwrap_err();
    code_from(&again, &location, &kc.issuer);

    // Keycloak 18+: id_token_hint + post_logout_redirect_uri (registered as "+": the
    // redirect URIs).
    let after = format!("http://nginx.example.com:{}/signed-out", free_port());
    let mut logout = Url::parse(&kc.endpoint("logout")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &after)
        .append_pair("state", "bye");
    let location = logout_at_keycloak(&browser, logout.as_str()).await;
    assert!(location.starts_with(&after), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("bye"));
    let sessions = kc.user_sessions(REALM, BOB.username).await;
    assert!(
        sessions.iter().all(|s| s["id"] != sid.as_str()),
        "session {sid} still active: {sessions:?}"
    );

    // The same browser must log in again: Keycloak shows its login form instead of a code.
    let flow = authorize(&kc, "openid", &[]);
    let response = browser.get(&flow.authorize_url).send().await.unwrap();
    if let Err(location) = login_form_or_redirect(response).await {
        panic!("still signed in after the logout: Keycloak answered with a redirect to {location}");
    }
    let location =
        login_at_keycloak(&browser, &flow.authorize_url, BOB.username, BOB.password).await;
    code_from(&flow, &location, &kc.issuer);
}

/// `Ok(())` if `response` is Keycloak's login page (200 with a username/password form),
/// `Err(location)` if it is a redirect; panics on anything else.
async fn login_form_or_redirect(response: reqwest::Response) -> Result<(), String> {
    let status = response.status();
    if status.is_redirection() {
        return Err(response.headers()["location"].to_str().unwrap().to_owned());
    }
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let forms = test_support::html::forms(&body);
    assert!(
        forms
            .iter()
            .any(|f| f.method == "post" && f.has_input("username") && f.has_input("password")),
        "no login form on the page:\n{body}"
    );
    Ok(())
}

#[tokio::test]
async fn brokered_login_through_upstream_idp() {
    let kc = keycloak();

    // kc_idp_hint skips mytest's own login page: straight to the upstream realm's form.
    let flow = authorize(
        &kc,
        "openid email profile groups",
        &[("kc_idp_hint", IDP_ALIAS)],
    );
    let browser = kc.http_client();
    let response = browser.get(&flow.authorize_url).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let next = response.headers()["location"].to_str().unwrap();
    assert!(
        next.contains("/realms/mytest/broker/upstream/login"),
        "{next}"
    );

    let location = login_via_broker(
        &browser,
        &flow.authorize_url,
        IDP_ALIAS,
        CAROL.username,
        CAROL.password,
    )
    .await;
    let code = code_from(&flow, &location, &kc.issuer);
    let tokens = kc
        .exchange_code(&code, &flow.redirect_uri, &flow.verifier)
        .await;
    let id = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], kc.issuer.as_str(), "{id}");
    assert_eq!(id["email"], CAROL.email, "{id}");
    assert_eq!(id["email_verified"], true, "{id}");
    assert_eq!(id["preferred_username"], CAROL.username, "{id}");
    assert_eq!(id["given_name"], CAROL.first_name, "{id}");
    assert_eq!(strings(&id["groups"]), CAROL.groups, "{id}");
    let access = jwt_payload(tokens["access_token"].as_str().unwrap());
    assert!(
        strings(&access["realm_access"]["roles"]).contains(&"user".to_owned()),
        "{access}"
    );
    let user = kc
        .find_user(REALM, CAROL.username)
        .await
        .expect("brokered user");
    assert_eq!(user["email"], CAROL.email, "{user}");

    // Without the hint, through the provider's link on mytest's login page, in a new browser.
    let flow = authorize(&kc, "openid email", &[]);
    let location = login_via_broker(
        &kc.http_client(),
        &flow.authorize_url,
        IDP_ALIAS,
        CAROL.username,
        CAROL.password,
    )
    .await;
    let code = code_from(&flow, &location, &kc.issuer);
    let tokens = kc
        .exchange_code(&code, &flow.redirect_uri, &flow.verifier)
        .await;
    let id = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], CAROL.email, "{id}");
}

#[tokio::test]
async fn a_test_can_make_its_own_copy_of_mytest() {
    let kc = keycloak();
    let name = format!("mytest-copy-{}", free_port());
    let mut realm = kc.mytest_realm_json();
    realm["realm"] = name.clone().into();
    realm["revokeRefreshToken"] = true.into();
    kc.create_realm(&realm).await;

    let settings = kc.admin_get(&name).await;
    assert_eq!(settings["revokeRefreshToken"], true, "{settings}");
    let shared = kc.admin_get(REALM).await;
    assert_eq!(shared["revokeRefreshToken"], false, "{shared}");

    // Alice can log in there with the same client.
    let issuer = kc.realm_url(&name);
    let redirect_uri = format!("http://127.0.0.1:{}/oauth2/callback", free_port());
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = Url::parse(&format!("{issuer}/protocol/openid-connect/auth")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "nginx")
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("state", "s")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let location = login_at_keycloak(
        &kc.http_client(),
        url.as_str(),
        ALICE.username,
        ALICE.password,
    )
    .await;
    assert!(location.starts_with(&redirect_uri), "{location}");
    assert_eq!(param(&location, "iss").as_deref(), Some(issuer.as_str()));
    assert!(param(&location, "code").is_some(), "{location}");
}
