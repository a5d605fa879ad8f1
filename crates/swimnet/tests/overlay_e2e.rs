//! End-to-end tests of overlay networks: real agents (`swimnet agent
//! --protocol networkdb`), each in its own network namespace on an underlay
//! bridge, program real VXLAN devices, bridges, veths, neighbour and FDB
//! entries; endpoints are further namespaces that ping each other and
//! resolve each other's names through the agents' DNS responders.
//!
//! The harness (tests/overlay_common) keeps everything inside namespaces
//! named `swe-<tag>...` and removes them (and kills the agents by PID) when
//! a test ends, also on failure. The tests need root, iproute2, ping and
//! getent; they fail, never skip, without them. Agent logs go to
//! `target/tmp/overlay_e2e/<tag>/`; a failing test prints their tails.
//!
//! Agents run the `local` timer profile (1 s probes) with a 1 s reconcile
//! interval, so failure detection and repair take seconds, not minutes.

mod overlay_common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use overlay_common::*;
use serde_json::Value;

/// Bound for a table change to reach every host's kernel: gossip takes
/// well under a second; the bound also covers an event missed by gossip
/// and repaired by NetworkDB's bulk sync (every 30 s).
const PROGRAM: Duration = Duration::from_secs(40);

/// Bound for failure detection (local profile: 1 s probes, suspicion of a
/// few seconds, Lifeguard may stretch it) plus reprogramming, or for a
/// restarted agent's rejoin plus one bulk sync.
const FAILOVER: Duration = Duration::from_secs(60);

/// The underlay's MTU (veth default) and an endpoint's (minus VXLAN's 50).
const UNDERLAY_MTU: u32 = 1500;
const ENDPOINT_MTU: u32 = UNDERLAY_MTU - 50;

/// One attached endpoint as the test tracks it.
#[derive(Clone, Debug)]
struct Ep {
    host: u8,
    ns: String,
    name: String,
    ip: Ipv4Addr,
    mac: String,
}

/// Attaches endpoint namespaces `swe-<tag>h<i>e<m>` (m in 1..=per_host) on
/// every host to `overlay`; checks each attach's answer against the kernel.
fn attach_all(c: &mut Cluster, overlay: &str, per_host: u32) -> Vec<Ep> {
    let mut eps = Vec::new();
    for i in 1..=c.hosts.len() as u8 {
        for m in 1..=per_host {
            let ns = c.endpoint_ns(i, m);
            let v = c
                .attach(i, overlay, &ns, &[])
                .unwrap_or_else(|e| panic!("{e}"));
            let ep = check_attached(c, i, &ns, &v);
            eps.push(ep);
        }
    }
    eps
}

/// Checks an attach answer (`v`) against what the kernel shows in `ns`.
fn check_attached(c: &Cluster, host: u8, ns: &str, v: &Value) -> Ep {
    let ip = ep_ip(v);
    let ifname = v["ifname"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(ifname, "eth0", "first interface in {ns}: {v}");
    assert_eq!(v["mtu"].as_u64(), Some(ENDPOINT_MTU as u64), "{v}");
    let o = ip.octets();
    let mac = format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]);
    assert_eq!(v["mac"].as_str(), Some(mac.as_str()), "MAC from IP: {v}");
    let addrs = c.addrs(ns, "eth0");
    assert_eq!(addrs.len(), 1, "{ns} eth0 addresses: {addrs:?}");
    assert!(addrs[0].starts_with(&format!("{ip}/")), "{addrs:?} vs {v}");
    let link = run(&["ip", "-n", ns, "-o", "link", "show", "eth0"]);
    assert!(link.contains(&format!("mtu {ENDPOINT_MTU}")), "{link}");
    assert!(link.contains(&mac), "{link}");
    Ep {
        host,
        ns: ns.to_string(),
        name: v["name"].as_str().unwrap_or(ns).to_string(),
        ip,
        mac,
    }
}

