//! Authorization per host and path: `--authorization-rule`.
//!
//! oauth2-proxy has one set of `--allowed-group`/`--allowed-role` for everything behind it.
//! A gateway in front of several applications needs more: `/admin` only for admins,
//! `reports.example.com` only for the `reporting` group. Each `--authorization-rule` names
//! where it applies and who may pass there:
//!
//! ```text
//! --authorization-rule='^/admin/=role:admin'
//! --authorization-rule='reports.example.com=group:reporting,role:nginx:reports-viewer'
//! --authorization-rule='*.internal.example.com^/api/=group:ops'
//! ```
//!
//! The form is `[HOST][PATH_REGEX]=REQUIREMENT[,REQUIREMENT...]`:
//!
//! - `HOST` is a host name compared case-insensitively with the request's host (its port
//!   ignored), or `*.example.com` for any subdomain of `example.com` (not `example.com`
//!   itself). Without a host the rule applies to every host.
//! - `PATH_REGEX` starts at the first `/` or `^`; it is a regex matched, unanchored like
//!   `--skip-auth-route`, against the request's path (never its query), read every way a
//!   backend may read it (percent-decoded, `;params` removed, dot segments resolved; see
//!   [`crate::policy::skip_auth`]). Without a path the rule applies to every path.
//! - The requirements after the **last** `=` are any-of, like oauth2-proxy's flags:
//!   `group:NAME`, `role:ROLE` (a Keycloak realm role) or `role:CLIENT:ROLE` (a client role,
//!   as `--allowed-role` spells it).
//!
//! # Semantics: rules only ever narrow
//!
//! A request must pass `--email-domain`/`--authenticated-emails-file`, then
//! `--allowed-group`/`--allowed-role` (when given), then **every** rule that applies to it.
//! Rules are therefore independent of their order, and no rule can open what the global
//! flags close. Matching fails closed: a path that cannot be read safely (bad escapes,
//! control characters, too many encoding layers, or `<prefix>/auth` without a trusted
//! `X-Forwarded-Uri`) and a request without a host are treated as matched by every rule.
//!
//! Requests that `--skip-auth-route`/`--skip-auth-preflight` let through are public: they reach
//! the upstream without an identity and no rule judges them. Rules apply to signed-in users
//! (sessions and, with `--skip-jwt-bearer-tokens`, bearer tokens).
//!
//! ```
//! use oidc_core::Session;
//! use oidc_core::policy::route_rules::RouteRules;
//!
//! let rules = RouteRules::new(&["app.example.com^/admin/=role:admin".to_owned()])?;
//! let mut alice = Session::default();
//! assert!(rules.refusing(Some("app.example.com"), Some("/admin/users"), &alice).is_some());
//! assert!(rules.refusing(Some("app.example.com"), Some("/%61dmin/users"), &alice).is_some());
//! assert!(rules.refusing(Some("app.example.com"), Some("/home"), &alice).is_none());
//! assert!(rules.refusing(Some("other.example.com"), Some("/admin/users"), &alice).is_none());
//! alice.principal.realm_roles.push("admin".to_owned());
//! assert!(rules.refusing(Some("app.example.com:8443"), Some("/admin/users"), &alice).is_none());
//! # Ok::<(), oidc_core::policy::route_rules::RouteRuleError>(())
//! ```

use std::fmt;

use regex::{RegexBuilder, RegexSet, RegexSetBuilder};

use crate::identity::principal::Principal;
use crate::policy::rule::Rule;

/// Compiled size limit of one rule's path regex.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// An authorization rule that cannot be used. Its message names the rule and how to write
/// it, but not the setting ([`crate::config::setting::Setting::AuthorizationRules`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteRuleError {
    /// The rule is not `[HOST][PATH_REGEX]=REQUIREMENT[,REQUIREMENT...]`.
    #[error("{rule:?} {reason}")]
    Form {
        /// The rule as given.
        rule: String,
        /// What is wrong and how to write it.
        reason: String,
    },
    /// The rule names neither a host nor a path (a requirement for every request belongs in
    /// the global rule, [`crate::config::setting::Setting::Authorization`]).
    #[error("{rule:?} names neither a host nor a path")]
    Everywhere {
        /// The rule as given.
        rule: String,
    },
    /// The path regex does not compile.
    #[error("{rule:?} has an invalid path regex")]
    Regex {
        /// The rule as given.
        rule: String,
        /// The regex crate's error.
        #[source]
        source: regex::Error,
    },
}

