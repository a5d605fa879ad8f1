//! Part 2's inputs: swimnet-wire values to encode and hand to Go.

use super::*;

/// `m` encoded as one packet message.
pub(crate) fn enc_msg(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(m, &mut out);
    out
}

/// An alive message of node `i`.
pub(crate) fn alive(i: u32, meta: &[u8]) -> Message {
    Message::Alive(Alive {
        incarnation: i,
        node: format!("node-{i:03}"),
        addr: vec![127, 0, 1, i as u8],
        port: 7946 + i as u16,
        meta: meta.to_vec(),
        vsn: vec![1, 5, 2, 2, 5, 4],
    })
}

/// An IPv6 address.
const V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// A protocol version vector.
const VSN: [u8; 6] = [1, 5, 2, 2, 5, 5];

/// `n` times the character `c`.
fn long(n: usize, c: char) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// Every struct Go is asked to decode: probe messages, gossip messages and
/// the structs of streams.
pub(crate) fn sample_structs() -> Vec<GoStruct> {
    let mut all = sample_probe_messages();
    all.extend(sample_gossip_messages());
    all.extend(sample_stream_structs());
    all
}

/// Ping, indirect ping, ack, nack and err, at their edge values.
fn sample_probe_messages() -> Vec<GoStruct> {
    let m = GoStruct::Msg;
    vec![
        m(Message::Ping(Ping {
            seq_no: 7,
            node: "n2".into(),
            ..Default::default()
        })),
        m(Message::Ping(Ping {
            seq_no: u32::MAX,
            node: long(31, 'a'),
            source_addr: V6.to_vec(),
            source_port: 65535,
            source_node: long(32, 'b'),
        })),
        m(Message::Ping(Ping {
            seq_no: 0,
            node: String::new(),
            source_port: 9,
            ..Default::default()
        })),
        m(Message::IndirectPing(IndirectPing {
            seq_no: 128,
            target: vec![10, 0, 0, 1],
            port: 7947,
            node: "target".into(),
            nack: true,
            source_addr: vec![127, 0, 0, 1],
            source_port: 7946,
            source_node: "me".into(),
        })),
        m(Message::IndirectPing(IndirectPing {
            seq_no: 65536,
            target: vec![10, 0, 0, 2],
            port: 0,
            node: "t".into(),
            nack: false,
            ..Default::default()
        })),
        m(Message::AckResp(AckResp {
            seq_no: 255,
            payload: vec![],
        })),
        m(Message::AckResp(AckResp {
            seq_no: 256,
            payload: (0..=255).collect(),
        })),
        m(Message::AckResp(AckResp {
            seq_no: 70000,
            payload: vec![0x5a; 70000],
        })),
        m(Message::NackResp(NackResp {
            seq_no: 0xffff_fff0,
        })),
        m(Message::ErrResp(ErrResp {
            error: "remote error: ünïcödé".into(),
        })),
        m(Message::ErrResp(ErrResp {
            error: long(300, 'e'),
        })),
    ]
}

/// Suspect, dead and alive, at their edge values.
fn sample_gossip_messages() -> Vec<GoStruct> {
    let m = GoStruct::Msg;
    vec![
        m(Message::Suspect(Suspect {
            incarnation: 127,
            node: "n2".into(),
            from: "n1".into(),
        })),
        m(Message::Suspect(Suspect {
            incarnation: 65535,
            node: long(255, 's'),
            from: long(256, 'f'),
        })),
        m(Message::Dead(Dead {
            incarnation: 1 << 16,
            node: "n1".into(),
            from: "n1".into(),
        })),
        m(Message::Alive(Alive {
            incarnation: 1,
            node: "n1".into(),
            addr: vec![127, 0, 0, 1],
            port: 7946,
            meta: vec![],
            vsn: VSN.to_vec(),
        })),
        m(Message::Alive(Alive {
            incarnation: u32::MAX,
            node: long(64, 'x'),
            addr: V6.to_vec(),
            port: 1,
            meta: (0..512).map(|i| (i * 13) as u8).collect(),
            vsn: vec![1, 5, 2, 2, 5, 4],
        })),
        m(Message::Alive(Alive {
            incarnation: 200,
            node: "tags".into(),
            addr: vec![127, 0, 0, 9],
            port: 7946,
            meta: vec![
                0xff, 0x81, 0xa4, b'r', b'o', b'l', b'e', 0xa3, b'w', b'e', b'b',
            ],
            vsn: VSN.to_vec(),
        })),
    ]
}

/// Push/pull headers, node states, user message headers and a compress
/// message.
fn sample_stream_structs() -> Vec<GoStruct> {
    vec![
        GoStruct::Header(PushPullHeader {
            nodes: 0,
            user_state_len: 0,
            join: false,
        }),
        GoStruct::Header(PushPullHeader {
            nodes: 200,
            user_state_len: 300,
            join: true,
        }),
        GoStruct::Header(PushPullHeader {
            nodes: 70000,
            user_state_len: 20 << 20,
            join: true,
        }),
        GoStruct::State(PushNodeState {
            name: "n1".into(),
            addr: vec![127, 0, 0, 1],
            port: 7946,
            meta: vec![],
            incarnation: 3,
            state: 0,
            vsn: VSN.to_vec(),
        }),
        GoStruct::State(PushNodeState {
            name: long(40, 'q'),
            addr: V6.to_vec(),
            port: 65535,
            meta: vec![0xff, 0x80],
            incarnation: 1 << 31,
            state: 3,
            vsn: VSN.to_vec(),
        }),
        GoStruct::State(PushNodeState {
            state: 2,
            incarnation: 128,
            ..Default::default()
        }),
        GoStruct::UserHeader(UserMsgHeader { user_msg_len: 0 }),
        GoStruct::UserHeader(UserMsgHeader { user_msg_len: 200 }),
        GoStruct::UserHeader(UserMsgHeader {
            user_msg_len: 1 << 20,
        }),
        GoStruct::Compress(Compress {
            algo: 0,
            buf: b"anything".to_vec(),
        }),
    ]
}

/// A push/pull of `n` made-up members (random metadata and incarnations)
/// and `user` state.
pub(crate) fn push_pull(rng: &mut Rng, n: usize, user: Vec<u8>, join: bool) -> StreamMessage {
    let states = (0..n)
        .map(|i| PushNodeState {
            name: format!("member-{i:04}"),
            addr: vec![127, 0, (i >> 8) as u8, i as u8],
            port: 7946,
            meta: if i % 3 == 0 {
                vec![]
            } else {
                rng.bytes(i % 40)
            },
            incarnation: rng.next() as u32,
            state: (i % 4) as i64,
            vsn: vec![1, 5, 2, 2, 5, 4],
        })
        .collect();
    StreamMessage::PushPull {
        header: PushPullHeader {
            join,
            ..Default::default()
        },
        states,
        user_state: user,
    }
}
