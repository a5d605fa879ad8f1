//! Shared proptest strategies for NetworkDB messages.
#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;
use swimnet_networkdb::wire::*;

/// Any enum value, mostly the defined ones.
pub fn enum_value(max: i32) -> impl Strategy<Value = i32> {
    prop_oneof![8 => 0..=max, 1 => any::<i32>()]
}

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{12}",
        "[a-z_]{0,20}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

pub fn ltime() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1000, any::<u64>()]
}

pub fn node_event() -> impl Strategy<Value = NodeEvent> {
    (enum_value(2), ltime(), text()).prop_map(|(t, l, n)| NodeEvent {
        r#type: t,
        l_time: l,
        node_name: n,
    })
}

pub fn network_event() -> impl Strategy<Value = NetworkEvent> {
    (enum_value(2), ltime(), text(), text()).prop_map(|(t, l, n, id)| NetworkEvent {
        r#type: t,
        l_time: l,
        node_name: n,
        network_id: id,
    })
}

pub fn network_entry() -> impl Strategy<Value = NetworkEntry> {
    (text(), ltime(), text(), any::<bool>()).prop_map(|(id, l, n, leaving)| NetworkEntry {
        network_id: id,
        l_time: l,
        node_name: n,
        leaving,
    })
}

pub fn push_pull() -> impl Strategy<Value = NetworkPushPull> {
    (ltime(), vec(network_entry(), 0..5), text()).prop_map(|(l, networks, n)| NetworkPushPull {
        l_time: l,
        networks,
        node_name: n,
    })
}

pub fn table_event() -> impl Strategy<Value = TableEvent> {
    (
        enum_value(3),
        ltime(),
        text(),
        text(),
        text(),
        text(),
        bytes(),
        prop_oneof![Just(0), 0..1800, any::<i32>()],
    )
        .prop_map(|(t, l, n, id, tn, k, v, r)| TableEvent {
            r#type: t,
            l_time: l,
            node_name: n,
            network_id: id,
            table_name: tn,
            key: k,
            value: v,
            residual_reap_time: r,
        })
}

pub fn bulk_sync() -> impl Strategy<Value = BulkSyncMessage> {
    (
        ltime(),
        any::<bool>(),
        text(),
        vec(text(), 0..4),
        vec(table_event(), 0..4),
    )
        .prop_map(|(l, u, n, nets, events)| BulkSyncMessage::with_events(l, u, n, nets, &events))
}

/// A message that is not a compound.
pub fn leaf() -> impl Strategy<Value = Message> {
    prop_oneof![
        node_event().prop_map(Message::NodeEvent),
        network_event().prop_map(Message::NetworkEvent),
        push_pull().prop_map(Message::PushPull),
        table_event().prop_map(Message::TableEvent),
        bulk_sync().prop_map(Message::BulkSync),
    ]
}

/// A tree of compounds over leaves, with the leaves in order.
pub fn tree() -> impl Strategy<Value = (Vec<u8>, Vec<Message>)> {
    let leaf = leaf().prop_map(|m| (m.encode(), vec![m]));
    leaf.prop_recursive(4, 24, 6, |inner| {
        vec(inner, 0..6).prop_map(|parts| {
            let bytes: Vec<Vec<u8>> = parts.iter().map(|(b, _)| b.clone()).collect();
            let leaves = parts.into_iter().flat_map(|(_, l)| l).collect();
            (encode_compound(&bytes), leaves)
        })
    })
}
