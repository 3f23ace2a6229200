//! Requests that need no authentication: oauth2-proxy's `--skip-auth-route`,
//! `--skip-auth-regex` and `--skip-auth-preflight`.
//!
//! # Rules
//!
//! `--skip-auth-route` takes four forms, as in oauth2-proxy v7:
//!
//! | form | skips auth when |
//! |---|---|
//! | `METHOD=regex` | the method is `METHOD` and the path matches `regex` |
//! | `METHOD!=regex` | the method is `METHOD` and the path does **not** match `regex` |
//! | `regex` | the path matches `regex` (any method) |
//! | `!=regex` | the path does **not** match `regex` (any method) |
//!
//! `METHOD` is upper-cased and compared exactly with the request's method. A prefix before
//! the first `=` counts as a method only when it is an HTTP method token (letters, digits and
//! `!#$%&'*+-.^_`|~`); otherwise the whole rule is the regex (oauth2-proxy splits at any `=`
//! and would read `^/api/x=1` as method `^/API/X`). `--skip-auth-regex` (legacy) is a
//! `regex` rule for any method. Regexes use the [`regex`] crate's syntax (close to Go's
//! RE2) and, like Go's `MatchString`, are unanchored: write `^/public/` rather than
//! `/public/`, or `/x/public/..` matches too ([`SkipAuthRoutes::warnings`] lists such rules).
//! A request is skipped when any rule says so.
//!
//! # What the regexes see
//!
//! Only the path, never the query string (GHSA-7rh7-c77v-6434): the target is cut at the
//! first `?` or `#`, the path is percent-decoded once, and a `#` that decoding produced
//! ends the path (GHSA-pxq7-h93f-9jrg: `/public/secret%23/endpoint` is matched as
//! `/public/secret`, what a backend that takes `#` as a fragment serves).
//!
//! This module fails closed where a backend could read the path differently from the
//! matcher. A request is skipped only when **every** reading below is skipped:
//!
//! - the decoded path cut at the first `#` (oauth2-proxy's reading), and the whole decoded
//!   path (a backend that keeps `%23` as part of a file name);
//! - each of those with `;parameters` removed from every segment (Java servlet containers
//!   serve `/admin;x=/public.css` as `/admin`);
//! - each of those with `.` and `..` segments resolved, `\` counting as `/` (Windows and some
//!   frameworks);
//! - each of those with runs of `/` merged into one, before and after the dot segments are
//!   resolved (nginx's `merge_slashes`, Tomcat and many frameworks serve `//admin` and
//!   `/public//../admin` as `/admin`; Istio's default path normalisation does not merge);
//! - all of the above for the path decoded again while it still holds valid percent-escapes
//!   (`%2523` → `%23` → `#`), for stacks that decode more than once (up to three layers;
//!   a path still encoded after that is never skipped).
//!
//! A target that is not an origin-form path (`/...`), has a `%` not followed by two hex
//! digits, decodes to invalid UTF-8, or contains a control character (NUL included) is never
//! skipped: authentication is required. Nothing here panics on any input.

use std::borrow::Cow;
use std::fmt;

use http::Method;
use http::request::Parts;
use regex::{RegexBuilder, RegexSet, RegexSetBuilder};

use crate::config::setting::Setting;

/// Layers of percent-encoding a path is unwrapped to; deeper nesting is never skipped.
const MAX_DECODE_ROUNDS: usize = 3;

/// Compiled size limit of one rule's regex (bytes of automaton), far above any sane rule.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A skip-auth route or regex that cannot be used. Its message names the rule and what to
/// fix, but not the setting ([`SkipAuthError::setting`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SkipAuthError {
    /// The regex is empty.
    #[error(
        "{rule:?} has an empty regex, which would match every path; write the path regex explicitly (e.g. GET=^/health$, or .* if every path is meant)"
    )]
    EmptyRegex {
        /// [`Setting::SkipAuthRoutes`] or [`Setting::SkipAuthRegexes`].
        setting: Setting,
        /// The rule as given.
        rule: String,
    },
    /// The part before `=` is not an HTTP method.
    #[error("{rule:?} has an invalid method {method:?}")]
    Method {
        /// [`Setting::SkipAuthRoutes`].
        setting: Setting,
        /// The rule as given.
        rule: String,
        /// The method as given.
        method: String,
    },
    /// The regex does not compile.
    #[error("{rule:?} is not a valid regex")]
    Regex {
        /// [`Setting::SkipAuthRoutes`] or [`Setting::SkipAuthRegexes`].
        setting: Setting,
        /// The rule as given.
        rule: String,
        /// The regex crate's error.
        #[source]
        source: regex::Error,
    },
}

