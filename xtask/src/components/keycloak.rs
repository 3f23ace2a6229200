//! Keycloak 26, the OpenID provider of the seed, for the end-to-end tests and the demo.
//!
//! Install: Maven Central's `org.keycloak:keycloak-quarkus-dist:<VERSION>:zip` (through `mvn
//! dependency:copy`, so the machine's Maven settings and mirrors apply), unpacked into
//! `<cache>/keycloak-<VERSION>/`, built once (`kc.sh build` with [`BUILD_OPTIONS`]) so that
//! each start is `kc.sh start --optimized` (no Quarkus re-augmentation: that alone takes about
//! 30 s on 2 cores, which `start-dev` would pay on every start), then started once without
//! realms to keep a database template (schema and master realm with the bootstrap admin: about
//! 10 s less per start). Everything happens in a temporary sibling directory that is renamed
//! into place when complete. [`VERSION`] is the one pin.
//!
//! JDK: Keycloak 26 supports Java 21 and 25. `$OIDC_AUTHZ_KEYCLOAK_JAVA_HOME` if set,
//! otherwise the newest JDK 21..=25 under `/usr/lib/jvm` (Temurin 25 on our machines; the
//! default OpenJDK 17 is not supported).
//!
//! Start ([`Services::start_keycloak`]): a fresh per-run home in the temp directory (its own
//! `bin/kc.sh` copy, symlinks to the cached `lib`, `conf`, `themes` and `providers`, and its
//! own `data/` with a copy of the template database and `data/import/` holding
//! `deploy/keycloak/realm-*.json`), so every run starts from the realm files and runs never
//! share state. Production mode over plain HTTP on 127.0.0.1, local caches (no clustering),
//! and the seed's host name as the frontend URL:
//!
//! ```text
//! kc.sh start --optimized --cache=local --http-enabled=true --http-host=127.0.0.1
//!   --http-port=<port> --hostname=http://keycloak.example.com:<port>
//!   --hostname-backchannel-dynamic=true --import-realm
//!   --https-port=<https port> --https-certificate-file=<run dir>/tls/server.pem
//!   --https-certificate-key-file=<run dir>/tls/server.key
//! ```
//!
//! The issuer is therefore `http://keycloak.example.com:<port>/realms/mytest` for everyone
//! (browsers, tests, the adapter): clients map `keycloak.example.com` to 127.0.0.1. Requests
//! that arrive as `http://127.0.0.1:<port>` also work (backchannel dynamic: such discovery
//! documents point the backchannel endpoints at 127.0.0.1), but the `iss` of every token is the
//! keycloak.example.com URL.
//!
//! HTTPS (the provider-TLS tests, issue 17): a second listener on 127.0.0.1:`<https port>`
//! serves a certificate for `127.0.0.1` and `localhost` signed by a CA made for the run with
//! openssl (`test_ca`, as the tests make theirs), which no system store trusts. The server's
//! `--hostname` holds for requests over HTTPS too: the imported realms' issuer stays the
//! `http://keycloak.example.com` URL there. A test that logs in over HTTPS creates a realm
//! whose frontend URL is the HTTPS listener (`test_support::keycloak::Keycloak::create_https_realm`):
//! its issuer and every endpoint are then `https://127.0.0.1:<https port>/...`.
//!
//! `start_keycloak` is a method of [`Services`] (defined here, next to the rest of Keycloak)
//! so that `main.rs` can call it although this module is private to `components`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Component, Env};
use crate::util::{self, Readiness, Services};

/// The one pin of the Keycloak version (Maven Central `org.keycloak:keycloak-quarkus-dist`).
pub const VERSION: &str = "26.7.3";

/// Build-time options baked in by `kc.sh build` at install.
const BUILD_OPTIONS: &[&str] = &["--db=dev-file"];

/// The host name of the seed for Keycloak; clients map it to 127.0.0.1.
pub const HOSTNAME: &str = "keycloak.example.com";

/// Master realm admin created at each start (`KC_BOOTSTRAP_ADMIN_*`).
pub const ADMIN_USER: &str = "admin";
/// Password of [`ADMIN_USER`].
pub const ADMIN_PASSWORD: &str = "admin";

/// Realms that must be served before Keycloak counts as ready (all of `deploy/keycloak`).
const REALMS: &[&str] = &["mytest", "upstream-idp"];

