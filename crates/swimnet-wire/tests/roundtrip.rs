//! Property tests: every encoder's output decodes back to its input, across
//! all framing layers, and streams decode correctly however the bytes are
//! split.

use proptest::collection::vec;
use proptest::prelude::*;

use swimnet_wire::codec::{self, Body, Message};
use swimnet_wire::compound::{decode_compound, encode_compound};
use swimnet_wire::compress::{compress_payload, decompress_payload, MAX_DECOMPRESSED};
use swimnet_wire::lzw;
use swimnet_wire::msg::*;
use swimnet_wire::msgpack::Reader;
use swimnet_wire::packet::{for_each_message, open_packet, seal_packet, OpenOptions, SealOptions};
use swimnet_wire::security::{
    decrypt_payload, encrypt_payload, encrypted_length, EncryptionVersion, Key, Keyring,
};
use swimnet_wire::stream::{
    decode_stream_message, decode_stream_reply, encode_stream_message, encode_stream_reply,
    StreamDecodeOptions, StreamEncodeOptions, StreamMessage,
};

// ----- strategies -----

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9.-]{0,20}",
        1 => "\\PC{0,40}",
        1 => "[a-z]{30,300}", // str16 territory
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn addr() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(vec![]), vec(any::<u8>(), 4), vec(any::<u8>(), 16)]
}

fn ping() -> impl Strategy<Value = Ping> {
    (any::<u32>(), name(), addr(), any::<u16>(), name()).prop_map(
        |(seq_no, node, source_addr, source_port, source_node)| Ping {
            seq_no,
            node,
            source_addr,
            source_port,
            source_node,
        },
    )
}

fn indirect_ping() -> impl Strategy<Value = IndirectPing> {
    (
        any::<u32>(),
        addr(),
        any::<u16>(),
        name(),
        any::<bool>(),
        addr(),
        any::<u16>(),
        name(),
    )
        .prop_map(
            |(seq_no, target, port, node, nack, source_addr, source_port, source_node)| {
                IndirectPing {
                    seq_no,
                    target,
                    port,
                    node,
                    nack,
                    source_addr,
                    source_port,
                    source_node,
                }
            },
        )
}

