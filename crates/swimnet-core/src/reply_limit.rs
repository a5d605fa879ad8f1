//! A budget for datagrams sent to addresses a peer chose.
//!
//! A ping names where its ack goes (`SourceAddr`), and an indirect ping
//! names the node to ping and where the answer goes. Anyone can forge those
//! addresses, so answering every such request would let a stranger aim our
//! traffic at any host (reflection) at the stranger's packet rate. Requests
//! whose addresses all belong to members of our table are answered without
//! limit (members probe each other all the time); each datagram that would
//! go to an address that is not a member's spends one token of a bucket
//! refilled over virtual time. Without a token the request is dropped and
//! counted in [`crate::Stats::replies_limited`].

use std::time::{Duration, Instant};

/// Limits on replies to addresses that are not members' (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimitConfig {
    /// Tokens added per second: sustained datagrams per second to non-members.
    /// Default: 64.
    pub per_second: u32,
    /// Most tokens saved up: the largest burst to non-members. Default: 128.
    pub burst: u32,
    /// Most indirect probes relayed for peers at once (each waits one probe
    /// timeout for its ack); more are dropped and counted in
    /// [`crate::Stats::relays_rejected`]. Default: 1,024.
    pub max_relays: usize,
}

impl Default for ReplyLimitConfig {
    fn default() -> Self {
        ReplyLimitConfig {
            per_second: 64,
            burst: 128,
            max_relays: 1024,
        }
    }
}

impl ReplyLimitConfig {
    /// Checks the settings: a zero rate or burst would answer no stranger
    /// ever, which is allowed; only an empty relay table is refused, since
    /// it would turn off helping members probe each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_relays == 0 {
            return Err("reply_limit.max_relays must be at least 1".into());
        }
        Ok(())
    }
}

/// A token bucket on the caller's clock (`now` is always an argument).
/// Create it full with [`TokenBucket::new`]; spend with [`TokenBucket::try_take`].
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: u32,
    burst: u32,
    /// Tokens, in millionths (so that slow rates refill smoothly).
    micro_tokens: u64,
    last: Instant,
}

const MICRO: u64 = 1_000_000;

impl TokenBucket {
    /// A full bucket as of `now`.
    pub fn new(cfg: &ReplyLimitConfig, now: Instant) -> Self {
        TokenBucket {
            per_second: cfg.per_second,
            burst: cfg.burst,
            micro_tokens: u64::from(cfg.burst) * MICRO,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last);
        if dt.is_zero() {
            return;
        }
        self.last = now;
        let cap = u64::from(self.burst) * MICRO;
        let added = dt
            .min(Duration::from_secs(3600))
            .as_micros()
            .saturating_mul(u128::from(self.per_second));
        let added = u64::try_from(added).unwrap_or(u64::MAX);
        self.micro_tokens = self.micro_tokens.saturating_add(added).min(cap);
    }

    /// Takes `n` tokens at `now` if there are that many; returns whether it did
    /// (nothing is taken otherwise).
    pub fn try_take(&mut self, now: Instant, n: u32) -> bool {
        self.refill(now);
        let need = u64::from(n) * MICRO;
        if self.micro_tokens >= need {
            self.micro_tokens -= need;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let cfg = ReplyLimitConfig {
            per_second: 10,
            burst: 5,
            max_relays: 1,
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&cfg, t0);
        assert!((0..5).all(|_| b.try_take(t0, 1)));
        assert!(!b.try_take(t0, 1));
        // 100 ms refill one token.
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.try_take(t1, 1));
        assert!(!b.try_take(t1, 1));
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert!(!b.try_take(t2, 6));
        assert!(b.try_take(t2, 5));
        assert!(!b.try_take(t2, 1));
        // A clock that goes backwards adds nothing.
        assert!(!b.try_take(t0, 1));
    }
}
