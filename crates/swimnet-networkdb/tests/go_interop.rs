//! Docker's own Go decoders read what we encode (and agree with ours on odd
//! but valid inputs).
//!
//! It needs Go and the docker.io source package, which `scripts/test.sh`
//! installs; without them the test fails and says what to install.
//! `tools/ndbref/build.sh` (which calls `scripts/build-networkdb-test.sh`)
//! builds `ndbref` against Docker 20.10.24's libnetwork/networkdb; its
//! `decode` mode opens each input as NetworkDB's `handleMessage` does and
//! prints a canonical description, which must equal ours.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use swimnet_networkdb::wire::*;
use swimnet_testkit::{hex, unhex};

fn ndbref() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tools/ndbref/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "building ndbref failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or("").trim())
}

/// Our side of ndbref's description format.
fn describe(buf: &[u8], depth: usize, out: &mut Vec<String>) {
    let g = match decode_gossip(buf) {
        Ok(g) => g,
        Err(DecodeError::Empty) => return out.push("UNKNOWN(0)".into()),
        Err(_) => return out.push("ERR".into()),
    };
    let m = match Message::from_gossip(&g) {
        Ok(m) => m,
        Err(DecodeError::UnknownMessageType(t)) => return out.push(format!("UNKNOWN({t})")),
        Err(_) => return out.push("ERR".into()),
    };
    let h = |s: &str| hex(s.as_bytes());
    match m {
        Message::NodeEvent(e) => out.push(format!(
            "NodeEvent{{type={} ltime={} node={}}}",
            e.r#type,
            e.l_time,
            h(&e.node_name)
        )),
        Message::NetworkEvent(e) => out.push(format!(
            "NetworkEvent{{type={} ltime={} node={} net={}}}",
            e.r#type,
            e.l_time,
            h(&e.node_name),
            h(&e.network_id)
        )),
        Message::TableEvent(e) => out.push(format!(
            "TableEvent{{type={} ltime={} node={} net={} table={} key={} value={} reap={}}}",
            e.r#type,
            e.l_time,
            h(&e.node_name),
            h(&e.network_id),
            h(&e.table_name),
            h(&e.key),
            hex(&e.value),
            e.residual_reap_time
        )),
        Message::PushPull(p) => {
            let entries: Vec<String> = p
                .networks
                .iter()
                .map(|e| {
                    format!(
                        "({},{},{},{})",
                        h(&e.network_id),
                        e.l_time,
                        h(&e.node_name),
                        e.leaving
                    )
                })
                .collect();
            out.push(format!(
                "PushPull{{ltime={} node={} networks=[{}]}}",
                p.l_time,
                h(&p.node_name),
                entries.join(",")
            ))
        }
        Message::BulkSync(b) => {
            let mut inner = Vec::new();
            describe(&b.payload, 0, &mut inner);
            let nets: Vec<String> = b.networks.iter().map(|n| h(n)).collect();
            out.push(format!(
                "BulkSync{{ltime={} unsolicited={} node={} networks=[{}] payload=<{}>}}",
                b.l_time,
                b.unsolicited,
                h(&b.node_name),
                nets.join(","),
                inner.join(" | ")
            ))
        }
        Message::Compound(c) => {
            if depth >= MAX_NESTING {
                return out.push("ERR".into());
            }
            for p in &c.messages {
                describe(&p.payload, depth + 1, out);
            }
        }
    }
}

fn ours(buf: &[u8]) -> String {
    let mut v = Vec::new();
    describe(buf, 0, &mut v);
    v.join(" | ")
}

/// Hand-made inputs that Go accepts: unknown fields, repeated scalars (the
/// last wins), non-minimal varints, fields out of order, unknown enum values.
fn odd_inputs() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    // TableEvent with an unknown varint field 15 and an unknown bytes field 20.
    let mut te = TableEvent {
        r#type: 1,
        l_time: 9,
        key: "k".into(),
        ..Default::default()
    }
    .encode_inner();
    te.extend_from_slice(&[0x78, 0x05, 0xa2, 0x01, 0x02, 0xaa, 0xbb]);
    v.push((
        "unknown_fields".into(),
        encode_gossip(MessageType::TableEvent, &te),
    ));
    // l_time twice: 5 then 7.
    let inner = [0x10, 0x05, 0x10, 0x07, 0x08, 0x02];
    v.push((
        "repeated_scalar".into(),
        encode_gossip(MessageType::NodeEvent, &inner),
    ));
    // Non-minimal varint for l_time (5 as 0x85 0x00) and fields out of order.
    let inner = [0x1a, 0x01, b'n', 0x10, 0x85, 0x00, 0x08, 0x01];
    v.push((
        "non_minimal".into(),
        encode_gossip(MessageType::NodeEvent, &inner),
    ));
    // Enum value 77 and a negative enum value.
    v.push((
        "unknown_enum".into(),
        encode_gossip(
            MessageType::TableEvent,
            &TableEvent {
                r#type: 77,
                ..Default::default()
            }
            .encode_inner(),
        ),
    ));
    v.push((
        "negative_enum".into(),
        encode_gossip(
            MessageType::NetworkEvent,
            &NetworkEvent {
                r#type: -3,
                ..Default::default()
            }
            .encode_inner(),
        ),
    ));
    v.push(("unknown_type".into(), encode_gossip_raw(42, b"zz")));
    // Truncated inner message inside a compound, next to a good part.
    let good = NodeEvent {
        r#type: 1,
        l_time: 2,
        node_name: "a".into(),
    }
    .encode_gossip();
    let bad = encode_gossip(MessageType::NodeEvent, &[0x1a, 0x05, b'a']);
    v.push(("bad_part".into(), encode_compound(&[bad, good])));
    v
}

#[test]
fn go_decodes_what_we_encode() {
    let bin = ndbref();
    let mut inputs = odd_inputs();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strat = common::tree();
    for i in 0..500 {
        let (bytes, _) = strat.new_tree(&mut runner).unwrap().current();
        inputs.push((format!("random{i}"), bytes));
    }

    let mut child = Command::new(&bin)
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run ndbref");
    // Feed stdin from a thread so that neither side blocks on a full pipe.
    let mut stdin = child.stdin.take().unwrap();
    let feed: String = inputs
        .iter()
        .map(|(name, b)| format!("{name} {}\n", hex(b)))
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), inputs.len());
    for ((name, b), line) in inputs.iter().zip(lines) {
        let (gname, gdesc) = line.split_once(' ').unwrap_or((line, ""));
        assert_eq!(gname, name);
        assert_eq!(ours(b), gdesc, "{name}: {}", hex(b));
        if !name.starts_with("random") {
            eprintln!("{name}: {gdesc}");
        }
    }
    // The hex helpers are symmetric (keeps unhex used).
    assert_eq!(unhex(&hex(&[1, 2, 255])), [1, 2, 255]);
}
