//! Counters and a latency histogram, kept with relaxed atomics (no lock on
//! the request path), rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::decision::{Decision, DenyReason};

/// Upper bounds of the check-latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// The engine's metrics. Read them with [`Metrics::render`].
#[derive(Debug, Default)]
pub struct Metrics {
    allowed: AtomicU64,
    unauthenticated: AtomicU64,
    forbidden: AtomicU64,
    endpoint: AtomicU64,
    login_failed: AtomicU64,
    unavailable: AtomicU64,
    pub(crate) logins: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) idp_errors: AtomicU64,
    pub(crate) jwks_fetches: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
    /// `--ssl-insecure-skip-verify` is on (set once, from the config).
    insecure_tls: bool,
}

impl Metrics {
    /// Counters at zero, for an engine whose provider TLS is unverified when `insecure_tls`.
    pub(crate) fn new(insecure_tls: bool) -> Self {
        Self {
            insecure_tls,
            ..Self::default()
        }
    }

    /// Records one decision and how long it took.
    pub fn record(&self, decision: &Decision, elapsed: Duration) {
        let counter = match decision {
            Decision::Allow(_) => &self.allowed,
            Decision::Deny(d) => match d.reason {
                DenyReason::Unauthenticated => &self.unauthenticated,
                DenyReason::Forbidden => &self.forbidden,
                DenyReason::Endpoint => &self.endpoint,
                DenyReason::LoginFailed => &self.login_failed,
                DenyReason::Unavailable => &self.unavailable,
            },
        };
        counter.fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_ns.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    /// Refresh-token grants sent to the provider.
    #[must_use]
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Relaxed)
    }

    /// JWKS fetches (start-up and rotation).
    #[must_use]
    pub fn jwks_fetches(&self) -> u64 {
        self.jwks_fetches.load(Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP oidc_authz_decisions_total Check decisions by outcome.\n# TYPE oidc_authz_decisions_total counter\n");
        for (outcome, c) in [
            ("allow", &self.allowed),
            ("unauthenticated", &self.unauthenticated),
            ("forbidden", &self.forbidden),
            ("endpoint", &self.endpoint),
            ("login_failed", &self.login_failed),
            ("unavailable", &self.unavailable),
        ] {
            let _ = writeln!(
                out,
                "oidc_authz_decisions_total{{outcome=\"{outcome}\"}} {}",
                c.load(Relaxed)
            );
        }
        for (name, help, c) in [
            (
                "oidc_authz_logins_total",
                "Completed logins (sessions created).",
                &self.logins,
            ),
            (
                "oidc_authz_refreshes_total",
                "Refresh-token grants sent to the identity provider.",
                &self.refreshes,
            ),
            (
                "oidc_authz_refresh_failures_total",
                "Refreshes that failed (provider unreachable or refused).",
                &self.refresh_failures,
            ),
            (
                "oidc_authz_idp_errors_total",
                "Failed calls to the identity provider.",
                &self.idp_errors,
            ),
            (
                "oidc_authz_jwks_fetches_total",
                "JWKS fetches (start-up and key rotation).",
                &self.jwks_fetches,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP oidc_authz_insecure_tls 1 when the identity provider's TLS certificate is not verified (ssl_insecure_skip_verify, the adapter's --ssl-insecure-skip-verify).\n# TYPE oidc_authz_insecure_tls gauge\noidc_authz_insecure_tls {}",
            u8::from(self.insecure_tls)
        );
        out.push_str("# HELP oidc_authz_check_duration_seconds Time to decide a request.\n# TYPE oidc_authz_check_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, c) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(
                out,
                "oidc_authz_check_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "oidc_authz_check_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        #[allow(clippy::cast_precision_loss)]
        let sum = self.latency_sum_ns.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "oidc_authz_check_duration_seconds_sum {sum}");
        let _ = writeln!(out, "oidc_authz_check_duration_seconds_count {count}");
        out
    }
}
