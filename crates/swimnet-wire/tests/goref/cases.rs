//! Part 2's cases: swimnet-wire's encodings, each with what Go's decoders
//! must read from it.

use super::*;

/// A request to `swimnet-goref decode` and what must be in the answer.
pub(crate) struct Case {
    pub(crate) what: String,
    pub(crate) req: Value,
    /// Fields the answer must have (always includes "ok").
    pub(crate) expect: Value,
}

fn case(what: impl Into<String>, req: Value, expect: Value) -> Case {
    Case {
        what: what.into(),
        req,
        expect,
    }
}

/// What several groups of cases share: fresh random data, a user message,
/// a compound of 40 alive messages and the keys.
pub(crate) struct Inputs {
    rng: Rng,
    /// A user message with a NUL and non-UTF-8 bytes in it.
    user: Message,
    alive_compound: Vec<u8>,
    /// A 16-, a 24- and a 32-byte key.
    keys: Vec<Vec<u8>>,
    /// A 32-byte key none of the cases encrypts with.
    other: Vec<u8>,
}

impl Inputs {
    /// New keys and data (the random numbers are seeded from the clock).
    pub(crate) fn new() -> Self {
        let mut rng = Rng::new();
        let keys = vec![rng.bytes(16), rng.bytes(24), rng.bytes(32)];
        let other = rng.bytes(32);
        let parts: Vec<Vec<u8>> = (0..40).map(|i| enc_msg(&alive(i, &[0xff, 0x80]))).collect();
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let mut alive_compound = Vec::new();
        encode_compound(&refs, &mut alive_compound);
        Inputs {
            rng,
            user: Message::User(b"raw \x00\x01\xff user bytes".to_vec()),
            alive_compound,
            keys,
            other,
        }
    }
}

/// Every case, in groups: single messages and bare structs, compounds, LZW,
/// encryption, whole packets, streams.
pub(crate) fn all_cases(inp: &mut Inputs) -> Vec<Case> {
    let mut cases = Vec::new();
    for group in [
        struct_cases,
        compound_cases,
        lzw_cases,
        encryption_cases,
        packet_cases,
        stream_cases,
        stream_trailing_byte_cases,
        stream_refusal_cases,
    ] {
        group(inp, &mut cases);
    }
    cases
}

/// Every sample struct, and a user message.
fn struct_cases(inp: &mut Inputs, cases: &mut Vec<Case>) {
    for s in sample_structs() {
        let bytes = encode_struct(&s);
        let (kind, view) = go_view(&s);
        cases.push(case(
            format!(
                "struct {kind} {}",
                &hex(&bytes)[..hex(&bytes).len().min(40)]
            ),
            json!({"kind": "message", "struct": kind, "hex": hex(&bytes)}),
            json!({"ok": true, "struct": kind, "msg": view}),
        ));
    }
    cases.push(case(
        "packet user message",
        json!({"kind": "message", "hex": hex(&enc_msg(&inp.user))}),
        json!({"ok": true, "type": 8, "user": hex(b"raw \x00\x01\xff user bytes")}),
    ));
}

/// Compounds, whole and cut (Go 0.2.2 reads at most 127 parts correctly,
/// see `go_022_misreads_compounds_over_127_parts`).
fn compound_cases(inp: &mut Inputs, cases: &mut Vec<Case>) {
    let many: Vec<Vec<u8>> = (0..127u32).map(|i| enc_msg(&alive(i, &[]))).collect();
    let compound_sets: Vec<Vec<Vec<u8>>> = vec![
        vec![
            enc_msg(&alive(1, &[0xff, 0x80])),
            enc_msg(&inp.user),
            Vec::new(),
            enc_msg(&Message::NackResp(NackResp { seq_no: 9 })),
        ],
        vec![vec![0x42; 65535], vec![0x43; 1]],
        many,
    ];
    for parts in &compound_sets {
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let mut out = Vec::new();
        encode_compound(&refs, &mut out);
        cases.push(case(
            format!("compound of {}", parts.len()),
            json!({"kind": "compound", "hex": hex(&out)}),
            json!({"ok": true, "parts": parts.iter().map(|p| hex(p)).collect::<Vec<_>>(), "truncated": 0}),
        ));
        // Cut inside the last part: the last part counts as truncated, on both sides.
        let cut = &out[..out.len() - 1];
        let ours = decode_compound(&cut[1..]).unwrap();
        cases.push(case(
            format!("truncated compound of {}", parts.len()),
            json!({"kind": "compound", "hex": hex(cut)}),
            json!({"ok": true, "parts": ours.parts.iter().map(|p| hex(p)).collect::<Vec<_>>(), "truncated": ours.truncated}),
        ));
    }
    cases.push(case(
        "compound, length table cut",
        json!({"kind": "compound", "hex": "070300010001"}),
        json!({"ok": false}),
    ));
}

