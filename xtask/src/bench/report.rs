//! `BENCHMARKS.md`, from a run's figures: the headline, the targets of issues 8 and 20, the
//! tables, the instruction counts, the refresh storm, the machine and the exact commands.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::curves::Point;
use super::{Bins, Callgrind, Options, Pinning, Scenario, Storm};

/// Everything the report says.
pub struct Report {
    pub options: Options,
    pub scenarios: Vec<Scenario>,
    /// How cost grows (`super::curves`).
    pub curves: Vec<Point>,
    /// The curves' chart, relative to the repository root.
    pub curves_chart: Option<std::path::PathBuf>,
    /// Bytes of the `Cookie` header of the adapter's and oauth2-proxy's session.
    pub cookie_bytes: [Option<usize>; 2],
    /// The measured binaries' sizes, MiB: on disk, and their code and read-only data.
    pub binaries: Vec<(String, f64, Option<f64>)>,
    /// The seed of the rounds' shuffles.
    pub seed: u64,
    pub callgrind: Vec<Callgrind>,
    pub storms: Vec<Storm>,
    pub machine: Machine,
    pub commands: Vec<(String, String)>,
    pub notes: Vec<String>,
    pub bearer: String,
    /// The chart, relative to the repository root.
    pub chart: Option<std::path::PathBuf>,
    pub date: String,
    pub elapsed: Duration,
    /// Of [`Report::elapsed`], the time spent building.
    pub build_time: Duration,
}

/// Medians of a scenario's rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub rps: f64,
    /// Lowest and highest requests/s over the rounds.
    pub rps_range: (f64, f64),
    pub p50: f64,
    pub p99: f64,
    /// Lowest and highest p99 over the rounds.
    pub p99_range: (f64, f64),
    pub rss_mib: Option<f64>,
    pub anon_mib: Option<f64>,
    pub cpu: Option<f64>,
    /// The server's CPU and its helpers' (a second replica, Redis), s per 10k requests.
    pub total_cpu: Option<f64>,
    pub envoy_cpu: Option<f64>,
    /// Requests per CPU-second of the server process (10 000 / CPU s per 10k).
    pub capacity: Option<f64>,
    /// How busy the server process was: CPU seconds per second, %.
    pub busy: Option<f64>,
    /// Other processes' share of the servers' CPUs during the runs, %.
    pub others: Option<f64>,
}

/// The median (the mean of the two middle values of an even count).
pub(super) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl Scenario {
    /// Medians over the rounds, if it was measured.
    pub fn summary(&self) -> Option<Summary> {
        if self.failed.is_some() || self.runs.is_empty() {
            return None;
        }
        let of = |f: &dyn Fn(&super::Run) -> Option<f64>| {
            median(self.runs.iter().filter_map(f).collect())
        };
        let cpu = of(&|r| r.cpu_per_10k);
        let busy = of(&|r| Some(r.cpu_per_10k? * r.load.rps / 100.0));
        let range = |f: fn(&super::Run) -> f64| {
            let all = self.runs.iter().map(f);
            (
                all.clone().fold(f64::INFINITY, f64::min),
                all.fold(0.0, f64::max),
            )
        };
        Some(Summary {
            rps_range: range(|r| r.load.rps),
            p99_range: range(|r| r.load.p99_ms),
            busy,
            capacity: cpu.filter(|c| *c > 0.0).map(|c| 1e4 / c),
            others: of(&|r| r.others_pct),
            rps: of(&|r| Some(r.load.rps))?,
            p50: of(&|r| Some(r.load.p50_ms))?,
            p99: of(&|r| Some(r.load.p99_ms))?,
            rss_mib: of(&|r| r.rss_kib.map(|k| k as f64 / 1024.0)),
            anon_mib: of(&|r| r.anon_kib.map(|k| k as f64 / 1024.0)),
            cpu,
            total_cpu: of(&|r| r.total_cpu_per_10k),
            envoy_cpu: of(&|r| r.envoy_cpu_per_10k),
        })
    }
}

impl Summary {
    /// Requests per CPU-second of everything the row's request goes through that this row
    /// measures: the server, and Envoy's own CPU in the Envoy rows with an authz server (so an
    /// Envoy + authz server row compares with an Envoy-only row).
    pub fn system_capacity(&self) -> Option<f64> {
        let cpu = self.cpu? + self.envoy_cpu.unwrap_or(0.0);
        (cpu > 0.0).then(|| 1e4 / cpu)
    }
}

impl Report {
    fn get(&self, id: &str) -> Option<Summary> {
        self.scenarios.iter().find(|s| s.id == id)?.summary()
    }

    /// `ours / other` of one figure, when both were measured.
    fn ratio(&self, ours: &str, other: &str, f: fn(&Summary) -> Option<f64>) -> Option<f64> {
        let a = f(&self.get(ours)?)?;
        let b = f(&self.get(other)?)?;
        (b > 0.0).then(|| a / b)
    }

