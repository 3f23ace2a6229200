//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets of `fuzz/`, each
//! for a bounded time, and fails on any crash, panic, timeout or out-of-memory.
//!
//! Needs a nightly toolchain (`rustup toolchain list`); installs cargo-fuzz with
//! `cargo install cargo-fuzz --locked` when it is missing. Each target starts from the seed
//! corpus in `fuzz/corpus/TARGET` (read only: new inputs go to `fuzz/target/corpus/TARGET`,
//! so the repository's corpus only changes when someone copies inputs over on purpose).
//! libFuzzer's output goes to `fuzz/target/logs/TARGET.log`; a crashing input is written to
//! `fuzz/artifacts/TARGET/` and the command to reproduce it is printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use crate::util;

const USAGE: &str = "\
usage: cargo xtask fuzz [--seconds N] [TARGET...]

Runs each fuzz target of fuzz/ (all of them when none is named) for N seconds (default 30)
with cargo-fuzz on the nightly toolchain, and fails when any target finds a crash.
  --seconds N   time per target (libFuzzer -max_total_time)
  --list        list the targets and exit";

/// Default time per target, in seconds.
const DEFAULT_SECONDS: u64 = 30;

/// Runs `cargo xtask fuzz` with the arguments after it.
pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut seconds = DEFAULT_SECONDS;
    let mut list = false;
    let mut wanted = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            "--list" => list = true,
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                seconds = parse_seconds(v)?;
            }
            s if s.starts_with("--seconds=") => seconds = parse_seconds(&s[10..])?,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n\n{USAGE}")),
            s => wanted.push(s.to_owned()),
        }
    }

    let dir = util::repo_root().join("fuzz");
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let all = targets(&dir)?;
    if list {
        for t in &all {
            println!("{t}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    for w in &wanted {
        if !all.contains(w) {
            return Err(format!("no fuzz target {w:?}; targets: {}", all.join(", ")));
        }
    }
    let chosen = if wanted.is_empty() { all } else { wanted };

    println!("[xtask] building the fuzz targets: cargo +nightly fuzz build");
    util::run(fuzz_cmd(&dir).arg("build"))?;

    let mut results = Vec::new();
    for target in &chosen {
        results.push(run_target(&dir, target, seconds)?);
    }

    println!("\n[xtask] fuzz results ({seconds} s per target):");
    println!(
        "  {:<16} {:>8} {:>12} {:>9} {:>8}  corpus",
        "target", "result", "execs", "exec/s", "seconds"
    );
    let mut failed = false;
    for r in &results {
        failed |= !r.ok;
        println!(
            "  {:<16} {:>8} {:>12} {:>9} {:>8.1}  {}",
            r.target,
            if r.ok { "ok" } else { "FAILED" },
            r.execs.map_or("?".to_owned(), |n| n.to_string()),
            r.execs
                .filter(|_| r.seconds > 0.0)
                .map_or("?".to_owned(), |n| format!("{:.0}", n as f64 / r.seconds)),
            r.seconds,
            r.corpus.map_or("?".to_owned(), |n| format!("{n} inputs")),
        );
    }
    for r in results.iter().filter(|r| !r.ok) {
        println!("\n[xtask] {} failed; log: {}", r.target, r.log.display());
        if let Some(a) = &r.artifact {
            println!(
                "[xtask] reproduce: (cd fuzz && cargo +nightly fuzz run {} {a})",
                r.target
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_seconds(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("--seconds {v:?}: give a whole number of seconds above 0"))
}

/// `cargo +nightly fuzz` in `fuzz/`, without the toolchain choices of the cargo that runs
/// xtask (which would pin the stable toolchain of rust-toolchain.toml).
fn fuzz_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir)
        .args(["+nightly", "fuzz"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    cmd
}

fn ensure_nightly() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `rustup toolchain list` ({e}); cargo fuzz needs rustup with a nightly toolchain"))?;
    let list = String::from_utf8_lossy(&out.stdout);
    if list.lines().any(|l| l.starts_with("nightly")) {
        Ok(())
    } else {
        Err("cargo fuzz needs a nightly toolchain (libFuzzer and sanitizers); install one with `rustup toolchain install nightly --profile minimal`".to_owned())
    }
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("[xtask] cargo-fuzz is missing: cargo install cargo-fuzz --locked");
    util::run(
        Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .current_dir(std::env::temp_dir())
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .env_remove("RUSTC"),
    )
}

fn targets(dir: &Path) -> Result<Vec<String>, String> {
    let out = fuzz_cmd(dir)
        .arg("list")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo fuzz list: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

struct Outcome {
    target: String,
    ok: bool,
    execs: Option<u64>,
    seconds: f64,
    corpus: Option<u64>,
    log: PathBuf,
    artifact: Option<String>,
}

fn run_target(dir: &Path, target: &str, seconds: u64) -> Result<Outcome, String> {
    let seeds = dir.join("corpus").join(target);
    let work = dir.join("target").join("corpus").join(target);
    let logs = dir.join("target").join("logs");
    for d in [&seeds, &work, &logs] {
        fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let log = logs.join(format!("{target}.log"));
    let file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    println!(
        "[xtask] fuzzing {target} for {seconds} s (log: {})",
        log.display()
    );
    let started = Instant::now();
    let status = fuzz_cmd(dir)
        .arg("run")
        .arg(target)
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-timeout=10", "-rss_limit_mb=4096", "-print_final_stats=1"])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run cargo fuzz run {target}: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let stat = |key: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .next_back()
    };
    // "Done 123456 runs in 30 second(s)"
    let done = text.lines().rev().find_map(|l| {
        let rest = l.strip_prefix("Done ")?;
        let (runs, rest) = rest.split_once(" runs in ")?;
        let secs = rest.split_whitespace().next()?.parse::<f64>().ok()?;
        Some((runs.parse::<u64>().ok()?, secs))
    });
    let artifact = text.lines().rev().find_map(|l| {
        let (_, path) = l.split_once("Test unit written to ")?;
        Some(path.trim().to_owned())
    });
    let ok = status.success();
    if !ok {
        eprintln!("[xtask] {target} FAILED ({status}); last lines of its log:");
        eprintln!("{}", util::log_tail(&log, 40));
    }
    Ok(Outcome {
        target: target.to_owned(),
        ok,
        execs: stat("stat::number_of_executed_units:").or(done.map(|d| d.0)),
        seconds: done.map_or(elapsed, |d| d.1),
        corpus: fs::read_dir(&work).ok().map(|d| d.count() as u64),
        log,
        artifact,
    })
}
