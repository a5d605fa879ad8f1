//! Sans-IO membership core (SWIM + Lifeguard) speaking HashiCorp memberlist's protocol.
//!
//! [`Memberlist`] owns the membership state of one node. It never reads a
//! clock, touches a socket or spawns a thread: every input carries `now`,
//! randomness comes from a seed given at creation, and everything it wants
//! done is pulled out by the caller. A driver (the tokio agent, or the
//! simulator) runs it like this:
//!
//! 1. feed inputs: [`Memberlist::handle_packet`] for each datagram,
//!    [`Memberlist::handle_stream_accept`] / [`Memberlist::handle_stream_data`] /
//!    [`Memberlist::handle_stream_error`] for TCP, and
//!    [`Memberlist::handle_timeout`] when the deadline from
//!    [`Memberlist::poll_timeout`] has passed;
//! 2. drain outputs in this order: [`Memberlist::poll_transmit`] (datagrams),
//!    [`Memberlist::poll_stream`] (stream opens, replies, closes),
//!    [`Memberlist::poll_event`] (membership changes);
//! 3. sleep until [`Memberlist::poll_timeout`] or the next input.
//!
//! Commands ([`Memberlist::join`], [`Memberlist::leave`],
//! [`Memberlist::set_meta`], the key commands) may be called between inputs.
//!
//! [`SansIoNode`] is that same surface as a trait, implemented by
//! `Memberlist` and by the layers that own one (NetworkDB, Serf), so that
//! the agent and the simulator drive any of them the same way.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod awareness;
pub mod config;
pub mod coordinate;
mod delegate;
mod error;
pub mod formulas;
mod member;
mod memberlist;
pub mod node;
pub mod queue;
mod replay;
pub mod reply_limit;
mod timer;
pub mod topology;
mod validate;

pub use config::Config;
pub use delegate::{Delegate, NoopDelegate};
pub use error::Error;
pub use member::{Node, NodeState};
pub use memberlist::streams::StreamLimits;
pub use memberlist::{Event, Memberlist, Stats, StreamCommand, StreamId, Transmit};
pub use node::SansIoNode;
pub use swimnet_wire as wire;
