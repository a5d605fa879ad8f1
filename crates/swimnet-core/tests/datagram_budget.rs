//! The datagram path under hostile input, on one core and virtual time:
//! the decode budget per datagram (bytes and parts), messages handled as
//! they are decoded, and replays of encrypted datagrams.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_core::wire::budget::DecodeBudget;
use swimnet_core::wire::codec::{self, Message};
use swimnet_core::wire::compound::encode_compound;
use swimnet_core::wire::compress::compress_payload;
use swimnet_core::wire::msg::{MessageType, Ping};
use swimnet_core::wire::packet::{self, OpenOptions, SealOptions};
use swimnet_core::wire::security::{EncryptionVersion, Key, Keyring};
use swimnet_core::{Config, Delegate, Error, Memberlist, NoopDelegate};

const ME: &str = "me";

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 7946))
}

fn encode(m: &Message) -> Vec<u8> {
    let mut b = Vec::new();
    codec::encode(m, &mut b);
    b
}

fn compound(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_compound(parts, &mut out);
    out
}

fn compressed(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress_payload(inner, &mut out);
    out
}

fn ping(seq: u32) -> Vec<u8> {
    encode(&Message::Ping(Ping {
        seq_no: seq,
        node: ME.into(),
        ..Default::default()
    }))
}

/// A delegate that records, for each user message, its first byte and the
/// parts left in the datagram's budget, and takes `takes` parts of its own.
#[derive(Default)]
struct Recorder {
    seen: Vec<(u8, usize)>,
    takes: usize,
}

impl Delegate for Recorder {
    fn notify_packet_msg(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        msg: &[u8],
        budget: &mut DecodeBudget,
    ) {
        self.seen
            .push((msg.first().copied().unwrap_or(0), budget.parts_left()));
        for _ in 0..self.takes {
            if !budget.take_part() {
                return;
            }
        }
    }
}

fn recorder(now: Instant, parts: usize, takes: usize) -> Memberlist<Recorder> {
    let mut c = Config::lan(ME, addr(1));
    c.datagram_max_parts = parts;
    let d = Recorder {
        seen: Vec::new(),
        takes,
    };
    Memberlist::new(c, d, now, 7).unwrap()
}

/// Acks (by sequence number) in the datagrams the core wants to send.
fn acks<D: Delegate>(ml: &mut Memberlist<D>, keyring: Option<&Keyring>) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(t) = ml.poll_transmit() {
        let opts = OpenOptions {
            keyring,
            verify_incoming: keyring.is_some(),
            label: b"",
        };
        let inner = packet::open_packet(&t.payload, &opts).unwrap();
        packet::for_each_message(&inner, 1 << 20, &mut |m| {
            if let Ok(Message::AckResp(a)) = m {
                out.push(a.seq_no);
            }
        });
    }
    out
}

#[test]
fn messages_are_handled_as_they_are_decoded() {
    let now = Instant::now();
    let mut ml = recorder(now, 4096, 0);
    let users: Vec<Vec<u8>> = (1..=5u8).map(|i| encode(&Message::User(vec![i]))).collect();
    let refs: Vec<&[u8]> = users.iter().map(Vec::as_slice).collect();
    ml.handle_packet(now, addr(9), &compound(&refs));
    // Each message saw the budget as it was when it was decoded: the
    // compound and the messages before it taken, the ones after not yet.
    let seen = &ml.delegate().seen;
    let expected: Vec<(u8, usize)> = (1..=5u8).map(|i| (i, 4096 - 1 - i as usize)).collect();
    assert_eq!(seen, &expected);
    assert_eq!(ml.stats().received(MessageType::User), 5);
    assert_eq!(ml.stats().datagrams_over_budget, 0);
}

#[test]
fn parts_over_the_budget_are_dropped_and_counted() {
    // compound(255 × compress(compound(255 × user))): 65,536 parts in 35 KB.
    let user = encode(&Message::User(vec![7]));
    let inner = compressed(&compound(&[&user[..]; 255]));
    let datagram = compound(&[&inner[..]; 255]);
    assert!(datagram.len() < 65_507);
    let now = Instant::now();
    let mut ml = recorder(now, 512, 0);
    ml.handle_packet(now, addr(9), &datagram);
    // The outer compound (1), the first inner group (compress, compound,
    // 255 users), then the second group until 512 parts are taken.
    let delivered = 255 + (512 - 1 - 257 - 2);
    assert_eq!(ml.delegate().seen.len(), delivered);
    assert_eq!(ml.stats().received(MessageType::User), delivered as u64);
    assert_eq!(ml.stats().datagrams_over_budget, 1);
    assert_eq!(ml.stats().messages_malformed, 0);

    // Parts the delegate takes for itself come out of the same budget.
    let mut ml = recorder(now, 512, 9);
    ml.handle_packet(now, addr(9), &datagram);
    let n = ml.delegate().seen.len();
    assert_eq!(n, (512 - 3) / 10 + 1, "{n} user messages delivered");
    assert_eq!(ml.stats().datagrams_over_budget, 1);

    // The next datagram has a budget of its own.
    let before = ml.delegate().seen.len();
    ml.handle_packet(now, addr(9), &user);
    assert_eq!(ml.delegate().seen.len(), before + 1);
    assert_eq!(ml.stats().datagrams_over_budget, 1);
}

