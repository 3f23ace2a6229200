//! Bad flags stop the start with a message naming the flag and the fix; oauth2-proxy's
//! config file, and the oauth2-proxy flags the adapter does not implement (warned or refused).

mod common;

use std::process::Command;

use common::{AdapterProcess, Log};

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"))
        .args(args)
        .env_remove("OAUTH2_PROXY_CLIENT_SECRET")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OK: &[&str] = &[
    "--oidc-issuer-url=http://127.0.0.1:1/realms/x",
    "--client-id=nginx",
    "--cookie-secret=0123456789abcdef",
    "--http-address=127.0.0.1:0",
];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v: Vec<&str> = OK.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn unknown_flag_is_named() {
    let (code, err) = run(&with(&["--no-such-flag=1"]));
    assert_ne!(code, 0);
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn short_cookie_secret_names_the_flag_and_the_fix() {
    let (code, err) = run(&[OK[0], OK[1], "--cookie-secret=short", OK[3]]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--cookie-secret") && err.contains("16, 24 or 32 bytes"),
        "{err}"
    );
    assert!(
        !err.contains("short\""),
        "the secret itself is not echoed: {err}"
    );
}

#[test]
fn issuer_that_is_not_a_url_is_named() {
    let (code, err) = run(&["--oidc-issuer-url=keycloak", OK[1], OK[2], OK[3]]);
    assert_ne!(code, 0);
    assert!(err.contains("--oidc-issuer-url"), "{err}");
}

#[test]
fn other_bad_values_are_named() {
    for (flag, needle) in [
        ("--cookie-expire=forever", "--cookie-expire"),
        ("--cookie-samesite=sometimes", "--cookie-samesite"),
        ("--upstream=http://nginx:80", "--upstream"),
        ("--upstream=file:///srv/www", "--upstream"),
        ("--code-challenge-method=plain", "--code-challenge-method"),
        ("--provider=github", "--provider"),
        ("--whitelist-domain=exa mple.com", "--whitelist-domain"),
        ("--http-address=nowhere", "--http-address"),
        ("--cookie-secure=maybe", "--cookie-secure"),
    ] {
        let (code, err) = run(&with(&[flag]));
        assert_ne!(code, 0, "{flag} accepted");
        assert!(err.contains(needle), "{flag}: {err}");
    }
}

/// A minimal session has no tokens: a flag that needs one would silently do nothing
/// (and a client's own `Authorization` would reach the app), so the start is refused.
#[test]
fn minimal_session_refuses_flags_that_need_tokens() {
    for flag in [
        "--set-authorization-header",
        "--pass-access-token",
        "--cookie-refresh=1m",
    ] {
        let (code, err) = run(&with(&["--session-cookie-minimal", flag]));
        assert_ne!(code, 0, "{flag} accepted with --session-cookie-minimal");
        let name = flag.split('=').next().unwrap_or(flag);
        assert!(
            err.contains("--session-cookie-minimal") && err.contains(name),
            "{flag}: {err}"
        );
    }
}

#[test]
fn missing_required_values_are_named() {
    let (code, err) = run(&["--client-id=nginx", "--cookie-secret=0123456789abcdef"]);
    assert_ne!(code, 0);
    assert!(err.contains("--oidc-issuer-url"), "{err}");
    let (_, err) = run(&["--oidc-issuer-url=http://127.0.0.1:1", "--client-id=nginx"]);
    assert!(err.contains("--cookie-secret"), "{err}");
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--provider",
        "--oidc-issuer-url",
        "--client-id",
        "--client-secret",
        "--cookie-secret",
        "--cookie-name",
        "--cookie-domain",
        "--cookie-path",
        "--cookie-secure",
        "--cookie-httponly",
        "--cookie-samesite",
        "--cookie-expire",
        "--cookie-refresh",
        "--set-authorization-header",
        "--set-xauthrequest",
        "--pass-access-token",
        "--email-domain",
        "--http-address",
        "--upstream",
        "--skip-provider-button",
        "--whitelist-domain",
        "--redirect-url",
        "--code-challenge-method",
        "--insecure-oidc-skip-nonce",
        "--insecure-oidc-allow-unverified-email",
        "--oidc-groups-claim",
        "--scope",
        "--proxy-prefix",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(help.contains("OAUTH2_PROXY_CLIENT_SECRET"));
}

#[test]
fn env_vars_are_read() {
    let out = Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"))
        .args(["--oidc-issuer-url=http://127.0.0.1:1", "--client-id=nginx"])
        .env("OAUTH2_PROXY_COOKIE_SECRET", "bad")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cookie-secret") && err.contains("3 bytes"),
        "env value used: {err}"
    );
}

