//! The oauth2-proxy flag table (`oauth2-proxy-compat`) against this command line, and
//! `docs/oauth2-proxy-flags.md`, generated from both.

use clap::CommandFactory;
use ext_authz_adapter::cli::Cli;
use oauth2_proxy_compat::flags::{FLAGS, Support::Same, markdown, register};

/// The flags the adapter implements are arguments of `Cli`, read from the same variable
/// as oauth2-proxy's (so the config-file key maps to them), and the others are not.
#[test]
fn table_matches_the_command_line() {
    let cmd = Cli::command();
    for f in FLAGS {
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(f.flag));
        match (f.support, arg) {
            (Same(_), _) if matches!(f.flag, "version") => {}
            (Same(_), None) => {
                panic!("--{} is marked supported but Cli has no such flag", f.flag)
            }
            (Same(_), Some(arg)) => {
                if f.key.is_empty() {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert_eq!(env, f.env(), "--{}: variable", f.flag);
            }
            (_, Some(_)) => panic!("--{} is implemented: mark it Same", f.flag),
            (_, None) => {}
        }
    }
    let names: Vec<&str> = FLAGS.iter().map(|f| f.flag).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "FLAGS is sorted, each flag once");
    let registered = register(Cli::command());
    registered.debug_assert();
}

/// `docs/oauth2-proxy-flags.md` is this table: a flag added to one but not the other fails.
#[test]
fn flag_doc_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/oauth2-proxy-flags.md");
    let want = markdown(&Cli::command());
    if std::env::var_os("UPDATE_FLAG_DOC").is_some() {
        std::fs::write(path, &want).expect("write the doc");
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/oauth2-proxy-flags.md differs from the table in oauth2-proxy-compat/src/flags.rs; \
         rewrite it with UPDATE_FLAG_DOC=1 cargo test -p ext-authz-adapter --test oauth2_proxy_flags"
    );
}