/// How long a start may take: about 20 s on an idle 2-core machine, much more under load.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Overrides the JDK used to run Keycloak.
const JAVA_HOME_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_JAVA_HOME";

/// Environment for the tests (read by `test_support::keycloak::keycloak`).
pub const URL_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_URL";
/// `https://127.0.0.1:<https port>`: Keycloak's HTTPS listener.
pub const HTTPS_URL_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_HTTPS_URL";
/// The CA certificate (PEM) that signs the HTTPS listener's certificate.
pub const CA_FILE_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_CA_FILE";
/// `127.0.0.1:<port>`: where to connect for [`HOSTNAME`].
pub const ADDR_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_ADDR";
/// The backchannel base URL `http://127.0.0.1:<port>`; also a placeholder in the realm files.
pub const BACKCHANNEL_URL_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_BACKCHANNEL_URL";
/// Master realm admin user name.
pub const ADMIN_USER_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_ADMIN_USER";
/// Master realm admin password.
pub const ADMIN_PASSWORD_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_ADMIN_PASSWORD";
/// The Keycloak version.
pub const VERSION_ENV: &str = "OIDC_AUTHZ_KEYCLOAK_VERSION";

/// Keycloak.
pub struct Keycloak;

impl Component for Keycloak {
    fn ensure_installed(&self) -> Result<Env, String> {
        let jdk = find_jdk()?;
        let dir = install_dir()?;
        let label = format!("keycloak {VERSION}");
        if is_installed(&dir) {
            println!(
                "[xtask] {label}: cached at {} (java {})",
                dir.display(),
                jdk.version
            );
        } else {
            util::tool_version("mvn", "install Maven (Debian: apt-get install maven)")?;
            which("unzip", "install unzip (Debian: apt-get install unzip)")?;
            println!(
                "[xtask] {label}: installing org.keycloak:keycloak-quarkus-dist:{VERSION}:zip \
                 from Maven into {} (java {} at {}) ...",
                dir.display(),
                jdk.version,
                jdk.home.display()
            );
            install(&dir, &jdk)?;
            println!("[xtask] {label}: installed at {}", dir.display());
        }
        // The tests' environment comes from `Services::start_keycloak`.
        Ok(Env::new())
    }
}

