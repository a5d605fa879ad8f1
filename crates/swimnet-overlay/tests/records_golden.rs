//! Docker's overlay records, byte for byte: golden vectors from Docker's own
//! generated Go code, decoding of those bytes, round trips, and hostile input.
//!
//! The vectors were produced by `tools/overlayref` (built by
//! `tools/overlayref/build.sh` against the generated `overlay.pb.go` and
//! `agent.pb.go` of Docker 20.10.24's libnetwork):
//!
//! ```text
//! "$(tools/overlayref/build.sh | tail -n1)" encode
//! ```
//!
//! Each constant below is one line of that output; the record values are
//! those of `vectors()` in tools/overlayref/main.go.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use swimnet_overlay::records::{
    EndpointRecord, PeerRecord, MAX_RECORD_BYTES, MAX_RECORD_STRING, MAX_REPEATED,
};
use swimnet_overlay::{Mac, PeerEntry};

const PEER_BASIC: &str =
    "0a0b31302e302e312e352f3234121130323a34323a30613a30303a30313a30351a0c3139322e3136382e312e3130";
const PEER_WIDE: &str = "0a113137322e33312e3235352e3235342f3136121130323a34323a61633a31663a66663a66651a0c31302e3230342e302e323030";
const PEER_EMPTY: &str = "";
const ENDPOINT_PLAIN: &str = "0a04776562312a0831302e302e312e35";
const ENDPOINT_SERVICE: &str = "0a097376632e312e61626312037376631a06713177326533220831302e302e312e322a0831302e302e312e37320b0a0468747470185020903f3204100118353a097376632d616c6961733a056f74686572420a7461736b2d616c6961734801";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn peer(ip: &str, mac: &str, vtep: &str) -> PeerRecord {
    PeerRecord {
        endpoint_ip: ip.into(),
        endpoint_mac: mac.into(),
        tunnel_endpoint_ip: vtep.into(),
    }
}

/// A protobuf length-delimited field (tag < 16, length < 128 unless long).
fn field(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![(tag << 3) | 2];
    let mut len = body.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(body);
    out
}

#[test]
fn records_peer_encoding_matches_docker() {
    let basic = PeerRecord::new(
        Ipv4Addr::new(10, 0, 1, 5),
        24,
        Mac::from_ip(Ipv4Addr::new(10, 0, 1, 5)),
        Ipv4Addr::new(192, 168, 1, 10),
    );
    assert_eq!(
        basic,
        peer("10.0.1.5/24", "02:42:0a:00:01:05", "192.168.1.10")
    );
    assert_eq!(hex(&basic.encode()), PEER_BASIC);
    let wide = PeerRecord::new(
        Ipv4Addr::new(172, 31, 255, 254),
        16,
        Mac::from_ip(Ipv4Addr::new(172, 31, 255, 254)),
        Ipv4Addr::new(10, 204, 0, 200),
    );
    assert_eq!(hex(&wide.encode()), PEER_WIDE);
    assert_eq!(hex(&peer("", "", "").encode()), PEER_EMPTY);
}

#[test]
fn records_peer_decodes_docker_bytes() {
    let got = PeerRecord::decode(&unhex(PEER_BASIC)).unwrap();
    assert_eq!(
        got,
        peer("10.0.1.5/24", "02:42:0a:00:01:05", "192.168.1.10")
    );
    assert_eq!(
        got.entry().unwrap(),
        PeerEntry {
            ip: Ipv4Addr::new(10, 0, 1, 5),
            mac: Mac([2, 0x42, 10, 0, 1, 5]),
            vtep: Ipv4Addr::new(192, 168, 1, 10),
        }
    );
    let wide = PeerRecord::decode(&unhex(PEER_WIDE)).unwrap();
    assert_eq!(wide.entry().unwrap().vtep, Ipv4Addr::new(10, 204, 0, 200));
    let empty = PeerRecord::decode(&[]).unwrap();
    assert_eq!(empty, peer("", "", ""));
    assert!(empty.entry().is_err());
}

#[test]
fn records_endpoint_encoding_matches_docker() {
    let plain = EndpointRecord::plain("web1", Ipv4Addr::new(10, 0, 1, 5));
    assert_eq!(hex(&plain.encode()), ENDPOINT_PLAIN);
}