/// The `--authorization-rule` list, compiled. Empty by default (no per-route rule).
///
/// # Cost per request
///
/// The path regexes of all rules are one [`RegexSet`]: one pass over each reading of the path
/// finds every rule whose path matches, however many there are. Only those rules and the
/// rules without a path are then looked at (their host, then the requirement), so a request
/// costs one set pass plus a few instructions per rule that could apply, not per rule.
#[derive(Clone, Default)]
pub struct RouteRules {
    rules: Box<[RouteRule]>,
    /// The path regexes, in rule order: pattern `i` is the path of `rules[with_path[i]]`.
    paths: RegexSet,
    with_path: Box<[usize]>,
    /// The rules without a path (they apply to every path), in order.
    pathless: Box<[usize]>,
}

#[derive(Clone)]
struct RouteRule {
    host: HostPattern,
    /// The path regex as written.
    path: Option<String>,
    rule: Rule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// Lower-case host name.
    Exact(Box<str>),
    /// `*.example.com`: the lower-case `.example.com`.
    Subdomains(Box<str>),
}

impl RouteRules {
    /// Compiles `--authorization-rule` values (see the [module documentation](self)).
    ///
    /// # Errors
    ///
    /// [`RouteRuleError`] naming the first rule that has no `=`, no requirement, an unknown
    /// requirement, a bad host or an invalid regex.
    pub fn new(specs: &[String]) -> Result<Self, RouteRuleError> {
        let rules = specs
            .iter()
            .map(|s| RouteRule::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let (with_path, pathless): (Vec<usize>, Vec<usize>) =
            (0..rules.len()).partition(|&i| rules[i].path.is_some());
        let paths =
            RegexSetBuilder::new(with_path.iter().filter_map(|&i| rules[i].path.as_deref()))
                .size_limit(REGEX_SIZE_LIMIT.saturating_mul(with_path.len().max(1)))
                .build()
                .map_err(|source| RouteRuleError::Regex {
                    rule: format!("the {} path regexes together", with_path.len()),
                    source,
                })?;
        Ok(Self {
            rules: rules.into_boxed_slice(),
            paths,
            with_path: with_path.into_boxed_slice(),
            pathless: pathless.into_boxed_slice(),
        })
    }

    /// `true` when there is no rule (nothing to evaluate per request).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule that applies to `host` + `target` (a request target such as
    /// `/admin?x=1`) and refuses `who`; `None` when every applicable rule allows.
    ///
    /// `None` for the host or the target means unknown: then every rule with a host, or
    /// with a path, applies (fail closed).
    #[must_use]
    pub fn refusing<P: AsRef<Principal> + ?Sized>(
        &self,
        host: Option<&str>,
        target: Option<&str>,
        who: &P,
    ) -> Option<&Rule> {
        if self.rules.is_empty() {
            return None;
        }
        let host = host.map(strip_port);
        let refuses = |i: usize| {
            let r = &self.rules[i];
            (r.host.matches(host) && !r.rule.allows(who)).then_some(&r.rule)
        };
        if self.with_path.is_empty() {
            return self.pathless.iter().find_map(|&i| refuses(i));
        }
        // Unknown or unreadable path: every rule applies (fail closed).
        let Some(readings) = target.and_then(crate::policy::skip_auth::path_readings) else {
            return (0..self.rules.len()).find_map(refuses);
        };
        // The rules whose path matches some reading, in rule order.
        let mut matched: Vec<usize> = Vec::new();
        for reading in &readings {
            matched.extend(
                self.paths
                    .matches(reading)
                    .iter()
                    .map(|p| self.with_path[p]),
            );
        }
        matched.sort_unstable();
        matched.dedup();
        // Merged with the rules without a path, in rule order.
        let (mut a, mut b) = (matched.iter().peekable(), self.pathless.iter().peekable());
        std::iter::from_fn(|| match (a.peek(), b.peek()) {
            (Some(&&x), Some(&&y)) if x < y => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => None,
        })
        .find_map(|&i| refuses(i))
    }
}

impl fmt::Debug for RouteRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|r| {
                let host = match &r.host {
                    HostPattern::Any => "*".to_owned(),
                    HostPattern::Exact(h) => h.to_string(),
                    HostPattern::Subdomains(s) => format!("*{s}"),
                };
                let path = r.path.as_deref().unwrap_or(".*");
                format!("{host} {path} -> {}", r.rule)
            }))
            .finish()
    }
}

