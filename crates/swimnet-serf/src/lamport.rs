//! Serf's Lamport clock.

/// A Lamport timestamp (Serf's `LamportTime`).
pub type LamportTime = u64;

/// A Lamport clock as Serf keeps it: a counter that moves forward on local
/// events ([`LamportClock::increment`]) and jumps past any time seen from a
/// peer ([`LamportClock::witness`]).
///
/// Serf's counter is a wrapping `uint64`; ours saturates at `u64::MAX`, so a
/// hostile peer can stop the clock but never wind it back to zero.
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
}
