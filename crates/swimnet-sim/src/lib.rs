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
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swimnet_core::{Config, Delegate, Event, Memberlist, NodeState, StreamCommand, StreamId};

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

struct SimNode<D: Delegate> {
    core: Option<Memberlist<D>>,
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
}

/// Most datagrams a stalled node's socket buffers hold before dropping more.
const STALL_BUFFER: usize = 4096;

/// A simulated cluster. `D` is the delegate type of every node.
pub struct Sim<D: Delegate> {
    start: Instant,
    now: Instant,
    rng: ChaCha8Rng,
    /// The network model in force (change it between steps to inject loss).
    pub net: NetworkModel,
    nodes: Vec<SimNode<D>>,
    by_addr: HashMap<SocketAddr, NodeId>,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    slots: HashMap<usize, Delivery>,
    next_slot: usize,
    seq: u64,
    timers: BinaryHeap<Reverse<(Instant, NodeId)>>,
    /// Partition group per node; packets only flow within a group. Empty: no partition.
    groups: Vec<u32>,
    /// Per-node extra inbound loss.
    node_loss: Vec<f64>,
    /// Per-link (from, to) extra loss, one direction.
    link_loss: HashMap<(NodeId, NodeId), f64>,
    tcp_refused: std::collections::HashSet<NodeId>,
    // Observation.
    views: BTreeMap<(NodeId, NodeId), u32>,
    dead_at: BTreeMap<(NodeId, NodeId), u32>,
    violations: Vec<Violation>,
    false_positives: Vec<FalsePositive>,
    events: Vec<(Duration, NodeId, Event)>,
    keep_events: bool,
    make_delegate: Box<dyn FnMut(NodeId) -> D>,
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

impl<D: Delegate> Sim<D> {
    /// An empty simulation. `make_delegate` builds each node's delegate.
    pub fn new(
        seed: u64,
        net: NetworkModel,
        make_delegate: impl FnMut(NodeId) -> D + 'static,
    ) -> Self {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            rng: ChaCha8Rng::seed_from_u64(seed),
            net,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            slots: HashMap::new(),
            next_slot: 0,
            seq: 0,
            timers: BinaryHeap::new(),
            groups: Vec::new(),
            node_loss: Vec::new(),
            link_loss: HashMap::new(),
            tcp_refused: Default::default(),
            views: BTreeMap::new(),
            dead_at: BTreeMap::new(),
            violations: Vec::new(),
            false_positives: Vec::new(),
            events: Vec::new(),
            keep_events: false,
            make_delegate: Box::new(make_delegate),
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
        let delegate = (self.make_delegate)(id);
        let core = Memberlist::new(config, delegate, self.now, seed).expect("valid config");
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
        });
        self.by_addr.insert(addr, id);
        self.node_loss.push(0.0);
        if !self.groups.is_empty() {
            self.groups.push(0);
        }
        self.flush(id);
        id
    }

    /// Node `id`'s core (`None` while crashed).
    pub fn core(&self, id: NodeId) -> Option<&Memberlist<D>> {
        self.nodes[id].core.as_ref()
    }

    /// Node `id`'s core, mutably, for commands. Call [`Sim::flush`] after a command.
    pub fn core_mut(&mut self, id: NodeId) -> Option<&mut Memberlist<D>> {
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
        let delegate = (self.make_delegate)(id);
        let core = Memberlist::new(config, delegate, self.now, seed).expect("valid config");
        let n = &mut self.nodes[id];
        n.core = Some(core);
        n.status = Status::Running;
        n.last_incarnation = 1;
        // Other nodes may legitimately see a restarted node's incarnation start over.
        self.views.retain(|(_, t), _| *t != id);
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
        self.groups = (0..self.nodes.len()).map(group_of).collect();
    }

    /// Ends any partition.
    pub fn heal(&mut self) {
        self.groups.clear();
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
            .member_by_name(&node_name(target))
            .map(|n| n.state)
    }

    /// True when every running node sees exactly the running nodes as alive
    /// (and no others as alive).
    pub fn converged(&self) -> bool {
        let running: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .collect();
        running.iter().all(|&o| {
            let core = self.nodes[o].core.as_ref().expect("running");
            let alive = core
                .members()
                .filter(|m| m.state == NodeState::Alive)
                .count();
            alive == running.len()
                && running
                    .iter()
                    .all(|&t| self.view(o, t) == Some(NodeState::Alive))
        })
    }

    fn push_delivery(&mut self, at: Instant, d: Delivery) {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.slots.insert(slot, d);
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        self.groups.is_empty() || self.groups.get(a) == self.groups.get(b)
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
        let mut d = self.delay();
        if connect {
            // SYN and SYN-ACK.
            d += self.delay();
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

    fn delay(&mut self) -> Duration {
        let j = self.net.jitter.as_nanos() as u64;
        let extra = if j == 0 { 0 } else { self.rng.gen_range(0..j) };
        self.net.latency + Duration::from_nanos(extra)
    }

    /// Drains node `id`'s outputs into the network and records its events.
    /// Call it after giving a node a command through [`Sim::core_mut`].
    pub fn flush(&mut self, id: NodeId) {
        let now = self.now;
        let elapsed = self.elapsed();
        let Some(core) = self.nodes[id].core.as_mut() else {
            return;
        };
        let mut transmits = Vec::new();
        while let Some(t) = core.poll_transmit() {
            transmits.push(t);
        }
        let mut cmds = Vec::new();
        while let Some(c) = core.poll_stream() {
            cmds.push(c);
        }
        let mut events = Vec::new();
        while let Some(e) = core.poll_event() {
            events.push(e);
        }
        let inc = core.incarnation();
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
            let Some(&to) = self.by_addr.get(&t.dst) else {
                continue;
            };
            if !self.reachable(id, to) {
                continue;
            }
            let loss = self.link_loss(id, to);
            if loss > 0.0 && self.rng.gen::<f64>() < loss {
                continue;
            }
            let at = now + self.delay();
            self.push_delivery(
                at,
                Delivery::Packet {
                    to,
                    from,
                    bytes: t.payload,
                },
            );
        }
        for c in cmds {
            match c {
                StreamCommand::Open {
                    id: sid,
                    to,
                    data,
                    expect_reply,
                    ..
                } => {
                    let target = self.by_addr.get(&to).copied();
                    match target {
                        Some(t)
                            if self.reachable(id, t)
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
                        Some(t) if !self.reachable(id, t) => {
                            // Partitioned: the connection attempt hangs until the core's own deadline.
                        }
                        _ => {
                            // Nobody listening: refused after a round trip.
                            if expect_reply {
                                let at = now + 2 * self.delay();
                                self.push_delivery(at, Delivery::StreamRefused { to: id, id: sid });
                            }
                        }
                    }
                }
                StreamCommand::Reply { id: sid, data } => {
                    if let Some((origin, oid)) = self.nodes[id].reply_to.remove(&sid) {
                        if self.reachable(id, origin) {
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
                        let at = now + self.delay();
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
        for e in events {
            self.observe(id, &e);
            if self.keep_events {
                self.events.push((elapsed, id, e));
            }
        }
    }

    fn node_of(&self, name: &str) -> Option<NodeId> {
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
        let key = (observer, target);
        if let Some(&prev) = self.views.get(&key) {
            if node.incarnation < prev {
                self.violations.push(Violation {
                    at: elapsed,
                    what: format!(
                        "node {observer} saw node {target}'s incarnation go from {prev} to {}",
                        node.incarnation
                    ),
                });
            }
        }
        self.views.insert(key, node.incarnation);
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
                    let at = now + self.delay();
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
            Delivery::Packet { from, bytes, .. } => core.handle_packet(now, from, &bytes),
            Delivery::StreamOpen {
                from, origin, data, ..
            } => {
                let sid = core.handle_stream_accept(now, from);
                if let Some(o) = origin {
                    node.reply_to.insert(sid, o);
                }
                core.handle_stream_data(now, sid, &data, true);
            }
            Delivery::StreamReply { id, data, .. } => core.handle_stream_data(now, id, &data, true),
            Delivery::StreamError { id, .. } => {
                core.handle_stream_error(now, id, "connection lost")
            }
            Delivery::StreamRefused { id, .. } => core.handle_stream_refused(now, id),
            Delivery::Resume { .. } => {}
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
            let next_net = self.queue.peek().map(|Reverse((t, _, _))| *t);
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
                let Reverse((_, _, slot)) = self.queue.pop().expect("peeked");
                let d = self.slots.remove(&slot).expect("slot");
                self.deliver(d);
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
