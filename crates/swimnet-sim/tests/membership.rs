//! Membership behaviour on the deterministic harness: every test runs real
//! cores on virtual time and asserts concrete outcomes, plus the SWIM
//! invariants (no resurrection with an old incarnation, incarnations never
//! decrease) on every run.

use std::net::SocketAddr;
use std::time::Duration;

use swimnet_core::formulas::suspicion_timeout;
use swimnet_core::{Config, Event, NodeState, NoopDelegate};
use swimnet_sim::{node_name, NetworkModel, NodeId, Sim};

mod common;
use common::{converged_cluster_with, crash_and_watch, dead_latencies};

fn lan(name: String, addr: SocketAddr) -> Config {
    Config::lan(name, addr)
}

/// The test's seed, or `SWIMNET_SEED` added to it to replay or sweep other runs.
fn seed(default: u64) -> u64 {
    std::env::var("SWIMNET_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(default, |v| v.wrapping_mul(1000).wrapping_add(default))
}

fn sim(seed: u64, net: NetworkModel) -> Sim<NoopDelegate> {
    Sim::new(seed, net, |_| NoopDelegate)
}

/// Builds `n` LAN nodes that all join through node 0 and waits until every
/// node sees every other alive.
fn converged_cluster(seed: u64, n: usize, net: NetworkModel) -> Sim<NoopDelegate> {
    converged_cluster_with(seed, n, net, lan)
}

fn assert_invariants(s: &Sim<NoopDelegate>, seed: u64) {
    assert!(
        s.violations().is_empty(),
        "seed {seed}: invariant violations: {:?}",
        s.violations()
    );
}

#[test]
fn fifty_nodes_join_through_one_seed() {
    let seed = seed(1);
    let mut s = sim(seed, NetworkModel::default());
    for _ in 0..50 {
        s.add_node(lan);
    }
    for i in 1..50 {
        s.join(i, &[0]);
    }
    let took = s
        .run_until_cond(Duration::from_secs(60), Duration::from_millis(100), |s| {
            s.converged()
        })
        .expect("50 nodes converge");
    for o in 0..50 {
        let core = s.core(o).unwrap();
        assert_eq!(
            core.num_alive(),
            50,
            "node {o} sees {} alive",
            core.num_alive()
        );
        for t in 0..50 {
            assert_eq!(s.view(o, t), Some(NodeState::Alive));
        }
    }
    eprintln!("50 nodes converged in {took:?} of virtual time");
    assert!(s.false_positives().is_empty());
    assert_invariants(&s, seed);
}

#[test]
fn crashed_node_is_declared_dead_by_everyone_within_the_formula_bound() {
    let seed = seed(2);
    let n = 20;
    let mut s = converged_cluster(seed, n, NetworkModel::default());
    s.record_events(true);
    // Bound from memberlist's formulas (LAN: probe interval 1 s, suspicion mult 4, max mult 6):
    // every node probes every other within one round-robin pass of n-1 probes, plus the
    // failing probe's own interval, so each node suspects the crashed one (itself or through
    // gossip) within n * ProbeInterval; its suspicion timer then fires within the maximum
    // timeout SuspicionMaxTimeoutMult * SuspicionMult * max(1, log10 n) * ProbeInterval.
    let cfg = Config::lan("x", "127.0.0.1:1".parse().unwrap());
    let min = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval);
    let max = min * cfg.suspicion_max_timeout_mult as u32;
    let bound = cfg.probe_interval * n as u32 + max; // 20 s + 31.224 s = 51.224 s for n = 20
    assert_eq!(bound, Duration::from_millis(51_224));

    let victim: NodeId = 7;
    let crash_at = s.elapsed();
    s.crash(victim);
    let everyone_knows = |s: &Sim<NoopDelegate>| {
        (0..n)
            .filter(|&o| o != victim)
            .all(|o| matches!(s.view(o, victim), Some(NodeState::Dead) | None))
    };
    let took = s
        .run_until_cond(
            bound + Duration::from_secs(5),
            Duration::from_millis(10),
            everyone_knows,
        )
        .expect("every node marks the crashed node dead");
    let latencies = dead_latencies(&s, victim, crash_at);
    assert_eq!(
        latencies.len(),
        n - 1,
        "each of the {} others declares it dead once",
        n - 1
    );
    let worst = *latencies.last().unwrap();
    eprintln!(
        "crash detection: first {:?}, median {:?}, last {:?} (bound {bound:?})",
        latencies[0],
        latencies[latencies.len() / 2],
        worst
    );
    assert!(
        worst <= bound,
        "detection took {worst:?}, over the bound {bound:?}"
    );
    assert!(took <= bound);
    assert!(s.false_positives().is_empty(), "{:?}", s.false_positives());
    assert_invariants(&s, seed);
}

