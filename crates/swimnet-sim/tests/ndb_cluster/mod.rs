//! A NetworkDB cluster on the simulator's [`Harness`] for the NetworkDB
//! tests: nodes built with Docker's memberlist settings, joined through
//! node 0, with short-hand for giving a node a command and reading a
//! table, and a check on every run that no datagram outgrew the path MTU.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use swimnet_core::Config;
use swimnet_networkdb::{NdbConfig, NetworkDb, TableEntry};
use swimnet_sim::{Harness, NetworkModel, NodeId};

#[allow(unused_imports)]
pub use swimnet_sim::{node_addr as addr, node_name as name};

/// Largest datagram a node may send (memberlist's UDP buffer size).
pub const MAX_DATAGRAM: usize = 1400;

/// The simulated NetworkDB cluster.
pub struct Cluster {
    /// The harness underneath (network model, partitions, counters).
    pub h: Harness<NetworkDb>,
    /// Applied to the memberlist settings of every node.
    tweak: fn(&mut Config),
}

/// One-way datagram latency 0.5 ms plus up to 4.5 ms of jitter: enough
/// spread that messages from different nodes interleave.
fn network() -> NetworkModel {
    NetworkModel {
        latency: Duration::from_micros(500),
        jitter: Duration::from_micros(4500),
        loss: 0.0,
    }
}

/// Docker's memberlist settings for a node, with `tweak` applied.
fn node_config(name: String, addr: std::net::SocketAddr, tweak: fn(&mut Config)) -> Config {
    let mut cfg = NetworkDb::docker_memberlist(Config::local(name, addr));
    tweak(&mut cfg);
    cfg
}

impl Cluster {
    /// `n` nodes; node 0 is the seed, the others join through it, and the
    /// cluster runs until every node sees all `n` (at most a minute).
    pub fn new(n: usize, seed: u64, ndb: NdbConfig) -> Cluster {
        Cluster::new_with(n, seed, ndb, |_| {})
    }

    /// Like [`Cluster::new`], with `tweak` applied to every node's
    /// memberlist settings.
    pub fn new_with(n: usize, seed: u64, ndb: NdbConfig, tweak: fn(&mut Config)) -> Cluster {
        let h = Harness::with_cores(seed, network(), move |_, config, now, seed| {
            NetworkDb::new(config, ndb.clone(), now, seed).expect("valid config")
        });
        let mut c = Cluster { h, tweak };
        for _ in 0..n {
            c.add_node();
        }
        for i in 1..n {
            c.h.join(i, &[0]);
            c.run_for(Duration::from_millis(50));
        }
        let all_known = |h: &Harness<NetworkDb>| {
            (0..n).all(|i| h.core(i).is_some_and(|db| db.cluster_peers().len() == n))
        };
        c.h.run_until_cond(Duration::from_secs(60), Duration::from_secs(1), all_known);
        c
    }

    /// Adds a node with Docker's memberlist settings; it is not joined yet.
    pub fn add_node(&mut self) -> NodeId {
        let tweak = self.tweak;
        self.h
            .add_node(move |name, addr| node_config(name, addr, tweak))
    }

    /// Kills node `i` if it runs (kill -9) and starts a fresh node in its
    /// place: same name, address and settings, nothing kept, not joined.
    pub fn replace_node(&mut self, i: NodeId) {
        if self.h.is_running(i) {
            self.h.crash(i);
        }
        let tweak = self.tweak;
        self.h
            .restart(i, move |name, addr| node_config(name, addr, tweak), &[]);
    }

    /// Node `i`'s NetworkDB (it must be running).
    pub fn node(&self, i: NodeId) -> &NetworkDb {
        self.h.core(i).expect("node is running")
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.h.now()
    }

    /// Runs a command on node `i` at the current time and puts what it
    /// sends on the network.
    pub fn on<R>(&mut self, i: NodeId, f: impl FnOnce(&mut NetworkDb, Instant) -> R) -> R {
        let now = self.h.now();
        let r = f(self.h.core_mut(i).expect("node is running"), now);
        self.h.flush(i);
        r
    }

    /// Runs the cluster for `dur` of virtual time, then checks that no node
    /// sent a datagram over [`MAX_DATAGRAM`].
    pub fn run_for(&mut self, dur: Duration) {
        self.h.run_for(dur);
        let largest = self.h.largest_datagram();
        assert!(
            largest <= MAX_DATAGRAM,
            "a node sent a {largest}-byte datagram"
        );
    }

    /// Attaches every node to network `nid` and runs until each lists all
    /// of them as the network's peers; fails the test after 40 s.
    pub fn attach_all(&mut self, nid: &str) {
        let n = self.h.len();
        for i in 0..n {
            self.on(i, |db, now| db.join_network(now, nid)).unwrap();
        }
        let all_attached = |h: &Harness<NetworkDb>| {
            (0..n).all(|i| h.core(i).is_some_and(|db| db.network_peers(nid).len() == n))
        };
        let took = self.h.run_until_cond(
            Duration::from_secs(40),
            Duration::from_secs(1),
            all_attached,
        );
        assert!(
            took.is_some(),
            "not every node lists all {n} peers of {nid}"
        );
    }

    /// The live entries of a table on node `i`.
    pub fn table(&self, i: NodeId, nid: &str, table: &str) -> Vec<TableEntry> {
        self.node(i).table_entries(nid, table)
    }

    /// Bytes node `i` handed to the network so far (datagrams and stream data).
    pub fn sent_bytes(&self, i: NodeId) -> u64 {
        self.h.sent(i).1
    }

    /// Cuts the given nodes off from everyone (each alone; they keep
    /// running), replacing any earlier cut.
    pub fn isolate(&mut self, nodes: &[NodeId]) {
        let nodes = nodes.to_vec();
        self.h.partition(move |i| {
            nodes
                .iter()
                .position(|&x| x == i)
                .map_or(0, |p| p as u32 + 1)
        });
    }

    /// Ends any cut.
    pub fn heal(&mut self) {
        self.h.heal();
    }

    /// Makes TCP to every node silent (connections hang) or ends it.
    pub fn silence_tcp(&mut self, silent: bool) {
        for i in 0..self.h.len() {
            self.h.set_tcp_silent(i, silent);
        }
    }
}
