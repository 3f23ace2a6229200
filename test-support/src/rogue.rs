//! A test-only OpenID provider of our own that misbehaves on purpose.
//!
//! [`RogueProvider`] is an in-process HTTP server on `127.0.0.1` (its own thread and tokio
//! runtime, so it keeps answering whatever the test's runtime is doing) with just enough of an
//! OpenID provider for a relying party's code flow:
//!
//! - `GET /.well-known/openid-configuration`: discovery;
//! - `GET /jwks`: the published keys (RS256 keys, one ES256 key, and an RSA-OAEP encryption key
//!   as Keycloak publishes one); counted ([`RogueProvider::jwks_fetches`]), and answering 503
//!   while [`RogueProvider::set_jwks_down`] is on;
//! - `GET /authorize`: no login form: answers 302 to the `redirect_uri` at once with a fresh
//!   `code` and the received `state`, remembering the `nonce`, `code_challenge` and
//!   `redirect_uri` of that code;
//! - `POST /token`: checks the client's credentials (client_secret_basic or client_secret_post),
//!   the `redirect_uri` and the PKCE S256 `code_verifier`, and answers with an ID token crafted
//!   per the current [`Scenario`]. **A code can be redeemed any number of times**: a replayed
//!   code is accepted here on purpose, so that only the relying party can refuse it;
//! - `GET|POST /end_session`: recorded ([`RogueProvider::end_session_requests`]), then a 302 to
//!   the `post_logout_redirect_uri` (with `state`) or a small page.
//!
//! The signing keys are fixtures under `test-support/assets/keys/` (public, test-only keys).
//!
//! ```no_run
//! use test_support::rogue::{RogueProvider, Scenario};
//! let rogue = RogueProvider::start("nginx", "nginx-client-secret");
//! // ... start the relying party with --oidc-issuer-url=rogue.issuer ...
//! rogue.set_scenario(Scenario::WrongAud);
//! // ... a login must now be refused ...
//! rogue.set_scenario(Scenario::Valid);
//! let new_kid = rogue.rotate_key();
//! assert_eq!(rogue.current_kid(), new_kid);
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::{Algorithm, EncodingKey};
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use url::Url;

/// What the provider does wrong (or right) in its next answers. Switch it at any time with
/// [`RogueProvider::set_scenario`]; it applies to the token endpoint's next ID token (and, for
/// [`Scenario::WrongState`], to the authorize endpoint's next redirect).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// A correct ID token: RS256 with the current key, every claim right.
    #[default]
    Valid,
    /// A correct ID token signed ES256 with the published P-256 key.
    Es256,
    /// `alg: none` and an empty signature.
    AlgNone,
    /// HS256, keyed with the client secret (which the relying party knows).
    Hs256ClientSecret,
    /// HS256, keyed with the bytes of the current key's public PEM (the classic
    /// RS256 → HS256 algorithm-confusion attack).
    Hs256PublicKeyPem,
    /// HS256, keyed with the bytes of the current key's JWK as the JWKS serves it.
    Hs256PublicKeyJwk,
    /// RS256 under the current `kid`, but signed with a key that is not published.
    BadSignature,
    /// RS256 signed with an unpublished key under a `kid` the JWKS never lists.
    UnknownKid,
    /// RS256 signed with the private half of the published *encryption* key
    /// (`use: enc`, `alg: RSA-OAEP`), under that key's `kid`.
    SignedWithEncryptionKey,
    /// `iss` names another issuer.
    WrongIss,
    /// `aud` names another client.
    WrongAud,
    /// `aud` is an array of other clients, without ours.
    AudWithoutClient,
    /// `aud` is `[ours, another]` and `azp` names us: valid.
    AudWithClientAndAzp,
    /// `aud` is `[ours, another]` and there is no `azp`.
    AudSeveralWithoutAzp,
    /// `azp` names another client (`aud` is ours).
    AzpOther,
    /// `exp` ten minutes in the past.
    Expired,
    /// `iat` ten minutes in the future.
    IatFuture,
    /// No `nonce` claim although the authorization request carried one.
    NonceMissing,
    /// A `nonce` other than the one of the authorization request.
    NonceWrong,
    /// `at_hash` that does not match the access token.
    AtHashWrong,
    /// `email_verified: false`.
    EmailUnverified,
    /// The token response carries no `id_token`.
    NoIdToken,
    /// The authorize endpoint redirects back with a `state` other than the one received (its
    /// first 16 characters kept, the rest changed).
    WrongState,
}