/// LZW: `compress` messages of assorted inputs, and one without EOI.
fn lzw_cases(inp: &mut Inputs, cases: &mut Vec<Case>) {
    let lzw_inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", vec![7]),
        ("hello", b"hello hello hello hello".to_vec()),
        ("random text 5000", inp.rng.text(5000)),
        ("random text 50000", inp.rng.text(50_000)),
        ("random bytes 70000", inp.rng.bytes(70_000)),
        ("one byte repeated 200000", vec![b'a'; 200_000]),
        ("two-byte cycle 30000", b"ab".repeat(15_000)),
        ("alive compound", inp.alive_compound.clone()),
    ];
    for (what, input) in &lzw_inputs {
        let mut out = Vec::new();
        compress_payload(input, &mut out);
        cases.push(case(
            format!("lzw {what}"),
            json!({"kind": "lzw", "hex": hex(&out)}),
            json!({"ok": true, "plain": hex(input)}),
        ));
    }
    {
        // A clear code and one literal, then the data just stops: no EOI.
        let mut c = vec![MessageType::Compress as u8];
        Compress {
            algo: 0,
            buf: vec![0x00, 0xd1, 0x00],
        }
        .encode_body(&mut c);
        cases.push(case(
            "lzw without EOI",
            json!({"kind": "lzw", "hex": hex(&c)}),
            json!({"ok": false}),
        ));
    }
}

/// Encrypted payloads (random nonces), with the key at each keyring
/// position, a wrong key and AAD.
fn encryption_cases(inp: &mut Inputs, cases: &mut Vec<Case>) {
    let (keys, other) = (&inp.keys, &inp.other);
    for k in keys {
        for vsn in [EncryptionVersion::V0Padded, EncryptionVersion::V1] {
            for len in [0usize, 1, 15, 16, 17, 31, 32, 100, 1400] {
                let plain = inp.rng.bytes(len);
                let mut out = Vec::new();
                encrypt_payload(vsn, &key(k), &inp.rng.nonce(), &plain, b"", &mut out);
                cases.push(case(
                    format!("decrypt {}-byte key {vsn:?} {len} bytes", k.len()),
                    json!({"kind": "decrypt", "key": hex(k), "hex": hex(&out)}),
                    json!({"ok": true, "plain": hex(&plain)}),
                ));
            }
        }
        // The key is not primary: second, then third in Go's keyring.
        let plain = inp.rng.bytes(60);
        let mut out = Vec::new();
        encrypt_payload(
            EncryptionVersion::V1,
            &key(k),
            &inp.rng.nonce(),
            &plain,
            b"",
            &mut out,
        );
        cases.push(case(
            format!("decrypt {}-byte key in second keyring position", k.len()),
            json!({"kind": "decrypt", "keys": [hex(other), hex(k)], "hex": hex(&out)}),
            json!({"ok": true, "plain": hex(&plain)}),
        ));
        cases.push(case(
            format!("decrypt {}-byte key in third keyring position", k.len()),
            json!({"kind": "decrypt", "keys": [hex(other), hex(&inp.rng.bytes(16)), hex(k)], "hex": hex(&out)}),
            json!({"ok": true, "plain": hex(&plain)}),
        ));
        cases.push(case(
            format!("decrypt with only a wrong key ({} bytes)", k.len()),
            json!({"kind": "decrypt", "key": hex(other), "hex": hex(&out)}),
            json!({"ok": false}),
        ));
        let aad = [0x0a, 0, 0, 0, 0x30];
        let mut out = Vec::new();
        encrypt_payload(
            EncryptionVersion::V1,
            &key(k),
            &inp.rng.nonce(),
            &plain,
            &aad,
            &mut out,
        );
        cases.push(case(
            "decrypt with AAD",
            json!({"kind": "decrypt", "key": hex(k), "aad": hex(&aad), "hex": hex(&out)}),
            json!({"ok": true, "plain": hex(&plain)}),
        ));
    }
}

