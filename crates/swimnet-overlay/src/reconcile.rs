//! From the tables to the kernel, sans-IO: the neighbour and FDB entries an
//! overlay's VXLAN device should hold, computed from the visible
//! `overlay_peer_table` records (NetworkDB already hides the records of
//! failed owners and shows them again when they return), and the
//! difference from what the kernel holds. Entries are reference counted:
//! one stays while any record needs it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::model::{Mac, PeerEntry};

/// What one overlay's VXLAN device should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Neighbour entries `ip → mac`, with how many records want each.
    pub neighbours: BTreeMap<(Ipv4Addr, Mac), usize>,
    /// FDB entries `mac → vtep`, with how many records want each.
    pub fdb: BTreeMap<(Mac, Ipv4Addr), usize>,
}

/// What one overlay's VXLAN device holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actual {
    /// Permanent neighbour entries.
    pub neighbours: BTreeSet<(Ipv4Addr, Mac)>,
    /// Static FDB entries.
    pub fdb: BTreeSet<(Mac, Ipv4Addr)>,
}

/// The changes that turn [`Actual`] into [`Desired`]; removals first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Neighbour entries to remove.
    pub remove_neighbours: Vec<(Ipv4Addr, Mac)>,
    /// FDB entries to remove.
    pub remove_fdb: Vec<(Mac, Ipv4Addr)>,
    /// Neighbour entries to add.
    pub add_neighbours: Vec<(Ipv4Addr, Mac)>,
    /// FDB entries to add.
    pub add_fdb: Vec<(Mac, Ipv4Addr)>,
}

impl Plan {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.remove_neighbours.is_empty()
            && self.remove_fdb.is_empty()
            && self.add_neighbours.is_empty()
            && self.add_fdb.is_empty()
    }
}

/// The desired entries for the remote endpoints `peers` (entries whose VTEP
/// is `local_vtep` are this host's own and skipped). When two records
/// claim one IP with different MACs, or one MAC at two VTEPs, the lowest
/// wins so every host programs the same.
pub fn desired<'a>(
    peers: impl IntoIterator<Item = &'a PeerEntry>,
    local_vtep: Ipv4Addr,
) -> Desired {
    // Per IP: MAC → how many records want it; per MAC: VTEP → how many.
    let mut macs_of_ip: BTreeMap<Ipv4Addr, BTreeMap<Mac, usize>> = BTreeMap::new();
    let mut vteps_of_mac: BTreeMap<Mac, BTreeMap<Ipv4Addr, usize>> = BTreeMap::new();
    for p in peers.into_iter().filter(|p| p.vtep != local_vtep) {
        *macs_of_ip
            .entry(p.ip)
            .or_default()
            .entry(p.mac)
            .or_default() += 1;
        *vteps_of_mac
            .entry(p.mac)
            .or_default()
            .entry(p.vtep)
            .or_default() += 1;
    }
    Desired {
        neighbours: macs_of_ip
            .into_iter()
            .map(|(ip, macs)| {
                let (mac, n) = lowest(macs);
                ((ip, mac), n)
            })
            .collect(),
        fdb: vteps_of_mac
            .into_iter()
            .map(|(mac, vteps)| {
                let (vtep, n) = lowest(vteps);
                ((mac, vtep), n)
            })
            .collect(),
    }
}

/// The lowest key of a non-empty count map, with its count.
fn lowest<K: Ord>(counts: BTreeMap<K, usize>) -> (K, usize) {
    counts.into_iter().next().expect("groups are not empty")
}