fn alive() -> impl Strategy<Value = Alive> {
    (
        any::<u32>(),
        name(),
        addr(),
        any::<u16>(),
        bytes(600),
        bytes(8),
    )
        .prop_map(|(incarnation, node, addr, port, meta, vsn)| Alive {
            incarnation,
            node,
            addr,
            port,
            meta,
            vsn,
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ping().prop_map(Message::Ping),
        indirect_ping().prop_map(Message::IndirectPing),
        (any::<u32>(), bytes(100))
            .prop_map(|(seq_no, payload)| Message::AckResp(AckResp { seq_no, payload })),
        any::<u32>().prop_map(|seq_no| Message::NackResp(NackResp { seq_no })),
        name().prop_map(|error| Message::ErrResp(ErrResp { error })),
        (any::<u32>(), name(), name()).prop_map(|(incarnation, node, from)| Message::Suspect(
            Suspect {
                incarnation,
                node,
                from
            }
        )),
        alive().prop_map(Message::Alive),
        (any::<u32>(), name(), name()).prop_map(|(incarnation, node, from)| Message::Dead(Dead {
            incarnation,
            node,
            from
        })),
        bytes(300).prop_map(Message::User),
    ]
}

fn node_state() -> impl Strategy<Value = PushNodeState> {
    (
        name(),
        addr(),
        any::<u16>(),
        bytes(64),
        any::<u32>(),
        prop_oneof![0i64..4, any::<i64>()],
        bytes(8),
    )
        .prop_map(
            |(name, addr, port, meta, incarnation, state, vsn)| PushNodeState {
                name,
                addr,
                port,
                meta,
                incarnation,
                state,
                vsn,
            },
        )
}

fn stream_message() -> impl Strategy<Value = StreamMessage> {
    prop_oneof![
        3 => (any::<bool>(), vec(node_state(), 0..12), bytes(400)).prop_map(|(join, states, user_state)| {
            StreamMessage::PushPull {
                header: PushPullHeader { nodes: states.len() as u32, user_state_len: user_state.len() as u32, join },
                states,
                user_state,
            }
        }),
        1 => ping().prop_map(StreamMessage::Ping),
        1 => (any::<u32>(), bytes(50)).prop_map(|(seq_no, payload)| StreamMessage::AckResp(AckResp { seq_no, payload })),
        1 => bytes(500).prop_map(StreamMessage::User),
        1 => name().prop_map(|error| StreamMessage::ErrResp(ErrResp { error })),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        vec(any::<u8>(), 16),
        vec(any::<u8>(), 24),
        vec(any::<u8>(), 32)
    ]
    .prop_map(|b| Key::new(&b).unwrap())
}

fn vsn() -> impl Strategy<Value = EncryptionVersion> {
    prop_oneof![
        Just(EncryptionVersion::V0Padded),
        Just(EncryptionVersion::V1)
    ]
}

/// Data LZW finds interesting: random, few-symbol, and long runs.
fn lzw_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(3000),
        vec(0u8..4, 0..20_000),
        (vec(any::<u8>(), 1..40), 1usize..5000).prop_map(|(pat, reps)| pat.repeat(reps)),
        (any::<u8>(), 0usize..200_000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn enc(m: &Message) -> Vec<u8> {
    let mut v = Vec::new();
    codec::encode(m, &mut v);
    v
}

// ----- messages and framing -----

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn message_roundtrip(m in message()) {
        let b = enc(&m);
        prop_assert_eq!(codec::decode(&b).unwrap(), m);
    }

    #[test]
    fn push_node_state_roundtrip(s in node_state(), h in (any::<u32>(), any::<u32>(), any::<bool>())) {
        let mut b = Vec::new();
        codec::encode_push_node_state(&s, &mut b);
        let h = PushPullHeader { nodes: h.0, user_state_len: h.1, join: h.2 };
        codec::encode_push_pull_header(&h, &mut b);
        codec::encode_user_msg_header(&UserMsgHeader { user_msg_len: h.nodes }, &mut b);
        let mut r = Reader::new(&b);
        prop_assert_eq!(PushNodeState::decode_body(&mut r).unwrap(), s);
        prop_assert_eq!(PushPullHeader::decode_body(&mut r).unwrap(), h.clone());
        prop_assert_eq!(UserMsgHeader::decode_body(&mut r).unwrap().user_msg_len, h.nodes);
        prop_assert!(r.is_empty());
    }

    #[test]
    fn compound_roundtrip(parts in vec(bytes(300), 0..=255)) {
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let mut b = Vec::new();
        encode_compound(&refs, &mut b);
        let c = decode_compound(&b[1..]).unwrap();
        prop_assert_eq!(c.truncated, 0);
        prop_assert_eq!(c.parts, refs);
    }

    #[test]
    fn compound_truncation_keeps_earlier_parts(parts in vec(bytes(50), 1..20), cut in any::<prop::sample::Index>()) {
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let mut b = Vec::new();
        encode_compound(&refs, &mut b);
        let header = 2 + 2 * parts.len();
        let cut = header + cut.index(b.len() - header + 1);
        let c = decode_compound(&b[1..cut]).unwrap();
        prop_assert_eq!(c.parts.len() + c.truncated, parts.len());
        prop_assert_eq!(&c.parts[..], &refs[..c.parts.len()]);
    }

    #[test]
    fn messages_through_compound_and_compression(ms in vec(message(), 1..20), compress in any::<bool>()) {
        let encoded: Vec<Vec<u8>> = ms.iter().map(enc).collect();
        let refs: Vec<&[u8]> = encoded.iter().map(|p| &p[..]).collect();
        let mut inner = Vec::new();
        encode_compound(&refs, &mut inner);
        if compress {
            let mut z = Vec::new();
            compress_payload(&inner, &mut z);
            inner = z;
        }
        let mut got = Vec::new();
        for_each_message(&inner, MAX_DECOMPRESSED, &mut |m| got.push(m.unwrap()));
        prop_assert_eq!(got, ms);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lzw_roundtrip(input in lzw_input()) {
        let mut c = Vec::new();
        lzw::compress(&input, &mut c);
        prop_assert_eq!(lzw::decompress(&c, input.len()).unwrap(), input.clone());
        if !input.is_empty() {
            prop_assert!(lzw::decompress(&c, input.len() - 1).is_err());
        }
        let mut z = Vec::new();
        compress_payload(&input, &mut z);
        prop_assert_eq!(decompress_payload(&z[1..], MAX_DECOMPRESSED).unwrap(), input);
    }

    #[test]
    fn encryption_roundtrip(k in key(), v in vsn(), nonce in any::<[u8; 12]>(), pt in bytes(2000), aad in bytes(40)) {
        let mut out = Vec::new();
        encrypt_payload(v, &k, &nonce, &pt, &aad, &mut out);
        prop_assert_eq!(out.len(), encrypted_length(v, pt.len()));
        prop_assert_eq!(out[0], v as u8);
        let kr = Keyring::new(k);
        prop_assert_eq!(decrypt_payload(&kr, &out, &aad).unwrap(), pt);
    }

    #[test]
    fn keyring_decrypts_with_any_installed_key(
        keys in vec(key(), 2..6),
        which in any::<prop::sample::Index>(),
        v in vsn(),
        pt in bytes(300),
    ) {
        let mut kr = Keyring::new(keys[0].clone());
        for k in &keys[1..] {
            kr.install(k.clone());
        }
        // Distinct random keys: the ring holds all of them.
        prop_assume!(kr.keys().len() == keys.len());
        let k = &keys[which.index(keys.len())];
        let mut out = Vec::new();
        encrypt_payload(v, k, &[5; 12], &pt, b"", &mut out);
        prop_assert_eq!(decrypt_payload(&kr, &out, b"").unwrap(), pt.clone());
        // A ring without that key fails.
        if kr.primary() != k {
            kr.remove(k.as_bytes()).unwrap();
            prop_assert!(decrypt_payload(&kr, &out, b"").is_err());
        }
    }

    #[test]
    fn packet_pipeline_roundtrip(
        ms in vec(message(), 1..10),
        crc in any::<bool>(),
        compress in any::<bool>(),
        k in prop::option::of((key(), vsn(), any::<[u8; 12]>())),
        label in prop_oneof![Just(vec![]), vec(any::<u8>(), 1..=255)],
    ) {
        let encoded: Vec<Vec<u8>> = ms.iter().map(enc).collect();
        let inner = if encoded.len() == 1 {
            encoded[0].clone()
        } else {
            let refs: Vec<&[u8]> = encoded.iter().map(|p| &p[..]).collect();
            let mut c = Vec::new();
            encode_compound(&refs, &mut c);
            c
        };
        let seal = SealOptions { crc, compress, encrypt: k.as_ref().map(|(k, v, n)| (k, *n, *v)), label: &label };
        let mut pkt = Vec::new();
        seal_packet(&inner, &seal, &mut pkt);
        let kr = k.as_ref().map(|(k, _, _)| Keyring::new(k.clone()));
        let open = OpenOptions { keyring: kr.as_ref(), verify_incoming: true, label: &label };
        let opened = open_packet(&pkt, &open).unwrap();
        let mut got = Vec::new();
        for_each_message(&opened, MAX_DECOMPRESSED, &mut |m| got.push(m.unwrap()));
        prop_assert_eq!(got, ms);
    }
}

// ----- streams -----

#[derive(Debug, Clone)]
struct Mode {
    compress: bool,
    key: Option<(Key, EncryptionVersion, [u8; 12])>,
    label: Vec<u8>,
    reply: bool,
}

fn mode() -> impl Strategy<Value = Mode> {
    (
        any::<bool>(),
        prop::option::of((key(), vsn(), any::<[u8; 12]>())),
        prop_oneof![3 => Just(vec![]), 1 => vec(any::<u8>(), 1..=20)],
        any::<bool>(),
    )
        .prop_map(|(compress, key, label, reply)| Mode {
            compress,
            key,
            label,
            reply,
        })
}

fn encode_with(m: &StreamMessage, mode: &Mode) -> Vec<u8> {
    let opts = StreamEncodeOptions {
        compress: mode.compress,
        encrypt: mode.key.as_ref().map(|(k, v, n)| (k, *n, *v)),
        label: &mode.label,
    };
    let mut out = Vec::new();
    if mode.reply {
        encode_stream_reply(m, &opts, &mut out);
    } else {
        encode_stream_message(m, &opts, &mut out);
    }
    out
}

type Decoded = Result<Option<(StreamMessage, usize)>, swimnet_wire::WireError>;

fn decode_with(buf: &[u8], mode: &Mode, keyring: Option<&Keyring>) -> Decoded {
    let opts = StreamDecodeOptions {
        keyring,
        verify_incoming: keyring.is_some(),
        label: &mode.label,
        ..Default::default()
    };
    if mode.reply {
        decode_stream_reply(buf, &opts)
    } else {
        decode_stream_message(buf, &opts)
    }
}

/// The expected decoding: push/pull headers are rebuilt from the vectors.
fn normalized(m: &StreamMessage) -> StreamMessage {
    match m {
        StreamMessage::PushPull {
            header,
            states,
            user_state,
        } => StreamMessage::PushPull {
            header: PushPullHeader {
                nodes: states.len() as u32,
                user_state_len: user_state.len() as u32,
                join: header.join,
            },
            states: states.clone(),
            user_state: user_state.clone(),
        },
        m => m.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn stream_random_splits(
        m in stream_message(),
        mode in mode(),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
        trailer in bytes(20),
    ) {
        let bytes = encode_with(&m, &mode);
        let kr = mode.key.as_ref().map(|(k, _, _)| Keyring::new(k.clone()));
        // Feed growing prefixes at random cut points: nothing until complete.
        let mut cut_points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len())).collect();
        cut_points.sort_unstable();
        for &c in &cut_points {
            prop_assert_eq!(decode_with(&bytes[..c], &mode, kr.as_ref()).unwrap(), None, "cut {}", c);
        }
        // Complete, with unrelated bytes after it: exactly the message is consumed.
        let mut buf = bytes.clone();
        buf.extend_from_slice(&trailer);
        let (got, used) = decode_with(&buf, &mode, kr.as_ref()).unwrap().unwrap();
        prop_assert_eq!(got, normalized(&m));
        prop_assert_eq!(used, bytes.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn stream_byte_by_byte(
        join in any::<bool>(),
        states in vec(node_state(), 0..4),
        user_state in bytes(40),
        mode in mode(),
    ) {
        let m = StreamMessage::PushPull { header: PushPullHeader { join, ..Default::default() }, states, user_state };
        let bytes = encode_with(&m, &mode);
        let kr = mode.key.as_ref().map(|(k, _, _)| Keyring::new(k.clone()));
        for n in 0..bytes.len() {
            prop_assert_eq!(decode_with(&bytes[..n], &mode, kr.as_ref()).unwrap(), None, "prefix {}", n);
        }
        let (got, used) = decode_with(&bytes, &mode, kr.as_ref()).unwrap().unwrap();
        prop_assert_eq!(got, normalized(&m));
        prop_assert_eq!(used, bytes.len());
    }
}

#[test]
fn stream_limits_are_enforced_before_the_body() {
    use swimnet_wire::WireError;
    let opts = StreamDecodeOptions {
        max_nodes: 3,
        max_bytes: 1000,
        ..Default::default()
    };
    // Header announcing 4 nodes: refused with only the header in.
    let mut b = vec![6];
    codec::encode_push_pull_header(
        &PushPullHeader {
            nodes: 4,
            user_state_len: 0,
            join: false,
        },
        &mut b,
    );
    assert!(matches!(
        decode_stream_message(&b, &opts),
        Err(WireError::TooLarge { .. })
    ));
    let mut b = vec![6];
    codec::encode_push_pull_header(
        &PushPullHeader {
            nodes: 0,
            user_state_len: 1001,
            join: false,
        },
        &mut b,
    );
    assert!(matches!(
        decode_stream_message(&b, &opts),
        Err(WireError::TooLarge { .. })
    ));
    let mut b = vec![8];
    codec::encode_user_msg_header(&UserMsgHeader { user_msg_len: 1001 }, &mut b);
    assert!(matches!(
        decode_stream_message(&b, &opts),
        Err(WireError::TooLarge { .. })
    ));
    // Encrypted frame length over the limit: refused from the 5 header bytes.
    let kr = Keyring::new(Key::new(&[1; 16]).unwrap());
    let eopts = StreamDecodeOptions {
        keyring: Some(&kr),
        ..opts
    };
    assert!(matches!(
        decode_stream_message(&[10, 0, 0, 3, 0xe9], &eopts),
        Err(WireError::TooLarge { .. })
    ));
    assert_eq!(
        decode_stream_message(&[10, 0, 0, 3, 0xe8], &eopts),
        Ok(None)
    );
    // A string announcing more than max_bytes.
    let b = [0u8, 0x81, 0xa4, b'N', b'o', b'd', b'e', 0xdb, 0, 0, 0x10, 0];
    assert!(matches!(
        decode_stream_message(&b, &opts),
        Err(WireError::TooLarge { .. })
    ));
}

#[test]
fn stream_encryption_policy_and_labels() {
    use swimnet_wire::WireError;
    let key = Key::new(&[3; 32]).unwrap();
    let kr = Keyring::new(key.clone());
    let m = StreamMessage::User(b"hi".to_vec());
    let mut plain = Vec::new();
    encode_stream_message(&m, &StreamEncodeOptions::default(), &mut plain);
    let mut crypt = Vec::new();
    encode_stream_message(
        &m,
        &StreamEncodeOptions {
            encrypt: Some((&key, [0; 12], EncryptionVersion::V1)),
            ..Default::default()
        },
        &mut crypt,
    );
    let none = StreamDecodeOptions::default();
    let strict = StreamDecodeOptions {
        keyring: Some(&kr),
        verify_incoming: true,
        ..Default::default()
    };
    let lax = StreamDecodeOptions {
        verify_incoming: false,
        ..strict
    };
    assert_eq!(
        decode_stream_message(&crypt, &none),
        Err(WireError::EncryptionNotConfigured)
    );
    assert_eq!(
        decode_stream_message(&plain, &strict),
        Err(WireError::NotEncrypted)
    );
    assert_eq!(decode_stream_message(&plain, &lax).unwrap().unwrap().0, m);
    assert_eq!(decode_stream_message(&crypt, &lax).unwrap().unwrap().0, m);

    // Labels: expected but absent, present but not expected, different.
    let mut labelled = Vec::new();
    encode_stream_message(
        &m,
        &StreamEncodeOptions {
            label: b"blue",
            ..Default::default()
        },
        &mut labelled,
    );
    let want = |label| StreamDecodeOptions {
        label,
        ..Default::default()
    };
    assert!(matches!(
        decode_stream_message(&plain, &want(b"blue")),
        Err(WireError::BadLabel { .. })
    ));
    assert!(matches!(
        decode_stream_message(&labelled, &want(b"")),
        Err(WireError::BadLabel { .. })
    ));
    assert!(matches!(
        decode_stream_message(&labelled, &want(b"red")),
        Err(WireError::BadLabel { .. })
    ));
    assert!(matches!(
        decode_stream_reply(&labelled, &want(b"blue")),
        Err(WireError::BadLabel { .. })
    ));
    assert_eq!(
        decode_stream_message(&labelled, &want(b"blue"))
            .unwrap()
            .unwrap(),
        (m.clone(), labelled.len())
    );
    assert_eq!(
        decode_stream_message(&[0xf4, 4, b'b'], &want(b"blue")),
        Ok(None)
    );
    assert_eq!(
        decode_stream_message(&[0xf4, 0], &want(b"blue")),
        Err(WireError::EmptyLabel)
    );
    // Types that never travel alone on a stream.
    assert!(matches!(
        decode_stream_message(&[3, 0x80], &none),
        Err(WireError::UnexpectedType { .. })
    ));
    assert_eq!(
        decode_stream_message(&[99], &none),
        Err(WireError::UnknownType(99))
    );
}
