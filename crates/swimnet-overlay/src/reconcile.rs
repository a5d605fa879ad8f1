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
    let _ = (peers.into_iter(), local_vtep);
    todo!()
}

/// The changes from `actual` to `desired`.
pub fn plan(desired: &Desired, actual: &Actual) -> Plan {
    let _ = (desired, actual);
    todo!()
}
