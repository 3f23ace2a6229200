//! The minimum supported Rust version is stated once (`rust-version` of the workspace), inherited
//! by every crate meant for users, and equal to the toolchain `rust-toolchain.toml` pins, so every
//! build and test run (CI's included) checks it; the crates' READMEs say it.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The quoted value of the first line `key = "..."` of `toml` (the files are flat enough).
fn value<'a>(toml: &'a str, key: &str) -> Option<&'a str> {
    toml.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

#[test]
fn the_msrv_is_the_pinned_toolchain_and_every_published_crate_states_it() {
    let (workspace, toolchain) = (read("Cargo.toml"), read("rust-toolchain.toml"));
    let msrv = value(&workspace, "rust-version").expect("workspace rust-version");
    let pinned = value(&toolchain, "channel").expect("toolchain channel");
    // 1.95 and 1.95.0 are the same release line.
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(
        minor(msrv),
        minor(pinned),
        "rust-toolchain.toml pins {pinned} but the workspace states rust-version {msrv}: the \
         builds would not check the MSRV; change one to the other"
    );
    for krate in ["oidc-core", "tower-oidc", "ext-authz-adapter"] {
        let manifest = read(&format!("{krate}/Cargo.toml"));
        assert!(
            manifest
                .lines()
                .any(|l| l.trim() == "rust-version.workspace = true"),
            "{krate}/Cargo.toml does not inherit the workspace's rust-version"
        );
    }
    for readme in ["oidc-core/README.md", "tower-oidc/README.md"] {
        let wanted = format!("Minimum Rust version: {}.", minor(msrv));
        assert!(
            read(readme).contains(&wanted),
            "{readme} does not say {wanted:?}"
        );
    }
}
