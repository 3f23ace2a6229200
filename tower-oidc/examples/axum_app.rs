//! A public home page, a page for any signed-in user, an admin page for the group `admins`,
//! and a JSON API for sessions and bearer tokens.
use axum::{Json, Router, routing::get};
use serde_json::{Value, json};
use tower_oidc::oidc_core::{ClientSecret, Config};
use tower_oidc::{Identity, OidcLayer, RequireRuleLayer, Rule};

/// `pub`: tests/doc_examples.rs runs this `main` against a real provider, with a login.
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let issuer = env("OIDC_ISSUER", "http://127.0.0.1:8080/realms/mytest");
    let config = Config::builder(issuer, env("CLIENT_ID", "myapp"))
        .client_secret(ClientSecret::new(std::env::var("CLIENT_SECRET")?))
        .cookie_secret(std::env::var("COOKIE_SECRET")?)
        .scope("openid email profile groups".into()) // the `groups` claim
        .skip_provider_button(true) // straight to the provider, no "sign in" page
        .build()?;
    // Public unless a route asks for more; bearer tokens need `aud` = the client id.
    let oidc = OidcLayer::discover(config).await?.require(Rule::public());
    let admins = RequireRuleLayer::new(Rule::group("admins"));

    let app = Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route("/admin", get(admin).route_layer(admins))
        .route("/api/me", get(api_me))
        .layer(oidc);

    let listener = tokio::net::TcpListener::bind(env("LISTEN", "127.0.0.1:3000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Everyone: `Option<Identity>` is `None` for a visitor who has not signed in.
async fn home(me: Option<Identity>) -> String {
    match me {
        Some(me) => format!("welcome back, {}", me.username()),
        None => "welcome, stranger: sign in at /me".to_owned(),
    }
}

/// Signed in; a visitor is sent to the provider first.
async fn me(me: Identity) -> String {
    format!("hello {}", me.username())
}

/// Members of `admins`; anyone else signed in gets `403`.
async fn admin() -> &'static str {
    "admins only"
}

/// A session or a bearer token; without either, `401` for an API call (a browser signs in).
async fn api_me(me: Identity) -> Json<Value> {
    Json(json!({ "sub": me.subject(), "email": me.email(), "groups": me.groups() }))
}