/// The `sub` of every ID token.
pub const SUBJECT: &str = "rogue-user-1";
/// The `email` of every ID token.
pub const EMAIL: &str = "mallory@example.com";
/// The `preferred_username` of every ID token.
pub const USERNAME: &str = "mallory";
/// The `kid` of the published ES256 key.
pub const EC_KID: &str = "ec-p256-1";
/// The `kid` of the published RSA-OAEP encryption key.
pub const ENC_KID: &str = "rsa-enc-1";
/// The `kid` that [`Scenario::UnknownKid`] puts in its tokens.
pub const UNKNOWN_KID: &str = "rogue-unpublished";
/// Lifetime of ID and access tokens, in seconds.
pub const TOKEN_LIFETIME: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    Ec,
}

/// A key pair from `assets/keys/`.
#[derive(Debug)]
struct Fixture {
    name: &'static str,
    private_pem: &'static str,
    public_pem: &'static str,
    jwk: &'static str,
    kind: Kind,
}

macro_rules! fixture {
    ($name:literal, $kind:expr) => {
        Fixture {
            name: $name,
            private_pem: include_str!(concat!("../assets/keys/", $name, ".pem")),
            public_pem: include_str!(concat!("../assets/keys/", $name, ".pub.pem")),
            jwk: include_str!(concat!("../assets/keys/", $name, ".jwk.json")),
            kind: $kind,
        }
    };
}

/// The RS256 signing keys, used in turn by [`RogueProvider::rotate_key`].
static ROTATION: [Fixture; 3] = [
    fixture!("rsa-1", Kind::Rsa),
    fixture!("rsa-2", Kind::Rsa),
    fixture!("rsa-3", Kind::Rsa),
];
static UNPUBLISHED: Fixture = fixture!("rsa-unpublished", Kind::Rsa);
static ENCRYPTION: Fixture = fixture!("rsa-enc", Kind::Rsa);
static EC: Fixture = fixture!("ec-p256", Kind::Ec);

/// The DER inside a PEM file.
fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("test key fixture is not PEM: {e}"))
}

impl Fixture {
    fn encoding_key(&self) -> EncodingKey {
        let der = pem_der(self.private_pem);
        match self.kind {
            // PKCS#1 `RSA PRIVATE KEY`, as jsonwebtoken's RSA signer wants it.
            Kind::Rsa => EncodingKey::from_rsa_der(&der),
            // PKCS#8 `PRIVATE KEY`.
            Kind::Ec => EncodingKey::from_ec_der(&der),
        }
    }

    /// The public JWK with `kid`, `alg` and `use` added.
    fn jwk_with(&self, kid: &str, alg: &str, use_: &str) -> Value {
        let mut jwk: Map<String, Value> = serde_json::from_str(self.jwk)
            .unwrap_or_else(|e| panic!("{}.jwk.json is not JSON: {e}", self.name));
        jwk.insert("kid".into(), kid.into());
        jwk.insert("alg".into(), alg.into());
        jwk.insert("use".into(), use_.into());
        Value::Object(jwk)
    }
}

/// A published RS256 signing key.
#[derive(Debug, Clone)]
struct Published {
    kid: String,
    fixture: &'static Fixture,
}

impl Published {
    fn jwk(&self) -> Value {
        self.fixture.jwk_with(&self.kid, "RS256", "sig")
    }
}

/// What the authorize endpoint remembers per code.
#[derive(Debug, Clone)]
struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

