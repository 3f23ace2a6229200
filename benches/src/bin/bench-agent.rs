//! The parts of `cargo xtask bench` that need more than std, built in release mode so they do
//! not slow the load generation down:
//!
//! - `login --base=URL --start=PATH [--user=NAME]`: a real login as a browser does it (cookie
//!   jar, redirects by hand, the provider's login form), through whatever serves `--base`
//!   (the adapter, oauth2-proxy, Envoy's oauth2 filter); prints the `Cookie` header value the
//!   browser then sends to `--base`.
//! - `grpc-load --addr=HOST:PORT --authority=HOST:PORT --cookie=C --concurrency=N
//!   --duration=SECS [--warmup=SECS] [--path=/]`: `envoy.service.auth.v3.Authorization/Check`
//!   calls as Envoy makes them, N in flight on one HTTP/2 connection (as one Envoy worker does),
//!   for a fixed time; prints `requests= errors= seconds= rps= p50_ms= p99_ms=`.
//! - `http-load --addr=HOST:PORT --host=HOST[:PORT] (--duration=SECS | --requests=N)
//!   [--path=/] [--headers-file=FILE] [--credentials=FILE] [--connections=32] [--rate=R]
//!   [--warmup=SECS] [--expect=200] [--timeout=10]`: HTTP/1.1 `GET`s on keep-alive
//!   connections with exact accounting (`benches::http_load`): request i carries line
//!   i mod n of `--credentials` (one header line each, e.g. `Cookie: ...`), `--headers-file`
//!   holds extra `Name: value` lines; closed loop, or open loop at `--rate` requests/s with
//!   latencies from the intended send time. After one probe with the first credential (which
//!   must answer `--expect`), prints `requests= errors= unexpected= seconds= rps= p50_ms=
//!   p90_ms= p99_ms= p999_ms= max_ms= statuses=200:N,... [offered_rps= late=] reconnects=`.
//! - `grpc-checks --addr=HOST:PORT --authority=HOST:PORT --cookie=C [--warmup=50] [--n=2000]
//!   [--path=/]`: the same `Check` in sequence on one connection, for callgrind: after the
//!   warm-up it prints `WARM` and waits for a line on stdin, after the `--n` counted checks
//!   `DONE` and waits again (the caller zeroes and dumps the counters in between).
//! - `storm --addr=HOST:PORT --host=H --cookie=C --n=N [--path=/]`: N requests sent at once on N
//!   connections with the same (stale) session; prints the statuses and how many answers carried
//!   a `Set-Cookie`.
//! - `envoy-config --kind=none|http|grpc|oauth2 --listen= --app= [--authz= [--authz2=]] [--idp=URL
//!   --client-id= --client-secret= --authorize= --token= --jwks=]`: an Envoy bootstrap (JSON)
//!   as Istio renders it (`envoy_bootstrap`), or with no ext_authz, or with Envoy's own
//!   oauth2 and jwt_authn filters; `--authz2` adds a second authz server to its cluster.
//! - `chart --input=TSV --output=PNG --font=TTF`: throughput and p99 latency per system.
//! - `curves --input=TSV --output=PNG --font=TTF [--title=T]`: how cost grows with the work,
//!   one panel per curve (`benches::curves_chart`).
//! - `id-token --addr=HOST:PORT --host=H --cookie=C`: the ID token of a session, as the adapter
//!   (`--set-authorization-header`) hands it upstream in an allowed check's `Authorization`
//!   header: a JWT from a real login, to send as a bearer token.
//! - `access-token --token=URL --client-id=ID --client-secret=S`: a client_credentials grant
//!   at the token endpoint `--token` (client_secret_basic); prints the access token, which
//!   must be a JWT (node oidc-provider's service client: `jwt_access_token_audience`), to
//!   send as a bearer token; its header and claims go to stderr.
//! - `session-cookie --cookie-name=N --cookie-secret=S [--token-len=N]`: the `Cookie` header
//!   value of a session made here (no login; tokens of `--token-len` bytes), for quick
//!   measurements of an adapter run with the same cookie name and secret.
//! - `mint-sessions --cookie-name=N --cookie-secret=S --cookie=C --count=N [--chunks=1]
//!   --output=FILE`: `--count` distinct cookies of the real login's session in `--cookie`
//!   (sealed again, each with its own nonce; grown with groups to `--chunks` chunks), one
//!   `Cookie: ...` line each in `--output`; prints `cookie_bytes= chunks= groups_added=`
//!   (`benches::mint`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

