//! `oidc_core::store::redis` against a real `redis-server` (from `test_support::redis`).
//! Built with the `redis` feature (oidc-core is its own dev-dependency with it, so `cargo test -p
//! oidc-core` always runs these).

use std::time::{Duration, Instant};

use oidc_core::session::Session;
use oidc_core::store::redis::{RedisSettings, RedisStore, RevocationKind, StoreError, Ticket};
use test_support::redis::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(800);

fn settings(url: &str) -> RedisSettings {
    let mut s = RedisSettings::standalone(url);
    s.timeout = TIMEOUT;
    s.key_prefix = "t".into();
    s
}

async fn store(url: &str) -> RedisStore {
    RedisStore::connect(settings(url)).await.expect("connect")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn session(sub: &str, sid: Option<&str>) -> Session {
    let mut s = Session::default();
    s.principal.subject = sub.into();
    s.sid = sid.map(Into::into);
    s.principal.email = Some(format!("{sub}@example.com"));
    s.access_token = Some(format!("access-token-of-{sub}").into());
    s.refresh_token = Some(format!("refresh-token-of-{sub}").into());
    s.created_at = now() - 100;
    s.expires_at = now() + 3600;
    s
}

/// A plain connection to look at what is really in Redis.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn all_keys(url: &str) -> Vec<String> {
    let mut c = raw(url).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    keys.sort();
    keys
}