/// What host `i` must program: every endpoint of `eps` on another host.
fn want_on(i: u8, eps: &[Ep]) -> BTreeSet<Programmed> {
    eps.iter()
        .filter(|e| e.host != i)
        .map(|e| (e.ip, e.mac.clone(), underlay_ip(e.host)))
        .collect()
}

/// Waits until every host in `hosts` has programmed exactly its share of `eps`.
fn wait_all_programmed(c: &Cluster, hosts: &[u8], vni: u32, eps: &[Ep], limit: Duration) {
    for &i in hosts {
        c.wait_programmed(i, vni, &want_on(i, eps), limit);
    }
}

/// Waits until `overlay endpoints` on every host in `hosts` lists exactly
/// `eps` (by id-independent fields: name, ip, mac, vtep).
fn wait_listed(c: &Cluster, hosts: &[u8], overlay: &str, eps: &[Ep]) {
    let want: BTreeSet<(String, Ipv4Addr, String, String)> = eps
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.ip,
                e.mac.clone(),
                underlay_ip(e.host).to_string(),
            )
        })
        .collect();
    for &i in hosts {
        wait_for(
            &format!("h{i} lists {} endpoints", eps.len()),
            PROGRAM,
            || {
                let got: BTreeSet<_> = c
                    .endpoints(i, overlay)?
                    .iter()
                    .map(|v| {
                        (
                            v["name"].as_str().unwrap_or_default().to_string(),
                            ep_ip(v),
                            v["mac"].as_str().unwrap_or_default().to_string(),
                            v["vtep"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                if got == want {
                    Ok(())
                } else {
                    Err(format!("got {got:?}\nwant {want:?}"))
                }
            },
        );
    }
}

/// Every endpoint pings every endpoint on another host.
fn ping_all_pairs(c: &Cluster, eps: &[Ep]) {
    for a in eps {
        for b in eps.iter().filter(|b| b.host != a.host) {
            wait_for(
                &format!("{} pings {} ({})", a.ns, b.ns, b.ip),
                Duration::from_secs(5),
                || {
                    if c.ping(&a.ns, b.ip, None) {
                        Ok(())
                    } else {
                        Err("no reply".into())
                    }
                },
            );
        }
    }
}

/// Names resolve from every endpoint: `NAME` and `NAME.OVERLAY` to the
/// endpoint's address; an unknown name fails quickly instead of hanging.
fn resolve_all(c: &Cluster, overlay: &str, eps: &[Ep]) {
    for a in eps {
        let conf = format!("/etc/netns/{}/resolv.conf", a.ns);
        let text = std::fs::read_to_string(&conf).unwrap_or_else(|e| panic!("{conf}: {e}"));
        assert!(text.contains("nameserver 127.0.0.11"), "{conf}: {text}");
        for b in eps {
            for name in [b.name.clone(), format!("{}.{overlay}", b.name)] {
                let got = wait_for(
                    &format!("{} resolves {name}", a.ns),
                    Duration::from_secs(5),
                    || c.getent(&a.ns, &name),
                );
                assert_eq!(got, vec![b.ip], "{} resolving {name}", a.ns);
            }
        }
        let start = Instant::now();
        let unknown = c.getent(&a.ns, "no-such-endpoint.invalid");
        assert!(unknown.is_err(), "unknown name resolved: {unknown:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "an unknown name took {:?} to fail (a hang, not a DNS error)",
            start.elapsed()
        );
    }
}

/// A ping of the endpoint MTU's size with don't-fragment set goes through;
/// one byte more does not leave the sender (so the MTU is what we claim).
fn ping_mtu(c: &Cluster, from: &Ep, to: &Ep) {
    let payload = ENDPOINT_MTU - 28;
    assert!(
        c.ping(&from.ns, to.ip, Some(payload)),
        "{} -> {}: DF ping of {payload} bytes (MTU {ENDPOINT_MTU}) failed",
        from.ns,
        to.ns
    );
    assert!(
        !c.ping(&from.ns, to.ip, Some(payload + 1)),
        "{} -> {}: DF ping over the MTU went through",
        from.ns,
        to.ns
    );
}

#[test]
fn three_hosts_ping_resolve_survive_failure_and_detach() {
    let mut c = Cluster::new("t1", 3);
    let vni = 0x1001;
    let out = c.create_overlay(1, "blue", "10.61.0.0/24", vni);
    assert!(out.starts_with("created overlay blue: id "), "{out}");
    let id = c.overlay_id(1, "blue");
    assert_eq!(id.len(), 64, "network ID {id}");
    for i in [2, 3] {
        wait_for(&format!("h{i} knows blue"), PROGRAM, || {
            let v = c.cli_json(i, &["overlay", "list", "--format", "json"])?;
            let ok = v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|o| o["name"] == "blue" && o["id"] == id.as_str() && o["vni"] == vni)
            });
            if ok {
                Ok(())
            } else {
                Err(v.to_string())
            }
        });
    }
    let eps = attach_all(&mut c, "blue", 2);
    let ips: BTreeSet<Ipv4Addr> = eps.iter().map(|e| e.ip).collect();
    assert_eq!(ips.len(), eps.len(), "addresses collide: {eps:?}");
    wait_listed(&c, &[1, 2, 3], "blue", &eps);
    wait_all_programmed(&c, &[1, 2, 3], vni, &eps, PROGRAM);
    ping_all_pairs(&c, &eps);
    ping_mtu(&c, &eps[0], &eps[2]);
    ping_mtu(&c, &eps[5], &eps[1]);
    resolve_all(&c, "blue", &eps);

    drift_is_repaired(&c, vni, &eps);
    let eps = kill_and_restart(&mut c, vni, &eps);
    detach_one(&c, vni, &eps);
    agents_within_budget(&c);
}

