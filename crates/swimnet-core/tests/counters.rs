//! The counters the agent's metrics are made of: suspicions, dead
//! verdicts, decrypt failures and the per-kind message byte counts, checked
//! on one core fed with crafted packets.

use std::net::SocketAddr;
use std::time::Instant;

use swimnet_core::wire::codec::{self, Message};
use swimnet_core::wire::msg::{Alive, Dead, MessageType, Ping, Suspect};
use swimnet_core::wire::packet::{self, SealOptions};
use swimnet_core::wire::security::{EncryptionVersion, Key, Keyring};
use swimnet_core::{Config, Memberlist, NoopDelegate};

const ME: &str = "me";

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 7946))
}

fn core(now: Instant) -> Memberlist<NoopDelegate> {
    Memberlist::new(Config::lan(ME, addr(1)), NoopDelegate, now, 7).unwrap()
}

fn encoded(m: &Message) -> Vec<u8> {
    let mut b = Vec::new();
    codec::encode(m, &mut b);
    b
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

fn suspect(node: &str, inc: u32) -> Message {
    Message::Suspect(Suspect {
        incarnation: inc,
        node: node.into(),
        from: "accuser".into(),
    })
}

fn dead(node: &str, inc: u32, from: &str) -> Message {
    Message::Dead(Dead {
        incarnation: inc,
        node: node.into(),
        from: from.into(),
    })
}

fn ping_me(seq: u32) -> Message {
    Message::Ping(Ping {
        seq_no: seq,
        node: ME.into(),
        source_addr: vec![127, 0, 0, 9],
        source_port: 7000,
        source_node: "p".into(),
    })
}

fn feed(ml: &mut Memberlist<NoopDelegate>, now: Instant, m: &Message) {
    ml.handle_packet(now, addr(200), &encoded(m));
}

#[test]
fn suspicions_and_dead_verdicts_are_counted_but_leaves_are_not_verdicts() {
    let now = Instant::now();
    let mut ml = core(now);
    feed(&mut ml, now, &alive("a", 1, 2));
    feed(&mut ml, now, &alive("b", 1, 3));
    assert_eq!(ml.stats().suspicions, 0);
    feed(&mut ml, now, &suspect("a", 1));
    // A confirmation of the same suspicion is not a new one.
    feed(&mut ml, now, &suspect("a", 1));
    assert_eq!(ml.stats().suspicions, 1);
    assert_eq!(ml.stats().dead_verdicts, 0);
    feed(&mut ml, now, &dead("a", 1, "accuser"));
    assert_eq!(ml.stats().dead_verdicts, 1);
    // A graceful leave (dead from the node itself) is no verdict.
    feed(&mut ml, now, &dead("b", 1, "b"));
    assert_eq!(ml.stats().dead_verdicts, 1);
}

#[test]
fn message_bytes_are_counted_by_kind_both_ways() {
    let now = Instant::now();
    let mut ml = core(now);
    let ping = encoded(&ping_me(42));
    ml.handle_packet(now, addr(200), &ping);
    assert_eq!(ml.stats().received(MessageType::Ping), 1);
    assert_eq!(
        ml.stats().received_bytes(MessageType::Ping),
        ping.len() as u64
    );
    let mut ack_bytes = 0;
    while let Some(t) = ml.poll_transmit() {
        // The ack may go out in a compound with piggy-backed gossip: count
        // the ack's own encoding, re-encoded from what was decoded.
        packet::for_each_message(&t.payload, 1 << 20, &mut |m| {
            if let Ok(m @ Message::AckResp(_)) = m {
                ack_bytes += encoded(&m).len() as u64;
            }
        });
    }
    assert!(ack_bytes > 0);
    assert_eq!(ml.stats().sent(MessageType::AckResp), 1);
    assert_eq!(ml.stats().sent_bytes(MessageType::AckResp), ack_bytes);
    assert_eq!(ml.stats().sent_bytes(MessageType::Ping), 0);
}

#[test]
fn undecryptable_datagrams_are_counted_as_decrypt_failures() {
    let ours = Key::new(&[5; 32]).unwrap();
    let theirs = Key::new(&[6; 32]).unwrap();
    let mut c = Config::lan(ME, addr(1));
    c.keyring = Some(Keyring::new(ours));
    let now = Instant::now();
    let mut ml = Memberlist::new(c, NoopDelegate, now, 7).unwrap();
    let opts = SealOptions {
        encrypt: Some((&theirs, [1; 12], EncryptionVersion::V1)),
        ..Default::default()
    };
    let mut sealed = Vec::new();
    packet::seal_packet(&encoded(&ping_me(1)), &opts, &mut sealed);
    ml.handle_packet(now, addr(9), &sealed);
    assert_eq!(ml.stats().decrypt_failures, 1);
    assert_eq!(ml.stats().packets_dropped, 1);
    assert_eq!(ml.stats().received(MessageType::Ping), 0);
}

/// Steps `ml` from deadline to deadline until it sends a ping; returns the
/// ping's sequence number and the time reached.
fn next_probe(ml: &mut Memberlist<NoopDelegate>, mut now: Instant) -> (u32, Instant) {
    for _ in 0..1000 {
        now = ml.poll_timeout().expect("a timer").max(now);
        ml.handle_timeout(now);
        let sent = swimnet_testkit::decode_sent(std::iter::from_fn(|| {
            ml.poll_transmit().map(|t| (t.dst, t.payload))
        }));
        for (_, m) in sent {
            if let Message::Ping(p) = m {
                return (p.seq_no, now);
            }
        }
    }
    panic!("no probe went out");
}

fn ack(seq: u32) -> Message {
    Message::AckResp(swimnet_core::wire::msg::AckResp {
        seq_no: seq,
        payload: Vec::new(),
    })
}

#[test]
fn probes_answered_after_the_indirect_pings_are_counted_apart() {
    let t0 = Instant::now();
    let mut ml = core(t0);
    feed(&mut ml, t0, &alive("a", 1, 2));
    feed(&mut ml, t0, &alive("b", 1, 3));
    feed(&mut ml, t0, &alive("c", 1, 4));
    // Answered at once: a direct probe.
    let (seq, now) = next_probe(&mut ml, t0);
    feed(&mut ml, now, &ack(seq));
    assert_eq!((ml.stats().probes_ok, ml.stats().probes_indirect), (1, 0));
    // Answered only after the probe timeout sent the indirect pings.
    let (seq, now) = next_probe(&mut ml, now);
    let later = now + ml.config().probe_timeout;
    ml.handle_timeout(later);
    assert!(ml.stats().sent(MessageType::IndirectPing) > 0);
    feed(&mut ml, later, &ack(seq));
    assert_eq!((ml.stats().probes_ok, ml.stats().probes_indirect), (2, 1));
}
