//! The delegate end to end, fed with messages as Serf 0.9.4 encodes them
//! (vectors from `data/serf-0.9.4-vectors.txt`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_core::Delegate;
use swimnet_serf::messages::{
    Filter, Join, KeyResponse, Leave, Message, MessageType, PushPull, Query, QueryResponse,
    SerfMessage, UserEvent,
};
use swimnet_serf::{
    no_keyring_message, KeyOp, QueryReply, SerfAction, SerfConfig, SerfDelegate, TagsError,
    INSTALL_KEY_QUERY, LIST_KEYS_QUERY,
};
use swimnet_testkit::{unhex, vector};

fn v(name: &str) -> Vec<u8> {
    vector(include_str!("data/serf-0.9.4-vectors.txt"), name)
}

fn key1() -> Vec<u8> {
    unhex("e4af4eb5f3fb79f16b34a7b958242f5ef9da5c9e5c58fd12bd78b07b49248cce")
}

fn s1() -> SocketAddr {
    "127.0.0.1:7946".parse().unwrap()
}

fn rust1() -> SerfDelegate {
    SerfDelegate::new("rust1", BTreeMap::new()).unwrap()
}

fn with_tags(kv: &[(&str, &str)]) -> SerfDelegate {
    let mut c = SerfConfig::new("rust1");
    c.tags = kv
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    SerfDelegate::with_config(c).unwrap()
}

/// Decodes a query response as Serf's key manager does: the response, then
/// its payload as type 8 + nodeKeyResponse.
fn as_serf_reads_it(raw: &[u8]) -> (QueryResponse, KeyResponse) {
    let resp = QueryResponse::decode(raw).unwrap();
    assert_eq!(resp.payload.first(), Some(&MessageType::KeyResponse.code()));
    let kr = KeyResponse::decode(&resp.payload).unwrap();
    (resp, kr)
}

#[test]
fn install_key_query_for_us() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("query_install_incl"));
    let actions = d.take_actions();
    assert_eq!(actions.len(), 1, "{actions:?}");
    let SerfAction::Key { op, reply } = &actions[0] else {
        panic!("expected a key action: {actions:?}");
    };
    assert_eq!(*op, KeyOp::Install(key1()));
    assert_eq!(
        *reply,
        QueryReply {
            ltime: 5,
            id: 12345,
            to: s1(),
            source_node: "s1".into(),
            name: INSTALL_KEY_QUERY.into(),
            deadline: Some(now + Duration::from_millis(3200)),
        }
    );
    assert!(d.query_clock().time() >= 6);
    assert_eq!(d.counters().key_queries, 1);
    assert!(d.take_actions().is_empty());

    // The agent installed the key.
    let (to, raw) = d.key_response(reply, Ok(()), &[vec![9; 16], key1()]);
    assert_eq!(to, s1());
    let (resp, kr) = as_serf_reads_it(&raw);
    assert_eq!(
        (resp.ltime, resp.id, resp.from.as_str()),
        (5, 12345, "rust1")
    );
    assert!(!resp.ack());
    assert!(kr.result);
    assert!(kr.message.is_empty());
    // Not a list: no keys, exactly as Serf's own answer.
    assert!(kr.keys.is_empty() && kr.primary_key.is_empty());
    assert_eq!(resp.payload, v("key_response_ok"));
    assert_eq!(d.counters().queries_answered, 1);

    // The query is gossiped on, once.
    assert_eq!(d.pending_broadcasts(), 1);
    let out = d.get_broadcasts(2, 1400, 3);
    assert_eq!(out, vec![v("query_install_incl")]);

    // The same query again (e.g. gossiped back) is a duplicate.
    d.notify_msg(now, s1(), &v("query_install_incl"));
    assert!(d.take_actions().is_empty());
    assert_eq!(d.counters().queries_duplicate, 1);
}

