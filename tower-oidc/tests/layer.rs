//! Layer mechanics with `ServiceExt::oneshot` and a fake inner service, and
//! bearer-token checks against an issuer whose keys the test controls.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{COOKIE_SECRET, FakeIssuer, SigningKey, now};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_oidc::oidc_core::{Config, CookieSettings, Engine};
use tower_oidc::{
    AccessToken, Identity, IdentitySource, OidcLayer, RequireRuleLayer, Rule, TrustedIssuer,
};

const CLIENT: &str = "app";

fn config(issuer: &str) -> Config {
    Config::builder(issuer, CLIENT)
        .cookie_secret(COOKIE_SECRET)
        .cookie(CookieSettings {
            name: "auth".into(),
            secure: false,
            ..CookieSettings::default()
        })
        .skip_provider_button(true)
        .email_domains(vec!["*".into()])
        .jwks_refetch_interval(Duration::ZERO)
        .build()
        .expect("config")
}

async fn engine(issuer: &FakeIssuer) -> Engine {
    let engine = Engine::new(config(&issuer.issuer)).expect("engine");
    engine.discover().await.expect("discovery");
    engine
}

/// The inner service: echoes what the layer put into the extensions, and
/// sets a cookie of its own.
#[allow(clippy::type_complexity)]
fn echo() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send {
    service_fn(|req: Request<Full<Bytes>>| async move {
        let id = req.extensions().get::<Identity>();
        let token = req.extensions().get::<AccessToken>();
        let body = json!({
            "path": req.uri().path(),
            "sub": id.map(Identity::subject),
            "source": id.map(|i| format!("{:?}", i.source())),
            "username": id.map(Identity::username),
            "realm_roles": id.map(Identity::realm_roles),
            "client_roles": id.map(Identity::client_roles),
            "token": token.map(AccessToken::expose),
            "forged": req
                .headers()
                .iter()
                .filter(|(_, v)| *v == FORGED_VALUE)
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
        });
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        r.headers_mut()
            .append(header::SET_COOKIE, "app=1".parse().expect("header"));
        Ok::<_, Infallible>(r)
    })
}

fn api(path: &str) -> http::request::Builder {
    Request::get(path).header(header::ACCEPT, "application/json")
}

fn nav(path: &str) -> http::request::Builder {
    Request::get(path)
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-mode", "navigate")
        .header(header::HOST, "app.example.com")
}

/// Finishes a request of [`api`] or [`nav`] without a body.
trait NoBody {
    fn no_body(self) -> Request<Full<Bytes>>;
}

impl NoBody for http::request::Builder {
    fn no_body(self) -> Request<Full<Bytes>> {
        self.body(Full::default()).expect("request")
    }
}

fn bearer(path: &str, token: &str) -> Request<Full<Bytes>> {
    api(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .no_body()
}

async fn json_body<B>(r: Response<B>) -> Value
where
    B: axum::body::HttpBody,
    B::Error: std::fmt::Debug,
{
    let bytes = r.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

async fn call<S>(svc: &S, req: Request<Full<Bytes>>) -> Response<Full<Bytes>>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone,
{
    svc.clone().oneshot(req).await.expect("infallible")
}

#[tokio::test]
async fn api_call_without_credentials_gets_401_with_a_bearer_challenge() {
    // No discovery needed for this answer.
    let engine = Engine::new(config("https://idp.example.com")).expect("engine");
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine))
        .service(echo());
    let r = call(&svc, api("/x").no_body()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    assert!(
        r.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .all(|c| c != "app=1"),
        "the inner service was not called"
    );
    assert_eq!(json_body(r).await["error"], "unauthorized");
}

#[tokio::test]
async fn navigation_without_a_session_is_sent_to_the_provider() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine(&idp).await))
        .service(echo());
    let r = call(&svc, nav("/page?x=1").no_body()).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()[header::LOCATION].to_str().expect("ascii");
    assert!(
        location.starts_with(&format!("{}/auth?", idp.issuer)),
        "{location}"
    );
    assert!(
        location.contains("code_challenge_method=S256"),
        "{location}"
    );
    assert!(
        r.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().expect("ascii").starts_with("auth_csrf_")),
        "a login-flow cookie is set"
    );
}