#[test]
fn records_endpoint_decodes_docker_bytes() {
    let plain = EndpointRecord::decode(&unhex(ENDPOINT_PLAIN)).unwrap();
    assert_eq!(
        plain,
        EndpointRecord::plain("web1", Ipv4Addr::new(10, 0, 1, 5))
    );
    let svc = EndpointRecord::decode(&unhex(ENDPOINT_SERVICE)).unwrap();
    assert_eq!(
        svc,
        EndpointRecord {
            name: "svc.1.abc".into(),
            service_name: "svc".into(),
            service_id: "q1w2e3".into(),
            virtual_ip: "10.0.1.2".into(),
            endpoint_ip: "10.0.1.7".into(),
            aliases: vec!["svc-alias".into(), "other".into()],
            task_aliases: vec!["task-alias".into()],
            service_disabled: true,
        }
    );
    // The re-encoding drops the ingress ports (field 6: bytes 0x32 ..)
    // and is otherwise Docker's.
    let mut without_ports = unhex(ENDPOINT_SERVICE);
    let start = hex(&without_ports).find("320b").unwrap() / 2;
    without_ports.drain(start..start + 2 + 11 + 2 + 4);
    assert_eq!(hex(&svc.encode()), hex(&without_ports));
    assert_eq!(EndpointRecord::decode(&svc.encode()).unwrap(), svc);
}

#[test]
fn records_entry_names_the_bad_field() {
    let cases = [
        (
            peer("10.0.1.5", "02:42:0a:00:01:05", "1.2.3.4"),
            "endpoint_ip",
        ),
        (
            peer("10.0.1.5/33", "02:42:0a:00:01:05", "1.2.3.4"),
            "endpoint_ip",
        ),
        (
            peer("10.0.1.5/+8", "02:42:0a:00:01:05", "1.2.3.4"),
            "endpoint_ip",
        ),
        (
            peer("fe80::1/64", "02:42:0a:00:01:05", "1.2.3.4"),
            "endpoint_ip",
        ),
        (
            peer("224.0.0.1/24", "02:42:0a:00:01:05", "1.2.3.4"),
            "endpoint_ip",
        ),
        (
            peer("10.0.1.5/24", "02:42:0a:00:01", "1.2.3.4"),
            "endpoint_mac",
        ),
        (
            peer("10.0.1.5/24", "zz:42:0a:00:01:05", "1.2.3.4"),
            "endpoint_mac",
        ),
        (
            peer("10.0.1.5/24", "02:42:0a:00:01:05", "1.2.3"),
            "tunnel_endpoint_ip",
        ),
        (
            peer("10.0.1.5/24", "02:42:0a:00:01:05", "0.0.0.0"),
            "tunnel_endpoint_ip",
        ),
        (
            peer("10.0.1.5/24", "02:42:0a:00:01:05", "255.255.255.255"),
            "tunnel_endpoint_ip",
        ),
    ];
    for (record, field) in cases {
        let err = record.entry().unwrap_err().to_string();
        assert!(err.contains(field), "{record:?}: {err}");
        assert!(!err.contains('\n'));
    }
    // A peer's string is clipped and escaped in the message.
    let long = format!("{}\n/24", "9".repeat(200));
    let err = peer(&long, "", "").entry().unwrap_err().to_string();
    assert!(err.len() < 160, "{err}");
    assert!(err.contains("\\n") || !err.contains('\n'), "{err}");
}

#[test]
fn records_refuse_oversized_values() {
    let big = vec![0u8; MAX_RECORD_BYTES + 1];
    assert!(PeerRecord::decode(&big)
        .unwrap_err()
        .to_string()
        .contains("over the limit"));
    assert!(EndpointRecord::decode(&big)
        .unwrap_err()
        .to_string()
        .contains("over the limit"));
    // A single string over the per-field limit.
    let long = field(1, "a".repeat(MAX_RECORD_STRING + 1).as_bytes());
    let err = PeerRecord::decode(&long).unwrap_err().to_string();
    assert!(err.contains("endpoint_ip"), "{err}");
    let err = EndpointRecord::decode(&long).unwrap_err().to_string();
    assert!(err.contains("name"), "{err}");
    // At the limit is fine.
    let ok = field(1, "a".repeat(MAX_RECORD_STRING).as_bytes());
    assert!(PeerRecord::decode(&ok).is_ok());
}