#[test]
fn install_key_query_not_for_us() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("query_install_excl"));
    assert!(d.take_actions().is_empty());
    assert_eq!(d.counters().queries_filtered_out, 1);
    assert_eq!(d.counters().key_queries, 0);
    // Still gossiped on: it is the first time we see it.
    assert_eq!(d.pending_broadcasts(), 1);
    assert_eq!(d.counters().received[MessageType::Query as usize], 1);
}

#[test]
fn install_key_failure_is_reported() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("query_install_incl"));
    let Some(SerfAction::Key { op, reply }) = d.take_actions().pop() else {
        panic!("no key action");
    };
    let (_, raw) = d.key_response(&reply, Err(no_keyring_message(&op).into()), &[]);
    let (resp, kr) = as_serf_reads_it(&raw);
    assert!(!kr.result);
    assert_eq!(kr.message, "No keyring to modify (encryption not enabled)");
    // Byte for byte what a Serf node without encryption answers.
    assert_eq!(resp.payload, v("key_response_fail"));
}

#[test]
fn list_keys_with_ack() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("query_list_ack"));
    let actions = d.take_actions();
    assert_eq!(actions.len(), 2, "{actions:?}");
    // The ack goes first, byte for byte what Serf sends.
    assert_eq!(
        actions[0],
        SerfAction::Send {
            to: s1(),
            payload: v("ack")
        }
    );
    let SerfAction::Key {
        op: KeyOp::List,
        reply,
    } = &actions[1]
    else {
        panic!("expected list-keys: {actions:?}");
    };
    assert_eq!(reply.name, LIST_KEYS_QUERY);
    assert_eq!(d.counters().acks_sent, 1);

    let keys = [key1(), b"0123456789abcdef".to_vec()];
    let (to, raw) = d.key_response(reply, Ok(()), &keys);
    assert_eq!(to, s1());
    // Byte for byte what a Serf node with this keyring answers.
    assert_eq!(raw, v("query_response_list"));
    let (_, kr) = as_serf_reads_it(&raw);
    assert_eq!(
        kr.primary_key,
        "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4="
    );
    assert_eq!(kr.keys.len(), 2);

    // Without encryption.
    let (_, raw) = d.key_response(reply, Err(no_keyring_message(&KeyOp::List).into()), &[]);
    let (_, kr) = as_serf_reads_it(&raw);
    assert!(!kr.result);
    assert_eq!(kr.message, "Keyring is empty (encryption not enabled)");
    assert!(kr.keys.is_empty());
}

#[test]
fn list_keys_truncated_to_fit() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("query_list_ack"));
    let Some(SerfAction::Key { reply, .. }) = d.take_actions().pop() else {
        panic!("no key action");
    };
    let keys: Vec<Vec<u8>> = (0..60u8).map(|i| vec![i; 32]).collect();
    let (_, raw) = d.key_response(&reply, Ok(()), &keys);
    // Byte for byte what Serf's keyListResponseWithCorrectSize produces.
    assert_eq!(raw, v("query_response_list_truncated_60"));
    assert!(raw.len() <= 1024, "{}", raw.len());
    let (_, kr) = as_serf_reads_it(&raw);
    assert!(kr.result);
    let n = kr.keys.len();
    assert!(n > 0 && n < 60);
    assert_eq!(
        kr.message,
        format!("truncated key list response, showing first {n} of 60 keys")
    );
    // One more key would not have fitted.
    let mut bigger = kr.clone();
    bigger.keys = keys[..n + 1]
        .iter()
        .map(|_| kr.keys[0].clone())
        .collect::<Vec<_>>();
    let resp = QueryResponse {
        ltime: 9,
        id: 777,
        from: "rust1".into(),
        flags: 0,
        payload: bigger.encode(),
    };
    assert!(resp.encode().len() > 1024);
}

