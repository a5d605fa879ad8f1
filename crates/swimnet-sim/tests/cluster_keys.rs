//! Cluster-wide key operations (swimnet_core::key_ops) on the harness, on
//! virtual time: a rotation driven from one node with nobody marked
//! failed, answers missing from a crashed node, one operation at a time,
//! and the keyring-mismatch notices on both sides.

use std::net::SocketAddr;
use std::time::Duration;

use swimnet_core::key_ops::{KeyNotice, KeyOp, KeyOpOutcome};
use swimnet_core::wire::security::{Key, Keyring};
use swimnet_core::{Config, NoopDelegate};
use swimnet_sim::{node_addr, node_name, NetworkModel, Sim};

fn key(b: u8) -> Vec<u8> {
    vec![b; 32]
}

fn with_keys(keys: Vec<Vec<u8>>) -> impl Fn(String, SocketAddr) -> Config + Clone {
    move |name, addr| {
        let mut c = Config::lan(name, addr);
        let ring = Keyring::from_keys(keys.iter().map(|k| Key::new(k).unwrap()).collect()).unwrap();
        c.keyring = Some(ring);
        c.cluster_key_ops = true;
        c
    }
}

fn cluster(seed: u64, n: usize, loss: f64) -> Sim<NoopDelegate> {
    let model = NetworkModel {
        loss,
        ..Default::default()
    };
    let mut s = Sim::new(seed, model, |_| NoopDelegate);
    for _ in 0..n {
        s.add_node(with_keys(vec![key(1)]));
    }
    for i in 1..n {
        s.join(i, &[0]);
    }
    s.run_until_cond(Duration::from_secs(30), Duration::from_millis(50), |s| {
        s.converged()
    })
    .expect("cluster converges");
    s
}

/// Starts `op` on node `from` and runs until its outcome comes out.
fn run_op(s: &mut Sim<NoopDelegate>, from: usize, op: KeyOp) -> KeyOpOutcome {
    let now = s.now();
    let timeout = Duration::from_secs(3);
    let id = s
        .core_mut(from)
        .unwrap()
        .start_key_op(now, op, timeout)
        .unwrap();
    let mut got = None;
    let mut waited = Duration::ZERO;
    while got.is_none() {
        assert!(
            waited <= timeout * 2,
            "the operation finishes within its timeout"
        );
        s.run_for(Duration::from_millis(10));
        waited += Duration::from_millis(10);
        got = s.core_mut(from).unwrap().poll_key_op_outcome();
    }
    let outcome = got.unwrap();
    assert_eq!(outcome.id, id);
    outcome
}

fn keys_of(s: &Sim<NoopDelegate>, i: usize) -> Vec<Vec<u8>> {
    let ring = s.core(i).unwrap().keyring().unwrap();
    ring.keys().iter().map(|k| k.as_bytes().to_vec()).collect()
}

#[test]
fn rotation_from_one_node_reaches_everyone_with_nobody_failed() {
    let n = 6;
    let mut s = cluster(21, n, 0.05);
    let all_ok = |o: &KeyOpOutcome| {
        assert!(o.missing.is_empty(), "missing: {:?}", o.missing);
        assert_eq!(o.answers.len(), n);
        for (node, a) in &o.answers {
            assert!(a.result.is_ok(), "{node}: {:?}", a.result);
        }
    };
    all_ok(&run_op(&mut s, 2, KeyOp::Install(key(2))));
    let listed = run_op(&mut s, 4, KeyOp::List);
    all_ok(&listed);
    for a in listed.answers.values() {
        assert_eq!(a.keys, vec![key(1), key(2)]);
    }
    all_ok(&run_op(&mut s, 2, KeyOp::Use(key(2))));
    let removed = run_op(&mut s, 2, KeyOp::Remove(key(1)));
    all_ok(&removed);
    for i in 0..n {
        assert_eq!(keys_of(&s, i), vec![key(2)], "node {i}");
    }
    s.run_for(Duration::from_secs(30));
    assert!(s.false_positives().is_empty(), "{:?}", s.false_positives());
    assert!(s.converged());
    // Removing the primary fails everywhere, and says why.
    let refused = run_op(&mut s, 0, KeyOp::Remove(key(2)));
    assert_eq!(refused.answers.len(), n);
    for a in refused.answers.values() {
        assert!(a.result.as_ref().unwrap_err().contains("primary"));
    }
}

