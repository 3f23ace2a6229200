//! Reading the settings as oauth2-proxy does: command line, then environment, then the
//! `--config` file, the first that sets a flag winning; then the oauth2-proxy flags the
//! program does not implement are judged (warned or refused, see [`crate::flags`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

use crate::config_file::{self, Entry};
use crate::error::LoadError;
use crate::flags;

/// The settings read, and what to warn about once logging is set up.
#[derive(Debug)]
pub struct Loaded {
    /// The arguments, with the file's values where neither the command line nor the
    /// environment set them.
    pub matches: ArgMatches,
    /// One line per oauth2-proxy flag given but ignored, and per unknown `OAUTH2_PROXY_*`
    /// variable: log each once at start.
    pub warnings: Vec<String>,
}

/// Parses `args` (program name first) with `cmd`, oauth2-proxy's way: `cmd`'s arguments read
/// their `OAUTH2_PROXY_*` variables, the file named by its `config` argument (a `PathBuf`,
/// `--config`) fills what neither set, and every oauth2-proxy flag `cmd` lacks is accepted
/// ([`flags::register`]) and then warned about or refused ([`flags::review`]).
///
/// A subcommand of `cmd` is not oauth2-proxy's: when the command line names one, the matches
/// come from the command line alone (no variable, no file, nothing reviewed).
///
/// # Errors
///
/// [`LoadError::Args`] when the arguments do not parse (also for `--help` and `--version`),
/// [`LoadError::ConfigFile`] or [`LoadError::Unreadable`] for the file,
/// [`LoadError::Refused`] for oauth2-proxy flags whose meaning the program cannot honour.
pub fn load<I, T>(cmd: Command, args: I) -> Result<Loaded, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = flags::register(cmd);
    // A subcommand (`istio ...`) is a tool of its own: no environment variable, `--config`
    // file or flag review applies to it. Only then is the command line parsed twice.
    let names_subcommand = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|first| cmd.get_subcommands().any(|s| s.get_name() == first));
    if names_subcommand {
        let without_env = cmd.clone().mut_args(|a| a.env(None));
        let matches = without_env
            .try_get_matches_from(&args)
            .map_err(LoadError::Args)?;
        let warnings = Vec::new();
        return Ok(Loaded { matches, warnings });
    }
    let mut matches = cmd
        .clone()
        .try_get_matches_from(&args)
        .map_err(LoadError::Args)?;
    // Which flags the file set (by argument id): its key, for messages.
    let mut from_file: HashMap<String, String> = HashMap::new();
    let mut path_shown = String::new();
    if let Some(path) = matches.try_get_one::<PathBuf>("config").ok().flatten() {
        path_shown = path.display().to_string();
        let entries = config_file::read(path)?;
        let extra = file_args(&cmd, &matches, &path_shown, &entries, &mut from_file)?;
        if !extra.is_empty() {
            args.extend(extra);
            matches = cmd
                .clone()
                .try_get_matches_from(&args)
                .map_err(|e| blame_file(e, &cmd, &path_shown, &entries, &from_file))?;
        }
    }
    let review = flags::review(&matches, |f| {
        from_file
            .get(f.flag)
            .map(|key| format!("{key} in {path_shown}"))
    });
    if !review.refused.is_empty() {
        return Err(LoadError::Refused(review.refused));
    }
    let mut warnings = review.warnings;
    warnings.extend(unknown_variables(&cmd, std::env::vars_os().map(|(k, _)| k)));
    Ok(Loaded { matches, warnings })
}
/// The flag arguments (`--flag=value`) for the file's entries whose flag neither the command
/// line nor the environment set; records in `from_file` which flags they are.
fn file_args(
    cmd: &Command,
    matches: &ArgMatches,
    path: &str,
    entries: &[Entry],
    from_file: &mut HashMap<String, String>,
) -> Result<Vec<OsString>, LoadError> {
    let at = |entry: &Entry, message: String| LoadError::ConfigFile {
        path: path.to_owned(),
        line: Some(entry.line),
        message: format!("{}: {message}", entry.key),
    };
    let mut extra = Vec::new();
    for entry in entries {
        let env = flags::env_name(&entry.key);
        let Some(arg) = cmd
            .get_arguments()
            .filter(|a| a.get_id() != "config")
            .find(|a| a.get_env().is_some_and(|e| *e == *env))
        else {
            return Err(at(entry, unknown_key(&entry.key)));
        };
        let id = arg.get_id().as_str();
        let long = arg.get_long().unwrap_or(id);
        if matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let list = matches!(arg.get_action(), ArgAction::Append);
        for value in entry.flag_values(list).map_err(|m| at(entry, m))? {
            extra.push(OsString::from(format!("--{long}={value}")));
        }
        from_file.insert(id.to_owned(), entry.key.clone());
    }
    Ok(extra)
}