type Args = HashMap<String, String>;

fn main() {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let mut args = Args::new();
    for arg in argv {
        let Some(rest) = arg.strip_prefix("--") else {
            fail(&format!("unexpected argument {arg:?}"));
        };
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        args.insert(key.to_owned(), value.to_owned());
    }
    let result = match command.as_str() {
        "login" => runtime().block_on(login(&args)),
        "grpc-load" => runtime().block_on(grpc_load(&args)),
        "grpc-checks" => runtime().block_on(grpc_checks(&args)),
        "http-load" => http_load(&args).and_then(|options| {
            runtime()
                .block_on(benches::http_load::run(options))
                .map(|report| {
                    if let Some(e) = &report.first_error {
                        eprintln!("bench-agent: http-load: first transport error: {e}");
                    }
                    report.to_string()
                })
        }),
        "storm" => runtime().block_on(storm(&args)),
        "envoy-config" => envoy_config(&args),
        "chart" => chart(&args),
        "curves" => curves(&args),
        "session-cookie" => session_cookie(&args),
        "mint-sessions" => mint_sessions(&args),
        "id-token" => runtime().block_on(id_token(&args)),
        "access-token" => runtime().block_on(access_token(&args)),
        _ => Err(format!(
            "unknown command {command:?}: login, grpc-load, grpc-checks, http-load, storm, \
             envoy-config, chart, curves, id-token, access-token, session-cookie or mint-sessions"
        )),
    };
    match result {
        Ok(out) => println!("{out}"),
        Err(e) => fail(&e),
    }
}

async fn id_token(args: &Args) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let addr: SocketAddr = arg(args, "addr")?
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\nCookie: {}\r\n\
         Connection: close\r\n\r\n",
        arg(args, "host")?,
        arg(args, "cookie")?
    );
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.trim().strip_prefix("Bearer "))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "the allowed check carried no `Authorization: Bearer`: {}",
                head.lines().next().unwrap_or_default()
            )
        })
}

async fn access_token(args: &Args) -> Result<String, String> {
    let token_url = arg(args, "token")?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let r = client
        .post(token_url)
        .basic_auth(arg(args, "client-id")?, Some(arg(args, "client-secret")?))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body("grant_type=client_credentials")
        .send()
        .await
        .map_err(|e| format!("POST {token_url}: {e}"))?;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "POST {token_url} (client_credentials): {status}: {body}"
        ));
    }
    let answer: Value =
        serde_json::from_str(&body).map_err(|e| format!("token response: {e}: {body}"))?;
    let token = answer["access_token"]
        .as_str()
        .ok_or_else(|| format!("token response without access_token: {body}"))?;
    let parts: Vec<&str> = token.split('.').collect();
    let decode =
        |part: &str| base64url(part).and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    match parts.as_slice() {
        [header, claims, _] => match (decode(header), decode(claims)) {
            (Some(h), Some(c)) => eprintln!("bench-agent: access token header {h}, claims {c}"),
            _ => return Err(format!("the access token is not a JWT: {token}")),
        },
        _ => return Err(format!("the access token is not a JWT (opaque?): {token}")),
    }
    Ok(token.to_owned())
}

/// Unpadded base64url (a JWT part), for showing a token's header and claims.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn session_cookie(args: &Args) -> Result<String, String> {
    let config = oidc_core::Config::builder("https://idp.example.com/realms/bench", "nginx")
        .cookie_secret(arg(args, "cookie-secret")?)
        .cookie(oidc_core::CookieSettings {
            name: arg(args, "cookie-name")?.to_owned(),
            ..oidc_core::CookieSettings::default()
        })
        .build()
        .map_err(|e| e.to_string())?;
    let engine = oidc_core::Engine::new(config).map_err(|e| e.to_string())?;
    let session = benches::session(num(args, "token-len", 900)?, 2);
    let cookies = engine.session_cookies(&session, None);
    benches::cookie_header(&cookies)
        .to_str()
        .map(str::to_owned)
        .map_err(|e| e.to_string())
}

