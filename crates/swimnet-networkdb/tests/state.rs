//! Single-node NetworkDB rules, driven message by message.

use std::time::{Duration, Instant};

use swimnet_core::Delegate;
use swimnet_networkdb::wire::{
    encode_compound, BulkSyncMessage, GossipPayload, NetworkEntry, NetworkEvent, NetworkEventType,
    NetworkPushPull, NodeEvent, NodeEventType, TableEvent, TableEventType,
};
use swimnet_networkdb::{NdbConfig, NdbError, PeerState, TableState};

const NET: &str = "n1";
const T: &str = "t";

mod fixture;
use fixture::{addr, node};

fn db(now: Instant) -> TableState {
    let mut d = TableState::new("me".into(), addr(1), NdbConfig::default(), 4, 1);
    d.join_network(now, NET).unwrap();
    d.on_member_join(now, &node("b", 2));
    d.on_member_join(now, &node("c", 3));
    d
}

fn net_event(node: &str, kind: NetworkEventType, l_time: u64) -> Vec<u8> {
    NetworkEvent {
        r#type: kind as i32,
        l_time,
        node_name: node.into(),
        network_id: NET.into(),
    }
    .encode_gossip()
}

fn table_event(
    owner: &str,
    kind: TableEventType,
    l_time: u64,
    key: &str,
    value: &[u8],
) -> TableEvent {
    TableEvent {
        r#type: kind as i32,
        l_time,
        node_name: owner.into(),
        network_id: NET.into(),
        table_name: T.into(),
        key: key.into(),
        value: value.to_vec(),
        residual_reap_time: if kind == TableEventType::Delete {
            1800
        } else {
            0
        },
    }
}

fn send(d: &mut TableState, now: Instant, msg: &[u8]) {
    d.notify_msg(now, addr(9), msg);
}

#[test]
fn entry_before_owner_attachment_is_held_then_applied() {
    let now = Instant::now();
    let mut d = db(now);
    let ev = table_event("b", TableEventType::Create, 5, "k", b"v").encode_gossip();
    send(&mut d, now, &ev);
    // Docker drops it ("owner not attached"); we hold it.
    assert!(d.table_entries(NET, T).is_empty());
    assert_eq!(d.held_events(), 1);
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 3));
    assert_eq!(d.held_events(), 0);
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v");
    assert_eq!(d.stats().held_released, 1);
}

#[test]
fn held_entries_are_dropped_when_owner_leaves_network_or_expire() {
    let now = Instant::now();
    let mut d = db(now);
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 3));
    send(&mut d, now, &net_event("b", NetworkEventType::Leave, 4));
    // b's attachment is now "leaving": its entries are refused outright.
    let ev = table_event("b", TableEventType::Create, 5, "k", b"v").encode_gossip();
    send(&mut d, now, &ev);
    assert_eq!(d.held_events(), 0);
    // c is unknown: held, then expired by the reaper.
    let ev = table_event("c", TableEventType::Create, 5, "k2", b"v").encode_gossip();
    send(&mut d, now, &ev);
    assert_eq!(d.held_events(), 1);
    d.reap(now + Duration::from_secs(31 * 60));
    assert_eq!(d.held_events(), 0);
}

#[test]
fn equal_lamport_times_converge_regardless_of_order() {
    let now = Instant::now();
    let events = [
        table_event("b", TableEventType::Create, 7, "k", b"from-b"),
        table_event("c", TableEventType::Create, 7, "k", b"from-c"),
        table_event("b", TableEventType::Delete, 7, "k2", b""),
        table_event("b", TableEventType::Create, 7, "k2", b"alive"),
    ];
    let mut results = Vec::new();
    for order in [[0usize, 1, 2, 3], [1, 0, 3, 2]] {
        let mut d = db(now);
        send(&mut d, now, &net_event("b", NetworkEventType::Join, 2));
        send(&mut d, now, &net_event("c", NetworkEventType::Join, 2));
        for i in order {
            send(&mut d, now, &events[i].encode_gossip());
        }
        results.push((d.table_entries(NET, T), d.get_entry(NET, T, "k2").is_err()));
    }
    // Docker keeps whichever arrived first, so the two nodes would differ.
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0].0[0].owner, "c");
    assert!(results[0].1, "delete wins the tie");
}