#[tokio::test]
async fn public_routes_let_anonymous_requests_through_without_identity() {
    let engine = Engine::new(config("https://idp.example.com")).expect("engine");
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine).require(Rule::public()))
        .service(echo());
    for req in [
        nav("/").no_body(),
        api("/").no_body(),
        // A cookie that is not ours changes nothing.
        api("/").header(header::COOKIE, "other=1").no_body(),
    ] {
        let r = call(&svc, req).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = json_body(r).await;
        assert_eq!(body["sub"], Value::Null);
    }
}

/// What a client writes into identity headers it forges.
const FORGED_VALUE: &str = "mallory";

/// Adds forged identity headers, in mixed `-`/`_` spellings, to `req`.
fn forged(mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    for name in [
        "x-auth-request-user",
        "x-auth_request-user",
        "x_auth_request_email",
        "x-forwarded-preferred_username",
        "x-forwarded_groups",
    ] {
        req.headers_mut().insert(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(FORGED_VALUE),
        );
    }
    req
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_service() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let token = key.sign(&idp.claims("alice", CLIENT));
    let public = ServiceBuilder::new()
        .layer(
            OidcLayer::new(engine(&idp).await)
                .bearer(engine(&idp).await.default_bearer_validator())
                .require(Rule::public()),
        )
        .service(echo());
    for (what, req) in [
        ("anonymous", api("/").no_body()),
        ("bearer", bearer("/api", &token)),
        ("refused bearer", bearer("/api", "not-a-jwt")),
    ] {
        let r = call(&public, forged(req)).await;
        assert_eq!(r.status(), StatusCode::OK, "{what}");
        let body = json_body(r).await;
        assert_eq!(body["forged"], json!([]), "{what}: {body}");
    }
}

#[tokio::test]
async fn a_valid_bearer_token_reaches_the_handler_as_an_identity() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine(&idp).await))
        .service(echo());
    let token = key.sign(&idp.claims("alice", CLIENT));
    let r = call(&svc, bearer("/api", &token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookies: Vec<_> = r.headers().get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(cookies, ["app=1"], "the service's own cookie is kept");
    let body = json_body(r).await;
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["source"], "Bearer");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["realm_roles"], json!(["user"]));
    assert_eq!(body["client_roles"], json!(["app:reader"]));
    assert_eq!(body["token"], token, "the access token is handed on");
}

