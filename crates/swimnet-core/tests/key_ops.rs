//! Key-operation messages ([`swimnet_core::key_ops`]) on one core: only an
//! encrypted datagram opened with our keyring may change the keyring; a
//! plaintext one (accepted for gossip while `gossip_verify_incoming` is
//! off) is refused and counted; malformed ones are counted; without
//! `cluster_key_ops` they are ordinary user messages for the delegate.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use swimnet_core::key_ops::{is_key_op_message, KeyNotice, MAGIC};
use swimnet_core::wire::budget::DecodeBudget;
use swimnet_core::wire::msg::MessageType;
use swimnet_core::wire::packet::{seal_packet, SealOptions};
use swimnet_core::wire::security::{EncryptionVersion, Key, Keyring};
use swimnet_core::{Config, Delegate, Memberlist, NoopDelegate};

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 9], 7946))
}

fn config(key_ops: bool) -> Config {
    let mut c = Config::lan("me", SocketAddr::from(([127, 0, 0, 1], 7946)));
    c.keyring = Some(Keyring::new(Key::new(&[1; 32]).unwrap()));
    c.gossip_verify_incoming = false;
    c.cluster_key_ops = key_ops;
    c
}

/// A user message asking to install `[2; 32]`.
fn install_request() -> Vec<u8> {
    let mut m = vec![MessageType::User as u8];
    m.extend_from_slice(&MAGIC);
    m.extend_from_slice(&[1, 1]);
    m.extend_from_slice(&7u64.to_be_bytes());
    m.push(32);
    m.extend_from_slice(&[2; 32]);
    m
}

fn datagram(inner: &[u8], key: Option<&Key>) -> Vec<u8> {
    let mut out = Vec::new();
    let opts = SealOptions {
        encrypt: key.map(|k| (k, [5; 12], EncryptionVersion::V1)),
        ..Default::default()
    };
    seal_packet(inner, &opts, &mut out);
    out
}

fn key_count<D: Delegate>(ml: &Memberlist<D>) -> usize {
    ml.keyring().unwrap().keys().len()
}

#[test]
fn a_plaintext_key_op_is_refused_and_counted() {
    let now = Instant::now();
    let mut ml = Memberlist::new(config(true), NoopDelegate, now, 1).unwrap();
    while ml.poll_transmit().is_some() {}
    ml.handle_packet(now, peer(), &datagram(&install_request(), None));
    assert_eq!(key_count(&ml), 1, "keyring unchanged");
    assert_eq!(ml.stats().key_ops_refused, 1);
    assert!(
        ml.poll_transmit().is_none(),
        "no answer to a plaintext request"
    );
}

#[test]
fn an_encrypted_key_op_is_applied_and_answered() {
    let now = Instant::now();
    let mut ml = Memberlist::new(config(true), NoopDelegate, now, 1).unwrap();
    while ml.poll_transmit().is_some() {}
    let key = Key::new(&[1; 32]).unwrap();
    ml.handle_packet(now, peer(), &datagram(&install_request(), Some(&key)));
    assert_eq!(key_count(&ml), 2, "key installed");
    assert_eq!(ml.stats().key_ops_refused, 0);
    let answer = ml.poll_transmit().expect("an answer");
    assert_eq!(answer.dst, peer());
    assert_eq!(
        ml.poll_key_notice(),
        Some(KeyNotice::KeyringChanged { op: "install" })
    );
}

#[test]
fn a_malformed_key_op_is_counted_and_changes_nothing() {
    let now = Instant::now();
    let mut ml = Memberlist::new(config(true), NoopDelegate, now, 1).unwrap();
    let key = Key::new(&[1; 32]).unwrap();
    let mut bad = install_request();
    bad.truncate(bad.len() - 3);
    ml.handle_packet(now, peer(), &datagram(&bad, Some(&key)));
    assert_eq!(key_count(&ml), 1);
    assert_eq!(ml.stats().messages_malformed, 1);
}

#[test]
fn an_unsolicited_answer_is_dropped_and_counted() {
    let now = Instant::now();
    let mut ml = Memberlist::new(config(true), NoopDelegate, now, 1).unwrap();
    let key = Key::new(&[1; 32]).unwrap();
    let mut answer = vec![MessageType::User as u8];
    answer.extend_from_slice(&MAGIC);
    answer.push(2);
    answer.extend_from_slice(&3u64.to_be_bytes());
    answer.extend_from_slice(&[0, 0, 0]);
    ml.handle_packet(now, peer(), &datagram(&answer, Some(&key)));
    assert_eq!(ml.stats().key_op_answers_dropped, 1);
}

/// Records the user messages it is given.
#[derive(Default, Clone)]
struct Recorder(Rc<RefCell<Vec<Vec<u8>>>>);

impl Delegate for Recorder {
    fn notify_packet_msg(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        msg: &[u8],
        _budget: &mut DecodeBudget,
    ) {
        self.0.borrow_mut().push(msg.to_vec());
    }
}

#[test]
fn without_cluster_key_ops_the_delegate_gets_the_message() {
    let now = Instant::now();
    let seen = Recorder::default();
    let mut ml = Memberlist::new(config(false), seen.clone(), now, 1).unwrap();
    let key = Key::new(&[1; 32]).unwrap();
    ml.handle_packet(now, peer(), &datagram(&install_request(), Some(&key)));
    assert_eq!(key_count(&ml), 1);
    let got = seen.0.borrow();
    assert_eq!(got.len(), 1);
    assert!(is_key_op_message(&got[0]));
}

#[test]
fn undecryptable_datagrams_give_one_notice_per_peer_a_minute() {
    let now = Instant::now();
    let mut c = config(true);
    c.gossip_verify_incoming = true;
    let mut ml = Memberlist::new(c, NoopDelegate, now, 1).unwrap();
    let other = Key::new(&[3; 32]).unwrap();
    for s in 0..10 {
        let t = now + std::time::Duration::from_secs(s);
        ml.handle_packet(t, peer(), &datagram(&install_request(), Some(&other)));
    }
    assert_eq!(ml.poll_key_notice(), Some(KeyNotice::CannotDecrypt(peer())));
    assert_eq!(ml.poll_key_notice(), None, "rate-limited");
    let later = now + std::time::Duration::from_secs(61);
    ml.handle_packet(later, peer(), &datagram(&install_request(), Some(&other)));
    assert_eq!(ml.poll_key_notice(), Some(KeyNotice::CannotDecrypt(peer())));
    assert_eq!(key_count(&ml), 1);
}
