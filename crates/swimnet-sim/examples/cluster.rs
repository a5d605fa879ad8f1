//! A simulated cluster on virtual time: nodes join through one seed,
//! converge, one crashes and is detected, then it comes back.
//!
//! `cargo run --release -p swimnet-sim --example cluster -- [NODES] [SEED]`

use std::time::Duration;

use swimnet_core::{Config, Event, NodeState, NoopDelegate};
use swimnet_sim::{node_name, NetworkModel, Sim};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    assert!(n >= 3, "use at least 3 nodes");
    let mut s = Sim::new(seed, NetworkModel::default(), |_| NoopDelegate);
    for _ in 0..n {
        s.add_node(Config::lan);
    }
    for i in 1..n {
        s.join(i, &[0]);
    }
    println!("{n} nodes (LAN profile, seed {seed}) join through node-0 ...");
    let took = s
        .run_until_cond(Duration::from_secs(120), Duration::from_millis(100), |s| {
            s.converged()
        })
        .expect("converges");
    println!("  every node sees {n} alive members after {took:.1?} (virtual time)");

    let victim = n / 2;
    s.record_events(true);
    let t0 = s.elapsed();
    s.crash(victim);
    println!("crash {} (kill -9) ...", node_name(victim));
    let dead = |s: &Sim<NoopDelegate>| {
        (0..n)
            .filter(|&o| o != victim)
            .all(|o| matches!(s.view(o, victim), Some(NodeState::Dead) | None))
    };
    s.run_until_cond(Duration::from_secs(120), Duration::from_millis(10), dead)
        .expect("detected");
    let mut first_suspect = None;
    let mut verdicts = Vec::new();
    for (at, _, e) in s.events() {
        match e {
            Event::Suspect { node, .. }
                if *node.name == *node_name(victim) && first_suspect.is_none() =>
            {
                first_suspect = Some(*at - t0)
            }
            Event::Leave(node) if *node.name == *node_name(victim) => verdicts.push(*at - t0),
            _ => {}
        }
    }
    verdicts.sort();
    println!(
        "  first suspicion after {:.1?}",
        first_suspect.unwrap_or_default()
    );
    println!(
        "  declared dead by all {} others between {:.1?} and {:.1?}",
        verdicts.len(),
        verdicts.first().copied().unwrap_or_default(),
        verdicts.last().copied().unwrap_or_default()
    );
    let (packets, bytes) = (0..n)
        .filter(|&i| i != victim)
        .map(|i| s.sent(i))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let secs = s.elapsed().as_secs_f64();
    println!(
        "  traffic: {:.1} packets/s and {:.0} bytes/s sent per node",
        packets as f64 / secs / (n - 1) as f64,
        bytes as f64 / secs / (n - 1) as f64
    );
    println!(
        "invariant violations: {}, false positives: {}",
        s.violations().len(),
        s.false_positives().len()
    );
}
