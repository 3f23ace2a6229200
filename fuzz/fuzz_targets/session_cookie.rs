//! The session cookie decoder, through the public API: `Engine::authenticate` and
//! `Engine::check` on requests whose `Cookie` headers are fuzzed.
//!
//! Input: one flag byte, a count N, N 4-byte edits, then raw `Cookie` header lines.
//!
//! - flags & 3: start from no cookie (0, 3), a valid small session cookie (1) or a valid
//!   chunked one (2), sealed by the engine;
//! - flags & 4: POST instead of GET; flags & 0x80: an API call (`Accept: application/json`);
//!   (flags >> 3) & 15 picks the path (the engine's endpoints and protected pages);
//! - the edits drop, swaps, duplicates, renames, truncates and
//!   rewrites the canned cookies (see `edit`);
//! - each raw line (split at `\n`) is sent as one more `Cookie` header.
//!
//! Invariants: only a session the engine sealed is ever accepted (its subject is
//! `SUBJECT`); an unedited canned cookie is accepted; a request is allowed only with a
//! session.

#![no_main]

use http::{HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use oidc_authz_fuzz::{ENGINE, HOST, RUNTIME, SUBJECT, canned_cookies};
use oidc_core::Decision;

const PATHS: [&str; 12] = [
    "/",
    "/app/page?x=1",
    "/oauth2/auth",
    "/oauth2/userinfo",
    "/oauth2/sign_out?rd=%2Fbye",
    "/oauth2/callback?state=abc&code=def",
    "/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2F",
    "/oauth2/sign_in",
    "/oauth2",
    "/oauth2/unknown",
    "/api/items",
    "/static/app.js",
];

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn edit(pairs: &mut Vec<(String, String)>, op: &[u8]) {
    let [code, a, b, c] = [0, 1, 2, 3].map(|i| op.get(i).copied().unwrap_or(0));
    let len = pairs.len();
    if len == 0 {
        return;
    }
    let i = usize::from(a) % len;
    let j = usize::from(b) % len;
    let pos = usize::from(b) << 8 | usize::from(c);
    match code % 9 {
        0 => {
            pairs.remove(i);
        }
        1 => pairs.swap(i, j),
        2 => {
            let p = pairs[i].clone();
            pairs.push(p);
        }
        3 => {
            // Rename: another chunk index, no index, or a different base name.
            let name = &mut pairs[i].0;
            let base = name
                .rsplit_once('_')
                .map_or(name.as_str(), |(b, _)| b)
                .to_owned();
            *name = match b % 4 {
                0 => format!("{base}_{}", c % 20),
                1 => base,
                2 => format!("{name}x"),
                _ => format!("{}_{}", oidc_authz_fuzz::COOKIE_NAME, c % 20),
            };
        }
        4 => {
            let v = &mut pairs[i].1;
            let keep = pos % (v.len() + 1);
            v.truncate(keep);
        }
        5 => {
            let v = &mut pairs[i].1;
            if !v.is_empty() {
                let at = pos % v.len();
                let ch = char::from(B64URL[usize::from(a) % 64]);
                v.replace_range(at..=at, &ch.to_string());
            }
        }
        6 => {
            let v = &mut pairs[i].1;
            let at = pos % (v.len() + 1);
            v.insert(at, char::from(B64URL[usize::from(a) % 64]));
        }
        7 => {
            let p = pairs.remove(i);
            pairs.insert(0, p);
        }
        _ => {
            let v = pairs[j].1.clone();
            pairs[i].1 = v;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (count, rest) = rest
        .split_first()
        .map_or((0, rest), |(n, r)| (usize::from(*n), r));
    let (script, raw) = rest.split_at((count * 4).min(rest.len()));
    let mut pairs = match flags & 3 {
        1 => canned_cookies(false),
        2 => canned_cookies(true),
        _ => Vec::new(),
    };
    let canned = !pairs.is_empty();
    for op in script.chunks(4) {
        edit(&mut pairs, op);
    }

    let mut builder = http::Request::builder()
        .method(if flags & 4 != 0 { "POST" } else { "GET" })
        .uri(PATHS[usize::from(flags >> 3) % PATHS.len()])
        .header(header::HOST, HOST);
    if flags & 0x80 != 0 {
        builder = builder.header(header::ACCEPT, "application/json");
    }
    if !pairs.is_empty() {
        let joined: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        if let Ok(v) = HeaderValue::from_str(&joined.join("; ")) {
            builder = builder.header(header::COOKIE, v);
        }
    }
    if !raw.is_empty() {
        for line in raw.split(|&b| b == b'\n') {
            if let Ok(v) = HeaderValue::from_bytes(line) {
                builder = builder.header(header::COOKIE, v);
            }
        }
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();

    let session = ENGINE.authenticate(&parts);
    if let Ok(s) = &session {
        assert_eq!(
            s.principal.subject, SUBJECT,
            "a session the engine never sealed was accepted"
        );
        assert!(canned, "a session was accepted without a sealed cookie");
    }
    if canned && script.is_empty() && raw.is_empty() {
        assert!(
            session.is_ok(),
            "the engine's own cookie was refused: {session:?}"
        );
    }

    let decision = RUNTIME.block_on(ENGINE.check(&parts));
    if let Decision::Allow(allow) = &decision {
        assert!(session.is_ok(), "allowed without a session");
        assert_eq!(allow.principal().subject, SUBJECT);
    }
});
