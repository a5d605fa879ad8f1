//! Docker NetworkDB compatible per-network replicated tables, sans-IO.
//!
//! NetworkDB is the store Docker Swarm keeps its overlay networks' state in
//! (which container address lives behind which host). Every host is a
//! *node* of one gossip cluster. A node *joins networks*: the ones it has
//! workloads on. Each network holds *tables* (named by the application,
//! e.g. `endpoint_table`), and each table holds *entries*: a key, a value
//! of bytes, and the node that owns it. Only the owner updates or deletes
//! an entry; every node attached to the network gets a copy, and nodes not
//! attached never see it.
//!
//! # How it sits on the core
//!
//! [`NetworkDb`] owns a [`swimnet_core::Memberlist`] (membership, failure
//! detection, encryption, the packet and stream formats) whose delegate is
//! the [`TableState`]. The core calls the table state only through
//! memberlist's synchronous [`swimnet_core::Delegate`] hooks: a user message
//! arrived, which broadcasts to piggyback, the push/pull state to send or
//! merge. Everything else — the per-network gossip rounds, the periodic bulk
//! sync (anti-entropy), the reaper of tombstones, the table commands — is
//! run by [`NetworkDb`] itself, which sends the traffic the tables queue as
//! user packets (gossip) and user streams (bulk syncs) through the core it
//! owns, after every input.
//!
//! Like the core, a `NetworkDb` never reads a clock or touches a socket:
//! feed it inputs with `now` (`handle_packet`, `handle_stream_*`,
//! `handle_timeout`, commands), then drain [`NetworkDb::poll_transmit`],
//! [`NetworkDb::poll_stream`], [`NetworkDb::poll_event`] and
//! [`NetworkDb::poll_table_change`], and call `handle_timeout` again at
//! [`NetworkDb::poll_timeout`]. The same code runs under tokio in the
//! `swimnet` agent and under virtual time in `swimnet-sim`.
//!
//! What goes on the wire is Docker 20.10's protobuf messages
//! ([`wire`]) inside memberlist user messages, byte for byte; the rules
//! (Lamport clocks, tombstones, held events, budgets on what a peer may
//! make a node store) are described in the `state` module's source.
//! [`NetworkDb::docker_memberlist`] applies Docker's memberlist settings;
//! [`NdbConfig::default`] holds Docker's table settings.
//!
//! # Example
//!
//! Two nodes, joined in memory: node `b` joins the cluster through `a`,
//! both join network `net1`, `a` writes an entry, and `b` sees it.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use swimnet_core::{Config, StreamCommand};
//! use swimnet_networkdb::{NdbConfig, NetworkDb};
//!
//! let addrs: [SocketAddr; 2] = ["127.0.0.1:7946".parse().unwrap(), "127.0.0.2:7946".parse().unwrap()];
//! let mut now = Instant::now();
//! let node = |i: usize, now| {
//!     let config = NetworkDb::docker_memberlist(Config::local(format!("node{i}"), addrs[i]));
//!     NetworkDb::new(config, NdbConfig::default(), now, i as u64).unwrap()
//! };
//! let mut nodes = [node(0, now), node(1, now)];
//! nodes[1].join(now, &[addrs[0]]).unwrap();
//! nodes[0].join_network(now, "net1").unwrap();
//! nodes[1].join_network(now, "net1").unwrap();
//!
//! // Run both nodes for `secs` of virtual time, delivering every datagram
//! // and stream at once (a perfect network).
//! let mut run = |nodes: &mut [NetworkDb; 2], now: &mut Instant, secs: u64| {
//!     let end = *now + Duration::from_secs(secs);
//!     while *now < end {
//!         *now += Duration::from_millis(10);
//!         for i in 0..2 {
//!             nodes[i].handle_timeout(*now);
//!         }
//!         pump(nodes, *now);
//!     }
//! };
//! fn pump(nodes: &mut [NetworkDb; 2], now: Instant) {
//!     let addrs = [nodes[0].core().config().advertise, nodes[1].core().config().advertise];
//!     // (node, its stream) awaiting a reply, by (replying node, its stream).
//!     let mut waiting = Vec::new();
//!     let mut busy = true;
//!     while busy {
//!         busy = false;
//!         for i in 0..2 {
//!             let (me, peer) = (addrs[i], 1 - i);
//!             while let Some(t) = nodes[i].poll_transmit() {
//!                 busy = true;
//!                 nodes[peer].handle_packet(now, me, &t.payload);
//!             }
//!             while let Some(cmd) = nodes[i].poll_stream() {
//!                 busy = true;
//!                 match cmd {
//!                     StreamCommand::Open { id, data, expect_reply, .. } => {
//!                         let theirs = nodes[peer].handle_stream_accept(now, me);
//!                         nodes[peer].handle_stream_data(now, theirs, &data, true);
//!                         if expect_reply {
//!                             waiting.push(((peer, theirs), (i, id)));
//!                         }
//!                     }
//!                     StreamCommand::Reply { id, data } => {
//!                         if let Some(k) = waiting.iter().position(|(r, _)| *r == (i, id)) {
//!                             let (_, (to, sid)) = waiting.remove(k);
//!                             nodes[to].handle_stream_data(now, sid, &data, true);
//!                         }
//!                     }
//!                     StreamCommand::Close { .. } => {}
//!                 }
//!             }
//!             while nodes[i].poll_event().is_some() {}
//!         }
//!     }
//! }
//!
//! run(&mut nodes, &mut now, 2);
//! assert_eq!(nodes[0].network_peers("net1").len(), 2);
//!
//! nodes[0].create_entry(now, "net1", "endpoint_table", "ep1", b"10.0.0.5").unwrap();
//! run(&mut nodes, &mut now, 2);
//! assert_eq!(nodes[1].get_entry("net1", "endpoint_table", "ep1").unwrap(), b"10.0.0.5");
//! let change = nodes[1].poll_table_change().unwrap();
//! assert_eq!((change.key.as_str(), change.prev), ("ep1", None));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod db;
mod node;
mod scan;
mod state;
pub mod wire;

pub use db::NetworkDb;
pub use state::{
    ChangeOrigin, NdbConfig, NdbError, NdbErrorKind, NdbStats, NetworkChange, OwnEntry, PeerState,
    RestartState, RestoreReport, TableChange, TableEntry, TableState, CLOCK_CEILING, CLOCK_WINDOW,
    LONE_QUEUE_MAX, MAX_PENDING_CHANGES,
};

/// Traffic the table state queued, for tests that drive a [`TableState`]
/// directly; [`NetworkDb`] sends it through its core.
#[doc(hidden)]
pub use state::Outgoing;
