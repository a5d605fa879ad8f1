//! The table entries and their indexes.
//!
//! Entries are ordered by (network, table, key). Next to the map, kept right
//! by every change made through the methods here:
//!
//! - a running count of live entries (not tombstones) per (network, table),
//!   so the per-table limit is checked in O(log n);
//! - the keys each owner holds, so a node joining, failing, leaving or
//!   leaving a network touches its own entries only, not a scan of all;
//! - the number of stored records per table of each network, so the tables
//!   of a network are counted without a scan.
//!
//! Reads go through `Deref` to the map.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use super::{Entry, EntryKey};

/// The keys one owner holds, by (network, table).
type OwnerKeys = BTreeMap<(String, String), BTreeSet<Arc<str>>>;

#[derive(Debug, Default)]
pub(super) struct Entries {
    map: BTreeMap<EntryKey, Entry>,
    pub(super) live: BTreeMap<(String, String), usize>,
    /// Per owner, per (network, table), the keys it holds: the network and
    /// table names are stored once per owner, and each key is the map's own
    /// `Arc<str>`, so the index costs a pointer per entry, not a string.
    by_owner: BTreeMap<String, OwnerKeys>,
    /// Stored records (tombstones included) per table, per network.
    tables: BTreeMap<String, BTreeMap<String, usize>>,
}

impl std::ops::Deref for Entries {
    type Target = BTreeMap<EntryKey, Entry>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Entries {
    fn count(&mut self, k: &EntryKey, delta: isize) {
        let t = (k.0.clone(), k.1.clone());
        let c = self.live.entry(t.clone()).or_insert(0);
        *c = c.saturating_add_signed(delta);
        if *c == 0 {
            self.live.remove(&t);
        }
    }

    /// Live entries of one table.
    pub(super) fn live_count(&self, nid: &str, table: &str) -> usize {
        // The BTreeMap key is an owned pair; a lookup by borrowed parts would
        // need a custom Borrow impl, so build the key.
        self.live
            .get(&(nid.to_string(), table.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Tables of network `nid` holding at least one record.
    pub(super) fn table_count(&self, nid: &str) -> usize {
        self.tables.get(nid).map_or(0, BTreeMap::len)
    }

    /// Whether table `table` of network `nid` holds at least one record.
    pub(super) fn has_table(&self, nid: &str, table: &str) -> bool {
        self.tables.get(nid).is_some_and(|t| t.contains_key(table))
    }

    fn unindex(&mut self, k: &EntryKey, old: &Entry) {
        if !old.deleting {
            self.count(k, -1);
        }
        if let Some(tables) = self.by_owner.get_mut(&old.owner) {
            let t = (k.0.clone(), k.1.clone());
            if let Some(keys) = tables.get_mut(&t) {
                keys.remove(&k.2);
                if keys.is_empty() {
                    tables.remove(&t);
                }
            }
            if tables.is_empty() {
                self.by_owner.remove(&old.owner);
            }
        }
        if let Some(t) = self.tables.get_mut(&k.0) {
            if let Some(c) = t.get_mut(&k.1) {
                *c -= 1;
                if *c == 0 {
                    t.remove(&k.1);
                }
            }
            if t.is_empty() {
                self.tables.remove(&k.0);
            }
        }
    }

    fn index(&mut self, k: &EntryKey, e: &Entry) {
        if !e.deleting {
            self.count(k, 1);
        }
        self.by_owner
            .entry(e.owner.clone())
            .or_default()
            .entry((k.0.clone(), k.1.clone()))
            .or_default()
            .insert(k.2.clone());
        *self
            .tables
            .entry(k.0.clone())
            .or_default()
            .entry(k.1.clone())
            .or_insert(0) += 1;
    }

    /// Stores `e` under `k`, replacing what was there.
    pub(super) fn insert(&mut self, k: EntryKey, e: Entry) {
        if let Some(old) = self.map.remove(&k) {
            self.unindex(&k, &old);
        }
        self.index(&k, &e);
        self.map.insert(k, e);
    }

    /// Drops the entry under `k`, if any.
    pub(super) fn remove(&mut self, k: &EntryKey) {
        if let Some(old) = self.map.remove(k) {
            self.unindex(k, &old);
        }
    }

    /// Keeps only the entries `keep` accepts (a scan of every entry: for
    /// the periodic reaper).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&EntryKey, &Entry) -> bool) {
        let dropped: Vec<EntryKey> = self
            .map
            .iter()
            .filter(|(k, e)| !keep(k, e))
            .map(|(k, _)| k.clone())
            .collect();
        for k in dropped {
            self.remove(&k);
        }
    }

    /// The keys `owner` holds, in network `nid` only if given.
    pub(super) fn keys_of(&self, owner: &str, nid: Option<&str>) -> Vec<EntryKey> {
        let Some(tables) = self.by_owner.get(owner) else {
            return Vec::new();
        };
        tables
            .iter()
            .filter(|((n, _), _)| nid.is_none_or(|want| n == want))
            .flat_map(|((n, t), keys)| keys.iter().map(|k| (n.clone(), t.clone(), k.clone())))
            .collect()
    }

    /// Drops every entry of `owner` (in network `nid` only if given).
    pub(super) fn remove_owner(&mut self, owner: &str, nid: Option<&str>) {
        for k in self.keys_of(owner, nid) {
            self.remove(&k);
        }
    }

    /// Sets the reap time of `owner`'s live entries (the deleting flag does
    /// not change, so the counts stay right).
    pub(super) fn set_live_reap_of(&mut self, owner: &str, at: Option<Instant>) {
        for k in self.keys_of(owner, None) {
            if let Some(e) = self.map.get_mut(&k) {
                if !e.deleting {
                    e.reap_at = at;
                }
            }
        }
    }

    /// Recomputes every index from the map and compares (tests only).
    #[cfg(test)]
    pub(super) fn indexes_agree(&self) -> bool {
        let mut fresh = Entries::default();
        for (k, e) in &self.map {
            fresh.index(k, e);
        }
        fresh.live == self.live && fresh.by_owner == self.by_owner && fresh.tables == self.tables
    }
}
