//! TCP ports for test servers that cannot bind port 0 themselves, reserved for the whole run
//! across processes. Std only: `xtask` (Keycloak) and `test-support` (Redis, Sentinel, an
//! adapter a test restarts on the same port) share it.
//!
//! ```
//! let port = test_ports::reserve("redis-server for my test").expect("a free port");
//! assert!(port >= test_ports::FLOOR);
//! ```
//!
//! # Why not "bind port 0, read the port, close the listener"
//!
//! That port is free only at the moment it is read. Until the server binds it (a JVM takes
//! seconds), the kernel may hand it to any `bind(0)` (Chromium, another test's listener) or use
//! it as the source port of any outgoing connection, and another test process may pick the
//! same "free" port. Each of those made a test fail now and then.
//!
//! # What [`reserve`] does instead
//!
//! - **Ports outside the kernel's ephemeral range** (`/proc/sys/net/ipv4/ip_local_port_range`,
//!   32768-60999 by default), from [`FLOOR`] up: the kernel never picks those for `bind(0)` or
//!   for an outgoing connection, so only a program that asks for the number can take it.
//!   Below [`FLOOR`] live well-known service ports (8080, 6379, 9901, ...) that the machine or
//!   the demo may start later.
//! - **A lock per port, across processes**: an exclusive non-blocking `flock` on
//!   `$TMPDIR/oidc-authz-ports/<port>` ([`lock_dir`]), kept open for the life of the process.
//!   Concurrent test binaries, xtask's Keycloak and a demo never get the same port, and a
//!   server a test stops and restarts keeps its port meanwhile. The kernel drops the lock when
//!   the process ends, however it ends, so nothing is left behind to clean up. Lock files are
//!   never deleted: unlinking a lock file while another process has it open would let a third
//!   process lock a new file of the same name, and two processes would hold the port. Scanning
//!   starts at the bottom of the range, so the same few files are reused run after run.
//! - **The reason** (`reason`) is written into the lock file with the process id and program,
//!   so `cat $TMPDIR/oidc-authz-ports/<port>` says who holds (or last held) a port, and every
//!   error names it. Whether it is held now: `flock -n <file> true` fails while it is.
//! - **A bind check**: a port some other program listens on (on 127.0.0.1 or any address) is
//!   skipped.
//! - **Never twice in a process**: a port stays reserved, and is never handed out again, until
//!   the process ends.
//!
//! Every process that reserves ports this way must use the same temporary directory
//! (`$TMPDIR`, else `/tmp`); the commands of this workspace inherit it from one another.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The lowest port handed out: below it are well-known service ports (8080, 6379, 9901, ...).
pub const FLOOR: u16 = 10_000;

/// The name of the lock directory under the temporary directory.
pub const LOCK_DIR_NAME: &str = "oidc-authz-ports";

/// Where Linux keeps the ephemeral port range.
const PORT_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Linux's default ephemeral range, assumed when [`PORT_RANGE_FILE`] cannot be read.
const DEFAULT_EPHEMERAL_RANGE: (u16, u16) = (32_768, 60_999);

/// Why a port could not be reserved; its message names the reason given and what to fix.
#[derive(Debug)]
pub struct Error {
    reason: String,
    detail: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reserve a TCP port for {:?}: {}",
            self.reason, self.detail
        )
    }
}

impl std::error::Error for Error {}

/// Reserves a port on 127.0.0.1 for `reason` (e.g. `"redis-server (sentinel)"`) until this
/// process ends: outside the kernel's ephemeral range, locked against every other process that
/// uses this crate, bindable right now, and never returned twice in this process. See the
/// crate documentation for why.
///
/// The caller's server should bind it soon; nobody else will take it meanwhile.
pub fn reserve(reason: &str) -> Result<u16, Error> {
    global()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .reserve(reason)
}

/// The reason a port was reserved for by this process, if it was.
pub fn reason(port: u16) -> Option<String> {
    global()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .held
        .get(&port)
        .map(|held| held.reason.clone())
}

/// `$TMPDIR/oidc-authz-ports` (or `/tmp/oidc-authz-ports`): one lock file per reserved port,
/// holding the reason, process id and program of its holder.
pub fn lock_dir() -> PathBuf {
    std::env::temp_dir().join(LOCK_DIR_NAME)
}

/// The kernel's ephemeral port range `(first, last)`, from
/// `/proc/sys/net/ipv4/ip_local_port_range` (Linux's default 32768-60999 if it cannot be read).
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string(PORT_RANGE_FILE)
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL_RANGE)
}