/// Every agent stays small and mostly idle with a few endpoints (measured:
/// ~12.5 MiB peak RSS and under 0.1 s of CPU over the ~20 s run).
fn agents_within_budget(c: &Cluster) {
    for i in 1..=3 {
        let pid = c.agent_pid(i);
        let peak = procstat::peak_rss_kib(pid);
        let cpu = procstat::cpu_time(pid);
        eprintln!("h{i}: peak RSS {peak} KiB, CPU {cpu:?}");
        assert!(peak < 48 * 1024, "h{i} peak RSS {peak} KiB");
        assert!(cpu < Duration::from_secs(3), "h{i} used {cpu:?} of CPU");
    }
}

/// Entries removed behind the agent's back come back within a reconcile
/// interval (plus margin).
fn drift_is_repaired(c: &Cluster, vni: u32, eps: &[Ep]) {
    let victim = eps.iter().find(|e| e.host == 2).unwrap();
    let dev = vxlan_name(vni);
    let ns = &c.host(1).ns;
    run(&[
        "ip",
        "-n",
        ns,
        "neigh",
        "del",
        &victim.ip.to_string(),
        "dev",
        &dev,
    ]);
    run(&[
        "bridge",
        "-n",
        ns,
        "fdb",
        "del",
        &victim.mac,
        "dev",
        &dev,
        "self",
    ]);
    assert!(
        !c.programmed(1, vni)
            .unwrap()
            .iter()
            .any(|p| p.0 == victim.ip),
        "entry still there after deleting it"
    );
    let limit = Duration::from_secs(RECONCILE_SECS * 3 + 3);
    c.wait_programmed(1, vni, &want_on(1, eps), limit);
}

