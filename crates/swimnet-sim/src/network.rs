//! The network model: latency and jitter per link, regions, loss (global,
//! per receiver, per link), partitions and refused TCP, and what a datagram
//! or a TCP exchange costs under them.

use std::collections::HashSet;
use std::time::Duration;

use rand::Rng;

use crate::{Harness, NodeId};
use swimnet_core::SansIoNode;

/// One-way latency and jitter bound for a datagram `from -> to`.
pub type LatencyFn = Box<dyn Fn(NodeId, NodeId) -> (Duration, Duration)>;

/// The region a node sits in (see [`Harness::set_regions`]).
pub type RegionFn = Box<dyn Fn(NodeId) -> u32>;

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

/// Which packets may flow between partition groups.
pub(crate) enum Partition {
    /// Everything flows.
    None,
    /// Packets flow only within a group.
    Symmetric(Vec<u32>),
    /// Packets flow except from a group to a group listed as blocked.
    Directed(Vec<u32>, HashSet<(u32, u32)>),
}

impl<C: SansIoNode> Harness<C> {
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

    /// Whether `a` and `b` sit in different regions.
    pub(crate) fn crosses_regions(&self, a: NodeId, b: NodeId) -> bool {
        self.region.as_ref().is_some_and(|f| f(a) != f(b))
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

    /// Makes node `id` a TCP black hole (or ends it): connections to it are
    /// never answered, as behind a firewall that drops instead of refusing,
    /// so every stream to it waits for its opener's own deadline.
    pub fn set_tcp_silent(&mut self, id: NodeId, silent: bool) {
        if silent {
            self.tcp_silent.insert(id);
        } else {
            self.tcp_silent.remove(&id);
        }
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

    /// Whether a TCP connection between `a` and `b` can work (both directions reachable).
    pub(crate) fn stream_reachable(&self, a: NodeId, b: NodeId) -> bool {
        self.reachable(a, b) && self.reachable(b, a)
    }

    /// Loss for a datagram `from -> to`: the network's, the link's and the
    /// receiver's (a UDP-only filter).
    pub(crate) fn link_loss(&self, from: NodeId, to: NodeId) -> f64 {
        1.0 - (1.0 - self.segment_loss(from, to)) * (1.0 - self.node_loss[to])
    }

    /// Loss for a TCP segment `from -> to`: the network's and the link's.
    pub(crate) fn segment_loss(&self, from: NodeId, to: NodeId) -> f64 {
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
    pub(crate) fn stream_delay(
        &mut self,
        from: NodeId,
        to: NodeId,
        connect: bool,
    ) -> Option<Duration> {
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

    /// One-way delay of a datagram `from -> to`: the link's base latency
    /// plus a uniform random share of its jitter bound (draws from the RNG).
    pub(crate) fn delay(&mut self, from: NodeId, to: NodeId) -> Duration {
        let (base, jitter) = match &self.latency {
            Some(f) => f(from, to),
            None => (self.net.latency, self.net.jitter),
        };
        let j = jitter.as_nanos() as u64;
        let extra = if j == 0 { 0 } else { self.rng.gen_range(0..j) };
        base + Duration::from_nanos(extra)
    }
}
