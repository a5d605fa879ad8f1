//! Unit tests of the table state's internals.

use super::*;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use swimnet_core::NodeState;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 7946)
}

fn node(name: &str, i: u8) -> Node {
    Node {
        name: Arc::from(name),
        addr: addr(i),
        meta: Vec::new(),
        vsn: [1, 5, 2, 0, 0, 0],
        incarnation: 1,
        state: NodeState::Alive,
    }
}

fn recount(d: &TableState) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for (k, e) in d.entries.iter() {
        if !e.deleting {
            *m.entry((k.0.clone(), k.1.clone())).or_insert(0) += 1;
        }
    }
    m
}

/// The running live counts always equal a recount, whatever mix of
/// local writes, remote events, failures, leaves and reaps happens.
#[test]
fn live_counts_follow_every_change() {
    let mut now = Instant::now();
    let cfg = NdbConfig {
        reap_entry_interval: Duration::from_secs(60),
        ..NdbConfig::default()
    };
    let mut d = TableState::new("me".into(), addr(1), cfg, 4, 7);
    let peers = ["b", "c", "d"];
    for (i, p) in peers.iter().enumerate() {
        d.on_member_join(now, &node(p, i as u8 + 2));
    }
    let mut x = 12345u64;
    let mut r = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for ltime in 2..4002u64 {
        now += Duration::from_millis(r() % 500);
        let nid = ["n1", "n2"][(r() % 2) as usize];
        let table = ["t1", "t2"][(r() % 2) as usize];
        let key = format!("k{}", r() % 40);
        let owner = peers[(r() % 3) as usize];
        match r() % 12 {
            0 => {
                let _ = d.join_network(now, nid);
            }
            1 => {
                let _ = d.leave_network(now, nid);
            }
            2 | 3 => {
                let _ = d.create_entry(now, nid, table, &key, b"v");
            }
            4 => {
                let _ = d.delete_entry(now, nid, table, &key);
            }
            5..=7 => {
                let kind = [
                    TableEventType::Create,
                    TableEventType::Update,
                    TableEventType::Delete,
                ][(r() % 3) as usize];
                let ev = TableEvent {
                    r#type: kind as i32,
                    l_time: ltime,
                    node_name: owner.into(),
                    network_id: nid.into(),
                    table_name: table.into(),
                    key: key.clone(),
                    value: b"w".to_vec(),
                    residual_reap_time: if kind == TableEventType::Delete {
                        30
                    } else {
                        0
                    },
                };
                d.notify_msg(now, addr(9), &ev.encode_gossip());
            }
            8 => {
                let kind = if r() % 4 == 0 {
                    NetworkEventType::Leave
                } else {
                    NetworkEventType::Join
                };
                let ev = NetworkEvent {
                    r#type: kind as i32,
                    l_time: ltime,
                    node_name: owner.into(),
                    network_id: nid.into(),
                };
                d.notify_msg(now, addr(9), &ev.encode_gossip());
            }
            9 => {
                let i = (r() % 3) as usize;
                d.on_member_leave(now, &node(peers[i], i as u8 + 2));
            }
            10 => {
                let i = (r() % 3) as usize;
                d.on_member_join(now, &node(peers[i], i as u8 + 2));
            }
            _ => d.reap(now),
        }
        assert_eq!(d.entries.live, recount(&d));
        assert!(d.entries.indexes_agree());
        for nid in ["n1", "n2"] {
            let want: Vec<(String, usize)> = recount(&d)
                .into_iter()
                .filter(|((n, _), _)| n == nid)
                .map(|((_, t), c)| (t, c))
                .collect();
            assert_eq!(d.table_counts(nid), want, "{nid}");
        }
    }
    assert!(d.entries.len() > 10, "the mix left entries behind");
}

/// A node attached to network `n1` with 40 peers, p0..p9 near (1 ms)
/// and p10..p39 far (80 ms).
fn attached_with_peers(now: Instant) -> (TableState, TopologyView) {
    let mut d = TableState::new("me".into(), addr(1), NdbConfig::default(), 4, 11);
    let mut view = TopologyView {
        config: swimnet_core::topology::TopologyConfig::on(),
        settled: true,
        distances: Default::default(),
    };
    for i in 0..40u8 {
        let name = format!("p{i}");
        d.on_member_join(now, &node(&name, i + 2));
        let ev = NetworkEvent {
            r#type: NetworkEventType::Join as i32,
            l_time: u64::from(i) + 1,
            node_name: name.clone(),
            network_id: "n1".into(),
        };
        d.notify_msg(now, addr(i + 2), &ev.encode_gossip());
        view.distances
            .insert(name, if i < 10 { 0.001 } else { 0.080 });
    }
    d.join_network(now, "n1").unwrap();
    d.take_outbox();
    (d, view)
}

