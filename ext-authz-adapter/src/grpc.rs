//! The gRPC ext_authz server: `envoy.service.auth.v3.Authorization/Check`, as Istio's
//! `envoyExtAuthzGrpc` provider (and Envoy's `grpc_service`) calls it.
//!
//! Every check goes to the same [`Engine::check`] as in HTTP mode ([`crate::server`]); only
//! the translation differs:
//!
//! - The request is rebuilt from `CheckRequest.attributes.request.http`: method, `path` (with
//!   the query), `host` as the `Host` header, and every header Envoy sent (in gRPC mode Envoy
//!   sends all of them, lower-cased; pseudo-headers such as `:authority` are skipped). When
//!   Envoy sent no `x-forwarded-proto`, the `scheme` attribute stands in for it, so redirect
//!   URLs get the scheme Envoy saw. Envoy sets `x-forwarded-proto` itself before ext_authz runs
//!   (from the downstream connection, or from a trusted proxy in front), so normally it is
//!   present and the adapter reads the same value as in HTTP mode, where the header list
//!   includes it.
//! - [`Decision::Allow`] becomes an [`OkHttpResponse`] with gRPC status `OK`: the identity
//!   headers in `headers` with [`HeaderAppendAction::OverwriteIfExistsOrAdd`] (a client's copy
//!   is replaced, never joined), the client copies in other spellings in `headers_to_remove`,
//!   and the response headers (a refreshed session `Set-Cookie`, possibly several chunks) in
//!   `response_headers_to_add` with [`HeaderAppendAction::AppendIfExistsOrAdd`] so every one
//!   reaches the browser.
//! - [`Decision::Deny`] becomes a [`DeniedHttpResponse`] with the response's status, all its
//!   headers (each with [`HeaderAppendAction::AppendIfExistsOrAdd`], so several `Set-Cookie`
//!   survive; framing headers like `content-length` are left to Envoy) and its body, and gRPC
//!   status `UNAUTHENTICATED` (no or invalid session, failed login), `UNAVAILABLE` (identity
//!   provider not reachable) or `PERMISSION_DENIED` (forbidden, and the adapter's own endpoints
//!   such as the callback, whose redirect and cookies travel back to the browser this way).
//!   Envoy denies on any status but `OK` and answers with the denied response.
//!
//! The deprecated `append` field of `HeaderValueOption` is never set: Envoy reads it before
//! `append_action`, and what `append: true` does to a second `Set-Cookie` (a second header, or
//! one value joined with a comma) differs between Envoy versions. Checked with Envoy 1.40:
//! with `OverwriteIfExistsOrAdd` in `response_headers_to_add` only the last `Set-Cookie`
//! reaches the browser; with `AppendIfExistsOrAdd` every one does.
//!
//! The server ([`serve`], [`AuthzService::into_server`]) reads the request and writes an allow
//! straight from and to the wire (module `wire`): the same answers as the
//! generated messages and [`request_parts`] / [`check_response`], without a `HashMap` of the
//! headers or a `String` per header name and value (unusual messages still go through the
//! generated ones).
//!
//! ```no_run
//! # async fn run(engine: oidc_core::Engine) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4181").await?;
//! ext_authz_adapter::grpc::serve(listener, engine, std::future::pending()).await;
//! # Ok(()) }
//! ```

mod wire;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc;
use std::net::IpAddr;

use http::request::Parts;
use http::{HeaderMap, HeaderName, Method, Request, StatusCode, header};
use oidc_core::http::trusted_proxy::PeerAddr;

use crate::accept::serve_connections;
use crate::authorizer::Authorizer;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use oidc_core::{Decision, DenyReason, Engine};
use tokio::net::TcpListener;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError};

use self::wire::{Answer, CheckCodec, Incoming};

/// The check request's HTTP attributes (`CheckRequest.attributes.request.http`).
pub use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;

pub use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HttpResponse, OkHttpResponse,
};

