//! `envoy-bootstrap`: the Envoy configuration the tests, `cargo xtask demo` and the bench run,
//! equivalent to what Istio renders for the seed's setup: an ingress gateway whose protected
//! hosts go through `ext-authz-adapter` as an ext_authz provider (`AuthorizationPolicy` with
//! `action: CUSTOM`), and whose other hosts (the IdP) do not.
//!
//! The header lists and the adapter's prefix are the product's
//! ([`istio_manifests::envoy_contract`]): the bootstrap uses the lists the renderer writes into
//! the mesh config, matched as Istio renders them ([`header_matchers`]).
//!
//! [`EnvoyConfig::render`] produces a complete Envoy bootstrap as JSON (Envoy reads JSON as
//! YAML: pass it with `--config-yaml` or in a `.json` file):
//!
//! ```
//! use std::time::Duration;
//! use envoy_bootstrap::{AuthzTarget, EnvoyConfig};
//!
//! let config = EnvoyConfig::seed(
//!     "127.0.0.1:10000".parse().unwrap(),
//!     AuthzTarget::Http { addr: "127.0.0.1:4180".parse().unwrap(), timeout: Duration::from_secs(5) },
//!     "127.0.0.1:8080".parse().unwrap(), // the app (nginx in the seed)
//!     "127.0.0.1:8081".parse().unwrap(), // Keycloak
//! );
//! let json = config.render();
//! assert!(json.contains("envoy.filters.http.ext_authz"));
//! ```
//!
//! What Istio renders and this copies (checked against Envoy 1.40):
//!
//! - Header lists become `ListStringMatcher`s with `ignore_case: true`: `exact` for a plain
//!   name, `prefix` for `name*`, `suffix` for `*name` ([`header_matchers`]).
//! - HTTP mode: `includeRequestHeadersInCheck` is the filter's `allowed_headers`;
//!   `headersToUpstreamOnAllow`, `headersToDownstreamOnDeny` and `headersToDownstreamOnAllow`
//!   are `http_service.authorization_response.allowed_upstream_headers`,
//!   `allowed_client_headers` and `allowed_client_headers_on_success`; no `path_prefix`
//!   unless `pathPrefix` is set; `status_on_error` 403, fail closed.
//! - gRPC mode (`envoyExtAuthzGrpc`): a `grpc_service` (Envoy's own gRPC client) to an HTTP/2
//!   cluster; no header list (Envoy sends every request header).
//! - The gateway's connection manager uses the remote address (`use_remote_address`) with no
//!   trusted hops, so Envoy sets `x-forwarded-proto` from the downstream connection's scheme
//!   (overwriting a client's value) before ext_authz runs: the check request carries it. The
//!   check request's `Host` is the original request's host. `x-forwarded-host` is not in the
//!   check's header list: Envoy neither sets nor checks it, so it is whatever the client sent,
//!   while Envoy routes by `Host` (`:authority`), which is what the adapter judges.
//! - Path normalisation and header names are Istio's *defaults*, on purpose: `normalize_path`
//!   (Istio's `BASE`: dot segments resolved), `merge_slashes` off (`//admin` reaches the
//!   upstream as is) and `headers_with_underscores_action` left at `ALLOW` (`x_auth_request_user`
//!   passes). A deployment should tighten both (the mesh config's `pathNormalization:
//!   MERGE_SLASHES` and an EnvoyFilter with `REJECT_REQUEST`, both rendered by
//!   `ext-authz-adapter istio` and asked for by `istio --check`), but the tests run against the
//!   gateway a default Istio installation gives, so that what they exercise is the adapter's own
//!   defences (slash-merging path readings, identity headers removed in every spelling).
//! - The adapter's own endpoints (`<prefix>/`, [`VirtualHost::adapter_route`]) can be routed to
//!   the adapter's HTTP port, as the VirtualService of `ext-authz-adapter istio` and of the Helm
//!   chart does: the route keeps the check (the adapter answers its endpoints as deny
//!   responses), and an answer of 200 (`<prefix>/userinfo`, the sign-in page), which Envoy takes
//!   for an allow, then reaches the adapter itself instead of the application. One exception,
//!   routed first: a `POST` of exactly `<prefix>/backchannel-logout` (query strings aside)
//!   reaches the adapter *without* the check (per-route `disabled`), since the check request
//!   carries no body and the provider's logout token is in it ([`BACKCHANNEL_LOGOUT`]). Envoy
//!   matches it after path normalisation and case-sensitively: `//`, `%2F`, a trailing segment,
//!   another case or another method fall to the checked routes.
//! - Istio enables its ext_authz filter only for requests a CUSTOM policy matches (RBAC shadow
//!   metadata); here a host or path prefix outside the policy disables the filter with a
//!   per-route `ExtAuthzPerRoute { disabled: true }` instead, with the same effect.
//! - Gateway virtual hosts match `host` and `host:*`; routes have no timeout (Istio's `0s`).

