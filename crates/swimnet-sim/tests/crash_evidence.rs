//! Crash verdicts from refused TCP pings (`Config::refusal_verdicts`) on the
//! deterministic harness. A crashed process on a live host is declared dead
//! by everyone before the shortest suspicion timeout could end; a host that
//! is stalled, partitioned away or drops TCP gets exactly the verdicts it
//! got without the feature (same seed, same events, at the same times); and
//! a host that rejects TCP but answers over UDP is never condemned by its
//! refusals.

use std::net::SocketAddr;
use std::time::Duration;

use swimnet_core::formulas::suspicion_timeout;
use swimnet_core::{Config, Event, NodeState, NoopDelegate};
use swimnet_sim::{node_name, NetworkModel, NodeId, Sim};

mod common;

const N: usize = 16;
const VICTIM: NodeId = 5;

fn with_refusals(name: String, addr: SocketAddr) -> Config {
    Config::lan(name, addr)
}

fn without_refusals(name: String, addr: SocketAddr) -> Config {
    Config {
        refusal_verdicts: false,
        ..Config::lan(name, addr)
    }
}

/// `N` LAN nodes built with `make`, all joined through node 0 and
/// converged, recording events from then on.
fn cluster(seed: u64, make: fn(String, SocketAddr) -> Config) -> Sim<NoopDelegate> {
    let mut s = common::converged_cluster_with(seed, N, NetworkModel::default(), make);
    s.record_events(true);
    s
}

/// The shortest suspicion timeout of an `N`-node LAN cluster: without
/// crash evidence no verdict can come sooner after the suspicion starts.
fn shortest_suspicion() -> Duration {
    let cfg = Config::lan("x", "127.0.0.1:1".parse().unwrap());
    suspicion_timeout(cfg.suspicion_mult, N, cfg.probe_interval)
}

/// Crashes `VICTIM` and returns, sorted, how long each other node took to
/// declare it dead, and how many verdicts came from refusals.
fn crash_latencies(seed: u64, make: fn(String, SocketAddr) -> Config) -> (Vec<Duration>, u64) {
    let (s, latencies) = common::crash_and_watch(seed, N, VICTIM, make, Duration::from_secs(45));
    assert!(s.false_positives().is_empty(), "{:?}", s.false_positives());
    let by_refusal = (0..N)
        .filter(|&i| i != VICTIM)
        .map(|i| s.core(i).unwrap().stats().refusal_verdicts)
        .sum();
    (latencies, by_refusal)
}

#[test]
fn a_crashed_process_is_dead_everywhere_before_the_shortest_suspicion_ends() {
    let floor = shortest_suspicion();
    assert_eq!(floor, Duration::from_millis(4_816));
    for seed in 300..306 {
        let (with, refusals) = crash_latencies(seed, with_refusals);
        let (without, none) = crash_latencies(seed, without_refusals);
        let (last, last_before) = (*with.last().unwrap(), *without.last().unwrap());
        eprintln!(
            "seed {seed}: crash verdicts first/median/last {:?}/{:?}/{last:?} \
             ({refusals} from refusals); without {:?}/{:?}/{last_before:?}",
            with[0],
            with[with.len() / 2],
            without[0],
            without[without.len() / 2],
        );
        assert!(refusals >= 1, "seed {seed}: a verdict came from refusals");
        assert_eq!(none, 0, "seed {seed}: the feature was off");
        assert!(
            last < floor,
            "seed {seed}: the last verdict came {last:?} after the crash, not before {floor:?}"
        );
        assert!(
            without[0] >= floor,
            "seed {seed}: without, {:?}",
            without[0]
        );
    }
}

/// What happens to `VICTIM` under `disturb`, run for 60 s: every event any
/// node reported about it, with its time, and the false dead verdicts.
fn trace(
    seed: u64,
    make: fn(String, SocketAddr) -> Config,
    disturb: fn(&mut Sim<NoopDelegate>),
) -> (Vec<String>, usize, u64) {
    let mut s = cluster(seed, make);
    disturb(&mut s);
    s.run_for(Duration::from_secs(60));
    let name = node_name(VICTIM);
    let events = s
        .events()
        .iter()
        .filter(|(_, _, e)| match e {
            Event::Suspect { node, .. } => *node.name == *name,
            Event::Leave(node) | Event::Join(node) | Event::Update(node) => *node.name == *name,
            _ => false,
        })
        .map(|(at, who, e)| format!("{at:?} node {who}: {e:?}"))
        .collect();
    let refusals = (0..N)
        .filter_map(|i| s.core(i))
        .map(|c| c.stats().refusal_verdicts)
        .sum();
    (events, s.false_positives().len(), refusals)
}

