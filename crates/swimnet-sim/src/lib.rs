//! A deterministic simulator for swimnet: many nodes in one process, on a
//! virtual clock, over a modelled network.
//!
//! # What it runs
//!
//! The nodes are the shipping code: the same sans-IO cores the agent drives
//! over real sockets ([`Memberlist`], [`swimnet_networkdb::NetworkDb`] for
//! tables, [`swimnet_serf::SerfNode`] for Serf members), driven here through
//! the trait the agent drives too, [`SansIoNode`]. A core never
//! reads a clock: every input carries `now`, so the harness hands it
//! virtual time, and a simulated minute of a thousand nodes takes seconds.
//! [`Harness`] is the cluster; [`Sim`] is a cluster of plain memberlist
//! nodes.
//!
//! The network model ([`NetworkModel`], [`Harness::set_latency_model`])
//! gives each datagram a latency with jitter and may lose it (uniform,
//! per receiver or per link loss); partitions may be symmetric or one-way.
//! Streams (TCP) are reliable but pay for lost segments in retransmission
//! time, are blocked by partitions and refused by crashed nodes. Nodes may
//! crash, restart, leave, or stall (a process that stops running for a
//! while, its socket buffers filling up). Every random choice, in the
//! network model and in the cores, comes from the seed, so a run replays
//! exactly.
//!
//! While it runs, the harness checks the invariants of SWIM: incarnations
//! seen for a node never decrease, and no node is declared alive again with
//! an incarnation it was already declared dead with
//! ([`Harness::violations`]). It counts false positives (live nodes
//! declared dead) and suspicions of live nodes.
//!
//! # A cluster in code
//!
//! Three memberlist nodes join through the first one; after ten virtual
//! seconds each sees the others alive:
//!
//! ```
//! use std::time::Duration;
//!
//! use swimnet_core::{Config, NodeState, NoopDelegate};
//! use swimnet_sim::{NetworkModel, Sim};
//!
//! let mut sim = Sim::new(1, NetworkModel::default(), |_| NoopDelegate);
//! let nodes: Vec<_> = (0..3).map(|_| sim.add_node(Config::lan)).collect();
//! for &n in &nodes[1..] {
//!     sim.join(n, &[nodes[0]]);
//! }
//! sim.run_for(Duration::from_secs(10));
//! for &a in &nodes {
//!     for &b in &nodes {
//!         assert_eq!(sim.view(a, b), Some(NodeState::Alive));
//!     }
//! }
//! assert!(sim.converged());
//! assert!(sim.violations().is_empty());
//! ```
//!
//! A command given to a node through [`Harness::core_mut`] is followed by
//! [`Harness::flush`], which puts what the node sends on the network.
//!
//! # Scenarios
//!
//! Larger experiments are written as TOML scenarios: the cluster, its
//! network, the faults and the table workload over time. The [`scenario`]
//! module reads and runs them into a deterministic [`report::Report`]
//! (`report.json`, a text summary and SVG charts); `swimnet sim FILE.toml`
//! runs one from the command line. The files in the repository's
//! `scenarios/` directory are examples of every section (`smoke.toml` is
//! the smallest), and `docs/BENCHMARKS.md` has the figures they give.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod charts;
pub mod kinds;
mod network;
mod observe;
pub mod report;
pub mod scenario;
mod transport;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swimnet_core::{
    Config, Delegate, Event, Memberlist, NodeState, SansIoNode, StreamCommand, StreamId,
};

pub use network::{LatencyFn, NetworkModel, RegionFn};
pub use observe::{FalsePositive, Violation};

use network::Partition;
use transport::{Delivery, Scheduled};

/// Index of a node in the simulation.
pub type NodeId = usize;

/// Whether a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Handles its traffic and timers.
    Running,
    /// Gone (kill -9): its core is dropped.
    Crashed,
    /// Not running until `until`; inbound traffic waits in its buffer.
    Stalled { until: Instant },
}

/// One simulated node: its core (none while crashed), address, state,
/// pending inbound traffic and counters.
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

/// Traffic counters by message kind, cluster-wide (see [`kinds`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets (datagrams, or stream messages) sent, by kind.
    pub packets: BTreeMap<&'static str, u64>,
    /// Bytes sent, by kind (framing attributed to `compound`/`crc`).
    pub bytes: BTreeMap<&'static str, u64>,
}

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
    /// Nodes whose inbound TCP connections are never answered.
    tcp_silent: HashSet<NodeId>,
    /// Size of the largest datagram any node sent.
    largest_datagram: usize,
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
            tcp_silent: Default::default(),
            largest_datagram: 0,
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

    /// Packets and bytes node `id` sent so far to nodes of other regions
    /// (see [`Harness::set_regions`]), whether or not they arrived.
    pub fn cross_region_sent(&self, id: NodeId) -> (u64, u64) {
        (self.nodes[id].cross_packets, self.nodes[id].cross_bytes)
    }

    /// Like [`Harness::traffic`], for what crossed regions only.
    pub fn cross_region_traffic(&self) -> &Traffic {
        &self.cross_traffic
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

    /// Size in bytes of the largest datagram any node has sent so far (to
    /// check that a node keeps its packets within the path MTU).
    pub fn largest_datagram(&self) -> usize {
        self.largest_datagram
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

    /// The node index of a simulation node name (`node-<i>`).
    pub fn node_of(&self, name: &str) -> Option<NodeId> {
        name.strip_prefix("node-")?
            .parse()
            .ok()
            .filter(|&i: &usize| i < self.nodes.len())
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