#[test]
fn decompression_bomb_stops_at_the_byte_budget() {
    let now = Instant::now();
    let mut ml = Memberlist::new(Config::lan(ME, addr(1)), NoopDelegate, now, 7).unwrap();
    // 40 MiB of zeros in 31 KB.
    let bomb = compressed(&vec![0u8; 40 << 20]);
    assert!(bomb.len() < 65_507);
    ml.handle_packet(now, addr(9), &bomb);
    assert_eq!(ml.stats().datagrams_over_budget, 1);
    assert_eq!(ml.stats().messages_malformed, 0);

    // A compressed compound of 255 pings (what a legitimate peer may send)
    // is handled whole at the default budget.
    let pings: Vec<Vec<u8>> = (0..255).map(ping).collect();
    let refs: Vec<&[u8]> = pings.iter().map(Vec::as_slice).collect();
    ml.handle_packet(now, addr(9), &compressed(&compound(&refs)));
    assert_eq!(ml.stats().received(MessageType::Ping), 255);
    assert_eq!(acks(&mut ml, None).len(), 255);
    assert_eq!(ml.stats().datagrams_over_budget, 1);
}

#[test]
fn replayed_encrypted_ping_gets_no_second_ack() {
    let key = Key::new(&[5; 32]).unwrap();
    let keyring = Keyring::new(key.clone());
    let mut c = Config::lan(ME, addr(1));
    c.keyring = Some(keyring.clone());
    let t0 = Instant::now();
    let mut ml = Memberlist::new(c, NoopDelegate, t0, 7).unwrap();
    let seal = |seq: u32, nonce: u8| {
        let opts = SealOptions {
            encrypt: Some((&key, [nonce; 12], EncryptionVersion::V1)),
            ..Default::default()
        };
        let mut out = Vec::new();
        packet::seal_packet(&ping(seq), &opts, &mut out);
        out
    };
    let first = seal(1, 1);
    ml.handle_packet(t0, addr(9), &first);
    assert_eq!(acks(&mut ml, Some(&keyring)), vec![1]);

    // The same bytes again, a second later: dropped, counted, no ack.
    let t1 = t0 + Duration::from_secs(1);
    ml.handle_packet(t1, addr(9), &first);
    assert_eq!(acks(&mut ml, Some(&keyring)), Vec::<u32>::new());
    assert_eq!(ml.stats().packets_replayed, 1);
    assert_eq!(ml.stats().packets_dropped, 0);

    // A fresh datagram (new nonce) with the same ping is answered.
    ml.handle_packet(t1, addr(9), &seal(1, 2));
    assert_eq!(acks(&mut ml, Some(&keyring)), vec![1]);

    // A replay just inside the window is still dropped; once the window
    // has passed the nonce is forgotten.
    ml.handle_packet(t0 + Duration::from_millis(59_999), addr(9), &first);
    assert_eq!(ml.stats().packets_replayed, 2);
    ml.handle_packet(t0 + Duration::from_secs(61), addr(9), &first);
    assert_eq!(acks(&mut ml, Some(&keyring)), vec![1]);
    assert_eq!(ml.stats().packets_replayed, 2);

    // Datagrams that do not authenticate are not remembered: a forged one
    // with a known nonce is dropped as undecryptable, not as a replay.
    let mut forged = seal(3, 4);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    ml.handle_packet(t1, addr(9), &forged);
    assert_eq!(ml.stats().packets_dropped, 1);
    ml.handle_packet(t1, addr(9), &seal(3, 4));
    assert_eq!(acks(&mut ml, Some(&keyring)), vec![3]);
}

#[test]
fn budget_knobs_are_validated() {
    let base = Config::lan(ME, addr(1));
    let invalid = |c: Config| matches!(c.validate(), Err(Error::InvalidConfig(_)));
    assert!(base.validate().is_ok());
    assert_eq!(base.datagram_max_decoded_bytes, 1 << 20);
    assert_eq!(base.datagram_max_parts, 4096);
    assert_eq!(base.replay_window, Duration::from_secs(60));
    assert!(invalid(Config {
        datagram_max_decoded_bytes: 65_535,
        ..base.clone()
    }));
    assert!(invalid(Config {
        datagram_max_decoded_bytes: (40 << 20) + 1,
        ..base.clone()
    }));
    assert!(invalid(Config {
        datagram_max_parts: 511,
        ..base.clone()
    }));
    assert!(Config {
        datagram_max_decoded_bytes: 65_536,
        datagram_max_parts: 512,
        replay_window: Duration::ZERO,
        replay_cache_capacity: 0,
        ..base
    }
    .validate()
    .is_ok());
}