#[test]
fn a_crashed_member_is_reported_missing_after_the_timeout() {
    let mut s = cluster(22, 4, 0.0);
    s.crash(3);
    let o = run_op(&mut s, 0, KeyOp::Install(key(2)));
    assert_eq!(o.missing, vec![node_name(3)]);
    assert_eq!(o.answers.len(), 3);
    assert_eq!(o.total(), 4);
}

#[test]
fn one_operation_at_a_time_and_bad_arguments_change_nothing() {
    let mut s = cluster(23, 3, 0.0);
    let now = s.now();
    let core = s.core_mut(0).unwrap();
    let t = Duration::from_secs(2);
    let short = core.start_key_op(now, KeyOp::Install(vec![9; 7]), t);
    assert!(short.unwrap_err().to_string().contains("key"));
    assert!(core.start_key_op(now, KeyOp::List, Duration::ZERO).is_err());
    core.start_key_op(now, KeyOp::List, t).unwrap();
    let busy = core.start_key_op(now, KeyOp::Install(key(3)), t);
    assert!(busy.unwrap_err().to_string().contains("already running"));
    assert_eq!(keys_of(&s, 0), vec![key(1)], "nothing installed");
}

#[test]
fn key_ops_are_off_unless_configured() {
    let mut s = Sim::new(24, NetworkModel::default(), |_| NoopDelegate);
    let a = s.add_node(Config::lan);
    let now = s.now();
    let err = s
        .core_mut(a)
        .unwrap()
        .start_key_op(now, KeyOp::List, Duration::from_secs(1))
        .unwrap_err();
    assert!(err.to_string().contains("turned off"), "{err}");
}

#[test]
fn both_sides_of_a_key_mismatch_get_a_notice() {
    let mut s = cluster(25, 3, 0.0);
    // Node 0 alone moves to key 2 and drops key 1: the others cannot
    // decrypt what it sends, while it still reads what they send.
    let core = s.core_mut(0).unwrap();
    core.install_key(&key(2)).unwrap();
    core.use_key(&key(2)).unwrap();
    core.install_key(&key(1)).unwrap();
    s.run_for(Duration::from_secs(20));
    let mut notices = |i: usize| {
        let mut v = Vec::new();
        while let Some(n) = s.core_mut(i).unwrap().poll_key_notice() {
            v.push(n);
        }
        v
    };
    let at_0 = notices(0);
    let at_1 = notices(1);
    assert!(
        at_1.contains(&KeyNotice::CannotDecrypt(node_addr(0))),
        "receiver: {at_1:?}"
    );
    let unanswered = at_0
        .iter()
        .any(|n| matches!(n, KeyNotice::ProbesUnanswered { .. }));
    assert!(unanswered, "sender: {at_0:?}");
    // Rate-limited: one notice per peer and kind a minute, however many
    // datagrams failed.
    let per_peer = at_1
        .iter()
        .filter(|n| **n == KeyNotice::CannotDecrypt(node_addr(0)))
        .count();
    assert_eq!(per_peer, 1, "{at_1:?}");
}

/// Two nodes where node 0 cannot reach node 1 but node 1 reaches node 0:
/// node 0's failed probes and its key notices.
fn one_way(encrypted: bool) -> (u64, Vec<KeyNotice>) {
    let mut s = Sim::new(26, NetworkModel::default(), |_| NoopDelegate);
    for _ in 0..2 {
        if encrypted {
            s.add_node(with_keys(vec![key(1)]));
        } else {
            s.add_node(Config::lan);
        }
    }
    s.join(1, &[0]);
    s.run_until_cond(Duration::from_secs(30), Duration::from_millis(50), |s| {
        s.converged()
    })
    .expect("cluster converges");
    s.set_link_loss(0, 1, 1.0);
    s.run_for(Duration::from_secs(20));
    let failed = s.core(0).unwrap().stats().probes_failed;
    let mut notices = Vec::new();
    while let Some(n) = s.core_mut(0).unwrap().poll_key_notice() {
        notices.push(n);
    }
    (failed, notices)
}

#[test]
fn a_one_way_path_gives_a_key_notice_only_with_encryption() {
    let (failed, notices) = one_way(true);
    assert!(failed > 0);
    assert!(
        matches!(notices.as_slice(), [KeyNotice::ProbesUnanswered { .. }]),
        "{notices:?}"
    );
    let (failed, notices) = one_way(false);
    assert!(failed > 0);
    assert_eq!(notices, vec![]);
}