impl SkipAuthError {
    /// The setting the rule came from: [`Setting::SkipAuthRoutes`] or
    /// [`Setting::SkipAuthRegexes`].
    #[must_use]
    pub fn setting(&self) -> Setting {
        match self {
            Self::EmptyRegex { setting, .. }
            | Self::Method { setting, .. }
            | Self::Regex { setting, .. } => *setting,
        }
    }
}

/// One parsed rule (its regex is in one of [`SkipAuthRoutes`]' sets).
#[derive(Clone)]
struct Route {
    /// `None`: any method.
    method: Option<Method>,
    /// `!=`: skip when the path does *not* match.
    negate: bool,
    /// The regex as written.
    pattern: String,
    /// The setting and text it came from, for [`SkipAuthRoutes::warnings`] and `Debug`.
    setting: Setting,
    source: String,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.setting, self.source)
    }
}

impl Route {
    /// A rule for any method that skips on a match: one pass of a set answers for all of them.
    fn is_plain(&self) -> bool {
        self.method.is_none() && !self.negate
    }
}

/// The compiled `--skip-auth-route` and `--skip-auth-regex` rules.
///
/// ```
/// use http::Method;
/// use oidc_core::policy::skip_auth::SkipAuthRoutes;
///
/// let routes = SkipAuthRoutes::new(&["GET=^/health$".to_owned(), "^/public/".to_owned()])?;
/// assert!(routes.matches(&Method::GET, "/health"));
/// assert!(!routes.matches(&Method::POST, "/health"));
/// assert!(routes.matches(&Method::POST, "/public/logo.png?v=2"));
/// assert!(!routes.matches(&Method::GET, "/private?next=/public/"));
/// # Ok::<(), oidc_core::policy::skip_auth::SkipAuthError>(())
/// ```
///
/// # Cost per request
///
/// One pass over each reading of the path answers for every rule, however many: the rules for
/// any method that skip on a match are one [`RegexSet`] (`is_match`, which stops at the first
/// match); the others (a method, or `!=`) are a second set whose matches are then compared with
/// each of those rules' method and negation (a few instructions per such rule).
#[derive(Clone, Default)]
pub struct SkipAuthRoutes {
    routes: Vec<Route>,
    /// The regexes of the plain rules ([`Route::is_plain`]).
    plain: RegexSet,
    /// The indices in `routes` of the other rules, in order ...
    others: Box<[usize]>,
    /// ... and their regexes, in the same order.
    others_set: RegexSet,
}

