//! Helpers of `tests/keycloak_scale.rs`: a per-test copy of the `mytest` realm, two (or more)
//! adapter replicas of the real binary, Envoy with a round-robin ext_authz cluster over them,
//! an upstream, a browser-like client, Prometheus counters, and a TCP forwarder standing in for
//! "the network path to Keycloak" that a test can cut and restore.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{AdapterProcess, Log};
use bytes::Bytes;
use envoy_bootstrap::{AUTHZ_GRPC_CLUSTER, AUTHZ_HTTP_CLUSTER, AuthzTarget, EnvoyConfig};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use test_support::envoy::Envoy;
use test_support::free_port;
use test_support::keycloak::{CLIENT_ID, Keycloak, TestUser, login_at_keycloak};
use test_support::redis::RedisServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The seed's protected host.
pub const APP_HOST: &str = "nginx.example.com";
/// 32 bytes, base64; the same for every replica (they must read each other's cookies).
pub const COOKIE_SECRET: &str = "c2NhbGUtdGVzdHMtY29va2llLXNlY3JldC0zMmJ5dGU=";
/// `127.0.0.1:0`: a replica started there picks a free port and logs it.
pub const ANY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The seed's Deployment args that do not depend on where things run (DESIGN.md §4).
const SEED_ARGS: &[&str] = &[
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
    "--cookie-domain=.example.com",
    "--oidc-rp-initiated-logout=true",
];

// ---------------------------------------------------------------------------------------------
// The realm.

/// Keycloak event types the tests count.
pub const REFRESH_TOKEN: &str = "REFRESH_TOKEN";
/// A refused refresh (e.g. a rotated refresh token replayed).
pub const REFRESH_TOKEN_ERROR: &str = "REFRESH_TOKEN_ERROR";

/// A copy of `mytest` for one test: refresh-token rotation on (Revoke Refresh Token, reuse 0),
/// events stored (so refreshes can be counted), and optionally the `nginx` client's
/// back-channel logout URL.
pub struct TestRealm {
    /// The realm name.
    pub name: String,
    /// `http://keycloak.example.com:<port>/realms/<name>`.
    pub issuer: String,
}

