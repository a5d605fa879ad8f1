//! Protocol paths on the harness: indirect probes and nacks, the TCP
//! fallback, Lifeguard awareness, encryption and key rotation, labels,
//! version checks, and the delegate hooks.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use swimnet_core::wire::msg::MessageType;
use swimnet_core::wire::security::{Key, Keyring};
use swimnet_core::{
    Config, Delegate, Event, JoinError, MergeRefusal, Node, NodeState, NoopDelegate, Veto,
};
use swimnet_sim::{node_name, NetworkModel, Sim};

fn converge<D: Delegate>(s: &mut Sim<D>, limit: Duration) -> Duration {
    s.run_until_cond(limit, Duration::from_millis(50), |s| s.converged())
        .expect("cluster converges")
}

fn cluster(seed: u64, n: usize, cfg: fn(String, SocketAddr) -> Config) -> Sim<NoopDelegate> {
    let mut s = Sim::new(seed, NetworkModel::default(), |_| NoopDelegate);
    for _ in 0..n {
        s.add_node(cfg);
    }
    for i in 1..n {
        s.join(i, &[0]);
    }
    converge(&mut s, Duration::from_secs(60));
    s
}

#[test]
fn broken_direct_link_is_bridged_by_indirect_probes() {
    let mut s = cluster(11, 6, Config::lan);
    // Node 0 cannot reach node 1 at all (UDP or TCP), but everyone else can.
    s.set_link_loss(0, 1, 1.0);
    s.set_link_loss(1, 0, 1.0);
    s.run_for(Duration::from_secs(120));
    let stats = s.core(0).unwrap().stats().clone();
    assert!(
        stats.sent(MessageType::IndirectPing) > 0,
        "node 0 asked peers for indirect probes"
    );
    assert_eq!(
        s.view(0, 1),
        Some(NodeState::Alive),
        "indirect acks keep node 1 alive"
    );
    assert!(s.false_positives().is_empty(), "{:?}", s.false_positives());
    assert!(s.violations().is_empty());
}

#[test]
fn relays_send_nacks_and_missing_nacks_raise_awareness() {
    let mut s = cluster(12, 5, Config::lan);
    s.record_events(true);
    // Node 0 is the one with the bad network: nothing reaches it from
    // nodes 2..5 except through... nothing. Its probes of them fail, and
    // since the relays' nacks cannot reach it either, its awareness rises.
    for i in 1..5 {
        s.set_link_loss(i, 0, 1.0);
    }
    s.run_for(Duration::from_secs(3));
    let score = s.core(0).unwrap().health_score();
    assert!(
        score > 0,
        "a node whose probes all fail doubts itself (score {score})"
    );
    for i in 1..5 {
        s.set_link_loss(i, 0, 0.0);
    }
    // A node that can reach everyone but one relays for others: nacks are sent.
    s.set_link_loss(2, 3, 1.0);
    s.set_link_loss(3, 2, 1.0);
    s.crash(4);
    s.run_for(Duration::from_secs(30));
    let nacks_sent: u64 = (0..4)
        .map(|i| s.core(i).unwrap().stats().sent(MessageType::NackResp))
        .sum();
    let nacks_received: u64 = (0..4)
        .map(|i| s.core(i).unwrap().stats().received(MessageType::NackResp))
        .sum();
    assert!(
        nacks_sent > 0 && nacks_received > 0,
        "relays nack a target that does not answer"
    );
    s.run_for(Duration::from_secs(60));
    assert_eq!(s.core(0).unwrap().health_score(), 0, "awareness recovers");
    for i in 0..4 {
        assert!(matches!(s.view(i, 4), Some(NodeState::Dead) | None));
    }
}