use std::net::SocketAddr;
use std::time::Duration;

use istio_manifests::envoy_contract::{
    BACKCHANNEL_LOGOUT, HEADERS_TO_DOWNSTREAM_ON_ALLOW, HEADERS_TO_DOWNSTREAM_ON_DENY,
    HEADERS_TO_UPSTREAM_ON_ALLOW, INCLUDE_REQUEST_HEADERS_IN_CHECK, STATUS_ON_ERROR,
    header_matchers,
};
use serde_json::{Value, json};

/// The seed's protected application host (nginx).
pub const SEED_APP_HOST: &str = "nginx.example.com";

/// The seed's identity provider host (Keycloak), not protected.
pub const SEED_IDP_HOST: &str = "keycloak.example.com";

/// The name of Envoy's ext_authz HTTP filter (also the key of its per-route configuration).
pub const EXT_AUTHZ_FILTER: &str = "envoy.filters.http.ext_authz";

/// Cluster name of the authz server in HTTP mode.
pub const AUTHZ_HTTP_CLUSTER: &str = "ext_authz_http";

/// Cluster name of the authz server in gRPC mode.
pub const AUTHZ_GRPC_CLUSTER: &str = "ext_authz_grpc";

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const EXT_AUTHZ_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const EXT_AUTHZ_PER_ROUTE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const STDOUT_LOG_TYPE: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const HTTP_PROTOCOL_OPTIONS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Where and how Envoy asks for an authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzTarget {
    /// HTTP mode, as Istio's `envoyExtAuthzHttp` provider: the check is the client's request
    /// (method, path, Host and the [`INCLUDE_REQUEST_HEADERS_IN_CHECK`] headers, no body) sent
    /// to the adapter's HTTP port; 200 allows, anything else is the response to the client.
    Http {
        /// The adapter's HTTP address (`--http-address`).
        addr: SocketAddr,
        /// How long Envoy waits for a decision (Istio's `timeout`, default 600 s there).
        timeout: Duration,
    },
    /// gRPC mode, as Istio's `envoyExtAuthzGrpc` provider: `envoy.service.auth.v3.Authorization/Check`
    /// over HTTP/2 to the adapter's gRPC port, with every request header.
    Grpc {
        /// The adapter's gRPC address.
        addr: SocketAddr,
        /// How long Envoy waits for a decision.
        timeout: Duration,
    },
}

impl AuthzTarget {
    /// The authz server's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            AuthzTarget::Http { addr, .. } | AuthzTarget::Grpc { addr, .. } => *addr,
        }
    }

    /// The decision timeout.
    pub fn timeout(&self) -> Duration {
        match self {
            AuthzTarget::Http { timeout, .. } | AuthzTarget::Grpc { timeout, .. } => *timeout,
        }
    }
}