#[derive(Debug)]
struct State {
    scenario: Scenario,
    jwks_down: bool,
    keep_old_keys: bool,
    /// Published RS256 keys; the last one signs.
    keys: Vec<Published>,
    /// How many keys have been made so far (for fresh `kid`s).
    generation: usize,
    codes: HashMap<String, Grant>,
    extra_claims: Map<String, Value>,
    last_id_token: Option<String>,
    end_session: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    issuer: String,
    client_id: String,
    client_secret: String,
    state: Mutex<State>,
    jwks_fetches: AtomicUsize,
    token_requests: AtomicUsize,
    authorize_requests: AtomicUsize,
    /// While `true`, token requests wait (counted, unanswered) until it is `false` again.
    token_hold: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A misbehaving OpenID provider on `127.0.0.1`; stopped on drop. See the [module](self) docs.
#[derive(Debug)]
pub struct RogueProvider {
    /// `http://127.0.0.1:<port>`, exactly as discovery and the ID tokens name it.
    pub issuer: String,
    /// The port it listens on.
    pub port: u16,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RogueProvider {
    /// Starts the provider on a free port of 127.0.0.1 for one client, in [`Scenario::Valid`].
    /// Works from sync and async code alike.
    pub fn start(client_id: &str, client_secret: &str) -> RogueProvider {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("rogue provider: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("rogue provider: set_nonblocking");
        let port = listener
            .local_addr()
            .expect("rogue provider: local_addr")
            .port();
        let issuer = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            state: Mutex::new(State {
                scenario: Scenario::Valid,
                jwks_down: false,
                keep_old_keys: true,
                keys: vec![Published {
                    kid: "rsa-key-1".to_owned(),
                    fixture: &ROTATION[0],
                }],
                generation: 1,
                codes: HashMap::new(),
                extra_claims: Map::new(),
                last_id_token: None,
                end_session: Vec::new(),
            }),
            jwks_fetches: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            authorize_requests: AtomicUsize::new(0),
            token_hold: tokio::sync::watch::Sender::new(false),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rogue-oidc-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("rogue provider: tokio runtime");
                rt.block_on(serve(listener, served, rx));
            })
            .expect("rogue provider: spawn thread");
        RogueProvider {
            issuer,
            port,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `issuer` + `path` (path starting with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Switches what the next answers do wrong.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared.lock().scenario = scenario;
    }

    /// The current scenario.
    pub fn scenario(&self) -> Scenario {
        self.shared.lock().scenario
    }

    /// How many times `/jwks` was requested (503 answers included).
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many requests reached the token endpoint (refused ones included).
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// While `hold`, requests to the token endpoint are counted ([`token_requests`]) and then
    /// wait, unanswered, until the hold is lifted (they are answered then): a provider call that
    /// the test keeps in flight as long as it wants.
    ///
    /// [`token_requests`]: Self::token_requests
    pub fn hold_token_endpoint(&self, hold: bool) {
        self.shared.token_hold.send_replace(hold);
    }

    /// How many requests reached the authorize endpoint.
    pub fn authorize_requests(&self) -> usize {
        self.shared.authorize_requests.load(Ordering::SeqCst)
    }

    /// While `down`, `/jwks` answers 503.
    pub fn set_jwks_down(&self, down: bool) {
        self.shared.lock().jwks_down = down;
    }

    /// Whether [`rotate_key`](Self::rotate_key) keeps the previous keys published (the
    /// default, as real providers do during a rollover) or unpublishes them.
    pub fn set_keep_old_keys(&self, keep: bool) {
        self.shared.lock().keep_old_keys = keep;
    }

    /// Makes a new key, with a new `kid`, the signer and publishes it in the JWKS; the old keys
    /// stay published unless [`set_keep_old_keys(false)`](Self::set_keep_old_keys). Returns the
    /// new `kid`. (The key material cycles through three fixtures; `kid`s never repeat.)
    pub fn rotate_key(&self) -> String {
        let mut s = self.shared.lock();
        let fixture = &ROTATION[s.generation % ROTATION.len()];
        s.generation += 1;
        let kid = format!("rsa-key-{}", s.generation);
        if !s.keep_old_keys {
            s.keys.clear();
        }
        s.keys.push(Published {
            kid: kid.clone(),
            fixture,
        });
        kid
    }

    /// The `kid` of the current RS256 signing key.
    pub fn current_kid(&self) -> String {
        self.shared
            .lock()
            .keys
            .last()
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// The `kid`s the JWKS publishes (signing keys, the ES256 key and the encryption key).
    pub fn published_kids(&self) -> Vec<String> {
        let s = self.shared.lock();
        s.keys
            .iter()
            .map(|k| k.kid.clone())
            .chain([EC_KID.to_owned(), ENC_KID.to_owned()])
            .collect()
    }

    /// Claims merged into every ID token before the scenario is applied (a `null` value removes
    /// the claim), e.g. `json!({"groups": ["admins"]})`. Replaces the previous set.
    pub fn set_claims(&self, claims: Value) {
        let claims = match claims {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => panic!("set_claims wants a JSON object, not {other}"),
        };
        self.shared.lock().extra_claims = claims;
    }

    /// The last ID token the token endpoint handed out.
    pub fn last_id_token(&self) -> Option<String> {
        self.shared.lock().last_id_token.clone()
    }

    /// `claims` signed RS256 with the current key (header `typ: JWT`, the current `kid`), as
    /// the provider would sign an access token or a back-channel logout token.
    pub fn sign(&self, claims: &Value) -> String {
        let s = self.shared.lock();
        let current = s
            .keys
            .last()
            .expect("the rogue provider always has a signing key");
        sign(
            claims,
            Signing::Key {
                alg: Algorithm::RS256,
                alg_name: "RS256",
                kid: Some(current.kid.clone()),
                key: current.fixture.encoding_key(),
            },
        )
    }

    /// The query strings (or form bodies) of the requests to `/end_session`, in order.
    pub fn end_session_requests(&self) -> Vec<String> {
        self.shared.lock().end_session.clone()
    }
}

impl Drop for RogueProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("rogue provider: tokio listener");
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = &mut shutdown => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut r = reply(status, "application/json", body.to_string());
    if let Ok(v) = "no-store".parse() {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    r
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn redirect(to: &str) -> Reply {
    let mut r = reply(StatusCode::FOUND, "text/plain", Bytes::new());
    if let Ok(v) = to.parse() {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn form(raw: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "text/plain", "unreadable body"),
    };
    let query = parts.uri.query().unwrap_or("");
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/.well-known/openid-configuration") => {
            json_reply(StatusCode::OK, &discovery(&shared.issuer))
        }
        (&Method::GET, "/jwks") => {
            shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let s = shared.lock();
            if s.jwks_down {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "JWKS temporarily unavailable",
                );
            }
            json_reply(StatusCode::OK, &jwks(&s))
        }
        (&Method::GET, "/authorize") => authorize(shared, &form(query.as_bytes())),
        (&Method::POST, "/token") => {
            shared.token_requests.fetch_add(1, Ordering::SeqCst);
            let _ = shared.token_hold.subscribe().wait_for(|held| !*held).await;
            let auth = parts
                .headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            token(shared, auth, &form(&body))
        }
        (&Method::GET | &Method::POST, "/end_session") => {
            let raw = if parts.method == Method::GET {
                query.to_owned()
            } else {
                String::from_utf8_lossy(&body).into_owned()
            };
            let params = form(raw.as_bytes());
            shared.lock().end_session.push(raw);
            match params.get("post_logout_redirect_uri") {
                Some(to) => match Url::parse(to) {
                    Ok(mut url) => {
                        if let Some(state) = params.get("state") {
                            url.query_pairs_mut().append_pair("state", state);
                        }
                        redirect(url.as_str())
                    }
                    Err(_) => oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "post_logout_redirect_uri is not a URL",
                    ),
                },
                None => reply(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    "<!doctype html><title>Signed out</title><p>Signed out.</p>",
                ),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/end_session"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "at_hash", "azp",
            "email", "email_verified", "preferred_username", "name"],
    })
}

fn jwks(s: &State) -> Value {
    let mut keys: Vec<Value> = s.keys.iter().map(Published::jwk).collect();
    keys.push(EC.jwk_with(EC_KID, "ES256", "sig"));
    keys.push(ENCRYPTION.jwk_with(ENC_KID, "RSA-OAEP", "enc"));
    json!({ "keys": keys })
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn authorize(shared: &Shared, q: &HashMap<String, String>) -> Reply {
    shared.authorize_requests.fetch_add(1, Ordering::SeqCst);
    let bad = |what: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", what);
    if q.get("client_id") != Some(&shared.client_id) {
        return bad("unknown client_id");
    }
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return bad("redirect_uri is missing");
    };
    let Ok(mut back) = Url::parse(redirect_uri) else {
        return bad("redirect_uri is not a URL");
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad("response_type must be code");
    }
    let code = random_token();
    let mut s = shared.lock();
    s.codes.insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            nonce: q.get("nonce").cloned(),
            code_challenge: q.get("code_challenge").cloned(),
            code_challenge_method: q.get("code_challenge_method").cloned(),
        },
    );
    let mut state = q.get("state").cloned();
    if s.scenario == Scenario::WrongState
        && let Some(st) = &mut state
    {
        let keep: String = st.chars().take(16).collect();
        *st = format!("{keep}{}", random_token());
    }
    drop(s);
    {
        let mut pairs = back.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(state) = &state {
            pairs.append_pair("state", state);
        }
        pairs.append_pair("iss", &shared.issuer);
    }
    redirect(back.as_str())
}

