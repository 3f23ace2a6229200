//! The Gateway API side of `istio --check`: `HTTPRoute`s, Gateway API `Gateway`s (ingress and
//! ambient waypoints) and CUSTOM policies that name them in `targetRefs`. The same routing story
//! as for the VirtualService: `<prefix>` goes to the adapter's Service and port without a
//! URLRewrite, the callback is routed, the route's parents and hostnames meet the Gateway, the
//! policy's targets exist and its hosts cover the routes' hostnames.

use super::envoy_filters::UnderscoreSetting;
use super::model::{CheckOptions, Out};
use super::policies::{Policy, policy_checks};
use super::resources::{AdapterService, Res, find_services, list, same_ns, service_ports};
use crate::names::hosts_meet;
use crate::render::{HCM_FILTER, HCM_TYPE_URL, HEADERS_WITH_UNDERSCORES_ACTION};
use crate::yaml::Node;

/// The Gateway API's group.
const GROUP: &str = "gateway.networking.k8s.io";

/// The GatewayClass of Istio's ambient waypoints.
const WAYPOINT_CLASS: &str = "istio-waypoint";

/// The label Istio puts on the pods it deploys for a Gateway API Gateway.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// A `targetRefs` item: kind, group (`""` when absent), name, and the name's line.
pub(super) struct TargetRef<'a> {
    kind: &'a str,
    group: &'a str,
    name: &'a str,
    line: usize,
}

/// A CUSTOM policy's (or any policy's) `targetRefs`.
pub(super) fn target_refs<'a>(policy: &Policy<'a>) -> Vec<TargetRef<'a>> {
    refs_of(policy.res)
}

fn refs_of<'a>(res: &Res<'a>) -> Vec<TargetRef<'a>> {
    res.spec
        .and_then(|s| s.get_ci("targetRefs"))
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .filter_map(|r| {
            let name = r.get("name")?;
            Some(TargetRef {
                kind: r.str_at(&["kind"]).unwrap_or(""),
                group: r.str_at(&["group"]).unwrap_or(""),
                name: name.as_str()?,
                line: name.line,
            })
        })
        .collect()
}

/// The Gateway API Gateways among the files.
fn gateways<'r>(resources: &'r [Res<'r>]) -> Vec<&'r Res<'r>> {
    resources
        .iter()
        .filter(|r| r.is("Gateway") && r.is_gateway_api())
        .collect()
}

fn is_waypoint(gateway: &Res) -> bool {
    gateway.spec.and_then(|s| s.str_at(&["gatewayClassName"])) == Some(WAYPOINT_CLASS)
}

/// A Gateway's listeners: `(name, hostname, the listener's line)`.
fn listeners<'a>(gateway: &Res<'a>) -> Vec<(Option<&'a str>, Option<&'a str>, usize)> {
    gateway
        .spec
        .and_then(|s| s.get_ci("listeners"))
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .map(|l| (l.str_at(&["name"]), l.str_at(&["hostname"]), l.line))
        .collect()
}

/// An HTTPRoute's hostnames (none: every host of its parents).
fn hostnames<'a>(route: &Res<'a>) -> Vec<(&'a str, usize)> {
    list(route.spec.and_then(|s| s.get_ci("hostnames")))
}

fn rules<'a>(route: &Res<'a>) -> &'a [Node] {
    route
        .spec
        .and_then(|s| s.get_ci("rules"))
        .map(Node::items)
        .unwrap_or(&[])
}

/// Whether the route serves `host` (a route without hostnames serves every host).
fn serves(route: &Res, host: &str) -> bool {
    let names = hostnames(route);
    names.is_empty() || names.iter().any(|(h, _)| hosts_meet(h, host))
}

