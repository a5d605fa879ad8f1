//! What the core hands its driver: datagrams ([`Transmit`]), TCP work
//! ([`StreamCommand`]) and membership changes ([`Event`]), pulled with the
//! `poll_*` methods after every input.

use crate::{JoinError, MergeRefusal};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::delegate::Delegate;
use crate::member::Node;

use super::Memberlist;

/// Outputs waiting to be pulled by the driver, in the order produced.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Datagrams, pulled by [`Memberlist::poll_transmit`].
    pub(super) transmits: VecDeque<Transmit>,
    /// TCP work, pulled by [`Memberlist::poll_stream`].
    pub(super) stream_cmds: VecDeque<StreamCommand>,
    /// Membership changes, pulled by [`Memberlist::poll_event`].
    pub(super) events: VecDeque<Event>,
}

/// Identifies one TCP exchange between the core and its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dst: SocketAddr,
    /// The datagram, ready for the wire.
    pub payload: Vec<u8>,
}

/// What the driver must do with TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamCommand {
    /// Connect to `to` and write `data`. With `expect_reply`, read what
    /// comes back and feed it to [`Memberlist::handle_stream_data`] until the
    /// core sends [`StreamCommand::Close`]; otherwise close after writing.
    /// Give up at `deadline` and report [`Memberlist::handle_stream_error`].
    Open {
        /// The core's handle for this exchange.
        id: StreamId,
        /// Peer to connect to.
        to: SocketAddr,
        /// Bytes to write once connected.
        data: Vec<u8>,
        /// Whether a reply is expected.
        expect_reply: bool,
        /// When to give up.
        deadline: Instant,
    },
    /// Write `data` on the stream, then close it.
    Reply {
        /// The stream.
        id: StreamId,
        /// Bytes to write.
        data: Vec<u8>,
    },
    /// Close the stream without writing more.
    Close {
        /// The stream.
        id: StreamId,
    },
}

/// Something the layer above may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node joined, or came back after being dead or left.
    Join(Node),
    /// A live node's metadata changed.
    Update(Node),
    /// A node was declared dead (`state == Dead`) or left (`state == Left`).
    Leave(Node),
    /// A dead or left node was removed from the member table, its
    /// `gossip_to_the_dead_time` over (its tombstone stays); the node as it
    /// was last seen.
    Reap(Node),
    /// A node became suspect; `from` is the accuser.
    Suspect {
        /// The suspected node.
        node: Node,
        /// Who accused it.
        from: String,
    },
    /// We refuted a suspicion or death notice about ourselves.
    Refuted {
        /// Our new incarnation.
        incarnation: u32,
    },
    /// A join attempt (push/pull with `Join=true`) finished.
    JoinResult {
        /// The address tried.
        addr: SocketAddr,
        /// Number of node states merged, or why it failed.
        result: Result<usize, JoinError>,
    },
    /// Our leave broadcast has been sent out (or nobody was left to tell),
    /// or the leave's deadline passed first (see [`Memberlist::leave`]).
    LeaveComplete {
        /// The deadline passed before the broadcast had used its retransmits.
        timed_out: bool,
    },
    /// An alive claim was refused because a live member already holds its
    /// name at another address (counted in
    /// [`crate::Stats::name_conflicts`]; the same conflict is reported
    /// again only after a while).
    NameConflict {
        /// The contested node name.
        name: String,
        /// Where the live member holding the name is.
        existing: SocketAddr,
        /// The address that claimed the name too.
        claimed: SocketAddr,
        /// The name is ours: another node is announcing itself as us.
        local: bool,
    },
    /// A peer's push/pull was not merged (version check, merge veto, or
    /// our name taken in the cluster we tried to join).
    MergeRefused {
        /// Who sent it.
        peer: SocketAddr,
        /// Why.
        reason: MergeRefusal,
    },
}

/// Gives back the memory of an output queue that a burst grew (a preload or
/// a join hands out one event per member) once the driver has drained it, so
/// that an idle node does not keep a burst's worth of capacity.
pub(super) fn shrink_drained<T>(q: &mut VecDeque<T>) {
    const KEEP: usize = 64;
    if q.is_empty() && q.capacity() > 4 * KEEP {
        q.shrink_to(KEEP);
    }
}

impl<D: Delegate> Memberlist<D> {
    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.out.transmits.pop_front();
        if t.is_none() {
            shrink_drained(&mut self.out.transmits);
        }
        t
    }

    /// The next TCP action for the driver, if any.
    pub fn poll_stream(&mut self) -> Option<StreamCommand> {
        let c = self.out.stream_cmds.pop_front();
        if c.is_none() {
            shrink_drained(&mut self.out.stream_cmds);
        }
        c
    }

    /// The next membership event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.out.events.pop_front();
        if e.is_none() {
            shrink_drained(&mut self.out.events);
        }
        e
    }

    /// When [`Memberlist::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }
}