#[test]
fn tag_filter_and_no_broadcast() {
    let now = Instant::now();
    // "^we+b$" against role=web: match.
    let mut d = with_tags(&[("role", "web")]);
    d.notify_msg(now, s1(), &v("query_use_tag"));
    let actions = d.take_actions();
    assert!(
        matches!(&actions[..], [SerfAction::Key { op: KeyOp::Use(k), .. }] if *k == key1()),
        "{actions:?}"
    );
    // The no-broadcast flag: not gossiped on.
    assert_eq!(d.pending_broadcasts(), 0);

    for tags in [&[("role", "db")][..], &[("dc", "web")], &[]] {
        let mut d = with_tags(tags);
        d.notify_msg(now, s1(), &v("query_use_tag"));
        assert!(d.take_actions().is_empty(), "{tags:?}");
        assert_eq!(d.counters().queries_filtered_out, 1);
    }
}

fn query(name: &str, filters: Vec<Vec<u8>>, payload: Vec<u8>) -> Query {
    Query {
        ltime: 20,
        id: 99,
        addr: vec![10, 0, 0, 5],
        port: 7000,
        source_node: "s9".into(),
        filters,
        flags: 1,
        relay_factor: 0,
        timeout: 1_000_000_000,
        name: name.into(),
        payload,
    }
}

#[test]
fn filters_edge_cases() {
    let now = Instant::now();
    let cases: Vec<(Vec<Vec<u8>>, bool)> = vec![
        (vec![], true),
        (vec![Filter::Nodes(vec!["rust1".into()]).encode()], true),
        // Unanchored, like Go's regexp.MatchString; a missing tag is "".
        (
            vec![Filter::Tag {
                tag: "role".into(),
                expr: "e".into(),
            }
            .encode()],
            true,
        ),
        (
            vec![Filter::Tag {
                tag: "missing".into(),
                expr: "^$".into(),
            }
            .encode()],
            true,
        ),
        // All must pass.
        (
            vec![
                Filter::Nodes(vec!["rust1".into()]).encode(),
                Filter::Tag {
                    tag: "role".into(),
                    expr: "db".into(),
                }
                .encode(),
            ],
            false,
        ),
        // A regex that does not compile, an empty filter, an unknown type,
        // garbage: not processed.
        (
            vec![Filter::Tag {
                tag: "role".into(),
                expr: "(".into(),
            }
            .encode()],
            false,
        ),
        (vec![vec![]], false),
        (vec![vec![7, 0x90]], false),
        (vec![vec![0, 0xc1]], false),
    ];
    for (i, (filters, pass)) in cases.into_iter().enumerate() {
        let mut d = with_tags(&[("role", "web")]);
        let q = query("_serf_ping", filters, vec![]);
        d.notify_msg(now, s1(), &q.encode());
        let acks = d.take_actions();
        assert_eq!(acks.len(), usize::from(pass), "case {i}: {acks:?}");
        if pass {
            assert_eq!(d.counters().pings, 1);
            let SerfAction::Send { to, payload } = &acks[0] else {
                panic!("case {i}");
            };
            assert_eq!(*to, "10.0.0.5:7000".parse().unwrap());
            let ack = QueryResponse::decode(payload).unwrap();
            assert!(ack.ack());
            assert_eq!((ack.ltime, ack.id, ack.from.as_str()), (20, 99, "rust1"));
        }
    }
}

/// Internal queries other than ping and key queries are acked and not
/// handed out; a user query is acked and kept for the application's
/// answer (see `swimnet-sim/tests/serf_query.rs` for the round trip).
#[test]
fn other_queries_are_ignored_but_acked() {
    let now = Instant::now();
    let mut d = rust1();
    for (i, name) in ["uptime", "_serf_conflict", "_serf_unknown"]
        .into_iter()
        .enumerate()
    {
        let mut q = query(name, vec![], b"x".to_vec());
        q.id = i as u32;
        d.notify_msg(now, s1(), &q.encode());
    }
    let actions = d.take_actions();
    assert_eq!(actions.len(), 3);
    assert!(actions.iter().all(|a| matches!(a, SerfAction::Send { .. })));
    assert_eq!(d.counters().queries_ignored, 2);
    assert_eq!(d.counters().acks_sent, 3);
    let user = d.queries_mut().poll_incoming().expect("user query");
    assert_eq!(
        (user.name.as_str(), user.payload.as_slice()),
        ("uptime", &b"x"[..])
    );
    assert_eq!(user.source_node, "s9");
    assert!(d.queries_mut().poll_incoming().is_none());
}

