//! A min-heap of deadlines. Entries are never removed early: whoever handles
//! a fired entry checks that it still matches the current state.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use crate::memberlist::StreamId;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    Probe,
    Gossip,
    PushPull,
    Reconnect,
    ProbeTimeout {
        seq: u32,
    },
    ProbeDeadline {
        seq: u32,
    },
    RelayExpire {
        seq: u32,
    },
    Suspicion {
        node: Arc<str>,
        generation: u64,
    },
    Stream {
        id: StreamId,
    },
    /// Our leave broadcast gets no more time: report the leave complete.
    LeaveDeadline,
    KeyOpResend {
        id: u64,
    },
    KeyOpDeadline {
        id: u64,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerKind)>>,
    seq: u64,
}

impl Timers {
    pub fn schedule(&mut self, at: Instant, kind: TimerKind) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, kind)));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<TimerKind> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse((_, _, k))| k),
            _ => None,
        }
    }
}
