//! Serf messages: type codes, lenient decoding, errors, addresses, and
//! round trips of arbitrary messages (property tests).

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;
use swimnet_serf::messages::*;
use swimnet_serf::SerfError;
use swimnet_wire::WireError;

#[test]
fn type_codes() {
    for b in 0u8..=9 {
        assert_eq!(MessageType::try_from(b).unwrap().code(), b);
    }
    assert_eq!(MessageType::try_from(10), Err(SerfError::UnknownType(10)));
    assert_eq!(MessageType::KeyResponse as u8, 8);
}

#[test]
fn lenient_decoding() {
    // Keys in another order, an unknown key, str8 and bin forms, a
    // signed integer form, trailing bytes.
    let body = [
        0x84, 0xa4, b'N', b'o', b'd', b'e', 0xd9, 2, b'n', b'1', 0xa3, b'X', b'y', b'z', 0x92, 1,
        2, 0xa5, b'L', b'T', b'i', b'm', b'e', 0xd1, 0x01, 0x00, 0xa5, b'P', b'r', b'u', b'n',
        b'e', 0x01, 0xff, 0xff,
    ];
    let m = Leave::decode_body(&body).unwrap();
    assert_eq!(
        m,
        Leave {
            ltime: 256,
            node: "n1".into(),
            prune: true
        }
    );
    // A struct as an array (fields in Go source order).
    let arr = [0x93, 5, 0xa2, b'n', b'2', 0xc2];
    assert_eq!(
        Leave::decode_body(&arr).unwrap(),
        Leave {
            ltime: 5,
            node: "n2".into(),
            prune: false
        }
    );
    // nil: the zero value.
    assert_eq!(Join::decode_body(&[0xc0]).unwrap(), Join::default());
    // Query payload as bin8.
    let mut q = Query {
        payload: vec![1, 2, 3],
        ..Default::default()
    };
    let enc = q.encode();
    let bin = {
        let mut b = enc.clone();
        let pos = b
            .windows(4)
            .position(|w| w == [0xa3, 1, 2, 3])
            .expect("payload");
        b.splice(pos..pos + 1, [0xc4, 3]);
        b
    };
    assert_eq!(Query::decode(&bin).unwrap(), q);
    q.timeout = -5;
    assert_eq!(
        Query::decode(&q.encode()).unwrap().timeout_duration(),
        Duration::ZERO
    );
}

#[test]
fn errors() {
    assert_eq!(Message::decode(&[]), Err(SerfError::Empty));
    assert_eq!(Message::decode(&[200]), Err(SerfError::UnknownType(200)));
    assert_eq!(
        Leave::decode(&[1, 0x80]),
        Err(SerfError::WrongType {
            expected: 0,
            found: 1
        })
    );
    assert!(matches!(
        Message::decode(&[0, 0x81, 0xa5, b'L', b'T', b'i', b'm', b'e', 0xff]),
        Err(SerfError::Wire(WireError::IntOutOfRange { .. }))
    ));
    assert!(matches!(
        Message::decode(&[1, 0x81]),
        Err(SerfError::Wire(WireError::Incomplete))
    ));
    // A relay with no inner message.
    let mut relay = Relay::default().encode();
    assert_eq!(Message::decode(&relay), Err(SerfError::EmptyRelay));
    relay.push(9);
    let Ok(Message::Relay(r)) = Message::decode(&relay) else {
        panic!("relay");
    };
    assert!(r.inner_message().is_err());
    assert_eq!(r.header.dest_addr(), Err(SerfError::BadAddress(0)));
    let h = RelayHeader {
        dest_ip: vec![1, 2, 3, 4],
        dest_port: 70000,
        ..Default::default()
    };
    assert_eq!(h.dest_addr(), Err(SerfError::BadPort(70000)));
    assert_eq!(Filter::decode(&[]), Err(SerfError::EmptyFilter));
    assert_eq!(
        Filter::decode(&[2, 0x90]),
        Err(SerfError::UnknownFilterType(2))
    );
}

