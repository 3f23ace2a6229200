//! The CUSTOM AuthorizationPolicy that sends the protected hosts' requests to the adapter,
//! attached to Istio's ingress gateway pods or to a Gateway API Gateway (or waypoint).

use super::settings::{Ingress, Settings};
use super::targets::gateway_ref;
use super::yaml_out::{Y, labels, map, metadata, s};

/// The CUSTOM AuthorizationPolicy: on the ingress gateway's pods (`selector`, in istiod's
/// namespace) for Istio's gateway, else on the Gateway API Gateway or waypoint named by
/// `targetRefs` (in its namespace, as Istio requires).
pub(super) fn policy(settings: &Settings) -> Y {
    let mut hosts = Vec::new();
    for host in &settings.hosts {
        hosts.push(host.clone());
        hosts.push(format!("{host}:*"));
    }
    let rule = |operation: Vec<(&str, Y)>| {
        map(vec![(
            "to",
            Y::Seq(vec![map(vec![("operation", map(operation))])]),
        )])
    };
    // Without the VirtualService's route of the logout path to the adapter, the exemption
    // could hand an unchecked POST to the application: none then.
    let logout = settings
        .app_service
        .is_some()
        .then(|| settings.backchannel_logout_path());
    let mut not_paths = settings.skip_paths.clone();
    not_paths.extend(logout.clone());
    let mut operation = vec![("hosts", Y::Flow(hosts.clone()))];
    if !not_paths.is_empty() {
        operation.push(("notPaths", Y::Flow(not_paths)));
    }
    let mut rules = vec![rule(operation)];
    // The logout path stays checked for every method but POST.
    if let Some(logout) = logout {
        rules.push(rule(vec![
            ("hosts", Y::Flow(hosts)),
            ("paths", Y::Flow(vec![logout])),
            ("notMethods", Y::Flow(vec!["POST".to_owned()])),
        ]));
    }
    map(vec![
        (
            "apiVersion",
            s(format!("security.istio.io/{}", settings.api_version)),
        ),
        ("kind", s("AuthorizationPolicy")),
        (
            "metadata",
            metadata(
                &settings.policy_name(),
                match settings.ingress {
                    Ingress::Istio => &settings.istio_namespace,
                    Ingress::GatewayApi | Ingress::Waypoint => &settings.app_namespace,
                },
            ),
        ),
        (
            "spec",
            map(vec![
                match settings.ingress {
                    Ingress::Istio => (
                        "selector",
                        map(vec![("matchLabels", labels(&settings.gateway_selector))]),
                    ),
                    Ingress::GatewayApi | Ingress::Waypoint => {
                        ("targetRefs", Y::Seq(vec![gateway_ref(&settings.gateway)]))
                    }
                },
                ("action", s("CUSTOM")),
                ("provider", map(vec![("name", s(&settings.provider_name))])),
                ("rules", Y::Seq(rules)),
            ]),
        ),
    ])
}
