//! NetworkDB under hostile peers: every input has a budget. Decoders cap the
//! parts of a compound, Lamport times from the far future are refused,
//! remote events obey the local limits, attachments need a member, state
//! built from remote input is bounded, and bulk syncs are answered only to
//! members, at a bounded rate.

use std::time::{Duration, Instant};

use swimnet_core::Delegate;
use swimnet_networkdb::wire::{
    decode_all, encode_compound, for_each_message, BulkSyncMessage, DecodeError, GossipPayload,
    Message, NetworkEvent, NetworkEventType, NodeEvent, NodeEventType, TableEvent, TableEventType,
    MAX_GOSSIP_PARTS,
};
use swimnet_networkdb::{NdbConfig, NdbError, TableState};
use swimnet_networkdb::{Outgoing, CLOCK_WINDOW};
use swimnet_wire::budget::{BudgetLimit, DecodeBudget};

const NET: &str = "n1";
const T: &str = "t";

mod fixture;
use fixture::{addr, node};

/// "me" attached to NET, with member "b" attached too.
fn db_with(now: Instant, cfg: NdbConfig) -> TableState {
    let mut d = TableState::new("me".into(), addr(1), cfg, 4, 1);
    d.join_network(now, NET).unwrap();
    d.on_member_join(now, &node("b", 2));
    send(&mut d, now, &net_event("b", NET, NetworkEventType::Join, 2));
    d.take_outbox();
    d
}

fn db(now: Instant) -> TableState {
    db_with(now, NdbConfig::default())
}

fn net_event(node: &str, nid: &str, kind: NetworkEventType, l_time: u64) -> Vec<u8> {
    NetworkEvent {
        r#type: kind as i32,
        l_time,
        node_name: node.into(),
        network_id: nid.into(),
    }
    .encode_gossip()
}

fn table_event(owner: &str, l_time: u64, table: &str, key: &str, value: &[u8]) -> TableEvent {
    TableEvent {
        r#type: TableEventType::Create as i32,
        l_time,
        node_name: owner.into(),
        network_id: NET.into(),
        table_name: table.into(),
        key: key.into(),
        value: value.to_vec(),
        residual_reap_time: 0,
    }
}

fn send(d: &mut TableState, now: Instant, msg: &[u8]) {
    d.notify_msg(now, addr(9), msg);
}

/// A compound envelope of `n` empty parts, built by hand (two bytes a part).
fn empty_parts(n: usize) -> Vec<u8> {
    let mut inner = Vec::with_capacity(2 * n);
    for _ in 0..n {
        inner.extend_from_slice(&[0x0a, 0x00]);
    }
    swimnet_networkdb::wire::encode_gossip(swimnet_networkdb::wire::MessageType::Compound, &inner)
}

