//! Gossip rounds: choosing targets (uniformly or latency-aware from the
//! near cluster), sending queued broadcasts, the catch-up push/pull, and
//! noticing when our leave broadcast is out.

use std::sync::Arc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::Rng;
use swimnet_wire::compound::encode_compound;
use swimnet_wire::overhead;

use crate::coordinate::Coordinates;
use crate::delegate::Delegate;
use crate::member::{Member, NodeState};
use crate::topology;
use crate::topology::NearRotation;

use super::{Event, Memberlist, NEAR_CLUSTER_REFRESH};

/// Network coordinates and the state of latency-aware peer selection.
#[derive(Debug)]
pub(super) struct LatencyState {
    /// Vivaldi state, when `config.coordinates` is set.
    pub(super) coords: Option<Coordinates>,
    /// Cached near cluster for latency-aware gossip and probes: when it was
    /// computed and the names in it (see `refresh_near_cluster`).
    pub(super) near_cluster: Option<(Instant, Vec<Arc<str>>)>,
    /// Where gossip rounds are in their walk through the near cluster.
    pub(super) gossip_walk: NearRotation<Arc<str>>,
    /// Where near probes are in their walk through the near cluster.
    pub(super) probe_walk: NearRotation<Arc<str>>,
}

impl LatencyState {
    /// Starts with no near cluster computed yet.
    pub(super) fn new(coords: Option<Coordinates>) -> Self {
        LatencyState {
            coords,
            near_cluster: None,
            gossip_walk: NearRotation::default(),
            probe_walk: NearRotation::default(),
        }
    }
}