impl fmt::Debug for SkipAuthRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkipAuthRoutes")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl SkipAuthRoutes {
    /// Parses `--skip-auth-route` values (`METHOD=regex`, `METHOD!=regex`, `regex`, `!=regex`).
    pub fn new(rules: &[String]) -> Result<Self, SkipAuthError> {
        Self::from_flags(rules, &[])
    }

    /// Parses `--skip-auth-route` values and legacy `--skip-auth-regex` values (a regex
    /// for any method, never negated, `=` included in the regex).
    pub fn from_flags(routes: &[String], regexes: &[String]) -> Result<Self, SkipAuthError> {
        let mut out = Vec::with_capacity(routes.len() + regexes.len());
        for r in regexes {
            out.push(compile(Setting::SkipAuthRegexes, r, None, false, r)?);
        }
        for r in routes {
            let (method, negate, pattern) = split_route(r);
            let method = match method {
                None => None,
                Some(m) => Some(
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                        SkipAuthError::Method {
                            setting: Setting::SkipAuthRoutes,
                            rule: r.clone(),
                            method: m.to_owned(),
                        }
                    })?,
                ),
            };
            out.push(compile(
                Setting::SkipAuthRoutes,
                r,
                method,
                negate,
                pattern,
            )?);
        }
        let set = |routes: &mut dyn Iterator<Item = &Route>| -> Result<RegexSet, SkipAuthError> {
            let routes: Vec<&Route> = routes.collect();
            RegexSetBuilder::new(routes.iter().map(|r| r.pattern.as_str()))
                .size_limit(REGEX_SIZE_LIMIT.saturating_mul(routes.len().max(1)))
                .build()
                .map_err(|source| SkipAuthError::Regex {
                    setting: routes
                        .first()
                        .map_or(Setting::SkipAuthRoutes, |r| r.setting),
                    rule: format!("the {} rules together", routes.len()),
                    source,
                })
        };
        let plain = set(&mut out.iter().filter(|r| r.is_plain()))?;
        let others: Box<[usize]> = (0..out.len()).filter(|&i| !out[i].is_plain()).collect();
        let others_set = set(&mut others.iter().map(|&i| &out[i]))?;
        Ok(Self {
            routes: out,
            plain,
            others,
            others_set,
        })
    }

    /// `true` when no rule is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// How many rules are configured.
    #[must_use]
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Advice for rules that are probably wider than meant (unanchored regexes, negated
    /// rules), one line each, naming the setting and the rule. Log them at start-up.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.routes {
            let pattern = r.pattern.as_str();
            // Skip inline flags such as `(?i)` before looking for the anchor.
            let body = strip_leading_flags(pattern);
            if !body.starts_with('^') && !body.starts_with("\\A") {
                out.push(format!(
                    "{} {:?}: the regex is not anchored with ^, so it also matches inside longer paths (e.g. /anything{}); anchor it unless that is intended",
                    r.setting,
                    r.source,
                    if body.starts_with('/') { body } else { "/..." }
                ));
            }
            if r.negate {
                out.push(format!(
                    "{} {:?}: a != rule skips authentication for every path that does NOT match; make sure that is intended",
                    r.setting, r.source
                ));
            }
        }
        out
    }

    /// `true` when a rule lets `method` + `raw_path_and_query` through without
    /// authentication.
    ///
    /// `raw_path_and_query` is the request target as received (`/a%20b?x=1`), or a trusted
    /// `X-Forwarded-Uri`. See the [module documentation](self) for how the path is read;
    /// anything odd is not skipped.
    #[must_use]
    pub fn matches(&self, method: &Method, raw_path_and_query: &str) -> bool {
        if self.routes.is_empty() {
            return false;
        }
        let Some(readings) = path_readings(raw_path_and_query) else {
            return false;
        };
        readings.iter().all(|path| self.skips(method, path))
    }

    /// Whether a rule skips `method` + one reading of the path.
    fn skips(&self, method: &Method, path: &str) -> bool {
        if self.plain.is_match(path) {
            return true;
        }
        if self.others.is_empty() {
            return false;
        }
        let matched = self.others_set.matches(path);
        self.others.iter().enumerate().any(|(pattern, &i)| {
            let r = &self.routes[i];
            r.method.as_ref().is_none_or(|m| m == method) && matched.matched(pattern) != r.negate
        })
    }

    /// [`SkipAuthRoutes::matches`] for a request's method and target.
    #[must_use]
    pub fn matches_request(&self, parts: &Parts) -> bool {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.matches(&parts.method, target)
    }
}

/// A CORS preflight request, as `--skip-auth-preflight` lets through: `OPTIONS` with an
/// `Origin` and an `Access-Control-Request-Method` header.
///
/// Stricter than oauth2-proxy, which skips every `OPTIONS` request: a plain `OPTIONS`
/// still needs a session, so only what browsers send on their own (without cookies) passes.
#[must_use]
pub fn is_preflight(parts: &Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts.headers.contains_key(http::header::ORIGIN)
        && parts
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Splits a `--skip-auth-route` value into (method, negate, regex).
fn split_route(rule: &str) -> (Option<&str>, bool, &str) {
    if let Some(rest) = rule.strip_prefix("!=") {
        return (None, true, rest);
    }
    if let Some((before, after)) = rule.split_once('=') {
        let (method, negate) = match before.strip_suffix('!') {
            Some(m) => (m, true),
            None => (before, false),
        };
        if !method.is_empty() && method.bytes().all(is_token_byte) {
            return (Some(method), negate, after);
        }
    }
    (None, false, rule)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn compile(
    setting: Setting,
    rule: &str,
    method: Option<Method>,
    negate: bool,
    pattern: &str,
) -> Result<Route, SkipAuthError> {
    if pattern.is_empty() {
        return Err(SkipAuthError::EmptyRegex {
            setting,
            rule: rule.to_owned(),
        });
    }
    // Compiled alone first, so an error names its rule; matched in a set.
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|source| SkipAuthError::Regex {
            setting,
            rule: rule.to_owned(),
            source,
        })?;
    Ok(Route {
        method,
        negate,
        pattern: pattern.to_owned(),
        setting,
        source: rule.to_owned(),
    })
}

fn strip_leading_flags(mut pattern: &str) -> &str {
    // `(?i)`, `(?s-u)`, ... : a group of flag letters closed by `)`.
    while let Some(rest) = pattern.strip_prefix("(?") {
        match rest.find(')') {
            Some(end)
                if rest[..end]
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b'-') =>
            {
                pattern = &rest[end + 1..];
            }
            _ => break,
        }
    }
    pattern
}

