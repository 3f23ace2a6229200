//! Measuring: the load generators' result lines parsed, CPU time and peak RSS of a
//! process from `/proc`, a small keep-alive HTTP/1.1 client for probes and fixed request counts,
//! and callgrind's counters.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One load run's figures.
#[derive(Debug, Clone, Default)]
pub struct Load {
    /// Completed requests.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// HTTP: transport errors (connections refused or reset, timeouts). gRPC (`grpc-load`):
    /// every call that failed or answered a status other than OK. A run with any is void.
    pub errors: u64,
    /// HTTP: answers with another status than the expected one. A run with any is void.
    pub unexpected: u64,
    /// Every status seen and how often (`200:51234,302:1`), as the load generator printed it.
    pub statuses: String,
    /// Open loop: requests sent more than 1 ms after their intended time.
    pub late: u64,
}

impl Load {
    /// Why the run cannot count: an answer that is not the expected allow, or a transport
    /// error. `None` for a clean run.
    pub fn void_reason(&self) -> Option<String> {
        (self.unexpected > 0 || self.errors > 0 || self.requests == 0).then(|| {
            format!(
                "{} of {} answers unexpected, {} transport errors (statuses {})",
                self.unexpected,
                self.requests,
                self.errors,
                if self.statuses.is_empty() {
                    "-"
                } else {
                    &self.statuses
                }
            )
        })
    }
}

/// Parses the result line of `bench-agent http-load` and `grpc-load` (`requests=.. errors=..
/// [unexpected=..] rps=.. p50_ms=.. p99_ms=.. [statuses=..] [offered_rps=.. late=..]`).
pub fn parse_agent_load(output: &str) -> Result<Load, String> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with("requests="))
        .ok_or_else(|| format!("the load generator printed no result:\n{output}"))?;
    let word = |key: &str| -> Option<&str> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    };
    let field = |key: &str| -> Result<f64, String> {
        word(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("load generator: no {key} in {line:?}"))
    };
    Ok(Load {
        requests: field("requests")? as u64,
        rps: field("rps")?,
        p50_ms: field("p50_ms")?,
        p99_ms: field("p99_ms")?,
        errors: field("errors")? as u64,
        unexpected: word("unexpected").and_then(|v| v.parse().ok()).unwrap_or(0),
        statuses: word("statuses").unwrap_or_default().to_owned(),
        late: word("late").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of process `pid` (all threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resets the peak RSS (`VmHWM`) of `pid` to its current RSS (`/proc/<pid>/clear_refs`, value 5).
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// `VmHWM` (peak resident set) of `pid`, KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix("VmHWM:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Busy and total clock ticks of the CPUs `cpus` (all CPUs when empty) from `/proc/stat`;
/// busy counts user, nice, system, irq, softirq and steal time.
pub fn cpu_busy(cpus: &[usize]) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut busy = 0;
    let mut total = 0;
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let Some((id, values)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.parse::<usize>() else {
            continue; // the "cpu " summary line
        };
        if !cpus.is_empty() && !cpus.contains(&id) {
            continue;
        }
        let v: Vec<u64> = values
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        if v.len() < 8 {
            return None;
        }
        busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        total += v[..8].iter().sum::<u64>();
    }
    (total > 0).then_some((busy, total))
}

/// `(VmRSS, RssAnon, RssFile)` of `pid`, KiB.
pub fn rss_breakdown(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
    };
    Some((field("VmRSS:")?, field("RssAnon:")?, field("RssFile:")?))
}

/// Samples a process's `RssAnon` every 20 ms on a thread of its own, keeping the largest.
pub struct AnonSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<u64>>,
}

impl AnonSampler {
    pub fn start(pid: u32) -> AnonSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak: Option<u64> = None;
            loop {
                if let Some((_, anon, _)) = rss_breakdown(pid) {
                    peak = Some(peak.map_or(anon, |p| p.max(anon)));
                }
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        AnonSampler { stop, thread }
    }

    /// Stops sampling; the peak in KiB.
    pub fn stop(self) -> Option<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// A keep-alive HTTP/1.1 connection for probes and fixed request counts (std only).
pub struct Conn {
    reader: BufReader<TcpStream>,
}

/// An answer's status.
pub struct Answer {
    pub status: u16,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    /// `GET path` with `headers` (Host among them); reads the whole answer.
    pub fn get(&mut self, path: &str, headers: &[(String, String)]) -> Result<Answer, String> {
        let mut request = format!("GET {path} HTTP/1.1\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut line = String::new();
        self.read_line(&mut line)?;
        let status: u16 = line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                line.clear();
                self.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                self.skip(size + 2)?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = header("content-length") {
            let n: usize = length.parse().map_err(|_| "bad content-length")?;
            self.skip(n)?;
        }
        Ok(Answer { status })
    }

    fn read_line(&mut self, line: &mut String) -> Result<(), String> {
        match self.reader.read_line(line) {
            Ok(0) => Err("connection closed".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        let mut left = n;
        let mut buf = [0u8; 4096];
        while left > 0 {
            let want = left.min(buf.len());
            let got = self
                .reader
                .read(&mut buf[..want])
                .map_err(|e| format!("read body: {e}"))?;
            if got == 0 {
                return Err("connection closed in the body".into());
            }
            left -= got;
        }
        Ok(())
    }
}

/// The body of `GET path` (`Connection: close`), for small documents such as discovery.
pub fn fetch_text(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no complete answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

/// A chunked body, joined.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Sends `count` sequential requests on one keep-alive connection; fails on the first answer
/// whose status is not `expect`.
pub fn requests(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    count: usize,
    expect: u16,
) -> Result<(), String> {
    let mut conn = Conn::open(addr)?;
    for i in 0..count {
        let answer = conn.get(path, headers)?;
        if answer.status != expect {
            return Err(format!(
                "request {i} to {addr}{path}: {} instead of {expect}",
                answer.status
            ));
        }
    }
    Ok(())
}

/// The `summary:` (or `totals:`) instruction count of a callgrind output file.
pub fn callgrind_total(file: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let find = |key: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(key)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
    };
    find("summary:")
        .or_else(|| find("totals:"))
        .ok_or_else(|| format!("{}: no summary line", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_chunks() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }

    #[test]
    fn parses_the_load_generators_line() {
        let out = "requests=1000 errors=0 seconds=1.000 rps=1000.0 p50_ms=0.500 p99_ms=2.000";
        let load = parse_agent_load(out).expect("parse");
        assert_eq!(load.requests, 1000);
        assert!((load.p99_ms - 2.0).abs() < 1e-9);
        assert_eq!(load.void_reason(), None);
        let out = "warming up\nrequests=900 errors=1 unexpected=2 seconds=1.000 rps=900.0 \
                   p50_ms=0.5 p90_ms=0.7 p99_ms=2.0 statuses=200:898,302:2 offered_rps=1000 late=3";
        let load = parse_agent_load(out).expect("parse");
        assert_eq!((load.errors, load.unexpected, load.late), (1, 2, 3));
        assert_eq!(load.statuses, "200:898,302:2");
        let why = load.void_reason().expect("void");
        assert!(why.contains("2 of 900") && why.contains("302:2"), "{why}");
        assert!(parse_agent_load("nothing").is_err());
    }

    #[test]
    fn reads_the_machine_stats() {
        let (busy, total) = cpu_busy(&[]).expect("/proc/stat");
        assert!(busy <= total && total > 0);
        assert!(cpu_busy(&[0]).is_some());
    }

    #[test]
    fn reads_own_process_stats() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_some());
        assert!(peak_rss_kib(pid).is_some_and(|k| k > 0));
    }
}