/// Ten million empty parts (what one LZW datagram of 31.5 KB expands to)
/// are refused whole with one error, before any part is handled; at the
/// cap, every part is handled, empty ones included.
#[test]
fn compound_parts_are_capped_and_counted() {
    let mut calls = 0usize;
    let mut errors = Vec::new();
    let t0 = Instant::now();
    for_each_message(&empty_parts(10_000_000), &mut |m| {
        calls += 1;
        if let Err(e) = m {
            errors.push(e);
        }
    });
    assert_eq!(calls, 1);
    assert_eq!(
        errors,
        vec![DecodeError::TooManyParts {
            max: MAX_GOSSIP_PARTS
        }]
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let at_cap = decode_all(&empty_parts(MAX_GOSSIP_PARTS));
    assert_eq!(at_cap.len(), MAX_GOSSIP_PARTS);
    assert!(at_cap.iter().all(|r| *r == Err(DecodeError::Empty)));
    // Nested parts count against the same budget: the second inner
    // compound would pass the cap and is refused, the first is read.
    let half = empty_parts(MAX_GOSSIP_PARTS / 2 + 1);
    let got = decode_all(&encode_compound(&[half.clone(), half]));
    assert_eq!(got.len(), MAX_GOSSIP_PARTS / 2 + 2);
    assert!(matches!(
        got.last(),
        Some(Err(DecodeError::TooManyParts { .. }))
    ));

    let now = Instant::now();
    let mut d = db(now);
    send(&mut d, now, &empty_parts(1_000_000));
    assert_eq!(d.stats().compounds_too_many_parts, 1);
    assert_eq!(d.stats().decode_errors, 1);
}

/// A NetworkDB message in a datagram pays its compound parts from the
/// datagram's decode budget: parts within what is left are handled and
/// taken, a compound with more parts than are left is dropped whole and
/// marks the budget exceeded (so the core drops the rest of the datagram),
/// and nested compounds pay too.
#[test]
fn datagram_parts_share_the_decode_budget() {
    let now = Instant::now();
    let mut d = db(now);
    // What a datagram's memberlist layer left: 100 parts.
    let mut budget = DecodeBudget::new(1 << 20, 100);
    d.notify_packet_msg(now, addr(9), &empty_parts(60), &mut budget);
    assert_eq!(budget.parts_left(), 40);
    assert_eq!(budget.exceeded(), None);
    assert_eq!(d.stats().decode_errors, 60);
    // 41 parts do not fit the 40 left: refused whole, none handled.
    d.notify_packet_msg(now, addr(9), &empty_parts(41), &mut budget);
    assert_eq!(budget.exceeded(), Some(BudgetLimit::Parts));
    assert_eq!(d.stats().compounds_too_many_parts, 1);
    assert_eq!(d.stats().decode_errors, 61);
    // Once exceeded, nothing more is opened.
    d.notify_packet_msg(now, addr(9), &empty_parts(1), &mut budget);
    assert_eq!(d.stats().decode_errors, 61);

    // Nested: 2 outer parts + 2 x 30 inner parts = 62 of 100.
    let inner = empty_parts(30);
    let mut budget = DecodeBudget::new(1 << 20, 100);
    let nested = encode_compound(&[inner.clone(), inner]);
    d.notify_packet_msg(now, addr(9), &nested, &mut budget);
    assert_eq!(budget.parts_left(), 38);
    assert_eq!(budget.exceeded(), None);

    // The table events in a compound within the budget are applied.
    let events: Vec<Vec<u8>> = (0..3)
        .map(|i| table_event("b", 10 + i, T, &format!("k{i}"), b"v").encode_gossip())
        .collect();
    let mut budget = DecodeBudget::new(1 << 20, 3);
    d.notify_packet_msg(now, addr(9), &encode_compound(&events), &mut budget);
    assert_eq!(budget.parts_left(), 0);
    assert_eq!(budget.exceeded(), None);
    assert_eq!(d.stats().compounds_too_many_parts, 1);
    assert_eq!(d.stored_records(NET, T), 3);
}

/// A table event stamped 2^64-1 is dropped and does not move the clock, so
/// the owner's later updates (and this node's own writes) still win.
#[test]
fn far_future_lamport_times_are_refused() {
    let now = Instant::now();
    let mut d = db(now);
    send(
        &mut d,
        now,
        &table_event("b", 3, T, "k", b"v1").encode_gossip(),
    );
    let clock = d.table_clock();
    let forged = table_event("b", u64::MAX, T, "k", b"forged");
    send(&mut d, now, &forged.encode_gossip());
    assert_eq!(d.table_clock(), clock);
    assert_eq!(d.stats().clock_far_future, 1);
    send(
        &mut d,
        now,
        &table_event("b", 4, T, "k", b"v2").encode_gossip(),
    );
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v2");
    // Within the window is fine; beyond it, by one, is not.
    let near = clock + 1 + CLOCK_WINDOW;
    send(
        &mut d,
        now,
        &table_event("b", near, T, "k", b"v3").encode_gossip(),
    );
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v3");
    let far = d.table_clock() + CLOCK_WINDOW + 1;
    send(
        &mut d,
        now,
        &table_event("b", far, T, "k", b"v4").encode_gossip(),
    );
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v3");
    // Node and network events: same rule on the network clock.
    let nclock = d.network_clock();
    let leave = NodeEvent {
        r#type: NodeEventType::Leave as i32,
        l_time: u64::MAX,
        node_name: "b".into(),
    };
    send(&mut d, now, &leave.encode_gossip());
    send(
        &mut d,
        now,
        &net_event("b", NET, NetworkEventType::Leave, u64::MAX),
    );
    assert_eq!(d.network_clock(), nclock);
    assert_eq!(d.network_peers(NET), vec!["b", "me"]);
    assert_eq!(d.stats().clock_far_future, 4);
}

/// A bulk sync that comes in a datagram is dropped and counted; the same
/// message over a stream is applied. Its payload (a whole table dump) is
/// not a second walk the datagram's decode budget pays for.
#[test]
fn bulk_syncs_in_datagrams_are_dropped() {
    let now = Instant::now();
    let mut d = db(now);
    let events: Vec<TableEvent> = (0..50)
        .map(|i| table_event("b", 10 + i, T, &format!("k{i}"), b"v"))
        .collect();
    let sync = BulkSyncMessage::with_events(20, true, "b", vec![NET.into()], &events);
    let mut budget = DecodeBudget::new(1 << 20, 4096);
    d.notify_packet_msg(now, addr(9), &sync.encode_gossip(), &mut budget);
    assert_eq!(d.stats().bulk_syncs_in_datagram, 1);
    assert_eq!(d.stats().bulk_syncs_received, 0);
    assert_eq!(d.stored_records(NET, T), 0);
    send(&mut d, now, &sync.encode_gossip());
    assert_eq!(d.stats().bulk_syncs_received, 1);
    assert_eq!(d.stored_records(NET, T), 50);
}

/// A fresh node still catches up with a long-lived cluster: the answer to
/// a bulk sync it asked for moves its clock any distance (below the
/// ceiling); an unsolicited one from the far future is refused.
#[test]
fn solicited_bulk_sync_answers_catch_the_clock_up() {
    let now = Instant::now();
    let mut d = TableState::new("me".into(), addr(1), NdbConfig::default(), 4, 1);
    d.on_member_join(now, &node("b", 2));
    send(&mut d, now, &net_event("b", NET, NetworkEventType::Join, 2));
    let far = 50 * CLOCK_WINDOW;
    let unsolicited = BulkSyncMessage::with_events(far, true, "b", vec![NET.into()], &[]);
    send(&mut d, now, &unsolicited.encode_gossip());
    assert_eq!(d.stats().clock_far_future, 1);
    assert!(d.table_clock() < far);
    d.join_network(now, NET).unwrap();
    assert_eq!(d.pending_bulk_syncs(), 1);
    let ev = table_event("b", far - 1, T, "k", b"v");
    let answer = BulkSyncMessage::with_events(far, false, "b", vec![NET.into()], &[ev]);
    send(&mut d, now, &answer.encode_gossip());
    assert_eq!(d.table_clock(), far + 1);
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v");
    let tomb = BulkSyncMessage::with_events(u64::MAX, false, "b", vec![NET.into()], &[]);
    send(&mut d, now, &tomb.encode_gossip());
    assert_eq!(d.table_clock(), far + 1, "never past the ceiling");
}

/// Remote table events obey the limits of a local write: key and value
/// sizes, the tables of a network and the records of the store.
#[test]
fn remote_table_events_obey_local_limits() {
    let now = Instant::now();
    let cfg = NdbConfig {
        max_tables_per_network: 2,
        max_entries: 5,
        ..NdbConfig::default()
    };
    let mut d = db_with(now, cfg.clone());
    let long_key = "k".repeat(cfg.max_key_len + 1);
    let big = vec![7u8; cfg.max_value_len + 1];
    for ev in [
        table_event("b", 3, T, &long_key, b"v"),
        table_event("b", 3, T, "", b"v"),
        table_event("b", 3, T, "k", &big),
        table_event("b", 3, &"t".repeat(1400), "k", b"v"),
    ] {
        send(&mut d, now, &ev.encode_gossip());
    }
    assert_eq!(d.stats().table_events_over_limits, 4);
    assert_eq!(d.stored_records(NET, T), 0);
    send(
        &mut d,
        now,
        &table_event("b", 4, "t1", "k", b"v").encode_gossip(),
    );
    send(
        &mut d,
        now,
        &table_event("b", 4, "t2", "k", b"v").encode_gossip(),
    );
    send(
        &mut d,
        now,
        &table_event("b", 4, "t3", "k", b"v").encode_gossip(),
    );
    assert_eq!(d.stats().table_limit_drops, 1);
    assert_eq!(d.stored_records(NET, "t3"), 0);
    assert!(matches!(
        d.create_entry(now, NET, "t4", "k", b"v"),
        Err(NdbError::TooManyTables { .. })
    ));
    for i in 0..5 {
        send(
            &mut d,
            now,
            &table_event("b", 5, "t1", &format!("x{i}"), b"v").encode_gossip(),
        );
    }
    assert_eq!(d.stats().entry_limit_drops, 2);
    assert_eq!(d.stored_records(NET, "t1"), 4);
    assert_eq!(
        d.create_entry(now, NET, "t1", "y", b"v"),
        Err(NdbError::StoreFull { max: 5 })
    );
}

/// Attachments are kept for members only: 200 forged nodes' joins leave
/// nothing once the input is handled. A member whose alive message comes
/// with its attachments in one input keeps them; one that leaves loses them.
#[test]
fn attachments_need_a_member() {
    let now = Instant::now();
    let mut d = db(now);
    for i in 0..200 {
        send(
            &mut d,
            now,
            &net_event(&format!("forged{i}"), NET, NetworkEventType::Join, 3),
        );
    }
    d.drop_parked_attachments();
    assert_eq!(d.stats().attachments_unknown_node, 200);
    assert_eq!(d.network_peers(NET), vec!["b", "me"]);
    // Same input: the attachment first, then memberlist reports the member.
    send(&mut d, now, &net_event("c", NET, NetworkEventType::Join, 3));
    d.on_member_join(now, &node("c", 3));
    d.drop_parked_attachments();
    assert_eq!(d.network_peers(NET), vec!["b", "c", "me"]);
    assert_eq!(attachments(&mut d), 3);
    let leave = NodeEvent {
        r#type: NodeEventType::Leave as i32,
        l_time: 10,
        node_name: "c".into(),
    };
    send(&mut d, now, &leave.encode_gossip());
    assert_eq!(d.network_peers(NET), vec!["b", "me"]);
    assert_eq!(attachments(&mut d), 2, "c's attachment went with it");
}

/// Attachments this node would tell in a push/pull, its own included.
fn attachments(d: &mut TableState) -> usize {
    let pp = d.local_state(false);
    swimnet_networkdb::wire::decode_push_pull_state(&pp)
        .unwrap()
        .networks
        .len()
}

/// Attachments per node and in all are bounded.
#[test]
fn attachment_table_is_bounded() {
    let now = Instant::now();
    let cfg = NdbConfig {
        max_attachments: 6,
        max_networks_per_node: 4,
        ..NdbConfig::default()
    };
    let mut d = db_with(now, cfg);
    d.on_member_join(now, &node("c", 3));
    for i in 0..10 {
        send(
            &mut d,
            now,
            &net_event("b", &format!("m{i}"), NetworkEventType::Join, 3),
        );
        send(
            &mut d,
            now,
            &net_event("c", &format!("m{i}"), NetworkEventType::Join, 3),
        );
    }
    // b: NET + 3 more (4 per node); c: 2 (6 in all); 7 + 8 refused.
    assert_eq!(d.stats().attachment_limit_drops, 15);
    assert_eq!(attachments(&mut d), 1 + 6);
}

/// Node events are deduplicated in the broadcast queue: only the newest
/// about each node is kept.
#[test]
fn node_events_are_deduplicated_in_the_queue() {
    let now = Instant::now();
    let mut d = db(now);
    d.get_broadcasts(0, 1 << 20, 2);
    for l_time in 3..50 {
        let ev = NodeEvent {
            r#type: NodeEventType::Join as i32,
            l_time,
            node_name: "b".into(),
        };
        send(&mut d, now, &ev.encode_gossip());
    }
    let queued: Vec<NodeEvent> = d
        .get_broadcasts(0, 1 << 20, 2)
        .iter()
        .filter_map(|b| NodeEvent::decode_gossip(b).ok())
        .collect();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].l_time, 49);
}

