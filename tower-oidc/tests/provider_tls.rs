//! TLS to the identity provider with a private CA (issue 17) through tower-oidc's `Config`
//! builder: the provider serves HTTPS with a certificate from a CA made with `openssl`;
//! discovery (and the JWKS fetch) succeeds with `provider_ca_files`, fails on the certificate
//! without it, and succeeds with `ssl_insecure_skip_verify`.
//!
//! Two providers: Keycloak itself (the shared one of `cargo xtask test`, whose HTTPS listener
//! has a certificate of a CA xtask made for the run; each test creates a realm whose issuer is
//! on that listener), where alice logs in to an app behind the layer; and the node
//! oidc-provider with a CA made in the test.

mod common;

use axum::routing::get;
use axum::{Json, Router};
use common::COOKIE_SECRET;
use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use test_support::keycloak::{ALICE, KeycloakHttps, keycloak};
use test_support::{ClientSpec, OidcProvider, ProviderConfig, TestCa};
use tower_oidc::oidc_core::{ClientSecret, Config, ConfigBuilder};
use tower_oidc::{Identity, OidcLayer, SetupError};

async fn https_provider(ca: &TestCa) -> OidcProvider {
    let idp = OidcProvider::start_with(ProviderConfig {
        clients: vec![ClientSpec::new(
            "app",
            "app-secret",
            "http://127.0.0.1:1/oauth2/callback",
        )],
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        ..ProviderConfig::default()
    })
    .await;
    assert!(idp.issuer.starts_with("https://"), "{}", idp.issuer);
    idp
}

fn builder(idp: &OidcProvider) -> ConfigBuilder {
    Config::builder(&idp.issuer, "app")
        .client_secret(ClientSecret::new("app-secret"))
        .cookie_secret(COOKIE_SECRET)
}

#[tokio::test]
async fn discovers_through_a_private_ca_with_provider_ca_files() {
    let ca = TestCa::new();
    let idp = https_provider(&ca).await;
    let config = builder(&idp)
        .provider_ca_files(vec![ca.ca_cert.clone()])
        .build()
        .expect("config");
    let layer = OidcLayer::discover(config)
        .await
        .expect("discovery with the CA");
    assert!(layer.engine().is_ready());
    assert!(!layer.engine().insecure_tls());
}

#[tokio::test]
async fn without_the_ca_discovery_fails_on_the_certificate() {
    let ca = TestCa::new();
    let idp = https_provider(&ca).await;
    let config = builder(&idp).build().expect("config");
    match OidcLayer::discover(config).await {
        Err(SetupError::Discovery(e)) => assert!(e.is_certificate_error(), "{e:?}"),
        Err(e) => panic!("expected a discovery error, got {e:?}"),
        Ok(_) => panic!("discovered a provider whose CA is not trusted"),
    }
}

#[tokio::test]
async fn ssl_insecure_skip_verify_discovers_and_says_so() {
    let ca = TestCa::new();
    let idp = https_provider(&ca).await;
    let config = builder(&idp)
        .ssl_insecure_skip_verify(true)
        .build()
        .expect("config");
    let layer = OidcLayer::discover(config).await.expect("discovery");
    assert!(layer.engine().insecure_tls());
    assert!(
        layer
            .engine()
            .metrics()
            .render()
            .contains("\noidc_authz_insecure_tls 1\n")
    );
}

#[tokio::test]
async fn a_bad_ca_file_is_a_config_error_naming_setting_and_file() {
    let e = Config::builder("https://idp.example.com", "app")
        .cookie_secret(COOKIE_SECRET)
        .provider_ca_files(vec!["/nonexistent/company-ca.pem".into()])
        .build()
        .expect_err("unreadable CA file");
    let text = e.to_string();
    assert!(
        text.starts_with("provider_ca_files: ") && text.contains("/nonexistent/company-ca.pem"),
        "{text}"
    );
    assert!(
        std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()),
        "{text}"
    );
}

/// The shared Keycloak's HTTPS listener, and a builder for the `nginx` client of a fresh realm
/// served there (issuer `https://127.0.0.1:<port>/realms/tower-oidc-tls-...`).
async fn keycloak_https_realm() -> (KeycloakHttps, ConfigBuilder) {
    let kc = keycloak();
    let issuer = kc.create_https_realm("tower-oidc-tls").await;
    (kc.https(), common::keycloak_config(&issuer, "_tls_app"))
}

/// Serves `/me` (the signed-in user's email and name) behind `layer` on 127.0.0.1, logs alice
/// in at Keycloak over HTTPS (its real login form) starting from `/me`, and returns what `/me`
/// then answers her.
async fn alice_logs_in(layer: OidcLayer, https: &KeycloakHttps) -> Value {
    let issuer = layer
        .engine()
        .config()
        .issuer()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let app = Router::new()
        .route(
            "/me",
            get(|me: Identity| async move {
                Json(json!({"email": me.email(), "username": me.username()}))
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let browser = https.browser(&[]);
    common::keycloak_browser_login(&browser, &base, &issuer, "/me", &ALICE).await;
    let r = browser
        .get(format!("{base}/me"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .expect("GET /me");
    assert_eq!(r.status(), StatusCode::OK, "signed in");
    let identity = r.json().await.expect("JSON");
    server.abort();
    identity
}

fn is_alice(identity: &Value) -> bool {
    identity == &json!({"email": ALICE.email, "username": ALICE.username})
}

#[tokio::test]
async fn logs_in_at_keycloak_over_https_with_provider_ca_files() {
    let (https, builder) = keycloak_https_realm().await;
    let config = builder
        .provider_ca_files(vec![https.ca_file.clone()])
        .build()
        .expect("config");
    let layer = OidcLayer::discover(config)
        .await
        .expect("discovery with the CA");
    assert!(!layer.engine().insecure_tls());
    let identity = alice_logs_in(layer, &https).await;
    assert!(is_alice(&identity), "{identity}");
}

#[tokio::test]
async fn keycloak_over_https_without_the_ca_fails_on_the_certificate() {
    let (_, builder) = keycloak_https_realm().await;
    match OidcLayer::discover(builder.build().expect("config")).await {
        Err(SetupError::Discovery(e)) => assert!(e.is_certificate_error(), "{e:?}"),
        Err(e) => panic!("expected a discovery error, got {e:?}"),
        Ok(_) => panic!("discovered a Keycloak whose CA is not trusted"),
    }
}

#[tokio::test]
async fn logs_in_at_keycloak_over_https_with_ssl_insecure_skip_verify() {
    let (https, builder) = keycloak_https_realm().await;
    let config = builder
        .ssl_insecure_skip_verify(true)
        .build()
        .expect("config");
    let layer = OidcLayer::discover(config).await.expect("discovery");
    assert!(layer.engine().insecure_tls());
    let identity = alice_logs_in(layer, &https).await;
    assert!(is_alice(&identity), "{identity}");
}