/// One host served by the gateway (a `Gateway` server host + `VirtualService` in Istio).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualHost {
    /// The host name, without port (`nginx.example.com`); requests for `host` and `host:<any
    /// port>` match.
    pub domain: String,
    /// Where matching requests go (one static endpoint).
    pub upstream: SocketAddr,
    /// Whether the ext_authz check applies (a CUSTOM `AuthorizationPolicy` covers the host).
    pub protected: bool,
    /// Path prefixes on a protected host that bypass the check (a policy's `notPaths`). Never
    /// put the adapter's own paths (`/oauth2/...`) here: they travel through the check.
    pub unprotected_prefixes: Vec<String>,
    /// The adapter's own endpoints on this host, routed to the adapter's HTTP port rather than
    /// to `upstream` (Istio: the VirtualService's `<prefix>/` route to the adapter's Service).
    /// On a protected host the route keeps the check, as with Istio, where the CUSTOM policy
    /// applies to every route of the host: the adapter answers its endpoints as deny
    /// responses, and one it answers with 200 (`<prefix>/userinfo`, the sign-in page), which
    /// Envoy takes for an allow, then reaches the adapter instead of the application.
    pub adapter_route: Option<AdapterRoute>,
}

/// A path prefix that the gateway routes to the adapter's own HTTP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterRoute {
    /// The route's path prefix, with its trailing `/` (`/oauth2/`: the adapter's
    /// `--proxy-prefix` and a `/`, so `/oauth2x` still goes to the application).
    pub prefix: String,
    /// The adapter's HTTP address (`--http-address`), in gRPC mode too: the gRPC port speaks
    /// only `envoy.service.auth.v3.Authorization`.
    pub addr: SocketAddr,
}

impl AdapterRoute {
    /// `<prefix>/backchannel-logout`: the one path (for `POST` only) that reaches the adapter
    /// without the check, so that the provider's logout arrives with its body.
    pub fn backchannel_logout_path(&self) -> String {
        format!("{}/{BACKCHANNEL_LOGOUT}", self.prefix.trim_end_matches('/'))
    }
}

impl VirtualHost {
    /// A host behind ext_authz.
    pub fn protected(domain: &str, upstream: SocketAddr) -> VirtualHost {
        VirtualHost {
            domain: domain.to_owned(),
            upstream,
            protected: true,
            unprotected_prefixes: Vec::new(),
            adapter_route: None,
        }
    }

    /// The same host with `prefix` (e.g. [`ADAPTER_PREFIX`](istio_manifests::envoy_contract::ADAPTER_PREFIX)) routed to the adapter's HTTP port
    /// at `adapter_http` (see [`VirtualHost::adapter_route`]).
    #[must_use]
    pub fn with_adapter_route(self, prefix: &str, adapter_http: SocketAddr) -> VirtualHost {
        VirtualHost {
            adapter_route: Some(AdapterRoute {
                prefix: prefix.to_owned(),
                addr: adapter_http,
            }),
            ..self
        }
    }

    /// A host that bypasses ext_authz (the identity provider).
    pub fn unprotected(domain: &str, upstream: SocketAddr) -> VirtualHost {
        VirtualHost {
            protected: false,
            ..VirtualHost::protected(domain, upstream)
        }
    }

    fn safe_domain(&self) -> String {
        self.domain
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }

    fn cluster_name(&self, index: usize) -> String {
        format!("upstream_{index}_{}", self.safe_domain())
    }

    fn adapter_cluster_name(&self, index: usize) -> String {
        format!("adapter_{index}_{}", self.safe_domain())
    }
}

/// A complete Envoy bootstrap: one listener standing in for the Istio ingress gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyConfig {
    /// The gateway listener (plain HTTP, like the seed's port 80 server).
    pub listen: SocketAddr,
    /// Envoy's admin listener (`/ready`, `/stats`, `/config_dump`), if any.
    pub admin: Option<SocketAddr>,
    /// The authz server and mode.
    pub authz: AuthzTarget,
    /// The hosts, in order; a request for any other host gets 404.
    pub hosts: Vec<VirtualHost>,
    /// Whether Envoy logs every request to stdout.
    pub access_log: bool,
}

impl EnvoyConfig {
    /// A gateway with no hosts yet, no admin listener, no access log.
    pub fn new(listen: SocketAddr, authz: AuthzTarget) -> EnvoyConfig {
        EnvoyConfig {
            listen,
            admin: None,
            authz,
            hosts: Vec::new(),
            access_log: false,
        }
    }

