//! Real NetworkDB traffic captured between three Docker 20.10.24
//! `networkdb-test` nodes (see `data/networkdb-20.10.24-capture.txt` for
//! how), decoded through swimnet-wire's memberlist layers and this crate's
//! NetworkDB codec, checked field by field, and re-encoded byte for byte.

use swimnet_networkdb::wire::*;
use swimnet_testkit::unhex;
use swimnet_wire::codec;
use swimnet_wire::packet::{for_each_message as memberlist_messages, open_packet, OpenOptions};
use swimnet_wire::stream::{decode_stream_message, StreamDecodeOptions, StreamMessage};

const N1: &str = "87bf0ad2f7d2"; // 10.77.0.1
const N2: &str = "e5e93bd5ec03"; // 10.77.0.2
const N3: &str = "3e4c6014b562"; // 10.77.0.3

fn record(name: &str) -> Vec<u8> {
    include_str!("data/networkdb-20.10.24-capture.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0] == name).then(|| unhex(f[4]))
        })
        .unwrap_or_else(|| panic!("no captured record {name}"))
}

/// A UDP datagram's memberlist messages: NetworkDB envelopes (the user
/// messages) and the names of memberlist's own messages, in order.
fn open_udp(name: &str) -> (Vec<Vec<u8>>, Vec<String>) {
    let pkt = record(name);
    let opts = OpenOptions {
        keyring: None,
        verify_incoming: false,
        label: b"",
    };
    let inner = open_packet(&pkt, &opts).expect("memberlist packet");
    let (mut user, mut others) = (Vec::new(), Vec::new());
    memberlist_messages(&inner, 1 << 20, &mut |m| {
        let m = m.expect("memberlist message");
        match envelope_of_packet_message(&m) {
            Some(env) => {
                // The user message is exactly [8][envelope].
                let mut again = Vec::new();
                codec::encode(&packet_user_message(env.to_vec()), &mut again);
                assert_eq!(again[0], 8);
                assert_eq!(&again[1..], env);
                user.push(env.to_vec());
            }
            None => others.push(format!("{:?}", m.message_type())),
        }
    });
    (user, others)
}

/// A TCP stream's single memberlist message.
fn open_tcp(name: &str) -> StreamMessage {
    let bytes = record(name);
    let (m, used) = decode_stream_message(&bytes, &StreamDecodeOptions::default())
        .expect("memberlist stream")
        .expect("complete stream message");
    assert_eq!(used, bytes.len(), "{name}: whole stream consumed");
    m
}

fn te(
    ty: TableEventType,
    l_time: u64,
    owner: &str,
    key: &str,
    value: &[u8],
    reap: i32,
) -> TableEvent {
    TableEvent {
        r#type: ty as i32,
        l_time,
        node_name: owner.into(),
        network_id: "net1".into(),
        table_name: "t1".into(),
        key: key.into(),
        value: value.to_vec(),
        residual_reap_time: reap,
    }
}

fn ne(ty: NetworkEventType, l_time: u64, node: &str, nid: &str) -> NetworkEvent {
    NetworkEvent {
        r#type: ty as i32,
        l_time,
        node_name: node.into(),
        network_id: nid.into(),
    }
}

