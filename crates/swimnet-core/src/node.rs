//! [`SansIoNode`]: the one trait every runnable node implements, so that the
//! tokio agent and the simulator drive any node the same way.
//!
//! A node is a [`Memberlist`] core, or a layer that owns one (NetworkDB's
//! tables, the Serf layer). The trait covers what a driver needs: inputs
//! that carry `now`, outputs it pulls, the next deadline, the cluster
//! commands every node has (join, leave, keyring), and read access to the
//! membership core for queries (members, stats, config, coordinates).
//! What only one kind of node can do (table writes, user events) is called
//! on the concrete type; what only one kind reports comes out of
//! [`SansIoNode::poll_app_event`], typed by [`SansIoNode::AppEvent`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use crate::{Delegate, Error, Event, Memberlist, StreamCommand, StreamId, Transmit};

/// A sans-IO node: feed it inputs with the current time, then drain its
/// outputs, then sleep until [`SansIoNode::poll_timeout`] or the next input.
///
/// After every input or command, drain in this order: [`poll_transmit`]
/// (datagrams to send), [`poll_stream`] (TCP opens, replies, closes),
/// [`poll_event`] (membership changes), [`poll_app_event`] (what the layer
/// above the core reports); then read [`poll_timeout`] again, since any
/// input may move it. A node never reads a clock or touches a socket.
///
/// ```
/// use std::time::{Duration, Instant};
/// use swimnet_core::{Config, Memberlist, NoopDelegate, SansIoNode};
///
/// /// Runs one node with nobody to talk to until `until`; returns the
/// /// datagrams it wanted to send.
/// fn drive<N: SansIoNode>(node: &mut N, mut now: Instant, until: Instant) -> usize {
///     let mut sent = 0;
///     loop {
///         while node.poll_transmit().is_some() {
///             sent += 1;
///         }
///         while node.poll_stream().is_some() {}
///         while node.poll_event().is_some() {}
///         while node.poll_app_event().is_some() {}
///         match node.poll_timeout() {
///             Some(t) if t <= until => {
///                 now = now.max(t);
///                 node.handle_timeout(now);
///             }
///             _ => return sent,
///         }
///     }
/// }
///
/// let start = Instant::now();
/// let config = Config::lan("a", "127.0.0.1:7946".parse().unwrap());
/// let mut node = Memberlist::new(config, NoopDelegate, start, 1).unwrap();
/// drive(&mut node, start, start + Duration::from_secs(5));
/// assert_eq!(node.core().num_alive(), 1);
/// node.leave(start + Duration::from_secs(5));
/// assert!(matches!(node.poll_event(), Some(swimnet_core::Event::LeaveComplete { .. })));
/// ```
///
/// [`poll_transmit`]: SansIoNode::poll_transmit
/// [`poll_stream`]: SansIoNode::poll_stream
/// [`poll_event`]: SansIoNode::poll_event
/// [`poll_app_event`]: SansIoNode::poll_app_event
/// [`poll_timeout`]: SansIoNode::poll_timeout
pub trait SansIoNode {
    /// The delegate type of the membership core this node owns.
    type Delegate: Delegate;
    /// What the layer above the core reports besides membership events
    /// (NetworkDB's table changes, Serf's user events); [`Infallible`] for
    /// a plain core, which reports none.
    type AppEvent;

    // ------------------------------------------------------------- queries

    /// The membership core: read members, stats, config, keyring,
    /// incarnation, coordinates through it. Changes nothing.
    fn core(&self) -> &Memberlist<Self::Delegate>;

    /// The membership core, mutably, for core commands no layer above
    /// cares about (`set_meta`, `preload_members` in simulators). Layer
    /// state (tables, Serf clocks) is changed only through the node's own
    /// commands.
    fn core_mut(&mut self) -> &mut Memberlist<Self::Delegate>;

    /// Our node name (the core's).
    fn name(&self) -> &str {
        self.core().name()
    }

    // -------------------------------------------------------------- inputs