    /// The seed's setup: [`SEED_APP_HOST`] protected, routed to `app`; [`SEED_IDP_HOST`] not
    /// protected, routed to `idp`.
    pub fn seed(
        listen: SocketAddr,
        authz: AuthzTarget,
        app: SocketAddr,
        idp: SocketAddr,
    ) -> EnvoyConfig {
        EnvoyConfig {
            hosts: vec![
                VirtualHost::protected(SEED_APP_HOST, app),
                VirtualHost::unprotected(SEED_IDP_HOST, idp),
            ],
            ..EnvoyConfig::new(listen, authz)
        }
    }

    /// The same gateway with the adapter's endpoints under `prefix` (e.g. [`ADAPTER_PREFIX`](istio_manifests::envoy_contract::ADAPTER_PREFIX)) of
    /// every protected host routed to the adapter's HTTP port at `adapter_http`, still behind
    /// the check: the routing of `ext-authz-adapter istio`'s VirtualService and of the Helm
    /// chart (see [`VirtualHost::adapter_route`]). In gRPC mode, `adapter_http` is the adapter's
    /// `--http-address`, not the gRPC address Envoy checks with.
    #[must_use]
    pub fn with_adapter_routes(mut self, prefix: &str, adapter_http: SocketAddr) -> EnvoyConfig {
        self.hosts = self
            .hosts
            .into_iter()
            .map(|host| {
                if host.protected {
                    host.with_adapter_route(prefix, adapter_http)
                } else {
                    host
                }
            })
            .collect();
        self
    }

    /// The bootstrap as pretty-printed JSON.
    pub fn render(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).expect("a JSON value serialises")
    }

    /// The bootstrap as a JSON value.
    pub fn to_json(&self) -> Value {
        // Istio's defaults (path normalisation `BASE`: `normalize_path` without `merge_slashes`;
        // `headers_with_underscores_action` unset, i.e. ALLOW), NOT the hardened settings that
        // `ext-authz-adapter istio` renders for a cluster: the tests then exercise the adapter's
        // own defences (`//admin`, `x_auth_request_user`), which must hold on a default gateway.
        let mut hcm = json!({
            "@type": HCM_TYPE,
            "stat_prefix": "ingress_http",
            "use_remote_address": true,
            "xff_num_trusted_hops": 0,
            "normalize_path": true,
            "route_config": {
                "name": "ingress",
                "virtual_hosts": self.hosts.iter().enumerate()
                    .map(|(i, host)| virtual_host(host, &host.cluster_name(i), &host.adapter_cluster_name(i)))
                    .collect::<Vec<_>>(),
            },
            "http_filters": [
                { "name": EXT_AUTHZ_FILTER, "typed_config": self.ext_authz_filter() },
                { "name": "envoy.filters.http.router", "typed_config": { "@type": ROUTER_TYPE } },
            ],
        });
        if self.access_log {
            hcm["access_log"] = json!([{
                "name": "envoy.access_loggers.stdout",
                "typed_config": { "@type": STDOUT_LOG_TYPE },
            }]);
        }

        let mut clusters: Vec<Value> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, host)| static_cluster(&host.cluster_name(i), host.upstream))
            .collect();
        clusters.extend(self.hosts.iter().enumerate().filter_map(|(i, host)| {
            let route = host.adapter_route.as_ref()?;
            Some(static_cluster(&host.adapter_cluster_name(i), route.addr))
        }));
        clusters.push(match &self.authz {
            AuthzTarget::Http { addr, .. } => static_cluster(AUTHZ_HTTP_CLUSTER, *addr),
            AuthzTarget::Grpc { addr, .. } => {
                let mut cluster = static_cluster(AUTHZ_GRPC_CLUSTER, *addr);
                cluster["typed_extension_protocol_options"] = json!({
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                        "explicit_http_config": { "http2_protocol_options": {} },
                    }
                });
                cluster
            }
        });

        let mut bootstrap = json!({
            "static_resources": {
                "listeners": [{
                    "name": "ingress",
                    "address": socket_address(self.listen),
                    "filter_chains": [{
                        "filters": [{
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": hcm,
                        }],
                    }],
                }],
                "clusters": clusters,
            },
        });
        if let Some(admin) = self.admin {
            bootstrap["admin"] = json!({ "address": socket_address(admin) });
        }
        bootstrap
    }

    fn ext_authz_filter(&self) -> Value {
        let mut filter = json!({
            "@type": EXT_AUTHZ_TYPE,
            "transport_api_version": "V3",
            "failure_mode_allow": false,
            "status_on_error": { "code": STATUS_ON_ERROR },
        });
        match &self.authz {
            AuthzTarget::Http { addr, timeout } => {
                filter["allowed_headers"] = header_matchers(INCLUDE_REQUEST_HEADERS_IN_CHECK);
                filter["http_service"] = json!({
                    "server_uri": {
                        // Required, but only the cluster is used.
                        "uri": format!("http://{addr}"),
                        "cluster": AUTHZ_HTTP_CLUSTER,
                        "timeout": duration(*timeout),
                    },
                    "authorization_response": {
                        "allowed_upstream_headers": header_matchers(HEADERS_TO_UPSTREAM_ON_ALLOW),
                        "allowed_client_headers": header_matchers(HEADERS_TO_DOWNSTREAM_ON_DENY),
                        "allowed_client_headers_on_success":
                            header_matchers(HEADERS_TO_DOWNSTREAM_ON_ALLOW),
                    },
                });
            }
            AuthzTarget::Grpc { addr, timeout } => {
                filter["grpc_service"] = json!({
                    "envoy_grpc": {
                        "cluster_name": AUTHZ_GRPC_CLUSTER,
                        "authority": addr.to_string(),
                    },
                    "timeout": duration(*timeout),
                });
            }
        }
        filter
    }
}

