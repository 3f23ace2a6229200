//! The `--skip-auth-route` / `--skip-auth-regex` matcher.
//!
//! Input: a method byte and a request target, matched against a fixed set of rules (the
//! table's and a few more). Parsing and compiling rules is `skip_route_rules`.
//!
//! Invariants: the query string and a raw fragment never change the answer; a target that
//! is not a `/` path is never skipped.

#![no_main]

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use oidc_core::policy::skip_auth::SkipAuthRoutes;

static ROUTES: LazyLock<SkipAuthRoutes> = LazyLock::new(|| {
    let routes = [
        "GET=^/skip/auth/routes/get",
        "^/foo/.*/bar$",
        "POST!=^/private/",
        "(?i)^/static/.*\\.(css|js)$",
        "!=^/",
        "PUT=^/café/\\d+$",
    ];
    let regexes = ["^/skip/auth/regex$", "^/public/.*/endpoint$"];
    let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    SkipAuthRoutes::from_flags(&own(&routes), &own(&regexes)).expect("rules compile")
});

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "get", "PATCH",
];

fn check(routes: &SkipAuthRoutes, method: &Method, target: &str) {
    let skipped = routes.matches(method, target);
    let path = target.split(['?', '#']).next().unwrap_or("");
    assert_eq!(
        routes.matches(method, path),
        skipped,
        "the query or fragment of {target:?} changed the answer"
    );
    for suffix in ["?x=/skip/auth/regex", "#/bar", "?a#b"] {
        assert_eq!(
            routes.matches(method, &format!("{path}{suffix}")),
            skipped,
            "{path:?} + {suffix:?}"
        );
    }
    if !target.starts_with('/') {
        assert!(!skipped, "{target:?} is not a path but was skipped");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(rest) else {
        return;
    };
    let method = Method::from_bytes(METHODS[usize::from(first) % METHODS.len()].as_bytes())
        .expect("a method");
    check(&ROUTES, &method, target);
});
