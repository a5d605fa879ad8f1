//! The overlay's control logic over simulated NetworkDB tables: address
//! claims made concurrently on several hosts converge to one endpoint per
//! address, and each host's desired VXLAN entries follow the visible peer
//! records through a host failure and its return.

mod ndb_cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use ndb_cluster::{name, Cluster};
use swimnet_networkdb::{NdbConfig, PeerState};
use swimnet_overlay::ipam::{self, Claim, IPAM_TABLE};
use swimnet_overlay::reconcile::{self, Actual, Desired};
use swimnet_overlay::records::{PeerRecord, PEER_TABLE};
use swimnet_overlay::{defs, Mac, PeerEntry};

/// Endpoints each host attaches in the address test.
const ENDPOINTS_PER_HOST: usize = 20;

/// Rounds of re-addressing after which the claims must be settled.
const MAX_ROUNDS: usize = 6;

/// The overlay network's NetworkDB network ID.
fn overlay_id() -> String {
    defs::network_id("blue", subnet(), 4096, 1, &name(0))
}

fn subnet() -> ipnet::Ipv4Net {
    "10.50.0.0/24".parse().unwrap()
}

/// The 64-hex ID of endpoint `k` of host `host`.
fn endpoint_id(host: usize, k: usize) -> String {
    format!("{:064x}", host * 1000 + k + 1)
}

/// A formed cluster of `n` nodes, all attached to the overlay's network.
fn formed(n: usize, seed: u64) -> Cluster {
    let mut c = Cluster::new(n, seed, NdbConfig::default());
    c.run_for(Duration::from_secs(3));
    c.attach_all(&overlay_id());
    c
}

/// Every claim node `i` sees, with its key, sorted by key.
fn visible_claims(c: &Cluster, i: usize) -> Vec<(String, Claim)> {
    c.table(i, &overlay_id(), IPAM_TABLE)
        .into_iter()
        .map(|e| (e.key, ipam::decode(&e.value).expect("valid claim")))
        .collect()
}

/// Node `i` claims an address for each of `endpoints` at virtual time
/// `at_ms`, choosing against what it sees plus its own earlier choices.
fn claim_addresses(c: &mut Cluster, i: usize, endpoints: &[String], at_ms: u64) {
    let mut taken: BTreeSet<Ipv4Addr> = visible_claims(c, i).iter().map(|(_, cl)| cl.ip).collect();
    let nid = overlay_id();
    for ep in endpoints {
        let ip = ipam::choose(subnet(), &name(i), &taken).expect("room in the subnet");
        taken.insert(ip);
        let claim = Claim {
            ip,
            endpoint: ep.clone(),
            host: name(i),
            requested: false,
            at_ms,
        };
        let key = ipam::claim_key(ip, ep);
        c.on(i, |db, now| {
            db.create_entry(now, &nid, IPAM_TABLE, &key, &ipam::encode(&claim))
        })
        .expect("claim written");
    }
}

/// Runs until every node sees the same claims; returns node 0's losers and
/// checks every node computes the same.
fn converged_losers(c: &mut Cluster, n: usize) -> Vec<(Claim, Claim)> {
    c.run_for(Duration::from_secs(3));
    let first = visible_claims(c, 0);
    for i in 1..n {
        assert_eq!(visible_claims(c, i), first, "node {i} sees other claims");
    }
    let claims: Vec<Claim> = first.into_iter().map(|(_, cl)| cl).collect();
    let lost = ipam::losers(&claims);
    for i in 1..n {
        let theirs: Vec<Claim> = visible_claims(c, i).into_iter().map(|(_, cl)| cl).collect();
        assert_eq!(
            ipam::losers(&theirs),
            lost,
            "node {i} computes other losers"
        );
    }
    lost
}

#[test]
fn concurrent_address_claims_converge_to_one_endpoint_per_address() {
    let n = 5;
    let mut c = formed(n, 41);
    let nid = overlay_id();
    // Every host attaches its endpoints at the same virtual instant.
    for i in 0..n {
        let eps: Vec<String> = (0..ENDPOINTS_PER_HOST).map(|k| endpoint_id(i, k)).collect();
        claim_addresses(&mut c, i, &eps, 1_000);
    }
    let mut lost = converged_losers(&mut c, n);
    let first_round_losers = lost.len();
    // The hosts' searches overlap in a /24 this full: the test exercises
    // re-addressing, not only lucky first choices.
    assert!(first_round_losers > 0, "no conflict to settle");
    let mut rounds = 0;
    while !lost.is_empty() {
        rounds += 1;
        assert!(
            rounds <= MAX_ROUNDS,
            "{} claims still conflict after {MAX_ROUNDS} rounds",
            lost.len()
        );
        // Each loser's host withdraws the claim and chooses again.
        for i in 0..n {
            let mine: Vec<&Claim> = lost
                .iter()
                .map(|(l, _)| l)
                .filter(|l| l.host == name(i))
                .collect();
            for l in &mine {
                let key = ipam::claim_key(l.ip, &l.endpoint);
                c.on(i, |db, now| db.delete_entry(now, &nid, IPAM_TABLE, &key))
                    .expect("claim withdrawn");
            }
            let eps: Vec<String> = mine.iter().map(|l| l.endpoint.clone()).collect();
            claim_addresses(&mut c, i, &eps, 1_000 + rounds as u64);
        }
        lost = converged_losers(&mut c, n);
    }
    let claims = visible_claims(&c, 0);
    assert_eq!(
        claims.len(),
        n * ENDPOINTS_PER_HOST,
        "one claim per endpoint"
    );
    let ips: BTreeSet<Ipv4Addr> = claims.iter().map(|(_, cl)| cl.ip).collect();
    assert_eq!(ips.len(), claims.len(), "no two endpoints share an address");
    assert!(ips.iter().all(|ip| ipam::usable(subnet(), *ip)));
    let endpoints: BTreeSet<&str> = claims.iter().map(|(_, cl)| cl.endpoint.as_str()).collect();
    assert_eq!(endpoints.len(), claims.len(), "one address per endpoint");
    eprintln!("{first_round_losers} conflicts in the first round, settled after {rounds} round(s)");
}