/// How a rule's match takes a request: `Some(rank)` when it does, higher ranks winning as the
/// Gateway API orders rules (an exact path first, then the longest prefix, then a method).
fn match_rank(m: &Node, method: &str, path: &str) -> Option<(u8, usize, bool)> {
    if let Some(wanted) = m.str_at(&["method"])
        && wanted != method
    {
        return None;
    }
    let kind = m.str_at(&["path", "type"]).unwrap_or("PathPrefix");
    let value = m.str_at(&["path", "value"]).unwrap_or("/");
    let with_method = m.get("method").is_some();
    match kind {
        "Exact" => (path == value).then_some((2, value.len(), with_method)),
        "PathPrefix" => {
            // By path elements: `/oauth2` (or `/oauth2/`) takes `/oauth2` and `/oauth2/...`.
            let trimmed = value.trim_end_matches('/');
            let takes = trimmed.is_empty()
                || path == trimmed
                || path
                    .strip_prefix(trimmed)
                    .is_some_and(|rest| rest.starts_with('/'));
            takes.then_some((1, trimmed.len(), with_method))
        }
        // A regular expression: assume it may match, after the others.
        _ => Some((0, 0, with_method)),
    }
}

/// How a rule takes a `method` request of `path` (the best of its matches; no `matches` takes
/// every request as the prefix `/`).
fn rule_rank(rule: &Node, method: &str, path: &str) -> Option<(u8, usize, bool)> {
    match rule.get_ci("matches") {
        None => Some((1, 0, false)),
        Some(matches) if matches.items().is_empty() => Some((1, 0, false)),
        Some(matches) => matches
            .items()
            .iter()
            .filter_map(|m| match_rank(m, method, path))
            .max(),
    }
}

/// The matched path value of a rule for `path` (for messages), if it names one.
fn matched_value<'a>(rule: &'a Node, path: &str) -> Option<&'a str> {
    rule.get_ci("matches")?
        .items()
        .iter()
        .filter(|m| match_rank(m, "GET", path).is_some())
        .find_map(|m| m.str_at(&["path", "value"]))
}

/// The rule of `routes` that takes a `method` request of `path`, as the Gateway API picks it.
fn winner<'r>(routes: &[&'r Res<'r>], method: &str, path: &str) -> Option<(&'r Res<'r>, &'r Node)> {
    let mut best: Option<((u8, usize, bool), &Res, &Node)> = None;
    for route in routes {
        for rule in rules(route) {
            if let Some(rank) = rule_rank(rule, method, path)
                && best.as_ref().is_none_or(|(b, ..)| rank > *b)
            {
                best = Some((rank, route, rule));
            }
        }
    }
    best.map(|(_, route, rule)| (route, rule))
}

/// A backendRef to a Service.
struct Backend<'a> {
    name: &'a str,
    /// The Service's namespace (the route's when not given).
    namespace: Option<&'a str>,
    port: Option<&'a Node>,
    /// The line of the backendRef's name.
    line: usize,
}

/// A rule's Service backends.
fn backends<'a>(route: &Res<'a>, rule: &'a Node) -> Vec<Backend<'a>> {
    rule.get_ci("backendRefs")
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .filter(|b| {
            b.str_at(&["kind"]).is_none_or(|k| k == "Service")
                && b.str_at(&["group"]).is_none_or(str::is_empty)
        })
        .filter_map(|b| {
            let name = b.get("name")?;
            Some(Backend {
                name: name.as_str()?,
                namespace: b.str_at(&["namespace"]).or(route.namespace),
                port: b.get("port"),
                line: name.line,
            })
        })
        .collect()
}

fn is_adapter(adapter_services: &[AdapterService], name: &str, ns: Option<&str>) -> bool {
    adapter_services
        .iter()
        .any(|(n, n_ns, _)| n == name && same_ns(n_ns.as_deref(), ns))
}

/// The HTTPRoutes among the files that serve `host`.
fn routes_for<'r>(resources: &'r [Res<'r>], host: &str) -> Vec<&'r Res<'r>> {
    resources
        .iter()
        .filter(|r| r.is("HTTPRoute") && serves(r, host))
        .collect()
}

/// Where the HTTPRoutes of `host` send a `method` request of `path`: `None` when no rule takes
/// it, `Some(None)` when the adapter (or a redirect) does, else the first other backend.
pub(super) fn destination(
    resources: &[Res],
    host: &str,
    adapter_services: &[AdapterService],
    method: &str,
    path: &str,
) -> Option<Option<String>> {
    let routes = routes_for(resources, host);
    let (route, rule) = winner(&routes, method, path)?;
    Some(
        backends(route, rule)
            .into_iter()
            .find(|b| !is_adapter(adapter_services, b.name, b.namespace))
            .map(|b| b.name.to_owned()),
    )
}

