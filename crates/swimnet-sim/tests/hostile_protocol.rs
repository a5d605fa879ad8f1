//! Hostile peers on the harness: forged membership messages injected as raw
//! datagrams into a simulated cluster. None of them may expel a live node,
//! block later joins or make a node keep state it was not allowed to keep.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use swimnet_core::config::META_MAX_SIZE;
use swimnet_core::wire::codec::{self, Message};
use swimnet_core::wire::msg::{Alive, Dead, IndirectPing, MessageType, Ping, Suspect};
use swimnet_core::{Config, Event, NodeState, NoopDelegate};
use swimnet_sim::{node_addr, node_name, NetworkModel, Sim};

/// Where the forged datagrams claim to come from: no node of the cluster.
fn attacker() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 200, 0, 1)), 7946)
}

fn cluster(seed: u64, n: usize) -> Sim<NoopDelegate> {
    let mut s = Sim::new(seed, NetworkModel::default(), |_| NoopDelegate);
    for _ in 0..n {
        s.add_node(Config::lan);
    }
    for i in 1..n {
        s.join(i, &[0]);
    }
    s.run_until_cond(Duration::from_secs(60), Duration::from_millis(50), |s| {
        s.converged()
    })
    .expect("cluster converges");
    s
}

/// Hands `msg` to node `to` as one datagram from the attacker, and lets the
/// node's reaction out onto the simulated network.
fn inject(s: &mut Sim<NoopDelegate>, to: usize, msg: &Message) {
    let mut buf = Vec::new();
    codec::encode(msg, &mut buf);
    let now = s.now();
    s.core_mut(to).unwrap().handle_packet(now, attacker(), &buf);
    s.flush(to);
}

fn fake_alive(name: &str, incarnation: u32, meta: Vec<u8>, vsn: Vec<u8>) -> Alive {
    Alive {
        incarnation,
        node: name.into(),
        addr: vec![127, 201, 0, 1],
        port: 7946,
        meta,
        vsn,
    }
}

fn all_see_alive(s: &Sim<NoopDelegate>, n: usize, victim: usize) -> bool {
    (0..n).all(|i| s.view(i, victim) == Some(NodeState::Alive))
}

/// A forged `dead` about a live node at the highest incarnation must not
/// expel it: before, the victim refuted at a wrapped incarnation (0) that
/// everyone ignored, and it stayed out.
#[test]
fn forged_dead_at_max_incarnation_does_not_expel_a_live_node() {
    let n = 5;
    let mut s = cluster(41, n);
    let victim = 2;
    for to in [0, victim] {
        inject(
            &mut s,
            to,
            &Message::Dead(Dead {
                incarnation: u32::MAX,
                node: node_name(victim),
                from: "mallory".into(),
            }),
        );
    }
    let suspect = Message::Suspect(Suspect {
        incarnation: u32::MAX,
        node: node_name(victim),
        from: "mallory".into(),
    });
    inject(&mut s, 1, &suspect);
    s.run_for(Duration::from_secs(60));
    for i in 0..n {
        assert_eq!(
            s.view(i, victim),
            Some(NodeState::Alive),
            "node {i} keeps the victim alive"
        );
    }
    let victim_inc = s.core(victim).unwrap().incarnation();
    assert!(
        victim_inc < 1 << 16,
        "the victim did not chase the forged incarnation (now {victim_inc})"
    );
    let rejected: u64 = (0..n)
        .map(|i| s.core(i).unwrap().stats().incarnation_jumps_rejected)
        .sum();
    assert!(rejected >= 3, "the forgeries were counted ({rejected})");
    assert!(s.false_positives().is_empty(), "{:?}", s.false_positives());
}