/// `kill -9` of host 3's agent: the others drop its endpoints' entries once
/// it is declared failed. While it is down, an endpoint of host 1 is
/// detached, so host 3's kernel keeps a stale permanent entry for it. A
/// restart brings host 3's endpoints back everywhere and removes the stale
/// entry, with nothing doubled anywhere (host 3 kept its own kernel state
/// across the crash). Answers the endpoints still attached.
fn kill_and_restart(c: &mut Cluster, vni: u32, eps: &[Ep]) -> Vec<Ep> {
    c.kill9(3);
    let survivors: Vec<Ep> = eps.iter().filter(|e| e.host != 3).cloned().collect();
    wait_all_programmed(c, &[1, 2], vni, &survivors, FAILOVER);
    let h3 = eps.iter().find(|e| e.host == 3).unwrap();
    assert!(
        !c.ping(&eps[0].ns, h3.ip, None),
        "{} still reaches {} with its host's agent declared failed",
        eps[0].ns,
        h3.ns
    );
    // Host 3's own endpoints and kernel state outlive its agent.
    assert_eq!(c.addrs(&h3.ns, "eth0").len(), 1);

    let stale = eps.iter().filter(|e| e.host == 1).nth(1).unwrap().clone();
    c.cli_ok(1, &["overlay", "detach", "blue", "--netns", &stale.ns]);
    let eps: Vec<Ep> = eps.iter().filter(|e| e.ns != stale.ns).cloned().collect();
    let survivors: Vec<Ep> = survivors.into_iter().filter(|e| e.ns != stale.ns).collect();
    wait_all_programmed(c, &[1, 2], vni, &survivors, PROGRAM);
    assert!(
        c.programmed(3, vni)
            .unwrap()
            .iter()
            .any(|p| p.0 == stale.ip),
        "h3 (agent down) should still hold the entry of {}",
        stale.ns
    );

    c.start_agent(3);
    c.wait_members(3);
    wait_listed(c, &[1, 2, 3], "blue", &eps);
    wait_all_programmed(c, &[1, 2, 3], vni, &eps, FAILOVER);
    // Settled: still exact a few reconcile intervals later (no late
    // duplicates from the restarted agent's first passes).
    std::thread::sleep(Duration::from_secs(RECONCILE_SECS * 2 + 1));
    for i in 1..=3 {
        assert_eq!(c.programmed(i, vni).unwrap(), want_on(i, &eps), "h{i}");
    }
    let a = eps.iter().find(|e| e.host == 1).unwrap();
    for e in eps.iter().filter(|e| e.host == 3) {
        wait_for(
            &format!("{} pings {} after restart", a.ns, e.ns),
            Duration::from_secs(5),
            || {
                c.ping(&a.ns, e.ip, None)
                    .then_some(())
                    .ok_or_else(|| "no reply".to_string())
            },
        );
        assert!(c.ping(&e.ns, a.ip, None), "{} -> {}", e.ns, a.ns);
    }
    eps
}

/// `overlay detach` removes the endpoint's interface, its entries on every
/// host, its reachability and its name.
fn detach_one(c: &Cluster, vni: u32, eps: &[Ep]) {
    let gone = eps.iter().find(|e| e.host == 2).unwrap().clone();
    let out = c.cli_ok(2, &["overlay", "detach", "blue", "--netns", &gone.ns]);
    eprintln!("detach: {}", out.trim());
    let link = cmd(&["ip", "-n", &gone.ns, "link", "show", "eth0"]);
    assert!(!link.status.success(), "eth0 still in {}", gone.ns);
    let rest: Vec<Ep> = eps.iter().filter(|e| e.ns != gone.ns).cloned().collect();
    wait_all_programmed(c, &[1, 2, 3], vni, &rest, PROGRAM);
    wait_listed(c, &[1, 2, 3], "blue", &rest);
    for a in rest.iter().filter(|e| e.host != 2) {
        assert!(!c.ping(&a.ns, gone.ip, None), "{} -> detached", a.ns);
        assert!(
            c.getent(&a.ns, &gone.name).is_err(),
            "{} still resolves {}",
            a.ns,
            gone.name
        );
    }
    let conf = format!("/etc/netns/{}/resolv.conf", gone.ns);
    assert!(
        !std::path::Path::new(&conf).exists(),
        "{conf} left after the last detach"
    );
}

