//! The membership state machine: probing, suspicion, gossip, push/pull.
//!
//! The datagram path lives in [`inbound`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swimnet_wire::budget::DecodeBudget;
use swimnet_wire::codec::{self, Message};
use swimnet_wire::compound::encode_compound;
use swimnet_wire::msg::{
    AckResp, Alive, Dead, ErrResp, IndirectPing, NackResp, Ping, PushNodeState, PushPullHeader,
    Suspect,
};
use swimnet_wire::packet::{self, SealOptions};
use swimnet_wire::security::{EncryptionVersion, Key, Keyring};
use swimnet_wire::stream::{self, StreamEncodeOptions, StreamMessage};

use crate::awareness::Awareness;
use crate::config::{Config, META_MAX_SIZE, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use crate::coordinate::{ClientStats, Coordinate, Coordinates};
use crate::delegate::Delegate;
use crate::error::Error;
use crate::formulas::{push_pull_scale, suspicion_timeout, suspicion_timeout_after};
use crate::member::{ip_bytes, is_mapped, socket_addr, Member, MemberIndex, Node, NodeState};
use crate::queue::TransmitLimitedQueue;
use crate::replay::ReplayCache;
use crate::reply_limit::TokenBucket;
use crate::timer::{TimerKind, Timers};
use crate::topology::{self, NearRotation, TopologyView};
use crate::validate;

mod guard;

mod inbound;

#[path = "streams.rs"]
pub(crate) mod streams;
use streams::{InboundBudget, StreamCtx};

/// Bytes of framing a compound message adds (type byte + count).
const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// Bytes each compound part adds (its u16 length).
const COMPOUND_OVERHEAD: usize = 2;
/// Bytes the user-message type byte adds.
const USER_MSG_OVERHEAD: usize = 1;
/// Most broadcasts in one packet: a compound holds at most 127 parts that
/// memberlist 0.2.2 decodes correctly (it miscounts 128 and more), and one
/// part is kept for the message they ride on.
const MAX_PIGGYBACK: usize = 126;
/// Peers told directly of our graceful leave.
const LEAVE_DIRECT: usize = 64;
/// Dead and left nodes remembered after they leave the table.
const MAX_TOMBSTONES: usize = 16_384;
/// Tombstones sent in one push/pull (the most recent ones).
const MAX_TOMBSTONES_PUSHED: usize = 512;

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
        result: Result<usize, String>,
    },
    /// Our leave broadcast has been sent out (or nobody was left to tell).
    LeaveComplete,
    /// A peer's push/pull was not merged (version check or merge veto).
    MergeRefused {
        /// Who sent it.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Counters for what came in, what went out and what was dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to [`Memberlist::handle_packet`].
    pub packets_in: u64,
    /// Their bytes.
    pub bytes_in: u64,
    /// Datagrams produced.
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Datagrams dropped: undecryptable, wrong label, CRC mismatch.
    pub packets_dropped: u64,
    /// Messages inside datagrams that failed to decode.
    pub messages_malformed: u64,
    /// Datagrams whose decoding ran out of their decode budget
    /// ([`Config::datagram_max_decoded_bytes`], [`Config::datagram_max_parts`]);
    /// what did not fit was dropped.
    pub datagrams_over_budget: u64,
    /// Encrypted datagrams dropped as exact replays of one authenticated
    /// within [`Config::replay_window`].
    pub packets_replayed: u64,
    /// Messages received, by memberlist type code (index = type byte, up to 13).
    pub messages_in: [u64; 14],
    /// Messages sent, by type code.
    pub messages_out: [u64; 14],
    /// Probes that succeeded.
    pub probes_ok: u64,
    /// Probes that failed (target became suspect).
    pub probes_failed: u64,
    /// Probes saved only by the TCP fallback ping.
    pub probes_tcp_rescued: u64,
    /// TCP pings refused by the target's host (nothing listening).
    pub pings_refused: u64,
    /// Last checks sent to suspects before declaring them dead.
    pub final_checks: u64,
    /// Last checks the suspect answered (a dead verdict avoided).
    pub final_checks_answered: u64,
    /// Refutations of suspicion about ourselves.
    pub refutations: u64,
    /// Push/pulls completed (either side).
    pub push_pulls: u64,
    /// Catch-up push/pulls started because the gossip backlog was deep
    /// ([`Config::catch_up_backlog`]).
    pub catch_ups: u64,
    /// Streams that failed (decode error, peer error, timeout).
    pub streams_failed: u64,
    /// Inbound streams refused for exceeding the concurrency limit.
    pub streams_refused: u64,
    /// Inbound streams refused because their source IP already had
    /// [`crate::StreamLimits::max_unauthenticated_per_source`] streams not
    /// yet authenticated (only with encryption required).
    pub streams_refused_per_source: u64,
    /// Streams failed for a message over a [`crate::StreamLimits`] limit
    /// (size, node count, decoded size); also in `streams_failed`.
    pub streams_over_limit: u64,
    /// Inbound streams closed to keep
    /// [`crate::StreamLimits::inbound_budget_bytes`] (the biggest holder
    /// goes first); also in `streams_failed`.
    pub streams_over_budget: u64,
    /// Inbound streams closed for not sending their frame header within
    /// [`crate::StreamLimits::first_bytes_timeout`]; also in `streams_failed`.
    pub streams_first_bytes_timeout: u64,
    /// Bytes examined while decoding streams (parsing, decryption,
    /// decompression): about the bytes received, however they were cut.
    pub stream_bytes_scanned: u64,
    /// Ack payloads from direct probes that were not a usable coordinate
    /// (undecodable, another version, non-finite or absurd values, an RTT
    /// over 10 s); our coordinate was left as it was.
    pub coordinates_rejected: u64,
    /// Peer choices (gossip targets, indirect-probe helpers, push/pull
    /// partners) made latency-aware rather than uniformly; stays 0 while
    /// [`Config::topology`] is off or coordinates are unsettled.
    pub topology_choices: u64,
    /// Alive messages (and alive push/pull states) dropped for a name
    /// longer than [`crate::config::NODE_NAME_MAX`] or empty, metadata over
    /// [`META_MAX_SIZE`], or a version field that is not 6 consistent bytes.
    pub alives_invalid: u64,
    /// Alive, suspect and dead claims dropped for an incarnation more than
    /// [`Config::max_incarnation_jump`] above what we know of the node.
    pub incarnation_jumps_rejected: u64,
    /// Accusations about us we could not outbid (our incarnation or theirs
    /// is already `u32::MAX`); the refutation is not wrapped to 0.
    pub refutations_impossible: u64,
    /// New nodes not added because the table was full ([`Config::max_members`]).
    pub members_rejected: u64,
    /// Queued broadcasts dropped to stay within [`Config::max_queued_broadcasts`].
    pub broadcasts_dropped: u64,
    /// Pings and indirect pings left unanswered because they would have
    /// sent to addresses of non-members beyond [`Config::reply_limit`].
    pub replies_limited: u64,
    /// Indirect pings dropped because `reply_limit.max_relays` were pending.
    pub relays_rejected: u64,
}

#[derive(Debug)]
struct Probe {
    target: Arc<str>,
    /// The target's incarnation when the probe started (a failure suspects that one).
    incarnation: u32,
    seq: u32,
    start: Instant,
    interval: Duration,
    indirect_sent: bool,
    expected_nacks: i64,
    nacks: i64,
    tcp_ok: bool,
    /// The target's host refused the TCP ping: it is down, not our network.
    refused: bool,
    done: bool,
}

#[derive(Debug)]
struct Relay {
    prober_seq: u32,
    prober: SocketAddr,
    prober_name: String,
    nack: bool,
}

#[derive(Debug)]
struct Suspicion {
    start: Instant,
    k: usize,
    n: usize,
    min: Duration,
    max: Duration,
    confirmations: HashSet<String>,
    generation: u64,
    state_change: Instant,
    /// When the node is declared dead unless something changes.
    deadline: Instant,
    /// swimnet's check before dead: sequence number of the check of the
    /// suspect in flight, if any.
    check: Option<u32>,
    /// When the check in flight is given up as unanswered.
    check_until: Instant,
    /// When the next check goes out (first: one check window before the
    /// earliest possible deadline, then every minimum timeout).
    next_check_at: Instant,
    /// A check went unanswered and nothing answered since: a verdict may
    /// be given at the deadline.
    check_failed: bool,
}

/// What we remember of a dead or left node after it leaves the table, so a
/// stale alive message cannot bring it back at the incarnation it died with,
/// and so that partitioned halves can find each other again.
#[derive(Debug, Clone)]
struct Tombstone {
    addr_bytes: Vec<u8>,
    addr: SocketAddr,
    vsn: [u8; 6],
    incarnation: u32,
    left: bool,
    since: Instant,
}

#[derive(Debug)]
enum StreamKind {
    OutPushPull { join: bool, to: SocketAddr },
    OutPing { seq: u32 },
    In,
}

/// One node's membership state machine. See the crate docs for how to drive it.
///
/// Methods come in groups: getters; `handle_*` inputs, each taking `now`;
/// commands; and `poll_*` outputs, drained after every input.
pub struct Memberlist<D: Delegate> {
    config: Config,
    delegate: D,
    rng: ChaCha8Rng,
    name: Arc<str>,
    incarnation: u32,
    leaving: bool,
    leave_broadcast: Option<u64>,
    seq_no: u32,
    awareness: Awareness,
    broadcasts: TransmitLimitedQueue,
    /// Budget for replies to addresses that are not members' (see `guard`).
    reply_bucket: TokenBucket,

    nodes: Vec<Member>,
    index: MemberIndex,
    probe_index: usize,

    probe: Option<Probe>,
    next_probe_at: Instant,
    /// No catch-up push/pull before this (see [`Config::catch_up_backlog`]).
    next_catch_up: Instant,
    /// Suspects whose suspicion timer ran out, to probe once more before declaring them dead.
    relays: HashMap<u32, Relay>,
    suspicions: HashMap<Arc<str>, Suspicion>,
    next_generation: u64,
    tombstones: HashMap<Arc<str>, Tombstone>,
    /// Accusers we already sent our current alive to, with the incarnation sent.
    told_accusers: HashMap<String, u32>,
    /// Nonces of recently authenticated datagrams (see [`crate::replay`]).
    replays: ReplayCache,

    streams: HashMap<StreamId, StreamCtx>,
    next_stream: u64,
    inbound_streams: usize,
    inbound: InboundBudget,