#[tokio::test]
async fn refused_bearer_tokens_get_401_with_the_reason() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let other_idp = FakeIssuer::start(&[&key]).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine(&idp).await))
        .service(echo());

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = idp.claims("alice", CLIENT);
        f(&mut c);
        key.sign(&c)
    };
    let unknown = SigningKey::generate("never-published");
    let impostor = SigningKey::generate("k1"); // the right kid, another key
    let hs256 = {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        jsonwebtoken::encode(
            &header,
            &idp.claims("alice", CLIENT),
            &jsonwebtoken::EncodingKey::from_secret(b"public key used as a secret"),
        )
        .expect("sign")
    };
    let none = {
        use base64::Engine as _;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(json!({"alg": "none"})),
            b64(idp.claims("alice", CLIENT))
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            with(&|c| {
                c["exp"] = json!(now() - 3600);
            }),
            "the access token expired",
        ),
        (
            "not yet valid",
            with(&|c| {
                c["nbf"] = json!(now() + 3600);
            }),
            "the access token is not valid yet",
        ),
        (
            "another audience",
            with(&|c| {
                c["aud"] = json!("account");
            }),
            "the access token is meant for another audience",
        ),
        (
            "no audience",
            with(&|c| {
                c.as_object_mut().expect("object").remove("aud");
            }),
            "the access token is meant for another audience",
        ),
        (
            "another issuer",
            key.sign(&other_idp.claims("alice", CLIENT)),
            "the access token's issuer is not trusted",
        ),
        (
            "unknown key",
            unknown.sign(&idp.claims("alice", CLIENT)),
            "the access token is signed by an unknown key",
        ),
        (
            "forged signature",
            impostor.sign(&idp.claims("alice", CLIENT)),
            "the access token's signature is invalid",
        ),
        (
            "an ID token",
            with(&|c| {
                c["typ"] = json!("ID");
            }),
            "the token is not an access token",
        ),
        (
            "HS256",
            hs256,
            "the access token's signature algorithm is not allowed",
        ),
        (
            "alg none",
            none,
            "the access token's signature algorithm is not allowed",
        ),
        (
            "opaque",
            "2YotnFZFEjr1zCsicMWpAA".to_owned(),
            "the access token is not a JWT",
        ),
        (
            "malformed",
            "a.b.c".to_owned(),
            "the access token is malformed",
        ),
    ];
    for (what, token, description) in cases {
        let r = call(&svc, bearer("/api", &token)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
            "{what}"
        );
        let body = json_body(r).await;
        assert_eq!(body["error"], "invalid_token", "{what}");
        assert_eq!(body["message"], description, "{what}");
    }
    // Not even a token: the scheme is right, the value is not.
    let r = call(
        &svc,
        api("/api")
            .header(header::AUTHORIZATION, "Bearer a b")
            .no_body(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_rule_refusing_a_valid_token_answers_403() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine(&idp).await).require(Rule::realm_role("admin")))
        .service(echo());
    let r = call(
        &svc,
        bearer("/admin", &key.sign(&idp.claims("bob", CLIENT))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer error=\"insufficient_scope\"")
    );
    assert_eq!(json_body(r).await["error"], "insufficient_scope");

    let mut admin = idp.claims("alice", CLIENT);
    admin["realm_access"]["roles"] = json!(["admin"]);
    let r = call(&svc, bearer("/admin", &key.sign(&admin))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_its_first_token() {
    let old = SigningKey::generate("old");
    let idp = FakeIssuer::start(&[&old]).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine(&idp).await))
        .service(echo());
    let new = SigningKey::generate("new");
    let token = new.sign(&idp.claims("alice", CLIENT));
    let r = call(&svc, bearer("/api", &token)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "not published yet");
    idp.add_key(&new);
    let r = call(&svc, bearer("/api", &token)).await;
    assert_eq!(r.status(), StatusCode::OK, "refetched after rotation");
    let r = call(&svc, bearer("/api", &old.sign(&idp.claims("bob", CLIENT)))).await;
    assert_eq!(r.status(), StatusCode::OK, "the old key still works");
}

