//! `ext-authz-adapter`: the [`oidc_core`] engine as an Envoy ext_authz server
//! (HTTP mode, as Istio's `envoyExtAuthzHttp` calls it) and a drop-in for
//! oauth2-proxy's flags, environment variables and endpoints.
//!
//! The binary is the usual entry point; the library exposes the pieces for
//! tests and embedding:
//!
//! ```no_run
//! use clap::Parser;
//! use ext_authz_adapter::cli::Cli;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cli = Cli::parse_from([
//!     "ext-authz-adapter",
//!     "--oidc-issuer-url=https://keycloak.example.com/realms/mytest",
//!     "--client-id=nginx",
//!     "--cookie-secret=0123456789abcdef0123456789abcdef",
//!     "--email-domain=*",
//! ]);
//! let engine = oidc_core::Engine::new(cli.to_config()?)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4180").await?;
//! ext_authz_adapter::server::serve(listener, engine, std::future::pending()).await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
// Flag doc comments are `--help` text for a terminal (`<issuer>/.well-known/...`, URLs).
#![allow(rustdoc::invalid_html_tags, rustdoc::bare_urls)]

mod accept;
pub mod authorizer;
pub mod cli;
pub mod duration;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod server;
