//! The seed's oauth2-proxy Deployment args (DESIGN.md §4) that do not depend on where things
//! run, shared by `cargo xtask demo` and `cargo xtask bench` (which give the adapter and
//! oauth2-proxy the same ones). Each adds the address, issuer, client id, secrets,
//! `--cookie-domain` and `--cookie-refresh` of its own setup.
pub(crate) const SEED_ARGS: &[&str] = &[
    "--provider=oidc",
    "--cookie-secure=false",
    "--cookie-samesite=lax",
    "--cookie-expire=4h",
    "--cookie-name=auth",
    "--set-authorization-header=true",
    "--email-domain=*",
    "--upstream=static://200",
    "--skip-provider-button=true",
    "--whitelist-domain=*.example.com",
];