impl RouteRule {
    fn parse(spec: &str) -> Result<Self, RouteRuleError> {
        let err = |reason: &str| RouteRuleError::Form {
            rule: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((place, needs)) = spec.rsplit_once('=') else {
            return Err(err(
                "has no '='; write [HOST][PATH_REGEX]=REQUIREMENT, e.g. ^/admin/=role:admin",
            ));
        };
        let (host, path) = match place.find(['/', '^']) {
            Some(i) => (&place[..i], Some(&place[i..])),
            None => (place, None),
        };
        if host.is_empty() && path.is_none() {
            return Err(RouteRuleError::Everywhere {
                rule: spec.to_owned(),
            });
        }
        let host = HostPattern::parse(host).map_err(&err)?;
        // Compiled alone first, so an error names its rule; matched in a set.
        if let Some(p) = path {
            RegexBuilder::new(p)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|source| RouteRuleError::Regex {
                    rule: spec.to_owned(),
                    source,
                })?;
        }
        let path = path.map(str::to_owned);
        let mut any = Vec::new();
        for need in needs.split(',').map(str::trim) {
            let rule = if let Some(group) = need.strip_prefix("group:") {
                (!group.is_empty()).then(|| Rule::group(group))
            } else if let Some(role) = need.strip_prefix("role:") {
                (!role.is_empty() && !role.ends_with(':') && !role.starts_with(':'))
                    .then(|| Rule::allowed_role(role))
            } else {
                None
            };
            match rule {
                Some(r) => any.push(r),
                None => {
                    return Err(err(&format!(
                        "has the requirement {need:?}; use group:NAME, role:ROLE or role:CLIENT:ROLE, separated by commas"
                    )));
                }
            }
        }
        Ok(Self {
            host,
            path,
            rule: Rule::any_of(any),
        })
    }
}

impl HostPattern {
    fn parse(host: &str) -> Result<Self, &'static str> {
        if host.is_empty() {
            return Ok(Self::Any);
        }
        let (suffix, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !name.starts_with('.')
            && !name.ends_with('.');
        if !valid {
            return Err(
                "has a bad host; give a host name (app.example.com) or *.example.com, without a port or scheme",
            );
        }
        let name = name.to_ascii_lowercase();
        Ok(if suffix {
            Self::Subdomains(format!(".{name}").into_boxed_str())
        } else {
            Self::Exact(name.into_boxed_str())
        })
    }

