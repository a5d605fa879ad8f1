//! Latency-aware peer selection (`Config::topology`) on the deterministic
//! harness.
//!
//! The first tests use the harness's uniform network (every pair equally
//! far), where the bias cannot gain anything; they check that turning it
//! on costs nothing that matters: coordinates settle, no near cluster is
//! found in measurement noise (so choices and probes stay uniform), the
//! cluster converges, a crash is detected by everyone as fast as with
//! uniform choice, and a partition heals.
//!
//! The scenario tests at the end are the small-size twins of
//! `scenarios/topology-4x250-{on,off}.toml`: 4 regions of 25 nodes with a
//! latency matrix and 1% loss, the same seed with the bias on and off.

use std::net::SocketAddr;
use std::time::Duration;

use swimnet_core::topology::TopologyConfig;
use swimnet_core::{Config, NoopDelegate};
use swimnet_sim::report::Report;
use swimnet_sim::scenario::{run, RunOptions, Scenario};
use swimnet_sim::{NetworkModel, NodeId, Sim};

mod common;
use common::{converged_cluster_with, dead_latencies};

fn uniform(name: String, addr: SocketAddr) -> Config {
    Config {
        topology: TopologyConfig::off(),
        ..Config::lan(name, addr)
    }
}

fn aware(name: String, addr: SocketAddr) -> Config {
    Config {
        topology: TopologyConfig::on(),
        ..Config::lan(name, addr)
    }
}

