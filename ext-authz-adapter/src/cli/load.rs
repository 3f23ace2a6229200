//! Reading the settings as oauth2-proxy does: command line, then environment, then the
//! `--config` file, the first that sets a flag winning; then the oauth2-proxy flags the
//! adapter does not implement are judged (warned or refused, see `oauth2_proxy.rs`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use super::config_file::{self, Entry};
use super::{Cli, CliError, oauth2_proxy};

/// The settings read, and what to warn about once logging is set up.
#[derive(Debug)]
pub struct Loaded {
    /// The flags, with the file's values where neither the command line nor the environment
    /// set them.
    pub cli: Cli,
    /// One line per oauth2-proxy flag given but ignored, and per unknown `OAUTH2_PROXY_*`
    /// variable: log each once at start.
    pub warnings: Vec<String>,
}

impl Cli {
    /// Reads the command line `args` (program name first), the `OAUTH2_PROXY_*` environment
    /// and the `--config` file.
    ///
    /// # Errors
    ///
    /// [`CliError::Args`] when the arguments do not parse (also for `--help` and
    /// `--version`: print it with `exit()`), [`CliError::ConfigFile`] or
    /// [`CliError::Unreadable`] for the file, [`CliError::Refused`] for oauth2-proxy flags
    /// whose meaning the adapter cannot honour.
    pub fn load<I, T>(args: I) -> Result<Loaded, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cmd = oauth2_proxy::register(Cli::command());
        let mut matches = cmd
            .clone()
            .try_get_matches_from(&args)
            .map_err(CliError::Args)?;
        // Which flags the file set (by argument id): its key, for messages.
        let mut from_file: HashMap<String, String> = HashMap::new();
        let mut path_shown = String::new();
        if let Some(path) = matches.get_one::<PathBuf>("config").cloned() {
            path_shown = path.display().to_string();
            let entries = config_file::read(&path)?;
            let extra = file_args(&cmd, &matches, &path_shown, &entries, &mut from_file)?;
            if !extra.is_empty() {
                args.extend(extra);
                matches = cmd
                    .clone()
                    .try_get_matches_from(&args)
                    .map_err(|e| blame_file(e, &cmd, &path_shown, &entries, &from_file))?;
            }
        }
        let review = oauth2_proxy::review(&matches, |f| {
            from_file
                .get(f.flag)
                .map(|key| format!("{key} in {path_shown}"))
        });
        if !review.refused.is_empty() {
            return Err(CliError::Refused(review.refused));
        }
        let mut warnings = review.warnings;
        warnings.extend(unknown_variables(&cmd, std::env::vars_os().map(|(k, _)| k)));
        let cli = Cli::from_arg_matches(&matches).map_err(CliError::Args)?;
        Ok(Loaded { cli, warnings })
    }
}