/// The gRPC service name, as in Envoy's and Istio's configuration.
pub const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// gRPC status codes used in [`CheckResponse::status`] (`google.rpc.Code`).
pub mod code {
    /// The request is allowed.
    pub const OK: i32 = 0;
    /// The request is malformed (the adapter answers it with 400).
    pub const INVALID_ARGUMENT: i32 = 3;
    /// Denied: logged in but not allowed, or answered by one of the adapter's endpoints.
    pub const PERMISSION_DENIED: i32 = 7;
    /// Denied: the identity provider cannot be reached.
    pub const UNAVAILABLE: i32 = 14;
    /// Denied: no valid session (login redirect, 401), or the login failed.
    pub const UNAUTHENTICATED: i32 = 16;
}

/// `envoy.service.auth.v3.Authorization` backed by an [`Engine`] (and, with
/// `--skip-jwt-bearer-tokens`, a bearer validator: an [`Authorizer`]). Serve it with
/// [`serve`], or add [`AuthzService::into_server`] to a tonic server of your own (the
/// generated [`AuthorizationServer`] takes it too, through [`Authorization`], with the
/// generated messages).
#[derive(Clone, Debug)]
pub struct AuthzService {
    authorizer: Authorizer,
}

impl AuthzService {
    /// A service deciding with `authorizer` (an [`Engine`] or an [`Authorizer`]).
    #[must_use]
    pub fn new(authorizer: impl Into<Authorizer>) -> AuthzService {
        AuthzService {
            authorizer: authorizer.into(),
        }
    }

    /// The engine it decides with.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        self.authorizer.engine()
    }

    /// The tonic service (a `tower::Service` for HTTP/2 gRPC requests).
    #[must_use]
    pub fn into_server(self) -> CheckServer {
        CheckServer {
            authorizer: Arc::new(self.authorizer),
        }
    }
}

/// The path of the `Check` method.
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// `envoy.service.auth.v3.Authorization` as a tonic service ([`AuthzService::into_server`]):
/// what the generated [`AuthorizationServer`] does, with the `Check` read and answered on the
/// wire (module `wire`) instead of through the generated messages.
#[derive(Clone, Debug)]
pub struct CheckServer {
    authorizer: Arc<Authorizer>,
}

impl tonic::server::NamedService for CheckServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for CheckServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Box::pin(call(self.authorizer.clone(), None, request))
    }
}

/// One request to [`CheckServer`]: the `Check` (tonic's unary handling, with [`CheckCodec`]),
/// or `UNIMPLEMENTED` for any other method, as the generated server answers. `peer`: the
/// client's address when the caller knows it (`serve`), else tonic's connection info.
async fn call<B>(
    authorizer: Arc<Authorizer>,
    peer: Option<IpAddr>,
    request: http::Request<B>,
) -> Result<http::Response<tonic::body::Body>, Infallible>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    if request.uri().path() != CHECK_PATH {
        let mut response = http::Response::new(tonic::body::Body::default());
        let headers = response.headers_mut();
        headers.insert(
            tonic::Status::GRPC_STATUS,
            (tonic::Code::Unimplemented as i32).into(),
        );
        headers.insert(header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
        return Ok(response);
    }
    let method = CheckMethod(Some((authorizer, peer)));
    Ok(tonic::server::Grpc::new(CheckCodec)
        .unary(method, request)
        .await)
}

/// The `Check` method of [`CheckServer`] (the authorizer and the peer, taken by its one call).
struct CheckMethod(Option<(Arc<Authorizer>, Option<IpAddr>)>);

impl tonic::server::UnaryService<Incoming> for CheckMethod {
    type Response = Answer;
    type Future = BoxFuture<tonic::Response<Answer>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Incoming>) -> Self::Future {
        let taken = self.0.take();
        Box::pin(async move {
            let (authorizer, peer) =
                taken.ok_or_else(|| tonic::Status::internal("called twice"))?;
            answer(&authorizer, peer, request)
                .await
                .map(tonic::Response::new)
        })
    }
}

