//! `ext-authz-adapter` binary: parse flags, start discovery, serve.

use std::process::ExitCode;

use ext_authz_adapter::authorizer::Authorizer;
use ext_authz_adapter::cli::{Cli, CliError, Command, LogFormat, parse_address};
use ext_authz_adapter::server;
use oidc_core::Engine;
use oidc_core::error::chain;
use tokio::net::TcpListener;
use url::Url;

#[tokio::main]
async fn main() -> ExitCode {
    // Command line, then OAUTH2_PROXY_* variables, then the --config file (oauth2-proxy's order).
    let loaded = match Cli::load(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(CliError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            return ExitCode::from(2);
        }
    };
    let cli = loaded.cli;
    // `ext-authz-adapter istio ...`: print or check the Istio resources.
    if let Some(Command::Istio(istio)) = &cli.command {
        return istio.run();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal (and not with NO_COLOR): log collectors (kubectl logs, the
    // tests, which read the bound addresses from the "listening" lines) get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if cli.log_format == LogFormat::Json {
        logs.json().init();
    } else {
        logs.init();
    }
    // oauth2-proxy flags given but not needed here: once each, saying why.
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }

    let (engine, authorizer) = match cli.to_config().and_then(|c| {
        let engine = Engine::new(c)?;
        let mut authorizer = Authorizer::new(engine.clone());
        if let Some(bearer) = cli.bearer_validator(&engine)? {
            authorizer = authorizer.with_bearer(bearer);
        }
        Ok((engine, authorizer))
    }) {
        Ok(v) => v,
        Err(e) => {
            // The whole chain: the flag and the fix, then why (an io::Error, a regex's error).
            eprintln!("error: {}", chain(&e));
            return ExitCode::from(2);
        }
    };
    let issuer = engine.config().issuer();
    let Some(listener) = listen("--http-address", &cli.http_address, "listening", issuer).await
    else {
        return ExitCode::from(2);
    };
    // One shutdown signal for every server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut servers = Vec::new();
    if let Some(raw) = &cli.grpc_address {
        #[cfg(feature = "grpc")]
        {
            let Some(l) = listen("--grpc-address", raw, "gRPC ext_authz listening", issuer).await
            else {
                return ExitCode::from(2);
            };
            let grpc = ext_authz_adapter::grpc::serve(l, authorizer.clone(), stopped());
            servers.push(tokio::spawn(grpc));
        }
        #[cfg(not(feature = "grpc"))]
        {
            eprintln!(
                "error: --grpc-address={raw}: this build has no gRPC support (build with the `grpc` feature)"
            );
            return ExitCode::from(2);
        }
    }
    if let Some(raw) = &cli.metrics_address {
        let Some(l) = listen("--metrics-address", raw, "metrics at /metrics", issuer).await else {
            return ExitCode::from(2);
        };
        let metrics = server::serve_metrics(l, engine.clone(), std::future::pending());
        tokio::spawn(metrics);
    }
    // Discovery runs in the background: /ping answers at once, /ready once discovered.
    let discovery = engine.clone();
    tokio::spawn(async move { discovery.discover_until_ready().await });
    let http = tokio::spawn(server::serve(listener, authorizer, stopped()));
    shutdown_signal().await;
    // Stop accepting at once (a pod being replaced gets no new connections), let the checks
    // in flight answer, and close idle keep-alive connections (HTTP/2: GOAWAY).
    let drain = cli.shutdown_drain_timeout;
    tracing::info!(
        drain_timeout = ?drain,
        "shutting down: new connections refused, finishing the checks in flight"
    );
    let _ = stop_tx.send(true);
    servers.push(http);
    let drained = async {
        for s in servers {
            let _ = s.await;
        }
    };
    tokio::select! {
        finished = tokio::time::timeout(drain, drained) => {
            if finished.is_err() {
                tracing::warn!(
                    drain_timeout = ?drain,
                    "checks still in flight after --shutdown-drain-timeout: their connections are cut"
                );
            }
        }
        // A second signal: the operator wants it gone now.
        () = shutdown_signal() => tracing::warn!("second signal: exiting without waiting"),
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Listens on `raw`, the address of `flag`, and logs `message` with the address bound (the
/// tests read it from there) and the issuer; `None` once it has printed why it cannot.
async fn listen(flag: &'static str, raw: &str, message: &str, issuer: &Url) -> Option<TcpListener> {
    let bound = match parse_address(flag, raw) {
        Ok(addr) => TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{flag}: cannot listen on {addr}: {e}")),
        Err(e) => Err(e.to_string()),
    };
    match bound {
        Ok(listener) => {
            let local = listener
                .local_addr()
                .map_or_else(|_| raw.to_owned(), |a| a.to_string());
            tracing::info!(address = %local, issuer = %issuer, "{message}");
            Some(listener)
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