fn unique(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "scale-{tag}-{}-{nanos:08x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestRealm {
    /// Creates the realm. `backchannel`: the address Keycloak POSTs logout tokens to
    /// (`http://<addr>/oauth2/backchannel-logout`, with `sid` required).
    pub async fn create(kc: &Keycloak, tag: &str, backchannel: Option<SocketAddr>) -> TestRealm {
        let mut realm = kc.mytest_realm_json();
        let name = unique(tag);
        realm["realm"] = json!(name);
        realm["displayName"] = json!(name);
        realm["revokeRefreshToken"] = json!(true);
        realm["refreshTokenMaxReuse"] = json!(0);
        realm["eventsEnabled"] = json!(true);
        realm["eventsExpiration"] = json!(3600);
        realm["eventsListeners"] = json!(["jboss-logging"]);
        realm["enabledEventTypes"] = json!([
            "LOGIN",
            "LOGIN_ERROR",
            "CODE_TO_TOKEN",
            "CODE_TO_TOKEN_ERROR",
            REFRESH_TOKEN,
            REFRESH_TOKEN_ERROR,
            "LOGOUT",
        ]);
        let nginx = realm["clients"]
            .as_array_mut()
            .expect("clients")
            .iter_mut()
            .find(|c| c["clientId"] == CLIENT_ID)
            .expect("the nginx client");
        if let Some(addr) = backchannel {
            nginx["attributes"]["backchannel.logout.url"] =
                json!(format!("http://{addr}/oauth2/backchannel-logout"));
            nginx["attributes"]["backchannel.logout.session.required"] = json!("true");
        }
        kc.create_realm(&realm).await;
        TestRealm {
            issuer: kc.realm_url(&name),
            name,
        }
    }

    /// Sets the realm's access token lifespan (for tokens issued from now on, refreshed ones
    /// included).
    pub async fn set_access_token_lifespan(&self, kc: &Keycloak, lifespan: Duration) {
        let (status, body) = kc
            .admin_send(
                reqwest::Method::PUT,
                &self.name,
                Some(&json!({ "accessTokenLifespan": lifespan.as_secs() })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "realm {}: accessTokenLifespan={lifespan:?}: {body}",
            self.name
        );
    }

    /// The realm's stored events of `event_type` (newest first).
    pub async fn events(&self, kc: &Keycloak, event_type: &str) -> Vec<Value> {
        kc.admin_get(&format!("{}/events?type={event_type}&max=1000", self.name))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How many events of `event_type` Keycloak stored for the `nginx` client.
    pub async fn count(&self, kc: &Keycloak, event_type: &str) -> usize {
        self.events(kc, event_type)
            .await
            .iter()
            .filter(|e| e["clientId"] == CLIENT_ID)
            .count()
    }

    /// Keycloak's admin "sign out" of `username` (`POST /admin/realms/<realm>/users/<id>/logout`):
    /// ends every session of the user, sending a back-channel logout token for each to the
    /// client's URL, if any, before it answers.
    pub async fn sign_out(&self, kc: &Keycloak, username: &str) {
        let id = self.user_id(kc, username).await;
        let (status, body) = kc
            .admin_send(
                reqwest::Method::POST,
                &format!("{}/users/{id}/logout", self.name),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "admin sign-out of {username}: {body}"
        );
    }

    /// The Keycloak user id of `username`.
    pub async fn user_id(&self, kc: &Keycloak, username: &str) -> String {
        let user = kc
            .find_user(&self.name, username)
            .await
            .unwrap_or_else(|| panic!("no user {username} in realm {}", self.name));
        user["id"].as_str().expect("user id").to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Adapter replicas.

/// One `ext-authz-adapter` process (a replica), killed when dropped; its log is printed if
/// the test fails.
pub struct Replica {
    /// A name for messages (`A`, `B`, ...).
    pub name: String,
    /// Its HTTP (ext_authz) address.
    pub http: SocketAddr,
    /// Its Prometheus address.
    pub metrics: SocketAddr,
    /// Its gRPC (`envoy.service.auth.v3.Authorization`) address.
    pub grpc: SocketAddr,
    /// The HTTP and gRPC addresses it is started with: port 0 (it picks free ports and logs
    /// them), or ports reserved so that it can be restarted on them.
    listen: [SocketAddr; 2],
    /// Its args, without the addresses.
    args: Vec<String>,
    process: Option<AdapterProcess>,
    /// The log of every process of this replica (restarts append).
    log: Log,
}

impl Replica {
    /// Spawns the binary with the seed's args, `issuer`, the realm's client secret (env, as in
    /// the seed), `extra` (replacing the seed's value of a flag it names), and HTTP on `http`, gRPC and metrics on free ports; waits until it
    /// has logged where it listens (not for `/ready`).
    ///
    /// `http` with port 0: it picks a free port, read back from its log. A reserved port
    /// ([`test_support::free_port`]) only when the address must be known before the start
    /// (Keycloak's back-channel logout URL) or for [`Replica::restart`], which needs the same
    /// ports again (Envoy's cluster names them); gRPC then gets a reserved port too.
    pub async fn spawn(
        name: &str,
        http: SocketAddr,
        issuer: &str,
        client_secret: &str,
        extra: &[String],
    ) -> Replica {
        let grpc_port = if http.port() == 0 { 0 } else { free_port() };
        // A flag in `extra` replaces the seed's (`--email-domain=example.com` for its `*`).
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let base = SEED_ARGS.iter().map(|a| (*a).to_owned()).chain([
            format!("--oidc-issuer-url={issuer}"),
            format!("--cookie-secret={COOKIE_SECRET}"),
            format!("--client-id={CLIENT_ID}"),
        ]);
        let args = crate::common::overridden(base, &extra);
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut replica = Replica {
            name: name.to_owned(),
            http: unbound,
            metrics: unbound,
            grpc: unbound,
            listen: [http, SocketAddr::from(([127, 0, 0, 1], grpc_port))],
            args,
            process: None,
            log: Log::default(),
        };
        replica.launch(client_secret).await;
        replica
    }

    /// Starts a process and reads where it listens from its log.
    async fn launch(&mut self, client_secret: &str) {
        let [http, grpc] = self.listen;
        let mut args = vec![
            format!("--http-address={http}"),
            format!("--grpc-address={grpc}"),
            "--metrics-address=127.0.0.1:0".to_owned(),
        ];
        args.extend(self.args.iter().cloned());
        let mut process = AdapterProcess::spawn(
            &format!("replica {}", self.name),
            args,
            &[("OAUTH2_PROXY_CLIENT_SECRET", client_secret)],
            self.log.clone(),
        );
        let bound = process.bound().await;
        self.http = bound.http;
        self.grpc = bound.grpc.expect("--grpc-address was given");
        self.metrics = bound.metrics.expect("--metrics-address was given");
        self.process = Some(process);
    }

    /// Spawns and waits until `/ready` answers 200 (discovery done).
    pub async fn start(
        name: &str,
        http: SocketAddr,
        issuer: &str,
        client_secret: &str,
        extra: &[String],
    ) -> Replica {
        let mut replica = Replica::spawn(name, http, issuer, client_secret, extra).await;
        replica.wait_for("/ready").await;
        replica
    }

    /// Waits (at most [`crate::common::START_DEADLINE`]) until `path` (`/ping` or `/ready`)
    /// answers 200; panics with its log if it exits first.
    pub async fn wait_for(&mut self, path: &str) {
        let http = self.http;
        let name = self.name.clone();
        self.process
            .as_mut()
            .unwrap_or_else(|| panic!("replica {name} is not running"))
            .wait_for(http, path)
            .await;
    }

    /// Kills the process (SIGKILL, as a crashed pod) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop().await;
        }
    }

    /// Sends SIGTERM (as Kubernetes does on a rolling update) and waits (at most `within`)
    /// until the process has exited by itself; returns its exit status. Panics if it still
    /// runs then.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut process = self
            .process
            .take()
            .unwrap_or_else(|| panic!("replica {} is not running", self.name));
        process.signal("TERM");
        let status = process.wait_exit(within).await;
        status.unwrap_or_else(|| {
            panic!(
                "replica {} still runs {within:?} after SIGTERM\n{}",
                self.name,
                self.log.tail()
            )
        })
    }

    /// Starts the same replica again (same ports and args) and waits until it is ready.
    /// Only for a replica started on a reserved port (see [`Replica::spawn`]).
    pub async fn restart(&mut self, client_secret: &str) {
        let before = (self.http, self.grpc);
        assert_ne!(
            self.listen[0].port(),
            0,
            "replica {} was started on port 0: a restart on the same ports needs reserved ports",
            self.name
        );
        self.kill().await;
        self.launch(client_secret).await;
        assert_eq!(
            (self.http, self.grpc),
            before,
            "replica {} restarted on other ports",
            self.name
        );
        self.wait_for("/ready").await;
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let r = plain_client()
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /metrics of replica {}: {e}", self.name));
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "/metrics of replica {}",
            self.name
        );
        r.text().await.expect("metrics text")
    }

    /// The value of the sample `series` (a metric name, with labels if it has any, e.g.
    /// `oidc_authz_decisions_total{outcome="allow"}`).
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self.metrics_text().await;
        sample(&text, series)
            .unwrap_or_else(|| panic!("replica {} exposes no {series}:\n{text}", self.name))
    }

    /// Refresh-token grants this replica sent to Keycloak.
    pub async fn refreshes(&self) -> u64 {
        self.metric("oidc_authz_refreshes_total").await
    }

    /// Refreshes that failed (provider unreachable or refused).
    pub async fn refresh_failures(&self) -> u64 {
        self.metric("oidc_authz_refresh_failures_total").await
    }

    /// Checks this replica allowed.
    pub async fn allowed(&self) -> u64 {
        self.metric("oidc_authz_decisions_total{outcome=\"allow\"}")
            .await
    }

    /// A check sent straight to this replica (not through Envoy), as an API call
    /// (`Accept: application/json`) with `cookie`: its status.
    pub async fn check(&self, cookie: &str) -> StatusCode {
        self.check_full(cookie).await.0
    }

    /// Like [`Replica::check`], with the body.
    pub async fn check_full(&self, cookie: &str) -> (StatusCode, String) {
        let r = app_client(Some(self.http))
            .get(format!("http://{APP_HOST}:{}/api", self.http.port()))
            .header("cookie", cookie)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("check at replica {}: {e}", self.name));
        let status = r.status();
        (status, r.text().await.unwrap_or_default())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        self.log.tail()
    }

    /// Its whole log (every process of this replica).
    pub fn log(&self) -> &Log {
        &self.log
    }
}

