//! memberlist's state rules, checked on one core fed with crafted packets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_core::wire::codec::{self, Message};
use swimnet_core::wire::msg::{Alive, Dead, Ping, Suspect};
use swimnet_core::{Config, Event, Memberlist, NodeState, NoopDelegate, StreamCommand};
use swimnet_testkit::decode_sent;

const ME: &str = "me";

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 7946))
}

fn core(now: Instant) -> Memberlist<NoopDelegate> {
    Memberlist::new(Config::lan(ME, addr(1)), NoopDelegate, now, 7).unwrap()
}

fn packet(msgs: &[Message]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| {
            let mut b = Vec::new();
            codec::encode(m, &mut b);
            b
        })
        .collect();
    if parts.len() == 1 {
        return parts[0].clone();
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let mut out = Vec::new();
    swimnet_core::wire::compound::encode_compound(&refs, &mut out);
    out
}

fn alive(node: &str, inc: u32, last: u8) -> Message {
    Message::Alive(Alive {
        incarnation: inc,
        node: node.into(),
        addr: vec![127, 0, 0, last],
        port: 7946,
        meta: Vec::new(),
        vsn: vec![1, 5, 2, 0, 0, 0],
    })
}

fn suspect(node: &str, inc: u32, from: &str) -> Message {
    Message::Suspect(Suspect {
        incarnation: inc,
        node: node.into(),
        from: from.into(),
    })
}

fn dead(node: &str, inc: u32, from: &str) -> Message {
    Message::Dead(Dead {
        incarnation: inc,
        node: node.into(),
        from: from.into(),
    })
}

fn feed(ml: &mut Memberlist<NoopDelegate>, now: Instant, msgs: &[Message]) {
    ml.handle_packet(now, addr(200), &packet(msgs));
}

fn state(ml: &Memberlist<NoopDelegate>, name: &str) -> Option<(NodeState, u32)> {
    ml.member_by_name(name).map(|n| (n.state, n.incarnation))
}

fn events(ml: &mut Memberlist<NoopDelegate>) -> Vec<Event> {
    std::iter::from_fn(|| ml.poll_event()).collect()
}

/// Every message in every datagram the core wants to send.
fn sent(ml: &mut Memberlist<NoopDelegate>) -> Vec<(SocketAddr, Message)> {
    decode_sent(std::iter::from_fn(|| {
        ml.poll_transmit().map(|t| (t.dst, t.payload))
    }))
}

#[test]
fn presets_carry_memberlists_numbers() {
    let a = addr(1);
    let lan = Config::lan("n", a);
    let wan = Config::wan("n", a);
    let local = Config::local("n", a);
    let row = |c: &Config| {
        (
            c.tcp_timeout,
            c.indirect_checks,
            c.retransmit_mult,
            c.suspicion_mult,
            c.suspicion_max_timeout_mult,
            c.push_pull_interval,
            c.probe_timeout,
            c.probe_interval,
            c.gossip_nodes,
            c.gossip_interval,
            c.gossip_to_the_dead_time,
        )
    };
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    assert_eq!(
        row(&lan),
        (s(10), 3, 4, 4, 6, s(30), ms(500), s(1), 3, ms(200), s(30))
    );
    assert_eq!(
        row(&wan),
        (s(30), 3, 4, 6, 6, s(60), s(3), s(5), 4, ms(500), s(60))
    );
    assert_eq!(
        row(&local),
        (s(1), 1, 2, 3, 6, s(15), ms(200), s(1), 3, ms(100), s(15))
    );
    for c in [&lan, &wan, &local] {
        assert_eq!(c.protocol_version, 2);
        assert_eq!(c.awareness_max_multiplier, 8);
        assert_eq!(c.udp_buffer_size, 1400);
        assert!(c.enable_compression && c.gossip_verify_incoming && c.gossip_verify_outgoing);
        assert!(!c.disable_tcp_pings);
        assert_eq!(c.dead_node_reclaim_time, Duration::ZERO);
    }
}

#[test]
fn oversized_metadata_is_refused_with_a_clear_error() {
    let mut c = Config::lan(ME, addr(1));
    c.meta = vec![0; 513];
    let err = Memberlist::new(c, NoopDelegate, Instant::now(), 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node metadata is 513 bytes, over the 512-byte limit: shorten the tags or metadata"
    );
    let mut c = Config::lan(ME, addr(1));
    c.meta = vec![0; 512];
    assert!(Memberlist::new(c, NoopDelegate, Instant::now(), 1).is_ok());
}

