//! The provider TLS settings (`provider_ca_files`, client certificate, insecure mode): read and
//! checked when the configuration is built, with errors that name the setting and the file.

use std::path::PathBuf;

use oidc_core::Setting;

fn builder() -> oidc_core::ConfigBuilder {
    oidc_core::Config::builder("https://idp.example.com", "app")
        .cookie_secret("0123456789abcdef0123456789abcdef")
}

/// The error's whole chain.
fn error(files: Vec<PathBuf>) -> String {
    let e = builder()
        .provider_ca_files(files)
        .build()
        .expect_err("a bad CA file is refused");
    oidc_core::error::chain(&e)
}

#[test]
fn an_unreadable_ca_file_names_the_setting_and_the_file_and_keeps_the_io_error() {
    let e = error(vec!["/nonexistent/ca.pem".into()]);
    assert!(
        e.starts_with("provider_ca_files: cannot read /nonexistent/ca.pem: "),
        "{e}"
    );
    let err = builder()
        .provider_ca_files(vec!["/nonexistent/ca.pem".into()])
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), Some(Setting::ProviderCaFiles));
    let io = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the io::Error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_file_without_certificates_names_the_setting_and_the_file() {
    let dir = std::env::temp_dir().join(format!("oidc-core-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = error(vec![empty.clone()]);
    assert!(
        e.starts_with("provider_ca_files: ")
            && e.contains(&*empty.to_string_lossy())
            && e.contains("holds no PEM certificate"),
        "{e}"
    );
    let garbled = dir.join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = error(vec![garbled.clone()]);
    assert!(
        e.starts_with("provider_ca_files: ") && e.contains(&*garbled.to_string_lossy()),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ca_files_are_read_and_the_client_builds_in_every_mode() {
    let ca = test_support::TestCa::new();
    let config = builder()
        .provider_ca_files(vec![ca.ca_cert.clone(), ca.ca_cert.clone()])
        .build()
        .expect("a CA bundle is accepted");
    assert_eq!(config.provider_tls().ca_files.len(), 2);
    assert_eq!(config.provider_tls().ca_files[0].certificate_count(), 1);
    for (system, insecure) in [(false, false), (true, false), (false, true)] {
        let mut tls = config.provider_tls().clone();
        tls.use_system_trust_store = system;
        tls.insecure_skip_verify = insecure;
        oidc_core::provider::http_client(std::time::Duration::from_secs(1), &[], &tls)
            .expect("client");
    }
    oidc_core::provider::http_client(
        std::time::Duration::from_secs(1),
        &[],
        &oidc_core::config::ProviderTls::default(),
    )
    .expect("public and system roots");
}

#[test]
fn client_certificate_and_key_go_together_and_are_checked() {
    let ca = test_support::TestCa::new();
    let e = |b: oidc_core::ConfigBuilder| oidc_core::error::chain(&b.build().expect_err("refused"));
    let only_cert = e(builder().provider_client_cert_file(Some(ca.client_cert.clone())));
    assert_eq!(
        only_cert,
        "provider_client_key_file is required with provider_client_cert_file"
    );
    let only_key = e(builder().provider_client_key_file(Some(ca.client_key.clone())));
    assert_eq!(
        only_key,
        "provider_client_cert_file is required with provider_client_key_file"
    );
    let key_as_cert = e(builder()
        .provider_client_cert_file(Some(ca.client_key.clone()))
        .provider_client_key_file(Some(ca.client_key.clone())));
    assert!(
        key_as_cert.starts_with("provider_client_cert_file: "),
        "{key_as_cert}"
    );
    let cert_as_key = e(builder()
        .provider_client_cert_file(Some(ca.client_cert.clone()))
        .provider_client_key_file(Some(ca.ca_cert.clone())));
    assert!(
        cert_as_key.starts_with("provider_client_key_file: ")
            && cert_as_key.contains(&*ca.ca_cert.to_string_lossy()),
        "{cert_as_key}"
    );
    let config = builder()
        .provider_client_cert_file(Some(ca.client_cert.clone()))
        .provider_client_key_file(Some(ca.client_key.clone()))
        .build()
        .expect("a certificate and its key");
    let debug = format!("{:?}", config.provider_tls());
    assert!(
        debug.contains("client.key") && !debug.contains("PRIVATE"),
        "{debug}"
    );
    oidc_core::provider::http_client(
        std::time::Duration::from_secs(1),
        &[],
        config.provider_tls(),
    )
    .expect("client with a certificate");
}

#[test]
fn the_insecure_gauge_is_0_unless_the_flag_is_set() {
    let engine = oidc_core::Engine::new(builder().build().unwrap()).unwrap();
    assert!(
        engine
            .metrics()
            .render()
            .contains("\noidc_authz_insecure_tls 0\n")
    );
    let engine =
        oidc_core::Engine::new(builder().ssl_insecure_skip_verify(true).build().unwrap()).unwrap();
    assert!(
        engine
            .metrics()
            .render()
            .contains("\noidc_authz_insecure_tls 1\n")
    );
    assert!(engine.insecure_tls());
}
