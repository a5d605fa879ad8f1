//! Golden vectors produced by Docker 20.10.24's own NetworkDB protobuf code
//! (see `data/networkdb-20.10.24-vectors.txt` for how): our encoder must
//! produce the same bytes and our decoder must read them back into the same
//! values. The values mirror `tools/ndbref/main.go`.

use std::collections::HashMap;

use swimnet_networkdb::wire::*;
use swimnet_testkit::vector;

fn vectors() -> HashMap<String, Vec<u8>> {
    swimnet_testkit::vectors(include_str!("data/networkdb-20.10.24-vectors.txt"))
}

fn v(name: &str) -> Vec<u8> {
    vector(include_str!("data/networkdb-20.10.24-vectors.txt"), name)
}

const NODE_A: &str = "a1b2c3d4e5f6";
const NODE_B: &str = "0f9e8d7c6b5a";
const NET1: &str = "3k2bqvx6n0d1jsm4pe0hy0svz";
const NET2: &str = "net2";

/// Checks the enveloped vector `name` (and `name.inner` if present) against `m`.
fn check<M: GossipPayload + PartialEq + std::fmt::Debug + Clone>(name: &str, m: M) {
    let bytes = v(name);
    assert_eq!(m.encode_gossip(), bytes, "encoding of {name}");
    assert_eq!(M::decode_gossip(&bytes).unwrap(), m, "decoding of {name}");
    if let Some(inner) = vectors().remove(&format!("{name}.inner")) {
        assert_eq!(m.encode_inner(), inner, "inner encoding of {name}");
        assert_eq!(
            M::decode_inner(&inner).unwrap(),
            m,
            "inner decoding of {name}"
        );
        let env = decode_gossip(&bytes).unwrap();
        assert_eq!(env.r#type, M::MESSAGE_TYPE as i32);
        assert_eq!(env.data, inner);
        assert_eq!(encode_gossip(M::MESSAGE_TYPE, &inner), bytes);
    }
    // Through the generic decoder too.
    let generic = Message::decode(&bytes).unwrap();
    assert_eq!(generic.message_type(), M::MESSAGE_TYPE);
    assert_eq!(generic.encode(), bytes, "{name} via Message");
}

fn node_join() -> NodeEvent {
    NodeEvent {
        r#type: NodeEventType::Join as i32,
        l_time: 1,
        node_name: NODE_A.into(),
    }
}

fn net_join() -> NetworkEvent {
    NetworkEvent {
        r#type: NetworkEventType::Join as i32,
        l_time: 5,
        node_name: NODE_A.into(),
        network_id: NET1.into(),
    }
}

fn entry_a() -> NetworkEntry {
    NetworkEntry {
        network_id: NET1.into(),
        l_time: 7,
        node_name: NODE_A.into(),
        leaving: false,
    }
}

fn entry_b() -> NetworkEntry {
    NetworkEntry {
        network_id: NET2.into(),
        l_time: 130,
        node_name: NODE_B.into(),
        leaving: true,
    }
}

fn create() -> TableEvent {
    TableEvent {
        r#type: TableEventType::Create as i32,
        l_time: 3,
        node_name: NODE_A.into(),
        network_id: NET1.into(),
        table_name: "endpoint_table".into(),
        key: "ep1".into(),
        value: vec![0x0a, 0x03, b'f', b'o', b'o'],
        residual_reap_time: 0,
    }
}

fn update() -> TableEvent {
    TableEvent {
        r#type: TableEventType::Update as i32,
        l_time: 4,
        value: b"v2".to_vec(),
        ..create()
    }
}

fn delete() -> TableEvent {
    TableEvent {
        r#type: TableEventType::Delete as i32,
        l_time: 5,
        node_name: NODE_B.into(),
        network_id: NET1.into(),
        table_name: "overlay_peer_table".into(),
        key: "ep2".into(),
        value: vec![],
        residual_reap_time: 1800,
    }
}

#[test]
fn node_events() {
    check("node_event_join", node_join());
    check(
        "node_event_leave",
        NodeEvent {
            r#type: NodeEventType::Leave as i32,
            l_time: 300,
            node_name: NODE_A.into(),
        },
    );
    check("node_event_zero", NodeEvent::default());
    assert_eq!(v("node_event_zero"), [0x08, 0x06]);
    let e = NodeEvent::decode_gossip(&v("node_event_leave")).unwrap();
    assert_eq!(e.r#type(), NodeEventType::Leave);
}

#[test]
fn network_events() {
    check("network_event_join", net_join());
    check(
        "network_event_leave",
        NetworkEvent {
            r#type: NetworkEventType::Leave as i32,
            l_time: 1 << 35,
            node_name: NODE_B.into(),
            network_id: NET2.into(),
        },
    );
}

#[test]
fn network_entry_and_push_pull() {
    use prost::Message as _;
    let b = v("network_entry");
    assert_eq!(entry_b().encode_to_vec(), b);
    assert_eq!(NetworkEntry::decode(&b[..]).unwrap(), entry_b());

    let pp = NetworkPushPull {
        l_time: 12,
        networks: vec![entry_a(), entry_b()],
        node_name: NODE_A.into(),
    };
    check("push_pull", pp.clone());
    assert_eq!(encode_push_pull_state(&pp), v("push_pull"));
    assert_eq!(decode_push_pull_state(&v("push_pull")).unwrap(), pp);
    check(
        "push_pull_no_networks",
        NetworkPushPull {
            l_time: 1,
            networks: vec![],
            node_name: NODE_B.into(),
        },
    );
    // A push/pull state must be a PUSH_PULL envelope.
    assert_eq!(
        decode_push_pull_state(&v("node_event_join")),
        Err(DecodeError::UnexpectedMessageType {
            expected: MessageType::PushPull,
            found: MessageType::NodeEvent as i32
        })
    );
    assert_eq!(decode_push_pull_state(&[]), Err(DecodeError::Empty));
}

#[test]
fn table_events() {
    check("table_event_create", create());
    check("table_event_update", update());
    check("table_event_delete", delete());
    check(
        "table_event_extremes",
        TableEvent {
            r#type: TableEventType::Delete as i32,
            l_time: u64::MAX,
            node_name: NODE_B.into(),
            network_id: NET2.into(),
            table_name: "t".into(),
            key: "clé/ü".into(),
            value: vec![],
            residual_reap_time: -1,
        },
    );
    check(
        "table_event_big_value",
        TableEvent {
            r#type: TableEventType::Create as i32,
            l_time: 2,
            node_name: NODE_A.into(),
            network_id: NET1.into(),
            table_name: "t".into(),
            key: "big".into(),
            value: b"0123456789".repeat(30),
            residual_reap_time: 0,
        },
    );
    let d = TableEvent::decode_gossip(&v("table_event_delete")).unwrap();
    assert_eq!(d.r#type(), TableEventType::Delete);
}

#[test]
fn bulk_sync() {
    let bs = BulkSyncMessage::with_events(
        9,
        true,
        NODE_A,
        vec![NET1.into(), NET2.into()],
        &[create(), delete()],
    );
    check("bulk_sync", bs.clone());
    let payload = bs.payload_messages();
    assert_eq!(
        payload,
        vec![
            Ok(Message::TableEvent(create())),
            Ok(Message::TableEvent(delete()))
        ]
    );

    let empty = BulkSyncMessage::with_events(10, false, NODE_B, vec![NET1.into()], &[]);
    assert_eq!(empty.payload, [0x08, 0x05]);
    check("bulk_sync_reply_empty", empty.clone());
    assert!(empty.payload_messages().is_empty());
}

#[test]
fn compounds() {
    let three = encode_compound(&[
        node_join().encode_gossip(),
        net_join().encode_gossip(),
        create().encode_gossip(),
    ]);
    assert_eq!(three, v("compound_three"));
    assert_eq!(
        decode_all(&three),
        vec![
            Ok(Message::NodeEvent(node_join())),
            Ok(Message::NetworkEvent(net_join())),
            Ok(Message::TableEvent(create())),
        ]
    );
    let env = decode_gossip(&three).unwrap();
    assert_eq!(env.r#type(), MessageType::Compound);
    assert_eq!(decode_compound(&env.data).unwrap().len(), 3);

    let empty: [&[u8]; 0] = [];
    assert_eq!(encode_compound(&empty), v("compound_empty"));
    assert!(decode_all(&v("compound_empty")).is_empty());

    let nested = encode_compound(&[
        encode_compound(&[update().encode_gossip()]),
        delete().encode_gossip(),
    ]);
    assert_eq!(nested, v("compound_nested"));
    assert_eq!(
        decode_all(&nested),
        vec![
            Ok(Message::TableEvent(update())),
            Ok(Message::TableEvent(delete()))
        ]
    );

    let with_empty = encode_compound(&[Vec::new()]);
    assert_eq!(with_empty, v("compound_empty_part"));
    assert_eq!(decode_all(&with_empty), vec![Err(DecodeError::Empty)]);
}

#[test]
fn odd_envelopes() {
    let unknown = encode_gossip_raw(9, b"xyz");
    assert_eq!(unknown, v("gossip_unknown_type"));
    let env = decode_gossip(&unknown).unwrap();
    assert_eq!(env.r#type, 9);
    assert_eq!(env.data, b"xyz");
    assert_eq!(
        Message::decode(&unknown),
        Err(DecodeError::UnknownMessageType(9))
    );

    assert_eq!(v("gossip_zero"), Vec::<u8>::new());
    assert_eq!(decode_gossip(&[]), Err(DecodeError::Empty));
    // An explicit INVALID envelope is not a message.
    assert_eq!(
        Message::decode(&[0x08, 0x00]),
        Err(DecodeError::UnknownMessageType(0))
    );
}

#[test]
fn every_vector_decodes_without_panic() {
    for (name, bytes) in vectors() {
        let _ = decode_all(&bytes);
        let _ = decode_gossip(&bytes);
        assert!(!name.is_empty());
    }
}