#[test]
fn undecodable_key_request_gets_a_failure_answer() {
    let now = Instant::now();
    let mut d = rust1();
    let mut q = query(INSTALL_KEY_QUERY, vec![], vec![7, 0xc1]);
    q.flags = 0;
    d.notify_msg(now, s1(), &q.encode());
    q.id = 100;
    q.payload = vec![];
    d.notify_msg(now, s1(), &q.encode());
    let actions = d.take_actions();
    assert_eq!(actions.len(), 2);
    for a in actions {
        let SerfAction::Send { to, payload } = a else {
            panic!("{a:?}");
        };
        assert_eq!(to, "10.0.0.5:7000".parse().unwrap());
        let (_, kr) = as_serf_reads_it(&payload);
        assert!(!kr.result);
        assert!(kr.message.contains("decode"), "{}", kr.message);
    }
}

#[test]
fn old_queries_are_dropped() {
    let now = Instant::now();
    let mut d = rust1();
    let mut q = query("_serf_ping", vec![], vec![]);
    q.ltime = 2000;
    d.notify_msg(now, s1(), &q.encode());
    assert_eq!(d.take_actions().len(), 1);
    q.ltime = 100; // older than the 512-slot buffer covers
    q.id = 1;
    d.notify_msg(now, s1(), &q.encode());
    assert!(d.take_actions().is_empty());
    assert_eq!(d.counters().queries_too_old, 1);
}

#[test]
fn bad_reply_address() {
    let now = Instant::now();
    let mut d = rust1();
    let mut q = query("_serf_ping", vec![], vec![]);
    q.addr = vec![1, 2, 3];
    d.notify_msg(now, s1(), &q.encode());
    assert!(d.take_actions().is_empty());
    assert_eq!(d.counters().malformed, 1);
}

#[test]
fn leave_intent_orders_after_everything_seen() {
    let now = Instant::now();
    let mut d = rust1();
    // Serf's push/pull says our status time is 50.
    let pp = PushPull {
        ltime: 30,
        status_ltimes: BTreeMap::from([("rust1".into(), 50), ("s1".into(), 3)]),
        ..Default::default()
    };
    d.merge_remote_state(now, &pp.encode(), false);
    let raw = d.leave_intent();
    let leave = Leave::decode(&raw).unwrap();
    assert_eq!(leave.node, "rust1");
    assert!(!leave.prune);
    assert!(leave.ltime > 50, "{}", leave.ltime);
    assert!(d.is_leaving());
    // Queued for gossip too.
    assert_eq!(d.get_broadcasts(2, 1400, 3), vec![raw.clone()]);
    // Serf decodes it with a Go-compatible layout.
    assert_eq!(raw[0], 0);
    assert_eq!(raw[1], 0x83);
}

#[test]
fn leave_intent_from_scratch_is_nonzero() {
    let mut d = rust1();
    let leave = Leave::decode(&d.leave_intent()).unwrap();
    assert_eq!(leave.ltime, 1);
}

#[test]
fn stale_leave_about_us_is_refuted() {
    let now = Instant::now();
    let mut d = rust1();
    let stale = Leave {
        ltime: 10,
        node: "rust1".into(),
        prune: false,
    };
    d.notify_msg(now, s1(), &stale.encode());
    assert_eq!(d.counters().refutations, 1);
    let out = d.get_broadcasts(2, 1400, 3);
    assert_eq!(out.len(), 1);
    let join = Join::decode(&out[0]).unwrap();
    assert_eq!(join.node, "rust1");
    assert!(join.ltime > 10);
    // Not refuted twice, and not after we decided to leave.
    d.notify_msg(now, s1(), &stale.encode());
    assert_eq!(d.counters().refutations, 1);
    d.leave_intent();
    let later = Leave {
        ltime: d.clock().time() + 5,
        node: "rust1".into(),
        prune: false,
    };
    d.notify_msg(now, s1(), &later.encode());
    assert_eq!(d.counters().refutations, 1);

    // A push/pull that lists us as left is refuted too.
    let mut d = rust1();
    let pp = PushPull {
        status_ltimes: BTreeMap::from([("rust1".into(), 4)]),
        left_members: vec!["rust1".into()],
        ..Default::default()
    };
    d.merge_remote_state(now, &pp.encode(), false);
    assert_eq!(d.counters().refutations, 1);
    let out = d.get_broadcasts(2, 1400, 3);
    assert!(Join::decode(&out[0]).unwrap().ltime > 5);
}