/// The ports [`reserve`] picks from, lowest first: [`FLOOR`] up to the ephemeral range, and
/// above it up to 65535.
pub fn candidate_ranges() -> Vec<RangeInclusive<u16>> {
    let (first, last) = ephemeral_range();
    ranges_outside(first, last)
}

fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut parts = text.split_whitespace();
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    (first <= last).then_some((first, last))
}

fn ranges_outside(first: u16, last: u16) -> Vec<RangeInclusive<u16>> {
    let mut ranges = Vec::new();
    if first > FLOOR {
        ranges.push(FLOOR..=first - 1);
    }
    if last < u16::MAX {
        ranges.push((last + 1).max(FLOOR)..=u16::MAX);
    }
    ranges
}

fn global() -> &'static Mutex<Allocator> {
    static GLOBAL: OnceLock<Mutex<Allocator>> = OnceLock::new();
    GLOBAL.get_or_init(|| Mutex::new(Allocator::new(lock_dir(), candidate_ranges())))
}

/// A reserved port: the locked file (the lock lasts as long as it is open) and the reason.
#[derive(Debug)]
struct Held {
    reason: String,
    _lock: File,
}

/// Reserves ports from `ranges` with lock files in `dir`. The process uses one ([`global`]);
/// tests make more, with their own directories (two allocators on one directory behave like
/// two processes: `flock` locks belong to open files, not to processes).
#[derive(Debug)]
struct Allocator {
    dir: PathBuf,
    ranges: Vec<RangeInclusive<u16>>,
    held: BTreeMap<u16, Held>,
    /// Index (over all ranges) of the next candidate to try.
    cursor: usize,
}

/// What a failed scan found, for the error message.
#[derive(Default)]
struct Scan {
    ours: usize,
    others: usize,
    in_use: usize,
    /// One port locked by another process and what its lock file says.
    example: Option<(u16, String)>,
}

impl Allocator {
    fn new(dir: PathBuf, ranges: Vec<RangeInclusive<u16>>) -> Allocator {
        Allocator {
            dir,
            ranges,
            held: BTreeMap::new(),
            cursor: 0,
        }
    }

    fn total(&self) -> usize {
        self.ranges.iter().map(|r| r.clone().count()).sum()
    }

    fn nth(&self, mut index: usize) -> Option<u16> {
        for range in &self.ranges {
            let len = range.clone().count();
            if index < len {
                return range.clone().nth(index);
            }
            index -= len;
        }
        None
    }

    fn reserve(&mut self, reason: &str) -> Result<u16, Error> {
        let error = |detail: String| Error {
            reason: reason.to_owned(),
            detail,
        };
        let total = self.total();
        if total == 0 {
            let (first, last) = ephemeral_range();
            return Err(error(format!(
                "the kernel's ephemeral port range {first}-{last} leaves no port in \
                 {FLOOR}-65535 outside it; narrow it (sysctl net.ipv4.ip_local_port_range)"
            )));
        }
        create_lock_dir(&self.dir).map_err(|e| {
            error(format!(
                "cannot create the lock directory {}: {e}; set TMPDIR to a writable directory",
                self.dir.display()
            ))
        })?;
        let mut scan = Scan::default();
        for step in 0..total {
            let index = (self.cursor + step) % total;
            let Some(port) = self.nth(index) else {
                continue;
            };
            if self.held.contains_key(&port) {
                scan.ours += 1;
                continue;
            }
            let path = self.dir.join(port.to_string());
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(file) => file,
                // Another user's lock file: treat the port as theirs.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    scan.others += 1;
                    continue;
                }
                Err(e) => return Err(error(format!("cannot open {}: {e}", path.display()))),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    scan.others += 1;
                    if scan.example.is_none() {
                        scan.example = Some((port, holder_of(&path)));
                    }
                    continue;
                }
                Err(TryLockError::Error(e)) => {
                    return Err(error(format!("cannot lock {}: {e}", path.display())));
                }
            }
            // Dropping `file` releases the lock.
            if !bindable(port) {
                scan.in_use += 1;
                continue;
            }
            record(&file, reason)
                .map_err(|e| error(format!("cannot write {}: {e}", path.display())))?;
            self.held.insert(
                port,
                Held {
                    reason: reason.to_owned(),
                    _lock: file,
                },
            );
            self.cursor = index + 1;
            return Ok(port);
        }
        Err(error(self.exhausted(&scan)))
    }

    fn exhausted(&self, scan: &Scan) -> String {
        let ranges: Vec<String> = self
            .ranges
            .iter()
            .map(|r| format!("{}-{}", r.start(), r.end()))
            .collect();
        let example = match &scan.example {
            Some((port, holder)) => format!(" (port {port}: {holder})"),
            None => String::new(),
        };
        format!(
            "every port in {} is taken: {} reserved by this process, {} locked by other \
             processes{example}, {} in use by other programs. Stop leftover test or demo \
             processes (their lock files in {} name them), or widen the range below the \
             kernel's ephemeral ports (sysctl net.ipv4.ip_local_port_range)",
            ranges.join(" and "),
            scan.ours,
            scan.others,
            scan.in_use,
            self.dir.display()
        )
    }
}