fn mint_sessions(args: &Args) -> Result<String, String> {
    let minted = benches::mint::Mint {
        cookie_name: arg(args, "cookie-name")?.to_owned(),
        cookie_secret: arg(args, "cookie-secret")?.to_owned(),
        cookie: arg(args, "cookie")?.to_owned(),
        count: num(args, "count", 1)?,
        chunks: num(args, "chunks", 1)?,
    }
    .run()?;
    let output = arg(args, "output")?;
    std::fs::write(output, &minted.lines).map_err(|e| format!("--output={output}: {e}"))?;
    Ok(format!(
        "cookie_bytes={} chunks={} groups_added={}",
        minted.cookie_bytes, minted.chunks, minted.groups_added
    ))
}

fn fail(message: &str) -> ! {
    eprintln!("bench-agent: {message}");
    std::process::exit(1)
}

/// One thread: the load generator gets one core of its own.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")))
}

fn arg<'a>(args: &'a Args, key: &str) -> Result<&'a str, String> {
    args.get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("--{key}= is required"))
}

fn num<T: std::str::FromStr>(args: &Args, key: &str, default: T) -> Result<T, String> {
    match args.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{key}={v} is not a number")),
    }
}

// ---------------------------------------------------------------------------------------------
// login

async fn login(args: &Args) -> Result<String, String> {
    let base: url::Url = arg(args, "base")?
        .parse()
        .map_err(|e| format!("--base: {e}"))?;
    let start = args.get("start").map_or("/", String::as_str);
    let user = args.get("user").map_or("alice", String::as_str);
    let host = base.host_str().ok_or("--base has no host")?.to_owned();

    let _ = rustls::crypto::ring::default_provider().install_default();
    // The protected host's cookies are kept by hand (as a browser over TLS keeps them: Envoy's
    // oauth2 filter marks its cookies Secure, and everything here is plain HTTP on loopback);
    // the provider's cookies live in a jar, for `login_at_provider`.
    let app = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // The port comes from the URL; only the address is taken from here.
        .resolve(&host, SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let idp = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut jar = CookieList::default();

    let first = base.join(start).map_err(|e| format!("--start: {e}"))?;
    let r = jar
        .send(app.get(first.clone()).header("accept", "text/html"))
        .await
        .map_err(|e| format!("GET {first}: {e}"))?;
    if !r.status().is_redirection() {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        return Err(format!(
            "GET {first}: expected a redirect to the provider, got {status}: {}",
            excerpt(&body)
        ));
    }
    let authorize = location(&first, r.headers())?;

    // Panics of test_support carry the provider's page: turn them into an error message.
    let login = tokio::spawn({
        let authorize = authorize.to_string();
        let user = user.to_owned();
        async move { test_support::login_at_provider(&idp, &authorize, &user, "bench").await }
    });
    let callback = login
        .await
        .map_err(|e| format!("login at the provider ({authorize}) failed: {e}"))?;

    let callback: url::Url = callback
        .parse()
        .map_err(|e| format!("bad callback URL {callback:?}: {e}"))?;
    let r = jar
        .send(app.get(callback.clone()).header("accept", "text/html"))
        .await
        .map_err(|e| format!("GET {callback}: {e}"))?;
    if !r.status().is_redirection() {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        return Err(format!(
            "the callback {callback} answered {status}, not a redirect: {}",
            excerpt(&body)
        ));
    }
    if jar.0.is_empty() {
        return Err(format!("no cookies for {base} after the login"));
    }
    Ok(jar.header())
}

/// The protected host's cookies, in the order they were set (path and Secure ignored: one
/// host, every path under `/`).
#[derive(Default)]
struct CookieList(Vec<(String, String)>);

impl CookieList {
    async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        let request = if self.0.is_empty() {
            request
        } else {
            request.header(reqwest::header::COOKIE, self.header())
        };
        let response = request.send().await?;
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            if let Ok(v) = value.to_str() {
                self.set(v);
            }
        }
        Ok(response)
    }

    fn set(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            return;
        };
        let deleted = value.is_empty()
            || parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-") || a.contains("1970")
            });
        self.0.retain(|(n, _)| n != name);
        if !deleted {
            self.0.push((name.to_owned(), value.to_owned()));
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn location(from: &url::Url, headers: &reqwest::header::HeaderMap) -> Result<url::Url, String> {
    let value = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("{from}: a redirect without Location"))?;
    from.join(value)
        .map_err(|e| format!("{from}: bad Location {value:?}: {e}"))
}

