//! Parsing and compiling `--skip-auth-route` / `--skip-auth-regex` rules, then matching.
//!
//! Input: a line of tab-separated rules (the first half `--skip-auth-route`, the rest
//! `--skip-auth-regex`), then the request target. Parsing must never panic; a rule set that
//! parses must answer the same with or without the target's query and fragment.

#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use oidc_core::policy::skip_auth::SkipAuthRoutes;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rules, target) = text.split_once('\n').unwrap_or((&text, "/"));
    if rules.len() > 256 {
        return;
    }
    let rules: Vec<String> = rules.split('\t').map(str::to_owned).collect();
    let (routes, regexes) = rules.split_at(rules.len().div_ceil(2));
    let Ok(r) = SkipAuthRoutes::from_flags(routes, regexes) else {
        return;
    };
    let _ = r.warnings();
    for method in [Method::GET, Method::POST] {
        let skipped = r.matches(&method, target);
        let path = target.split(['?', '#']).next().unwrap_or("");
        assert_eq!(r.matches(&method, path), skipped, "{target:?}");
        assert_eq!(
            r.matches(&method, &format!("{path}?q=/x#f")),
            skipped,
            "{target:?}"
        );
        if !target.starts_with('/') {
            assert!(!skipped, "{target:?} is not a path but was skipped");
        }
    }
});