/// The flag arguments (`--flag=value`) for the file's entries whose flag neither the command
/// line nor the environment set; records in `from_file` which flags they are.
fn file_args(
    cmd: &Command,
    matches: &ArgMatches,
    path: &str,
    entries: &[Entry],
    from_file: &mut HashMap<String, String>,
) -> Result<Vec<OsString>, CliError> {
    let at = |entry: &Entry, message: String| CliError::ConfigFile {
        path: path.to_owned(),
        line: Some(entry.line),
        message: format!("{}: {message}", entry.key),
    };
    let mut extra = Vec::new();
    for entry in entries {
        let env = oauth2_proxy::env_name(&entry.key);
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
    let near = oauth2_proxy::FLAGS
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
) -> CliError {
    let invalid = match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(s)) => s.clone(),
        _ => return CliError::Args(e),
    };
    let blamed = cmd.get_arguments().find_map(|a| {
        let long = a.get_long()?;
        let named = invalid == format!("--{long}") || invalid.starts_with(&format!("--{long} "));
        let key = from_file.get(a.get_id().as_str())?;
        named.then_some(key)
    });
    let Some(entry) = blamed.and_then(|key| entries.iter().find(|e| e.key == *key)) else {
        return CliError::Args(e);
    };
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    CliError::ConfigFile {
        path: path.to_owned(),
        line: Some(entry.line),
        message: format!("{}: {}", entry.key, first.trim_start_matches("error: ")),
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
    use std::io::Write as _;

    use super::*;

    /// A file in the system's temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "ext-authz-adapter-{}-{name}.cfg",
                std::process::id()
            ));
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .expect("write the config file");
            Self(path)
        }

        fn arg(&self) -> String {
            format!("--config={}", self.0.display())
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn load(args: &[&str]) -> Result<Loaded, CliError> {
        Cli::load(std::iter::once("ext-authz-adapter").chain(args.iter().copied()))
    }

    #[test]
    fn the_file_fills_what_the_command_line_does_not_set() {
        let file = TempFile::new(
            "fill",
            "email_domains = [ \"example.com\", \"example.org\" ]\n\
             cookie_name = \"from-file\"\ncookie_expire = \"4h\"\ncookie_secure = false\n\
             redis_connection_idle_timeout = 30\nupstreams = [ \"file:///dev/null\" ]\n",
        );
        let loaded = load(&[&file.arg(), "--cookie-name=from-flag"]).unwrap();
        let cli = loaded.cli;
        assert_eq!(cli.cookie_name, "from-flag");
        assert_eq!(cli.email_domain, ["example.com", "example.org"]);
        assert_eq!(cli.cookie_expire, std::time::Duration::from_secs(4 * 3600));
        assert!(!cli.cookie_secure);
        assert_eq!(cli.redis_connection_idle_timeout, 30);
        assert_eq!(cli.upstream, ["file:///dev/null"]);
        // A repeatable flag on the command line replaces the file's list, not adds to it.
        let cli = load(&[&file.arg(), "--email-domain=a.com"]).unwrap().cli;
        assert_eq!(cli.email_domain, ["a.com"]);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line() {
        let file = TempFile::new(
            "unknown",
            "email_domains = [ \"*\" ]\nemail_domain = \"*\"\n",
        );
        let err = load(&[&file.arg()]).unwrap_err().to_string();
        assert!(
            err.ends_with(
                ".cfg:2: email_domain: not an oauth2-proxy option; did you mean email_domains?"
            ),
            "{err}"
        );
        let file = TempFile::new("nosuch", "\n\nno_such_option = 1\n");
        let err = load(&[&file.arg()]).unwrap_err().to_string();
        assert!(
            err.contains(".cfg:3: no_such_option: not an oauth2-proxy option"),
            "{err}"
        );
        let file = TempFile::new(
            "bad",
            "cookie_secret = \"x\"\ncookie_expire = \"forever\"\n",
        );
        let err = load(&[&file.arg()]).unwrap_err().to_string();
        assert!(
            err.contains(".cfg:2: cookie_expire: invalid value") && err.contains("not a duration"),
            "{err}"
        );
        let file = TempFile::new("list", "cookie_name = [ \"a\" ]\n");
        let err = load(&[&file.arg()]).unwrap_err().to_string();
        assert!(
            err.contains(".cfg:1: cookie_name: takes one value, not a list"),
            "{err}"
        );
    }

    #[test]
    fn unimplemented_keys_warn_or_refuse_naming_the_file() {
        let file = TempFile::new("o2p", "request_logging = false\npass_basic_auth = false\n");
        let loaded = load(&[&file.arg()]).unwrap();
        let path = file.0.display().to_string();
        assert!(
            loaded
                .warnings
                .contains(&format!("pass_basic_auth in {path}: ignored: only changes the request oauth2-proxy proxies to an --upstream; the adapter proxies nothing (Envoy routes to the app, as with oauth2-proxy's --upstream=static://200, where this flag does nothing either)")),
            "{:?}",
            loaded.warnings
        );
        // The command line wins over the file, for these flags too.
        let loaded = load(&[&file.arg(), "--request-logging=true"]).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.starts_with("--request-logging: ignored"))
        );
        let file = TempFile::new("refused", "htpasswd_file = \"/etc/htpasswd\"\n");
        let path = file.0.display().to_string();
        let Err(CliError::Refused(lines)) = load(&[&file.arg()]) else {
            panic!("htpasswd_file accepted");
        };
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with(&format!("htpasswd_file in {path}: not supported here: ")),
            "{lines:?}"
        );
    }

    #[test]
    fn unknown_variables_are_named_once() {
        let cmd = oauth2_proxy::register(Cli::command());
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
