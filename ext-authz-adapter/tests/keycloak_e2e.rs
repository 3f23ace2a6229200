//! The seed's stack for real: a browser (a cookie-jar HTTP client, or headless Chromium) talks
//! to Envoy 1.40 configured as Istio's ingress gateway renders an `envoyExtAuthzHttp` /
//! `envoyExtAuthzGrpc` provider ([`EnvoyConfig::seed`]), which asks the `ext-authz-adapter`
//! binary (started with the seed's Deployment args), which logs the user in at Keycloak 26
//! (realm `mytest` of `deploy/keycloak`) and lets the request through to an upstream (nginx in
//! the seed; here a small hyper server that records what it receives).
//!
//! - HTTP level, ext_authz over HTTP and over gRPC: login on Keycloak's real login form; the
//!   upstream gets `X-Auth-Request-User/-Email/-Preferred-Username/-Groups` and an
//!   `Authorization: Bearer` ID token that this test validates itself against the realm's JWKS
//!   (signature, `iss`, `aud=nginx`); forged identity headers (`X-Auth-Request-User`,
//!   `X_Auth_Request_User`) never reach it; sign-out is Keycloak 18+ RP-initiated logout
//!   (`id_token_hint`, `post_logout_redirect_uri`) and ends both sessions (checked with the admin
//!   API, and by Keycloak showing its login form again).
//! - Chromium: the login through Keycloak's page, and through the brokered realm `upstream-idp`
//!   (carol): once by clicking the provider's button, once with `kc_idp_hint=upstream`.
//! - The same HTTP-level flow against node oidc-provider, the second (OpenID-certified) IdP.
//!
//! Keycloak is the one `cargo xtask test` starts (shared by every test); each test has its own
//! adapter, Envoy and upstream on free ports. Nothing is skipped: a missing component fails the
//! test with a message saying how to get it (`cargo xtask test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use envoy_bootstrap::{AuthzTarget, EnvoyConfig};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Map, Value};
use test_support::browser::{Browser, host_rules};
use test_support::envoy::Envoy;
use test_support::keycloak::{
    ALICE, BOB, CAROL, DAVE, IDP_ALIAS, Keycloak, REALM, TestUser, UPSTREAM_REALM, keycloak,
    login_at_keycloak, logout_at_keycloak,
};
use test_support::{ClientSpec, OidcProvider, free_port, login_at_provider, logout_at_provider};
use url::Url;

/// The seed's protected host.
const APP_HOST: &str = "nginx.example.com";
/// The seed's client.
const CLIENT_ID: &str = common::CLIENT_ID;
/// Where Keycloak sends the browser after the RP-initiated logout (a redirect URI of the
/// realm's `nginx` client, so an allowed post-logout redirect URI).
const SIGNED_OUT: &str = "/signed-out";

// ---------------------------------------------------------------------------------------------
// The upstream: records every request's headers, answers with a page showing the identity.

/// One request as the upstream saw it: header name (lower case) -> values.
type Headers = BTreeMap<String, Vec<String>>;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, Headers)>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The last request: its path and headers.
    fn last(&self) -> (String, Headers) {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream received a request")
    }
}

/// Starts the upstream on a free port.
async fn upstream() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let mut headers = Headers::new();
                    for (name, value) in req.headers() {
                        headers
                            .entry(name.as_str().to_owned())
                            .or_default()
                            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
                    }
                    let path = req.uri().to_string();
                    let email = headers
                        .get("x-auth-request-email")
                        .map(|v| v.join(","))
                        .unwrap_or_else(|| "nobody".to_owned());
                    log.0.lock().unwrap().push((path.clone(), headers));
                    let body = format!(
                        "<!doctype html><title>upstream</title>\
                         <h1>Hello from the upstream</h1><p id=\"email\">{email}</p>\
                         <p id=\"path\">{path}</p>"
                    );
                    async move {
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "text/html; charset=utf-8")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

// ---------------------------------------------------------------------------------------------
// The adapter: the real binary, with the seed's args.

/// A running `ext-authz-adapter`, killed when dropped (printing its log if the test failed).
struct Adapter {
    bound: common::Bound,
    _process: common::AdapterProcess,
}

