//! How cost grows with the work, beyond the one hot session of the comparison: the server's
//! CPU per check and its requests/s as the work grows, drawn as curves
//! (`docs/bench/curves.png`) and tabled in `BENCHMARKS.md`.
//!
//! - **Sessions**: the adapter caches decoded sessions by the cookie's bytes, so one session
//!   replayed is its best case. Many distinct sessions are minted from the real login's session
//!   (`bench-agent mint-sessions`: sealed again, each cookie different) and replayed: "cold" is
//!   one pass over sessions never presented before (every check decrypts), "warm" a rotation
//!   over N after a warm-up (N beyond the cache's few thousand entries decrypts again).
//!   oauth2-proxy, which has no such cache, rotates over sessions of distinct real logins.
//! - **Rules**: adapters started with 1, 10, 100, 1000 `--authorization-rule`s or
//!   `--skip-auth-route`s (none matching `/`, so each check tests them all).
//! - **Cookie chunks**: the session grown with groups until its cookie spans 1 to 4 chunks
//!   (minted as above), warm and cold.
//! - **Redis**: the adapter and oauth2-proxy with `--session-store-type=redis` on one Redis
//!   server (CPU per check includes Redis's), and **two replicas** of the adapter behind one
//!   Envoy sharing that Redis against one.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Bench, Cookies, LoadSpec, Pids, Ports, Scenario, scenario};
use crate::util::{self, Readiness, Services};

/// One point of a curve: a measured scenario, where it goes in the chart.
pub struct Point {
    /// The panel (`sessions`, `rules`, `chunks`, `redis`, `replicas`).
    pub panel: &'static str,
    /// The series within the panel.
    pub series: String,
    /// The amount of work (sessions, rules, chunks, replicas).
    pub x: f64,
    pub scenario: Scenario,
}

/// The panels of the chart: id, title, x label, y label, scale.
pub const PANELS: [(&str, &str, &str, &str, &str); 4] = [
    (
        "sessions",
        "Distinct sessions",
        "sessions presented (cold: one pass; warm: in rotation)",
        "server CPU µs per check",
        "log",
    ),
    (
        "rules",
        "Rules (none matching /)",
        "rules on the command line",
        "server CPU µs per check",
        "log",
    ),
    (
        "chunks",
        "Cookie chunks",
        "chunks of the session cookie",
        "server CPU µs per check",
        "linear",
    ),
    (
        "replicas",
        "Redis store, replicas behind one Envoy",
        "adapter replicas",
        "adapters' + Redis CPU µs per check",
        "linear",
    ),
];

/// The sizes measured, full and `--quick`.
struct Sizes {
    /// Sessions of the cold passes (each a pass long enough for the CPU time's 10 ms ticks).
    cold: [usize; 2],
    /// Warm rotations.
    warm: [usize; 3],
    /// Distinct real logins through oauth2-proxy.
    peer_logins: usize,
    /// Rule counts.
    rules: [usize; 4],
    /// Sessions of a cold pass per chunk count.
    chunk_cold: usize,
}

impl Bench {
    fn sizes(&self) -> Sizes {
        if self.options.quick {
            Sizes {
                cold: [10_000, 20_000],
                warm: [1, 1_000, 10_000],
                peer_logins: 10,
                rules: [1, 10, 100, 1000],
                chunk_cold: 5_000,
            }
        } else {
            Sizes {
                cold: [50_000, 100_000],
                warm: [1, 1_000, 100_000],
                peer_logins: 50,
                rules: [1, 10, 100, 1000],
                chunk_cold: 40_000,
            }
        }
    }

