//! A certificate authority made for one test with the `openssl` CLI (the `test-ca` crate, shared
//! with xtask, which makes the CA of Keycloak's HTTPS listener the same way).

pub use test_ca::{CaFiles, TestCa};
