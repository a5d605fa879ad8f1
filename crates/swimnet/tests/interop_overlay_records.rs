//! Interop of Docker's overlay records between swimnet and Docker's real
//! NetworkDB (`networkdb-test`, Debian's docker.io 20.10.24): the bytes of
//! `overlay_peer_table` and `endpoint_table` values written by one side are
//! what the other side's decoder expects.
//!
//! Decoding and encoding on the Docker side use Docker's own generated Go
//! code through `tools/overlayref` (built by tools/overlayref/build.sh into
//! target/ndb/overlayref; `OVERLAYREF_BIN` overrides). Nodes run in network
//! namespaces `swr-rec-*` on 10.204.0.0/24 (harness: tests/ndb_common). Only
//! the bytes are proven here; programming them into a kernel is the overlay
//! end-to-end tests' job.

mod ndb_common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use ndb_common::*;
use swimnet_overlay::records::{EndpointRecord, PeerRecord, ENDPOINT_TABLE, PEER_TABLE};
use swimnet_overlay::{Mac, PeerEntry};

/// Bound for membership and table convergence (one NetworkDB bulk sync is
/// 60 s; gossip usually delivers in well under a second).
const CONVERGE: Duration = Duration::from_secs(75);

/// The overlay's network ID (64 hex digits, as Docker's are).
const NID: &str = "5f3c0e7a9b1d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";
/// Endpoint IDs (table keys).
const EP_SWIM: &str = "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66";
const EP_DOCKER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn overlayref_bin() -> PathBuf {
    let bin = match std::env::var_os("OVERLAYREF_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ndb/overlayref"),
    };
    assert!(
        bin.is_file(),
        "overlayref not found at {}: run tools/overlayref/build.sh",
        bin.display()
    );
    bin
}

/// Runs overlayref with `args`; answers its stdout.
fn overlayref(args: &[&str]) -> String {
    let out = Command::new(overlayref_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "overlayref {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Docker's Unmarshal of `bytes` as a `kind` record, as JSON.
fn go_decode(kind: &str, bytes: &[u8]) -> serde_json::Value {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    serde_json::from_str(&overlayref(&["decode", kind, &hex])).unwrap()
}

/// The bytes of Docker's Marshal for the named vector of `overlayref encode`.
fn go_vector(name: &str) -> Vec<u8> {
    let out = overlayref(&["encode"]);
    let hex = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no vector {name} in {out}"));
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn wait_peers(
    env: &Env,
    nodes: &[&Node],
    what: &str,
    list: impl Fn(&Node) -> BTreeSet<(String, String)>,
) {
    let want: BTreeSet<_> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.ip.clone()))
        .collect();
    for n in nodes {
        env.wait_for(&format!("{} {what}", n.name), CONVERGE, || {
            let got = list(n);
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got:?}, want {want:?}"))
            }
        });
    }
}

