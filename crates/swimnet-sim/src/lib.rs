//! Deterministic multi-node harness for swimnet cores.
//!
//! Many [`Memberlist`] cores run in one process on a virtual clock over a
//! modelled network: per-packet latency with jitter, uniform or per-node
//! packet loss, partitions, crashes, restarts, and stalled nodes (a process
//! that stops running for a while, its socket buffers filling up). Every
//! random choice, in the network model and in the cores, comes from the seed,
//! so a run replays exactly. UDP datagrams may be lost; streams (TCP) are
//! reliable but blocked by partitions and refused by crashed nodes.
//!
//! The harness also watches every run for the invariants of SWIM:
//! incarnations seen for a node never decrease, and no node is declared
//! alive again with an incarnation it was already declared dead with. It
//! counts "false positives": live nodes declared dead.
//!
//! The harness drives any [`SansIoNode`], the trait the agent drives too: a
//! plain [`Memberlist`] (see [`Sim`]), a [`swimnet_networkdb::NetworkDb`] or
//! a [`swimnet_serf::SerfNode`].
//! The [`scenario`] module runs whole scenarios described in TOML and writes
//! reports (see `swimnet sim`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod charts;
pub mod kinds;
pub mod report;
pub mod scenario;

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swimnet_core::{
    Config, Delegate, Event, Memberlist, NodeState, SansIoNode, StreamCommand, StreamId,
};

/// One-way latency and jitter bound for a datagram `from -> to`.
pub type LatencyFn = Box<dyn Fn(NodeId, NodeId) -> (Duration, Duration)>;

/// The region a node sits in (see [`Harness::set_regions`]).
pub type RegionFn = Box<dyn Fn(NodeId) -> u32>;

/// Index of a node in the simulation.
pub type NodeId = usize;

/// How packets travel between nodes.
#[derive(Debug, Clone)]
pub struct NetworkModel {
    /// One-way base latency.
    pub latency: Duration,
    /// Extra uniform random delay in `0..jitter`.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
}

impl Default for NetworkModel {
    fn default() -> Self {
        NetworkModel {
            latency: Duration::from_micros(500),
            jitter: Duration::from_micros(200),
            loss: 0.0,
        }
    }
}

/// What happened that breaks SWIM's rules, with the time it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time since the start of the run.
    pub at: Duration,
    /// What went wrong.
    pub what: String,
}

/// A live node declared dead by another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FalsePositive {
    /// Virtual time since the start of the run.
    pub at: Duration,
    /// Who declared it.
    pub observer: NodeId,
    /// Who was declared dead while running.
    pub target: NodeId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Crashed,
    Stalled { until: Instant },
}