fn excerpt(body: &str) -> String {
    body.chars().take(400).collect()
}

// ---------------------------------------------------------------------------------------------
// grpc-load

async fn grpc_load(args: &Args) -> Result<String, String> {
    let addr = arg(args, "addr")?;
    let authority = arg(args, "authority")?.to_owned();
    let cookie = arg(args, "cookie")?.to_owned();
    let path = args.get("path").cloned().unwrap_or_else(|| "/".to_owned());
    let concurrency: usize = num(args, "concurrency", 32)?;
    let duration = Duration::from_secs_f64(num(args, "duration", 5.0)?);
    let warmup = Duration::from_secs_f64(num(args, "warmup", 1.0)?);

    let client = grpc_client(addr).await?;
    let request = check_request(&authority, &path, &cookie);

    // One probe first: a denied check means a bad session, not a result.
    let probe = client
        .clone()
        .check(request.clone())
        .await
        .map_err(|e| format!("Check failed: {e}"))?
        .into_inner();
    let code = probe.status.as_ref().map_or(0, |s| s.code);
    if code != 0 {
        return Err(format!("Check denied the session (gRPC status {code})"));
    }

    let run = |length: Duration| {
        let deadline = Instant::now() + length;
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let mut client = client.clone();
                let request = request.clone();
                tokio::spawn(async move {
                    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
                    let mut errors = 0u64;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let ok = match client.check(request.clone()).await {
                            Ok(r) => r.into_inner().status.as_ref().map_or(0, |s| s.code) == 0,
                            Err(_) => false,
                        };
                        latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        if !ok {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        async move {
            let started = Instant::now();
            let mut all = Vec::new();
            let mut errors = 0;
            for task in tasks {
                let (l, e) = task.await.map_err(|e| format!("load task: {e}"))?;
                all.extend(l);
                errors += e;
            }
            Ok::<_, String>((all, errors, started.elapsed()))
        }
    };
    if !warmup.is_zero() {
        run(warmup).await?;
    }
    let (mut latencies, errors, elapsed) = run(duration).await?;
    latencies.sort_unstable();
    let pct = |p: f64| benches::http_load::percentile_ms(&latencies, p);
    let seconds = elapsed.as_secs_f64();
    Ok(format!(
        "requests={} errors={errors} seconds={seconds:.3} rps={:.1} p50_ms={:.3} p99_ms={:.3}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        pct(0.50),
        pct(0.99)
    ))
}

type AuthzClient =
    envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient<
        tonic::transport::Channel,
    >;

/// A client of `envoy.service.auth.v3.Authorization` on one HTTP/2 connection to `addr`.
async fn grpc_client(addr: &str) -> Result<AuthzClient, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("--addr: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    Ok(AuthzClient::new(channel))
}

/// The `CheckRequest` Envoy sends in gRPC mode for `GET <path>` of `authority` with `cookie`:
/// every header, lower-cased, pseudo-headers included.
fn check_request(
    authority: &str,
    path: &str,
    cookie: &str,
) -> envoy_types::pb::envoy::service::auth::v3::CheckRequest {
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

    let headers: HashMap<String, String> = [
        (":authority", authority),
        (":path", path),
        (":method", "GET"),
        (":scheme", "http"),
        ("accept", "text/html"),
        ("cookie", cookie),
        ("user-agent", "bench-agent"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5d0c1f0e-8a4b-4f7e-9a55-bench0000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "1".into(),
                    method: "GET".into(),
                    headers,
                    path: path.to_owned(),
                    host: authority.to_owned(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    size: -1,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// grpc-checks

/// Sequential checks on one connection, for callgrind: `--warmup` checks, then `WARM` on
/// stdout and a line awaited on stdin (the caller zeroes the counters), then `--n` checks, then
/// `DONE` and a line awaited on stdin (the caller dumps the counters) before the connection
/// closes. Every answer must be an allow (status `OK`).
async fn grpc_checks(args: &Args) -> Result<String, String> {
    use std::io::{BufRead, Write};

    let addr = arg(args, "addr")?;
    let authority = arg(args, "authority")?.to_owned();
    let cookie = arg(args, "cookie")?.to_owned();
    let path = args.get("path").cloned().unwrap_or_else(|| "/".to_owned());
    let warmup: usize = num(args, "warmup", 50)?;
    let n: usize = num(args, "n", 2000)?;

    let mut client = grpc_client(addr).await?;
    let request = check_request(&authority, &path, &cookie);
    let mut checks = async |count: usize| -> Result<(), String> {
        for i in 0..count {
            let answer = client
                .check(request.clone())
                .await
                .map_err(|e| format!("Check {i} failed: {e}"))?
                .into_inner();
            let code = answer.status.as_ref().map_or(0, |s| s.code);
            if code != 0 {
                return Err(format!("Check {i} denied (gRPC status {code})"));
            }
        }
        Ok(())
    };
    let handshake = |what: &str| -> Result<(), String> {
        println!("{what}");
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("stdin: {e}"))?;
        Ok(())
    };
    checks(warmup).await?;
    handshake("WARM")?;
    checks(n).await?;
    handshake("DONE")?;
    Ok(format!("checks={n}"))
}

// ---------------------------------------------------------------------------------------------
// storm

async fn storm(args: &Args) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let addr: SocketAddr = arg(args, "addr")?
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    let host = arg(args, "host")?;
    let cookie = arg(args, "cookie")?;
    let path = args.get("path").map_or("/", String::as_str);
    let n: usize = num(args, "n", 50)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nCookie: {cookie}\r\n\
         Connection: close\r\n\r\n"
    );

    // Connect every client first, then send all requests at once.
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = s.set_nodelay(true);
        streams.push(s);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            let barrier = barrier.clone();
            let request = request.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                s.write_all(request.as_bytes()).await?;
                let mut buf = Vec::new();
                tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
                    .await
                    .map_err(|_| std::io::Error::other("timeout"))??;
                Ok::<_, std::io::Error>(buf)
            })
        })
        .collect();
    let mut statuses: std::collections::BTreeMap<String, usize> = Default::default();
    let mut with_cookie = 0;
    for task in tasks {
        let answer = task.await.map_err(|e| format!("storm task: {e}"))?;
        let status = match answer {
            Ok(buf) => {
                let text = String::from_utf8_lossy(&buf);
                let head = text.split("\r\n\r\n").next().unwrap_or_default();
                if head
                    .lines()
                    .any(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
                {
                    with_cookie += 1;
                }
                head.get(9..12).unwrap_or("???").to_owned()
            }
            Err(e) => format!("error({})", e.kind()),
        };
        *statuses.entry(status).or_default() += 1;
    }
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    Ok(format!(
        "n={n} statuses={} set_cookie={with_cookie}",
        statuses.join(",")
    ))
}

// ---------------------------------------------------------------------------------------------
// http-load

/// The options of `http-load` (see the top of this file).
fn http_load(args: &Args) -> Result<benches::http_load::Options, String> {
    use benches::http_load::{Options, Stop, header_lines};

    let known = [
        "addr",
        "host",
        "path",
        "headers-file",
        "credentials",
        "connections",
        "duration",
        "requests",
        "rate",
        "warmup",
        "expect",
        "timeout",
    ];
    if let Some(key) = args.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "http-load: unknown argument --{key} (extra headers go in --headers-file=FILE); \
             known: --{}",
            known.join(", --")
        ));
    }
    let addr: SocketAddr = arg(args, "addr")?
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    let seconds = |key: &str, default: f64| -> Result<Duration, String> {
        let s: f64 = num(args, key, default)?;
        Duration::try_from_secs_f64(s).map_err(|_| format!("--{key}={s}: not a duration"))
    };
    let stop = match (args.contains_key("duration"), args.contains_key("requests")) {
        (true, false) => Stop::Duration(seconds("duration", 0.0)?),
        (false, true) => Stop::Requests(num(args, "requests", 0)?),
        _ => return Err("give either --duration=SECS or --requests=N".to_owned()),
    };
    let lines = |key: &str| -> Result<Vec<String>, String> {
        match args.get(key) {
            None => Ok(Vec::new()),
            Some(file) => {
                let text =
                    std::fs::read_to_string(file).map_err(|e| format!("--{key}={file}: {e}"))?;
                header_lines(&text, &format!("--{key}={file}"))
            }
        }
    };
    let credentials = lines("credentials")?;
    if args.contains_key("credentials") && credentials.is_empty() {
        return Err("--credentials: the file holds no header line".to_owned());
    }
    Ok(Options {
        path: args.get("path").cloned().unwrap_or_else(|| "/".to_owned()),
        headers: lines("headers-file")?,
        credentials,
        connections: num(args, "connections", 32)?,
        rate: args
            .contains_key("rate")
            .then(|| num(args, "rate", 0.0))
            .transpose()?,
        warmup: seconds("warmup", 0.0)?,
        expect: num(args, "expect", 200)?,
        timeout: seconds("timeout", 10.0)?,
        ..Options::new(addr, arg(args, "host")?, stop)
    })
}