#[test]
fn stale_and_newer_events() {
    let now = Instant::now();
    let mut d = db(now);
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 2));
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Create, 5, "k", b"v5").encode_gossip(),
    );
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Update, 4, "k", b"v4").encode_gossip(),
    );
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v5");
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Update, 6, "k", b"v6").encode_gossip(),
    );
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v6");
    assert!(d.table_clock() > 6);
    // A delete of an unknown entry still leaves a tombstone that blocks older creates.
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Delete, 9, "gone", b"").encode_gossip(),
    );
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Create, 8, "gone", b"x").encode_gossip(),
    );
    assert!(matches!(
        d.get_entry(NET, T, "gone"),
        Err(NdbError::Deleted { .. })
    ));
}

#[test]
fn failed_owner_hidden_then_restored_then_reaped() {
    let now = Instant::now();
    let mut d = db(now);
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 2));
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Create, 5, "k", b"v").encode_gossip(),
    );
    d.on_member_leave(now, &node("b", 2));
    assert_eq!(d.peer_state("b"), Some(PeerState::Failed));
    assert!(d.table_entries(NET, T).is_empty());
    // Hidden, not gone: the read that includes failed owners still shows it.
    let all = d.table_entries_with_failed(NET, T);
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].key.as_str(), all[0].owner.as_str()), ("k", "b"));
    assert!(matches!(
        d.get_entry(NET, T, "k"),
        Err(NdbError::NotFound { .. })
    ));
    assert_eq!(d.stored_records(NET, T), 1);
    // Still reaped before the timer? No.
    d.reap(now + Duration::from_secs(60));
    assert_eq!(d.stored_records(NET, T), 1);
    d.on_member_join(now, &node("b", 2));
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v");
    // Fails again and stays away past the entry reap time: gone.
    d.on_member_leave(now, &node("b", 2));
    d.reap(now + Duration::from_secs(31 * 60));
    assert_eq!(d.stored_records(NET, T), 0);
    assert!(d.table_entries_with_failed(NET, T).is_empty());
}

#[test]
fn node_leave_event_deletes_entries() {
    let now = Instant::now();
    let mut d = db(now);
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 2));
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Create, 5, "k", b"v").encode_gossip(),
    );
    let leave = NodeEvent {
        r#type: NodeEventType::Leave as i32,
        l_time: 10,
        node_name: "b".into(),
    };
    send(&mut d, now, &leave.encode_gossip());
    assert_eq!(d.peer_state("b"), Some(PeerState::Left));
    assert_eq!(d.stored_records(NET, T), 0);
    assert!(d.network_peers(NET) == vec!["me".to_string()]);
}

#[test]
fn tombstones_are_reaped() {
    let now = Instant::now();
    let mut d = db(now);
    d.create_entry(now, NET, T, "k", b"v").unwrap();
    d.delete_entry(now, NET, T, "k").unwrap();
    assert!(matches!(
        d.get_entry(NET, T, "k"),
        Err(NdbError::Deleted { .. })
    ));
    d.reap(now + Duration::from_secs(29 * 60));
    assert_eq!(d.stored_records(NET, T), 1);
    d.reap(now + Duration::from_secs(30 * 60));
    assert_eq!(d.stored_records(NET, T), 0);
    // Create over a tombstone is allowed.
    d.create_entry(now, NET, T, "j", b"v").unwrap();
    d.delete_entry(now, NET, T, "j").unwrap();
    d.create_entry(now, NET, T, "j", b"v2").unwrap();
    assert_eq!(d.get_entry(NET, T, "j").unwrap(), b"v2");
}

