//! Rounds of measured runs: every scenario once per round, in a new shuffled order each round
//! (no system always runs first, after a quiet pause, or right after its peer), each scenario
//! with its own budget of repeats.
//!
//! A run is measured again when it is void (an answer other than the expected one, or a
//! transport error: the figures would mix allows with denies), when processes this run did
//! not start took more than [`OTHERS_MAX_PCT`] of the servers' CPU, or (open loop) when the
//! load generator sent more than [`LATE_MAX_SHARE`] of its requests late. A scenario that runs out of
//! repeats on a void run is reported as failed with the reason, never with the void figures;
//! every repeat and its reason go into the report.

use super::{Bench, Cookies, Scenario};

/// A measured run during which other processes took more than this share of the servers'
/// CPU is measured again (within [`super::Options::retries`] per scenario).
pub const OTHERS_MAX_PCT: f64 = 20.0;

/// An open-loop run in which more than this share of the requests left the load generator
/// over 1 ms after their scheduled time is measured again: the machine or the generator
/// stalled, and the stall would be counted as the server's latency.
pub const LATE_MAX_SHARE: f64 = 0.01;

/// Why a clean run (every answer the expected one) still does not represent the system: other
/// work took the servers' CPU, or (open loop) the load generator fell behind its schedule.
fn disturbed(run: &super::Run) -> Option<String> {
    if let Some(p) = run.others_pct.filter(|p| *p > OTHERS_MAX_PCT) {
        return Some(format!("other processes took {p:.0}% of the servers' CPU"));
    }
    let late = run.load.late as f64 / run.load.requests.max(1) as f64;
    (late > LATE_MAX_SHARE).then(|| {
        format!(
            "the load generator sent {} of {} requests over 1 ms later than it could have (a \
             stall of the machine or of the generator)",
            run.load.late, run.load.requests
        )
    })
}

/// Lower is quieter: requests sent late, then other processes' share of the CPU.
fn quietness(run: &super::Run) -> (u64, u64) {
    (
        run.load.late,
        run.others_pct.map_or(u64::MAX, |p| (p * 100.0) as u64),
    )
}

/// A small deterministic generator for the shuffles (xorshift64*), seeded per run and printed,
/// so an order can be replayed from the report.
pub struct Shuffle(u64);

impl Shuffle {
    /// A generator seeded with `seed` (0 is replaced: xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Shuffle(seed.max(1))
    }

    /// A seed from the clock.
    pub fn clock_seed() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `0..n` in a random order (Fisher-Yates).
    pub fn order(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }
}

impl Bench {
    /// Measures every scenario not failed yet `rounds` times, each round in a new order.
    pub(super) fn rounds(
        &mut self,
        scenarios: &mut [Scenario],
        cookies: &Cookies,
        rounds: usize,
        what: &str,
    ) {
        for round in 1..=rounds {
            let order = self.shuffle.order(scenarios.len());
            for i in order {
                let s = &mut scenarios[i];
                if s.failed.is_some() {
                    continue;
                }
                let tag = format!("{what} round {round}/{rounds}");
                self.measure_one(s, cookies, &tag);
            }
        }
    }

    /// One measured run of `s`, repeated within its budget while void or disturbed.
    pub(super) fn measure_one(&self, s: &mut Scenario, cookies: &Cookies, tag: &str) {
        let mut kept: Option<super::Run> = None;
        // A one-pass run presents sessions for the first time; measured again, it would not.
        let budget = if s.is_one_pass() {
            0
        } else {
            self.options.retries
        };
        loop {
            let budget_left = s.reruns.len() < budget;
            let (retry, why) = match self.measure(s, cookies) {
                Err(e) => (true, format!("the load failed: {}", super::first_line(&e))),
                Ok(run) => match run.load.void_reason() {
                    Some(why) => (true, format!("void: {why}")),
                    None => {
                        let why = disturbed(&run);
                        // A clean run always counts; of disturbed runs, the quieter.
                        let keep = why.is_none()
                            || kept.as_ref().is_none_or(|k| quietness(&run) < quietness(k));
                        if keep {
                            kept = Some(run);
                        }
                        (why.is_some(), why.unwrap_or_default())
                    }
                },
            };
            if !retry {
                break;
            }
            if !budget_left {
                if kept.is_none() {
                    println!("[xtask] bench: {tag}: {}: failed: {why}", s.label);
                    s.failed = Some(why);
                    return;
                }
                break;
            }
            s.reruns.push(why.clone());
            println!(
                "[xtask] bench: {tag}: {}: {why}; measuring again ({} repeat(s) left)",
                s.label,
                budget - s.reruns.len()
            );
        }
        let Some(run) = kept else { return };
        println!(
            "[xtask] bench: {tag}: {:<44} {:>7.0} req/s  p50 {:>6.3} ms  p99 {:>7.3} ms  \
             RSS {:>6} KiB  CPU {} s/10k  others {}  {}",
            s.label,
            run.load.rps,
            run.load.p50_ms,
            run.load.p99_ms,
            run.rss_kib.map_or("?".into(), |k| k.to_string()),
            run.cpu_per_10k.map_or("?".into(), |c| format!("{c:.3}")),
            run.others_pct.map_or("?".into(), |c| format!("{c:.0}%")),
            run.load.statuses
        );
        s.runs.push(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_disturbed_by_other_work_or_a_late_load() {
        let mut run = crate::bench::Run::default();
        run.load.requests = 10_000;
        run.others_pct = Some(3.0);
        assert_eq!(disturbed(&run), None);
        run.load.late = 50;
        assert_eq!(disturbed(&run), None, "0.5% late is the server's own queue");
        run.load.late = 150;
        assert!(disturbed(&run).is_some_and(|w| w.contains("150 of 10000")));
        run.load.late = 0;
        run.others_pct = Some(35.0);
        assert!(disturbed(&run).is_some_and(|w| w.contains("35%")));
        let (mut a, mut b) = (run.clone(), run);
        a.load.late = 3;
        b.load.late = 2;
        assert!(quietness(&b) < quietness(&a));
    }

    #[test]
    fn shuffles_every_index_once_and_replays_from_the_seed() {
        let a = Shuffle::new(42).order(13);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..13).collect::<Vec<_>>());
        assert_eq!(a, Shuffle::new(42).order(13));
        let mut s = Shuffle::new(42);
        let (first, second) = (s.order(13), s.order(13));
        assert_ne!(first, second, "each round gets a new order");
        assert_ne!(first, (0..13).collect::<Vec<_>>());
    }
}
