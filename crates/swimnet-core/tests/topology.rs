//! Latency-aware peer selection in the core, measured on
//! one core on a virtual clock with injected coordinates: 63 peers, 15 in
//! our region (about 1 ms away) and 48 in a far one (about 60 ms away).
//!
//! The test answers nothing directly, so every probe goes through
//! indirect-probe helpers (which the test acks for, so nobody is
//! suspected); a delegate always has a broadcast queued, so every gossip
//! round goes to `gossip_nodes` peers; push/pull runs every 2 s (4 s once
//! scaled for 64 nodes). It counts where gossip, helper requests and
//! push/pull went with selection off and on. Run with `--nocapture` to see
//! the figures.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_core::coordinate::Coordinate;
use swimnet_core::topology::TopologyConfig;
use swimnet_core::wire::codec::{self, Message};
use swimnet_core::wire::msg::{AckResp, Alive};
use swimnet_core::{Config, Delegate, Memberlist, StreamCommand};

const NEAR: usize = 15;
const FAR: usize = 48;
const PEERS: usize = NEAR + FAR;

/// Always has one small user broadcast to piggy-back.
struct Chatty;

impl Delegate for Chatty {
    fn get_broadcasts(&mut self, _overhead: usize, _limit: usize, _n: usize) -> Vec<Vec<u8>> {
        vec![b"update".to_vec()]
    }
}

fn me() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7946))
}

fn peer(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 1, i as u8 + 2], 7946))
}

fn index_of(a: SocketAddr) -> usize {
    match a.ip() {
        std::net::IpAddr::V4(v) => v.octets()[3] as usize - 2,
        _ => unreachable!("IPv4 test addresses"),
    }
}

fn is_near(a: SocketAddr) -> bool {
    index_of(a) < NEAR
}

/// A settled coordinate (error 0.1) at `(x, y)` seconds.
fn at(x: f64, y: f64) -> Coordinate {
    let mut c = Coordinate::origin(&Default::default());
    c.vec[0] = x;
    c.vec[1] = y;
    c.error = 0.1;
    c
}

/// Peer `i`'s position: ours is the origin; near peers within about 1 ms,
/// far ones about 60 ms away, spread over 12 ms.
fn position(i: usize) -> Coordinate {
    if i < NEAR {
        at(0.0003 + 0.0001 * (i % 5) as f64, 0.0002 * (i % 3) as f64)
    } else {
        at(0.060, 0.002 * (i % 7) as f64)
    }
}

fn node(enabled: bool, now: Instant) -> Memberlist<Chatty> {
    let mut c = Config::lan("me", me());
    c.topology = TopologyConfig {
        enabled,
        ..TopologyConfig::default()
    };
    c.push_pull_interval = Duration::from_secs(2);
    c.reconnect_interval = Duration::ZERO;
    c.disable_tcp_pings = true;
    let mut ml = Memberlist::new(c, Chatty, now, 2024).unwrap();
    for i in 0..PEERS {
        let alive = Message::Alive(Alive {
            incarnation: 1,
            node: format!("p{i}"),
            addr: match peer(i).ip() {
                std::net::IpAddr::V4(v) => v.octets().to_vec(),
                _ => unreachable!(),
            },
            port: 7946,
            meta: Vec::new(),
            vsn: vec![1, 5, 2, 0, 0, 0],
        });
        let mut b = Vec::new();
        codec::encode(&alive, &mut b);
        ml.handle_packet(now, peer(i), &b);
    }
    ml.inject_coordinates(
        Some(at(0.0, 0.0)),
        (0..PEERS).map(|i| (format!("p{i}"), position(i))),
    )
    .unwrap();
    ml
}

#[derive(Default, Debug)]
struct Tally {
    gossip: usize,
    gossip_near: usize,
    far_reached: BTreeSet<usize>,
    helpers_for_near: usize,
    helpers_for_near_near: usize,
    helpers_for_far: usize,
    helpers_for_far_near: usize,
    push_pull: usize,
    push_pull_near: usize,
    /// Direct pings (one per probe) by target.
    pings: std::collections::BTreeMap<usize, usize>,
}

impl Tally {
    fn share(a: usize, b: usize) -> f64 {
        a as f64 / b.max(1) as f64
    }
}