/// A node that really restarts (incarnation back to 1, while the cluster
/// remembers it dead at a higher one) still rejoins: its own alive after
/// refuting is a small, plausible jump.
#[test]
fn a_restarted_node_with_a_lower_incarnation_rejoins() {
    let n = 5;
    let mut s = cluster(42, n);
    let victim = 3;
    // Push the victim's incarnation up with a few plausible accusations.
    for inc in [5, 9, 14] {
        inject(
            &mut s,
            victim,
            &Message::Suspect(Suspect {
                incarnation: inc,
                node: node_name(victim),
                from: node_name(0),
            }),
        );
        s.run_for(Duration::from_secs(2));
    }
    assert!(s.core(victim).unwrap().incarnation() >= 15);
    s.crash(victim);
    s.run_for(Duration::from_secs(40));
    assert!((0..n)
        .filter(|&i| i != victim)
        .all(|i| s.view(i, victim) != Some(NodeState::Alive)));
    s.restart(victim, Config::lan, &[0]);
    let back = s.run_until_cond(Duration::from_secs(60), Duration::from_millis(100), |s| {
        all_see_alive(s, n, victim)
    });
    assert!(
        back.is_some(),
        "the restarted node is alive everywhere again"
    );
}

/// A forged `alive` with an empty version field used to enter the table
/// with versions 0 and make every later join fail the version check.
#[test]
fn forged_alive_without_versions_does_not_block_joins() {
    let mut s = cluster(43, 4);
    inject(
        &mut s,
        0,
        &Message::Alive(fake_alive("ghost", 1, Vec::new(), Vec::new())),
    );
    inject(
        &mut s,
        0,
        &Message::Alive(fake_alive("ghost3", 1, Vec::new(), vec![1, 5, 2])),
    );
    assert!(s.core(0).unwrap().member_by_name("ghost").is_none());
    assert!(s.core(0).unwrap().member_by_name("ghost3").is_none());
    assert!(s.core(0).unwrap().stats().alives_invalid >= 2);
    s.run_for(Duration::from_secs(5));
    s.record_events(true);
    let newcomer = s.add_node(Config::lan);
    s.join(newcomer, &[0]);
    s.run_for(Duration::from_secs(10));
    let joined = s.events().iter().any(|(_, who, e)| {
        *who == newcomer && matches!(e, Event::JoinResult { result: Ok(_), .. })
    });
    assert!(joined, "{:?}", s.events());
    assert_eq!(s.view(0, newcomer), Some(NodeState::Alive));
}

/// Dead and left members no longer take part in the version check: a node
/// that spoke versions nobody else speaks blocks nothing once it is gone.
#[test]
fn version_check_ignores_members_that_are_gone() {
    let mut s = cluster(44, 3);
    // A real-looking node that only speaks protocol 5 joins node 0's view...
    inject(
        &mut s,
        0,
        &Message::Alive(fake_alive("only-v5", 1, Vec::new(), vec![1, 5, 2, 2, 2, 2])),
    );
    assert!(s.core(0).unwrap().member_by_name("only-v5").is_some());
    // ... and is declared dead.
    inject(
        &mut s,
        0,
        &Message::Dead(Dead {
            incarnation: 1,
            node: "only-v5".into(),
            from: node_name(1),
        }),
    );
    let gone = s.core(0).unwrap().member_by_name("only-v5").unwrap();
    assert_eq!(gone.state, NodeState::Dead);
    s.record_events(true);
    let newcomer = s.add_node(Config::lan);
    s.join(newcomer, &[0]);
    s.run_for(Duration::from_secs(10));
    let joined = s.events().iter().any(|(_, who, e)| {
        *who == newcomer && matches!(e, Event::JoinResult { result: Ok(_), .. })
    });
    assert!(joined, "{:?}", s.events());
}

