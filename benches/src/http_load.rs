//! An HTTP/1.1 load generator with exact accounting (`bench-agent http-load`).
//!
//! Every response's status is counted, transport errors apart; each request can carry a
//! different credential (a `Cookie` or `Authorization` line, in turn); the load is either a
//! closed loop (each connection sends its next request as soon as the previous answer is
//! complete) or an open loop at a fixed rate, whose latencies run from the *intended* send
//! time so that a stalled server shows in the high percentiles (no coordinated omission).
//!
//! Everything runs on the caller's tokio runtime, one task per connection: `bench-agent` gives
//! it a single thread (one core of its own).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to load and how; [`Options::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server to connect to.
    pub addr: SocketAddr,
    /// The `Host` header's value (`HOST[:PORT]`).
    pub host: String,
    /// The request target, e.g. `/`.
    pub path: String,
    /// Extra header lines (`Name: value`) every request carries.
    pub headers: Vec<String>,
    /// Header lines (`Cookie: ...`, `Authorization: Bearer ...`) of which request `i` carries
    /// line `i mod n`; empty: none. The probe carries the first one.
    pub credentials: Vec<String>,
    /// Concurrent connections, each with one request in flight at most.
    pub connections: usize,
    /// When the measured load ends.
    pub stop: Stop,
    /// Requests per second in total (open loop), spread evenly over the connections; `None`:
    /// closed loop.
    pub rate: Option<f64>,
    /// Load before the measurement, not counted.
    pub warmup: Duration,
    /// The only status that counts as right.
    pub expect: u16,
    /// How long a request may go unanswered before it counts as a transport error.
    pub timeout: Duration,
}

/// When the measured load ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// After this long: no request is sent later. Open loop: no request is scheduled later;
    /// a connection that is behind sends what was due before, for one `timeout` at most.
    Duration(Duration),
    /// After exactly this many requests, each one answered or failed.
    Requests(u64),
}

impl Options {
    /// Closed-loop `GET /` on 32 connections, expecting 200, with no extra headers or
    /// credentials, no warm-up and a 10 s timeout.
    pub fn new(addr: SocketAddr, host: &str, stop: Stop) -> Options {
        Options {
            addr,
            host: host.to_owned(),
            path: "/".to_owned(),
            headers: Vec::new(),
            credentials: Vec::new(),
            connections: 32,
            stop,
            rate: None,
            warmup: Duration::ZERO,
            expect: 200,
            timeout: Duration::from_secs(10),
        }
    }

    /// Checks the values, naming the command-line argument to fix.
    fn validate(&self) -> Result<(), String> {
        let token_safe = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if self.host.is_empty() || !token_safe(&self.host) {
            return Err(format!("--host={:?}: not a host[:port]", self.host));
        }
        if !self.path.starts_with('/') || !token_safe(&self.path) {
            return Err(format!(
                "--path={:?}: must start with / and hold no spaces or control characters",
                self.path
            ));
        }
        for line in &self.headers {
            check_header_line(line).map_err(|e| format!("--headers-file: {e}"))?;
        }
        for line in &self.credentials {
            check_header_line(line).map_err(|e| format!("--credentials: {e}"))?;
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(format!(
                "--connections={}: give 1 to {MAX_CONNECTIONS}",
                self.connections
            ));
        }
        let day = Duration::from_secs(86_400);
        if let Stop::Duration(d) = self.stop
            && d > day
        {
            return Err("--duration: at most a day (86400 s)".to_owned());
        }
        if self.warmup > day || self.timeout > day {
            return Err("--warmup and --timeout: at most a day (86400 s)".to_owned());
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() => {
                return Err("--duration=0: give a positive number of seconds".to_owned());
            }
            Stop::Requests(0) => return Err("--requests=0: give at least one".to_owned()),
            _ => {}
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && (1.0..=1e7).contains(&rate))
        {
            return Err(format!("--rate={rate}: give 1 to 10000000 requests/s"));
        }
        if !(100..=999).contains(&self.expect) {
            return Err(format!("--expect={}: not an HTTP status", self.expect));
        }
        if self.timeout.is_zero() {
            return Err("--timeout=0: give a positive number of seconds".to_owned());
        }
        Ok(())
    }
}

/// The header lines of a file's text (`source` names it in errors): one `Name: value` per
/// line, blank lines skipped.
pub fn header_lines(text: &str, source: &str) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        check_header_line(line).map_err(|e| format!("{source} line {}: {e}", n + 1))?;
        lines.push(line.to_owned());
    }
    Ok(lines)
}