/// `x` of `application/x-www-form-urlencoded`, decoded.
fn form_decode(x: &str) -> String {
    url::form_urlencoded::parse(format!("x={x}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1, form-encoded parts) or the body.
fn client_credentials(auth: Option<&str>, f: &HashMap<String, String>) -> Option<(String, String)> {
    if let Some(basic) = auth.and_then(|a| a.strip_prefix("Basic ")) {
        let raw = STANDARD.decode(basic.trim()).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (id, secret) = raw.split_once(':')?;
        return Some((form_decode(id), form_decode(secret)));
    }
    Some((f.get("client_id")?.clone(), f.get("client_secret")?.clone()))
}

fn token(shared: &Shared, auth: Option<&str>, f: &HashMap<String, String>) -> Reply {
    let grant_error = |what: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", what);
    match client_credentials(auth, f) {
        Some((id, secret)) if id == shared.client_id && secret == shared.client_secret => {}
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
        }
    }
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    let mut s = shared.lock();
    // The code is looked up, never consumed: replays are accepted on purpose.
    let Some(grant) = f.get("code").and_then(|c| s.codes.get(c)).cloned() else {
        return grant_error("unknown code");
    };
    if f.get("redirect_uri") != Some(&grant.redirect_uri) {
        return grant_error("redirect_uri does not match the authorization request");
    }
    match (&grant.code_challenge, f.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if grant.code_challenge_method.as_deref() != Some("S256") {
                return grant_error("only code_challenge_method=S256 is supported");
            }
            if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
                return grant_error("PKCE verification failed");
            }
        }
        (Some(_), None) => return grant_error("code_verifier is missing"),
        (None, Some(_)) => return grant_error("code_verifier without a code_challenge"),
        (None, None) => {}
    }
    let access_token = random_token();
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME,
        "scope": "openid email profile",
    });
    if s.scenario != Scenario::NoIdToken {
        let id_token = id_token(shared, &s, &grant, &access_token);
        body["id_token"] = Value::String(id_token.clone());
        s.last_id_token = Some(id_token);
    }
    json_reply(StatusCode::OK, &body)
}

