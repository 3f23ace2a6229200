//! The real adapter binary against an identity provider that misbehaves on
//! purpose (`test_support::rogue::RogueProvider`): every hostile ID token or
//! callback is refused with a log line that says why, no session cookie is
//! set, and the user stays logged out; the legitimate variations (key
//! rotation, ES256, several audiences with `azp`) succeed.
//!
//! The tests read the adapter's log (stderr): [`common::AdapterProcess`] keeps it.

mod common;

use std::time::Duration;

use common::{AdapterProcess, Browser, CLIENT_ID, CLIENT_SECRET, HOST, Log, START_DEADLINE};
use common::{client, location, seed_args, set_cookies};
use test_support::rogue::{self, RogueProvider, Scenario};

/// The protected page every login starts from.
const PAGE: &str = "/private/page?x=1";
/// How long to wait for an expected log line: generous, the wait ends once it is there.
const LOG_WAIT: Duration = START_DEADLINE;

/// A running adapter whose log lines are kept.
struct Rp {
    base: String,
    port: u16,
    process: AdapterProcess,
}

impl Rp {
    /// Starts the adapter with the seed's args (as `common::Adapter` does),
    /// issuer `issuer`, plus `extra` (which replace defaults of the same flag), on a
    /// port of its own choosing (the rogue provider accepts any redirect URI).
    async fn start(issuer: &str, extra: &[&str]) -> Rp {
        let args = seed_args(issuer, ["--http-address=127.0.0.1:0".to_owned()], extra);
        let mut process = AdapterProcess::spawn(
            "against the rogue provider",
            args,
            &[("OAUTH2_PROXY_CLIENT_SECRET", CLIENT_SECRET)],
            Log::default(),
        );
        let http = process.bound().await.http;
        process.wait_for(http, "/ready").await;
        Rp {
            base: format!("http://{HOST}:{}", http.port()),
            port: http.port(),
            process,
        }
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn browser(&self) -> Browser {
        client(self.port())
    }

    /// The number of log lines so far: pass it to [`Rp::wait_log`] to look only after it.
    fn mark(&self) -> usize {
        self.process.log().mark()
    }

    fn log_since(&self, mark: usize) -> String {
        self.process.log().since(mark)
    }

    /// The first line after `mark` containing every needle, waiting up to [`LOG_WAIT`].
    async fn wait_log(&self, mark: usize, needles: &[&str]) -> Option<String> {
        self.process.log().wait_since(mark, needles, LOG_WAIT).await
    }
}

/// What the callback answered.
#[derive(Debug)]
struct Callback {
    url: String,
    status: u16,
    location: String,
    set_cookies: Vec<String>,
    body: String,
}

/// Protected page → 302 to the rogue's authorize endpoint → its 302 back: the callback URL.
async fn begin(c: &Browser, rp: &Rp, issuer: &str) -> String {
    let r = c
        .get(format!("{}{PAGE}", rp.base))
        .header("accept", "text/html")
        .send()
        .await
        .expect("protected page");
    assert_eq!(r.status(), 302, "not logged in: sent to the provider");
    let authorize = location(r.headers());
    assert!(
        authorize.starts_with(&format!("{issuer}/authorize?")),
        "{authorize}"
    );
    let r = c.get(&authorize).send().await.expect("authorize");
    assert_eq!(r.status(), 302, "the rogue provider redirects back at once");
    let callback = location(r.headers());
    assert!(
        callback.starts_with(&format!("{}/oauth2/callback?", rp.base)),
        "{callback}"
    );
    callback
}

async fn visit(c: &reqwest::Client, url: &str) -> Callback {
    let r = c.get(url).send().await.expect("callback");
    Callback {
        url: url.to_owned(),
        status: r.status().as_u16(),
        location: location(r.headers()),
        set_cookies: set_cookies(r.headers()),
        body: r.text().await.unwrap_or_default(),
    }
}

async fn login(c: &Browser, rp: &Rp, issuer: &str) -> Callback {
    let url = begin(c, rp, issuer).await;
    visit(c, &url).await
}

/// `Set-Cookie`s that would store a session (`auth` or a chunk `auth_N`) rather than delete one.
fn session_cookies_set(cb: &Callback) -> Vec<&String> {
    cb.set_cookies
        .iter()
        .filter(|c| {
            let name = c.split('=').next().unwrap_or_default();
            let is_session = name == "auth"
                || name
                    .strip_prefix("auth_")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            is_session && !c.contains("Max-Age=0")
        })
        .collect()
}

/// Everything that is wrong with `cb` as a refused login (empty: refused as it must be).
async fn refusal_problems(
    rp: &Rp,
    c: &Browser,
    cb: &Callback,
    mark: usize,
    why: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !(400..600).contains(&cb.status) {
        problems.push(format!(
            "callback answered {} (Location {:?}), not 4xx/5xx",
            cb.status, cb.location
        ));
    }
    let set: Vec<&str> = session_cookies_set(cb)
        .iter()
        .map(|c| c.split('=').next().unwrap_or_default())
        .collect();
    if !set.is_empty() {
        problems.push(format!("callback set the session cookie(s) {set:?}"));
    }
    for name in ["auth", "auth_0"] {
        if c.cookie(&rp.base, name).is_some() {
            problems.push(format!("the browser holds a session cookie {name}"));
        }
    }
    let r = c
        .get(format!("{}{PAGE}", rp.base))
        .header("accept", "text/html")
        .send()
        .await
        .expect("protected page");
    if r.status() == 200 {
        problems.push("the protected page answers 200 afterwards".to_owned());
    }
    let r = c
        .get(format!("{}/oauth2/auth", rp.base))
        .send()
        .await
        .expect("auth endpoint");
    if r.status() != 401 {
        problems.push(format!("/oauth2/auth answers {} afterwards", r.status()));
    }
    if rp.wait_log(mark, &["login refused", why]).await.is_none() {
        problems.push(format!(
            "no log line says \"login refused ... {why}\"; log since the attempt:\n{}",
            rp.log_since(mark)
        ));
    }
    problems
}

async fn assert_refused(rp: &Rp, c: &Browser, cb: &Callback, mark: usize, why: &str) {
    let problems = refusal_problems(rp, c, cb, mark, why).await;
    assert!(
        problems.is_empty(),
        "login via {} must be refused:\n- {}\nbody: {}",
        cb.url,
        problems.join("\n- "),
        cb.body
    );
}

/// A login that must succeed: 302 back to the page, session cookie set, check 200.
async fn assert_logged_in(rp: &Rp, c: &Browser, cb: &Callback) {
    assert_eq!(
        cb.status, 302,
        "login via {} must succeed; body: {}",
        cb.url, cb.body
    );
    assert_eq!(cb.location, PAGE, "back where the user started");
    assert!(
        !session_cookies_set(cb).is_empty(),
        "session cookie set: {:?}",
        cb.set_cookies
    );
    assert!(c.cookie(&rp.base, "auth").is_some(), "the jar holds auth");
    let r = c
        .get(format!("{}{PAGE}", rp.base))
        .header("accept", "text/html")
        .send()
        .await
        .expect("protected page");
    assert_eq!(r.status(), 200, "logged in: the check allows");
    assert_eq!(r.headers()["x-auth-request-email"], rogue::EMAIL);
    assert_eq!(r.headers()["x-auth-request-user"], rogue::SUBJECT);
}

/// Extra flags of every adapter here: identity headers to assert on.
const XAUTH: &str = "--set-xauthrequest=true";

/// Every hostile ID token, token response and callback that needs no JWKS
/// refetch, one after the other against one adapter; then a valid login on
/// the same adapter still works.
#[tokio::test]
async fn hostile_id_tokens_and_callbacks_are_refused() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;

