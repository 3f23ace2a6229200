//! Any signed-in user is greeted by name.
use axum::{Router, routing::get};
use tower_oidc::oidc_core::{ClientSecret, Config};
use tower_oidc::{Identity, OidcLayer};

/// `pub`: tests/doc_examples.rs runs this `main` against a real provider, with a login.
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let issuer = env("OIDC_ISSUER", "http://127.0.0.1:8080/realms/mytest");
    let config = Config::builder(issuer, env("CLIENT_ID", "myapp"))
        .client_secret(ClientSecret::new(std::env::var("CLIENT_SECRET")?))
        .cookie_secret(std::env::var("COOKIE_SECRET")?) // openssl rand -base64 32
        .build()?;
    let hello = |me: Identity| async move { format!("hello {}", me.username()) };
    let app = Router::new()
        .route("/", get(hello))
        .layer(OidcLayer::discover(config).await?);
    let listener = tokio::net::TcpListener::bind(env("LISTEN", "127.0.0.1:3000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