fn run(enabled: bool, secs: u64) -> (Tally, u64) {
    let start = Instant::now();
    let mut now = start;
    let mut ml = node(enabled, now);
    let mut t = Tally::default();
    let end = start + Duration::from_secs(secs);
    while now < end {
        now = ml.poll_timeout().expect("timers always armed").max(now);
        ml.handle_timeout(now);
        let mut acks = Vec::new();
        while let Some(tx) = ml.poll_transmit() {
            let msgs = swimnet_testkit::open_plain(&tx.payload);
            let mut protocol = false;
            for m in &msgs {
                match m {
                    Message::IndirectPing(ind) => {
                        protocol = true;
                        let target: usize = ind.node[1..].parse().unwrap();
                        if target < NEAR {
                            t.helpers_for_near += 1;
                            t.helpers_for_near_near += usize::from(is_near(tx.dst));
                        } else {
                            t.helpers_for_far += 1;
                            t.helpers_for_far_near += usize::from(is_near(tx.dst));
                        }
                        acks.push((tx.dst, ind.seq_no));
                    }
                    Message::Ping(_) => {
                        protocol = true;
                        *t.pings.entry(index_of(tx.dst)).or_default() += 1;
                    }
                    Message::AckResp(_) | Message::NackResp(_) => protocol = true,
                    _ => {}
                }
            }
            if !protocol {
                t.gossip += 1;
                if is_near(tx.dst) {
                    t.gossip_near += 1;
                } else {
                    t.far_reached.insert(index_of(tx.dst));
                }
            }
        }
        // The helpers reach the target: the probe succeeds indirectly.
        for (helper, seq) in acks {
            let mut b = Vec::new();
            codec::encode(
                &Message::AckResp(AckResp {
                    seq_no: seq,
                    payload: Vec::new(),
                }),
                &mut b,
            );
            ml.handle_packet(now, helper, &b);
        }
        while let Some(cmd) = ml.poll_stream() {
            if let StreamCommand::Open { id, to, .. } = cmd {
                // TCP pings and reconnects are off: this is a push/pull.
                t.push_pull += 1;
                t.push_pull_near += usize::from(is_near(to));
                ml.handle_stream_error(now, id, "not simulated");
            }
        }
        while ml.poll_event().is_some() {}
    }
    assert_eq!(ml.num_alive(), PEERS + 1, "nobody was suspected for long");
    (t, ml.stats().topology_choices)
}

#[test]
fn selection_favours_the_near_region_and_still_reaches_the_far_one() {
    let (off, off_choices) = run(false, 300);
    let (on, on_choices) = run(true, 300);
    for (name, t) in [("uniform", &off), ("topology-aware", &on)] {
        eprintln!(
            "{name}: gossip {} sends, {:.1}% near, {} of {FAR} far peers reached; \
             helpers for near targets {} ({:.1}% near), for far targets {} ({:.1}% near); \
             push/pull {} ({:.1}% near)",
            t.gossip,
            100.0 * Tally::share(t.gossip_near, t.gossip),
            t.far_reached.len(),
            t.helpers_for_near,
            100.0 * Tally::share(t.helpers_for_near_near, t.helpers_for_near),
            t.helpers_for_far,
            100.0 * Tally::share(t.helpers_for_far_near, t.helpers_for_far),
            t.push_pull,
            100.0 * Tally::share(t.push_pull_near, t.push_pull),
        );
    }
    assert_eq!(off_choices, 0, "no latency-aware choice while off");
    assert!(on_choices > 1000, "{on_choices} latency-aware choices");
    // Enough traffic for the shares to mean something.
    for t in [&off, &on] {
        assert!(t.gossip > 3000 && t.push_pull > 50, "{t:?}");
        assert!(t.helpers_for_near > 100 && t.helpers_for_far > 150, "{t:?}");
    }
    // Uniform: 15 of 63 peers are near (23.8%).
    let g_off = Tally::share(off.gossip_near, off.gossip);
    assert!(
        (0.19..0.29).contains(&g_off),
        "uniform gossip near share {g_off}"
    );
    // Aware: 2 of 3 targets from the near cluster (our 15), the third
    // uniform (about 14/61 of them near): (2 + 0.23) / 3 = 74%.
    let g_on = Tally::share(on.gossip_near, on.gossip);
    assert!(
        (0.68..0.80).contains(&g_on),
        "aware gossip near share {g_on}"
    );
    // The uniform slot still reaches every far peer.
    assert_eq!(on.far_reached.len(), FAR);
    assert_eq!(off.far_reached.len(), FAR);
    // Probes: round-robin over all (15 of 63 near) when off; two rounds in
    // three probe the near cluster when on: 2/3 + 1/3 * 15/63 = 75%.
    let probes = |t: &Tally| t.helpers_for_near + t.helpers_for_far;
    let q_off = Tally::share(off.helpers_for_near, probes(&off));
    let q_on = Tally::share(on.helpers_for_near, probes(&on));
    assert!(
        (0.17..0.31).contains(&q_off) && (0.68..0.82).contains(&q_on),
        "near probe targets {q_off} -> {q_on}"
    );
    // Helpers for a near target: near helpers are on the short path.
    let h_off = Tally::share(off.helpers_for_near_near, off.helpers_for_near);
    let h_on = Tally::share(on.helpers_for_near_near, on.helpers_for_near);
    assert!(
        h_off < 0.35 && h_on > 0.6,
        "helpers for near targets {h_off} -> {h_on}"
    );
    // Push/pull partner: near 2 times in 3, plus uniform hits.
    let p_off = Tally::share(off.push_pull_near, off.push_pull);
    let p_on = Tally::share(on.push_pull_near, on.push_pull);
    assert!(
        p_off < 0.4 && p_on > 0.55,
        "push/pull near share {p_off} -> {p_on}"
    );
}

