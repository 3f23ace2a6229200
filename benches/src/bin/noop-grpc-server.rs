//! The gRPC ceiling for `cargo xtask bench`: an `envoy.service.auth.v3.Authorization` server
//! that answers every `Check` with status `OK` and an empty `OkHttpResponse`, and does nothing
//! else (tonic on tokio with the generated service and prost messages, as a gRPC ext_authz
//! server is usually written; the transport settings of the adapter's gRPC server: plaintext
//! HTTP/2, `TCP_NODELAY`).
//!
//! `noop-grpc-server 127.0.0.1:PORT`; prints `READY <addr>` once it accepts connections.

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use tonic::transport::server::TcpIncoming;

struct Noop;

#[tonic::async_trait]
impl Authorization for Noop {
    async fn check(
        &self,
        _: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(rpc::Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            ..CheckResponse::default()
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("READY {}", listener.local_addr()?);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    // As the adapter serves its one service: no router.
    tonic::transport::Server::builder()
        .serve_with_incoming(AuthorizationServer::new(Noop), incoming)
        .await?;
    Ok(())
}