/// [`check_http`] for a request read by module `wire`.
async fn answer(
    authorizer: &Authorizer,
    peer: Option<IpAddr>,
    request: tonic::Request<Incoming>,
) -> Result<Answer, tonic::Status> {
    // From `serve`; in a tonic server of someone else's, tonic's connection info.
    let peer = peer.or_else(|| request.remote_addr().map(|a| a.ip()));
    match request.into_inner() {
        Incoming::Parts(Ok(mut parts)) => {
            if let Some(ip) = peer {
                parts.extensions.insert(PeerAddr(ip));
            }
            if authorizer.skips_auth(&parts) {
                // No login needed (--skip-auth-route, preflight): allowed, with no identity.
                return Ok(Answer::Skip);
            }
            Ok(match authorizer.check(&parts).await {
                Decision::Allow(allow) => Answer::Allow(allow),
                deny => Answer::Message(Box::new(check_response(deny))),
            })
        }
        Incoming::Parts(Err((why, id))) => Ok(Answer::Message(Box::new(malformed(&why, &id)))),
        Incoming::Missing => Err(missing()),
        Incoming::Full(request) => Ok(Answer::Message(Box::new(
            check_http(authorizer, http_of(&request)?, peer).await,
        ))),
    }
}

fn missing() -> tonic::Status {
    tonic::Status::invalid_argument("CheckRequest.attributes.request.http is missing")
}

/// `request.attributes.request.http`, or the `INVALID_ARGUMENT` its absence is answered with.
fn http_of(request: &CheckRequest) -> Result<&HttpRequest, tonic::Status> {
    request
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .ok_or_else(missing)
}

/// The answer to a request [`request_parts`] cannot rebuild: denied with 400.
fn malformed(why: &RequestError, id: &str) -> CheckResponse {
    tracing::debug!(error = %why, id = %id, "malformed check request");
    denied(
        code::INVALID_ARGUMENT,
        StatusCode::BAD_REQUEST,
        Vec::new(),
        format!("Bad Request: {why}\n"),
    )
}

#[tonic::async_trait]
impl Authorization for AuthzService {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let peer = request.remote_addr().map(|a| a.ip());
        let request = request.into_inner();
        Ok(tonic::Response::new(
            check_http(&self.authorizer, http_of(&request)?, peer).await,
        ))
    }
}

/// Decides one check: [`request_parts`], [`Engine::check`], [`check_response`]. A request that
/// cannot be rebuilt (a method or path no HTTP server would accept) is denied with 400.
///
/// `peer` is the address of the gRPC client (Envoy): `--trusted-proxy-ip` decides from it
/// whether the request's `X-Forwarded-*` headers are believed.
pub async fn check_http(
    authorizer: &Authorizer,
    http: &HttpRequest,
    peer: Option<IpAddr>,
) -> CheckResponse {
    let parts = request_parts(http).map(|mut parts| {
        if let Some(ip) = peer {
            parts.extensions.insert(PeerAddr(ip));
        }
        parts
    });
    match parts {
        Ok(parts) if authorizer.skips_auth(&parts) => {
            // No login needed (--skip-auth-route, preflight): allowed, with no identity.
            CheckResponse {
                status: Some(rpc::Status {
                    code: code::OK,
                    ..rpc::Status::default()
                }),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers_to_remove: oidc_core::http::headers::all_identity()
                        .iter()
                        .map(|h| (*h).to_owned())
                        .collect(),
                    ..OkHttpResponse::default()
                })),
                ..CheckResponse::default()
            }
        }
        Ok(parts) => {
            let decision = authorizer.check(&parts).await;
            check_response(decision)
        }
        Err(why) => malformed(&why, &http.id),
    }
}

/// The most request headers a check may carry: far above what Envoy forwards (100 by default,
/// `max_headers_count`), far below what an `http::HeaderMap` holds (it panics past 32 768).
/// A check with more is answered 400 ([`RequestError::TooManyHeaders`]).
pub const MAX_REQUEST_HEADERS: usize = 1024;

/// Why a check request cannot be turned into an HTTP request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not an HTTP method.
    #[error("invalid method {0:?}")]
    Method(String),
    /// Not a request target. Holds [`RequestError::path`]'s excerpt: the path without its
    /// query (where tokens travel), at most [`SHOWN_PATH`] bytes.
    #[error("invalid path {0:?}")]
    Path(String),
    /// Not a host.
    #[error("invalid host {0:?}")]
    Host(String),
    /// More request headers than [`MAX_REQUEST_HEADERS`].
    #[error("{0} request headers, more than the {MAX_REQUEST_HEADERS} a check may carry")]
    TooManyHeaders(usize),
}

