//! Serf queries on the deterministic harness (virtual time): a query and
//! its acks and answers round trip, filters by node name and tag, Serf's
//! internal ping and key queries, runtime tags and force-leave.

use std::collections::BTreeMap;
use std::time::Duration;

use swimnet_core::{NodeState, SansIoNode};
use swimnet_serf::{KeyOp, QueryError, QueryHandle, QueryParams, QueryStatus, SerfEvent, SerfNode};
use swimnet_sim::{node_name, Harness, NodeId};

mod serf_cluster;

use serf_cluster::serf_cluster;

const NODES: usize = 8;

/// `n` Serf nodes (tag role=r<id % 3>) that see each other alive, with
/// events recorded from then on; with `key`, all encrypt with it.
fn cluster(seed: u64, n: usize, key: Option<[u8; 32]>) -> Harness<SerfNode> {
    let mut h = serf_cluster(seed, n, key);
    h.record_events(true);
    h.take_app_events();
    h
}

fn node(h: &mut Harness<SerfNode>, id: NodeId) -> &mut SerfNode {
    h.core_mut(id).expect("running")
}

/// Sends a query from `from` and returns its handle.
fn ask(h: &mut Harness<SerfNode>, from: NodeId, params: &QueryParams) -> QueryHandle {
    let now = h.now();
    let handle = node(h, from)
        .query(now, "uptime", b"?", params)
        .expect("query accepted");
    h.flush(from);
    handle
}

/// Answers every received query named `uptime` with the node's name;
/// returns who received one.
fn answer_all(h: &mut Harness<SerfNode>) -> Vec<NodeId> {
    let mut got = Vec::new();
    for (_, id, e) in h.take_app_events() {
        if let SerfEvent::Query(q) = e {
            assert_eq!(q.name, "uptime");
            assert_eq!(q.payload, b"?");
            let now = h.now();
            let name = node_name(id);
            node(h, id)
                .respond_query(now, q.id, name.as_bytes())
                .expect("answered in time");
            assert!(
                matches!(
                    node(h, id).respond_query(now, q.id, b"again"),
                    Err(QueryError::UnknownQuery(_))
                ),
                "one answer per query"
            );
            h.flush(id);
            got.push(id);
        }
    }
    got.sort_unstable();
    got
}