/// Whole packets: every mix of compress, CRC and encryption; a bad CRC.
fn packet_cases(inp: &mut Inputs, cases: &mut Vec<Case>) {
    let probe = {
        let ping = enc_msg(&Message::Ping(Ping {
            seq_no: 42,
            node: "n2".into(),
            source_addr: vec![127, 0, 0, 1],
            source_port: 7946,
            source_node: "rust".into(),
        }));
        let sus = enc_msg(&Message::Suspect(Suspect {
            incarnation: 3,
            node: "n3".into(),
            from: "rust".into(),
        }));
        let mut out = Vec::new();
        encode_compound(&[&ping, &sus, &enc_msg(&inp.user)], &mut out);
        out
    };
    let packet_inners: Vec<(&str, Vec<u8>)> = vec![
        ("single alive", enc_msg(&alive(5, &[0xff, 0x80]))),
        ("probe compound", probe),
        ("alive compound", inp.alive_compound.clone()),
    ];
    for (what, inner) in &packet_inners {
        let want: Vec<Value> = walk(inner).iter().map(packet_msg_view).collect();
        for crc in [false, true] {
            for compress in [false, true] {
                for enc in [
                    None,
                    Some(EncryptionVersion::V1),
                    Some(EncryptionVersion::V0Padded),
                ] {
                    let k = key(&inp.keys[2]);
                    let opts = SealOptions {
                        crc,
                        compress,
                        encrypt: enc.map(|v| (&k, inp.rng.nonce(), v)),
                        label: b"",
                    };
                    let mut out = Vec::new();
                    seal_packet(inner, &opts, &mut out);
                    let mut req = json!({"kind": "packet", "hex": hex(&out)});
                    if enc.is_some() {
                        req["keys"] = json!([hex(&inp.keys[0]), hex(&inp.keys[2])]);
                    }
                    cases.push(case(
                        format!("packet {what} crc={crc} compress={compress} enc={enc:?}"),
                        req,
                        json!({"ok": true, "crc": crc, "msgs": want, "truncated": 0}),
                    ));
                }
            }
        }
    }
    {
        let mut out = Vec::new();
        seal_packet(
            &enc_msg(&alive(1, &[])),
            &SealOptions {
                crc: true,
                ..Default::default()
            },
            &mut out,
        );
        let last = out.len() - 1;
        out[last] ^= 1;
        cases.push(case(
            "packet with a bad CRC",
            json!({"kind": "packet", "hex": hex(&out)}),
            json!({"ok": false}),
        ));
    }
}

/// A stream message to encode: (what, message, compress, encrypt with, Go
/// keyring if not just the key).
type StreamSample = (
    &'static str,
    StreamMessage,
    bool,
    Option<(Key, EncryptionVersion)>,
    Vec<Vec<u8>>,
);

/// Push/pull streams: plain, compressed, encrypted (v0 and v1, key first or
/// second in Go's keyring), small and large.
fn push_pull_streams(inp: &mut Inputs) -> Vec<StreamSample> {
    let (k16, k24, k32) = (key(&inp.keys[0]), key(&inp.keys[1]), key(&inp.keys[2]));
    let (text1k, text100k) = (inp.rng.text(1000), inp.rng.text(100_000));
    vec![
        (
            "push/pull plain",
            push_pull(&mut inp.rng, 2, b"hello".to_vec(), true),
            false,
            None,
            vec![],
        ),
        (
            "push/pull no user state",
            push_pull(&mut inp.rng, 3, vec![], false),
            false,
            None,
            vec![],
        ),
        (
            "push/pull compressed",
            push_pull(&mut inp.rng, 10, text1k, true),
            true,
            None,
            vec![],
        ),
        (
            "push/pull encrypted v1",
            push_pull(&mut inp.rng, 2, b"hello".to_vec(), true),
            false,
            Some((k16.clone(), EncryptionVersion::V1)),
            vec![],
        ),
        (
            "push/pull encrypted+compressed, 300 nodes, 100 KB user state",
            push_pull(&mut inp.rng, 300, text100k, false),
            true,
            Some((k32.clone(), EncryptionVersion::V1)),
            vec![],
        ),
        (
            "push/pull encrypted v0",
            push_pull(&mut inp.rng, 5, b"v0".to_vec(), true),
            false,
            Some((k24.clone(), EncryptionVersion::V0Padded)),
            vec![],
        ),
        (
            "push/pull encrypted+compressed, key second in Go's keyring",
            push_pull(&mut inp.rng, 4, b"state".to_vec(), false),
            true,
            Some((k16.clone(), EncryptionVersion::V1)),
            vec![inp.other.clone(), inp.keys[0].clone()],
        ),
    ]
}