fn is_near(a: SocketAddr) -> bool {
    // p0..p9 are at 10.0.0.2..=10.0.0.11.
    matches!(a.ip(), IpAddr::V4(v) if (2..12).contains(&v.octets()[3]))
}

/// Table gossip with a topology view goes mostly to near peers (2 of
/// 3 targets from the near cluster, the third uniform) and still
/// reaches every far peer; without a view it is uniform (10 near of
/// 40: 25%). A node's own new events go uniformly on their first round
/// either way, so they enter far regions at once.
#[test]
fn table_gossip_targets_follow_the_topology_view() {
    let now = Instant::now();
    for (biased, lo, hi) in [(true, 0.65, 0.80), (false, 0.18, 0.32)] {
        let (mut d, view) = attached_with_peers(now);
        // (near, total) packets on an event's first round, and after.
        let (mut first, mut later) = ((0usize, 0usize), (0usize, 0usize));
        let mut far_seen = BTreeSet::new();
        for i in 0..400 {
            d.create_entry(now, "n1", "t", &format!("k{i}"), b"v")
                .unwrap();
            for round in 0..2 {
                d.gossip_tick(biased.then_some(&view));
                let tally = if round == 0 { &mut first } else { &mut later };
                for o in d.take_outbox() {
                    if let Outgoing::Packet(a, _) = o {
                        tally.1 += 1;
                        if is_near(a) {
                            tally.0 += 1;
                        } else {
                            far_seen.insert(a);
                        }
                    }
                }
            }
        }
        let share = |(near, total): (usize, usize)| near as f64 / total as f64;
        assert!(first.1 >= 1000 && later.1 >= 1000, "{first:?} {later:?}");
        assert!(
            (lo..hi).contains(&share(later)),
            "biased {biased}: near share {}",
            share(later)
        );
        assert!(
            (0.18..0.32).contains(&share(first)),
            "biased {biased}: near share of first rounds {}",
            share(first)
        );
        assert_eq!(far_seen.len(), 30, "every far peer reached");
        assert_eq!(d.stats.topology_choices > 0, biased);
    }
}

/// After an event's first round, each gossip round's two near picks
/// continue a walk through the near cluster (p0..p9): five rounds
/// reach all ten near peers. Independent random picks would leave some
/// out almost always (all ten in ten draws: 10!/10^10, about 4 in
/// 10,000).
#[test]
fn table_gossip_walks_the_near_cluster() {
    let now = Instant::now();
    let (mut d, view) = attached_with_peers(now);
    for walk in 0..20 {
        d.create_entry(now, "n1", "t", &format!("k{walk}"), b"v")
            .unwrap();
        d.gossip_tick(Some(&view));
        d.take_outbox();
        let mut near = BTreeSet::new();
        for _ in 0..5 {
            d.gossip_tick(Some(&view));
            for o in d.take_outbox() {
                if let Outgoing::Packet(a, _) = o {
                    if is_near(a) {
                        near.insert(a);
                    }
                }
            }
        }
        assert_eq!(near.len(), 10, "walk {walk}: near peers reached {near:?}");
    }
}

/// The bulk-sync partner follows the view too, one near pick in about
/// 2/3 + 1/3 * 10/40 of the rounds.
#[test]
fn bulk_sync_partner_follows_the_topology_view() {
    let mut now = Instant::now();
    for (biased, lo, hi) in [(true, 0.62, 0.88), (false, 0.12, 0.38)] {
        let (mut d, view) = attached_with_peers(now);
        let mut near = 0usize;
        let rounds = 200;
        for _ in 0..rounds {
            // Clears the syncs of the join (one per peer) and the last round's.
            now += Duration::from_secs(3600);
            d.expire_syncs(now);
            d.bulk_sync_tick(now, biased.then_some(&view));
            let out = d.take_outbox();
            assert_eq!(out.len(), 1, "one sync per round");
            if let Outgoing::Stream(a, _) = &out[0] {
                near += usize::from(is_near(*a));
            }
        }
        let share = near as f64 / rounds as f64;
        assert!(
            (lo..hi).contains(&share),
            "biased {biased}: near share {share}"
        );
    }
}
