//! `cargo xtask <command>`: installs the real components the tests use, then runs the tests.
//!
//! Commands:
//! - `cargo xtask test [-- <cargo test args>]`: installs what is missing, then runs
//!   `cargo test --workspace --all-targets` with the components' environment set, and exits
//!   with its status.
//! - `cargo xtask install`: only installs what is missing.
//!
//! Each component is one module under `components/`, listed in [`components::all`].

mod components;
mod util;

use std::process::{Command, ExitCode};

use components::Env;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- ARGS]   install the test components if missing, then run
                   `cargo test --workspace --all-targets [ARGS]` with them
  install          install the test components if missing
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
        "install" if rest.is_empty() => install().map(|_| ExitCode::SUCCESS),
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
    let env = install()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(util::repo_root())
        .args(["test", "--workspace", "--all-targets"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)));
    for (key, value) in &env {
        println!("[xtask] {key}={}", value.to_string_lossy());
    }
    println!(
        "[xtask] running cargo test --workspace --all-targets {}",
        extra.join(" ")
    );
    let status = util::status(&mut cmd)?;
    Ok(util::exit_code(status))
}
