//! The gRPC mapping without a server: Envoy's `AttributeContext.HttpRequest` into the request
//! the engine judges (`request_parts`), and a `Decision` into a `CheckResponse`
//! (`check_response`).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap as PbHeaderMap, HeaderValue};
use ext_authz_adapter::grpc::{
    HeaderAppendAction, HttpRequest, HttpResponse, check_response, code, request_parts,
};
use http::Method;
use oidc_core::{Decision, DenyReason};

fn http_request(headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        path: "/some/page?x=1&y=%2F".into(),
        host: "nginx.example.com".into(),
        scheme: "https".into(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        ..HttpRequest::default()
    }
}

#[test]
fn parts_from_the_attributes() {
    let parts = request_parts(&http_request(&[
        (":authority", "nginx.example.com"),
        (":path", "/some/page?x=1&y=%2F"),
        (":method", "GET"),
        ("cookie", "auth=abc; other=1"),
        ("accept", "text/html"),
    ]))
    .unwrap();
    assert_eq!(parts.method, Method::GET);
    assert_eq!(parts.uri.path(), "/some/page");
    assert_eq!(parts.uri.query(), Some("x=1&y=%2F"));
    assert_eq!(parts.headers["host"], "nginx.example.com");
    assert_eq!(parts.headers["cookie"], "auth=abc; other=1");
    assert_eq!(parts.headers["accept"], "text/html");
    assert_eq!(parts.headers["x-forwarded-proto"], "https");
    assert!(parts.headers.keys().all(|k| !k.as_str().starts_with(':')));
}

#[test]
fn envoys_forwarded_proto_wins_over_the_scheme() {
    let parts = request_parts(&http_request(&[("x-forwarded-proto", "http")])).unwrap();
    assert_eq!(parts.headers["x-forwarded-proto"], "http");
    let mut no_scheme = http_request(&[]);
    no_scheme.scheme.clear();
    let parts = request_parts(&no_scheme).unwrap();
    assert!(!parts.headers.contains_key("x-forwarded-proto"));
}

#[test]
fn raw_headers_keep_repeated_values() {
    let mut http = http_request(&[]);
    http.header_map = Some(PbHeaderMap {
        headers: vec![
            HeaderValue {
                key: "x-a".into(),
                raw_value: b"1".to_vec(),
                ..HeaderValue::default()
            },
            HeaderValue {
                key: "x-a".into(),
                raw_value: b"2".to_vec(),
                ..HeaderValue::default()
            },
        ],
    });
    let parts = request_parts(&http).unwrap();
    let values: Vec<_> = parts.headers.get_all("x-a").iter().collect();
    assert_eq!(values, ["1", "2"]);
}

#[test]
fn query_attribute_and_defaults() {
    let http = HttpRequest {
        path: "/p".into(),
        query: "a=b".into(),
        ..HttpRequest::default()
    };
    let parts = request_parts(&http).unwrap();
    assert_eq!(parts.method, Method::GET);
    assert_eq!(parts.uri, "/p?a=b");
    assert!(parts.headers.is_empty());
}

#[test]
fn malformed_requests_are_refused() {
    for (method, path, host) in [
        ("GE T", "/", "h"),
        ("GET", "no-slash", "h"),
        ("GET", "/a b", "h"),
        ("GET", "/", "h\nx"),
    ] {
        let http = HttpRequest {
            method: method.into(),
            path: path.into(),
            host: host.into(),
            ..HttpRequest::default()
        };
        assert!(request_parts(&http).is_err(), "{method} {path} {host}");
    }
}

#[test]
fn an_invalid_path_is_shown_without_its_query_and_cut() {
    let http = HttpRequest {
        path: "/a b?access_token=SECRET".into(),
        ..HttpRequest::default()
    };
    let why = request_parts(&http).unwrap_err().to_string();
    assert_eq!(why, "invalid path \"/a b?<query not shown>\"");
    let long = format!("/{}é x", "a".repeat(300));
    let http = HttpRequest {
        path: long,
        ..HttpRequest::default()
    };
    let why = request_parts(&http).unwrap_err().to_string();
    assert!(why.len() < 160 && why.ends_with("...\""), "{why}");
}

fn deny_with_cookies() -> Decision {
    let response = http::Response::builder()
        .status(302)
        .header("location", "https://idp.example.com/auth?x=1")
        .header("set-cookie", "a=1; Path=/")
        .header("set-cookie", "b=2; Path=/")
        .header("content-length", "3")
        .body(Bytes::from_static(b"abc"))
        .unwrap();
    Decision::Deny(Box::new(oidc_core::decision::Deny {
        reason: DenyReason::Unauthenticated,
        response,
    }))
}

#[test]
fn deny_keeps_status_every_cookie_and_body() {
    let response = check_response(deny_with_cookies());
    assert_eq!(response.status.unwrap().code, code::UNAUTHENTICATED);
    let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
        panic!("not denied");
    };
    assert_eq!(denied.status.unwrap().code, 302);
    assert_eq!(denied.body, "abc");
    let headers: Vec<_> = denied
        .headers
        .iter()
        .map(|h| {
            let hv = h.header.as_ref().unwrap();
            (hv.key.as_str(), hv.value.as_str(), h.append_action)
        })
        .collect();
    let append = HeaderAppendAction::AppendIfExistsOrAdd as i32;
    assert_eq!(
        headers,
        [
            ("location", "https://idp.example.com/auth?x=1", append),
            ("set-cookie", "a=1; Path=/", append),
            ("set-cookie", "b=2; Path=/", append),
        ]
    );
    #[allow(deprecated)]
    let no_append = denied.headers.iter().all(|h| h.append.is_none());
    assert!(no_append, "the deprecated `append` field stays unset");
}
