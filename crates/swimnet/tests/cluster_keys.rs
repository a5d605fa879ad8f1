//! Cluster-wide key rotation over 3 live swimnet agents (`--protocol
//! networkdb` on 127.0.230.0/24, `--protocol memberlist` on
//! 127.0.231.0/24): `swimnet keys use` refused while one member lacks the
//! key, then install, use and remove of the old key from different agents
//! with every member polled throughout and never seen failed; afterwards a
//! datagram encrypted with the old key gets no answer (one with the new key
//! does) and the receiver logs that it cannot decrypt it.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use swimnet_core::wire::packet::{seal_packet, SealOptions};
use swimnet_core::wire::security::{EncryptionVersion, Key};

/// Starts `swimnet agent --protocol PROTOCOL --profile local --encrypt KEY`
/// on `127.0.<net>.<host>:7946` (API on :7380) and waits for its API.
fn agent(env: &Env, name: &str, host: u8, protocol: &str, key: &str, join: Option<&Swim>) -> Swim {
    let extra = match join {
        Some(j) => vec!["--join".to_string(), j.addr()],
        None => Vec::new(),
    };
    agent_with(env, name, host, protocol, &["--encrypt", key], &extra)
}

/// [`agent`] with the key options `keys` and more arguments `extra`.
fn agent_with(
    env: &Env,
    name: &str,
    host: u8,
    protocol: &str,
    keys: &[&str],
    extra: &[String],
) -> Swim {
    let ip = env.ip(host);
    let mut args = env.agent_args(name, host, protocol);
    args.extend(
        ["--log-level", "info"]
            .iter()
            .chain(keys)
            .map(|s| s.to_string()),
    );
    args.extend_from_slice(extra);
    let proc = env.spawn(name, &env.swimnet, &args);
    let s = Swim {
        name: name.into(),
        ip,
        bin: env.swimnet.clone(),
        proc,
    };
    wait_for(format!("{name}'s API"), Duration::from_secs(20), || {
        s.members().map(|_| ())
    });
    s
}

fn keygen(env: &Env) -> String {
    let out = run_cmd(&env.swimnet, &["keygen".into()], Duration::from_secs(10));
    assert!(out.ok(), "{}", out.describe());
    out.stdout.trim().to_string()
}

/// `swimnet keys ARGS` on `s`, timed; the wall time of one cluster-wide
/// operation on loopback must stay well under its 5 s answer timeout.
fn keys(s: &Swim, args: &[&str]) -> CmdOut {
    let start = Instant::now();
    let out = s.cli("keys", args);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "`keys {args:?}` took {took:?}"
    );
    out
}

/// A ping for `target` from `sock`, sealed with `key`; true when an answer
/// comes back within a second.
fn answered(sock: &UdpSocket, target: &Swim, key: &[u8]) -> bool {
    let ping = plaintext_ping(&target.name, sock.local_addr().unwrap());
    let key = Key::new(key).unwrap();
    let opts = SealOptions {
        encrypt: Some((&key, rand_nonce(), EncryptionVersion::V1)),
        ..Default::default()
    };
    let mut pkt = Vec::new();
    seal_packet(&ping, &opts, &mut pkt);
    sock.send_to(&pkt, (target.ip, GOSSIP_PORT)).unwrap();
    let mut buf = [0u8; 65536];
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    sock.recv_from(&mut buf).is_ok()
}

/// A nonce that differs between calls (the agent drops exact replays).
fn rand_nonce() -> [u8; 12] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut n = [0u8; 12];
    n.copy_from_slice(&t.to_be_bytes()[4..16]);
    n
}

fn b64(k: &str) -> Vec<u8> {
    swimnet::keyfile::parse_key(k).unwrap()
}