    /// Measures every curve; a point that cannot be measured is kept with its reason.
    pub(super) fn curves(&mut self, ports: &Ports, pids: &Pids, cookies: &Cookies) -> Vec<Point> {
        let mut services = Services::new();
        let mut points = Vec::new();
        let mut cookies = cookies.clone();
        let sizes = self.sizes();
        if let Err(e) = self.session_curves(ports, pids, &mut cookies, &sizes, &mut points) {
            println!("[xtask] bench: session curves: {e}");
            self.notes.push(format!("Session curves not measured: {e}"));
        }
        if let Err(e) = self.rule_curves(&mut services, &sizes, &mut points) {
            println!("[xtask] bench: rule curves: {e}");
            self.notes.push(format!("Rule curves not measured: {e}"));
        }
        if let Err(e) = self.redis_curves(&mut services, ports, &mut cookies, &mut points) {
            println!("[xtask] bench: Redis curves: {e}");
            self.notes
                .push(format!("Redis and replica rows not measured: {e}"));
        }
        let mut order: Vec<usize> = (0..points.len()).collect();
        // The sessions' and chunks' passes come first, in their order (a cold pass must see
        // sessions nobody presented before); then the rest, repeated in shuffled rounds.
        let repeated: Vec<usize> = order
            .iter()
            .copied()
            .filter(|i| matches!(points[*i].panel, "redis" | "replicas"))
            .collect();
        order.retain(|i| !repeated.contains(i));
        for i in order {
            let tag = format!("curve {}", points[i].panel);
            let s = &mut points[i].scenario;
            if s.failed.is_none() {
                self.measure_one(s, &cookies, &tag);
            }
            // Minted sessions fill hundreds of MB: gone once their point is measured.
            if let LoadSpec::Http {
                credentials: Some(file),
                ..
            } = &s.load
                && file.starts_with(&self.dir)
            {
                let _ = std::fs::remove_file(file);
            }
        }
        let mut scenarios: Vec<Scenario> = repeated
            .iter()
            .map(|i| points[*i].scenario.clone())
            .collect();
        self.rounds(
            &mut scenarios,
            &cookies,
            self.options.rounds.min(3),
            "curve redis",
        );
        for (i, s) in repeated.into_iter().zip(scenarios) {
            points[i].scenario = s;
        }
        drop(services);
        points
    }

