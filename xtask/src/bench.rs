//! `cargo xtask bench [--quick] [--rounds N] [--duration SECS] [--connections N]`: load
//! benchmarks of the adapter against oauth2-proxy and the machine's limits, all on 127.0.0.1,
//! written to `BENCHMARKS.md` with charts at `docs/bench/throughput.png` and
//! `docs/bench/curves.png`.
//!
//! One run, in stages (one progress line each):
//!
//! 1. installs what is missing: oauth2-proxy (`go install`, cached), nginx (Debian's package,
//!    unpacked into the cache), Redis, Envoy and node oidc-provider (the test components);
//! 2. builds the adapter, `benches`' `noop-server` (the limit: hyper answering 200) and
//!    `noop-grpc-server` (the gRPC ceiling: tonic answering every `Check` with `OK`) with the
//!    `dist` profile the Docker image ships, and `bench-agent` (logins, the HTTP and gRPC load
//!    generators, minted sessions, Envoy configs, charts) in release mode;
//! 3. starts node oidc-provider, the no-op servers, nginx (`return 200;`), the adapter (HTTP +
//!    gRPC), oauth2-proxy v7.15.6 with the seed's flags and `--upstream=static://200` (both
//!    with an empty environment), and the Envoys (no ext_authz; ext_authz HTTP and gRPC to the
//!    adapter; ext_authz HTTP to oauth2-proxy; Envoy's own oauth2 + jwt_authn filters),
//!    servers pinned to CPU 1.., load generators to CPU 0;
//! 4. logs in for real through each system (reqwest with a cookie jar and the provider's login
//!    form) and checks that every scenario answers the session with an allow;
//! 5. runs the load in rounds (`rounds.rs`: a new shuffled order each round, every answer's
//!    status counted, a void or disturbed run measured again within the scenario's own budget),
//!    measuring requests/s, p50/p99, the server's peak RSS (`VmHWM`, reset before each run) and
//!    CPU time per 10k requests (`/proc/<pid>/stat`);
//! 6. the open loop (`open_loop.rs`): p99 of the adapter, oauth2-proxy and the limits at one
//!    offered rate;
//! 7. the cost curves (`curves.rs`): distinct sessions cold and warm, rule counts, cookie
//!    chunks, the Redis store against oauth2-proxy's, two replicas behind Envoy;
//! 8. counts instructions per check under `valgrind --tool=callgrind` (counters zeroed after a
//!    warm-up, dumped after a fixed number of requests) for the adapter (HTTP check and gRPC
//!    `Check`), the two no-op servers and oauth2-proxy;
//! 9. a refresh storm: N requests at once with a session due for refresh
//!    (`--cookie-refresh=1s`), counting the provider's refresh grants in its log;
//! 10. writes `BENCHMARKS.md` and the charts.
//!
//! Bounded: every load run has a fixed duration or request count, every service a start
//! timeout; the whole run takes about 11 minutes on 2 cores (`--quick`: one round of 2 s and
//! smaller curves, about 2 minutes), plus the first build and installs.
//!
//! `--callgrind-only` runs stages 1-4 and 8 for the adapter and the no-op servers alone (no
//! load, no Envoy, no oauth2-proxy; a few minutes) and prints the instruction counts.

mod curves;
mod measure;
mod open_loop;
mod report;
mod rounds;
mod spawn;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::components::{Component, envoy, nginx, node_provider, oauth2_proxy, redis};
use crate::seed::SEED_ARGS;
use crate::util::{self, Readiness, Services};

pub use report::Report;
use spawn::http_ready;

/// The protected host (the seed's nginx), resolved to 127.0.0.1 by every client.
const HOST: &str = "nginx.example.com";
const CLIENT_ID: &str = "nginx";
const CLIENT_SECRET: &str = "nginx-client-secret";
/// The provider's service client for the bearer rows: client_credentials only, its access
/// tokens are JWTs for the audience [`CLIENT_ID`] (`jwt_access_token_audience` in
/// `test-support/assets/provider.mjs`).
const SERVICE_CLIENT_ID: &str = "bench-service";
const SERVICE_CLIENT_SECRET: &str = "bench-service-secret";
/// 32 bytes: AES-256 for both the adapter and oauth2-proxy.
const COOKIE_SECRET: &str = "bench-cookie-secret-of-32-bytes!";

/// The Cargo profile of the measured servers (the adapter and the no-op server): the one the
/// Docker image ships (root `Cargo.toml`).
const PROFILE: &str = "dist";

/// Bearer tokens accepted (oauth2-proxy's flag; the adapter's when it has it).
const BEARER_FLAG: &str = "--skip-jwt-bearer-tokens=true";

const USAGE: &str = "\
usage: cargo xtask bench [--quick] [--rounds N] [--duration SECS] [--connections N]
                         [--no-write] [--callgrind-only]

  --quick          one round of 2 s per scenario, smaller curves, fewer callgrind requests
                   (about 3 minutes; informative only)
  --rounds N       rounds of every scenario, each in a new shuffled order (default 5; medians
                   are reported)
  --duration SECS  seconds of load per scenario and round (default 4)
  --connections N  concurrent connections (HTTP) / streams (gRPC) (default 32)
  --no-write       print the report instead of writing BENCHMARKS.md and the chart
  --callgrind-only only the instructions per check of the adapter (HTTP and gRPC) and the
                   no-op servers (no load, no Envoy, no oauth2-proxy); printed, never written";

/// What the run does, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub rounds: usize,
    /// Seconds of load per measured run.
    pub duration: f64,
    /// Seconds of load before each measured run, not counted.
    pub warmup: f64,
    pub connections: usize,
    pub callgrind_requests: usize,
    pub storm: usize,
    pub write: bool,
    /// How many times each scenario may be measured again (a run void or disturbed by other
    /// work on the machine), its own budget.
    pub retries: usize,
    /// Only the instruction counts of the adapter and the no-op servers (`--callgrind-only`).
    pub callgrind_only: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            quick: false,
            rounds: 5,
            duration: 4.0,
            warmup: 1.0,
            connections: 32,
            callgrind_requests: 2000,
            storm: 50,
            write: true,
            retries: 2,
            callgrind_only: false,
        };
        let (mut rounds, mut duration) = (None, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| -> Result<u64, String> {
                it.next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("{name} needs a positive number\n\n{USAGE}"))
            };
            match a.as_str() {
                "--quick" => o.quick = true,
                "--rounds" => rounds = Some(value("--rounds")? as usize),
                "--duration" => duration = Some(value("--duration")?),
                "--connections" => o.connections = value("--connections")? as usize,
                "--no-write" => o.write = false,
                "--callgrind-only" => o.callgrind_only = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                _ => return Err(format!("unknown argument {a:?}\n\n{USAGE}")),
            }
        }
        if o.quick {
            o.rounds = 1;
            o.duration = 2.0;
            o.warmup = 0.5;
            o.callgrind_requests = 300;
            o.storm = 20;
            o.retries = 1;
        }
        o.rounds = rounds.unwrap_or(o.rounds);
        o.duration = duration.map_or(o.duration, |d| d as f64);
        if o.callgrind_only {
            o.write = false;
        }
        Ok(o)
    }
}