#[test]
fn tcp_fallback_rescues_probes_when_udp_is_dropped() {
    let mut s = cluster(13, 4, Config::lan);
    // UDP into node 3 is lost; its TCP still works, so probes succeed over TCP.
    s.set_node_loss(3, 1.0);
    let rescued_before: u64 = (0..3)
        .map(|i| s.core(i).unwrap().stats().probes_tcp_rescued)
        .sum();
    s.run_for(Duration::from_secs(40));
    let rescued: u64 = (0..3)
        .map(|i| s.core(i).unwrap().stats().probes_tcp_rescued)
        .sum::<u64>()
        - rescued_before;
    assert!(
        rescued > 0,
        "probes of node 3 were rescued by the TCP fallback"
    );
    for i in 0..3 {
        assert_ne!(s.view(i, 3), Some(NodeState::Dead));
    }
    assert!(s.false_positives().is_empty());
    // With TCP refused too, node 3 is declared dead by the others.
    s.set_tcp_refused(3, true);
    s.run_until_cond(Duration::from_secs(60), Duration::from_millis(100), |s| {
        (0..3).all(|i| s.view(i, 3) == Some(NodeState::Dead))
    })
    .expect("unreachable over UDP and TCP: declared dead");
}

fn key(b: u8) -> Vec<u8> {
    vec![b; 32]
}

fn with_keys(keys: &[Vec<u8>]) -> impl Fn(String, SocketAddr) -> Config + Clone {
    let keys: Vec<Vec<u8>> = keys.to_vec();
    move |name, addr| {
        let mut c = Config::lan(name, addr);
        let ring = Keyring::from_keys(keys.iter().map(|k| Key::new(k).unwrap()).collect()).unwrap();
        c.keyring = Some(ring);
        c
    }
}

#[test]
fn encrypted_cluster_converges_and_wrong_key_cannot_join() {
    let mut s = Sim::new(14, NetworkModel::default(), |_| NoopDelegate);
    for _ in 0..5 {
        s.add_node(with_keys(&[key(1)]));
    }
    for i in 1..5 {
        s.join(i, &[0]);
    }
    converge(&mut s, Duration::from_secs(30));
    s.record_events(true);
    let outsider = s.add_node(with_keys(&[key(2)]));
    s.join(outsider, &[0]);
    s.run_for(Duration::from_secs(20));
    let failed_join = s.events().iter().any(|(_, who, e)| {
        *who == outsider && matches!(e, Event::JoinResult { result: Err(_), .. })
    });
    assert!(failed_join, "a node with the wrong key fails to join");
    for i in 0..5 {
        assert_eq!(
            s.view(i, outsider),
            None,
            "node {i} never learns the outsider"
        );
    }
    let rejected: u64 = (0..5)
        .map(|i| {
            s.core(i).unwrap().stats().packets_dropped + s.core(i).unwrap().stats().streams_failed
        })
        .sum();
    assert!(
        rejected > 0,
        "the outsider's traffic was counted and dropped"
    );
    // A plaintext node is no better.
    let plain = s.add_node(Config::lan);
    s.join(plain, &[1]);
    s.run_for(Duration::from_secs(20));
    for i in 0..5 {
        assert_eq!(s.view(i, plain), None);
    }
}

#[test]
fn key_rotation_with_no_member_marked_failed() {
    let n = 6;
    let mut s = Sim::new(
        15,
        NetworkModel {
            loss: 0.01,
            ..Default::default()
        },
        |_| NoopDelegate,
    );
    for _ in 0..n {
        s.add_node(with_keys(&[key(1)]));
    }
    for i in 1..n {
        s.join(i, &[0]);
    }
    converge(&mut s, Duration::from_secs(30));
    // Install the new key everywhere, one node at a time, with traffic in between.
    for i in 0..n {
        s.core_mut(i).unwrap().install_key(&key(2)).unwrap();
        s.run_for(Duration::from_millis(700));
    }
    for i in 0..n {
        s.core_mut(i).unwrap().use_key(&key(2)).unwrap();
        s.run_for(Duration::from_millis(700));
    }
    for i in 0..n {
        let err = s.core_mut(i).unwrap().remove_key(&key(2)).unwrap_err();
        assert!(err.to_string().contains("primary"), "{err}");
        s.core_mut(i).unwrap().remove_key(&key(1)).unwrap();
        s.run_for(Duration::from_millis(700));
    }
    s.run_for(Duration::from_secs(60));
    assert!(s.false_positives().is_empty(), "{:?}", s.false_positives());
    assert!(s.converged());
    // Only the new key opens the cluster now.
    s.record_events(true);
    let old = s.add_node(with_keys(&[key(1)]));
    s.join(old, &[0]);
    s.run_for(Duration::from_secs(20));
    assert_eq!(
        s.view(0, old),
        None,
        "a node with only the old key cannot join"
    );
    let new = s.add_node(with_keys(&[key(2)]));
    s.join(new, &[0]);
    s.run_until_cond(Duration::from_secs(30), Duration::from_millis(100), |s| {
        (0..n).all(|i| s.view(i, new) == Some(NodeState::Alive))
    })
    .expect("a node with the new key joins");
}