/// Per-network table gossip: one memberlist user message holding a COMPOUND
/// of TABLE_EVENT envelopes; re-encoding the decoded events gives Go's bytes.
fn check_table_gossip(name: &str, want: Vec<TableEvent>) {
    let pkt = record(name);
    // SendBestEffort to a known node: CRC (type 12) then the user message,
    // uncompressed at this size.
    assert_eq!(pkt[0], 12, "{name}: CRC header");
    assert_eq!(pkt[5], 8, "{name}: user message");
    let (user, others) = open_udp(name);
    assert!(others.is_empty(), "{name}: {others:?}");
    assert_eq!(user.len(), 1, "{name}: one user message");
    let env = &user[0];
    assert_eq!(decode_gossip(env).unwrap().r#type(), MessageType::Compound);
    let got: Vec<TableEvent> = decode_all(env)
        .into_iter()
        .map(|m| match m {
            Ok(Message::TableEvent(t)) => t,
            other => panic!("{name}: {other:?}"),
        })
        .collect();
    assert_eq!(got, want, "{name}");
    let parts: Vec<Vec<u8>> = got.iter().map(GossipPayload::encode_gossip).collect();
    assert_eq!(&encode_compound(&parts), env, "{name}: re-encoding");
}

#[test]
fn udp_table_gossip() {
    use TableEventType::*;
    check_table_gossip(
        "udp_table_gossip_two_creates",
        vec![
            te(Create, 2, N1, "k2", b"v2", 0),
            te(Create, 1, N1, "k1", b"v1", 0),
        ],
    );
    // A relay (node 2 forwarding node 1's update) keeps owner and ltime; a
    // DELETE carries the last value and the 30 min residual reap time.
    check_table_gossip(
        "udp_table_gossip_delete_update_relay",
        vec![
            te(Delete, 7, N2, "k3", b"x", 1800),
            te(Update, 4, N1, "k1", b"v1c", 0),
        ],
    );
    check_table_gossip(
        "udp_table_gossip_single_delete",
        vec![te(Delete, 7, N2, "k3", b"x", 1800)],
    );
}

#[test]
fn udp_cluster_wide_events_ride_on_memberlist() {
    // A NodeEvent broadcast in memberlist's own compound, LZW-compressed,
    // after two alive messages.
    let pkt = record("udp_node_event_join_in_compressed_compound");
    assert_eq!((pkt[0], pkt[5]), (12, 9), "CRC, then compressed");
    let (user, others) = open_udp("udp_node_event_join_in_compressed_compound");
    assert_eq!(others, ["Alive", "Alive"]);
    assert_eq!(user.len(), 1);
    let join = NodeEvent {
        r#type: NodeEventType::Join as i32,
        l_time: 3,
        node_name: N2.into(),
    };
    assert_eq!(NodeEvent::decode_gossip(&user[0]).unwrap(), join);
    assert_eq!(join.encode_gossip(), user[0]);

    // Three NetworkEvents, one per memberlist compound part.
    let (user, others) = open_udp("udp_network_events_in_compound");
    assert!(others.is_empty());
    let want = [
        ne(NetworkEventType::Join, 9, N2, "net1"),
        ne(NetworkEventType::Join, 10, N1, "net1"),
        ne(NetworkEventType::Join, 8, N3, "net1"),
    ];
    assert_eq!(user.len(), 3);
    for (env, w) in user.iter().zip(&want) {
        assert_eq!(&NetworkEvent::decode_gossip(env).unwrap(), w);
        assert_eq!(&w.encode_gossip(), env);
        assert_eq!(decode_all(env), vec![Ok(Message::NetworkEvent(w.clone()))]);
    }

    // Piggybacked on a probe (no CRC: memberlist only adds it when it
    // sends to a node it has looked up by name). The LEAVE for net1 was
    // replaced in the queue by the later JOIN for the same (network, node);
    // the LEAVE for the unknown network "nosuch" was still sent.
    let pkt = record("udp_network_events_on_ping");
    assert_eq!(pkt[0], 7, "memberlist compound, no CRC");
    let (user, others) = open_udp("udp_network_events_on_ping");
    assert_eq!(others, ["Ping"]);
    let got: Vec<_> = user.iter().flat_map(|e| decode_all(e)).collect();
    assert_eq!(
        got,
        vec![
            Ok(Message::NetworkEvent(ne(
                NetworkEventType::Leave,
                14,
                N3,
                "nosuch"
            ))),
            Ok(Message::NetworkEvent(ne(
                NetworkEventType::Join,
                15,
                N3,
                "net1"
            ))),
        ]
    );
}

fn bulk_sync(name: &str) -> (BulkSyncMessage, Vec<u8>) {
    let bytes = record(name);
    assert_eq!(bytes[0], 9, "{name}: streams are always compressed");
    let m = open_tcp(name);
    let env = envelope_of_stream_message(&m)
        .unwrap_or_else(|| panic!("{name}: not a user message: {m:?}"))
        .to_vec();
    assert_eq!(stream_user_message(env.clone()), m);
    let mut all = decode_all(&env);
    assert_eq!(all.len(), 1);
    match all.pop().unwrap() {
        Ok(Message::BulkSync(b)) => (b, env),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn tcp_bulk_syncs() {
    use TableEventType::*;
    // Node 3 joined net1 with nothing: an empty compound payload (08 05).
    let (b, env) = bulk_sync("tcp_bulk_sync_unsolicited_empty");
    assert_eq!(
        b,
        BulkSyncMessage::with_events(8, true, N3, vec!["net1".into()], &[])
    );
    assert_eq!(b.payload, [8, 5]);
    assert_eq!(b.encode_gossip(), env);

    // Node 1's answer: every entry, live ones as CREATE (k1 was updated at
    // ltime 4 but is sent as a create), the tombstone as DELETE with the
    // reap time left (1789 s).
    let entries = [
        te(Create, 4, N1, "k1", b"v1c", 0),
        te(Create, 2, N1, "k2", b"v2", 0),
        te(Delete, 7, N2, "k3", b"x", 1789),
    ];
    let (b, env) = bulk_sync("tcp_bulk_sync_reply");
    assert_eq!(
        b,
        BulkSyncMessage::with_events(9, false, N1, vec!["net1".into()], &entries)
    );
    assert_eq!(Message::BulkSync(b.clone()).encode(), env);
    let payload: Vec<_> = b.payload_messages();
    assert_eq!(payload.len(), 3);
    for (got, want) in payload.iter().zip(&entries) {
        assert_eq!(got, &Ok(Message::TableEvent(want.clone())));
    }

    // Node 3's periodic/initial sync to node 2, relaying what it learnt.
    let (b, env) = bulk_sync("tcp_bulk_sync_unsolicited");
    assert_eq!(
        b,
        BulkSyncMessage::with_events(10, true, N3, vec!["net1".into()], &entries)
    );
    assert_eq!(b.encode_gossip(), env);
}

fn push_pull(name: &str) -> (bool, NetworkPushPull) {
    let bytes = record(name);
    assert_eq!(bytes[0], 9, "{name}: streams are always compressed");
    match open_tcp(name) {
        StreamMessage::PushPull {
            header, user_state, ..
        } => {
            let pp = decode_push_pull_state(&user_state).expect("NetworkPushPull");
            assert_eq!(encode_push_pull_state(&pp), user_state, "{name}");
            (header.join, pp)
        }
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn tcp_push_pull_user_state() {
    let (join, pp) = push_pull("tcp_push_pull_join_no_networks.request");
    assert!(join);
    assert_eq!(
        pp,
        NetworkPushPull {
            l_time: 1,
            networks: vec![],
            node_name: N2.into()
        }
    );
    let (join, pp) = push_pull("tcp_push_pull_join_no_networks.response");
    assert!(join);
    assert_eq!(pp.node_name, N1);

    let entry = |nid: &str, l_time, node: &str| NetworkEntry {
        network_id: nid.into(),
        l_time,
        node_name: node.into(),
        leaving: false,
    };
    let (join, pp) = push_pull("tcp_push_pull_periodic.request");
    assert!(!join);
    assert_eq!(
        pp,
        NetworkPushPull {
            l_time: 16,
            networks: vec![
                entry("net1", 10, N1),
                entry("net1", 9, N2),
                entry("net1", 15, N3)
            ],
            node_name: N1.into()
        }
    );
    let (_, pp) = push_pull("tcp_push_pull_periodic.response");
    assert_eq!(pp.node_name, N2);
    assert_eq!(pp.l_time, 16);
    // Every node's attachments, in Go map order.
    let mut nodes: Vec<_> = pp.networks.iter().map(|e| e.node_name.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, [N3, N1, N2]);
}
