//! How the cost of a request grows with the number of rules: `--skip-auth-route` and
//! `--authorization-rule`, 1 to 1000 of each, on a path that no rule matches (every rule is
//! considered) and on one that the last rule matches. Both are one `RegexSet` pass per reading
//! of the path, so the time should grow far slower than the rule count (the slope is printed
//! by `cargo bench -p benches --bench rules` as the times per count).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Method;
use oidc_core::Session;
use oidc_core::policy::route_rules::RouteRules;
use oidc_core::policy::skip_auth::SkipAuthRoutes;

/// The rule counts measured.
const COUNTS: [usize; 4] = [1, 10, 100, 1000];

fn skip_routes(c: &mut Criterion) {
    let mut group = c.benchmark_group("skip_auth_routes");
    for n in COUNTS {
        // Half any-method rules, half for GET only (a second set), as a real list mixes them.
        let rules: Vec<String> = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    format!("^/public{i}/")
                } else {
                    format!("GET=^/static{i}/")
                }
            })
            .collect();
        let routes = SkipAuthRoutes::new(&rules).expect("rules");
        let last = if (n - 1) % 2 == 0 {
            format!("/public{}/logo.png", n - 1)
        } else {
            format!("/static{}/logo.png", n - 1)
        };
        assert!(routes.matches(&Method::GET, &last), "{last}");
        assert!(!routes.matches(&Method::GET, "/app/some/page"));
        group.bench_with_input(BenchmarkId::new("no_match", n), &n, |b, _| {
            b.iter(|| routes.matches(&Method::GET, std::hint::black_box("/app/some/page")))
        });
        group.bench_with_input(BenchmarkId::new("last_matches", n), &n, |b, _| {
            b.iter(|| routes.matches(&Method::GET, std::hint::black_box(&last)))
        });
    }
    group.finish();
}

fn authorization_rules(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorization_rules");
    let mut alice = Session::default();
    alice.principal.realm_roles.push("viewer".to_owned());
    for n in COUNTS {
        // Path rules for one role each, and every tenth a host rule.
        let specs: Vec<String> = (0..n)
            .map(|i| {
                if i % 10 == 9 {
                    format!("tenant{i}.example.com=role:viewer")
                } else {
                    format!("^/app{i}/=role:viewer")
                }
            })
            .collect();
        let rules = RouteRules::new(&specs).expect("rules");
        let last = format!("/app{}/page", n - 1 - usize::from(n % 10 == 0));
        assert!(
            rules
                .refusing(Some("nginx.example.com"), Some(&last), &Session::default())
                .is_some(),
            "{last}"
        );
        group.bench_with_input(BenchmarkId::new("no_match", n), &n, |b, _| {
            b.iter(|| {
                rules.refusing(
                    Some("nginx.example.com"),
                    std::hint::black_box(Some("/home/some/page")),
                    &alice,
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("last_matches", n), &n, |b, _| {
            b.iter(|| {
                rules.refusing(
                    Some("nginx.example.com"),
                    std::hint::black_box(Some(last.as_str())),
                    &alice,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, skip_routes, authorization_rules);
criterion_main!(benches);
