//! The gRPC ext_authz server's request handling: a `CheckRequest`'s `HttpRequest` goes
//! through `ext_authz_adapter::grpc::request_parts` and `check_http`.
//!
//! Input: a mode byte, then either (even) the protobuf encoding of an `HttpRequest`, as
//! tonic decodes it from Envoy, or (odd) text lines: method, path, host, scheme, query,
//! then `name:value` headers.
//!
//! Invariants: the rebuilt request has an origin-form (or `*`) target and no pseudo-header;
//! no check is allowed (gRPC `OK`) without a session.

#![no_main]

use ext_authz_adapter::grpc::{self, HttpRequest};
use libfuzzer_sys::fuzz_target;
use oidc_authz_fuzz::{ENGINE, RUNTIME};
use prost::Message;

fn from_lines(data: &[u8]) -> HttpRequest {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("").to_owned();
    let mut http = HttpRequest {
        method: next(),
        path: next(),
        host: next(),
        scheme: next(),
        query: next(),
        ..HttpRequest::default()
    };
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            http.headers.insert(k.to_owned(), v.trim_start().to_owned());
        }
    }
    http
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let http = if mode & 1 == 0 {
        match HttpRequest::decode(rest) {
            Ok(h) => h,
            Err(_) => return,
        }
    } else {
        from_lines(rest)
    };
    if let Ok(parts) = grpc::request_parts(&http) {
        let path = parts.uri.path();
        assert!(path.starts_with('/') || path == "*", "target {path:?}");
        assert!(parts.headers.keys().all(|k| !k.as_str().starts_with(':')));
    }
    let response = RUNTIME.block_on(grpc::check_http(
        &ext_authz_adapter::authorizer::Authorizer::new(ENGINE.clone()),
        &http,
        None,
    ));
    let code = response.status.as_ref().map(|s| s.code);
    assert_ne!(
        code,
        Some(grpc::code::OK),
        "allowed without a session: {http:?}"
    );
});