    /// `HTTP check: N.Nx oauth2-proxy; gRPC check: N.Nx oauth2-proxy (...)`: requests/s of the
    /// adapter's HTTP check and of its gRPC Check over oauth2-proxy's HTTP check (it has no
    /// gRPC server), with one session replayed, which the adapter serves from its session
    /// cache; then the HTTP check with every session new to that cache (cold).
    pub fn headline(&self) -> String {
        let over_peer =
            |ours: &str, what: &str| match self.ratio(ours, "peer-http", |s| Some(s.rps)) {
                Some(r) => format!("{what} check: {r:.1}x oauth2-proxy"),
                None => format!("{what} check: n/a (not measured)"),
            };
        let cold = match self.cold_ratio() {
            Some((r, _, n)) => format!(
                "; with every session new to the cache ({n} sessions, one pass): HTTP check: \
                 {r:.1}x oauth2-proxy"
            ),
            None => "; cold sessions not measured".to_owned(),
        };
        format!(
            "{}; {} (one session replayed: a hit in the adapter's session cache on every \
             check{cold})",
            over_peer("ours-http", "HTTP"),
            over_peer("ours-grpc", "gRPC"),
        )
    }

    /// The adapter's requests/s over a pass of sessions it never saw (the largest cold curve
    /// point) against oauth2-proxy's over distinct real logins (it has no session cache:
    /// every check decrypts), the same per server CPU-second, and the number of sessions.
    fn cold_ratio(&self) -> Option<(f64, Option<f64>, usize)> {
        let cold = self
            .curves
            .iter()
            .filter(|p| p.scenario.id == "curve-cold")
            .filter_map(|p| Some((p.x, p.scenario.summary()?)))
            .max_by(|a, b| a.0.total_cmp(&b.0))?;
        let peer = self
            .curves
            .iter()
            .filter(|p| p.scenario.id == "curve-peer")
            .filter_map(|p| Some((p.x, p.scenario.summary()?)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, m)| m)
            .or_else(|| self.get("peer-http"))?;
        let per_cpu = cold.1.capacity.zip(peer.capacity).map(|(a, b)| a / b);
        (peer.rps > 0.0).then(|| (cold.1.rps / peer.rps, per_cpu, cold.0 as usize))
    }

    /// Rows for `bench-agent chart`: label, kind, requests/s, p99 ms.
    pub fn chart_rows(&self) -> String {
        let mut out = String::new();
        // The open loop's rows run at one fixed rate: not a throughput.
        for s in self.scenarios.iter().filter(|s| s.group != "open") {
            if let Some(m) = s.summary() {
                let _ = writeln!(out, "{}\t{}\t{:.1}\t{:.3}", s.label, s.kind, m.rps, m.p99);
            }
        }
        out
    }