/// Waits until Docker's node holds `key` in `table`, owned by `owner`, and
/// answers the value's bytes.
fn docker_value(env: &Env, d: &Node, table: &str, key: &str, owner: &Node) -> Vec<u8> {
    let b64 = env.wait_for(&format!("{} has {table}/{key}", d.name), CONVERGE, || {
        let t = env.table(d, NID, table)?;
        match t.get(key) {
            Some((v, o)) if *o == owner.name => Ok(v.clone()),
            other => Err(format!("entry {other:?}")),
        }
    });
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// Writes `value` into swimnet's table through its CLI (`table put --file`).
fn swim_put(env: &Env, s: &Node, table: &str, key: &str, value: &[u8]) {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("swr-rec-{}-{table}.bin", std::process::id()));
    std::fs::write(&file, value).unwrap();
    env.cli(
        s,
        &[
            "table",
            "put",
            NID,
            table,
            key,
            "--file",
            file.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_file(&file);
}

/// Reads a value from swimnet's table through its CLI (`table get`, raw
/// bytes), waiting until it is there.
fn swim_get(env: &Env, s: &Node, table: &str, key: &str) -> Vec<u8> {
    env.wait_for(&format!("{} has {table}/{key}", s.name), CONVERGE, || {
        let t = env.table(s, NID, table)?;
        if t.contains_key(key) {
            Ok(())
        } else {
            Err(format!("keys {:?}", t.keys().collect::<Vec<_>>()))
        }
    });
    // Not `env.cli`: that answers text, and a value need not be UTF-8.
    let api = format!("127.0.0.1:{JSON_API_PORT}");
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &s.ns,
            env!("CARGO_BIN_EXE_swimnet"),
            "table",
            "get",
        ])
        .args(["--api", &api, NID, table, key])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "swimnet table get {table} {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A swimnet agent and a Docker node on one overlay network: records written
/// by swimnet decode with Docker's code to the same fields, and records
/// written by Docker decode with swimnet's to the right peer entry.
#[test]
fn overlay_records_cross_both_ways() {
    let mut env = Env::with_names("ovrec", "swr-rec-", "10.204.0");
    let d1 = env.docker(1);
    let s2 = env.swim(2, "swim2");
    env.join(&s2, &[&d1]);
    wait_peers(&env, &[&d1, &s2], "/clusterpeers", |n| env.peers(n));
    env.join_network(&d1, NID);
    env.join_network(&s2, NID);
    wait_peers(&env, &[&d1, &s2], "/networkpeers", |n| {
        env.network_peers(n, NID)
    });

    // (a) swimnet -> Docker.
    let ip = Ipv4Addr::new(10, 0, 1, 5);
    let vtep: Ipv4Addr = s2.ip.parse().unwrap();
    let peer = PeerRecord::new(ip, 24, Mac::from_ip(ip), vtep);
    swim_put(&env, &s2, PEER_TABLE, EP_SWIM, &peer.encode());
    let endpoint = EndpointRecord::plain("web1", ip);
    swim_put(&env, &s2, ENDPOINT_TABLE, EP_SWIM, &endpoint.encode());
    let bytes = docker_value(&env, &d1, PEER_TABLE, EP_SWIM, &s2);
    assert_eq!(bytes, peer.encode(), "Docker holds swimnet's bytes");
    assert_eq!(
        go_decode("peer", &bytes),
        serde_json::json!({
            "endpoint_ip": "10.0.1.5/24",
            "endpoint_mac": "02:42:0a:00:01:05",
            "tunnel_endpoint_ip": s2.ip,
        })
    );
    let bytes = docker_value(&env, &d1, ENDPOINT_TABLE, EP_SWIM, &s2);
    // Go's JSON leaves out empty fields: only the name and the address.
    assert_eq!(
        go_decode("endpoint", &bytes),
        serde_json::json!({"name": "web1", "endpoint_ip": "10.0.1.5"})
    );

    // (b) Docker -> swimnet: bytes from Docker's Marshal, written through
    // Docker's diagnostic API (values travel base64-encoded).
    let go_peer = go_vector("peer_basic");
    env.ok(
        &d1,
        &format!(
            "/createentry?nid={NID}&tname={PEER_TABLE}&key={EP_DOCKER}&value={}",
            b64_bytes(&go_peer)
        ),
    );
    let go_endpoint = go_vector("endpoint_service");
    env.ok(
        &d1,
        &format!(
            "/createentry?nid={NID}&tname={ENDPOINT_TABLE}&key={EP_DOCKER}&value={}",
            b64_bytes(&go_endpoint)
        ),
    );
    let got = swim_get(&env, &s2, PEER_TABLE, EP_DOCKER);
    assert_eq!(got, go_peer, "swimnet holds Docker's bytes");
    let record = PeerRecord::decode(&got).unwrap();
    assert_eq!(
        record.entry().unwrap(),
        PeerEntry {
            ip: Ipv4Addr::new(10, 0, 1, 5),
            mac: Mac([0x02, 0x42, 10, 0, 1, 5]),
            vtep: Ipv4Addr::new(192, 168, 1, 10),
        }
    );
    let got = swim_get(&env, &s2, ENDPOINT_TABLE, EP_DOCKER);
    assert_eq!(got, go_endpoint);
    let record = EndpointRecord::decode(&got).unwrap();
    assert_eq!(record.name, "svc.1.abc");
    assert_eq!(record.endpoint_ip, "10.0.1.7");
    assert_eq!(record.aliases, ["svc-alias", "other"]);
    assert!(record.service_disabled);
}
