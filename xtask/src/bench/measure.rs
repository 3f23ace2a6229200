//! Measuring: wrk and the gRPC load generator (their output parsed), CPU time and peak RSS of a
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
    /// Answers that were not the expected allow (wrk: non-2xx/3xx and socket errors; gRPC: a
    /// status other than OK).
    pub errors: u64,
}

/// Parses `wrk --latency` output.
pub fn parse_wrk(output: &str) -> Result<Load, String> {
    let mut load = Load::default();
    let mut in_distribution = false;
    let mut have_rps = false;
    for line in output.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            let mut words = t.split_whitespace();
            match (words.next(), words.next()) {
                (Some("50%"), Some(v)) => load.p50_ms = duration_ms(v)?,
                (Some("99%"), Some(v)) => load.p99_ms = duration_ms(v)?,
                (Some(p), Some(_)) if p.ends_with('%') => {}
                _ => in_distribution = false,
            }
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            load.rps = v
                .trim()
                .parse()
                .map_err(|_| format!("wrk: bad Requests/sec {v:?}"))?;
            have_rps = true;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            load.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            load.errors += v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        } else if t.contains(" requests in ") {
            load.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    if !have_rps {
        return Err(format!("wrk printed no Requests/sec:\n{output}"));
    }
    Ok(load)
}

/// `1.23ms`, `512.00us`, `1.02s`, `2.5m` in milliseconds.
fn duration_ms(v: &str) -> Result<f64, String> {
    let split = v
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("wrk: latency without unit {v:?}"))?;
    let (number, unit) = v.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("wrk: bad latency {v:?}"))?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(format!("wrk: unknown latency unit in {v:?}")),
    };
    Ok(number * factor)
}

/// Parses `bench-agent grpc-load` output (`requests=.. errors=.. rps=.. p50_ms=.. p99_ms=..`).
pub fn parse_grpc_load(output: &str) -> Result<Load, String> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with("requests="))
        .ok_or_else(|| format!("grpc-load printed no result:\n{output}"))?;
    let field = |key: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("grpc-load: no {key} in {line:?}"))
    };
    Ok(Load {
        requests: field("requests")? as u64,
        rps: field("rps")?,
        p50_ms: field("p50_ms")?,
        p99_ms: field("p99_ms")?,
        errors: field("errors")? as u64,
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

    const WRK: &str = "Running 3s test @ http://127.0.0.1:4180/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   810.12us  200.31us   5.00ms   90.00%
    Req/Sec    39.50k     1.20k   41.00k    70.00%
  Latency Distribution
     50%  780.00us
     75%    0.90ms
     90%    1.02ms
     99%    1.50ms
  118500 requests in 3.00s, 10.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  39500.12
Transfer/sec:      3.33MB
";

    #[test]
    fn parses_wrk() {
        let load = parse_wrk(WRK).expect("parse");
        assert_eq!(load.requests, 118_500);
        assert!((load.rps - 39_500.12).abs() < 1e-6);
        assert!((load.p50_ms - 0.78).abs() < 1e-9);
        assert!((load.p99_ms - 1.5).abs() < 1e-9);
        assert_eq!(load.errors, 7);
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn joins_chunks() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }

    #[test]
    fn parses_grpc_load() {
        let out = "requests=1000 errors=0 seconds=1.000 rps=1000.0 p50_ms=0.500 p99_ms=2.000";
        let load = parse_grpc_load(out).expect("parse");
        assert_eq!(load.requests, 1000);
        assert!((load.p99_ms - 2.0).abs() < 1e-9);
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