/// Every other stream message: user messages, ping, ack and err, plain,
/// compressed and encrypted.
fn other_streams(inp: &mut Inputs) -> Vec<StreamSample> {
    let (k16, k24, k32) = (key(&inp.keys[0]), key(&inp.keys[1]), key(&inp.keys[2]));
    let (text3k, bytes500) = (inp.rng.text(3000), inp.rng.bytes(500));
    vec![
        (
            "user plain",
            StreamMessage::User(b"reliable user message".to_vec()),
            false,
            None,
            vec![],
        ),
        (
            "user empty",
            StreamMessage::User(vec![]),
            false,
            None,
            vec![],
        ),
        (
            "user compressed",
            StreamMessage::User(text3k),
            true,
            None,
            vec![],
        ),
        (
            "user encrypted",
            StreamMessage::User(bytes500),
            true,
            Some((k24.clone(), EncryptionVersion::V1)),
            vec![],
        ),
        (
            "ping",
            StreamMessage::Ping(Ping {
                seq_no: 99,
                node: "goref".into(),
                ..Default::default()
            }),
            false,
            None,
            vec![],
        ),
        (
            "ack encrypted",
            StreamMessage::AckResp(AckResp {
                seq_no: 99,
                payload: vec![],
            }),
            false,
            Some((k32.clone(), EncryptionVersion::V1)),
            vec![],
        ),
        (
            "err",
            StreamMessage::ErrResp(ErrResp {
                error: "boom".into(),
            }),
            false,
            None,
            vec![],
        ),
        (
            "err compressed+encrypted v0",
            StreamMessage::ErrResp(ErrResp {
                error: "boom".into(),
            }),
            true,
            Some((k16.clone(), EncryptionVersion::V0Padded)),
            vec![],
        ),
    ]
}

/// Every stream sample, encoded with a fresh nonce.
fn stream_cases(inp: &mut Inputs, cases: &mut Vec<Case>) {
    let mut streams = push_pull_streams(inp);
    streams.extend(other_streams(inp));
    for (what, msg, compress, enc, ring) in &streams {
        let opts = StreamEncodeOptions {
            compress: *compress,
            encrypt: enc.as_ref().map(|(k, v)| (k, inp.rng.nonce(), *v)),
            label: b"",
        };
        let mut out = Vec::new();
        encode_stream_message(msg, &opts, &mut out);
        let mut req = json!({"kind": "stream", "hex": hex(&out)});
        if let Some((k, _)) = enc {
            req["keys"] = if ring.is_empty() {
                json!([hex(k.as_bytes())])
            } else {
                json!(ring.iter().map(|k| hex(k)).collect::<Vec<_>>())
            };
        }
        let mut expect = stream_view(msg);
        expect["ok"] = json!(true);
        cases.push(case(format!("stream {what}"), req, expect));
    }
}

/// A plain stream followed by more bytes.
fn stream_trailing_byte_cases(inp: &mut Inputs, cases: &mut Vec<Case>) {
    // No length prefix on plain streams: Go must stop exactly where the
    // message ends.
    let msg = push_pull(&mut inp.rng, 3, b"tail-test".to_vec(), true);
    let mut out = Vec::new();
    encode_stream_message(&msg, &StreamEncodeOptions::default(), &mut out);
    out.extend_from_slice(b"NEXT");
    let mut expect = stream_view(&msg);
    expect["ok"] = json!(true);
    expect["trailing"] = json!(4);
    cases.push(case(
        "stream push/pull followed by 4 more bytes",
        json!({"kind": "stream", "hex": hex(&out)}),
        expect,
    ));
    let user = StreamMessage::User(b"u".to_vec());
    let mut out = Vec::new();
    encode_stream_message(&user, &StreamEncodeOptions::default(), &mut out);
    out.extend_from_slice(b"xyz");
    let mut expect = stream_view(&user);
    expect["ok"] = json!(true);
    expect["trailing"] = json!(3);
    cases.push(case(
        "stream user message followed by 3 more bytes",
        json!({"kind": "stream", "hex": hex(&out)}),
        expect,
    ));
}

/// Streams Go refuses: encrypted to a node without keys or with a wrong
/// key, plain to a node that requires encryption.
fn stream_refusal_cases(inp: &mut Inputs, cases: &mut Vec<Case>) {
    // Go's own refusals.
    let msg = StreamMessage::AckResp(AckResp {
        seq_no: 1,
        payload: vec![],
    });
    let mut enc = Vec::new();
    encode_stream_message(
        &msg,
        &StreamEncodeOptions {
            encrypt: Some((&key(&inp.keys[0]), inp.rng.nonce(), EncryptionVersion::V1)),
            ..Default::default()
        },
        &mut enc,
    );
    cases.push(case(
        "encrypted stream to a node without keys",
        json!({"kind": "stream", "hex": hex(&enc)}),
        json!({"ok": false, "error": "Remote state is encrypted and encryption is not configured"}),
    ));
    cases.push(case(
        "encrypted stream, wrong key",
        json!({"kind": "stream", "hex": hex(&enc), "key": hex(&inp.other)}),
        json!({"ok": false, "error": "No installed keys could decrypt the message"}),
    ));
    let mut plain = Vec::new();
    encode_stream_message(&msg, &StreamEncodeOptions::default(), &mut plain);
    cases.push(case(
        "plain stream to a node that requires encryption",
        json!({"kind": "stream", "hex": hex(&plain), "key": hex(&inp.keys[0])}),
        json!({"ok": false, "error": "Encryption is configured but remote state is not encrypted"}),
    ));
}