/// Runs `cargo xtask bench` with the arguments after it.
pub fn run(args: &[String]) -> Result<ExitCode, String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let options = Options::parse(args)?;
    let mut bench = Bench::new(options)?;
    if bench.options.callgrind_only {
        let callgrind = bench.run_callgrind_only()?;
        let mut text = String::new();
        report::instructions(&callgrind, &mut text);
        println!("{text}");
        println!(
            "[xtask] bench: done in {:.0} s",
            bench.started.elapsed().as_secs_f64()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = bench.run()?;
    let text = report.markdown();
    if bench.options.write {
        let path = util::repo_root().join("BENCHMARKS.md");
        std::fs::write(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("[xtask] bench: wrote {}", path.display());
    } else {
        println!("{text}");
    }
    println!("[xtask] bench: {}", report.headline());
    println!(
        "[xtask] bench: done in {:.0} s",
        bench.started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The niceness of the measured processes (servers and load generators).
const NICE: &str = "-10";

/// Which CPUs the load generators and the servers run on (`taskset -c`), when there are two
/// or more, and whether they run at a higher priority (`nice -n -10`, when allowed).
#[derive(Debug, Clone)]
pub struct Pinning {
    pub nice: bool,
    pub load: Option<String>,
    pub servers: Option<String>,
    /// The servers' CPU ids (empty: all).
    pub server_ids: Vec<usize>,
    pub cpus: usize,
}

impl Pinning {
    fn detect() -> Pinning {
        let nice = Command::new("nice")
            .args(["-n", NICE, "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            // Unprivileged, nice only warns and runs the command at the usual priority.
            && std::fs::read_to_string("/proc/self/status").is_ok_and(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|u| u.split_whitespace().nth(1))
                    == Some("0")
            });
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = Command::new("taskset")
            .arg("-V")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if cpus < 2 || !taskset {
            return Pinning {
                nice,
                load: None,
                servers: None,
                server_ids: Vec::new(),
                cpus,
            };
        }
        let servers = if cpus == 2 {
            "1".to_owned()
        } else {
            format!("1-{}", cpus - 1)
        };
        Pinning {
            nice,
            load: Some("0".to_owned()),
            servers: Some(servers),
            server_ids: (1..cpus).collect(),
            cpus,
        }
    }
}

/// The binaries of the run.
#[derive(Debug, Clone, Default)]
pub struct Bins {
    pub adapter: PathBuf,
    pub noop: PathBuf,
    pub noop_grpc: PathBuf,
    pub agent: PathBuf,
    /// nginx for the second reference row (`return 200;`), when it could be installed.
    pub nginx: Option<PathBuf>,
    /// redis-server for the Redis-store curves, when it could be installed.
    pub redis: Option<PathBuf>,
    pub envoy: PathBuf,
    pub oauth2_proxy: Option<PathBuf>,
    pub node_provider_dir: PathBuf,
    /// The Node.js the provider runs on (`OIDC_AUTHZ_NODE`: the machine's, or Node 22 from npm).
    pub node: PathBuf,
}

/// How a scenario's load is generated.
#[derive(Debug, Clone)]
pub enum LoadSpec {
    /// `bench-agent http-load` on `http://127.0.0.1:<port><path>` with
    /// `Host: nginx.example.com:<port>`.
    Http {
        port: u16,
        path: String,
        /// Many credentials in rotation (`Cookie: ...` lines; request i presents line i mod n),
        /// instead of the scenario's one cookie.
        credentials: Option<PathBuf>,
        /// A fixed number of requests instead of a duration (one pass over `credentials`:
        /// every session seen for the first time).
        requests: Option<u64>,
    },
    /// `bench-agent grpc-load` on a gRPC port (the adapter's, or the tonic no-op's).
    Grpc { port: u16 },
}

/// One measured run.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub load: measure::Load,
    pub rss_kib: Option<u64>,
    /// Peak anonymous RSS (heap, stacks: not the binary's pages), sampled every 20 ms, KiB.
    pub anon_kib: Option<u64>,
    pub cpu_per_10k: Option<f64>,
    /// The server's CPU and that of [`Scenario::also`], per 10k requests.
    pub total_cpu_per_10k: Option<f64>,
    pub envoy_cpu_per_10k: Option<f64>,
    /// CPU time of processes other than this run's on the servers' CPUs, as a share of those
    /// CPUs' time during the run (other work on the machine disturbs the figures).
    pub others_pct: Option<f64>,
}

/// One system and path under load.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short key (`ours-http`).
    pub id: &'static str,
    /// For tables and the chart.
    pub label: String,
    /// `ours`, `peer`, `limit` or `envoy` (chart colour).
    pub kind: &'static str,
    /// `direct` or `envoy`.
    pub group: &'static str,
    pub load: LoadSpec,
    /// Which cookie (by system) the requests carry, if any.
    pub cookie: Option<String>,
    /// The status an allowed request gets.
    pub expect: u16,
    /// The process whose RSS and CPU are reported (name, pid).
    pub server: Option<(String, u32)>,
    /// Envoy's pid, for Envoy rows with a separate authz server.
    pub envoy: Option<u32>,
    /// Why it was not measured.
    pub failed: Option<String>,
    pub runs: Vec<Run>,
    /// The load command, with the cookie as a variable.
    pub command: String,
    /// Open loop at this many requests/s (latency from the intended send time); `None`: closed
    /// loop, each connection sends when its previous answer is complete.
    pub rate: Option<f64>,
    /// Why runs of this scenario were measured again (one entry per repeat).
    pub reruns: Vec<String>,
    /// Other processes whose CPU counts with the server's in the total CPU per check (a second
    /// replica, Redis).
    pub also: Vec<u32>,
}

/// Instructions per check from callgrind.
#[derive(Debug, Clone)]
pub struct Callgrind {
    /// Short key, also in file names (`adapter`, `adapter-grpc`, `noop`, `noop-grpc`,
    /// `oauth2-proxy`).
    pub key: &'static str,
    /// For the report.
    pub system: String,
    pub requests: usize,
    pub result: Result<u64, String>,
    /// `callgrind_annotate` top entries (inclusive and self cost), for the adapter's rows.
    pub top: Vec<String>,
    pub command: String,
}

/// How a callgrind run sends its checks.
#[derive(Debug, Clone, Copy)]
enum Checks {
    /// `GET /` with the session on one HTTP/1.1 keep-alive connection.
    Http,
    /// `bench-agent grpc-checks`: the load's `CheckRequest` on one HTTP/2 connection.
    Grpc,
}

/// When a server started under callgrind is ready.
#[derive(Debug, Clone, Copy)]
enum Ready {
    /// `GET <path>` of its HTTP port answers 200.
    Http(&'static str),
    /// Its log has a `READY` line.
    Line,
}

/// A refresh storm's outcome.
#[derive(Debug, Clone)]
pub struct Storm {
    pub system: String,
    pub requests: usize,
    pub result: Result<StormResult, String>,
}

#[derive(Debug, Clone)]
pub struct StormResult {
    pub refresh_success: usize,
    pub refresh_error: usize,
    /// `bench-agent storm` output (statuses, answers with Set-Cookie).
    pub answers: String,
}

struct Bench {
    options: Options,
    started: Instant,
    stage: usize,
    dir: PathBuf,
    pin: Pinning,
    bins: Bins,
    ticks: f64,
    issuer: String,
    provider_log: PathBuf,
    /// Every process this run started that runs on the servers' CPUs.
    our_pids: Vec<u32>,
    /// Command lines for the report: (what, command).
    commands: Vec<(String, String)>,
    notes: Vec<String>,
    /// The adapter accepts bearer tokens (`--skip-jwt-bearer-tokens`, as oauth2-proxy): the
    /// bearer scenarios run, with the flag on the adapter and oauth2-proxy under load.
    bearer: bool,
    /// The shuffles of the rounds, and their seed (printed, and in the report).
    shuffle: rounds::Shuffle,
    seed: u64,
}

/// The number of stages printed as `[i/N]`.
const STAGES: usize = 10;

impl Bench {
    fn new(options: Options) -> Result<Bench, String> {
        let dir = target_dir().join("bench");
        let seed = rounds::Shuffle::clock_seed();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Bench {
            options,
            started: Instant::now(),
            stage: 0,
            provider_log: dir.join("provider.log"),
            dir,
            pin: Pinning::detect(),
            bins: Bins::default(),
            ticks: measure::clock_ticks(),
            issuer: String::new(),
            our_pids: Vec::new(),
            commands: Vec::new(),
            notes: Vec::new(),
            bearer: false,
            shuffle: rounds::Shuffle::new(seed),
            seed,
        })
    }

    fn stage(&mut self, what: &str) {
        self.stage += 1;
        println!(
            "[xtask] bench [{}/{STAGES}] {what} (at {:.0} s)",
            self.stage,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// `taskset -c <cpus> <program>`, or `<program>` without pinning.
    /// `[nice -n -10] [taskset -c <cpus>] <program>`: the measured processes get their CPUs
    /// and a higher priority than whatever else runs on the machine (same process id: each
    /// wrapper execs the next).
    fn pinned(&self, cpus: &Option<String>, program: &Path) -> Command {
        let mut words: Vec<std::ffi::OsString> = Vec::new();
        if self.pin.nice {
            words.extend(["nice".into(), "-n".into(), NICE.into()]);
        }
        if let Some(cpus) = cpus {
            words.extend(["taskset".into(), "-c".into(), cpus.into()]);
        }
        words.push(program.as_os_str().to_owned());
        let mut c = Command::new(&words[0]);
        c.args(&words[1..]);
        c
    }

    /// How [`Bench::pinned`] wraps a program, for the report.
    fn wrapper(&self, cpus: &Option<String>) -> String {
        let mut w = String::new();
        if self.pin.nice {
            w.push_str(&format!("nice -n {NICE} "));
        }
        if let Some(c) = cpus {
            w.push_str(&format!("taskset -c {c}"));
        }
        w.trim_end().to_owned()
    }

    /// `--callgrind-only`: the provider, the adapter for a real login, then the instruction
    /// counts of the adapter and the no-op servers.
    fn run_callgrind_only(&mut self) -> Result<Vec<Callgrind>, String> {
        self.stage("installing node oidc-provider");
        let env = node_provider::NodeProvider.ensure_installed()?;
        self.bins.node_provider_dir = env_path(&env, "OIDC_AUTHZ_NODE_PROVIDER_DIR")?;
        self.bins.node = env_path(&env, "OIDC_AUTHZ_NODE")?;

        self.stage("building the adapter and the no-op servers (profile dist), bench-agent");
        self.build()?;

        self.stage("starting the provider and the adapter");
        let mut services = Services::new();
        let ports = Ports::pick()?;
        self.start_provider(&mut services, &ports)?;
        services.wait_ready()?;
        let endpoints = self.discovery(ports.provider)?;
        self.start_servers(&mut services, &ports, &endpoints, false)?;
        services.wait_ready()?;

        self.stage("logging in through the adapter");
        let cookies = Cookies {
            ours: self.login(ports.ours, "/"),
            ..Cookies::default()
        };
        if let Err(e) = &cookies.ours {
            return Err(format!("login through the adapter failed: {e}"));
        }

        self.stage("instructions per check (valgrind --tool=callgrind)");
        let callgrind = self.callgrind_all(&ports, &cookies);
        drop(services);
        Ok(callgrind)
    }

    fn run(&mut self) -> Result<Report, String> {
        let o = self.options.clone();
        println!(
            "[xtask] bench: {} round(s) of {} s per scenario, {} connections; servers on CPU {}, \
             load on CPU {}; files in {}",
            o.rounds,
            o.duration,
            o.connections,
            self.pin.servers.as_deref().unwrap_or("any"),
            self.pin.load.as_deref().unwrap_or("any"),
            self.dir.display()
        );

        self.stage(
            "installing the components (oauth2-proxy, nginx, Redis, Envoy, node oidc-provider)",
        );
        self.install()?;

        self.stage("building the adapter and noop-server (profile dist), bench-agent (release)");
        let building = Instant::now();
        self.build()?;
        let build_time = building.elapsed();
        self.bearer = self.adapter_help().contains("--skip-jwt-bearer-tokens");

        self.stage("starting the provider, the servers and the Envoys");
        let mut services = Services::new();
        let ports = Ports::pick()?;
        self.start_provider(&mut services, &ports)?;
        services.wait_ready()?;
        let endpoints = self.discovery(ports.provider)?;
        let pids = self.start_servers(&mut services, &ports, &endpoints, true)?;
        services.wait_ready()?;
        self.our_pids.extend(&pids.all);
        let mut at_rest = Vec::new();
        for (name, pid) in [
            ("no-op server", Some(pids.noop)),
            ("tonic no-op server", Some(pids.noop_grpc)),
            ("adapter", Some(pids.ours)),
            ("oauth2-proxy", pids.o2p),
            ("Envoy (no ext_authz)", pids.envoy_none),
        ] {
            if let Some((rss, anon, file)) = pid.and_then(measure::rss_breakdown) {
                at_rest.push(format!(
                    "{name} {:.1} MiB ({:.1} anonymous + {:.1} file-backed)",
                    rss as f64 / 1024.0,
                    anon as f64 / 1024.0,
                    file as f64 / 1024.0
                ));
            }
        }
        if !at_rest.is_empty() {
            self.notes.push(format!(
                "RSS at rest (started, ready, no load yet): {}. The file-backed part is the \
                 binary's and libraries' pages in memory.",
                at_rest.join("; ")
            ));
        }

        self.stage("logging in through each system and checking every scenario");
        let cookies = self.logins(&ports, &endpoints);
        let mut scenarios = self.scenarios(&ports, &pids, &cookies);
        for s in &mut scenarios {
            if s.failed.is_none()
                && let Err(e) = self.verify(s, &cookies)
            {
                println!("[xtask] bench: {}: not measured: {e}", s.label);
                s.failed = Some(e);
            }
        }

        self.stage("load: rounds of every scenario, interleaved");
        if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
            let avg: Vec<&str> = load.split_whitespace().take(3).collect();
            self.notes.push(format!(
                "Load average (1, 5, 15 min) when the load started: {} on {} CPU(s).",
                avg.join(", "),
                self.pin.cpus
            ));
        }
        println!(
            "[xtask] bench: scenarios in a new shuffled order each round (seed {})",
            self.seed
        );
        self.rounds(&mut scenarios, &cookies, o.rounds, "closed loop");

        self.stage("open loop: p99 at equal offered load");
        let mut open = self.open_loop(&scenarios);
        self.rounds(&mut open, &cookies, o.rounds.min(3), "open loop");
        scenarios.extend(open);

        self.stage("cost curves: distinct sessions, rules, cookie chunks, Redis, replicas");
        let curves = self.curves(&ports, &pids, &cookies);

        self.stage("instructions per check (valgrind --tool=callgrind)");
        let callgrind = self.callgrind_all(&ports, &cookies);

        self.stage("refresh storm (a session due for refresh, requests at once)");
        let storms = self.storms(&ports);

        drop(services);
        self.stage("writing BENCHMARKS.md and the chart");
        let machine = report::Machine::read(&self.bins, &self.pin);
        let bearer = self.bearer_status(&scenarios);
        let mut report = Report {
            options: o.clone(),
            scenarios,
            curves,
            curves_chart: None,
            cookie_bytes: [
                cookies.get("ours").map(str::len).ok(),
                cookies.get("o2p").map(str::len).ok(),
            ],
            binaries: self.binary_sizes(),
            seed: self.seed,
            callgrind,
            storms,
            machine,
            commands: self.commands.clone(),
            notes: self.notes.clone(),
            bearer,
            chart: None,
            date: report::today(),
            elapsed: self.started.elapsed(),
            build_time,
        };
        if o.write {
            report.chart = self.chart(&report);
            report.curves_chart = self.curves_chart(&report);
        }
        Ok(report)
    }

    fn install(&mut self) -> Result<(), String> {
        self.bins.nginx = match nginx::ensure() {
            Ok(p) => Some(p),
            Err(e) => {
                println!("[xtask] bench: nginx is not available, its row is skipped: {e}");
                self.notes
                    .push(format!("nginx could not be installed: {e}"));
                None
            }
        };
        self.bins.oauth2_proxy = match oauth2_proxy::ensure() {
            Ok(p) => Some(p),
            Err(e) => {
                println!("[xtask] bench: oauth2-proxy is not available, the peer is skipped: {e}");
                self.notes
                    .push(format!("oauth2-proxy could not be installed: {e}"));
                None
            }
        };
        self.bins.redis = match redis::Redis.ensure_installed() {
            Ok(env) => env_path(&env, "OIDC_AUTHZ_REDIS_SERVER").ok(),
            Err(e) => {
                println!("[xtask] bench: Redis is not available, its curves are skipped: {e}");
                None
            }
        };
        let env = envoy::Envoy.ensure_installed()?;
        self.bins.envoy = env_path(&env, "OIDC_AUTHZ_ENVOY")?;
        let env = node_provider::NodeProvider.ensure_installed()?;
        self.bins.node_provider_dir = env_path(&env, "OIDC_AUTHZ_NODE_PROVIDER_DIR")?;
        self.bins.node = env_path(&env, "OIDC_AUTHZ_NODE")?;
        Ok(())
    }

    fn build(&mut self) -> Result<(), String> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // The servers as shipped (the `dist` profile); the load generator's helper in release.
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(util::repo_root()).args([
            "build",
            "--profile",
            PROFILE,
            "-p",
            "ext-authz-adapter",
            "-p",
            "benches",
            "--bin",
            "ext-authz-adapter",
            "--bin",
            "noop-server",
            "--bin",
            "noop-grpc-server",
        ]);
        util::run(&mut cmd)?;
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(util::repo_root()).args([
            "build",
            "--release",
            "-p",
            "benches",
            "--bin",
            "bench-agent",
        ]);
        util::run(&mut cmd)?;
        let servers = target_dir().join(PROFILE);
        self.bins.adapter = servers.join("ext-authz-adapter");
        self.bins.noop = servers.join("noop-server");
        self.bins.noop_grpc = servers.join("noop-grpc-server");
        self.bins.agent = target_dir().join("release").join("bench-agent");
        self.commands.push((
            "build".into(),
            format!(
                "cargo build --profile {PROFILE} -p ext-authz-adapter -p benches --bin \
                 ext-authz-adapter --bin noop-server --bin noop-grpc-server; cargo build --release \
                 -p benches --bin bench-agent"
            ),
        ));
        Ok(())
    }

    fn start_provider(&mut self, services: &mut Services, ports: &Ports) -> Result<(), String> {
        let redirect = |port: u16| format!("\"http://{HOST}:{port}/oauth2/callback\"");
        let uris: Vec<String> = [
            ports.ours,
            ports.ours_refresh,
            ports.o2p,
            ports.o2p_refresh,
            ports.envoy_oauth2,
            ports.redis_ours[0],
            ports.redis_ours[1],
            ports.redis_o2p,
        ]
        .iter()
        .map(|p| redirect(*p))
        .collect();
        let config = format!(
            "{{\"port\":{},\"clients\":[{{\"client_id\":\"{CLIENT_ID}\",\"client_secret\":\
             \"{CLIENT_SECRET}\",\"redirect_uris\":[{}],\"token_endpoint_auth_method\":\
             \"client_secret_basic\"}},{{\"client_id\":\"{SERVICE_CLIENT_ID}\",\
             \"client_secret\":\"{SERVICE_CLIENT_SECRET}\",\"jwt_access_token_audience\":\
             \"{CLIENT_ID}\"}}],\"exit_on_stdin_close\":false}}",
            ports.provider,
            uris.join(",")
        );
        let script = util::repo_root().join("test-support/assets/provider.mjs");
        let mut cmd = self.pinned(&self.pin.servers.clone(), &self.bins.node.clone());
        cmd.arg(&script)
            .arg(&config)
            .env("OIDC_AUTHZ_NODE_PROVIDER_DIR", &self.bins.node_provider_dir);
        let log = self.provider_log.clone();
        let ready_log = log.clone();
        let pid = services
            .spawn(
                "oidc-provider",
                &mut cmd,
                &log,
                None,
                Some(Readiness::new(
                    "READY line".into(),
                    Duration::from_secs(30),
                    move || {
                        std::fs::read_to_string(&ready_log).is_ok_and(|t| t.contains("READY http"))
                    },
                )),
            )?
            .pid;
        self.our_pids.push(pid);
        self.issuer = format!("http://127.0.0.1:{}", ports.provider);
        self.commands.push((
            "identity provider".into(),
            format!(
                "node test-support/assets/provider.mjs '{{\"port\":{},\"clients\":[{{\"client_id\":\
                 \"{CLIENT_ID}\", ...}}, {{\"client_id\":\"{SERVICE_CLIENT_ID}\", \
                 \"jwt_access_token_audience\":\"{CLIENT_ID}\", ...}}]}}'  # node oidc-provider, \
                 stderr counted for refresh grants",
                ports.provider
            ),
        ));
        Ok(())
    }

    fn discovery(&self, port: u16) -> Result<Endpoints, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let text = measure::fetch_text(addr, "/.well-known/openid-configuration")?;
        let field = |key: &str| {
            json_string(&text, key).ok_or_else(|| format!("discovery has no {key}: {text}"))
        };
        Ok(Endpoints {
            authorize: field("authorization_endpoint")?,
            token: field("token_endpoint")?,
            jwks: field("jwks_uri")?,
        })
    }

    fn adapter_args(&self, port: u16, grpc: Option<u16>, refresh: &str) -> Vec<String> {
        let mut args: Vec<String> = SEED_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.extend([
            "--cookie-domain=.example.com".to_owned(),
            format!("--cookie-refresh={refresh}"),
            format!("--oidc-issuer-url={}", self.issuer),
            format!("--http-address=127.0.0.1:{port}"),
            format!("--cookie-secret={COOKIE_SECRET}"),
            format!("--client-id={CLIENT_ID}"),
        ]);
        if let Some(g) = grpc {
            args.push(format!("--grpc-address=127.0.0.1:{g}"));
        }
        args
    }

    fn oauth2_proxy_args(&self, port: u16, refresh: &str) -> Vec<String> {
        let mut args: Vec<String> = SEED_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.extend([
            "--cookie-domain=.example.com".to_owned(),
            format!("--cookie-refresh={refresh}"),
            format!("--oidc-issuer-url={}", self.issuer),
            format!("--http-address=127.0.0.1:{port}"),
            format!("--cookie-secret={COOKIE_SECRET}"),
            format!("--client-id={CLIENT_ID}"),
            format!("--client-secret={CLIENT_SECRET}"),
            format!("--redirect-url=http://{HOST}:{port}/oauth2/callback"),
            // The provider requires PKCE, as Keycloak can; the adapter always sends it.
            "--code-challenge-method=S256".into(),
            // One log line per request otherwise; the adapter logs none.
            "--request-logging=false".into(),
        ]);
        args
    }

    /// The no-op servers, the adapters, oauth2-proxy and the Envoys; with `all` false only the
    /// adapter (for a login).
    fn start_servers(
        &mut self,
        services: &mut Services,
        ports: &Ports,
        endpoints: &Endpoints,
        all: bool,
    ) -> Result<Pids, String> {
        let servers = self.pin.servers.clone();
        let mut pids = Pids::default();
        let timeout = Duration::from_secs(60);
        if !all {
            let args = self.adapter_args(ports.ours, None, "1h");
            pids.ours = self.spawn_adapter(services, "adapter", ports.ours, &args)?;
            return Ok(pids);
        }

        // The limit.
        let mut cmd = self.pinned(&servers, &self.bins.noop.clone());
        cmd.arg(format!("127.0.0.1:{}", ports.noop));
        self.commands.push((
            "limit".into(),
            format!(
                "{} target/{PROFILE}/noop-server 127.0.0.1:{}",
                self.wrapper(&servers),
                ports.noop
            ),
        ));
        pids.noop = services
            .spawn(
                "noop-server",
                &mut cmd,
                &self.dir.join("noop.log"),
                None,
                Some(Readiness::new(
                    "GET /".into(),
                    timeout,
                    http_ready(ports.noop, "/"),
                )),
            )?
            .pid;
        pids.all.push(pids.noop);

        // The gRPC ceiling.
        let mut cmd = self.pinned(&servers, &self.bins.noop_grpc.clone());
        cmd.arg(format!("127.0.0.1:{}", ports.noop_grpc));
        self.commands.push((
            "gRPC limit".into(),
            format!(
                "{} target/{PROFILE}/noop-grpc-server 127.0.0.1:{}",
                self.wrapper(&servers),
                ports.noop_grpc
            ),
        ));
        let log = self.dir.join("noop-grpc.log");
        let ready_log = log.clone();
        pids.noop_grpc = services
            .spawn(
                "noop-grpc-server",
                &mut cmd,
                &log,
                None,
                Some(Readiness::new("READY line".into(), timeout, move || {
                    std::fs::read_to_string(&ready_log).is_ok_and(|t| t.contains("READY "))
                })),
            )?
            .pid;
        pids.all.push(pids.noop_grpc);

        // The second reference: nginx answering `return 200;` (one process, no master). An
        // nginx that does not start (a library missing next to the unpacked package) costs
        // its row only: the servers before it are waited for first, so a failure is nginx's.
        services.wait_ready()?;
        if let Some(binary) = self.bins.nginx.clone() {
            let listen = format!("127.0.0.1:{}", ports.nginx);
            let conf = self.dir.join("nginx.conf");
            std::fs::create_dir_all(self.dir.join("nginx-tmp"))
                .and_then(|()| std::fs::write(&conf, nginx::config(&self.dir, &listen)))
                .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
            let mut cmd = self.pinned(&servers, &binary);
            cmd.arg("-p")
                .arg(&self.dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(self.dir.join("nginx-error.log"));
            self.commands.push((
                "nginx".into(),
                format!(
                    "{} nginx -c nginx.conf (worker_processes 1; master_process off; access_log \
                     off; listen {listen}; location / {{ return 200; }})",
                    self.wrapper(&servers)
                ),
            ));
            let pid = services
                .spawn(
                    "nginx",
                    &mut cmd,
                    &self.dir.join("nginx.log"),
                    None,
                    Some(Readiness::new(
                        "GET /".into(),
                        timeout,
                        http_ready(ports.nginx, "/"),
                    )),
                )?
                .pid;
            match services.wait_ready() {
                Ok(()) => {
                    pids.all.push(pid);
                    pids.nginx = Some(pid);
                }
                Err(e) => {
                    println!("[xtask] bench: nginx did not start, its row is skipped: {e}");
                    self.notes
                        .push(format!("nginx did not start: {}", first_line(&e)));
                }
            }
        }

        // Ours, and a second one for the refresh storm.
        for (name, port, grpc, refresh) in [
            ("adapter", ports.ours, Some(ports.ours_grpc), "1h"),
            ("adapter-refresh", ports.ours_refresh, None, "1s"),
        ] {
            let mut args = self.adapter_args(port, grpc, refresh);
            if self.bearer && grpc.is_some() {
                args.push(BEARER_FLAG.into());
            }
            self.commands.push((
                name.into(),
                format!(
                    "env -i OAUTH2_PROXY_CLIENT_SECRET=... {} target/{PROFILE}/ext-authz-adapter {}",
                    self.wrapper(&servers),
                    shell_words(&args)
                ),
            ));
            let pid = self.spawn_adapter(services, name, port, &args)?;
            pids.all.push(pid);
            if grpc.is_some() {
                pids.ours = pid;
            }
        }

        // The peer.
        if let Some(binary) = self.bins.oauth2_proxy.clone() {
            for (name, port, refresh) in [
                ("oauth2-proxy", ports.o2p, "1h"),
                ("oauth2-proxy-refresh", ports.o2p_refresh, "1s"),
            ] {
                let mut args = self.oauth2_proxy_args(port, refresh);
                if self.bearer && refresh == "1h" {
                    args.push(BEARER_FLAG.into());
                }
                self.commands.push((
                    name.into(),
                    format!(
                        "env -i {} {} oauth2-proxy {}",
                        self.go_env()
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        self.wrapper(&servers),
                        shell_words(&args).replace(CLIENT_SECRET, "...")
                    ),
                ));
                let pid = self.spawn_oauth2_proxy(services, name, &binary, port, &args)?;
                pids.all.push(pid);
                if refresh == "1h" {
                    pids.o2p = Some(pid);
                }
            }
        }

        // The Envoys.
        let mut envoys: Vec<(&str, u16, u16, Vec<String>)> = vec![
            ("none", ports.envoy_none, ports.envoy_admin[0], vec![]),
            (
                "http",
                ports.envoy_ours,
                ports.envoy_admin[1],
                vec![format!("--authz=127.0.0.1:{}", ports.ours)],
            ),
            (
                "grpc",
                ports.envoy_ours_grpc,
                ports.envoy_admin[2],
                vec![format!("--authz=127.0.0.1:{}", ports.ours_grpc)],
            ),
            (
                "oauth2",
                ports.envoy_oauth2,
                ports.envoy_admin[4],
                vec![
                    format!("--idp={}", self.issuer),
                    format!("--client-id={CLIENT_ID}"),
                    format!("--client-secret={CLIENT_SECRET}"),
                    format!("--authorize={}", endpoints.authorize),
                    format!("--token={}", endpoints.token),
                    format!("--jwks={}", endpoints.jwks),
                ],
            ),
        ];
        if self.bins.oauth2_proxy.is_some() {
            envoys.insert(
                3,
                (
                    "http-o2p",
                    ports.envoy_o2p,
                    ports.envoy_admin[3],
                    vec![format!("--authz=127.0.0.1:{}", ports.o2p)],
                ),
            );
        }
        for (name, listen, admin, extra) in envoys {
            let kind = if name == "http-o2p" { "http" } else { name };
            let file = match self.envoy_config_file(name, kind, (listen, admin, ports.noop), &extra)
            {
                Ok(file) => file,
                Err(e) if name == "oauth2" => {
                    self.notes.push(format!("Envoy oauth2 config: {e}"));
                    continue;
                }
                Err(e) => return Err(format!("bench-agent envoy-config --kind={kind}: {e}")),
            };
            self.commands.push((
                format!("envoy ({name})"),
                format!(
                    "bench-agent envoy-config --kind={kind} --listen=127.0.0.1:{listen} ... > \
                     envoy-{name}.json; {} envoy --config-path envoy-{name}.json --concurrency 1 \
                     --log-level warning",
                    self.wrapper(&servers)
                ),
            ));
            let pid = self.spawn_envoy(services, &format!("envoy-{name}"), &file, admin)?;
            pids.all.push(pid);
            match name {
                "none" => pids.envoy_none = Some(pid),
                "http" => pids.envoy_ours = Some(pid),
                "grpc" => pids.envoy_ours_grpc = Some(pid),
                "http-o2p" => pids.envoy_o2p = Some(pid),
                _ => pids.envoy_oauth2 = Some(pid),
            }
        }
        Ok(pids)
    }

    /// `bench-agent login`: the Cookie header after a real login through `port`.
    fn login(&self, port: u16, start: &str) -> Result<String, String> {
        let out = Command::new(&self.bins.agent)
            .arg("login")
            .arg(format!("--base=http://{HOST}:{port}"))
            .arg(format!("--start={start}"))
            .arg("--user=alice")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("bench-agent login: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(8).collect();
            return Err(format!(
                "login failed: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        let cookie = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if cookie.is_empty() {
            return Err("login left no cookie".into());
        }
        Ok(cookie)
    }

    fn logins(&mut self, ports: &Ports, endpoints: &Endpoints) -> Cookies {
        let mut cookies = Cookies::default();
        let get = |what: &str, port: u16, start: &str| match self.login(port, start) {
            Ok(c) => {
                println!(
                    "[xtask] bench: logged in through {what} ({} cookie bytes)",
                    c.len()
                );
                Ok(c)
            }
            Err(e) => {
                println!("[xtask] bench: login through {what} failed: {e}");
                Err(e)
            }
        };
        cookies.ours = get("the adapter", ports.ours, "/");
        cookies.o2p = if self.bins.oauth2_proxy.is_some() {
            get("oauth2-proxy", ports.o2p, "/oauth2/start?rd=%2F")
        } else {
            Err("oauth2-proxy is not installed".into())
        };
        cookies.envoy_oauth2 = get("Envoy's oauth2 filter", ports.envoy_oauth2, "/");
        if self.bearer {
            // A JWT access token for the audience nginx, from the provider's service client
            // (client_credentials; the code flow's access tokens are opaque, and an ID token
            // is not an access token), the same for both systems.
            let token = self
                .access_token(&endpoints.token)
                .map(|t| format!("Bearer {t}"));
            match &token {
                Ok(t) => println!(
                    "[xtask] bench: bearer token: a JWT access token from the client_credentials \
                     grant of {SERVICE_CLIENT_ID} ({} bytes)",
                    t.len() - "Bearer ".len()
                ),
                Err(e) => println!("[xtask] bench: no bearer token: {e}"),
            }
            cookies.ours_bearer = token.clone();
            cookies.o2p_bearer = token;
        }
        cookies
    }

    /// `bench-agent access-token`: a JWT access token (audience [`CLIENT_ID`]) from the
    /// provider's client_credentials grant for [`SERVICE_CLIENT_ID`]; its header and claims
    /// go to the report's notes.
    fn access_token(&mut self, token_endpoint: &str) -> Result<String, String> {
        let out = Command::new(&self.bins.agent)
            .arg("access-token")
            .arg(format!("--token={token_endpoint}"))
            .arg(format!("--client-id={SERVICE_CLIENT_ID}"))
            .arg(format!("--client-secret={SERVICE_CLIENT_SECRET}"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("bench-agent access-token: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if !out.status.success() {
            return Err(stderr);
        }
        if let Some(shape) = stderr.strip_prefix("bench-agent: access token ") {
            self.notes.push(format!(
                "The bearer rows' token (client_credentials grant of `{SERVICE_CLIENT_ID}` at \
                 node oidc-provider; iss, iat, exp, jti vary per run): {shape}."
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn scenarios(&self, ports: &Ports, pids: &Pids, cookies: &Cookies) -> Vec<Scenario> {
        let o2p_missing = || Some("oauth2-proxy is not installed".to_owned());
        let http = |port: u16, path: &str| LoadSpec::Http {
            port,
            path: path.to_owned(),
            credentials: None,
            requests: None,
        };
        let mut list = vec![
            scenario(
                "limit",
                "limit: hyper no-op server",
                "limit",
                "direct",
                http(ports.noop, "/"),
            )
            .server("noop-server", Some(pids.noop))
            .expect(200),
            scenario(
                "limit-nginx",
                "limit: nginx return 200",
                "limit",
                "direct",
                http(ports.nginx, "/"),
            )
            .server("nginx", pids.nginx),
            // The same `CheckRequest` as the adapter's gRPC row (the session cookie included).
            scenario(
                "limit-grpc",
                "limit: tonic no-op gRPC Check",
                "limit",
                "direct",
                LoadSpec::Grpc {
                    port: ports.noop_grpc,
                },
            )
            .cookie("ours")
            .server("noop-grpc-server", Some(pids.noop_grpc)),
            scenario(
                "ours-http",
                "ours: HTTP check /",
                "ours",
                "direct",
                http(ports.ours, "/"),
            )
            .cookie("ours")
            .server("adapter", Some(pids.ours)),
            scenario(
                "ours-auth",
                "ours: /oauth2/auth",
                "ours",
                "direct",
                http(ports.ours, "/oauth2/auth"),
            )
            .cookie("ours")
            .server("adapter", Some(pids.ours))
            .expect(202),
            scenario(
                "ours-grpc",
                "ours: gRPC Check",
                "ours",
                "direct",
                LoadSpec::Grpc {
                    port: ports.ours_grpc,
                },
            )
            .cookie("ours")
            .server("adapter", Some(pids.ours)),
            scenario(
                "peer-http",
                "oauth2-proxy: /",
                "peer",
                "direct",
                http(ports.o2p, "/"),
            )
            .cookie("o2p")
            .server("oauth2-proxy", pids.o2p),
            scenario(
                "peer-auth",
                "oauth2-proxy: /oauth2/auth",
                "peer",
                "direct",
                http(ports.o2p, "/oauth2/auth"),
            )
            .cookie("o2p")
            .server("oauth2-proxy", pids.o2p)
            .expect(202),
            scenario(
                "envoy",
                "Envoy, no ext_authz",
                "envoy",
                "envoy",
                http(ports.envoy_none, "/"),
            )
            .server("envoy", pids.envoy_none),
            scenario(
                "envoy-ours-http",
                "Envoy + ours (ext_authz HTTP)",
                "ours",
                "envoy",
                http(ports.envoy_ours, "/"),
            )
            .cookie("ours")
            .server("adapter", Some(pids.ours))
            .envoy(pids.envoy_ours),
            scenario(
                "envoy-ours-grpc",
                "Envoy + ours (ext_authz gRPC)",
                "ours",
                "envoy",
                http(ports.envoy_ours_grpc, "/"),
            )
            .cookie("ours")
            .server("adapter", Some(pids.ours))
            .envoy(pids.envoy_ours_grpc),
            scenario(
                "envoy-peer-http",
                "Envoy + oauth2-proxy (ext_authz HTTP)",
                "peer",
                "envoy",
                http(ports.envoy_o2p, "/"),
            )
            .cookie("o2p")
            .server("oauth2-proxy", pids.o2p)
            .envoy(pids.envoy_o2p),
            scenario(
                "envoy-oauth2",
                "Envoy oauth2 + jwt_authn filters",
                "envoy",
                "envoy",
                http(ports.envoy_oauth2, "/"),
            )
            .cookie("envoy-oauth2")
            .server("envoy", pids.envoy_oauth2),
        ];
        if self.bearer {
            let at = |list: &Vec<Scenario>, id: &str| {
                list.iter()
                    .position(|s| s.id == id)
                    .map_or(list.len(), |i| i + 1)
            };
            let i = at(&list, "ours-http");
            list.insert(
                i,
                scenario(
                    "ours-bearer",
                    "ours: HTTP check /, bearer token",
                    "ours",
                    "direct",
                    http(ports.ours, "/"),
                )
                .cookie("ours-bearer")
                .server("adapter", Some(pids.ours)),
            );
            let i = at(&list, "peer-http");
            list.insert(
                i,
                scenario(
                    "peer-bearer",
                    "oauth2-proxy: /, bearer token",
                    "peer",
                    "direct",
                    http(ports.o2p, "/"),
                )
                .cookie("o2p-bearer")
                .server("oauth2-proxy", pids.o2p),
            );
        }
        for s in &mut list {
            if s.server.is_none() {
                s.failed = if s.id.starts_with("peer") || s.id == "envoy-peer-http" {
                    o2p_missing()
                } else {
                    Some("not started".into())
                };
                continue;
            }
            if let Some(which) = &s.cookie
                && let Err(e) = cookies.get(which)
            {
                s.failed = Some(format!("no session: {e}"));
            }
            s.command = self.load_command(s);
        }
        list
    }

    /// The load command of a scenario, for the report (cookie as a shell variable).
    fn load_command(&self, s: &Scenario) -> String {
        let cookie_var = s.cookie.as_ref().map(|c| match c.as_str() {
            "ours" => "$COOKIE_OURS",
            "o2p" => "$COOKIE_OAUTH2_PROXY",
            "ours-bearer" | "o2p-bearer" => "$ACCESS_TOKEN",
            "ours-redis" => "$COOKIE_OURS_REDIS",
            "o2p-redis" => "$COOKIE_OAUTH2_PROXY_REDIS",
            _ => "$COOKIE_ENVOY_OAUTH2",
        });
        let o = &self.options;
        let wrapper = self.wrapper(&self.pin.load);
        match &s.load {
            LoadSpec::Http {
                port,
                path,
                credentials,
                requests,
            } => {
                let mut c = format!(
                    "{wrapper} bench-agent http-load --addr=127.0.0.1:{port} --host={HOST}:{port} \
                     --path={path} --connections={} --expect={}",
                    o.connections, s.expect
                );
                match (credentials, cookie_var) {
                    (Some(file), _) => c.push_str(&format!(
                        " --credentials={}",
                        file.file_name()
                            .map_or_else(String::new, |n| n.to_string_lossy().into())
                    )),
                    (None, Some("$ACCESS_TOKEN")) => {
                        c.push_str(" --credentials=<(echo \"Authorization: Bearer $ACCESS_TOKEN\")")
                    }
                    (None, Some(v)) => {
                        c.push_str(&format!(" --credentials=<(echo \"Cookie: {v}\")"));
                    }
                    (None, None) => {}
                }
                match (requests, s.rate) {
                    (Some(n), _) => c.push_str(&format!(" --requests={n}")),
                    (None, Some(rate)) => {
                        c.push_str(&format!(" --rate={rate:.0} --duration={}", o.duration));
                    }
                    (None, None) => c.push_str(&format!(" --duration={}", o.duration)),
                }
                c
            }
            LoadSpec::Grpc { port } => format!(
                "{wrapper} bench-agent grpc-load --addr=127.0.0.1:{port} --authority={HOST}:{port} \
                 --cookie=\"{}\" --concurrency={} --duration={} --warmup=0",
                cookie_var.unwrap_or(""),
                o.connections,
                o.duration
            ),
        }
    }

    fn headers(&self, port: u16, cookie: Option<&str>) -> Vec<(String, String)> {
        let mut h = vec![
            ("Host".to_owned(), format!("{HOST}:{port}")),
            ("Accept".to_owned(), "text/html".to_owned()),
        ];
        if let Some(line) = cookie.map(credential_line) {
            let (k, v) = line.split_once(": ").unwrap_or((&line, ""));
            h.push((k.to_owned(), v.to_owned()));
        }
        h
    }

    fn verify(&self, s: &Scenario, cookies: &Cookies) -> Result<(), String> {
        let cookie = match &s.cookie {
            Some(which) => Some(cookies.get(which)?),
            None => None,
        };
        match &s.load {
            LoadSpec::Http { port, path, .. } => {
                let addr = SocketAddr::from(([127, 0, 0, 1], *port));
                let mut conn = measure::Conn::open(addr)?;
                let answer = conn.get(path, &self.headers(*port, cookie))?;
                if answer.status != s.expect {
                    return Err(format!(
                        "GET {path} with the session answered {}, not {} (a deny: the session \
                         is not accepted)",
                        answer.status, s.expect
                    ));
                }
                Ok(())
            }
            // grpc-load checks its first answer itself.
            LoadSpec::Grpc { .. } => Ok(()),
        }
    }

    /// The file of `Cookie:`/`Authorization:` lines a scenario's HTTP load presents: its own
    /// (many sessions), or one line with the scenario's cookie.
    fn credentials(&self, s: &Scenario, cookie: Option<&str>) -> Result<Option<PathBuf>, String> {
        if let LoadSpec::Http {
            credentials: Some(file),
            ..
        } = &s.load
        {
            return Ok(Some(file.clone()));
        }
        let (Some(which), Some(cookie)) = (&s.cookie, cookie) else {
            return Ok(None);
        };
        let file = self.dir.join(format!("credential-{which}.txt"));
        std::fs::write(&file, format!("{}\n", credential_line(cookie)))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(Some(file))
    }

    /// Runs the load for `seconds` (or its fixed number of requests).
    fn load(
        &self,
        s: &Scenario,
        cookie: Option<&str>,
        seconds: f64,
    ) -> Result<measure::Load, String> {
        let o = &self.options;
        let (mut cmd, what) = match &s.load {
            LoadSpec::Http {
                port,
                path,
                requests,
                ..
            } => {
                let mut cmd = self.pinned(&self.pin.load, &self.bins.agent);
                cmd.arg("http-load")
                    .arg(format!("--addr=127.0.0.1:{port}"))
                    .arg(format!("--host={HOST}:{port}"))
                    .arg(format!("--path={path}"))
                    .arg(format!("--connections={}", o.connections))
                    .arg(format!("--expect={}", s.expect));
                if let Some(file) = self.credentials(s, cookie)? {
                    cmd.arg(format!("--credentials={}", file.display()));
                }
                match requests {
                    Some(n) => cmd.arg(format!("--requests={n}")),
                    None => cmd.arg(format!("--duration={seconds}")),
                };
                if let Some(rate) = s.rate {
                    cmd.arg(format!("--rate={rate:.0}"));
                }
                (cmd, "http-load")
            }
            LoadSpec::Grpc { port } => {
                let mut cmd = self.pinned(&self.pin.load, &self.bins.agent);
                cmd.arg("grpc-load")
                    .arg(format!("--addr=127.0.0.1:{port}"))
                    .arg(format!("--authority={HOST}:{port}"))
                    .arg(format!("--cookie={}", cookie.unwrap_or("")))
                    .arg(format!("--concurrency={}", o.connections))
                    .arg(format!("--duration={seconds}"))
                    .arg("--warmup=0");
                (cmd, "grpc-load")
            }
        };
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("bench-agent {what}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "bench-agent {what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        measure::parse_agent_load(&String::from_utf8_lossy(&out.stdout))
    }

    fn measure(&self, s: &Scenario, cookies: &Cookies) -> Result<Run, String> {
        let cookie = match &s.cookie {
            Some(which) => Some(cookies.get(which)?.to_owned()),
            None => None,
        };
        // A fixed number of requests is a pass over sessions never seen: no warm-up.
        if !s.is_one_pass() {
            self.load(s, cookie.as_deref(), self.options.warmup)?;
        }
        let pid = s.server.as_ref().map(|(_, p)| *p);
        let rss_reset = pid.is_some_and(measure::reset_peak_rss);
        let cpu0 = pid.and_then(measure::cpu_ticks);
        let also = || -> Option<u64> {
            s.also
                .iter()
                .map(|p| measure::cpu_ticks(*p))
                .sum::<Option<u64>>()
        };
        let also0 = also();
        let envoy0 = s.envoy.and_then(measure::cpu_ticks);
        let ours = || -> u64 {
            self.our_pids
                .iter()
                .filter_map(|p| measure::cpu_ticks(*p))
                .sum()
        };
        let (ours0, machine0) = (ours(), measure::cpu_busy(&self.pin.server_ids));
        let anon = pid.map(measure::AnonSampler::start);
        let load = self.load(s, cookie.as_deref(), self.options.duration);
        let anon_kib = anon.and_then(measure::AnonSampler::stop);
        let load = load?;
        let (ours1, machine1) = (ours(), measure::cpu_busy(&self.pin.server_ids));
        let cpu1 = pid.and_then(measure::cpu_ticks);
        let also1 = also();
        let envoy1 = s.envoy.and_then(measure::cpu_ticks);
        let others_pct = match (machine0, machine1) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                let others = (b1 - b0).saturating_sub(ours1.saturating_sub(ours0));
                Some(others as f64 * 100.0 / (t1 - t0) as f64)
            }
            _ => None,
        };
        let per_10k = |a: Option<u64>, b: Option<u64>| -> Option<f64> {
            let (a, b) = (a?, b?);
            (load.requests > 0)
                .then(|| (b.saturating_sub(a)) as f64 / self.ticks / (load.requests as f64 / 1e4))
        };
        Ok(Run {
            rss_kib: if rss_reset {
                pid.and_then(measure::peak_rss_kib)
            } else {
                None
            },
            anon_kib,
            cpu_per_10k: per_10k(cpu0, cpu1),
            total_cpu_per_10k: per_10k(
                cpu0.zip(also0).map(|(a, b)| a + b),
                cpu1.zip(also1).map(|(a, b)| a + b),
            ),
            envoy_cpu_per_10k: per_10k(envoy0, envoy1),
            others_pct,
            load,
        })
    }

    fn callgrind_all(&mut self, ports: &Ports, cookies: &Cookies) -> Vec<Callgrind> {
        let mut out = Vec::new();
        if Command::new("valgrind")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_err()
        {
            self.notes
                .push("valgrind is not installed: no instruction counts".into());
            return out;
        }
        let n = self.options.callgrind_requests;
        let secret = [("OAUTH2_PROXY_CLIENT_SECRET", CLIENT_SECRET)];
        if let Ok(cookie) = &cookies.ours {
            let port = ports.callgrind_ours;
            let args = self.adapter_args(port, None, "1h");
            let adapter = self.bins.adapter.clone();
            out.push(self.callgrind(
                ("adapter", "adapter: HTTP check"),
                &adapter,
                &args,
                &secret,
                (port, Ready::Http("/ready")),
                (Checks::Http, port),
                cookie,
            ));
            let (http, grpc) = ports.callgrind_ours_grpc;
            let args = self.adapter_args(http, Some(grpc), "1h");
            out.push(self.callgrind(
                ("adapter-grpc", "adapter: gRPC Check"),
                &adapter,
                &args,
                &secret,
                (http, Ready::Http("/ready")),
                (Checks::Grpc, grpc),
                cookie,
            ));
            // The no-op servers get the same requests (the session cookie included).
            let port = ports.callgrind_noop;
            let noop = self.bins.noop.clone();
            out.push(self.callgrind(
                ("noop", "limit: hyper no-op HTTP server"),
                &noop,
                &[format!("127.0.0.1:{port}")],
                &[],
                (port, Ready::Http("/")),
                (Checks::Http, port),
                cookie,
            ));
            let port = ports.callgrind_noop_grpc;
            let noop = self.bins.noop_grpc.clone();
            out.push(self.callgrind(
                ("noop-grpc", "limit: tonic no-op gRPC Check"),
                &noop,
                &[format!("127.0.0.1:{port}")],
                &[],
                (port, Ready::Line),
                (Checks::Grpc, port),
                cookie,
            ));
        }
        if !self.options.callgrind_only
            && let (Some(binary), Ok(cookie)) = (self.bins.oauth2_proxy.clone(), &cookies.o2p)
        {
            let port = ports.callgrind_o2p;
            let args = self.oauth2_proxy_args(port, "1h");
            // Go's asynchronous preemption signals abort callgrind (valgrind 3.19).
            out.push(self.callgrind(
                ("oauth2-proxy", "oauth2-proxy"),
                &binary,
                &args,
                &[("GODEBUG", "asyncpreemptoff=1")],
                (port, Ready::Http("/ping")),
                (Checks::Http, port),
                cookie,
            ));
        }
        for c in &out {
            match &c.result {
                Ok(i) => println!(
                    "[xtask] bench: {}: {i} instructions per check ({n} checks)",
                    c.system
                ),
                Err(e) => println!("[xtask] bench: {}: no instruction count: {e}", c.system),
            }
        }
        out
    }

    /// Starts `binary` under callgrind, waits until it is `ready` on its HTTP port (or prints
    /// `READY`), sends 50 warm-up checks, zeroes the counters, sends the counted checks on the
    /// same connection (`checks`: HTTP on the given port, or gRPC) and dumps the counters.
    #[allow(clippy::too_many_arguments)]
    fn callgrind(
        &self,
        (key, system): (&'static str, &str),
        binary: &Path,
        args: &[String],
        env: &[(&str, &str)],
        (ready_port, ready): (u16, Ready),
        (checks, port): (Checks, u16),
        cookie: &str,
    ) -> Callgrind {
        let n = self.options.callgrind_requests;
        let out_base = self.dir.join(format!("callgrind.{key}"));
        let env_words: Vec<String> = env
            .iter()
            .filter(|(k, _)| !k.contains("SECRET"))
            .map(|(k, v)| format!("{k}={v} "))
            .collect();
        let what = match checks {
            Checks::Http => format!("{n} sequential GET / with the session on one connection"),
            Checks::Grpc => format!(
                "bench-agent grpc-checks --addr=127.0.0.1:{port} --authority={HOST}:{port} \
                 --cookie=\"$COOKIE_OURS\" --warmup=50 --n={n} (sequential Checks on one \
                 connection)"
            ),
        };
        let command = format!(
            "{}valgrind --tool=callgrind --callgrind-out-file=callgrind.{key}.%p {} {}; {what} \
             between `callgrind_control -z` and `callgrind_control -d`",
            env_words.concat(),
            binary
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            shell_words(args).replace(CLIENT_SECRET, "...")
        );
        let result = (|| -> Result<(u64, Vec<String>), String> {
            let mut services = Services::new();
            let mut cmd = self.pinned(&self.pin.servers, Path::new("valgrind"));
            cmd.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}.%p", out_base.display()))
                .arg(binary)
                .args(args)
                .env_remove("RUST_LOG");
            for (k, v) in env {
                cmd.env(k, v);
            }
            let ready_addr = SocketAddr::from(([127, 0, 0, 1], ready_port));
            let log = self.dir.join(format!("callgrind-{key}.log"));
            let ready_log = log.clone();
            let readiness = match ready {
                Ready::Http(path) => {
                    Readiness::new(path.into(), Duration::from_secs(240), move || {
                        // A probe names the server by its address (a protected host's
                        // `/ready` is a check).
                        util::http_status(
                            ready_addr,
                            &ready_addr.to_string(),
                            path,
                            Duration::from_secs(10),
                        ) == Some(200)
                    })
                }
                Ready::Line => {
                    Readiness::new("READY line".into(), Duration::from_secs(240), move || {
                        std::fs::read_to_string(&ready_log).is_ok_and(|t| t.contains("READY "))
                    })
                }
            };
            let pid = services
                .spawn(
                    &format!("{key}-callgrind"),
                    &mut cmd,
                    &log,
                    None,
                    Some(readiness),
                )?
                .pid;
            services.wait_ready()?;
            match checks {
                Checks::Http => {
                    let addr = SocketAddr::from(([127, 0, 0, 1], port));
                    let headers = self.headers(port, Some(cookie));
                    measure::requests(addr, "/", &headers, 50, 200)?;
                    callgrind_control("-z", pid)?;
                    measure::requests(addr, "/", &headers, n, 200)?;
                    callgrind_control("-d", pid)?;
                }
                Checks::Grpc => self.grpc_checks(port, cookie, n, pid)?,
            }
            let dump = std::fs::read_dir(&self.dir)
                .map_err(|e| e.to_string())?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    p.file_name().is_some_and(|f| {
                        let f = f.to_string_lossy();
                        f.starts_with(&format!("callgrind.{key}.{pid}")) && f.ends_with(".1")
                    })
                })
                .ok_or("callgrind wrote no dump after `callgrind_control -d`")?;
            let total = measure::callgrind_total(&dump)?;
            let top = if key.starts_with("adapter") {
                annotate(&dump, n)
            } else {
                Vec::new()
            };
            drop(services);
            Ok((total / n as u64, top))
        })();
        let (result, top) = match result {
            Ok((per, top)) => (Ok(per), top),
            Err(e) => (Err(first_line(&e)), Vec::new()),
        };
        Callgrind {
            key,
            system: system.into(),
            requests: n,
            result,
            top,
            command,
        }
    }

    /// `bench-agent grpc-checks` on `port`: 50 warm-up Checks, the counters of `pid` zeroed,
    /// `n` Checks on the same connection, the counters dumped. Bounded by a timeout.
    fn grpc_checks(&self, port: u16, cookie: &str, n: usize, pid: u32) -> Result<(), String> {
        use std::io::{BufRead, Write};

        let mut child = self
            .pinned(&self.pin.load, &self.bins.agent)
            .arg("grpc-checks")
            .arg(format!("--addr=127.0.0.1:{port}"))
            .arg(format!("--authority={HOST}:{port}"))
            .arg(format!("--cookie={cookie}"))
            .arg("--warmup=50")
            .arg(format!("--n={n}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("bench-agent grpc-checks: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let timeout = Duration::from_secs(600);
        let mut step = |expect: &str, control: &str| -> Result<(), String> {
            loop {
                match rx.recv_timeout(timeout) {
                    Ok(line) if line.trim() == expect => break,
                    Ok(_) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        return Err(format!(
                            "bench-agent grpc-checks: no {expect} within {} s",
                            timeout.as_secs()
                        ));
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(format!("bench-agent grpc-checks ended before {expect}"));
                    }
                }
            }
            callgrind_control(control, pid)?;
            writeln!(stdin).map_err(|e| format!("bench-agent grpc-checks: {e}"))
        };
        let stepped = step("WARM", "-z").and_then(|()| step("DONE", "-d"));
        if stepped.is_err() {
            let _ = child.kill();
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("bench-agent grpc-checks: {e}"))?;
        stepped.map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr).trim()))?;
        if !out.status.success() {
            return Err(format!(
                "bench-agent grpc-checks failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    fn storms(&mut self, ports: &Ports) -> Vec<Storm> {
        let mut out = Vec::new();
        let mut systems = vec![("ours (--cookie-refresh=1s)", ports.ours_refresh, "/")];
        if self.bins.oauth2_proxy.is_some() {
            systems.push((
                "oauth2-proxy (--cookie-refresh=1s)",
                ports.o2p_refresh,
                "/oauth2/start?rd=%2F",
            ));
        }
        for (system, port, start) in systems {
            let n = self.options.storm;
            let result = (|| -> Result<StormResult, String> {
                let cookie = self.login(port, start)?;
                // Due for refresh: older than --cookie-refresh (whole seconds).
                std::thread::sleep(Duration::from_millis(2500));
                let before = self.refresh_grants();
                let out = Command::new(&self.bins.agent)
                    .arg("storm")
                    .arg(format!("--addr=127.0.0.1:{port}"))
                    .arg(format!("--host={HOST}:{port}"))
                    .arg(format!("--cookie={cookie}"))
                    .arg(format!("--n={n}"))
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("bench-agent storm: {e}"))?;
                if !out.status.success() {
                    return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
                }
                std::thread::sleep(Duration::from_millis(500));
                let after = self.refresh_grants();
                Ok(StormResult {
                    refresh_success: after.0 - before.0,
                    refresh_error: after.1 - before.1,
                    answers: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                })
            })();
            match &result {
                Ok(r) => println!(
                    "[xtask] bench: storm of {n} on {system}: {} refresh grant(s) at the \
                     provider, {} failed; {}",
                    r.refresh_success, r.refresh_error, r.answers
                ),
                Err(e) => println!("[xtask] bench: storm on {system} failed: {e}"),
            }
            out.push(Storm {
                system: system.into(),
                requests: n,
                result,
            });
        }
        self.commands.push((
            "refresh storm".into(),
            format!(
                "bench-agent login ...; sleep 2.5; bench-agent storm --addr=127.0.0.1:PORT \
                 --host={HOST}:PORT --cookie=\"$COOKIE\" --n={}  # count `grant.success \
                 refresh_token` / `grant.error refresh_token` in the provider's stderr",
                self.options.storm
            ),
        ));
        out
    }

    /// (successful, failed) refresh grants in the provider's log so far.
    fn refresh_grants(&self) -> (usize, usize) {
        let text = std::fs::read_to_string(&self.provider_log).unwrap_or_default();
        (
            text.matches("grant.success refresh_token").count(),
            text.matches("grant.error refresh_token").count(),
        )
    }

    fn adapter_help(&self) -> String {
        Command::new(&self.bins.adapter)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn bearer_status(&self, scenarios: &[Scenario]) -> String {
        if !self.bearer {
            return "not measured under load: the adapter's check does not accept bearer tokens \
                    yet (no `--skip-jwt-bearer-tokens`; `tower-oidc` does, through \
                    `oidc_core::token::bearer`); once the flag exists, this run adds bearer rows for \
                    the adapter and oauth2-proxy. The validation's CPU cost is in the criterion \
                    benchmarks (`cargo bench -p benches --bench bearer`)"
                .into();
        }
        let mut text = format!(
            "the rows \"ours: HTTP check /, bearer token\" and \"oauth2-proxy: /, bearer \
             token\" send `Authorization: Bearer <access token>` (no cookie) to the adapter and \
             oauth2-proxy, both run with `{BEARER_FLAG}`. The token is one JWT access token, \
             the same for both: node oidc-provider's client_credentials grant for the service \
             client `{SERVICE_CLIENT_ID}` (`jwt_access_token_audience: {CLIENT_ID}` in \
             `test-support/assets/provider.mjs`), header `typ: at+jwt`, RS256 with the \
             provider's key, claims iss (the provider), aud `{CLIENT_ID}` (the client id both \
             accept), sub and client_id `{SERVICE_CLIENT_ID}`, iat, exp (1 hour), jti, no email \
             and no nonce (the code flow's access tokens are opaque, and an ID token is not an \
             access token: the adapter refuses one as a bearer token). oauth2-proxy verifies \
             the token (signature, issuer, audience, expiry) on every request; the adapter \
             verifies it once and then finds it in its cache of validated tokens (keyed by the \
             token's exact text, held while unexpired), so its row measures a cache hit plus \
             the same email, group and route checks as a session. Validation alone: `cargo \
             bench -p benches --bench bearer`"
        );
        for s in scenarios
            .iter()
            .filter(|s| s.id.ends_with("-bearer") && s.failed.is_some())
        {
            text.push_str(&format!(
                ". Not measured, \"{}\": {}",
                s.label,
                s.failed.as_deref().unwrap_or_default()
            ));
        }
        text
    }

    /// oauth2-proxy's Go runtime settings, set explicitly in its otherwise empty environment:
    /// one scheduler thread per CPU it is pinned to (Go's own default under `taskset`), and
    /// the default garbage collector target.
    fn go_env(&self) -> [(&'static str, String); 2] {
        let cpus = if self.pin.server_ids.is_empty() {
            self.pin.cpus
        } else {
            self.pin.server_ids.len()
        };
        [("GOMAXPROCS", cpus.to_string()), ("GOGC", "100".to_owned())]
    }

    /// The measured binaries' sizes: on disk (debug line tables included) and their code and
    /// read-only data (`size`'s text, what is mapped from the file to run), MiB.
    fn binary_sizes(&self) -> Vec<(String, f64, Option<f64>)> {
        let loaded = |path: &Path| -> Option<f64> {
            let out = Command::new("size")
                .arg(path)
                .stdin(Stdio::null())
                .output()
                .ok()?;
            // "   text\t   data\t    bss\t    dec\t    hex\tfilename" then the numbers; text is
            // code and read-only data.
            let text = String::from_utf8_lossy(&out.stdout);
            let code: f64 = text
                .lines()
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(code / 1024.0 / 1024.0)
        };
        let mut sizes = Vec::new();
        for (what, path) in [
            (
                format!("adapter (profile {PROFILE})"),
                Some(&self.bins.adapter),
            ),
            ("oauth2-proxy".to_owned(), self.bins.oauth2_proxy.as_ref()),
            (
                format!("hyper no-op (profile {PROFILE})"),
                Some(&self.bins.noop),
            ),
            ("nginx".to_owned(), self.bins.nginx.as_ref()),
        ] {
            let Some(path) = path else { continue };
            if let Ok(meta) = std::fs::metadata(path) {
                sizes.push((what, meta.len() as f64 / 1024.0 / 1024.0, loaded(path)));
            }
        }
        sizes
    }

    /// `docs/bench/curves.png` from the curves, or `None` (printed) when it cannot be drawn.
    fn curves_chart(&self, report: &Report) -> Option<PathBuf> {
        let font = find_font()?;
        let tsv = self.dir.join("curves.tsv");
        std::fs::write(&tsv, curves::chart_tsv(&report.curves)).ok()?;
        let png = util::repo_root().join("docs/bench/curves.png");
        let out = Command::new(&self.bins.agent)
            .arg("curves")
            .arg(format!("--input={}", tsv.display()))
            .arg(format!("--output={}", png.display()))
            .arg(format!("--font={}", font.display()))
            .arg(format!(
                "--title=cargo xtask bench{}: how the cost of a check grows",
                if self.options.quick { " --quick" } else { "" }
            ))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            println!(
                "[xtask] bench: curves chart failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        println!("[xtask] bench: wrote {}", png.display());
        Some(PathBuf::from("docs/bench/curves.png"))
    }

    fn chart(&self, report: &Report) -> Option<PathBuf> {
        let font = match find_font() {
            Some(f) => f,
            None => {
                println!("[xtask] bench: no DejaVu font; installing Debian's fonts-dejavu-core");
                let _ = util::run(
                    Command::new("apt-get")
                        .args([
                            "install",
                            "-y",
                            "--no-install-recommends",
                            "fonts-dejavu-core",
                        ])
                        .env("DEBIAN_FRONTEND", "noninteractive"),
                );
                find_font()?
            }
        };
        let tsv = self.dir.join("chart.tsv");
        std::fs::write(&tsv, report.chart_rows()).ok()?;
        let png = util::repo_root().join("docs/bench/throughput.png");
        std::fs::create_dir_all(png.parent()?).ok()?;
        let title = format!(
            "cargo xtask bench{}: medians, {} connections, {} CPU(s) for the servers",
            if self.options.quick { " --quick" } else { "" },
            self.options.connections,
            self.pin.cpus.saturating_sub(1).max(1)
        );
        let out = Command::new(&self.bins.agent)
            .arg("chart")
            .arg(format!("--input={}", tsv.display()))
            .arg(format!("--output={}", png.display()))
            .arg(format!("--font={}", font.display()))
            .arg(format!("--title={title}"))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            println!(
                "[xtask] bench: chart failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        println!("[xtask] bench: wrote {}", png.display());
        Some(PathBuf::from("docs/bench/throughput.png"))
    }
}

fn scenario(
    id: &'static str,
    label: &str,
    kind: &'static str,
    group: &'static str,
    load: LoadSpec,
) -> Scenario {
    Scenario {
        id,
        label: label.to_owned(),
        kind,
        group,
        load,
        cookie: None,
        expect: 200,
        server: None,
        envoy: None,
        failed: None,
        runs: Vec::new(),
        command: String::new(),
        rate: None,
        reruns: Vec::new(),
        also: Vec::new(),
    }
}

impl Scenario {
    fn cookie(mut self, which: &str) -> Self {
        self.cookie = Some(which.to_owned());
        self
    }
    fn server(mut self, name: &str, pid: Option<u32>) -> Self {
        self.server = pid.map(|p| (name.to_owned(), p));
        self
    }
    fn envoy(mut self, pid: Option<u32>) -> Self {
        self.envoy = pid;
        if pid.is_none() {
            self.server = None;
        }
        self
    }
    /// A fixed number of requests over sessions never presented before (a cold pass).
    fn is_one_pass(&self) -> bool {
        matches!(
            self.load,
            LoadSpec::Http {
                requests: Some(_),
                ..
            }
        )
    }
    fn expect(mut self, status: u16) -> Self {
        self.expect = status;
        self
    }
}

/// The sessions from the logins, by system.
#[derive(Debug, Clone)]
struct Cookies {
    ours: Result<String, String>,
    o2p: Result<String, String>,
    envoy_oauth2: Result<String, String>,
    /// `Bearer <JWT access token>` for the bearer scenarios (sent as `Authorization`, not
    /// `Cookie`).
    ours_bearer: Result<String, String>,
    o2p_bearer: Result<String, String>,
    /// More sessions by name (the cost curves' Redis-store logins).
    extra: Vec<(String, String)>,
}

impl Default for Cookies {
    fn default() -> Self {
        let none = || Err("no login".to_owned());
        Cookies {
            ours: none(),
            o2p: none(),
            envoy_oauth2: none(),
            ours_bearer: none(),
            o2p_bearer: none(),
            extra: Vec::new(),
        }
    }
}

impl Cookies {
    fn get(&self, which: &str) -> Result<&str, String> {
        if let Some((_, c)) = self.extra.iter().find(|(k, _)| k == which) {
            return Ok(c);
        }
        let c = match which {
            "ours" => &self.ours,
            "o2p" => &self.o2p,
            "ours-bearer" => &self.ours_bearer,
            "o2p-bearer" => &self.o2p_bearer,
            _ => &self.envoy_oauth2,
        };
        c.as_deref().map_err(Clone::clone)
    }
}

#[derive(Debug, Default)]
struct Pids {
    /// Every service started for the load (all on the servers' CPUs).
    all: Vec<u32>,
    noop: u32,
    noop_grpc: u32,
    nginx: Option<u32>,
    ours: u32,
    o2p: Option<u32>,
    envoy_none: Option<u32>,
    envoy_ours: Option<u32>,
    envoy_ours_grpc: Option<u32>,
    envoy_o2p: Option<u32>,
    envoy_oauth2: Option<u32>,
}

struct Endpoints {
    authorize: String,
    token: String,
    jwks: String,
}

/// Every port of the run, on 127.0.0.1.
struct Ports {
    provider: u16,
    noop: u16,
    noop_grpc: u16,
    nginx: u16,
    ours: u16,
    ours_grpc: u16,
    ours_refresh: u16,
    o2p: u16,
    o2p_refresh: u16,
    envoy_none: u16,
    envoy_ours: u16,
    envoy_ours_grpc: u16,
    envoy_o2p: u16,
    envoy_oauth2: u16,
    envoy_admin: [u16; 5],
    callgrind_ours: u16,
    /// The adapter's HTTP and gRPC ports under callgrind for the gRPC count.
    callgrind_ours_grpc: (u16, u16),
    callgrind_noop: u16,
    callgrind_noop_grpc: u16,
    callgrind_o2p: u16,
    /// The cost curves' adapters and oauth2-proxy with the Redis store (logins come back to
    /// them: the provider knows their callbacks).
    redis_ours: [u16; 2],
    redis_o2p: u16,
}

impl Ports {
    fn pick() -> Result<Ports, String> {
        // Reserved for the whole run (test-ports: outside the ephemeral range, locked against
        // other processes, never twice), so no outgoing connection or parallel test takes one
        // between picking and binding.
        let next = || util::reserve_port("bench: a server of the load benchmark");
        Ok(Ports {
            provider: next()?,
            noop: next()?,
            noop_grpc: next()?,
            nginx: next()?,
            ours: next()?,
            ours_grpc: next()?,
            ours_refresh: next()?,
            o2p: next()?,
            o2p_refresh: next()?,
            envoy_none: next()?,
            envoy_ours: next()?,
            envoy_ours_grpc: next()?,
            envoy_o2p: next()?,
            envoy_oauth2: next()?,
            envoy_admin: [next()?, next()?, next()?, next()?, next()?],
            callgrind_ours: next()?,
            callgrind_ours_grpc: (next()?, next()?),
            callgrind_noop: next()?,
            callgrind_noop_grpc: next()?,
            callgrind_o2p: next()?,
            redis_ours: [next()?, next()?],
            redis_o2p: next()?,
        })
    }
}

/// The header line a session or token is sent in: `Cookie: <c>`, or the bearer scenarios'
/// `Authorization: Bearer <token>` (see `Cookies::ours_bearer`).
fn credential_line(cookie: &str) -> String {
    if cookie.starts_with("Bearer ") {
        format!("Authorization: {cookie}")
    } else {
        format!("Cookie: {cookie}")
    }
}

/// `callgrind_control <flag> <pid>` (`-z` zeroes the counters, `-d` dumps them).
fn callgrind_control(flag: &str, pid: u32) -> Result<(), String> {
    let out = Command::new("callgrind_control")
        .arg(flag)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {flag} {pid} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Where the instructions go, per check, from `callgrind_annotate`: the functions with the
/// largest inclusive cost (wrappers above 90% left out), then the largest self costs. Lines are
/// `<instructions per check>  <percent>  <function>`.
fn annotate(dump: &Path, checks: usize) -> Vec<String> {
    let run = |inclusive: bool| -> Vec<(u64, f64, String)> {
        let mut cmd = Command::new("callgrind_annotate");
        cmd.arg("--threshold=100");
        if inclusive {
            cmd.arg("--inclusive=yes");
        }
        let Ok(out) = cmd.arg(dump).stdin(Stdio::null()).output() else {
            return Vec::new();
        };
        parse_annotate(&String::from_utf8_lossy(&out.stdout))
    };
    let per = |ir: u64| ir / checks.max(1) as u64;
    let mut lines = vec!["inclusive (the function and what it calls):".to_owned()];
    let mut seen = std::collections::HashSet::new();
    for (ir, pct, f) in run(true) {
        if pct > 90.0 || !seen.insert(f.clone()) {
            continue;
        }
        lines.push(format!("{:>8}  {pct:>5.1}%  {f}", per(ir)));
        if seen.len() == 24 {
            break;
        }
    }
    lines.push(String::new());
    lines.push("self (the function alone):".to_owned());
    let mut seen = std::collections::HashSet::new();
    for (ir, pct, f) in run(false) {
        if pct > 90.0 || !seen.insert(f.clone()) {
            continue;
        }
        lines.push(format!("{:>8}  {pct:>5.1}%  {f}", per(ir)));
        if seen.len() == 12 {
            break;
        }
    }
    lines
}

/// `(Ir, percent, function)` of `callgrind_annotate` lines
/// (`1,234 (5.00%)  /path/file.rs:crate::function [/path/object]`), keeping the entries that
/// carry an object (a function's own total, not an inlined part of it), in order.
fn parse_annotate(text: &str) -> Vec<(u64, f64, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (ir, rest) = line.split_once(" (")?;
            let ir: u64 = ir.replace(',', "").parse().ok()?;
            let (pct, rest) = rest.split_once("%)")?;
            let pct: f64 = pct.trim().parse().ok()?;
            let rest = rest.trim();
            let object_at = rest.rfind(" [")?;
            let place = &rest[..object_at];
            let function = place.split_once(':').map_or(place, |(_, f)| f);
            (!function.is_empty() && !function.starts_with("0x"))
                .then(|| (ir, pct, function.to_owned()))
        })
        .collect()
}

fn find_font() -> Option<PathBuf> {
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The value of `"key":"..."` in compact JSON (enough for a discovery document).
fn json_string(text: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let rest = text[text.find(&needle)? + needle.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].replace("\\/", "/"))
}

fn env_path(env: &crate::components::Env, key: &str) -> Result<PathBuf, String> {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| PathBuf::from(v))
        .ok_or_else(|| format!("the installer set no {key}"))
}

/// `$CARGO_TARGET_DIR`, or `<repo>/target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| util::repo_root().join("target"))
}

/// Arguments quoted for a shell where needed.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_line(e: &str) -> String {
    e.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = Options::parse(&["--quick".into()]).expect("quick");
        assert_eq!((o.rounds, o.duration), (1, 2.0));
        let o = Options::parse(&["--quick".into(), "--rounds".into(), "2".into()]).expect("2");
        assert_eq!(o.rounds, 2);
        let o = Options::parse(&[]).expect("full");
        assert_eq!((o.rounds, o.duration, o.connections), (5, 4.0, 32));
        assert!(Options::parse(&["--rounds".into(), "0".into()]).is_err());
        assert!(Options::parse(&["--what".into()]).is_err());
    }

    #[test]
    fn reads_discovery_fields() {
        let d = r#"{"issuer":"http://127.0.0.1:1","authorization_endpoint":"http://127.0.0.1:1/auth","jwks_uri": "http:\/\/x\/jwks"}"#;
        assert_eq!(
            json_string(d, "authorization_endpoint").as_deref(),
            Some("http://127.0.0.1:1/auth")
        );
        assert_eq!(json_string(d, "jwks_uri").as_deref(), Some("http://x/jwks"));
        assert_eq!(json_string(d, "token_endpoint"), None);
    }

    #[test]
    fn reads_callgrind_annotate_lines() {
        let text = "17,118,281 (100.0%)  PROGRAM TOTALS
 9,360,664 (54.68%)  /w/oidc-core/src/engine.rs:oidc_core::Engine::authenticate [/w/adapter]
 2,942,711 (17.19%)  /r/base64/src/engine/mod.rs:oidc_core::session::crypto::Sealer::open
   864,126 ( 5.05%)  ./string/memmove.S:__memcpy_avx_unaligned_erms [/usr/lib/libc.so.6]";
        let parsed = parse_annotate(text);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, 9_360_664);
        assert_eq!(parsed[0].2, "oidc_core::Engine::authenticate");
        assert!((parsed[1].1 - 5.05).abs() < 1e-9);
    }

    #[test]
    fn quotes_for_the_shell() {
        let args = ["--email-domain=*".to_owned(), "--a=b".to_owned()];
        assert_eq!(shell_words(&args), "'--email-domain=*' --a=b");
    }
}
