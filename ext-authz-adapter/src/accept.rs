//! The accept loop of both servers (HTTP in `server.rs`, gRPC in `grpc.rs`): each accepted
//! connection is served on a task of its own and watched, and on shutdown the listener closes
//! and every open connection ends gracefully.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;

use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown};
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections on `listener` and serves each as `connect` builds it, until `shutdown`
/// completes; then stops accepting (the listening socket is closed: new connections are
/// refused), asks every open connection to end gracefully (an idle HTTP/1 keep-alive
/// connection is closed at once, one with a request in flight after its answer; HTTP/2 gets a
/// GOAWAY and its open streams finish) and returns when the last one has ended. Bound that wait
/// with a timeout (the binary's `--shutdown-drain-timeout`). `server` names the server in its
/// log lines.
pub(crate) async fn serve_connections<C>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    server: &'static str,
    mut connect: impl FnMut(TcpStream, SocketAddr) -> C,
) where
    C: GracefulConnection + Send + 'static,
    C::Error: Display + Send,
{
    tokio::pin!(shutdown);
    let connections = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(server, error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = connections.watch(connect(stream, peer));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(server, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::debug!(
        server,
        connections = connections.count(),
        "stopped accepting; closing the open connections"
    );
    connections.shutdown().await;
}