    let cases: &[(Scenario, &str)] = &[
        (Scenario::AlgNone, "ID token algorithm none is not allowed"),
        (
            Scenario::Hs256ClientSecret,
            "ID token algorithm HS256 is not allowed",
        ),
        (
            Scenario::Hs256PublicKeyPem,
            "ID token algorithm HS256 is not allowed",
        ),
        (
            Scenario::Hs256PublicKeyJwk,
            "ID token algorithm HS256 is not allowed",
        ),
        (Scenario::BadSignature, "InvalidSignature"),
        (Scenario::WrongIss, "InvalidIssuer"),
        (Scenario::WrongAud, "InvalidAudience"),
        (Scenario::AudWithoutClient, "InvalidAudience"),
        (
            Scenario::AudSeveralWithoutAzp,
            "azp is missing although aud has several entries",
        ),
        (Scenario::AzpOther, "azp names another client"),
        (Scenario::Expired, "ExpiredSignature"),
        (Scenario::IatFuture, "iat is in the future"),
        (Scenario::NonceMissing, "nonce is missing"),
        (Scenario::NonceWrong, "nonce does not match the login"),
        (
            Scenario::AtHashWrong,
            "at_hash does not match the access token",
        ),
        (
            Scenario::EmailUnverified,
            "the email address is not verified (email_verified=false)",
        ),
        (
            Scenario::NoIdToken,
            "the token response carries no id_token",
        ),
        (
            Scenario::WrongState,
            "no login in progress matches this callback's state",
        ),
        // Last: its kid is not a signing key, so it may cost the one refetch.
        (
            Scenario::SignedWithEncryptionKey,
            "no signing key matches the ID token",
        ),
    ];