/// The value of `series` in a Prometheus text exposition.
pub fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

// ---------------------------------------------------------------------------------------------
// The upstream, Envoy and the whole stack.

/// Starts an upstream that answers 200 `upstream ok` to everything; returns its address and a
/// counter of the requests it received.
pub async fn upstream() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: hyper::Request<Incoming>| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"upstream ok",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// How Envoy asks the adapter (Istio's `envoyExtAuthzHttp` or `envoyExtAuthzGrpc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// HTTP ext_authz to the replicas' HTTP ports (the seed's setup).
    Http,
    /// gRPC ext_authz to the replicas' gRPC ports.
    Grpc,
}

/// The Envoy bootstrap of the seed ([`EnvoyConfig::seed`]) with the ext_authz cluster spread
/// over `replicas`: round robin, and active health checks (HTTP `GET /ping`, or a TCP connect
/// in gRPC mode, every 200 ms; panic routing off), standing in for the readiness probe that
/// takes a dead pod out of Istio's endpoints.
///
/// A killed replica refuses connections: three failed checks in a row (about 0.6 s) take it
/// out, one success brings it back. A slow `/ping` of a live replica (the machine is loaded)
/// is no failure: a check may take 10 s. With one failure and a 1 s timeout, a replica that
/// answered late once was taken out, and with both out every check failed.
pub fn envoy_config(
    mode: Mode,
    replicas: &[SocketAddr],
    app: SocketAddr,
    idp: SocketAddr,
) -> String {
    let config = EnvoyConfig::seed(ANY, authz_target(mode, replicas), app, idp);
    spread_over(&config, mode, replicas)
}