#[test]
fn api_errors_and_limits() {
    let now = Instant::now();
    let cfg = NdbConfig {
        max_entries_per_table: 2,
        max_value_len: 16,
        max_key_len: 8,
        ..NdbConfig::default()
    };
    let mut d = TableState::new("me".into(), addr(1), cfg, 4, 1);
    assert!(matches!(
        d.create_entry(now, NET, T, "k", b"v"),
        Err(NdbError::NetworkNotJoined(_))
    ));
    d.join_network(now, NET).unwrap();
    assert_eq!(
        d.join_network(now, NET),
        Err(NdbError::AlreadyJoined(NET.into()))
    );
    d.create_entry(now, NET, T, "a", b"v").unwrap();
    let e = d.create_entry(now, NET, T, "a", b"v").unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot create entry in table t with network id n1 and key a, already exists"
    );
    assert!(matches!(
        d.update_entry(now, NET, T, "zz", b"v"),
        Err(NdbError::UpdateMissing { .. })
    ));
    assert!(matches!(
        d.delete_entry(now, NET, T, "zz"),
        Err(NdbError::DeleteMissing { .. })
    ));
    assert!(matches!(
        d.create_entry(now, NET, T, "toolongkey", b"v"),
        Err(NdbError::BadKey { .. })
    ));
    assert!(matches!(
        d.create_entry(now, NET, T, "b", &[0; 17]),
        Err(NdbError::ValueTooLarge { .. })
    ));
    d.create_entry(now, NET, T, "b", b"v").unwrap();
    assert!(matches!(
        d.create_entry(now, NET, T, "c", b"v"),
        Err(NdbError::TableFull { .. })
    ));
    // Not the owner.
    d.on_member_join(now, &node("b", 2));
    d.notify_msg(now, addr(2), &net_event("b", NetworkEventType::Join, 2));
    d.notify_msg(
        now,
        addr(2),
        &table_event("b", TableEventType::Create, 50, "x", b"v").encode_gossip(),
    );
    assert_eq!(
        d.table_entries(NET, T).len(),
        2,
        "table full drops remote creates"
    );
    d.delete_entry(now, NET, T, "b").unwrap();
    d.notify_msg(
        now,
        addr(2),
        &table_event("b", TableEventType::Create, 60, "x", b"v").encode_gossip(),
    );
    assert!(matches!(
        d.update_entry(now, NET, T, "x", b"w"),
        Err(NdbError::NotOwner { .. })
    ));
}

#[test]
fn push_pull_state_round_trip() {
    let now = Instant::now();
    let mut a = db(now);
    send(&mut a, now, &net_event("b", NetworkEventType::Join, 2));
    let state = a.local_state(true);
    let mut fresh = TableState::new("c".into(), addr(3), NdbConfig::default(), 4, 2);
    fresh.on_member_join(now, &node("me", 1));
    fresh.on_member_join(now, &node("b", 2));
    fresh.merge_remote_state(now, &state, true);
    assert_eq!(
        fresh.network_peers(NET),
        vec!["b".to_string(), "me".to_string()]
    );
    assert!(fresh.network_clock() > 2);

    // A stale push/pull cannot resurrect a left attachment.
    let pp = NetworkPushPull {
        l_time: 1,
        networks: vec![NetworkEntry {
            network_id: NET.into(),
            l_time: 1,
            node_name: "b".into(),
            leaving: false,
        }],
        node_name: "b".into(),
    };
    send(
        &mut fresh,
        now,
        &net_event("b", NetworkEventType::Leave, 20),
    );
    fresh.merge_remote_state(
        now,
        &swimnet_networkdb::wire::encode_push_pull_state(&pp),
        false,
    );
    assert_eq!(fresh.network_peers(NET), vec!["me".to_string()]);
}

#[test]
fn bulk_sync_is_answered_and_applies_attachments_first() {
    let now = Instant::now();
    let mut d = db(now);
    let events = [table_event("b", TableEventType::Create, 5, "k", b"v")];
    let mut msg = BulkSyncMessage::with_events(10, true, "b", vec![NET.into()], &events);
    // Attachment inside the same sync (moby PR #53437 style).
    let parts = vec![
        net_event("b", NetworkEventType::Join, 2),
        events[0].encode_gossip(),
    ];
    msg.payload = encode_compound(&parts);
    d.notify_msg(now, addr(2), &msg.encode_gossip());
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"v");
    let out = d.take_outbox();
    assert_eq!(out.len(), 1, "an unsolicited sync is answered");
    assert!(matches!(&out[0], swimnet_networkdb::Outgoing::Stream(a, _) if *a == addr(2)));
}

#[test]
fn garbage_never_panics() {
    let now = Instant::now();
    let mut d = db(now);
    let mut x: u64 = 88172645463325252;
    for len in 0..400usize {
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        d.notify_msg(now, addr(5), &buf);
        d.merge_remote_state(now, &buf, false);
        // Valid envelopes with hostile contents.
        let ev = TableEvent {
            r#type: (x % 7) as i32,
            l_time: x,
            node_name: "b".into(),
            network_id: NET.into(),
            table_name: T.into(),
            key: format!("{len}"),
            value: buf.clone(),
            residual_reap_time: x as i32,
        };
        d.notify_msg(now, addr(5), &ev.encode_gossip());
    }
    // Extreme clocks do not overflow.
    let ev = table_event("b", TableEventType::Create, u64::MAX, "max", b"v");
    d.notify_msg(now, addr(5), &ev.encode_gossip());
    d.notify_msg(
        now,
        addr(5),
        &net_event("b", NetworkEventType::Join, u64::MAX),
    );
    d.create_entry(now, NET, T, "after-max", b"v").unwrap();
    d.reap(now + Duration::from_secs(3600));
}

