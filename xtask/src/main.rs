//! `cargo xtask <command>`: installs the real components the tests use, then runs the tests.
//!
//! Commands:
//! - `cargo xtask test [-- <cargo test args>]`: installs what is missing, starts the shared
//!   services (Keycloak with the realms of `deploy/keycloak`, over HTTP and over HTTPS with a
//!   certificate of a CA made for the run), builds the tests while they
//!   boot, waits until they are ready, then runs `cargo test --workspace --all-targets` and
//!   the documentation tests (`--doc`) with the components' environment set, then (the full
//!   suite only) `cargo package -p oidc-core -p tower-oidc`, stops the services, and exits with
//!   the first failure's status. A run in which no test ran fails, and so does a `--test NAME`
//!   target that ran none (a filter that matches nothing passes in cargo).
//! - `cargo xtask install`: only installs what is missing.
//! - `cargo xtask chaos`: the faults-under-load run in full size, with a Keycloak of its own;
//!   writes `docs/reliability.md` (see `chaos.rs`).
//!
//! Helm, the manifest checker (`xtask/go/manifest-check`) and the test cluster
//! (`xtask/go/test-cluster`: kube-apiserver, etcd, kubectl) are built with Go in a background
//! thread of `cargo xtask test`, while the other components install, Keycloak boots and the
//! tests build ([`components::go_tools`]).
//! - `cargo xtask keycloak`: starts Keycloak as for the tests and waits for Ctrl-C, printing
//!   the environment to run `cargo test` against it by hand.
//!
//! Each component is one module under `components/`, listed in [`components::all`]. Services
//! run in their own process group and are stopped by PID when xtask ends, fails, or gets
//! Ctrl-C/SIGTERM ([`util::Services`]).

mod bench;
mod chaos;
mod components;
mod demo;
mod fuzz;
mod seed;
mod util;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use components::Env;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- ARGS]   install the test components if missing, start Keycloak, then run
                   `cargo test --workspace --all-targets [ARGS]` and the doc tests with
                   them (without --workspace when ARGS pick packages with -p; doc tests
                   only when ARGS pick no targets), then (no ARGS picking packages
                   or targets) `cargo package -p oidc-core -p tower-oidc`; fails if
                   no test ran, or if a target named with --test ran none
  demo [--grpc] [--port PORT]
                   Keycloak + the adapter + Envoy (as Istio renders ext_authz) + a hello
                   app on 127.0.0.1 until Ctrl-C; prints the URL and a test login
  demo --app axum [--port PORT]
                   Keycloak + examples/axum-app (tower-oidc) on 127.0.0.1 until Ctrl-C;
                   prints the URL, test logins and a curl recipe for the JSON API
  bench [--quick]  load benchmarks against oauth2-proxy and the machine's limit; writes
                   BENCHMARKS.md
  chaos            faults under load (Redis master killed, Keycloak restarted or
                   unreachable, a replica SIGTERM'd) through Envoy to two replicas, with a
                   Keycloak of its own; writes docs/reliability.md (minutes)
  fuzz [--seconds N] [TARGET]
                   run the cargo-fuzz targets for a bounded time
  install          install the test components if missing (with Helm and the manifest
                   checker, built with Go)
  keycloak         start Keycloak with deploy/keycloak's realms until Ctrl-C (HTTP, and
                   HTTPS with a CA made for the run), and print the environment for
                   running `cargo test` by hand
  help             this text

Components are cached under $XDG_CACHE_HOME/oidc-authz (default ~/.cache/oidc-authz).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match command {
        "test" => test(rest),
        "demo" => demo::run(rest),
        "bench" => bench::run(rest),
        "chaos" => chaos::run(rest),
        "fuzz" => fuzz::run(rest),
        "install" if rest.is_empty() => install()
            .and_then(|_| install_go_tools())
            .map(|_| ExitCode::SUCCESS),
        "keycloak" if rest.is_empty() => keycloak(),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("[xtask] unknown command: {}\n\n{USAGE}", args.join(" "));
            Ok(ExitCode::from(2))
        }
    };
    result.unwrap_or_else(|err| {
        eprintln!("[xtask] error: {err}");
        ExitCode::FAILURE
    })
}

/// Installs every component (if missing) and returns the environment the tests need.
fn install() -> Result<Env, String> {
    let mut env = Env::new();
    for component in components::all() {
        env.extend(component.ensure_installed()?);
    }
    Ok(env)
}