/// Where Envoy asks in `mode`: the first of `replicas` (see [`spread_over`] for the rest).
pub fn authz_target(mode: Mode, replicas: &[SocketAddr]) -> AuthzTarget {
    let timeout = Duration::from_secs(15);
    match mode {
        Mode::Http => AuthzTarget::Http {
            addr: replicas[0],
            timeout,
        },
        Mode::Grpc => AuthzTarget::Grpc {
            addr: replicas[0],
            timeout,
        },
    }
}

/// `config`'s bootstrap with its ext_authz cluster spread over `replicas` (round robin, health
/// checked), as [`envoy_config`] describes.
pub fn spread_over(config: &EnvoyConfig, mode: Mode, replicas: &[SocketAddr]) -> String {
    let cluster = match mode {
        Mode::Http => AUTHZ_HTTP_CLUSTER,
        Mode::Grpc => AUTHZ_GRPC_CLUSTER,
    };
    let mut bootstrap = config.to_json();
    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .expect("clusters");
    let authz = clusters
        .iter_mut()
        .find(|c| c["name"] == cluster)
        .expect("the ext_authz cluster");
    authz["lb_policy"] = json!("ROUND_ROBIN");
    authz["load_assignment"]["endpoints"][0]["lb_endpoints"] = replicas
        .iter()
        .map(|a| {
            json!({ "endpoint": { "address": { "socket_address": {
                "address": a.ip().to_string(), "port_value": a.port() } } } })
        })
        .collect();
    let mut health_check = json!({
        "timeout": "10s",
        "interval": "0.2s",
        // Otherwise a cluster that had no traffic yet is checked every 60 s.
        "no_traffic_interval": "0.2s",
        "no_traffic_healthy_interval": "0.2s",
        "unhealthy_threshold": 3,
        "healthy_threshold": 1,
    });
    match mode {
        // A probe names the adapter by address (Envoy would send the cluster name as Host,
        // and a host name's `/ping` is a check).
        Mode::Http => {
            health_check["http_health_check"] = json!({ "path": "/ping", "host": "127.0.0.1" })
        }
        Mode::Grpc => health_check["tcp_health_check"] = json!({}),
    }
    authz["health_checks"] = json!([health_check]);
    authz["common_lb_config"] = json!({ "healthy_panic_threshold": { "value": 0.0 } });
    serde_json::to_string_pretty(&bootstrap).expect("JSON")
}

/// Which session store the replicas use. Redis is configured in both cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// `--session-store-type=cookie` (default) with `--redis-connection-url` (revocations and
    /// one refresh across replicas in Redis).
    Cookie,
    /// `--session-store-type=redis`: the cookie holds a ticket.
    Redis,
}

/// The store flags for `store` with Redis at `redis_url`.
pub fn store_args(store: Store, redis_url: &str) -> Vec<String> {
    let mut args = vec![format!("--redis-connection-url={redis_url}")];
    if store == Store::Redis {
        args.push("--session-store-type=redis".to_owned());
    }
    args
}

