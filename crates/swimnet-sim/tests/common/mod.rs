//! Helpers shared by the harness test files.
#![allow(dead_code)]

use std::time::Duration;

use swimnet_core::{Delegate, Event, NodeState};
use swimnet_sim::{node_name, NodeId, Sim};

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
