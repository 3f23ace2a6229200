//! Back-channel logout revokes bearer access tokens of our own issuer, cached ones included,
//! in every replica that shares Redis: by `sid`, and by `sub` for a logout token without one
//! (then only tokens issued at or before the logout). Two engines stand for two replicas;
//! the provider is `test_support::rogue` (it signs the access and logout tokens), Redis is
//! real.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oidc_core::store::redis::RedisSettings;
use oidc_core::token::bearer::{BearerError, BearerValidator};
use oidc_core::{Config, Engine};
use serde_json::json;
use test_support::redis::RedisServer;
use test_support::rogue::RogueProvider;

const CLIENT_ID: &str = "nginx";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// One replica: an engine (with Redis when given) and its bearer validator.
async fn replica(rogue: &RogueProvider, redis: Option<&str>) -> Replica {
    let mut config = Config::builder(rogue.issuer.clone(), CLIENT_ID)
        .cookie_secret("0123456789abcdef0123456789abcdef");
    if let Some(url) = redis {
        let mut settings = RedisSettings::standalone(url);
        settings.timeout = Duration::from_secs(2);
        config = config.redis(settings);
    }
    let engine = Engine::new(config.build().expect("config")).expect("engine");
    engine
        .discover()
        .await
        .expect("discovery of the rogue provider");
    let bearer = engine.default_bearer_validator();
    Replica { engine, bearer }
}

/// One replica: its engine (which takes the logouts) and its bearer-token validator.
struct Replica {
    engine: Engine,
    bearer: BearerValidator,
}

impl std::ops::Deref for Replica {
    type Target = BearerValidator;
    fn deref(&self) -> &BearerValidator {
        &self.bearer
    }
}

/// The provider, Redis, and two replicas sharing it.
async fn two_replicas_sharing_redis() -> (RogueProvider, RedisServer, Replica, Replica) {
    let rogue = RogueProvider::start(CLIENT_ID, "secret");
    let redis = RedisServer::start().await;
    let a = replica(&rogue, Some(&redis.url)).await;
    let b = replica(&rogue, Some(&redis.url)).await;
    (rogue, redis, a, b)
}

fn access_token(rogue: &RogueProvider, sub: &str, sid: Option<&str>, iat: u64) -> String {
    let mut claims = json!({
        "iss": rogue.issuer, "aud": CLIENT_ID, "sub": sub, "iat": iat, "exp": now() + 300,
        "email": format!("{sub}@example.com"), "typ": "Bearer", "azp": CLIENT_ID,
    });
    if let Some(sid) = sid {
        claims["sid"] = sid.into();
    }
    rogue.sign(&claims)
}

/// The provider's back-channel logout POST body for `sid` (or, without one, `sub`).
fn logout_body(rogue: &RogueProvider, sub: &str, sid: Option<&str>) -> Vec<u8> {
    let mut claims = json!({
        "iss": rogue.issuer, "aud": CLIENT_ID, "sub": sub, "iat": now(),
        "jti": format!("jti-{}-{:?}", rand_suffix(), sid),
        "events": { EVENT: {} },
    });
    if let Some(sid) = sid {
        claims["sid"] = sid.into();
    }
    format!("logout_token={}", rogue.sign(&claims)).into_bytes()
}

fn rand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

async fn logout(at: &Replica, body: &[u8]) {
    let r = at.engine.backchannel_logout(body).await;
    assert_eq!(
        r.status(),
        200,
        "the logout token is accepted: {:?}",
        r.body()
    );
}

async fn accepted(v: &BearerValidator, token: &str) -> bool {
    match v.validate_shared(token).await {
        Ok(_) => true,
        Err(BearerError::Revoked) => false,
        Err(e) => panic!("refused for another reason than revocation: {e}"),
    }
}

#[tokio::test]
async fn a_logout_of_the_sid_ends_its_cached_bearer_tokens_in_every_replica() {
    let (rogue, _redis, a, b) = two_replicas_sharing_redis().await;
    let alice = access_token(&rogue, "alice", Some("sid-alice-1"), now() - 60);
    let bob = access_token(&rogue, "bob", Some("sid-bob-1"), now() - 60);
    for v in [&a, &b] {
        // Twice: the second answer comes from the validated-token cache.
        for _ in 0..2 {
            assert!(accepted(v, &alice).await);
            assert!(accepted(v, &bob).await);
        }
    }
    // The provider POSTs the logout to replica A only.
    logout(&a, &logout_body(&rogue, "alice", Some("sid-alice-1"))).await;
    for (name, v) in [("A", &a), ("B", &b)] {
        assert!(
            !accepted(v, &alice).await,
            "replica {name}: alice's cached token after the logout of its sid"
        );
        assert!(
            matches!(v.validate(&alice).await, Err(BearerError::Revoked)),
            "replica {name}: uncached validation too"
        );
        assert!(
            accepted(v, &bob).await,
            "replica {name}: bob's session is another one"
        );
    }
    // Alice signs in again: a new provider session, new tokens, accepted everywhere.
    let again = access_token(&rogue, "alice", Some("sid-alice-2"), now());
    assert!(accepted(&a, &again).await);
    assert!(accepted(&b, &again).await);
}

#[tokio::test]
async fn a_logout_without_sid_ends_the_subjects_tokens_issued_until_then() {
    let (rogue, _redis, a, b) = two_replicas_sharing_redis().await;
    let old = access_token(&rogue, "alice", Some("sid-x"), now() - 60);
    let no_sid = access_token(&rogue, "alice", None, now() - 60);
    for v in [&a, &b] {
        assert!(accepted(v, &old).await);
        assert!(accepted(v, &no_sid).await);
    }
    logout(&b, &logout_body(&rogue, "alice", None)).await;
    // Issued after the logout (a new login): accepted. One second later at least, since a
    // token of the logout's second counts as revoked.
    let later = access_token(&rogue, "alice", Some("sid-y"), now() + 1);
    for (name, v) in [("A", &a), ("B", &b)] {
        assert!(
            !accepted(v, &old).await,
            "replica {name}: older token of alice"
        );
        assert!(
            !accepted(v, &no_sid).await,
            "replica {name}: token without sid"
        );
        assert!(
            accepted(v, &later).await,
            "replica {name}: token issued after"
        );
    }
}

#[tokio::test]
async fn without_redis_only_the_replica_that_got_the_logout_knows() {
    let rogue = RogueProvider::start(CLIENT_ID, "secret");
    let (a, b) = (replica(&rogue, None).await, replica(&rogue, None).await);
    let alice = access_token(&rogue, "alice", Some("sid-1"), now() - 60);
    assert!(accepted(&a, &alice).await);
    assert!(accepted(&b, &alice).await);
    logout(&a, &logout_body(&rogue, "alice", Some("sid-1"))).await;
    assert!(!accepted(&a, &alice).await, "the replica that got the POST");
    // README: without Redis revocation is per process.
    assert!(accepted(&b, &alice).await, "the other replica cannot know");
}

#[tokio::test]
async fn bearer_tokens_fail_closed_while_the_store_is_down() {
    let rogue = RogueProvider::start(CLIENT_ID, "secret");
    let mut redis = RedisServer::start().await;
    let a = replica(&rogue, Some(&redis.url)).await;
    let alice = access_token(&rogue, "alice", Some("sid-1"), now() - 60);
    assert!(accepted(&a, &alice).await);
    redis.stop().await;
    let err = a
        .validate_shared(&alice)
        .await
        .expect_err("never accepted without the store");
    assert!(matches!(err, BearerError::StoreUnavailable), "{err}");
    assert_eq!(err.status(), 503);
}