/// `Name: value` with a token name and a value free of control characters.
fn check_header_line(line: &str) -> Result<(), String> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(format!("{line:?} is not a `Name: value` header line"));
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !name_ok {
        return Err(format!("{name:?} is not a header name"));
    }
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(format!("the value of {name} holds a control character"));
    }
    Ok(())
}

/// The outcome of a run; its `Display` is the one line `bench-agent http-load` prints.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Requests answered (the sum of `statuses`).
    pub requests: u64,
    /// Requests that got no complete answer: connection refused or reset, closed early,
    /// malformed response, timeout (open loop: also the requests still unsent one timeout
    /// after the end).
    pub errors: u64,
    /// Answers whose status is not the expected one.
    pub unexpected: u64,
    /// From the start of the measurement to the last counted answer.
    pub seconds: f64,
    /// How many answers of each status.
    pub statuses: BTreeMap<u16, u64>,
    /// The open loop's rate (requests/s); `None` for a closed loop.
    pub offered_rps: Option<f64>,
    /// Open loop: requests the generator itself sent more than 1 ms after their intended time
    /// (or after the previous answer on their connection, when that came later: waiting for
    /// a slow answer is the server's delay and shows in the latencies instead).
    pub late: u64,
    /// Connections opened again after the server closed one (`Connection: close`, errors).
    pub reconnects: u64,
    /// The first transport error, for a diagnosis.
    pub first_error: Option<String>,
    /// Every answer's latency in microseconds, sorted.
    latencies_us: Vec<u32>,
}

impl Report {
    /// Answers per second over the measurement.
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The latency (ms) at percentile `p` (0.99 for p99) by the nearest-rank rule; 0 without
    /// answers.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies_us, p)
    }
}

/// The latency (ms) at percentile `p` (0.99 for p99) of `sorted_us` (microseconds, sorted) by
/// the nearest-rank rule; 0 when empty. `grpc-load` reports by the same rule.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    let n = sorted_us.len();
    if n == 0 {
        return 0.0;
    }
    let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
    f64::from(sorted_us[i]) / 1000.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests={} errors={} unexpected={} seconds={:.3} rps={:.1} p50_ms={:.3} \
             p90_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} statuses=",
            self.requests,
            self.errors,
            self.unexpected,
            self.seconds,
            self.rps(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.90),
            self.percentile_ms(0.99),
            self.percentile_ms(0.999),
            self.percentile_ms(1.0),
        )?;
        for (i, (status, n)) in self.statuses.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{status}:{n}")?;
        }
        if let Some(rate) = self.offered_rps {
            write!(f, " offered_rps={rate:.1} late={}", self.late)?;
        }
        write!(f, " reconnects={}", self.reconnects)
    }
}

/// Runs the load on the current tokio runtime: one probe first (with the first credential),
/// which must answer `expect`, then the warm-up and the measurement.
///
/// Errors only for bad options, a probe that fails or answers another status, or no
/// connection at all; transport errors under load are counted in the report.
pub async fn run(mut options: Options) -> Result<Report, String> {
    options.validate()?;
    probe(&options).await?;

    // Connect every connection first: connecting is not part of the measurement. One that
    // fails here is tried again by its first request (which then counts the error).
    let mut streams = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        streams.push(connect(options.addr).await.ok());
    }

    let start = Instant::now();
    let measure_start = start + options.warmup;
    let plan = Arc::new(Plan {
        prefix: request_prefix(&options),
        // Moved, not copied: 10^5 session cookies take 100+ MB.
        credentials: std::mem::take(&mut options.credentials)
            .into_iter()
            .map(|mut line| {
                line.push_str("\r\n");
                line.into_bytes().into_boxed_slice()
            })
            .collect(),
        addr: options.addr,
        connections: options.connections,
        rate: options.rate,
        start,
        measure_start,
        end: match options.stop {
            Stop::Duration(d) => Some(measure_start + d),
            Stop::Requests(_) => None,
        },
        requests: match options.stop {
            Stop::Requests(n) => Some(n),
            Stop::Duration(_) => None,
        },
        timeout: options.timeout,
        measured: AtomicU64::new(0),
        // The probe presented credential 0: the load starts with credential 1, so a one-pass
        // run over n + 1 credentials (`--requests=n`) presents each of 1..=n exactly once.
        sent: AtomicU64::new(1),
    });

    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(index, stream)| tokio::spawn(Connection::new(plan.clone(), stream).run(index)))
        .collect();
    let mut latencies = Vec::new();
    let mut statuses = vec![0u64; 1000];
    let mut report = Report {
        offered_rps: options.rate,
        ..Report::default()
    };
    let mut last_answer = None;
    for task in tasks {
        let stats = task.await.map_err(|e| format!("connection task: {e}"))?;
        latencies.extend_from_slice(&stats.latencies_us);
        for (total, n) in statuses.iter_mut().zip(&stats.statuses) {
            *total += n;
        }
        report.errors += stats.errors;
        report.late += stats.late;
        report.reconnects += stats.reconnects;
        if report.first_error.is_none() {
            report.first_error = stats.first_error;
        }
        last_answer = last_answer.max(stats.last_answer);
    }
    latencies.sort_unstable();
    report.latencies_us = latencies;
    for (status, &n) in statuses.iter().enumerate() {
        if n > 0 {
            let status = status as u16; // < 1000
            report.statuses.insert(status, n);
            report.requests += n;
            if status != options.expect {
                report.unexpected += n;
            }
        }
    }
    let last = last_answer.unwrap_or_else(Instant::now);
    report.seconds = last.saturating_duration_since(measure_start).as_secs_f64();
    Ok(report)
}