#[test]
fn reincarnation_on_same_address_retires_the_old_name() {
    let now = Instant::now();
    let mut d = db(now);
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 2));
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Create, 5, "k", b"v").encode_gossip(),
    );
    d.on_member_leave(now, &node("b", 2));
    // Restarted daemon: new random ID, same address.
    d.on_member_join(now, &node("b2", 2));
    assert_eq!(d.peer_state("b"), Some(PeerState::Left));
    assert_eq!(d.stored_records(NET, T), 0);
    assert_eq!(d.peer_state("b2"), Some(PeerState::Active));
}

#[test]
fn returning_failed_node_gets_a_bulk_sync() {
    let now = Instant::now();
    let mut d = db(now);
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 2));
    d.take_outbox();
    d.on_member_leave(now, &node("b", 2));
    d.on_member_join(now, &node("b", 2));
    let out = d.take_outbox();
    assert_eq!(out.len(), 1);
    assert_eq!(d.pending_bulk_syncs(), 1);
    d.expire_syncs(now + Duration::from_secs(60));
    assert_eq!(d.pending_bulk_syncs(), 0);
    assert_eq!(d.stats().bulk_sync_timeouts, 1);
}

#[test]
fn table_changes_report_the_local_point_of_view() {
    use swimnet_networkdb::TableChange;
    let now = Instant::now();
    let mut d = db(now);
    let change = |key: &str, value: Option<&[u8]>, prev: Option<&[u8]>| TableChange {
        network_id: NET.into(),
        table: T.into(),
        key: key.into(),
        value: value.map(<[u8]>::to_vec),
        prev: prev.map(<[u8]>::to_vec),
        origin: swimnet_networkdb::ChangeOrigin::Remote,
    };
    // Own writes are not reported.
    d.create_entry(now, NET, T, "mine", b"m").unwrap();
    assert_eq!(d.poll_table_change(), None);
    // Held, then applied: one create, when it becomes visible.
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Create, 5, "k", b"v").encode_gossip(),
    );
    assert_eq!(d.poll_table_change(), None);
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 2));
    assert_eq!(d.poll_table_change(), Some(change("k", Some(b"v"), None)));
    // Wire UPDATE, and a stale duplicate that changes nothing.
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Update, 6, "k", b"w").encode_gossip(),
    );
    send(
        &mut d,
        now,
        &table_event("b", TableEventType::Update, 6, "k", b"w").encode_gossip(),
    );
    assert_eq!(
        d.poll_table_change(),
        Some(change("k", Some(b"w"), Some(b"v")))
    );
    assert_eq!(d.poll_table_change(), None);
    // Owner fails: hidden (delete); returns: visible again (create).
    d.on_member_leave(now, &node("b", 2));
    assert_eq!(d.poll_table_change(), Some(change("k", None, Some(b"w"))));
    d.on_member_join(now, &node("b", 2));
    assert_eq!(d.poll_table_change(), Some(change("k", Some(b"w"), None)));
    // Owner leaves the network: delete.
    send(&mut d, now, &net_event("b", NetworkEventType::Leave, 9));
    assert_eq!(d.poll_table_change(), Some(change("k", None, Some(b"w"))));
    assert_eq!(d.poll_table_change(), None);
}

#[test]
fn local_writes_are_reported_with_their_origin_when_asked() {
    use swimnet_networkdb::{ChangeOrigin, TableChange};
    let now = Instant::now();
    let cfg = NdbConfig {
        report_local_changes: true,
        ..NdbConfig::default()
    };
    let mut d = TableState::new("me".into(), addr(1), cfg, 4, 1);
    d.join_network(now, NET).unwrap();
    let local = |value: Option<&[u8]>, prev: Option<&[u8]>| TableChange {
        network_id: NET.into(),
        table: T.into(),
        key: "k".into(),
        value: value.map(<[u8]>::to_vec),
        prev: prev.map(<[u8]>::to_vec),
        origin: ChangeOrigin::Local,
    };
    // put creates, then updates; a refused write and a same-value update
    // report nothing; delete reports the value that went away.
    d.put_entry(now, NET, T, "k", b"v").unwrap();
    assert_eq!(d.poll_table_change(), Some(local(Some(b"v"), None)));
    d.put_entry(now, NET, T, "k", b"w").unwrap();
    assert_eq!(d.poll_table_change(), Some(local(Some(b"w"), Some(b"v"))));
    assert!(d.create_entry(now, NET, T, "k", b"x").is_err());
    d.update_entry(now, NET, T, "k", b"w").unwrap();
    assert_eq!(d.poll_table_change(), None);
    d.delete_entry(now, NET, T, "k").unwrap();
    assert_eq!(d.poll_table_change(), Some(local(None, Some(b"w"))));
    // put over a tombstone creates again.
    d.put_entry(now, NET, T, "k", b"y").unwrap();
    assert_eq!(d.poll_table_change(), Some(local(Some(b"y"), None)));
    assert_eq!(d.get_entry(NET, T, "k").unwrap(), b"y");
    assert_eq!(d.poll_table_change(), None);
}

