//! `hello-upstream`: the application of `cargo xtask demo`, standing in for the seed's nginx.
//!
//! - `hello-upstream serve --listen 127.0.0.1:8081` answers every request with a page listing
//!   the identity headers it received from the gateway (`X-Auth-Request-*`, and whether an
//!   `Authorization: Bearer` token came along, never the token itself). HTML for browsers,
//!   plain text for anything that does not ask for `text/html` (curl).
//! - `hello-upstream envoy-config --listen ... --authz-http ADDR --app ADDR --idp ADDR` prints
//!   the Envoy bootstrap of the demo: [`EnvoyConfig::seed`], the seed's ingress gateway as Istio
//!   renders it (`nginx.example.com` behind ext_authz, `keycloak.example.com` not), so the demo
//!   runs the same configuration as the tests; `/oauth2/` of `nginx.example.com` goes to the
//!   adapter's HTTP port (`--adapter-http`, default `--authz-http`), after the check, as the
//!   VirtualService of `ext-authz-adapter istio` routes it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use envoy_bootstrap::{AuthzTarget, EnvoyConfig};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use istio_manifests::envoy_contract::ADAPTER_PREFIX;

/// The demo's protected application, and its gateway's Envoy configuration.
#[derive(Debug, Parser)]
#[command(name = "hello-upstream", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once, at start-up: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the hello page.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
    /// Print the Envoy bootstrap (JSON) of the seed's gateway: EnvoyConfig::seed.
    EnvoyConfig {
        /// The gateway listener (the browser's `http://nginx.example.com:PORT/`).
        #[arg(long)]
        listen: SocketAddr,
        /// Envoy's admin listener.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// The adapter's HTTP address: ext_authz in HTTP mode (Istio `envoyExtAuthzHttp`).
        #[arg(
            long,
            conflicts_with = "authz_grpc",
            required_unless_present = "authz_grpc"
        )]
        authz_http: Option<SocketAddr>,
        /// The adapter's gRPC address: ext_authz in gRPC mode (Istio `envoyExtAuthzGrpc`).
        #[arg(long)]
        authz_grpc: Option<SocketAddr>,
        /// The adapter's HTTP address (`--http-address`), where `/oauth2/` of the protected host
        /// is routed after the check (default: --authz-http; in gRPC mode, no such route
        /// without it).
        #[arg(long)]
        adapter_http: Option<SocketAddr>,
        /// How long Envoy waits for a decision, in seconds.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
        /// The application (`nginx.example.com`, protected).
        #[arg(long)]
        app: SocketAddr,
        /// The identity provider (`keycloak.example.com`, not protected).
        #[arg(long)]
        idp: SocketAddr,
        /// Log every request to stdout.
        #[arg(long)]
        access_log: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { listen } => serve(listen).await,
        Command::EnvoyConfig {
            listen,
            admin,
            authz_http,
            authz_grpc,
            adapter_http,
            timeout_secs,
            app,
            idp,
            access_log,
        } => {
            let timeout = Duration::from_secs(timeout_secs);
            let authz = match (authz_http, authz_grpc) {
                (_, Some(addr)) => AuthzTarget::Grpc { addr, timeout },
                (Some(addr), None) => AuthzTarget::Http { addr, timeout },
                (None, None) => unreachable!("clap requires one of them"),
            };
            let mut config = EnvoyConfig {
                admin,
                access_log,
                ..EnvoyConfig::seed(listen, authz, app, idp)
            };
            if let Some(adapter) = adapter_http.or(authz_http) {
                config = config.with_adapter_routes(ADAPTER_PREFIX, adapter);
            }
            println!("{}", config.render());
            ExitCode::SUCCESS
        }
    }
}