#[test]
fn concurrent_attaches_on_two_hosts_never_collide() {
    let mut c = Cluster::new("t2", 2);
    let vni = 0x1002;
    c.create_overlay(1, "red", "10.62.0.0/27", vni);
    assert_eq!(c.overlay_id(2, "red"), c.overlay_id(1, "red"));
    let per_host = 10;
    let mut nss: Vec<(u8, String)> = Vec::new();
    for i in [1, 2] {
        for m in 1..=per_host {
            nss.push((i, c.endpoint_ns(i, m)));
        }
    }
    let start = Instant::now();
    let answers: Vec<(u8, String, Result<Value, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = nss
            .iter()
            .map(|(i, ns)| {
                let c = &c;
                s.spawn(move || (*i, ns.clone(), c.attach(*i, "red", ns, &[])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("20 concurrent attaches took {:?}", start.elapsed());
    for (i, ns, r) in &answers {
        if let Err(e) = r {
            panic!("attach {ns} on h{i}: {e}");
        }
    }
    // After settling, listings and kernel agree and no address is used twice.
    let mut eps = Vec::new();
    let listed = wait_for("20 distinct endpoints listed on both", PROGRAM, || {
        let a = c.endpoints(1, "red")?;
        let b = c.endpoints(2, "red")?;
        let ips: BTreeSet<Ipv4Addr> = a.iter().map(ep_ip).collect();
        let ips_b: BTreeSet<Ipv4Addr> = b.iter().map(ep_ip).collect();
        let names: BTreeSet<&str> = a.iter().filter_map(|v| v["name"].as_str()).collect();
        let named = names.len() == 20 && !names.contains("");
        if a.len() == 20 && ips.len() == 20 && ips == ips_b && named {
            Ok(a)
        } else {
            Err(format!(
                "h1: {} listed, {} distinct; h2 {ips_b:?}",
                a.len(),
                ips.len()
            ))
        }
    });
    let by_name: BTreeMap<String, Ipv4Addr> = listed
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or_default().to_string(), ep_ip(v)))
        .collect();
    for (i, ns) in &nss {
        let ip = *by_name
            .get(ns.as_str())
            .unwrap_or_else(|| panic!("{ns} (h{i}) not listed: {by_name:?}"));
        wait_for(&format!("{ns} has {ip}"), PROGRAM, || {
            let addrs = c.addrs(ns, "eth0");
            if addrs.len() == 1 && addrs[0].starts_with(&format!("{ip}/27")) {
                Ok(())
            } else {
                Err(format!("{addrs:?}"))
            }
        });
        let o = ip.octets();
        eps.push(Ep {
            host: *i,
            ns: ns.clone(),
            name: ns.clone(),
            ip,
            mac: format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]),
        });
    }
    wait_all_programmed(&c, &[1, 2], vni, &eps, PROGRAM);
    // A few cross-host pings prove the winners' addresses are the live ones.
    for k in [0usize, 7] {
        let (a, b) = (&eps[k], &eps[per_host as usize + k]);
        assert!(c.ping(&a.ns, b.ip, None), "{} -> {}", a.ns, b.ns);
    }
    let used: BTreeSet<Ipv4Addr> = eps.iter().map(|e| e.ip).collect();
    same_address_requested_on_both(&mut c, &used);
}

/// Both hosts ask for the same free address at the same moment: exactly
/// one gets it, the other's attach fails with a clear error and leaves
/// nothing behind in its namespace.
fn same_address_requested_on_both(c: &mut Cluster, used: &BTreeSet<Ipv4Addr>) {
    let lost_before = conflicts_lost(c);
    let want = (1..=30u8)
        .map(|h| Ipv4Addr::new(10, 62, 0, h))
        .rev()
        .find(|ip| !used.contains(ip))
        .expect("a free address in the /27");
    let nss = [c.endpoint_ns(1, 11), c.endpoint_ns(2, 11)];
    let ip_s = want.to_string();
    let answers: Vec<Result<Value, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = [1u8, 2]
            .iter()
            .zip(&nss)
            .map(|(&i, ns)| {
                let (c, ip_s) = (&*c, &ip_s);
                s.spawn(move || c.attach(i, "red", ns, &["--ip", ip_s]))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<usize> = (0..2).filter(|&k| answers[k].is_ok()).collect();
    assert_eq!(won.len(), 1, "both or neither got {want}: {answers:?}");
    let (w, l) = (won[0], 1 - won[0]);
    assert_eq!(ep_ip(answers[w].as_ref().unwrap()), want);
    let err = answers[l].as_ref().unwrap_err();
    assert!(
        err.contains(&ip_s) && err.contains("not available"),
        "the loser's error: {err}"
    );
    assert!(
        c.addrs(&nss[l], "eth0").is_empty(),
        "{} kept an interface after losing",
        nss[l]
    );
    assert!(conflicts_lost(c) > lost_before, "no lost claim counted");
}

/// Claims lost to concurrent ones, summed over both hosts.
fn conflicts_lost(c: &Cluster) -> u64 {
    [1, 2]
        .iter()
        .map(|&i| {
            let v = c.stats(i).unwrap_or_else(|e| panic!("{e}"));
            v["overlay"]["conflicts_lost"]
                .as_u64()
                .unwrap_or_else(|| panic!("no overlay.conflicts_lost in {v}"))
        })
        .sum()
}

/// Docker's `overlay.PeerRecord` (proto3: 1 endpoint_ip, 2 endpoint_mac,
/// 3 tunnel_endpoint_ip, all strings), encoded as gogo-protobuf's generated
/// Marshal writes it: fields in order, each tag, length, bytes.
fn docker_peer_record(ip_cidr: &str, mac: &str, vtep: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, s) in [(0x0a, ip_cidr), (0x12, mac), (0x1a, vtep)] {
        out.push(tag);
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// Decodes a PeerRecord with Docker's own generated code (`overlayref
/// decode peer HEX`, built by tools/overlayref/build.sh): the three fields
/// as Docker's Unmarshal fills them in.
fn docker_decode_peer(b: &[u8]) -> [String; 3] {
    let bin = std::env::var("OVERLAYREF_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/ndb/overlayref").to_string()
    });
    assert!(
        std::path::Path::new(&bin).is_file(),
        "{bin} not found: run tools/overlayref/build.sh (scripts/test.sh does)"
    );
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let out = cmd(&[&bin, "decode", "peer", &hex]);
    assert!(
        out.status.success(),
        "Docker's Unmarshal refused {hex}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("overlayref JSON");
    let f = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    [f("endpoint_ip"), f("endpoint_mac"), f("tunnel_endpoint_ip")]
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn b64(b: &[u8]) -> String {
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unb64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for ch in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == ch).expect("base64") as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A Docker NetworkDB node (`networkdb-test`) in its own host namespace,
/// driven through its diagnostic API on 127.0.0.1:8000 there.
struct DockerNode {
    ns: String,
}

impl DockerNode {
    fn start(c: &mut Cluster, i: u8) -> DockerNode {
        let bin = std::env::var("NDB_BIN").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/ndb/networkdb-test"
            )
            .to_string()
        });
        assert!(
            std::path::Path::new(&bin).is_file(),
            "Docker's networkdb-test not found at {bin}: run scripts/build-networkdb-test.sh as root"
        );
        let h = c.add_host(i);
        let child = c.spawn_in(
            "docker",
            &h.ns,
            &[("TASK_ID", "dock")],
            &[&bin, "server", "8000"],
        );
        c.adopt("docker", child);
        let d = DockerNode { ns: h.ns };
        wait_for("networkdb-test /ready", secs(20), || {
            let body = d.get("/ready")?;
            body.starts_with("OK").then_some(()).ok_or(body)
        });
        d
    }

    fn get(&self, path: &str) -> Result<String, String> {
        let url = format!("http://127.0.0.1:8000{path}");
        let out = cmd(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "curl {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn ok(&self, path: &str) {
        let body = self.get(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(body.starts_with("OK"), "{path}: {body}");
    }

    fn json(&self, path: &str) -> Result<Value, String> {
        let body = self.get(&format!("{path}&json"))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if v["message"] == "OK" {
            Ok(v)
        } else {
            Err(body)
        }
    }

    fn write_peer(&self, op: &str, nid: &str, key: &str, record: &[u8]) {
        let value = b64(record)
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        self.ok(&format!(
            "/{op}?nid={nid}&tname=overlay_peer_table&key={key}&value={value}"
        ));
    }
}

/// A PeerRecord written by a real Docker NetworkDB node into the overlay's
/// network is programmed on the swimnet hosts (added, updated in place,
/// removed), and the PeerRecords swimnet writes are what Docker's table
/// shows, in Docker's encoding.
#[test]
fn docker_networkdb_peer_records_program_swimnet_hosts() {
    let mut c = Cluster::new("t3", 2);
    let vni = 0x1003;
    c.create_overlay(1, "green", "10.63.0.0/24", vni);
    assert_eq!(c.overlay_id(2, "green"), c.overlay_id(1, "green"));
    let mut eps = Vec::new();
    for i in [1, 2] {
        let ns = c.endpoint_ns(i, 1);
        let v = c
            .attach(i, "green", &ns, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        eps.push(check_attached(&c, i, &ns, &v));
    }
    let nid = c.overlay_id(1, "green");
    let d = DockerNode::start(&mut c, 9);
    d.ok(&format!("/join?members={}", underlay_ip(1)));
    d.ok(&format!("/joinnetwork?nid={nid}"));

    // Docker sees swimnet's records, in its own encoding.
    let tbl = wait_for(
        "Docker's overlay_peer_table",
        Duration::from_secs(75),
        || {
            let v = d.json(&format!("/gettable?nid={nid}&tname=overlay_peer_table"))?;
            let entries = v["details"]["entries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (entries.len() == 2).then_some(entries).ok_or(v.to_string())
        },
    );
    let mut seen: Vec<[String; 3]> = tbl
        .iter()
        .map(|e| docker_decode_peer(&unb64(e["value"].as_str().unwrap_or_default())))
        .collect();
    seen.sort();
    let mut want: Vec<[String; 3]> = eps
        .iter()
        .map(|e| {
            [
                format!("{}/24", e.ip),
                e.mac.clone(),
                underlay_ip(e.host).to_string(),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(seen, want, "swimnet's PeerRecords as Docker reads them");

    // Docker writes a PeerRecord; both swimnet hosts program it.
    let key = "d0".repeat(32);
    let (ip, mac) = ("10.63.0.200", "02:42:0a:3f:00:c8");
    let docker_ep = |vtep: u8| Ep {
        host: vtep,
        ns: String::new(),
        name: "docker".into(),
        ip: ip.parse().unwrap(),
        mac: mac.into(),
    };
    d.write_peer(
        "createentry",
        &nid,
        &key,
        &docker_peer_record(&format!("{ip}/24"), mac, "10.203.0.9"),
    );
    let mut all = eps.clone();
    all.push(docker_ep(9));
    wait_all_programmed(&c, &[1, 2], vni, &all, Duration::from_secs(75));
    // Updated in place: the endpoint moved to another VTEP.
    d.write_peer(
        "updateentry",
        &nid,
        &key,
        &docker_peer_record(&format!("{ip}/24"), mac, "10.203.0.19"),
    );
    all.pop();
    all.push(docker_ep(19));
    wait_all_programmed(&c, &[1, 2], vni, &all, Duration::from_secs(75));
    // Deleted: gone from both hosts.
    d.ok(&format!(
        "/deleteentry?nid={nid}&tname=overlay_peer_table&key={key}"
    ));
    wait_all_programmed(&c, &[1, 2], vni, &eps, Duration::from_secs(75));
}

/// The PeerRecord the test's Docker node writes is one Docker's own code
/// reads back field for field.
#[test]
fn docker_reads_the_test_peer_record() {
    let b = docker_peer_record("10.0.1.5/24", "02:42:0a:00:01:05", "10.203.0.1");
    assert_eq!(&b[..2], &[0x0a, 11]);
    let f = docker_decode_peer(&b);
    assert_eq!(
        f,
        [
            "10.0.1.5/24".to_string(),
            "02:42:0a:00:01:05".into(),
            "10.203.0.1".into()
        ]
    );
    assert_eq!(unb64(&b64(&b)), b);
    assert_eq!(b64(b"ab"), "YWI=");
}