#[tokio::test]
async fn trusted_issuers_have_their_own_audiences() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let partner_key = SigningKey::generate("p1");
    let partner = FakeIssuer::start(&[&partner_key]).await;
    let engine = engine(&idp).await;
    let validator = engine
        .bearer_validator()
        .trusted_issuer(TrustedIssuer::new(&partner.issuer).audience("partner-api"))
        .build()
        .expect("validator");
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine).bearer(validator))
        .service(echo());

    // Discovered lazily, on the first token.
    let r = call(
        &svc,
        bearer(
            "/api",
            &partner_key.sign(&partner.claims("svc", "partner-api")),
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_body(r).await["sub"], "svc");
    // The primary's audience is not the partner's.
    let r = call(
        &svc,
        bearer("/api", &partner_key.sign(&partner.claims("svc", CLIENT))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A partner token signed with the primary's key: wrong key for that issuer.
    let r = call(
        &svc,
        bearer("/api", &key.sign(&partner.claims("svc", "partner-api"))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The primary still works with its own audience.
    let r = call(
        &svc,
        bearer("/api", &key.sign(&idp.claims("alice", CLIENT))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn keycloak_style_tokens_can_be_matched_on_azp() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let engine = engine(&idp).await;
    let mut claims = idp.claims("alice", CLIENT);
    claims["aud"] = json!("account");
    claims["azp"] = json!(CLIENT);
    let token = key.sign(&claims);

    let default = ServiceBuilder::new()
        .layer(OidcLayer::new(engine.clone()))
        .service(echo());
    assert_eq!(
        call(&default, bearer("/api", &token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let validator = engine
        .bearer_validator()
        .audience_claim("aud")
        .audience_claim("azp")
        .build()
        .expect("validator");
    let azp = ServiceBuilder::new()
        .layer(OidcLayer::new(engine).bearer(validator))
        .service(echo());
    assert_eq!(
        call(&azp, bearer("/api", &token)).await.status(),
        StatusCode::OK
    );
}

/// An axum app like the example: a public layer around everything, rules per route.
fn router(engine: Engine) -> Router {
    Router::new()
        .route(
            "/",
            get(|me: Option<Identity>| async move {
                me.map_or("anonymous".to_owned(), |m| m.subject().to_owned())
            }),
        )
        .route(
            "/me",
            get(|me: Identity| async move { me.subject().to_owned() }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(RequireRuleLayer::new(Rule::realm_role("admin"))),
        )
        .nest(
            "/api",
            Router::new()
                .route("/reader", get(|| async { "reader" }))
                .route_layer(RequireRuleLayer::new(Rule::client_role(CLIENT, "reader"))),
        )
        .layer(OidcLayer::new(engine).require(Rule::public()))
}

async fn text(r: axum::response::Response) -> String {
    let bytes = r.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn per_route_rules_behind_a_public_layer() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let app = router(engine(&idp).await);
    let send = |req: Request<axum::body::Body>| app.clone().oneshot(req);
    let get = |path: &str, token: Option<&str>, navigate: bool| {
        let mut b = if navigate { nav(path) } else { api(path) };
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(axum::body::Body::empty()).expect("req")
    };
    let bob = key.sign(&idp.claims("bob", CLIENT));
    let mut admin_claims = idp.claims("alice", CLIENT);
    admin_claims["realm_access"]["roles"] = json!(["admin"]);
    admin_claims["resource_access"] = json!({});
    let alice = key.sign(&admin_claims);
    let mut expired = idp.claims("bob", CLIENT);
    expired["exp"] = json!(now() - 3600);
    let expired = key.sign(&expired);

    // Public page: anyone; a valid token is recognised, a bad one ignored.
    let r = send(get("/", None, true)).await.expect("infallible");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(text(r).await, "anonymous");
    let r = send(get("/", Some(&bob), false)).await.expect("infallible");
    assert_eq!(text(r).await, "bob");
    let r = send(get("/", Some(&expired), false))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(text(r).await, "anonymous");

    // The Identity extractor answers like the layer would.
    let r = send(get("/me", None, false)).await.expect("infallible");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let r = send(get("/me", None, true)).await.expect("infallible");
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()[header::LOCATION].to_str().expect("ascii");
    assert!(location.starts_with(&idp.issuer), "{location}");
    let r = send(get("/me", Some(&expired), false))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .contains("expired")
    );
    let r = send(get("/me", Some(&bob), false))
        .await
        .expect("infallible");
    assert_eq!(text(r).await, "bob");

    // Admin page: 401/302 anonymous, 403 without the role, 200 with it.
    let r = send(get("/admin", None, false)).await.expect("infallible");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = send(get("/admin", None, true)).await.expect("infallible");
    assert_eq!(r.status(), StatusCode::FOUND);
    let r = send(get("/admin", Some(&expired), false))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = send(get("/admin", Some(&bob), false))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = send(get("/admin", Some(&alice), false))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::OK);

    // A nested router: the login redirect still returns to the full path.
    let r = send(get("/api/reader", Some(&bob), false))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(get("/api/reader", Some(&alice), false))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = send(get("/api/reader", None, true))
        .await
        .expect("infallible");
    assert_eq!(r.status(), StatusCode::FOUND);
    let flow_cookie = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .find(|c| c.to_str().expect("ascii").starts_with("auth_csrf_"))
        .expect("flow cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(!flow_cookie.is_empty());
}

#[tokio::test]
async fn the_engine_routes_are_served_under_the_prefix() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine(&idp).await).require(Rule::public()))
        .service(echo());
    let r = call(&svc, nav("/oauth2/start?rd=%2Fafter").no_body()).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(
        r.headers()[header::LOCATION]
            .to_str()
            .expect("ascii")
            .starts_with(&idp.issuer)
    );
    let r = call(
        &svc,
        nav("/oauth2/sign_out?rd=%2F")
            .header(header::COOKIE, "auth=whatever")
            .no_body(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()[header::LOCATION], "/");
    let r = call(&svc, api("/oauth2/nope").no_body()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Bad callbacks are answered by the engine, never by the application.
    let r = call(&svc, nav("/oauth2/callback?code=x&state=y").no_body()).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    // Outside the prefix, the application answers.
    let r = call(&svc, api("/oauth2x").no_body()).await;
    assert_eq!(json_body(r).await["path"], "/oauth2x");
}

#[tokio::test]
async fn bearer_only_apis_never_redirect() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine(&idp).await).without_sessions())
        .service(echo());
    let r = call(&svc, nav("/api").no_body()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    // The engine's routes are the application's here.
    let r = call(&svc, nav("/oauth2/start").no_body()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = call(
        &svc,
        bearer("/api", &key.sign(&idp.claims("alice", CLIENT))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn sessions_only_ignores_bearer_tokens() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine(&idp).await).without_bearer())
        .service(echo());
    let r = call(
        &svc,
        bearer("/api", &key.sign(&idp.claims("alice", CLIENT))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(r).await["error"], "unauthorized");
}

#[tokio::test]
async fn require_rule_without_an_oidc_layer_fails_closed() {
    let svc = ServiceBuilder::new()
        .layer(RequireRuleLayer::new(Rule::public()))
        .service(echo());
    let r = call(&svc, api("/").no_body()).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn an_inner_oidc_layer_reuses_the_outer_identity() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let engine = engine(&idp).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine.clone()).require(Rule::public()))
        .layer(OidcLayer::new(engine).require(Rule::client_role(CLIENT, "reader")))
        .service(echo());
    let r = call(&svc, bearer("/x", &key.sign(&idp.claims("bob", CLIENT)))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(&svc, api("/x").no_body()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// The identity's source decides how a refusal is answered, for the same rule and the same
/// API request: a bearer token gets RFC 6750's `insufficient_scope` challenge, a session the
/// plain JSON 403 (no `WWW-Authenticate`: a browser session has nothing to retry with). With
/// both, the token is the identity, so its answer wins. The same whether the layer refusing
/// is the one that found the identity or an inner one reusing it.
#[tokio::test]
async fn a_refusal_is_answered_as_the_identity_source_requires() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let engine = engine(&idp).await;
    let token = key.sign(&idp.claims("bob", CLIENT));
    let cookie = session_cookie(&engine, &session(&["user"]));
    let bearer_challenge = |r: &Response<Full<Bytes>>| {
        r.headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let one_layer = ServiceBuilder::new()
        .layer(OidcLayer::new(engine.clone()).require(Rule::realm_role("admin")))
        .service(echo())
        .boxed_clone();
    let inner_rule = ServiceBuilder::new()
        .layer(OidcLayer::new(engine.clone()).require(Rule::public()))
        .layer(RequireRuleLayer::new(Rule::realm_role("admin")))
        .service(echo())
        .boxed_clone();

    for (stack, svc) in [("one layer", one_layer), ("inner rule", inner_rule)] {
        let from_session = call(&svc, api("/x").header(header::COOKIE, &cookie).no_body()).await;
        assert_eq!(from_session.status(), StatusCode::FORBIDDEN, "{stack}");
        assert_eq!(bearer_challenge(&from_session), None, "{stack}");
        assert_eq!(
            json_body(from_session).await["error"],
            "forbidden",
            "{stack}"
        );

        for request in [
            bearer("/x", &token),
            api("/x")
                .header(header::COOKIE, &cookie)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .no_body(),
        ] {
            let from_bearer = call(&svc, request).await;
            assert_eq!(from_bearer.status(), StatusCode::FORBIDDEN, "{stack}");
            let challenge = bearer_challenge(&from_bearer)
                .unwrap_or_else(|| panic!("{stack}: no Bearer challenge"));
            assert!(
                challenge.starts_with("Bearer error=\"insufficient_scope\""),
                "{stack}: {challenge}"
            );
            assert_eq!(
                json_body(from_bearer).await["error"],
                "insufficient_scope",
                "{stack}"
            );
        }
    }

    // And the handler is told which it was.
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine).require(Rule::public()))
        .service(service_fn(|req: Request<Full<Bytes>>| async move {
            let source = req.extensions().get::<Identity>().map(Identity::source);
            let body = match source {
                Some(IdentitySource::Session) => "session",
                Some(IdentitySource::Bearer) => "bearer",
                Some(_) => "other",
                None => "none",
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }));
    for (request, want) in [
        (
            api("/x").header(header::COOKIE, &cookie).no_body(),
            "session",
        ),
        (bearer("/x", &token), "bearer"),
        (api("/x").no_body(), "none"),
    ] {
        let r = call(&svc, request).await;
        let body = r.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, want.as_bytes());
    }
}

/// A `Cookie` header carrying `session` as the engine stores it.
fn session_cookie(engine: &Engine, session: &tower_oidc::oidc_core::Session) -> String {
    engine
        .session_cookies(session, Some("app.example.com"))
        .iter()
        .map(|c| {
            let c = c.to_str().expect("ascii");
            c.split(';').next().expect("name=value").to_owned()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn session(realm_roles: &[&str]) -> tower_oidc::oidc_core::Session {
    let mut s = tower_oidc::oidc_core::Session::default();
    s.principal.subject = "carol".into();
    s.principal.email = Some("carol@example.com".into());
    s.principal.preferred_username = Some("carol".into());
    s.principal.realm_roles = realm_roles.iter().map(|r| (*r).to_owned()).collect();
    s.access_token = Some("opaque-access-token".into());
    s.created_at = now();
    s.expires_at = now() + 3600;
    s
}

#[tokio::test]
async fn a_session_cookie_reaches_the_handler_as_an_identity() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let engine = engine(&idp).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine.clone()).require(Rule::realm_role("admin")))
        .service(echo());

    let admin = session_cookie(&engine, &session(&["admin"]));
    let r = call(&svc, nav("/page").header(header::COOKIE, &admin).no_body()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_body(r).await;
    assert_eq!(body["sub"], "carol");
    assert_eq!(body["source"], "Session");
    assert_eq!(body["token"], "opaque-access-token");

    // Signed in without the role: 403, a page for navigations, JSON for API calls.
    let user = session_cookie(&engine, &session(&["user"]));
    let r = call(&svc, nav("/page").header(header::COOKIE, &user).no_body()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let r = call(&svc, api("/page").header(header::COOKIE, &user).no_body()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_body(r).await["error"], "forbidden");

    // A tampered cookie is no session: the login redirect.
    let r = call(
        &svc,
        nav("/page").header(header::COOKIE, "auth=AAAA").no_body(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn a_public_route_greets_a_session_and_a_bearer_token_wins_over_it() {
    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let engine = engine(&idp).await;
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine.clone()).require(Rule::public()))
        .service(echo());
    let cookie = session_cookie(&engine, &session(&[]));
    let r = call(&svc, nav("/").header(header::COOKIE, &cookie).no_body()).await;
    assert_eq!(json_body(r).await["sub"], "carol");
    let r = call(
        &svc,
        api("/")
            .header(header::COOKIE, &cookie)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", key.sign(&idp.claims("alice", CLIENT))),
            )
            .no_body(),
    )
    .await;
    let body = json_body(r).await;
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["source"], "Bearer");
}

#[tokio::test]
async fn forwarded_headers_count_only_from_a_trusted_connect_info_peer() {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;

    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let config = Config::builder(&idp.issuer, CLIENT)
        .cookie_secret(COOKIE_SECRET)
        .skip_provider_button(true)
        .email_domains(vec!["*".into()])
        .trusted_proxy_ips(vec!["10.0.0.0/8".into()])
        .reverse_proxy(true)
        .build()
        .expect("config");
    let engine = Engine::new(config).expect("engine");
    engine.discover().await.expect("discovery");
    let svc = ServiceBuilder::new()
        .layer(OidcLayer::new(engine))
        .service(echo());
    // The same list without `reverse_proxy`: nothing forwarded is believed, from anyone.
    let unbelieving = Config::builder(&idp.issuer, CLIENT)
        .cookie_secret(COOKIE_SECRET)
        .skip_provider_button(true)
        .email_domains(vec!["*".into()])
        .trusted_proxy_ips(vec!["10.0.0.0/8".into()])
        .build()
        .expect("config");
    let unbelieving = Engine::new(unbelieving).expect("engine");
    unbelieving.discover().await.expect("discovery");
    let unbelieving = ServiceBuilder::new()
        .layer(OidcLayer::new(unbelieving))
        .service(echo());
    let from = |peer: Option<&str>| {
        let mut req = nav("/page")
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-proto", "https")
            .no_body();
        req.headers_mut()
            .insert(header::HOST, "app.internal:3000".parse().expect("host"));
        if let Some(peer) = peer {
            let addr: SocketAddr = peer.parse().expect("addr");
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        req
    };
    let redirect_uri = |r: &Response<Full<Bytes>>| {
        let location = r.headers()[header::LOCATION].to_str().expect("ascii");
        let (_, query) = location.split_once('?').expect("query");
        query
            .split('&')
            .find_map(|p| p.strip_prefix("redirect_uri="))
            .expect("redirect_uri")
            .replace("%3A", ":")
            .replace("%2F", "/")
    };
    let trusted = call(&svc, from(Some("10.1.2.3:5000"))).await;
    assert_eq!(
        redirect_uri(&trusted),
        "https://app.example.com/oauth2/callback"
    );
    for untrusted in [Some("192.0.2.7:5000"), None] {
        let r = call(&svc, from(untrusted)).await;
        assert_eq!(
            redirect_uri(&r),
            "http://app.internal:3000/oauth2/callback",
            "peer {untrusted:?}"
        );
    }
    let r = call(&unbelieving, from(Some("10.1.2.3:5000"))).await;
    assert_eq!(
        redirect_uri(&r),
        "http://app.internal:3000/oauth2/callback",
        "without reverse_proxy"
    );
}

#[tokio::test]
async fn accepted_bearer_tokens_are_remembered_by_their_exact_text_until_exp() {
    use std::sync::Arc;
    use tower_oidc::oidc_core::token::bearer::BearerError;

    let key = SigningKey::generate("k1");
    let idp = FakeIssuer::start(&[&key]).await;
    let validator = engine(&idp).await.default_bearer_validator();
    let token = key.sign(&idp.claims("alice", CLIENT));
    let first = validator.validate_shared(&token).await.expect("valid");
    let again = validator.validate_shared(&token).await.expect("valid");
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second answer is the cached one"
    );
    assert_eq!(again.principal.subject, "alice");

    // One byte of the signature changed: not the cached token, so verified, and refused.
    let mut forged = token.clone().into_bytes();
    let at = forged.len() - 5;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    assert!(validator.validate_shared(&forged).await.is_err());

    // An expired token is never answered from the cache.
    let mut claims = idp.claims("bob", CLIENT);
    claims["exp"] = json!(now() - 3600);
    claims["iat"] = json!(now() - 7200);
    let expired = key.sign(&claims);
    for _ in 0..2 {
        assert!(matches!(
            validator.validate_shared(&expired).await,
            Err(BearerError::Expired)
        ));
    }
}
