//! The HTTP ext_authz server (Envoy `envoyExtAuthzHttp`) and oauth2-proxy's endpoints.
//!
//! Probes (`/ping`, `/ready`, see [`is_probe`]) are answered here; everything
//! else goes to [`Engine::check`]. On allow the answer is **200** (Envoy denies
//! on any other status) with the identity headers, and
//! `x-envoy-auth-headers-to-remove` naming the client's copies that must go.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use oidc_core::http::trusted_proxy::PeerAddr;
use oidc_core::{Decision, Engine};

use crate::accept::serve_connections;
use crate::authorizer::Authorizer;
use tokio::net::TcpListener;

/// Envoy's header naming the request headers to remove before the upstream.
pub const AUTH_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Largest back-channel logout body accepted.
const MAX_LOGOUT_BODY: usize = 64 * 1024;
/// How long a logout request may take to send its body (the route is reachable from outside).
const LOGOUT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers one request.
pub async fn handle<B>(authorizer: &Authorizer, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let engine = authorizer.engine();
    let (parts, body) = req.into_parts();
    // The provider calls this (server to server, through the gateway's route that skips
    // ext_authz) with a form. Envoy's HTTP check of that POST carries no `Content-Type` (not in
    // includeRequestHeadersInCheck), even when it carries the body (includeRequestBodyInCheck):
    // answered as a check, which is never an allow and says what route is missing.
    if parts.method == http::Method::POST
        && parts.uri.path() == engine.backchannel_logout_path()
        && is_form(&parts.headers)
    {
        let limited = http_body_util::Limited::new(body, MAX_LOGOUT_BODY);
        let read = http_body_util::BodyExt::collect(limited);
        return match tokio::time::timeout(LOGOUT_BODY_TIMEOUT, read).await {
            Ok(Ok(collected)) => engine
                .backchannel_logout(&collected.to_bytes())
                .await
                .map(Full::new),
            Ok(Err(_)) => text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "logout request body too large or unreadable",
            ),
            Err(_) => text(
                StatusCode::REQUEST_TIMEOUT,
                "logout request body not received in time",
            ),
        };
    }
    drop(body);
    // No span per request: the engine's log lines of a request carry its `x-request-id`
    // themselves (a span costs its fields' formatting on every check, logged or not).
    answer(authorizer, parts).await
}

/// Whether `parts` is a probe of this process rather than Envoy's check of a protected request.
///
/// Every 200 this server gives Envoy lets a request through to the app, so `/ping` and `/ready`
/// are answered as probes only when no gateway could have routed the request: a `GET` or
/// `HEAD` whose `Host` is an IP address or `localhost` (with or without a port), or absent. That
/// is what the kubelet (`httpGet`: Host is the pod IP), Docker's `HEALTHCHECK` and `curl` to
/// the pod send. Envoy's check carries the `Host` the client asked the gateway for (a
/// protected host's name): `/ping` of `nginx.example.com` is checked like any other path, in
/// any method.
#[must_use]
pub fn is_probe(parts: &http::request::Parts) -> bool {
    if !matches!(parts.uri.path(), "/ping" | "/ready") {
        return false;
    }
    if parts.method != http::Method::GET && parts.method != http::Method::HEAD {
        return false;
    }
    // HTTP/2 carries the authority in the URI, HTTP/1 in `Host` (an absolute-form HTTP/1
    // request in both): each one present must be local.
    if !parts
        .uri
        .authority()
        .is_none_or(|a| is_local_host(a.as_str()))
    {
        return false;
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => true,
        (Some(host), None) => host.to_str().is_ok_and(is_local_host),
        // Two Host headers: not something a probe sends.
        (Some(_), Some(_)) => false,
    }
}

/// `host` (an authority, maybe with a port) is an IP literal or `localhost`.
fn is_local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || is_port(port) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// `:1234`'s digits (after the colon).
fn is_port(port: &str) -> bool {
    port.strip_prefix(':')
        .unwrap_or(port)
        .parse::<u16>()
        .is_ok()
}

