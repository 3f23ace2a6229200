//! tower-oidc.