enum Delivery {
    Stop {
        node: NodeId,
    },
    Packet {
        to: NodeId,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    StreamOpen {
        to: NodeId,
        from: SocketAddr,
        origin: Option<(NodeId, StreamId)>,
        data: Vec<u8>,
    },
    StreamReply {
        to: NodeId,
        id: StreamId,
        data: Vec<u8>,
    },
    StreamError {
        to: NodeId,
        id: StreamId,
    },
    /// The connection attempt was reset: nobody listens at the address.
    StreamRefused {
        to: NodeId,
        id: StreamId,
    },
    Resume {
        node: NodeId,
    },
}

struct SimNode<C> {
    core: Option<C>,
    addr: SocketAddr,
    status: Status,
    /// Deliveries that arrived while the node was stalled (its socket buffers).
    inbox: VecDeque<Delivery>,
    /// Inbound stream handles -> where the reply goes.
    reply_to: HashMap<StreamId, (NodeId, StreamId)>,
    deadline: Option<Instant>,
    last_incarnation: u32,
    /// Packets and bytes this node sent.
    sent_packets: u64,
    sent_bytes: u64,
    /// Packets and bytes delivered to this node (datagrams and stream data).
    recv_packets: u64,
    recv_bytes: u64,
    /// Packets and bytes this node sent to a node of another region.
    cross_packets: u64,
    cross_bytes: u64,
}

struct Scheduled {
    at: Instant,
    seq: u64,
    d: Delivery,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: the earliest delivery is the heap's maximum.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Which packets may flow between partition groups.
enum Partition {
    None,
    /// Packets flow only within a group.
    Symmetric(Vec<u32>),
    /// Packets flow except from a group to a group listed as blocked.
    Directed(Vec<u32>, HashSet<(u32, u32)>),
}

/// Traffic counters by message kind, cluster-wide (see [`kinds`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets (datagrams, or stream messages) sent, by kind.
    pub packets: BTreeMap<&'static str, u64>,
    /// Bytes sent, by kind (framing attributed to `compound`/`crc`).
    pub bytes: BTreeMap<&'static str, u64>,
}

/// Most datagrams a stalled node's socket buffers hold before dropping more.
const STALL_BUFFER: usize = 4096;

/// A simulated cluster of plain memberlist cores whose delegate type is `D`.
pub type Sim<D> = Harness<Memberlist<D>>;

/// Builds a node's core from its index, config, the current instant and a seed.
pub type MakeCore<C> = Box<dyn FnMut(NodeId, Config, Instant, u64) -> C>;

/// A simulated cluster of cores of type `C`.
pub struct Harness<C: SansIoNode> {
    start: Instant,
    now: Instant,
    rng: ChaCha8Rng,
    /// The network model in force (change it between steps to inject loss).
    pub net: NetworkModel,
    nodes: Vec<SimNode<C>>,
    by_addr: HashMap<SocketAddr, NodeId>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    timers: BinaryHeap<Reverse<(Instant, NodeId)>>,
    partition: Partition,
    latency: Option<LatencyFn>,
    region: Option<RegionFn>,
    /// Per-node extra inbound loss.
    node_loss: Vec<f64>,
    /// Per-link (from, to) extra loss, one direction.
    link_loss: HashMap<(NodeId, NodeId), f64>,
    tcp_refused: HashSet<NodeId>,
    // Observation.
    /// Per observer, per target: highest incarnation seen + 1 (0: none yet).
    views: Vec<Vec<u32>>,
    dead_at: HashMap<(NodeId, NodeId), u32>,
    violations: Vec<Violation>,
    false_positives: Vec<FalsePositive>,
    false_suspicions: u64,
    events: Vec<(Duration, NodeId, Event)>,
    app_events: Vec<(Duration, NodeId, C::AppEvent)>,
    keep_events: bool,
    classify: bool,
    traffic: Traffic,
    cross_traffic: Traffic,
    make_core: MakeCore<C>,
    // Scratch buffers reused by `flush`.
    scratch_events: Vec<Event>,
    scratch_cmds: Vec<StreamCommand>,
}

/// The address the simulation gives node `i`: a distinct loopback address
/// (the harness sends nothing on a real network; these are only names).
pub fn node_addr(i: NodeId) -> SocketAddr {
    let n = i as u32 + 1;
    let ip = Ipv4Addr::new(
        127,
        ((n >> 16) & 0xff) as u8,
        ((n >> 8) & 0xff) as u8,
        (n & 0xff) as u8,
    );
    SocketAddr::new(IpAddr::V4(ip), 7946)
}

/// The node name the simulation gives node `i`.
pub fn node_name(i: NodeId) -> String {
    format!("node-{i}")
}

impl<D: Delegate + 'static> Harness<Memberlist<D>> {
    /// An empty simulation of plain memberlist nodes. `make_delegate` builds
    /// each node's delegate.
    pub fn new(
        seed: u64,
        net: NetworkModel,
        mut make_delegate: impl FnMut(NodeId) -> D + 'static,
    ) -> Self {
        Harness::with_cores(seed, net, move |id, config, now, seed| {
            Memberlist::new(config, make_delegate(id), now, seed).expect("valid config")
        })
    }
}

impl<C: SansIoNode> Harness<C> {
    /// An empty simulation whose nodes are built by `make_core(id, config, now, seed)`.
    pub fn with_cores(
        seed: u64,
        net: NetworkModel,
        make_core: impl FnMut(NodeId, Config, Instant, u64) -> C + 'static,
    ) -> Self {
        let start = Instant::now();
        Harness {
            start,
            now: start,
            rng: ChaCha8Rng::seed_from_u64(seed),
            net,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            timers: BinaryHeap::new(),
            partition: Partition::None,
            latency: None,
            region: None,
            node_loss: Vec::new(),
            link_loss: HashMap::new(),
            tcp_refused: Default::default(),
            views: Vec::new(),
            dead_at: HashMap::new(),
            violations: Vec::new(),
            false_positives: Vec::new(),
            false_suspicions: 0,
            events: Vec::new(),
            app_events: Vec::new(),
            keep_events: false,
            classify: false,
            traffic: Traffic::default(),
            cross_traffic: Traffic::default(),
            make_core: Box::new(make_core),
            scratch_events: Vec::new(),
            scratch_cmds: Vec::new(),
        }
    }

    /// Restarts the harness's random stream from `seed` (before adding nodes).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// Replaces the uniform latency of [`NetworkModel`] with a per-link
    /// model: `f(from, to)` gives the base one-way latency and the jitter
    /// bound of a datagram. It must be a pure function of its arguments.
    pub fn set_latency_model(&mut self, f: LatencyFn) {
        self.latency = Some(f);
    }