fn rotation(test: &str, net: u8, protocol: &str) {
    let env = Env::new(test, net);
    let (k1, k2) = (keygen(&env), keygen(&env));
    let a = agent(&env, "a", 1, protocol, &k1, None);
    let b = agent(&env, "b", 2, protocol, &k1, Some(&a));
    let c = agent(&env, "c", 3, protocol, &k1, Some(&a));
    let nodes: [&dyn Node; 3] = [&a, &b, &c];
    let names = ["a", "b", "c"];
    wait_all_alive(&nodes, &names, Duration::from_secs(20));
    let monitor = Monitor::start(
        nodes.iter().map(|n| n.observer()).collect(),
        names.iter().map(|s| s.to_string()).collect(),
        true,
    );

    // Two of three hold the new key: `use` is refused and changes nothing.
    for s in [&a, &b] {
        let out = keys(s, &["install", "--local", &k2]);
        assert!(out.ok(), "{}", out.describe());
    }
    let out = keys(&a, &["use", &k2]);
    assert!(!out.ok(), "use must be refused: {}", out.describe());
    assert!(
        out.stderr.contains("2/3 members hold it"),
        "{}",
        out.describe()
    );
    assert_eq!(a.keys().unwrap().0, k1, "primary unchanged");

    // Install everywhere from c, use from a, remove the old key from b.
    let out = keys(&c, &["install", &k2]);
    assert!(out.ok(), "{}", out.describe());
    assert!(
        out.stdout.contains("3/3 nodes responded"),
        "{}",
        out.describe()
    );
    let out = keys(&b, &["list"]);
    assert!(out.ok(), "{}", out.describe());
    for k in [&k1, &k2] {
        assert!(
            out.stdout.contains(&format!("{k}  [3/3]")),
            "{}",
            out.stdout
        );
    }
    let out = keys(&a, &["use", &k2]);
    assert!(out.ok(), "{}", out.describe());
    let out = keys(&b, &["remove", &k1]);
    assert!(out.ok(), "{}", out.describe());
    assert!(
        out.stdout.contains("3/3 nodes responded"),
        "{}",
        out.describe()
    );
    for s in [&a, &b, &c] {
        assert_eq!(
            s.keys().unwrap(),
            (k2.clone(), vec![k2.clone()]),
            "{}",
            s.name
        );
    }
    // The cluster keeps talking on the new key alone for a while.
    std::thread::sleep(Duration::from_secs(4));
    let report = monitor.finish();
    assert!(report.rounds > 10, "monitor rounds: {}", report.rounds);
    assert!(
        report.violations.is_empty(),
        "members seen not alive during the rotation: {:?}",
        report.violations
    );

    // The old key opens nothing now; the new one does.
    let sock = UdpSocket::bind((env.ip(9), 0)).unwrap();
    let dropped0 = c.stat("packets_dropped").unwrap();
    assert!(
        !answered(&sock, &c, &b64(&k1)),
        "a ping under the old key was answered"
    );
    assert!(c.stat("packets_dropped").unwrap() > dropped0);
    assert!(
        answered(&sock, &c, &b64(&k2)),
        "a ping under the new key got no answer"
    );
    let line = format!("cannot decrypt packets from {}", sock.local_addr().unwrap());
    wait_for(
        "the decrypt failure in c's log",
        Duration::from_secs(5),
        || {
            if c.log().contains(&line) {
                Ok(())
            } else {
                Err(tail(&c.log(), 5))
            }
        },
    );
    for s in [&a, &b, &c] {
        let kib = procstat::peak_rss_kib(s.proc.pid());
        assert!(kib < 100 * 1024, "{} peak RSS {kib} KiB", s.name);
    }
}

#[test]
fn networkdb_agents_rotate_keys_cluster_wide() {
    rotation("cluster_keys_networkdb", 230, "networkdb");
}

#[test]
fn memberlist_agents_rotate_keys_cluster_wide() {
    rotation("cluster_keys_memberlist", 231, "memberlist");
}

#[test]
fn a_cluster_wide_change_rewrites_the_keyring_file() {
    let env = Env::new("cluster_keys_file", 232);
    let (k1, k2) = (keygen(&env), keygen(&env));
    let file = env.dir.join("keyring.json");
    std::fs::write(&file, format!("[\"{k1}\"]")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let path = file.to_str().unwrap();
    let a = agent_with(&env, "a", 1, "memberlist", &["--keyring-file", path], &[]);
    let out = keys(&a, &["install", &k2]);
    assert!(out.ok(), "{}", out.describe());
    assert!(
        out.stdout.contains("1/1 nodes responded"),
        "{}",
        out.describe()
    );
    let saved: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved, vec![k1.clone(), k2.clone()]);
    // Removing the primary fails on the member, which the report names.
    let out = keys(&a, &["remove", &k1]);
    assert!(!out.ok(), "{}", out.describe());
    assert!(
        out.stdout.contains("failed: a: keyring"),
        "{}",
        out.describe()
    );
}

/// In serf mode the same commands go out as Serf's own key queries: an
/// install from one agent reaches the other, both count in `N/M`, and
/// `--local` still acts on one agent alone.
#[test]
fn serf_mode_rotates_keys_with_serfs_key_queries() {
    let env = Env::new("cluster_keys_serf", 233);
    let k1 = keygen(&env);
    let k2 = keygen(&env);
    let k3 = keygen(&env);
    let a = agent(&env, "a", 1, "serf", &k1, None);
    let b = agent(&env, "b", 2, "serf", &k1, Some(&a));
    wait_for("a and b see each other", Duration::from_secs(20), || {
        let n = a.members()?.len();
        (n == 2).then_some(()).ok_or(format!("{n} members"))
    });
    let out = keys(&a, &["install", &k2]);
    assert!(out.ok(), "{}", out.describe());
    assert!(
        out.stdout.contains("2/2 nodes responded"),
        "{}",
        out.describe()
    );
    assert_eq!(b.keys().unwrap().1, vec![k1.clone(), k2.clone()]);
    let out = keys(&b, &["use", &k2]);
    assert!(out.ok(), "{}", out.describe());
    let out = keys(&a, &["remove", &k1]);
    assert!(out.ok(), "{}", out.describe());
    assert_eq!(a.keys().unwrap(), (k2.clone(), vec![k2.clone()]));
    assert_eq!(b.keys().unwrap(), (k2.clone(), vec![k2.clone()]));
    let out = keys(&a, &["install", "--local", &k3]);
    assert!(out.ok(), "{}", out.describe());
    assert_eq!(a.keys().unwrap().1, vec![k2.clone(), k3]);
    assert_eq!(b.keys().unwrap().1, vec![k2]);
}