/// Two replicas behind Envoy.
pub struct Stack {
    /// `http://nginx.example.com:<Envoy's port>`.
    pub base: String,
    /// Requests that reached the upstream.
    pub upstream_hits: Arc<AtomicU64>,
    // The Envoys are dropped first.
    /// Envoy in HTTP mode (the seed's), in front of both replicas.
    pub envoy: Envoy,
    /// A second Envoy, in gRPC mode, in front of the same replicas (when asked for).
    pub envoy_grpc: Option<Envoy>,
    /// Replica A (the realm's back-channel logout URL points at it, when set).
    pub a: Replica,
    /// Replica B.
    pub b: Replica,
    /// The args both replicas got (besides address and metrics).
    pub args: Vec<String>,
    /// The issuer.
    pub issuer: String,
}

impl Stack {
    /// Replicas A (on `a_http`) and B (on `b_http`) for `realm`, each with `--resolve
    /// keycloak.example.com=<keycloak_ip>` and `extra`, and Envoy (HTTP mode) in front of
    /// them; with `grpc`, a second Envoy in gRPC mode too. Addresses with port 0 ([`ANY`]):
    /// the replica picks a free port (see [`Replica::spawn`] for when to reserve one).
    pub async fn start(
        kc: &Keycloak,
        realm: &TestRealm,
        a_http: SocketAddr,
        b_http: SocketAddr,
        keycloak_ip: IpAddr,
        extra: &[String],
        grpc: bool,
    ) -> Stack {
        let mut args = vec![format!("--resolve={}={keycloak_ip}", kc.host())];
        args.extend(extra.iter().cloned());
        let (a, b) = tokio::join!(
            Replica::start("A", a_http, &realm.issuer, &kc.client_secret, &args),
            Replica::start("B", b_http, &realm.issuer, &kc.client_secret, &args),
        );
        let (app, upstream_hits) = upstream().await;
        let envoy = Envoy::start(&envoy_config(Mode::Http, &[a.http, b.http], app, kc.addr)).await;
        let envoy_grpc = if grpc {
            Some(Envoy::start(&envoy_config(Mode::Grpc, &[a.grpc, b.grpc], app, kc.addr)).await)
        } else {
            None
        };
        Stack {
            base: format!("http://{APP_HOST}:{}", envoy.listener().port()),
            upstream_hits,
            envoy,
            envoy_grpc,
            a,
            b,
            args,
            issuer: realm.issuer.clone(),
        }
    }

    /// `http://nginx.example.com:<port of the gRPC-mode Envoy>`.
    pub fn grpc_base(&self) -> String {
        let envoy = self
            .envoy_grpc
            .as_ref()
            .expect("started with a gRPC-mode Envoy");
        format!("http://{APP_HOST}:{}", envoy.listener().port())
    }

    /// Both replicas.
    pub fn replicas(&self) -> [&Replica; 2] {
        [&self.a, &self.b]
    }