    /// Places the nodes in regions: `f(i)` is node `i`'s region. It must be
    /// a pure function of its argument. From then on, what a node sends to
    /// a node of another region is also counted apart (see
    /// [`Harness::cross_region_sent`] and
    /// [`Harness::cross_region_traffic`]).
    pub fn set_regions(&mut self, f: RegionFn) {
        self.region = Some(f);
    }

    /// Node `id`'s region (0 when no regions were set).
    pub fn region_of(&self, id: NodeId) -> u32 {
        self.region.as_ref().map_or(0, |f| f(id))
    }

    fn crosses_regions(&self, a: NodeId, b: NodeId) -> bool {
        self.region.as_ref().is_some_and(|f| f(a) != f(b))
    }

    /// Packets and bytes node `id` sent so far to nodes of other regions
    /// (see [`Harness::set_regions`]), whether or not they arrived.
    pub fn cross_region_sent(&self, id: NodeId) -> (u64, u64) {
        (self.nodes[id].cross_packets, self.nodes[id].cross_bytes)
    }

    /// Like [`Harness::traffic`], for what crossed regions only.
    pub fn cross_region_traffic(&self) -> &Traffic {
        &self.cross_traffic
    }

    /// The mean round-trip time of the network model between `a` and `b`:
    /// both one-way base latencies plus half of each jitter bound (the
    /// jitter is uniform). Stream retransmissions and processing are not
    /// counted: this is the time a ping and its ack take.
    pub fn expected_rtt(&self, a: NodeId, b: NodeId) -> Duration {
        let one_way = |x, y| {
            let (base, jitter) = match &self.latency {
                Some(f) => f(x, y),
                None => (self.net.latency, self.net.jitter),
            };
            base + jitter / 2
        };
        one_way(a, b) + one_way(b, a)
    }

    /// Counts traffic by message kind (see [`Harness::traffic`]); off by default.
    pub fn classify_traffic(&mut self, on: bool) {
        self.classify = on;
    }

    /// Traffic by message kind since [`Harness::classify_traffic`] was turned on.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Takes the recorded events (see [`Harness::record_events`]), leaving none.
    pub fn take_events(&mut self) -> Vec<(Duration, NodeId, Event)> {
        std::mem::take(&mut self.events)
    }

    /// Takes the recorded application events ([`SansIoNode::AppEvent`]:
    /// NetworkDB's table changes, Serf's user events; with
    /// [`Harness::record_events`] on), leaving none.
    pub fn take_app_events(&mut self) -> Vec<(Duration, NodeId, C::AppEvent)> {
        std::mem::take(&mut self.app_events)
    }

    /// Suspicions raised about nodes that were running, counted per observer.
    pub fn false_suspicions(&self) -> u64 {
        self.false_suspicions
    }

    /// Packets and bytes delivered to node `id` so far.
    pub fn received(&self, id: NodeId) -> (u64, u64) {
        (self.nodes[id].recv_packets, self.nodes[id].recv_bytes)
    }

    /// Whether node `id` is stalled now.
    pub fn is_stalled(&self, id: NodeId) -> bool {
        matches!(self.nodes[id].status, Status::Stalled { .. })
    }

    /// Node `id` leaves gracefully, and its process stops `linger` later.
    pub fn leave(&mut self, id: NodeId, linger: Duration) {
        let now = self.now;
        if let Some(core) = self.nodes[id].core.as_mut() {
            core.leave(now);
        }
        self.flush(id);
        self.push_delivery(now + linger, Delivery::Stop { node: id });
    }

