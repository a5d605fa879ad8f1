//! A sans-IO membership core (SWIM with Lifeguard) that speaks HashiCorp
//! memberlist's protocol, byte for byte.
//!
//! [`Memberlist`] owns the membership state of one node: who is alive,
//! suspect, dead or left, the gossip waiting to be sent, the probe round in
//! flight. It finds failed nodes by probing (direct, then indirect pings
//! through other members, then a TCP ping), spreads what it learns by
//! piggy-backing it on its own traffic and by gossip rounds, and reconciles
//! the whole table with a random peer now and then (push/pull over TCP).
//!
//! # The sans-IO model
//!
//! The core never reads a clock, touches a socket or spawns a thread: every
//! input carries `now`, randomness comes from a seed given at creation, and
//! everything it wants done is pulled out by the caller. The same code
//! therefore runs under the tokio agent and under the deterministic
//! simulator, where a seed replays a run exactly. A driver runs it like this:
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
//! The layer above plugs in through a [`Delegate`] (metadata, user messages,
//! push/pull state, merge vetoes). Every input from the network has a
//! budget; what a peer gets wrong is dropped and counted in [`Stats`].
//!
//! [`SansIoNode`] is that same surface as a trait, implemented by
//! `Memberlist` and by the layers that own one (NetworkDB, Serf), so that
//! the agent and the simulator drive any of them the same way.
//!
//! # Example: two nodes in memory
//!
//! Node `b` joins `a` (a push/pull over a "stream" that is just a buffer),
//! then both run for a few virtual seconds, trading datagrams by hand.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use swimnet_core::{Config, Event, Memberlist, NoopDelegate, StreamCommand};
//!
//! let addr_a: SocketAddr = "127.0.0.1:7946".parse().unwrap();
//! let addr_b: SocketAddr = "127.0.0.2:7946".parse().unwrap();
//! let mut now = Instant::now();
//! let mut a = Memberlist::new(Config::lan("a", addr_a), NoopDelegate, now, 1).unwrap();
//! let mut b = Memberlist::new(Config::lan("b", addr_b), NoopDelegate, now, 2).unwrap();
//!
//! // b dials a: carry the push/pull to a, and a's reply back to b.
//! b.join(now, &[addr_a]).unwrap();
//! let Some(StreamCommand::Open { id: b_side, data, .. }) = b.poll_stream() else {
//!     panic!("a join opens a stream")
//! };
//! let a_side = a.handle_stream_accept(now, addr_b);
//! a.handle_stream_data(now, a_side, &data, true);
//! while let Some(cmd) = a.poll_stream() {
//!     if let StreamCommand::Reply { data, .. } = cmd {
//!         b.handle_stream_data(now, b_side, &data, true);
//!     }
//! }
//! // The join reports how many node states it merged: a's.
//! let joined = std::iter::from_fn(|| b.poll_event())
//!     .any(|e| matches!(e, Event::JoinResult { result: Ok(1), .. }));
//! assert!(joined);
//!
//! // Run both nodes for 5 virtual seconds, delivering every datagram.
//! let end = now + Duration::from_secs(5);
//! while now < end {
//!     now += Duration::from_millis(10);
//!     for node in [&mut a, &mut b] {
//!         node.handle_timeout(now);
//!     }
//!     while let Some(t) = a.poll_transmit() {
//!         b.handle_packet(now, addr_a, &t.payload);
//!     }
//!     while let Some(t) = b.poll_transmit() {
//!         a.handle_packet(now, addr_b, &t.payload);
//!     }
//!     for node in [&mut a, &mut b] {
//!         while node.poll_stream().is_some() {}
//!         while node.poll_event().is_some() {}
//!     }
//! }
//! assert_eq!(a.num_alive(), 2);
//! assert_eq!(b.num_alive(), 2);
//! assert!(a.stats().probes_ok > 0 && b.stats().probes_ok > 0);
//! ```
//!
//! # Modules
//!
//! [`config`] holds the settings, [`coordinate`] the Vivaldi network
//! coordinates carried in acks, [`topology`] the latency-aware peer
//! selection built on them, [`queue`] the broadcast queue, [`reply_limit`]
//! the budget for replies to strangers and [`formulas`] memberlist's
//! timeouts and scaling rules. The wire format itself is in
//! [`swimnet_wire`], re-exported as [`wire`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod awareness;
pub mod config;
pub mod coordinate;
mod delegate;
mod error;
pub mod formulas;
pub mod key_ops;
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
pub use error::{Error, JoinError, MergeRefusal, Veto};
pub use member::{Node, NodeState};
pub use memberlist::streams::StreamLimits;
pub use memberlist::{
    Event, Memberlist, Stats, StreamCommand, StreamId, Transmit, LEAVE_TIMEOUT_PROBES,
};
pub use node::SansIoNode;
pub use swimnet_wire as wire;