#[test]
fn ten_percent_loss_for_thirty_minutes_has_no_false_positives() {
    let seed = seed(3);
    let mut s = converged_cluster(seed, 20, NetworkModel::default());
    s.net.loss = 0.10;
    s.run_for(Duration::from_secs(30 * 60));
    let fp = s.false_positives();
    assert_eq!(fp.len(), 0, "live nodes declared dead: {fp:?}");
    // The loss is real: probes did fail and suspicions were raised and refuted.
    let failed: u64 = (0..20)
        .map(|i| s.core(i).unwrap().stats().probes_failed)
        .sum();
    let refuted: u64 = (0..20)
        .map(|i| s.core(i).unwrap().stats().refutations)
        .sum();
    eprintln!(
        "30 min at 10% loss: {failed} failed probes, {refuted} refutations, 0 false positives"
    );
    s.net.loss = 0.0;
    s.run_until_cond(Duration::from_secs(60), Duration::from_millis(100), |s| {
        s.converged()
    })
    .expect("converged after the loss ends");
    assert_invariants(&s, seed);
}

#[test]
fn ten_percent_loss_with_a_node_stalling_five_seconds_at_a_time() {
    let seed = seed(4);
    let mut s = converged_cluster(seed, 20, NetworkModel::default());
    s.net.loss = 0.10;
    let staller: NodeId = 5;
    let mut stalls = 0;
    let end = s.elapsed() + Duration::from_secs(30 * 60);
    while s.elapsed() < end {
        s.stall(staller, Duration::from_secs(5));
        stalls += 1;
        s.run_for(Duration::from_secs(30));
    }
    let fp = s.false_positives();
    assert_eq!(
        fp.len(),
        0,
        "live nodes declared dead ({stalls} stalls): {fp:?}"
    );
    let suspected: u64 = s.core(staller).unwrap().stats().refutations;
    eprintln!("{stalls} stalls of 5 s at 10% loss: stalled node refuted {suspected} times, 0 false positives");
    assert!(suspected > 0, "the stalls were noticed and refuted");
    s.net.loss = 0.0;
    s.run_until_cond(Duration::from_secs(60), Duration::from_millis(100), |s| {
        s.converged()
    })
    .expect("converged after the loss ends");
    assert_invariants(&s, seed);
}

