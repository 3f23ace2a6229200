//! The session's serialised form is a contract: cookies and Redis values written by earlier
//! versions must still decode, every field in place, and encode to the same JSON.
//!
//! The fixtures were written by the code before `Principal` and the token newtypes:
//! `session-main.json` (what a cookie or a Redis value holds, before sealing) and
//! `session-main.cookie` (a sealed session cookie, secret below, expiring in 2100).

use oidc_core::{Config, Engine, Session};

const JSON: &str = include_str!("fixtures/session-main.json");
const COOKIE: &str = include_str!("fixtures/session-main.cookie");
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
        .header(http::header::COOKIE, COOKIE.trim_end())
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