/// The most bytes of an invalid path an error shows (in the 400 answer and the debug log).
pub const SHOWN_PATH: usize = 128;

impl RequestError {
    /// [`RequestError::Path`] for the request target `target`: what the error shows of it is
    /// the path alone, never the query (an `access_token`, a `code`, ... may be in it), cut to
    /// [`SHOWN_PATH`] bytes.
    #[must_use]
    pub fn path(target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((path, _)) => (path, "?<query not shown>"),
            None => (target, ""),
        };
        let mut end = path.len().min(SHOWN_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        let cut = if end < path.len() { "..." } else { "" };
        RequestError::Path(format!("{}{cut}{query}", &path[..end]))
    }
}

/// The request Envoy is asking about, as [`Engine::check`] takes it: method, path with query
/// (origin form), `Host` from the `host` attribute, every other header as sent (pseudo-headers
/// skipped; from `header_map` when Envoy encodes raw headers), and `x-forwarded-proto` from the
/// `scheme` attribute when Envoy sent none. Header names or values that are not valid HTTP are
/// dropped.
pub fn request_parts(http: &HttpRequest) -> Result<Parts, RequestError> {
    let method = if http.method.is_empty() {
        Method::GET
    } else {
        Method::from_bytes(http.method.as_bytes())
            .map_err(|_| RequestError::Method(http.method.clone()))?
    };
    let mut target = if http.path.is_empty() {
        String::from("/")
    } else {
        http.path.clone()
    };
    // Envoy puts the query in `path` and leaves `query` empty; other clients may not.
    if !http.query.is_empty() && !target.contains('?') {
        target.push('?');
        target.push_str(&http.query);
    }
    if !target.starts_with('/') && target != "*" {
        return Err(RequestError::path(&target));
    }
    let uri: http::Uri = target.parse().map_err(|_| RequestError::path(&target))?;

    let raw = http.header_map.as_ref().map(|m| m.headers.as_slice());
    let count = match raw {
        Some(raw) if !raw.is_empty() => raw.len(),
        _ => http.headers.len(),
    };
    if count > MAX_REQUEST_HEADERS {
        return Err(RequestError::TooManyHeaders(count));
    }
    let mut headers = HeaderMap::with_capacity(count + 2);
    match raw {
        Some(raw) if !raw.is_empty() => {
            for h in raw {
                let value = if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    h.raw_value.as_slice()
                };
                append_header(&mut headers, &h.key, value);
            }
        }
        _ => {
            for (name, value) in &http.headers {
                append_header(&mut headers, name, value.as_bytes());
            }
        }
    }
    if !http.host.is_empty() {
        let host = http::HeaderValue::from_str(&http.host)
            .map_err(|_| RequestError::Host(http.host.clone()))?;
        headers.insert(header::HOST, host);
    }
    let scheme = http.scheme.to_ascii_lowercase();
    if !headers.contains_key(X_FORWARDED_PROTO) && (scheme == "http" || scheme == "https") {
        headers.insert(
            X_FORWARDED_PROTO,
            http::HeaderValue::from_str(&scheme).expect("http or https is a header value"),
        );
    }

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request.into_parts().0)
}

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

fn append_header(headers: &mut HeaderMap, name: &str, value: &[u8]) {
    if name.starts_with(':') {
        // :authority, :path, :method, :scheme: already in the attributes.
        return;
    }
    let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        http::HeaderValue::from_bytes(value),
    ) else {
        tracing::debug!(header = name, "dropping an invalid request header");
        return;
    };
    headers.append(name, value);
}