    /// Fails closed: with no host, a host rule applies.
    fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (Self::Any, _) | (_, None) => true,
            (Self::Exact(h), Some(x)) => x.eq_ignore_ascii_case(h),
            (Self::Subdomains(s), Some(x)) => {
                x.len() > s.len()
                    && x.is_char_boundary(x.len() - s.len())
                    && x[x.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// `host:port` → `host`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::session::model::Session;

    fn rules(specs: &[&str]) -> RouteRules {
        RouteRules::new(&specs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn user(groups: &[&str], realm: &[&str], client: &[&str]) -> Session {
        let owned = |v: &[&str]| v.iter().map(|g| (*g).to_owned()).collect();
        Session {
            principal: Principal {
                groups: owned(groups),
                realm_roles: owned(realm),
                client_roles: owned(client),
                ..Principal::default()
            },
            ..Session::default()
        }
    }

    #[test]
    fn among_many_rules_the_first_refusing_one_in_order() {
        let mut specs: Vec<String> = (0..1000).map(|i| format!("^/app{i}/=role:r{i}")).collect();
        specs.insert(500, "app.example.com=role:host".to_owned());
        specs.push("^/app7=role:late".to_owned());
        let rules = RouteRules::new(&specs).unwrap();
        let nobody = user(&[], &[], &[]);
        let refusing = |host, path, who: &Session| {
            rules
                .refusing(Some(host), Some(path), who)
                .map(ToString::to_string)
        };
        // Path rule 737 comes after the host rule (index 500): the host rule is reported.
        assert_eq!(
            refusing("app.example.com", "/app737/x", &nobody),
            Some(Rule::allowed_role("host").to_string())
        );
        // Path rule 7 comes before it.
        assert_eq!(
            refusing("app.example.com", "/app7/x", &nobody),
            Some(Rule::allowed_role("r7").to_string())
        );
        // On another host only the path rules apply: 737, then the last one.
        assert_eq!(
            refusing("other.example.com", "/app737/x", &nobody),
            Some(Rule::allowed_role("r737").to_string())
        );
        let r737 = user(&[], &["r737"], &[]);
        assert_eq!(
            refusing("other.example.com", "/app737/x", &r737),
            Some(Rule::allowed_role("late").to_string())
        );
        let both = user(&[], &["r737", "late"], &[]);
        assert_eq!(refusing("other.example.com", "/app737/x", &both), None);
        // An encoded path is read like the others; an unreadable one meets every rule.
        assert_eq!(refusing("other.example.com", "/%61pp737/x", &both), None);
        assert_eq!(
            refusing("other.example.com", "/app%zz/", &both),
            Some(Rule::allowed_role("r0").to_string())
        );
        assert_eq!(
            rules
                .refusing(Some("other.example.com"), None, &both)
                .map(ToString::to_string),
            Some(Rule::allowed_role("r0").to_string())
        );
    }

    #[test]
    fn path_rule_refuses_users_without_the_role_on_every_reading_of_the_path() {
        let r = rules(&["^/admin=role:admin"]);
        let nobody = user(&[], &[], &[]);
        let admin = user(&[], &["admin"], &[]);
        for target in [
            "/admin",
            "/admin/x?y=1",
            "/%61dmin",
            "/%2561dmin",
            "/public/../admin",
            "/admin;x=1",
            "/ad%ZZmin",
            "/admin\u{0}",
        ] {
            assert!(
                r.refusing(Some("h"), Some(target), &nobody).is_some(),
                "{target}"
            );
            if !target.contains('%') || target.contains("61") {
                assert!(
                    r.refusing(Some("h"), Some(target), &admin).is_none(),
                    "{target}"
                );
            }
        }
        assert!(
            r.refusing(Some("h"), Some("/home?next=/admin"), &nobody)
                .is_none()
        );
        assert!(r.refusing(Some("h"), Some("/x/admin"), &nobody).is_none());
        // An unknown target is held to every path rule.
        assert!(r.refusing(Some("h"), None, &nobody).is_some());
        assert!(r.refusing(Some("h"), None, &admin).is_none());
    }

    #[test]
    fn host_rules_match_exact_hosts_and_subdomains_without_ports() {
        let r = rules(&[
            "Reports.Example.com=group:reporting",
            "*.internal.example.com=group:ops",
        ]);
        let nobody = user(&[], &[], &[]);
        assert!(
            r.refusing(Some("reports.example.com"), Some("/"), &nobody)
                .is_some()
        );
        assert!(
            r.refusing(Some("REPORTS.example.com:443"), Some("/"), &nobody)
                .is_some()
        );
        assert!(
            r.refusing(Some("example.com"), Some("/"), &nobody)
                .is_none()
        );
        assert!(
            r.refusing(Some("evilreports.example.com"), Some("/"), &nobody)
                .is_none()
        );
        assert!(
            r.refusing(Some("a.internal.example.com"), Some("/"), &nobody)
                .is_some()
        );
        assert!(
            r.refusing(Some("internal.example.com"), Some("/"), &nobody)
                .is_none()
        );
        assert!(
            r.refusing(Some("internal.example.com.evil.com"), Some("/"), &nobody)
                .is_none()
        );
        // No host at all: every host rule applies.
        assert!(r.refusing(None, Some("/"), &nobody).is_some());
        let reporter = user(&["reporting"], &[], &[]);
        assert!(
            r.refusing(Some("reports.example.com"), Some("/"), &reporter)
                .is_none()
        );
        assert!(
            r.refusing(Some("a.internal.example.com"), Some("/"), &reporter)
                .is_some()
        );
    }

    #[test]
    fn requirements_are_any_of_and_every_applicable_rule_must_allow() {
        let r = rules(&[
            "app.example.com=group:staff,role:nginx:viewer",
            "app.example.com^/admin/=role:admin",
        ]);
        let staff = user(&["staff"], &[], &[]);
        let viewer = user(&[], &[], &["nginx:viewer"]);
        let admin_only = user(&[], &["admin"], &[]);
        let staff_admin = user(&["staff"], &["admin"], &[]);
        assert!(
            r.refusing(Some("app.example.com"), Some("/"), &staff)
                .is_none()
        );
        assert!(
            r.refusing(Some("app.example.com"), Some("/"), &viewer)
                .is_none()
        );
        let refused = r
            .refusing(Some("app.example.com"), Some("/admin/"), &staff)
            .unwrap();
        assert_eq!(refused.to_string(), "realm_role(admin)");
        let refused = r
            .refusing(Some("app.example.com"), Some("/admin/"), &admin_only)
            .unwrap();
        assert_eq!(
            refused.to_string(),
            "group(staff) or client_role(nginx:viewer)"
        );
        assert!(
            r.refusing(Some("app.example.com"), Some("/admin/"), &staff_admin)
                .is_none()
        );
    }

    #[test]
    fn bad_rules_are_refused_with_what_to_write() {
        for (spec, says) in [
            ("^/admin", "has no '='"),
            ("=group:x", "neither a host nor a path"),
            ("^/admin=", "group:NAME"),
            ("^/admin=admins", "group:NAME"),
            ("^/admin=role:", "group:NAME"),
            ("^/admin=group:", "group:NAME"),
            ("^/admin=role:nginx:", "group:NAME"),
            ("https:=group:x", "bad host"),
            ("app.example.com:8443=group:x", "bad host"),
            ("^/(admin=group:x", "invalid path regex"),
        ] {
            let e = RouteRules::new(&[spec.to_owned()]).unwrap_err();
            assert!(e.to_string().contains(says), "{spec}: {e}");
            assert!(!e.to_string().contains("--"), "{spec}: {e}");
        }
    }

    #[test]
    fn no_rules_refuse_nobody() {
        let r = RouteRules::default();
        assert!(r.is_empty());
        assert!(r.refusing(None, None, &Session::default()).is_none());
    }
}