    /// Hands every running node the same member table: every running node
    /// alive at incarnation 1, with the protocol versions node `from`
    /// announces (see [`Memberlist::preload_members`]), as if the cluster
    /// had long converged. Nothing is gossiped about it.
    pub fn preload_membership(&mut self, from: NodeId) {
        let Some(me) = self.nodes[from]
            .core
            .as_ref()
            .and_then(|c| c.core().member_by_name(&node_name(from)))
        else {
            return;
        };
        let table: Vec<swimnet_core::Node> = (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .map(|i| swimnet_core::Node {
                name: node_name(i).into(),
                addr: self.nodes[i].addr,
                meta: Vec::new(),
                vsn: me.vsn,
                incarnation: 1,
                state: NodeState::Alive,
            })
            .collect();
        let now = self.now;
        for i in 0..self.nodes.len() {
            if !matches!(self.nodes[i].status, Status::Running) {
                continue;
            }
            if let Some(core) = self.nodes[i].core.as_mut() {
                core.core_mut().preload_members(now, &table);
            }
            self.flush(i);
        }
    }

    /// Keep every event of every node (for tests that inspect them).
    pub fn record_events(&mut self, on: bool) {
        self.keep_events = on;
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds a node whose config comes from `make_config(name, addr)`; it starts now.
    pub fn add_node(&mut self, make_config: impl FnOnce(String, SocketAddr) -> Config) -> NodeId {
        let id = self.nodes.len();
        let addr = node_addr(id);
        let config = make_config(node_name(id), addr);
        let seed = self.rng.next_u64();
        let core = (self.make_core)(id, config, self.now, seed);
        self.nodes.push(SimNode {
            core: Some(core),
            addr,
            status: Status::Running,
            inbox: VecDeque::new(),
            reply_to: HashMap::new(),
            deadline: None,
            last_incarnation: 1,
            sent_packets: 0,
            sent_bytes: 0,
            recv_packets: 0,
            recv_bytes: 0,
            cross_packets: 0,
            cross_bytes: 0,
        });
        self.by_addr.insert(addr, id);
        self.node_loss.push(0.0);
        self.views.push(Vec::new());
        match &mut self.partition {
            Partition::None => {}
            Partition::Symmetric(g) | Partition::Directed(g, _) => g.push(0),
        }
        self.flush(id);
        id
    }

    /// Node `id`'s core (`None` while crashed).
    pub fn core(&self, id: NodeId) -> Option<&C> {
        self.nodes[id].core.as_ref()
    }

    /// Node `id`'s core, mutably, for commands. Call [`Harness::flush`] after a command.
    pub fn core_mut(&mut self, id: NodeId) -> Option<&mut C> {
        self.nodes[id].core.as_mut()
    }

    /// Whether node `id` runs (not crashed; stalled counts as running).
    pub fn is_running(&self, id: NodeId) -> bool {
        !matches!(self.nodes[id].status, Status::Crashed)
    }

    /// Node `id` joins through the given seed nodes.
    pub fn join(&mut self, id: NodeId, seeds: &[NodeId]) {
        let addrs: Vec<SocketAddr> = seeds.iter().map(|&s| self.nodes[s].addr).collect();
        let now = self.now;
        if let Some(core) = self.nodes[id].core.as_mut() {
            let _ = core.join(now, &addrs);
        }
        self.flush(id);
    }

    /// Kills node `id` without a word (kill -9): it stops answering at once.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes[id].core = None;
        self.nodes[id].status = Status::Crashed;
        self.nodes[id].inbox.clear();
        self.nodes[id].reply_to.clear();
        self.nodes[id].deadline = None;
    }

    /// Restarts a crashed node with a fresh core (incarnation 1) and joins it through `seeds`.
    pub fn restart(
        &mut self,
        id: NodeId,
        make_config: impl FnOnce(String, SocketAddr) -> Config,
        seeds: &[NodeId],
    ) {
        let config = make_config(node_name(id), self.nodes[id].addr);
        let seed = self.rng.next_u64();
        let core = (self.make_core)(id, config, self.now, seed);
        let n = &mut self.nodes[id];
        n.core = Some(core);
        n.status = Status::Running;
        n.last_incarnation = 1;
        // Other nodes may legitimately see a restarted node's incarnation start over.
        for v in &mut self.views {
            if let Some(x) = v.get_mut(id) {
                *x = 0;
            }
        }
        self.dead_at.retain(|(_, t), _| *t != id);
        self.flush(id);
        self.join(id, seeds);
    }

    /// Stops node `id` from running for `dur`: its timers do not fire and
    /// arriving packets wait in its socket buffer (up to 4096), as with a
    /// process stopped by SIGSTOP or a long pause.
    pub fn stall(&mut self, id: NodeId, dur: Duration) {
        if let Status::Running = self.nodes[id].status {
            let until = self.now + dur;
            self.nodes[id].status = Status::Stalled { until };
            self.push_delivery(until, Delivery::Resume { node: id });
        }
    }

    /// Splits the nodes into groups that cannot reach each other:
    /// `group_of(i)` is node i's group. Replaces any earlier partition.
    pub fn partition(&mut self, group_of: impl Fn(NodeId) -> u32) {
        self.partition = Partition::Symmetric((0..self.nodes.len()).map(group_of).collect());
    }

    /// A one-way partition: datagrams and stream segments from a node of
    /// group `a` to a node of group `b` are dropped for every `(a, b)` in
    /// `blocked`; everything else flows. (A TCP connection needs both
    /// directions.) Replaces any earlier partition.
    pub fn partition_directed(
        &mut self,
        group_of: impl Fn(NodeId) -> u32,
        blocked: impl IntoIterator<Item = (u32, u32)>,
    ) {
        self.partition = Partition::Directed(
            (0..self.nodes.len()).map(group_of).collect(),
            blocked.into_iter().collect(),
        );
    }

    /// Ends any partition.
    pub fn heal(&mut self) {
        self.partition = Partition::None;
    }

    /// Refuses TCP connections to node `id` (as a firewall that only lets UDP through).
    pub fn set_tcp_refused(&mut self, id: NodeId, refused: bool) {
        if refused {
            self.tcp_refused.insert(id);
        } else {
            self.tcp_refused.remove(&id);
        }
    }

    /// Sets extra loss on datagrams arriving at node `id` (UDP only; TCP still passes).
    pub fn set_node_loss(&mut self, id: NodeId, loss: f64) {
        self.node_loss[id] = loss;
    }

    /// Live nodes declared dead so far.
    pub fn false_positives(&self) -> &[FalsePositive] {
        &self.false_positives
    }

    /// Broken invariants seen so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Recorded events (see [`Sim::record_events`]).
    pub fn events(&self) -> &[(Duration, NodeId, Event)] {
        &self.events
    }

    /// Packets and bytes sent by node `id` so far.
    pub fn sent(&self, id: NodeId) -> (u64, u64) {
        (self.nodes[id].sent_packets, self.nodes[id].sent_bytes)
    }

    /// What node `observer` believes of node `target` (`None`: not in its table, or observer crashed).
    pub fn view(&self, observer: NodeId, target: NodeId) -> Option<NodeState> {
        self.nodes[observer]
            .core
            .as_ref()?
            .core()
            .member_by_name(&node_name(target))
            .map(|n| n.state)
    }

    /// True when every running node sees exactly the running nodes as alive
    /// (and no others as alive).
    pub fn converged(&self) -> bool {
        self.disagreeing_nodes(1).is_empty()
    }

    /// Up to `limit` running nodes whose view is not exactly "every running
    /// node alive, nobody else alive".
    pub fn disagreeing_nodes(&self, limit: usize) -> Vec<NodeId> {
        let running: Vec<bool> = (0..self.nodes.len()).map(|i| self.is_running(i)).collect();
        let n_running = running.iter().filter(|r| **r).count();
        let mut out = Vec::new();
        for o in 0..self.nodes.len() {
            if !running[o] {
                continue;
            }
            let ml = self.nodes[o].core.as_ref().expect("running").core();
            let mut alive = 0;
            let mut ok = true;
            for m in ml.members() {
                if m.state != NodeState::Alive {
                    continue;
                }
                alive += 1;
                match self.node_of(&m.name) {
                    Some(t) if running[t] => {}
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok || alive != n_running {
                out.push(o);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out
    }

    fn push_delivery(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            d,
        });
    }

    /// Whether a packet from `a` reaches `b` under the current partition.
    pub fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        match &self.partition {
            Partition::None => true,
            Partition::Symmetric(g) => g.get(a) == g.get(b),
            Partition::Directed(g, blocked) => match (g.get(a), g.get(b)) {
                (Some(x), Some(y)) => !blocked.contains(&(*x, *y)),
                _ => true,
            },
        }
    }

    fn stream_reachable(&self, a: NodeId, b: NodeId) -> bool {
        self.reachable(a, b) && self.reachable(b, a)
    }

    /// Loss for a datagram `from -> to`: the network's, the link's and the
    /// receiver's (a UDP-only filter).
    fn link_loss(&self, from: NodeId, to: NodeId) -> f64 {
        1.0 - (1.0 - self.segment_loss(from, to)) * (1.0 - self.node_loss[to])
    }

    /// Loss for a TCP segment `from -> to`: the network's and the link's.
    fn segment_loss(&self, from: NodeId, to: NodeId) -> f64 {
        let link = self.link_loss.get(&(from, to)).copied().unwrap_or(0.0);
        1.0 - (1.0 - self.net.loss) * (1.0 - link)
    }

    /// Sets extra loss on the one-way link `from -> to` (1.0 cuts it). Applies
    /// to datagrams and to TCP segments alike.
    pub fn set_link_loss(&mut self, from: NodeId, to: NodeId, loss: f64) {
        if loss <= 0.0 {
            self.link_loss.remove(&(from, to));
        } else {
            self.link_loss.insert((from, to), loss);
        }
    }

    /// Time for a TCP exchange step toward `to` under the link's loss: a lost
    /// SYN costs the initial 1 s retransmission timeout (then 2 s, 4 s), a lost
    /// data segment the minimum 200 ms one. `None`: the connection gives up.
    fn stream_delay(&mut self, from: NodeId, to: NodeId, connect: bool) -> Option<Duration> {
        let loss = self.segment_loss(from, to).max(self.segment_loss(to, from));
        if loss >= 1.0 {
            return None;
        }
        let mut d = self.delay(from, to);
        if connect {
            // SYN and SYN-ACK.
            d += self.delay(to, from);
            let mut rto = Duration::from_secs(1);
            let mut tries = 0;
            while loss > 0.0 && self.rng.gen::<f64>() < 1.0 - (1.0 - loss) * (1.0 - loss) {
                tries += 1;
                if tries > 3 {
                    return None;
                }
                d += rto;
                rto *= 2;
            }
        }
        let mut rto = Duration::from_millis(200);
        while loss > 0.0 && self.rng.gen::<f64>() < loss {
            d += rto;
            rto *= 2;
            if rto > Duration::from_secs(60) {
                return None;
            }
        }
        Some(d)
    }

    fn delay(&mut self, from: NodeId, to: NodeId) -> Duration {
        let (base, jitter) = match &self.latency {
            Some(f) => f(from, to),
            None => (self.net.latency, self.net.jitter),
        };
        let j = jitter.as_nanos() as u64;
        let extra = if j == 0 { 0 } else { self.rng.gen_range(0..j) };
        base + Duration::from_nanos(extra)
    }

    /// Drains node `id`'s outputs into the network and records its events.
    /// Call it after giving a node a command through [`Harness::core_mut`].
    pub fn flush(&mut self, id: NodeId) {
        let now = self.now;
        let elapsed = self.elapsed();
        let mut cmds = std::mem::take(&mut self.scratch_cmds);
        let mut events = std::mem::take(&mut self.scratch_events);
        let Some(core) = self.nodes[id].core.as_mut() else {
            cmds.clear();
            self.scratch_cmds = cmds;
            return;
        };
        let mut transmits = Vec::new();
        while let Some(t) = core.poll_transmit() {
            transmits.push(t);
        }
        while let Some(c) = core.poll_stream() {
            cmds.push(c);
        }
        while let Some(e) = core.poll_event() {
            events.push(e);
        }
        if self.keep_events {
            while let Some(c) = core.poll_app_event() {
                self.app_events.push((elapsed, id, c));
            }
        } else {
            while core.poll_app_event().is_some() {}
        }
        let inc = core.core().incarnation();
        let deadline = core.poll_timeout();
        if inc < self.nodes[id].last_incarnation {
            self.violations.push(Violation {
                at: elapsed,
                what: format!(
                    "node {id}'s own incarnation went from {} to {inc}",
                    self.nodes[id].last_incarnation
                ),
            });
        }
        self.nodes[id].last_incarnation = inc;
        if deadline != self.nodes[id].deadline {
            self.nodes[id].deadline = deadline;
            if let Some(d) = deadline {
                self.timers.push(Reverse((d, id)));
            }
        }
        let from = self.nodes[id].addr;
        for t in transmits {
            self.nodes[id].sent_packets += 1;
            self.nodes[id].sent_bytes += t.payload.len() as u64;
            if self.classify {
                kinds::classify_packet(&t.payload, &mut self.traffic);
            }
            let Some(&to) = self.by_addr.get(&t.dst) else {
                continue;
            };
            if self.crosses_regions(id, to) {
                self.nodes[id].cross_packets += 1;
                self.nodes[id].cross_bytes += t.payload.len() as u64;
                if self.classify {
                    kinds::classify_packet(&t.payload, &mut self.cross_traffic);
                }
            }
            if !self.reachable(id, to) {
                continue;
            }
            let loss = self.link_loss(id, to);
            if loss > 0.0 && self.rng.gen::<f64>() < loss {
                continue;
            }
            let at = now + self.delay(id, to);
            self.push_delivery(
                at,
                Delivery::Packet {
                    to,
                    from,
                    bytes: t.payload,
                },
            );
        }
        for c in cmds.drain(..) {
            match c {
                StreamCommand::Open {
                    id: sid,
                    to,
                    data,
                    expect_reply,
                    ..
                } => {
                    self.nodes[id].sent_packets += 1;
                    self.nodes[id].sent_bytes += data.len() as u64;
                    if self.classify {
                        kinds::classify_stream(&data, &mut self.traffic);
                    }
                    let target = self.by_addr.get(&to).copied();
                    if let Some(t) = target {
                        self.count_cross_stream(id, t, &data);
                    }
                    match target {
                        Some(t)
                            if self.stream_reachable(id, t)
                                && self.is_running(t)
                                && !self.tcp_refused.contains(&t) =>
                        {
                            let origin = expect_reply.then_some((id, sid));
                            match self.stream_delay(id, t, true) {
                                Some(d) => self.push_delivery(
                                    now + d,
                                    Delivery::StreamOpen {
                                        to: t,
                                        from,
                                        origin,
                                        data,
                                    },
                                ),
                                None if expect_reply => {
                                    let at = now + Duration::from_secs(7);
                                    self.push_delivery(
                                        at,
                                        Delivery::StreamError { to: id, id: sid },
                                    );
                                }
                                None => {}
                            }
                        }
                        Some(t) if !self.stream_reachable(id, t) => {
                            // Partitioned: the connection attempt hangs until the core's own deadline.
                        }
                        other => {
                            // Nobody listening: refused after a round trip.
                            if expect_reply {
                                let t = other.unwrap_or(id);
                                let at = now + self.delay(id, t) + self.delay(t, id);
                                self.push_delivery(at, Delivery::StreamRefused { to: id, id: sid });
                            }
                        }
                    }
                }
                StreamCommand::Reply { id: sid, data } => {
                    self.nodes[id].sent_packets += 1;
                    self.nodes[id].sent_bytes += data.len() as u64;
                    if self.classify {
                        kinds::classify_stream(&data, &mut self.traffic);
                    }
                    if let Some(&(origin, _)) = self.nodes[id].reply_to.get(&sid) {
                        self.count_cross_stream(id, origin, &data);
                    }
                    if let Some((origin, oid)) = self.nodes[id].reply_to.remove(&sid) {
                        if self.stream_reachable(id, origin) {
                            if let Some(d) = self.stream_delay(id, origin, false) {
                                self.push_delivery(
                                    now + d,
                                    Delivery::StreamReply {
                                        to: origin,
                                        id: oid,
                                        data,
                                    },
                                );
                            }
                        }
                    }
                }
                StreamCommand::Close { id: sid } => {
                    if let Some((origin, oid)) = self.nodes[id].reply_to.remove(&sid) {
                        let at = now + self.delay(id, origin);
                        self.push_delivery(
                            at,
                            Delivery::StreamError {
                                to: origin,
                                id: oid,
                            },
                        );
                    }
                }
            }
        }
        self.scratch_cmds = cmds;
        for e in events.drain(..) {
            self.observe(id, &e);
            if self.keep_events {
                self.events.push((elapsed, id, e));
            }
        }
        self.scratch_events = events;
    }

    fn count_cross_stream(&mut self, from: NodeId, to: NodeId, data: &[u8]) {
        if self.crosses_regions(from, to) {
            self.nodes[from].cross_packets += 1;
            self.nodes[from].cross_bytes += data.len() as u64;
            if self.classify {
                kinds::classify_stream(data, &mut self.cross_traffic);
            }
        }
    }

    /// The node index of a simulation node name (`node-<i>`).
    pub fn node_of(&self, name: &str) -> Option<NodeId> {
        name.strip_prefix("node-")?
            .parse()
            .ok()
            .filter(|&i: &usize| i < self.nodes.len())
    }

    fn observe(&mut self, observer: NodeId, e: &Event) {
        let elapsed = self.elapsed();
        let (node, alive_again) = match e {
            Event::Join(n) | Event::Update(n) => (n, true),
            Event::Leave(n) => (n, false),
            Event::Suspect { node, .. } => (node, false),
            _ => return,
        };
        let Some(target) = self.node_of(&node.name) else {
            return;
        };
        if matches!(e, Event::Suspect { .. }) && self.is_running(target) {
            self.false_suspicions += 1;
        }
        let key = (observer, target);
        let view = &mut self.views[observer];
        if view.len() <= target {
            view.resize(target + 1, 0);
        }
        let prev = view[target];
        if prev > 0 && node.incarnation < prev - 1 {
            self.violations.push(Violation {
                at: elapsed,
                what: format!(
                    "node {observer} saw node {target}'s incarnation go from {} to {}",
                    prev - 1,
                    node.incarnation
                ),
            });
        }
        view[target] = node.incarnation.saturating_add(1);
        if alive_again {
            if let Some(&dead_inc) = self.dead_at.get(&key) {
                if node.incarnation <= dead_inc {
                    self.violations.push(Violation {
                        at: elapsed,
                        what: format!(
                            "node {observer} took node {target} back alive at incarnation {} after declaring it dead at {dead_inc}",
                            node.incarnation
                        ),
                    });
                }
            }
        }
        if let Event::Leave(n) = e {
            if n.state == NodeState::Dead {
                self.dead_at.insert(key, n.incarnation);
                if self.is_running(target) {
                    self.false_positives.push(FalsePositive {
                        at: elapsed,
                        observer,
                        target,
                    });
                }
            }
        }
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        let to = match &d {
            Delivery::Packet { to, .. }
            | Delivery::StreamOpen { to, .. }
            | Delivery::StreamReply { to, .. }
            | Delivery::StreamError { to, .. }
            | Delivery::StreamRefused { to, .. } => *to,
            Delivery::Stop { node } => {
                self.crash(*node);
                return;
            }
            Delivery::Resume { node } => {
                let node = *node;
                if let Status::Stalled { until } = self.nodes[node].status {
                    if until <= now {
                        self.nodes[node].status = Status::Running;
                        while let Some(d) = self.nodes[node].inbox.pop_front() {
                            self.apply(node, d);
                        }
                        if let Some(core) = self.nodes[node].core.as_mut() {
                            core.handle_timeout(now);
                        }
                        self.flush(node);
                    }
                }
                return;
            }
        };
        match self.nodes[to].status {
            Status::Crashed => {
                if let Delivery::StreamOpen {
                    origin: Some((o, oid)),
                    ..
                } = d
                {
                    let at = now + self.delay(to, o);
                    self.push_delivery(at, Delivery::StreamError { to: o, id: oid });
                }
            }
            Status::Stalled { .. } => {
                if self.nodes[to].inbox.len() < STALL_BUFFER {
                    self.nodes[to].inbox.push_back(d);
                }
            }
            Status::Running => {
                self.apply(to, d);
                self.flush(to);
            }
        }
    }

    fn apply(&mut self, to: NodeId, d: Delivery) {
        let now = self.now;
        let node = &mut self.nodes[to];
        let Some(core) = node.core.as_mut() else {
            return;
        };
        match d {
            Delivery::Packet { from, bytes, .. } => {
                node.recv_packets += 1;
                node.recv_bytes += bytes.len() as u64;
                core.handle_packet(now, from, &bytes)
            }
            Delivery::StreamOpen {
                from, origin, data, ..
            } => {
                node.recv_packets += 1;
                node.recv_bytes += data.len() as u64;
                let sid = core.handle_stream_accept(now, from);
                if let Some(o) = origin {
                    node.reply_to.insert(sid, o);
                }
                core.handle_stream_data(now, sid, &data, true);
            }
            Delivery::StreamReply { id, data, .. } => {
                node.recv_packets += 1;
                node.recv_bytes += data.len() as u64;
                core.handle_stream_data(now, id, &data, true)
            }
            Delivery::StreamError { id, .. } => {
                core.handle_stream_error(now, id, "connection lost")
            }
            Delivery::StreamRefused { id, .. } => core.handle_stream_refused(now, id),
            Delivery::Resume { .. } | Delivery::Stop { .. } => {}
        }
    }

    /// Runs the simulation until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            // Drop stale timer entries.
            while let Some(&Reverse((t, id))) = self.timers.peek() {
                if self.nodes[id].deadline == Some(t) && self.nodes[id].core.is_some() {
                    break;
                }
                self.timers.pop();
            }
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
            let next_net = self.queue.peek().map(|s| s.at);
            let next = match (next_timer, next_net) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_net == Some(next) {
                let s = self.queue.pop().expect("peeked");
                self.deliver(s.d);
            } else {
                let Reverse((_, id)) = self.timers.pop().expect("peeked");
                self.nodes[id].deadline = None;
                if let Status::Running = self.nodes[id].status {
                    let now = self.now;
                    if let Some(core) = self.nodes[id].core.as_mut() {
                        core.handle_timeout(now);
                    }
                    self.flush(id);
                } else if let Status::Stalled { .. } = self.nodes[id].status {
                    // Timers wait for the resume; it calls handle_timeout.
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `dur` of virtual time.
    pub fn run_for(&mut self, dur: Duration) {
        let until = self.now + dur;
        self.run_until(until);
    }

    /// Runs until `cond` holds (checked every `step` of virtual time) or
    /// `limit` has passed. Returns the virtual time it took, or `None`.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        step: Duration,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let end = start + limit;
        loop {
            if cond(self) {
                return Some(self.now - start);
            }
            if self.now >= end {
                return None;
            }
            let next = (self.now + step).min(end);
            self.run_until(next);
        }
    }
}
