//! The membership state machine, one [`Memberlist`] per node.
//!
//! The struct and its setup live here; its behaviour is split by concern:
//!
//! - [`inbound`]: one datagram in, its messages decoded and dispatched;
//! - [`dispatch`]: due timers and decoded messages routed to their handlers;
//! - [`probe`] and [`suspicion`]: failure detection (SWIM with Lifeguard);
//! - [`state`]: alive, suspect and dead claims applied to the member table;
//! - [`gossip`] and [`sending`]: broadcasts and the datagram sending path;
//! - [`push_pull`] and [`streams`]: full state exchanges over TCP;
//! - [`commands`], [`queries`], [`outputs`], [`stats`]: the public surface;
//! - [`guard`]: budgets against misbehaving peers;
//! - [`conflict`]: node names claimed at a second address.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swimnet_wire::codec::{self, Message};
use swimnet_wire::msg::Alive;

use crate::awareness::Awareness;
use crate::config::{Config, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use crate::coordinate::Coordinates;
use crate::delegate::Delegate;
use crate::error::Error;
use crate::formulas::push_pull_scale;
use crate::member::{ip_bytes, Member, MemberIndex, NodeState};
use crate::queue::TransmitLimitedQueue;
use crate::replay::ReplayCache;
use crate::reply_limit::TokenBucket;
use crate::timer::{TimerKind, Timers};

mod commands;
mod conflict;
mod dispatch;
mod gossip;
mod guard;
mod inbound;
mod key_ops;
mod outputs;
mod probe;
mod push_pull;
mod queries;
mod sending;
mod state;
mod stats;
pub(crate) mod streams;
mod suspicion;

use gossip::LatencyState;
use outputs::Outbox;
pub use outputs::{Event, StreamCommand, StreamId, Transmit};
use probe::ProbeState;
use state::Tombstone;
pub use stats::Stats;
use streams::StreamTable;
use suspicion::Suspicions;

/// Most broadcasts in one packet: a compound holds at most 127 parts that
/// memberlist 0.2.2 decodes correctly (it miscounts 128 and more), and one
/// part is kept for the message they ride on.
const MAX_PIGGYBACK: usize = 126;
/// Peers told directly of our graceful leave.
const LEAVE_DIRECT: usize = 64;
/// Probe intervals a graceful leave's broadcast gets before the leave is
/// reported complete anyway ([`Event::LeaveComplete`] with `timed_out`).
pub const LEAVE_TIMEOUT_PROBES: u32 = 5;
/// Dead and left nodes remembered after they leave the table.
const MAX_TOMBSTONES: usize = 16_384;
/// Tombstones sent in one push/pull (the most recent ones).
const MAX_TOMBSTONES_PUSHED: usize = 512;

/// One node's membership state machine. See the crate docs for how to drive it.
///
/// Methods come in groups: getters; `handle_*` inputs, each taking `now`;
/// commands; and `poll_*` outputs, drained after every input.
pub struct Memberlist<D: Delegate> {
    config: Config,
    delegate: D,
    rng: ChaCha8Rng,
    name: Arc<str>,
    /// Our own incarnation, raised to refute claims about us.
    incarnation: u32,
    /// Set by [`Memberlist::leave`]: we stop refuting and accept no commands.
    leaving: bool,
    /// Queue id of our leave broadcast, watched until it has been sent.
    leave_broadcast: Option<u64>,
    /// Last sequence number used for a ping or a check.
    seq_no: u32,
    /// Lifeguard's local health score.
    awareness: Awareness,
    /// Our gossip: queued alive, suspect and dead messages to piggy-back.
    broadcasts: TransmitLimitedQueue,
    /// No catch-up push/pull before this (see [`Config::catch_up_backlog`]).
    next_catch_up: Instant,
    /// Budget for replies to addresses that are not members' (see `guard`).
    reply_bucket: TokenBucket,
    /// Nonces of recently authenticated datagrams (see [`crate::replay`]).
    replays: ReplayCache,
    /// Members and tombstones.
    table: MemberTable,
    /// The probe round in flight and the indirect pings we relay.
    probing: ProbeState,
    /// Suspicions of other members and the accusers we answered.
    suspicions: Suspicions,
    /// TCP exchanges in flight.
    streams: StreamTable,
    timers: Timers,
    /// What waits to be pulled by the driver.
    out: Outbox,
    stats: Stats,
    /// Coordinates and latency-aware peer selection.
    latency: LatencyState,
    /// Name conflicts reported lately (see [`conflict`]).
    conflicts: conflict::ConflictReports,
    /// Cluster-wide key operations and keyring-mismatch notices.
    key_ops: key_ops::KeyOpState,
}

/// The member table: every node we know as alive, suspect or dead, with an
/// index by name, and what we remember of nodes that left it.
#[derive(Debug, Default)]
struct MemberTable {
    /// The members, in the (shuffled) order probes walk them.
    nodes: Vec<Member>,
    /// Position of each member in `nodes`, by name.
    index: MemberIndex,
    /// Dead and left nodes removed from `nodes` (see [`Tombstone`]).
    tombstones: HashMap<Arc<str>, Tombstone>,
}

impl<D: Delegate> std::fmt::Debug for Memberlist<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memberlist")
            .field("name", &self.name)
            .field("incarnation", &self.incarnation)
            .field("members", &self.table.nodes.len())
            .finish_non_exhaustive()
    }
}

/// How long a computed near cluster is used before it is computed again
/// (coordinates move slowly; members that joined since are reached by the
/// uniform picks meanwhile).
const NEAR_CLUSTER_REFRESH: Duration = Duration::from_secs(5);

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    codec::encode(msg, &mut out);
    out
}