#[test]
fn mismatched_labels_do_not_mix() {
    let labelled = |label: &'static [u8]| {
        move |name, addr| {
            let mut c = Config::lan(name, addr);
            c.label = label.to_vec();
            c
        }
    };
    let mut s = Sim::new(16, NetworkModel::default(), |_| NoopDelegate);
    let a = s.add_node(labelled(b"blue"));
    let b = s.add_node(labelled(b"blue"));
    let c = s.add_node(labelled(b"green"));
    s.join(b, &[a]);
    s.join(c, &[a]);
    s.run_for(Duration::from_secs(20));
    assert_eq!(s.view(a, b), Some(NodeState::Alive));
    assert_eq!(s.view(a, c), None);
    assert_eq!(s.view(c, a), None);
}

#[test]
fn incompatible_delegate_versions_are_refused_at_push_pull() {
    let serf_like = |name, addr| Config::lan(name, addr).with_serf_versions();
    let mut s = Sim::new(17, NetworkModel::default(), |_| NoopDelegate);
    let a = s.add_node(serf_like);
    let b = s.add_node(serf_like);
    s.join(b, &[a]);
    converge(&mut s, Duration::from_secs(10));
    s.record_events(true);
    // Delegate versions 0/0/0 are outside Serf's 2..=5: refused by both sides.
    let plain = s.add_node(Config::lan);
    s.join(plain, &[a]);
    s.run_for(Duration::from_secs(5));
    let refused = s.events().iter().any(|(_, who, e)| {
        *who == a && matches!(e, Event::MergeRefused { reason: MergeRefusal::IncompatibleVersions(r), .. } if r.contains("delegate protocol version (0)"))
    });
    assert!(refused, "{:?}", s.events());
    assert!(s.events().iter().any(|(_, who, e)| *who == plain
        && matches!(e, Event::JoinResult { result: Err(JoinError::Refused(MergeRefusal::IncompatibleVersions(r))), .. } if r.contains("incompatible"))));
    assert_eq!(s.view(a, plain), None);
}

/// A delegate that records what reaches it and has user broadcasts and state.
#[derive(Default)]
struct Recorder {
    got_msgs: Vec<Vec<u8>>,
    got_states: Vec<Vec<u8>>,
    to_broadcast: Vec<Vec<u8>>,
    state: Vec<u8>,
    pings: u32,
}

#[derive(Clone)]
struct Shared(Rc<RefCell<Recorder>>);

impl Delegate for Shared {
    fn notify_msg(&mut self, _now: Instant, _from: SocketAddr, msg: &[u8]) {
        self.0.borrow_mut().got_msgs.push(msg.to_vec());
    }
    fn get_broadcasts(&mut self, overhead: usize, limit: usize, _n: usize) -> Vec<Vec<u8>> {
        let mut r = self.0.borrow_mut();
        let mut out = Vec::new();
        let mut used = 0;
        while let Some(m) = r.to_broadcast.last() {
            if used + overhead + m.len() > limit {
                break;
            }
            used += overhead + m.len();
            out.push(r.to_broadcast.pop().unwrap());
        }
        out
    }
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        self.0.borrow().state.clone()
    }
    fn merge_remote_state(&mut self, _now: Instant, state: &[u8], _join: bool) {
        self.0.borrow_mut().got_states.push(state.to_vec());
    }
    fn ack_payload(&mut self) -> Vec<u8> {
        b"coord".to_vec()
    }
    fn notify_ping_complete(&mut self, _node: &swimnet_core::Node, _rtt: Duration, payload: &[u8]) {
        assert_eq!(payload, b"coord");
        self.0.borrow_mut().pings += 1;
    }
}