fn assert_unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::Unavailable { .. }) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_load_round_trip_with_ttl_and_nothing_readable_in_redis() {
    let redis = RedisServer::start().await;
    let store = store(&redis.url).await;
    store.ping().await.expect("ping");

    let ticket = Ticket::generate();
    let s = session("alice", Some("sid-1"));
    store
        .save(&ticket, &s, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(store.load(&ticket).await.unwrap(), Some(s.clone()));

    // Through the cookie text and back.
    let decoded = Ticket::decode(&ticket.encode()).expect("decode");
    assert_eq!(store.load(&decoded).await.unwrap(), Some(s.clone()));

    let ttl = store
        .remaining_ttl(&ticket)
        .await
        .unwrap()
        .expect("has a TTL");
    assert!(
        ttl <= Duration::from_secs(600) && ttl > Duration::from_secs(590),
        "{ttl:?}"
    );

    // What Redis holds: the sealed value, the two index sets; no token, no key, no sub.
    let keys = all_keys(&redis.url).await;
    let session_key = format!("t:s:{}", ticket.id_hex());
    assert!(keys.contains(&session_key), "{keys:?}");
    assert_eq!(keys.len(), 3, "{keys:?}");
    let mut c = raw(&redis.url).await;
    for key in &keys {
        assert!(!key.contains("alice") && !key.contains("sid-1"), "{key}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has a TTL ({ttl})");
    }
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&session_key)
        .query_async(&mut c)
        .await
        .unwrap();
    for needle in [
        b"refresh-token-of-alice".as_slice(),
        b"alice",
        &ticket.key[..],
        ticket.encode().as_bytes(),
    ] {
        assert!(
            !value.windows(needle.len()).any(|w| w == needle),
            "the value in Redis is sealed"
        );
    }

    store.delete(&ticket).await.unwrap();
    assert_eq!(store.load(&ticket).await.unwrap(), None);
    store.delete(&ticket).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_id_never_yields_a_session() {
    let redis = RedisServer::start().await;
    let store = store(&redis.url).await;
    let ticket = Ticket::generate();
    store
        .save(&ticket, &session("alice", None), Duration::from_secs(60))
        .await
        .unwrap();

    for i in [0, 13, 31] {
        let mut forged = ticket.clone();
        forged.key[i] ^= 0x40;
        assert!(
            matches!(store.load(&forged).await, Err(StoreError::Corrupt)),
            "tampered key byte {i}"
        );
    }
    let mut other_id = ticket.clone();
    other_id.id[0] ^= 1;
    assert_eq!(store.load(&other_id).await.unwrap(), None);

    // A value copied under another session's id does not open either.
    let other = Ticket::generate();
    let mut c = raw(&redis.url).await;
    let _: () = redis::cmd("COPY")
        .arg(format!("t:s:{}", ticket.id_hex()))
        .arg(format!("t:s:{}", other.id_hex()))
        .query_async(&mut c)
        .await
        .unwrap();
    let mut moved = other.clone();
    moved.key = ticket.key;
    assert!(matches!(store.load(&moved).await, Err(StoreError::Corrupt)));
    assert!(store.load(&ticket).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_by_sid_and_sub_across_replicas() {
    let redis = RedisServer::start().await;
    let (a, b) = (store(&redis.url).await, store(&redis.url).await);
    let ttl = Duration::from_secs(600);
    let (t1, t2, t3, t4) = (
        Ticket::generate(),
        Ticket::generate(),
        Ticket::generate(),
        Ticket::generate(),
    );
    a.save(&t1, &session("alice", Some("kc-1")), ttl)
        .await
        .unwrap();
    a.save(&t2, &session("alice", Some("kc-2")), ttl)
        .await
        .unwrap();
    b.save(&t3, &session("alice", None), ttl).await.unwrap();
    b.save(&t4, &session("bob", Some("kc-3")), ttl)
        .await
        .unwrap();

    // Back-channel logout of Keycloak session kc-1, handled by replica b.
    assert_eq!(b.revoke_sid("kc-1").await.unwrap(), 1);
    assert_eq!(a.load(&t1).await.unwrap(), None);
    assert!(a.load(&t2).await.unwrap().is_some());
    assert_eq!(b.revoke_sid("kc-1").await.unwrap(), 0, "idempotent");

    // Admin "sign out" of alice, handled by replica a: all her sessions, none of bob's.
    assert_eq!(a.revoke_sub("alice").await.unwrap(), 2);
    for t in [&t1, &t2, &t3] {
        assert_eq!(b.load(t).await.unwrap(), None);
    }
    assert!(b.load(&t4).await.unwrap().is_some());

    // A refresh that saves an old alice session after the revocation cannot bring it back.
    let racing = Ticket::generate();
    assert!(matches!(
        b.save(&racing, &session("alice", Some("kc-2")), ttl).await,
        Err(StoreError::Revoked)
    ));
    assert_eq!(a.load(&racing).await.unwrap(), None);

    // A login after the revocation is fine.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut fresh = session("alice", Some("kc-9"));
    fresh.created_at = now();
    let t5 = Ticket::generate();
    a.save(&t5, &fresh, ttl).await.unwrap();
    assert_eq!(b.load(&t5).await.unwrap(), Some(fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_markers_for_cookie_mode() {
    let redis = RedisServer::start().await;
    let (a, b) = (store(&redis.url).await, store(&redis.url).await);
    let issued = now() - 10;
    assert!(!a.is_revoked(Some("sid-1"), "alice", issued).await.unwrap());

    b.revoke_marker(RevocationKind::Sid, "sid-1", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(a.is_revoked(Some("sid-1"), "alice", issued).await.unwrap());
    assert!(!a.is_revoked(Some("sid-2"), "alice", issued).await.unwrap());
    assert!(!a.is_revoked(None, "alice", issued).await.unwrap());

    b.revoke_marker(RevocationKind::Sub, "alice", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(a.is_revoked(None, "alice", issued).await.unwrap());
    assert!(a.is_revoked(Some("other"), "alice", issued).await.unwrap());
    assert!(!a.is_revoked(None, "bob", issued).await.unwrap());
    // Issued after the revocation: not revoked.
    assert!(!a.is_revoked(None, "alice", now() + 5).await.unwrap());

    // revoke_sid/revoke_sub leave markers too (with RedisSettings::revocation_ttl).
    a.revoke_sub("carol").await.unwrap();
    assert!(b.is_revoked(None, "carol", issued).await.unwrap());

    // Markers expire.
    a.revoke_marker(RevocationKind::Sub, "dave", Duration::from_millis(300))
        .await
        .unwrap();
    assert!(b.is_revoked(None, "dave", issued).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.is_revoked(None, "dave", issued).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_is_exclusive_across_replicas_released_and_expires() {
    let redis = RedisServer::start().await;
    let (a, b) = (store(&redis.url).await, store(&redis.url).await);
    let ttl = Duration::from_secs(10);

    let held = a.try_lock("refresh:abc", ttl).await.unwrap().expect("free");
    assert!(b.try_lock("refresh:abc", ttl).await.unwrap().is_none());
    assert!(a.try_lock("refresh:abc", ttl).await.unwrap().is_none());
    let other = b
        .try_lock("refresh:xyz", ttl)
        .await
        .unwrap()
        .expect("other name");
    assert!(held.release().await.unwrap(), "released while ours");
    let again = b
        .try_lock("refresh:abc", ttl)
        .await
        .unwrap()
        .expect("free again");
    assert!(again.release().await.unwrap());
    assert!(other.release().await.unwrap());

    // Expiry by TTL: a crashed holder does not block forever, and its late release does not
    // free the new holder's lock.
    let stale = a
        .try_lock("refresh:ttl", Duration::from_millis(300))
        .await
        .unwrap()
        .expect("free");
    assert!(b.try_lock("refresh:ttl", ttl).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new_holder = b
        .try_lock("refresh:ttl", ttl)
        .await
        .unwrap()
        .expect("expired");
    assert!(!stale.release().await.unwrap(), "not ours any more");
    assert!(a.try_lock("refresh:ttl", ttl).await.unwrap().is_none());
    assert!(new_holder.release().await.unwrap());

    // A guard dropped without release is released in the background.
    let dropped = a
        .try_lock("refresh:drop", ttl)
        .await
        .unwrap()
        .expect("free");
    drop(dropped);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(g) = b.try_lock("refresh:drop", ttl).await.unwrap() {
            assert!(g.release().await.unwrap());
            break;
        }
        assert!(Instant::now() < deadline, "dropped guard was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Contended: of many concurrent takers over both replicas, exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.try_lock("refresh:race", Duration::from_secs(10))
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(g) = t.await.unwrap() {
            winners.push(g);
        }
    }
    assert_eq!(winners.len(), 1);
    assert!(winners.pop().unwrap().release().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_result_cache_and_jti_replay() {
    let redis = RedisServer::start().await;
    let (a, b) = (store(&redis.url).await, store(&redis.url).await);

    let key = [7u8; 32];
    assert_eq!(b.get_refresh_result(&key).await.unwrap(), None);
    a.put_refresh_result(&key, b"sealed-by-the-engine", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        b.get_refresh_result(&key).await.unwrap().as_deref(),
        Some(b"sealed-by-the-engine".as_slice())
    );
    assert_eq!(b.get_refresh_result(&[8u8; 32]).await.unwrap(), None);
    for k in all_keys(&redis.url).await {
        assert!(!k.contains("0707"), "the key is hashed: {k}");
    }
    a.put_refresh_result(&[9u8; 32], b"short", Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.get_refresh_result(&[9u8; 32]).await.unwrap(), None);

    let ttl = Duration::from_secs(60);
    assert!(a.remember_jti("jti-1", ttl).await.unwrap(), "first time");
    assert!(
        !b.remember_jti("jti-1", ttl).await.unwrap(),
        "replay on another replica"
    );
    assert!(!a.remember_jti("jti-1", ttl).await.unwrap(), "replay");
    assert!(b.remember_jti("jti-2", ttl).await.unwrap());
    assert!(
        a.remember_jti("jti-3", Duration::from_millis(200))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        a.remember_jti("jti-3", ttl).await.unwrap(),
        "forgotten after its TTL"
    );
}

/// Waits (bounded) until the store answers again, as the engine's next requests would.
async fn until_available(store: &RedisStore, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match store.ping().await {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("store did not recover within {within:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_and_the_same_store_recovers() {
    let mut redis = RedisServer::start().await;
    let store = store(&redis.url).await;
    let ticket = Ticket::generate();
    let s = session("alice", Some("sid-1"));
    store
        .save(&ticket, &s, Duration::from_secs(60))
        .await
        .unwrap();

    redis.stop().await;
    macro_rules! fails_fast {
        ($what:literal, $op:expr) => {{
            let started = Instant::now();
            let result = $op.await.map(drop);
            let took = started.elapsed();
            eprintln!("{} failed in {took:?} while Redis is down", $what);
            // Connections are refused at once: one failed attempt answers. Waiting out the
            // timeout twice (a retry after a hang) is what "slow" would look like; anything
            // below it leaves a whole timeout of slack for a loaded machine.
            assert!(
                took < 2 * TIMEOUT,
                "{} took {took:?}, not under 2 x {TIMEOUT:?}",
                $what
            );
            assert_unavailable(result, $what);
        }};
    }
    fails_fast!("load", store.load(&ticket));
    fails_fast!("save", store.save(&ticket, &s, Duration::from_secs(60)));
    fails_fast!("ping", store.ping());
    fails_fast!("try_lock", store.try_lock("x", Duration::from_secs(1)));
    fails_fast!(
        "remember_jti",
        store.remember_jti("j", Duration::from_secs(1))
    );
    fails_fast!("is_revoked", store.is_revoked(None, "alice", 0));
    fails_fast!("revoke_sub", store.revoke_sub("alice"));
    fails_fast!("get_refresh_result", store.get_refresh_result(&[1; 32]));
    // The error says which Redis and why, on one line.
    let e = store.ping().await.unwrap_err();
    let text = oidc_core::error::chain(&e);
    assert!(text.contains(&redis.url), "{text}");

    // Redis comes back (empty: nothing was persisted); the same store works on its own.
    redis.restart().await;
    until_available(&store, Duration::from_secs(5)).await;
    assert_eq!(
        store.load(&ticket).await.unwrap(),
        None,
        "data was not persisted"
    );
    store
        .save(&ticket, &s, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load(&ticket).await.unwrap(), Some(s.clone()));

    // A restart between two requests costs no request: the broken connection is retried.
    redis.restart().await;
    store
        .save(&ticket, &s, Duration::from_secs(60))
        .await
        .expect("first request after a restart");
    assert!(store.load(&ticket).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_while_redis_is_down_then_it_comes_up() {
    let mut redis = RedisServer::start().await;
    redis.stop().await;
    let store = store(&redis.url).await;
    let started = Instant::now();
    assert_unavailable(store.ping().await, "ping while down");
    let took = started.elapsed();
    assert!(took < 2 * TIMEOUT, "ping while down took {took:?}");
    redis.restart().await;
    until_available(&store, Duration::from_secs(5)).await;
    let t = Ticket::generate();
    store
        .save(&t, &session("alice", None), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.load(&t).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_out() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let store = store(&format!("redis://127.0.0.1:{port}")).await;
    let started = Instant::now();
    assert_unavailable(store.load(&Ticket::generate()).await, "load");
    let took = started.elapsed();
    // The store's own timeout answers: never before it, and not after a second one (a retry
    // of a hung command would wait the timeout twice).
    assert!(
        took >= TIMEOUT && took < 2 * TIMEOUT,
        "a hung Redis answered after {took:?}, expected the {TIMEOUT:?} timeout"
    );
    let e = store.ping().await.unwrap_err();
    assert!(
        oidc_core::error::chain(&e).contains("no answer within 800 ms"),
        "{}",
        oidc_core::error::chain(&e)
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_work_and_never_show_in_errors() {
    let redis = RedisServer::start_with_args(&["--requirepass", "hunter2-secret"]).await;
    // Password from the flag.
    let mut s = settings(&redis.url);
    s.password = Some("hunter2-secret".into());
    let store = RedisStore::connect(s).await.unwrap();
    store
        .ping()
        .await
        .expect("authenticated by --redis-password");
    // Password in the URL.
    let in_url = format!("redis://:hunter2-secret@127.0.0.1:{}", redis.port);
    let store = RedisStore::connect(settings(&in_url)).await.unwrap();
    store.ping().await.expect("authenticated by the URL");
    assert!(!format!("{store:?}").contains("hunter2"));

    // Wrong password: unavailable, and neither password is in the message.
    let wrong = format!("redis://:wrong-pass-xyz@127.0.0.1:{}", redis.port);
    let store = RedisStore::connect(settings(&wrong)).await.unwrap();
    let e = store.ping().await.unwrap_err();
    let text = oidc_core::error::chain(&e);
    assert!(matches!(e, StoreError::Unavailable { .. }), "{text}");
    assert!(
        !text.contains("wrong-pass-xyz") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("***"), "{text}");

    // Redis down with a password in the URL: same.
    let mut down = RedisServer::start().await;
    down.stop().await;
    let url = format!("redis://user:hunter2-secret@127.0.0.1:{}", down.port);
    let store = RedisStore::connect(settings(&url)).await.unwrap();
    let text = oidc_core::error::chain(&store.ping().await.unwrap_err());
    assert!(!text.contains("hunter2"), "{text}");

    // Unusable settings are refused at connect, without the password either.
    let e = RedisStore::connect(settings("http://:hunter2-secret@x"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Config { .. }));
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

/// Three masters on free ports, slots split between them, all in one cluster.
struct Cluster {
    nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_cluster() -> Cluster {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir =
        std::env::temp_dir().join(format!("oidc-authz-cluster-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let file = dir.join(format!("nodes-{i}.conf"));
        nodes.push(
            RedisServer::start_with_args(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                file.to_str().unwrap(),
                "--cluster-node-timeout",
                "2000",
            ])
            .await,
        );
    }
    for (node, (first, last)) in nodes.iter().zip([(0, 5460), (5461, 10922), (10923, 16383)]) {
        let mut c = raw(&node.url).await;
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(first)
            .arg(last)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let mut first = raw(&nodes[0].url).await;
    for node in &nodes[1..] {
        let _: () = redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(node.port)
            .query_async(&mut first)
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    'wait: loop {
        assert!(Instant::now() < deadline, "the cluster did not form");
        tokio::time::sleep(Duration::from_millis(100)).await;
        for node in &nodes {
            let mut c = raw(&node.url).await;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut c)
                .await
                .unwrap();
            if !(info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")) {
                continue 'wait;
            }
        }
        break;
    }
    Cluster { nodes, dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_sessions_revocation_locks_and_jti() {
    let cluster = start_cluster().await;
    let connect = || async {
        let mut s = RedisSettings::cluster([cluster.nodes[0].url.clone()]);
        s.timeout = Duration::from_secs(2);
        RedisStore::connect(s).await.expect("connect")
    };
    let (a, b) = (connect().await, connect().await);
    let ttl = Duration::from_secs(600);

    // Sessions spread over the three nodes.
    let mut tickets = Vec::new();
    for i in 0..12 {
        let t = Ticket::generate();
        let sub = if i % 3 == 0 { "bob" } else { "alice" };
        a.save(&t, &session(sub, Some(&format!("kc-{i}"))), ttl)
            .await
            .unwrap();
        tickets.push((t, sub));
    }
    let mut per_node = Vec::new();
    for node in &cluster.nodes {
        let mut c = raw(&node.url).await;
        let n: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
        per_node.push(n);
    }
    assert!(
        per_node.iter().all(|n| *n > 0),
        "keys on every node: {per_node:?}"
    );
    for (t, sub) in &tickets {
        assert_eq!(b.load(t).await.unwrap().unwrap().principal.subject, *sub);
    }

    assert_eq!(b.revoke_sid("kc-1").await.unwrap(), 1);
    assert_eq!(a.load(&tickets[1].0).await.unwrap(), None);
    assert_eq!(b.revoke_sub("alice").await.unwrap(), 7);
    for (t, sub) in &tickets {
        assert_eq!(a.load(t).await.unwrap().is_some(), *sub == "bob");
    }
    assert!(matches!(
        a.save(&Ticket::generate(), &session("alice", None), ttl)
            .await,
        Err(StoreError::Revoked)
    ));
    assert!(a.is_revoked(None, "alice", now() - 10).await.unwrap());

    let held = a.try_lock("refresh:1", ttl).await.unwrap().expect("free");
    assert!(b.try_lock("refresh:1", ttl).await.unwrap().is_none());
    assert!(held.release().await.unwrap());
    assert!(a.remember_jti("jti-1", ttl).await.unwrap());
    assert!(!b.remember_jti("jti-1", ttl).await.unwrap());
    a.put_refresh_result(&[3; 32], b"sealed", ttl)
        .await
        .unwrap();
    assert_eq!(
        b.get_refresh_result(&[3; 32]).await.unwrap().as_deref(),
        Some(b"sealed".as_slice())
    );
}

/// `INFO replication` of the server behind `c`, as `field -> value` (`role`, `master_repl_offset`,
/// `slave0`, ...).
async fn replication_info(
    c: &mut redis::aio::MultiplexedConnection,
) -> std::collections::HashMap<String, String> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_mode_follows_a_failover() {
    // Reserved for the whole run, below the ephemeral range: once the master is stopped, no
    // other server (of this test process or another) can take its port over and answer in its
    // place.
    let mut master = RedisServer::start_on(test_support::port_below_ephemeral_range(), &[]).await;
    let replica =
        RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &master.port.to_string()]).await;
    let mut m = raw(&master.url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = replication_info(&mut m).await;
        if info.get("connected_slaves").map(String::as_str) == Some("1")
            && info
                .get("slave0")
                .is_some_and(|s| s.contains("state=online"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not attach to the master within 30 s: {info:?}\n--- replica ---\n{}",
            replica.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sentinel = RedisServer::start_sentinel("mymaster", master.port).await;

    let mut s = RedisSettings::sentinel("mymaster", [sentinel.url.clone()]);
    s.timeout = Duration::from_secs(1);
    let store = RedisStore::connect(s).await.unwrap();
    let ticket = Ticket::generate();
    let sess = session("alice", Some("kc-1"));
    store
        .save(&ticket, &sess, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(store.load(&ticket).await.unwrap(), Some(sess.clone()));

    // Redis replicates asynchronously: a write the master acknowledged may not be on the replica
    // yet, and a failover then loses it (that is Redis, not the store). Right after the initial
    // sync it is even the rule: `state=online` is reported while the master still holds the
    // command stream back until the replica's first `REPLCONF ACK` (up to a second). So wait
    // until the replica holds every key the master holds, the session among them: a session
    // that is then missing after the failover was lost by the store, not by replication.
    // (`WAIT` would only count writes made on its own connection, and this one made none.)
    let on_master = all_keys(&master.url).await;
    assert!(
        on_master.iter().any(|k| k.ends_with(&ticket.id_hex())),
        "the session is not on the master: {on_master:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let on_replica = all_keys(&replica.url).await;
        if on_replica == on_master {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not receive the master's keys within 30 s: master {on_master:?}, \
             replica {on_replica:?}\n--- replica ---\n{}",
            replica.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The master dies; Sentinel promotes the replica; the same store follows on its own.
    let master_port = master.port;
    master.stop().await;
    // Keep the dead master's port taken (a listener that never answers) for the rest of the test.
    let _dead_master =
        std::net::TcpListener::bind(("127.0.0.1", master_port)).unwrap_or_else(|e| {
            panic!("cannot hold the dead master's port {master_port}: {e} (who took it?)")
        });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.load(&ticket).await {
            Ok(Some(found)) => {
                assert_eq!(found, sess);
                break;
            }
            Ok(None) => {
                // Say which server answered "no such session" and what it holds.
                let mut st = raw(&sentinel.url).await;
                let named: Vec<String> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg("mymaster")
                    .query_async(&mut st)
                    .await
                    .unwrap_or_default();
                let mut r = raw(&replica.url).await;
                panic!(
                    "session lost in the failover: Sentinel names {named:?} as the master; the \
                     replica (port {}) has {:?} and keys {:?}\n--- sentinel ---\n{}\n--- \
                     replica ---\n{}",
                    replica.port,
                    replication_info(&mut r).await,
                    all_keys(&replica.url).await,
                    sentinel.log_tail(),
                    replica.log_tail()
                );
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no failover within 30 s: {}\n--- sentinel ---\n{}",
                    oidc_core::error::chain(&e),
                    sentinel.log_tail()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Writes go to the new master.
    let t2 = Ticket::generate();
    store
        .save(&t2, &session("bob", None), Duration::from_secs(60))
        .await
        .expect("write after failover");
    let mut r = raw(&replica.url).await;
    assert_eq!(
        replication_info(&mut r)
            .await
            .get("role")
            .map(String::as_str),
        Some("master"),
        "the replica was promoted"
    );
    assert!(
        all_keys(&replica.url)
            .await
            .iter()
            .any(|k| k.ends_with(&t2.id_hex())),
        "the write after the failover landed on the new master"
    );
}

// A throwaway CA and server certificate (127.0.0.1, localhost; valid 2000 to 2100) for the TLS
// tests, made with openssl; the key protects nothing.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBeTCCASCgAwIBAgICEAAwCgYIKoZIzj0EAwIwIzEhMB8GA1UEAwwYb2lkYy1h\ndXRoeiB0ZXN0IFJlZGlzIENBMCAXDTAwMDEwMTAwMDAwMFoYDzIxMDAwMTAxMDAw\nMDAwWjAjMSEwHwYDVQQDDBhvaWRjLWF1dGh6IHRlc3QgUmVkaXMgQ0EwWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAASTaxyJCvK1QjgmuJOD01nlSQAOYvZsNJuokXDL\nQdVXod8EtZIhPiOH1mCmU8YbV7pHCn7yXo8RL4zfbtctQGSxo0IwQDAPBgNVHRMB\nAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQU6SfzhL2ZPsj4pjPm\n5egFb9rEFNkwCgYIKoZIzj0EAwIDRwAwRAIgcpCpimzMQ9xgqTxrB5avXfm5PcFK\nXTa16GawU2uI8gkCIExN+0MZG9w1KXyeAyMBug4c4KC99n2KDMbYzFqShd2i\n-----END CERTIFICATE-----\n";
const TEST_SERVER_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBuDCCAV+gAwIBAgICEAEwCgYIKoZIzj0EAwIwIzEhMB8GA1UEAwwYb2lkYy1h\ndXRoeiB0ZXN0IFJlZGlzIENBMCAXDTAwMDEwMTAwMDAwMFoYDzIxMDAwMTAxMDAw\nMDAwWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjOPQMB\nBwNCAASRJ4Nja7i1e7/ig8cpkRcXPwVRYjE7etvI/2RY+60qwuVPwmtI+KtA/C7S\niZqJeYtKKOXcSu3Ce+RqECvdTAvRo4GPMIGMMBoGA1UdEQQTMBGHBH8AAAGCCWxv\nY2FsaG9zdDAJBgNVHRMEAjAAMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggr\nBgEFBQcDATAfBgNVHSMEGDAWgBTpJ/OEvZk+yPimM+bl6AVv2sQU2TAdBgNVHQ4E\nFgQUXrNT6ifYo/dc858jBxMjjurACocwCgYIKoZIzj0EAwIDRwAwRAIgO28xyicE\n5ipjyLo7Zlbo2nZESiMpr/nDlG9x2egVO6ECIDU0Lej5Q5q4ncamqpuvdfw0See7\n0uw2bx090g9YiOds\n-----END CERTIFICATE-----\n";
const TEST_SERVER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg1UDWQsLUo58ZWJpd\nXm3GS32T7+dZYREdsb5STHdS2jqhRANCAASRJ4Nja7i1e7/ig8cpkRcXPwVRYjE7\netvI/2RY+60qwuVPwmtI+KtA/C7SiZqJeYtKKOXcSu3Ce+RqECvdTAvR\n-----END PRIVATE KEY-----\n";

/// A Redis with a plain port ([`RedisServer::url`]) and a TLS port; the files live in `dir`.
async fn start_tls_redis(dir: &std::path::Path) -> (RedisServer, u16) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, pem) in [
        ("ca.pem", TEST_CA_PEM),
        ("server.pem", TEST_SERVER_CERT_PEM),
        ("server.key", TEST_SERVER_KEY_PEM),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    let tls_port = test_support::free_port();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let redis = RedisServer::start_with_args(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
    ])
    .await;
    (redis, tls_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file_or_without_verification() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("oidc-authz-redis-tls-{}", std::process::id()));
    let (_redis, tls_port) = start_tls_redis(&dir).await;
    let url = format!("rediss://127.0.0.1:{tls_port}");

    // --redis-ca-path: verified against the test CA.
    let mut s = settings(&url);
    s.ca_path = Some(dir.join("ca.pem"));
    let store = RedisStore::connect(s).await.unwrap();
    let t = Ticket::generate();
    store
        .save(&t, &session("alice", None), Duration::from_secs(60))
        .await
        .expect("save over TLS");
    assert!(store.load(&t).await.unwrap().is_some());

    // The system trust store does not know the test CA: refused.
    let store = RedisStore::connect(settings(&url)).await.unwrap();
    let e = store.ping().await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");

    // --redis-insecure-skip-tls-verify: accepted without verification.
    let mut s = settings(&url);
    s.insecure_skip_tls_verify = true;
    let store = RedisStore::connect(s).await.unwrap();
    assert!(store.load(&t).await.unwrap().is_some());

    // A CA with a plain redis:// URL is a configuration mistake.
    let mut s = settings(&format!("redis://127.0.0.1:{tls_port}"));
    s.ca_path = Some(dir.join("ca.pem"));
    assert!(matches!(
        RedisStore::connect(s).await,
        Err(StoreError::Config {
            setting: "ca_path",
            ..
        })
    ));
    // An unreadable CA file too.
    let mut s = settings(&url);
    s.ca_path = Some(dir.join("missing.pem"));
    assert!(matches!(
        RedisStore::connect(s).await,
        Err(StoreError::Config {
            setting: "ca_path",
            ..
        })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_keeps_the_connection_alive() {
    // This Redis closes connections idle for 1 s.
    let redis = RedisServer::start_with_args(&["--timeout", "1"]).await;
    let connections = || async {
        let mut c = raw(&redis.url).await;
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut c)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let mut s = settings(&redis.url);
    s.idle_timeout = Some(Duration::from_millis(600));
    let store = RedisStore::connect(s).await.unwrap();
    store.ping().await.unwrap();
    let before = connections().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    store.ping().await.unwrap();
    // Only our two INFO connections are new: the store's connection was never dropped.
    assert_eq!(connections().await, before + 1);
}