impl Services {
    /// Starts Keycloak with the realms of `deploy/keycloak` on 127.0.0.1:`port` (0: a port
    /// from [`util::reserve_port`], held until xtask exits), and registers its readiness check (both realms' discovery documents) for
    /// [`Services::wait_ready`]. Does not wait: the caller may do other work (compile the
    /// tests) while Keycloak boots.
    ///
    /// `frontend_url` is the URL browsers use and the origin of the issuer; by default
    /// `http://keycloak.example.com:<port>`. Pass another one when Keycloak is reached through
    /// a proxy (e.g. `http://keycloak.example.com:<envoy port>` for the demo).
    ///
    /// Keycloak also listens for HTTPS on a second reserved port, with a certificate from a CA
    /// made for this run (the module docs say how to log in over it).
    ///
    /// Returns the environment for the tests: [`URL_ENV`] (the frontend URL), [`ADDR_ENV`],
    /// [`BACKCHANNEL_URL_ENV`], [`HTTPS_URL_ENV`], [`CA_FILE_ENV`], [`ADMIN_USER_ENV`],
    /// [`ADMIN_PASSWORD_ENV`], [`VERSION_ENV`]. Keycloak (and openssl, for the CA) is installed
    /// first if it is not yet.
    pub fn start_keycloak(&mut self, port: u16, frontend_url: Option<&str>) -> Result<Env, String> {
        let dir = install_dir()?;
        if !is_installed(&dir) {
            Keycloak.ensure_installed()?;
        }
        let jdk = find_jdk()?;
        // Reserved for as long as xtask runs (it runs as long as Keycloak): no test process
        // or port-0 listener can take it while the JVM boots.
        let port = if port == 0 {
            util::reserve_port("keycloak (started by cargo xtask)")?
        } else {
            port
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let https_port = util::reserve_port("keycloak https (started by cargo xtask)")?;
        let https_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, https_port));
        let url = match frontend_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{HOSTNAME}:{port}"),
        };
        let backchannel = format!("http://{addr}");

        let run_dir =
            std::env::temp_dir().join(format!("oidc-authz-keycloak-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run_dir);
        let home = run_dir.join("home");
        prepare_home(&dir, &home)?;
        let log = run_dir.join("keycloak.log");
        // openssl is installed by `cargo xtask test` already; not by `keycloak` or `demo`.
        let tls = test_ca::CaFiles::create(&run_dir.join("tls")).or_else(|_| {
            super::openssl::Openssl.ensure_installed()?;
            test_ca::CaFiles::create(&run_dir.join("tls"))
        })?;

        let mut cmd = kc_start(&home, &jdk, port, &url, true);
        cmd.arg(format!("--https-port={https_port}"))
            .arg(format!(
                "--https-certificate-file={}",
                tls.server_cert.display()
            ))
            .arg(format!(
                "--https-certificate-key-file={}",
                tls.server_key.display()
            ));
        // Placeholders in deploy/keycloak/realm-*.json.
        cmd.env(URL_ENV, &url)
            .env(BACKCHANNEL_URL_ENV, &backchannel);

        let probe_host = format!("{HOSTNAME}:{port}");
        let mut pending: Vec<String> = REALMS
            .iter()
            .map(|realm| format!("/realms/{realm}/.well-known/openid-configuration"))
            .collect();
        let ready = Readiness::new(
            format!(
                "GET http://{addr}/realms/<realm>/.well-known/openid-configuration (Host: \
                 {probe_host}) to answer 200 for the realms {REALMS:?}, and the HTTPS listener \
                 {https_addr} to accept connections; frontend URL {url}"
            ),
            START_TIMEOUT,
            move || {
                pending.retain(|path| {
                    util::http_status(addr, &probe_host, path, Duration::from_secs(5)) != Some(200)
                });
                // Keycloak opens both listeners together; the HTTPS one is checked all the same.
                pending.is_empty()
                    && std::net::TcpStream::connect_timeout(&https_addr, Duration::from_secs(5))
                        .is_ok()
            },
        );

        println!(
            "[xtask] keycloak {VERSION}: starting at {url} (listening on {addr}, HTTPS on \
             {https_addr} with a certificate of the CA {}; java {}; log {})",
            tls.ca_cert.display(),
            jdk.version,
            log.display()
        );
        self.spawn("keycloak", &mut cmd, &log, Some(run_dir), Some(ready))?;

        let mut env = tests_env(url, addr, backchannel);
        env.push((
            HTTPS_URL_ENV.to_owned(),
            format!("https://{https_addr}").into(),
        ));
        env.push((CA_FILE_ENV.to_owned(), tls.ca_cert.into_os_string()));
        Ok(env)
    }
}

/// The tests' environment for a Keycloak at frontend `url`, listening on `addr`.
fn tests_env(url: String, addr: SocketAddr, backchannel: String) -> Env {
    vec![
        (URL_ENV.to_owned(), url.into()),
        (ADDR_ENV.to_owned(), addr.to_string().into()),
        (BACKCHANNEL_URL_ENV.to_owned(), backchannel.into()),
        (ADMIN_USER_ENV.to_owned(), ADMIN_USER.into()),
        (ADMIN_PASSWORD_ENV.to_owned(), ADMIN_PASSWORD.into()),
        (VERSION_ENV.to_owned(), VERSION.into()),
    ]
}

/// `<cache>/keycloak-<VERSION>`.
fn install_dir() -> Result<PathBuf, String> {
    Ok(util::cache_root()?.join(format!("keycloak-{VERSION}")))
}

/// The marker written after a complete install: the version and the build options.
fn marker_text() -> String {
    format!(
        "keycloak {VERSION} built with {} and a database template\n",
        BUILD_OPTIONS.join(" ")
    )
}

const MARKER: &str = ".oidc-authz-installed";

fn is_installed(dir: &Path) -> bool {
    dir.join("bin/kc.sh").is_file()
        && dir.join("lib/quarkus/quarkus-application.dat").is_file()
        && dir.join(DB_TEMPLATE).join("keycloakdb.mv.db").is_file()
        && std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m == marker_text())
}

fn which(program: &str, hint: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(format!("`{program}` not found; {hint}"))
    }
}