/// Installs the Go-built tools (if missing): Helm, the manifest checker, the test cluster.
fn install_go_tools() -> Result<Env, String> {
    let mut env = Env::new();
    for component in components::go_tools() {
        env.extend(component.ensure_installed()?);
    }
    Ok(env)
}

fn test(args: &[String]) -> Result<ExitCode, String> {
    let extra = match args.split_first() {
        None => args,
        Some((first, rest)) if first == "--" => rest,
        Some(_) => {
            return Err(format!(
                "unexpected arguments {args:?}: pass cargo test arguments after `--`"
            ));
        }
    };
    // Cargo's own arguments (for the build) end at a second `--`; the rest go to the tests.
    let cargo_args = &extra[..extra.iter().position(|a| a == "--").unwrap_or(extra.len())];
    // `--workspace` unless packages are chosen (`-p test-support`): cargo would run them all.
    let picks_packages = cargo_args
        .iter()
        .any(|a| a.starts_with("-p") || a.starts_with("--package"));
    // `--all-targets` unless targets are chosen (`--test login_flow`): it would override them.
    let picks_targets = cargo_args.iter().any(|a| is_flag(a, TARGET_FLAGS));
    let mut scope: Vec<&str> = Vec::new();
    if !picks_packages {
        scope.push("--workspace");
    }
    if !picks_targets {
        scope.push("--all-targets");
    }
    let scope = scope.as_slice();

    // Helm, the manifest checker and the test cluster build in the background (minutes when the cache is cold,
    // a check of well under a second when warm), while the rest installs, the services start
    // and the tests build; awaited before the tests run.
    let go_tools = std::thread::spawn(install_go_tools);
    let mut env = install()?;
    // Stopped when `services` is dropped: on success, on error and on panic (Ctrl-C too).
    let mut services = util::Services::new();
    env.extend(services.start_keycloak(0, None)?);
    for (key, value) in &env {
        println!("[xtask] {key}={}", value.to_string_lossy());
    }

    // Build the tests while the services boot.
    println!(
        "[xtask] building the tests while the services start: cargo test {} --no-run {}",
        scope.join(" "),
        cargo_args.join(" ")
    );
    let status = util::status(
        cargo(&env)
            .arg("test")
            .args(scope)
            .arg("--no-run")
            .args(cargo_args),
    )?;
    if !status.success() {
        return Ok(util::exit_code(status));
    }
    let go_env = go_tools
        .join()
        .map_err(|_| "installing the Go-built tools panicked".to_owned())??;
    for (key, value) in &go_env {
        println!("[xtask] {key}={}", value.to_string_lossy());
    }
    env.extend(go_env);
    services.wait_ready()?;

    println!(
        "[xtask] running cargo test {} {}",
        scope.join(" "),
        extra.join(" ")
    );
    // Every failing test binary is reported, not only the first.
    let (status, results) = run_counting_tests(
        cargo(&env)
            .arg("test")
            .args(scope)
            .arg("--no-fail-fast")
            .args(extra),
    )?;
    if status.success()
        && let Some(problem) = too_few_tests(cargo_args, &extra[cargo_args.len()..], &results)
    {
        eprintln!("[xtask] error: {problem}");
        services.keep_logs();
        return Ok(ExitCode::FAILURE);
    }
    // `--all-targets` leaves out documentation tests: run them too (the crates' examples).
    let doc_status = if picks_targets {
        status
    } else {
        let packages = if picks_packages {
            &[][..]
        } else {
            &["--workspace"][..]
        };
        println!(
            "[xtask] running cargo test {} --doc {}",
            packages.join(" "),
            cargo_args.join(" ")
        );
        util::status(
            cargo(&env)
                .arg("test")
                .args(packages)
                .arg("--doc")
                .arg("--no-fail-fast")
                .args(cargo_args),
        )?
    };
    if !status.success() {
        services.keep_logs();
        return Ok(util::exit_code(status));
    }
    if !doc_status.success() {
        return Ok(util::exit_code(doc_status));
    }
    // The whole suite also proves the library crates can be published as they are.
    if !picks_packages && !picks_targets {
        return package_libraries(&env);
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes cargo's extracted copies of earlier `cargo package` runs of `libraries`.
///
/// Verifying several packages at once, cargo publishes them to a temporary local registry and
/// extracts each `.crate` under `$CARGO_HOME/registry/src/-<hash of that registry>/NAME-VERSION`;
/// an extraction is reused while its directory exists, so a second run with the same version
/// would build the first run's sources. Only those local-registry directories (named with a
/// leading `-`) are touched, never a real registry's.
fn forget_earlier_packages(libraries: &[&str]) -> Result<(), String> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cargo"),
    };
    let Ok(registries) = std::fs::read_dir(cargo_home.join("registry").join("src")) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for krate in std::fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = krate.file_name().to_string_lossy().into_owned();
            if libraries.iter().any(|l| name.starts_with(&format!("{l}-"))) {
                std::fs::remove_dir_all(krate.path()).map_err(|e| {
                    format!(
                        "cannot remove {} (an earlier cargo package): {e}",
                        krate.path().display()
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// The target directory of the packaging builds (`<target>/package-verify`), with every earlier
/// build of `libraries` removed from it.
///
/// Cargo takes a registry crate for immutable: the `oidc-core 0.1.0` that an earlier run built
/// from its temporary registry is reused by the next run's verification of `tower-oidc`, even
/// though the sources changed since. Only the packaged crates are removed; their dependencies
/// stay built. A directory of its own, so the workspace's own builds are never touched.
fn package_target_dir(libraries: &[&str]) -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| util::repo_root().join("target"), PathBuf::from);
    let dir = target.join("package-verify");
    for profile in ["debug", "release"] {
        for sub in [".fingerprint", "deps", "build"] {
            let Ok(entries) = std::fs::read_dir(dir.join(profile).join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let built = libraries.iter().any(|l| {
                    let ident = l.replace('-', "_");
                    name.starts_with(&format!("{l}-"))
                        || name.starts_with(&format!("{ident}-"))
                        || name.starts_with(&format!("lib{ident}-"))
                });
                if built {
                    let path = entry.path();
                    let removed = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    removed.map_err(|e| {
                        format!(
                            "cannot remove {} (an earlier packaging build): {e}",
                            path.display()
                        )
                    })?;
                }
            }
        }
    }
    Ok(dir)
}

/// `cargo package` of the crates meant for crates.io: their files, metadata and versions on
/// path dependencies are complete, and the packaged sources build on their own (cargo's
/// verification builds each `.crate` with the pinned toolchain, the stated MSRV).
/// `--allow-dirty`: what is checked is the package, not whether the work tree is committed.
fn package_libraries(env: &Env) -> Result<ExitCode, String> {
    const LIBRARIES: [&str; 2] = ["oidc-core", "tower-oidc"];
    forget_earlier_packages(&LIBRARIES)?;
    let target_dir = package_target_dir(&LIBRARIES)?;
    println!(
        "[xtask] running cargo package -p {} --allow-dirty --target-dir {}",
        LIBRARIES.join(" -p "),
        target_dir.display()
    );
    let mut cmd = cargo(env);
    cmd.arg("package")
        .arg("--allow-dirty")
        .arg("--locked")
        .arg("--target-dir")
        .arg(&target_dir);
    for library in LIBRARIES {
        cmd.args(["-p", library]);
    }
    let status = util::status(&mut cmd)?;
    if !status.success() {
        eprintln!(
            "[xtask] error: cargo package failed: a crate of {LIBRARIES:?} could not be              published as it is (see above)"
        );
    }
    Ok(util::exit_code(status))
}

/// Runs `cmd` (a `cargo test`), passing its standard output through as it comes, and returns
/// its status and, per test binary in run order, how many tests ran (passed + failed, from
/// libtest's `test result:` lines).
fn run_counting_tests(cmd: &mut Command) -> Result<(std::process::ExitStatus, Vec<u64>), String> {
    use std::io::{Read, Write};
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut results = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut out = std::io::stdout();
    loop {
        let n = match stdout.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the output of {cmd:?}: {e}")),
        };
        // Shown at once (libtest writes `test x ... ` before the verdict), parsed by line.
        let _ = out.write_all(&chunk[..n]);
        let _ = out.flush();
        for &byte in &chunk[..n] {
            if byte == b'\n' {
                if let Some(ran) = tests_ran(&String::from_utf8_lossy(&line)) {
                    results.push(ran);
                }
                line.clear();
            } else {
                line.push(byte);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {cmd:?}: {e}"))?;
    Ok((status, results))
}

/// `passed + failed` of a libtest summary line
/// (`test result: ok. 13 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; ...`).
fn tests_ran(line: &str) -> Option<u64> {
    let counts = line.trim().strip_prefix("test result: ")?;
    let count = |what: &str| {
        counts.split(';').find_map(|part| {
            let (n, word) = part.trim().rsplit_once(' ')?;
            let n = n.rsplit(' ').next()?;
            (word == what).then(|| n.parse::<u64>().ok()).flatten()
        })
    };
    Some(count("passed")? + count("failed")?)
}

/// Cargo's flags that choose test targets (`--all-targets` aside).
const TARGET_FLAGS: &[&str] = &[
    "--lib",
    "--bins",
    "--bin",
    "--tests",
    "--test",
    "--examples",
    "--example",
    "--benches",
    "--bench",
    "--doc",
];

/// `arg` is one of `flags`, alone or as `--flag=value`.
fn is_flag(arg: &str, flags: &[&str]) -> bool {
    flags.iter().any(|f| {
        arg.strip_prefix(f)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
    })
}

/// Why a successful run must still fail: with a `--test NAME` target named (and no other kind
/// of target), every test binary that ran must have run a test; otherwise at least one test in
/// all. A filter that matches nothing, or a test file compiled away by a `cfg`, would pass with
/// 0 tests. `None` when the test binaries were asked for something else than running tests
/// (`--list`, `--help`, another `--format`).
fn too_few_tests(cargo_args: &[String], test_args: &[String], results: &[u64]) -> Option<String> {
    let not_running = test_args.iter().any(|a| {
        matches!(a.as_str(), "--list" | "--help" | "-h" | "-Z") || a.starts_with("--format")
    });
    if not_running {
        return None;
    }
    let names_test_targets = cargo_args.iter().any(|a| is_flag(a, &["--test"]));
    let other_targets = cargo_args.iter().any(|a| {
        is_flag(a, &["--all-targets"])
            || TARGET_FLAGS
                .iter()
                .any(|f| *f != "--test" && is_flag(a, &[f]))
    });
    let args = cargo_args
        .iter()
        .chain(test_args)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if names_test_targets && !other_targets && results.contains(&0) {
        return Some(format!(
            "a test target named in `{args}` ran no test (tests run per binary: {results:?}): \
             its filter matches nothing, or its tests are compiled out"
        ));
    }
    if results.iter().sum::<u64>() == 0 {
        return Some(format!(
            "`cargo test {args}` ran no test at all (tests run per binary: {results:?}): the \
             filter matches nothing"
        ));
    }
    None
}

/// `cargo` (the one running xtask) in the workspace root with `env` set.
fn cargo(env: &Env) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(util::repo_root())
        .envs(env.iter().map(|(k, v)| (k, v)));
    util::without_cargo_run_env(&mut cmd);
    cmd
}

fn keycloak() -> Result<ExitCode, String> {
    let mut services = util::Services::new();
    let env = services.start_keycloak(0, None)?;
    services.wait_ready()?;
    println!("[xtask] Keycloak is running; for `cargo test` in another shell:");
    for (key, value) in &env {
        println!("export {key}={}", value.to_string_lossy());
    }
    println!("[xtask] Ctrl-C stops it.");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn reads_libtest_summaries() {
        assert_eq!(
            tests_ran(
                "test result: ok. 13 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.02s"
            ),
            Some(13)
        );
        assert_eq!(
            tests_ran(
                "test result: FAILED. 12 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.21s"
            ),
            Some(13)
        );
        assert_eq!(tests_ran("running 13 tests"), None);
        assert_eq!(tests_ran("test result: ok."), None);
    }

    #[test]
    fn zero_tests_fail_the_run() {
        let named = strings(&["-p", "oidc-core", "--test", "redis_store"]);
        assert_eq!(too_few_tests(&named, &[], &[5]), None);
        assert!(too_few_tests(&named, &[], &[0]).is_some());
        assert!(too_few_tests(&named, &strings(&["no_such_test"]), &[]).is_some());
        // Two named targets: each must run something.
        let two = strings(&["--test", "a", "--test=b"]);
        assert!(too_few_tests(&two, &[], &[3, 0]).is_some());
        // Without named targets, binaries with no test are normal; none at all is not.
        let all = strings(&["-p", "oidc-core"]);
        assert_eq!(too_few_tests(&all, &[], &[0, 4, 0]), None);
        assert!(too_few_tests(&all, &strings(&["nothing_matches"]), &[0, 0, 0]).is_some());
        // Not running tests at all.
        assert_eq!(too_few_tests(&named, &strings(&["--list"]), &[]), None);
    }
}