/// All the Gateway API checks but the underscore headers ([`underscore_headers`]).
pub(super) fn check(
    out: &mut Out,
    resources: &[Res],
    policies: &[Policy],
    protected: &[(String, String, usize)],
    adapter_services: &[AdapterService],
    prefix: &str,
    callback: &str,
) {
    for route in resources.iter().filter(|r| r.is("HTTPRoute")) {
        parents(out, resources, route);
        rewrites(out, route, prefix, callback);
        backend_ports(out, resources, route);
    }
    for (host, ..) in protected {
        routing(out, resources, host, adapter_services, prefix, callback);
    }
    for policy in policies.iter().filter(|p| p.is_custom()) {
        targets(out, resources, policy);
    }
}

/// `route-parent` and `route-hosts-do-not-meet`: the route's Gateways are among the files, in
/// its namespace, with the listener it names, serving its hostnames.
fn parents(out: &mut Out, resources: &[Res], route: &Res) {
    let known = gateways(resources);
    let Some(refs) = route.spec.and_then(|s| s.get_ci("parentRefs")) else {
        return;
    };
    let mut served: Vec<(&Res, Vec<Option<&str>>)> = Vec::new();
    for parent in refs.items() {
        let is_gateway = parent.str_at(&["kind"]).is_none_or(|k| k == "Gateway")
            && parent.str_at(&["group"]).is_none_or(|g| g == GROUP);
        let Some(name_node) = parent.get("name") else {
            continue;
        };
        let Some(name) = name_node.as_str() else {
            continue;
        };
        if !is_gateway || known.is_empty() {
            continue;
        }
        let ns = parent.str_at(&["namespace"]).or(route.namespace);
        let named: Vec<&&Res> = known.iter().filter(|g| g.name() == name).collect();
        let Some(gateway) = named.iter().find(|g| same_ns(g.namespace, ns)) else {
            let (problem, fix) = match named.first() {
                Some(other) => (
                    format!(
                        "HTTPRoute {} names Gateway {name} in namespace {}, but Gateway {name} is in {} ({}:{})",
                        route.name(),
                        ns.unwrap_or("(current)"),
                        other.namespace.unwrap_or("(current)"),
                        other.file,
                        other.line()
                    ),
                    format!(
                        "add `namespace: {}` to the parentRef (the Gateway's listeners must allow routes from {})",
                        other.namespace.unwrap_or("<namespace>"),
                        route.namespace.unwrap_or("this namespace")
                    ),
                ),
                None => (
                    format!(
                        "HTTPRoute {} names Gateway {name}, which is not among the files (Gateways: {}): no gateway applies this route",
                        route.name(),
                        known.iter().map(|g| g.id()).collect::<Vec<_>>().join(", ")
                    ),
                    format!(
                        "name the Gateway that serves the route's hostnames: parentRefs: [{{name: {}}}]",
                        known[0].name()
                    ),
                ),
            };
            out.add(route.file, name_node.line, "route-parent", problem, fix);
            continue;
        };
        let gateway_listeners = listeners(gateway);
        let section = parent.get("sectionName");
        let hosts: Vec<Option<&str>> = match section.and_then(|s| s.as_str().map(|v| (v, s.line))) {
            Some((section, line)) => {
                let found: Vec<Option<&str>> = gateway_listeners
                    .iter()
                    .filter(|(n, ..)| *n == Some(section))
                    .map(|(_, h, _)| *h)
                    .collect();
                if found.is_empty() {
                    let names: Vec<&str> =
                        gateway_listeners.iter().filter_map(|(n, ..)| *n).collect();
                    out.add(
                        route.file,
                        line,
                        "route-parent",
                        format!(
                            "HTTPRoute {}: Gateway {} has no listener {section:?} (listeners: {}), so no gateway applies this route",
                            route.name(),
                            gateway.id(),
                            names.join(", ")
                        ),
                        format!(
                            "use one of the listener names, or leave sectionName out to attach to all of them ({}:{})",
                            gateway.file,
                            gateway.line()
                        ),
                    );
                    continue;
                }
                found
            }
            None => gateway_listeners.iter().map(|(_, h, _)| *h).collect(),
        };
        served.push((gateway, hosts));
    }
    if served.is_empty() {
        return;
    }
    for (host, line) in hostnames(route) {
        let meets = served
            .iter()
            .any(|(_, hs)| hs.iter().any(|h| h.is_none_or(|h| hosts_meet(h, host))));
        if !meets {
            let theirs: Vec<String> = served
                .iter()
                .map(|(gw, hs)| {
                    format!(
                        "Gateway {} listens for {} ({}:{})",
                        gw.id(),
                        hs.iter()
                            .map(|h| h.unwrap_or("*"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        gw.file,
                        gw.line()
                    )
                })
                .collect();
            out.add(
                route.file,
                line,
                "route-hosts-do-not-meet",
                format!(
                    "HTTPRoute {} routes host {host}, but {}: the gateway never applies this route to it and answers 404",
                    route.name(),
                    theirs.join("; ")
                ),
                format!(
                    "use the same host in both: a listener with hostname {host:?} on the Gateway (or change this hostname to the listener's)"
                ),
            );
        }
    }
}

/// `rewrite-strips-prefix`: a URLRewrite (or a RequestRedirect of the path) on a rule that takes
/// the callback, leaving it outside the prefix.
fn rewrites(out: &mut Out, route: &Res, prefix: &str, callback: &str) {
    for rule in rules(route) {
        if rule_rank(rule, "GET", callback).is_none() {
            continue;
        }
        let matched = matched_value(rule, callback).unwrap_or("/");
        for filter in rule.get_ci("filters").map(Node::items).unwrap_or(&[]) {
            let path = filter
                .path(&["urlRewrite", "path"])
                .or_else(|| filter.path(&["requestRedirect", "path"]));
            let Some(path) = path else { continue };
            let rewritten = match path.str_at(&["type"]) {
                Some("ReplaceFullPath") => path.str_at(&["replaceFullPath"]).map(str::to_owned),
                Some("ReplacePrefixMatch") => path.str_at(&["replacePrefixMatch"]).map(|to| {
                    let rest = callback
                        .strip_prefix(matched.trim_end_matches('/'))
                        .unwrap_or(callback);
                    format!("{}{rest}", to.trim_end_matches('/'))
                }),
                _ => None,
            };
            let Some(rewritten) = rewritten else { continue };
            if !rewritten.starts_with(&format!("{prefix}/")) {
                out.add(
                    route.file,
                    filter.line,
                    "rewrite-strips-prefix",
                    format!(
                        "HTTPRoute {}: the rule for {matched} rewrites the path, so {callback} arrives at its backend as {rewritten} and the adapter does not recognise its own endpoints ({prefix}/callback, /sign_out, /userinfo)",
                        route.name()
                    ),
                    format!("remove the filter: the adapter serves everything under {prefix}"),
                );
            }
        }
    }
}

/// `destination-port`: a backendRef's port is one the Service (among the files) exposes.
fn backend_ports(out: &mut Out, resources: &[Res], route: &Res) {
    for rule in rules(route) {
        for Backend {
            name,
            namespace,
            port,
            line,
        } in backends(route, rule)
        {
            let (found, _) = find_services(resources, name, namespace);
            let Some(svc) = found.first() else { continue };
            let ports = service_ports(svc);
            let listing: Vec<String> = ports
                .iter()
                .filter_map(|(_, p, _)| p.map(|p| p.to_string()))
                .collect();
            match port {
                Some(number) => {
                    if let Some(n) = number.as_u64()
                        && !ports.iter().any(|(_, p, _)| *p == Some(n))
                    {
                        out.add(
                            route.file,
                            number.line,
                            "destination-port",
                            format!(
                                "HTTPRoute {} sends {name} traffic to port {n}, but Service {} ({}:{}) exposes {}",
                                route.name(),
                                svc.id(),
                                svc.file,
                                svc.line(),
                                listing.join(", ")
                            ),
                            format!(
                                "port: {}",
                                listing.first().map_or("<the Service's port>", String::as_str)
                            ),
                        );
                    }
                }
                None => out.add(
                    route.file,
                    line,
                    "destination-port",
                    format!(
                        "HTTPRoute {}: the backendRef to Service {} has no port, which the Gateway API requires for a Service",
                        route.name(),
                        svc.id()
                    ),
                    format!(
                        "add port: {}",
                        listing.first().map_or("<the Service's port>", String::as_str)
                    ),
                ),
            }
        }
    }
}

/// `callback-not-routed` and `prefix-route` for the HTTPRoutes of a protected host.
fn routing(
    out: &mut Out,
    resources: &[Res],
    host: &str,
    adapter_services: &[AdapterService],
    prefix: &str,
    callback: &str,
) {
    let routes = routes_for(resources, host);
    let Some(first) = routes.first() else { return };
    if winner(&routes, "GET", callback).is_none() {
        out.add(
            first.file,
            first
                .spec
                .and_then(|s| s.entry_ci("rules"))
                .map_or(first.line(), |(k, _)| k.line),
            "callback-not-routed",
            format!(
                "HTTPRoute {}: no rule matches the callback path {callback} on {host}, so the gateway answers 404 to the IdP's redirect",
                first.name()
            ),
            format!(
                "add a rule `matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]` to the adapter's http port"
            ),
        );
        return;
    }
    let probe = format!("{prefix}/userinfo");
    let Some((route, rule)) = winner(&routes, "GET", &probe) else {
        return;
    };
    let matched = matched_value(rule, &probe);
    let specific = matched.is_some_and(|m| m.trim_end_matches('/').starts_with(prefix));
    let all = backends(route, rule);
    let wrong = if adapter_services.is_empty() {
        // Without the adapter among the files, only a catch-all rule is known to be wrong.
        (!specific).then(|| all.first().map(|b| (b.name, b.line)))
    } else {
        all.iter()
            .find(|b| !is_adapter(adapter_services, b.name, b.namespace))
            .map(|b| Some((b.name, b.line)))
    };
    let Some(wrong) = wrong else { return };
    let which = if specific {
        format!("the rule for {}", matched.unwrap_or(prefix))
    } else {
        "the catch-all rule".to_owned()
    };
    let target = adapter_services.first().map_or_else(
        || {
            "{name: <the adapter's Service>, namespace: <its namespace>, port: <its http port>}"
                .to_owned()
        },
        |(name, ns, port)| {
            format!(
                "{{name: {name}, namespace: {}, port: {}}}",
                ns.as_deref().unwrap_or("<namespace>"),
                port.map_or("<its http port>".to_owned(), |p| p.to_string())
            )
        },
    );
    out.add(
        route.file,
        wrong.map_or(rule.line, |(_, line)| line),
        "prefix-route",
        format!(
            "HTTPRoute {}: {prefix} on {host} goes to {} ({which}), not to the adapter: the check answers the adapter's endpoints, but in HTTP mode those it answers with 200 ({prefix}/userinfo, the sign-in page) are an allow for Envoy, which forwards them there, and the application answers in the adapter's place",
            route.name(),
            wrong.map_or("no backend", |(name, _)| name),
        ),
        format!(
            "add a rule `matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]` with backendRefs [{target}] (no URLRewrite; `ext-authz-adapter istio --ingress gateway-api` renders it)"
        ),
    );
}

/// `policy-target` and `policy-hosts`: the policy's Gateway targets are among the files, in its
/// namespace, and it checks every hostname routed through them.
fn targets(out: &mut Out, resources: &[Res], policy: &Policy) {
    let refs = target_refs(policy);
    if refs.is_empty() {
        return;
    }
    let known = gateways(resources);
    let gateway_api_here = !known.is_empty() || resources.iter().any(|r| r.is("HTTPRoute"));
    let name = policy.res.name();
    for target in refs.iter().filter(|t| t.kind == "Gateway") {
        if target.group != GROUP {
            out.add(
                policy.res.file,
                target.line,
                "policy-target",
                format!(
                    "AuthorizationPolicy {name}: targetRefs names Gateway {} with group {:?}: Istio attaches policies to Gateway API Gateways only (group {GROUP}), so this policy applies to nothing and the hosts are not checked",
                    target.name, target.group
                ),
                format!("set group: {GROUP}"),
            );
            continue;
        }
        if !gateway_api_here {
            continue;
        }
        let named: Vec<&&Res> = known.iter().filter(|g| g.name() == target.name).collect();
        let Some(gateway) = named
            .iter()
            .find(|g| same_ns(g.namespace, policy.res.namespace))
        else {
            let (problem, fix) = match named.first() {
                Some(other) => (
                    format!(
                        "AuthorizationPolicy {name} (namespace {}) targets Gateway {}, which is in {} ({}:{}): targetRefs only name objects of the policy's own namespace, so it applies to nothing and the hosts are not checked",
                        policy.res.namespace.unwrap_or("(current)"),
                        target.name,
                        other.namespace.unwrap_or("(current)"),
                        other.file,
                        other.line()
                    ),
                    format!(
                        "put the policy in namespace {}",
                        other.namespace.unwrap_or("<the Gateway's namespace>")
                    ),
                ),
                None => (
                    format!(
                        "AuthorizationPolicy {name} targets Gateway {}, which is not among the files ({}): the policy applies to nothing, and the hosts are not checked",
                        target.name,
                        if known.is_empty() {
                            "no Gateway API Gateway in them".to_owned()
                        } else {
                            format!(
                                "Gateways: {}",
                                known.iter().map(|g| g.id()).collect::<Vec<_>>().join(", ")
                            )
                        }
                    ),
                    match known.first() {
                        Some(g) => format!("name the Gateway the routes use: name: {}", g.name()),
                        None => {
                            "name the Gateway API Gateway (or waypoint) the hosts are served by"
                                .to_owned()
                        }
                    },
                ),
            };
            out.add(policy.res.file, target.line, "policy-target", problem, fix);
            continue;
        };
        // The hostnames of the routes attached to that Gateway must be checked.
        for route in resources.iter().filter(|r| r.is("HTTPRoute")) {
            let attached = route
                .spec
                .and_then(|s| s.get_ci("parentRefs"))
                .map(Node::items)
                .unwrap_or(&[])
                .iter()
                .any(|p| {
                    p.str_at(&["kind"]).is_none_or(|k| k == "Gateway")
                        && p.str_at(&["name"]) == Some(gateway.name())
                        && same_ns(
                            p.str_at(&["namespace"]).or(route.namespace),
                            gateway.namespace,
                        )
                });
            if !attached {
                continue;
            }
            for (host, line) in hostnames(route) {
                if host.contains('*') || policy_checks(policy, host, "GET", "/") {
                    continue;
                }
                out.add(
                    route.file,
                    line,
                    "policy-hosts",
                    format!(
                        "HTTPRoute {} serves {host} through Gateway {}, but the CUSTOM policy {} ({}:{}) that targets it does not check {host}: its requests reach the application without a login",
                        route.name(),
                        gateway.id(),
                        policy.res.id(),
                        policy.res.file,
                        target.line
                    ),
                    format!(
                        "add \"{host}\" and \"{host}:*\" to the policy's hosts (or leave the host out of the route)"
                    ),
                );
            }
        }
    }
}

/// Whether an EnvoyFilter applies to the Gateway API Gateway `gateway`: by `targetRefs`, or by
/// the `gateway-name` label Istio puts on its pods, or to every workload of its namespace (or
/// of istiod's).
fn filter_applies(
    filter: &Res,
    gateway: &str,
    gateway_ns: Option<&str>,
    opts: &CheckOptions,
) -> bool {
    let refs = refs_of(filter);
    if !refs.is_empty() {
        return same_ns(filter.namespace, gateway_ns)
            && refs
                .iter()
                .any(|r| r.kind == "Gateway" && r.group == GROUP && r.name == gateway);
    }
    let labels: Vec<(&str, &str)> = filter
        .spec
        .and_then(|s| s.path(&["workloadSelector", "labels"]))
        .map(Node::entries)
        .unwrap_or(&[])
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
        .collect();
    let in_namespace = same_ns(filter.namespace, gateway_ns)
        || (labels.is_empty() && filter.namespace == Some(opts.istio_namespace.as_str()));
    in_namespace
        && labels
            .iter()
            .all(|(k, v)| *k == GATEWAY_NAME_LABEL && *v == gateway)
}

/// `underscore-headers` and `waypoint-underscore-headers` for the policies with `targetRefs`: an
/// EnvoyFilter refusing (or dropping) header names with underscores must apply to the targeted
/// Gateway; for a waypoint none is known to work, so the finding says so.
pub(super) fn underscore_headers(
    out: &mut Out,
    resources: &[Res],
    policies: &[Policy],
    settings: &[UnderscoreSetting],
    opts: &CheckOptions,
) {
    let known = gateways(resources);
    let mut seen: Vec<(Option<&str>, &str)> = Vec::new();
    for policy in policies.iter().filter(|p| p.is_custom()) {
        for target in target_refs(policy)
            .iter()
            .filter(|t| t.kind == "Gateway" && t.group == GROUP)
        {
            let key = (policy.res.namespace, target.name);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let gateway = known
                .iter()
                .find(|g| g.name() == target.name && same_ns(g.namespace, policy.res.namespace));
            if gateway.is_none() && !known.is_empty() {
                // A target that is not among the files: `policy-target`.
                continue;
            }
            let waypoint = gateway.is_some_and(|g| is_waypoint(g));
            let covered = settings.iter().any(|(filter, action, gateway, patch)| {
                let context_fits = *gateway
                    || (waypoint
                        && patch.str_at(&["applyTo"]) == Some("NETWORK_FILTER")
                        && patch.str_at(&["match", "context"]) == Some("WAYPOINT"));
                context_fits
                    && matches!(action.as_str(), Some("REJECT_REQUEST" | "DROP_HEADER"))
                    && filter_applies(filter, target.name, policy.res.namespace, opts)
            });
            if covered {
                continue;
            }
            let line = policy.action.map_or(policy.res.line(), |n| n.line);
            let namespace = policy.res.namespace.unwrap_or("<the Gateway's namespace>");
            if waypoint {
                out.add(
                    policy.res.file,
                    line,
                    "waypoint-underscore-headers",
                    format!(
                        "AuthorizationPolicy {}: nothing makes the waypoint {} refuse header names with underscores, and no way to do it was verified here: `X-Auth_Request-User` passes it, and CGI, PHP and WSGI applications read it as X-Auth-Request-User (HTTP_X_AUTH_REQUEST_USER); the adapter removes every spelling of its identity headers only from the requests it allows",
                        policy.res.name(),
                        target.name
                    ),
                    format!(
                        "make the application ignore (or refuse) header names with underscores, or reach it through a Gateway API gateway with the EnvoyFilter `ext-authz-adapter istio --ingress gateway-api --only envoy-filter` prints (an EnvoyFilter in {namespace} with targetRefs to the waypoint and match.context: WAYPOINT is accepted here, unverified)"
                    ),
                );
            } else {
                out.add(
                    policy.res.file,
                    line,
                    "underscore-headers",
                    format!(
                        "AuthorizationPolicy {}: nothing sets the headers_with_underscores_action of the gateway of Gateway {}: Envoy's default (ALLOW) passes `X-Auth_Request-User`, which CGI, PHP and WSGI applications read as X-Auth-Request-User (HTTP_X_AUTH_REQUEST_USER), and neither the Gateway API nor Istio's mesh config has a setting for it",
                        policy.res.name(),
                        target.name
                    ),
                    format!(
                        "apply an EnvoyFilter in {namespace} with targetRefs: [{{kind: Gateway, group: {GROUP}, name: {}}}] and a configPatch applyTo: NETWORK_FILTER, match: {{context: GATEWAY, listener: {{filterChain: {{filter: {{name: {HCM_FILTER}}}}}}}}}, patch: {{operation: MERGE, value: {{typed_config: {{\"@type\": {HCM_TYPE_URL}, common_http_protocol_options: {{headers_with_underscores_action: {HEADERS_WITH_UNDERSCORES_ACTION}}}}}}}}} (`ext-authz-adapter istio --ingress gateway-api --only envoy-filter` prints it)",
                        target.name
                    ),
                );
            }
        }
    }
}