#[test]
fn intents_are_witnessed_and_rebroadcast_once() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("join")); // s1 at 7
    assert_eq!(d.clock().time(), 8);
    d.notify_msg(now, s1(), &v("leave_prune")); // s2 at 300
    assert_eq!(d.clock().time(), 301);
    d.notify_msg(now, s1(), &v("join"));
    d.notify_msg(now, s1(), &v("leave_prune"));
    let out = d.get_broadcasts(2, 1400, 3);
    assert_eq!(out, vec![v("leave_prune"), v("join")]);
    assert_eq!(d.counters().rebroadcasts, 2);
    assert_eq!(d.counters().received[0], 2);
    assert_eq!(d.counters().received[1], 2);

    // Rebroadcasting can be turned off.
    let mut c = SerfConfig::new("rust1");
    c.rebroadcast = false;
    let mut d = SerfDelegate::with_config(c).unwrap();
    d.notify_msg(now, s1(), &v("join"));
    d.notify_msg(now, s1(), &v("query_install_excl"));
    assert_eq!(d.pending_broadcasts(), 0);
    assert_eq!(d.clock().time(), 8);
}

#[test]
fn user_events_are_witnessed_and_deduplicated() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("user_event"));
    d.notify_msg(now, s1(), &v("user_event"));
    assert_eq!(d.event_clock().time(), 4);
    assert_eq!(d.clock().time(), 0);
    let other = UserEvent {
        ltime: 3,
        name: "deploy".into(),
        payload: b"v2".to_vec(),
        cc: true,
    };
    d.notify_msg(now, s1(), &other.encode());
    assert_eq!(d.pending_broadcasts(), 2);
    assert_eq!(d.counters().received[3], 3);
}

#[test]
fn push_pull_state_is_witnessed() {
    let now = Instant::now();
    let mut d = rust1();
    d.merge_remote_state(now, &v("push_pull"), true);
    // LTime 11, EventLTime 7, QueryLTime 10: each witnessed minus one.
    assert_eq!(d.clock().time(), 11);
    assert_eq!(d.event_clock().time(), 7);
    assert_eq!(d.query_clock().time(), 10);
    assert_eq!(d.counters().remote_states, 1);
    // The event in the state is remembered: seeing it again is no news.
    let ev = UserEvent {
        ltime: 6,
        name: "deploy".into(),
        payload: b"v1".to_vec(),
        cc: false,
    };
    d.notify_msg(now, s1(), &ev.encode());
    assert_eq!(d.pending_broadcasts(), 0);

    // A left member's leave is one past its status time.
    d.merge_remote_state(now, &v("push_pull_left"), false);
    assert_eq!(d.clock().time(), 22);

    for bad in [&[][..], &[3, 0x80], &[2, 0xc1], &[2, 0x81, 0xa5]] {
        d.merge_remote_state(now, bad, false);
    }
    assert_eq!(d.counters().remote_states_malformed, 4);
    assert!(d.local_state(true).is_empty());
    assert!(d.ack_payload().is_empty());
}

#[test]
fn relays_are_forwarded() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, "127.0.0.1:7947".parse().unwrap(), &v("relay"));
    assert_eq!(
        d.take_actions(),
        vec![SerfAction::Send {
            to: s1(),
            payload: v("ack")
        }]
    );
    assert_eq!(d.counters().relayed, 1);

    let mut c = SerfConfig::new("rust1");
    c.relay = false;
    let mut d = SerfDelegate::with_config(c).unwrap();
    d.notify_msg(now, s1(), &v("relay"));
    assert!(d.take_actions().is_empty());
    assert_eq!(d.counters().ignored, 1);
}

