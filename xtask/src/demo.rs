//! `cargo xtask demo [--grpc] [--port PORT]`: the seed's stack on 127.0.0.1, until Ctrl-C.
//! `cargo xtask demo --app axum [--port PORT]`: the axum example against Keycloak, until Ctrl-C.
//!
//! ## The default: the seed's stack
//!
//! The seed (an Istio ingress gateway, oauth2-proxy as its ext_authz provider, Keycloak, and
//! nginx) on one machine, each part a real process:
//!
//! | seed | here |
//! |---|---|
//! | Istio ingress gateway, `AuthorizationPolicy` CUSTOM | Envoy 1.40 with the bootstrap of `EnvoyConfig::seed` (as Istio renders `envoyExtAuthzHttp`/`Grpc`), listening on `--port` (8080 if free) |
//! | the VirtualService's `/oauth2/` route to the oauth2-proxy Service | `EnvoyConfig::with_adapter_routes`: `/oauth2/` of `nginx.example.com` goes to the adapter's HTTP port (in `--grpc` mode too), after the check |
//! | oauth2-proxy | `target/debug/ext-authz-adapter` with the seed's Deployment args |
//! | Keycloak, realm `mytest` | Keycloak 26 with `deploy/keycloak`'s realms, behind the gateway as `keycloak.example.com` (the seed's keycloak VirtualService) |
//! | nginx | `hello-upstream` (`examples/hello-upstream`): a page listing the identity headers it received |
//!
//! Order: Keycloak starts first (it takes longest) and boots while cargo builds the adapter and
//! the upstream; then the upstream and Envoy start; once those three are ready the adapter
//! starts (its discovery goes through Envoy to Keycloak) and is ready when discovery succeeded.
//! A last self-check sends `GET http://nginx.example.com:PORT/` through the gateway and expects
//! the 302 to Keycloak, and `GET /oauth2/userinfo` and expects the adapter's 401 (no session).
//!
//! One routing story, the one `ext-authz-adapter istio` and the Helm chart render: every path of
//! `nginx.example.com` goes through the check, `/oauth2/` included, and `/oauth2/` is routed to
//! the adapter's HTTP port. The check answers the adapter's endpoints; the ones it answers with
//! 200 (`/oauth2/userinfo` when signed in), which Envoy takes for an allow, then reach the
//! adapter again through that route rather than the hello page. The one request that skips the
//! check is a `POST` of exactly `/oauth2/backchannel-logout` (Keycloak's back-channel logout,
//! whose token is in the body a check lacks), routed to the adapter, which verifies it.
//!
//! ## `--app axum`: the Tower layer, no gateway
//!
//! Keycloak 26 with `deploy/keycloak`'s realms, reached directly at `http://127.0.0.1:<port>`
//! (8080 if free): that is its frontend URL, so the issuer is
//! `http://127.0.0.1:<port>/realms/mytest` and nothing needs a host mapping (the realm's `nginx`
//! client allows the redirect URIs `http://127.0.0.1:*`). `examples/axum-app` (built with
//! `cargo build -p axum-app`) runs on `--port` (3000 if free) as the client `nginx`, its
//! callback `http://127.0.0.1:<app port>/oauth2/callback` derived from the request. It is
//! ready once `GET /healthz` answers 200 and `GET /me` answers 302 (discovery done); the
//! self-check then expects `GET /` 200 (public) and `GET /me` 302 to Keycloak's authorization
//! endpoint. The banner gives the logins (alice has the realm role `admin` and the client role
//! `nginx:editor`, bob neither) and a curl recipe that gets an access token from Keycloak and
//! calls the JSON API (the realm's `nginx` client has no password or client-credentials grant:
//! the recipe is the authorization code flow with PKCE, by curl).
//!
//! Every service runs in its own process group, and is stopped on Ctrl-C, on failure (with its
//! log tail), or when one of them exits ([`util::Services`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use crate::components::envoy::{ENVOY_VERSION, Envoy};
use crate::components::keycloak::{self, Keycloak};
use crate::components::{Component, Env};
use crate::seed::SEED_ARGS;
use crate::util::{self, Readiness, Services};

const USAGE: &str = "\
usage: cargo xtask demo [--grpc] [--port PORT]
       cargo xtask demo --app axum [--port PORT]

Starts Keycloak (realms of deploy/keycloak), the ext-authz-adapter with the seed's arguments,
Envoy as the Istio ingress gateway (ext_authz as Istio renders it), and a hello upstream that
shows the identity headers it receives, all on 127.0.0.1, until Ctrl-C.