/// Left half of SHA-256, base64url: `at_hash` for the *256 algorithms used here.
fn half_sha256(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..d.len() / 2])
}

/// How a token is signed.
enum Signing {
    Key {
        alg: Algorithm,
        alg_name: &'static str,
        kid: Option<String>,
        key: EncodingKey,
    },
    None,
}

fn id_token(shared: &Shared, s: &State, grant: &Grant, access_token: &str) -> String {
    let now = now();
    let current = s
        .keys
        .last()
        .cloned()
        .expect("the rogue provider always has a signing key");
    let mut c = Map::new();
    c.insert("iss".into(), shared.issuer.clone().into());
    c.insert("sub".into(), SUBJECT.into());
    c.insert("aud".into(), shared.client_id.clone().into());
    c.insert("exp".into(), (now + TOKEN_LIFETIME).into());
    c.insert("iat".into(), now.into());
    c.insert("auth_time".into(), now.into());
    if let Some(nonce) = &grant.nonce {
        c.insert("nonce".into(), nonce.clone().into());
    }
    c.insert("at_hash".into(), half_sha256(access_token).into());
    c.insert("email".into(), EMAIL.into());
    c.insert("email_verified".into(), true.into());
    c.insert("preferred_username".into(), USERNAME.into());
    c.insert("name".into(), "Mallory Rogue".into());
    for (k, v) in &s.extra_claims {
        if v.is_null() {
            c.remove(k);
        } else {
            c.insert(k.clone(), v.clone());
        }
    }

    let client = shared.client_id.clone();
    match s.scenario {
        Scenario::WrongIss => {
            c.insert("iss".into(), "https://evil.example.net/realms/rogue".into());
        }
        Scenario::WrongAud => {
            c.insert("aud".into(), "some-other-client".into());
        }
        Scenario::AudWithoutClient => {
            c.insert("aud".into(), json!(["other-client-a", "other-client-b"]));
        }
        Scenario::AudWithClientAndAzp => {
            c.insert("aud".into(), json!([client, "other-service"]));
            c.insert("azp".into(), client.clone().into());
        }
        Scenario::AudSeveralWithoutAzp => {
            c.insert("aud".into(), json!([client, "other-service"]));
        }
        Scenario::AzpOther => {
            c.insert("azp".into(), "other-client".into());
        }
        Scenario::Expired => {
            c.insert("iat".into(), (now - 900).into());
            c.insert("auth_time".into(), (now - 900).into());
            c.insert("exp".into(), (now - 600).into());
        }
        Scenario::IatFuture => {
            c.insert("iat".into(), (now + 600).into());
            c.insert("exp".into(), (now + 600 + TOKEN_LIFETIME).into());
        }
        Scenario::NonceMissing => {
            c.remove("nonce");
        }
        Scenario::NonceWrong => {
            c.insert("nonce".into(), random_token().into());
        }
        Scenario::AtHashWrong => {
            c.insert("at_hash".into(), half_sha256("not-the-access-token").into());
        }
        Scenario::EmailUnverified => {
            c.insert("email_verified".into(), false.into());
        }
        _ => {}
    }

    let rs256 = |fixture: &'static Fixture, kid: &str| Signing::Key {
        alg: Algorithm::RS256,
        alg_name: "RS256",
        kid: Some(kid.to_owned()),
        key: fixture.encoding_key(),
    };
    let hs256 = |secret: &[u8]| Signing::Key {
        alg: Algorithm::HS256,
        alg_name: "HS256",
        kid: Some(current.kid.clone()),
        key: EncodingKey::from_secret(secret),
    };
    let signing = match s.scenario {
        Scenario::Es256 => Signing::Key {
            alg: Algorithm::ES256,
            alg_name: "ES256",
            kid: Some(EC_KID.to_owned()),
            key: EC.encoding_key(),
        },
        Scenario::AlgNone => Signing::None,
        Scenario::Hs256ClientSecret => hs256(shared.client_secret.as_bytes()),
        Scenario::Hs256PublicKeyPem => hs256(current.fixture.public_pem.as_bytes()),
        Scenario::Hs256PublicKeyJwk => hs256(current.jwk().to_string().as_bytes()),
        Scenario::BadSignature => rs256(&UNPUBLISHED, &current.kid),
        Scenario::UnknownKid => rs256(&UNPUBLISHED, UNKNOWN_KID),
        Scenario::SignedWithEncryptionKey => rs256(&ENCRYPTION, ENC_KID),
        _ => rs256(current.fixture, &current.kid),
    };
    sign(&Value::Object(c), signing)
}