#[test]
fn suspected_live_node_refutes_and_stays_alive() {
    let seed = seed(5);
    let n = 10;
    let mut s = converged_cluster(seed, n, NetworkModel::default());
    s.record_events(true);
    let target: NodeId = 3;
    let inc_before = s.core(target).unwrap().incarnation();
    // Cut the target off (UDP and TCP) until a prober suspects it, then let it
    // hear about it: the suspicion timeout (at least 4 s for 10 nodes) has not run out.
    let tname = node_name(target);
    s.partition(|i| (i == target) as u32);
    let suspected = |s: &Sim<NoopDelegate>| {
        s.events()
            .iter()
            .any(|(_, _, e)| matches!(e, Event::Suspect { node, .. } if *node.name == *tname))
    };
    s.run_until_cond(
        Duration::from_secs(30),
        Duration::from_millis(10),
        suspected,
    )
    .expect("someone suspects the isolated target");
    s.heal();
    // Everyone ends up with the target alive at its current (refuting)
    // incarnation: through gossip, or at the latest through push/pull (30 s).
    let everyone_current = |s: &Sim<NoopDelegate>| {
        let inc = s.core(target).unwrap().incarnation();
        s.converged()
            && (0..n).all(|o| {
                s.core(o)
                    .unwrap()
                    .member_by_name(&node_name(target))
                    .unwrap()
                    .incarnation
                    == inc
            })
    };
    s.run_until_cond(
        Duration::from_secs(65),
        Duration::from_millis(100),
        everyone_current,
    )
    .expect("reconverged on the refuting incarnation");
    let inc_after = s.core(target).unwrap().incarnation();
    assert!(
        inc_after > inc_before,
        "the target refuted with a higher incarnation"
    );
    assert!(s
        .events()
        .iter()
        .any(|(_, who, e)| *who == target && matches!(e, Event::Refuted { .. })));
    for o in 0..n {
        let m = s
            .core(o)
            .unwrap()
            .member_by_name(&node_name(target))
            .unwrap();
        assert_eq!(m.state, NodeState::Alive);
        assert_eq!(
            m.incarnation, inc_after,
            "node {o} knows the refuting incarnation"
        );
    }
    assert!(s.false_positives().is_empty());
    assert_invariants(&s, seed);
}

#[test]
fn ten_ten_partition_heals_and_reconverges() {
    let seed = seed(6);
    let n = 20;
    let mut s = converged_cluster(seed, n, NetworkModel::default());
    s.partition(|i| (i >= n / 2) as u32);
    // Long enough for each side to declare the other dead (max suspicion 31 s) and
    // then reap it (30 s of gossip to the dead, then the next probe round), so
    // healing has to go through tombstones and reconnects.
    s.run_for(Duration::from_secs(120));
    let reaped = (0..n / 2).all(|o| (n / 2..n).all(|t| s.view(o, t).is_none()));
    assert!(
        reaped,
        "the other side was reaped from the tables during the partition"
    );
    for o in 0..n / 2 {
        for t in n / 2..n {
            assert!(
                matches!(s.view(o, t), Some(NodeState::Dead) | None),
                "node {o} still has {t} as {:?} during the partition",
                s.view(o, t)
            );
        }
    }
    s.heal();
    let took = s
        .run_until_cond(Duration::from_secs(180), Duration::from_millis(100), |s| {
            s.converged()
        })
        .expect("membership reconverges after the partition heals");
    eprintln!("10|10 partition healed; reconverged in {took:?}");
    assert_invariants(&s, seed);
}

/// A leave whose broadcast cannot use its retransmits in time (here a
/// retransmit budget of 200 sends, 40 s of gossip) is reported complete by
/// the node itself at its deadline, five probe intervals after the call,
/// marked as timed out: whoever waits for it (the agent before exiting)
/// needs no deadline of its own.
#[test]
fn a_stalled_leave_completes_at_the_nodes_own_deadline() {
    fn slow_broadcasts(name: String, addr: SocketAddr) -> Config {
        let mut c = lan(name, addr);
        c.retransmit_mult = 200;
        c
    }
    let mut s = converged_cluster_with(seed(8), 3, NetworkModel::default(), slow_broadcasts);
    s.record_events(true);
    let leaver: NodeId = 1;
    let now = s.now();
    let left_at = s.elapsed();
    s.core_mut(leaver).unwrap().leave(now);
    s.flush(leaver);
    s.run_for(Duration::from_secs(10));
    let complete: Vec<_> = s
        .events()
        .iter()
        .filter(|(_, who, e)| *who == leaver && matches!(e, Event::LeaveComplete { .. }))
        .map(|(at, _, e)| (*at - left_at, e.clone()))
        .collect();
    let probe = s.core(leaver).unwrap().config().probe_interval;
    assert_eq!(
        complete.len(),
        1,
        "one LeaveComplete within 10 s: {complete:?}"
    );
    assert!(matches!(
        complete[0].1,
        Event::LeaveComplete { timed_out: true }
    ));
    assert_eq!(
        complete[0].0,
        probe * swimnet_core::LEAVE_TIMEOUT_PROBES,
        "at the deadline"
    );
}