#[test]
fn cookie_prefixes_and_skip_routes_are_validated() {
    let (code, err) = run(&with(&[
        "--cookie-name=__Host-auth",
        "--cookie-domain=.example.com",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("--cookie-domain"), "{err}");
    let (code, err) = run(&with(&[
        "--cookie-name=__Secure-auth",
        "--cookie-secure=false",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("--cookie-secure"), "{err}");
    let (code, err) = run(&with(&["--skip-auth-route=GET=^/("]));
    assert_ne!(code, 0);
    assert!(err.contains("--skip-auth-route"), "{err}");
}

/// The library's errors reach the command line with flag names (never the library's own
/// setting names) and with their sources: the regex's error, the file's io::Error.
#[test]
fn library_errors_name_flags_and_print_their_sources() {
    let (code, err) = run(&with(&["--cookie-expire=1h", "--cookie-refresh=2h"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("--cookie-refresh (7200s) must be shorter than --cookie-expire (3600s)"),
        "{err}"
    );
    assert!(!err.contains("cookie.refresh"), "{err}");
    let (code, err) = run(&with(&["--skip-auth-route=GET=^/("]));
    assert_ne!(code, 0);
    assert!(
        err.contains("--skip-auth-route: invalid rule: \"GET=^/(\" is not a valid regex: ")
            && err.contains("unclosed group"),
        "{err}"
    );
    assert!(!err.contains("skip_auth_routes"), "{err}");
    let (code, err) = run(&with(&["--provider-ca-file=/nonexistent/ca.pem"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("--provider-ca-file: cannot read /nonexistent/ca.pem: ")
            && err.contains("No such file"),
        "{err}"
    );
    let (code, err) = run(&with(&["--provider-client-cert-file=/nonexistent/c.pem"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("--provider-client-key-file is required with --provider-client-cert-file"),
        "{err}"
    );
}

/// The oauth2-proxy chart's config file (tests/data/oauth2-proxy/).
fn chart_config() -> String {
    format!(
        "--config={}/tests/data/oauth2-proxy/oauth2_proxy.cfg",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs the binary with `args` and `env`: its exit code and stderr.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"))
        .args(args)
        .env_remove("OAUTH2_PROXY_CLIENT_SECRET")
        .envs(env.iter().copied())
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts the binary, waits until it listens, and returns its log so far.
async fn started(args: &[&str], env: &[(&str, &str)]) -> String {
    let args = args.iter().map(|a| (*a).to_owned()).collect();
    let mut adapter = AdapterProcess::spawn("flags", args, env, Log::default());
    adapter.bound().await;
    adapter.stop().await;
    adapter.log().lines().join("\n")
}

/// How many log lines contain `needle`.
fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// The chart's deployment: its args, its variables and its config file. The adapter starts,
/// warns once about each oauth2-proxy flag it ignores, and the file's values are used.
#[tokio::test]
async fn chart_config_file_starts_with_one_warning_per_ignored_flag() {
    let config = chart_config();
    let log = started(
        &[
            "--http-address=127.0.0.1:0",
            "--https-address=0.0.0.0:4443",
            &config,
        ],
        &[
            ("OAUTH2_PROXY_CLIENT_ID", "nginx"),
            ("OAUTH2_PROXY_CLIENT_SECRET", "nginx-client-secret"),
            ("OAUTH2_PROXY_COOKIE_SECRET", "0123456789abcdef"),
        ],
    )
    .await;
    for needle in [
        "request_logging in ",
        "silence_ping_logging in ",
        "pass_basic_auth in ",
        "--https-address: ignored: ",
    ] {
        assert_eq!(count(&log, needle), 1, "{needle}: {log}");
    }
    assert!(
        log.contains("issuer=http://127.0.0.1:1/realms/demo"),
        "the file's issuer is used: {log}"
    );
    assert!(
        !log.contains("nginx-client-secret") && !log.contains("0123456789abcdef"),
        "{log}"
    );
}

/// oauth2-proxy's precedence: command line, then environment, then the file.
#[test]
fn flag_beats_env_beats_file() {
    let config = chart_config();
    // The file says cookie_expire = "4h"; --cookie-refresh=8h makes the start fail naming the
    // expiry in force.
    let base = [
        "--client-id=nginx",
        "--cookie-secret=0123456789abcdef",
        "--cookie-refresh=8h",
        FAIL_FAST,
        &config,
    ];
    let expire = |err: &str| {
        err.split("--cookie-expire (")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .map(str::to_owned)
    };
    let (code, err) = run_env(&base, &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(expire(&err).as_deref(), Some("14400s"), "file: {err}");
    let (_, err) = run_env(&base, &[("OAUTH2_PROXY_COOKIE_EXPIRE", "6h")]);
    assert_eq!(
        expire(&err).as_deref(),
        Some("21600s"),
        "env over file: {err}"
    );
    let mut args = base.to_vec();
    args.push("--cookie-expire=7h");
    let (_, err) = run_env(&args, &[("OAUTH2_PROXY_COOKIE_EXPIRE", "6h")]);
    assert_eq!(
        expire(&err).as_deref(),
        Some("25200s"),
        "flag over env: {err}"
    );
}

/// Extra arguments, variables, and the warning expected.
type Form = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Every form of a harmless oauth2-proxy flag starts the adapter with one warning that says
/// why it does not matter.
#[tokio::test]
async fn harmless_flag_in_every_form_warns_once_and_starts() {
    let forms: [Form; 5] = [
        (&["--request-logging"], &[], "--request-logging: ignored: "),
        (
            &["--request-logging=false"],
            &[],
            "--request-logging: ignored: ",
        ),
        (
            &["--request-logging", "false"],
            &[],
            "--request-logging: ignored: ",
        ),
        (
            &[],
            &[("OAUTH2_PROXY_REQUEST_LOGGING", "false")],
            "OAUTH2_PROXY_REQUEST_LOGGING: ignored: ",
        ),
        (
            &["--skip-auth-strip-headers=true"],
            &[],
            "--skip-auth-strip-headers: ignored: ",
        ),
    ];
    for (extra, env, needle) in forms {
        let log = started(&with(extra), env).await;
        assert_eq!(count(&log, needle), 1, "{extra:?} {env:?}: {log}");
        let why = if needle.contains("strip") {
            "the adapter always has Envoy remove client-sent identity headers"
        } else {
            "the adapter logs to stderr, its level set by RUST_LOG"
        };
        assert!(log.contains(why), "the warning says why: {log}");
    }
}

/// Makes a start that should have been refused fail at once instead of serving (a test that
/// expects an error then fails on the message instead of hanging).
const FAIL_FAST: &str = "--http-address=nowhere";

/// A flag whose meaning the adapter cannot honour stops the start (exit 2) naming what to do
/// instead, from the command line, the environment or the file.
#[test]
fn refused_flag_exits_2_naming_the_alternative() {
    let (code, err) = run(&with(&["--htpasswd-file=/etc/htpasswd", FAIL_FAST]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: --htpasswd-file: not supported here: ") && err.contains("Keycloak"),
        "{err}"
    );
    assert!(
        !err.contains("/etc/htpasswd"),
        "values are not repeated: {err}"
    );
    assert!(!err.contains("WARN"), "refused, not warned: {err}");
    let (code, err) = run_env(
        &with(&[FAIL_FAST]),
        &[("OAUTH2_PROXY_TRUSTED_IPS", "10.0.0.0/8")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: OAUTH2_PROXY_TRUSTED_IPS: not supported here: ")
            && err.contains("AuthorizationPolicy"),
        "{err}"
    );
    let (code, err) = run(&with(&[
        "--skip-oidc-discovery",
        "--set-basic-auth",
        FAIL_FAST,
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: --set-basic-auth: not supported here except as false: ")
            && err.contains("\n--skip-oidc-discovery: not supported here except as false: ")
            && err.contains(".well-known/openid-configuration"),
        "{err}"
    );
}

/// A config file that is not TOML names the file, the line and what to write.
#[test]
fn malformed_config_file_names_the_line() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("malformed-{}.cfg", std::process::id()));
    std::fs::write(
        &path,
        "email_domains = [ \"*\" ]\nupstreams = [ \"static://200\" ]\ncookie_secure false\n",
    )
    .unwrap();
    let config = format!("--config={}", path.display());
    let mut args: Vec<&str> = with(&[FAIL_FAST]);
    args.push(&config);
    let (code, err) = run(&args);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("--config: {}:3: not valid TOML: ", path.display()))
            && err.contains("key = true"),
        "{err}"
    );
}

/// `istio` is a subcommand: its own help and flags, and none of the server's variables (an
/// invalid or refused `OAUTH2_PROXY_*` value does not stop it).
#[test]
fn istio_is_a_subcommand_that_reads_no_oauth2_proxy_variable() {
    let adapter = || Command::new(env!("CARGO_BIN_EXE_ext-authz-adapter"));
    let out = adapter().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\n  istio "));
    let out = adapter().args(["istio", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        help.contains("Usage: ext-authz-adapter istio [OPTIONS]"),
        "{help}"
    );
    assert!(help.contains("--check <FILE>"), "{help}");
    let out = adapter()
        .args(["istio", "--host", "nginx.example.com", "--only", "policy"])
        .env("OAUTH2_PROXY_COOKIE_EXPIRE", "forever")
        .env("OAUTH2_PROXY_HTPASSWD_FILE", "/etc/htpasswd")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: AuthorizationPolicy"));
    let (code, err) = run(&["istio", "--bogus"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--bogus") && err.contains("ext-authz-adapter istio"),
        "{err}"
    );
    // The server's flags and the subcommand do not mix.
    let (code, err) = run(&["--client-id=nginx", "istio"]);
    assert_eq!(code, 2);
    assert!(err.contains("istio"), "{err}");
}