/// Twenty datagrams of forged alives with 60 KB of metadata each used to be
/// kept (and re-gossiped) whole. Metadata over the local limit, and names
/// over the name limit, are dropped and counted.
#[test]
fn forged_alives_with_oversized_meta_or_names_are_dropped() {
    let mut s = cluster(45, 3);
    for i in 0..20 {
        let a = fake_alive(
            &format!("big-{i}"),
            1,
            vec![b'x'; 60_000],
            vec![1, 5, 2, 0, 0, 0],
        );
        inject(&mut s, 0, &Message::Alive(a));
    }
    let long_name = "n".repeat(swimnet_core::config::NODE_NAME_MAX + 1);
    inject(
        &mut s,
        0,
        &Message::Alive(fake_alive(
            &long_name,
            1,
            Vec::new(),
            vec![1, 5, 2, 0, 0, 0],
        )),
    );
    // At the limit is fine.
    let ok = fake_alive(
        "meta-at-limit",
        1,
        vec![b'y'; META_MAX_SIZE],
        vec![1, 5, 2, 0, 0, 0],
    );
    inject(&mut s, 0, &Message::Alive(ok));
    let core = s.core(0).unwrap();
    for i in 0..20 {
        assert!(core.member_by_name(&format!("big-{i}")).is_none());
    }
    assert!(core.member_by_name(&long_name).is_none());
    assert!(core.member_by_name("meta-at-limit").is_some());
    assert_eq!(core.stats().alives_invalid, 21);
    assert!(core.pending_broadcasts() < 10);
    s.run_for(Duration::from_secs(5));
    for i in 1..3 {
        assert!(s.core(i).unwrap().member_by_name("big-0").is_none());
        assert!(s.core(i).unwrap().member_by_name("meta-at-limit").is_some());
    }
}

/// The member table stops growing at `max_members` (tombstones included),
/// and the bite is counted; members already known are still updated.
#[test]
fn member_table_is_bounded() {
    fn small(name: String, addr: SocketAddr) -> Config {
        Config {
            max_members: 16,
            ..Config::lan(name, addr)
        }
    }
    let mut s = Sim::new(46, NetworkModel::default(), |_| NoopDelegate);
    for _ in 0..3 {
        s.add_node(small);
    }
    for i in 1..3 {
        s.join(i, &[0]);
    }
    s.run_for(Duration::from_secs(5));
    for i in 0..100 {
        let a = fake_alive(&format!("flood-{i}"), 1, Vec::new(), vec![1, 5, 2, 0, 0, 0]);
        inject(&mut s, 0, &Message::Alive(a));
    }
    let core = s.core(0).unwrap();
    assert_eq!(core.num_members(), 16);
    assert_eq!(core.stats().members_rejected, 100 - 13);
    assert_eq!(s.view(0, 1), Some(NodeState::Alive));
}

/// Acks to an address the ping names (not the sender's) and indirect
/// probes of addresses no member has are rate-limited: a flood of them
/// makes a bounded number of datagrams, and members are still answered.
#[test]
fn replies_to_peer_chosen_addresses_are_rate_limited() {
    let mut s = cluster(47, 3);
    let victim_ip = vec![127, 250, 0, 1];
    let before = s.core(0).unwrap().stats().packets_out;
    for i in 0..1_000u32 {
        let ping = Ping {
            seq_no: i,
            node: node_name(0),
            source_addr: victim_ip.clone(),
            source_port: 9999,
            source_node: "nobody".into(),
        };
        inject(&mut s, 0, &Message::Ping(ping));
        let ind = IndirectPing {
            seq_no: i,
            target: victim_ip.clone(),
            port: 9998,
            node: "nobody".into(),
            nack: true,
            source_addr: victim_ip.clone(),
            source_port: 9999,
            source_node: "nobody".into(),
        };
        inject(&mut s, 0, &Message::IndirectPing(ind));
    }
    let core = s.core(0).unwrap();
    let sent = core.stats().packets_out - before;
    let limited = core.stats().replies_limited;
    let burst = core.config().reply_limit.burst as u64;
    assert!(
        sent <= burst + 4,
        "2,000 forged requests made {sent} datagrams (burst {burst})"
    );
    assert!(limited >= 2_000 - burst, "{limited} replies limited");
    // A member's ping is still answered at once.
    let before = s.core(0).unwrap().stats().sent(MessageType::AckResp);
    let p = node_addr(1);
    let ping = Ping {
        seq_no: 7,
        node: node_name(0),
        source_addr: match p.ip() {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        },
        source_port: p.port(),
        source_node: node_name(1),
    };
    inject(&mut s, 0, &Message::Ping(ping));
    assert_eq!(
        s.core(0).unwrap().stats().sent(MessageType::AckResp),
        before + 1
    );
    s.run_for(Duration::from_secs(30));
    assert!(s.false_positives().is_empty(), "{:?}", s.false_positives());
}
