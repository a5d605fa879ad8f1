//! Vivaldi coordinates in the core, checked on one core fed with crafted
//! packets on a virtual clock: what our acks carry, how a probe's ack
//! updates our coordinate, that bad coordinates are refused and counted,
//! and that a reaped node's coordinate is forgotten.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_core::coordinate::{
    decode_ping_payload, encode_ping_payload, Coordinate, CoordinateConfig, PING_VERSION,
};
use swimnet_core::wire::codec::{self, Message};
use swimnet_core::wire::msg::{AckResp, Alive, Dead, Ping};
use swimnet_core::{Config, Memberlist, NoopDelegate};
use swimnet_testkit::decode_sent;

const ME: &str = "me";
const PEER: &str = "peer";

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 7946))
}

fn core(now: Instant, coordinates: bool) -> Memberlist<NoopDelegate> {
    let mut c = Config::lan(ME, addr(1));
    if !coordinates {
        c.coordinates = None;
    }
    Memberlist::new(c, NoopDelegate, now, 7).unwrap()
}

fn feed(ml: &mut Memberlist<NoopDelegate>, now: Instant, from: SocketAddr, m: &Message) {
    let mut b = Vec::new();
    codec::encode(m, &mut b);
    ml.handle_packet(now, from, &b);
}

fn sent(ml: &mut Memberlist<NoopDelegate>) -> Vec<(SocketAddr, Message)> {
    decode_sent(std::iter::from_fn(|| {
        ml.poll_transmit().map(|t| (t.dst, t.payload))
    }))
}

fn add_peer(ml: &mut Memberlist<NoopDelegate>, now: Instant) {
    let alive = Message::Alive(Alive {
        incarnation: 1,
        node: PEER.into(),
        addr: vec![127, 0, 0, 2],
        port: 7946,
        meta: Vec::new(),
        vsn: vec![1, 5, 2, 0, 0, 0],
    });
    feed(ml, now, addr(2), &alive);
    sent(ml);
}

/// Runs timers until the core pings the peer; returns the ping's seq and
/// when it was sent.
fn next_ping(ml: &mut Memberlist<NoopDelegate>, now: &mut Instant) -> u32 {
    for _ in 0..1000 {
        let at = ml.poll_timeout().expect("the probe timer is always set");
        *now = (*now).max(at);
        ml.handle_timeout(*now);
        for (dst, m) in sent(ml) {
            if let Message::Ping(p) = m {
                if dst == addr(2) && p.node == PEER {
                    return p.seq_no;
                }
            }
        }
    }
    panic!("the core never probed the peer");
}

/// Answers the next probe of the peer after `rtt` with `payload`.
fn probe_answered(
    ml: &mut Memberlist<NoopDelegate>,
    now: &mut Instant,
    rtt: Duration,
    payload: Vec<u8>,
) {
    let seq = next_ping(ml, now);
    *now += rtt;
    let ack = Message::AckResp(AckResp {
        seq_no: seq,
        payload,
    });
    feed(ml, *now, addr(2), &ack);
    sent(ml);
}

fn payload_of(c: &Coordinate) -> Vec<u8> {
    let mut out = Vec::new();
    encode_ping_payload(c, &mut out);
    out
}

fn ack_payload_to_ping(ml: &mut Memberlist<NoopDelegate>, now: Instant) -> Vec<u8> {
    let ping = Message::Ping(Ping {
        seq_no: 42,
        node: ME.into(),
        source_addr: vec![127, 0, 0, 2],
        source_port: 7946,
        source_node: PEER.into(),
    });
    feed(ml, now, addr(2), &ping);
    let acks: Vec<Vec<u8>> = sent(ml)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::AckResp(a) if a.seq_no == 42 => Some(a.payload),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 1, "one ack to the ping");
    acks.into_iter().next().unwrap()
}

#[test]
fn our_acks_carry_our_coordinate_in_serfs_encoding() {
    let now = Instant::now();
    let mut ml = core(now, true);
    let origin = Coordinate::origin(&CoordinateConfig::default());
    assert_eq!(ml.coordinate(), Some(&origin));
    assert_eq!(ml.coordinate_of(ME), Some(&origin));
    let payload = ack_payload_to_ping(&mut ml, now);
    assert_eq!(payload[0], PING_VERSION);
    assert_eq!(decode_ping_payload(&payload).unwrap(), origin);
    assert_eq!(payload, payload_of(&origin));
}

#[test]
fn without_coordinates_acks_are_empty_and_nothing_is_kept() {
    let mut now = Instant::now();
    let mut ml = core(now, false);
    assert!(ml.coordinate().is_none());
    assert!(ml.coordinate_stats().is_none());
    assert!(ack_payload_to_ping(&mut ml, now).is_empty());
    add_peer(&mut ml, now);
    let theirs = Coordinate::origin(&CoordinateConfig::default());
    probe_answered(
        &mut ml,
        &mut now,
        Duration::from_millis(5),
        payload_of(&theirs),
    );
    assert!(ml.coordinate_of(PEER).is_none());
    assert_eq!(ml.coordinates().count(), 0);
    assert_eq!(ml.stats().coordinates_rejected, 0);
}

