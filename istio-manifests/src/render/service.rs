//! The adapter's Service, with the port names Istio reads the protocols from.

use super::settings::Settings;
use super::yaml_out::{Y, labels, map, s};

/// The adapter's Service: its `http` and `grpc-ext-authz` ports, selecting the adapter's pods.
pub(super) fn service(settings: &Settings) -> Y {
    let port = |name: &str, number: u16, protocol: &str| {
        map(vec![
            ("name", s(name)),
            ("port", Y::Int(number.into())),
            ("targetPort", Y::Int(number.into())),
            ("appProtocol", s(protocol)),
        ])
    };
    map(vec![
        ("apiVersion", s("v1")),
        ("kind", s("Service")),
        (
            "metadata",
            map(vec![
                ("name", s(&settings.service)),
                ("namespace", s(&settings.namespace)),
                ("labels", labels(&settings.selector)),
            ]),
        ),
        (
            "spec",
            map(vec![
                ("selector", labels(&settings.selector)),
                (
                    "ports",
                    Y::Seq(vec![
                        port("http", settings.port, "http"),
                        port("grpc-ext-authz", settings.grpc_port, "grpc"),
                    ]),
                ),
            ]),
        ),
    ])
}