#[test]
fn other_messages_are_counted_quietly() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &[]);
    d.notify_msg(now, s1(), &[42, 1, 2]);
    d.notify_msg(now, s1(), &v("ack")); // a query response: not ours
    d.notify_msg(now, s1(), &v("key_response_ok"));
    d.notify_msg(now, s1(), &[6, 0x80]);
    d.notify_msg(now, s1(), &[0, 0xc1]);
    d.notify_msg(
        now,
        s1(),
        &[4, 0x81, 0xa5, b'L', b'T', b'i', b'm', b'e', 0xa1, b'x'],
    );
    let c = d.counters();
    assert_eq!(c.unknown_type, 1);
    assert_eq!(c.ignored, 4);
    assert_eq!(c.malformed, 2);
    assert!(d.take_actions().is_empty());
    assert_eq!(d.pending_broadcasts(), 0);
}

#[test]
fn broadcasts_respect_the_budget_and_order() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("user_event"));
    d.notify_msg(now, s1(), &v("query_install_excl"));
    d.notify_msg(now, s1(), &v("join"));
    let (ev, q, j) = (v("user_event"), v("query_install_excl"), v("join"));
    // Everything fits: intents, then queries, then events.
    let all = d.get_broadcasts(3, 10_000, 2);
    assert_eq!(all, vec![j.clone(), q.clone(), ev.clone()]);
    // Only the intent and the event fit.
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("user_event"));
    d.notify_msg(now, s1(), &v("query_install_excl"));
    d.notify_msg(now, s1(), &v("join"));
    let limit = j.len() + ev.len() + 6;
    let out = d.get_broadcasts(3, limit, 2);
    assert_eq!(out, vec![j, ev]);
    assert!(out.iter().map(|m| m.len() + 3).sum::<usize>() <= limit);
}

#[test]
fn tags_and_meta() {
    let d = with_tags(&[("role", "web"), ("dc", "x1")]);
    assert_eq!(d.meta(), b"\xff\x82\xa2dc\xa2x1\xa4role\xa3web");
    let mut d = rust1();
    assert_eq!(d.meta(), [0xff, 0x80]);
    let meta = d
        .set_tags(BTreeMap::from([("role".into(), "db".into())]))
        .unwrap();
    assert_eq!(meta, d.meta());
    assert_eq!(d.tags()["role"], "db");
    let huge = BTreeMap::from([("big".to_string(), "x".repeat(600))]);
    assert!(matches!(
        d.set_tags(huge.clone()),
        Err(TagsError::TooLarge { max: 512, .. })
    ));
    assert_eq!(d.tags()["role"], "db");
    let mut c = SerfConfig::new("n");
    c.tags = huge;
    assert!(SerfDelegate::with_config(c).is_err());
}

