//! oidc-core.