    let mut failures = Vec::new();
    for &(scenario, why) in cases {
        idp.set_scenario(scenario);
        let c = rp.browser();
        let mark = rp.mark();
        let tokens_before = idp.token_requests();
        let cb = login(&c, &rp, &idp.issuer).await;
        let mut problems = refusal_problems(&rp, &c, &cb, mark, why).await;
        if scenario == Scenario::WrongState && idp.token_requests() != tokens_before {
            problems.push("the code was redeemed although the state did not match".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{scenario:?}:\n  - {}\n  body: {}",
                problems.join("\n  - "),
                cb.body
            ));
        }
    }

    // A state made up by an attacker (no flow cookie of that name at all).
    idp.set_scenario(Scenario::Valid);
    let c = rp.browser();
    let url = begin(&c, &rp, &idp.issuer).await;
    let mut forged = url::Url::parse(&url).expect("callback url");
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged-state-0123456789abcdefghijklmnopqrstuvw".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let mark = rp.mark();
    let cb = visit(&c, forged.as_str()).await;
    let problems = refusal_problems(
        &rp,
        &c,
        &cb,
        mark,
        "no login in progress matches this callback's state",
    )
    .await;
    if !problems.is_empty() {
        failures.push(format!("forged state:\n  - {}", problems.join("\n  - ")));
    }

    assert!(
        failures.is_empty(),
        "{} hostile case(s) not refused as they must be:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The adapter is not simply broken: a valid login works on it.
    let c = rp.browser();
    let cb = login(&c, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &c, &cb).await;
}

#[tokio::test]
async fn a_valid_login_succeeds_without_refetching_keys() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;
    assert_eq!(idp.jwks_fetches(), 1, "keys fetched once at discovery");
    let c = rp.browser();
    let mark = rp.mark();
    let cb = login(&c, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &c, &cb).await;
    assert!(
        rp.wait_log(mark, &["login succeeded", rogue::SUBJECT])
            .await
            .is_some(),
        "{}",
        rp.log_since(mark)
    );
    assert_eq!(idp.jwks_fetches(), 1, "a known kid needs no refetch");
    assert_eq!(idp.token_requests(), 1);
}

#[tokio::test]
async fn an_es256_id_token_is_accepted() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    idp.set_scenario(Scenario::Es256);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;
    let c = rp.browser();
    let cb = login(&c, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &c, &cb).await;
    let header = idp
        .last_id_token()
        .and_then(|t| t.split('.').next().map(str::to_owned))
        .expect("an ID token was issued");
    assert!(header.starts_with("eyJhbGciOiJFUzI1NiI"), "ES256 header");
}

#[tokio::test]
async fn an_aud_array_with_us_and_azp_us_is_accepted() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    idp.set_scenario(Scenario::AudWithClientAndAzp);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;
    let c = rp.browser();
    let cb = login(&c, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &c, &cb).await;
}

#[tokio::test]
async fn an_unknown_kid_is_refused_after_exactly_one_jwks_refetch() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;
    assert_eq!(idp.jwks_fetches(), 1, "keys fetched once at discovery");
    idp.set_scenario(Scenario::UnknownKid);

    let c = rp.browser();
    let mark = rp.mark();
    let cb = login(&c, &rp, &idp.issuer).await;
    assert_refused(&rp, &c, &cb, mark, "no signing key matches the ID token").await;
    assert!(
        rp.wait_log(mark, &["refetching the JWKS", rogue::UNKNOWN_KID])
            .await
            .is_some(),
        "the refetch is logged"
    );
    assert_eq!(
        idp.jwks_fetches(),
        2,
        "exactly one refetch for an unknown kid"
    );

    // Another token with an unknown kid at once: refused without hammering the provider.
    let c = rp.browser();
    let mark = rp.mark();
    let cb = login(&c, &rp, &idp.issuer).await;
    assert_refused(&rp, &c, &cb, mark, "no signing key matches the ID token").await;
    assert_eq!(idp.jwks_fetches(), 2, "refetches are rate-limited");
}