fn sign(claims: &Value, signing: Signing) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    match signing {
        Signing::None => {
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(claims)
            )
        }
        Signing::Key {
            alg,
            alg_name,
            kid,
            key,
            ..
        } => {
            let mut header = json!({"alg": alg_name, "typ": "JWT"});
            if let Some(kid) = kid {
                header["kid"] = kid.into();
            }
            let message = format!("{}.{}", b64(&header), b64(claims));
            let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg)
                .unwrap_or_else(|e| panic!("rogue provider: signing {alg_name} failed: {e}"));
            format!("{message}.{sig}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};

    fn decoding_key(jwk: &Value) -> DecodingKey {
        let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("JWK");
        DecodingKey::from_jwk(&jwk).expect("decoding key")
    }

    /// Each private key, its `.jwk.json` and its `.pub.pem` belong together.
    #[test]
    fn key_fixtures_match() {
        let all = ROTATION
            .iter()
            .chain([&UNPUBLISHED, &ENCRYPTION, &EC])
            .collect::<Vec<_>>();
        for f in all {
            let (alg, name) = match f.kind {
                Kind::Rsa => (Algorithm::RS256, "RS256"),
                Kind::Ec => (Algorithm::ES256, "ES256"),
            };
            let token = sign(
                &json!({"sub": "x", "exp": now() + 60}),
                Signing::Key {
                    alg,
                    alg_name: name,
                    kid: None,
                    key: f.encoding_key(),
                },
            );
            let mut v = Validation::new(alg);
            v.required_spec_claims.clear();
            v.validate_aud = false;
            jsonwebtoken::decode::<Value>(&token, &decoding_key(&f.jwk_with("k", name, "sig")), &v)
                .unwrap_or_else(|e| panic!("{}: private key and JWK differ: {e}", f.name));
            // The SPKI public key holds the same public numbers as the JWK.
            let spki = pem_der(f.public_pem);
            let jwk: Value = serde_json::from_str(f.jwk).expect("jwk");
            let part = |k: &str| {
                URL_SAFE_NO_PAD
                    .decode(jwk[k].as_str().expect("jwk part"))
                    .expect("base64url")
            };
            let needle = match f.kind {
                Kind::Rsa => part("n"),
                Kind::Ec => [vec![4u8], part("x"), part("y")].concat(),
            };
            assert!(
                spki.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{}: .pub.pem does not match .jwk.json",
                f.name
            );
        }
    }

    #[tokio::test]
    async fn valid_code_flow_with_pkce() {
        let rogue = RogueProvider::start("app", "s3cret");
        let http = crate::http_client();
        let meta: Value = http
            .get(rogue.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json");
        assert_eq!(meta["issuer"], rogue.issuer);

        let verifier = "a-long-enough-pkce-verifier-0123456789-abcdefghij";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
        let mut authorize = Url::parse(meta["authorization_endpoint"].as_str().expect("ae"))
            .expect("authorize url");
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", "app")
            .append_pair("redirect_uri", "http://rp.example/cb")
            .append_pair("state", "st-1")
            .append_pair("nonce", "n-1")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let r = http.get(authorize).send().await.expect("authorize");
        assert_eq!(r.status(), 302);
        let back =
            Url::parse(r.headers()[LOCATION.as_str()].to_str().expect("location")).expect("url");
        let q: HashMap<_, _> = back.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "st-1");
        let code = q["code"].clone();

        let exchange = |verifier: &'static str, secret: &'static str| {
            let http = http.clone();
            let url = rogue.url("/token");
            let code = code.clone();
            async move {
                http.post(url)
                    .basic_auth("app", Some(secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", "http://rp.example/cb"),
                        ("code_verifier", verifier),
                    ])
                    .send()
                    .await
                    .expect("token")
            }
        };
        assert_eq!(exchange(verifier, "wrong").await.status(), 401);
        assert_eq!(exchange("wrong-verifier", "s3cret").await.status(), 400);
        let body: Value = exchange(verifier, "s3cret")
            .await
            .json()
            .await
            .expect("json");
        let id_token = body["id_token"].as_str().expect("id_token");

        let jwks: Value = http
            .get(rogue.url("/jwks"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        assert_eq!(rogue.jwks_fetches(), 1);
        let jwk = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == rogue.current_kid().as_str())
            .expect("current key published");
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&["app"]);
        v.set_issuer(&[rogue.issuer.as_str()]);
        let claims = jsonwebtoken::decode::<Value>(id_token, &decoding_key(jwk), &v)
            .expect("valid ID token")
            .claims;
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(
            claims["at_hash"],
            half_sha256(body["access_token"].as_str().expect("at"))
        );

        // A replayed code is accepted on purpose.
        assert_eq!(exchange(verifier, "s3cret").await.status(), 200);
        assert_eq!(rogue.token_requests(), 4);

        // Rotation publishes the new kid; JWKS down answers 503.
        let old = rogue.current_kid();
        let new = rogue.rotate_key();
        assert_ne!(old, new);
        assert!(rogue.published_kids().contains(&old));
        assert!(rogue.published_kids().contains(&new));
        rogue.set_jwks_down(true);
        let r = http.get(rogue.url("/jwks")).send().await.expect("jwks");
        assert_eq!(r.status(), 503);
        assert_eq!(rogue.jwks_fetches(), 2);
    }
}