/// One request with the first credential, on a connection of its own: a wrong status means a
/// wrong setup (expired session, wrong host), not a result.
async fn probe(options: &Options) -> Result<(), String> {
    let mut request = request_prefix(options);
    if let Some(line) = options.credentials.first() {
        request.extend_from_slice(line.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let addr = options.addr;
    let exchange = async {
        let mut stream = connect(addr)
            .await
            .map_err(|e| format!("cannot connect to --addr={addr}: {e}"))?;
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("probe: {e}"))?;
        let mut parser = ResponseParser::keeping_body(200);
        let mut buf = vec![0u8; 64 * 1024];
        let mut len = 0;
        loop {
            let n = stream
                .read(&mut buf[len..])
                .await
                .map_err(|e| format!("probe: {e}"))?;
            if n == 0 {
                break parser.end_of_stream();
            }
            len += n;
            let (used, done) = parser.parse(&buf[..len])?;
            buf.copy_within(used..len, 0);
            len -= used;
            if let Some(response) = done {
                break Ok(response);
            }
            if len == buf.len() {
                break Err("a response head larger than 64 KiB".to_owned());
            }
        }
        .map(|response| (response, parser.body().to_vec()))
        .map_err(|e| format!("probe: {e}"))
    };
    let (response, body) = tokio::time::timeout(options.timeout, exchange)
        .await
        .map_err(|_| format!("probe: no answer within {:?}", options.timeout))??;
    if response.status != options.expect {
        return Err(format!(
            "probe: GET {} answered {}, not --expect={}; body: {:?}",
            options.path,
            response.status,
            options.expect,
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(())
}

/// The request up to its credential line: request line, `Host`, `Accept`, extra headers.
fn request_prefix(options: &Options) -> Vec<u8> {
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\n",
        options.path, options.host
    );
    for line in &options.headers {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.into_bytes()
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// What every connection shares.
struct Plan {
    addr: SocketAddr,
    /// See [`request_prefix`].
    prefix: Vec<u8>,
    /// Credential lines with their `\r\n`.
    credentials: Vec<Box<[u8]>>,
    connections: usize,
    rate: Option<f64>,
    /// The open loop's schedule starts here (warm-up included).
    start: Instant,
    /// Requests sent (open loop: scheduled) from here on are counted.
    measure_start: Instant,
    /// `Stop::Duration`: no request is sent (scheduled) from here on.
    end: Option<Instant>,
    /// `Stop::Requests`.
    requests: Option<u64>,
    timeout: Duration,
    /// Counted requests started, for `Stop::Requests`.
    measured: AtomicU64,
    /// Requests started, warm-up included: picks the credential.
    sent: AtomicU64,
}

impl Plan {
    /// The next request to send at `at` (open loop: its intended time), or `None` when the
    /// load is over: which credential it carries and whether it is counted.
    fn next(&self, at: Instant) -> Option<Next> {
        let counted = at >= self.measure_start;
        if counted {
            if let Some(n) = self.requests {
                if self.measured.fetch_add(1, Ordering::Relaxed) >= n {
                    return None;
                }
            } else if self.end.is_some_and(|end| at >= end) {
                return None;
            }
        }
        let sent = self.sent.fetch_add(1, Ordering::Relaxed);
        let credential = match self.credentials.len() {
            0 => None,
            n => Some((sent % n as u64) as usize),
        };
        Some(Next {
            credential,
            counted,
        })
    }

    /// Open loop: when request `j` of connection `index` is due. The connections interleave:
    /// request `index + j * connections` of the whole schedule.
    fn intended(&self, rate: f64, index: usize, j: u64) -> Instant {
        let i = index as f64 + j as f64 * self.connections as f64;
        self.start + Duration::from_secs_f64(i / rate)
    }
}

/// See [`Plan::next`].
struct Next {
    credential: Option<usize>,
    counted: bool,
}

/// One connection's counts.
struct Stats {
    latencies_us: Vec<u32>,
    /// Answers by status (index).
    statuses: Vec<u64>,
    errors: u64,
    late: u64,
    reconnects: u64,
    first_error: Option<String>,
    last_answer: Option<Instant>,
}

/// Read buffer size: a response head must fit.
const READ_BUFFER: usize = 64 * 1024;
/// Most connections one run opens (each holds a read buffer and a latency list).
const MAX_CONNECTIONS: usize = 10_000;

/// One keep-alive connection and its counts.
struct Connection {
    plan: Arc<Plan>,
    stream: Option<TcpStream>,
    /// Unparsed bytes are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    parser: ResponseParser,
    /// The request being sent (rebuilt per credential).
    request: Vec<u8>,
    stats: Stats,
}

impl Connection {
    fn new(plan: Arc<Plan>, stream: Option<TcpStream>) -> Connection {
        let mut request = plan.prefix.clone();
        request.extend_from_slice(b"\r\n");
        Connection {
            plan,
            stream,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            parser: ResponseParser::new(),
            request,
            stats: Stats {
                latencies_us: Vec::with_capacity(1 << 16),
                statuses: vec![0; 1000],
                errors: 0,
                late: 0,
                reconnects: 0,
                first_error: None,
                last_answer: None,
            },
        }
    }

    /// Connection `index`'s load, closed or open loop.
    async fn run(mut self, index: usize) -> Stats {
        match self.plan.rate {
            None => loop {
                let sent = Instant::now();
                let Some(next) = self.plan.next(sent) else {
                    break;
                };
                self.send(next, sent, sent).await;
            },
            Some(rate) => {
                // Past the end, a connection that is behind still sends what was due before
                // it, for at most one timeout more.
                let hard_end = self.plan.end.map(|end| end + self.plan.timeout);
                // When this connection's previous answer came back: a send due before that
                // waits for it, which is the server's delay, not the generator's.
                let mut free_at = Instant::now();
                for j in 0.. {
                    let intended = self.plan.intended(rate, index, j);
                    if hard_end.is_some_and(|end| Instant::now() >= end) {
                        self.count_unsent(rate, index, j);
                        break;
                    }
                    let Some(next) = self.plan.next(intended) else {
                        break;
                    };
                    wait_until(intended).await;
                    let sent = Instant::now();
                    if next.counted && sent > intended.max(free_at) + Duration::from_millis(1) {
                        self.stats.late += 1;
                    }
                    self.send(next, sent, intended).await;
                    free_at = Instant::now();
                }
            }
        }
        self.stats
    }

    /// Open loop, one timeout past the end: this connection's requests from `j` on that were
    /// due before the end were never sent. Each has waited longer than the timeout: an error.
    fn count_unsent(&mut self, rate: f64, index: usize, j: u64) {
        let Some(end) = self.plan.end else {
            return;
        };
        let mut unsent = 0;
        for j in j.. {
            let intended = self.plan.intended(rate, index, j);
            if intended >= end {
                break;
            }
            if intended >= self.plan.measure_start {
                unsent += 1;
            }
        }
        if unsent > 0 {
            self.stats.errors += unsent;
            self.stats.first_error.get_or_insert_with(|| {
                format!("{unsent} requests never sent: --rate is beyond what the server answers")
            });
        }
    }

    /// Sends one request and reads its answer; counts it if `next.counted`, its latency from
    /// `since`.
    async fn send(&mut self, next: Next, sent: Instant, since: Instant) {
        if let Some(i) = next.credential {
            let line = &self.plan.credentials[i];
            self.request.clear();
            self.request.extend_from_slice(&self.plan.prefix);
            self.request.extend_from_slice(line);
            self.request.extend_from_slice(b"\r\n");
        }
        let deadline = sent + self.plan.timeout;
        let outcome = match tokio::time::timeout_at(deadline.into(), self.exchange()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", self.plan.timeout)),
        };
        let now = Instant::now();
        match outcome {
            Ok(response) => {
                if response.close {
                    self.drop_stream();
                }
                if next.counted {
                    let us = now.saturating_duration_since(since).as_micros();
                    self.stats
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                    self.stats.statuses[usize::from(response.status)] += 1;
                    self.stats.last_answer = Some(now);
                }
            }
            Err(e) => {
                self.drop_stream();
                if next.counted {
                    self.stats.errors += 1;
                    self.stats.first_error.get_or_insert(e);
                }
            }
        }
    }

    /// Writes `self.request` (connecting first if needed) and reads one response.
    async fn exchange(&mut self) -> Result<Response, String> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = match connect(self.plan.addr).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        // Not in a tight loop while the server is down.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        return Err(format!("connect: {e}"));
                    }
                };
                self.stats.reconnects += 1;
                self.stream.insert(stream)
            }
        };
        stream
            .write_all(&self.request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        loop {
            if self.start < self.end {
                let (used, done) = self.parser.parse(&self.buf[self.start..self.end])?;
                self.start += used;
                if self.start == self.end {
                    (self.start, self.end) = (0, 0);
                }
                if let Some(response) = done {
                    return Ok(response);
                }
            }
            if self.end == self.buf.len() {
                if self.start == 0 {
                    return Err("a response head larger than 64 KiB".to_owned());
                }
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            }
            let n = stream
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return self.parser.end_of_stream();
            }
            self.end += n;
        }
    }

    /// Forgets the connection and any partial response: the next request opens a new one.
    fn drop_stream(&mut self) {
        self.stream = None;
        (self.start, self.end) = (0, 0);
        self.parser = ResponseParser::new();
    }
}