fn virtual_host(host: &VirtualHost, cluster: &str, adapter_cluster: &str) -> Value {
    let route = json!({ "cluster": cluster, "timeout": "0s" });
    let to_adapter = json!({ "cluster": adapter_cluster, "timeout": "0s" });
    // The provider's back-channel logout first: a POST of exactly that path (any query) goes
    // to the adapter without the check, whose request would carry no body. Then the
    // adapter's endpoints (the VirtualService's first route), with the check: no per-route
    // `disabled`, whatever `unprotected_prefixes` says.
    let mut routes: Vec<Value> = Vec::new();
    if let Some(adapter) = &host.adapter_route {
        routes.push(json!({
            "match": {
                "path": adapter.backchannel_logout_path(),
                "headers": [{ "name": ":method", "string_match": { "exact": "POST" } }],
            },
            "route": to_adapter,
            "typed_per_filter_config": authz_disabled(),
        }));
        routes.push(json!({ "match": { "prefix": adapter.prefix }, "route": to_adapter }));
    }
    routes.extend(
        host.unprotected_prefixes
            .iter()
            .filter(|_| host.protected)
            .map(|prefix| {
                json!({
                    "match": { "prefix": prefix },
                    "route": route,
                    "typed_per_filter_config": authz_disabled(),
                })
            }),
    );
    routes.push(json!({ "match": { "prefix": "/" }, "route": route }));
    let mut vhost = json!({
        "name": host.domain,
        "domains": [host.domain, format!("{}:*", host.domain)],
        "routes": routes,
    });
    if !host.protected {
        vhost["typed_per_filter_config"] = authz_disabled();
    }
    vhost
}

fn authz_disabled() -> Value {
    json!({ EXT_AUTHZ_FILTER: { "@type": EXT_AUTHZ_PER_ROUTE_TYPE, "disabled": true } })
}

fn static_cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket_address(addr) } }] }],
        },
    })
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

