//! One decision, three transports: the same table of requests judged by tower-oidc's layer,
//! the adapter's HTTP server and its gRPC server, built on one engine, must come out the same
//! row by row, and as the table expects.
//!
//! The engine is configured with every policy that could be applied in one place and
//! forgotten in another: `--email-domain`, `--allowed-group`, an `--authorization-rule`, and
//! bearer tokens (`--skip-jwt-bearer-tokens`). Sessions are sealed by the engine itself;
//! bearer tokens are signed with the rogue provider's key (the test controls their claims,
//! `email_verified: false` included, which a real provider cannot be asked for per token).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use common::{CLIENT_ID, CLIENT_SECRET, HOST};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use ext_authz_adapter::authorizer::Authorizer;
use ext_authz_adapter::grpc::HttpResponse;
use http_body_util::Full;
use oidc_core::Engine;
use oidc_core::session::Session;
use serde_json::json;
use test_support::rogue::RogueProvider;
use tower::ServiceExt as _;
use tower_oidc::{OidcLayer, Rule};

/// What a transport made of a request: let through as a user, or answered with a status.
#[derive(Clone, PartialEq, Eq)]
enum Outcome {
    /// Allowed; the `X-Auth-Request-User` the app gets.
    Allow(String),
    /// Answered directly with this status.
    Answer(u16),
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Allow(user) => write!(f, "allow as {user:?}"),
            Outcome::Answer(status) => write!(f, "{status}"),
        }
    }
}

fn allow(user: &str) -> Outcome {
    Outcome::Allow(user.to_owned())
}

/// A user of the table: claims for a bearer token, and the same identity as a session.
struct User {
    sub: &'static str,
    email: &'static str,
    verified: bool,
    groups: &'static [&'static str],
    roles: &'static [&'static str],
}

const ALICE: User = User {
    sub: "alice",
    email: "alice@example.com",
    verified: true,
    groups: &["users"],
    roles: &["admin"],
};
const BOB: User = User {
    sub: "bob",
    email: "bob@example.com",
    verified: true,
    groups: &["users"],
    roles: &[],
};
/// Not in `--allowed-group=users`.
const CAROL: User = User {
    sub: "carol",
    email: "carol@example.com",
    verified: true,
    groups: &["guests"],
    roles: &[],
};
/// Of a domain `--email-domain=example.com` refuses.
const DAVE: User = User {
    sub: "dave",
    email: "dave@elsewhere.test",
    verified: true,
    groups: &["users"],
    roles: &["admin"],
};
/// Whose provider says the email is not verified (bearer tokens only: a login refuses her).
const ERIN: User = User {
    sub: "erin",
    email: "erin@example.com",
    verified: false,
    groups: &["users"],
    roles: &["admin"],
};

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn bearer_token(idp: &RogueProvider, u: &User) -> String {
    let now = unix_now();
    idp.sign(&json!({
        "iss": idp.issuer,
        "sub": u.sub,
        "aud": CLIENT_ID,
        "azp": CLIENT_ID,
        "typ": "Bearer",
        "iat": now,
        "exp": now + 600,
        "email": u.email,
        "email_verified": u.verified,
        "preferred_username": u.sub,
        "groups": u.groups,
        "realm_access": {"roles": u.roles},
    }))
}

fn session_cookie(engine: &Engine, u: &User) -> String {
    let now = unix_now();
    let mut session = Session::default();
    session.principal.subject = u.sub.to_owned();
    session.principal.email = Some(u.email.to_owned());
    session.principal.preferred_username = Some(u.sub.to_owned());
    session.principal.groups = strings(u.groups);
    session.principal.realm_roles = strings(u.roles);
    session.created_at = now;
    session.refreshed_at = now;
    session.expires_at = now + 3600;
    engine
        .session_cookies(&session, Some(HOST))
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One request of the table.
struct Row {
    what: String,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    expected: Outcome,
}

/// The request as tower-oidc's layer sees it, around an app that reports its user.
async fn through_tower(engine: &Engine, row: &Row) -> Outcome {
    let app = tower::ServiceBuilder::new()
        .layer(
            OidcLayer::new(engine.clone())
                .bearer(engine.default_bearer_validator())
                .require(Rule::authenticated()),
        )
        .service(tower::service_fn(
            |req: http::Request<Full<Bytes>>| async move {
                let user = req
                    .headers()
                    .get("x-auth-request-user")
                    .map(|v| v.to_str().unwrap_or_default().to_owned())
                    .unwrap_or_default();
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(user))))
            },
        ));
    let mut req = http::Request::get(row.path).header("host", HOST);
    for (name, value) in &row.headers {
        req = req.header(*name, value);
    }
    let response = app
        .oneshot(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    if response.status() != 200 {
        return Outcome::Answer(response.status().as_u16());
    }
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    Outcome::Allow(String::from_utf8_lossy(&body).into_owned())
}

/// The request as Envoy's HTTP ext_authz filter sends it to the adapter's HTTP server.
async fn through_http(addr: SocketAddr, row: &Row) -> Outcome {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client
        .get(format!("http://{addr}{}", row.path))
        .header("host", HOST);
    for (name, value) in &row.headers {
        req = req.header(*name, value);
    }
    let response = req.send().await.unwrap();
    match response.status().as_u16() {
        200 => Outcome::Allow(
            response
                .headers()
                .get("x-auth-request-user")
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .unwrap_or_default(),
        ),
        status => Outcome::Answer(status),
    }
}