#[test]
fn alive_needs_a_strictly_higher_incarnation() {
    let now = Instant::now();
    let mut ml = core(now);
    feed(&mut ml, now, &[alive("a", 5, 2)]);
    assert_eq!(state(&ml, "a"), Some((NodeState::Alive, 5)));
    assert!(matches!(events(&mut ml).as_slice(), [Event::Join(n)] if &*n.name == "a"));
    feed(&mut ml, now, &[suspect("a", 5, "x")]);
    assert_eq!(state(&ml, "a"), Some((NodeState::Suspect, 5)));
    feed(&mut ml, now, &[alive("a", 5, 2)]);
    assert_eq!(
        state(&ml, "a"),
        Some((NodeState::Suspect, 5)),
        "same incarnation does not clear"
    );
    feed(&mut ml, now, &[alive("a", 4, 2)]);
    assert_eq!(state(&ml, "a"), Some((NodeState::Suspect, 5)));
    feed(&mut ml, now, &[alive("a", 6, 2)]);
    assert_eq!(state(&ml, "a"), Some((NodeState::Alive, 6)));
}

#[test]
fn suspect_and_dead_apply_at_the_same_incarnation_but_not_lower() {
    let now = Instant::now();
    let mut ml = core(now);
    feed(&mut ml, now, &[alive("a", 5, 2), alive("b", 5, 3)]);
    feed(&mut ml, now, &[suspect("a", 4, "x"), dead("b", 4, "x")]);
    assert_eq!(state(&ml, "a"), Some((NodeState::Alive, 5)));
    assert_eq!(state(&ml, "b"), Some((NodeState::Alive, 5)));
    feed(&mut ml, now, &[dead("b", 5, "x")]);
    assert_eq!(state(&ml, "b"), Some((NodeState::Dead, 5)));
    feed(
        &mut ml,
        now,
        &[suspect("unknown", 9, "x"), dead("unknown", 9, "x")],
    );
    assert_eq!(
        state(&ml, "unknown"),
        None,
        "suspect and dead about unknown nodes are ignored"
    );
}

#[test]
fn dead_from_the_node_itself_means_left() {
    let now = Instant::now();
    let mut ml = core(now);
    feed(&mut ml, now, &[alive("a", 1, 2)]);
    events(&mut ml);
    feed(&mut ml, now, &[dead("a", 1, "a")]);
    assert_eq!(state(&ml, "a"), Some((NodeState::Left, 1)));
    assert!(matches!(events(&mut ml).as_slice(), [Event::Leave(n)] if n.state == NodeState::Left));
}

#[test]
fn refutation_takes_the_next_incarnation_above_the_accusation() {
    let now = Instant::now();
    let mut ml = core(now);
    assert_eq!(ml.incarnation(), 1);
    feed(&mut ml, now, &[alive("a", 1, 2)]);
    feed(&mut ml, now, &[suspect(ME, 1, "a")]);
    assert_eq!(ml.incarnation(), 2);
    feed(&mut ml, now, &[dead(ME, 9, "a")]);
    assert_eq!(
        ml.incarnation(),
        10,
        "an accusation at 9 is refuted with 10"
    );
    assert_eq!(state(&ml, ME), Some((NodeState::Alive, 10)));
    feed(&mut ml, now, &[suspect(ME, 3, "a")]);
    assert_eq!(
        ml.incarnation(),
        10,
        "a stale accusation is not refuted again"
    );
    assert_eq!(
        ml.health_score(),
        2,
        "each refutation raises the awareness score"
    );
    // The refutation reaches the accuser directly, and is queued for gossip.
    let out = sent(&mut ml);
    assert!(out.iter().any(|(to, m)| *to == addr(2)
        && matches!(m, Message::Alive(a) if a.node == ME && a.incarnation == 2)));
    assert!(out.iter().any(|(to, m)| *to == addr(2)
        && matches!(m, Message::Alive(a) if a.node == ME && a.incarnation == 10)));
    assert!(ml.pending_broadcasts() > 0);
    // An alive about us with other metadata is refuted too.
    let mut other = alive(ME, 10, 1);
    if let Message::Alive(a) = &mut other {
        a.meta = b"forged".to_vec();
    }
    feed(&mut ml, now, &[other]);
    assert_eq!(ml.incarnation(), 11);
}

#[test]
fn ping_is_acked_to_its_source_address_and_foreign_pings_are_dropped() {
    let now = Instant::now();
    let mut ml = core(now);
    let ping = |node: &str| {
        Message::Ping(Ping {
            seq_no: 42,
            node: node.into(),
            source_addr: vec![127, 0, 0, 9],
            source_port: 7000,
            source_node: "p".into(),
        })
    };
    feed(&mut ml, now, &[ping(ME)]);
    let out = sent(&mut ml);
    assert!(out
        .iter()
        .any(|(to, m)| *to == SocketAddr::from(([127, 0, 0, 9], 7000))
            && matches!(m, Message::AckResp(a) if a.seq_no == 42)));
    feed(&mut ml, now, &[ping("someone-else")]);
    assert!(sent(&mut ml)
        .iter()
        .all(|(_, m)| !matches!(m, Message::AckResp(_))));
}