    /// Mints `count` cookies of `chunks` chunks from the adapter's real login into a file.
    fn mint(
        &self,
        name: &str,
        cookie: &str,
        count: usize,
        chunks: usize,
    ) -> Result<PathBuf, String> {
        let file = self.dir.join(format!("sessions-{name}.txt"));
        let out = Command::new(&self.bins.agent)
            .arg("mint-sessions")
            .arg("--cookie-name=auth")
            .arg(format!("--cookie-secret={}", super::COOKIE_SECRET))
            .arg(format!("--cookie={cookie}"))
            .arg(format!("--count={count}"))
            .arg(format!("--chunks={chunks}"))
            .arg(format!("--output={}", file.display()))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("bench-agent mint-sessions: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "bench-agent mint-sessions: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        println!(
            "[xtask] bench: minted {count} sessions ({name}): {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
        Ok(file)
    }

    fn session_curves(
        &mut self,
        ports: &Ports,
        pids: &Pids,
        cookies: &mut Cookies,
        sizes: &Sizes,
        points: &mut Vec<Point>,
    ) -> Result<(), String> {
        let real = cookies.get("ours")?.to_owned();
        let ours = |id: &'static str, label: String, credentials: Option<PathBuf>, requests| {
            let mut s = scenario(
                id,
                &label,
                "ours",
                "curve",
                LoadSpec::Http {
                    port: ports.ours,
                    path: "/".into(),
                    credentials,
                    requests,
                },
            )
            .cookie("ours")
            .server("adapter", Some(pids.ours));
            s.command = self.load_command(&s);
            s
        };
        // Cold passes first: nothing has presented these sessions yet.
        for (i, n) in sizes.cold.iter().enumerate() {
            // One more than the pass presents: the load generator's probe takes the first.
            let file = self.mint(&format!("cold-{i}"), &real, *n + 1, 1)?;
            points.push(Point {
                panel: "sessions",
                series: "ours, cold (first sight)".into(),
                x: *n as f64,
                scenario: ours(
                    "curve-cold",
                    format!("ours: {n} sessions, one pass (cold)"),
                    Some(file),
                    Some(*n as u64),
                ),
            });
        }
        for (i, n) in sizes.warm.iter().enumerate() {
            let file = if *n == 1 {
                None
            } else {
                Some(self.mint(&format!("warm-{i}"), &real, *n, 1)?)
            };
            points.push(Point {
                panel: "sessions",
                series: "ours, warm (rotation)".into(),
                x: *n as f64,
                scenario: ours(
                    "curve-warm",
                    format!("ours: {n} session(s) in rotation (warm)"),
                    file,
                    None,
                ),
            });
        }
        for chunks in 1..=4 {
            let warm = self.mint(&format!("chunks-{chunks}"), &real, 1, chunks)?;
            let cold = self.mint(
                &format!("chunks-{chunks}-cold"),
                &real,
                sizes.chunk_cold + 1,
                chunks,
            )?;
            points.push(Point {
                panel: "chunks",
                series: "ours, cold (first sight)".into(),
                x: chunks as f64,
                scenario: ours(
                    "curve-chunks-cold",
                    format!(
                        "ours: {chunks} chunk(s), {} sessions, one pass (cold)",
                        sizes.chunk_cold
                    ),
                    Some(cold),
                    Some(sizes.chunk_cold as u64),
                ),
            });
            points.push(Point {
                panel: "chunks",
                series: "ours, warm (rotation)".into(),
                x: chunks as f64,
                scenario: ours(
                    "curve-chunks-warm",
                    format!("ours: {chunks} chunk(s), one session (warm)"),
                    Some(warm),
                    None,
                ),
            });
        }
        // oauth2-proxy: sessions of distinct real logins (it decrypts every request; it has
        // no cache to miss).
        if let (Some(pid), Ok(_)) = (pids.o2p, cookies.get("o2p")) {
            let logins = self.peer_logins(ports.o2p, sizes.peer_logins);
            let file = self.dir.join("sessions-oauth2-proxy.txt");
            let text: String = logins.iter().map(|c| format!("Cookie: {c}\n")).collect();
            std::fs::write(&file, text)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            for (n, credentials) in [(1, None), (logins.len(), Some(file))] {
                let mut s = scenario(
                    "curve-peer",
                    &format!("oauth2-proxy: {n} session(s) in rotation"),
                    "peer",
                    "curve",
                    LoadSpec::Http {
                        port: ports.o2p,
                        path: "/".into(),
                        credentials,
                        requests: None,
                    },
                )
                .cookie("o2p")
                .server("oauth2-proxy", Some(pid));
                if n == 0 {
                    s.failed = Some("no login through oauth2-proxy succeeded".into());
                }
                s.command = self.load_command(&s);
                points.push(Point {
                    panel: "sessions",
                    series: "oauth2-proxy".into(),
                    x: n as f64,
                    scenario: s,
                });
            }
        }
        Ok(())
    }

    /// `n` real logins through oauth2-proxy at `port`, four at a time.
    fn peer_logins(&self, port: u16, n: usize) -> Vec<String> {
        let start = "/oauth2/start?rd=%2F";
        let mut all = Vec::new();
        for chunk in (0..n).collect::<Vec<_>>().chunks(4) {
            let got: Vec<Result<String, String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|_| scope.spawn(|| self.login(port, start)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("login thread".into())))
                    .collect()
            });
            all.extend(got.into_iter().filter_map(Result::ok));
        }
        println!(
            "[xtask] bench: {} of {n} logins through oauth2-proxy",
            all.len()
        );
        all
    }

    /// Starts an adapter with `extra` flags on `port` (a new one if `None`); returns (port, pid).
    fn start_adapter(
        &mut self,
        services: &mut Services,
        name: &str,
        port: Option<u16>,
        extra: &[String],
    ) -> Result<(u16, u32), String> {
        let port = match port {
            Some(p) => p,
            None => util::reserve_port("bench: an adapter of the cost curves")?,
        };
        let mut args = self.adapter_args(port, None, "1h");
        args.extend(extra.iter().cloned());
        let pid = self.spawn_adapter(services, name, port, &args)?;
        self.our_pids.push(pid);
        Ok((port, pid))
    }

    fn rule_curves(
        &mut self,
        services: &mut Services,
        sizes: &Sizes,
        points: &mut Vec<Point>,
    ) -> Result<(), String> {
        for n in sizes.rules {
            for (series, flag) in [("authorization rules", "auth"), ("skip routes", "skip")] {
                let extra: Vec<String> = (0..n)
                    .map(|i| match flag {
                        "auth" => format!("--authorization-rule=^/area-{i}/=group:team-{i}"),
                        _ => format!("--skip-auth-route=GET=^/public-{i}/"),
                    })
                    .collect();
                let name = format!("adapter-{flag}-{n}");
                let (port, pid) = self.start_adapter(services, &name, None, &extra)?;
                services.wait_ready()?;
                let mut s = scenario(
                    "curve-rules",
                    &format!("ours: {n} {series}"),
                    "ours",
                    "curve",
                    LoadSpec::Http {
                        port,
                        path: "/".into(),
                        credentials: None,
                        requests: None,
                    },
                )
                .cookie("ours")
                .server("adapter", Some(pid));
                s.command = format!(
                    "# the adapter with {n} flags like {}\n{}",
                    extra.last().cloned().unwrap_or_default(),
                    self.load_command(&s)
                );
                points.push(Point {
                    panel: "rules",
                    series: series.into(),
                    x: n as f64,
                    scenario: s,
                });
            }
        }
        Ok(())
    }

    fn redis_curves(
        &mut self,
        services: &mut Services,
        ports: &Ports,
        cookies: &mut Cookies,
        points: &mut Vec<Point>,
    ) -> Result<(), String> {
        let redis_bin = self
            .bins
            .redis
            .clone()
            .ok_or("redis-server is not installed")?;
        let redis_port = util::reserve_port("bench: Redis of the cost curves")?;
        let servers = self.pin.servers.clone();
        let mut cmd = self.pinned(&servers, &redis_bin);
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &redis_port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        let addr = SocketAddr::from(([127, 0, 0, 1], redis_port));
        let redis_pid = services
            .spawn(
                "redis",
                &mut cmd,
                &self.dir.join("redis.log"),
                None,
                Some(Readiness::new(
                    "PING".into(),
                    Duration::from_secs(30),
                    move || redis_ping(addr),
                )),
            )?
            .pid;
        self.our_pids.push(redis_pid);
        services.wait_ready()?;
        let url = format!("redis://127.0.0.1:{redis_port}");
        let store = [
            "--session-store-type=redis".to_owned(),
            format!("--redis-connection-url={url}"),
        ];
        let (port_a, pid_a) = self.start_adapter(
            services,
            "adapter-redis-1",
            Some(ports.redis_ours[0]),
            &store,
        )?;
        let (port_b, pid_b) = self.start_adapter(
            services,
            "adapter-redis-2",
            Some(ports.redis_ours[1]),
            &store,
        )?;
        services.wait_ready()?;
        let ours = self.login(port_a, "/")?;
        cookies.extra.push(("ours-redis".into(), ours));

        let direct = |id: &'static str, label: &str, port: u16, which: &str| {
            scenario(
                id,
                label,
                if which == "ours-redis" {
                    "ours"
                } else {
                    "peer"
                },
                "curve",
                LoadSpec::Http {
                    port,
                    path: "/".into(),
                    credentials: None,
                    requests: None,
                },
            )
            .cookie(which)
        };
        let mut s = direct(
            "curve-redis-ours",
            "ours: Redis store",
            port_a,
            "ours-redis",
        )
        .server("adapter", Some(pid_a));
        s.also = vec![redis_pid];
        s.command = self.load_command(&s);
        points.push(Point {
            panel: "redis",
            series: "ours".into(),
            x: 1.0,
            scenario: s,
        });

        if let Some(binary) = self.bins.oauth2_proxy.clone() {
            let port = ports.redis_o2p;
            let mut args = self.oauth2_proxy_args(port, "1h");
            args.extend(store.iter().cloned());
            let pid =
                self.spawn_oauth2_proxy(services, "oauth2-proxy-redis", &binary, port, &args)?;
            self.our_pids.push(pid);
            services.wait_ready()?;
            let cookie = self.login(port, "/oauth2/start?rd=%2F")?;
            cookies.extra.push(("o2p-redis".into(), cookie));
            let mut s = direct(
                "curve-redis-peer",
                "oauth2-proxy: Redis store",
                port,
                "o2p-redis",
            )
            .server("oauth2-proxy", Some(pid));
            s.also = vec![redis_pid];
            s.command = self.load_command(&s);
            points.push(Point {
                panel: "redis",
                series: "oauth2-proxy".into(),
                x: 1.0,
                scenario: s,
            });
        }

        // Replicas: one Envoy in front of one adapter, and of both (round robin).
        for (replicas, authz2) in [(1, None), (2, Some(port_b))] {
            let listen = util::reserve_port("bench: Envoy of the replica curve")?;
            let admin = util::reserve_port("bench: Envoy admin of the replica curve")?;
            let name = format!("replicas-{replicas}");
            let mut extra = vec![format!("--authz=127.0.0.1:{port_a}")];
            if let Some(b) = authz2 {
                extra.push(format!("--authz2=127.0.0.1:{b}"));
            }
            let file = self
                .envoy_config_file(&name, "http", (listen, admin, ports.noop), &extra)
                .map_err(|e| format!("bench-agent envoy-config: {e}"))?;
            let envoy = self.spawn_envoy(services, &format!("envoy-{name}"), &file, admin)?;
            self.our_pids.push(envoy);
            services.wait_ready()?;
            let mut s = direct(
                if replicas == 1 {
                    "curve-replicas-1"
                } else {
                    "curve-replicas-2"
                },
                &format!("Envoy + {replicas} adapter replica(s), Redis store"),
                listen,
                "ours-redis",
            )
            .server("adapter", Some(pid_a))
            .envoy(Some(envoy));
            s.also = if replicas == 2 {
                vec![pid_b, redis_pid]
            } else {
                vec![redis_pid]
            };
            s.command = format!(
                "bench-agent envoy-config --kind=http --authz=<replica 1>{} ...\n{}",
                if replicas == 2 {
                    " --authz2=<replica 2>"
                } else {
                    ""
                },
                self.load_command(&s)
            );
            points.push(Point {
                panel: "replicas",
                series: "Envoy + adapters (Redis)".into(),
                x: f64::from(replicas),
                scenario: s,
            });
        }
        Ok(())
    }
}

