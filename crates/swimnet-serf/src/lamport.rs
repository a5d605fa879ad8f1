//! Serf's Lamport clock.

/// A Lamport timestamp (Serf's `LamportTime`).
pub type LamportTime = u64;

/// A Lamport clock as Serf keeps it: a counter that moves forward on local
/// events ([`LamportClock::increment`]) and jumps past any time seen from a
/// peer ([`LamportClock::witness`]).
///
/// Serf's counter is a wrapping `uint64`; ours saturates at `u64::MAX`.
/// Times from peers should go through [`LamportClock::witness_within`],
/// which refuses a time far ahead of ours: a single forged `u64::MAX` would
/// otherwise stop the clock there for good, and everything honest peers send
/// afterwards would look too old.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LamportClock {
    counter: LamportTime,
}

impl LamportClock {
    /// A clock at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current time.
    pub fn time(&self) -> LamportTime {
        self.counter
    }

    /// Advances the clock by one and returns the new time.
    pub fn increment(&mut self) -> LamportTime {
        self.counter = self.counter.saturating_add(1);
        self.counter
    }

    /// Records a time seen from a peer: if `v` is not older than the current
    /// time, the clock moves to `v + 1` (so our next message orders after
    /// it); an older `v` changes nothing.
    pub fn witness(&mut self, v: LamportTime) {
        if v >= self.counter {
            self.counter = v.saturating_add(1);
        }
    }

    /// Like [`LamportClock::witness`], for a time from a peer: a `v` more than
    /// `max_ahead` past our time is refused (the clock does not move) and
    /// `false` is returned; the caller drops what carried it.
    pub fn witness_within(&mut self, v: LamportTime, max_ahead: u64) -> bool {
        if v > self.counter.saturating_add(max_ahead) {
            return false;
        }
        self.witness(v);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_serf() {
        let mut c = LamportClock::new();
        assert_eq!(c.time(), 0);
        assert_eq!(c.increment(), 1);
        assert_eq!(c.time(), 1);
        c.witness(41);
        assert_eq!(c.time(), 42);
        c.witness(30); // older: no change
        assert_eq!(c.time(), 42);
        c.witness(42); // equal: one past it
        assert_eq!(c.time(), 43);
        c.witness(u64::MAX);
        assert_eq!(c.time(), u64::MAX);
        assert_eq!(c.increment(), u64::MAX);
    }

    #[test]
    fn far_future_times_are_refused() {
        let mut c = LamportClock::new();
        c.witness(10);
        assert!(!c.witness_within(u64::MAX, 1 << 20));
        assert_eq!(c.time(), 11);
        assert!(c.witness_within(11 + (1 << 20), 1 << 20));
        assert_eq!(c.time(), 12 + (1 << 20));
        assert!(c.witness_within(3, 1 << 20)); // older: accepted, no change
        assert_eq!(c.time(), 12 + (1 << 20));
    }
}