/// Every way a backend may read the path of `raw`; `None` when the target is never skipped.
pub(crate) fn path_readings(raw: &str) -> Option<Vec<String>> {
    // Go's url.Parse: the fragment goes first, then the query.
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let raw_path = &raw[..end];
    if !raw_path.starts_with('/') {
        return None;
    }
    // Decoded once (what oauth2-proxy matches), then again while valid percent-escapes remain,
    // for stacks that decode more than once; too deep a nesting is never skipped.
    let mut decodings = vec![percent_decode_strict(raw_path)?];
    while let Some(again) = decodings
        .last()
        .filter(|d| d.contains('%'))
        .and_then(|d| percent_decode_strict(d))
    {
        if decodings.len() == MAX_DECODE_ROUNDS {
            return None;
        }
        decodings.push(again);
    }
    let mut readings: Vec<String> = Vec::with_capacity(1);
    for base in &decodings {
        if base.chars().any(char::is_control) {
            return None;
        }
        let cut = match base.find('#') {
            Some(i) => &base[..i],
            None => base.as_str(),
        };
        for whole in [cut, base.as_str()] {
            for variant in [Cow::Borrowed(whole), strip_path_params(whole)] {
                let resolved = resolve_dot_segments(&variant).into_owned();
                // Merged readings only where there is a run of `/` (no cost otherwise).
                let merged = variant
                    .contains("//")
                    .then(|| merge_slashes(&variant).into_owned());
                let merged_then_resolved = merged
                    .as_deref()
                    .map(|m| resolve_dot_segments(m).into_owned());
                let resolved_then_merged = resolved
                    .contains("//")
                    .then(|| merge_slashes(&resolved).into_owned());
                let all = [Some(variant.into_owned()), Some(resolved), merged]
                    .into_iter()
                    .chain([merged_then_resolved, resolved_then_merged]);
                for r in all.flatten() {
                    if !readings.contains(&r) {
                        readings.push(r);
                    }
                }
            }
        }
    }
    Some(readings)
}

/// Percent-decodes once; `None` on a malformed escape or invalid UTF-8.
fn percent_decode_strict(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Removes `;params` from every segment (`/a;x/b;y=1` → `/a/b`).
fn strip_path_params(path: &str) -> Cow<'_, str> {
    if !path.contains(';') {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(seg.split(';').next().unwrap_or(""));
    }
    Cow::Owned(out)
}