/// Creates the lock directory, world-writable with the sticky bit (like `/tmp`) if this call
/// created it, so that every user's runs share it.
fn create_lock_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            use std::os::unix::fs::PermissionsExt;
            // Best effort: a single user's runs work without it.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a server could listen on `port` now, on 127.0.0.1 and on every address (a program
/// listening on `0.0.0.0:<port>` or `127.0.0.1:<port>` fails one of the two). Each probe
/// listener is closed before the next.
fn bindable(port: u16) -> bool {
    let loopback = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
    if !loopback {
        return false;
    }
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// Writes the holder's reason, process id and program into its (locked) lock file.
fn record(mut file: &File, reason: &str) -> std::io::Result<()> {
    let program = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| std::env::args().next().unwrap_or_default());
    file.set_len(0)?;
    write!(
        file,
        "reason: {reason}\npid: {}\nprogram: {program}\n",
        std::process::id()
    )?;
    file.flush()
}

/// What a lock file held by another process says, on one line.
fn holder_of(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => text.trim().replace('\n', ", "),
        _ => "no reason recorded yet".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// A fresh, empty lock directory for one test.
    fn temp_lock_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "oidc-authz-ports-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Two ports reserved (globally) by this test process: no cooperating process uses them,
    /// and nothing listens on them, so a test allocator can try them.
    fn two_ports(why: &str) -> (u16, u16) {
        let p = reserve(why).expect("a port");
        let q = reserve(why).expect("a port");
        (p, q)
    }

    fn lock_other(dir: &Path, port: u16, content: &str) -> File {
        std::fs::create_dir_all(dir).expect("create the test lock dir");
        let path = dir.join(port.to_string());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("open a lock file");
        file.try_lock().expect("lock a fresh lock file");
        record(&file, content).expect("write the lock file");
        file
    }

    #[test]
    fn reads_the_ephemeral_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32_768, 60_999)));
        assert_eq!(parse_port_range("1024 65535"), Some((1024, 65_535)));
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(parse_port_range(""), None);
    }

    #[test]
    fn candidates_lie_outside_the_ephemeral_range() {
        assert_eq!(
            ranges_outside(32_768, 60_999),
            vec![FLOOR..=32_767, 61_000..=65_535]
        );
        assert_eq!(ranges_outside(1024, 65_535), vec![]);
        assert_eq!(ranges_outside(1024, 50_000), vec![50_001..=65_535]);
        assert_eq!(ranges_outside(20_000, 65_535), vec![FLOOR..=19_999]);
        let (first, last) = ephemeral_range();
        for range in candidate_ranges() {
            assert!(*range.start() >= FLOOR);
            assert!(*range.end() < first || *range.start() > last, "{range:?}");
        }
    }

    #[test]
    fn two_calls_never_return_the_same_port() {
        let (first, last) = ephemeral_range();
        let mut seen = BTreeSet::new();
        for i in 0..50 {
            let port = reserve(&format!("uniqueness test #{i}")).expect("a port");
            assert!(seen.insert(port), "port {port} was handed out twice");
            assert!(port >= FLOOR && !(first..=last).contains(&port), "{port}");
            assert_eq!(reason(port), Some(format!("uniqueness test #{i}")));
        }
    }

    #[test]
    fn the_reason_is_in_the_lock_file() {
        let port = reserve("reason test: redis-server for a failover").expect("a port");
        let text = std::fs::read_to_string(lock_dir().join(port.to_string())).expect("lock file");
        assert!(
            text.contains("reason: reason test: redis-server for a failover"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pid: {}", std::process::id())),
            "{text}"
        );

        let dir = temp_lock_dir("reason");
        let (p, q) = two_ports("reason test (private allocator)");
        let mut allocator = Allocator::new(dir.clone(), vec![p..=p, q..=q]);
        let port = allocator.reserve("keycloak (test)").expect("a port");
        let text = std::fs::read_to_string(dir.join(port.to_string())).expect("lock file");
        assert!(text.starts_with("reason: keycloak (test)\n"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_port_locked_by_another_open_file_is_skipped() {
        let dir = temp_lock_dir("locked");
        let (p, q) = two_ports("lock test");
        let other = lock_other(&dir, p, "the other process");
        let mut allocator = Allocator::new(dir.clone(), vec![p..=p, q..=q]);
        assert_eq!(allocator.reserve("lock test").expect("a port"), q);
        let err = allocator
            .reserve("lock test, again")
            .expect_err("all taken");
        let message = err.to_string();
        assert!(message.contains("\"lock test, again\""), "{message}");
        assert!(message.contains("1 reserved by this process"), "{message}");
        assert!(message.contains("1 locked by other processes"), "{message}");
        assert!(message.contains("reason: the other process"), "{message}");

        // Once the other holder is gone (its process ended), the port is free again.
        drop(other);
        assert_eq!(allocator.reserve("lock test, third").expect("a port"), p);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_allocators_on_one_directory_share_nothing() {
        let dir = temp_lock_dir("shared");
        let ports: Vec<u16> = (0..10)
            .map(|_| reserve("sharing test").expect("a port"))
            .collect();
        let ranges: Vec<_> = ports.iter().map(|&p| p..=p).collect();
        let mut a = Allocator::new(dir.clone(), ranges.clone());
        let mut b = Allocator::new(dir.clone(), ranges);
        let mut seen = BTreeSet::new();
        for _ in 0..5 {
            assert!(seen.insert(a.reserve("a").expect("a port")));
            assert!(seen.insert(b.reserve("b").expect("a port")));
        }
        assert!(a.reserve("a").is_err() && b.reserve("b").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        let dir = temp_lock_dir("in-use");
        let (p, q) = two_ports("in-use test");
        let _listener = TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("bind p");
        let mut allocator = Allocator::new(dir.clone(), vec![p..=p, q..=q]);
        assert_eq!(allocator.reserve("in-use test").expect("a port"), q);
        let message = allocator
            .reserve("in-use test")
            .expect_err("none")
            .to_string();
        assert!(message.contains("1 in use by other programs"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_candidates_is_a_clear_error() {
        let mut allocator = Allocator::new(temp_lock_dir("none"), Vec::new());
        let message = allocator
            .reserve("empty test")
            .expect_err("none")
            .to_string();
        assert!(message.contains("ip_local_port_range"), "{message}");
    }

    /// Run by [`a_lock_held_by_another_process_is_honoured`] in a child process: locks the
    /// file named by `TEST_PORTS_CHILD_LOCK`, says `LOCKED`, and holds it until stdin closes.
    #[test]
    #[ignore = "helper: run as a child process by a_lock_held_by_another_process_is_honoured"]
    fn child_holds_a_lock() {
        let Some(path) = std::env::var_os("TEST_PORTS_CHILD_LOCK") else {
            return;
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .expect("child: open the lock file");
        file.try_lock().expect("child: lock the file");
        record(&file, "the child process").expect("child: write the lock file");
        println!("LOCKED");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }

    #[test]
    fn a_lock_held_by_another_process_is_honoured() {
        let dir = temp_lock_dir("process");
        std::fs::create_dir_all(&dir).expect("create the test lock dir");
        let (p, q) = two_ports("process test");
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "tests::child_holds_a_lock",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TEST_PORTS_CHILD_LOCK", dir.join(p.to_string()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the test binary as the child");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let locked = stdout
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("LOCKED"));
        assert!(locked, "the child process did not lock the file");

        let mut allocator = Allocator::new(dir.clone(), vec![p..=p, q..=q]);
        assert_eq!(allocator.reserve("process test").expect("a port"), q);
        let message = allocator
            .reserve("process test")
            .expect_err("none")
            .to_string();
        assert!(message.contains("reason: the child process"), "{message}");

        // The child ends (stdin closes): the kernel drops its lock.
        drop(child.stdin.take());
        stdout.for_each(drop);
        child.wait().expect("the child ends");
        assert_eq!(allocator.reserve("process test").expect("a port"), p);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
