//! Part 1: Go's encodings, checked against swimnet-wire.

use super::*;

/// Checks one vector: `v` is the vector, `go` the bytes Go wrote.
type Check = fn(&Value, &[u8]);

/// The check for each vector category swimnet-goref prints.
const CHECKS: &[(&str, Check)] = &[
    ("message", check_message),
    ("user", check_user),
    ("compound", check_compound),
    ("lzw", check_lzw),
    ("packet", check_packet),
    ("encrypt", check_encrypt),
    ("stream", check_stream),
];

/// Checks one of Go's vectors of category `cat`: our encoding gives Go's
/// bytes, and our decoder reads them back to the values Go encoded.
pub(crate) fn check_vector(cat: &str, v: &Value) {
    let go = unhex(&jstr(v, "hex"));
    let Some((_, check)) = CHECKS.iter().find(|(name, _)| *name == cat) else {
        panic!("unknown vector category {cat}")
    };
    check(v, &go);
}

fn check_message(v: &Value, go: &[u8]) {
    let kind = jstr(v, "struct");
    let want = from_go(&kind, &v["msg"]);
    if jb(v, "exact") {
        assert_eq!(
            hex(&encode_struct(&want)),
            hex(go),
            "our encoding differs from Go's"
        );
        assert_eq!(
            go_view(&want),
            (go_view(&want).0, v["msg"].clone()),
            "JSON view mapping"
        );
    }
    let got = decode_struct(&kind, go).expect("swimnet-wire decodes Go's bytes");
    assert_eq!(got, want, "decoded value differs");
}

fn check_user(v: &Value, go: &[u8]) {
    let msg = Message::User(unhex(&jstr(v, "payload")));
    let mut out = Vec::new();
    codec::encode(&msg, &mut out);
    assert_eq!(hex(&out), hex(go));
    assert_eq!(codec::decode(go).unwrap(), msg);
}

fn check_compound(v: &Value, go: &[u8]) {
    let parts: Vec<Vec<u8>> = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| unhex(p.as_str().unwrap()))
        .collect();
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let mut out = Vec::new();
    encode_compound(&refs, &mut out);
    assert_eq!(hex(&out), hex(go), "compound encoding differs");
    assert_eq!(go[0], MessageType::Compound as u8);
    let c = decode_compound(&go[1..]).expect("decode compound");
    assert_eq!(c.truncated, 0);
    assert_eq!(c.parts, refs);
}

fn check_lzw(v: &Value, go: &[u8]) {
    let plain = unhex(&jstr(v, "plain"));
    let raw = jbytes(v, "lzw");
    let mut out = Vec::new();
    lzw::compress(&plain, &mut out);
    assert_eq!(
        hex(&out),
        hex(&raw),
        "raw LZW output differs from Go's compress/lzw"
    );
    let mut out = Vec::new();
    compress_payload(&plain, &mut out);
    assert_eq!(
        hex(&out),
        hex(go),
        "compress message differs from Go's compressPayload"
    );
    assert_eq!(
        lzw::decompress(&raw, MAX_DECOMPRESSED).expect("lzw decompress"),
        plain
    );
    assert_eq!(
        decompress_payload(&go[1..], MAX_DECOMPRESSED).expect("decompress_payload"),
        plain
    );
}

fn check_packet(v: &Value, go: &[u8]) {
    let inner = unhex(&jstr(v, "inner"));
    let crc = jb(v, "crc");
    let opts = SealOptions {
        crc,
        compress: jb(v, "compress"),
        ..Default::default()
    };
    let mut out = Vec::new();
    seal_packet(&inner, &opts, &mut out);
    assert_eq!(
        hex(&out),
        hex(go),
        "seal_packet differs from Go's rawSendMsgPacket"
    );
    if crc {
        let mut only = Vec::new();
        add_crc(&go[5..], &mut only);
        assert_eq!(only, go, "add_crc");
        strip_crc(go).expect("strip_crc accepts Go's CRC");
    }
    let opened = open_packet(go, &OpenOptions::default()).expect("open_packet");
    assert_eq!(walk(&opened), walk(&inner), "messages differ");
}

