//! The HTTP ext_authz server: a raw HTTP/1.1 request (parsed with httparse, as hyper does)
//! becomes an `http::Request`, with whatever follows the head as its body, and goes through
//! `ext_authz_adapter::server::handle` (the back-channel logout endpoint reads the body).
//!
//! Invariant: nothing but `/ping` answers 200 (Envoy's "allow") without a session, and no
//! forged cookie makes a session; `/oauth2/sign_in` is the known exception (see the fuzz
//! README: it answers its page with 200), and even then every client copy of an identity
//! header is named in `x-envoy-auth-headers-to-remove`.

#![no_main]

use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use oidc_authz_fuzz::{ENGINE, RUNTIME};

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = parsed.parse(data) else {
        return;
    };
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return;
    };
    let mut builder = http::Request::builder().method(method).uri(target);
    for h in parsed.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let body = Full::new(Bytes::copy_from_slice(&data[head..]));
    let Ok(request) = builder.body(body) else {
        return;
    };
    let path = request.uri().path().to_owned();
    let response = RUNTIME.block_on(ext_authz_adapter::server::handle(
        &ext_authz_adapter::authorizer::Authorizer::new(ENGINE.clone()),
        request,
    ));
    if response.status() == http::StatusCode::OK {
        assert!(
            matches!(path.as_str(), "/ping" | "/oauth2/sign_in"),
            "200 (allow) for {path:?} without a session"
        );
        if path != "/ping" {
            let removed = response
                .headers()
                .get("x-envoy-auth-headers-to-remove")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(
                removed.contains("x-auth-request-user") && removed.contains("x-forwarded-user"),
                "200 for {path:?} keeps the client's identity headers: {removed:?}"
            );
        }
    }
});
