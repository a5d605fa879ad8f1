//! The extension point for the layer above membership (Serf compatibility,
//! NetworkDB tables).

use crate::Veto;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_wire::budget::DecodeBudget;

use crate::member::Node;

/// Hooks the core calls synchronously, from inside its input handlers.
///
/// Every method has a default that does nothing, so a plain membership node
/// uses [`NoopDelegate`]. Implementations must not block; they are called
/// from the same thread that drives the core.
pub trait Delegate {
    /// A user message arrived (packet type 8, or a user stream). `from` is the
    /// UDP source, or the TCP peer address.
    fn notify_msg(&mut self, _now: Instant, _from: SocketAddr, _msg: &[u8]) {}

    /// A user message arrived in a datagram (packet type 8). `budget` is
    /// what is left of that datagram's decode budget
    /// ([`crate::Config::datagram_max_decoded_bytes`],
    /// [`crate::Config::datagram_max_parts`]): the message's bytes are
    /// already paid for and are within it. A delegate that opens the message
    /// into parts of its own (NetworkDB compounds) should take one part per
    /// part it opens ([`DecodeBudget::take_part`]) and stop, dropping the
    /// rest, once that answers `false`; the core then stops the datagram
    /// too and counts it in [`crate::Stats::datagrams_over_budget`].
    /// Default: calls [`Delegate::notify_msg`] and takes nothing.
    fn notify_packet_msg(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &[u8],
        _budget: &mut DecodeBudget,
    ) {
        self.notify_msg(now, from, msg)
    }

    /// User broadcasts to piggy-back on an outgoing packet. Each returned
    /// message costs `overhead + len` bytes out of `limit`; the core frames
    /// each as a user message. `num_nodes` is the cluster size estimate.
    fn get_broadcasts(
        &mut self,
        _overhead: usize,
        _limit: usize,
        _num_nodes: usize,
    ) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// User state to send in a push/pull (empty: none).
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        Vec::new()
    }

    /// A peer's push/pull user state (called only when it is non-empty),
    /// after its node states were merged.
    fn merge_remote_state(&mut self, _now: Instant, _state: &[u8], _join: bool) {}

    /// Payload to put in acks to direct pings. Called for every ping we
    /// answer. When `Config::coordinates` is on (the default) and this
    /// returns nothing, the core sends our Vivaldi coordinate in Serf's
    /// encoding instead; bytes returned here replace it.
    fn ack_payload(&mut self) -> Vec<u8> {
        Vec::new()
    }

    /// A direct probe of `node` was acknowledged after `rtt`, with the peer's
    /// ack payload. Called after the core has fed the payload to its own
    /// coordinate client (when coordinates are on), whatever the outcome.
    fn notify_ping_complete(&mut self, _node: &Node, _rtt: Duration, _payload: &[u8]) {}

    /// Vet an alive message about another node before it is applied; an
    /// error drops the message.
    fn notify_alive(&mut self, _node: &Node) -> Result<(), Veto> {
        Ok(())
    }

    /// Vet the peers learned by a join's push/pull before they are merged;
    /// an error aborts the merge.
    fn notify_merge(&mut self, _peers: &[Node]) -> Result<(), Veto> {
        Ok(())
    }
}

/// A delegate that adds nothing: plain memberlist behaviour.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopDelegate;

impl Delegate for NoopDelegate {}
