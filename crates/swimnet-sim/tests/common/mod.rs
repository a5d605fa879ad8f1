//! Helpers shared by the harness test files.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use swimnet_core::{Config, Delegate, Event, NodeState, NoopDelegate};
use swimnet_sim::{node_name, NetworkModel, NodeId, Sim};

/// Builds `n` nodes configured by `make` on `net`, joins them all through
/// node 0 and runs until every node sees every other alive (at most 120
/// virtual seconds, checked every 100 ms; panics with the seed otherwise).
pub fn converged_cluster_with(
    seed: u64,
    n: usize,
    net: NetworkModel,
    make: fn(String, SocketAddr) -> Config,
) -> Sim<NoopDelegate> {
    let mut s = Sim::new(seed, net, |_| NoopDelegate);
    for _ in 0..n {
        s.add_node(make);
    }
    for i in 1..n {
        s.join(i, &[0]);
    }
    let took = s.run_until_cond(Duration::from_secs(120), Duration::from_millis(100), |s| {
        s.converged()
    });
    assert!(
        took.is_some(),
        "seed {seed}: {n} nodes did not converge in 120 s"
    );
    s
}

/// Crashes `victim` of a converged `n`-node cluster built with `make`,
/// runs `for_` more (events recorded) and returns the harness with, sorted,
/// how long each other node took to declare the victim dead. Panics with the
/// seed unless every other node did and no invariant broke.
pub fn crash_and_watch(
    seed: u64,
    n: usize,
    victim: NodeId,
    make: fn(String, SocketAddr) -> Config,
    for_: Duration,
) -> (Sim<NoopDelegate>, Vec<Duration>) {
    let mut s = converged_cluster_with(seed, n, NetworkModel::default(), make);
    s.record_events(true);
    let crash_at = s.elapsed();
    s.crash(victim);
    s.run_for(for_);
    let latencies = dead_latencies(&s, victim, crash_at);
    assert_eq!(
        latencies.len(),
        n - 1,
        "seed {seed}: everyone declares it dead"
    );
    assert!(
        s.violations().is_empty(),
        "seed {seed}: invariant violations: {:?}",
        s.violations()
    );
    (s, latencies)
}

/// How long after `since` each node that did so declared `victim` dead,
/// sorted (from the recorded events; call `record_events(true)` first).
pub fn dead_latencies<D: Delegate>(s: &Sim<D>, victim: NodeId, since: Duration) -> Vec<Duration> {
    let name = node_name(victim);
    let mut v: Vec<Duration> = s
        .events()
        .iter()
        .filter_map(|(at, _, e)| match e {
            Event::Leave(node) if *node.name == *name && node.state == NodeState::Dead => {
                Some(*at - since)
            }
            _ => None,
        })
        .collect();
    v.sort();
    v
}
