//! Starting the measured servers the same way wherever the bench needs one (the comparison's
//! and the cost curves'): pinned to the servers' CPUs, an empty environment for the adapter and
//! oauth2-proxy, a log per process, and a readiness probe.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Bench, CLIENT_SECRET};
use crate::util::{self, Readiness, Services};

/// How long a server may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Ready when `GET <path>` on 127.0.0.1:`port` answers 200. Probes name the server by its
/// address: `/ready` of a protected host would be a check.
pub fn http_ready(port: u16, path: &'static str) -> impl FnMut() -> bool + Send + 'static {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let host = addr.to_string();
    move || util::http_status(addr, &host, path, Duration::from_secs(2)) == Some(200)
}

/// Ready when Envoy's admin listener on 127.0.0.1:`port` answers `/ready` with 200.
fn admin_ready(port: u16) -> impl FnMut() -> bool + Send + 'static {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    move || util::http_status(addr, "localhost", "/ready", Duration::from_secs(2)) == Some(200)
}

impl Bench {
    /// Starts the adapter with `args` (its HTTP port is `port`), in an empty environment but
    /// for its client secret; returns its pid.
    pub(super) fn spawn_adapter(
        &self,
        services: &mut Services,
        name: &str,
        port: u16,
        args: &[String],
    ) -> Result<u32, String> {
        let mut cmd = self.pinned(&self.pin.servers, &self.bins.adapter);
        cmd.args(args)
            .env_clear()
            .env("OAUTH2_PROXY_CLIENT_SECRET", CLIENT_SECRET);
        self.spawn(
            services,
            name,
            &mut cmd,
            "GET /ready",
            http_ready(port, "/ready"),
        )
    }

    /// Starts oauth2-proxy (`binary`) with `args` on `port`, in an empty environment but for
    /// its Go runtime settings ([`Bench::go_env`]); returns its pid.
    pub(super) fn spawn_oauth2_proxy(
        &self,
        services: &mut Services,
        name: &str,
        binary: &Path,
        port: u16,
        args: &[String],
    ) -> Result<u32, String> {
        let mut cmd = self.pinned(&self.pin.servers, binary);
        cmd.args(args).env_clear().envs(self.go_env());
        self.spawn(
            services,
            name,
            &mut cmd,
            "GET /ping",
            http_ready(port, "/ping"),
        )
    }

    /// `bench-agent envoy-config --kind=<kind> --listen=... --admin=... --app=... <extra>`
    /// written to `envoy-<name>.json`; the error is what the agent printed.
    pub(super) fn envoy_config_file(
        &self,
        name: &str,
        kind: &str,
        (listen, admin, app): (u16, u16, u16),
        extra: &[String],
    ) -> Result<PathBuf, String> {
        let file = self.dir.join(format!("envoy-{name}.json"));
        let out = Command::new(&self.bins.agent)
            .arg("envoy-config")
            .arg(format!("--kind={kind}"))
            .arg(format!("--listen=127.0.0.1:{listen}"))
            .arg(format!("--admin=127.0.0.1:{admin}"))
            .arg(format!("--app=127.0.0.1:{app}"))
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("bench-agent envoy-config: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        std::fs::write(&file, &out.stdout)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(file)
    }

    /// Starts Envoy (one worker) with the configuration `file`, ready when its admin port
    /// `admin` is; returns its pid.
    pub(super) fn spawn_envoy(
        &self,
        services: &mut Services,
        name: &str,
        file: &Path,
        admin: u16,
    ) -> Result<u32, String> {
        let mut cmd = self.pinned(&self.pin.servers, &self.bins.envoy);
        cmd.arg("--config-path").arg(file).args([
            "--concurrency",
            "1",
            "--log-level",
            "warning",
            "--disable-hot-restart",
            "--use-dynamic-base-id",
        ]);
        self.spawn(services, name, &mut cmd, "admin /ready", admin_ready(admin))
    }

    /// Spawns `cmd` as `name` (log `<name>.log`) with a readiness probe.
    fn spawn(
        &self,
        services: &mut Services,
        name: &str,
        cmd: &mut Command,
        what: &str,
        ready: impl FnMut() -> bool + Send + 'static,
    ) -> Result<u32, String> {
        let log = self.dir.join(format!("{name}.log"));
        let ready = Readiness::new(what.into(), START_TIMEOUT, ready);
        Ok(services.spawn(name, cmd, &log, None, Some(ready))?.pid)
    }
}
