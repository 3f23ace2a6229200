//! `ext-authz-adapter` binary: parse flags, start discovery, serve.

use std::process::ExitCode;

use ext_authz_adapter::authorizer::Authorizer;
use ext_authz_adapter::cli::{Cli, CliError, listen_address, parse_address};
use ext_authz_adapter::server;
use oidc_core::Engine;
use oidc_core::error::chain;

#[tokio::main]
async fn main() -> ExitCode {
    // `ext-authz-adapter istio ...`: print or check the Istio resources.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("istio") {
        return ext_authz_adapter::istio::run(args[2..].to_vec());
    }
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
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    // oauth2-proxy flags given but not needed here: once each, saying why.
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }

    let (engine, authorizer, addr) = match cli.to_config().and_then(|c| {
        let engine = Engine::new(c)?;
        let mut authorizer = Authorizer::new(engine.clone());
        if let Some(bearer) = cli.bearer_validator(&engine)? {
            authorizer = authorizer.with_bearer(bearer);
        }
        Ok((engine, authorizer, listen_address(&cli.http_address)?))
    }) {
        Ok(v) => v,
        Err(e) => {
            // The whole chain: the flag and the fix, then why (an io::Error, a regex's error).
            eprintln!("error: {}", chain(&e));
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: --http-address: cannot listen on {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    tracing::info!(address = %local, issuer = %engine.config().issuer(), "listening");
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
            let listener = match parse_address("--grpc-address", raw) {
                Ok(addr) => tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("--grpc-address: cannot listen on {addr}: {e}")),
                Err(e) => Err(e.to_string()),
            };
            match listener {
                Ok(l) => {
                    tracing::info!(address = %l.local_addr().map_or_else(|_| raw.clone(), |a| a.to_string()), "gRPC ext_authz listening");
                    servers.push(tokio::spawn(ext_authz_adapter::grpc::serve(
                        l,
                        authorizer.clone(),
                        stopped(),
                    )));
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
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
        let listener = match parse_address("--metrics-address", raw) {
            Ok(addr) => tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("--metrics-address: cannot listen on {addr}: {e}")),
            Err(e) => Err(e.to_string()),
        };
        match listener {
            Ok(l) => {
                tracing::info!(address = %l.local_addr().map_or_else(|_| raw.clone(), |a| a.to_string()), "metrics at /metrics");
                tokio::spawn(server::serve_metrics(
                    l,
                    engine.clone(),
                    std::future::pending(),
                ));
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
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
