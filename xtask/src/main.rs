//! `cargo xtask <command>`: installs the real components the tests use, then runs the tests.
//!
//! Commands:
//! - `cargo xtask test [-- <cargo test args>]`: installs what is missing, starts the shared
//!   services (Keycloak with the realms of `deploy/keycloak`), builds the tests while they
//!   boot, waits until they are ready, then runs `cargo test --workspace --all-targets` and
//!   the documentation tests (`--doc`) with the components' environment set, stops the
//!   services, and exits with the tests' status.
//! - `cargo xtask install`: only installs what is missing.
//! - `cargo xtask keycloak`: starts Keycloak as for the tests and waits for Ctrl-C, printing
//!   the environment to run `cargo test` against it by hand.
//!
//! Each component is one module under `components/`, listed in [`components::all`]. Services
//! run in their own process group and are stopped by PID when xtask ends, fails, or gets
//! Ctrl-C/SIGTERM ([`util::Services`]).

mod bench;
mod components;
mod demo;
mod fuzz;
mod seed;
mod util;

use std::process::{Command, ExitCode};

use components::Env;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- ARGS]   install the test components if missing, start Keycloak, then run
                   `cargo test --workspace --all-targets [ARGS]` and the doc tests with
                   them (without --workspace when ARGS pick packages with -p; doc tests
                   only when ARGS pick no targets)
  demo [--grpc] [--port PORT]
                   Keycloak + the adapter + Envoy (as Istio renders ext_authz) + a hello
                   app on 127.0.0.1 until Ctrl-C; prints the URL and a test login
  demo --app axum [--port PORT]
                   Keycloak + examples/axum-app (tower-oidc) on 127.0.0.1 until Ctrl-C;
                   prints the URL, test logins and a curl recipe for the JSON API
  bench [--quick]  load benchmarks against oauth2-proxy and the machine's limit; writes
                   BENCHMARKS.md
  fuzz [--seconds N] [TARGET]
                   run the cargo-fuzz targets for a bounded time
  install          install the test components if missing
  keycloak         start Keycloak with deploy/keycloak's realms until Ctrl-C, and print
                   the environment for running `cargo test` by hand
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
        "fuzz" => fuzz::run(rest),
        "install" if rest.is_empty() => install().map(|_| ExitCode::SUCCESS),
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
    let picks_targets = cargo_args.iter().any(|a| {
        [
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
        ]
        .iter()
        .any(|f| a == f || a.starts_with(&format!("{f}=")))
    });
    let mut scope: Vec<&str> = Vec::new();
    if !picks_packages {
        scope.push("--workspace");
    }
    if !picks_targets {
        scope.push("--all-targets");
    }
    let scope = scope.as_slice();

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
    services.wait_ready()?;

    println!(
        "[xtask] running cargo test {} {}",
        scope.join(" "),
        extra.join(" ")
    );
    // Every failing test binary is reported, not only the first.
    let status = util::status(
        cargo(&env)
            .arg("test")
            .args(scope)
            .arg("--no-fail-fast")
            .args(extra),
    )?;
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
    Ok(util::exit_code(doc_status))
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