// ---------------------------------------------------------------------------------------------
// envoy-config

/// Adds `second` to the ext_authz cluster (the one whose endpoint is `first`): two replicas of
/// the authz server behind one Envoy, round robin.
fn add_authz_endpoint(
    bootstrap: &mut Value,
    first: SocketAddr,
    second: SocketAddr,
) -> Result<(), String> {
    let port = u64::from(first.port());
    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .ok_or("the rendered config has no clusters")?;
    for cluster in clusters {
        let Some(endpoints) =
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"].as_array_mut()
        else {
            continue;
        };
        let is_authz = endpoints.iter().any(|e| {
            e["endpoint"]["address"]["socket_address"]["port_value"].as_u64() == Some(port)
        });
        if is_authz {
            let mut copy = endpoints[0].clone();
            copy["endpoint"]["address"]["socket_address"]["address"] =
                json!(second.ip().to_string());
            copy["endpoint"]["address"]["socket_address"]["port_value"] = json!(second.port());
            endpoints.push(copy);
            return Ok(());
        }
    }
    Err(format!("no cluster has the authz endpoint {first}"))
}

fn envoy_config(args: &Args) -> Result<String, String> {
    use envoy_bootstrap::{AuthzTarget, EnvoyConfig, VirtualHost};

    let sock = |key: &str| -> Result<SocketAddr, String> {
        arg(args, key)?.parse().map_err(|e| format!("--{key}: {e}"))
    };
    let kind = arg(args, "kind")?;
    let listen = sock("listen")?;
    let app = sock("app")?;
    let timeout = Duration::from_secs(5);
    let authz = match kind {
        "grpc" => AuthzTarget::Grpc {
            addr: sock("authz")?,
            timeout,
        },
        "http" => AuthzTarget::Http {
            addr: sock("authz")?,
            timeout,
        },
        // Not used: the ext_authz filter is taken out below.
        _ => AuthzTarget::Http { addr: app, timeout },
    };
    let mut config = EnvoyConfig::new(listen, authz);
    config.hosts = vec![VirtualHost::protected(envoy_bootstrap::SEED_APP_HOST, app)];
    if let Some(admin) = args.get("admin") {
        config.admin = Some(admin.parse().map_err(|e| format!("--admin: {e}"))?);
    }
    let mut bootstrap = config.to_json();
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    let router = hcm["http_filters"]
        .as_array()
        .and_then(|f| f.last().cloned())
        .ok_or("the rendered config has no http_filters")?;
    match kind {
        "http" | "grpc" => {
            if let Some(second) = args.get("authz2") {
                let second: SocketAddr = second.parse().map_err(|e| format!("--authz2: {e}"))?;
                add_authz_endpoint(&mut bootstrap, sock("authz")?, second)?;
            }
        }
        "none" => {
            hcm["http_filters"] = json!([router]);
            strip_authz_cluster(&mut bootstrap);
        }
        "oauth2" => {
            let filters = oauth2_filters(args)?;
            let mut all = filters;
            all.push(router);
            hcm["http_filters"] = Value::Array(all);
            strip_authz_cluster(&mut bootstrap);
            let idp: url::Url = arg(args, "idp")?
                .parse()
                .map_err(|e| format!("--idp: {e}"))?;
            let idp_addr = SocketAddr::from((
                [127, 0, 0, 1],
                idp.port_or_known_default().ok_or("--idp has no port")?,
            ));
            let resources = &mut bootstrap["static_resources"];
            if let Some(clusters) = resources["clusters"].as_array_mut() {
                clusters.push(json!({
                    "name": "idp",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "idp",
                        "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                            "socket_address": {
                                "address": idp_addr.ip().to_string(),
                                "port_value": idp_addr.port(),
                            }
                        } } }] }],
                    },
                }));
            }
            resources["secrets"] = json!([
                { "name": "token", "generic_secret": { "secret": {
                    "inline_string": arg(args, "client-secret")? } } },
                { "name": "hmac", "generic_secret": { "secret": {
                    "inline_string": "bench-hmac-secret-0123456789abcdef" } } },
            ]);
        }
        other => return Err(format!("--kind={other}: none, http, grpc or oauth2")),
    }
    serde_json::to_string_pretty(&bootstrap).map_err(|e| e.to_string())
}

