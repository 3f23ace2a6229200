//! The layer around a plain Tower service served by hyper, without axum: browsers sign in,
//! API clients send bearer tokens.
use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tower::{ServiceBuilder, service_fn};
use tower_oidc::oidc_core::{ClientSecret, Config};
use tower_oidc::{Identity, OidcLayer};

/// `pub`: tests/doc_examples.rs runs this `main` against a real provider, with a login.
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let issuer = env("OIDC_ISSUER", "http://127.0.0.1:8080/realms/mytest");
    let config = Config::builder(issuer, env("CLIENT_ID", "myapp"))
        .client_secret(ClientSecret::new(std::env::var("CLIENT_SECRET")?))
        .cookie_secret(std::env::var("COOKIE_SECRET")?)
        .build()?;
    let service = ServiceBuilder::new()
        .layer(OidcLayer::discover(config).await?)
        .service(service_fn(hello));

    let listener = tokio::net::TcpListener::bind(env("LISTEN", "127.0.0.1:3000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

/// Reached only with a session or a valid bearer token: the layer put the `Identity` here.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let me = req
        .extensions()
        .get::<Identity>()
        .expect("set by OidcLayer");
    let hello = format!("hello {}", me.username());
    Ok(Response::new(Full::new(Bytes::from(hello))))
}