    /// A check through Envoy (an API call with `cookie`): status and body.
    pub async fn check(&self, client: &reqwest::Client, cookie: &str) -> (StatusCode, String) {
        let r = client
            .get(format!("{}/api", self.base))
            .header("cookie", cookie)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("request through Envoy failed: {e}"));
        let status = r.status();
        (status, r.text().await.unwrap_or_default())
    }

    /// Envoy's view of the ext_authz endpoints (admin `/clusters`, the ext_authz lines).
    pub async fn envoy_authz_endpoints(&self) -> String {
        let text = plain_client()
            .get(self.envoy.admin_url("/clusters"))
            .send()
            .await
            .expect("Envoy admin /clusters")
            .text()
            .await
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(AUTHZ_HTTP_CLUSTER))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A counter of Envoy's (`/stats`), e.g. `http.ingress_http.ext_authz.error`; 0 when absent.
    pub async fn envoy_stat(envoy: &Envoy, name: &str) -> u64 {
        let text = plain_client()
            .get(envoy.admin_url("/stats"))
            .send()
            .await
            .expect("Envoy admin /stats")
            .text()
            .await
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The adapters' and Envoy's logs, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- Envoy ---\n{}\n--- A ---\n{}\n--- B ---\n{}",
            self.envoy.log_tail(),
            self.a.log_tail(),
            self.b.log_tail()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Clients and login.

/// A client for the app host without cookie jar and redirects, for hand-made `Cookie`
/// headers; the app host maps to 127.0.0.1 (or to `to`, with its port).
pub fn app_client(to: Option<SocketAddr>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            APP_HOST,
            to.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        )
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A plain client (admin endpoints, /metrics, /ready).
pub fn plain_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// A browser: cookie jar, no automatic redirects, Keycloak's and the app's host names mapped
/// to 127.0.0.1.
pub struct Browser {
    /// The client.
    pub http: reqwest::Client,
    /// Its cookies.
    pub jar: Arc<Jar>,
}

impl Browser {
    /// A new browser with an empty jar.
    pub fn new(kc: &Keycloak) -> Browser {
        let jar = Arc::new(Jar::default());
        let http = kc
            .client_builder()
            .resolve(APP_HOST, SocketAddr::from(([127, 0, 0, 1], 0)))
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser");
        Browser { http, jar }
    }

    /// The `Cookie` header the browser sends to `base`.
    pub fn cookie_header(&self, base: &str) -> String {
        self.jar
            .cookies(&base.parse().expect("URL"))
            .and_then(|h| h.to_str().ok().map(str::to_owned))
            .unwrap_or_default()
    }

    /// A navigation (GET, `Accept: text/html`) to `url`.
    pub async fn navigate(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// Logs in at Keycloak (its real login form, or none when the browser has a Keycloak
    /// session already) starting at `base` (Envoy, or a replica), up to Keycloak's redirect
    /// back; returns the callback URL, not yet visited.
    pub async fn login_until_callback(&self, base: &str, issuer: &str, user: &TestUser) -> String {
        let r = self.navigate(&format!("{base}/")).await;
        assert_eq!(
            r.status(),
            StatusCode::FOUND,
            "a navigation without a session is sent to Keycloak"
        );
        let authorize = location(&r);
        assert!(
            authorize.starts_with(issuer),
            "to the realm's authorization endpoint: {authorize}"
        );
        let callback =
            login_at_keycloak(&self.http, &authorize, user.username, user.password).await;
        assert!(
            callback.starts_with(&format!("{base}/oauth2/callback?")),
            "Keycloak sends the browser back to where it started: {callback}"
        );
        callback
    }

    /// The whole login through Envoy; returns the session's `Cookie` header.
    pub async fn login(&self, stack: &Stack, user: &TestUser) -> String {
        let callback = self
            .login_until_callback(&stack.base, &stack.issuer, user)
            .await;
        let r = self.navigate(&callback).await;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::FOUND,
            "the callback creates the session: {body}\n{}",
            stack.logs()
        );
        let cookie = self.cookie_header(&stack.base);
        assert!(
            cookie
                .split("; ")
                .any(|c| c.starts_with("auth=") || c.starts_with("auth_0=")),
            "a session cookie: {cookie}"
        );
        cookie
    }
}

/// The `Location` header.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The `Set-Cookie` headers.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// Starts Redis with persistence (AOF, fsync always), as production would run it.
pub async fn persistent_redis() -> RedisServer {
    RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"]).await
}

// ---------------------------------------------------------------------------------------------
// The network path to Keycloak.

/// A TCP forwarder from `listen` (an address of its own in 127.0.0.0/8, on the port of
/// Keycloak's frontend URL) to Keycloak. The replicas reach Keycloak through it
/// (`--resolve keycloak.example.com=<listen ip>`); [`KeycloakPath::cut`] makes Keycloak
/// unreachable for them (connections refused, open ones closed) while the shared Keycloak
/// keeps running for everyone else, and [`KeycloakPath::restore`] brings it back.
pub struct KeycloakPath {
    /// Where it listens.
    pub listen: SocketAddr,
    target: SocketAddr,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl KeycloakPath {
    /// A forwarder to Keycloak on a free loopback address (port = the frontend URL's port).
    pub async fn start(kc: &Keycloak) -> KeycloakPath {
        let port = url::Url::parse(&kc.base_url)
            .ok()
            .and_then(|u| u.port_or_known_default())
            .expect("Keycloak's URL has a port");
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        // An address of our own, so that nothing else listens on it with Keycloak's port.
        let pid = std::process::id();
        for i in 0..200u32 {
            let n = pid.wrapping_add(i * 7919);
            let ip = Ipv4Addr::new(127, 100 + (n % 100) as u8, ((n / 100) % 250) as u8 + 1, 1);
            let listen = SocketAddr::from((ip, port));
            if let Ok(listener) = TcpListener::bind(listen).await {
                let mut path = KeycloakPath {
                    listen,
                    target,
                    accept: None,
                    connections: Arc::default(),
                };
                path.serve(listener);
                return path;
            }
        }
        panic!("no free loopback address for the Keycloak forwarder on port {port}");
    }

    fn serve(&mut self, listener: TcpListener) {
        self.serve_with(listener, None);
    }

    /// Accepts connections on `listener`: forwards them to Keycloak, or (`hang_up_after`)
    /// holds each one that long without answering, then closes it.
    fn serve_with(&mut self, listener: TcpListener, hang_up_after: Option<Duration>) {
        let target = self.target;
        let connections = self.connections.clone();
        self.accept = Some(tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let task = tokio::spawn(async move {
                    if let Some(delay) = hang_up_after {
                        tokio::time::sleep(delay).await;
                        drop(inbound);
                    } else if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(task);
            }
        }));
    }

    /// The IP to pass to `--resolve`.
    pub fn ip(&self) -> IpAddr {
        self.listen.ip()
    }

    /// Keycloak becomes unreachable through the forwarder: the listener closes (new
    /// connections are refused) and open connections are dropped.
    pub async fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let open: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.connections.lock().unwrap_or_else(|e| e.into_inner()));
        for c in open {
            c.abort();
            let _ = c.await;
        }
        assert!(
            TcpStream::connect(self.listen).await.is_err(),
            "the forwarder still accepts after the cut"
        );
    }

    /// Keycloak is reachable through the forwarder again.
    pub async fn restore(&mut self) {
        let listener = self.rebind().await;
        self.serve(listener);
    }

    /// Keycloak fails slowly: after [`KeycloakPath::cut`], connections are accepted again but
    /// each is closed after `delay` without an answer (a network error for the replica, not
    /// an `invalid_grant`), as a Keycloak that is going down or a proxy timing out would.
    pub async fn hang_up_after(&mut self, delay: Duration) {
        let listener = self.rebind().await;
        self.serve_with(listener, Some(delay));
    }

    async fn rebind(&self) -> TcpListener {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(self.listen).await {
                Ok(l) => return l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot listen on {} again: {e}",
                        self.listen
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl Drop for KeycloakPath {
    fn drop(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        for c in self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            c.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Observations over time.

/// One request of a background load: when it was sent and answered, and its status.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Sent, relative to the load's start.
    pub sent: Duration,
    /// Answered.
    pub done: Duration,
    /// The status.
    pub status: u16,
}

/// Sends one check through Envoy every `every` until stopped (at most `max` requests), one at
/// a time, recording each.
pub struct Load {
    /// When the load started (the origin of [`Sample`] times).
    pub origin: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

impl Load {
    /// Starts the load with `cookie` against `base` (through Envoy).
    pub fn start(base: &str, cookie: &str, every: Duration, max: usize) -> Load {
        let origin = Instant::now();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let (base, cookie, flag) = (base.to_owned(), cookie.to_owned(), stop.clone());
        let record = samples.clone();
        let task = tokio::spawn(async move {
            let client = app_client(None);
            let len = || record.lock().unwrap_or_else(|e| e.into_inner()).len();
            while !flag.load(Ordering::Relaxed) && len() < max {
                let sent = origin.elapsed();
                let status = match client
                    .get(format!("{base}/api"))
                    .header("cookie", &cookie)
                    .header("accept", "application/json")
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                record
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Sample {
                        sent,
                        done: origin.elapsed(),
                        status,
                    });
                tokio::time::sleep(every).await;
            }
        });
        Load {
            origin,
            stop,
            samples,
            task,
        }
    }

    /// Now, relative to the load's start.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// How many requests sent at or after `at` (relative to the start) were answered so far.
    pub fn answered_since(&self, at: Duration) -> usize {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.sent >= at)
            .count()
    }

    /// Stops the load and returns its samples.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load task");
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A compact listing of samples for messages: `sent-done:status`.
pub fn describe(samples: &[Sample]) -> String {
    samples
        .iter()
        .map(|s| {
            format!(
                "{:.2}-{:.2}s:{}",
                s.sent.as_secs_f64(),
                s.done.as_secs_f64(),
                s.status
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}