/// `Content-Type: application/x-www-form-urlencoded`, the back-channel logout's form.
fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn answer(authorizer: &Authorizer, parts: http::request::Parts) -> Response<Full<Bytes>> {
    let engine = authorizer.engine();
    if is_probe(&parts) {
        let ready = engine.is_ready();
        let mut r = if parts.uri.path() == "/ready" && ready && engine.insecure_tls() {
            text(
                StatusCode::OK,
                "OK (WARNING: --ssl-insecure-skip-verify: the identity provider's TLS certificate is not verified)",
            )
        } else if parts.uri.path() == "/ping" || ready {
            text(StatusCode::OK, "OK")
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity provider not discovered yet",
            )
        };
        // Should a gateway ever route such a request after all, no client identity passes.
        r.headers_mut()
            .insert(AUTH_HEADERS_TO_REMOVE, all_identity_headers());
        return r;
    }
    if engine.skips_auth(&parts) {
        // No login needed (--skip-auth-route, preflight): allowed, with no identity.
        let mut r = Response::new(Full::new(Bytes::new()));
        r.headers_mut()
            .insert(AUTH_HEADERS_TO_REMOVE, all_identity_headers());
        return r;
    }
    match authorizer.check(&parts).await {
        Decision::Allow(allow) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            let headers = r.headers_mut();
            headers.extend(allow.upstream_headers);
            for (name, value) in allow.response_headers.iter() {
                headers.append(name, value.clone());
            }
            if let Some(v) = allow.headers_to_remove.header_value() {
                headers.insert(AUTH_HEADERS_TO_REMOVE, v.clone());
            }
            r
        }
        Decision::Deny(deny) => {
            let mut r = deny.response.map(Full::new);
            // Envoy treats any 200 as an allow (e.g. the sign-in page or userinfo reached
            // through the check): then no client identity header may go upstream.
            if r.status().is_success() {
                r.headers_mut()
                    .insert(AUTH_HEADERS_TO_REMOVE, all_identity_headers());
            }
            r
        }
    }
}

/// Every identity header name, for `x-envoy-auth-headers-to-remove`.
fn all_identity_headers() -> HeaderValue {
    static ALL: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        HeaderValue::from_str(&oidc_core::http::headers::all_identity().join(","))
            .unwrap_or_else(|_| HeaderValue::from_static("x-auth-request-user"))
    })
    .clone()
}

/// Serves Prometheus metrics at `/metrics` until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    engine: Engine,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, shutdown, move |req: Request<Incoming>| {
        let engine = engine.clone();
        async move {
            if req.uri().path() != "/metrics" {
                return text(StatusCode::NOT_FOUND, "see /metrics");
            }
            let mut r = Response::new(Full::new(Bytes::from(engine.metrics().render())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
    })
    .await;
}

/// Serves until `shutdown` completes. Takes an [`Engine`] or an [`Authorizer`].
pub async fn serve(
    listener: TcpListener,
    authorizer: impl Into<Authorizer>,
    shutdown: impl Future<Output = ()>,
) {
    let authorizer = authorizer.into();
    serve_with(listener, shutdown, move |req: Request<Incoming>| {
        let authorizer = authorizer.clone();
        async move { handle(&authorizer, req).await }
    })
    .await;
}

/// Serves HTTP/1 and HTTP/2, answering each request with `answer`, until `shutdown` completes
/// ([`crate::accept::serve_connections`]: then the open connections end gracefully).
async fn serve_with<F, Fut>(listener: TcpListener, shutdown: impl Future<Output = ()>, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    serve_connections(listener, shutdown, "http", move |stream, peer| {
        let answer = answer.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // For --trusted-proxy-ip: whose X-Forwarded-* headers to believe.
            req.extensions_mut().insert(PeerAddr(peer.ip()));
            let answer = answer.clone();
            async move { Ok::<_, Infallible>(answer(req).await) }
        });
        builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned()
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, hosts: &[&str]) -> http::request::Parts {
        let mut b = Request::builder().method(method).uri(uri);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn probes_are_local_gets_of_ping_and_ready() {
        for (method, uri, hosts) in [
            ("GET", "/ping", &["10.1.2.3:4180"][..]),
            ("GET", "/ready", &["10.1.2.3"]),
            ("HEAD", "/ping", &["localhost:4180"]),
            ("GET", "/ping", &["LOCALHOST"]),
            ("GET", "/ping", &["[::1]:4180"]),
            ("GET", "/ready", &["[fd00::7]"]),
            ("GET", "/ping", &[]),
            ("GET", "http://127.0.0.1:4180/ping", &[]),
        ] {
            assert!(
                is_probe(&parts(method, uri, hosts)),
                "{method} {uri} {hosts:?}"
            );
        }
    }

    #[test]
    fn a_protected_hosts_ping_is_a_check() {
        for (method, uri, hosts) in [
            ("GET", "/ping", &["nginx.example.com"][..]),
            ("GET", "/ready", &["nginx.example.com:8080"]),
            ("DELETE", "/ping", &["10.1.2.3:4180"]),
            ("POST", "/ready", &["localhost"]),
            ("GET", "/ping", &["localhost.example.com"]),
            ("GET", "/ping", &["127.0.0.1.nip.io"]),
            ("GET", "/ping", &["127.0.0.1:80:80"]),
            ("GET", "/ping", &["127.0.0.1:"]),
            ("GET", "/ping", &["[::1]x"]),
            ("GET", "/ping", &["10.1.2.3", "nginx.example.com"]),
            ("GET", "http://nginx.example.com/ping", &["127.0.0.1"]),
            ("GET", "/ping/", &["127.0.0.1"]),
            ("GET", "//ping", &["127.0.0.1"]),
            ("GET", "/PING", &["127.0.0.1"]),
        ] {
            assert!(
                !is_probe(&parts(method, uri, hosts)),
                "{method} {uri} {hosts:?}"
            );
        }
    }
}