#[test]
fn check_attached_tells_a_network_not_joined_from_an_empty_one() {
    use swimnet_networkdb::NdbErrorKind as K;
    let now = Instant::now();
    let mut d = db(now);
    // Joined, empty table: attached.
    assert_eq!(d.check_attached(NET), Ok(()));
    assert!(d.table_entries(NET, T).is_empty());
    // Never joined: the table reads empty too, but the check says why.
    let e = d.check_attached("other").unwrap_err();
    assert_eq!(e, NdbError::NetworkNotJoined("other".into()));
    assert_eq!(e.kind(), K::NotAttached);
    // Left: not attached any more.
    d.leave_network(now, NET).unwrap();
    assert_eq!(d.check_attached(NET).unwrap_err().kind(), K::NotAttached);
}

#[test]
fn error_kinds_sort_refusals_without_reading_messages() {
    use swimnet_networkdb::NdbErrorKind as K;
    let now = Instant::now();
    let mut d = db(now);
    let kind = |r: Result<(), NdbError>| r.unwrap_err().kind();
    assert_eq!(kind(d.get_entry(NET, T, "nope").map(drop)), K::NotFound);
    assert_eq!(kind(d.delete_entry(now, NET, T, "nope")), K::NotFound);
    assert_eq!(kind(d.update_entry(now, NET, T, "nope", b"v")), K::Conflict);
    assert_eq!(kind(d.join_network(now, NET)), K::Conflict);
    assert_eq!(
        kind(d.create_entry(now, "other", T, "k", b"v")),
        K::NotAttached
    );
    assert_eq!(kind(d.leave_network(now, "other")), K::NotAttached);
    d.create_entry(now, NET, T, "k", b"v").unwrap();
    assert_eq!(kind(d.create_entry(now, NET, T, "k", b"v")), K::Conflict);
    d.delete_entry(now, NET, T, "k").unwrap();
    assert_eq!(kind(d.get_entry(NET, T, "k").map(drop)), K::NotFound);
    assert_eq!(kind(d.create_entry(now, NET, T, "", b"v")), K::Invalid);
    let big = vec![0u8; 1 << 16];
    assert_eq!(kind(d.create_entry(now, NET, T, "k2", &big)), K::Invalid);
}

#[test]
fn network_attachments_are_reported_when_asked() {
    use swimnet_networkdb::{ChangeOrigin, NetworkChange};
    let now = Instant::now();
    let change = |node: &str, attached, origin| NetworkChange {
        network_id: NET.into(),
        node: node.into(),
        attached,
        origin,
    };
    let cfg = NdbConfig {
        report_network_changes: true,
        ..NdbConfig::default()
    };
    let mut d = TableState::new("me".into(), addr(1), cfg, 4, 1);
    d.on_member_join(now, &node("b", 2));
    d.join_network(now, NET).unwrap();
    assert_eq!(
        d.poll_network_change(),
        Some(change("me", true, ChangeOrigin::Local))
    );
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 5));
    // The same event again, or an older one, changes nothing.
    send(&mut d, now, &net_event("b", NetworkEventType::Join, 5));
    send(&mut d, now, &net_event("b", NetworkEventType::Leave, 4));
    assert_eq!(
        d.poll_network_change(),
        Some(change("b", true, ChangeOrigin::Remote))
    );
    assert_eq!(d.poll_network_change(), None);
    send(&mut d, now, &net_event("b", NetworkEventType::Leave, 6));
    assert_eq!(
        d.poll_network_change(),
        Some(change("b", false, ChangeOrigin::Remote))
    );
    d.leave_network(now, NET).unwrap();
    assert_eq!(
        d.poll_network_change(),
        Some(change("me", false, ChangeOrigin::Local))
    );
    // Off by default.
    let mut quiet = db(now);
    send(&mut quiet, now, &net_event("b", NetworkEventType::Join, 5));
    assert_eq!(quiet.poll_network_change(), None);
}
