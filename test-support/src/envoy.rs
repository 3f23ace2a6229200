//! Envoy, configured as Istio renders ext_authz, started per test.
