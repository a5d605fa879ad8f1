//! Latency-aware peer selection (`Config::topology`) on the deterministic
//! harness. The harness's network is uniform (every pair equally far), so
//! these runs cannot show a gain; they check that turning the bias on
//! costs nothing that matters: coordinates settle so the biased choice is
//! really used, the cluster converges, a crash is detected by everyone as
//! fast as with uniform choice, and a partition heals.

use std::net::SocketAddr;
use std::time::Duration;

use swimnet_core::topology::TopologyConfig;
use swimnet_core::{Config, NoopDelegate};
use swimnet_sim::{NetworkModel, NodeId, Sim};

mod common;
use common::dead_latencies;

fn uniform(name: String, addr: SocketAddr) -> Config {
    Config::lan(name, addr)
}

fn aware(name: String, addr: SocketAddr) -> Config {
    Config {
        topology: TopologyConfig::on(),
        ..Config::lan(name, addr)
    }
}

fn cluster(seed: u64, n: usize, make: fn(String, SocketAddr) -> Config) -> Sim<NoopDelegate> {
    let mut s = Sim::new(seed, NetworkModel::default(), |_| NoopDelegate);
    for _ in 0..n {
        s.add_node(make);
    }
    for i in 1..n {
        s.join(i, &[0]);
    }
    s.run_until_cond(Duration::from_secs(120), Duration::from_millis(100), |s| {
        s.converged()
    })
    .unwrap_or_else(|| panic!("seed {seed}: {n} nodes did not converge"));
    // Two minutes of probes: coordinates settle and the bias is in use.
    s.run_for(Duration::from_secs(120));
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    s
}

/// Crashes node 7 and returns the median time for the others to declare
/// it dead, and how many did.
fn crash_median(s: &mut Sim<NoopDelegate>) -> (Duration, usize) {
    s.record_events(true);
    let victim: NodeId = 7;
    let crash_at = s.elapsed();
    s.crash(victim);
    s.run_for(Duration::from_secs(60));
    let took = dead_latencies(s, victim, crash_at);
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    (
        took.get(took.len() / 2).copied().unwrap_or_default(),
        took.len(),
    )
}

#[test]
fn biased_choice_is_used_and_crash_detection_is_no_slower() {
    let n = 20;
    for seed in [31, 32, 33] {
        let mut on = cluster(seed, n, aware);
        let using = (0..n)
            .filter(|&i| on.core(i).unwrap().stats().topology_choices > 0)
            .count();
        assert!(using >= n * 3 / 4, "seed {seed}: only {using} nodes biased");
        let mut off = cluster(seed, n, uniform);
        assert!((0..n).all(|i| off.core(i).unwrap().stats().topology_choices == 0));
        let (m_on, k_on) = crash_median(&mut on);
        let (m_off, k_off) = crash_median(&mut off);
        eprintln!(
            "seed {seed}: {using}/{n} nodes biased; crash detected by {k_on} (aware) / \
             {k_off} (uniform), median {m_on:?} / {m_off:?}"
        );
        assert_eq!((k_on, k_off), (n - 1, n - 1), "seed {seed}");
        assert!(
            m_on <= m_off + m_off / 4,
            "seed {seed}: median detection {m_on:?} aware vs {m_off:?} uniform"
        );
    }
}

#[test]
fn partition_heals_with_biased_choice() {
    let (seed, n) = (34, 20);
    let mut s = cluster(seed, n, aware);
    s.partition(|i| (i >= n / 2) as u32);
    s.run_for(Duration::from_secs(120));
    s.heal();
    let took = s
        .run_until_cond(Duration::from_secs(180), Duration::from_millis(100), |s| {
            s.converged()
        })
        .expect("membership reconverges after the partition heals");
    eprintln!("10|10 partition healed with topology-aware choice; reconverged in {took:?}");
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}