/// The answer to Envoy for a decision.
#[must_use]
pub fn check_response(decision: Decision) -> CheckResponse {
    match decision {
        Decision::Allow(allow) => {
            let mut headers = Vec::with_capacity(allow.upstream_headers.len());
            let mut last: Option<HeaderName> = None;
            for (name, value) in &allow.upstream_headers {
                // The first value of a name replaces the client's; more values are added.
                let action = if last.as_ref() == Some(name) {
                    HeaderAppendAction::AppendIfExistsOrAdd
                } else {
                    HeaderAppendAction::OverwriteIfExistsOrAdd
                };
                last = Some(name.clone());
                headers.push(header_option(name, value, action));
            }
            let ok = OkHttpResponse {
                headers,
                headers_to_remove: allow
                    .headers_to_remove
                    .names()
                    .iter()
                    .map(|h| (*h).to_owned())
                    .collect(),
                response_headers_to_add: allow
                    .response_headers
                    .iter()
                    .map(|(n, v)| header_option(n, v, HeaderAppendAction::AppendIfExistsOrAdd))
                    .collect(),
                ..OkHttpResponse::default()
            };
            CheckResponse {
                status: Some(rpc::Status {
                    code: code::OK,
                    ..rpc::Status::default()
                }),
                http_response: Some(HttpResponse::OkResponse(ok)),
                ..CheckResponse::default()
            }
        }
        Decision::Deny(deny) => {
            let grpc_code = match deny.reason {
                DenyReason::Unauthenticated | DenyReason::LoginFailed => code::UNAUTHENTICATED,
                DenyReason::Unavailable => code::UNAVAILABLE,
                _ => code::PERMISSION_DENIED,
            };
            let (parts, body) = deny.response.into_parts();
            let headers = parts
                .headers
                .iter()
                .filter(|(name, _)| !is_framing(name))
                .map(|(n, v)| header_option(n, v, HeaderAppendAction::AppendIfExistsOrAdd))
                .collect();
            denied(grpc_code, parts.status, headers, body_text(body))
        }
    }
}

fn denied(
    grpc_code: i32,
    status: StatusCode,
    headers: Vec<HeaderValueOption>,
    body: String,
) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code: grpc_code,
            ..rpc::Status::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                // envoy.type.v3.StatusCode's values are the HTTP status codes.
                code: i32::from(status.as_u16()),
            }),
            headers,
            body,
        })),
        ..CheckResponse::default()
    }
}

/// Headers Envoy sets itself on the response it sends (it frames the body).
fn is_framing(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "upgrade"
    )
}

fn body_text(body: Bytes) -> String {
    match String::from_utf8(body.into()) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn header_option(
    name: &HeaderName,
    value: &http::HeaderValue,
    action: HeaderAppendAction,
) -> HeaderValueOption {
    // Envoy reads `value` (a proto string, so UTF-8); anything else goes in `raw_value`.
    let (value, raw_value) = match std::str::from_utf8(value.as_bytes()) {
        Ok(s) => (s.to_owned(), Vec::new()),
        Err(_) => (String::new(), value.as_bytes().to_vec()),
    };
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.as_str().to_owned(),
            value,
            raw_value,
        }),
        append_action: action as i32,
        ..HeaderValueOption::default()
    }
}

/// Serves `envoy.service.auth.v3.Authorization` (HTTP/2 with prior knowledge, plaintext,
/// `TCP_NODELAY`) on `listener` until `shutdown` completes; then stops accepting (the listening
/// socket is closed), sends every connection a GOAWAY, lets the checks in flight answer and
/// returns when the last connection has ended (bound the wait with a timeout, as the binary's
/// `--shutdown-drain-timeout` does).
///
/// hyper's HTTP/2 server runs [`CheckServer`] directly, as the HTTP server runs its handler,
/// not through tonic's transport, whose layers cost per check (a boxed service and future, the
/// connection info, a recovery and a `grpc-timeout` layer, a second response body wrapper); no
/// `date` header on the answers. Envoy's `grpc-timeout` is not enforced here: Envoy times the
/// check out itself and resets the stream, which drops the check.
pub async fn serve(
    listener: TcpListener,
    authorizer: impl Into<Authorizer>,
    shutdown: impl Future<Output = ()>,
) {
    let authorizer = Arc::new(authorizer.into());
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // No `date` header: nothing reads it on a gRPC answer, and it is encoded on every one.
    builder.timer(TokioTimer::new()).auto_date_header(false);
    serve_connections(listener, shutdown, "grpc", move |stream, peer| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let authorizer = authorizer.clone();
        // For --trusted-proxy-ip: whose X-Forwarded-* headers to believe.
        let peer = Some(peer.ip());
        let service = hyper::service::service_fn(move |request: http::Request<_>| {
            call::<hyper::body::Incoming>(authorizer.clone(), peer, request)
        });
        builder.serve_connection(TokioIo::new(stream), service)
    })
    .await;
}
