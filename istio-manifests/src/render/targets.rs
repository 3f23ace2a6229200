//! How a Gateway API policy names what it applies to: a `targetRefs` item naming a `Gateway`
//! (an ingress Gateway or an ambient waypoint), shared by the CUSTOM policy and the EnvoyFilter.

use super::yaml_out::{Y, map, s};

/// The Gateway API's group.
pub(super) const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// A policy's (or EnvoyFilter's) `targetRefs` item naming the Gateway `name`.
pub(super) fn gateway_ref(name: &str) -> Y {
    map(vec![
        ("kind", s("Gateway")),
        ("group", s(GATEWAY_API_GROUP)),
        ("name", s(name)),
    ])
}