/// A protobuf JSON duration (`"1s"`, `"0.250000000s"`).
fn duration(d: Duration) -> String {
    match d.subsec_nanos() {
        0 => format!("{}s", d.as_secs()),
        nanos => format!("{}.{nanos:09}s", d.as_secs()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use istio_manifests::envoy_contract::ADAPTER_PREFIX;

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn http_seed() -> EnvoyConfig {
        EnvoyConfig {
            admin: Some(addr(9901)),
            ..EnvoyConfig::seed(
                addr(10000),
                AuthzTarget::Http {
                    addr: addr(4180),
                    timeout: Duration::from_millis(2500),
                },
                addr(8080),
                addr(8081),
            )
        }
    }

    fn parse(config: &EnvoyConfig) -> Value {
        serde_json::from_str(&config.render()).unwrap()
    }

    fn hcm(bootstrap: &Value) -> &Value {
        &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    }

    fn patterns(list: &Value) -> Vec<(String, String)> {
        list["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["ignore_case"], true, "{p}");
                let obj = p.as_object().unwrap();
                let (kind, value) = obj.iter().find(|(k, _)| *k != "ignore_case").unwrap();
                (kind.clone(), value.as_str().unwrap().to_owned())
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn http_mode_has_istios_header_lists() {
        let bootstrap = parse(&http_seed());
        let filter = &hcm(&bootstrap)["http_filters"][0];
        assert_eq!(filter["name"], EXT_AUTHZ_FILTER);
        let authz = &filter["typed_config"];
        assert_eq!(authz["@type"], EXT_AUTHZ_TYPE);
        assert_eq!(authz["transport_api_version"], "V3");
        assert_eq!(authz["failure_mode_allow"], false);
        assert_eq!(authz["status_on_error"]["code"], 403);
        assert!(authz.get("grpc_service").is_none());
        assert_eq!(
            patterns(&authz["allowed_headers"]),
            pairs(&[
                ("exact", "authorization"),
                ("exact", "cookie"),
                ("exact", "x-forwarded-proto"),
                ("exact", "accept"),
                ("exact", "sec-fetch-mode"),
                ("exact", "x-requested-with"),
            ])
        );
        let service = &authz["http_service"];
        assert!(service.get("path_prefix").is_none(), "{service}");
        assert_eq!(service["server_uri"]["cluster"], AUTHZ_HTTP_CLUSTER);
        assert_eq!(service["server_uri"]["timeout"], "2.500000000s");
        let response = &service["authorization_response"];
        assert_eq!(
            patterns(&response["allowed_upstream_headers"]),
            pairs(&[("exact", "authorization"), ("prefix", "x-auth-request-")])
        );
        assert_eq!(
            patterns(&response["allowed_client_headers_on_success"]),
            pairs(&[("exact", "set-cookie")])
        );
        assert_eq!(
            patterns(&response["allowed_client_headers"]),
            pairs(&[("exact", "content-type"), ("exact", "set-cookie")])
        );
        // The router comes last.
        assert_eq!(
            hcm(&bootstrap)["http_filters"][1]["name"],
            "envoy.filters.http.router"
        );
    }

    #[test]
    fn gateway_sets_forwarded_proto_and_listens_where_asked() {
        let bootstrap = parse(&http_seed());
        let hcm = hcm(&bootstrap);
        assert_eq!(hcm["use_remote_address"], true);
        assert_eq!(hcm["xff_num_trusted_hops"], 0);
        assert!(hcm.get("access_log").is_none());
        let listener = &bootstrap["static_resources"]["listeners"][0];
        assert_eq!(
            listener["address"]["socket_address"],
            json!({ "address": "127.0.0.1", "port_value": 10000 })
        );
        assert_eq!(
            bootstrap["admin"]["address"]["socket_address"]["port_value"],
            9901
        );
        let no_admin = EnvoyConfig {
            admin: None,
            access_log: true,
            ..http_seed()
        };
        let bootstrap = parse(&no_admin);
        assert!(bootstrap.get("admin").is_none());
        assert_eq!(
            self::hcm(&bootstrap)["access_log"][0]["name"],
            "envoy.access_loggers.stdout"
        );
    }

    #[test]
    fn app_is_protected_and_idp_is_not() {
        let bootstrap = parse(&http_seed());
        let vhosts = hcm(&bootstrap)["route_config"]["virtual_hosts"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(vhosts.len(), 2);
        let (app, idp) = (&vhosts[0], &vhosts[1]);
        assert_eq!(
            app["domains"],
            json!(["nginx.example.com", "nginx.example.com:*"])
        );
        assert!(app.get("typed_per_filter_config").is_none(), "{app}");
        assert_eq!(app["routes"].as_array().unwrap().len(), 1);
        assert_eq!(app["routes"][0]["route"]["timeout"], "0s");
        assert_eq!(
            idp["domains"],
            json!(["keycloak.example.com", "keycloak.example.com:*"])
        );
        let per_filter = &idp["typed_per_filter_config"][EXT_AUTHZ_FILTER];
        assert_eq!(per_filter["@type"], EXT_AUTHZ_PER_ROUTE_TYPE);
        assert_eq!(per_filter["disabled"], true);

        // Each host's route goes to its own cluster, pointing at its upstream.
        let clusters = bootstrap["static_resources"]["clusters"]
            .as_array()
            .unwrap();
        let port_of = |name: &Value| {
            let cluster = clusters.iter().find(|c| c["name"] == *name).unwrap();
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(port_of(&app["routes"][0]["route"]["cluster"]), 8080);
        assert_eq!(port_of(&idp["routes"][0]["route"]["cluster"]), 8081);
        assert_eq!(port_of(&json!(AUTHZ_HTTP_CLUSTER)), 4180);
        assert_eq!(clusters.len(), 3);
    }

    #[test]
    fn unprotected_prefixes_disable_the_check_per_route() {
        let mut config = http_seed();
        config.hosts[0].unprotected_prefixes = vec!["/public/".into(), "/healthz".into()];
        config.hosts[1].unprotected_prefixes = vec!["/ignored".into()];
        let bootstrap = parse(&config);
        let vhosts = &hcm(&bootstrap)["route_config"]["virtual_hosts"];
        let routes = vhosts[0]["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0]["match"]["prefix"], "/public/");
        assert_eq!(routes[1]["match"]["prefix"], "/healthz");
        for route in &routes[..2] {
            assert_eq!(
                route["typed_per_filter_config"][EXT_AUTHZ_FILTER]["disabled"],
                true
            );
        }
        assert_eq!(routes[2]["match"]["prefix"], "/");
        assert!(routes[2].get("typed_per_filter_config").is_none());
        // Already unprotected as a whole: no extra routes.
        assert_eq!(vhosts[1]["routes"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn grpc_mode_uses_an_http2_cluster_and_sends_all_headers() {
        let config = EnvoyConfig {
            authz: AuthzTarget::Grpc {
                addr: addr(4181),
                timeout: Duration::from_secs(3),
            },
            ..http_seed()
        };
        let bootstrap = parse(&config);
        let authz = &hcm(&bootstrap)["http_filters"][0]["typed_config"];
        assert!(authz.get("http_service").is_none());
        assert!(authz.get("allowed_headers").is_none());
        assert_eq!(authz["transport_api_version"], "V3");
        assert_eq!(
            authz["grpc_service"]["envoy_grpc"]["cluster_name"],
            AUTHZ_GRPC_CLUSTER
        );
        assert_eq!(authz["grpc_service"]["timeout"], "3s");
        let clusters = bootstrap["static_resources"]["clusters"]
            .as_array()
            .unwrap();
        let grpc = clusters
            .iter()
            .find(|c| c["name"] == AUTHZ_GRPC_CLUSTER)
            .unwrap();
        assert!(
            grpc["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
                .get("http2_protocol_options")
                .is_some()
        );
        assert!(clusters.iter().all(|c| c["name"] != AUTHZ_HTTP_CLUSTER));
    }

    #[test]
    fn the_test_gateway_keeps_istios_default_normalisation() {
        // Istio's BASE path normalisation and Envoy's default for underscores, not the hardened
        // settings rendered for clusters: the tests exercise the adapter's own defences.
        let bootstrap = parse(&http_seed());
        let hcm = hcm(&bootstrap);
        assert_eq!(hcm["normalize_path"], true);
        assert!(hcm.get("merge_slashes").is_none(), "{hcm}");
        assert!(
            hcm.get("path_with_escaped_slashes_action").is_none(),
            "{hcm}"
        );
        assert!(hcm.get("common_http_protocol_options").is_none(), "{hcm}");
    }

    #[test]
    fn the_adapter_prefix_routes_to_the_adapter_behind_the_check() {
        let adapter_http = addr(4180);
        let config = http_seed().with_adapter_routes(ADAPTER_PREFIX, adapter_http);
        // Only the protected host gets the route.
        assert_eq!(
            config.hosts[0].adapter_route,
            Some(AdapterRoute {
                prefix: "/oauth2/".to_owned(),
                addr: adapter_http
            })
        );
        assert_eq!(config.hosts[1].adapter_route, None);
        let mut config = config;
        config.hosts[0].unprotected_prefixes = vec!["/oauth2/".into(), "/public/".into()];
        let bootstrap = parse(&config);
        let vhosts = &hcm(&bootstrap)["route_config"]["virtual_hosts"];
        let routes = vhosts[0]["routes"].as_array().unwrap();
        // First the provider's back-channel logout: a POST of exactly that path, to the
        // adapter without the check. Then the adapter's prefix, checked (no per-route
        // `disabled`, even when an unprotected prefix names it too), then the unprotected
        // prefixes, then the app.
        assert_eq!(routes.len(), 5, "{routes:#?}");
        let logout = &routes[0];
        assert_eq!(
            logout["match"],
            json!({
                "path": "/oauth2/backchannel-logout",
                "headers": [{ "name": ":method", "string_match": { "exact": "POST" } }],
            })
        );
        assert_eq!(
            logout["typed_per_filter_config"][EXT_AUTHZ_FILTER]["disabled"],
            true
        );
        assert_eq!(logout["route"]["cluster"], routes[1]["route"]["cluster"]);
        let routes = &routes[1..];
        assert_eq!(routes[0]["match"]["prefix"], "/oauth2/");
        assert!(
            routes[0].get("typed_per_filter_config").is_none(),
            "{}",
            routes[0]
        );
        assert!(vhosts[0].get("typed_per_filter_config").is_none());
        assert_eq!(routes[3]["match"]["prefix"], "/");
        assert_eq!(vhosts[1]["routes"].as_array().unwrap().len(), 1);

        let clusters = bootstrap["static_resources"]["clusters"]
            .as_array()
            .unwrap();
        let endpoint_port = |name: &Value| {
            let cluster = clusters.iter().find(|c| c["name"] == *name).unwrap();
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(endpoint_port(&routes[0]["route"]["cluster"]), 4180);
        assert_eq!(endpoint_port(&routes[3]["route"]["cluster"]), 8080);
        assert_ne!(routes[0]["route"]["cluster"], routes[3]["route"]["cluster"]);
        assert_eq!(clusters.len(), 4);

        // In gRPC mode the route goes to the adapter's HTTP port, not to the gRPC one.
        let grpc = EnvoyConfig {
            authz: AuthzTarget::Grpc {
                addr: addr(4181),
                timeout: Duration::from_secs(3),
            },
            ..http_seed()
        }
        .with_adapter_routes(ADAPTER_PREFIX, adapter_http);
        let bootstrap = parse(&grpc);
        let routes = &hcm(&bootstrap)["route_config"]["virtual_hosts"][0]["routes"];
        let clusters = bootstrap["static_resources"]["clusters"]
            .as_array()
            .unwrap();
        let cluster = clusters
            .iter()
            .find(|c| c["name"] == routes[0]["route"]["cluster"])
            .unwrap();
        assert_eq!(
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                ["port_value"],
            4180
        );
        assert!(cluster.get("typed_extension_protocol_options").is_none());
    }

    #[test]
    fn durations_are_protobuf_json() {
        assert_eq!(duration(Duration::from_secs(600)), "600s");
        assert_eq!(duration(Duration::from_millis(250)), "0.250000000s");
        assert_eq!(duration(Duration::ZERO), "0s");
    }
}