#[test]
fn a_probe_ack_with_a_coordinate_moves_ours_and_is_cached() {
    let mut now = Instant::now();
    let mut ml = core(now, true);
    add_peer(&mut ml, now);
    let mut theirs = Coordinate::origin(&CoordinateConfig::default());
    theirs.vec[0] = 0.004;
    theirs.error = 0.5;
    for _ in 0..30 {
        probe_answered(
            &mut ml,
            &mut now,
            Duration::from_millis(20),
            payload_of(&theirs),
        );
    }
    assert_eq!(ml.coordinate_of(PEER), Some(&theirs));
    let ours = ml.coordinate().unwrap().clone();
    let est = ours.distance_to(&theirs).unwrap();
    assert!(
        est > Duration::from_millis(15) && est < Duration::from_millis(25),
        "estimated RTT {est:?} for a measured 20 ms"
    );
    let stats = ml.coordinate_stats().unwrap();
    assert_eq!(stats.updates, 30);
    assert_eq!(ml.stats().coordinates_rejected, 0);
    let mut names: Vec<&str> = ml.coordinates().map(|(n, _)| n).collect();
    names.sort_unstable();
    assert_eq!(names, [ME, PEER]);

    // An empty payload (a peer without coordinates) is ignored quietly.
    probe_answered(&mut ml, &mut now, Duration::from_millis(20), Vec::new());
    assert_eq!(ml.stats().coordinates_rejected, 0);
    assert_eq!(ml.coordinate(), Some(&ours));
}

#[test]
fn bad_coordinates_are_rejected_counted_and_change_nothing() {
    let mut now = Instant::now();
    let mut ml = core(now, true);
    add_peer(&mut ml, now);
    let good = Coordinate::origin(&CoordinateConfig::default());
    let mut nan = good.clone();
    nan.vec[1] = f64::NAN;
    let mut inf = good.clone();
    inf.height = f64::INFINITY;
    let mut absurd = good.clone();
    absurd.vec[0] = 1.0e12;
    let mut negative_error = good.clone();
    negative_error.error = -1.0;
    let short = Coordinate {
        vec: vec![0.0; 3],
        ..good.clone()
    };
    let mut wrong_version = payload_of(&good);
    wrong_version[0] = 2;
    let mut truncated = payload_of(&good);
    truncated.truncate(20);
    let bad = [
        (payload_of(&nan), Duration::from_millis(5)),
        (payload_of(&inf), Duration::from_millis(5)),
        (payload_of(&absurd), Duration::from_millis(5)),
        (payload_of(&negative_error), Duration::from_millis(5)),
        (payload_of(&short), Duration::from_millis(5)),
        (wrong_version, Duration::from_millis(5)),
        (truncated, Duration::from_millis(5)),
        (b"\x01garbage".to_vec(), Duration::from_millis(5)),
    ];
    let before = ml.coordinate().unwrap().clone();
    for (i, (payload, rtt)) in bad.iter().enumerate() {
        probe_answered(&mut ml, &mut now, *rtt, payload.clone());
        assert_eq!(ml.stats().coordinates_rejected, i as u64 + 1, "case {i}");
        assert_eq!(ml.coordinate(), Some(&before), "case {i} moved us");
        assert!(ml.coordinate_of(PEER).is_none(), "case {i} was cached");
    }
    assert_eq!(ml.coordinate_stats().unwrap().updates, 0);
}

#[test]
fn a_reaped_node_is_forgotten() {
    let mut now = Instant::now();
    let mut ml = core(now, true);
    add_peer(&mut ml, now);
    let theirs = Coordinate::origin(&CoordinateConfig::default());
    probe_answered(
        &mut ml,
        &mut now,
        Duration::from_millis(3),
        payload_of(&theirs),
    );
    assert!(ml.coordinate_of(PEER).is_some());
    // Declared dead: still remembered while it is in the member list.
    let dead = Message::Dead(Dead {
        incarnation: 1,
        node: PEER.into(),
        from: "someone".into(),
    });
    feed(&mut ml, now, addr(3), &dead);
    sent(&mut ml);
    assert!(ml.coordinate_of(PEER).is_some());
    // Past gossip_to_the_dead_time the probe loop reaps it.
    let end = now + Duration::from_secs(40);
    while now < end {
        now = ml.poll_timeout().unwrap().max(now);
        ml.handle_timeout(now);
        sent(&mut ml);
        while ml.poll_stream().is_some() {}
    }
    assert!(ml.member_by_name(PEER).is_none(), "reaped");
    assert!(ml.coordinate_of(PEER).is_none());
    assert_eq!(ml.coordinates().count(), 1);
}
