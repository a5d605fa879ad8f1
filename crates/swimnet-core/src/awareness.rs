//! Lifeguard local health ("awareness"): a score that stretches our own probe
//! intervals while we seem to be the slow or badly connected one.

use std::time::Duration;

/// The local health multiplier, a score in `0..max`.
#[derive(Debug, Clone)]
pub struct Awareness {
    max: i64,
    score: i64,
}

impl Awareness {
    /// A healthy score (0) that never exceeds `max - 1`.
    pub fn new(max: usize) -> Self {
        Awareness {
            max: max.max(1) as i64,
            score: 0,
        }
    }

    /// Adds `delta` (negative on success, positive on trouble), clamped to the range.
    pub fn apply_delta(&mut self, delta: i64) {
        self.score = (self.score + delta).clamp(0, self.max - 1);
    }

    /// The current score: 0 is healthy.
    pub fn score(&self) -> usize {
        self.score as usize
    }

    /// `timeout * (score + 1)`: how far to stretch a probe interval.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout * (self.score as u32 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_and_scales() {
        let mut a = Awareness::new(8);
        a.apply_delta(-1);
        assert_eq!(a.score(), 0);
        a.apply_delta(3);
        assert_eq!(a.scale(Duration::from_secs(1)), Duration::from_secs(4));
        a.apply_delta(100);
        assert_eq!(a.score(), 7);
        a.apply_delta(-2);
        assert_eq!(a.score(), 5);
    }
}