fn strip_authz_cluster(bootstrap: &mut Value) {
    use envoy_bootstrap::{AUTHZ_GRPC_CLUSTER, AUTHZ_HTTP_CLUSTER};
    if let Some(clusters) = bootstrap["static_resources"]["clusters"].as_array_mut() {
        clusters.retain(|c| c["name"] != AUTHZ_HTTP_CLUSTER && c["name"] != AUTHZ_GRPC_CLUSTER);
    }
}

/// Envoy's own login (oauth2 filter: code flow with PKCE, HMAC-signed token cookies) followed by
/// jwt_authn checking the ID token cookie's signature, issuer, audience and expiry on every
/// request against the provider's JWKS.
fn oauth2_filters(args: &Args) -> Result<Vec<Value>, String> {
    let idp = arg(args, "idp")?.trim_end_matches('/').to_owned();
    let client_id = arg(args, "client-id")?;
    let timeout = "5s";
    Ok(vec![
        json!({
            "name": "envoy.filters.http.oauth2",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.oauth2.v3.OAuth2",
                "config": {
                    "token_endpoint": {
                        "cluster": "idp",
                        "uri": arg(args, "token")?,
                        "timeout": timeout,
                    },
                    "authorization_endpoint": arg(args, "authorize")?,
                    "redirect_uri": "%REQ(x-forwarded-proto)%://%REQ(:authority)%/oauth2/callback",
                    "redirect_path_matcher": { "path": { "exact": "/oauth2/callback" } },
                    "signout_path": { "path": { "exact": "/oauth2/sign_out" } },
                    "credentials": {
                        "client_id": client_id,
                        "token_secret": { "name": "token" },
                        "hmac_secret": { "name": "hmac" },
                    },
                    "auth_scopes": ["openid", "email", "profile"],
                    "auth_type": "BASIC_AUTH",
                    // jwt_authn reads the ID token from its cookie: keep it readable.
                    "disable_token_encryption": true,
                },
            },
        }),
        json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {
                    "idp": {
                        "issuer": idp,
                        "audiences": [client_id],
                        "from_cookies": ["IdToken"],
                        "remote_jwks": {
                            "http_uri": { "uri": arg(args, "jwks")?, "cluster": "idp", "timeout": timeout },
                            "cache_duration": "600s",
                            "async_fetch": {},
                        },
                    },
                },
                "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } }],
            },
        }),
    ])
}

