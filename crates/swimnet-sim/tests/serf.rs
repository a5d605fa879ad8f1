//! Serf nodes on the deterministic harness: the harness drives
//! [`SerfNode`] through the same node trait as every other node, so a
//! user event and Serf's graceful leave (intent, grace period on the
//! node's own timer, then the memberlist leave) run on virtual time.

use std::collections::BTreeSet;
use std::time::Duration;

use swimnet_core::{Event, NodeState, SansIoNode};
use swimnet_serf::{SerfEvent, SerfNode};
use swimnet_sim::{Harness, NodeId};

mod serf_cluster;

use serf_cluster::serf_cluster;

const NODES: usize = 24;

/// The nodes that delivered user event `name` (each at most once).
fn delivered(h: &mut Harness<SerfNode>, name: &str) -> Vec<NodeId> {
    let mut got = Vec::new();
    for (_, id, e) in h.take_app_events() {
        if let SerfEvent::User(u) = e {
            if u.name == name {
                got.push(id);
            }
        }
    }
    got.sort_unstable();
    got
}

#[test]
fn a_user_event_reaches_every_serf_node_once() {
    let mut h = serf_cluster(11, NODES, None);
    h.record_events(true);
    h.take_app_events();
    let sender = 3;
    h.core_mut(sender)
        .expect("running")
        .user_event("deploy", b"v1", false)
        .expect("small event");
    h.flush(sender);
    h.run_for(Duration::from_secs(10));
    let got = delivered(&mut h, "deploy");
    assert_eq!(
        got,
        (0..NODES).collect::<Vec<_>>(),
        "every node (the sender too) delivers the event exactly once"
    );
    let too_big = vec![0u8; swimnet_serf::USER_EVENT_SIZE_LIMIT];
    let err = h
        .core_mut(sender)
        .expect("running")
        .user_event("big", &too_big, false);
    assert!(err.is_err(), "an event over Serf's size limit is refused");
    assert!(h.violations().is_empty(), "{:?}", h.violations());
}

#[test]
fn a_leaving_serf_node_waits_its_grace_period_then_is_seen_left() {
    let mut h = serf_cluster(12, NODES, None);
    h.record_events(true);
    h.take_events();
    let leaver = 5;
    let gossip = h
        .core(leaver)
        .expect("running")
        .core()
        .config()
        .gossip_interval;
    let grace = (gossip * 3).max(Duration::from_millis(300));
    let left_at = h.elapsed();
    h.leave(leaver, Duration::from_secs(30));
    // During the grace period only the leave intent is out: the
    // memberlist leave has not been sent, so nobody sees the node left.
    h.run_for(grace / 2);
    let early: BTreeSet<NodeId> = (0..NODES)
        .filter(|&o| o != leaver && h.view(o, leaver) == Some(NodeState::Left))
        .collect();
    assert!(
        early.is_empty(),
        "seen left before the grace period: {early:?}"
    );
    assert!(
        h.core(leaver).expect("running").serf().is_leaving(),
        "the intent went out at once"
    );
    h.run_for(Duration::from_secs(10));
    for o in (0..NODES).filter(|&o| o != leaver) {
        assert_eq!(
            h.view(o, leaver),
            Some(NodeState::Left),
            "node {o} sees the leaver left"
        );
    }
    let complete: Vec<Duration> = h
        .events()
        .iter()
        .filter(|(_, id, e)| {
            *id == leaver && matches!(e, Event::LeaveComplete { timed_out: false })
        })
        .map(|(at, _, _)| *at)
        .collect();
    assert_eq!(complete.len(), 1, "one LeaveComplete: {complete:?}");
    assert!(
        complete[0] >= left_at + grace,
        "the memberlist leave waited for the grace period ({:?} < {:?})",
        complete[0],
        left_at + grace
    );
    assert!(h.violations().is_empty(), "{:?}", h.violations());
}