fn install(dir: &Path, jdk: &Jdk) -> Result<(), String> {
    let parent = dir.parent().ok_or("cache dir has no parent")?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = parent.join(format!(".keycloak-{VERSION}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let result = install_in(&staging, dir, jdk);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn install_in(staging: &Path, dir: &Path, jdk: &Jdk) -> Result<(), String> {
    let zip = staging.join(format!("keycloak-quarkus-dist-{VERSION}.zip"));
    // Run from the staging directory so that no project pom.xml is picked up; quiet unless
    // it fails.
    let output = Command::new("mvn")
        .current_dir(staging)
        .args(["-B", "-q", "dependency:copy"])
        .arg(format!(
            "-Dartifact=org.keycloak:keycloak-quarkus-dist:{VERSION}:zip"
        ))
        .arg(format!("-DoutputDirectory={}", staging.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run mvn: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "mvn dependency:copy -Dartifact=org.keycloak:keycloak-quarkus-dist:{VERSION}:zip \
             failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if !zip.is_file() {
        return Err(format!(
            "mvn dependency:copy did not produce {}",
            zip.display()
        ));
    }
    util::run(
        Command::new("unzip")
            .arg("-q")
            .arg(&zip)
            .arg("-d")
            .arg(staging.join("unpacked")),
    )?;
    let _ = std::fs::remove_file(&zip);
    let unpacked = staging.join("unpacked").join(format!("keycloak-{VERSION}"));
    if !unpacked.join("bin/kc.sh").is_file() {
        return Err(format!(
            "the Keycloak zip did not contain keycloak-{VERSION}/bin/kc.sh"
        ));
    }
    println!(
        "[xtask] keycloak {VERSION}: kc.sh build {} (about 30 s) ...",
        BUILD_OPTIONS.join(" ")
    );
    let output = Command::new(unpacked.join("bin/kc.sh"))
        .arg("build")
        .args(BUILD_OPTIONS)
        .env("JAVA_HOME", &jdk.home)
        .env_remove("JAVA_OPTS")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run kc.sh build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "kc.sh build failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // `kc.sh build` and `show-config` may leave logs behind; each run has its own data/.
    let _ = std::fs::remove_dir_all(unpacked.join("data"));
    make_db_template(&unpacked, staging, jdk)?;
    std::fs::write(unpacked.join(MARKER), marker_text())
        .map_err(|e| format!("cannot write the install marker: {e}"))?;
    util::publish_dir(&unpacked, dir, is_installed)
}

/// `kc.sh start --optimized` in `home` on 127.0.0.1:`port` with frontend URL `url`, local
/// caches, the bootstrap admin, and `--import-realm` if `import`.
fn kc_start(home: &Path, jdk: &Jdk, port: u16, url: &str, import: bool) -> Command {
    let mut cmd = Command::new(home.join("bin/kc.sh"));
    cmd.args([
        "start",
        "--optimized",
        "--cache=local",
        "--http-enabled=true",
    ])
    .arg("--http-host=127.0.0.1")
    .arg(format!("--http-port={port}"))
    .arg(format!("--hostname={url}"))
    .arg("--hostname-backchannel-dynamic=true")
    .args(import.then_some("--import-realm"))
    .current_dir(home)
    .env("JAVA_HOME", &jdk.home)
    .env_remove("JAVA_OPTS")
    .env("KC_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USER)
    .env("KC_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD);
    cmd
}

/// Where the install keeps the H2 database every run starts from.
const DB_TEMPLATE: &str = "db-template/h2";

/// Starts the freshly built Keycloak once without realms, so that its database has the schema
/// and the master realm with the bootstrap admin, stops it (cleanly: H2 is closed), and keeps
/// that database as [`DB_TEMPLATE`]. Each run starts from a copy: this saves Liquibase's
/// schema creation and the master realm set-up, about 10 of the 25-30 s of a start on 2 cores.
fn make_db_template(install: &Path, staging: &Path, jdk: &Jdk) -> Result<(), String> {
    println!("[xtask] keycloak {VERSION}: creating the database template (one start) ...");
    let home = staging.join("template-home");
    link_home(install, &home)?;
    let port = util::reserve_port("keycloak (database template, cargo xtask install)")?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut services = Services::new();
    let ready = Readiness::new(
        format!("GET http://{addr}/realms/master/.well-known/openid-configuration to answer 200"),
        START_TIMEOUT,
        move || {
            let path = "/realms/master/.well-known/openid-configuration";
            util::http_status(addr, &addr.to_string(), path, Duration::from_secs(5)) == Some(200)
        },
    );
    services.spawn(
        "keycloak (database template)",
        &mut kc_start(&home, jdk, port, &format!("http://{addr}"), false),
        &staging.join("template.log"),
        None,
        Some(ready),
    )?;
    services.wait_ready()?;
    services.stop_all();
    let h2 = home.join("data/h2");
    if !h2.join("keycloakdb.mv.db").is_file() {
        return Err(format!(
            "Keycloak left no database at {}; log:\n{}",
            h2.display(),
            util::log_tail(&staging.join("template.log"), 40)
        ));
    }
    copy_files(&h2, &install.join(DB_TEMPLATE))
}

/// Copies the files (not subdirectories) of `from` into `to`, creating it.
fn copy_files(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", from.display()))?
            .path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_file() && !name.ends_with(".trace.db") {
            let target = to.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &target).map_err(|e| {
                format!(
                    "cannot copy {} to {}: {e}",
                    path.display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

/// A Keycloak home for one run: `bin/kc.sh` copied (kc.sh derives the home from its own
/// resolved path), the read-only parts linked to the install, and an empty `data/`.
fn link_home(install: &Path, home: &Path) -> Result<(), String> {
    let err = |what: &str, path: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", path.display())
    };
    std::fs::create_dir_all(home.join("bin")).map_err(|e| err("create", home, e))?;
    std::fs::create_dir_all(home.join("data")).map_err(|e| err("create", home, e))?;
    let kc = home.join("bin/kc.sh");
    std::fs::copy(install.join("bin/kc.sh"), &kc).map_err(|e| err("copy kc.sh to", &kc, e))?;
    for part in ["lib", "conf", "themes", "providers"] {
        let link = home.join(part);
        std::os::unix::fs::symlink(install.join(part), &link).map_err(|e| err("link", &link, e))?;
    }
    Ok(())
}

/// The per-run home ([`link_home`]) with a copy of the database template in `data/h2/` and
/// the realms of `deploy/keycloak` in `data/import/`.
fn prepare_home(install: &Path, home: &Path) -> Result<(), String> {
    let err = |what: &str, path: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", path.display())
    };
    link_home(install, home)?;
    copy_files(&install.join(DB_TEMPLATE), &home.join("data/h2"))?;
    let import = home.join("data/import");
    std::fs::create_dir_all(&import).map_err(|e| err("create", &import, e))?;
    let realms = util::repo_root().join("deploy/keycloak");
    let mut count = 0;
    for entry in std::fs::read_dir(&realms).map_err(|e| err("read", &realms, e))? {
        let path = entry.map_err(|e| err("read", &realms, e))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("realm-") && name.ends_with(".json") {
            let target = import.join(&*name);
            std::fs::copy(&path, &target).map_err(|e| err("copy to", &target, e))?;
            count += 1;
        }
    }
    if count == 0 {
        return Err(format!("no realm-*.json in {}", realms.display()));
    }
    Ok(())
}

/// A JDK that runs Keycloak.
struct Jdk {
    home: PathBuf,
    /// `JAVA_VERSION` of its `release` file, e.g. `25.0.3`.
    version: String,
}

/// Oldest and newest Java feature release Keycloak 26 supports.
const JAVA_SUPPORTED: std::ops::RangeInclusive<u32> = 21..=25;

fn find_jdk() -> Result<Jdk, String> {
    if let Some(home) = std::env::var_os(JAVA_HOME_ENV).filter(|v| !v.is_empty()) {
        let home = PathBuf::from(home);
        let version = java_version(&home).ok_or_else(|| {
            format!(
                "{JAVA_HOME_ENV}={} is not a JDK (no release file with JAVA_VERSION)",
                home.display()
            )
        })?;
        return Ok(Jdk { home, version });
    }
    let root = Path::new("/usr/lib/jvm");
    let mut best: Option<(u32, Jdk)> = None;
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let home = entry.path();
        if home.is_symlink() {
            continue;
        }
        let Some(version) = java_version(&home) else {
            continue;
        };
        seen.push(format!("{} ({version})", home.display()));
        let major = feature_release(&version);
        if JAVA_SUPPORTED.contains(&major)
            && home.join("bin/java").is_file()
            && best.as_ref().is_none_or(|(m, _)| major > *m)
        {
            best = Some((major, Jdk { home, version }));
        }
    }
    let (_, jdk) = best.ok_or_else(|| {
        format!(
            "Keycloak {VERSION} needs Java {}..={}, and /usr/lib/jvm has none of them \
             (found: {}); install one (Debian: openjdk-21-jdk-headless) or set {JAVA_HOME_ENV}",
            JAVA_SUPPORTED.start(),
            JAVA_SUPPORTED.end(),
            if seen.is_empty() {
                "nothing".to_owned()
            } else {
                seen.join(", ")
            }
        )
    })?;
    Ok(jdk)
}

/// `JAVA_VERSION` from `<home>/release`.
fn java_version(home: &Path) -> Option<String> {
    let release = std::fs::read_to_string(home.join("release")).ok()?;
    release.lines().find_map(|line| {
        let value = line.strip_prefix("JAVA_VERSION=")?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

/// `25` for `25.0.3`, `17` for `17.0.15`, `8` for `1.8.0_402`.
fn feature_release(version: &str) -> u32 {
    let mut parts = version.split(['.', '_', '-', '+']);
    match parts.next().and_then(|p| p.parse().ok()) {
        Some(1) => parts.next().and_then(|p| p.parse().ok()).unwrap_or(0),
        Some(n) => n,
        None => 0,
    }
}

/// A Keycloak of its own for `cargo xtask chaos`, whose test restarts it (the shared one of
/// `cargo xtask test` is never restarted): a per-run home as for [`Services::start_keycloak`]
/// on 127.0.0.1:`port`, and a shell script in its run directory that starts it in the
/// foreground (`exec kc.sh start ...`; the caller runs it in a process group of its own).
/// Returns the script and the tests' environment (the same variables as `start_keycloak`).
/// Each start after the first keeps the database (`data/h2` in the home).
pub fn own_keycloak(port: u16) -> Result<(PathBuf, Env), String> {
    let dir = install_dir()?;
    if !is_installed(&dir) {
        Keycloak.ensure_installed()?;
    }
    let jdk = find_jdk()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let url = format!("http://{HOSTNAME}:{port}");
    let backchannel = format!("http://{addr}");
    let run_dir = std::env::temp_dir().join(format!(
        "oidc-authz-chaos-keycloak-{}-{port}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&run_dir);
    let home = run_dir.join("home");
    prepare_home(&dir, &home)?;
    let mut cmd = kc_start(&home, &jdk, port, &url, true);
    cmd.env(URL_ENV, &url)
        .env(BACKCHANNEL_URL_ENV, &backchannel);
    let script = run_dir.join("start-keycloak.sh");
    std::fs::write(&script, shell_script(&cmd))
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    println!(
        "[xtask] keycloak {VERSION}: its own for this run at {url} (listening on {addr}; started \
         and restarted by the test with {}; log keycloak.log next to it)",
        script.display()
    );
    Ok((script, tests_env(url, addr, backchannel)))
}

/// `cmd` as a POSIX shell script: its directory, environment changes, then `exec`.
fn shell_script(cmd: &Command) -> String {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut script = String::from("#!/bin/sh\nset -e\n");
    if let Some(dir) = cmd.get_current_dir() {
        script.push_str(&format!("cd {}\n", quote(dir.as_os_str())));
    }
    for (key, value) in cmd.get_envs() {
        let key = key.to_string_lossy();
        match value {
            Some(value) => script.push_str(&format!("export {key}={}\n", quote(value))),
            None => script.push_str(&format!("unset {key}\n")),
        }
    }
    script.push_str("exec ");
    script.push_str(&quote(cmd.get_program()));
    for arg in cmd.get_args() {
        script.push(' ');
        script.push_str(&quote(arg));
    }
    script.push('\n');
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_releases() {
        assert_eq!(feature_release("25.0.3"), 25);
        assert_eq!(feature_release("17.0.15"), 17);
        assert_eq!(feature_release("21"), 21);
        assert_eq!(feature_release("1.8.0_402"), 8);
        assert_eq!(feature_release("garbage"), 0);
    }

    #[test]
    fn the_pin_is_26x() {
        assert!(VERSION.starts_with("26."), "{VERSION}");
    }

    #[test]
    fn the_realm_files_use_only_known_placeholders() {
        let dir = util::repo_root().join("deploy/keycloak");
        for name in ["realm-mytest.json", "realm-upstream-idp.json"] {
            let text = std::fs::read_to_string(dir.join(name)).expect(name);
            for (i, _) in text.match_indices("${OIDC_AUTHZ_") {
                let rest = &text[i + 2..];
                let var = &rest[..rest.find([':', '}']).expect("closed placeholder")];
                assert!(
                    var == URL_ENV || var == BACKCHANNEL_URL_ENV,
                    "{name}: unknown placeholder {var}"
                );
            }
        }
    }
}
