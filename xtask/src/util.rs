//! Small helpers shared by the components: paths, running commands, and background services
//! (started in their own process group, stopped by PID on exit, on failure and on Ctrl-C).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// The workspace root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// `$XDG_CACHE_HOME/oidc-authz`, or `~/.cache/oidc-authz`. Kept in step with
/// `test_support::cache_root`.
pub fn cache_root() -> Result<PathBuf, String> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = match (non_empty("XDG_CACHE_HOME"), non_empty("HOME")) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => PathBuf::from(home).join(".cache"),
        (None, None) => return Err("neither XDG_CACHE_HOME nor HOME is set".into()),
    };
    Ok(base.join("oidc-authz"))
}

/// Runs `program --version` and returns its first output line, or an error naming what to
/// install.
pub fn tool_version(program: &str, hint: &str) -> Result<String, String> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{program}` not found ({e}); {hint}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program} --version` failed ({}); {hint}",
            output.status
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// Runs a command with inherited stdout/stderr and returns its exit status.
pub fn status(cmd: &mut Command) -> Result<ExitStatus, String> {
    cmd.stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))
}

/// Removes from `cmd` (a nested `cargo`) the variables `cargo run` set for xtask itself
/// (`CARGO_PKG_NAME=xtask`, `CARGO_MANIFEST_DIR`, ...). Build scripts that watch them (ring's
/// `rerun-if-env-changed=CARGO_PKG_NAME`) would otherwise see a change and rebuild, and again at
/// the next `cargo build` from a shell.
pub fn without_cargo_run_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*key,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&*key);
        }
    }
    cmd
}

/// Runs a command with inherited stdout/stderr and fails unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let status = status(cmd)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Installs Debian packages: `apt-get install -y ARGS`, non-interactive; when that fails
/// (stale package lists), `apt-get update` and the install once more. `what` names the
/// component in the progress line.
pub fn apt_install(what: &str, args: &[&str]) -> Result<(), String> {
    let apt_get = |first: &str| {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive").arg(first);
        cmd
    };
    let install = || run(apt_get("install").arg("-y").args(args));
    if install().is_ok() {
        return Ok(());
    }
    println!("[xtask] {what}: apt-get install failed; running apt-get update and trying again");
    run(&mut apt_get("update"))?;
    install()
}

/// The process exit code for a child's exit status (1 when killed by a signal).
pub fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)),
        None => ExitCode::FAILURE,
    }
}

/// Replaces `dest` by the fully prepared directory `staging` (same file system), tolerating a
/// concurrent install that got there first when `is_complete(dest)` says so.
pub fn publish_dir(
    staging: &Path,
    dest: &Path,
    is_complete: impl Fn(&Path) -> bool,
) -> Result<(), String> {
    if dest.exists() {
        if is_complete(dest) {
            let _ = std::fs::remove_dir_all(staging);
            return Ok(());
        }
        std::fs::remove_dir_all(dest)
            .map_err(|e| format!("cannot remove broken {}: {e}", dest.display()))?;
    }
    match std::fs::rename(staging, dest) {
        Ok(()) => Ok(()),
        Err(_) if is_complete(dest) => {
            let _ = std::fs::remove_dir_all(staging);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot move {} to {}: {e}",
            staging.display(),
            dest.display()
        )),
    }
}