#[test]
fn suspicion_of_a_lone_peer_times_out_after_the_minimum_and_a_final_probe() {
    let t0 = Instant::now();
    let mut ml = core(t0);
    feed(&mut ml, t0, &[alive("a", 1, 2)]);
    feed(&mut ml, t0, &[suspect("a", 1, "x")]);
    // n = 2: no confirmations wanted, so the timer is the minimum,
    // 4 * max(1, log10 2) * 1 s = 4 s.
    let mut now = t0;
    while now < t0 + Duration::from_millis(3990) {
        now += Duration::from_millis(10);
        ml.handle_timeout(now);
        sent(&mut ml);
    }
    assert_eq!(state(&ml, "a").unwrap().0, NodeState::Suspect);
    // Then it is probed once more (no answer) and declared dead.
    while now < t0 + Duration::from_secs(8) {
        now += Duration::from_millis(10);
        ml.handle_timeout(now);
        while ml.poll_stream().is_some() {}
        sent(&mut ml);
    }
    assert_eq!(state(&ml, "a").unwrap().0, NodeState::Dead);
}

#[test]
fn push_pull_over_a_stream_merges_and_replies() {
    let now = Instant::now();
    let mut a = Memberlist::new(Config::lan("a", addr(1)), NoopDelegate, now, 1).unwrap();
    let mut b = Memberlist::new(Config::lan("b", addr(2)), NoopDelegate, now, 2).unwrap();
    a.join(now, &[addr(2)]).unwrap();
    let Some(StreamCommand::Open {
        id,
        data,
        expect_reply: true,
        ..
    }) = a.poll_stream()
    else {
        panic!("join opens a stream")
    };
    let inbound = b.handle_stream_accept(now, addr(1));
    // Feed it in pieces: the core waits for the whole message.
    let (x, y) = data.split_at(data.len() / 2);
    b.handle_stream_data(now, inbound, x, false);
    assert!(b.poll_stream().is_none());
    b.handle_stream_data(now, inbound, y, false);
    let Some(StreamCommand::Reply { data: reply, .. }) = b.poll_stream() else {
        panic!("b replies with its state")
    };
    a.handle_stream_data(now, id, &reply, true);
    assert!(matches!(a.poll_stream(), Some(StreamCommand::Close { .. })));
    assert_eq!(a.num_alive(), 2);
    assert_eq!(b.num_alive(), 2);
    let evs: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::JoinResult { result: Ok(1), .. })),
        "{evs:?}"
    ); // b replied before merging: only itself
}

#[test]
fn garbage_on_a_stream_gets_an_error_reply_and_is_counted() {
    let now = Instant::now();
    let mut ml = core(now);
    let id = ml.handle_stream_accept(now, addr(3));
    ml.handle_stream_data(now, id, &[0x63, 0xff, 0xff, 0xff], true);
    assert!(matches!(
        ml.poll_stream(),
        Some(StreamCommand::Reply { .. })
    ));
    assert_eq!(ml.stats().streams_failed, 1);
    ml.handle_packet(now, addr(3), &[0x07, 0xff, 0x00]);
    ml.handle_packet(now, addr(3), &[]);
    assert!(ml.stats().messages_malformed + ml.stats().packets_dropped >= 2);
}

#[test]
fn a_dead_or_left_node_is_reported_when_reaped() {
    let start = Instant::now();
    let mut ml = core(start);
    // b gives the probe loop a member to go round.
    feed(&mut ml, start, &[alive("a", 1, 2), alive("b", 1, 3)]);
    feed(&mut ml, start, &[dead("a", 1, "a")]);
    events(&mut ml);
    let ttl = ml.config().gossip_to_the_dead_time;
    let mut reaped = Vec::new();
    let mut now = start;
    while now < start + ttl * 2 {
        now = ml.poll_timeout().expect("a probe timer").max(now);
        ml.handle_timeout(now);
        for e in events(&mut ml) {
            if let Event::Reap(n) = e {
                reaped.push((now, n));
            }
        }
        let _ = sent(&mut ml);
    }
    // b, never answering probes, may be declared dead and reaped too.
    reaped.retain(|(_, n)| &*n.name == "a");
    assert_eq!(reaped.len(), 1, "one reap of the node that left");
    let (at, n) = &reaped[0];
    assert_eq!(&*n.name, "a");
    assert_eq!(n.state, NodeState::Left);
    assert!(
        *at > start + ttl,
        "reaped only after gossip_to_the_dead_time"
    );
    assert_eq!(state(&ml, "a"), None);
}
