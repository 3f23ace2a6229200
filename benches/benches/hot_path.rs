//! The per-request path: decode and verify a session cookie, the whole
//! `check` of an allowed request, and redirect validation.

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, header};
use oidc_core::RedirectValidator;

fn check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let engine = benches::engine();
    for (name, token_len) in [("small", 300), ("chunked", 1500)] {
        let cookies =
            engine.session_cookies(&benches::session(token_len, 5), Some("nginx.example.com"));
        let cookie = benches::cookie_header(&cookies);
        let (parts, ()) = Request::get("/some/page")
            .header(header::HOST, "nginx.example.com")
            .header(header::COOKIE, cookie)
            .body(())
            .expect("request")
            .into_parts();
        assert!(
            engine.authenticate(&parts).is_ok(),
            "{name}: {} cookie(s)",
            cookies.len()
        );
        c.bench_function(&format!("session_decode/{name}"), |b| {
            b.iter(|| engine.authenticate(std::hint::black_box(&parts)).is_ok())
        });
        c.bench_function(&format!("check_allow/{name}"), |b| {
            b.iter(|| {
                rt.block_on(engine.check(std::hint::black_box(&parts)))
                    .is_allow()
            })
        });
    }
}

fn redirect(c: &mut Criterion) {
    let v = RedirectValidator::new(["*.example.com", "app.example.org:8443"]).expect("whitelist");
    c.bench_function("redirect/relative", |b| {
        b.iter(|| v.is_valid(std::hint::black_box("/some/page?x=1")))
    });
    c.bench_function("redirect/absolute", |b| {
        b.iter(|| {
            v.is_valid(std::hint::black_box(
                "https://nginx.example.com/some/page?x=1",
            ))
        })
    });
    c.bench_function("redirect/hostile", |b| {
        b.iter(|| v.is_valid(std::hint::black_box("/\\t/%2F%2Fevil.com/%09/")))
    });
}

criterion_group!(benches, check, redirect);
criterion_main!(benches);
