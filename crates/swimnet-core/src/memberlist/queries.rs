//! Read-only views of the node: its name, members, counters, coordinates
//! and the delegate.

use crate::config::Config;
use crate::coordinate::{ClientStats, Coordinate};
use crate::delegate::Delegate;
use crate::member::{Member, Node, NodeState};
use crate::topology::TopologyView;

use super::{Memberlist, Stats};

impl<D: Delegate> Memberlist<D> {
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
        self.table.nodes.iter().map(Member::snapshot)
    }

    /// One node by name.
    pub fn member_by_name(&self, name: &str) -> Option<Node> {
        self.member(name).map(Member::snapshot)
    }

    /// Number of nodes in the table: memberlist's `n` in every formula.
    pub fn num_members(&self) -> usize {
        self.table.nodes.len()
    }

    /// Number of alive nodes, ourselves included.
    pub fn num_alive(&self) -> usize {
        self.table
            .nodes
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
        self.latency.coords.as_ref().map(|c| c.client.coordinate())
    }

    /// The latest coordinate accepted from `name` (or ours, for our own
    /// name). `None` when coordinates are off, or no probe of that node has
    /// yet returned a usable one. A node's coordinate is forgotten when the
    /// node is removed from the member list (reaped).
    pub fn coordinate_of(&self, name: &str) -> Option<&Coordinate> {
        let c = self.latency.coords.as_ref()?;
        if name == &*self.name {
            Some(c.client.coordinate())
        } else {
            c.peers.get(name)
        }
    }

    /// Every known coordinate, ours included, by node name (unordered).
    pub fn coordinates(&self) -> impl Iterator<Item = (&str, &Coordinate)> + '_ {
        let ours = self
            .latency
            .coords
            .as_ref()
            .map(|c| (&*self.name, c.client.coordinate()));
        let peers = self
            .latency
            .coords
            .iter()
            .flat_map(|c| c.peers.iter().map(|(n, c)| (n.as_str(), c)));
        ours.into_iter().chain(peers)
    }

    /// Counters of the coordinate client (updates, rejections, resets),
    /// or `None` when coordinates are off.
    pub fn coordinate_stats(&self) -> Option<ClientStats> {
        self.latency.coords.as_ref().map(|c| c.client.stats())
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
        let coords = self.latency.coords.as_ref()?;
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

    /// The members latency-aware selection counts as near right now (the
    /// near cluster of [`crate::topology::near_cluster`], computed afresh),
    /// sorted by name; empty when coordinates are off or distances show no
    /// such cluster. For views (the dashboard's latency map); changes
    /// nothing, so it may be called at any time.
    pub fn near_cluster_now(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .compute_near_cluster()
            .unwrap_or_default()
            .iter()
            .map(|n| n.to_string())
            .collect();
        names.sort();
        names
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
        let Some(c) = self.latency.coords.as_mut() else {
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
}