/// Merges every run of `/` into one (`//a///b` → `/a/b`); borrowed when there is none.
fn merge_slashes(path: &str) -> Cow<'_, str> {
    if !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Resolves `.` and `..` segments (RFC 3986 §5.2.4), with `\` read as `/`; borrowed when
/// there is nothing to resolve.
fn resolve_dot_segments(path: &str) -> Cow<'_, str> {
    let has_dots = path.split(['/', '\\']).any(|seg| seg == "." || seg == "..");
    if !has_dots {
        return Cow::Borrowed(path);
    }
    let mut stack: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split(['/', '\\']).skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    stack.push("");
                }
            }
            ".." => {
                stack.pop();
                if i == last {
                    stack.push("");
                }
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &stack {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(rules: &[&str]) -> SkipAuthRoutes {
        SkipAuthRoutes::new(&rules.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parses_the_four_forms() {
        assert_eq!(split_route("GET=^/a"), (Some("GET"), false, "^/a"));
        assert_eq!(split_route("get!=^/a"), (Some("get"), true, "^/a"));
        assert_eq!(split_route("^/a"), (None, false, "^/a"));
        assert_eq!(split_route("!=^/a"), (None, true, "^/a"));
        // A `=` inside a regex without a method is part of the regex.
        assert_eq!(split_route("^/api/x=1"), (None, false, "^/api/x=1"));
        assert_eq!(split_route("^/a!=b"), (None, false, "^/a!=b"));
        // Only the first `=` splits.
        assert_eq!(split_route("POST=^/a=b"), (Some("POST"), false, "^/a=b"));
    }

    #[test]
    fn many_rules_of_every_form_in_one_pass() {
        let mut rules: Vec<String> = (0..500).map(|i| format!("^/public{i}/")).collect();
        rules.extend((0..500).map(|i| format!("GET=^/get{i}$")));
        rules.push("POST!=^/private/".to_owned());
        let r = SkipAuthRoutes::new(&rules).unwrap();
        assert_eq!(r.len(), 1001);
        assert!(r.matches(&Method::PUT, "/public499/x"));
        assert!(r.matches(&Method::GET, "/get250"));
        assert!(!r.matches(&Method::HEAD, "/get250"));
        assert!(!r.matches(&Method::GET, "/get250/x"));
        // `POST!=^/private/`: every other POST path is skipped, never the private one.
        assert!(r.matches(&Method::POST, "/anything"));
        assert!(!r.matches(&Method::POST, "/private/x"));
        assert!(!r.matches(&Method::PUT, "/private/x"));
        // Every reading must be skipped: `/public1/../admin` is also read as `/admin`.
        assert!(!r.matches(&Method::GET, "/public1/../admin"));
    }

    #[test]
    fn method_and_negation() {
        let r = routes(&["get=^/health$", "POST!=^/private/"]);
        assert!(r.matches(&Method::GET, "/health"));
        assert!(!r.matches(&Method::HEAD, "/health"));
        assert!(r.matches(&Method::POST, "/anything"));
        assert!(!r.matches(&Method::POST, "/private/x"));
        assert!(!r.matches(&Method::PUT, "/anything"));
        let any = routes(&["!=^/private/"]);
        assert!(any.matches(&Method::DELETE, "/public"));
        assert!(!any.matches(&Method::DELETE, "/private/a"));
    }

    #[test]
    fn legacy_regex_keeps_equals_signs() {
        let r =
            SkipAuthRoutes::from_flags(&[], &["^/a=b$".to_owned(), "GET=x".to_owned()]).unwrap();
        assert!(r.matches(&Method::POST, "/a=b"));
        assert!(r.matches(&Method::POST, "/GET=x"));
    }

    #[test]
    fn bad_rules_name_the_setting_and_the_rule() {
        let err = SkipAuthRoutes::new(&["GET=^/(".to_owned()]).unwrap_err();
        assert_eq!(err.setting(), Setting::SkipAuthRoutes);
        assert_eq!(err.to_string(), "\"GET=^/(\" is not a valid regex");
        let source = std::error::Error::source(&err).expect("the regex error");
        assert!(source.is::<regex::Error>(), "{source}");
        let err = SkipAuthRoutes::new(&["GET=".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("empty regex"), "{err}");
        let err = SkipAuthRoutes::from_flags(&[], &["[".to_owned()]).unwrap_err();
        assert_eq!(err.setting(), Setting::SkipAuthRegexes);
        assert!(err.to_string().starts_with("\"[\""), "{err}");
    }

    #[test]
    fn never_the_query_and_decoded_fragment_cuts() {
        let r = routes(&["^/api/.*/status", "^/public/.*/endpoint$"]);
        assert!(!r.matches(&Method::GET, "/api/private/sensitive?path=/status"));
        assert!(!r.matches(&Method::GET, "/api/private/sensitive#/status"));
        assert!(r.matches(&Method::GET, "/api/x/status?y=1"));
        assert!(r.matches(&Method::GET, "/public/a%20b/endpoint"));
        assert!(!r.matches(&Method::GET, "/public/secret%23/endpoint"));
        // Cutting must not widen either: the whole decoded path must be public too.
        let wide = routes(&["^/public/[^#]*$"]);
        assert!(!wide.matches(&Method::GET, "/public/x%23/../../secret"));
        assert!(wide.matches(&Method::GET, "/public/x"));
        let css = routes(&["\\.css$"]);
        assert!(!css.matches(&Method::GET, "/admin%23.css"));
    }

    #[test]
    fn path_parameters_dots_and_odd_bytes_fail_closed() {
        let r = routes(&["^/public/"]);
        assert!(!r.matches(&Method::GET, "/public/..%2Fadmin"));
        assert!(!r.matches(&Method::GET, "/public/%2e%2e/admin"));
        assert!(!r.matches(&Method::GET, "/public/..%5Cadmin"));
        assert!(r.matches(&Method::GET, "/public/./a"));
        assert!(r.matches(&Method::GET, "/public/a/../b"));
        let css = routes(&["\\.css$"]);
        assert!(!css.matches(&Method::GET, "/admin;x.css"));
        assert!(css.matches(&Method::GET, "/a;v=1/site.css"));
        assert!(!r.matches(&Method::GET, "/public/%00"));
        assert!(!r.matches(&Method::GET, "/public/%zz"));
        assert!(!r.matches(&Method::GET, "/public/%"));
        assert!(!r.matches(&Method::GET, "/public/%ff"));
        assert!(!r.matches(&Method::GET, "public/x"));
        assert!(!r.matches(&Method::GET, "http://evil/public/x"));
        assert!(!r.matches(&Method::GET, ""));
        assert!(r.matches(&Method::GET, "/public/caf%C3%A9"));
        let unicode = routes(&["^/café$"]);
        assert!(unicode.matches(&Method::GET, "/caf%C3%A9"));
    }

    #[test]
    fn readings() {
        assert_eq!(path_readings("/a/b?x").unwrap(), ["/a/b"]);
        assert_eq!(path_readings("/a%23b").unwrap(), ["/a", "/a#b"]);
        assert_eq!(path_readings("/a%2523b").unwrap(), ["/a%23b", "/a", "/a#b"]);
        assert_eq!(path_readings("/100%25").unwrap(), ["/100%"]);
        assert!(path_readings("/a%2500").is_none());
        assert!(path_readings("/a%252525").is_some());
        assert!(path_readings("/a%25252523").is_none());
        assert_eq!(resolve_dot_segments("/a/./b/../c"), "/a/c");
        assert_eq!(resolve_dot_segments("/../.."), "/");
        assert_eq!(resolve_dot_segments("/a/.."), "/");
        assert_eq!(resolve_dot_segments("/a/b/.."), "/a/");
        assert_eq!(resolve_dot_segments("/a\\..\\b"), "/b");
        assert_eq!(strip_path_params("/a;x/b;y=1;z"), "/a/b");
        assert_eq!(merge_slashes("//a///b/"), "/a/b/");
        assert_eq!(merge_slashes("/a/b"), "/a/b");
        assert_eq!(
            path_readings("//admin/users").unwrap(),
            ["//admin/users", "/admin/users"]
        );
        // nginx merges first, then resolves: `/public//../admin` is `/admin` there, while the
        // unmerged reading keeps it under `/public/`.
        let r = path_readings("/public//..%2Fadmin/users").unwrap();
        assert!(r.contains(&"/admin/users".to_owned()), "{r:?}");
        assert!(r.contains(&"/public/admin/users".to_owned()), "{r:?}");
        let r = path_readings("/%2Fadmin/users").unwrap();
        assert!(r.contains(&"/admin/users".to_owned()), "{r:?}");
    }

    #[test]
    fn merged_slashes_are_never_skipped_unless_every_reading_is() {
        let r = routes(&["GET=^/public/"]);
        assert!(r.matches(&Method::GET, "/public/a"));
        for path in [
            "/public//../admin/users",
            "/public//..%2Fadmin/users",
            "/public/%2F../admin",
            "//public/a",
        ] {
            assert!(!r.matches(&Method::GET, path), "{path} is skipped");
        }
    }

    #[test]
    fn warnings_for_wide_rules() {
        let r = routes(&["(?i)^/ok", "/public", "!=^/private"]);
        let w = r.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("\"/public\"") && w[0].contains("not anchored"));
        assert!(w[1].contains("NOT match"));
    }

    #[test]
    fn preflight() {
        let req = |method: &str, headers: &[(&str, &str)]| {
            let mut b = http::Request::builder().method(method).uri("/api");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert!(is_preflight(&req(
            "OPTIONS",
            &[
                ("origin", "https://a.example.com"),
                ("access-control-request-method", "PUT")
            ]
        )));
        assert!(!is_preflight(&req("OPTIONS", &[])));
        assert!(!is_preflight(&req(
            "GET",
            &[
                ("origin", "https://a.example.com"),
                ("access-control-request-method", "PUT")
            ]
        )));
    }
}