/// The relay queue of a network stays within its limit.
#[test]
fn relay_queue_is_bounded() {
    let now = Instant::now();
    let cfg = NdbConfig {
        max_relay_queue: 10,
        ..NdbConfig::default()
    };
    let mut d = db_with(now, cfg);
    // In sync once the join's sync is answered (no pending sync: b joined
    // after us, so there was none).
    assert!(d.in_sync(NET));
    for i in 0..30 {
        send(
            &mut d,
            now,
            &table_event("b", 3, T, &format!("k{i}"), b"v").encode_gossip(),
        );
    }
    assert_eq!(d.stats().relay_queue_drops, 20);
    assert_eq!(d.stats().table_events_applied, 30);
}

fn answers(d: &mut TableState) -> usize {
    d.take_outbox()
        .into_iter()
        .filter(|o| matches!(o, Outgoing::Stream(..)))
        .count()
}

/// Unsolicited bulk syncs are answered to members only, once per network
/// per interval; a non-member's is not even applied.
#[test]
fn bulk_syncs_are_answered_to_members_at_a_bounded_rate() {
    let mut now = Instant::now();
    let mut d = db(now);
    let ev = table_event("b", 3, T, "k", b"v");
    let from_stranger = BulkSyncMessage::with_events(3, true, "x", vec![NET.into()], &[]);
    for _ in 0..100 {
        send(&mut d, now, &from_stranger.encode_gossip());
    }
    assert_eq!(answers(&mut d), 0);
    assert_eq!(d.stats().bulk_syncs_unknown_sender, 100);
    let from_b = BulkSyncMessage::with_events(3, true, "b", vec![NET.into()], &[ev]);
    for _ in 0..100 {
        send(&mut d, now, &from_b.encode_gossip());
    }
    assert_eq!(answers(&mut d), 1);
    assert_eq!(d.stats().bulk_sync_answers_limited, 99);
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v");
    // Nothing in common: still one (empty) answer per interval.
    let other = BulkSyncMessage::with_events(3, true, "b", vec!["zz".into()], &[]);
    send(&mut d, now, &other.encode_gossip());
    send(&mut d, now, &other.encode_gossip());
    assert_eq!(answers(&mut d), 1);
    now += NdbConfig::default().bulk_sync_answer_interval;
    d.reap(now);
    send(&mut d, now, &from_b.encode_gossip());
    assert_eq!(answers(&mut d), 1);
}

