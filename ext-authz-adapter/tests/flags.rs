//! Bad flags stop the start with a message naming the flag and the fix.

use std::process::Command;

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