    /// The whole `BENCHMARKS.md`.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut md = String::new();
        let cmd = if o.quick {
            "cargo xtask bench --quick"
        } else {
            "cargo xtask bench"
        };
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "<!-- Written by `cargo xtask bench` from a run; do not edit by hand, run it again. -->\n"
        );
        let _ = writeln!(
            md,
            "Written by `{cmd}` on {} (run time {:.0} s, of which {:.0} s building). Figures are medians of {} round(s) of {} s \
             per scenario (the open loop: {} rounds; the cost curves: as their section says), \
             each round in a new shuffled order (seed {}), with {} concurrent connections \
             (closed loop, unless the table says open loop), everything on 127.0.0.1; servers \
             pinned to CPU {}, load generators to CPU {}. {}\n",
            self.date,
            self.elapsed.as_secs_f64(),
            self.build_time.as_secs_f64(),
            o.rounds,
            o.duration,
            o.rounds.min(3),
            self.seed,
            o.connections,
            self.machine.server_cpus,
            self.machine.load_cpus,
            if o.quick {
                "This is a **quick** run (one short round): expect more noise than the full \
                 `cargo xtask bench`."
            } else {
                ""
            }
        );
        let _ = writeln!(md, "**{}**\n", self.headline());
        if let (Some(ours), Some(peer)) = (self.get("ours-http"), self.get("peer-http")) {
            let _ = writeln!(
                md,
                "The ext_authz check of `/` with a session cookie from a real login: the adapter \
                 {:.0} requests/s at p99 {:.2} ms, oauth2-proxy v7.15.6 {:.0} requests/s at p99 \
                 {:.2} ms, with the same provider, the seed's flags and the same load.\n",
                ours.rps, ours.p99, peer.rps, peer.p99
            );
        }

        let busiest = self
            .scenarios
            .iter()
            .filter_map(|s| s.summary()?.others)
            .fold(0.0, f64::max);
        if busiest > 5.0 {
            let _ = writeln!(
                md,
                "> **The machine was not idle.** Other processes used up to {busiest:.0}% of the \
                 servers' CPU during the measured runs (column \"others\" below; on this shared \
                 machine, other builds and test suites were running). Requests/s and latencies are \
                 disturbed by that; CPU time per request, requests per server CPU-second and \
                 instructions per check are the figures to trust, and they tell the same story.\n"
            );
        }
        self.targets(&mut md);
        self.tables(&mut md);
        self.ratios(&mut md);
        if let Some(chart) = &self.chart {
            let _ = writeln!(
                md,
                "![Throughput and p99 latency per system]({})\n",
                chart.display()
            );
        }
        super::curves::section(&self.curves, self.curves_chart.as_deref(), &mut md);
        self.instructions(&mut md);
        self.storm(&mut md);
        self.not_measured(&mut md);
        self.method(&mut md);
        md
    }

    /// A throughput target `ours / other >= goal`: met only when the medians, the requests per
    /// server CPU-second and the whole range (ours' slowest round against the other's fastest)
    /// all clear it. Returns (what was measured, verdict).
    fn at_least(&self, ours: &str, other: &str, goal: f64, pct: bool) -> (String, &'static str) {
        let (Some(a), Some(b)) = (self.get(ours), self.get(other)) else {
            return ("not measured".into(), "—");
        };
        let show = |v: f64| {
            if pct {
                format!("{:.0}%", v * 100.0)
            } else {
                format!("{v:.2}×")
            }
        };
        let median = a.rps / b.rps;
        let worst = a.rps_range.0 / b.rps_range.1;
        let per_cpu = a
            .system_capacity()
            .zip(b.system_capacity())
            .map(|(x, y)| x / y);
        let text = format!(
            "{} (per server CPU-second: {}; slowest round against its fastest: {})",
            show(median),
            per_cpu.map_or("?".into(), show),
            show(worst)
        );
        let met = median >= goal && worst >= goal && per_cpu.is_some_and(|v| v >= goal);
        (text, if met { "met" } else { "**not met**" })
    }

    fn targets(&self, md: &mut String) {
        let _ = writeln!(md, "## Targets (issues 8 and 20) and where we stand\n");
        let _ = writeln!(
            md,
            "A throughput target counts as met only when the medians, the requests per server \
             CPU-second and the whole range of rounds (ours' slowest against the other's \
             fastest) all clear it.\n"
        );
        let _ = writeln!(md, "| target | measured | |");
        let _ = writeln!(md, "|---|---|---|");
        let mut row = |target: &str, (measured, verdict): (String, &str)| {
            let _ = writeln!(md, "| {target} | {measured} | {verdict} |");
        };
        let upto = |v: Option<f64>, goal: f64, fmt: &dyn Fn(f64) -> String| match v {
            Some(v) => (fmt(v), if v <= goal { "met" } else { "**not met**" }),
            None => ("not measured".to_owned(), "—"),
        };
        // A latency target: the medians and the worst case (ours' highest p99 over the other's
        // lowest) must both clear it.
        let p99_upto = |ours: &str, other: &str, goal: f64| match (self.get(ours), self.get(other))
        {
            (Some(a), Some(b)) => {
                let (median, worst) = (a.p99 / b.p99, a.p99_range.1 / b.p99_range.0);
                (
                    format!(
                        "{median:.2}× its p99 ({:.3} against {:.3} ms; highest round against its \
                         lowest: {worst:.2}×)",
                        a.p99, b.p99
                    ),
                    if median <= goal && worst <= goal {
                        "met"
                    } else {
                        "**not met**"
                    },
                )
            }
            _ => ("not measured".to_owned(), "—"),
        };
        row(
            "HTTP check ≥ 3× oauth2-proxy's throughput (one session)",
            self.at_least("ours-http", "peer-http", 3.0, false),
        );
        row(
            "the same with every session new to the adapter's cache (cold)",
            match self.cold_ratio() {
                Some((r, per_cpu, n)) => (
                    format!(
                        "{r:.2}× (per server CPU-second: {}; {n} sessions in one pass, so no \
                         range, against oauth2-proxy over distinct logins)",
                        per_cpu.map_or("?".into(), |v| format!("{v:.2}×"))
                    ),
                    if r >= 3.0 && per_cpu.is_some_and(|v| v >= 3.0) {
                        "met"
                    } else {
                        "**not met**"
                    },
                ),
                None => ("not measured".into(), "—"),
            },
        );
        let rate = self
            .get("open-peer")
            .and_then(|_| self.scenarios.iter().find(|s| s.id == "open-peer")?.rate);
        row(
            &format!(
                "p99 ≤ 1/3 of oauth2-proxy's at equal offered load (open loop{})",
                rate.map_or(String::new(), |r| format!(", {r:.0} requests/s"))
            ),
            p99_upto("open-ours", "open-peer", 1.0 / 3.0),
        );
        row(
            "HTTP check ≥ 85% of the hyper no-op's requests/s, per server CPU-second too (issue 20)",
            self.at_least("ours-http", "limit", 0.85, true),
        );
        row(
            "HTTP check p99 within 2× of the no-op's at the same load (open loop)",
            p99_upto("open-ours", "open-limit", 2.0),
        );
        let anon = self
            .ratio("ours-http", "peer-http", |s| s.anon_mib)
            .map_or_else(String::new, |v| {
                format!(" (anonymous memory only: {v:.2}×)")
            });
        row(
            "peak RSS ≤ 1/3 of oauth2-proxy's under the same load",
            upto(
                self.ratio("ours-http", "peer-http", |s| s.rss_mib),
                1.0 / 3.0,
                &|v| format!("{v:.2}× its RSS{anon}"),
            ),
        );
        row(
            "gRPC Check ≥ 85% of the HTTP check's requests per server CPU-second (issue 20)",
            match self.ratio("ours-grpc", "ours-http", |s| s.capacity) {
                Some(v) => (
                    format!(
                        "{:.0}% (throughput: {})",
                        v * 100.0,
                        self.ratio("ours-grpc", "ours-http", |s| Some(s.rps))
                            .map_or("?".into(), |t| format!("{:.0}%", t * 100.0))
                    ),
                    if v >= 0.85 { "met" } else { "**not met**" },
                ),
                None => ("not measured".into(), "—"),
            },
        );
        row(
            "Envoy + ours (HTTP) ≥ 1.2× Envoy with its own oauth2 + jwt_authn filters",
            self.at_least("envoy-ours-http", "envoy-oauth2", 1.2, false),
        );
        row(
            "Envoy + ours (gRPC) ≥ 1.2× Envoy with its own oauth2 + jwt_authn filters",
            self.at_least("envoy-ours-grpc", "envoy-oauth2", 1.2, false),
        );
        let storm = self
            .storms
            .iter()
            .find(|s| s.system.starts_with("ours"))
            .and_then(|s| s.result.as_ref().ok())
            .map(|r| (r.refresh_success + r.refresh_error) as f64);
        row(
            "one IdP refresh per refresh storm",
            match storm {
                Some(v) => (
                    format!("{v:.0} refresh call(s)"),
                    if (v - 1.0).abs() < f64::EPSILON {
                        "met"
                    } else {
                        "**not met**"
                    },
                ),
                None => ("not measured".into(), "—"),
            },
        );
        let _ = writeln!(md);
        self.why_missed(md);
    }

    /// Why the targets that are missed are missed, from this run's own figures.
    fn why_missed(&self, md: &mut String) {
        let count = |key: &str| {
            self.callgrind
                .iter()
                .find(|c| c.key == key)
                .and_then(|c| c.result.as_ref().ok())
                .map(|n| *n as f64)
        };
        let _ = writeln!(md, "Why the missed targets are missed, from this run:\n");
        if let (Some(check), Some(noop)) = (count("adapter"), count("noop")) {
            let budget = noop / 0.85 - noop;
            let _ = writeln!(
                md,
                "- **HTTP check against the hyper no-op.** Per check the adapter executes {check:.0} \
                 instructions, the no-op {noop:.0} (parsing the request, answering, the runtime). \
                 85% of the no-op's rate per CPU-second leaves the check about {budget:.0} \
                 instructions of its own; it spends {:.0}: reading the request's headers into a \
                 `HeaderMap`, finding the session cookie and its cache entry, the route and \
                 rule checks, and an answer with the identity headers (the profile in \
                 \"Instructions per check\" below names each).",
                check - noop
            );
        }
        if let (Some(tonic), Some(http), Some(grpc)) =
            (count("noop-grpc"), count("adapter"), count("adapter-grpc"))
        {
            let measured = self.ratio("limit-grpc", "ours-http", |s| s.capacity);
            let ours = self.ratio("ours-grpc", "limit-grpc", |s| s.capacity);
            let _ = writeln!(
                md,
                "- **gRPC against HTTP.** The ceiling itself is below the target: tonic's no-op \
                 `Check` (answers OK, looks at nothing) executes {tonic:.0} instructions per call, \
                 {:.1}× the adapter's whole HTTP check ({http:.0}): HTTP/2 framing, HPACK of the \
                 request's headers and of the answer, a task per stream, flow control and the \
                 protobuf message. Measured per CPU-second (where the kernel's share, the same \
                 per request for both, narrows the gap), tonic's no-op serves {} of the HTTP \
                 check's requests: no gRPC Check on h2 reaches 85% here. The adapter's Check \
                 ({grpc:.0} instructions, {:.0}% of the no-op's) serves {} of the no-op's \
                 requests per CPU-second: it reads the CheckRequest straight into the request \
                 the engine judges and runs hyper's HTTP/2 server without tonic's layers. The \
                 gRPC profile below shows where the rest goes (`h2`'s connection and hyper's \
                 `H2Stream` hold most of it).",
                tonic / http,
                measured.map_or("?".into(), |v| format!("{:.0}%", v * 100.0)),
                grpc / tonic * 100.0,
                ours.map_or("?".into(), |v| format!("{:.0}%", v * 100.0)),
            );
        }
        if let (Some(ours), Some(peer)) = (self.get("ours-http"), self.get("peer-http"))
            && let (Some(a), Some(b)) = (ours.rss_mib, peer.rss_mib)
        {
            let adapter = self
                .binaries
                .iter()
                .find(|(w, ..)| w.starts_with("adapter"))
                .and_then(|(_, _, m)| *m)
                .unwrap_or(0.0);
            let _ = writeln!(
                md,
                "- **Peak RSS.** The adapter's {a:.1} MiB against oauth2-proxy's {b:.1} MiB; its \
                 anonymous memory (heap, stacks) peaks at {} MiB, and most of the rest is its own \
                 code and libc mapped from disk (its code and read-only data are {adapter:.1} MiB; see \"RSS at \
                 rest\" below), which no tuning of the heap removes. 1/3 of oauth2-proxy's \
                 would be {:.1} MiB.",
                ours.anon_mib.map_or("?".into(), |v| format!("{v:.1}")),
                b / 3.0
            );
        }
        if let (Some(ext), Some(own)) = (self.get("envoy-ours-http"), self.get("envoy-oauth2"))
            && let (Some(envoy_ext), Some(envoy_own), Some(ours)) =
                (ext.envoy_cpu, own.cpu, ext.cpu)
        {
            let _ = writeln!(
                md,
                "- **Envoy + ours against Envoy's own filters.** Envoy, the authz server and the \
                 upstream share one core here. Per 10k requests Envoy itself spends \
                 {envoy_ext:.3} CPU s with its ext_authz HTTP filter (a second HTTP request per \
                 request, to the adapter, and its answer) and the adapter {ours:.3}, while \
                 Envoy with its in-process oauth2 + jwt_authn filters spends {envoy_own:.3} in \
                 all: the ext_authz hop costs Envoy more than the adapter's whole check, and \
                 more than verifying the JWT in process. In a mesh the adapter runs in its own \
                 pod on other cores, and only Envoy's share ({envoy_ext:.3}) lands on the \
                 gateway."
            );
        }
        let _ = writeln!(md);
    }

    fn tables(&self, md: &mut String) {
        for (group, title) in [
            ("direct", "The server alone (the check, no proxy)"),
            (
                "envoy",
                "Through Envoy (1 worker, as an Istio ingress gateway)",
            ),
            ("open", "p99 at equal offered load (open loop)"),
        ] {
            if !self.scenarios.iter().any(|s| s.group == group) {
                continue;
            }
            let _ = writeln!(md, "## {title}\n");
            if group == "open" {
                let rate = self.scenarios.iter().find_map(|s| s.rate);
                let _ = writeln!(
                    md,
                    "Every system gets the same {} requests/s ({:.0}% of oauth2-proxy's median \
                     closed-loop throughput) on {} connections, each with its own schedule: a \
                     request goes at its scheduled time, or as soon as the previous answer on \
                     its connection is back if that is later, and its latency counts from the \
                     scheduled time, so a server that falls behind shows its queue. \"late\" is \
                     how many requests the load generator itself sent more than 1 ms after it \
                     could have (a stall of the machine or of the generator); a run with more \
                     than 1% late is measured again.\n",
                    rate.map_or("?".into(), |r| format!("{r:.0}")),
                    super::open_loop::SHARE * 100.0,
                    self.options.connections
                );
            }
            let _ = writeln!(
                md,
                "| system | requests/s | p50 ms | p99 ms | peak RSS MiB | peak anon MiB | CPU s / 10k req | \
                 server busy % | req / server CPU-s | others % | runs (repeats) | {}",
                match group {
                    "envoy" => "Envoy CPU s / 10k req |",
                    "open" => "late |",
                    _ => "",
                }
            );
            let _ = writeln!(
                md,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
                if group == "direct" { "" } else { "---:|" }
            );
            for s in self.scenarios.iter().filter(|s| s.group == group) {
                let name = match &s.server {
                    Some((n, _)) if group == "envoy" && s.envoy.is_some() => {
                        format!("{} (RSS, CPU: {n})", s.label)
                    }
                    _ => s.label.clone(),
                };
                match (s.summary(), &s.failed) {
                    (Some(m), _) => {
                        let _ = write!(
                            md,
                            "| {name} | {:.0}{} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} |",
                            m.rps,
                            if s.runs.len() > 1 {
                                format!(" ({:.0}–{:.0})", m.rps_range.0, m.rps_range.1)
                            } else {
                                String::new()
                            },
                            m.p50,
                            m.p99,
                            m.rss_mib.map_or("?".into(), |v| format!("{v:.1}")),
                            m.anon_mib.map_or("?".into(), |v| format!("{v:.1}")),
                            m.cpu.map_or("?".into(), |v| format!("{v:.3}")),
                            m.busy.map_or("?".into(), |v| format!("{v:.0}")),
                            m.capacity.map_or("?".into(), |v| format!("{v:.0}")),
                            m.others.map_or("?".into(), |v| format!("{v:.0}")),
                        );
                        let _ = write!(md, " {} ({}) |", s.runs.len(), s.reruns.len());
                        if group == "open" {
                            let late: u64 = s.runs.iter().map(|r| r.load.late).sum();
                            let _ = write!(md, " {late} |");
                        }
                        if group == "envoy" {
                            let _ = write!(
                                md,
                                " {} |",
                                m.envoy_cpu.map_or("—".into(), |v| format!("{v:.3}"))
                            );
                        }
                        let _ = writeln!(md);
                    }
                    (None, failed) => {
                        let why = failed.clone().unwrap_or_else(|| "no result".into());
                        let _ = write!(
                            md,
                            "| {name} | not measured: {} | | | | | | | | | |",
                            why.replace('|', "/").replace('\n', " ")
                        );
                        if group != "direct" {
                            let _ = write!(md, " |");
                        }
                        let _ = writeln!(md);
                    }
                }
            }
            let _ = writeln!(md);
        }
        let repeated: Vec<String> = self
            .scenarios
            .iter()
            .chain(self.curves.iter().map(|p| &p.scenario))
            .filter(|s| !s.reruns.is_empty())
            .map(|s| format!("{}: {}", s.label, s.reruns.join("; ")))
            .collect();
        let _ = writeln!(
            md,
            "Runs measured again (each scenario has its own budget of {}; a void run, one with \
             any answer other than the expected allow, never counts): {}.\n",
            self.options.retries,
            if repeated.is_empty() {
                "none".to_owned()
            } else {
                repeated.join(" · ")
            }
        );
        let _ = writeln!(
            md,
            "Requests/s is the median of the rounds, with the lowest and highest round in \
             parentheses: a wide range means other work on the machine got in the way. \
             RSS is the peak resident set (`VmHWM`, reset through `/proc/<pid>/clear_refs` before \
             each measured run) of the process named, binary and library pages included; \"peak \
             anon\" is its largest anonymous resident memory (heap, stacks), sampled every 20 \
             ms; CPU is its user + system time \
             (`/proc/<pid>/stat`) over the measured run, per 10 000 requests. In the Envoy rows \
             the figures are the authz server's, and Envoy's own CPU is in the last column (for \
             Envoy alone and Envoy's oauth2 filters, the process is Envoy). \"server busy\" is \
             that CPU time per second of load: below 100%, the process was not the bottleneck \
             (the load generator, the other processes of the row, or the machine were). \"req / server \
             CPU-s\" is 10 000 divided by the CPU column: what one fully busy core of that process \
             would serve, whether or not the load generator could saturate it. \"others %\" is the \
             share of the servers' CPU used by processes this run did not start (from \
             `/proc/stat`, minus this run's services).\n"
        );
    }

    fn ratios(&self, md: &mut String) {
        let _ = writeln!(md, "## Ratios\n");
        let _ = writeln!(
            md,
            "| ours / other | throughput | p99 | peak RSS | CPU per request | req per CPU-s |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        // The last field: whether both rows measure an authz server (RSS and CPU comparable).
        for (label, ours, other, comparable) in [
            (
                "HTTP check `/`: ours / oauth2-proxy",
                "ours-http",
                "peer-http",
                true,
            ),
            (
                "`/oauth2/auth`: ours / oauth2-proxy",
                "ours-auth",
                "peer-auth",
                true,
            ),
            (
                "HTTP check `/`: ours / no-op limit",
                "ours-http",
                "limit",
                true,
            ),
            (
                "gRPC Check / HTTP check (ours)",
                "ours-grpc",
                "ours-http",
                true,
            ),
            (
                "gRPC Check: ours / tonic no-op",
                "ours-grpc",
                "limit-grpc",
                true,
            ),
            (
                "no-op limits: tonic gRPC Check / hyper HTTP",
                "limit-grpc",
                "limit",
                true,
            ),
            (
                "Envoy + ours (HTTP) / Envoy alone",
                "envoy-ours-http",
                "envoy",
                false,
            ),
            (
                "Envoy + ours (gRPC) / Envoy alone",
                "envoy-ours-grpc",
                "envoy",
                false,
            ),
            (
                "Envoy + ours (HTTP) / Envoy + oauth2-proxy",
                "envoy-ours-http",
                "envoy-peer-http",
                true,
            ),
            (
                "Envoy + ours (HTTP) / Envoy oauth2 + jwt_authn",
                "envoy-ours-http",
                "envoy-oauth2",
                false,
            ),
        ] {
            let f = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.2}×"));
            let g = |v: Option<f64>| if comparable { f(v) } else { "—".to_owned() };
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} | {} | {} |",
                f(self.ratio(ours, other, |s| Some(s.rps))),
                f(self.ratio(ours, other, |s| Some(s.p99))),
                g(self.ratio(ours, other, |s| s.rss_mib)),
                g(self.ratio(ours, other, |s| s.cpu)),
                g(self.ratio(ours, other, |s| s.capacity)),
            );
        }
        let _ = writeln!(
            md,
            "\nRSS and CPU ratios are left out where the two rows measure different kinds of \
             process (an authz server against Envoy).\n"
        );
    }

    fn instructions(&self, md: &mut String) {
        instructions(&self.callgrind, md);
    }

    fn storm(&self, md: &mut String) {
        let _ = writeln!(md, "## Refresh storm\n");
        let _ = writeln!(
            md,
            "A fresh login, then (2.5 s later, with `--cookie-refresh=1s`) N requests sent at \
             once on N connections with that one session, all due for refresh. The provider \
             rotates refresh tokens (a second use of one fails, as in Keycloak with \"Revoke \
             Refresh Token\"); its log counts the refresh grants. One is the right number.\n"
        );
        let _ = writeln!(
            md,
            "| system | requests at once | refresh grants | failed refresh grants | answers |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---|");
        for s in &self.storms {
            match &s.result {
                Ok(r) => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | `{}` |",
                        s.system, s.requests, r.refresh_success, r.refresh_error, r.answers
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | not measured: {} | | |",
                        s.system,
                        s.requests,
                        e.replace('|', "/").replace('\n', " ")
                    );
                }
            }
        }
        let _ = writeln!(md);
    }

    fn not_measured(&self, md: &mut String) {
        let _ = writeln!(md, "## Not measured, and notes\n");
        let _ = writeln!(md, "- Bearer tokens: {}.", self.bearer);
        for s in &self.scenarios {
            if let Some(why) = &s.failed {
                let _ = writeln!(md, "- {}: {}", s.label, why.replace('\n', " "));
            }
        }
        for n in &self.notes {
            let _ = writeln!(md, "- {}", n.replace('\n', " "));
        }
        let _ = writeln!(
            md,
            "- Micro-benchmarks of the hot path (session decode, the whole `check`, redirect \
             validation): `cargo bench -p benches --bench hot_path`."
        );
        let _ = writeln!(md);
    }

    fn method(&self, md: &mut String) {
        let m = &self.machine;
        let _ = writeln!(md, "## Machine\n");
        for (k, v) in [
            ("CPU", &m.cpu),
            ("cores", &m.cores),
            ("memory", &m.memory),
            ("kernel", &m.kernel),
            ("Rust", &m.rustc),
            ("nginx", &m.nginx),
            ("Envoy", &m.envoy),
            ("oauth2-proxy", &m.oauth2_proxy),
            ("Go", &m.go),
            ("Node.js / oidc-provider", &m.node),
            ("valgrind", &m.valgrind),
        ] {
            let _ = writeln!(md, "- {k}: {v}");
        }
        let sizes: Vec<String> = self
            .binaries
            .iter()
            .map(|(what, disk, mapped)| match mapped {
                Some(m) => format!("{what} {disk:.1} MiB ({m:.1} MiB of code and read-only data)"),
                None => format!("{what} {disk:.1} MiB"),
            })
            .collect();
        let _ = writeln!(md, "- binaries on disk: {}", sizes.join(", "));
        let _ = writeln!(md);
        let _ = writeln!(md, "## How it was measured\n");
        let _ = writeln!(
            md,
            "- One identity provider for everyone: node `oidc-provider` (OpenID certified), PKCE \
             required, refresh tokens rotated. Every session comes from a real login through the \
             system under test (`bench-agent login`: reqwest with a cookie jar posting the \
             provider's login form).\n\
             - The adapter and oauth2-proxy run with the seed's Deployment args (`--provider=oidc \
             --cookie-secure=false --cookie-samesite=lax --cookie-refresh=1h --cookie-expire=4h \
             --cookie-name=auth --set-authorization-header=true --email-domain=* \
             --upstream=static://200 --skip-provider-button=true --whitelist-domain=*.example.com \
             --cookie-domain=.example.com`) and the same 32-byte cookie secret. oauth2-proxy also \
             gets `--code-challenge-method=S256` (the provider requires PKCE; the adapter always \
             uses it) and `--request-logging=false` (it logs one line per request by default; the \
             adapter logs none).\n\
             - Load: `bench-agent http-load` (this repository's, one thread on its own core: \
             {c} keep-alive HTTP/1.1 connections, every answer's status counted) and \
             `bench-agent grpc-load` ({c} streams on one HTTP/2 connection, as one Envoy worker \
             sends them). Each measured run follows a {w} s warm-up. Every round runs every \
             scenario once, in a new shuffled order. A run is void if a single answer is not the \
             expected allow (200; 202 for `/oauth2/auth`) or a connection fails; a void run, \
             one during which processes this run did not start took more than 20% of the \
             servers' CPU, or an open-loop run whose load generator sent more than 1% of its \
             requests over 1 ms late (a stall that would count as the server's latency), is \
             measured again, at most {r} times per scenario (its own budget, so \
             no system uses up another's), and the quieter run is kept; repeats are listed under \
             the tables. A one-pass (cold) run is never repeated: its sessions would no longer \
             be new.\n\
             - Environment: the adapter and oauth2-proxy start with an empty environment (`env \
             -i`) and only their settings: the adapter `OAUTH2_PROXY_CLIENT_SECRET` (its tokio \
             runtime sizes itself to the {cpus} CPU(s) of its affinity mask), oauth2-proxy \
             `GOMAXPROCS={cpus} GOGC=100` (Go's defaults there, stated). Session cookies as \
             sent: {cookies}.\n\
             - Envoy {envoy} with `--concurrency 1`, the configuration rendered by \
             `envoy_bootstrap` as Istio renders `envoyExtAuthzHttp`/`envoyExtAuthzGrpc` \
             (header lists, fail closed); the upstream is the no-op server. \"Envoy oauth2 + \
             jwt_authn\": Envoy's own login (`envoy.filters.http.oauth2`, code flow with PKCE, \
             HMAC-signed cookies) and `envoy.filters.http.jwt_authn` verifying the ID token cookie \
             (RS256 signature, issuer, audience, expiry) on every request, JWKS fetched once. Its \
             cookies are marked Secure; the bench's client keeps them over plain HTTP on loopback, \
             as a browser does over TLS.",
            c = self.options.connections,
            w = self.options.warmup,
            r = self.options.retries,
            envoy = m.envoy_short,
            cpus = self.machine.server_cpu_count,
            cookies = match self.cookie_bytes {
                [a, b] => format!(
                    "the adapter's `Cookie` header {} bytes, oauth2-proxy's {} bytes",
                    a.map_or("?".into(), |v| v.to_string()),
                    b.map_or("?".into(), |v| v.to_string())
                ),
            },
        );
        let _ = writeln!(md);
        let _ = writeln!(md, "## Commands\n");
        let _ = writeln!(md, "```sh");
        for (what, command) in &self.commands {
            let _ = writeln!(md, "# {what}\n{command}");
        }
        for s in self
            .scenarios
            .iter()
            .chain(self.curves.iter().map(|p| &p.scenario))
        {
            if !s.command.is_empty() {
                let _ = writeln!(md, "# load: {}\n{}", s.label, s.command);
            }
        }
        for c in &self.callgrind {
            let _ = writeln!(md, "# instructions: {}\n{}", c.system, c.command);
        }
        let _ = writeln!(md, "```");
    }
}