impl Adapter {
    /// Starts the binary with the seed's args ([`common::seed_args`]) for `issuer` plus
    /// `extra`, the client secret in `OAUTH2_PROXY_CLIENT_SECRET` as in the seed's Deployment,
    /// and (`grpc`) a gRPC server, each on a port of its own choosing (read back from its log:
    /// Envoy's configuration is written afterwards); waits until `/ready` (discovery done).
    async fn start(issuer: &str, client_secret: &str, grpc: bool, extra: &[String]) -> Adapter {
        let addresses = std::iter::once("--http-address=127.0.0.1:0".to_owned())
            .chain(grpc.then(|| "--grpc-address=127.0.0.1:0".to_owned()));
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let args = common::seed_args(issuer, addresses, &extra);
        let mut process = common::AdapterProcess::spawn(
            "behind Envoy",
            args,
            &[
                ("OAUTH2_PROXY_CLIENT_ID", CLIENT_ID),
                ("OAUTH2_PROXY_CLIENT_SECRET", client_secret),
            ],
            common::Log::default(),
        );
        // Both listeners are bound once it has logged them (the gRPC one accepts from then on).
        let bound = process.bound().await;
        process.wait_for(bound.http, "/ready").await;
        Adapter {
            bound,
            _process: process,
        }
    }