#[test]
fn delegate_broadcasts_state_and_ack_payloads_flow() {
    let recs: Vec<Shared> = (0..4)
        .map(|_| Shared(Rc::new(RefCell::new(Recorder::default()))))
        .collect();
    let handles = recs.clone();
    let mut s = Sim::new(18, NetworkModel::default(), move |i| recs[i].clone());
    for (i, h) in handles.iter().enumerate() {
        h.0.borrow_mut().state = format!("state-of-{i}").into_bytes();
        s.add_node(Config::lan);
    }
    for i in 1..4 {
        s.join(i, &[0]);
    }
    converge(&mut s, Duration::from_secs(10));
    handles[2]
        .0
        .borrow_mut()
        .to_broadcast
        .push(b"hello from 2".to_vec());
    s.run_for(Duration::from_secs(2));
    let got = (0..4)
        .filter(|&i| {
            handles[i]
                .0
                .borrow()
                .got_msgs
                .iter()
                .any(|m| m == b"hello from 2")
        })
        .count();
    assert!(got >= 1, "the user broadcast was delivered");
    // Join push/pulls carried the user state both ways.
    assert!(handles[0]
        .0
        .borrow()
        .got_states
        .iter()
        .any(|st| st == b"state-of-1"));
    assert!(handles[1]
        .0
        .borrow()
        .got_states
        .iter()
        .any(|st| st == b"state-of-0"));
    s.run_for(Duration::from_secs(5));
    assert!(
        handles[1].0.borrow().pings > 0,
        "ack payloads reach notify_ping_complete"
    );
    // A direct user packet and a user stream.
    let now = s.now();
    let to = swimnet_sim::node_addr(3);
    s.core_mut(1).unwrap().send_user_packet(to, b"direct");
    s.core_mut(1)
        .unwrap()
        .send_user_stream(now, to, b"reliable".to_vec());
    s.flush(1);
    s.run_for(Duration::from_secs(1));
    let r = handles[3].0.borrow();
    assert!(r.got_msgs.iter().any(|m| m == b"direct"));
    assert!(r.got_msgs.iter().any(|m| m == b"reliable"));
    let _ = node_name(0);
}

/// Time from node 4 going away until the first node suspects it: crashed
/// (its host resets TCP connections) or cut off by a partition (connection
/// attempts hang).
fn first_suspicion(seed: u64, crash: bool) -> (Duration, u64) {
    let mut s = cluster(seed, 8, Config::lan);
    s.record_events(true);
    let victim = 4;
    let at = s.elapsed();
    if crash {
        s.crash(victim);
    } else {
        s.partition(|i| u32::from(i == victim));
    }
    let name = node_name(victim);
    s.run_until_cond(Duration::from_secs(30), Duration::from_millis(10), |s| {
        s.events()
            .iter()
            .any(|(_, _, e)| matches!(e, Event::Suspect { node, .. } if *node.name == *name))
    })
    .expect("suspected");
    let first = s
        .events()
        .iter()
        .find_map(|(t, _, e)| match e {
            Event::Suspect { node, .. } if *node.name == *name => Some(*t - at),
            _ => None,
        })
        .unwrap();
    let refused: u64 = (0..8)
        .filter(|&i| i != victim)
        .map(|i| s.core(i).unwrap().stats().pings_refused)
        .sum();
    (first, refused)
}

/// A crashed process's host refuses the TCP ping (sent at the probe
/// timeout): the probe ends as failed right then instead of waiting out the
/// probe interval for indirect acks that cannot come, so the crash is
/// suspected about half a probe interval sooner than a silent partition.
#[test]
fn refused_tcp_ping_ends_the_probe_early() {
    let (mut crash, mut cut) = (Duration::ZERO, Duration::ZERO);
    let seeds = 8u64;
    for seed in 0..seeds {
        let (c, refused) = first_suspicion(100 + seed, true);
        let (p, none) = first_suspicion(100 + seed, false);
        assert!(
            refused >= 1,
            "seed {seed}: the crash was seen as a refused ping"
        );
        assert_eq!(none, 0, "seed {seed}: a partition refuses nothing");
        crash += c;
        cut += p;
    }
    let (crash, cut) = (crash / seeds as u32, cut / seeds as u32);
    eprintln!("first suspicion, mean of {seeds} seeds: crash {crash:?}, partition {cut:?}");
    assert!(
        crash + Duration::from_millis(300) < cut,
        "crash {crash:?} vs partition {cut:?}"
    );
}

