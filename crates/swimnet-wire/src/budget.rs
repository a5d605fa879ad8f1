//! The cost budget of one untrusted input (a datagram), spent while it is
//! decoded.
//!
//! A datagram is small (at most 65,507 bytes over IPv4), but what it expands
//! into is not: LZW turns 30 KB into 20 MB, and compounds multiply parts. A
//! [`DecodeBudget`] bounds that expansion where it happens:
//!
//! * **bytes**: the datagram's own inner bytes, plus every byte that
//!   decompression produces (also the bytes of a decompression that then
//!   fails); bytes are never given back, so the budget bounds work as well
//!   as memory;
//! * **parts**: every message the walk visits, whatever becomes of it: each
//!   compound and compress wrapper, each message inside, each part that
//!   fails to decode, each empty part. A layer above that opens a message
//!   into parts of its own (NetworkDB compounds inside a user message) takes
//!   its parts from the same budget.
//!
//! Once either runs out the budget is *exceeded*: the walk stops and the
//! rest of the input is dropped (the caller counts the input once).

/// What ran out first in an exceeded [`DecodeBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetLimit {
    /// The decoded-byte allowance.
    Bytes,
    /// The part allowance.
    Parts,
}

/// What one input may still cost: decoded bytes and parts (see the module
/// docs for what counts).
///
/// Make one per datagram with [`DecodeBudget::new`] (or
/// [`DecodeBudget::datagram`] for the defaults), hand it to
/// [`crate::packet::for_each_message_within`], and check
/// [`DecodeBudget::exceeded`] afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeBudget {
    bytes_left: usize,
    parts_left: usize,
    exceeded: Option<BudgetLimit>,
}

impl DecodeBudget {
    /// Default decoded bytes per datagram: 1 MiB. A datagram is at most
    /// 65,507 bytes, and Go memberlist compresses a packet only when that
    /// makes it smaller, so what a peer built (at most `UDPBufferSize`,
    /// 1,400 bytes by default; NetworkDB's gossip packets and Serf's events
    /// and queries stay within it) expands to far less than this. 16 times
    /// the largest datagram leaves room for any packet a legitimate sender
    /// builds, while keeping a decompression bomb 40 times smaller than
    /// memberlist's own 40 MiB cap.
    pub const DATAGRAM_BYTES: usize = 1 << 20;

    /// Default parts per datagram: 4,096. Memberlist puts at most 255
    /// messages in a compound and wraps the whole packet in at most one
    /// compress message (257 parts); NetworkDB's table gossip packs the
    /// events that fit one packet into one compound (a few dozen at 1,400
    /// bytes, about 2,000 of the smallest events if a peer used the largest
    /// datagram). 4,096 covers both layers of any such packet.
    pub const DATAGRAM_PARTS: usize = 4096;

    /// A budget of `bytes` decoded bytes and `parts` parts.
    pub fn new(bytes: usize, parts: usize) -> Self {
        DecodeBudget {
            bytes_left: bytes,
            parts_left: parts,
            exceeded: None,
        }
    }

    /// The default budget of one datagram ([`Self::DATAGRAM_BYTES`],
    /// [`Self::DATAGRAM_PARTS`]).
    pub fn datagram() -> Self {
        Self::new(Self::DATAGRAM_BYTES, Self::DATAGRAM_PARTS)
    }

    /// Decoded bytes still allowed (0 once exceeded).
    pub fn bytes_left(&self) -> usize {
        self.bytes_left
    }

    /// Parts still allowed (0 once exceeded).
    pub fn parts_left(&self) -> usize {
        self.parts_left
    }

    /// What ran out, once something did; `None` while the budget holds.
    pub fn exceeded(&self) -> Option<BudgetLimit> {
        self.exceeded
    }

    /// Call before handling one more part. Takes it and answers `true`, or
    /// answers `false` when none is left (the budget is then exceeded and
    /// stays so: drop the part and everything after it).
    pub fn take_part(&mut self) -> bool {
        if self.exceeded.is_some() {
            return false;
        }
        if self.parts_left == 0 {
            self.exhaust(BudgetLimit::Parts);
            return false;
        }
        self.parts_left -= 1;
        true
    }

    /// Call when `n` more bytes were (or are about to be) decoded. Takes
    /// them and answers `true`, or, when fewer are left, marks the budget
    /// exceeded and answers `false`.
    pub fn take_bytes(&mut self, n: usize) -> bool {
        if self.exceeded.is_some() {
            return false;
        }
        if n > self.bytes_left {
            self.exhaust(BudgetLimit::Bytes);
            return false;
        }
        self.bytes_left -= n;
        true
    }

    /// Marks the budget exceeded because `limit` ran out: nothing more is
    /// allowed.
    pub fn exhaust(&mut self, limit: BudgetLimit) {
        if self.exceeded.is_none() {
            self.exceeded = Some(limit);
        }
        self.bytes_left = 0;
        self.parts_left = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_then_exceeded() {
        let mut b = DecodeBudget::new(10, 2);
        assert!(b.take_part() && b.take_part());
        assert_eq!(b.exceeded(), None);
        assert!(!b.take_part());
        assert_eq!(b.exceeded(), Some(BudgetLimit::Parts));
        // Stays exceeded, and nothing else can be taken.
        assert!(!b.take_bytes(1));
        assert_eq!(b.exceeded(), Some(BudgetLimit::Parts));
        assert_eq!((b.bytes_left(), b.parts_left()), (0, 0));
    }

    #[test]
    fn bytes_exactly_then_exceeded() {
        let mut b = DecodeBudget::new(10, 5);
        assert!(b.take_bytes(10));
        assert!(b.take_bytes(0));
        assert_eq!(b.exceeded(), None);
        assert!(!b.take_bytes(1));
        assert_eq!(b.exceeded(), Some(BudgetLimit::Bytes));
        assert!(!b.take_part());
    }
}