/// The VTEP of host `i`.
fn vtep(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 7, i as u8 + 1)
}

/// The peer entry of endpoint `k` of host `i`.
fn peer_entry(i: usize, k: usize) -> PeerEntry {
    let ip = Ipv4Addr::new(10, 50, 0, (i * 10 + k + 2) as u8);
    PeerEntry {
        ip,
        mac: Mac::from_ip(ip),
        vtep: vtep(i),
    }
}

/// What node `i` should program, from the peer records it sees.
fn desired_on(c: &Cluster, i: usize) -> Desired {
    let entries: Vec<PeerEntry> = c
        .table(i, &overlay_id(), PEER_TABLE)
        .iter()
        .map(|e| {
            PeerRecord::decode(&e.value)
                .and_then(|r| r.entry())
                .expect("valid peer record")
        })
        .collect();
    reconcile::desired(&entries, vtep(i))
}

/// What node `i` should program when the endpoints of `hosts` are visible.
fn expected_on(i: usize, hosts: &[usize], per_host: usize) -> Desired {
    let entries: Vec<PeerEntry> = hosts
        .iter()
        .flat_map(|&h| (0..per_host).map(move |k| peer_entry(h, k)))
        .collect();
    reconcile::desired(&entries, vtep(i))
}

fn held(d: &Desired) -> Actual {
    Actual {
        neighbours: d.neighbours.keys().copied().collect(),
        fdb: d.fdb.keys().copied().collect(),
    }
}

#[test]
fn desired_entries_follow_peer_records_through_a_host_failure() {
    let n = 4;
    let per_host = 3;
    let mut c = formed(n, 42);
    let nid = overlay_id();
    for i in 0..n {
        for k in 0..per_host {
            let p = peer_entry(i, k);
            let value = PeerRecord::new(p.ip, 24, p.mac, p.vtep).encode();
            let key = endpoint_id(i, k);
            c.on(i, |db, now| {
                db.create_entry(now, &nid, PEER_TABLE, &key, &value)
            })
            .expect("record written");
        }
    }
    c.run_for(Duration::from_secs(3));
    let all: Vec<usize> = (0..n).collect();
    let mut kernels: BTreeMap<usize, Actual> = BTreeMap::new();
    for i in 0..n {
        let d = desired_on(&c, i);
        assert_eq!(d, expected_on(i, &all, per_host), "node {i}");
        assert_eq!(
            d.neighbours.len(),
            (n - 1) * per_host,
            "own endpoints skipped"
        );
        kernels.insert(i, held(&d));
    }

    // Node 3 is cut off until the others declare it dead: they drop its entries.
    c.isolate(&[3]);
    c.run_for(Duration::from_secs(20));
    let survivors = [0, 1, 2];
    for i in survivors {
        assert_eq!(c.node(i).peer_state(&name(3)), Some(PeerState::Failed));
        let d = desired_on(&c, i);
        assert_eq!(d, expected_on(i, &survivors, per_host), "node {i}");
        let plan = reconcile::plan(&d, &kernels[&i]);
        let gone: Vec<PeerEntry> = (0..per_host).map(|k| peer_entry(3, k)).collect();
        assert_eq!(
            plan.remove_neighbours,
            gone.iter().map(|p| (p.ip, p.mac)).collect::<Vec<_>>()
        );
        assert_eq!(
            plan.remove_fdb,
            gone.iter().map(|p| (p.mac, p.vtep)).collect::<Vec<_>>()
        );
        assert!(plan.add_neighbours.is_empty() && plan.add_fdb.is_empty());
    }

    // It comes back: its entries return everywhere.
    c.heal();
    let a0 = ndb_cluster::addr(0);
    c.on(3, |db, now| db.join(now, &[a0])).unwrap();
    c.run_for(Duration::from_secs(5));
    for i in 0..n {
        let d = desired_on(&c, i);
        assert_eq!(
            d,
            expected_on(i, &all, per_host),
            "node {i} after the return"
        );
        assert!(reconcile::plan(&d, &kernels[&i]).is_empty());
    }
}