#[test]
fn join_intent() {
    let now = Instant::now();
    let mut d = rust1();
    d.notify_msg(now, s1(), &v("join"));
    let raw = d.join_intent();
    let j = Join::decode(&raw).unwrap();
    assert_eq!((j.ltime, j.node.as_str()), (8, "rust1"));
    assert!(d.clock().time() > 8);
    // A leave intent older than our join is not refuted.
    let old = Leave {
        ltime: 8,
        node: "rust1".into(),
        prune: false,
    };
    d.notify_msg(now, s1(), &old.encode());
    assert_eq!(d.counters().refutations, 0);
    assert!(matches!(Message::decode(&raw), Ok(Message::Join(_))));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..20)
        ) {
            let now = Instant::now();
            let mut d = with_tags(&[("role", "web")]);
            for (i, m) in msgs.iter().enumerate() {
                if i % 3 == 0 {
                    d.merge_remote_state(now, m, false);
                }
                // Also as a message of every type.
                let mut typed = vec![(i % 11) as u8];
                typed.extend_from_slice(m);
                d.notify_msg(now, s1(), m);
                d.notify_msg(now, s1(), &typed);
                for a in d.take_actions() {
                    if let SerfAction::Key { reply, .. } = a {
                        let _ = d.key_response(&reply, Ok(()), &[vec![1; 16]]);
                    }
                }
                let _ = d.get_broadcasts(3, 1400, 5);
            }
        }

        #[test]
        fn arbitrary_queries_never_panic(
            ltime in any::<u64>(), id in any::<u32>(), addr in proptest::collection::vec(any::<u8>(), 0..17),
            filters in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..3),
            flags in any::<u32>(), timeout in any::<i64>(), which in 0usize..6,
            payload in proptest::collection::vec(any::<u8>(), 0..60),
        ) {
            let names = ["_serf_ping", "_serf_install-key", "_serf_use-key", "_serf_remove-key", "_serf_list-keys", "x"];
            let q = Query {
                ltime, id, addr, port: 7946, source_node: "s1".into(), filters, flags,
                relay_factor: 0, timeout, name: names[which].into(), payload,
            };
            let mut d = rust1();
            d.notify_msg(Instant::now(), s1(), &q.encode());
            for a in d.take_actions() {
                if let SerfAction::Key { reply, .. } = a {
                    let _ = d.key_response(&reply, Err("no".into()), &[]);
                }
            }
        }
    }
}

/// One query at Lamport time 2^64-1 used to stop the query clock there, so
/// that every later honest query looked too old and was dropped.
#[test]
fn far_future_query_time_is_refused_and_later_queries_work() {
    let now = Instant::now();
    let mut d = rust1();
    let mut q = query("_serf_ping", vec![], vec![]);
    q.ltime = u64::MAX;
    d.notify_msg(now, s1(), &q.encode());
    assert!(d.take_actions().is_empty());
    assert_eq!(d.counters().clock_jumps_rejected, 1);
    assert_eq!(d.query_clock().time(), 0);
    assert_eq!(d.pending_broadcasts(), 0, "not re-broadcast either");
    for (i, ltime) in [20u64, 21, 22].into_iter().enumerate() {
        let mut q = query("_serf_ping", vec![], vec![]);
        q.ltime = ltime;
        q.id = i as u32;
        d.notify_msg(now, s1(), &q.encode());
        assert_eq!(d.take_actions().len(), 1, "query at {ltime} is acked");
    }
    assert_eq!(d.counters().queries_too_old, 0);
    // The window is the limit: just inside passes, just outside does not.
    let window = d.config().max_clock_jump;
    let base = d.query_clock().time();
    q.ltime = base + window + 1;
    q.id = 100;
    d.notify_msg(now, s1(), &q.encode());
    assert_eq!(d.counters().clock_jumps_rejected, 2);
    q.ltime = base + window;
    d.notify_msg(now, s1(), &q.encode());
    assert_eq!(d.counters().clock_jumps_rejected, 2);
    assert_eq!(d.query_clock().time(), base + window + 1);
}

/// Intents and user events far in the future are refused the same way.
#[test]
fn far_future_intent_and_event_times_are_refused() {
    let now = Instant::now();
    let mut d = rust1();
    let leave = Leave {
        ltime: u64::MAX,
        node: "s1".into(),
        prune: false,
    };
    d.notify_msg(now, s1(), &leave.encode());
    let ev = UserEvent {
        ltime: u64::MAX - 1,
        name: "deploy".into(),
        payload: b"v2".to_vec(),
        cc: false,
    };
    d.notify_msg(now, s1(), &ev.encode());
    assert_eq!(d.counters().clock_jumps_rejected, 2);
    assert_eq!((d.clock().time(), d.event_clock().time()), (0, 0));
    assert_eq!(d.pending_broadcasts(), 0);
}

