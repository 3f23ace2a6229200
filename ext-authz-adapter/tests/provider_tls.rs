//! TLS to the identity provider with a private CA (issue 17): the provider serves HTTPS with a
//! certificate from a CA made with `openssl`, and the adapter binary trusts it only through
//! `--provider-ca-file`; without it discovery fails on the certificate (the log names the flag,
//! `/ready` stays 503); `--ssl-insecure-skip-verify` works and warns at start, on `/ready` and
//! in the metrics.
//!
//! Two providers: Keycloak itself (the shared one of `cargo xtask test`, whose HTTPS listener
//! has a certificate of a CA xtask made for the run; each test creates a realm whose issuer is
//! on that listener), and the node oidc-provider with a CA made in the test (also for mutual
//! TLS, which Keycloak's listener does not ask for).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::cookie::Jar;
use test_support::keycloak::{ALICE, KeycloakHttps, keycloak, login_at_keycloak};
use test_support::{OidcProvider, ProviderConfig, TestCa};

/// The node provider over HTTPS with the `nginx` client registered for an adapter on `port`.
async fn https_provider(ca: &TestCa, port: u16) -> OidcProvider {
    let idp = OidcProvider::start_with(ProviderConfig {
        clients: vec![client_spec(port)],
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        ..ProviderConfig::default()
    })
    .await;
    assert!(idp.issuer.starts_with("https://"), "{}", idp.issuer);
    idp
}

