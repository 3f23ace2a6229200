//! The shared Keycloak started by `cargo xtask test`.