#[test]
fn records_refuse_huge_repeated_fields() {
    for tag in [6u8, 7, 8] {
        let item: Vec<u8> = if tag == 6 { Vec::new() } else { b"x".to_vec() };
        let many: Vec<u8> = (0..=MAX_REPEATED).flat_map(|_| field(tag, &item)).collect();
        assert!(many.len() <= MAX_RECORD_BYTES);
        let err = EndpointRecord::decode(&many).unwrap_err().to_string();
        assert!(err.contains("items"), "tag {tag}: {err}");
        let enough: Vec<u8> = (0..MAX_REPEATED).flat_map(|_| field(tag, &item)).collect();
        assert!(EndpointRecord::decode(&enough).is_ok(), "tag {tag}");
    }
    // A long name inside an ingress port.
    let port = field(6, &field(1, "p".repeat(MAX_RECORD_STRING + 1).as_bytes()));
    let err = EndpointRecord::decode(&port).unwrap_err().to_string();
    assert!(err.contains("ingress_ports.name"), "{err}");
}

#[test]
fn records_refuse_malformed_protobuf() {
    let basic = unhex(PEER_BASIC);
    let svc = unhex(ENDPOINT_SERVICE);
    // Truncated anywhere inside a field.
    for cut in [1, 5, basic.len() - 1] {
        assert!(PeerRecord::decode(&basic[..cut]).is_err(), "cut {cut}");
    }
    for cut in [1, 30, svc.len() - 1] {
        assert!(EndpointRecord::decode(&svc[..cut]).is_err(), "cut {cut}");
    }
    // Wrong wire types: a varint where a string is expected, a string where
    // the bool is expected, a string where a port message's varint is.
    assert!(PeerRecord::decode(&[0x08, 0x01]).is_err());
    assert!(EndpointRecord::decode(&[0x4a, 0x01, 0x01]).is_err());
    assert!(EndpointRecord::decode(&field(6, &field(2, b"x"))).is_err());
    // Invalid UTF-8 in a string, a length that runs past the end, a varint
    // that never ends, field number zero.
    assert!(PeerRecord::decode(&[0x0a, 0x02, 0xff, 0xfe]).is_err());
    assert!(PeerRecord::decode(&[0x0a, 0x7f, b'a']).is_err());
    assert!(PeerRecord::decode(&[
        0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    ])
    .is_err());
    assert!(PeerRecord::decode(&[0x02, 0x00]).is_err());
    // Unknown fields are skipped, as Docker's Unmarshal does.
    let mut extra = basic.clone();
    extra.extend_from_slice(&[0x78, 0x05]);
    assert_eq!(
        PeerRecord::decode(&extra).unwrap(),
        PeerRecord::decode(&basic).unwrap()
    );
}

proptest! {
    #[test]
    fn records_peer_round_trip(ip in any::<u32>(), len in 0u8..=32, vtep in 1u32..0xe000_0000) {
        let ip = Ipv4Addr::from(ip);
        let record = PeerRecord::new(ip, len, Mac::from_ip(ip), Ipv4Addr::from(vtep));
        let back = PeerRecord::decode(&record.encode()).unwrap();
        prop_assert_eq!(&back, &record);
        if !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()) {
            let entry = back.entry().unwrap();
            prop_assert_eq!(entry.ip, ip);
            prop_assert_eq!(entry.mac, Mac::from_ip(ip));
        }
    }

    #[test]
    fn records_endpoint_round_trip(
        name in "[a-z0-9.-]{0,40}",
        svc in "[a-z]{0,10}",
        aliases in proptest::collection::vec("[a-z]{1,8}", 0..5),
        disabled in any::<bool>(),
        ip in any::<u32>(),
    ) {
        let mut record = EndpointRecord::plain(&name, Ipv4Addr::from(ip));
        record.service_name = svc;
        record.aliases = aliases.clone();
        record.task_aliases = aliases;
        record.service_disabled = disabled;
        prop_assert_eq!(EndpointRecord::decode(&record.encode()).unwrap(), record);
    }

    #[test]
    fn records_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(p) = PeerRecord::decode(&bytes) {
            let _ = p.entry();
            prop_assert_eq!(PeerRecord::decode(&p.encode()).unwrap(), p);
        }
        if let Ok(e) = EndpointRecord::decode(&bytes) {
            prop_assert_eq!(EndpointRecord::decode(&e.encode()).unwrap(), e);
        }
    }
}
