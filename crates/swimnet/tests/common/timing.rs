//! memberlist's timing parameters and the detection bounds they give
//! (probe interval and timeout, Lifeguard suspicion timeouts and
//! confirmations, push/pull interval), as memberlist 0.2.2 computes them.

use super::*;

/// The memberlist timing parameters of a profile (`DefaultLocalConfig` for
/// `-profile=local` in serf and `--profile local` in swimnet).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub suspicion_mult: u32,
    pub suspicion_max_timeout_mult: u32,
    pub push_pull_interval: Duration,
}

/// memberlist 0.2.2 `DefaultLocalConfig` (config.go), the `-profile=local`
/// of serf.
pub const LOCAL: Timing = Timing {
    probe_interval: Duration::from_secs(1),
    probe_timeout: Duration::from_millis(200),
    suspicion_mult: 3,
    suspicion_max_timeout_mult: 6,
    push_pull_interval: Duration::from_secs(15),
};

impl Timing {
    /// `suspicionTimeout` (util.go): `mult × max(1, log10(max(1, n))) × interval`,
    /// with the log factor truncated to 3 decimals.
    pub fn suspicion_min(&self, n: u32) -> Duration {
        let scale = f64::max(1.0, f64::log10(f64::max(1.0, n as f64)));
        let milli = (scale * 1000.0) as u64; // truncation, as Go's time.Duration(x*1000)
        self.probe_interval * self.suspicion_mult * (milli as u32) / 1000
    }

    /// `SuspicionMaxTimeoutMult × min`.
    pub fn suspicion_max(&self, n: u32) -> Duration {
        self.suspicion_min(n) * self.suspicion_max_timeout_mult
    }

    /// Confirmations wanted: `k = SuspicionMult − 2`, or 0 when `n − 2 < k`.
    pub fn confirmations_wanted(&self, n: u32) -> u32 {
        let k = self.suspicion_mult.saturating_sub(2);
        if (n as i64) - 2 < k as i64 {
            0
        } else {
            k
        }
    }

    /// Worst-case time from a node's crash until the first probe of it by a
    /// given node has failed: the probe list is walked round-robin and
    /// reshuffled at each wrap, so two probes of the same target are at most
    /// `2(n−1)−1` intervals apart; the failing probe itself takes one more
    /// interval (the ack handler fires at the end of the probe interval).
    pub fn first_failed_probe(&self, n: u32) -> Duration {
        self.probe_interval * (2 * (n - 1))
    }

    /// Upper bound for "observer marks a crashed node dead" in a cluster of
    /// `n` nodes (n counts the crashed node), when at least `k` other live
    /// nodes probe it too, so the Lifeguard confirmations arrive (each
    /// accuser's own first failed probe is within `first_failed_probe(n)`):
    /// the observer's timer started no later than its own failed probe,
    /// confirmations bring it down to `min`, so the node is declared dead by
    /// `first_failed_probe(n) + suspicion_min(n)`. `extra` is added for the
    /// implementation (swimnet's final probe before declaring dead).
    pub fn dead_bound_confirmed(&self, n: u32, extra: Duration) -> Duration {
        self.first_failed_probe(n) + self.suspicion_min(n) + extra
    }

    /// The same bound when no confirmation arrives (timer = max when k ≥ 1).
    pub fn dead_bound_unconfirmed(&self, n: u32, extra: Duration) -> Duration {
        let timer = if self.confirmations_wanted(n) >= 1 {
            self.suspicion_max(n)
        } else {
            self.suspicion_min(n)
        };
        self.first_failed_probe(n) + timer + extra
    }
}
