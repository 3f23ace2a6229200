//! Bearer JWT validation (`oidc_core::token::bearer::BearerValidator::validate`): an RS256 and an
//! ES256 access token of a provider whose keys are already cached (the steady state: no I/O),
//! and the cheap refusals (an expired token, a token of an untrusted issuer).
//!
//! The provider is `test_support::rogue::RogueProvider` (discovery and JWKS on 127.0.0.1, the
//! key fixtures of `test-support/assets/keys/`); the tokens are signed here with the same
//! fixtures.

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oidc_core::{Config, Engine};
use serde_json::json;
use test_support::rogue::{EC_KID, RogueProvider};

const RSA_PEM: &str = include_str!("../../test-support/assets/keys/rsa-1.pem");
const EC_PEM: &str = include_str!("../../test-support/assets/keys/ec-p256.pem");

/// The DER inside a PEM file (jsonwebtoken is built without its PEM parser here).
fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("key fixture is PEM")
}

fn token(issuer: &str, alg: Algorithm, kid: &str, key: &EncodingKey, exp_offset: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".to_owned());
    let claims = json!({
        "iss": issuer,
        "sub": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "aud": ["nginx", "account"],
        "azp": "nginx",
        "typ": "Bearer",
        "iat": now,
        "exp": now + exp_offset,
        "scope": "openid email profile",
        "email": "alice@example.com",
        "preferred_username": "alice",
        "realm_access": { "roles": ["offline_access", "uma_authorization", "user"] },
        "groups": ["users", "alice-group"],
    });
    jsonwebtoken::encode(&header, &claims, key).expect("sign the bench token")
}

fn bearer(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rogue = RogueProvider::start("nginx", "nginx-client-secret");
    let config = Config::builder(&rogue.issuer, "nginx")
        .cookie_secret(benches::COOKIE_SECRET)
        .build()
        .expect("bench config");
    let engine = Engine::new(config).expect("engine");
    rt.block_on(engine.discover()).expect("discovery");
    let validator = engine
        .bearer_validator()
        .audience("nginx")
        .build()
        .expect("validator");

    let rsa = EncodingKey::from_rsa_der(&pem_der(RSA_PEM));
    let ec = EncodingKey::from_ec_der(&pem_der(EC_PEM));
    let rs256 = token(&rogue.issuer, Algorithm::RS256, "rsa-key-1", &rsa, 3600);
    let es256 = token(&rogue.issuer, Algorithm::ES256, EC_KID, &ec, 3600);
    let expired = token(&rogue.issuer, Algorithm::RS256, "rsa-key-1", &rsa, -3600);
    let foreign = token(
        "https://elsewhere.example.com/realms/x",
        Algorithm::RS256,
        "rsa-key-1",
        &rsa,
        3600,
    );
    // The first validations fetch nothing more (the JWKS came with discovery); check they pass.
    for (name, t) in [("rs256", &rs256), ("es256", &es256)] {
        rt.block_on(validator.validate(t))
            .unwrap_or_else(|e| panic!("{name} bench token refused: {e}"));
    }
    assert!(rt.block_on(validator.validate(&expired)).is_err());
    assert!(rt.block_on(validator.validate(&foreign)).is_err());

    for (name, t) in [
        ("bearer/rs256_valid", &rs256),
        ("bearer/es256_valid", &es256),
        ("bearer/rs256_expired", &expired),
        ("bearer/untrusted_issuer", &foreign),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(validator.validate(std::hint::black_box(t)))
                    .is_ok()
            })
        });
    }
    drop(rogue);
}

criterion_group!(benches, bearer);
criterion_main!(benches);
