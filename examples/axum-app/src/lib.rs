//! An axum application protected by `tower-oidc`: a public page, a page
//! showing the signed-in user, an admin page that needs a Keycloak realm role,
//! and a JSON API that takes bearer tokens.
//!
//! | route | rule |
//! |---|---|
//! | `/` | public (greets a signed-in user) |
//! | `/me` | signed in |
//! | `/admin` | realm role `admin` (`--admin-role`) |
//! | `/api/me` | signed in (session or bearer token) |
//! | `/api/reports` | client role `<client id>:editor` (`--editor-role`) |
//! | `/oauth2/*` | the login routes, served by the layer |
//!
//! The binary (`src/main.rs`) reads its settings from flags or the
//! environment; [`app`] builds the router for any [`OidcLayer`].

#![deny(missing_docs)]

use axum::Json;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::{Value, json};
use tower_oidc::{Identity, OidcLayer, RequireRuleLayer, Rule};

/// The roles the protected routes need.
#[derive(Clone, Debug)]
pub struct Roles {
    /// Realm role for `/admin`.
    pub admin_realm_role: String,
    /// Client of the client role for `/api/reports` (usually the client id).
    pub api_client: String,
    /// Client role (of `api_client`) for `/api/reports`.
    pub api_client_role: String,
}

/// The application: pages and API behind `oidc`, which is set to let public
/// routes through ([`Rule::public`]); each route adds its own rule.
pub fn app(oidc: OidcLayer, roles: &Roles) -> Router {
    let admin = Rule::realm_role(roles.admin_realm_role.as_str());
    let editor = Rule::client_role(&roles.api_client, &roles.api_client_role);
    let api = Router::new().route("/me", get(api_me)).route(
        "/reports",
        get(reports).route_layer(RequireRuleLayer::new(editor)),
    );
    Router::new()
        .route("/", get(home))
        .route("/healthz", get(|| async { "ok" }))
        .route("/me", get(me))
        .route(
            "/admin",
            get(admin_page).route_layer(RequireRuleLayer::new(admin)),
        )
        .nest("/api", api)
        .layer(oidc.require(Rule::public()))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:44em;margin:3em auto\"><h1>{t}</h1>{body}\
         <p><a href=\"/\">Home</a> · <a href=\"/me\">Me</a> · <a href=\"/admin\">Admin</a> · \
         <a href=\"/api/me\">/api/me</a></p></body></html>",
        t = escape(title)
    ))
}

async fn home(me: Option<Identity>) -> Html<String> {
    match me {
        Some(me) => page(
            "Welcome back",
            &format!(
                "<p>Hello, <b id=\"user\">{}</b>.</p>\
                 <p><a href=\"/oauth2/sign_out?rd=%2F\">Sign out</a></p>",
                escape(me.username())
            ),
        ),
        None => page(
            "Welcome",
            "<p>Hello, stranger. This page is public.</p>\
             <p><a href=\"/oauth2/start?rd=%2Fme\">Sign in</a></p>",
        ),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "<i>none</i>".to_owned();
    }
    items
        .iter()
        .map(|i| format!("<code>{}</code>", escape(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn me(me: Identity) -> Html<String> {
    let row = |k: &str, v: String| format!("<tr><th align=\"left\">{k}</th><td>{v}</td></tr>");
    let text = |v: Option<&str>| v.map_or("<i>none</i>".to_owned(), escape);
    page(
        "Who am I",
        &format!(
            "<table>{}{}{}{}{}{}{}{}</table>",
            row("subject", escape(me.subject())),
            row("username", text(me.preferred_username())),
            row("email", text(me.email())),
            row("name", text(me.name())),
            row("groups", list(me.groups())),
            row("realm roles", list(me.realm_roles())),
            row("client roles", list(me.client_roles())),
            row("signed in with", format!("{:?}", me.source())),
        ),
    )
}

async fn admin_page(me: Identity) -> Html<String> {
    page(
        "Admin",
        &format!(
            "<p>Only administrators see this. You are <b>{}</b>.</p>",
            escape(me.username())
        ),
    )
}

fn identity_json(me: &Identity) -> Value {
    json!({
        "sub": me.subject(),
        "preferred_username": me.preferred_username(),
        "email": me.email(),
        "name": me.name(),
        "groups": me.groups(),
        "realm_roles": me.realm_roles(),
        "client_roles": me.client_roles(),
        "source": format!("{:?}", me.source()).to_lowercase(),
    })
}

async fn api_me(me: Identity) -> Json<Value> {
    Json(identity_json(&me))
}

async fn reports(me: Identity) -> Json<Value> {
    Json(json!({
        "reports": [
            {"id": 1, "title": "Quarterly numbers"},
            {"id": 2, "title": "Incident review"},
        ],
        "requested_by": me.username(),
    }))
}
