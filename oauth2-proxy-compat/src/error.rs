//! Why oauth2-proxy's settings cannot be read.

/// Why [`load`](crate::load()) cannot give the settings. Never quotes a value or a line of the
/// file: they may hold secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The arguments do not parse (clap's error: print it with [`clap::Error::exit`], which
    /// also answers `--help` and `--version`).
    #[error("{}", clap_text(.0))]
    Args(clap::Error),
    /// The `--config` file cannot be read.
    #[error("--config: cannot read {path:?}")]
    Unreadable {
        /// The file as given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The `--config` file cannot be used: not TOML, an unknown key, a value of the wrong
    /// form.
    #[error("--config: {path}:{}{message}", line.map(|l| format!("{l}: ")).unwrap_or_else(|| " ".to_owned()))]
    ConfigFile {
        /// The file as given.
        path: String,
        /// The line (from 1), when one is to blame.
        line: Option<usize>,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// oauth2-proxy flags whose meaning the program cannot honour: one line per flag, naming
    /// where it was given and what to do instead.
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
}

/// clap's message without its `error: ` label (the caller adds its own).
fn clap_text(e: &clap::Error) -> String {
    let text = e.to_string();
    text.trim_start_matches("error: ").trim_end().to_owned()
}