fn status(h: &Harness<SerfNode>, from: NodeId, handle: QueryHandle) -> QueryStatus {
    h.core(from)
        .expect("running")
        .query_status(handle)
        .expect("kept")
        .clone()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn a_query_collects_every_ack_and_answer_then_closes_at_its_timeout() {
    let mut h = cluster(21, NODES, None);
    let asker = 2;
    let params = QueryParams {
        request_ack: true,
        ..QueryParams::default()
    };
    let handle = ask(&mut h, asker, &params);
    let st = status(&h, asker, handle);
    // Serf's default: 200 ms gossip * 16 * ceil(log10(8 + 1)).
    assert_eq!(st.deadline - h.now(), Duration::from_millis(3200));
    assert_eq!(st.expected, NODES);
    h.run_for(Duration::from_millis(500));
    let received = answer_all(&mut h);
    assert_eq!(
        received,
        (0..NODES).collect::<Vec<_>>(),
        "every node, the asker too"
    );
    h.run_for(Duration::from_millis(500));
    let st = status(&h, asker, handle);
    let everyone: Vec<String> = (0..NODES).map(node_name).collect();
    assert_eq!(sorted(st.acks.clone()), everyone);
    let from: Vec<String> = st.responses.iter().map(|r| r.from.clone()).collect();
    assert_eq!(sorted(from), everyone);
    assert!(st.responses.iter().all(|r| r.payload == r.from.as_bytes()));
    assert!(!st.finished, "open until the deadline");
    assert!(h.core(asker).unwrap().poll_timeout().unwrap() <= st.deadline);
    h.run_for(Duration::from_millis(2300));
    assert!(status(&h, asker, handle).finished, "closed at the deadline");
    let c = h.core(asker).unwrap().serf().queries().counters().clone();
    assert_eq!((c.acks, c.responses, c.duplicates), (8, 8, 0));
    // Late answers are not collected.
    node(&mut h, asker).forget_query(handle);
    assert!(h.core(asker).unwrap().query_status(handle).is_none());
    assert!(h.violations().is_empty(), "{:?}", h.violations());
}

#[test]
fn filters_pick_the_nodes_that_handle_a_query() {
    let mut h = cluster(22, NODES, None);
    let by_name = QueryParams {
        filter_nodes: vec![node_name(1), node_name(6)],
        request_ack: true,
        ..QueryParams::default()
    };
    let a = ask(&mut h, 0, &by_name);
    h.run_for(Duration::from_millis(800));
    assert_eq!(answer_all(&mut h), vec![1, 6]);
    let mut by_tag = QueryParams {
        request_ack: true,
        ..QueryParams::default()
    };
    by_tag.filter_tags.insert("role".into(), "^r0$".into());
    let b = ask(&mut h, 4, &by_tag);
    h.run_for(Duration::from_millis(800));
    assert_eq!(answer_all(&mut h), vec![0, 3, 6]);
    h.run_for(Duration::from_secs(4));
    assert_eq!(
        sorted(status(&h, 0, a).acks),
        vec![node_name(1), node_name(6)]
    );
    let tagged = status(&h, 4, b);
    assert_eq!(tagged.responses.len(), 3);
    assert_eq!(
        sorted(tagged.acks),
        vec![node_name(0), node_name(3), node_name(6)]
    );
}

#[test]
fn misuse_is_refused_and_open_queries_are_bounded() {
    let mut h = cluster(23, 3, None);
    let now = h.now();
    let n = node(&mut h, 0);
    let p = QueryParams::default();
    assert!(matches!(
        n.query(now, "_serf_ping", b"", &p),
        Err(QueryError::InternalName(_))
    ));
    assert!(matches!(
        n.query(now, "big", &[0u8; 1100], &p),
        Err(QueryError::TooLarge { .. })
    ));
    let long = QueryParams {
        timeout: Some(Duration::from_secs(601)),
        ..QueryParams::default()
    };
    assert!(matches!(
        n.query(now, "x", b"", &long),
        Err(QueryError::BadTimeout(_))
    ));
    for i in 0..swimnet_serf::query::MAX_OPEN_QUERIES {
        n.query(now, &format!("q{i}"), b"", &p).expect("room");
    }
    assert!(matches!(
        n.query(now, "one-more", b"", &p),
        Err(QueryError::TooManyOpen { .. })
    ));
    assert!(matches!(
        n.respond_query(now, 999_999, b""),
        Err(QueryError::UnknownQuery(999_999))
    ));
}

#[test]
fn an_answer_after_the_deadline_is_refused() {
    let mut h = cluster(24, 3, None);
    let params = QueryParams {
        timeout: Some(Duration::from_millis(500)),
        ..QueryParams::default()
    };
    ask(&mut h, 0, &params);
    h.run_for(Duration::from_millis(200));
    let queries: Vec<(NodeId, u64)> = h
        .take_app_events()
        .into_iter()
        .filter_map(|(_, id, e)| match e {
            SerfEvent::Query(q) => Some((id, q.id)),
            _ => None,
        })
        .collect();
    assert_eq!(queries.len(), 3);
    h.run_for(Duration::from_secs(1));
    let now = h.now();
    for (id, q) in queries {
        let r = node(&mut h, id).respond_query(now, q, b"late");
        assert!(
            matches!(
                r,
                Err(QueryError::PastDeadline(_)) | Err(QueryError::UnknownQuery(_))
            ),
            "{r:?}"
        );
    }
}

#[test]
fn ping_query_is_acked_by_every_reachable_node() {
    let mut h = cluster(25, NODES, None);
    h.crash(5);
    let now = h.now();
    let handle = node(&mut h, 1).ping_query(now, None).expect("ping");
    h.flush(1);
    h.run_for(Duration::from_secs(4));
    let st = status(&h, 1, handle);
    assert!(st.finished);
    let want: Vec<String> = (0..NODES).filter(|&i| i != 5).map(node_name).collect();
    assert_eq!(sorted(st.acks), want, "everybody but the crashed node");
    assert!(st.responses.is_empty(), "a ping has no answers");
    let events = h.take_app_events();
    assert!(
        !events
            .iter()
            .any(|(_, _, e)| matches!(e, SerfEvent::Query(_))),
        "internal queries are not handed to the application"
    );
}

#[test]
fn a_key_query_installs_a_key_everywhere_and_lists_it() {
    let k1 = [7u8; 32];
    let k2 = [9u8; 32];
    let mut h = cluster(26, NODES, Some(k1));
    let now = h.now();
    let install = node(&mut h, 3)
        .start_key_query(now, &KeyOp::Install(k2.to_vec()), 0, None)
        .expect("sent");
    h.flush(3);
    h.run_for(Duration::from_secs(4));
    let r = h.core(3).unwrap().key_report(install).expect("a key query");
    assert_eq!(r.op, "install");
    assert!(r.finished);
    assert_eq!((r.responded, r.total), (NODES, NODES), "{r:?}");
    assert!(r.ok(), "{r:?}");
    for i in 0..NODES {
        let ring = h.core(i).unwrap().core().keyring().expect("encrypted");
        assert_eq!(ring.keys().len(), 2, "node {i} holds both keys");
    }
    let now = h.now();
    let list = node(&mut h, 0)
        .start_key_query(now, &KeyOp::List, 0, None)
        .expect("sent");
    h.flush(0);
    h.run_for(Duration::from_secs(4));
    let r = h.core(0).unwrap().key_report(list).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.keys.len(), 2);
    assert!(r.keys.values().all(|&c| c == NODES), "{:?}", r.keys);
    assert_eq!(
        r.primary_keys.values().copied().collect::<Vec<_>>(),
        vec![NODES]
    );
    assert!(h.core(0).unwrap().key_report(QueryHandle(9999)).is_none());
}