/// Why `key` is refused, with the key meant when it is a near miss (a list flag's key is
/// plural in oauth2-proxy's file: `email_domains`, `upstreams`).
fn unknown_key(key: &str) -> String {
    let near = flags::FLAGS
        .iter()
        .map(|f| f.key)
        .filter(|k| !k.is_empty())
        .find(|k| {
            k.strip_suffix('s') == Some(key)
                || key.strip_suffix('s') == Some(*k)
                || *k == key.replace('-', "_")
        });
    match near {
        Some(k) => format!("not an oauth2-proxy option; did you mean {k}?"),
        None => "not an oauth2-proxy option (oauth2-proxy refuses unknown keys too; see \
                 docs/oauth2-proxy-flags.md)"
            .to_owned(),
    }
}

/// A value from the file that a flag's parser refused: the file's line and clap's words.
fn blame_file(
    e: clap::Error,
    cmd: &Command,
    path: &str,
    entries: &[Entry],
    from_file: &HashMap<String, String>,
) -> LoadError {
    let invalid = match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(s)) => s.clone(),
        _ => return LoadError::Args(e),
    };
    let blamed = cmd.get_arguments().find_map(|a| {
        let long = a.get_long()?;
        let named = invalid == format!("--{long}") || invalid.starts_with(&format!("--{long} "));
        let key = from_file.get(a.get_id().as_str())?;
        named.then_some(key)
    });
    let Some(entry) = blamed.and_then(|key| entries.iter().find(|e| e.key == *key)) else {
        return LoadError::Args(e);
    };
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    // A value an enum-like flag does not take: say which it does.
    let valid = match e.get(clap::error::ContextKind::ValidValue) {
        Some(clap::error::ContextValue::Strings(values)) => {
            format!(" (one of {})", values.join(", "))
        }
        _ => String::new(),
    };
    LoadError::ConfigFile {
        path: path.to_owned(),
        line: Some(entry.line),
        message: format!(
            "{}: {}{valid}",
            entry.key,
            first.trim_start_matches("error: ")
        ),
    }
}

/// A warning for each `OAUTH2_PROXY_*` variable in `names` that no flag reads (oauth2-proxy
/// ignores them too; a typo would otherwise go unnoticed). Never the value.
fn unknown_variables(cmd: &Command, names: impl Iterator<Item = OsString>) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.starts_with("OAUTH2_PROXY_"))
        .filter(|n| !cmd.get_arguments().any(|a| a.get_env() == Some(n.as_ref())))
        .collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|n| format!("{n}: no flag of this adapter or of oauth2-proxy reads it: ignored"))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Arg;

    use super::*;

    #[test]
    fn unknown_variables_are_named_once() {
        let cmd = flags::register(
            Command::new("ext-authz-adapter").arg(
                Arg::new("client_id")
                    .long("client-id")
                    .env("OAUTH2_PROXY_CLIENT_ID"),
            ),
        );
        let names = [
            "OAUTH2_PROXY_CLIENT_ID",
            "OAUTH2_PROXY_REQUEST_LOGGING",
            "OAUTH2_PROXY_COOKIE_SECRE",
            "PATH",
        ];
        let warnings = unknown_variables(&cmd, names.iter().map(OsString::from));
        assert_eq!(
            warnings,
            [
                "OAUTH2_PROXY_COOKIE_SECRE: no flag of this adapter or of oauth2-proxy reads it: ignored"
            ]
        );
    }
}
