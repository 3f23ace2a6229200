//! The session's serialised form is a contract: cookies and Redis values written by earlier
//! versions must still decode, every field in place, and encode to the same JSON.
//!
//! Sealed sessions carry their format version ([`FORMAT_VERSION`], the first byte), and every
//! version a release has written has fixtures here, written by that release, that must keep
//! opening: `session-vN.cookie` (a sealed session cookie, secret below, expiring in 2100) and
//! `session-vN.redis` (a ticket as its cookie holds it, then the sealed value Redis holds, in
//! base64). `session-v1.json` is what both hold before sealing, written by the code before
//! `Principal` and the token newtypes; `session-v1.cookie` too, `session-v1.redis` by the first
//! release of the layered core.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use oidc_core::session::FORMAT_VERSION;
use oidc_core::store::redis::{RedisSettings, RedisStore, Ticket};
use oidc_core::{Config, Engine, Session};
use test_support::redis::RedisServer;

const JSON: &str = include_str!("fixtures/session-v1.json");
const SECRET: &str = "fixture-secret-0123456789abcdef!";
const ISSUER: &str = "https://idp.example.com/realms/test";

fn check_every_field(s: &Session) {
    let p = &s.principal;
    assert_eq!(p.subject, "f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
    assert_eq!(p.email.as_deref(), Some("alice@example.com"));
    assert_eq!(p.preferred_username.as_deref(), Some("alice"));
    assert_eq!(p.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(p.groups, ["admins", "dev"]);
    assert_eq!(p.realm_roles, ["admin", "user"]);
    assert_eq!(p.client_roles, ["nginx:editor", "account:view-profile"]);
    assert_eq!(s.sid.as_deref(), Some("5e7a8c3b-provider-session"));
    let token = |t: Option<&str>| t.map(str::to_owned);
    assert_eq!(
        token(s.id_token.as_ref().map(|t| t.expose())).as_deref(),
        Some("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.id-token-signature")
    );
    assert_eq!(
        token(s.access_token.as_ref().map(|t| t.expose())).as_deref(),
        Some("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.access-token-signature")
    );
    assert_eq!(
        token(s.refresh_token.as_ref().map(|t| t.expose())).as_deref(),
        Some("eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJSZWZyZXNoIn0.refresh-token-signature")
    );
    assert_eq!(s.created_at, 1_700_000_000);
    assert_eq!(s.expires_at, 4_102_444_800);
    assert_eq!(s.access_expires_at, Some(1_700_000_300));
    assert_eq!(s.refresh_expires_at, Some(1_700_001_800));
    assert_eq!(s.refreshed_at, 1_700_000_100);
}

#[test]
fn an_earlier_session_decodes_and_encodes_to_the_same_json() {
    let s: Session = serde_json::from_str(JSON).expect("the earlier session decodes");
    check_every_field(&s);
    assert_eq!(s.principal.issuer, None, "the issuer is not stored");
    assert_eq!(serde_json::to_string(&s).unwrap(), JSON.trim_end());
}

#[test]
fn empty_fields_stay_out_of_the_json() {
    let mut s = Session::default();
    s.principal.subject = "a".into();
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        r#"{"s":"a","c":0,"x":0,"ra":0}"#
    );
}

#[test]
fn an_earlier_session_cookie_still_opens() {
    let config = Config::builder(ISSUER, "nginx")
        .cookie_secret(SECRET)
        .build()
        .unwrap();
    let engine = Engine::new(config).unwrap();
    let parts = http::Request::get("/")
        .header(http::header::COOKIE, cookie(1).trim_end())
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let s = engine
        .authenticate(&parts)
        .expect("the earlier cookie opens");
    check_every_field(&s);
    assert_eq!(s.principal.issuer(), Some(ISSUER), "the engine's issuer");
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The `Cookie` header of version `v`'s fixture.
fn cookie(v: u8) -> String {
    let name = format!("session-v{v}.cookie");
    std::fs::read_to_string(fixture(&name)).unwrap_or_else(|e| {
        panic!("{name}: every format version up to {FORMAT_VERSION} needs its fixtures ({e})")
    })
}

/// Version `v`'s Redis fixture: the ticket and the sealed value.
fn redis_value(v: u8) -> (Ticket, Vec<u8>) {
    let name = format!("session-v{v}.redis");
    let text = std::fs::read_to_string(fixture(&name)).unwrap_or_else(|e| {
        panic!("{name}: every format version up to {FORMAT_VERSION} needs its fixtures ({e})")
    });
    let mut lines = text.lines();
    let ticket = Ticket::decode(lines.next().unwrap_or_default()).expect("a ticket");
    let value = STANDARD
        .decode(lines.next().unwrap_or_default())
        .expect("base64");
    (ticket, value)
}

#[test]
fn every_format_version_writes_its_version_first_and_its_cookie_still_opens() {
    let config = Config::builder(ISSUER, "nginx")
        .cookie_secret(SECRET)
        .build()
        .unwrap();
    let engine = Engine::new(config).unwrap();
    for v in 1..=FORMAT_VERSION {
        let header = cookie(v);
        let value = header.trim_end().split_once('=').expect("name=value").1;
        let sealed = URL_SAFE_NO_PAD.decode(value).expect("base64url");
        assert_eq!(sealed[0], v, "version {v}'s cookie starts with its version");
        let parts = http::Request::get("/")
            .header(http::header::COOKIE, header.trim_end())
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let s = engine
            .authenticate(&parts)
            .unwrap_or_else(|e| panic!("version {v}'s cookie opens: {e:?}"));
        check_every_field(&s);
    }
    // What this release writes starts with this release's version.
    let session: Session = serde_json::from_str(JSON).unwrap();
    let written = engine.session_cookies(&session, None);
    let value = written[0]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .unwrap()
        .1;
    assert_eq!(URL_SAFE_NO_PAD.decode(value).unwrap()[0], FORMAT_VERSION);
}

#[tokio::test]
async fn every_format_version_of_a_redis_value_still_opens() {
    let redis = RedisServer::start().await;
    let mut settings = RedisSettings::standalone(&redis.url);
    settings.key_prefix = "fixtures".into();
    let store = RedisStore::connect(settings).await.expect("connect");
    let mut raw = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for v in 1..=FORMAT_VERSION {
        let (ticket, value) = redis_value(v);
        assert_eq!(value[0], v, "version {v}'s value starts with its version");
        let key = format!("fixtures:s:{}", ticket.id_hex());
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .query_async(&mut raw)
            .await
            .unwrap();
        let s = store
            .load(&ticket)
            .await
            .unwrap_or_else(|e| panic!("version {v}'s value opens: {e}"))
            .unwrap_or_else(|| panic!("version {v}'s value is found"));
        check_every_field(&s);
    }
}
