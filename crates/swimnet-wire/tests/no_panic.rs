//! Every public decoder returns `Ok` or `Err` on arbitrary bytes and on
//! mutated valid inputs; none panics.

use proptest::collection::vec;
use proptest::prelude::*;

use swimnet_wire::codec::{self, Body, Message};
use swimnet_wire::compound::{decode_compound, encode_compound};
use swimnet_wire::compress::{compress_payload, decompress_payload};
use swimnet_wire::crc::strip_crc;
use swimnet_wire::label::split_label;
use swimnet_wire::lzw;
use swimnet_wire::msg::*;
use swimnet_wire::msgpack::Reader;
use swimnet_wire::packet::{for_each_message, open_packet, seal_packet, OpenOptions, SealOptions};
use swimnet_wire::security::{decrypt_payload, EncryptionVersion, Key, Keyring};
use swimnet_wire::stream::{
    decode_stream_message, decode_stream_reply, encode_stream_message, StreamDecodeOptions,
    StreamEncodeOptions, StreamMessage,
};

fn keyring() -> Keyring {
    Keyring::from_keys(vec![
        Key::new(&[1; 16]).unwrap(),
        Key::new(&[0; 32]).unwrap(),
    ])
    .unwrap()
}

/// Runs every decoder over `b`.
fn decode_everything(b: &[u8]) {
    let kr = keyring();
    let _ = codec::decode(b);
    let _ = decode_compound(b);
    let _ = lzw::decompress(b, 1 << 20);
    let _ = decompress_payload(b, 1 << 20);
    let _ = strip_crc(b);
    let _ = split_label(b);
    let _ = decrypt_payload(&kr, b, b"");
    for_each_message(b, 1 << 20, &mut |_| {});
    for (keyring, verify, label) in [
        (None, false, &b""[..]),
        (Some(&kr), true, b""),
        (Some(&kr), false, b"lbl"),
    ] {
        if let Ok(inner) = open_packet(
            b,
            &OpenOptions {
                keyring,
                verify_incoming: verify,
                label,
            },
        ) {
            for_each_message(&inner, 1 << 20, &mut |_| {});
        }
        let opts = StreamDecodeOptions {
            keyring,
            verify_incoming: verify,
            label,
            max_nodes: 1000,
            max_bytes: 1 << 20,
            max_decoded: 4 << 20,
        };
        let _ = decode_stream_message(b, &opts);
        let _ = decode_stream_reply(b, &opts);
    }
    let _ = Reader::new(b).skip_value();
    let _ = Ping::decode_body(&mut Reader::new(b));
    let _ = IndirectPing::decode_body(&mut Reader::new(b));
    let _ = Alive::decode_body(&mut Reader::new(b));
    let _ = PushPullHeader::decode_body(&mut Reader::new(b));
    let _ = PushNodeState::decode_body(&mut Reader::new(b));
    let _ = UserMsgHeader::decode_body(&mut Reader::new(b));
    let _ = Compress::decode_body(&mut Reader::new(b));
}

/// Valid inputs of every kind, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let alive = Message::Alive(Alive {
        incarnation: 9,
        node: "node-1".into(),
        addr: vec![10, 0, 0, 1],
        port: 7946,
        meta: vec![0xff, 0x80],
        vsn: vec![1, 5, 2, 2, 5, 5],
    });
    let ping = Message::Ping(Ping {
        seq_no: 3,
        node: "x".into(),
        source_addr: vec![1, 2, 3, 4],
        source_port: 9,
        source_node: "y".into(),
    });
    let mut a = Vec::new();
    codec::encode(&alive, &mut a);
    let mut p = Vec::new();
    codec::encode(&ping, &mut p);
    let mut c = Vec::new();
    encode_compound(&[&a, &p, &a], &mut c);
    let mut z = Vec::new();
    compress_payload(&c, &mut z);
    out.extend([a.clone(), p.clone(), c.clone(), z.clone()]);
    let key = Key::new(&[0; 32]).unwrap();
    let mut sealed = Vec::new();
    seal_packet(
        &c,
        &SealOptions {
            crc: true,
            compress: true,
            encrypt: Some((&key, [4; 12], EncryptionVersion::V1)),
            label: b"",
        },
        &mut sealed,
    );
    out.push(sealed);
    let mut crc_only = Vec::new();
    seal_packet(
        &z,
        &SealOptions {
            crc: true,
            ..Default::default()
        },
        &mut crc_only,
    );
    out.push(crc_only);
    let pp = StreamMessage::PushPull {
        header: PushPullHeader {
            join: true,
            ..Default::default()
        },
        states: vec![
            PushNodeState {
                name: "n".into(),
                addr: vec![1, 1, 1, 1],
                port: 1,
                meta: vec![],
                incarnation: 1,
                state: 0,
                vsn: vec![1, 5, 2, 0, 0, 0]
            };
            3
        ],
        user_state: b"user".to_vec(),
    };
    for (compress, encrypt) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut s = Vec::new();
        let opts = StreamEncodeOptions {
            compress,
            encrypt: encrypt.then_some((&key, [0; 12], EncryptionVersion::V0Padded)),
            label: b"",
        };
        encode_stream_message(&pp, &opts, &mut s);
        out.push(s);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(b in vec(any::<u8>(), 0..600)) {
        decode_everything(&b);
    }

    #[test]
    fn arbitrary_bytes_with_a_valid_type_byte(t in prop_oneof![0u8..14, Just(244)], b in vec(any::<u8>(), 0..300)) {
        let mut v = vec![t];
        v.extend_from_slice(&b);
        decode_everything(&v);
    }

    #[test]
    fn mutated_valid_inputs(
        which in any::<prop::sample::Index>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let seeds = seeds();
        let mut b = seeds[which.index(seeds.len())].clone();
        for (at, val) in edits {
            let i = at.index(b.len());
            b[i] = val;
        }
        decode_everything(&b);
        let n = cut.index(b.len() + 1);
        decode_everything(&b[..n]);
    }
}

#[test]
fn hostile_lengths_do_not_allocate_wildly() {
    // str32 / array32 / map32 lengths near 4 GiB with nothing behind them.
    for b in [
        &[
            0x00, 0x81, 0xa4, b'N', b'o', b'd', b'e', 0xdb, 0xff, 0xff, 0xff, 0xff,
        ][..],
        &[
            0x04, 0x81, 0xa4, b'A', b'd', b'd', b'r', 0xdd, 0xff, 0xff, 0xff, 0xff, 1,
        ],
        &[0x04, 0xdf, 0xff, 0xff, 0xff, 0xff],
        &[
            0x06, 0x81, 0xa5, b'N', b'o', b'd', b'e', b's', 0xce, 0x00, 0x10, 0x00, 0x00,
        ],
    ] {
        decode_everything(b);
    }
}