/// Runs `disturb` with and without refusal verdicts on the same seeds and
/// asserts that nothing about `VICTIM` changes: the same suspicions and
/// verdicts at the same virtual times.
fn same_verdicts_as_without(what: &str, disturb: fn(&mut Sim<NoopDelegate>), seeds: u64) {
    let mut suspected = 0;
    for seed in 400..400 + seeds {
        let (with, fp_with, refusals) = trace(seed, with_refusals, disturb);
        let (without, fp_without, _) = trace(seed, without_refusals, disturb);
        assert_eq!(refusals, 0, "seed {seed}: {what}: a verdict from refusals");
        assert_eq!(
            with, without,
            "seed {seed}: {what}: crash evidence changed what happened to the host"
        );
        assert_eq!(fp_with, fp_without);
        suspected += with.iter().filter(|e| e.contains("Suspect")).count();
        eprintln!(
            "seed {seed}: {what}: {} events about the host, {fp_with} false dead verdicts, \
             identical with and without refusal verdicts",
            with.len()
        );
    }
    assert!(suspected > 0, "{what}: the host was never even suspected");
}

#[test]
fn a_stalled_host_gets_no_earlier_verdict() {
    // A process stopped (SIGSTOP) for 12 s: longer than the shortest
    // suspicion, so some verdicts fall inside the stall.
    same_verdicts_as_without("stall", |s| s.stall(VICTIM, Duration::from_secs(12)), 4);
}

#[test]
fn a_partitioned_host_gets_no_earlier_verdict() {
    same_verdicts_as_without("partition", |s| s.partition(|i| u32::from(i == VICTIM)), 4);
}

#[test]
fn a_host_behind_lossy_udp_and_dropped_tcp_gets_no_earlier_verdict() {
    same_verdicts_as_without(
        "lossy UDP, TCP dropped",
        |s| {
            s.set_node_loss(VICTIM, 0.8);
            s.set_tcp_silent(VICTIM, true);
        },
        4,
    );
}

/// A host whose firewall rejects TCP (every TCP ping to it is refused) and
/// whose inbound UDP is cut until someone suspects it, with the first
/// refusal as evidence. Then UDP comes back (`udp_back`): the check that
/// follows is answered, which clears the evidence, and the host is never
/// declared dead. If UDP stays cut, the host cannot be told from a crashed
/// process and the refusals condemn it quickly (the limitation the README
/// states).
fn tcp_rejecting_host(seed: u64, udp_back: bool) -> (u64, bool) {
    let mut s = cluster(seed, with_refusals);
    s.set_tcp_refused(VICTIM, true);
    s.set_node_loss(VICTIM, 1.0);
    let name = node_name(VICTIM);
    s.run_until_cond(Duration::from_secs(30), Duration::from_millis(10), |s| {
        s.events()
            .iter()
            .any(|(_, _, e)| matches!(e, Event::Suspect { node, .. } if *node.name == *name))
    })
    .expect("someone suspects the host");
    if udp_back {
        s.set_node_loss(VICTIM, 0.0);
    }
    s.run_for(Duration::from_secs(60));
    let verdicts = (0..N)
        .filter(|&i| i != VICTIM)
        .map(|i| s.core(i).unwrap().stats().refusal_verdicts)
        .sum();
    let dead = (0..N).any(|o| o != VICTIM && s.view(o, VICTIM) == Some(NodeState::Dead));
    (verdicts, dead)
}

#[test]
fn a_host_that_answers_over_udp_is_not_condemned_by_refusals() {
    for seed in 500..504 {
        let (verdicts, dead) = tcp_rejecting_host(seed, true);
        assert_eq!(
            verdicts, 0,
            "seed {seed}: refusals condemned a host that answers"
        );
        assert!(!dead, "seed {seed}: the host was declared dead");
        let (verdicts, dead) = tcp_rejecting_host(seed, false);
        assert!(
            verdicts > 0 && dead,
            "seed {seed}: silent over UDP and refusing TCP"
        );
    }
}