/// A browser that trusts the test CA (it visits the provider's login page).
fn browser(port: u16, ca: &TestCa) -> Browser {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(&ca.ca_cert).expect("CA file");
    let jar = Arc::new(Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .resolve(HOST, ([127, 0, 0, 1], port).into())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    Browser { http, jar }
}

async fn logs_in(adapter: &Adapter, c: &Browser) {
    let back = login(c, adapter, "/some/page", "alice").await;
    assert_eq!(back, "/some/page");
    let r = check(c, adapter, "/some/page").await;
    assert_eq!(r.status(), 200, "logged in through the HTTPS provider");
    assert_eq!(r.headers()["x-auth-request-email"], "alice@example.com");
}

async fn get(url: String) -> (u16, String) {
    let r = raw_client(0).get(url).send().await.expect("GET");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The shared Keycloak's HTTPS listener and the issuer of a fresh realm served there
/// (`https://127.0.0.1:<port>/realms/adapter-tls-...`).
async fn keycloak_https_realm() -> (KeycloakHttps, String) {
    let kc = keycloak();
    let issuer = kc.create_https_realm("adapter-tls").await;
    (kc.https(), issuer)
}

/// An adapter for the realm `issuer` of Keycloak (its `nginx` client's secret) with `extra`,
/// on a port of its choosing; waits for `/ready`.
async fn keycloak_adapter(issuer: &str, extra: &[&str]) -> Adapter {
    let mut adapter = Adapter::spawn_with_secret(issuer, &keycloak().client_secret, 0, extra).await;
    adapter.wait_ready().await;
    adapter
}

/// alice logs in through the adapter at Keycloak over HTTPS (its real login form), and the
/// next check of the page is allowed with her identity.
async fn logs_in_at_keycloak(adapter: &Adapter, https: &KeycloakHttps, issuer: &str) {
    let browser = https.browser(&[HOST]);
    let r = check(&browser, adapter, "/some/page").await;
    assert_eq!(
        r.status(),
        302,
        "a navigation without a session goes to Keycloak"
    );
    let authorize = location(r.headers());
    assert!(authorize.starts_with(&format!("{issuer}/")), "{authorize}");
    let callback = login_at_keycloak(&browser, &authorize, ALICE.username, ALICE.password).await;
    assert_eq!(finish_login(&browser, &callback).await, "/some/page");
    let r = check(&browser, adapter, "/some/page").await;
    assert_eq!(
        r.status(),
        200,
        "logged in through Keycloak over HTTPS:\n{}",
        adapter.log().tail()
    );
    assert_eq!(r.headers()["x-auth-request-email"], ALICE.email);
    assert_eq!(
        r.headers()["x-auth-request-preferred-username"],
        ALICE.username
    );
}

/// An adapter for `issuer` without `--provider-ca-file`: discovery fails on the certificate,
/// the log line names the flags to set, and `/ready` answers 503.
async fn untrusted_provider_is_never_ready(issuer: &str) {
    let mut adapter = Adapter::spawn(issuer, 0, &[]).await;
    let line = adapter
        .log()
        .wait_since(0, &["OIDC discovery failed"], Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no discovery failure logged:\n{}", adapter.log().tail()));
    assert!(
        line.contains("--provider-ca-file") && line.contains("--ssl-insecure-skip-verify"),
        "the failure names the flags to set: {line}"
    );
    let (status, _) = get(format!("http://{}/ready", adapter.bound.http)).await;
    assert_eq!(status, 503, "not ready without trusting the provider");
    adapter.stop().await;
}

/// The `--ssl-insecure-skip-verify` warnings of a started adapter (with
/// `--metrics-address=127.0.0.1:0`): at start (WARN), in `/ready`'s body, in the metrics.
async fn warns_of_insecure_tls(adapter: &Adapter) {
    let warning = adapter
        .log()
        .lines()
        .into_iter()
        .find(|l| l.contains("(--ssl-insecure-skip-verify) is set"))
        .unwrap_or_else(|| panic!("no start-up warning:\n{}", adapter.log().tail()));
    assert!(warning.contains("WARN"), "{warning}");
    let (status, body) = get(format!("http://{}/ready", adapter.bound.http)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("WARNING") && body.contains("--ssl-insecure-skip-verify"),
        "{body}"
    );
    let metrics = adapter.bound.metrics.expect("metrics address");
    let (_, body) = get(format!("http://{metrics}/metrics")).await;
    assert!(body.contains("\noidc_authz_insecure_tls 1\n"), "{body}");
}

const INSECURE_ARGS: &[&str] = &[
    "--set-xauthrequest=true",
    "--ssl-insecure-skip-verify",
    "--metrics-address=127.0.0.1:0",
];

#[tokio::test]
async fn keycloak_over_https_with_provider_ca_file() {
    let (https, issuer) = keycloak_https_realm().await;
    let ca_flag = format!("--provider-ca-file={}", https.ca_file.display());
    let adapter = keycloak_adapter(&issuer, &["--set-xauthrequest=true", &ca_flag]).await;
    logs_in_at_keycloak(&adapter, &https, &issuer).await;
    let (status, body) = get(format!("http://{}/ready", adapter.bound.http)).await;
    assert_eq!((status, body.as_str()), (200, "OK"));
}

#[tokio::test]
async fn keycloak_over_https_without_the_ca_is_never_ready() {
    let (_, issuer) = keycloak_https_realm().await;
    untrusted_provider_is_never_ready(&issuer).await;
}

#[tokio::test]
async fn keycloak_over_https_with_ssl_insecure_skip_verify_works_and_warns() {
    let (https, issuer) = keycloak_https_realm().await;
    let adapter = keycloak_adapter(&issuer, INSECURE_ARGS).await;
    warns_of_insecure_tls(&adapter).await;
    logs_in_at_keycloak(&adapter, &https, &issuer).await;
}

#[tokio::test]
async fn provider_ca_file_logs_in_through_a_provider_behind_a_private_ca() {
    let ca = TestCa::new();
    let port = callback_port();
    let idp = https_provider(&ca, port).await;
    let ca_flag = format!("--provider-ca-file={}", ca.ca_cert.display());
    let adapter = Adapter::start(&idp.issuer, port, &["--set-xauthrequest=true", &ca_flag]).await;
    logs_in(&adapter, &browser(port, &ca)).await;
    let (status, body) = get(format!("http://127.0.0.1:{port}/ready")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "OK"),
        "no warning without the insecure flag"
    );
    assert!(
        !adapter
            .log()
            .contains("(--ssl-insecure-skip-verify) is set")
    );
}

#[tokio::test]
async fn without_the_ca_discovery_fails_and_the_log_names_the_flag() {
    let ca = TestCa::new();
    let idp = https_provider(&ca, 1).await;
    untrusted_provider_is_never_ready(&idp.issuer).await;
}

#[tokio::test]
async fn ssl_insecure_skip_verify_works_and_warns_everywhere() {
    let ca = TestCa::new();
    let port = callback_port();
    let idp = https_provider(&ca, port).await;
    let adapter = Adapter::start(&idp.issuer, port, INSECURE_ARGS).await;
    warns_of_insecure_tls(&adapter).await;
    logs_in(&adapter, &browser(port, &ca)).await;
}

#[tokio::test]
async fn mutual_tls_with_provider_client_cert_and_key() {
    let ca = TestCa::new();
    let idp = OidcProvider::start_with(ProviderConfig {
        clients: vec![client_spec(1)],
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        tls_client_ca: Some(ca.ca_cert.clone()),
        ..ProviderConfig::default()
    })
    .await;
    let ca_flag = format!("--provider-ca-file={}", ca.ca_cert.display());
    let cert_flag = format!("--provider-client-cert-file={}", ca.client_cert.display());
    let key_flag = format!("--provider-client-key-file={}", ca.client_key.display());

    // Without a client certificate the provider hangs up: never ready.
    let mut without = Adapter::spawn(&idp.issuer, 0, &[&ca_flag]).await;
    without
        .log()
        .wait_since(0, &["OIDC discovery failed"], Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no discovery failure logged:\n{}", without.log().tail()));
    let (status, _) = get(format!("http://{}/ready", without.bound.http)).await;
    assert_eq!(status, 503, "the provider demands a client certificate");
    without.stop().await;

    // With it: discovered (discovery and JWKS over mutual TLS).
    let with = Adapter::start(&idp.issuer, 0, &[&ca_flag, &cert_flag, &key_flag]).await;
    let (status, body) = get(format!("http://{}/ready", with.bound.http)).await;
    assert_eq!((status, body.as_str()), (200, "OK"));
}
