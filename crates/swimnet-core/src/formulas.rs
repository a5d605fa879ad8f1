//! memberlist's sizing formulas, as functions of the cluster size `n`.

use std::time::Duration;

/// Minimum suspicion timeout: `mult * max(1, log10(max(1, n))) * interval`,
/// with the log factor truncated to three decimals as memberlist does.
pub fn suspicion_timeout(mult: usize, n: usize, interval: Duration) -> Duration {
    let scale = (n.max(1) as f64).log10().max(1.0);
    let milli = (scale * 1000.0) as u64; // truncation, like Go's int conversion
    let nanos = mult as u128 * milli as u128 * interval.as_nanos() / 1000;
    Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
}

/// How many times a broadcast is sent: `mult * ceil(log10(n + 1))`.
pub fn retransmit_limit(mult: usize, n: usize) -> usize {
    let scale = ((n + 1) as f64).log10().ceil() as usize;
    mult * scale
}

/// Push/pull interval scaling: unchanged up to 32 nodes, then
/// `interval * (ceil(log2 n - log2 32) + 1)`.
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    const THRESHOLD: usize = 32;
    if n <= THRESHOLD {
        return interval;
    }
    let mult = ((n as f64).log2() - (THRESHOLD as f64).log2()).ceil() + 1.0;
    interval * mult as u32
}

/// The suspicion timeout after `confirmations` independent confirmations out
/// of `k` wanted, before subtracting the time already elapsed; floored to
/// whole milliseconds and never below `min`.
pub fn suspicion_timeout_after(
    confirmations: usize,
    k: usize,
    min: Duration,
    max: Duration,
) -> Duration {
    if k == 0 {
        return min;
    }
    let frac = ((confirmations as f64) + 1.0).ln() / ((k as f64) + 1.0).ln();
    let raw = max.as_secs_f64() - frac * (max.as_secs_f64() - min.as_secs_f64());
    let t = Duration::from_millis((1000.0 * raw).floor().max(0.0) as u64);
    t.max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberlist_examples() {
        let s = Duration::from_secs(1);
        assert_eq!(suspicion_timeout(4, 1, s), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 10, s), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 100, s), Duration::from_secs(8));
        assert_eq!(suspicion_timeout(4, 20, s), Duration::from_millis(5204));
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(push_pull_scale(s, 32), s);
        assert_eq!(push_pull_scale(s, 33), 2 * s);
        assert_eq!(push_pull_scale(s, 64), 2 * s);
        assert_eq!(push_pull_scale(s, 65), 3 * s);
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        assert_eq!(suspicion_timeout_after(0, 2, min, max), max);
        assert_eq!(suspicion_timeout_after(2, 2, min, max), min);
        let one = suspicion_timeout_after(1, 2, min, max);
        assert!(one > min && one < max);
    }
}