/// The machine and the versions of everything measured.
pub struct Machine {
    pub cpu: String,
    pub cores: String,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub nginx: String,
    pub envoy: String,
    pub envoy_short: String,
    pub oauth2_proxy: String,
    pub go: String,
    pub node: String,
    pub valgrind: String,
    pub server_cpus: String,
    /// How many CPUs the servers are pinned to.
    pub server_cpu_count: usize,
    pub load_cpus: String,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(crate::util::repo_root())
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Machine {
    /// Reads the machine (lscpu, /proc/meminfo, uname) and the tools' versions.
    pub fn read(bins: &Bins, pin: &Pinning) -> Machine {
        let lscpu = Command::new("lscpu")
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let field = |key: &str| {
            lscpu
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim_start_matches(':').trim().to_owned())
        };
        let cpu = match (field("Model name"), field("Hypervisor vendor")) {
            (Some(m), Some(h)) => format!("{m} (virtual machine, {h})"),
            (Some(m), None) => m,
            _ => "unknown".into(),
        };
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let kib: f64 = l
                        .strip_prefix("MemTotal:")?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()?;
                    Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
                })
            })
            .unwrap_or_else(|| "unknown".into());
        let envoy_line = first_line(&bins.envoy.display().to_string(), &["--version"]);
        // "<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
        let envoy_version = envoy_line
            .split_once("version:")
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or(envoy_line);
        let envoy_short = envoy_version
            .split('/')
            .nth(1)
            .map_or_else(|| "1.40".to_owned(), str::to_owned);
        let envoy = format!("{envoy_short} ({envoy_version})");
        let oidc_provider = std::fs::read_to_string(
            bins.node_provider_dir
                .join("node_modules/oidc-provider/package.json"),
        )
        .ok()
        .and_then(|t| super::json_string(&t, "version"))
        .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu,
            cores: format!(
                "{} online (CPU {} for the servers, CPU {} for the load generators{})",
                pin.cpus,
                pin.servers.as_deref().unwrap_or("any"),
                pin.load.as_deref().unwrap_or("any"),
                if pin.nice {
                    ", both at nice -10 over the rest of the machine"
                } else {
                    ""
                }
            ),
            memory,
            kernel: first_line("uname", &["-sr"]),
            rustc: first_line("rustc", &["-V"]),
            nginx: bins.nginx.as_ref().map_or_else(
                || "not installed".into(),
                |b| {
                    crate::components::nginx::version(b)
                        .map_or_else(|| "unknown".into(), |v| format!("nginx {v} (Debian's)"))
                },
            ),
            envoy,
            envoy_short,
            oauth2_proxy: bins.oauth2_proxy.as_ref().map_or_else(
                || "not installed".into(),
                |b| first_line(&b.display().to_string(), &["--version"]),
            ),
            go: first_line("go", &["version"]),
            node: format!(
                "{} / oidc-provider {oidc_provider}",
                first_line(&bins.node.display().to_string(), &["--version"])
            ),
            valgrind: first_line("valgrind", &["--version"]),
            server_cpus: pin.servers.clone().unwrap_or_else(|| "any".into()),
            server_cpu_count: if pin.server_ids.is_empty() {
                pin.cpus
            } else {
                pin.server_ids.len()
            },
            load_cpus: pin.load.clone().unwrap_or_else(|| "any".into()),
        }
    }
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    first_line("date", &["-u", "+%Y-%m-%d"])
}

