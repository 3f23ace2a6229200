//! p99 at equal offered load: the closed loop measures each system at its own saturation,
//! where queueing decides the tail. Here every system gets the same fixed rate in an open loop
//! (`bench-agent http-load --rate`, latency from each request's intended send time, so a
//! stalled server cannot hide its queue by slowing the load down), a rate oauth2-proxy itself
//! sustains: [`SHARE`] of its closed-loop throughput.

use super::{Bench, Scenario};

/// The offered load, as a share of oauth2-proxy's median closed-loop requests/s.
pub const SHARE: f64 = 0.6;

/// The closed-loop rows measured again at the common rate, and their ids in the open loop.
const ROWS: [(&str, &str); 4] = [
    ("ours-http", "open-ours"),
    ("peer-http", "open-peer"),
    ("limit", "open-limit"),
    ("limit-nginx", "open-nginx"),
];

impl Bench {
    /// The open-loop scenarios, at [`SHARE`] of oauth2-proxy's median throughput (of the
    /// adapter's when oauth2-proxy was not measured); none when neither was.
    pub(super) fn open_loop(&self, closed: &[Scenario]) -> Vec<Scenario> {
        let median_rps = |id: &str| -> Option<f64> {
            let s = closed.iter().find(|s| s.id == id && s.failed.is_none())?;
            super::report::median(s.runs.iter().map(|r| r.load.rps).collect())
        };
        let Some(base) = median_rps("peer-http").or_else(|| median_rps("ours-http")) else {
            return Vec::new();
        };
        let rate = (base * SHARE).round();
        println!("[xtask] bench: open loop at {rate:.0} requests/s");
        ROWS.iter()
            .filter_map(|(from, id)| {
                let s = closed
                    .iter()
                    .find(|s| s.id == *from && s.failed.is_none())?;
                let mut open = s.clone();
                open.id = id;
                open.group = "open";
                open.rate = Some(rate);
                open.runs.clear();
                open.reruns.clear();
                open.command = self.load_command(&open);
                Some(open)
            })
            .collect()
    }
}