/// The request as Envoy's gRPC ext_authz filter sends it to the adapter's gRPC server.
async fn through_grpc(
    client: &mut AuthorizationClient<tonic::transport::Channel>,
    row: &Row,
) -> Outcome {
    let mut headers: HashMap<String, String> = [
        (":authority", HOST),
        (":path", row.path),
        (":method", "GET"),
        (":scheme", "http"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (name, value) in &row.headers {
        headers.insert(name.to_ascii_lowercase(), value.clone());
    }
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    headers,
                    path: row.path.into(),
                    host: HOST.into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    };
    let response = client.check(request).await.unwrap().into_inner();
    match response.http_response {
        Some(HttpResponse::OkResponse(ok)) => Outcome::Allow(
            ok.headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key == "x-auth-request-user")
                .map(|h| h.value.clone())
                .unwrap_or_default(),
        ),
        Some(HttpResponse::DeniedResponse(denied)) => {
            let status = denied.status.map_or(0, |s| s.code);
            Outcome::Answer(u16::try_from(status).unwrap_or(0))
        }
        Some(HttpResponse::ErrorResponse(_)) | None => Outcome::Answer(0),
    }
}

#[tokio::test]
async fn tower_oidc_http_and_grpc_judge_every_request_the_same() {
    let idp = RogueProvider::start(CLIENT_ID, CLIENT_SECRET);
    let engine = common::engine(
        &idp.issuer,
        &[
            "--email-domain=example.com",
            "--allowed-group=users",
            "--authorization-rule=^/admin/=role:admin",
            "--skip-jwt-bearer-tokens=true",
            "--set-xauthrequest=true",
        ],
    )
    .await;
    let authorizer = Authorizer::new(engine.clone()).with_bearer(engine.default_bearer_validator());
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    tokio::spawn(ext_authz_adapter::server::serve(
        http,
        authorizer.clone(),
        std::future::pending(),
    ));
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    tokio::spawn(ext_authz_adapter::grpc::serve(
        grpc,
        authorizer,
        std::future::pending(),
    ));
    let mut grpc_client = AuthorizationClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap();

    let api = ("accept", "application/json".to_owned());
    let mut rows = vec![
        Row {
            what: "no credentials, an API call".into(),
            path: "/page",
            headers: vec![api.clone()],
            expected: Outcome::Answer(401),
        },
        Row {
            what: "no credentials, forged identity headers".into(),
            path: "/page",
            headers: vec![
                api.clone(),
                ("x-auth-request-user", "alice".into()),
                ("x-forwarded-user", "alice".into()),
                ("x-auth-request-groups", "users".into()),
            ],
            expected: Outcome::Answer(401),
        },
        Row {
            what: "a made-up bearer token".into(),
            path: "/page",
            headers: vec![api.clone(), ("authorization", "Bearer not.a.jwt".into())],
            expected: Outcome::Answer(401),
        },
    ];
    let forbidden = || Some(Outcome::Answer(403));
    // (user, path, as a session, as a bearer token); `None`: a session cannot exist (a
    // login refuses an unverified email).
    let table: [(&User, &str, Option<Outcome>, Outcome); 9] = [
        (&ALICE, "/page", Some(allow("alice")), allow("alice")),
        (&ALICE, "/admin/x", Some(allow("alice")), allow("alice")),
        (&BOB, "/page", Some(allow("bob")), allow("bob")),
        (&BOB, "/admin/x", forbidden(), Outcome::Answer(403)),
        (&CAROL, "/page", forbidden(), Outcome::Answer(403)),
        (&DAVE, "/page", forbidden(), Outcome::Answer(403)),
        (&DAVE, "/admin/x", forbidden(), Outcome::Answer(403)),
        (&ERIN, "/page", None, Outcome::Answer(401)),
        (&ERIN, "/admin/x", None, Outcome::Answer(401)),
    ];
    for (user, path, as_session, as_bearer) in table {
        if let Some(expected) = as_session {
            rows.push(Row {
                what: format!("{}'s session", user.sub),
                path,
                headers: vec![api.clone(), ("cookie", session_cookie(&engine, user))],
                expected,
            });
        }
        rows.push(Row {
            what: format!("{}'s bearer token", user.sub),
            path,
            headers: vec![
                api.clone(),
                (
                    "authorization",
                    format!("Bearer {}", bearer_token(&idp, user)),
                ),
                // A forged header beside a real credential is replaced, never believed.
                ("x-auth-request-user", "mallory".into()),
            ],
            expected: as_bearer,
        });
    }

    let mut problems = Vec::new();
    for row in &rows {
        let tower = through_tower(&engine, row).await;
        let http = through_http(http_addr, row).await;
        let grpc = through_grpc(&mut grpc_client, row).await;
        if [&tower, &http, &grpc].iter().any(|o| **o != row.expected) {
            problems.push(format!(
                "{} {}: expected {:?}; tower-oidc {tower:?}, HTTP {http:?}, gRPC {grpc:?}",
                row.what, row.path, row.expected
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the transports disagree (or agree on the wrong answer):\n{}",
        problems.join("\n")
    );
}