With --app axum: Keycloak (at http://127.0.0.1:8080 if free) and examples/axum-app, the axum
example protected by tower-oidc (public page, pages that need a login or a role, a JSON API
that takes bearer tokens), on 127.0.0.1, until Ctrl-C.

options:
  --app APP      envoy (the default: gateway + adapter + hello upstream) or axum
  --grpc         Envoy calls the adapter over gRPC (Istio envoyExtAuthzGrpc) instead of HTTP
                 (envoyExtAuthzHttp); not with --app axum
  --port PORT    the gateway's port, or with --app axum the app's (default: 8080, or 3000
                 with --app axum, if free, else a free port)
  -h, --help     this text";

/// The seed's protected host (nginx in the seed).
const APP_HOST: &str = "nginx.example.com";
/// The seed's realm.
const REALM: &str = "mytest";
/// The seed's client id.
const CLIENT_ID: &str = "nginx";
/// The `nginx` client's secret in `deploy/keycloak/realm-mytest.json` (public: demo and tests
/// only; a unit test checks it against the realm file).
const CLIENT_SECRET: &str = "nginx-client-secret-for-tests-only";
/// The demo user (deploy/keycloak/README.md).
const USER: (&str, &str) = ("alice", "alice-password");

/// The gateway's port when it is free and none is asked for.
const DEFAULT_GATEWAY_PORT: u16 = 8080;
/// The adapter's ports when free: oauth2-proxy's 4180 (the seed's), and the gRPC port of
/// `ext-authz-adapter istio`.
const DEFAULT_ADAPTER_PORT: u16 = 4180;
const DEFAULT_ADAPTER_GRPC_PORT: u16 = 4181;

/// How long the upstream, Envoy and the adapter may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which demo `--app` picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum App {
    /// The seed's stack: Envoy + ext-authz-adapter + hello-upstream.
    #[default]
    Envoy,
    /// `examples/axum-app` (tower-oidc) against Keycloak, no gateway.
    Axum,
}

/// What `cargo xtask demo` was asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    app: App,
    grpc: bool,
    port: Option<u16>,
}

/// `None` for `--help`.
fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--grpc" => options.grpc = true,
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                options.port = Some(parse_port(value)?);
            }
            "--app" => {
                let value = args.next().ok_or("--app needs a value (envoy or axum)")?;
                options.app = parse_app(value)?;
            }
            other => {
                if let Some(value) = other.strip_prefix("--port=") {
                    options.port = Some(parse_port(value)?);
                } else if let Some(value) = other.strip_prefix("--app=") {
                    options.app = parse_app(value)?;
                } else {
                    return Err(format!("unknown argument {other:?}\n\n{USAGE}"));
                }
            }
        }
    }
    if options.grpc && options.app == App::Axum {
        return Err("--grpc is for the Envoy demo; --app axum has no gateway".to_owned());
    }
    Ok(Some(options))
}

fn parse_app(value: &str) -> Result<App, String> {
    match value {
        "envoy" => Ok(App::Envoy),
        "axum" => Ok(App::Axum),
        _ => Err(format!("--app {value:?}: expected envoy or axum")),
    }
}

fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("--port {value:?}: not a port number (1-65535)")),
    }
}

