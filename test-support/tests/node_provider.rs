//! The test harness itself against the real node oidc-provider: discovery, a full
//! authorization code + PKCE login through the dev login form, the token exchange (both client
//! authentication methods), refresh, userinfo and RP-initiated logout.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use test_support::{
    AuthMethod, ClientSpec, OidcProvider, free_port, http_client, login_at_provider,
    logout_at_provider,
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

fn jwt_header(jwt: &str) -> Value {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

struct Flow {
    authorize_url: String,
    state: String,
    nonce: String,
    verifier: String,
}

fn authorize_url(
    discovery: &Value,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    pkce: bool,
) -> Flow {
    let state = random_b64(16);
    let nonce = random_b64(16);
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = Url::parse(discovery["authorization_endpoint"].as_str().unwrap()).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce);
        if pkce {
            q.append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
        }
    }
    Flow {
        authorize_url: url.into(),
        state,
        nonce,
        verifier,
    }
}

fn query(url: &str) -> Vec<(String, String)> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

async fn discovery(provider: &OidcProvider) -> Value {
    let client = http_client();
    let response = client.get(provider.discovery_url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn code_flow_with_pkce_basic_auth_refresh_and_logout() {
    let callback = format!("http://127.0.0.1:{}/oauth2/callback", free_port());
    let after_logout = format!("http://127.0.0.1:{}/signed-out", free_port());
    let provider = OidcProvider::start(vec![ClientSpec {
        post_logout_redirect_uris: vec![after_logout.clone()],
        ..ClientSpec::new("app", "app-secret", &callback)
    }])
    .await;
    assert!(provider.issuer.starts_with("http://127.0.0.1:"));
    assert_eq!(
        provider.issuer,
        format!("http://127.0.0.1:{}", provider.port)
    );

    let discovery = discovery(&provider).await;
    assert_eq!(discovery["issuer"], provider.issuer.as_str());
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    for scope in ["openid", "email", "profile", "groups", "offline_access"] {
        assert!(
            discovery["scopes_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == scope),
            "scope {scope} not supported: {discovery}"
        );
    }
    let end_session = discovery["end_session_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();

    let flow = authorize_url(
        &discovery,
        "app",
        &callback,
        "openid email profile groups offline_access",
        true,
    );
    let browser = http_client();
    let location = login_at_provider(&browser, &flow.authorize_url, "admin-alice", "pw").await;
    assert!(location.starts_with(&callback), "{location}");
    let params = query(&location);
    assert_eq!(param(&params, "error"), None, "{location}");
    assert_eq!(
        param(&params, "state").as_deref(),
        Some(flow.state.as_str())
    );
    assert_eq!(
        param(&params, "iss").as_deref(),
        Some(provider.issuer.as_str())
    );
    let code = param(&params, "code").expect("code in callback");

    // Token exchange, client_secret_basic.
    let api = http_client();
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    let response = api
        .post(token_endpoint)
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", flow.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["access_token"].is_string(), "{tokens}");
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_header(id_token)["alg"], "RS256");

    let claims = jwt_payload(id_token);
    assert_eq!(claims["iss"], provider.issuer.as_str(), "{claims}");
    assert_eq!(claims["aud"], "app", "{claims}");
    assert_eq!(claims["sub"], "admin-alice", "{claims}");
    assert_eq!(claims["nonce"], flow.nonce.as_str(), "{claims}");
    assert_eq!(claims["email"], "admin-alice@example.com", "{claims}");
    assert_eq!(claims["email_verified"], true, "{claims}");
    assert_eq!(claims["preferred_username"], "admin-alice", "{claims}");
    assert_eq!(claims["name"], "admin-alice", "{claims}");
    assert_eq!(
        claims["groups"],
        serde_json::json!(["users", "admin-alice-group", "admins"]),
        "{claims}"
    );

    // Userinfo agrees.
    let userinfo: Value = api
        .get(discovery["userinfo_endpoint"].as_str().unwrap())
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["email"], "admin-alice@example.com", "{userinfo}");
    assert_eq!(userinfo["groups"], claims["groups"], "{userinfo}");

    // Refresh: a new ID token with the claims again.
    let response = api
        .post(token_endpoint)
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let refreshed: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{refreshed}");
    let claims = jwt_payload(refreshed["id_token"].as_str().unwrap());
    assert_eq!(claims["email"], "admin-alice@example.com", "{claims}");
    assert!(
        claims["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "admins"),
        "{claims}"
    );

    // A second login in the same browser reuses the provider session: no form.
    let flow2 = authorize_url(&discovery, "app", &callback, "openid email", true);
    let location = login_at_provider(&browser, &flow2.authorize_url, "ignored", "pw").await;
    assert!(param(&query(&location), "code").is_some(), "{location}");

    // RP-initiated logout back to the registered post-logout URI.
    let mut logout = Url::parse(&end_session).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &after_logout)
        .append_pair("state", "bye");
    let location = logout_at_provider(&browser, logout.as_str()).await;
    assert!(location.starts_with(&after_logout), "{location}");
    assert_eq!(param(&query(&location), "state").as_deref(), Some("bye"));

    // Signed out: the next authorization shows the login form again, for another user.
    let flow3 = authorize_url(&discovery, "app", &callback, "openid email groups", true);
    let location = login_at_provider(&browser, &flow3.authorize_url, "bob", "pw").await;
    let code = param(&query(&location), "code").expect("code");
    let tokens: Value = api
        .post(token_endpoint)
        .basic_auth("app", Some("app-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", flow3.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "bob", "{claims}");
    assert_eq!(
        claims["groups"],
        serde_json::json!(["users", "bob-group"]),
        "{claims}"
    );
    // No profile scope, no profile claims.
    assert!(claims.get("name").is_none(), "{claims}");
}

#[tokio::test]
async fn client_secret_post_unverified_email_and_pkce_required() {
    let callback = format!("http://127.0.0.1:{}/callback", free_port());
    let provider = OidcProvider::start(vec![ClientSpec {
        auth_method: AuthMethod::ClientSecretPost,
        ..ClientSpec::new("post-client", "post-secret", &callback)
    }])
    .await;
    let discovery = discovery(&provider).await;

    // Without PKCE the provider refuses, back at the callback.
    let flow = authorize_url(&discovery, "post-client", &callback, "openid email", false);
    let location = login_at_provider(&http_client(), &flow.authorize_url, "x", "pw").await;
    let params = query(&location);
    assert_eq!(
        param(&params, "error").as_deref(),
        Some("invalid_request"),
        "{location}"
    );

    let flow = authorize_url(
        &discovery,
        "post-client",
        &callback,
        "openid email profile",
        true,
    );
    let location = login_at_provider(
        &http_client(),
        &flow.authorize_url,
        "unverified-carol@corp.test",
        "pw",
    )
    .await;
    let code = param(&query(&location), "code").expect("code");

    // client_secret_basic is refused for this client...
    let api = http_client();
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", flow.verifier.as_str()),
    ];
    let refused = api
        .post(token_endpoint)
        .basic_auth("post-client", Some("post-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // ...client_secret_post works (the code is still unused: auth failed before it).
    let mut with_secret = form.to_vec();
    with_secret.push(("client_id", "post-client"));
    with_secret.push(("client_secret", "post-secret"));
    let response = api
        .post(token_endpoint)
        .form(&with_secret)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{tokens}");
    let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["email"], "unverified-carol@corp.test", "{claims}");
    assert_eq!(claims["email_verified"], false, "{claims}");
    assert_eq!(
        claims["preferred_username"], "unverified-carol@corp.test",
        "{claims}"
    );
    // groups scope not asked for: no groups claim.
    assert!(claims.get("groups").is_none(), "{claims}");
}

#[tokio::test]
async fn wrong_auth_method_and_wrong_verifier_are_rejected() {
    let callback = format!("http://127.0.0.1:{}/cb", free_port());
    let provider = OidcProvider::start(vec![ClientSpec::new("c", "s", &callback)]).await;
    let discovery = discovery(&provider).await;
    let flow = authorize_url(&discovery, "c", &callback, "openid", true);
    let location = login_at_provider(&http_client(), &flow.authorize_url, "dave", "pw").await;
    let code = param(&query(&location), "code").expect("code");
    // A client_secret_basic client may not send its secret in the body.
    let response = http_client()
        .post(discovery["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", flow.verifier.as_str()),
            ("client_id", "c"),
            ("client_secret", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");

    let response = http_client()
        .post(discovery["token_endpoint"].as_str().unwrap())
        .basic_auth("c", Some("s"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", "x".repeat(43).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}
