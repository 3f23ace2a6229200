//! The real components the tests use, one module each. A component installs itself (if
//! missing) into the cache and returns the environment variables that point the tests at it.
//!
//! To add one (Keycloak, Envoy, Redis, Chromium, ...): a module with a type implementing
//! [`Component`], listed in [`all`].

pub(crate) mod chromium;
pub(crate) mod envoy;
pub(crate) mod go_build;
pub(crate) mod helm;
pub(crate) mod keycloak;
pub(crate) mod manifest_check;
pub(crate) mod nginx;
pub(crate) mod node_provider;
// Bench-only (`cargo xtask bench` installs them itself): not in `all()`.
pub(crate) mod oauth2_proxy;
pub(crate) mod openssl;
pub(crate) mod redis;
pub(crate) mod test_cluster;

use std::ffi::OsString;

/// Environment variables for the tests, in order.
pub type Env = Vec<(String, OsString)>;

/// One real component.
pub trait Component {
    /// Installs the component if it is not in the cache yet, printing one progress line
    /// (`[xtask] <name> <version>: cached at ...` or `installing ...`), and returns the
    /// environment variables that tell the tests where it is.
    fn ensure_installed(&self) -> Result<Env, String>;
}

/// Every component, in install order.
pub fn all() -> Vec<Box<dyn Component>> {
    vec![
        Box::new(node_provider::NodeProvider),
        Box::new(keycloak::Keycloak),
        Box::new(envoy::Envoy),
        Box::new(redis::Redis),
        Box::new(chromium::Chromium),
        Box::new(openssl::Openssl),
    ]
}

/// The Go-built tools of the manifest and migration guide tests (Helm, the manifest checker,
/// the test cluster): installed by `cargo xtask test` in the background while the tests build.
pub fn go_tools() -> Vec<Box<dyn Component + Send>> {
    vec![
        Box::new(helm::Helm),
        Box::new(manifest_check::ManifestCheck),
        Box::new(test_cluster::TestCluster),
    ]
}