/// The work of a node event, a member joining or leaving, is proportional
/// to that node's entries, not to the whole store: 2,000 events about a node
/// with one entry, next to 90,000 entries of another, take milliseconds
/// (a scan of the store per event took seconds).
#[test]
fn per_node_work_is_indexed() {
    let now = Instant::now();
    let mut d = db(now);
    d.on_member_join(now, &node("c", 3));
    send(&mut d, now, &net_event("c", NET, NetworkEventType::Join, 3));
    let mut parts = Vec::new();
    for i in 0..90_000 {
        parts.push(table_event("b", 4, T, &format!("k{i}"), b"v").encode_gossip());
        if parts.len() == 3000 {
            let bulk = BulkSyncMessage {
                l_time: 4,
                unsolicited: false,
                node_name: "b".into(),
                networks: Vec::new(),
                payload: encode_compound(&parts),
            };
            send(&mut d, now, &bulk.encode_gossip());
            parts.clear();
        }
    }
    assert_eq!(d.stored_records(NET, T), 90_000);
    send(
        &mut d,
        now,
        &table_event("c", 5, T, "c-key", b"v").encode_gossip(),
    );
    // c's first return sends it a bulk sync of the network (a dump of
    // every entry, once); later returns find that sync still pending.
    d.on_member_leave(now, &node("c", 3));
    d.on_member_join(now, &node("c", 3));
    let t0 = Instant::now();
    for l_time in 0..2000u64 {
        let ev = NodeEvent {
            r#type: NodeEventType::Join as i32,
            l_time: 10 + l_time,
            node_name: "c".into(),
        };
        send(&mut d, now, &ev.encode_gossip());
        d.on_member_leave(now, &node("c", 3));
        d.on_member_join(now, &node("c", 3));
    }
    let took = t0.elapsed();
    eprintln!("2,000 rounds took {took:?}");
    assert!(took < Duration::from_millis(250), "took {took:?}");
    assert_eq!(d.get_entry(NET, T, "c-key").unwrap(), b"v");
}

