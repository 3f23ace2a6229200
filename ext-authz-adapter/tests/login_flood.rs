//! A login flood on one replica, in this process (its own test binary: it keeps both cores
//! busy for about a minute in a debug build, and nothing else should share them): a client
//! repeats `<prefix>/start` and a callback with that state, its flow cookie and a made-up
//! code, more often than the used states a replica remembers; the provider is the rogue
//! provider of `test_support` (a real one cannot answer 100 000 token requests in a test's
//! time). Afterwards a real login on the same engine succeeds.

mod common;

use common::{CLIENT_ID, CLIENT_SECRET, HOST, location, set_cookies};
use test_support::rogue::RogueProvider;

/// A request to the in-process engine `e`: `GET target` on [`HOST`] with `cookie`.
async fn engine_get(
    e: &oidc_core::Engine,
    target: &str,
    cookie: &str,
) -> http::Response<bytes::Bytes> {
    let mut req = http::Request::get(target)
        .header("host", HOST)
        .header("accept", "text/html");
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let (parts, ()) = req.body(()).expect("request").into_parts();
    match e.check(&parts).await {
        oidc_core::Decision::Deny(deny) => deny.response,
        oidc_core::Decision::Allow(_) => panic!("GET {target} was allowed, not answered"),
    }
}

/// `<prefix>/start` on `e`: the authorize URL, its state, and the flow cookie (`name=value`).
async fn start_login(e: &oidc_core::Engine) -> (String, String, String) {
    let r = engine_get(e, "/oauth2/start?rd=/", "").await;
    assert_eq!(r.status(), 302, "start: {:?}", r.body());
    let authorize = location(r.headers());
    let state = url::Url::parse(&authorize)
        .expect("authorize URL")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state");
    let cookie = set_cookies(r.headers())
        .into_iter()
        .find(|c| c.starts_with("auth_csrf_"))
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .expect("a flow cookie");
    (authorize, state, cookie)
}

/// A client that repeats `<prefix>/start` and then `<prefix>/callback` with that state, its
/// flow cookie and a made-up code, more often than the used states a replica remembers
/// (100 000): a real login on the same replica still succeeds afterwards. Each bogus
/// callback costs exactly one token request, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bogus_callbacks_never_locks_real_logins_out() {
    const PAIRS: usize = 100_500;
    const CLIENTS: usize = 16;
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let e = common::engine(&idp.issuer, &[]).await;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let e = e.clone();
            tokio::spawn(async move {
                for _ in (client..PAIRS).step_by(CLIENTS) {
                    let (_, state, cookie) = start_login(&e).await;
                    let callback = format!("/oauth2/callback?state={state}&code=x");
                    let r = engine_get(&e, &callback, &cookie).await;
                    assert!(
                        r.status().is_client_error() || r.status().is_server_error(),
                        "a made-up code was accepted: {}",
                        r.status()
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a flooding client");
    }
    assert_eq!(
        idp.token_requests(),
        PAIRS,
        "one token request per bogus callback"
    );

    // A real login: start, the provider's redirect back with a real code, the callback.
    let (authorize, _, flow) = start_login(&e).await;
    let at_provider = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(&authorize)
        .send()
        .await
        .expect("the provider's authorize endpoint");
    let callback = url::Url::parse(&location(at_provider.headers())).expect("callback URL");
    let target = format!(
        "{}?{}",
        callback.path(),
        callback.query().unwrap_or_default()
    );
    let r = engine_get(&e, &target, &flow).await;
    assert_eq!(
        r.status(),
        302,
        "the real login after the flood: {}",
        String::from_utf8_lossy(r.body())
    );
    assert!(
        set_cookies(r.headers())
            .iter()
            .any(|c| c.starts_with("auth=") && !c.starts_with("auth=;")),
        "a session cookie: {:?}",
        set_cookies(r.headers())
    );
}