    /// Where Envoy asks: the HTTP port, or the gRPC port in gRPC mode.
    fn target(&self) -> AuthzTarget {
        let timeout = Duration::from_secs(10);
        match self.bound.grpc {
            Some(addr) => AuthzTarget::Grpc { addr, timeout },
            None => AuthzTarget::Http {
                addr: self.bound.http,
                timeout,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One stack: upstream + adapter + Envoy as the gateway.

/// How Envoy calls the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Http,
    Grpc,
}

struct Stack {
    /// `http://nginx.example.com:<Envoy's port>`.
    base: String,
    seen: Seen,
    // Dropped in this order: Envoy first.
    envoy: Envoy,
    _adapter: Adapter,
}

impl Stack {
    /// The adapter for `issuer` (seed args + `extra`), the upstream, and Envoy rendered by
    /// [`EnvoyConfig::seed`] in `mode` on `port` (0: Envoy picks one), with `idp` as the
    /// unprotected identity provider host.
    async fn start(
        mode: Mode,
        issuer: &str,
        client_secret: &str,
        idp: SocketAddr,
        port: u16,
        extra: &[String],
    ) -> Stack {
        let (app, seen) = upstream().await;
        let adapter = Adapter::start(issuer, client_secret, mode == Mode::Grpc, extra).await;
        let config = EnvoyConfig::seed(
            SocketAddr::from(([127, 0, 0, 1], port)),
            adapter.target(),
            app,
            idp,
        );
        let envoy = Envoy::start(&config.render()).await;
        let base = format!("http://{APP_HOST}:{}", envoy.listener().port());
        Stack {
            base,
            seen,
            envoy,
            _adapter: adapter,
        }
    }

    /// A stack for the shared Keycloak: the issuer's host name mapped to 127.0.0.1 for the
    /// adapter, RP-initiated logout on, the identity headers on.
    async fn keycloak(kc: &Keycloak, mode: Mode, extra: &[&str]) -> Stack {
        let mut args = vec![
            format!("--resolve={}=127.0.0.1", kc.host()),
            "--oidc-rp-initiated-logout=true".to_owned(),
            "--set-xauthrequest=true".to_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Stack::start(mode, &kc.issuer, &kc.client_secret, kc.addr, 0, &args).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The callback URL through the gateway: the `redirect_uri` the provider must see.
    fn redirect_uri(&self) -> String {
        format!("{}/oauth2/callback", self.base)
    }
}

/// A browser-like HTTP client: a cookie jar, no automatic redirects, the seed's host names
/// mapped to 127.0.0.1 (each URL's own port).
fn http_browser(kc: Option<&Keycloak>) -> (reqwest::Client, Arc<Jar>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let jar = Arc::new(Jar::default());
    let builder = match kc {
        Some(kc) => kc.client_builder(),
        None => reqwest::Client::builder().timeout(Duration::from_secs(30)),
    };
    let client = builder
        .resolve(APP_HOST, SocketAddr::from(([127, 0, 0, 1], 0)))
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (client, jar)
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// Whether a cookie is (a chunk of) the session cookie `auth` (`auth`, `auth_0`, `auth_1`...).
fn is_session_cookie(name: &str) -> bool {
    name == "auth"
        || name
            .strip_prefix("auth_")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The names of the cookies the jar sends to `url`.
fn cookie_names(jar: &Jar, url: &str) -> Vec<String> {
    let url: Url = url.parse().unwrap();
    jar.cookies(&url)
        .map(|h| {
            h.to_str()
                .unwrap()
                .split("; ")
                .filter_map(|p| p.split('=').next())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn query(url: &str) -> BTreeMap<String, String> {
    Url::parse(url)
        .unwrap_or_else(|e| panic!("{url:?}: {e}"))
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The HTTP-level flow, shared by the Keycloak (HTTP and gRPC mode) and node provider tests.

/// What the upstream must receive for the logged-in user.
struct Expected {
    /// `X-Auth-Request-User`: the `sub` claim.
    sub: String,
    email: String,
    preferred_username: String,
    groups: Vec<String>,
    /// The provider's issuer: `iss` of the ID token.
    issuer: String,
}

/// An unauthenticated navigation through Envoy: 302 to the provider's authorization endpoint
/// with the adapter's login parameters; returns that URL. Forged identity headers do not help,
/// and nothing reaches the upstream.
async fn start_login(client: &reqwest::Client, stack: &Stack, path: &str, issuer: &str) -> String {
    let before = stack.seen.count();
    let r = client
        .get(stack.url(path))
        .header("accept", "text/html")
        .header("x-auth-request-user", "mallory")
        .header("x-auth-request-email", "mallory@evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        302,
        "a navigation without a session goes to the provider; Envoy log:\n{}",
        stack.envoy.log_tail()
    );
    let authorize = location(&r);
    assert!(authorize.starts_with(issuer), "{authorize}");
    let q = query(&authorize);
    assert_eq!(q["client_id"], CLIENT_ID, "{authorize}");
    assert_eq!(q["response_type"], "code", "{authorize}");
    assert_eq!(q["redirect_uri"], stack.redirect_uri(), "{authorize}");
    assert_eq!(q["code_challenge_method"], "S256", "{authorize}");
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "{authorize}");
    for param in ["state", "nonce", "code_challenge"] {
        assert!(!q[param].is_empty(), "{param} in {authorize}");
    }
    assert!(
        set_cookies(&r).iter().any(|c| c.starts_with("auth_csrf_")),
        "the login flow cookie passes Envoy's deny response: {:?}",
        r.headers()
    );
    assert_eq!(stack.seen.count(), before, "nothing reached the upstream");
    authorize
}

/// The provider's redirect back, through Envoy: the adapter sets the session cookie and sends
/// the browser back to `path`.
async fn finish_login(
    client: &reqwest::Client,
    jar: &Jar,
    stack: &Stack,
    callback: &str,
    path: &str,
) {
    assert!(
        callback.starts_with(&format!("{}?", stack.redirect_uri())),
        "the provider sends the browser back to the callback through the gateway: {callback}"
    );
    let r = client.get(callback).send().await.unwrap();
    let status = r.status();
    let back = location(&r);
    let cookies = set_cookies(&r);
    let body = r.text().await.unwrap_or_default();
    assert_eq!(
        status,
        302,
        "the callback ends with a redirect: {body}\nEnvoy log:\n{}",
        stack.envoy.log_tail()
    );
    assert_eq!(back, path);
    assert!(
        cookies
            .iter()
            .any(|c| is_session_cookie(c.split('=').next().unwrap())),
        "the session cookie reaches the browser through Envoy: {cookies:?}"
    );
    assert!(
        cookie_names(jar, &stack.base)
            .iter()
            .any(|n| is_session_cookie(n)),
        "{cookies:?}"
    );
}

/// A logged-in request with forged identity headers: it reaches the upstream with the real
/// identity only. Returns the Bearer token the upstream received.
async fn visit_as_user(
    client: &reqwest::Client,
    stack: &Stack,
    path: &str,
    expected: &Expected,
) -> String {
    let before = stack.seen.count();
    let r = client
        .get(stack.url(path))
        .header("accept", "text/html")
        .header("X-Auth-Request-User", "mallory")
        .header("X_Auth_Request_User", "mallory")
        .header("X-Auth-Request-Email", "mallory@evil.example")
        .header("x_auth_request_groups", "admins")
        // Proof that Envoy passes underscore headers at all (so their absence below means
        // the adapter removed the forged ones).
        .header("x_e2e_marker", "underscores-pass")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "logged in: through to the upstream; Envoy log:\n{}",
        stack.envoy.log_tail()
    );
    let page = r.text().await.unwrap();
    assert!(page.contains(&expected.email), "{page}");
    assert_eq!(stack.seen.count(), before + 1);
    let (seen_path, headers) = stack.seen.last();
    assert_eq!(seen_path, path);

    let one = |name: &str| -> String {
        let values = headers
            .get(name)
            .unwrap_or_else(|| panic!("the upstream did not receive {name}: {headers:#?}"));
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].clone()
    };
    assert_eq!(one("x-auth-request-user"), expected.sub, "{headers:#?}");
    assert_eq!(one("x-auth-request-email"), expected.email, "{headers:#?}");
    assert_eq!(
        one("x-auth-request-preferred-username"),
        expected.preferred_username,
        "{headers:#?}"
    );
    let mut groups: Vec<String> = one("x-auth-request-groups")
        .split(',')
        .map(str::to_owned)
        .collect();
    groups.sort();
    assert_eq!(groups, expected.groups, "{headers:#?}");
    assert_eq!(
        headers.get("x_e2e_marker").map(Vec::as_slice),
        Some(&["underscores-pass".to_owned()][..]),
        "Envoy passes other underscore headers: {headers:#?}"
    );
    for (name, values) in &headers {
        assert!(
            !values.iter().any(|v| v.contains("mallory")),
            "a forged {name} reached the upstream: {headers:#?}"
        );
        assert!(
            !name.starts_with("x_auth_request"),
            "{name} (underscore spelling) reached the upstream: {headers:#?}"
        );
    }
    one("authorization")
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("Authorization is not a Bearer token: {headers:#?}"))
        .to_owned()
}

/// Validates the ID token against the provider's JWKS (found through discovery) with
/// jsonwebtoken, independently of the adapter: signature, `iss`, `aud` = nginx, `exp`.
async fn validate_id_token(
    client: &reqwest::Client,
    token: &str,
    expected: &Expected,
) -> Map<String, Value> {
    let discovery: Value = client
        .get(format!(
            "{}/.well-known/openid-configuration",
            expected.issuer
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri").to_owned();
    let jwks: JwkSet = client
        .get(&jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_else(|e| panic!("{jwks_uri}: not a JWK set: {e}"));
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    let kid = header
        .kid
        .as_deref()
        .expect("the ID token names its key (kid)");
    let jwk = jwks
        .find(kid)
        .unwrap_or_else(|| panic!("key {kid} is not in {jwks_uri}"));
    let key = DecodingKey::from_jwk(jwk).expect("a usable JWK");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&expected.issuer]);
    validation.set_audience(&[CLIENT_ID]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("the Bearer token does not validate against {jwks_uri}: {e}"))
        .claims;
    assert_eq!(claims["sub"], expected.sub.as_str(), "{claims:?}");
    assert_eq!(claims["email"], expected.email.as_str(), "{claims:?}");
    assert!(
        claims
            .get("nonce")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty()),
        "an ID token (with the login's nonce), not an access token: {claims:?}"
    );
    claims
}

/// Sign-out through Envoy with RP-initiated logout: the local session cookies are cleared and
/// the browser goes to the provider's end_session_endpoint with `id_token_hint` (the session's
/// ID token) and `post_logout_redirect_uri` (the absolute `rd`), no `redirect_uri`. Returns that
/// URL.
async fn sign_out(
    client: &reqwest::Client,
    jar: &Jar,
    stack: &Stack,
    id_token: &str,
    end_session: &str,
) -> String {
    let r = client
        .get(stack.url(&format!("/oauth2/sign_out?rd=%2F{}", &SIGNED_OUT[1..])))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "Envoy log:\n{}", stack.envoy.log_tail());
    let url = location(&r);
    assert!(url.starts_with(end_session), "{url}");
    let q = query(&url);
    assert_eq!(q["id_token_hint"], id_token, "{url}");
    assert_eq!(
        q["post_logout_redirect_uri"],
        stack.url(SIGNED_OUT),
        "{url}"
    );
    assert_eq!(q["client_id"], CLIENT_ID, "{url}");
    assert!(
        !q.contains_key("redirect_uri"),
        "Keycloak 18+ wants no redirect_uri: {url}"
    );
    let cleared: Vec<String> = set_cookies(&r)
        .into_iter()
        .filter(|c| is_session_cookie(c.split('=').next().unwrap()))
        .collect();
    assert!(
        !cleared.is_empty() && cleared.iter().all(|c| c.contains("Max-Age=0")),
        "the session cookies are cleared: {:?}",
        set_cookies(&r)
    );
    assert!(
        !cookie_names(jar, &stack.base)
            .iter()
            .any(|n| is_session_cookie(n)),
        "no session cookie left in the jar"
    );
    url
}

/// The whole HTTP-level flow at the shared Keycloak as `user`, through Envoy in `mode`.
async fn keycloak_http_flow(mode: Mode, user: TestUser) {
    let kc = keycloak();
    let stack = Stack::keycloak(&kc, mode, &[]).await;
    let (client, jar) = http_browser(Some(&kc));
    let kc_user = kc
        .find_user(REALM, user.username)
        .await
        .unwrap_or_else(|| panic!("{} is not in realm {REALM}", user.username));
    let expected = Expected {
        sub: kc_user["id"].as_str().unwrap().to_owned(),
        email: user.email.to_owned(),
        preferred_username: user.username.to_owned(),
        groups: user.groups.iter().map(|g| (*g).to_owned()).collect(),
        issuer: kc.issuer.clone(),
    };

    // Login on Keycloak's real form, and back through Envoy.
    let path = "/some/page?x=1";
    let authorize = start_login(&client, &stack, path, &kc.endpoint("auth")).await;
    let callback = login_at_keycloak(&client, &authorize, user.username, user.password).await;
    finish_login(&client, &jar, &stack, &callback, path).await;

    // Through to the upstream with the real identity only; the Bearer token is Keycloak's.
    let id_token = visit_as_user(&client, &stack, path, &expected).await;
    let claims = validate_id_token(&client, &id_token, &expected).await;
    assert_eq!(claims["azp"], CLIENT_ID, "{claims:?}");
    assert_eq!(claims["preferred_username"], user.username, "{claims:?}");
    let sid = claims["sid"]
        .as_str()
        .expect("Keycloak's ID token has sid")
        .to_owned();
    let session_ids = |sessions: Vec<Value>| -> Vec<String> {
        sessions
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        session_ids(kc.user_sessions(REALM, user.username).await).contains(&sid),
        "Keycloak has the login's session {sid}"
    );

    // Sign-out: RP-initiated logout at Keycloak ends both sessions.
    let end_session = sign_out(&client, &jar, &stack, &id_token, &kc.endpoint("logout")).await;
    let back = logout_at_keycloak(&client, &end_session).await;
    assert_eq!(
        back,
        stack.url(SIGNED_OUT),
        "Keycloak sends the browser back to rd"
    );
    assert!(
        !session_ids(kc.user_sessions(REALM, user.username).await).contains(&sid),
        "Keycloak's session {sid} ended"
    );
    let seen = stack.seen.count();
    let r = client
        .get(&back)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the adapter's session ended too");
    let authorize = location(&r);
    assert!(authorize.starts_with(&kc.endpoint("auth")), "{authorize}");
    // Keycloak has no SSO session for this browser any more: its login form, not a redirect.
    let r = client.get(&authorize).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "Keycloak asks for a login again: {body}");
    assert!(
        body.contains("kc-form-login"),
        "Keycloak's login form: {body}"
    );
    assert_eq!(
        stack.seen.count(),
        seen,
        "nothing reached the upstream after sign-out"
    );
}

#[tokio::test]
async fn keycloak_login_through_envoy_http_mode() {
    keycloak_http_flow(Mode::Http, ALICE).await;
}

#[tokio::test]
async fn keycloak_login_through_envoy_grpc_mode() {
    keycloak_http_flow(Mode::Grpc, BOB).await;
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens from Keycloak (--skip-jwt-bearer-tokens).

/// The `WWW-Authenticate` header of `r` (empty when none).
fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn bearer_tokens_through_envoy(mode: Mode) {
    let kc = keycloak();
    let stack = Stack::keycloak(
        &kc,
        mode,
        &[
            "--skip-jwt-bearer-tokens=true",
            "--authorization-rule=^/admin/=role:admin",
        ],
    )
    .await;
    let alice = kc.access_token(REALM, &ALICE).await;
    let bob = kc.access_token(REALM, &BOB).await;
    let (client, _jar) = http_browser(Some(&kc));
    let call = |path: &str, token: &str| {
        client
            .get(stack.url(path))
            .header("accept", "application/json")
            .bearer_auth(token)
            .send()
    };

    // A valid token reaches the upstream with the user's identity and the token itself.
    let r = call("/api/things", &alice).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let (path, headers) = stack.seen.last();
    assert_eq!(path, "/api/things");
    assert_eq!(headers["x-auth-request-email"], ["alice@example.com"]);
    assert_eq!(headers["authorization"], [format!("Bearer {alice}")]);
    // Twice (the second from the validated-token cache), then the per-route rule.
    assert_eq!(call("/api/things", &alice).await.unwrap().status(), 200);
    assert_eq!(call("/admin/", &alice).await.unwrap().status(), 200);
    let seen = stack.seen.count();
    assert_eq!(
        call("/admin/", &bob).await.unwrap().status(),
        403,
        "bob lacks the admin role"
    );
    assert_eq!(call("/api/things", &bob).await.unwrap().status(), 200);

    // Dave's email is not verified: the login refuses him, and so does his bearer token.
    let dave = kc.access_token(REALM, &DAVE).await;
    let r = call("/api/things", &dave).await.unwrap();
    assert_eq!(r.status(), 401, "an unverified email in a bearer token");
    let challenge = www_authenticate(&r);
    assert!(challenge.contains("not verified"), "{challenge}");

    // A tampered token: 401 with the reason, nothing upstream.
    let mut forged = alice.clone().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let r = call("/api/things", &forged).await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = www_authenticate(&r);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // An opaque token: 401 as well.
    assert_eq!(
        call("/api/things", "not-a-jwt").await.unwrap().status(),
        401
    );
    assert_eq!(
        stack.seen.count(),
        seen + 1,
        "only bob's allowed call reached the upstream"
    );
}

#[tokio::test]
async fn keycloak_bearer_tokens_through_envoy_http_mode() {
    bearer_tokens_through_envoy(Mode::Http).await;
}

#[tokio::test]
async fn keycloak_bearer_tokens_through_envoy_grpc_mode() {
    bearer_tokens_through_envoy(Mode::Grpc).await;
}

// ---------------------------------------------------------------------------------------------
// Chromium.

/// Headless Chromium with the seed's host names mapped to 127.0.0.1.
async fn chromium() -> Browser {
    Browser::start(&host_rules(&[APP_HOST, "keycloak.example.com"])).await
}

/// The upstream's page for `email`, reached at `url`; the upstream got the identity headers.
async fn lands_on_upstream(browser: &Browser, stack: &Stack, url: &str, email: &str) {
    browser.wait_for_text(email, Duration::from_secs(30)).await;
    assert_eq!(browser.current_url().await, url);
    let (_, headers) = stack.seen.last();
    assert_eq!(headers["x-auth-request-email"], [email], "{headers:#?}");
    assert!(
        headers["authorization"][0].starts_with("Bearer ey"),
        "{headers:#?}"
    );
}

/// Opens `start` and waits until the browser is sent on to a page under `prefix`.
async fn goto_until(browser: &Browser, start: &str, prefix: &str) {
    browser.goto(start).await;
    browser
        .wait_for_url_prefix(prefix, Duration::from_secs(30))
        .await;
}

/// Fills in and submits the Keycloak login form the browser shows, as `user`.
async fn sign_in_on_keycloak_page(browser: &Browser, user: &TestUser) {
    browser.fill("#username", user.username).await;
    browser.fill("#password", user.password).await;
    browser.click("#kc-login").await;
}

#[tokio::test]
async fn chromium_logs_in_on_keycloaks_page() {
    let kc = keycloak();
    let stack = Stack::keycloak(&kc, Mode::Http, &[]).await;
    let browser = chromium().await;
    let start = stack.url("/");
    let mytest = format!("{}/", kc.realm_url(REALM));
    goto_until(&browser, &start, &mytest).await;
    sign_in_on_keycloak_page(&browser, &ALICE).await;
    lands_on_upstream(&browser, &stack, &start, ALICE.email).await;
    browser.close().await;
}

#[tokio::test]
async fn chromium_logs_in_through_the_brokered_realm() {
    let kc = keycloak();
    let upstream_realm = format!("{}/", kc.realm_url(UPSTREAM_REALM));

    // mytest's login page, then the "Upstream IdP" button (carol's first broker login creates
    // her in mytest, without a profile page).
    let stack = Stack::keycloak(&kc, Mode::Http, &[]).await;
    let browser = chromium().await;
    let start = stack.url("/");
    let mytest = format!("{}/", kc.realm_url(REALM));
    goto_until(&browser, &start, &mytest).await;
    browser.click(&format!("#social-{IDP_ALIAS}")).await;
    browser
        .wait_for_url_prefix(&upstream_realm, Duration::from_secs(30))
        .await;
    sign_in_on_keycloak_page(&browser, &CAROL).await;
    lands_on_upstream(&browser, &stack, &start, CAROL.email).await;
    browser.close().await;
    drop(stack);

    // kc_idp_hint=upstream (the seed's skip-provider-button intent): mytest's page is skipped.
    let hint = format!("--auth-request-param=kc_idp_hint={IDP_ALIAS}");
    let stack = Stack::keycloak(&kc, Mode::Http, &[hint.as_str()]).await;
    let (client, _) = http_browser(Some(&kc));
    let r = client.get(stack.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(query(&location(&r))["kc_idp_hint"], IDP_ALIAS);
    let browser = chromium().await;
    let start = stack.url("/hinted");
    goto_until(&browser, &start, &upstream_realm).await;
    sign_in_on_keycloak_page(&browser, &CAROL).await;
    lands_on_upstream(&browser, &stack, &start, CAROL.email).await;
    browser.close().await;
}

// ---------------------------------------------------------------------------------------------
// node oidc-provider, the second IdP.

#[tokio::test]
async fn node_oidc_provider_login_through_envoy() {
    // The provider registers exact redirect URIs: Envoy's port (the gateway's, which the
    // browser and so the callback URL use) is reserved before either starts.
    let port = free_port();
    let base = format!("http://{APP_HOST}:{port}");
    let secret = "node-provider-secret-for-e2e";
    let mut spec = ClientSpec::new(CLIENT_ID, secret, &format!("{base}/oauth2/callback"));
    spec.post_logout_redirect_uris = vec![format!("{base}{SIGNED_OUT}")];
    let idp = OidcProvider::start(vec![spec]).await;
    let idp_addr = SocketAddr::from(([127, 0, 0, 1], idp.port));
    let args = [
        "--oidc-rp-initiated-logout=true".to_owned(),
        "--set-xauthrequest=true".to_owned(),
        "--scope=openid email profile groups".to_owned(),
    ];
    let stack = Stack::start(Mode::Http, &idp.issuer, secret, idp_addr, port, &args).await;
    assert_eq!(stack.base, base);
    let (client, jar) = http_browser(None);
    let expected = Expected {
        sub: "alice".to_owned(),
        email: "alice@example.com".to_owned(),
        preferred_username: "alice".to_owned(),
        groups: vec!["alice-group".to_owned(), "users".to_owned()],
        issuer: idp.issuer.clone(),
    };

    let path = "/reports?year=2024";
    let authorize = start_login(&client, &stack, path, &idp.issuer).await;
    let callback = login_at_provider(&client, &authorize, "alice", "any-password").await;
    finish_login(&client, &jar, &stack, &callback, path).await;
    let id_token = visit_as_user(&client, &stack, path, &expected).await;
    validate_id_token(&client, &id_token, &expected).await;

    let discovery: Value = client
        .get(idp.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let end_session = discovery["end_session_endpoint"].as_str().unwrap();
    let url = sign_out(&client, &jar, &stack, &id_token, end_session).await;
    let back = logout_at_provider(&client, &url).await;
    assert_eq!(back, stack.url(SIGNED_OUT));
    let r = client
        .get(&back)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the adapter's session ended");
    assert!(location(&r).starts_with(&idp.issuer));
}
