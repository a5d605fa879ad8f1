//! Property tests: every message survives encode → decode, through every
//! entry point, and compounds open to their leaves in order.

mod common;

use common::*;
use proptest::prelude::*;
use swimnet_networkdb::wire::*;

fn roundtrip<M: GossipPayload + PartialEq + std::fmt::Debug>(m: &M) {
    let env = m.encode_gossip();
    assert_eq!(&M::decode_gossip(&env).unwrap(), m);
    let inner = m.encode_inner();
    assert_eq!(&M::decode_inner(&inner).unwrap(), m);
    let g = decode_gossip(&env).unwrap();
    assert_eq!(g.r#type, M::MESSAGE_TYPE as i32);
    assert_eq!(g.data, inner);
    assert_eq!(encode_gossip(M::MESSAGE_TYPE, &inner), env);
}

proptest! {
    #[test]
    fn node_events(m in node_event()) { roundtrip(&m); }

    #[test]
    fn network_events(m in network_event()) { roundtrip(&m); }

    #[test]
    fn push_pulls(m in push_pull()) {
        roundtrip(&m);
        prop_assert_eq!(decode_push_pull_state(&encode_push_pull_state(&m)).unwrap(), m);
    }

    #[test]
    fn table_events(m in table_event()) { roundtrip(&m); }

    #[test]
    fn bulk_syncs(m in bulk_sync()) {
        roundtrip(&m);
        // The payload opens to table events (re-encoding them rebuilds it).
        let events: Vec<TableEvent> = m
            .payload_messages()
            .into_iter()
            .map(|r| match r {
                Ok(Message::TableEvent(t)) => t,
                other => panic!("{other:?}"),
            })
            .collect();
        let again = BulkSyncMessage::with_events(
            m.l_time, m.unsolicited, m.node_name.clone(), m.networks.clone(), &events);
        prop_assert_eq!(again, m);
    }

    #[test]
    fn messages(m in leaf()) {
        let b = m.encode();
        prop_assert_eq!(Message::decode(&b).unwrap(), m.clone());
        prop_assert_eq!(decode_all(&b), vec![Ok(m)]);
    }

    #[test]
    fn compound_trees((bytes, leaves) in tree()) {
        let got: Vec<Message> = decode_all(&bytes).into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(got, leaves);
        // Re-encoding the top compound is byte-identical.
        prop_assert_eq!(Message::decode(&bytes).unwrap().encode(), bytes);
    }

    #[test]
    fn compound_parts_split_back(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
        let c = encode_compound(&parts);
        let g = decode_gossip(&c).unwrap();
        prop_assert_eq!(g.r#type(), MessageType::Compound);
        prop_assert_eq!(decode_compound(&g.data).unwrap(), parts);
    }

    #[test]
    fn memberlist_framing(m in leaf()) {
        use swimnet_wire::codec;
        let env = m.encode();
        let mut pkt = Vec::new();
        codec::encode(&packet_user_message(env.clone()), &mut pkt);
        prop_assert_eq!(pkt[0], 8);
        let back = codec::decode(&pkt).unwrap();
        prop_assert_eq!(envelope_of_packet_message(&back), Some(&env[..]));

        let s = stream_user_message(env.clone());
        let mut wire = Vec::new();
        swimnet_wire::stream::encode_stream_body(&s, &mut wire);
        let (back, used) = swimnet_wire::stream::decode_stream_message(
            &wire, &Default::default()).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(envelope_of_stream_message(&back), Some(&env[..]));
    }
}

#[test]
fn nesting_is_bounded() {
    let leaf = NodeEvent {
        r#type: 1,
        l_time: 1,
        node_name: "n".into(),
    }
    .encode_gossip();
    // MAX_NESTING compounds around a leaf: still opened.
    let mut b = leaf.clone();
    for _ in 0..MAX_NESTING {
        b = encode_compound(&[b]);
    }
    assert!(matches!(&decode_all(&b)[..], [Ok(Message::NodeEvent(_))]));
    // One more: refused, and siblings at the top level are still read.
    let deep = encode_compound(&[b]);
    assert_eq!(
        decode_all(&deep),
        vec![Err(DecodeError::TooDeep { max: MAX_NESTING })]
    );
    let mixed = encode_compound(&[deep, leaf.clone(), vec![0xff], leaf]);
    let got = decode_all(&mixed);
    assert_eq!(got.len(), 4);
    assert!(matches!(got[0], Err(DecodeError::TooDeep { .. })));
    assert!(matches!(got[1], Ok(Message::NodeEvent(_))));
    assert!(matches!(
        got[2],
        Err(DecodeError::Malformed {
            what: "GossipMessage",
        })
    ));
    assert!(matches!(got[3], Ok(Message::NodeEvent(_))));
}

#[test]
fn size_is_bounded() {
    let big = TableEvent {
        value: vec![7; MAX_MESSAGE_BYTES],
        ..Default::default()
    }
    .encode_gossip();
    assert!(big.len() > MAX_MESSAGE_BYTES);
    assert_eq!(
        decode_gossip(&big),
        Err(DecodeError::TooLarge {
            len: big.len(),
            max: MAX_MESSAGE_BYTES
        })
    );
    assert!(matches!(
        &decode_all(&big)[..],
        [Err(DecodeError::TooLarge { .. })]
    ));
    // Just under the limit is fine.
    let ok = TableEvent {
        value: vec![7; MAX_MESSAGE_BYTES - 64],
        ..Default::default()
    }
    .encode_gossip();
    assert!(ok.len() <= MAX_MESSAGE_BYTES);
    assert!(matches!(&decode_all(&ok)[..], [Ok(Message::TableEvent(_))]));
}

#[test]
fn wrong_envelope_types_and_errors_are_reported() {
    let ne = NetworkEvent::default().encode_gossip();
    assert_eq!(
        TableEvent::decode_gossip(&ne),
        Err(DecodeError::UnexpectedMessageType {
            expected: MessageType::TableEvent,
            found: MessageType::NetworkEvent as i32
        })
    );
    // Invalid UTF-8 in a string field (Go would accept it; we refuse).
    let mut bad = vec![0x1a, 0x02, 0xff, 0xfe];
    assert!(matches!(
        NodeEvent::decode_inner(&bad),
        Err(DecodeError::Protobuf {
            what: "NodeEvent",
            ..
        })
    ));
    bad = encode_gossip(MessageType::NodeEvent, &bad);
    assert!(matches!(
        Message::decode(&bad),
        Err(DecodeError::Protobuf { .. })
    ));
    // A 10-byte varint: with a last byte of 1 it is u64::MAX; with more
    // bits set Go's gogo decoder drops them (checked with tools/ndbref),
    // prost refuses the message.
    let mut v = vec![0x08, 0x06, 0x12, 0x0b, 0x10];
    v.extend_from_slice(&[0xff; 9]);
    v.push(0x01);
    assert!(matches!(
        Message::decode(&v),
        Ok(Message::NodeEvent(NodeEvent {
            l_time: u64::MAX,
            ..
        }))
    ));
    *v.last_mut().unwrap() = 0x7f;
    assert!(matches!(
        Message::decode(&v),
        Err(DecodeError::Protobuf {
            what: "NodeEvent",
            ..
        })
    ));
    // Error messages read well.
    assert_eq!(
        DecodeError::UnexpectedMessageType {
            expected: MessageType::PushPull,
            found: 2
        }
        .to_string(),
        "expected a PUSH_PULL message, found message type 2"
    );
    assert_eq!(MessageType::BulkSync.proto_name(), "BULK_SYNC");
    // Unknown enum values are kept; the typed getter falls back to INVALID.
    let t = TableEvent {
        r#type: 42,
        ..Default::default()
    };
    let back = TableEvent::decode_gossip(&t.encode_gossip()).unwrap();
    assert_eq!(back.r#type, 42);
    assert_eq!(back.r#type(), TableEventType::Invalid);
}