/// The first push/pull state may move the clocks far (a new node catching
/// up with an old cluster); later ones only within the window.
#[test]
fn push_pull_clock_jumps_are_bounded_after_the_first() {
    let now = Instant::now();
    let mut d = rust1();
    let old_cluster = PushPull {
        ltime: 5_000_000_000,
        query_ltime: 7_000_000_000,
        ..Default::default()
    };
    d.merge_remote_state(now, &old_cluster.encode(), true);
    assert_eq!(d.query_clock().time(), 7_000_000_000);
    let forged = PushPull {
        ltime: u64::MAX,
        query_ltime: u64::MAX,
        ..Default::default()
    };
    d.merge_remote_state(now, &forged.encode(), false);
    assert_eq!(d.counters().clock_jumps_rejected, 1);
    assert_eq!(d.clock().time(), 5_000_000_000);
    assert_eq!(d.query_clock().time(), 7_000_000_000);
    // A forged first state cannot saturate the clocks either.
    let mut fresh = rust1();
    fresh.merge_remote_state(now, &forged.encode(), true);
    assert_eq!(fresh.counters().clock_jumps_rejected, 1);
    assert_eq!(fresh.clock().time(), 0);
}

/// Queries whose reply address is not the sender's, and relays, are answered
/// within a token budget: a flood makes a bounded number of sends.
#[test]
fn replies_to_query_addresses_are_rate_limited() {
    let now = Instant::now();
    let mut config = SerfConfig::new("rust1");
    config.reply_limit.per_second = 10;
    config.reply_limit.burst = 20;
    let mut d = SerfDelegate::with_config(config).unwrap();
    let mut sent = 0;
    for i in 0..500u32 {
        let mut q = query("_serf_ping", vec![], vec![]);
        q.id = i;
        d.notify_msg(now, s1(), &q.encode());
        sent += d.take_actions().len();
    }
    assert_eq!(sent, 20, "the burst, no more");
    assert_eq!(d.counters().replies_limited, 480);
    // One second later, ten more tokens.
    let later = now + Duration::from_secs(1);
    for i in 500..600u32 {
        let mut q = query("_serf_ping", vec![], vec![]);
        q.id = i;
        d.notify_msg(later, s1(), &q.encode());
        sent += d.take_actions().len();
    }
    assert_eq!(sent, 30);
    // A query whose reply goes back to its sender is always answered.
    let mut q = query("_serf_ping", vec![], vec![]);
    q.id = 1000;
    let sender: SocketAddr = "10.0.0.5:7000".parse().unwrap();
    d.notify_msg(later, sender, &q.encode());
    assert_eq!(d.take_actions().len(), 1);
}

#[test]
fn user_events_are_delivered_once_and_ours_are_gossiped() {
    let mut d = rust1();
    let now = Instant::now();
    let theirs = UserEvent {
        ltime: 7,
        name: "deploy".into(),
        payload: b"v1".to_vec(),
        cc: false,
    };
    d.notify_msg(now, s1(), &theirs.encode());
    d.notify_msg(now, s1(), &theirs.encode());
    assert_eq!(
        d.poll_user_event(),
        Some(theirs),
        "a new event is delivered"
    );
    assert_eq!(d.poll_user_event(), None, "a repeat is not");
    assert_eq!(d.counters().user_events, 1);

    d.user_event("restart", b"web", true).unwrap();
    let ours = d.poll_user_event().expect("our own event is delivered too");
    assert_eq!((ours.name.as_str(), ours.cc), ("restart", true));
    assert!(ours.ltime >= 8, "stamped after the event time witnessed");
    assert!(
        d.event_clock().time() > ours.ltime,
        "the event clock moved on"
    );
    let out = d.get_broadcasts(2, 1400, 10);
    assert!(out.contains(&ours.encode()), "our event is gossiped");

    let big = vec![0u8; swimnet_serf::USER_EVENT_SIZE_LIMIT];
    let before = d.event_clock().time();
    assert!(matches!(
        d.user_event("x", &big, false),
        Err(swimnet_serf::UserEventError::TooLarge { .. })
    ));
    assert_eq!(
        d.event_clock().time(),
        before,
        "a refused event changes nothing"
    );
    assert_eq!(d.poll_user_event(), None);
}