/// A program to run: `$<env_var>` if set (a file, or `None` when it names none), else the first
/// `program` on `PATH` or in `also` (directories a package puts it in).
pub fn find_program(env_var: Option<&str>, program: &str, also: &[&str]) -> Option<PathBuf> {
    if let Some(p) = env_var.and_then(std::env::var_os).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(also.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Reserves a port on 127.0.0.1 for `reason` (e.g. `"keycloak (cargo xtask test)"`) until
/// xtask exits: for a server that cannot bind port 0 and report the port it got. The port lies
/// below the kernel's ephemeral range (no `bind(0)` or outgoing connection of any process gets
/// it) and is locked against the test processes and any other xtask (the `test-ports` crate
/// says why), so it stays free until the server binds it, however long that takes.
pub fn reserve_port(reason: &str) -> Result<u16, String> {
    test_ports::reserve(reason).map_err(|e| e.to_string())
}

/// [`reserve_port`] for callers that give no reason (recorded as "xtask: unnamed").
pub fn free_port() -> Result<u16, String> {
    reserve_port("xtask: unnamed")
}

/// The status code of `GET http://<host><path>`, sent to `addr` (so `host` need not resolve),
/// or `None` when there is no complete answer within `timeout`. Plain HTTP/1.1, std only: for
/// readiness checks.
pub fn http_status(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    // "HTTP/1.1 200 OK"
    let line = std::str::from_utf8(&head[..len]).ok()?;
    let code = line.strip_prefix("HTTP/1.")?.get(2..5)?;
    code.parse().ok()
}

/// The last `lines` lines of a log file (lossy UTF-8), for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How long a service gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Services started by this process that are still running, by id, with their per-run
/// directory: what the Ctrl-C handler stops and removes. A [`Service`] owns its child through
/// this table.
static RUNNING: Mutex<Vec<(u64, Child, Option<PathBuf>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static SIGNALS: Once = Once::new();

fn running() -> std::sync::MutexGuard<'static, Vec<(u64, Child, Option<PathBuf>)>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs (once) the handler that stops every running service on Ctrl-C, SIGTERM or SIGHUP
/// and exits with status 130.
fn install_signal_handler() {
    SIGNALS.call_once(|| {
        let result = ctrlc::set_handler(|| {
            eprintln!("[xtask] interrupted: stopping the services it started");
            let children = std::mem::take(&mut *running());
            for (_, mut child, run_dir) in children {
                terminate(&mut child);
                if let Some(dir) = run_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            std::process::exit(130);
        });
        if let Err(e) = result {
            eprintln!("[xtask] warning: cannot handle Ctrl-C ({e}); stop services by hand");
        }
    });
}

/// Sends `signal` to the process group led by `pid` (every service runs in its own group, so
/// this reaches the children of its start script too).
fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".to_owned(), format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM to the child's process group, SIGKILL after [`STOP_GRACE`], then reaps the child.
fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        // The leader is gone; make sure no straggler of its group is left.
        signal_group(child.id(), "KILL");
        return;
    }
    signal_group(child.id(), "TERM");
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            signal_group(child.id(), "KILL");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal_group(child.id(), "KILL");
    let _ = child.wait();
}

/// A background process started by [`Services::spawn`]: runs in its own process group with
/// stdout and stderr in a log file, and is stopped (SIGTERM to its group, then SIGKILL) when
/// [`Services`] stops it, on drop, or on Ctrl-C.
pub struct Service {
    id: u64,
    /// The name in progress lines (`keycloak`).
    pub name: String,
    /// The process id (also its process group id).
    pub pid: u32,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// A per-run directory removed after the service stops (unless logs are kept).
    pub run_dir: Option<PathBuf>,
    watch: Option<Watch>,
}

/// How [`Services::wait_ready`] tells that a service is ready.
pub struct Readiness {
    /// What it waits for, for messages (`http://.../.well-known/openid-configuration`).
    pub what: String,
    /// Gives up after this long from the start of the service, or half of it from the call to
    /// [`Services::wait_ready`], whichever is later (the caller may have been busy
    /// compiling while the service booted on the same cores).
    pub timeout: Duration,
    /// Returns true once the service is ready; polled from a background thread.
    pub probe: Box<dyn FnMut() -> bool + Send>,
}

impl Readiness {
    /// A readiness check.
    pub fn new(
        what: String,
        timeout: Duration,
        probe: impl FnMut() -> bool + Send + 'static,
    ) -> Self {
        Readiness {
            what,
            timeout,
            probe: Box::new(probe),
        }
    }
}

/// A readiness check in progress: a thread polls the probe from the start of the service.
struct Watch {
    what: String,
    timeout: Duration,
    started: Instant,
    /// Time from the start to the first successful probe.
    ready_after: Arc<Mutex<Option<Duration>>>,
    stop: Arc<AtomicBool>,
}

impl Watch {
    fn start(id: u64, readiness: Readiness) -> Watch {
        let Readiness {
            what,
            timeout,
            mut probe,
        } = readiness;
        let started = Instant::now();
        let ready_after = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, stopped) = (ready_after.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) && exit_status(id).is_none() {
                if probe() {
                    *ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(started.elapsed());
                    return;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Watch {
            what,
            timeout,
            started,
            ready_after,
            stop,
        }
    }

    fn ready_after(&self) -> Option<Duration> {
        *self.ready_after.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The exit status of service `id`, if it has ended (or was stopped).
fn exit_status(id: u64) -> Option<String> {
    let mut table = running();
    match table.iter_mut().find(|(i, _, _)| *i == id) {
        Some((_, child, _)) => child.try_wait().ok().flatten().map(|s| s.to_string()),
        None => Some("stopped".to_owned()),
    }
}

impl Service {
    fn stop(&mut self, keep_run_dir: bool) {
        if let Some(watch) = self.watch.take() {
            watch.stop.store(true, Ordering::Relaxed);
        }
        let child = {
            let mut table = running();
            let index = table.iter().position(|(id, _, _)| *id == self.id);
            index.map(|i| table.remove(i).1)
        };
        if let Some(mut child) = child {
            terminate(&mut child);
        }
        if let Some(dir) = self.run_dir.take() {
            if keep_run_dir {
                println!("[xtask] {}: kept its files at {}", self.name, dir.display());
            } else {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "{} {what}\n--- {} log ({}), last lines ---\n{}\n--- end of {} log ---",
            self.name,
            self.name,
            self.log.display(),
            log_tail(&self.log, 60),
            self.name
        )
    }
}

/// The services this process started, stopped in reverse order when dropped (on success, on
/// error and on panic), and by the Ctrl-C handler.
#[derive(Default)]
pub struct Services {
    list: Vec<Service>,
    keep_logs: bool,
}

impl Services {
    /// No services yet; installs the Ctrl-C (and SIGTERM, SIGHUP) handler.
    pub fn new() -> Self {
        install_signal_handler();
        Services::default()
    }

    /// Starts `cmd` in the background in its own process group, stdout and stderr appended to
    /// `log`. `ready` (if any) is polled from now on and awaited by [`Services::wait_ready`];
    /// `run_dir` (if any) is removed once the service stops.
    pub fn spawn(
        &mut self,
        name: &str,
        cmd: &mut Command,
        log: &Path,
        run_dir: Option<PathBuf>,
        ready: Option<Readiness>,
    ) -> Result<&Service, String> {
        install_signal_handler();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let file2 = file
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2))
            .process_group(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // Hold the table while spawning, so that a Ctrl-C in between cannot miss the child.
        let mut table = running();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({cmd:?}): {e}"))?;
        let pid = child.id();
        table.push((id, child, run_dir.clone()));
        drop(table);
        self.list.push(Service {
            id,
            name: name.to_owned(),
            pid,
            log: log.to_path_buf(),
            run_dir,
            watch: ready.map(|r| Watch::start(id, r)),
        });
        Ok(self.list.last().expect("just pushed"))
    }

    /// Waits until every service with a readiness check passes it, printing
    /// `[xtask] <name>: ready in N s` (from its start). Fails (with the service's log tail)
    /// when one exits or is not ready in time; the services are stopped when `self` is dropped.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let called = Instant::now();
        for service in &mut self.list {
            let Some(watch) = service.watch.take() else {
                continue;
            };
            let deadline = (watch.started + watch.timeout).max(called + watch.timeout / 2);
            loop {
                if let Some(after) = watch.ready_after() {
                    println!(
                        "[xtask] {}: ready in {:.1} s",
                        service.name,
                        after.as_secs_f64()
                    );
                    break;
                }
                if let Some(status) = exit_status(service.id) {
                    self.keep_logs = true;
                    return Err(service.failure(&format!(
                        "exited ({status}) before it was ready ({})",
                        watch.what
                    )));
                }
                if Instant::now() > deadline {
                    watch.stop.store(true, Ordering::Relaxed);
                    self.keep_logs = true;
                    return Err(service.failure(&format!(
                        "is not ready after {:.0} s ({})",
                        watch.started.elapsed().as_secs_f64(),
                        watch.what
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Fails (with the service's log tail, keeping the logs) if a service has exited by
    /// itself: for commands that keep services running until Ctrl-C (`cargo xtask demo`).
    /// Services the Ctrl-C handler is stopping are not reported (it exits the process).
    pub fn check_running(&mut self) -> Result<(), String> {
        for service in &self.list {
            let exited = running()
                .iter_mut()
                .find(|(id, _, _)| *id == service.id)
                .and_then(|(_, child, _)| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.keep_logs = true;
                return Err(service.failure(&format!("exited unexpectedly ({status})")));
            }
        }
        Ok(())
    }

    /// Keeps the services' per-run directories (logs, data) when they stop, and prints the end
    /// of each log now: for a failed test run.
    pub fn keep_logs(&mut self) {
        self.keep_logs = true;
        for service in &self.list {
            eprintln!(
                "--- {} log ({}), last lines ---\n{}\n--- end of {} log ---",
                service.name,
                service.log.display(),
                log_tail(&service.log, 40),
                service.name
            );
        }
    }

    /// Stops every service, the last started first.
    pub fn stop_all(&mut self) {
        while let Some(mut service) = self.list.pop() {
            println!("[xtask] {}: stopping (pid {})", service.name, service.pid);
            service.stop(self.keep_logs);
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop_all();
    }
}