async fn serve(listen: SocketAddr) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("hello-upstream: listening on http://{listen}");
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| async move {
                Ok::<_, Infallible>(hello(&request, peer))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The page: what the gateway told us about the user.
fn hello(request: &Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let headers = request.headers();
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut identity: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-auth-request-"))
        .map(|(name, value)| {
            let value = if name.as_str() == "x-auth-request-access-token" {
                format!("<{} bytes, not shown>", value.len())
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect();
    identity.sort();
    let authorization = match headers.get(AUTHORIZATION) {
        Some(value) => {
            let value = value.as_bytes();
            match value.strip_prefix(b"Bearer ") {
                Some(token) => format!(
                    "present: Bearer <ID token, {} bytes, {} dot-separated parts; not shown>",
                    token.len(),
                    token.split(|b| *b == b'.').count()
                ),
                None => format!("present, not a Bearer token ({} bytes)", value.len()),
            }
        }
        None => "absent".to_owned(),
    };
    let host = text(HOST.as_str()).unwrap_or_default();
    let user = text("x-auth-request-email")
        .or_else(|| text("x-auth-request-preferred-username"))
        .or_else(|| text("x-auth-request-user"));
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    eprintln!(
        "hello-upstream: {} {path} from {peer} for {}",
        request.method(),
        user.as_deref().unwrap_or("<nobody>")
    );

    let wants_html = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let (content_type, body) = if wants_html {
        (
            "text/html; charset=utf-8",
            html(&host, &path, user.as_deref(), &identity, &authorization),
        )
    } else {
        (
            "text/plain; charset=utf-8",
            plain(&host, &path, user.as_deref(), &identity, &authorization),
        )
    };
    Response::builder()
        .header(CONTENT_TYPE, content_type)
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn plain(
    host: &str,
    path: &str,
    user: Option<&str>,
    identity: &[(String, String)],
    authorization: &str,
) -> String {
    let mut out = format!(
        "Hello, {}!\n\nThis is the upstream (the seed's nginx) at http://{host}{path}\n\
         The gateway (Envoy + ext_authz) sent these identity headers:\n",
        user.unwrap_or("anonymous")
    );
    if identity.is_empty() {
        out.push_str("  (none)\n");
    }
    for (name, value) in identity {
        out.push_str(&format!("  {name}: {value}\n"));
    }
    out.push_str(&format!("  authorization: {authorization}\n"));
    out.push_str(&format!(
        "\nSign out (here and at Keycloak): http://{host}/oauth2/sign_out?rd=/\n"
    ));
    out
}

fn html(
    host: &str,
    path: &str,
    user: Option<&str>,
    identity: &[(String, String)],
    authorization: &str,
) -> String {
    let mut rows = String::new();
    for (name, value) in identity {
        rows.push_str(&format!(
            "<tr><th>{}</th><td id=\"{}\">{}</td></tr>\n",
            escape(name),
            escape(name),
            escape(value)
        ));
    }
    if identity.is_empty() {
        rows.push_str("<tr><td colspan=\"2\">(no X-Auth-Request-* headers)</td></tr>\n");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>hello-upstream</title>\
         <style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}\
         td,th{{font-family:monospace;border-bottom:1px solid #ddd;padding:.3em}}</style></head>\n\
         <body>\n<h1>Hello, <span id=\"user\">{user}</span>!</h1>\n\
         <p>This is the upstream (the seed's nginx) at <code>http://{host}{path}</code>. \
         Envoy let the request through after the ext_authz check and set these headers:</p>\n\
         <table>\n{rows}<tr><th>authorization</th><td id=\"authorization\">{authorization}</td></tr>\n\
         </table>\n\
         <p><a id=\"sign-out\" href=\"/oauth2/sign_out?rd=%2F\">Sign out</a> (ends the session \
         here and at Keycloak) &middot; <a href=\"/oauth2/userinfo\">/oauth2/userinfo</a></p>\n\
         </body></html>\n",
        user = escape(user.unwrap_or("anonymous")),
        host = escape(host),
        path = escape(path),
        authorization = escape(authorization),
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn lists_headers_without_tokens() {
        let identity = vec![(
            "x-auth-request-email".to_owned(),
            "alice@example.com".to_owned(),
        )];
        let page = html(
            "nginx.example.com:8080",
            "/",
            Some("alice@example.com"),
            &identity,
            "absent",
        );
        assert!(page.contains("<td id=\"x-auth-request-email\">alice@example.com</td>"));
        let text = plain("h", "/", None, &[], "absent");
        assert!(text.contains("(none)"));
    }
}
