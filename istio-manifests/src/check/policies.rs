//! The AuthorizationPolicies among the manifests ([`Policy`], found even when mis-indented
//! under `selector`) and which requests they send to their provider.

use super::model::Out;
use super::resources::{Res, list};
use crate::names::istio_match;
use crate::yaml::Node;

/// An AuthorizationPolicy, with its fields found even when mis-indented under `selector`.
pub(super) struct Policy<'a> {
    pub(super) res: &'a Res<'a>,
    pub(super) action: Option<&'a Node>,
    pub(super) provider: Option<&'a Node>,
    pub(super) rules: Option<&'a Node>,
}

impl Policy<'_> {
    pub(super) fn is_custom(&self) -> bool {
        self.action.and_then(Node::as_str) == Some("CUSTOM")
    }
}

pub(super) fn policies<'a>(out: &mut Out, resources: &'a [Res<'a>]) -> Vec<Policy<'a>> {
    let mut found = Vec::new();
    for res in resources.iter().filter(|r| r.is("AuthorizationPolicy")) {
        let Some(spec) = res.spec else { continue };
        let selector = spec.get_ci("selector");
        let field = |key: &str| -> (Option<&'a Node>, Option<&'a Node>) {
            (
                spec.get_ci(key),
                selector.and_then(|s| s.entry_ci(key)).map(|(k, _)| k),
            )
        };
        let mut nested = Vec::new();
        let mut get = |key: &'static str| -> Option<&'a Node> {
            let (direct, under) = field(key);
            if let (None, Some(k)) = (direct, under) {
                nested.push((key, k.line));
                return selector.and_then(|s| s.get_ci(key));
            }
            direct
        };
        let policy = Policy {
            res,
            action: get("action"),
            provider: get("provider"),
            rules: get("rules"),
        };
        if let Some((_, first)) = nested.first() {
            let keys: Vec<&str> = nested.iter().map(|(k, _)| *k).collect();
            let selector_line = spec.entry_ci("selector").map_or(first - 1, |(k, _)| k.line);
            out.add(
                res.file,
                *first,
                "policy-nested-under-selector",
                format!(
                    "AuthorizationPolicy {}: {} indented under `selector` (line {selector_line}), so the policy has no {} of its own{}",
                    res.name(),
                    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                    keys.join("/"),
                    if keys.contains(&"action") { " and is an ALLOW policy that matches nothing: with it, the gateway denies every request" } else { "" },
                ),
                format!("move {} two spaces left, to the same column as `selector:` (siblings under spec)", keys.join(", ")),
            );
        }
        let name = res.name();
        match (policy.is_custom(), policy.provider) {
            (true, None) => out.add(res.file, policy.action.map_or(res.line(), |n| n.line), "policy-action", format!("AuthorizationPolicy {name} is CUSTOM but names no provider"), "add provider: { name: <an extensionProviders name> }".to_owned()),
            (false, Some(provider)) => out.add(res.file, provider.line, "policy-action", format!("AuthorizationPolicy {name} names a provider but its action is {}: only CUSTOM calls a provider", policy.action.and_then(Node::as_str).unwrap_or("ALLOW (the default)")), "set action: CUSTOM".to_owned()),
            _ => {}
        }
        if policy.is_custom() && policy.rules.is_none_or(|r| r.items().is_empty()) {
            out.add(res.file, policy.action.map_or(res.line(), |n| n.line), "policy-action", format!("AuthorizationPolicy {name} is CUSTOM without rules: it matches no request, so the provider is never called"), "add rules, e.g. `rules: [{to: [{operation: {hosts: [\"app.example.com\"]}}]}]`".to_owned());
        }
        found.push(policy);
    }
    found
}

/// A rule's `to` operations (an absent `to` matches every request).
pub(super) fn operations(rule: &Node) -> Vec<Option<&Node>> {
    match rule.get_ci("to") {
        None => vec![None],
        Some(to) => to.items().iter().map(|t| t.get_ci("operation")).collect(),
    }
}

/// Whether an operation matches a `method` request of `path` on `host`.
pub(super) fn operation_matches_request(
    op: Option<&Node>,
    host: &str,
    method: &str,
    path: &str,
) -> bool {
    let Some(op) = op else { return true };
    let any = |key: &str, value: &str, ci: bool| {
        op.get_ci(key)
            .map(|n| n.strings().iter().any(|(p, _)| istio_match(p, value, ci)))
    };
    any("hosts", host, true).unwrap_or(true)
        && !any("notHosts", host, true).unwrap_or(false)
        && any("paths", path, false).unwrap_or(true)
        && !any("notPaths", path, false).unwrap_or(false)
        && any("methods", method, false).unwrap_or(true)
        && !any("notMethods", method, false).unwrap_or(false)
}

pub(super) fn policy_hosts<'a>(policy: &'a Policy) -> Vec<(&'a str, usize)> {
    policy
        .rules
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .flat_map(operations)
        .flatten()
        .flat_map(|op| list(op.get_ci("hosts")))
        .collect()
}

pub(super) fn policy_matches(policy: &Policy, host: &str, path: &str) -> bool {
    policy_checks(policy, host, "GET", path)
}

/// Whether the policy sends a `method` request of `path` on `host` to its provider.
pub(super) fn policy_checks(policy: &Policy, host: &str, method: &str, path: &str) -> bool {
    policy
        .rules
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .any(|rule| {
            operations(rule)
                .into_iter()
                .any(|op| operation_matches_request(op, host, method, path))
        })
}
