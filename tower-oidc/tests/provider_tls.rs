//! TLS to the identity provider with a private CA (issue 17) through tower-oidc's `Config`
//! builder: the node oidc-provider serves HTTPS with a certificate from a CA made in the test
//! (`openssl`); discovery (and the JWKS fetch) succeeds with `provider_ca_files`, fails on the
//! certificate without it, and succeeds with `ssl_insecure_skip_verify`.

mod common;

use common::COOKIE_SECRET;
use test_support::{ClientSpec, OidcProvider, ProviderConfig, TestCa};
use tower_oidc::oidc_core::{ClientSecret, Config, ConfigBuilder};
use tower_oidc::{OidcLayer, SetupError};

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
async fn a_bad_ca_file_is_a_config_error_naming_flag_and_file() {
    let e = Config::builder("https://idp.example.com", "app")
        .cookie_secret(COOKIE_SECRET)
        .provider_ca_files(vec!["/nonexistent/company-ca.pem".into()])
        .build()
        .expect_err("unreadable CA file");
    let text = e.to_string();
    assert!(
        text.contains("--provider-ca-file") && text.contains("/nonexistent/company-ca.pem"),
        "{text}"
    );
}