/// The changes from `actual` to `desired`: every held entry not desired
/// is removed (so an IP whose MAC changed, or a MAC that moved to another
/// VTEP, is removed and added again), every desired entry not held is
/// added. Each entry appears at most once; the lists are sorted.
pub fn plan(desired: &Desired, actual: &Actual) -> Plan {
    Plan {
        remove_neighbours: actual
            .neighbours
            .iter()
            .filter(|e| !desired.neighbours.contains_key(e))
            .copied()
            .collect(),
        remove_fdb: actual
            .fdb
            .iter()
            .filter(|e| !desired.fdb.contains_key(e))
            .copied()
            .collect(),
        add_neighbours: desired
            .neighbours
            .keys()
            .filter(|e| !actual.neighbours.contains(e))
            .copied()
            .collect(),
        add_fdb: desired
            .fdb
            .keys()
            .filter(|e| !actual.fdb.contains(e))
            .copied()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);

    fn vtep(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 0, n)
    }

    fn peer(last: u8, vtep_n: u8) -> PeerEntry {
        let ip = Ipv4Addr::new(10, 0, 0, last);
        PeerEntry {
            ip,
            mac: Mac::from_ip(ip),
            vtep: vtep(vtep_n),
        }
    }

    /// What the kernel holds after applying `plan` to `actual`.
    fn apply(actual: &Actual, plan: &Plan) -> Actual {
        let mut out = actual.clone();
        for e in &plan.remove_neighbours {
            assert!(out.neighbours.remove(e), "removes only held entries");
        }
        for e in &plan.remove_fdb {
            assert!(out.fdb.remove(e), "removes only held entries");
        }
        for e in &plan.add_neighbours {
            assert!(out.neighbours.insert(*e), "adds only missing entries");
        }
        for e in &plan.add_fdb {
            assert!(out.fdb.insert(*e), "adds only missing entries");
        }
        out
    }

    fn held(d: &Desired) -> Actual {
        Actual {
            neighbours: d.neighbours.keys().copied().collect(),
            fdb: d.fdb.keys().copied().collect(),
        }
    }

    #[test]
    fn local_entries_are_skipped_and_remote_ones_wanted() {
        let peers = [peer(5, 2), peer(6, 1), peer(7, 3)];
        let d = desired(&peers, LOCAL);
        assert_eq!(d.neighbours.len(), 2);
        assert_eq!(d.fdb.len(), 2);
        let p = peer(5, 2);
        assert_eq!(d.neighbours[&(p.ip, p.mac)], 1);
        assert_eq!(d.fdb[&(p.mac, p.vtep)], 1);
        assert!(!d.neighbours.contains_key(&(peer(6, 1).ip, peer(6, 1).mac)));
        let pl = plan(&d, &Actual::default());
        assert_eq!(pl.add_neighbours.len(), 2);
        assert_eq!(pl.add_fdb.len(), 2);
        assert!(plan(&d, &held(&d)).is_empty());
    }

    #[test]
    fn an_entry_two_records_want_stays_when_one_goes() {
        let both = [peer(5, 2), peer(5, 2), peer(6, 2)];
        let d = desired(&both, LOCAL);
        let p = peer(5, 2);
        assert_eq!(d.neighbours[&(p.ip, p.mac)], 2);
        assert_eq!(d.fdb[&(p.mac, p.vtep)], 2);
        let kernel = held(&d);
        let one_left = desired(&both[1..], LOCAL);
        assert_eq!(one_left.fdb[&(p.mac, p.vtep)], 1);
        assert!(plan(&one_left, &kernel).is_empty(), "still wanted");
        let none_left = desired(&both[2..], LOCAL);
        let pl = plan(&none_left, &kernel);
        assert_eq!(pl.remove_neighbours, vec![(p.ip, p.mac)]);
        assert_eq!(pl.remove_fdb, vec![(p.mac, p.vtep)]);
        assert!(pl.add_neighbours.is_empty() && pl.add_fdb.is_empty());
    }

    #[test]
    fn a_changed_mac_or_vtep_is_replaced() {
        let old = peer(5, 2);
        let kernel = held(&desired(&[old], LOCAL));
        // The endpoint moved to another host.
        let moved = peer(5, 3);
        let pl = plan(&desired(&[moved], LOCAL), &kernel);
        assert!(pl.remove_neighbours.is_empty() && pl.add_neighbours.is_empty());
        assert_eq!(pl.remove_fdb, vec![(old.mac, old.vtep)]);
        assert_eq!(pl.add_fdb, vec![(moved.mac, moved.vtep)]);
        // The address went to another MAC.
        let mut remac = old;
        remac.mac = Mac([2, 0, 0, 0, 0, 9]);
        let pl = plan(&desired(&[remac], LOCAL), &kernel);
        assert_eq!(pl.remove_neighbours, vec![(old.ip, old.mac)]);
        assert_eq!(pl.add_neighbours, vec![(remac.ip, remac.mac)]);
        assert_eq!(pl.remove_fdb, vec![(old.mac, old.vtep)]);
        assert_eq!(pl.add_fdb, vec![(remac.mac, remac.vtep)]);
        let after = apply(&kernel, &pl);
        assert!(plan(&desired(&[remac], LOCAL), &after).is_empty());
    }

    #[test]
    fn conflicts_resolve_to_the_lowest_on_every_order() {
        let a = peer(5, 2);
        let mut b = a;
        b.mac = Mac([2, 0, 0, 0, 0, 1]);
        let mut c = a;
        c.vtep = vtep(9);
        let d1 = desired(&[a, b, c], LOCAL);
        let d2 = desired(&[c, b, a], LOCAL);
        assert_eq!(d1, d2);
        assert_eq!(d1.neighbours.len(), 1, "one neighbour per IP");
        assert_eq!(d1.neighbours[&(a.ip, b.mac)], 1, "the lowest MAC wins");
        assert_eq!(d1.fdb[&(a.mac, vtep(2))], 1, "the lowest VTEP wins");
        assert_eq!(d1.fdb[&(b.mac, vtep(2))], 1);
        assert_eq!(d1.fdb.len(), 2, "one VTEP per MAC");
    }

    #[test]
    fn drift_is_repaired_and_nothing_is_planned_twice() {
        let peers = [peer(5, 2), peer(6, 3), peer(7, 3), peer(6, 3)];
        let d = desired(&peers, LOCAL);
        let mut kernel = held(&d);
        // Someone removed an entry and added stale ones.
        kernel.neighbours.remove(&(peer(6, 3).ip, peer(6, 3).mac));
        kernel.fdb.remove(&(peer(7, 3).mac, vtep(3)));
        let stale = peer(99, 4);
        kernel.neighbours.insert((stale.ip, stale.mac));
        kernel.fdb.insert((stale.mac, stale.vtep));
        let pl = plan(&d, &kernel);
        assert_eq!(pl.add_neighbours, vec![(peer(6, 3).ip, peer(6, 3).mac)]);
        assert_eq!(pl.add_fdb, vec![(peer(7, 3).mac, vtep(3))]);
        assert_eq!(pl.remove_neighbours, vec![(stale.ip, stale.mac)]);
        assert_eq!(pl.remove_fdb, vec![(stale.mac, stale.vtep)]);
        let fixed = apply(&kernel, &pl);
        assert_eq!(fixed, held(&d));
        assert!(plan(&d, &fixed).is_empty());
    }

    fn arb_peer() -> impl proptest::strategy::Strategy<Value = PeerEntry> {
        use proptest::prelude::*;
        (1u8..6, 1u8..4, 0u8..3).prop_map(|(last, vtep_n, mac_n)| {
            let mut p = peer(last, vtep_n);
            p.mac.0[5] = p.mac.0[5].wrapping_add(mac_n);
            p
        })
    }

    proptest::proptest! {
        #[test]
        fn applying_the_plan_reaches_the_desired_state_from_anywhere(
            peers in proptest::collection::vec(arb_peer(), 0..12),
            held_peers in proptest::collection::vec(arb_peer(), 0..12),
        ) {
            let d = desired(&peers, LOCAL);
            let mut reversed = peers.clone();
            reversed.reverse();
            proptest::prop_assert_eq!(&desired(&reversed, LOCAL), &d);
            let ips: BTreeSet<Ipv4Addr> = d.neighbours.keys().map(|(ip, _)| *ip).collect();
            proptest::prop_assert_eq!(ips.len(), d.neighbours.len());
            let macs: BTreeSet<Mac> = d.fdb.keys().map(|(mac, _)| *mac).collect();
            proptest::prop_assert_eq!(macs.len(), d.fdb.len());
            let kernel = Actual {
                neighbours: held_peers.iter().map(|p| (p.ip, p.mac)).collect(),
                fdb: held_peers.iter().map(|p| (p.mac, p.vtep)).collect(),
            };
            let after = apply(&kernel, &plan(&d, &kernel));
            proptest::prop_assert_eq!(&after, &held(&d));
            proptest::prop_assert!(plan(&d, &after).is_empty());
        }
    }
}