    timers: Timers,
    transmits: VecDeque<Transmit>,
    stream_cmds: VecDeque<StreamCommand>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Vivaldi state, when `config.coordinates` is set.
    coords: Option<Coordinates>,
    /// Cached near cluster for latency-aware gossip and probes: when it was
    /// computed and the names in it (see `refresh_near_cluster`).
    near_cluster: Option<(Instant, Vec<Arc<str>>)>,
    /// Where gossip rounds are in their walk through the near cluster.
    gossip_walk: NearRotation<Arc<str>>,
    /// Where near probes are in their walk through the near cluster.
    probe_walk: NearRotation<Arc<str>>,
}

impl<D: Delegate> std::fmt::Debug for Memberlist<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memberlist")
            .field("name", &self.name)
            .field("incarnation", &self.incarnation)
            .field("members", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

/// How long a computed near cluster is used before it is computed again
/// (coordinates move slowly; members that joined since are reached by the
/// uniform picks meanwhile).
const NEAR_CLUSTER_REFRESH: Duration = Duration::from_secs(5);

/// Gives back the memory of an output queue that a burst grew (a preload or
/// a join hands out one event per member) once the driver has drained it, so
/// that an idle node does not keep a burst's worth of capacity.
fn shrink_drained<T>(q: &mut VecDeque<T>) {
    const KEEP: usize = 64;
    if q.is_empty() && q.capacity() > 4 * KEEP {
        q.shrink_to(KEEP);
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    codec::encode(msg, &mut out);
    out
}

fn type_index(msg: &Message) -> usize {
    match msg {
        Message::Ping(_) => 0,
        Message::IndirectPing(_) => 1,
        Message::AckResp(_) => 2,
        Message::Suspect(_) => 3,
        Message::Alive(_) => 4,
        Message::Dead(_) => 5,
        Message::User(_) => 8,
        Message::NackResp(_) => 11,
        Message::ErrResp(_) => 13,
    }
}

impl<D: Delegate> Memberlist<D> {
    // ------------------------------------------------------------------ setup

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
            coords,
            near_cluster: None,
            gossip_walk: NearRotation::default(),
            probe_walk: NearRotation::default(),
            awareness: Awareness::new(config.awareness_max_multiplier),
            broadcasts: TransmitLimitedQueue::new(config.retransmit_mult)
                .with_max_len(config.max_queued_broadcasts),
            reply_bucket: TokenBucket::new(&config.reply_limit, now),
            name: name.clone(),
            incarnation: 0,
            leaving: false,
            leave_broadcast: None,
            seq_no: 0,
            nodes: Vec::new(),
            index: MemberIndex::default(),
            probe_index: 0,
            probe: None,
            next_probe_at: now,
            next_catch_up: now,
            relays: HashMap::new(),
            suspicions: HashMap::new(),
            next_generation: 0,
            tombstones: HashMap::new(),
            told_accusers: HashMap::new(),
            replays: ReplayCache::new(config.replay_window, config.replay_cache_capacity),
            streams: HashMap::new(),
            next_stream: 0,
            inbound_streams: 0,
            inbound: InboundBudget::default(),
            timers: Timers::default(),
            transmits: VecDeque::new(),
            stream_cmds: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
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
        ml.next_probe_at = now + probe_stagger;
        ml.timers.schedule(ml.next_probe_at, TimerKind::Probe);
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

    fn stagger(&mut self, interval: Duration) -> Duration {
        let nanos = interval.as_nanos().min(u64::MAX as u128) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.rng.gen_range(0..nanos))
    }

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

    fn insert_member(&mut self, m: Member) {
        let n = self.nodes.len();
        self.nodes.push(m);
        // A new node goes in at a random position, as memberlist does.
        let offset = self.rng.gen_range(0..=n);
        self.nodes.swap(offset, n);
        if offset != n {
            let moved = self.nodes[n].name.clone();
            self.index.relocate(&moved, offset, n);
        }
        self.index.insert(&self.nodes, offset);
    }

    fn rebuild_index(&mut self) {
        self.index.rebuild(&self.nodes);
    }

    fn member_pos(&self, name: &str) -> Option<usize> {
        self.index.get(&self.nodes, name)
    }

    fn member(&self, name: &str) -> Option<&Member> {
        self.member_pos(name).map(|i| &self.nodes[i])
    }

    fn member_mut(&mut self, name: &str) -> Option<&mut Member> {
        self.member_pos(name).map(|i| &mut self.nodes[i])
    }

    // ---------------------------------------------------------------- getters

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Our current incarnation number.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// The configuration the core runs with (keys reflect later key commands).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every node in the table (alive, suspect, dead and left until reaped), ourselves included.
    pub fn members(&self) -> impl Iterator<Item = Node> + '_ {
        self.nodes.iter().map(Member::snapshot)
    }

    /// One node by name.
    pub fn member_by_name(&self, name: &str) -> Option<Node> {
        self.member(name).map(Member::snapshot)
    }

    /// Number of nodes in the table: memberlist's `n` in every formula.
    pub fn num_members(&self) -> usize {
        self.nodes.len()
    }

    /// Number of alive nodes, ourselves included.
    pub fn num_alive(&self) -> usize {
        self.nodes
            .iter()
            .filter(|m| m.state == NodeState::Alive)
            .count()
    }

    /// The Lifeguard awareness score (0 = healthy).
    pub fn health_score(&self) -> usize {
        self.awareness.score()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Our Vivaldi coordinate, or `None` when coordinates are off
    /// (`Config::coordinates`). It starts at the origin and moves after
    /// every direct probe whose ack carried the peer's coordinate.
    pub fn coordinate(&self) -> Option<&Coordinate> {
        self.coords.as_ref().map(|c| c.client.coordinate())
    }

    /// The latest coordinate accepted from `name` (or ours, for our own
    /// name). `None` when coordinates are off, or no probe of that node has
    /// yet returned a usable one. A node's coordinate is forgotten when the
    /// node is removed from the member list (reaped).
    pub fn coordinate_of(&self, name: &str) -> Option<&Coordinate> {
        let c = self.coords.as_ref()?;
        if name == &*self.name {
            Some(c.client.coordinate())
        } else {
            c.peers.get(name)
        }
    }

    /// Every known coordinate, ours included, by node name (unordered).
    pub fn coordinates(&self) -> impl Iterator<Item = (&str, &Coordinate)> + '_ {
        let ours = self
            .coords
            .as_ref()
            .map(|c| (&*self.name, c.client.coordinate()));
        let peers = self
            .coords
            .iter()
            .flat_map(|c| c.peers.iter().map(|(n, c)| (n.as_str(), c)));
        ours.into_iter().chain(peers)
    }

    /// Counters of the coordinate client (updates, rejections, resets),
    /// or `None` when coordinates are off.
    pub fn coordinate_stats(&self) -> Option<ClientStats> {
        self.coords.as_ref().map(|c| c.client.stats())
    }

    /// A snapshot of the estimated distance to every peer with a settled
    /// coordinate, for a layer above the core (NetworkDB) to bias its own
    /// peer choices the way the core does (see [`crate::topology`]).
    /// `None` when [`Config::topology`] is off or coordinates are off: the
    /// caller then chooses uniformly. Take it just before choosing; it
    /// costs one distance computation per known peer.
    pub fn topology_view(&self) -> Option<TopologyView> {
        let cfg = &self.config.topology;
        if !cfg.enabled {
            return None;
        }
        let coords = self.coords.as_ref()?;
        let ours = coords.client.coordinate();
        let distances = coords
            .peers
            .iter()
            .filter_map(|(n, c)| Some((n.clone(), cfg.distance(ours, c)?)))
            .collect();
        Some(TopologyView {
            config: cfg.clone(),
            settled: cfg.is_settled(ours),
            distances,
        })
    }

    /// Test hook: replaces our coordinate with `ours` (when given) and
    /// records `peers` as the latest coordinates heard from those nodes,
    /// as if probes had measured them. For tests of latency-aware choices
    /// that should not depend on Vivaldi converging. Does nothing when
    /// coordinates are off; an invalid `ours` is refused.
    #[doc(hidden)]
    pub fn inject_coordinates(
        &mut self,
        ours: Option<Coordinate>,
        peers: impl IntoIterator<Item = (String, Coordinate)>,
    ) -> Result<(), crate::coordinate::CoordinateError> {
        let Some(c) = self.coords.as_mut() else {
            return Ok(());
        };
        if let Some(ours) = ours {
            c.client.set_coordinate(ours)?;
        }
        c.peers.extend(peers);
        Ok(())
    }

    /// The delegate.
    pub fn delegate(&self) -> &D {
        &self.delegate
    }

    /// The delegate, mutably (to change the layer above's state between inputs).
    pub fn delegate_mut(&mut self) -> &mut D {
        &mut self.delegate
    }

    /// Number of memberlist broadcasts waiting to be gossiped.
    pub fn pending_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }

    /// True once [`Memberlist::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.leaving
    }

    // ---------------------------------------------------------------- outputs

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front();
        if t.is_none() {
            shrink_drained(&mut self.transmits);
        }
        t
    }

    /// The next TCP action for the driver, if any.
    pub fn poll_stream(&mut self) -> Option<StreamCommand> {
        let c = self.stream_cmds.pop_front();
        if c.is_none() {
            shrink_drained(&mut self.stream_cmds);
        }
        c
    }

    /// The next membership event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        if e.is_none() {
            shrink_drained(&mut self.events);
        }
        e
    }

    /// When [`Memberlist::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    // --------------------------------------------------------------- commands

    /// Starts a join: a push/pull with `Join=true` to each address. Each
    /// attempt ends with an [`Event::JoinResult`].
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), Error> {
        if self.leaving {
            return Err(Error::Left);
        }
        for &addr in addrs {
            self.start_push_pull(now, addr, true);
        }
        Ok(())
    }

    /// Replaces our metadata and announces it with a new incarnation.
    /// Refuses metadata over 512 bytes, leaving everything unchanged.
    pub fn set_meta(&mut self, _now: Instant, meta: Vec<u8>) -> Result<(), Error> {
        if meta.len() > META_MAX_SIZE {
            return Err(Error::MetaTooLarge {
                len: meta.len(),
                max: META_MAX_SIZE,
            });
        }
        if self.leaving {
            return Err(Error::Left);
        }
        self.config.meta = meta.clone();
        self.incarnation = self.incarnation.wrapping_add(1);
        let inc = self.incarnation;
        let name = self.name.clone();
        if let Some(me) = self.member_mut(&name) {
            me.meta = meta;
            me.incarnation = inc;
        }
        let alive = self.local_alive();
        self.broadcasts
            .queue(Some(name.as_bytes()), encode(&Message::Alive(alive)));
        Ok(())
    }

    /// Leaves gracefully: broadcasts our own `dead` (which peers record as
    /// left) and stops refuting. [`Event::LeaveComplete`] follows once the
    /// broadcast has used its retransmits, or at once if nobody else is alive.
    pub fn leave(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        let d = Dead {
            incarnation: self.incarnation,
            node: self.name.to_string(),
            from: self.name.to_string(),
        };
        let msg = encode(&Message::Dead(d));
        // swimnet addition: besides gossip (a few transmits that can miss a
        // node), tell up to LEAVE_DIRECT random live peers directly, so they
        // record "left" rather than finding out later by failed probes.
        let me = self.name.clone();
        let mut peers: Vec<(SocketAddr, u8)> = self
            .nodes
            .iter()
            .filter(|m| m.name != me && m.state == NodeState::Alive)
            .map(|m| (m.addr, m.pmax()))
            .collect();
        peers.shuffle(&mut self.rng);
        for (addr, pmax) in peers.into_iter().take(LEAVE_DIRECT) {
            self.stats.messages_out[5] += 1;
            self.raw_send(addr, Some(pmax), &msg);
        }
        let id = self.broadcasts.queue(Some(self.name.as_bytes()), msg);
        let name = self.name.clone();
        if let Some(me) = self.member_mut(&name) {
            me.state = NodeState::Left;
            me.state_change = now;
        }
        let anyone = self
            .nodes
            .iter()
            .any(|m| m.name != self.name && m.state == NodeState::Alive);
        if anyone {
            self.leave_broadcast = Some(id);
        } else {
            self.events.push_back(Event::LeaveComplete);
        }
    }

    /// Adds `nodes` to the member table as alive, as they are, without
    /// gossiping about them: for simulators that start from a converged
    /// cluster by handing every node the same table (the names' `Arc`s are
    /// shared, not copied). Ourselves and nodes already known are skipped.
    /// Emits [`Event::Join`] for each node added.
    pub fn preload_members(&mut self, now: Instant, nodes: &[Node]) {
        // Size the table once: doubling growth would leave up to half of a
        // large table's capacity unused.
        self.nodes.reserve_exact(nodes.len());
        self.index.reserve(&self.nodes, nodes.len());
        for n in nodes {
            if *n.name == *self.name || self.member_pos(&n.name).is_some() {
                continue;
            }
            self.insert_member(Member {
                name: n.name.clone(),
                addr: n.addr,
                mapped: false,
                meta: n.meta.clone(),
                vsn: n.vsn,
                incarnation: n.incarnation,
                state: NodeState::Alive,
                state_change: now,
            });
            let mut snap = n.clone();
            snap.state = NodeState::Alive;
            self.events.push_back(Event::Join(snap));
        }
    }

    /// Sends a user message to `to` in one datagram, with CRC when the
    /// receiver is a known node that understands it.
    pub fn send_user_packet(&mut self, to: SocketAddr, msg: &[u8]) {
        let mut buf = Vec::with_capacity(msg.len() + 1);
        buf.push(8);
        buf.extend_from_slice(msg);
        let pmax = self.pmax_for_addr(to);
        self.stats.messages_out[8] += 1;
        self.raw_send(to, pmax, &buf);
    }

    /// Sends a user message over TCP (memberlist's `SendReliable`).
    pub fn send_user_stream(&mut self, now: Instant, to: SocketAddr, msg: Vec<u8>) {
        let data = self.encode_stream(&StreamMessage::User(msg), false);
        let id = self.new_stream_id();
        self.stream_cmds.push_back(StreamCommand::Open {
            id,
            to,
            data,
            expect_reply: false,
            deadline: now + self.config.tcp_timeout,
        });
    }

    /// The keyring, if encryption is configured.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.config.keyring.as_ref()
    }

    /// Adds a key to the keyring (not as primary). Idempotent.
    pub fn install_key(&mut self, key: &[u8]) -> Result<(), Error> {
        let key = Key::new(key).map_err(|e| Error::Keyring(e.to_string()))?;
        let ring = self.config.keyring.as_mut().ok_or(Error::NoKeyring)?;
        ring.install(key);
        Ok(())
    }

    /// Makes an installed key the primary (used to encrypt from now on).
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), Error> {
        let ring = self.config.keyring.as_mut().ok_or(Error::NoKeyring)?;
        ring.use_key(key).map_err(|e| Error::Keyring(e.to_string()))
    }

    /// Removes a key; the primary key cannot be removed. Removing a key
    /// that is not installed changes nothing and succeeds, as in memberlist
    /// and `serf keys -remove`, so rotations can be retried safely.
    pub fn remove_key(&mut self, key: &[u8]) -> Result<(), Error> {
        let ring = self.config.keyring.as_mut().ok_or(Error::NoKeyring)?;
        if !ring.contains(key) {
            return Ok(());
        }
        ring.remove(key).map_err(|e| Error::Keyring(e.to_string()))
    }

    // ----------------------------------------------------------------- inputs

    /// Runs every timer that is due at `now`: probes, gossip, push/pull,
    /// suspicion timeouts, stream deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(kind) = self.timers.pop_due(now) {
            match kind {
                TimerKind::Probe => self.on_probe_tick(now),
                TimerKind::Gossip => {
                    self.catch_up(now);
                    self.gossip(now);
                    self.timers
                        .schedule(now + self.config.gossip_interval, TimerKind::Gossip);
                }
                TimerKind::PushPull => {
                    self.periodic_push_pull(now);
                    let next = push_pull_scale(self.config.push_pull_interval, self.nodes.len());
                    self.timers.schedule(now + next, TimerKind::PushPull);
                }
                TimerKind::Reconnect => {
                    self.reconnect(now);
                    self.timers
                        .schedule(now + self.config.reconnect_interval, TimerKind::Reconnect);
                }
                TimerKind::ProbeTimeout { seq } => self.on_probe_timeout(now, seq),
                TimerKind::ProbeDeadline { seq } => self.on_probe_deadline(now, seq),
                TimerKind::RelayExpire { seq } => self.on_relay_expire(seq),
                TimerKind::Suspicion { node, generation } => {
                    self.on_suspicion_timeout(now, &node, generation)
                }
                TimerKind::Stream { id } => self.on_stream_timer(now, id),
            }
        }
        self.check_leave_done();
    }

    /// Handles one message of a datagram; a user message gets what is left
    /// of the datagram's `budget` (see [`inbound`]).
    fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: Message,
        budget: &mut DecodeBudget,
    ) {
        match msg {
            Message::Ping(p) => self.on_ping(now, from, p),
            Message::IndirectPing(ind) => self.on_indirect_ping(now, from, ind),
            Message::AckResp(ack) => self.on_ack(now, ack),
            Message::NackResp(nack) => {
                if let Some(p) = &mut self.probe {
                    if p.seq == nack.seq_no && !p.done {
                        p.nacks += 1;
                    }
                }
            }
            Message::Alive(a) => {
                self.alive_node(now, a, false);
            }
            Message::Suspect(s) => self.suspect_node(now, s),
            Message::Dead(d) => self.dead_node(now, d),
            Message::User(buf) => self.delegate.notify_packet_msg(now, from, &buf, budget),
            Message::ErrResp(_) => {}
        }
    }

    /// The driver could not connect, write or read a stream, or its own
    /// deadline passed. The exchange is abandoned.
    pub fn handle_stream_error(&mut self, _now: Instant, id: StreamId, error: &str) {
        if let Some(ctx) = self.take_stream(id) {
            self.stats.streams_failed += 1;
            self.stream_finished(&ctx, Err(error.to_string()));
        }
    }

    /// An outbound connection was actively refused: the peer's host is up
    /// but nothing listens on its port (a TCP reset), so the member process
    /// at that address is not running. Call it instead of
    /// [`Self::handle_stream_error`] when the driver can tell (Linux:
    /// `ECONNREFUSED`). Besides failing the stream, a refused TCP ping ends
    /// the probe it belongs to as failed at once rather than at the end of
    /// the probe interval, and fails a check of a suspect at once.
    pub fn handle_stream_refused(&mut self, now: Instant, id: StreamId) {
        let Some(ctx) = self.streams.get(&id) else {
            return;
        };
        let ping_seq = match ctx.kind {
            StreamKind::OutPing { seq } => Some(seq),
            _ => None,
        };
        self.handle_stream_error(now, id, "connection refused");
        let Some(seq) = ping_seq else {
            return;
        };
        self.stats.pings_refused += 1;
        if self
            .probe
            .as_ref()
            .is_some_and(|p| p.seq == seq && !p.done && !p.tcp_ok)
        {
            if let Some(p) = &mut self.probe {
                p.refused = true;
            }
            self.finish_probe(now, false);
            return;
        }
        let node = self
            .suspicions
            .iter()
            .find(|(_, s)| s.check == Some(seq))
            .map(|(n, _)| n.clone());
        if let Some(node) = node {
            let deadline = match self.suspicions.get_mut(&node) {
                Some(susp) => {
                    susp.check_until = now;
                    susp.deadline
                }
                None => return,
            };
            self.arm_suspicion(now, &node, deadline);
        }
    }

    fn fail_stream(&mut self, id: StreamId, why: &str) {
        let Some(ctx) = self.take_stream(id) else {
            return;
        };
        self.stats.streams_failed += 1;
        if matches!(ctx.kind, StreamKind::In) {
            // Tell the peer, as memberlist does for read errors.
            let data = self.encode_stream(
                &StreamMessage::ErrResp(ErrResp {
                    error: why.to_string(),
                }),
                true,
            );
            self.stream_cmds
                .push_back(StreamCommand::Reply { id, data });
        } else {
            self.stream_finished(&ctx, Err(why.to_string()));
            self.stream_cmds.push_back(StreamCommand::Close { id });
        }
    }

    fn stream_finished(&mut self, ctx: &StreamCtx, result: Result<usize, String>) {
        if let StreamKind::OutPushPull { join: true, to } = ctx.kind {
            self.events
                .push_back(Event::JoinResult { addr: to, result });
        }
    }

    fn new_stream_id(&mut self) -> StreamId {
        self.next_stream += 1;
        StreamId(self.next_stream)
    }

    fn on_stream_message(
        &mut self,
        now: Instant,
        id: StreamId,
        ctx: StreamCtx,
        msg: StreamMessage,
    ) {
        match ctx.kind {
            StreamKind::In => {
                match msg {
                    StreamMessage::PushPull {
                        header,
                        states,
                        user_state,
                    } => {
                        // Reply with our state first, then merge theirs (memberlist's order).
                        let reply = self.local_push_pull(header.join, true);
                        self.stream_cmds
                            .push_back(StreamCommand::Reply { id, data: reply });
                        self.stats.push_pulls += 1;
                        let _ = self.merge_remote(
                            now,
                            ctx.peer,
                            None,
                            header.join,
                            &states,
                            &user_state,
                        );
                    }
                    StreamMessage::Ping(p) => {
                        if p.node.is_empty() || p.node == *self.name {
                            let data = self.encode_stream(
                                &StreamMessage::AckResp(AckResp {
                                    seq_no: p.seq_no,
                                    payload: Vec::new(),
                                }),
                                true,
                            );
                            self.stream_cmds
                                .push_back(StreamCommand::Reply { id, data });
                        } else {
                            self.stream_cmds.push_back(StreamCommand::Close { id });
                        }
                    }
                    StreamMessage::User(buf) => {
                        self.stream_cmds.push_back(StreamCommand::Close { id });
                        if !buf.is_empty() {
                            self.delegate.notify_msg(now, ctx.peer, &buf);
                        }
                    }
                    StreamMessage::AckResp(_) | StreamMessage::ErrResp(_) => {
                        self.stream_cmds.push_back(StreamCommand::Close { id });
                    }
                }
            }
            StreamKind::OutPushPull { join, to } => {
                self.stream_cmds.push_back(StreamCommand::Close { id });
                match msg {
                    StreamMessage::PushPull {
                        states, user_state, ..
                    } => {
                        self.stats.push_pulls += 1;
                        let result =
                            self.merge_remote(now, to, Some(to), join, &states, &user_state);
                        if join {
                            self.events.push_back(Event::JoinResult {
                                addr: to,
                                result: result.map(|_| states.len()),
                            });
                        }
                    }
                    StreamMessage::ErrResp(e) => {
                        self.stats.streams_failed += 1;
                        if join {
                            self.events.push_back(Event::JoinResult {
                                addr: to,
                                result: Err(format!("remote error: {}", e.error)),
                            });
                        }
                    }
                    _ => {
                        self.stats.streams_failed += 1;
                        if join {
                            self.events.push_back(Event::JoinResult {
                                addr: to,
                                result: Err("unexpected reply to push/pull".into()),
                            });
                        }
                    }
                }
            }
            StreamKind::OutPing { seq } => {
                self.stream_cmds.push_back(StreamCommand::Close { id });
                if let StreamMessage::AckResp(ack) = msg {
                    if let Some(p) = &mut self.probe {
                        if p.seq == seq && ack.seq_no == seq && !p.done {
                            p.tcp_ok = true;
                        }
                    }
                    if ack.seq_no == seq {
                        self.on_check_ack(now, seq);
                    }
                }
            }
        }
    }

    // -------------------------------------------------------------- sending

    fn encryption(&mut self) -> Option<(Key, [u8; 12], EncryptionVersion)> {
        if !self.config.encryption_enabled() {
            return None;
        }
        let key = self.config.keyring.as_ref()?.primary().clone();
        let mut nonce = [0u8; 12];
        self.rng.fill_bytes(&mut nonce);
        let vsn = if self.config.protocol_version < 2 {
            EncryptionVersion::V0Padded
        } else {
            EncryptionVersion::V1
        };
        Some((key, nonce, vsn))
    }

    fn encryption_overhead(&self) -> usize {
        if !self.config.encryption_enabled() {
            return 0;
        }
        if self.config.protocol_version < 2 {
            45
        } else {
            29
        }
    }

    fn label_overhead(&self) -> usize {
        if self.config.label.is_empty() {
            0
        } else {
            2 + self.config.label.len()
        }
    }

    fn raw_send(&mut self, dst: SocketAddr, pmax: Option<u8>, inner: &[u8]) {
        let enc = self.encryption();
        let opts = SealOptions {
            crc: pmax.is_some_and(|p| p >= 5),
            compress: self.config.enable_compression,
            encrypt: enc.as_ref().map(|(k, n, v)| (k, *n, *v)),
            label: &self.config.label,
        };
        let mut payload = Vec::with_capacity(inner.len() + 64);
        packet::seal_packet(inner, &opts, &mut payload);
        self.stats.packets_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        self.transmits.push_back(Transmit { dst, payload });
    }

    fn pmax_for_addr(&self, addr: SocketAddr) -> Option<u8> {
        self.nodes.iter().find(|m| m.addr == addr).map(Member::pmax)
    }

    fn pmax_for_name(&self, name: &str) -> Option<u8> {
        self.member(name).map(Member::pmax)
    }

    /// Sends one message, piggy-backing queued broadcasts that fit.
    fn send_msg(&mut self, dst: SocketAddr, node: Option<&str>, msg: &Message) {
        self.stats.messages_out[type_index(msg)] += 1;
        let buf = encode(msg);
        let avail = self.config.udp_buffer_size.saturating_sub(
            buf.len()
                + COMPOUND_HEADER_OVERHEAD
                + self.label_overhead()
                + self.encryption_overhead(),
        );
        let extra = self.get_broadcasts(COMPOUND_OVERHEAD, avail);
        let pmax = node.and_then(|n| self.pmax_for_name(n));
        if extra.is_empty() {
            self.raw_send(dst, pmax, &buf);
        } else {
            let mut parts: Vec<&[u8]> = Vec::with_capacity(extra.len() + 1);
            parts.push(&buf);
            parts.extend(extra.iter().map(Vec::as_slice));
            let mut compound = Vec::with_capacity(self.config.udp_buffer_size);
            encode_compound(&parts, &mut compound);
            self.raw_send(dst, pmax, &compound);
        }
    }

    fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let n = self.nodes.len();
        let mut out = self.broadcasts.get_broadcasts(overhead, limit, n);
        for m in &out {
            if let Some(&t) = m.first() {
                if let Some(c) = self.stats.messages_out.get_mut(t as usize) {
                    *c += 1;
                }
            }
        }
        let used: usize = out.iter().map(|m| m.len() + overhead).sum();
        let avail = limit.saturating_sub(used);
        if avail > overhead + USER_MSG_OVERHEAD {
            for msg in self
                .delegate
                .get_broadcasts(overhead + USER_MSG_OVERHEAD, avail, n)
                .into_iter()
                .take(MAX_PIGGYBACK.saturating_sub(out.len()))
            {
                let mut framed = Vec::with_capacity(msg.len() + 1);
                framed.push(8);
                framed.extend_from_slice(&msg);
                self.stats.messages_out[8] += 1;
                out.push(framed);
            }
        }
        out
    }

    fn broadcast(&mut self, node: &str, msg: &Message) {
        self.broadcasts.queue(Some(node.as_bytes()), encode(msg));
        self.stats.broadcasts_dropped = self.broadcasts.dropped();
    }

    /// Encodes a stream message: `reply` for the responder's side (no label header).
    fn encode_stream(&mut self, msg: &StreamMessage, reply: bool) -> Vec<u8> {
        let enc = self.encryption();
        let opts = StreamEncodeOptions {
            compress: self.config.enable_compression,
            encrypt: enc.as_ref().map(|(k, n, v)| (k, *n, *v)),
            label: &self.config.label,
        };
        let mut out = Vec::new();
        if reply {
            stream::encode_stream_reply(msg, &opts, &mut out);
        } else {
            stream::encode_stream_message(msg, &opts, &mut out);
        }
        out
    }

    fn self_source(&self) -> (Vec<u8>, u16, String) {
        (
            ip_bytes(&self.config.advertise),
            self.config.advertise.port(),
            self.name.to_string(),
        )
    }

    fn next_seq(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }

    // ---------------------------------------------------------------- probing

    fn on_probe_tick(&mut self, now: Instant) {
        if self.probe.is_some() {
            return; // rescheduled when the running probe ends
        }
        if now < self.next_probe_at {
            return; // stale entry
        }
        if let Some(t) = self.near_probe_target(now) {
            self.probe_node(now, t);
            return;
        }
        let mut checked = 0;
        let target = loop {
            if checked >= self.nodes.len() {
                break None;
            }
            if self.probe_index >= self.nodes.len() {
                self.reset_nodes(now);
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let m = &self.nodes[self.probe_index];
            self.probe_index += 1;
            if m.name == self.name || m.state.is_dead_or_left() {
                checked += 1;
                continue;
            }
            break Some(m.name.clone());
        };
        match target {
            Some(t) => self.probe_node(now, t),
            None => {
                self.next_probe_at = now + self.config.probe_interval;
                self.timers.schedule(self.next_probe_at, TimerKind::Probe);
            }
        }
    }

    /// With latency-aware selection on, in a share
    /// [`topology::TopologyConfig::probe_near_fraction`] of probe rounds: the
    /// next alive or suspect member of the near cluster in a shuffled walk
    /// through it (see [`NearRotation`]), to probe instead of the next one
    /// in the round-robin order. `None` (the round-robin probe)
    /// otherwise, while coordinates are unsettled, or where distances show
    /// no near cluster (see [`topology::near_cluster`]).
    ///
    /// Every member of a region is in the near cluster of about every other
    /// member, so each is still probed about once per probe interval in
    /// all: a share of the probes from its region, the rest from the
    /// round-robin of everyone.
    fn near_probe_target(&mut self, now: Instant) -> Option<Arc<str>> {
        let share = self.config.topology.probe_near_fraction;
        if share <= 0.0 || !self.topology_ready(1) {
            return None;
        }
        if self.rng.gen::<f64>() >= share {
            return None;
        }
        let me = self.name.clone();
        let pool =
            self.near_cluster_members(now, |_, m| m.name != me && !m.state.is_dead_or_left());
        let nodes = &self.nodes;
        let &i = self
            .probe_walk
            .take_from(
                &mut self.rng,
                1,
                &pool,
                |i| &nodes[i].name,
                |i| nodes[i].name.clone(),
            )
            .first()?;
        self.stats.topology_choices += 1;
        Some(self.nodes[i].name.clone())
    }

    /// Drops dead and left nodes whose state changed more than
    /// `gossip_to_the_dead_time` ago, then shuffles the probe order.
    fn reset_nodes(&mut self, now: Instant) {
        let ttl = self.config.gossip_to_the_dead_time;
        let me = self.name.clone();
        self.nodes.retain(|m| {
            m.name == me
                || !m.state.is_dead_or_left()
                || now.saturating_duration_since(m.state_change) <= ttl
        });
        self.nodes.shuffle(&mut self.rng);
        self.rebuild_index();
        if let Some(c) = &mut self.coords {
            let (index, nodes) = (&self.index, &self.nodes);
            c.retain(|n| index.contains(nodes, n));
        }
    }

    fn probe_node(&mut self, now: Instant, target: Arc<str>) {
        let interval = self.awareness.scale(self.config.probe_interval);
        let seq = self.next_seq();
        let (source_addr, source_port, source_node) = self.self_source();
        let Some(m) = self.member(&target) else {
            return;
        };
        let (addr, state, inc, pmax) = (m.addr, m.state, m.incarnation, m.pmax());
        let ping = Ping {
            seq_no: seq,
            node: target.to_string(),
            source_addr,
            source_port,
            source_node,
        };
        if state == NodeState::Alive {
            self.send_msg(addr, Some(&target), &Message::Ping(ping));
        } else {
            // Lifeguard's buddy system: tell the suspect directly so it can refute.
            let s = Suspect {
                incarnation: inc,
                node: target.to_string(),
                from: self.name.to_string(),
            };
            let a = encode(&Message::Ping(ping));
            let b = encode(&Message::Suspect(s));
            self.stats.messages_out[0] += 1;
            self.stats.messages_out[3] += 1;
            let mut compound = Vec::with_capacity(a.len() + b.len() + 6);
            encode_compound(&[&a, &b], &mut compound);
            self.raw_send(addr, Some(pmax), &compound);
        }
        self.probe = Some(Probe {
            target,
            incarnation: inc,
            seq,
            start: now,
            interval,
            indirect_sent: false,
            expected_nacks: 0,
            nacks: 0,
            tcp_ok: false,
            refused: false,
            done: false,
        });
        self.timers.schedule(
            now + self.config.probe_timeout,
            TimerKind::ProbeTimeout { seq },
        );
        self.timers
            .schedule(now + interval, TimerKind::ProbeDeadline { seq });
    }

    fn on_probe_timeout(&mut self, now: Instant, seq: u32) {
        let Some(p) = &self.probe else { return };
        if p.seq != seq || p.done || p.indirect_sent {
            return;
        }
        let target = p.target.clone();
        let start = p.start;
        let interval = p.interval;
        let Some(t) = self.member(&target) else {
            return;
        };
        let (t_addr_bytes, t_port, t_addr, t_pmax) =
            (t.addr_bytes(), t.addr.port(), t.addr, t.pmax());
        // Ask up to k random alive peers to probe the target for us (near
        // ones first when topology-aware selection is on).
        let expected = self.send_indirect_pings(&target, t_addr_bytes, t_port, seq, true);
        let (source_addr, source_port, source_node) = self.self_source();
        // TCP fallback, in parallel, to peers that understand it.
        if !self.config.disable_tcp_pings && t_pmax >= 3 {
            let ping = Ping {
                seq_no: seq,
                node: target.to_string(),
                source_addr,
                source_port,
                source_node,
            };
            self.open_tcp_ping(t_addr, ping, start + interval);
        }
        if let Some(p) = &mut self.probe {
            p.indirect_sent = true;
            p.expected_nacks = expected;
        }
        let _ = now;
    }

    fn on_ack(&mut self, now: Instant, ack: AckResp) {
        if let Some(p) = &mut self.probe {
            if p.seq == ack.seq_no && !p.done {
                let direct = !p.indirect_sent;
                let rtt = now.saturating_duration_since(p.start);
                let target = p.target.clone();
                self.finish_probe(now, true);
                if direct {
                    if let Some(c) = &mut self.coords {
                        if !c.on_ping_complete(&target, rtt, &ack.payload) {
                            self.stats.coordinates_rejected += 1;
                        }
                    }
                    if let Some(node) = self.member(&target).map(Member::snapshot) {
                        self.delegate.notify_ping_complete(&node, rtt, &ack.payload);
                    }
                }
                return;
            }
        }
        if self.on_check_ack(now, ack.seq_no) {
            return;
        }
        if let Some(relay) = self.relays.remove(&ack.seq_no) {
            let fwd = AckResp {
                seq_no: relay.prober_seq,
                payload: Vec::new(),
            };
            let name = relay.prober_name.clone();
            self.send_msg(relay.prober, Some(&name), &Message::AckResp(fwd));
        }
    }

    fn on_probe_deadline(&mut self, now: Instant, seq: u32) {
        let Some(p) = &self.probe else { return };
        if p.seq != seq || p.done {
            return;
        }
        if p.tcp_ok {
            self.stats.probes_tcp_rescued += 1;
            self.finish_probe(now, true);
            return;
        }
        self.finish_probe(now, false);
    }

    fn finish_probe(&mut self, now: Instant, ok: bool) {
        let Some(mut p) = self.probe.take() else {
            return;
        };
        p.done = true;
        if ok {
            self.stats.probes_ok += 1;
            self.awareness.apply_delta(-1);
        } else {
            self.stats.probes_failed += 1;
            let delta = if p.refused {
                // A reset from the target's host proves our own network
                // works: no local-health penalty.
                0
            } else if p.expected_nacks > 0 {
                (p.expected_nacks - p.nacks).max(0)
            } else {
                1
            };
            self.awareness.apply_delta(delta);
            if self.member(&p.target).is_some() {
                let s = Suspect {
                    incarnation: p.incarnation,
                    node: p.target.to_string(),
                    from: self.name.to_string(),
                };
                self.suspect_node(now, s);
            }
        }
        // The next probe starts one interval after this one started, or now
        // if this one ran longer (memberlist's ticker behaviour).
        self.next_probe_at = (p.start + self.config.probe_interval).max(now);
        self.timers.schedule(self.next_probe_at, TimerKind::Probe);
    }

    fn on_ping(&mut self, now: Instant, from: SocketAddr, p: Ping) {
        if !p.node.is_empty() && p.node != *self.name {
            return;
        }
        let dst = if !p.source_addr.is_empty() && p.source_port > 0 {
            socket_addr(&p.source_addr, p.source_port).unwrap_or(from)
        } else {
            from
        };
        if !self.reply_allowed(now, from, &[(&p.source_node, dst)]) {
            return;
        }
        let mut payload = self.delegate.ack_payload();
        if let (true, Some(c)) = (payload.is_empty(), &self.coords) {
            payload = c.ack_payload();
        }
        let ack = AckResp {
            seq_no: p.seq_no,
            payload,
        };
        let node = (!p.source_node.is_empty()).then_some(p.source_node);
        self.send_msg(dst, node.as_deref(), &Message::AckResp(ack));
    }

    fn on_indirect_ping(&mut self, now: Instant, from: SocketAddr, ind: IndirectPing) {
        let port = if self.config.protocol_version < 2 || ind.port == 0 {
            self.config.advertise.port()
        } else {
            ind.port
        };
        let Some(target) = socket_addr(&ind.target, port) else {
            self.stats.messages_malformed += 1;
            return;
        };
        let prober = if !ind.source_addr.is_empty() && ind.source_port > 0 {
            socket_addr(&ind.source_addr, ind.source_port).unwrap_or(from)
        } else {
            from
        };
        let dsts = [
            (ind.node.as_str(), target),
            (ind.source_node.as_str(), prober),
        ];
        if !self.relay_room() || !self.reply_allowed(now, from, &dsts) {
            return;
        }
        let local_seq = self.next_seq();
        let (source_addr, source_port, source_node) = self.self_source();
        self.relays.insert(
            local_seq,
            Relay {
                prober_seq: ind.seq_no,
                prober,
                prober_name: ind.source_node,
                nack: ind.nack,
            },
        );
        self.timers.schedule(
            now + self.config.probe_timeout,
            TimerKind::RelayExpire { seq: local_seq },
        );
        let ping = Ping {
            seq_no: local_seq,
            node: ind.node.clone(),
            source_addr,
            source_port,
            source_node,
        };
        self.send_msg(target, Some(&ind.node), &Message::Ping(ping));
    }

    fn on_relay_expire(&mut self, seq: u32) {
        if let Some(relay) = self.relays.remove(&seq) {
            if relay.nack {
                let name = relay.prober_name.clone();
                self.send_msg(
                    relay.prober,
                    Some(&name),
                    &Message::NackResp(NackResp {
                        seq_no: relay.prober_seq,
                    }),
                );
            }
        }
    }

    // ---------------------------------------------------------------- gossip

    fn gossip_targets(&mut self, now: Instant, k: usize) -> Vec<usize> {
        let ttl = self.config.gossip_to_the_dead_time;
        let me = self.member_pos(&self.name);
        let eligible = |i: usize, m: &Member| {
            Some(i) != me
                && match m.state {
                    NodeState::Alive | NodeState::Suspect => true,
                    NodeState::Dead => now.saturating_duration_since(m.state_change) <= ttl,
                    NodeState::Left => false,
                }
        };
        let n = self.nodes.len();
        // In a large table, draw random members until k eligible distinct
        // ones are found (a uniform sample, like the scan below, without
        // touching every member each gossip round); fall back to the scan
        // when too many draws miss. With topology-aware selection the near
        // picks come from the cached near pool, the rest are drawn the same
        // way.
        if n > 64 && k > 0 {
            let mut out = Vec::with_capacity(k);
            if self.topology_ready(k) {
                out = self.near_picks(now, k, eligible);
            }
            let mut tries = 0;
            while out.len() < k && tries < 4 * k + 16 {
                tries += 1;
                let i = self.rng.gen_range(0..n);
                if !out.contains(&i) && eligible(i, &self.nodes[i]) {
                    out.push(i);
                }
            }
            if out.len() == k {
                return out;
            }
        }
        let candidates: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, m)| eligible(*i, m))
            .map(|(i, _)| i)
            .collect();
        let k = k.min(candidates.len());
        if let Some(near) = self.topology_select(&candidates, k, None) {
            return near;
        }
        candidates
            .choose_multiple(&mut self.rng, k)
            .copied()
            .collect()
    }

    /// The near share of a latency-aware choice of `k` gossip targets:
    /// `k * near_fraction` of them (at most `k - 1` when `k >= 2`, the
    /// fractional part drawn at random), the next members of the gossip
    /// walk through the cached near cluster that pass `eligible`. The caller draws the rest
    /// uniformly. Empty when the cluster has no eligible member.
    fn near_picks(
        &mut self,
        now: Instant,
        k: usize,
        eligible: impl Fn(usize, &Member) -> bool,
    ) -> Vec<usize> {
        let pool = self.near_cluster_members(now, eligible);
        if pool.is_empty() {
            return Vec::new();
        }
        let near = topology::near_slots(&self.config.topology, &mut self.rng, k).min(pool.len());
        self.stats.topology_choices += 1;
        let nodes = &self.nodes;
        self.gossip_walk.take_from(
            &mut self.rng,
            near,
            &pool,
            |i| &nodes[i].name,
            |i| nodes[i].name.clone(),
        )
    }

    /// Positions in `self.nodes` of the members of the cached near cluster
    /// (recomputed first when stale) that pass `eligible`. Empty when there
    /// is no cluster.
    fn near_cluster_members(
        &mut self,
        now: Instant,
        eligible: impl Fn(usize, &Member) -> bool,
    ) -> Vec<usize> {
        self.refresh_near_cluster(now);
        let Some((_, names)) = self.near_cluster.as_ref() else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| self.member_pos(name))
            .filter(|&i| eligible(i, &self.nodes[i]))
            .collect()
    }

    /// Recomputes the near cluster (the live members within a few times
    /// the distance of our nearest, see [`topology::near_cluster`]) when it
    /// is older than [`NEAR_CLUSTER_REFRESH`]. Costs one distance per member with a
    /// usable coordinate, so gossip and probe rounds in between cost
    /// O(cluster), not O(members).
    fn refresh_near_cluster(&mut self, now: Instant) {
        if let Some((at, _)) = &self.near_cluster {
            if now.saturating_duration_since(*at) < NEAR_CLUSTER_REFRESH {
                return;
            }
        }
        let cfg = &self.config.topology;
        let Some(coords) = self.coords.as_ref() else {
            self.near_cluster = None;
            return;
        };
        let ours = coords.client.coordinate();
        let mut known: Vec<(f64, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.name != self.name && !m.state.is_dead_or_left())
            .filter_map(|(i, m)| {
                let theirs = coords.peers.get(&*m.name)?;
                cfg.distance(ours, theirs).map(|d| (d, i))
            })
            .collect();
        let min = topology::min_cluster_size(self.config.gossip_nodes, known.len());
        topology::near_cluster(&mut known, min);
        let names = known
            .into_iter()
            .map(|(_, i)| self.nodes[i].name.clone())
            .collect();
        self.near_cluster = Some((now, names));
    }

    /// Cheap test, without looking at each member, of whether a biased
    /// choice of `k` peers can be made: selection is on, our coordinate is
    /// settled, and we hold coordinates for at least `k` peers and for
    /// [`topology::TopologyConfig::min_known_fraction`] of the member table (an
    /// upper bound on how many candidates have one). When false,
    /// [`Memberlist::topology_select`] would return `None` too, so the
    /// callers skip building candidate lists (O(N) per gossip round and per
    /// probe, which adds up in a simulator of thousands of nodes).
    fn topology_ready(&self, k: usize) -> bool {
        let cfg = &self.config.topology;
        let Some(coords) = self.coords.as_ref().filter(|_| cfg.enabled) else {
            return false;
        };
        let known = coords.peers.len();
        known >= k
            && known as f64 >= cfg.min_known_fraction * self.nodes.len().saturating_sub(1) as f64
            && cfg.is_settled(coords.client.coordinate())
    }

    /// Latency-aware choice of `k` of `candidates` (indices into
    /// `self.nodes`) when [`Config::topology`] is on and coordinates are
    /// settled; `None` tells the caller to make its uniform choice (and
    /// then no random number was drawn here). With `via`, a helper's
    /// distance is the round trip us -> helper -> `via` when `via`'s
    /// coordinate is known (for indirect probes of `via`), else us -> helper.
    fn topology_select(
        &mut self,
        candidates: &[usize],
        k: usize,
        via: Option<&str>,
    ) -> Option<Vec<usize>> {
        let cfg = &self.config.topology;
        if !cfg.enabled {
            return None;
        }
        let coords = self.coords.as_ref()?;
        let ours = coords.client.coordinate();
        let settled = cfg.is_settled(ours);
        let via = via
            .and_then(|v| coords.peers.get(v))
            .filter(|c| topology::peer_usable(c));
        let nodes = &self.nodes;
        let picked = topology::select(cfg, &mut self.rng, candidates.len(), k, settled, |i| {
            let theirs = coords.peers.get(&*nodes[candidates[i]].name)?;
            let d = cfg.distance(ours, theirs)?;
            match via {
                Some(t) => Some(d + cfg.between(theirs, t)?),
                None => Some(d),
            }
        })?;
        self.stats.topology_choices += 1;
        Some(picked.into_iter().map(|i| candidates[i]).collect())
    }

    fn gossip(&mut self, now: Instant) {
        let avail = self.config.udp_buffer_size.saturating_sub(
            COMPOUND_HEADER_OVERHEAD + self.label_overhead() + self.encryption_overhead(),
        );
        // A latency-aware choice looks at every candidate: with nothing to
        // send (most rounds of a quiet cluster), skip it. With the choice
        // off, targets are drawn first, as memberlist does.
        let mut first = None;
        if self.nodes.len() > 1 && self.topology_ready(self.config.gossip_nodes) {
            let msgs = self.get_broadcasts(COMPOUND_OVERHEAD, avail);
            if msgs.is_empty() {
                return;
            }
            first = Some(msgs);
        }
        let targets = self.gossip_targets(now, self.config.gossip_nodes);
        for i in targets {
            let msgs = match first.take() {
                Some(m) => m,
                None => self.get_broadcasts(COMPOUND_OVERHEAD, avail),
            };
            if msgs.is_empty() {
                return;
            }
            let (addr, pmax) = (self.nodes[i].addr, self.nodes[i].pmax());
            if msgs.len() == 1 {
                self.raw_send(addr, Some(pmax), &msgs[0]);
            } else {
                let parts: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                let mut compound = Vec::with_capacity(self.config.udp_buffer_size);
                encode_compound(&parts, &mut compound);
                self.raw_send(addr, Some(pmax), &compound);
            }
        }
    }

    /// Starts a catch-up push/pull when the gossip backlog is deep (see
    /// [`Config::catch_up_backlog`]). Called each gossip round, before gossiping.
    fn catch_up(&mut self, now: Instant) {
        let threshold = self.config.catch_up_backlog;
        if threshold == 0 || self.leaving || now < self.next_catch_up {
            return;
        }
        if !self.broadcasts.untransmitted_more_than(threshold) {
            return;
        }
        self.next_catch_up = now + self.config.catch_up_interval;
        self.stats.catch_ups += 1;
        self.periodic_push_pull(now);
    }

    fn check_leave_done(&mut self) {
        if let Some(id) = self.leave_broadcast {
            if !self.broadcasts.contains(id) {
                self.leave_broadcast = None;
                self.events.push_back(Event::LeaveComplete);
            }
        }
    }

    // ------------------------------------------------------------- push/pull

    fn periodic_push_pull(&mut self, now: Instant) {
        let me = self.name.clone();
        let candidates: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.name != me && m.state == NodeState::Alive)
            .map(|(i, _)| i)
            .collect();
        let partner = match self.topology_select(&candidates, 1, None) {
            Some(near) => near.first().copied(),
            None => candidates.choose(&mut self.rng).copied(),
        };
        if let Some(i) = partner {
            let addr = self.nodes[i].addr;
            self.start_push_pull(now, addr, false);
        }
    }

    /// swimnet addition (Serf's reconnect): push/pull with a node we believe
    /// dead, so that both sides learn of each other again after a partition.
    fn reconnect(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        let timeout = self.config.reconnect_timeout;
        self.tombstones
            .retain(|_, t| now.saturating_duration_since(t.since) <= timeout);
        let mut failed: Vec<(&Arc<str>, SocketAddr)> = self
            .tombstones
            .iter()
            .filter(|(_, t)| !t.left)
            .map(|(n, t)| (n, t.addr))
            .collect();
        if failed.is_empty() {
            return;
        }
        let alive = self.num_alive().max(1);
        // Like Serf: the chance to try scales with failed / alive, so the
        // cluster as a whole makes about one attempt per interval per failed node.
        let prob = failed.len() as f64 / alive as f64;
        if self.rng.gen::<f64>() > prob {
            return;
        }
        failed.sort();
        let Some(&(_, addr)) = failed.choose(&mut self.rng) else {
            return;
        };
        self.start_push_pull(now, addr, false);
    }

    fn start_push_pull(&mut self, now: Instant, to: SocketAddr, join: bool) {
        let data = self.local_push_pull(join, false);
        let id = self.new_stream_id();
        let deadline = now + self.config.tcp_timeout;
        self.streams.insert(
            id,
            StreamCtx::outbound(StreamKind::OutPushPull { join, to }, to, deadline),
        );
        self.timers.schedule(deadline, TimerKind::Stream { id });
        self.stream_cmds.push_back(StreamCommand::Open {
            id,
            to,
            data,
            expect_reply: true,
            deadline,
        });
    }

    fn local_push_pull(&mut self, join: bool, reply: bool) -> Vec<u8> {
        let mut states: Vec<PushNodeState> = self
            .nodes
            .iter()
            .map(|m| PushNodeState {
                name: m.name.to_string(),
                addr: m.addr_bytes(),
                port: m.addr.port(),
                meta: m.meta.clone(),
                incarnation: m.incarnation,
                state: m.state as i64,
                vsn: m.vsn.to_vec(),
            })
            .collect();
        // Nodes reaped from the table still travel as dead or left, so that a
        // node we gave up on learns it and refutes with a higher incarnation.
        let mut gone: Vec<(&Arc<str>, &Tombstone)> = self
            .tombstones
            .iter()
            .filter(|(n, _)| !self.index.contains(&self.nodes, n))
            .collect();
        gone.sort_by(|a, b| b.1.since.cmp(&a.1.since).then_with(|| a.0.cmp(b.0)));
        states.extend(
            gone.into_iter()
                .take(MAX_TOMBSTONES_PUSHED)
                .map(|(n, t)| PushNodeState {
                    name: n.to_string(),
                    addr: t.addr_bytes.clone(),
                    port: t.addr.port(),
                    meta: Vec::new(),
                    incarnation: t.incarnation,
                    state: if t.left {
                        NodeState::Left as i64
                    } else {
                        NodeState::Dead as i64
                    },
                    vsn: t.vsn.to_vec(),
                }),
        );
        let user_state = self.delegate.local_state(join);
        let msg = StreamMessage::PushPull {
            header: PushPullHeader {
                nodes: states.len() as u32,
                user_state_len: user_state.len() as u32,
                join,
            },
            states,
            user_state,
        };
        self.encode_stream(&msg, reply)
    }

    /// Merges a peer's push/pull. `direct` is the peer's gossip address when
    /// we dialed it: if it told us we were suspect or dead, our refutation is
    /// also sent straight to it so it learns we are alive at once.
    fn merge_remote(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        direct: Option<SocketAddr>,
        join: bool,
        states: &[PushNodeState],
        user_state: &[u8],
    ) -> Result<(), String> {
        if let Err(reason) = self.verify_protocol(states) {
            self.events.push_back(Event::MergeRefused {
                peer,
                reason: reason.clone(),
            });
            return Err(reason);
        }
        if join {
            let peers: Vec<Node> = states
                .iter()
                .filter_map(|s| {
                    Some(Node {
                        name: Arc::from(s.name.as_str()),
                        addr: socket_addr(&s.addr, s.port)?,
                        meta: s.meta.clone(),
                        vsn: vsn6(&s.vsn)?,
                        incarnation: s.incarnation,
                        state: NodeState::from_code(s.state)?,
                    })
                })
                .collect();
            if let Err(reason) = self.delegate.notify_merge(&peers) {
                self.events.push_back(Event::MergeRefused {
                    peer,
                    reason: reason.clone(),
                });
                return Err(reason);
            }
        }
        let inc_before = self.incarnation;
        for r in states {
            let port = if r.port == 0 || self.config.protocol_version < 2 {
                self.config.advertise.port()
            } else {
                r.port
            };
            match NodeState::from_code(r.state) {
                Some(NodeState::Alive) => {
                    let a = Alive {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        addr: r.addr.clone(),
                        port,
                        meta: r.meta.clone(),
                        vsn: r.vsn.clone(),
                    };
                    self.alive_node(now, a, false);
                }
                Some(NodeState::Left) => self.dead_node(
                    now,
                    Dead {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: r.name.clone(),
                    },
                ),
                Some(NodeState::Dead) | Some(NodeState::Suspect) => self.suspect_node(
                    now,
                    Suspect {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: self.name.to_string(),
                    },
                ),
                None => {}
            }
        }
        if let Some(addr) = direct {
            if self.incarnation != inc_before && !self.leaving {
                let pmax = self.pmax_for_addr(addr);
                let buf = encode(&Message::Alive(self.local_alive()));
                self.stats.messages_out[4] += 1;
                self.raw_send(addr, pmax, &buf);
            }
        }
        if !user_state.is_empty() {
            self.delegate.merge_remote_state(now, user_state, join);
        }
        Ok(())
    }

    // ------------------------------------------------------ state transitions

    fn refute(&mut self, accused_inc: u32) {
        // Never wrapped: a refutation at 0 would be ignored by everyone.
        let Some(inc) = validate::refutation_incarnation(self.incarnation, accused_inc) else {
            self.stats.refutations_impossible += 1;
            return;
        };
        self.incarnation = inc;
        let name = self.name.clone();
        if let Some(me) = self.member_mut(&name) {
            me.incarnation = inc;
        }
        self.awareness.apply_delta(1);
        self.stats.refutations += 1;
        let a = self.local_alive();
        self.broadcast(&name, &Message::Alive(a));
        self.events.push_back(Event::Refuted { incarnation: inc });
    }

    /// Applies an alive message (memberlist's `aliveNode`). Returns whether
    /// it changed anything.
    fn alive_node(&mut self, now: Instant, a: Alive, bootstrap: bool) -> bool {
        let is_local = a.node == *self.name;
        if self.leaving && is_local {
            return false;
        }
        // Same limits as a local node's name and metadata, and a real
        // version field: an empty one used to enter as versions 0 and fail
        // every later join's version check.
        let Ok(vsn) = validate::check_alive(&a) else {
            self.stats.alives_invalid += 1;
            return false;
        };
        let Some(addr) = socket_addr(&a.addr, a.port) else {
            self.stats.messages_malformed += 1;
            return false;
        };
        if !self.incarnation_claim_plausible(&a.node, a.incarnation) {
            return false;
        }
        if !is_local {
            let candidate = Node {
                name: Arc::from(a.node.as_str()),
                addr,
                meta: a.meta.clone(),
                vsn,
                incarnation: a.incarnation,
                state: NodeState::Alive,
            };
            if self.delegate.notify_alive(&candidate).is_err() {
                return false;
            }
        }
        let mut updates_node = false;
        let is_new = self.member(&a.node).is_none();
        if is_new && !is_local {
            if let Some(t) = self.tombstones.get(a.node.as_str()) {
                if a.incarnation <= t.incarnation {
                    return false; // stale: it died at this incarnation, it must refute
                }
            }
        }
        if is_new && !self.admit_new_member(&a.node) {
            return false;
        }
        if is_new {
            let m = Member {
                name: Arc::from(a.node.as_str()),
                addr,
                mapped: is_mapped(&a.addr),
                meta: a.meta.clone(),
                vsn,
                incarnation: 0,
                state: NodeState::Dead,
                state_change: now,
            };
            self.insert_member(m);
        } else {
            let m = self.member(&a.node).expect("present");
            if !m.announced_as(&a.addr) || m.addr.port() != a.port {
                let reclaim = !self.config.dead_node_reclaim_time.is_zero()
                    && now.saturating_duration_since(m.state_change)
                        > self.config.dead_node_reclaim_time;
                if m.state == NodeState::Left || (m.state == NodeState::Dead && reclaim) {
                    updates_node = true;
                } else {
                    return false; // conflicting address for a live node
                }
            }
        }
        let m = self.member(&a.node).expect("present");
        if a.incarnation <= m.incarnation && !is_local && !updates_node && !is_new {
            return false;
        }
        if a.incarnation < m.incarnation && is_local {
            return false;
        }
        let name = m.name.clone();
        let old_state = m.state;
        let old_meta_differs = m.meta != a.meta;
        self.suspicions.remove(&name);
        if !bootstrap && is_local {
            let me = self.member(&name).expect("present");
            if a.incarnation == me.incarnation && a.meta == me.meta && a.vsn == me.vsn {
                return false;
            }
            self.refute(a.incarnation);
            return true;
        }
        let msg = Message::Alive(a);
        self.broadcast(&name, &msg);
        let Message::Alive(a) = msg else {
            unreachable!()
        };
        let m = self.member_mut(&name).expect("present");
        m.vsn = vsn;
        m.incarnation = a.incarnation;
        m.meta = a.meta;
        m.mapped = is_mapped(&a.addr);
        m.addr = addr;
        if m.state != NodeState::Alive {
            m.state = NodeState::Alive;
            m.state_change = now;
        }
        let snap = m.snapshot();
        self.tombstones.remove(&name);
        if old_state.is_dead_or_left() {
            self.events.push_back(Event::Join(snap));
        } else if old_meta_differs {
            self.events.push_back(Event::Update(snap));
        }
        true
    }

    /// swimnet addition: someone accuses us (suspect or dead). Besides the
    /// refutation gossip, send our current alive straight to the accuser,
    /// once per accuser and incarnation. The accuser holds the earliest
    /// suspicion timer, and a gossip broadcast can miss any one node.
    fn tell_accuser(&mut self, accuser: &str) {
        if self.leaving || accuser == &*self.name {
            return;
        }
        if self.told_accusers.get(accuser) == Some(&self.incarnation) {
            return;
        }
        let Some(m) = self.member(accuser) else {
            return;
        };
        if m.state.is_dead_or_left() {
            return;
        }
        let (addr, pmax) = (m.addr, m.pmax());
        if self.told_accusers.len() > 2 * self.nodes.len() + 16 {
            self.told_accusers.clear();
        }
        self.told_accusers
            .insert(accuser.to_string(), self.incarnation);
        let buf = encode(&Message::Alive(self.local_alive()));
        self.stats.messages_out[4] += 1;
        self.raw_send(addr, Some(pmax), &buf);
    }

    fn suspect_node(&mut self, now: Instant, s: Suspect) {
        if !self.incarnation_claim_plausible(&s.node, s.incarnation) {
            return;
        }
        if s.node == *self.name {
            let stale = s.incarnation < self.incarnation;
            if !stale {
                if let Some(m) = self.member(&s.node) {
                    if m.state == NodeState::Alive && !self.leaving {
                        self.refute(s.incarnation);
                    }
                }
            }
            self.tell_accuser(&s.from);
            return;
        }
        let Some(m) = self.member(&s.node) else {
            return;
        };
        if s.incarnation < m.incarnation {
            return;
        }
        let name = m.name.clone();
        let mut state = m.state;
        let newer = s.incarnation > m.incarnation;
        if newer && state == NodeState::Suspect {
            // swimnet: a suspicion at a higher incarnation than ours proves the
            // node refuted the one we hold (we missed its alive). Start over at
            // the new incarnation instead of counting it as a confirmation of the
            // stale one, which would shorten a timer the node already answered.
            self.suspicions.remove(&name);
            state = NodeState::Alive;
        }
        if let Some(susp) = self.suspicions.get_mut(&name) {
            if susp.n < susp.k && !susp.confirmations.contains(&s.from) {
                susp.confirmations.insert(s.from.clone());
                susp.n += 1;
                let timeout = suspicion_timeout_after(susp.n, susp.k, susp.min, susp.max);
                let deadline = susp.start + timeout;
                self.arm_suspicion(now, &name, deadline);
                self.broadcast(&name, &Message::Suspect(s));
            }
            return;
        }
        if state != NodeState::Alive {
            return;
        }
        self.broadcast(&name, &Message::Suspect(s.clone()));
        let m = self.member_mut(&name).expect("present");
        m.incarnation = s.incarnation;
        m.state = NodeState::Suspect;
        m.state_change = now;
        let snap = m.snapshot();
        let n = self.nodes.len();
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if n < k + 2 {
            k = 0;
        }
        let min = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult as u32;
        let timeout = if k >= 1 { max } else { min };
        self.next_generation += 1;
        let generation = self.next_generation;
        let mut confirmations = HashSet::new();
        confirmations.insert(s.from.clone());
        self.suspicions.insert(
            name.clone(),
            Suspicion {
                start: now,
                k,
                n: 0,
                min,
                max,
                confirmations,
                generation,
                state_change: now,
                deadline: now + timeout,
                check: None,
                check_until: now,
                next_check_at: (now + min)
                    .checked_sub(self.config.probe_timeout)
                    .unwrap_or(now)
                    .max(now),
                check_failed: false,
            },
        );
        self.arm_suspicion(now, &name, now + timeout);
        self.events.push_back(Event::Suspect {
            node: snap,
            from: s.from,
        });
    }

    /// How long before a suspicion's deadline the last check of the
    /// suspect goes out (swimnet's probe-before-dead): one probe timeout,
    /// enough for a direct or an indirect answer.
    fn check_window(&self) -> Duration {
        self.config.probe_timeout
    }

    /// Sets the verdict time of `node`'s suspicion to `deadline` and arms
    /// its timer for whatever comes first: the verdict, the end of the check
    /// in flight, or the next check. Cancels any timer armed before.
    fn arm_suspicion(&mut self, now: Instant, node: &Arc<str>, deadline: Instant) {
        let before_dead = self.config.probe_before_dead;
        self.next_generation += 1;
        let generation = self.next_generation;
        let Some(susp) = self.suspicions.get_mut(node) else {
            return;
        };
        susp.deadline = deadline;
        susp.generation = generation;
        let at = match (before_dead, susp.check.is_some(), susp.check_failed) {
            (false, _, _) => deadline,
            // No verdict before a check failed: the one in flight decides.
            (true, true, false) => susp.check_until,
            (true, true, true) => susp.check_until.min(deadline),
            (true, false, _) => deadline.min(susp.next_check_at),
        };
        self.timers.schedule(
            at.max(now),
            TimerKind::Suspicion {
                node: node.clone(),
                generation,
            },
        );
    }

    /// A check of a suspect: a ping (with the suspicion, so it can
    /// refute) straight to it, indirect pings through up to
    /// `indirect_checks` alive helpers, and a TCP ping when it speaks TCP,
    /// all with one new sequence number, which is returned.
    fn send_check(&mut self, now: Instant, node: &Arc<str>) -> u32 {
        let seq = self.next_seq();
        let (source_addr, source_port, source_node) = self.self_source();
        let Some(m) = self.member(node) else {
            return seq;
        };
        let (addr, addr_bytes, inc, pmax) = (m.addr, m.addr_bytes(), m.incarnation, m.pmax());
        self.stats.final_checks += 1;
        let ping = Ping {
            seq_no: seq,
            node: node.to_string(),
            source_addr: source_addr.clone(),
            source_port,
            source_node: source_node.clone(),
        };
        let s = Suspect {
            incarnation: inc,
            node: node.to_string(),
            from: self.name.to_string(),
        };
        let a = encode(&Message::Ping(ping.clone()));
        let b = encode(&Message::Suspect(s));
        self.stats.messages_out[0] += 1;
        self.stats.messages_out[3] += 1;
        let mut compound = Vec::with_capacity(a.len() + b.len() + 6);
        encode_compound(&[&a, &b], &mut compound);
        self.raw_send(addr, Some(pmax), &compound);
        self.send_indirect_pings(node, addr_bytes, addr.port(), seq, false);
        if !self.config.disable_tcp_pings && pmax >= 3 {
            let deadline = now + self.check_window();
            self.open_tcp_ping(addr, ping, deadline);
        }
        seq
    }

    /// Sends indirect pings for `target` (at `addr_bytes`:`port`) with
    /// sequence number `seq` through up to `indirect_checks` alive helpers
    /// (near ones first when topology-aware selection is on). With `nacks`,
    /// helpers that speak protocol 4+ are asked to nack; returns how many
    /// nacks to expect.
    fn send_indirect_pings(
        &mut self,
        target: &Arc<str>,
        addr_bytes: Vec<u8>,
        port: u16,
        seq: u32,
        nacks: bool,
    ) -> i64 {
        let me = self.name.clone();
        let candidates: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.name != me && m.name != *target && m.state == NodeState::Alive)
            .map(|(i, _)| i)
            .collect();
        let k = self.config.indirect_checks.min(candidates.len());
        let chosen: Vec<usize> = match self.topology_select(&candidates, k, Some(target)) {
            Some(near) => near,
            None => candidates
                .choose_multiple(&mut self.rng, k)
                .copied()
                .collect(),
        };
        let (source_addr, source_port, source_node) = self.self_source();
        let mut expected = 0;
        for i in chosen {
            let (peer_addr, peer_name, peer_pmax) = (
                self.nodes[i].addr,
                self.nodes[i].name.clone(),
                self.nodes[i].pmax(),
            );
            let nack = nacks && peer_pmax >= 4;
            if nack {
                expected += 1;
            }
            let ind = IndirectPing {
                seq_no: seq,
                target: addr_bytes.clone(),
                port,
                node: target.to_string(),
                nack,
                source_addr: source_addr.clone(),
                source_port,
                source_node: source_node.clone(),
            };
            self.send_msg(peer_addr, Some(&peer_name), &Message::IndirectPing(ind));
        }
        expected
    }

    /// Opens a TCP ping (memberlist's fallback ping over a stream) to `to`;
    /// its ack, a refusal or `deadline` ends it (see `StreamKind::OutPing`).
    fn open_tcp_ping(&mut self, to: SocketAddr, ping: Ping, deadline: Instant) {
        let seq = ping.seq_no;
        let data = self.encode_stream(&StreamMessage::Ping(ping), false);
        let id = self.new_stream_id();
        self.streams.insert(
            id,
            StreamCtx::outbound(StreamKind::OutPing { seq }, to, deadline),
        );
        self.timers.schedule(deadline, TimerKind::Stream { id });
        self.stream_cmds.push_back(StreamCommand::Open {
            id,
            to,
            data,
            expect_reply: true,
            deadline,
        });
    }

    /// An ack for a check of a suspect: it is alive, so its verdict waits at
    /// least one more minimum suspicion timeout for its refutation (which
    /// the check's suspect message asked for), and another check must fail
    /// before it. Returns whether `seq` was such a check.
    fn on_check_ack(&mut self, now: Instant, seq: u32) -> bool {
        let Some(node) = self
            .suspicions
            .iter()
            .find(|(_, s)| s.check == Some(seq))
            .map(|(n, _)| n.clone())
        else {
            return false;
        };
        self.stats.final_checks_answered += 1;
        let window = self.check_window();
        let deadline = match self.suspicions.get_mut(&node) {
            Some(susp) => {
                susp.check = None;
                susp.check_failed = false;
                let deadline = susp.deadline.max(now + susp.min);
                susp.next_check_at = deadline.checked_sub(window).unwrap_or(now).max(now);
                deadline
            }
            None => return true,
        };
        self.arm_suspicion(now, &node, deadline);
        true
    }

    fn on_suspicion_timeout(&mut self, now: Instant, node: &Arc<str>, generation: u64) {
        let Some(susp) = self.suspicions.get(node) else {
            return;
        };
        if susp.generation != generation {
            return;
        }
        let state_change = susp.state_change;
        let Some(m) = self.member(node) else {
            self.suspicions.remove(node);
            return;
        };
        if m.state != NodeState::Suspect || m.state_change != state_change {
            self.suspicions.remove(node);
            return;
        }
        let incarnation = m.incarnation;
        let deadline = susp.deadline;
        if self.config.probe_before_dead {
            // swimnet's check before dead: the suspect is asked (directly,
            // through helpers and over TCP) one check window before the
            // earliest deadline the suspicion can have, then every minimum
            // timeout; the verdict needs a check that went unanswered and no
            // answer since (an answer re-arms the suspicion in on_check_ack),
            // so a check still in flight at the deadline does not delay it.
            let window = self.check_window();
            let Some(susp) = self.suspicions.get_mut(node) else {
                return;
            };
            if susp.check.is_some() && now >= susp.check_until {
                susp.check = None;
                susp.check_failed = true;
            }
            let (pending, failed, next_check) =
                (susp.check.is_some(), susp.check_failed, susp.next_check_at);
            let verdict = now >= deadline && failed;
            if !verdict && !pending && (now >= next_check || now >= deadline) {
                let seq = self.send_check(now, node);
                if let Some(susp) = self.suspicions.get_mut(node) {
                    susp.check = Some(seq);
                    susp.check_until = now + window;
                    susp.next_check_at = now + susp.min;
                }
            }
            if !verdict {
                self.arm_suspicion(now, node, deadline);
                return;
            }
        } else if now < deadline {
            self.arm_suspicion(now, node, deadline);
            return;
        }
        let d = Dead {
            incarnation,
            node: node.to_string(),
            from: self.name.to_string(),
        };
        self.dead_node(now, d);
    }

    fn dead_node(&mut self, now: Instant, d: Dead) {
        if !self.incarnation_claim_plausible(&d.node, d.incarnation) {
            return;
        }
        if d.node == *self.name && d.from != d.node && !self.leaving {
            if d.incarnation >= self.incarnation {
                self.refute(d.incarnation);
            }
            self.tell_accuser(&d.from);
            return;
        }
        let Some(m) = self.member(&d.node) else {
            return;
        };
        if d.incarnation < m.incarnation {
            return;
        }
        let name = m.name.clone();
        let dead_or_left = m.state.is_dead_or_left();
        self.suspicions.remove(&name);
        if dead_or_left {
            return;
        }
        if name == self.name {
            if !self.leaving {
                self.refute(d.incarnation);
            }
            return;
        }
        let left = d.node == d.from;
        self.broadcast(&name, &Message::Dead(d.clone()));
        let m = self.member_mut(&name).expect("present");
        m.incarnation = d.incarnation;
        m.state = if left {
            NodeState::Left
        } else {
            NodeState::Dead
        };
        m.state_change = now;
        let snap = m.snapshot();
        if self.tombstones.len() >= MAX_TOMBSTONES && !self.tombstones.contains_key(&name) {
            if let Some(oldest) = self
                .tombstones
                .iter()
                .min_by(|a, b| a.1.since.cmp(&b.1.since).then_with(|| a.0.cmp(b.0)))
                .map(|(n, _)| n.clone())
            {
                self.tombstones.remove(&oldest);
            }
        }
        let m = self.member(&name).expect("present");
        let tomb = Tombstone {
            addr_bytes: m.addr_bytes(),
            addr: m.addr,
            vsn: m.vsn,
            incarnation: m.incarnation,
            left,
            since: now,
        };
        self.tombstones.insert(name, tomb);
        self.events.push_back(Event::Leave(snap));
    }
}

fn vsn6(v: &[u8]) -> Option<[u8; 6]> {
    v.get(..6).map(|s| {
        let mut out = [0u8; 6];
        out.copy_from_slice(s);
        out
    })
}