/// `true` when Redis at `addr` answers `PING`.
fn redis_ping(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 16];
    c.write_all(b"PING\r\n").is_ok()
        && c.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// The chart's input: the panels, then one line per measured point (server CPU µs per check).
pub fn chart_tsv(points: &[Point]) -> String {
    let mut out = String::new();
    for (id, title, x, y, scale) in PANELS {
        let _ = writeln!(out, "#panel\t{id}\t{title}\t{x}\t{y}\t{scale}");
    }
    for p in points {
        if !PANELS.iter().any(|(id, ..)| *id == p.panel) {
            continue;
        }
        if let Some(cpu) = p.scenario.summary().and_then(|m| m.total_cpu) {
            // CPU s per 10k checks -> µs per check.
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{:.2}",
                p.panel,
                p.series,
                p.x,
                cpu * 100.0
            );
        }
    }
    out
}

/// The section "How cost grows" of `BENCHMARKS.md`.
pub fn section(points: &[Point], chart: Option<&std::path::Path>, md: &mut String) {
    let _ = writeln!(md, "## How cost grows\n");
    if points.is_empty() {
        let _ = writeln!(md, "Not measured.\n");
        return;
    }
    let _ = writeln!(
        md,
        "The comparison above replays one session, which the adapter decodes once and then finds \
         in its session cache (keyed by the cookie's exact bytes, about 16 MiB: a few thousand \
         sessions). Here the work grows instead. Sessions are minted from the real login's \
         session (`bench-agent mint-sessions`: the same tokens and claims sealed again, each \
         cookie different); \"cold\" is one pass over sessions never presented before, so every \
         check decrypts and parses its cookie; \"warm\" rotates over N sessions after a warm-up. \
         oauth2-proxy has no such cache (it decrypts every request); its points rotate over \
         sessions of distinct real logins. Rules: adapters started with N \
         `--authorization-rule=^/area-<i>/=group:team-<i>` or `--skip-auth-route=GET=^/public-<i>/` \
         (none matches `/`, so every check tests all of them). Chunks: the session grown with \
         groups until its cookie spans 1 to 4 cookies. One run per point (Redis and replicas: \
         as many rounds as the open loop); CPU is the server \
         process's (and, for Redis and replicas, Redis's and every replica's); peak RSS is the \
         server's, and grows with distinct sessions as the session cache fills (it is bounded \
         by weight, not by count).\n"
    );
    if let Some(chart) = chart {
        let _ = writeln!(
            md,
            "![How the cost of a check grows]({})\n",
            chart.display()
        );
    }
    let _ = writeln!(
        md,
        "| curve | point | requests/s | p99 ms | CPU µs / check | peak RSS MiB | answers |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---|");
    let cpu_us = |p: &Point| -> Option<f64> { Some(p.scenario.summary()?.total_cpu? * 100.0) };
    for p in points {
        match p.scenario.summary() {
            Some(m) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.3} | {} | {} | `{}` |",
                    p.panel,
                    p.scenario.label,
                    m.rps,
                    m.p99,
                    cpu_us(p).map_or("?".into(), |v| format!("{v:.1}")),
                    m.rss_mib.map_or("?".into(), |v| format!("{v:.1}")),
                    p.scenario
                        .runs
                        .last()
                        .map_or(String::new(), |r| r.load.statuses.clone())
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "| {} | {} | not measured: {} | | | | |",
                    p.panel,
                    p.scenario.label,
                    p.scenario
                        .failed
                        .as_deref()
                        .unwrap_or("no result")
                        .replace('|', "/")
                        .replace('\n', " ")
                );
            }
        }
    }
    let _ = writeln!(md);
    // Slopes: the cost at the most work over the cost at the least, per series.
    let mut lines = Vec::new();
    let mut series: Vec<(&str, &str)> = Vec::new();
    for p in points {
        if !series.contains(&(p.panel, p.series.as_str())) {
            series.push((p.panel, p.series.as_str()));
        }
    }
    for (panel, name) in series {
        let of: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.panel == panel && p.series == name)
            .filter_map(|p| Some((p.x, cpu_us(p)?)))
            .collect();
        let (Some(lo), Some(hi)) = (
            of.iter().min_by(|a, b| a.0.total_cmp(&b.0)),
            of.iter().max_by(|a, b| a.0.total_cmp(&b.0)),
        ) else {
            continue;
        };
        if hi.0 > lo.0 && lo.1 > 0.0 {
            let growth = hi.1 / lo.1;
            let work = hi.0 / lo.0;
            lines.push(format!(
                "{panel}, {name}: {:.1} → {:.1} µs per check from {} to {} ({work:.0}× the work \
                 costs {growth:.2}×{})",
                lo.1,
                hi.1,
                lo.0,
                hi.0,
                if work > 1.0 && growth > 1.0 {
                    format!(
                        "; slope {:.2} on a log-log scale: 1 is linear",
                        growth.ln() / work.ln()
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    let warm = |n: f64| {
        points
            .iter()
            .find(|p| p.scenario.id == "curve-warm" && p.x == n)
            .and_then(cpu_us)
    };
    let cold = points
        .iter()
        .filter(|p| p.scenario.id == "curve-cold")
        .max_by(|a, b| a.x.total_cmp(&b.x))
        .and_then(cpu_us);
    if let (Some(one), Some(thousand), Some(c)) = (warm(1.0), warm(1000.0), cold) {
        lines.push(format!(
            "one session replayed costs {one:.1} µs per check, 1000 sessions in rotation \
             (fewer than the cache holds) {thousand:.1}, a session seen for the first time \
             {c:.1}: replaying one session is the best case by {:.1}×, which is why the \
             headline gives the cold figure too",
            c / one
        ));
    }
    let redis = |id: &str| {
        points
            .iter()
            .find(|p| p.scenario.id == id)
            .and_then(|p| Some((p.scenario.summary()?, cpu_us(p)?)))
    };
    if let (Some((o, oc)), Some((p, pc))) = (redis("curve-redis-ours"), redis("curve-redis-peer")) {
        lines.push(format!(
            "Redis store: the adapter {:.0} requests/s at {oc:.1} µs per check (Redis included), \
             oauth2-proxy with the same Redis {:.0} at {pc:.1}: {:.1}× the throughput, {:.1}× \
             the requests per CPU-second",
            o.rps,
            p.rps,
            o.rps / p.rps,
            pc / oc
        ));
    }
    if let (Some((one, c1)), Some((two, c2))) =
        (redis("curve-replicas-1"), redis("curve-replicas-2"))
    {
        lines.push(format!(
            "two replicas behind one Envoy sharing Redis: {:.0} against {:.0} requests/s with \
             one, {c2:.1} against {c1:.1} µs of adapter and Redis CPU per check (on one shared \
             core, a second replica adds no capacity; it shows what sharing the session store \
             costs; every answer was an allow, see the answers column)",
            two.rps, one.rps
        ));
    }
    for l in lines {
        let _ = writeln!(md, "- {l}.");
    }
    let _ = writeln!(md);
}
