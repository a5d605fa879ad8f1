//! [`NetworkDb`] as a [`SansIoNode`], so the agent and the simulator drive
//! it like any other node. Table commands stay on [`NetworkDb`] itself;
//! table changes come out of [`SansIoNode::poll_app_event`].

use std::net::SocketAddr;
use std::time::Instant;

use swimnet_core::{Event, Memberlist, SansIoNode, StreamCommand, StreamId, Transmit};

use crate::{NetworkDb, TableChange, TableState};

/// Every input and command forwards to [`NetworkDb`]'s own method of the
/// same name.
impl SansIoNode for NetworkDb {
    type Delegate = TableState;
    /// Changes to the visible tables made by remote nodes.
    type AppEvent = TableChange;

    fn core(&self) -> &Memberlist<TableState> {
        NetworkDb::core(self)
    }
    fn core_mut(&mut self) -> &mut Memberlist<TableState> {
        NetworkDb::core_mut(self)
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
    fn poll_app_event(&mut self) -> Option<TableChange> {
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
    fn install_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        NetworkDb::install_key(self, key)
    }
    fn use_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        NetworkDb::use_key(self, key)
    }
    fn remove_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        NetworkDb::remove_key(self, key)
    }
}
