//! A Serf cluster on the simulator's [`Harness`] for the Serf tests: `n`
//! Serf nodes (tag `role=r<id % 3>`, Serf's protocol versions, LAN
//! timers) joined through node 0, optionally encrypting with one key.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use swimnet_core::Config;
use swimnet_serf::{SerfDelegate, SerfNode};
use swimnet_sim::{node_name, Harness, NetworkModel};
use swimnet_wire::security::{Key, Keyring};

/// Serf's member settings on the LAN profile.
pub fn lan(name: String, addr: SocketAddr) -> Config {
    Config::lan(name, addr).with_serf_versions()
}

/// `n` Serf nodes that all joined through node 0 and see each other alive
/// (at most 60 s of virtual time); with `key`, all encrypt with it.
pub fn serf_cluster(seed: u64, n: usize, key: Option<[u8; 32]>) -> Harness<SerfNode> {
    let net = NetworkModel {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(1),
        loss: 0.0,
    };
    let mut h = Harness::with_cores(seed, net, move |id, mut config: Config, now, seed| {
        let mut tags = BTreeMap::new();
        tags.insert("role".to_string(), format!("r{}", id % 3));
        let serf = SerfDelegate::new(node_name(id), tags).expect("small tags");
        config.meta = serf.meta().to_vec();
        if let Some(k) = key {
            config.keyring = Some(Keyring::new(Key::new(&k).expect("32 bytes")));
        }
        SerfNode::new(config, serf, now, seed).expect("valid config")
    });
    for _ in 0..n {
        h.add_node(lan);
    }
    for i in 1..n {
        h.join(i, &[0]);
    }
    let took = h.run_until_cond(Duration::from_secs(60), Duration::from_millis(100), |h| {
        h.converged()
    });
    assert!(took.is_some(), "{n} Serf nodes did not converge in 60 s");
    h
}