#[test]
fn addresses() {
    assert_eq!(
        ip_from_bytes(&[10, 0, 0, 1]).unwrap(),
        "10.0.0.1".parse::<IpAddr>().unwrap()
    );
    let v6: IpAddr = "fe80::1".parse().unwrap();
    assert_eq!(ip_from_bytes(&ip_to_bytes(v6)).unwrap(), v6);
    let mapped = "::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets();
    assert_eq!(
        ip_from_bytes(&mapped).unwrap(),
        "10.0.0.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(ip_from_bytes(&[1; 5]), Err(SerfError::BadAddress(5)));
}

fn name() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn query() -> impl Strategy<Value = Query> {
    (
        (any::<u64>(), any::<u32>(), bytes(20), any::<u16>(), name()),
        (
            proptest::collection::vec(bytes(40), 0..4),
            any::<u32>(),
            any::<u8>(),
            any::<i64>(),
            name(),
            bytes(300),
        ),
    )
        .prop_map(
            |(
                (ltime, id, addr, port, source_node),
                (filters, flags, relay_factor, timeout, name, payload),
            )| Query {
                ltime,
                id,
                addr,
                port,
                source_node,
                filters,
                flags,
                relay_factor,
                timeout,
                name,
                payload,
            },
        )
}

fn push_pull() -> impl Strategy<Value = PushPull> {
    let event = (name(), bytes(20)).prop_map(|(name, payload)| BufferedEvent { name, payload });
    let events = proptest::option::of(
        (any::<u64>(), proptest::collection::vec(event, 0..3))
            .prop_map(|(ltime, events)| UserEvents { ltime, events }),
    );
    (
        any::<u64>(),
        proptest::collection::btree_map(name(), any::<u64>(), 0..5),
        proptest::collection::vec(name(), 0..4),
        any::<u64>(),
        proptest::collection::vec(events, 0..6),
        any::<u64>(),
    )
        .prop_map(
            |(ltime, status_ltimes, left_members, event_ltime, events, query_ltime)| PushPull {
                ltime,
                status_ltimes,
                left_members,
                event_ltime,
                events,
                query_ltime,
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), name(), any::<bool>())
            .prop_map(|(ltime, node, prune)| Message::Leave(Leave { ltime, node, prune })),
        (any::<u64>(), name()).prop_map(|(ltime, node)| Message::Join(Join { ltime, node })),
        push_pull().prop_map(Message::PushPull),
        (any::<u64>(), name(), bytes(100), any::<bool>()).prop_map(|(ltime, name, payload, cc)| {
            Message::UserEvent(UserEvent {
                ltime,
                name,
                payload,
                cc,
            })
        }),
        query().prop_map(Message::Query),
        (any::<u64>(), any::<u32>(), name(), any::<u32>(), bytes(100)).prop_map(
            |(ltime, id, from, flags, payload)| Message::QueryResponse(QueryResponse {
                ltime,
                id,
                from,
                flags,
                payload
            })
        ),
        bytes(50).prop_map(|key| Message::KeyRequest(KeyRequest { key })),
        (
            any::<bool>(),
            name(),
            proptest::collection::vec(name(), 0..5),
            name()
        )
            .prop_map(|(result, message, keys, primary_key)| {
                Message::KeyResponse(KeyResponse {
                    result,
                    message,
                    keys,
                    primary_key,
                })
            }),
        (bytes(17), any::<i64>(), name(), name(), bytes(60)).prop_map(
            |(dest_ip, dest_port, dest_zone, dest_name, mut inner)| {
                if inner.is_empty() {
                    inner.push(5);
                }
                Message::Relay(Relay {
                    header: RelayHeader {
                        dest_ip,
                        dest_port,
                        dest_zone,
                        dest_name,
                    },
                    inner,
                })
            }
        ),
    ]
}

proptest! {
    #[test]
    fn roundtrip(m in message()) {
        let enc = m.encode();
        prop_assert_eq!(enc.first().copied(), Some(m.message_type().code()));
        prop_assert_eq!(Message::decode(&enc).unwrap(), m);
    }

    #[test]
    fn filters_roundtrip(nodes in proptest::collection::vec(name(), 1..5), tag in name(), expr in name()) {
        let f = Filter::Nodes(nodes);
        prop_assert_eq!(Filter::decode(&f.encode()).unwrap(), f);
        let f = Filter::Tag { tag, expr };
        prop_assert_eq!(Filter::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(200)) {
        let _ = Message::decode(&b);
        let _ = Filter::decode(&b);
        for t in 0u8..=10 {
            let mut m = vec![t];
            m.extend_from_slice(&b);
            if let Ok(Message::Relay(r)) = Message::decode(&m) {
                let _ = r.inner_message();
                let _ = r.header.dest_addr();
            }
            if let Ok(Message::Query(q)) = Message::decode(&m) {
                let _ = q.reply_addr();
                let _ = q.timeout_duration();
            }
        }
    }

    #[test]
    fn truncations_never_panic(m in message(), cut in any::<proptest::sample::Index>()) {
        let enc = m.encode();
        let n = cut.index(enc.len());
        let _ = Message::decode(&enc[..n]);
    }

    #[test]
    fn mutations_never_panic(m in message(), flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6)) {
        let mut enc = m.encode();
        for (i, b) in flips {
            let i = i.index(enc.len());
            enc[i] = b;
        }
        let _ = Message::decode(&enc);
    }
}