/// Waits until `at` to well under a millisecond: tokio's timer (1 ms ticks) until shortly
/// before, then yielding to the other tasks until the time has come. Spinning costs nothing
/// that matters: the load generator has its core to itself.
async fn wait_until(at: Instant) {
    const SPIN: Duration = Duration::from_millis(2);
    if let Some(wake) = at.checked_sub(SPIN)
        && Instant::now() < wake
    {
        tokio::time::sleep_until(wake.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Response parsing

/// A complete response, as far as the load generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The server closes the connection after it (`Connection: close`, HTTP/1.0, a body that
    /// runs to the end of the connection).
    pub close: bool,
}

/// Where the parser is within a response.
#[derive(Clone, Copy, Debug)]
enum State {
    Head,
    /// Body bytes still to come (`Content-Length`).
    Body(u64),
    ChunkSize,
    /// Chunk bytes still to come.
    ChunkData(u64),
    /// The chunk's closing CRLF: how many of its 2 bytes are still to come.
    ChunkEnd(u8),
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// A body with neither length nor chunks: it ends with the connection.
    UntilClose,
}

/// Parses HTTP/1.1 responses from bytes as they arrive, skipping bodies (by `Content-Length`,
/// chunked encoding, or to the end of the connection) and informational (1xx) responses.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    response: Response,
    /// Keep up to this many body bytes (for the probe's message).
    body_limit: usize,
    body: Vec<u8>,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser::new()
    }
}