/// Decoding of a valid gossip message is unchanged by the streaming reader.
#[test]
fn streaming_reader_reads_what_docker_sends() {
    let evs: Vec<Vec<u8>> = (0..50)
        .map(|i| table_event("b", i, T, &format!("k{i}"), b"v").encode_gossip())
        .collect();
    let got = decode_all(&encode_compound(&evs));
    assert_eq!(got.len(), 50);
    for (i, m) in got.into_iter().enumerate() {
        assert_eq!(
            m,
            Ok(Message::TableEvent(table_event(
                "b",
                i as u64,
                T,
                &format!("k{i}"),
                b"v"
            )))
        );
    }
}

/// A periodic push/pull from the far future is refused whole (no clock
/// move, no node or attachment learned from it); the push/pull of a
/// cluster join may move the network clock any distance below the ceiling.
#[test]
fn push_pull_times_follow_the_window_except_on_join() {
    use swimnet_networkdb::wire::{encode_push_pull_state, NetworkEntry, NetworkPushPull};
    use swimnet_networkdb::CLOCK_CEILING;
    let now = Instant::now();
    let mut d = db(now);
    d.on_member_join(now, &node("c", 3));
    let state = |l_time: u64| {
        encode_push_pull_state(&NetworkPushPull {
            l_time,
            networks: vec![NetworkEntry {
                network_id: NET.into(),
                l_time,
                node_name: "c".into(),
                leaving: false,
            }],
            node_name: "c".into(),
        })
    };
    let clock = d.network_clock();
    let far = clock + 50 * CLOCK_WINDOW;
    d.merge_remote_state(now, &state(far), false);
    assert_eq!(d.network_clock(), clock);
    assert_eq!(d.stats().clock_far_future, 1);
    assert_eq!(d.network_peers(NET), vec!["b", "me"]);
    d.merge_remote_state(now, &state(far), true);
    assert_eq!(d.network_clock(), far + 1);
    assert_eq!(d.network_peers(NET), vec!["b", "c", "me"]);
    d.merge_remote_state(now, &state(CLOCK_CEILING + 1), true);
    assert_eq!(d.network_clock(), far + 1);
    assert_eq!(d.stats().clock_far_future, 2);
}
