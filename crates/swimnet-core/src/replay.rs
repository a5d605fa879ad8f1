//! Replay protection for encrypted datagrams.
//!
//! Every encrypted memberlist datagram carries a fresh random 12-byte
//! AES-GCM nonce (Go memberlist and swimnet alike never reuse one), so a
//! nonce seen twice means someone captured a datagram and sent it again: an
//! outsider without the key can replay a `dead`, a `suspect` or a user
//! message as often as they like otherwise. [`ReplayCache`] remembers the
//! nonces of recently authenticated datagrams and tells exact replays apart.
//!
//! Bounded by age ([`crate::Config::replay_window`]) and by count
//! ([`crate::Config::replay_cache_capacity`]): when more datagrams arrive in
//! one window than the cache holds, the oldest nonces are forgotten first,
//! so protection then covers a shorter time. Only authenticated datagrams
//! are recorded, so an outsider cannot flush the cache. Time comes from the
//! `now` of each call, never from a clock.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use swimnet_wire::security::NONCE_SIZE;

/// An AES-GCM nonce.
pub type Nonce = [u8; NONCE_SIZE];

/// The nonces of recently authenticated datagrams, oldest first.
#[derive(Debug)]
pub struct ReplayCache {
    window: Duration,
    capacity: usize,
    seen: HashSet<Nonce>,
    order: VecDeque<(Instant, Nonce)>,
}

impl ReplayCache {
    /// An empty cache remembering nonces for `window`, at most `capacity`
    /// of them. A zero window or capacity turns replay protection off.
    pub fn new(window: Duration, capacity: usize) -> Self {
        ReplayCache {
            window,
            capacity,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Call for each datagram that decrypted and authenticated, before
    /// handling it. Answers `true` when `nonce` was already seen within the
    /// window (an exact replay: drop the datagram); otherwise records it at
    /// `now` (forgetting the oldest nonce if the cache is full) and answers
    /// `false`.
    pub fn is_replay(&mut self, now: Instant, nonce: Nonce) -> bool {
        if self.window.is_zero() || self.capacity == 0 {
            return false;
        }
        while let Some(&(at, old)) = self.order.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if self.seen.contains(&nonce) {
            return true;
        }
        if self.order.len() >= self.capacity {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back((now, nonce));
        self.seen.insert(nonce);
        false
    }

    /// Nonces remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no nonce is remembered.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(i: u32) -> Nonce {
        let mut n = [0u8; NONCE_SIZE];
        n[..4].copy_from_slice(&i.to_be_bytes());
        n
    }

    #[test]
    fn replays_within_the_window_only() {
        let t0 = Instant::now();
        let mut c = ReplayCache::new(Duration::from_secs(60), 100);
        assert!(!c.is_replay(t0, nonce(1)));
        assert!(c.is_replay(t0 + Duration::from_secs(59), nonce(1)));
        assert!(!c.is_replay(t0 + Duration::from_secs(59), nonce(2)));
        // Forgotten once it is a whole window old, then remembered afresh.
        assert!(!c.is_replay(t0 + Duration::from_secs(60), nonce(1)));
        assert_eq!(c.len(), 2);
        assert!(c.is_replay(t0 + Duration::from_secs(61), nonce(1)));
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let t0 = Instant::now();
        let mut c = ReplayCache::new(Duration::from_secs(60), 3);
        for i in 0..5 {
            assert!(!c.is_replay(t0, nonce(i)));
        }
        assert_eq!(c.len(), 3);
        // 0 and 1 were pushed out; 2..5 are still known.
        assert!(!c.is_replay(t0, nonce(0)));
        assert!(c.is_replay(t0, nonce(4)));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn zero_turns_it_off() {
        let t0 = Instant::now();
        for mut c in [
            ReplayCache::new(Duration::ZERO, 10),
            ReplayCache::new(Duration::from_secs(60), 0),
        ] {
            assert!(!c.is_replay(t0, nonce(1)));
            assert!(!c.is_replay(t0, nonce(1)));
            assert!(c.is_empty());
        }
    }
}