impl<D: Delegate> Memberlist<D> {
    /// Creates the node: validates `config`, puts ourselves in the table as
    /// alive with incarnation 1, and starts the probe, gossip and push/pull
    /// timers with a random stagger. `seed` feeds every random choice
    /// (including AES-GCM nonces): the agent passes OS entropy, tests a fixed
    /// number so runs replay.
    pub fn new(config: Config, delegate: D, now: Instant, seed: u64) -> Result<Self, Error> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let name: Arc<str> = Arc::from(config.name.as_str());
        let core_seed = rng.next_u64();
        let coords = match &config.coordinates {
            Some(c) => Some(Coordinates::new(c.clone(), rng.next_u64())?),
            None => None,
        };
        let mut ml = Memberlist {
            latency: LatencyState::new(coords),
            awareness: Awareness::new(config.awareness_max_multiplier),
            broadcasts: TransmitLimitedQueue::new(config.retransmit_mult)
                .with_max_len(config.max_queued_broadcasts),
            reply_bucket: TokenBucket::new(&config.reply_limit, now),
            name: name.clone(),
            incarnation: 0,
            leaving: false,
            leave_broadcast: None,
            seq_no: 0,
            table: MemberTable::default(),
            probing: ProbeState::new(now),
            next_catch_up: now,
            suspicions: Suspicions::default(),
            replays: ReplayCache::new(config.replay_window, config.replay_cache_capacity),
            streams: StreamTable::default(),
            timers: Timers::default(),
            out: Outbox::default(),
            stats: Stats::default(),
            conflicts: conflict::ConflictReports::default(),
            key_ops: key_ops::KeyOpState::default(),
            delegate,
            rng: ChaCha8Rng::seed_from_u64(core_seed),
            config,
        };
        ml.incarnation = 1;
        let me = Member {
            name: name.clone(),
            addr: ml.config.advertise,
            mapped: false,
            meta: ml.config.meta.clone(),
            vsn: ml.local_vsn(),
            incarnation: 1,
            state: NodeState::Alive,
            state_change: now,
        };
        let alive = ml.local_alive();
        ml.insert_member(me);
        ml.broadcasts
            .queue(Some(name.as_bytes()), encode(&Message::Alive(alive)));

        let probe_stagger = ml.stagger(ml.config.probe_interval);
        ml.probing.next_at = now + probe_stagger;
        ml.timers.schedule(ml.probing.next_at, TimerKind::Probe);
        if !ml.config.gossip_interval.is_zero() && ml.config.gossip_nodes > 0 {
            let s = ml.stagger(ml.config.gossip_interval);
            ml.timers.schedule(now + s, TimerKind::Gossip);
        }
        if !ml.config.push_pull_interval.is_zero() {
            let s = ml.stagger(ml.config.push_pull_interval);
            let first = s + push_pull_scale(ml.config.push_pull_interval, 1);
            ml.timers.schedule(now + first, TimerKind::PushPull);
        }
        if !ml.config.reconnect_interval.is_zero() {
            let s = ml.stagger(ml.config.reconnect_interval);
            ml.timers
                .schedule(now + ml.config.reconnect_interval + s, TimerKind::Reconnect);
        }
        Ok(ml)
    }

    /// A random delay in `0..interval`, so that timers of nodes started
    /// together do not fire together.
    fn stagger(&mut self, interval: Duration) -> Duration {
        let nanos = interval.as_nanos().min(u64::MAX as u128) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.rng.gen_range(0..nanos))
    }

    /// Our six version bytes: protocol min, max and current, then the
    /// delegate's.
    fn local_vsn(&self) -> [u8; 6] {
        [
            PROTOCOL_VERSION_MIN,
            PROTOCOL_VERSION_MAX,
            self.config.protocol_version,
            self.config.delegate_protocol_min,
            self.config.delegate_protocol_max,
            self.config.delegate_protocol_version,
        ]
    }

    /// The alive message announcing ourselves at our current incarnation.
    fn local_alive(&self) -> Alive {
        Alive {
            incarnation: self.incarnation,
            node: self.name.to_string(),
            addr: ip_bytes(&self.config.advertise),
            port: self.config.advertise.port(),
            meta: self.config.meta.clone(),
            vsn: self.local_vsn().to_vec(),
        }
    }

    /// Adds a new member at a random position of the table (as memberlist
    /// does) and indexes it.
    fn insert_member(&mut self, m: Member) {
        let n = self.table.nodes.len();
        self.table.nodes.push(m);
        // A new node goes in at a random position, as memberlist does.
        let offset = self.rng.gen_range(0..=n);
        self.table.nodes.swap(offset, n);
        if offset != n {
            let moved = self.table.nodes[n].name.clone();
            self.table.index.relocate(&moved, offset, n);
        }
        self.table.index.insert(&self.table.nodes, offset);
    }

    /// Re-indexes the whole table after it was reordered.
    fn rebuild_index(&mut self) {
        self.table.index.rebuild(&self.table.nodes);
    }

    /// Position of the member called `name` in the table.
    fn member_pos(&self, name: &str) -> Option<usize> {
        self.table.index.get(&self.table.nodes, name)
    }

    /// The member called `name`, if known.
    fn member(&self, name: &str) -> Option<&Member> {
        self.member_pos(name).map(|i| &self.table.nodes[i])
    }

    /// The member called `name`, to change it in place.
    fn member_mut(&mut self, name: &str) -> Option<&mut Member> {
        self.member_pos(name).map(|i| &mut self.table.nodes[i])
    }
}

fn vsn6(v: &[u8]) -> Option<[u8; 6]> {
    v.get(..6).map(|s| {
        let mut out = [0u8; 6];
        out.copy_from_slice(s);
        out
    })
}
