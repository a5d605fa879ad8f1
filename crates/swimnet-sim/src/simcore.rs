//! The sans-IO surface the harness drives, for a plain memberlist core and
//! for a NetworkDB node.

use std::net::SocketAddr;
use std::time::Instant;

use swimnet_core::{Delegate, Event, Memberlist, StreamCommand, StreamId, Transmit};
use swimnet_networkdb::{NetworkDb, TableChange, TableState};

/// A node the harness can run: inputs with `now`, pulled outputs, and a
/// way to read its membership. Implemented for [`Memberlist`] and
/// [`NetworkDb`].
pub trait SimCore {
    /// The membership core's delegate type.
    type Delegate: Delegate;
    /// The membership core (to read members, stats, incarnation).
    fn memberlist(&self) -> &Memberlist<Self::Delegate>;
    /// The membership core, mutably (for commands such as `set_meta`).
    fn memberlist_mut(&mut self) -> &mut Memberlist<Self::Delegate>;
    /// A datagram arrived.
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    /// A TCP connection was accepted.
    fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId;
    /// Bytes arrived on a stream.
    fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool);
    /// A stream failed.
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str);
    /// An outbound connection was refused (nobody listening).
    fn handle_stream_refused(&mut self, now: Instant, id: StreamId);
    /// Timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// Next datagram.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Next TCP command.
    fn poll_stream(&mut self) -> Option<StreamCommand>;
    /// Next membership event.
    fn poll_event(&mut self) -> Option<Event>;
    /// Next table change seen (NetworkDB only).
    fn poll_table_change(&mut self) -> Option<TableChange> {
        None
    }
    /// Next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Joins through `addrs`.
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), swimnet_core::Error>;
    /// Leaves gracefully.
    fn leave(&mut self, now: Instant);
}

impl<D: Delegate> SimCore for Memberlist<D> {
    type Delegate = D;
    fn memberlist(&self) -> &Memberlist<D> {
        self
    }
    fn memberlist_mut(&mut self) -> &mut Memberlist<D> {
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
    fn poll_timeout(&self) -> Option<Instant> {
        Memberlist::poll_timeout(self)
    }
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), swimnet_core::Error> {
        Memberlist::join(self, now, addrs)
    }
    fn leave(&mut self, now: Instant) {
        Memberlist::leave(self, now)
    }
}

impl SimCore for NetworkDb {
    type Delegate = TableState;
    fn memberlist(&self) -> &Memberlist<TableState> {
        self.core()
    }
    fn memberlist_mut(&mut self) -> &mut Memberlist<TableState> {
        self.core_mut()
    }
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        NetworkDb::handle_packet(self, now, from, datagram)
    }
    fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId {
        NetworkDb::handle_stream_accept(self, now, from)
    }
    fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool) {
        NetworkDb::handle_stream_data(self, now, id, data, fin)
    }
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str) {
        NetworkDb::handle_stream_error(self, now, id, error)
    }
    fn handle_stream_refused(&mut self, now: Instant, id: StreamId) {
        NetworkDb::handle_stream_refused(self, now, id)
    }
    fn handle_timeout(&mut self, now: Instant) {
        NetworkDb::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        NetworkDb::poll_transmit(self)
    }
    fn poll_stream(&mut self) -> Option<StreamCommand> {
        NetworkDb::poll_stream(self)
    }
    fn poll_event(&mut self) -> Option<Event> {
        NetworkDb::poll_event(self)
    }
    fn poll_table_change(&mut self) -> Option<TableChange> {
        NetworkDb::poll_table_change(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        NetworkDb::poll_timeout(self)
    }
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), swimnet_core::Error> {
        NetworkDb::join(self, now, addrs)
    }
    fn leave(&mut self, now: Instant) {
        NetworkDb::leave(self, now)
    }
}
