//! `StreamDecoder`: bytes fed in pieces are parsed in bounded work, the
//! buffer grows with what arrived, and limits bite before the body is in.

use swimnet_wire::msg::{Ping, PushNodeState, PushPullHeader};
use swimnet_wire::security::{EncryptionVersion, Key, Keyring};
use swimnet_wire::stream::{
    decode_stream_message, encode_stream_body, encode_stream_message, StreamDecodeOptions,
    StreamDecoder, StreamEncodeOptions, StreamMessage, MAX_PUSH_STATE_BYTES,
};
use swimnet_wire::WireError;

/// A plain push/pull announcing `nodes` states, each an empty msgpack map.
fn empty_states_push_pull(nodes: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let msg = StreamMessage::PushPull {
        header: PushPullHeader::default(),
        states: Vec::new(),
        user_state: Vec::new(),
    };
    encode_stream_body(&msg, &mut out);
    // Re-encode the header with the count, then the empty states.
    out.truncate(1);
    let header = PushPullHeader {
        nodes,
        user_state_len: 0,
        join: false,
    };
    swimnet_wire::codec::Body::encode_body(&header, &mut out);
    out.resize(out.len() + nodes as usize, 0x80u8);
    out
}

fn feed(
    dec: &mut StreamDecoder,
    bytes: &[u8],
    chunk: usize,
    opts: &StreamDecodeOptions<'_>,
) -> Result<Option<StreamMessage>, WireError> {
    for piece in bytes.chunks(chunk) {
        if let Some(m) = dec.push(piece, opts)? {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

#[test]
fn million_empty_states_are_parsed_once() {
    let bytes = empty_states_push_pull(1 << 20);
    let opts = StreamDecodeOptions {
        max_decoded: 1 << 30,
        ..Default::default()
    };
    for chunk in [1000, 64 * 1024] {
        let mut dec = StreamDecoder::message();
        let msg = feed(&mut dec, &bytes, chunk, &opts)
            .unwrap()
            .expect("complete");
        let StreamMessage::PushPull { states, .. } = msg else {
            panic!("not a push/pull")
        };
        assert_eq!(states.len(), 1 << 20);
        assert_eq!(states[7], PushNodeState::default());
        // Each byte is examined about once (the old re-parse from the start
        // examined ~16x the input at 64 KiB chunks, ~1000x at 1 KB chunks).
        assert!(
            dec.scanned() <= 2 * bytes.len() as u64,
            "chunk {chunk}: scanned {} of {}",
            dec.scanned(),
            bytes.len()
        );
        assert_eq!(dec.consumed(), bytes.len());
    }
}

#[test]
fn decoded_size_is_capped_while_states_arrive() {
    let bytes = empty_states_push_pull(1 << 20);
    let opts = StreamDecodeOptions::default();
    let mut dec = StreamDecoder::message();
    let err = feed(&mut dec, &bytes, 64 * 1024, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::TooLarge {
                what: "decoded push/pull",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(dec.memory(), 0, "an error frees what was held");
    // Nothing is read after an error.
    assert_eq!(dec.push(&[0x80], &opts), Ok(None));
}

#[test]
fn declared_encrypted_frame_is_not_allocated_up_front() {
    let keyring = Keyring::new(Key::new(&[1; 16]).unwrap());
    let opts = StreamDecodeOptions {
        keyring: Some(&keyring),
        verify_incoming: true,
        ..Default::default()
    };
    let len = (MAX_PUSH_STATE_BYTES as u32).to_be_bytes();
    let mut dec = StreamDecoder::message();
    assert!(!dec.header_seen());
    assert_eq!(dec.push(&[10, len[0], len[1]], &opts), Ok(None));
    assert!(!dec.header_seen());
    assert_eq!(dec.push(&[len[2], len[3]], &opts), Ok(None));
    assert!(dec.header_seen());
    let junk = vec![7u8; 64 * 1024];
    for _ in 0..16 {
        assert_eq!(dec.push(&junk, &opts), Ok(None));
    }
    // 1 MiB arrived: the buffer holds about that, not the declared 20 MiB,
    // and nothing was parsed yet.
    assert!(dec.memory() <= 2 << 20, "memory {}", dec.memory());
    assert_eq!(dec.scanned(), 0);
    // Over the limit: refused from the header alone.
    let too_big = (MAX_PUSH_STATE_BYTES as u32 + 1).to_be_bytes();
    let mut dec = StreamDecoder::message();
    let mut hdr = vec![10];
    hdr.extend_from_slice(&too_big);
    assert!(matches!(
        dec.push(&hdr, &opts),
        Err(WireError::TooLarge {
            what: "encrypted stream message",
            ..
        })
    ));
}

#[test]
fn byte_by_byte_matches_whole_decode_in_linear_work() {
    let key = Key::new(&[3; 16]).unwrap();
    let keyring = Keyring::new(key.clone());
    let states: Vec<PushNodeState> = (0..50)
        .map(|i| PushNodeState {
            name: format!("node-{i}"),
            addr: vec![127, 0, 0, 1],
            port: 7946,
            meta: vec![i as u8; 20],
            incarnation: i,
            state: 0,
            vsn: vec![1, 5, 2, 0, 0, 0],
        })
        .collect();
    let push_pull = StreamMessage::PushPull {
        header: PushPullHeader {
            nodes: 50,
            user_state_len: 30,
            join: true,
        },
        states,
        user_state: vec![9; 30],
    };
    let ping = StreamMessage::Ping(Ping {
        seq_no: 4,
        node: "x".repeat(3000),
        ..Default::default()
    });
    let user = StreamMessage::User(vec![5; 5000]);
    for msg in [push_pull, ping, user] {
        for (compress, encrypt) in [(false, false), (true, false), (false, true), (true, true)] {
            let enc = StreamEncodeOptions {
                compress,
                encrypt: encrypt.then_some((&key, [2; 12], EncryptionVersion::V1)),
                label: b"",
            };
            let mut bytes = Vec::new();
            encode_stream_message(&msg, &enc, &mut bytes);
            let opts = StreamDecodeOptions {
                keyring: Some(&keyring),
                ..Default::default()
            };
            let whole = decode_stream_message(&bytes, &opts).unwrap().unwrap();
            let mut plain = Vec::new();
            encode_stream_body(&msg, &mut plain);
            let work = (bytes.len() + plain.len()) as u64;
            let mut dec = StreamDecoder::message();
            let got = feed(&mut dec, &bytes, 1, &opts).unwrap().expect("complete");
            assert_eq!(got, whole.0);
            assert_eq!(dec.consumed(), bytes.len());
            // The scanner keeps its place: each byte is scanned once and
            // parsed once, decryption and decompression included (a re-parse
            // per byte would be ~n^2/2).
            assert!(
                dec.scanned() <= 3 * work,
                "compress {compress} encrypt {encrypt}: scanned {} for {work}",
                dec.scanned()
            );
        }
    }
}

#[test]
fn plain_stream_over_the_size_limit_is_refused_before_it_ends() {
    let opts = StreamDecodeOptions {
        max_bytes: 1 << 20,
        ..Default::default()
    };
    // A user message header claiming the limit, then more than it.
    let msg = StreamMessage::User(vec![1; 1 << 20]);
    let mut bytes = Vec::new();
    encode_stream_message(&msg, &StreamEncodeOptions::default(), &mut bytes);
    let mut dec = StreamDecoder::message();
    assert!(feed(&mut dec, &bytes[..bytes.len() - 1], 4096, &opts)
        .unwrap()
        .is_none());
    // A push/pull whose states never end: refused once past the limit.
    let endless = empty_states_push_pull(1 << 20);
    let opts = StreamDecodeOptions {
        max_bytes: 64 * 1024,
        max_decoded: 1 << 30,
        ..Default::default()
    };
    let mut dec = StreamDecoder::message();
    let err = feed(&mut dec, &endless, 4096, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::TooLarge {
                what: "stream message",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn finish_reports_a_cut_message() {
    let opts = StreamDecodeOptions::default();
    let bytes = empty_states_push_pull(10);
    let mut dec = StreamDecoder::message();
    assert_eq!(dec.push(&bytes[..5], &opts), Ok(None));
    assert!(matches!(dec.finish(), Err(WireError::Truncated { .. })));
    assert_eq!(dec.memory(), 0);
    let mut dec = StreamDecoder::message();
    assert!(dec.push(&bytes, &opts).unwrap().is_some());
    assert_eq!(dec.finish(), Ok(()));
}