impl ResponseParser {
    /// A parser that keeps no body bytes.
    pub fn new() -> ResponseParser {
        ResponseParser::keeping_body(0)
    }

    /// A parser that keeps the first `limit` bytes of each body (see [`Self::body`]).
    pub fn keeping_body(limit: usize) -> ResponseParser {
        ResponseParser {
            state: State::Head,
            response: Response {
                status: 0,
                close: false,
            },
            body_limit: limit,
            body: Vec::new(),
        }
    }

    /// The kept body bytes of the last (or current) response.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Parses the start of `data`: returns how many bytes it used and, once a response is
    /// complete, the response (the bytes after it belong to the next one). Fewer bytes used
    /// than given and no response: call again with more data after the unused bytes.
    pub fn parse(&mut self, data: &[u8]) -> Result<(usize, Option<Response>), String> {
        let mut at = 0;
        loop {
            let rest = &data[at..];
            match self.state {
                State::Head => match self.parse_head(rest)? {
                    None => return Ok((at, None)),
                    Some(used) => {
                        at += used;
                        if let State::Head = self.state
                            && self.response.status >= 200
                        {
                            return Ok((at, Some(self.response)));
                        }
                    }
                },
                State::Body(left) => {
                    let take = self.take_body(rest, left);
                    at += take;
                    if take as u64 == left {
                        self.state = State::Head;
                        return Ok((at, Some(self.response)));
                    }
                    self.state = State::Body(left - take as u64);
                    return Ok((at, None));
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Partial) => return Ok((at, None)),
                    Ok(httparse::Status::Complete((used, 0))) => {
                        at += used;
                        self.state = State::Trailers;
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        at += used;
                        self.state = State::ChunkData(size);
                    }
                    Err(_) => return Err("malformed chunk size".to_owned()),
                },
                State::ChunkData(left) => {
                    let take = self.take_body(rest, left);
                    at += take;
                    if take as u64 == left {
                        self.state = State::ChunkEnd(2);
                    } else {
                        self.state = State::ChunkData(left - take as u64);
                        return Ok((at, None));
                    }
                }
                State::ChunkEnd(left) => {
                    let Some(&byte) = rest.first() else {
                        return Ok((at, None));
                    };
                    let expected = if left == 2 { b'\r' } else { b'\n' };
                    if byte != expected {
                        return Err("a chunk not followed by CRLF".to_owned());
                    }
                    at += 1;
                    self.state = if left == 2 {
                        State::ChunkEnd(1)
                    } else {
                        State::ChunkSize
                    };
                }
                State::Trailers => {
                    let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                        return Ok((at, None));
                    };
                    at += eol + 2;
                    if eol == 0 {
                        self.state = State::Head;
                        return Ok((at, Some(self.response)));
                    }
                }
                State::UntilClose => {
                    self.take_body(rest, rest.len() as u64);
                    return Ok((data.len(), None));
                }
            }
        }
    }

    /// The connection ended: completes a response whose body runs to the end of the
    /// connection; any other state means the answer is incomplete.
    pub fn end_of_stream(&mut self) -> Result<Response, String> {
        match self.state {
            State::UntilClose => {
                self.state = State::Head;
                Ok(self.response)
            }
            _ => Err("the server closed the connection before a complete answer".to_owned()),
        }
    }

    /// Parses a response head at the start of `data`: `None` if incomplete, else the bytes it
    /// used, with the state set for the body (`Head` again when there is none).
    fn parse_head(&mut self, data: &[u8]) -> Result<Option<usize>, String> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut headers);
        let used = match head.parse(data) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("malformed response head: {e}")),
        };
        // httparse reads exactly three digits: the status indexes a table of 1000.
        let status = head.code.unwrap_or(0);
        if status > 999 {
            return Err(format!("status {status}"));
        }
        let (mut length, mut chunked, mut encoded) = (None, false, false);
        let (mut close, mut keep_alive) = (false, false);
        for header in head.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or("a malformed Content-Length")?;
                if length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length headers".to_owned());
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                encoded = true;
                chunked = tokens(header.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                for token in tokens(header.value) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        let http10 = head.version == Some(0);
        self.response = Response {
            status,
            close: close || (http10 && !keep_alive),
        };
        self.body.clear();
        self.state = match status {
            101 => return Err("101 Switching Protocols is not supported".to_owned()),
            // Informational: the real response follows.
            100..=199 => State::Head,
            204 | 304 => State::Head,
            _ if encoded && chunked => State::ChunkSize,
            _ if encoded => State::UntilClose,
            _ => match length {
                Some(0) => State::Head,
                Some(n) => State::Body(n),
                None => State::UntilClose,
            },
        };
        if let State::UntilClose = self.state {
            self.response.close = true;
        }
        Ok(Some(used))
    }

    /// Skips up to `left` body bytes at the start of `data`, keeping some if asked; returns
    /// how many.
    fn take_body(&mut self, data: &[u8], left: u64) -> usize {
        let take = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let keep = take.min(self.body_limit.saturating_sub(self.body.len()));
        if keep > 0 {
            self.body.extend_from_slice(&data[..keep]);
        }
        take
    }
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in pieces of `step` bytes as a connection would (unused bytes kept for the
    /// next read); returns the responses and the unused rest.
    fn feed(data: &[u8], step: usize) -> (Vec<Response>, Vec<u8>) {
        let mut parser = ResponseParser::new();
        let mut pending = Vec::new();
        let mut responses = Vec::new();
        for piece in data.chunks(step) {
            pending.extend_from_slice(piece);
            loop {
                let (used, done) = parser.parse(&pending).expect("valid response");
                pending.drain(..used);
                match done {
                    Some(r) => responses.push(r),
                    None => break,
                }
            }
        }
        (responses, pending)
    }

    fn ok(status: u16) -> Response {
        Response {
            status,
            close: false,
        }
    }

    #[test]
    fn content_length_bodies_are_skipped_whatever_the_reads() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 302 Found\r\n\
                     Location: /x\r\ncontent-length: 0\r\n\r\nHTTP/1.1 404 Not Found\r\n\
                     Content-Length: 3\r\n\r\nabc";
        for step in [1, 2, 7, data.len()] {
            let (responses, rest) = feed(data, step);
            assert_eq!(responses, [ok(200), ok(302), ok(404)], "step {step}");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5\r\nhello\r\na;ext=1\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n\
                     HTTP/1.1 403 Forbidden\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
        for step in [1, 3, data.len()] {
            let (responses, rest) = feed(data, step);
            assert_eq!(responses, [ok(200), ok(403)], "step {step}");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn no_body_on_204_304_and_after_1xx() {
        // A 304 may carry the Content-Length of the body it does not send.
        let data = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\n\
                     Content-Length: 10\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
                     HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (responses, rest) = feed(data, 4);
        assert_eq!(responses, [ok(204), ok(304), ok(200)]);
        assert!(rest.is_empty());
    }

    #[test]
    fn connection_close_and_bodies_to_the_end() {
        let closing = Response {
            status: 200,
            close: true,
        };
        let (responses, _) = feed(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            5,
        );
        assert_eq!(responses, [closing]);
        let (responses, _) = feed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 5);
        assert_eq!(responses, [closing]);
        let (responses, _) = feed(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            5,
        );
        assert_eq!(responses, [ok(200)]);

        let mut parser = ResponseParser::keeping_body(4);
        let data = b"HTTP/1.1 200 OK\r\n\r\nbody to the end";
        assert_eq!(parser.parse(data), Ok((data.len(), None)));
        assert_eq!(parser.end_of_stream(), Ok(closing));
        assert_eq!(parser.body(), b"body");
    }

    #[test]
    fn incomplete_and_malformed_answers_are_errors() {
        let mut parser = ResponseParser::new();
        assert_eq!(
            parser.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
            Ok((41, None))
        );
        assert!(parser.end_of_stream().is_err());
        assert!(ResponseParser::new().parse(b"garbage\r\n\r\n").is_err());
        assert!(
            ResponseParser::new()
                .parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .is_err()
        );
        assert!(
            ResponseParser::new()
                .parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
                .is_err()
        );
        assert!(
            ResponseParser::new()
                .parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .is_err()
        );
    }

    #[test]
    fn header_files_and_options_are_checked() {
        assert_eq!(
            header_lines("Cookie: a=b\r\n\nX-Y:z\n", "f"),
            Ok(vec!["Cookie: a=b".to_owned(), "X-Y:z".to_owned()])
        );
        assert!(
            header_lines("no colon", "f")
                .unwrap_err()
                .contains("f line 1")
        );
        assert!(header_lines("Bad Name: v", "f").is_err());

        let options = Options::new("127.0.0.1:1".parse().expect("addr"), "h", Stop::Requests(1));
        assert_eq!(options.validate(), Ok(()));
        let bad = |f: fn(&mut Options), arg: &str| {
            let mut o = options.clone();
            f(&mut o);
            let e = o.validate().unwrap_err();
            assert!(e.contains(arg), "{e}");
        };
        bad(|o| o.connections = 0, "--connections");
        bad(|o| o.rate = Some(0.0), "--rate");
        bad(|o| o.path = "x y".into(), "--path");
        bad(|o| o.stop = Stop::Requests(0), "--requests");
        bad(|o| o.credentials = vec!["nope".into()], "--credentials");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let report = Report {
            latencies_us: (1..=1000).collect(),
            ..Report::default()
        };
        assert_eq!(report.percentile_ms(0.5), 0.5);
        assert_eq!(report.percentile_ms(0.999), 0.999);
        assert_eq!(report.percentile_ms(1.0), 1.0);
    }
}