/// A delegate that refuses every join's merge.
struct RefuseMerges;

impl Delegate for RefuseMerges {
    fn notify_merge(&mut self, _peers: &[Node]) -> Result<(), Veto> {
        Err(Veto("no strangers here".into()))
    }
}

/// A delegate's veto comes back typed: the joiner's `JoinResult` carries it
/// as a refused merge, with the delegate's reason, and nothing is merged.
#[test]
fn a_delegate_veto_fails_the_join_with_its_reason() {
    let mut s = Sim::new(23, NetworkModel::default(), |_| RefuseMerges);
    let a = s.add_node(Config::lan);
    let b = s.add_node(Config::lan);
    s.record_events(true);
    s.join(b, &[a]);
    s.run_for(Duration::from_secs(2));
    let veto = Veto("no strangers here".into());
    let refused = s.events().iter().any(|(_, who, e)| {
        *who == b
            && matches!(e, Event::JoinResult { result: Err(JoinError::Refused(MergeRefusal::Vetoed(v))), .. } if *v == veto)
    });
    assert!(refused, "{:?}", s.events());
    assert_eq!(s.view(b, a), None, "nothing of a's state was merged");
}

#[test]
fn a_second_node_with_a_taken_name_is_refused_on_both_sides() {
    let mut s = cluster(31, 3, Config::lan);
    s.record_events(true);
    // Node 3 starts with node 1's name at its own address.
    let taken = node_name(1);
    let dup = s.add_node(|_, addr| Config::lan(taken.clone(), addr));
    s.join(dup, &[0]);
    s.run_for(Duration::from_secs(5));
    let holder = s.core(1).unwrap().config().advertise;
    let dup_addr = s.core(dup).unwrap().config().advertise;
    // The node it joined through refuses the claim and says so.
    assert!(
        s.events().iter().any(|(_, who, e)| *who == 0
            && *e
                == Event::NameConflict {
                    name: taken.clone(),
                    existing: holder,
                    claimed: dup_addr,
                    local: false,
                }),
        "{:?}",
        s.events()
    );
    // The joiner's join fails, naming who holds the name, and it merged nothing.
    assert!(
        s.events().iter().any(|(_, who, e)| *who == dup
            && matches!(e, Event::JoinResult { result: Err(JoinError::Refused(MergeRefusal::NameTaken { name, holder: h })), .. } if *name == taken && *h == holder)),
        "{:?}",
        s.events()
    );
    assert_eq!(s.core(dup).unwrap().members().count(), 1);
    assert!(s.core(dup).unwrap().stats().name_conflicts >= 1);
    assert!(s.core(0).unwrap().stats().name_conflicts >= 1);
    // The holder is untouched: still alive at its own address everywhere.
    for i in [0, 2] {
        assert_eq!(s.view(i, 1), Some(NodeState::Alive));
    }
    assert_eq!(
        s.core(0)
            .unwrap()
            .members()
            .find(|n| *n.name == taken)
            .unwrap()
            .addr,
        holder
    );
}

#[test]
fn a_name_conflict_is_reported_once_per_interval_but_counted_every_time() {
    let mut s = cluster(32, 2, Config::lan);
    s.record_events(true);
    let taken = node_name(1);
    let dup = s.add_node(|_, addr| Config::lan(taken.clone(), addr));
    for _ in 0..3 {
        s.join(dup, &[0]);
        s.run_for(Duration::from_secs(1));
    }
    let reports = |s: &Sim<NoopDelegate>| {
        s.events()
            .iter()
            .filter(|(_, who, e)| *who == 0 && matches!(e, Event::NameConflict { .. }))
            .count()
    };
    assert_eq!(reports(&s), 1, "{:?}", s.events());
    assert!(s.core(0).unwrap().stats().name_conflicts >= 3);
    // After the interval the same conflict is reported again.
    s.run_for(Duration::from_secs(31));
    s.join(dup, &[0]);
    s.run_for(Duration::from_secs(1));
    assert_eq!(reports(&s), 2, "{:?}", s.events());
}
