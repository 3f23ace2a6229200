//! `--config FILE`: oauth2-proxy's TOML file read by `Cli::load`, below the command line and
//! the environment, with the file's line in every error.

use std::io::Write as _;
use std::path::PathBuf;

use ext_authz_adapter::cli::{Cli, CliError, Loaded};
use oauth2_proxy_compat::LoadError;

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
    let file = TempFile::new("samesite", "cookie_samesite = \"sometimes\"\n");
    let err = load(&[&file.arg()]).unwrap_err().to_string();
    assert!(
        err.contains(".cfg:1: cookie_samesite: invalid value")
            && err.ends_with("(one of lax, strict, none)"),
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
    let Err(CliError::Load(LoadError::Refused(lines))) = load(&[&file.arg()]) else {
        panic!("htpasswd_file accepted");
    };
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(&format!("htpasswd_file in {path}: not supported here: ")),
        "{lines:?}"
    );
}
