//! The Kubernetes objects among the manifests ([`Res`]) and the lookups across them: a
//! Service's ports, the Services a host names, whether two namespaces can be one.

use crate::names::service_of;
use crate::yaml::Node;

/// A Kubernetes object (one YAML document that is a mapping).
pub(super) struct Res<'a> {
    pub(super) file: &'a str,
    pub(super) kind: String,
    pub(super) root: &'a Node,
    pub(super) name: Option<&'a Node>,
    pub(super) namespace: Option<&'a str>,
    pub(super) spec: Option<&'a Node>,
}

impl<'a> Res<'a> {
    pub(super) fn new(file: &'a str, root: &'a Node) -> Res<'a> {
        Res {
            file,
            kind: root.str_at(&["kind"]).unwrap_or("").to_owned(),
            root,
            name: root.path(&["metadata", "name"]),
            namespace: root.str_at(&["metadata", "namespace"]),
            spec: root.get_ci("spec"),
        }
    }

    pub(super) fn is(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }

    /// Whether this is a Gateway API object (`gateway.networking.k8s.io/...`), not Istio's.
    pub(super) fn is_gateway_api(&self) -> bool {
        self.root
            .str_at(&["apiVersion"])
            .is_some_and(|v| v.starts_with("gateway.networking.k8s.io/"))
    }

    /// An Istio `Gateway` (networking.istio.io), not the Gateway API's.
    pub(super) fn is_istio_gateway(&self) -> bool {
        self.is("Gateway") && !self.is_gateway_api()
    }

    pub(super) fn name(&self) -> &str {
        self.name.and_then(Node::as_str).unwrap_or("(unnamed)")
    }

    pub(super) fn line(&self) -> usize {
        self.name.map_or(self.root.line, |n| n.line)
    }

    /// `namespace/name`, or the name alone when the namespace is not set.
    pub(super) fn id(&self) -> String {
        match self.namespace {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_owned(),
        }
    }
}

/// Whether two namespaces can be the same object's (an unset one is whatever kubectl uses).
pub(super) fn same_ns(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The strings of a string or a list of strings, with their lines (none when absent).
pub(super) fn list(node: Option<&Node>) -> Vec<(&str, usize)> {
    node.map(Node::strings).unwrap_or_default()
}

/// A Service and its ports.
pub(super) fn service_ports<'a>(res: &Res<'a>) -> Vec<(Option<String>, Option<u64>, &'a Node)> {
    res.spec
        .and_then(|s| s.get_ci("ports"))
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .map(|p| {
            (
                p.str_at(&["name"]).map(str::to_owned),
                p.get("port").and_then(Node::as_u64),
                p,
            )
        })
        .collect()
}

/// The Services among the files that a host names (`name.ns.svc.cluster.local`, ...).
pub(super) fn find_services<'r>(
    resources: &'r [Res<'r>],
    host: &str,
    default_ns: Option<&str>,
) -> (Vec<&'r Res<'r>>, Vec<&'r Res<'r>>) {
    let Some((name, ns)) = service_of(host, default_ns) else {
        return (Vec::new(), Vec::new());
    };
    let named: Vec<&Res> = resources
        .iter()
        .filter(|r| r.is("Service") && r.name() == name)
        .collect();
    let (exact, elsewhere): (Vec<&Res>, Vec<&Res>) = named
        .into_iter()
        .partition(|r| same_ns(r.namespace, ns.as_deref()));
    (exact, elsewhere)
}

/// A Service that reaches the adapter: `(name, namespace, its HTTP port if known)`.
pub(super) type AdapterService = (String, Option<String>, Option<u64>);