#[test]
fn graceful_leave_shows_left_not_dead() {
    let seed = seed(7);
    let n = 8;
    let mut s = converged_cluster(seed, n, NetworkModel::default());
    s.record_events(true);
    let leaver: NodeId = 2;
    let now = s.now();
    s.core_mut(leaver).unwrap().leave(now);
    s.flush(leaver);
    s.run_for(Duration::from_secs(5));
    assert!(s.events().iter().any(
        |(_, who, e)| *who == leaver && matches!(e, Event::LeaveComplete { timed_out: false })
    ));
    for o in (0..n).filter(|&o| o != leaver) {
        assert_eq!(s.view(o, leaver), Some(NodeState::Left), "node {o}");
    }
    s.crash(leaver); // the agent shuts down after leaving
    s.run_for(Duration::from_secs(60));
    assert!(
        s.false_positives().is_empty(),
        "a left node is never declared dead"
    );
    assert_invariants(&s, seed);
}

#[test]
fn metadata_update_reaches_everyone() {
    let seed = seed(8);
    let n = 12;
    let mut s = converged_cluster(seed, n, NetworkModel::default());
    let now = s.now();
    s.core_mut(4)
        .unwrap()
        .set_meta(now, b"role=db".to_vec())
        .unwrap();
    s.flush(4);
    let err = s
        .core_mut(4)
        .unwrap()
        .set_meta(now, vec![0; 513])
        .unwrap_err();
    assert!(err.to_string().contains("513 bytes"), "{err}");
    s.run_until_cond(Duration::from_secs(30), Duration::from_millis(100), |s| {
        (0..n).all(|o| {
            s.core(o)
                .unwrap()
                .member_by_name(&node_name(4))
                .unwrap()
                .meta
                == b"role=db"
        })
    })
    .expect("every node learns the new metadata");
    assert_invariants(&s, seed);
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut s = converged_cluster(
            seed,
            10,
            NetworkModel {
                loss: 0.05,
                ..Default::default()
            },
        );
        s.crash(3);
        s.run_for(Duration::from_secs(40));
        (0..10).map(|i| s.sent(i)).collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

/// Crashes node 7 of a converged `n`-node cluster and returns, sorted, how
/// long each other node took to declare it dead.
fn crash_detection(seed: u64, n: usize, make: fn(String, SocketAddr) -> Config) -> Vec<Duration> {
    crash_and_watch(seed, n, 7, make, Duration::from_secs(60)).1
}

/// swimnet's last check of a suspect goes out one probe timeout before the
/// suspicion deadline, so it costs no detection time: a crashed node is
/// declared dead as soon as with memberlist's plain timer.
#[test]
fn last_check_before_dead_costs_no_detection_time() {
    fn plain(name: String, addr: SocketAddr) -> Config {
        Config {
            probe_before_dead: false,
            ..Config::lan(name, addr)
        }
    }
    for k in 0..4 {
        let sd = seed(20 + k);
        let with = crash_detection(sd, 20, lan);
        let without = crash_detection(sd, 20, plain);
        let (m1, m0) = (with[with.len() / 2], without[without.len() / 2]);
        let (f1, f0) = (with[0], without[0]);
        eprintln!("seed {sd}: first/median with last check {f1:?}/{m1:?}, without {f0:?}/{m0:?}");
        assert!(
            f1 <= f0 + Duration::from_millis(100) && m1 <= m0 + Duration::from_millis(150),
            "seed {sd}: the last check delayed detection: first {f1:?} vs {f0:?}, median {m1:?} vs {m0:?}"
        );
    }
}