fn cluster(seed: u64, n: usize, make: fn(String, SocketAddr) -> Config) -> Sim<NoopDelegate> {
    let mut s = converged_cluster_with(seed, n, NetworkModel::default(), make);
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
fn uniform_network_keeps_uniform_choice_and_crash_detection_is_no_slower() {
    let n = 20;
    for seed in [31, 32, 33] {
        let mut on = cluster(seed, n, aware);
        // Coordinates settled, but on a network where every pair is
        // equally far the distances are noise: no near cluster stands out,
        // so (nearly) every choice stays uniform.
        let settled = (0..n)
            .filter(|&i| {
                on.core(i)
                    .and_then(|c| c.topology_view())
                    .is_some_and(|v| v.settled && !v.distances.is_empty())
            })
            .count();
        assert_eq!(settled, n, "seed {seed}: coordinates did not settle");
        let biased: u64 = (0..n)
            .map(|i| on.core(i).unwrap().stats().topology_choices)
            .sum();
        let mut off = cluster(seed, n, uniform);
        assert!((0..n).all(|i| off.core(i).unwrap().stats().topology_choices == 0));
        let (m_on, k_on) = crash_median(&mut on);
        let (m_off, k_off) = crash_median(&mut off);
        eprintln!(
            "seed {seed}: {biased} biased choices in 20 nodes x 4 min; crash detected by \
             {k_on} (aware) / {k_off} (uniform), median {m_on:?} / {m_off:?}"
        );
        // Each node makes about 5 gossip choices and 1 probe choice per
        // second: 24,000 in the 4 minutes; noise may pass for a cluster
        // now and then, rarely.
        assert!(biased < 1_000, "seed {seed}: {biased} biased choices");
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

/// 4 regions x 25 nodes: 1 ms round trips inside a region, 50 to 150 ms
/// between regions (10% jitter), 1% loss; a minute of warm-up for the
/// coordinates, then 6 broadcasts and 2 crashes in 40 s.
fn regions_scenario(protocol: &str, aware: bool) -> String {
    regions_scenario_with(protocol, aware, "")
}

/// [`regions_scenario`] with more `[config]` lines.
fn regions_scenario_with(protocol: &str, aware: bool, config: &str) -> String {
    let workload = if protocol == "networkdb" {
        "[workload]\nnetworks = 2\nattach_fraction = 0.6\nwriters = 2\nrate = 2\nvalue_size = 64\nuntil = \"35s\"\n"
    } else {
        ""
    };
    format!(
        r#"
        name = "t-topology"
        nodes = 100
        duration = "40s"
        protocol = "{protocol}"
        [bootstrap]
        warm = "180s"
        [config]
        topology_aware = {aware}
        {config}
        [network]
        latency = "0.5ms"
        jitter = "0.05ms"
        jitter_fraction = 0.1
        loss = 0.01
        region_latency_ms = [[0, 25, 50, 75], [25, 0, 35, 60], [50, 35, 0, 40], [75, 60, 40, 0]]
        [[network.regions]]
        name = "r0"
        [[network.regions]]
        name = "r1"
        [[network.regions]]
        name = "r2"
        [[network.regions]]
        name = "r3"
        [[broadcast]]
        at = "2s"
        count = 6
        every = "5s"
        [[crash]]
        at = "10s"
        count = 2
        {workload}
        "#
    )
}

fn run_scenario(text: &str, seed: u64) -> Report {
    let sc = Scenario::from_toml(text).expect("scenario parses");
    run(
        &sc,
        &RunOptions {
            seed: Some(seed),
            progress: false,
        },
    )
    .report
}

/// Cross-region bytes and packets sent in the measured window.
fn cross(r: &Report) -> (u64, u64) {
    let c = r
        .traffic
        .cross_region
        .as_ref()
        .expect("a region scenario reports cross-region traffic");
    (c.bytes, c.packets)
}

fn assert_sound(r: &Report, what: &str) {
    assert!(r.failures.is_empty(), "{what}: {:?}", r.failures);
    assert_eq!(r.false_positives, 0, "{what}: live nodes declared dead");
    assert_eq!(r.broadcasts.len(), 6, "{what}");
    for b in &r.broadcasts {
        assert_eq!(
            b.informed, b.targets,
            "{what}: {} did not reach everyone",
            b.what
        );
        assert!(b.t100_s.is_some(), "{what}");
    }
    assert_eq!(r.detections.len(), 2, "{what}");
    for d in &r.detections {
        assert_eq!(
            d.undetected_by, 0,
            "{what}: crash of node {} missed",
            d.node
        );
    }
}

fn compare(protocol: &str, seed: u64) -> (Report, Report) {
    let off = run_scenario(&regions_scenario(protocol, false), seed);
    let on = run_scenario(&regions_scenario(protocol, true), seed);
    let what = format!("{protocol} seed {seed}");
    // TOPO_DEBUG=1 prints both summaries (breakdown by kind).
    if std::env::var("TOPO_DEBUG").is_ok() {
        eprintln!("OFF\n{}\nON\n{}", off.summary(None), on.summary(None));
    }
    assert_sound(&off, &format!("{what} off"));
    assert_sound(&on, &format!("{what} on"));
    assert_eq!(off.topology_choices, 0, "{what}");
    assert!(on.topology_choices > 0, "{what}: the bias was never used");
    let ((b_off, p_off), (b_on, p_on)) = (cross(&off), cross(&on));
    eprintln!(
        "{what}: cross-region bytes {b_on} on / {b_off} off, packets {p_on} / {p_off}; \
         t100 max {:.3} / {:.3} s; coordinate median error {:.3}",
        on.dissemination_t100.max,
        off.dissemination_t100.max,
        on.coordinates
            .as_ref()
            .map_or(f64::NAN, |c| c.median_rel_error),
    );
    assert!(
        b_on < b_off,
        "{what}: {b_on} cross-region bytes on vs {b_off} off"
    );
    assert!(
        p_on < p_off,
        "{what}: {p_on} cross-region packets on vs {p_off} off"
    );
    (off, on)
}

#[test]
fn regions_topology_on_sends_fewer_cross_region_bytes_and_loses_nothing() {
    for seed in [1, 2] {
        let (off, on) = compare("memberlist", seed);
        // Without the probes (uniform by design, a fixed floor) the rest
        // of the cross-region traffic, mostly gossip, shrinks by more.
        let non_probe = |r: &Report| {
            let c = r.traffic.cross_region.as_ref().unwrap();
            c.bytes_out_mean
                - ["ping", "ack", "nack"]
                    .iter()
                    .map(|k| c.bytes_out_by_kind.get(*k).copied().unwrap_or(0.0))
                    .sum::<f64>()
        };
        assert!(
            non_probe(&on) < 0.75 * non_probe(&off),
            "seed {seed}: non-probe cross-region {:.1} B/s on vs {:.1} off",
            non_probe(&on),
            non_probe(&off)
        );
        let acc = on.coordinates.as_ref().expect("coordinates are on");
        assert!(acc.pairs > 1000, "seed {seed}: {} pairs", acc.pairs);
        assert!(
            acc.median_rel_error <= 0.10,
            "seed {seed}: median relative RTT error {}",
            acc.median_rel_error
        );
    }
}

#[test]
fn regions_topology_on_networkdb_tables_converge_with_fewer_cross_region_bytes() {
    let (off, on) = compare("networkdb", 3);
    // Every write reached every attached node that stayed up (writes to
    // nodes that crashed later cannot): the run's own end-of-run checks,
    // in `failures`, found no table disagreement and no lost entry.
    for r in [&off, &on] {
        let t = r.tables.as_ref().expect("a table workload");
        assert!(t.writes > 100 && t.entries_checked > 0, "{t:?}");
        assert!(r.settle_s.is_some());
        // The slowest writes are reported, slowest first, the first being
        // the maximum of the convergence times.
        let slow = &t.slowest;
        assert!(!slow.is_empty() && slow.len() <= 5, "{slow:?}");
        assert_eq!(slow[0].seconds, t.write_convergence.max);
        assert!(slow.windows(2).all(|w| w[0].seconds >= w[1].seconds));
        assert!(slow.iter().all(|w| w.write < t.writes && w.last_region < 4));
    }
}

/// Near-biased probing (`TopologyConfig::probe_near_fraction`, 2/3 by
/// default) moves probes and acks, otherwise uniform round-robin, off the
/// wide-area links, while every broadcast still reaches everyone and
/// crashes are detected by all.
#[test]
fn near_biased_probing_keeps_probes_in_region() {
    let probe_bytes = |r: &Report| {
        let c = r.traffic.cross_region.as_ref().unwrap();
        ["ping", "ack", "nack"]
            .iter()
            .map(|k| c.bytes_out_by_kind.get(*k).copied().unwrap_or(0.0))
            .sum::<f64>()
    };
    for seed in [1, 2] {
        let round_robin = run_scenario(
            &regions_scenario_with("memberlist", true, "topology_probe_near_fraction = 0.0"),
            seed,
        );
        let near = run_scenario(&regions_scenario("memberlist", true), seed);
        assert_sound(&round_robin, &format!("seed {seed} round-robin probes"));
        assert_sound(&near, &format!("seed {seed} near probes"));
        let (p, q) = (probe_bytes(&round_robin), probe_bytes(&near));
        eprintln!(
            "seed {seed}: cross-region probe bytes {q:.1} B/s near-biased vs {p:.1} round-robin; \
             all cross-region {} vs {}",
            cross(&near).0,
            cross(&round_robin).0
        );
        // About -37 % and -55 % after this short warm-up (the near
        // cluster forms as coordinates settle); -62 % on both seeds
        // after 400 s.
        assert!(q < 0.7 * p, "seed {seed}: {q:.1} vs {p:.1} B/s");
        assert!(cross(&near).0 < cross(&round_robin).0, "seed {seed}");
    }
}
