//! Runs every row of `tests/data/skip-auth-routes.tsv` (oauth2-proxy's skip-auth test
//! cases and advisories) through [`SkipAuthRoutes`] and, for the `X-Forwarded-Uri` row,
//! [`TrustedProxies`].
//!
//! Columns: `method request_path_or_x_forwarded_uri skip_rules expected_auth_skipped
//! source_file note`.
//!
//! * `skip_rules` is `skip-auth-regex=<regex>` or `skip-auth-route=<rule>`.
//! * `expected_auth_skipped` starts with `yes` or `no`.
//! * The request column is either a request target, or
//!   `X-Forwarded-Uri:<uri> from untrusted RemoteAddr <ip> (trusted-proxy-ip=<cidr>)`: the
//!   request goes to `/oauth2/auth` (nginx `auth_request`) with that header from that peer.
//!   The target matched is the header's only when the peer is trusted, as the engine does.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method};
use oidc_core::http::trusted_proxy::TrustedProxies;
use oidc_core::policy::skip_auth::SkipAuthRoutes;

const TSV: &str = include_str!("data/skip-auth-routes.tsv");
const EXPECTED_ROWS: usize = 12;
/// The endpoint an `auth_request` subrequest is sent to.
const AUTH_ENDPOINT: &str = "/oauth2/auth";

struct Row<'a> {
    line: usize,
    method: Method,
    request: &'a str,
    rules: SkipAuthRoutes,
    skipped: bool,
    note: &'a str,
}

fn rows() -> Vec<Row<'static>> {
    let mut lines = TSV.lines().enumerate();
    let (_, header) = lines.next().expect("header");
    assert!(
        header.starts_with("method\t"),
        "unexpected header {header:?}"
    );
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 5, "line {}: {} columns", i + 1, cols.len());
            let (flag, rule) = cols[2].split_once('=').expect("flag=rule");
            let rule = vec![rule.to_owned()];
            let rules = match flag {
                "skip-auth-regex" => SkipAuthRoutes::from_flags(&[], &rule),
                "skip-auth-route" => SkipAuthRoutes::new(&rule),
                other => panic!("line {}: unknown flag {other}", i + 1),
            }
            .unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            let skipped = match cols[3].split_whitespace().next() {
                Some("yes") => true,
                Some("no") => false,
                other => panic!("line {}: expected {other:?}", i + 1),
            };
            Row {
                line: i + 1,
                method: cols[0].parse().expect("method"),
                request: cols[1],
                rules,
                skipped,
                note: cols.get(5).copied().unwrap_or(""),
            }
        })
        .collect()
}

/// `X-Forwarded-Uri:<uri> from untrusted RemoteAddr <ip> (trusted-proxy-ip=<cidr>)`.
struct ForwardedCase<'a> {
    uri: &'a str,
    peer: IpAddr,
    trusted: &'a str,
}

fn forwarded_case(request: &str) -> Option<ForwardedCase<'_>> {
    let rest = request.strip_prefix("X-Forwarded-Uri:")?;
    let (uri, rest) = rest.split_once(" from ")?;
    let rest = rest
        .trim_start_matches("untrusted ")
        .trim_start_matches("trusted ");
    let rest = rest.strip_prefix("RemoteAddr ")?;
    let (peer, rest) = rest.split_once(' ')?;
    let trusted = rest
        .trim()
        .strip_prefix("(trusted-proxy-ip=")?
        .strip_suffix(')')?;
    Some(ForwardedCase {
        uri,
        peer: peer.parse().ok()?,
        trusted,
    })
}

/// What the engine matches on `<prefix>/auth`: a trusted `X-Forwarded-Uri`, else the
/// request's own target.
fn auth_endpoint_target<'h>(
    trusted: &TrustedProxies,
    peer: IpAddr,
    headers: &'h HeaderMap,
) -> &'h str {
    trusted
        .forwarded(Some(peer), headers)
        .and_then(|f| f.uri)
        .unwrap_or(AUTH_ENDPOINT)
}

#[test]
fn every_row_of_the_table() {
    let rows = rows();
    assert_eq!(rows.len(), EXPECTED_ROWS, "rows in the TSV");
    let mut forwarded_rows = 0;
    for row in &rows {
        let Row {
            line,
            method,
            request,
            rules,
            skipped,
            note,
        } = row;
        if let Some(case) = forwarded_case(request) {
            forwarded_rows += 1;
            let trusted = TrustedProxies::new(&[case.trusted.to_owned()]).unwrap();
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-uri", HeaderValue::from_str(case.uri).unwrap());
            let target = auth_endpoint_target(&trusted, case.peer, &headers);
            assert_eq!(
                rules.matches(method, target),
                *skipped,
                "line {line}: {request} ({note})"
            );
            // The same header from a trusted proxy is believed.
            let proxy: IpAddr = case
                .trusted
                .split('/')
                .next()
                .unwrap()
                .parse()
                .expect("the trusted entry is an address");
            let target = auth_endpoint_target(&trusted, proxy, &headers);
            assert_eq!(target, case.uri, "line {line}");
            assert!(
                rules.matches(method, target),
                "line {line}: from the trusted proxy {proxy} the forwarded URI is matched"
            );
            continue;
        }
        assert_eq!(
            rules.matches(method, request),
            *skipped,
            "line {line}: {method} {request} ({note})"
        );
    }
    assert_eq!(forwarded_rows, 1, "the X-Forwarded-Uri row was recognised");
}

/// Whatever follows the path (a query, a fragment) never changes the answer.
#[test]
fn query_and_fragment_never_change_the_answer() {
    for row in rows() {
        if forwarded_case(row.request).is_some() {
            continue;
        }
        let path = row.request.split(['?', '#']).next().unwrap();
        let expected = row.rules.matches(&row.method, path);
        for suffix in [
            "?",
            "?x=1",
            "?path=/skip/auth/regex",
            "?a=/public/legit/endpoint",
            "#/endpoint",
            "#x?y",
            "?x#/bar",
        ] {
            let target = format!("{path}{suffix}");
            assert_eq!(
                row.rules.matches(&row.method, &target),
                expected,
                "line {}: {target}",
                row.line
            );
        }
    }
}

/// Encoding tricks around the table's rules are refused, never skipped.
#[test]
fn encoded_variants_fail_closed() {
    let rules = SkipAuthRoutes::from_flags(
        &[
            "^/foo/.*/bar$".to_owned(),
            "GET=^/skip/auth/routes/get".to_owned(),
        ],
        &["^/public/.*/endpoint$".to_owned()],
    )
    .unwrap();
    for target in [
        "/public/secret%23/endpoint",
        "/public/secret%2523/endpoint%23",
        "/public/secret%2523/endpoint",
        "/foo/secret%252523/bar",
        "/foo/secret%23/bar",
        "/foo/%2e%2e/admin/x/bar%23",
        "/foo/x/..%2f..%2fadmin%23/bar",
        "/foo/x%00/bar",
        "/foo/x%0a/bar",
        "/foo/%c0%af/bar",
        "/foo/%/bar",
        "/public/x;/../../admin/endpoint",
        "foo/x/bar",
        "//foo/x/bar",
        "/skip/auth/routes/get/../../../admin",
    ] {
        assert!(!rules.matches(&Method::GET, target), "{target} was skipped");
    }
    for target in [
        "/foo/x/bar",
        "/foo/a%20b/bar",
        "/public/legit/endpoint",
        "/skip/auth/routes/get/sub",
    ] {
        assert!(
            rules.matches(&Method::GET, target),
            "{target} was not skipped"
        );
    }
}