/// Runs `cargo xtask demo` with the arguments after it. Returns only on failure (or `--help`):
/// Ctrl-C ends the process through [`util::Services`]' handler, which stops every service.
pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let Some(options) = parse(args)? else {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    if options.app == App::Axum {
        return run_axum(options.port);
    }
    let mode = if options.grpc { "gRPC" } else { "HTTP" };
    println!(
        "[xtask] demo: Keycloak + ext-authz-adapter + Envoy (ext_authz in {mode} mode, as Istio \
         renders it) + a hello upstream, on 127.0.0.1"
    );

    // Install what is missing (cached after the first run).
    Keycloak.ensure_installed()?;
    let envoy_binary = env_value(&Envoy.ensure_installed()?, "OIDC_AUTHZ_ENVOY")?;

    let gateway_port = match options.port {
        Some(port) if port_is_free(port) => port,
        Some(port) => return Err(format!("--port {port}: 127.0.0.1:{port} is in use")),
        None => preferred_port(DEFAULT_GATEWAY_PORT)?,
    };
    let gateway = localhost(gateway_port);
    let base = format!("http://{APP_HOST}:{gateway_port}");

    // Keycloak boots (10-60 s) while cargo builds. Its frontend URL is the gateway's, as in
    // the seed (keycloak.example.com through the ingress gateway): one port for everything.
    let mut services = Services::new();
    let frontend = format!("http://{}:{gateway_port}", keycloak::HOSTNAME);
    let kc_env = services.start_keycloak(0, Some(&frontend))?;
    let kc_addr: SocketAddr = env_value(&kc_env, keycloak::ADDR_ENV)?
        .to_string_lossy()
        .parse()
        .map_err(|e| format!("Keycloak's address: {e}"))?;
    let issuer = format!("{frontend}/realms/{REALM}");

    println!(
        "[xtask] demo: building the adapter and the upstream: cargo build -p ext-authz-adapter \
         -p hello-upstream"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(util::repo_root()).args([
        "build",
        "-p",
        "ext-authz-adapter",
        "-p",
        "hello-upstream",
    ]);
    let status = util::status(util::without_cargo_run_env(&mut build))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    let bin = target_dir().join("debug");
    let (adapter_bin, upstream_bin) = (bin.join("ext-authz-adapter"), bin.join("hello-upstream"));

    // Logs and Envoy's config; removed when the demo stops (kept after a failure).
    let run_dir = std::env::temp_dir().join(format!("oidc-authz-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;

    // The application (nginx in the seed).
    let upstream = localhost(util::free_port()?);
    let ready = Readiness::new(
        format!("GET http://{upstream}/"),
        START_TIMEOUT,
        move || util::http_status(upstream, "hello", "/", Duration::from_secs(2)) == Some(200),
    );
    let log = run_dir.join("hello-upstream.log");
    println!(
        "[xtask] hello-upstream: starting on {upstream} (log {})",
        log.display()
    );
    services.spawn(
        "hello-upstream",
        Command::new(&upstream_bin).args(["serve", "--listen", &upstream.to_string()]),
        &log,
        // The first demo service is stopped last: its directory goes then.
        Some(run_dir.clone()),
        Some(ready),
    )?;

    // The adapter's addresses (it starts once Keycloak is ready).
    let adapter = localhost(preferred_port(DEFAULT_ADAPTER_PORT)?);
    let adapter_grpc = if options.grpc {
        Some(localhost(preferred_port(DEFAULT_ADAPTER_GRPC_PORT)?))
    } else {
        None
    };

    // The gateway (Istio's ingress gateway in the seed).
    let admin = localhost(util::free_port()?);
    let config = envoy_config(
        &upstream_bin,
        gateway,
        admin,
        adapter_grpc.unwrap_or(adapter),
        options.grpc,
        adapter,
        upstream,
        kc_addr,
    )?;
    let config_path = run_dir.join("envoy.json");
    std::fs::write(&config_path, config)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let ready = Readiness::new(
        format!("Envoy's admin /ready at {admin} and the gateway on {gateway}"),
        START_TIMEOUT,
        move || {
            util::http_status(admin, &admin.to_string(), "/ready", Duration::from_secs(2))
                == Some(200)
                && std::net::TcpStream::connect_timeout(&gateway, Duration::from_secs(2)).is_ok()
        },
    );
    let log = run_dir.join("envoy.log");
    println!(
        "[xtask] envoy {ENVOY_VERSION}: starting the gateway on {gateway}: {APP_HOST} -> ext_authz \
         check ({mode}, {}) -> hello-upstream, {APP_HOST}/oauth2/ -> the check -> the adapter \
         ({adapter}); {} -> keycloak (admin {admin}; config {}; log {})",
        adapter_grpc.unwrap_or(adapter),
        keycloak::HOSTNAME,
        config_path.display(),
        log.display()
    );
    services.spawn(
        "envoy",
        Command::new(&envoy_binary)
            .arg("--config-path")
            .arg(&config_path)
            .args(["--log-level", "warning", "--concurrency", "2"])
            .args(["--disable-hot-restart", "--use-dynamic-base-id"]),
        &log,
        None,
        Some(ready),
    )?;

    // Keycloak, the upstream and Envoy.
    services.wait_ready()?;

    let cookie_secret = random_secret()?;
    let log = run_dir.join("ext-authz-adapter.log");
    let mut cmd = adapter_command(&adapter_bin, adapter, adapter_grpc, &issuer, &cookie_secret);
    println!(
        "[xtask] ext-authz-adapter: starting on {adapter}{} (issuer {issuer}; log {}):\n  {} {}\n  \
         with OAUTH2_PROXY_CLIENT_SECRET (the realm's) and OAUTH2_PROXY_COOKIE_SECRET (random) \
         in its environment",
        adapter_grpc.map_or(String::new(), |g| format!(", gRPC on {g}")),
        log.display(),
        adapter_bin.display(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let ready = Readiness::new(
        format!("GET http://{adapter}/ready (discovery of {issuer} through the gateway)"),
        START_TIMEOUT,
        // A probe names the adapter by its address: `/ready` of the app's host is a check.
        move || {
            util::http_status(
                adapter,
                &adapter.to_string(),
                "/ready",
                Duration::from_secs(2),
            ) == Some(200)
        },
    );
    services.spawn("ext-authz-adapter", &mut cmd, &log, None, Some(ready))?;
    services.wait_ready()?;

    // Through the gateway: no session, so the check sends the browser to Keycloak, and the
    // adapter's own userinfo endpoint answers 401.
    let host = format!("{APP_HOST}:{gateway_port}");
    for (path, want, what) in [
        ("/", 302, "302 to Keycloak's login"),
        ("/oauth2/userinfo", 401, "401 from the adapter (no session)"),
    ] {
        match util::http_status(gateway, &host, path, Duration::from_secs(10)) {
            Some(status) if status == want => {
                println!("[xtask] demo: self-check: GET {base}{path} -> {what}");
            }
            other => {
                services.keep_logs();
                return Err(format!(
                    "self-check: GET {base}{path} through the gateway answered {other:?}, not \
                     {what} (logs above, and in {})",
                    run_dir.display()
                ));
            }
        }
    }

    print_banner(gateway_port, options.grpc, &run_dir);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        services.check_running()?;
    }
}

/// What the user needs: the URL, the host mapping, a user, a curl recipe.
fn print_banner(port: u16, grpc: bool, run_dir: &Path) {
    let kc = keycloak::HOSTNAME;
    let (user, password) = USER;
    let mode = if grpc { "gRPC" } else { "HTTP" };
    println!(
        "
The demo is ready (ext_authz in {mode} mode).

  Open  http://{APP_HOST}:{port}/
  and sign in as {user} / {password}
  (also bob / bob-password; or carol / carol-password with the \"Upstream IdP\" button,
  the brokered realm that stands in for Google/GitHub)

  Nothing resolves {APP_HOST} and {kc}; map them to 127.0.0.1, one of:
    - /etc/hosts (as root):  127.0.0.1 {APP_HOST} {kc}
    - Chromium:  chromium --user-data-dir=$(mktemp -d) \\
                   --host-resolver-rules=\"MAP {APP_HOST} 127.0.0.1, MAP {kc} 127.0.0.1\" \\
                   http://{APP_HOST}:{port}/
    - curl:      curl --resolve {APP_HOST}:{port}:127.0.0.1 --resolve {kc}:{port}:127.0.0.1 ...

  Log in with curl and a cookie jar:
    jar=$(mktemp); r=\"--resolve {APP_HOST}:{port}:127.0.0.1 --resolve {kc}:{port}:127.0.0.1\"
    # 1. the gateway sends curl to Keycloak's login form; take the form's action URL
    form=$(curl -sSL $r -b \"$jar\" -c \"$jar\" http://{APP_HOST}:{port}/ \\
      | grep -o 'action=\"[^\"]*\"' | head -n1 | cut -d'\"' -f2 | sed 's/&amp;/\\&/g')
    # 2. post the credentials; curl follows the callback through the gateway to the app
    curl -sSL $r -b \"$jar\" -c \"$jar\" -d username={user} -d password={password} \"$form\"
    # 3. the session cookie (\"auth\") in the jar is enough now
    curl -sS $r -b \"$jar\" http://{APP_HOST}:{port}/
    # 4. sign out here and at Keycloak (RP-initiated logout): ends on Keycloak's login form
    curl -sSL $r -b \"$jar\" -o /dev/null -w '%{{url_effective}}\\n' \\
      'http://{APP_HOST}:{port}/oauth2/sign_out?rd=%2F'
    rm \"$jar\"   # curl 7.88 writes some deleted cookies back to its jar: start a new one

  Keycloak's admin console: http://{kc}:{port}/admin/ (admin / admin)
  Logs and Envoy's config: {}

Ctrl-C stops everything.",
        run_dir.display()
    );
}

/// Keycloak's port for `--app axum` when it is free (Keycloak's own default).
const DEFAULT_KEYCLOAK_PORT: u16 = 8080;
/// The axum app's port when it is free and none is asked for (`axum-app`'s default).
const DEFAULT_AXUM_PORT: u16 = 3000;
/// The second demo user: signed in, but without the realm role `admin` and the client role
/// `nginx:editor` (deploy/keycloak/README.md).
const USER_WITHOUT_ROLES: (&str, &str) = ("bob", "bob-password");

/// `cargo xtask demo --app axum`: Keycloak on 127.0.0.1 (its own URL is the issuer's origin)
/// and `examples/axum-app` in front of it, until Ctrl-C. Returns only on failure.
fn run_axum(port: Option<u16>) -> Result<ExitCode, String> {
    println!("[xtask] demo: Keycloak + examples/axum-app (tower-oidc), on 127.0.0.1, no gateway");
    Keycloak.ensure_installed()?;

    let app_port = match port {
        Some(port) if port_is_free(port) => port,
        Some(port) => return Err(format!("--port {port}: 127.0.0.1:{port} is in use")),
        None => preferred_port(DEFAULT_AXUM_PORT)?,
    };
    // Not the app's port, should that be 8080.
    let kc_port = match preferred_port(DEFAULT_KEYCLOAK_PORT)? {
        p if p == app_port => util::free_port()?,
        p => p,
    };
    let app = localhost(app_port);
    let base = format!("http://{app}");

    // Keycloak boots (10-60 s) while cargo builds. Its frontend URL is its own 127.0.0.1 URL:
    // the issuer then needs no host mapping, for the browser and for the app alike.
    let mut services = Services::new();
    let frontend = format!("http://{}", localhost(kc_port));
    services.start_keycloak(kc_port, Some(&frontend))?;
    let issuer = format!("{frontend}/realms/{REALM}");

    println!("[xtask] demo: building the app: cargo build -p axum-app");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(util::repo_root())
        .args(["build", "-p", "axum-app"]);
    let status = util::status(util::without_cargo_run_env(&mut build))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    let app_bin = target_dir().join("debug").join("axum-app");

    let run_dir = std::env::temp_dir().join(format!("oidc-authz-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;

    // The app's discovery needs Keycloak: start it once Keycloak is ready.
    services.wait_ready()?;

    let log = run_dir.join("axum-app.log");
    let mut cmd = axum_app_command(&app_bin, app, &issuer, &random_secret()?);
    println!(
        "[xtask] axum-app: starting on {app} (issuer {issuer}; log {}):\n  {} {}\n  with \
         OIDC_CLIENT_SECRET (the realm's) and COOKIE_SECRET (random) in its environment",
        log.display(),
        app_bin.display(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let host = app.to_string();
    let ready = Readiness::new(
        format!("GET {base}/healthz answering 200 and GET {base}/me 302 (discovery of {issuer})"),
        START_TIMEOUT,
        move || {
            util::http_status(app, &host, "/healthz", Duration::from_secs(2)) == Some(200)
                && http_get(app, "/me", Duration::from_secs(2)).is_some_and(|r| r.status == 302)
        },
    );
    // Its directory (its log) goes when it stops, unless the logs are kept after a failure.
    services.spawn(
        "axum-app",
        &mut cmd,
        &log,
        Some(run_dir.clone()),
        Some(ready),
    )?;
    services.wait_ready()?;

    // The public page answers; a page that needs a login sends the browser to Keycloak.
    let authorize = format!("{issuer}/protocol/openid-connect/auth?");
    let checks = [
        ("/", http_get(app, "/", Duration::from_secs(10))),
        ("/me", http_get(app, "/me", Duration::from_secs(10))),
    ];
    let fail = |path: &str, what: String| {
        format!(
            "self-check: GET {base}{path} {what} (logs above, and in {})",
            run_dir.display()
        )
    };
    match &checks[0].1 {
        Some(r) if r.status == 200 => {
            println!("[xtask] demo: self-check: GET {base}/ -> 200 (public)");
        }
        other => {
            services.keep_logs();
            return Err(fail("/", format!("answered {other:?}, not 200")));
        }
    }
    match &checks[1].1 {
        Some(r)
            if r.status == 302
                && r.location
                    .as_deref()
                    .is_some_and(|l| l.starts_with(&authorize)) =>
        {
            println!(
                "[xtask] demo: self-check: GET {base}/me -> 302 to Keycloak's login ({issuer})"
            );
        }
        other => {
            services.keep_logs();
            return Err(fail(
                "/me",
                format!("answered {other:?}, not 302 to {authorize}..."),
            ));
        }
    }

    print_axum_banner(&base, &frontend, &run_dir);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        services.check_running()?;
    }
}

/// `examples/axum-app` as the realm's client `nginx`, settings in its environment (the
/// secrets stay out of `ps`).
fn axum_app_command(
    binary: &Path,
    listen: SocketAddr,
    issuer: &str,
    cookie_secret: &str,
) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--issuer={issuer}"))
        .arg(format!("--client-id={CLIENT_ID}"))
        .arg(format!("--listen={listen}"))
        .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .env("COOKIE_SECRET", cookie_secret)
        .env("RUST_LOG", "info");
    cmd
}

/// What the user needs for `--app axum`: the URL, the logins, the routes, a curl recipe.
fn print_axum_banner(base: &str, keycloak: &str, run_dir: &Path) {
    let (alice, alice_password) = USER;
    let (bob, bob_password) = USER_WITHOUT_ROLES;
    let oidc = format!("{keycloak}/realms/{REALM}/protocol/openid-connect");
    println!(
        "
The demo is ready: examples/axum-app (tower-oidc) with Keycloak as its issuer.

  Open  {base}/
  and sign in as {alice} / {alice_password}  (realm role admin, client role {CLIENT_ID}:editor)
              or {bob} / {bob_password}      (neither: /admin and /api/reports answer 403)
  (or carol / carol-password with the \"Upstream IdP\" button, the brokered realm)

  Routes: /  public;  /me  signed in;  /admin  realm role admin;
          /api/me  session or bearer token;  /api/reports  client role {CLIENT_ID}:editor;
          /oauth2/sign_out?rd=%2F  sign out

  An access token from Keycloak for the JSON API, by curl (the {CLIENT_ID} client allows the
  authorization code flow with PKCE only, no password grant):
    u={alice} p={alice_password}   # or u={bob} p={bob_password}: /api/reports answers 403
    oidc={oidc}
    jar=$(mktemp); v=$(openssl rand -hex 32)
    c=$(printf %s \"$v\" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
    form=$(curl -sS -c \"$jar\" \"$oidc/auth?client_id={CLIENT_ID}&response_type=code&scope=openid&redirect_uri={base}/&code_challenge=$c&code_challenge_method=S256\" \\
      | grep -o 'action=\"[^\"]*\"' | head -n1 | cut -d'\"' -f2 | sed 's/&amp;/\\&/g')
    code=$(curl -sS -b \"$jar\" -o /dev/null -w '%{{redirect_url}}' -d username=$u -d password=$p \"$form\" \\
      | sed -n 's/.*[?&]code=\\([^&]*\\).*/\\1/p')
    token=$(curl -sS -u {CLIENT_ID}:{CLIENT_SECRET} -d grant_type=authorization_code \\
      -d code=$code -d redirect_uri={base}/ -d code_verifier=$v \"$oidc/token\" \\
      | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p'); rm \"$jar\"
    curl -sS -H \"Authorization: Bearer $token\" {base}/api/me; echo
    curl -sS -H \"Authorization: Bearer $token\" {base}/api/reports; echo
    curl -sS -i -H 'Accept: application/json' {base}/api/me   # no token: 401

  Keycloak's admin console: {keycloak}/admin/ (admin / admin)
  Logs: {}

Ctrl-C stops everything.",
        run_dir.display()
    );
}

/// An HTTP answer's status and `Location`.
#[derive(Debug)]
struct Answer {
    status: u16,
    location: Option<String>,
}

/// `GET http://<addr><path>` as a browser navigation (`Accept: text/html`), or `None` when
/// there is no complete response head within `timeout`. Std only, like [`util::http_status`].
fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<Answer> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    parse_head(&String::from_utf8_lossy(&head))
}

/// The status and `Location` of a response head (`HTTP/1.1 302 Found\r\nLocation: ...`).
fn parse_head(head: &str) -> Option<Answer> {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse()
        .ok()?;
    let location = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("location"))
        .map(|(_, value)| value.trim().to_owned());
    Some(Answer { status, location })
}

/// The adapter with the seed's args (its own addresses, issuer, and cookie domain), the
/// identity headers for the upstream, RP-initiated logout for Keycloak 18+, `--reverse-proxy`
/// (Envoy sets X-Forwarded-Proto), and the issuer's host name mapped to 127.0.0.1 (where the
/// gateway is).
fn adapter_command(
    binary: &Path,
    http: SocketAddr,
    grpc: Option<SocketAddr>,
    issuer: &str,
    cookie_secret: &str,
) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(SEED_ARGS)
        .arg("--cookie-refresh=1h")
        .arg(format!("--http-address={http}"))
        .arg(format!("--oidc-issuer-url={issuer}"))
        .arg("--cookie-domain=.example.com")
        .arg(format!("--client-id={CLIENT_ID}"))
        // Not in the seed: X-Auth-Request-User/-Email/-Groups for the upstream to show.
        .arg("--set-xauthrequest=true")
        .arg("--oidc-rp-initiated-logout=true")
        // Behind the gateway, which sets X-Forwarded-Proto from the client's connection (and
        // which the check carries): believed, as in a cluster (the Helm chart's args).
        .arg("--reverse-proxy=true")
        .arg(format!("--resolve={}=127.0.0.1", keycloak::HOSTNAME));
    if let Some(grpc) = grpc {
        cmd.arg(format!("--grpc-address={grpc}"));
    }
    cmd.env("OAUTH2_PROXY_CLIENT_ID", CLIENT_ID)
        .env("OAUTH2_PROXY_CLIENT_SECRET", CLIENT_SECRET)
        .env("OAUTH2_PROXY_COOKIE_SECRET", cookie_secret)
        .env("RUST_LOG", "info");
    cmd
}

/// The Envoy bootstrap from `EnvoyConfig::seed` (through `hello-upstream envoy-config`: xtask
/// does not link the adapter's library), with an admin listener and an access log, and
/// `/oauth2/` of the app's host routed to the adapter's HTTP port `adapter_http` (its
/// `--http-address`, in gRPC mode too) after the check, as the VirtualService of
/// `ext-authz-adapter istio` routes it.
#[allow(clippy::too_many_arguments)]
fn envoy_config(
    upstream_bin: &Path,
    gateway: SocketAddr,
    admin: SocketAddr,
    authz: SocketAddr,
    grpc: bool,
    adapter_http: SocketAddr,
    app: SocketAddr,
    idp: SocketAddr,
) -> Result<String, String> {
    let output = Command::new(upstream_bin)
        .args(envoy_config_args(
            gateway,
            admin,
            authz,
            grpc,
            adapter_http,
            app,
            idp,
        ))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", upstream_bin.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} envoy-config failed ({}): {}",
            upstream_bin.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("envoy-config printed non-UTF-8: {e}"))
}

/// The arguments of `hello-upstream envoy-config` for [`envoy_config`].
fn envoy_config_args(
    gateway: SocketAddr,
    admin: SocketAddr,
    authz: SocketAddr,
    grpc: bool,
    adapter_http: SocketAddr,
    app: SocketAddr,
    idp: SocketAddr,
) -> Vec<String> {
    let authz_flag = if grpc { "--authz-grpc" } else { "--authz-http" };
    [
        ("envoy-config", None),
        ("--listen", Some(gateway)),
        ("--admin", Some(admin)),
        (authz_flag, Some(authz)),
        ("--adapter-http", Some(adapter_http)),
        ("--app", Some(app)),
        ("--idp", Some(idp)),
        ("--access-log", None),
    ]
    .into_iter()
    .flat_map(|(flag, value)| std::iter::once(flag.to_owned()).chain(value.map(|v| v.to_string())))
    .collect()
}

fn env_value(env: &Env, key: &str) -> Result<std::ffi::OsString, String> {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| format!("{key} was not set by its component"))
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(localhost(port)).is_ok()
}

/// `port` if 127.0.0.1:`port` is free, else a free port.
fn preferred_port(port: u16) -> Result<u16, String> {
    if port_is_free(port) {
        Ok(port)
    } else {
        util::free_port()
    }
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir().unwrap_or_default().join(dir)
            }
        }
        None => util::repo_root().join("target"),
    }
}

/// A fresh cookie secret: 16 random bytes as 32 hex digits (32 bytes: AES-256).
fn random_secret() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn parses_options() {
        assert_eq!(parse(&[]), Ok(Some(Options::default())));
        assert_eq!(
            parse(&args(&["--grpc", "--port", "9000"])),
            Ok(Some(Options {
                app: App::Envoy,
                grpc: true,
                port: Some(9000)
            }))
        );
        assert_eq!(
            parse(&args(&["--port=9001"])),
            Ok(Some(Options {
                app: App::Envoy,
                grpc: false,
                port: Some(9001)
            }))
        );
        assert_eq!(parse(&args(&["--help"])), Ok(None));
        assert!(parse(&args(&["--port"])).is_err());
        assert!(parse(&args(&["--port", "0"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn parses_the_app() {
        let axum = |port| {
            Ok(Some(Options {
                app: App::Axum,
                grpc: false,
                port,
            }))
        };
        assert_eq!(parse(&args(&["--app", "axum"])), axum(None));
        assert_eq!(
            parse(&args(&["--app=axum", "--port", "3001"])),
            axum(Some(3001))
        );
        assert_eq!(
            parse(&args(&["--port=3002", "--app", "axum"])),
            axum(Some(3002))
        );
        assert_eq!(
            parse(&args(&["--app", "envoy", "--grpc"])),
            Ok(Some(Options {
                app: App::Envoy,
                grpc: true,
                port: None
            }))
        );
        assert_eq!(
            parse(&args(&["--app", "axum", "--help"])),
            Ok(None),
            "--help wins"
        );
        assert!(parse(&args(&["--app"])).is_err());
        assert!(parse(&args(&["--app", "nginx"])).is_err());
        assert!(parse(&args(&["--app="])).is_err());
        assert!(parse(&args(&["--app", "axum", "--grpc"])).is_err());
        assert!(parse(&args(&["--grpc", "--app=axum"])).is_err());
    }

    #[test]
    fn reads_status_and_location() {
        let r = parse_head(
            "HTTP/1.1 302 Found\r\ncontent-length: 0\r\nlocation: http://127.0.0.1:8080/realms/\
             mytest/protocol/openid-connect/auth?a=1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(
            r.location.as_deref(),
            Some("http://127.0.0.1:8080/realms/mytest/protocol/openid-connect/auth?a=1")
        );
        let r = parse_head("HTTP/1.1 200 OK\r\nLocationX: no\r\n\r\n").unwrap();
        assert_eq!((r.status, r.location), (200, None));
        assert!(parse_head("SSH-2.0-OpenSSH\r\n\r\n").is_none());
    }

    #[test]
    fn the_client_secret_is_the_realms() {
        let realm =
            std::fs::read_to_string(util::repo_root().join("deploy/keycloak/realm-mytest.json"))
                .expect("realm-mytest.json");
        assert!(
            realm.contains(&format!("\"secret\": \"{CLIENT_SECRET}\"")),
            "deploy/keycloak/realm-mytest.json no longer has the nginx secret {CLIENT_SECRET}"
        );
        assert!(realm.contains(&format!("\"clientId\": \"{CLIENT_ID}\"")));
        assert!(realm.contains(&format!("\"username\": \"{}\"", USER.0)));
        assert!(realm.contains(&format!("\"value\": \"{}\"", USER.1)));
        let (bob, bob_password) = USER_WITHOUT_ROLES;
        assert!(realm.contains(&format!("\"username\": \"{bob}\"")));
        assert!(realm.contains(&format!("\"value\": \"{bob_password}\"")));
    }

    #[test]
    fn the_gateway_routes_the_adapter_prefix_to_its_http_port_in_both_modes() {
        let (gateway, admin, grpc, http, app, idp) = (
            localhost(8080),
            localhost(9901),
            localhost(4181),
            localhost(4180),
            localhost(8081),
            localhost(8180),
        );
        let args = envoy_config_args(gateway, admin, grpc, true, http, app, idp);
        assert_eq!(args[0], "envoy-config");
        assert_eq!(
            pair_in(&args, "--authz-grpc").as_deref(),
            Some("127.0.0.1:4181")
        );
        // The prefix goes to the adapter's HTTP port, not to the gRPC one.
        assert_eq!(
            pair_in(&args, "--adapter-http").as_deref(),
            Some("127.0.0.1:4180")
        );
        assert_eq!(pair_in(&args, "--authz-http"), None);
        let args = envoy_config_args(gateway, admin, http, false, http, app, idp);
        assert_eq!(
            pair_in(&args, "--authz-http").as_deref(),
            Some("127.0.0.1:4180")
        );
        assert_eq!(
            pair_in(&args, "--adapter-http").as_deref(),
            Some("127.0.0.1:4180")
        );
        assert_eq!(args.last().map(String::as_str), Some("--access-log"));
    }

    fn pair_in(args: &[String], flag: &str) -> Option<String> {
        let at = args.iter().position(|a| a == flag)?;
        args.get(at + 1).cloned()
    }

    #[test]
    fn secrets_are_32_hex_digits() {
        let a = random_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_secret().unwrap());
    }
}