/// Near probes walk the near cluster, so every near peer is probed about
/// as often as every other: over 300 s (about 200 near probes and 100
/// round-robin ones) the counts differ by at most 3. Drawn independently,
/// 15 counts of about 13 would spread over 10 or more.
#[test]
fn near_probes_spread_evenly_over_the_near_cluster() {
    let (on, _) = run(true, 300);
    let near: Vec<usize> = (0..NEAR)
        .map(|i| on.pings.get(&i).copied().unwrap_or(0))
        .collect();
    let (lo, hi) = (near.iter().min().unwrap(), near.iter().max().unwrap());
    assert!(*lo >= 8, "every near peer probed often: {near:?}");
    assert!(hi - lo <= 3, "near probes per peer {near:?}");
}

/// With unsettled coordinates (a fresh node's error is 1.5) the choice
/// falls back to uniform, drawing the very same random numbers as with
/// selection off: the two cores send the same packets to the same peers.
#[test]
fn unsettled_coordinates_choose_exactly_like_uniform() {
    let start = Instant::now();
    let mut a = node(false, start);
    let mut b = node(true, start);
    let fresh = Coordinate::origin(&Default::default());
    b.inject_coordinates(Some(fresh), std::iter::empty())
        .unwrap();
    let mut now = start;
    let mut sent = 0;
    for _ in 0..500 {
        now = a.poll_timeout().unwrap().max(now);
        assert_eq!(b.poll_timeout().unwrap().max(now), now);
        a.handle_timeout(now);
        b.handle_timeout(now);
        loop {
            let (x, y) = (a.poll_transmit(), b.poll_transmit());
            assert_eq!(x.as_ref().map(|t| t.dst), y.as_ref().map(|t| t.dst));
            if x.is_none() {
                break;
            }
            sent += 1;
        }
        while let (Some(x), Some(y)) = (a.poll_stream(), b.poll_stream()) {
            match (x, y) {
                (
                    StreamCommand::Open { id, to, .. },
                    StreamCommand::Open {
                        id: id2, to: to2, ..
                    },
                ) => {
                    assert_eq!(to, to2);
                    a.handle_stream_error(now, id, "not simulated");
                    b.handle_stream_error(now, id2, "not simulated");
                }
                (x, y) => assert_eq!(std::mem::discriminant(&x), std::mem::discriminant(&y)),
            }
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
    }
    assert!(sent > 500, "{sent} datagrams compared");
    assert_eq!(b.stats().topology_choices, 0);
}

/// `near_cluster_now`, which the agent's `/v1/coordinate` shows, names the
/// region latency-aware selection biases toward: our 15 near peers, none
/// of the far ones; nothing when every peer is about as far (a LAN).
#[test]
fn near_cluster_now_names_our_region() {
    let now = Instant::now();
    let ml = node(true, now);
    let expected: BTreeSet<String> = (0..NEAR).map(|i| format!("p{i}")).collect();
    let got: BTreeSet<String> = ml.near_cluster_now().into_iter().collect();
    assert_eq!(got, expected);
    let sorted = ml.near_cluster_now();
    assert!(sorted.windows(2).all(|w| w[0] < w[1]), "{sorted:?}");

    let mut lan = node(true, now);
    lan.inject_coordinates(
        None,
        (0..PEERS).map(|i| (format!("p{i}"), at(0.0003 + 0.00001 * i as f64, 0.0))),
    )
    .unwrap();
    assert!(lan.near_cluster_now().is_empty());
}