    /// Call when a datagram arrived from `from` (at most one UDP payload).
    /// Updates membership and queues replies and events.
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);

    /// Call when a TCP connection from `from` was accepted; returns the id
    /// that names it in later stream inputs and [`StreamCommand`]s.
    fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId;

    /// Call with bytes read from stream `id` (`fin`: the peer closed its
    /// side). The node buffers within its stream limits and may answer
    /// with [`StreamCommand::Reply`] or [`StreamCommand::Close`].
    fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool);

    /// Call when stream `id` failed (IO error, size cap, deadline); the node
    /// forgets it and fails what waited on it (a join, a push/pull).
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str);

    /// Call when an outbound connection of stream `id` was actively refused
    /// (nothing listens there): the peer's process is gone.
    fn handle_stream_refused(&mut self, now: Instant, id: StreamId);

    /// Call when the deadline from [`SansIoNode::poll_timeout`] has passed:
    /// runs the timers due at `now` (probes, gossip, push/pull, the layer's
    /// own timers).
    fn handle_timeout(&mut self, now: Instant);

    // ------------------------------------------------------------- outputs

    /// The next datagram to send, oldest first; `None` when drained.
    fn poll_transmit(&mut self) -> Option<Transmit>;

    /// The next TCP command (open, reply, close); `None` when drained.
    fn poll_stream(&mut self) -> Option<StreamCommand>;

    /// The next membership event (join, leave, update, join result, leave
    /// complete); `None` when drained.
    fn poll_event(&mut self) -> Option<Event>;

    /// The next event of the layer above the core; `None` when drained.
    /// Drain it after every input even if nobody needs it: the queue is
    /// bounded and drops the oldest when full.
    fn poll_app_event(&mut self) -> Option<Self::AppEvent>;

    /// When to call [`SansIoNode::handle_timeout`] next; `None` when no
    /// timer runs. Read it after every input.
    fn poll_timeout(&self) -> Option<Instant>;

    // ------------------------------------------------------------ commands

    /// Starts joining the cluster through `addrs`; each address's outcome
    /// comes out later as [`Event::JoinResult`]. Fails, changing nothing,
    /// when the node has left.
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), Error>;

    /// Starts a graceful leave. [`Event::LeaveComplete`] comes out once the
    /// leave has gone out, or once the node's own deadline for it passed
    /// (the event says which), so a caller that stops afterwards waits for
    /// that event and nothing else. Calling it again does nothing.
    fn leave(&mut self, now: Instant);

    /// Adds `key` to the keyring (not primary). Fails, changing nothing,
    /// without a keyring or with a key of the wrong length.
    fn install_key(&mut self, key: &[u8]) -> Result<(), Error>;

    /// Makes the installed `key` the primary (encrypting) key.
    fn use_key(&mut self, key: &[u8]) -> Result<(), Error>;

    /// Removes `key` from the keyring; the primary key cannot be removed.
    fn remove_key(&mut self, key: &[u8]) -> Result<(), Error>;
}

/// A plain core is a node by itself; it reports no application events.
impl<D: Delegate> SansIoNode for Memberlist<D> {
    type Delegate = D;
    type AppEvent = Infallible;

    fn core(&self) -> &Memberlist<D> {
        self
    }
    fn core_mut(&mut self) -> &mut Memberlist<D> {
        self
    }
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        Memberlist::handle_packet(self, now, from, datagram)
    }
    fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId {
        Memberlist::handle_stream_accept(self, now, from)
    }
    fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool) {
        Memberlist::handle_stream_data(self, now, id, data, fin)
    }
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str) {
        Memberlist::handle_stream_error(self, now, id, error)
    }
    fn handle_stream_refused(&mut self, now: Instant, id: StreamId) {
        Memberlist::handle_stream_refused(self, now, id)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Memberlist::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Memberlist::poll_transmit(self)
    }
    fn poll_stream(&mut self) -> Option<StreamCommand> {
        Memberlist::poll_stream(self)
    }
    fn poll_event(&mut self) -> Option<Event> {
        Memberlist::poll_event(self)
    }
    fn poll_app_event(&mut self) -> Option<Infallible> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Memberlist::poll_timeout(self)
    }
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), Error> {
        Memberlist::join(self, now, addrs)
    }
    fn leave(&mut self, now: Instant) {
        Memberlist::leave(self, now)
    }
    fn install_key(&mut self, key: &[u8]) -> Result<(), Error> {
        Memberlist::install_key(self, key)
    }
    fn use_key(&mut self, key: &[u8]) -> Result<(), Error> {
        Memberlist::use_key(self, key)
    }
    fn remove_key(&mut self, key: &[u8]) -> Result<(), Error> {
        Memberlist::remove_key(self, key)
    }
}