#[test]
fn a_key_query_without_encryption_reports_every_failure() {
    let mut h = cluster(27, 4, None);
    let now = h.now();
    let q = node(&mut h, 0)
        .start_key_query(now, &KeyOp::Install(vec![1; 32]), 0, None)
        .expect("sent");
    h.flush(0);
    h.run_for(Duration::from_secs(4));
    let r = h.core(0).unwrap().key_report(q).unwrap();
    assert_eq!(r.responded, 4);
    assert_eq!(r.failures.len(), 4, "{r:?}");
    assert!(!r.ok());
}

#[test]
fn runtime_tags_reach_every_node() {
    let mut h = cluster(28, NODES, None);
    let now = h.now();
    let mut tags = BTreeMap::new();
    tags.insert("role".to_string(), "db".to_string());
    tags.insert("zone".to_string(), "b".to_string());
    node(&mut h, 4).set_tags(now, tags.clone()).expect("small");
    h.flush(4);
    h.run_for(Duration::from_secs(5));
    for i in 0..NODES {
        let m = h
            .core(i)
            .unwrap()
            .core()
            .member_by_name(&node_name(4))
            .expect("known");
        assert_eq!(swimnet_serf::decode_tags(&m.meta), tags, "seen by node {i}");
    }
    let mut big = BTreeMap::new();
    big.insert("k".to_string(), "v".repeat(600));
    assert!(node(&mut h, 4).set_tags(now, big).is_err());
    assert_eq!(h.core(4).unwrap().serf().tags(), &tags, "unchanged");
}

#[test]
fn force_leave_sends_a_leave_intent_about_a_failed_node() {
    let mut h = cluster(29, 4, None);
    h.crash(2);
    h.run_for(Duration::from_secs(15));
    assert_eq!(h.view(0, 2), Some(NodeState::Dead));
    let now = h.now();
    let n = node(&mut h, 0);
    assert!(n.force_leave(now, "nobody", false).is_err());
    assert!(n.force_leave(now, &node_name(0), false).is_err());
    let before = n.serf().clock().time();
    n.force_leave(now, &node_name(2), false)
        .expect("known node");
    assert!(
        n.serf().clock().time() > before,
        "stamped with the member clock"
    );
    let seen = |h: &Harness<SerfNode>, i: NodeId| h.core(i).unwrap().serf().counters().received[0];
    let (b1, b3) = (seen(&h, 1), seen(&h, 3));
    h.flush(0);
    h.run_for(Duration::from_millis(50));
    assert!(
        seen(&h, 1) > b1 && seen(&h, 3) > b3,
        "the intent reached both alive members"
    );
}

#[test]
fn acks_and_answers_are_relayed_when_asked_and_counted_once() {
    let mut h = cluster(30, NODES, None);
    let params = QueryParams {
        request_ack: true,
        relay_factor: 2,
        ..QueryParams::default()
    };
    let asker = 1;
    let handle = ask(&mut h, asker, &params);
    h.run_for(Duration::from_millis(500));
    assert_eq!(answer_all(&mut h).len(), NODES);
    h.run_for(Duration::from_secs(3));
    let st = status(&h, asker, handle);
    assert_eq!(st.acks.len(), NODES);
    assert_eq!(st.responses.len(), NODES);
    let relayed: u64 = (0..NODES)
        .map(|i| h.core(i).unwrap().serf().counters().relayed)
        .sum();
    // Every node but the asker relays its ack and its answer through two
    // others (the asker's own go to itself directly).
    assert!(relayed >= 2 * 2 * (NODES as u64 - 1), "relayed {relayed}");
    let c = h.core(asker).unwrap().serf().queries().counters().clone();
    assert_eq!((c.acks, c.responses), (NODES as u64, NODES as u64));
    assert_eq!(c.over_limit, 0, "{c:?}");
    assert!(
        c.duplicates >= relayed / 2,
        "relayed copies are dropped: {c:?}"
    );
}