/// The section "Instructions per check (callgrind)" (also what `--callgrind-only` prints).
pub fn instructions(callgrind: &[Callgrind], md: &mut String) {
    let _ = writeln!(md, "## Instructions per check (callgrind)\n");
    if callgrind.is_empty() {
        let _ = writeln!(md, "Not measured (valgrind missing, or no session).\n");
        return;
    }
    let _ = writeln!(
        md,
        "Counted by `valgrind --tool=callgrind` on the release binaries: counters zeroed after \
         50 warm-up checks, dumped after a fixed number of sequential checks of `/` with the \
         session on one connection (HTTP/1.1 keep-alive; gRPC: the load's `CheckRequest` on one \
         HTTP/2 connection); the whole process (HTTP or gRPC parsing, the check, the answer, \
         the runtime). The no-op servers get the same requests. Instruction counts repeat from \
         run to run, unlike timings.\n"
    );
    let _ = writeln!(md, "| system | instructions per check | checks counted |");
    let _ = writeln!(md, "|---|---:|---:|");
    for c in callgrind {
        match &c.result {
            Ok(n) => {
                let _ = writeln!(md, "| {} | {n} | {} |", c.system, c.requests);
            }
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {} | not measured: {} | |",
                    c.system,
                    e.replace('|', "/")
                );
            }
        }
    }
    let count = |key: &str| {
        callgrind
            .iter()
            .find(|c| c.key == key)
            .and_then(|c| c.result.as_ref().ok())
            .map(|n| *n as f64)
    };
    let _ = writeln!(md);
    if let (Some(a), Some(b)) = (count("adapter"), count("oauth2-proxy")) {
        let _ = writeln!(
            md,
            "The adapter executes {:.2}× the instructions of oauth2-proxy per check ({:.1}× \
             fewer).",
            a / b,
            b / a
        );
    }
    if let (Some(grpc), Some(http)) = (count("adapter-grpc"), count("adapter")) {
        let _ = writeln!(
            md,
            "The adapter's gRPC Check executes {:.2}× the instructions of its HTTP check (the \
             HTTP check's instructions are {:.0}% of the gRPC Check's).",
            grpc / http,
            http / grpc * 100.0
        );
    }
    for (ours, limit, what) in [
        ("adapter", "noop", "HTTP check over the hyper no-op"),
        (
            "adapter-grpc",
            "noop-grpc",
            "gRPC Check over the tonic no-op",
        ),
    ] {
        if let (Some(a), Some(b)) = (count(ours), count(limit)) {
            let _ = writeln!(
                md,
                "The adapter's {what}: {:.0} more instructions per check ({:.2}×).",
                a - b,
                a / b
            );
        }
    }
    for c in callgrind.iter().filter(|c| !c.top.is_empty()) {
        let _ = writeln!(
            md,
            "\nWhere the instructions of \"{}\" go, per check (`callgrind_annotate` on the \
             same dump; instructions per check, share of the total):\n\n```text",
            c.system
        );
        for l in &c.top {
            let _ = writeln!(md, "{l}");
        }
        let _ = writeln!(md, "```");
    }
    let _ = writeln!(md);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