#[tokio::test]
async fn key_rotation_between_two_logins_succeeds_with_one_refetch() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    // The old key is withdrawn at once: the adapter must pick up the new JWKS.
    idp.set_keep_old_keys(false);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;
    let first = rp.browser();
    let cb = login(&first, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &first, &cb).await;
    assert_eq!(idp.jwks_fetches(), 1);

    let old = idp.current_kid();
    let new = idp.rotate_key();
    assert!(!idp.published_kids().contains(&old));

    let second = rp.browser();
    let mark = rp.mark();
    let cb = login(&second, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &second, &cb).await;
    assert_eq!(idp.jwks_fetches(), 2, "exactly one refetch after rotation");
    assert!(
        rp.wait_log(mark, &["refetching the JWKS", &new])
            .await
            .is_some(),
        "{}",
        rp.log_since(mark)
    );

    // A third login with the same new key needs no further fetch, and the
    // first session (made under the old key) is still good.
    let third = rp.browser();
    let cb = login(&third, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &third, &cb).await;
    assert_eq!(idp.jwks_fetches(), 2);
    let r = first
        .get(format!("{}{PAGE}", rp.base))
        .header("accept", "text/html")
        .send()
        .await
        .expect("check");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_jwks_endpoint_down_during_rotation_refuses_the_login() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;
    let first = rp.browser();
    let cb = login(&first, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &first, &cb).await;

    idp.rotate_key();
    idp.set_jwks_down(true);
    let c = rp.browser();
    let mark = rp.mark();
    let cb = login(&c, &rp, &idp.issuer).await;
    assert_refused(
        &rp,
        &c,
        &cb,
        mark,
        "could not fetch the provider's signing keys: the identity provider answered 503",
    )
    .await;
    assert_eq!(idp.jwks_fetches(), 2, "one refetch was tried");
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;
    let victim = rp.browser();
    let callback = begin(&victim, &rp, &idp.issuer).await;
    let cb = visit(&victim, &callback).await;
    assert_logged_in(&rp, &victim, &cb).await;
    assert!(
        cb.set_cookies
            .iter()
            .any(|c| c.starts_with("auth_csrf_") && c.contains("Max-Age=0")),
        "the flow cookie is deleted on use: {:?}",
        cb.set_cookies
    );
    assert_eq!(idp.token_requests(), 1);

    // An attacker who saw the callback URL (Referer, logs, history) replays it
    // in their own browser. The rogue provider would redeem the code again.
    let attacker = rp.browser();
    let mark = rp.mark();
    let cb = visit(&attacker, &callback).await;
    assert_refused(
        &rp,
        &attacker,
        &cb,
        mark,
        "no login in progress matches this callback's state",
    )
    .await;

    // The same browser replays it (back button) after signing out: refused too.
    let r = victim
        .get(format!("{}/oauth2/sign_out", rp.base))
        .send()
        .await
        .expect("sign out");
    assert_eq!(r.status(), 302);
    assert!(victim.cookie(&rp.base, "auth").is_none(), "signed out");
    let mark = rp.mark();
    let cb = visit(&victim, &callback).await;
    assert_refused(
        &rp,
        &victim,
        &cb,
        mark,
        "no login in progress matches this callback's state",
    )
    .await;
    assert_eq!(
        idp.token_requests(),
        1,
        "our side refused the replays; the provider was never asked again"
    );
}

/// A replay of the whole callback request, flow cookie included (captured
/// from the victim's traffic before the browser dropped the cookie). The flow
/// cookie is stateless, so "single-use" only holds while the browser obeys
/// the deleting `Set-Cookie`; refusing this needs a server-side record of
/// consumed states (see the report of the hostile-provider work).
#[tokio::test]
async fn a_replayed_callback_with_its_flow_cookie_is_refused() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let rp = Rp::start(&idp.issuer, &[XAUTH]).await;
    let victim = rp.browser();
    let callback = begin(&victim, &rp, &idp.issuer).await;
    let flow_cookies: Vec<String> = victim
        .cookie_names(&rp.base)
        .into_iter()
        .filter(|n| n.starts_with("auth_csrf_"))
        .map(|n| format!("{n}={}", victim.cookie(&rp.base, &n).unwrap_or_default()))
        .collect();
    assert_eq!(flow_cookies.len(), 1, "one flow cookie");
    let cb = visit(&victim, &callback).await;
    assert_logged_in(&rp, &victim, &cb).await;

    let attacker = common::raw_client(rp.port());
    let mark = rp.mark();
    let r = attacker
        .get(&callback)
        .header("cookie", flow_cookies.join("; "))
        .send()
        .await
        .expect("replay");
    let replay = Callback {
        url: callback.clone(),
        status: r.status().as_u16(),
        location: location(r.headers()),
        set_cookies: set_cookies(r.headers()),
        body: r.text().await.unwrap_or_default(),
    };
    assert!(
        (400..600).contains(&replay.status) && session_cookies_set(&replay).is_empty(),
        "a verbatim replay minted a second session: {} {:?}",
        replay.status,
        replay.set_cookies
    );
    assert!(
        rp.wait_log(mark, &["login refused"]).await.is_some(),
        "{}",
        rp.log_since(mark)
    );
}

#[tokio::test]
async fn insecure_oidc_skip_nonce_accepts_a_missing_nonce() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    idp.set_scenario(Scenario::NonceMissing);
    let rp = Rp::start(&idp.issuer, &[XAUTH, "--insecure-oidc-skip-nonce"]).await;
    let c = rp.browser();
    let cb = login(&c, &rp, &idp.issuer).await;
    assert_logged_in(&rp, &c, &cb).await;
}