// ---------------------------------------------------------------------------------------------
// chart

/// The cost curves' chart (`benches::curves_chart` has the input's format).
fn curves(args: &Args) -> Result<String, String> {
    let input =
        std::fs::read_to_string(arg(args, "input")?).map_err(|e| format!("--input: {e}"))?;
    let output = arg(args, "output")?;
    let font = std::fs::read(arg(args, "font")?).map_err(|e| format!("--font: {e}"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    let title = args.get("title").map_or("cost curves", String::as_str);
    benches::curves_chart::draw(&input, std::path::Path::new(output), font, title)?;
    Ok(format!("wrote {output}"))
}

/// Input: one row per system, tab-separated: label, kind (`ours`, `peer`, `limit`, `envoy`),
/// requests/s, p99 in ms.
fn chart(args: &Args) -> Result<String, String> {
    use plotters::prelude::*;

    let input =
        std::fs::read_to_string(arg(args, "input")?).map_err(|e| format!("--input: {e}"))?;
    let output = arg(args, "output")?;
    let font = std::fs::read(arg(args, "font")?).map_err(|e| format!("--font: {e}"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "--font: not a TrueType/OpenType font".to_owned())?;

    struct Row {
        label: String,
        kind: String,
        rps: f64,
        p99: f64,
    }
    let rows: Vec<Row> = input
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 4 {
                return Err(format!("bad row {l:?}"));
            }
            Ok(Row {
                label: f[0].to_owned(),
                kind: f[1].to_owned(),
                rps: f[2]
                    .parse()
                    .map_err(|_| format!("bad requests/s in {l:?}"))?,
                p99: f[3].parse().map_err(|_| format!("bad p99 in {l:?}"))?,
            })
        })
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Err("no rows".into());
    }
    let n = rows.len();
    let color = |kind: &str| match kind {
        "ours" => RGBColor(0x1f, 0x77, 0xb4),
        "peer" => RGBColor(0xd6, 0x27, 0x28),
        "envoy" => RGBColor(0x7f, 0x7f, 0x7f),
        _ => RGBColor(0x2c, 0xa0, 0x2c),
    };
    let panel_h = 90 + 30 * n as u32;
    let root = BitMapBackend::new(output, (1100, 2 * panel_h + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let title = args
        .get("title")
        .cloned()
        .unwrap_or_else(|| "cargo xtask bench".to_owned());
    let root = root
        .titled(&title, ("sans-serif", 22))
        .map_err(|e| e.to_string())?;
    let panels = root.split_evenly((2, 1));
    type Metric = (&'static str, fn(&Row) -> f64, &'static str);
    let metrics: [Metric; 2] = [
        (
            "throughput (requests/s, higher is better)",
            |r| r.rps,
            "req/s",
        ),
        ("p99 latency (ms, lower is better)", |r| r.p99, "ms"),
    ];
    for (panel, (caption, value, unit)) in panels.iter().zip(metrics.iter()) {
        let max = rows.iter().map(value).fold(0.0, f64::max).max(1e-9) * 1.18;
        let mut chart = ChartBuilder::on(panel)
            .caption(*caption, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(330)
            .build_cartesian_2d(0.0..max, (0..n as i32 - 1).into_segmented())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_style(("sans-serif", 14))
            .x_label_style(("sans-serif", 13))
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => rows
                    .get(n - 1 - *i as usize)
                    .map(|r| r.label.clone())
                    .unwrap_or_default(),
                SegmentValue::Last => String::new(),
            })
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let y = (n - 1 - i) as i32;
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (value(r), SegmentValue::Exact(y + 1)),
                    ],
                    color(&r.kind).filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let y = (n - 1 - i) as i32;
                let v = value(r);
                let text = if *unit == "ms" {
                    format!(" {v:.2} {unit}")
                } else {
                    format!(" {v:.0} {unit}")
                };
                Text::new(
                    text,
                    (v, SegmentValue::CenterOf(y)),
                    ("sans-serif", 13).into_font().color(&BLACK).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Left,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    ),
                )
            }))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(format!("wrote {output}"))
}