fn check_encrypt(v: &Value, go: &[u8]) {
    let k = key(&unhex(&jstr(v, "key")));
    let vsn = vsn_of(ju(v, "vsn"));
    let plain = unhex(&jstr(v, "plain"));
    let aad = unhex(&jstr(v, "aad"));
    assert_eq!(go[0], vsn as u8, "version byte");
    let ring = Keyring::new(k.clone());
    assert_eq!(
        hex(&decrypt_payload(&ring, go, &aad).expect("decrypt Go's payload")),
        hex(&plain)
    );
    // Same nonce => same bytes.
    let mut out = Vec::new();
    encrypt_payload(vsn, &k, &nonce_at(go, 1), &plain, &aad, &mut out);
    assert_eq!(
        hex(&out),
        hex(go),
        "encrypt_payload with Go's nonce differs"
    );
    if let Some(inner) = v["inner"].as_str() {
        let inner = unhex(inner);
        let opts = SealOptions {
            crc: jb(v, "crc"),
            compress: jb(v, "compress"),
            encrypt: Some((&k, nonce_at(go, 1), vsn)),
            label: b"",
        };
        let mut out = Vec::new();
        seal_packet(&inner, &opts, &mut out);
        assert_eq!(hex(&out), hex(go), "seal_packet with Go's nonce differs");
        let open = OpenOptions {
            keyring: Some(&ring),
            verify_incoming: true,
            label: b"",
        };
        let opened = open_packet(go, &open).expect("open encrypted packet");
        assert_eq!(walk(&opened), walk(&inner));
    }
}

fn check_stream(v: &Value, go: &[u8]) {
    let want = stream_from_go(&v["decoded"]);
    assert_eq!(ju(&v["decoded"], "trailing"), 0);
    let plain = unhex(&jstr(v, "plain"));
    let mut body = Vec::new();
    encode_stream_body(&want, &mut body);
    assert_eq!(hex(&body), hex(&plain), "plaintext stream body differs");
    let key_bytes = v["key"].as_str().map(unhex);
    let k = key_bytes.as_deref().map(key);
    let ring = k.clone().map(Keyring::new);
    let encrypt = match (&k, jb(v, "encrypted")) {
        (Some(k), true) => {
            assert_eq!(go[0], MessageType::Encrypt as u8);
            Some((k, nonce_at(go, 6), vsn_of(ju(v, "vsn"))))
        }
        (None, false) => None,
        _ => panic!("encrypted flag and key disagree"),
    };
    let opts = StreamEncodeOptions {
        compress: jb(v, "compress"),
        encrypt,
        label: b"",
    };
    let mut out = Vec::new();
    encode_stream_message(&want, &opts, &mut out);
    assert_eq!(hex(&out), hex(go), "stream encoding differs from Go's");
    let dopts = StreamDecodeOptions {
        keyring: ring.as_ref(),
        verify_incoming: true,
        ..Default::default()
    };
    let (got, used) = decode_stream_message(go, &dopts)
        .expect("decode Go's stream")
        .expect("complete");
    assert_eq!(used, go.len(), "consumed bytes");
    assert_eq!(normalize(got), want);
    // Any prefix is incomplete, not an error.
    for cut in [0, 1, go.len() / 2, go.len() - 1] {
        assert!(
            matches!(decode_stream_message(&go[..cut], &dopts), Ok(None)),
            "prefix of {cut} bytes should be incomplete"
        );
    }
}

/// Our decoder keeps the header as read; the expected value is built with
/// the counts recomputed, which must agree.
pub(crate) fn normalize(m: StreamMessage) -> StreamMessage {
    if let StreamMessage::PushPull {
        header,
        states,
        user_state,
    } = &m
    {
        assert_eq!(header.nodes as usize, states.len());
        assert_eq!(header.user_state_len as usize, user_state.len());
    }
    m
}