impl<D: Delegate> Memberlist<D> {
    /// Picks up to `k` gossip targets (positions in the member table): alive
    /// and suspect members, and dead ones within `gossip_to_the_dead_time`.
    pub(super) fn gossip_targets(&mut self, now: Instant, k: usize) -> Vec<usize> {
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
        let n = self.table.nodes.len();
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
                if !out.contains(&i) && eligible(i, &self.table.nodes[i]) {
                    out.push(i);
                }
            }
            if out.len() == k {
                return out;
            }
        }
        let candidates: Vec<usize> = self
            .table
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
    pub(super) fn near_picks(
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
        let nodes = &self.table.nodes;
        self.latency.gossip_walk.take_from(
            &mut self.rng,
            near,
            &pool,
            |i| &nodes[i].name,
            |i| nodes[i].name.clone(),
        )
    }

    /// Positions in `self.table.nodes` of the members of the cached near cluster
    /// (recomputed first when stale) that pass `eligible`. Empty when there
    /// is no cluster.
    pub(super) fn near_cluster_members(
        &mut self,
        now: Instant,
        eligible: impl Fn(usize, &Member) -> bool,
    ) -> Vec<usize> {
        self.refresh_near_cluster(now);
        let Some((_, names)) = self.latency.near_cluster.as_ref() else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| self.member_pos(name))
            .filter(|&i| eligible(i, &self.table.nodes[i]))
            .collect()
    }

    /// Recomputes the near cluster (the live members within a few times
    /// the distance of our nearest, see [`topology::near_cluster`]) when it
    /// is older than [`NEAR_CLUSTER_REFRESH`]. Costs one distance per member with a
    /// usable coordinate, so gossip and probe rounds in between cost
    /// O(cluster), not O(members).
    pub(super) fn refresh_near_cluster(&mut self, now: Instant) {
        if let Some((at, _)) = &self.latency.near_cluster {
            if now.saturating_duration_since(*at) < NEAR_CLUSTER_REFRESH {
                return;
            }
        }
        self.latency.near_cluster = self.compute_near_cluster().map(|names| (now, names));
    }

    /// The near cluster as of now (see [`topology::near_cluster`]): the
    /// names of the live members in it, or `None` when coordinates are
    /// off. Reads only; [`Self::refresh_near_cluster`] caches it.
    pub(super) fn compute_near_cluster(&self) -> Option<Vec<Arc<str>>> {
        let cfg = &self.config.topology;
        let coords = self.latency.coords.as_ref()?;
        let ours = coords.client.coordinate();
        let mut known: Vec<(f64, usize)> = self
            .table
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
        Some(
            known
                .into_iter()
                .map(|(_, i)| self.table.nodes[i].name.clone())
                .collect(),
        )
    }

    /// Cheap test, without looking at each member, of whether a biased
    /// choice of `k` peers can be made: selection is on, our coordinate is
    /// settled, and we hold coordinates for at least `k` peers and for
    /// [`topology::TopologyConfig::min_known_fraction`] of the member table (an
    /// upper bound on how many candidates have one). When false,
    /// [`Memberlist::topology_select`] would return `None` too, so the
    /// callers skip building candidate lists (O(N) per gossip round and per
    /// probe, which adds up in a simulator of thousands of nodes).
    pub(super) fn topology_ready(&self, k: usize) -> bool {
        let cfg = &self.config.topology;
        let Some(coords) = self.latency.coords.as_ref().filter(|_| cfg.enabled) else {
            return false;
        };
        let known = coords.peers.len();
        known >= k
            && known as f64
                >= cfg.min_known_fraction * self.table.nodes.len().saturating_sub(1) as f64
            && cfg.is_settled(coords.client.coordinate())
    }

    /// Latency-aware choice of `k` of `candidates` (indices into
    /// `self.table.nodes`) when [`crate::Config::topology`] is on and coordinates are
    /// settled; `None` tells the caller to make its uniform choice (and
    /// then no random number was drawn here). With `via`, a helper's
    /// distance is the round trip us -> helper -> `via` when `via`'s
    /// coordinate is known (for indirect probes of `via`), else us -> helper.
    pub(super) fn topology_select(
        &mut self,
        candidates: &[usize],
        k: usize,
        via: Option<&str>,
    ) -> Option<Vec<usize>> {
        let cfg = &self.config.topology;
        if !cfg.enabled {
            return None;
        }
        let coords = self.latency.coords.as_ref()?;
        let ours = coords.client.coordinate();
        let settled = cfg.is_settled(ours);
        let via = via
            .and_then(|v| coords.peers.get(v))
            .filter(|c| topology::peer_usable(c));
        let nodes = &self.table.nodes;
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

    /// One gossip round: queued broadcasts to `gossip_nodes` targets, as
    /// many as fit in a datagram each.
    pub(super) fn gossip(&mut self, now: Instant) {
        let avail = self
            .config
            .udp_buffer_size
            .saturating_sub(overhead::COMPOUND_HEADER + self.seal_overhead());
        // A latency-aware choice looks at every candidate: with nothing to
        // send (most rounds of a quiet cluster), skip it. With the choice
        // off, targets are drawn first, as memberlist does.
        let mut first = None;
        if self.table.nodes.len() > 1 && self.topology_ready(self.config.gossip_nodes) {
            let msgs = self.get_broadcasts(overhead::COMPOUND_PART, avail);
            if msgs.is_empty() {
                return;
            }
            first = Some(msgs);
        }
        let targets = self.gossip_targets(now, self.config.gossip_nodes);
        for i in targets {
            let msgs = match first.take() {
                Some(m) => m,
                None => self.get_broadcasts(overhead::COMPOUND_PART, avail),
            };
            if msgs.is_empty() {
                return;
            }
            let (addr, pmax) = (self.table.nodes[i].addr, self.table.nodes[i].pmax());
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
    /// [`crate::Config::catch_up_backlog`]). Called each gossip round, before gossiping.
    pub(super) fn catch_up(&mut self, now: Instant) {
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

    /// Reports [`Event::LeaveComplete`] once our leave broadcast has left the
    /// queue (it used its retransmits).
    pub(super) fn check_leave_done(&mut self) {
        if let Some(id) = self.leave_broadcast {
            if !self.broadcasts.contains(id) {
                self.leave_broadcast = None;
                self.out
                    .events
                    .push_back(Event::LeaveComplete { timed_out: false });
            }
        }
    }

    /// The leave's deadline passed: if the broadcast is still queued, the
    /// leave is reported complete anyway, as timed out.
    pub(super) fn on_leave_deadline(&mut self) {
        if self.leave_broadcast.take().is_some() {
            self.out
                .events
                .push_back(Event::LeaveComplete { timed_out: true });
        }
    }
}
