//! Restart without loss: what a node hands out to be kept across a restart
//! ([`RestartState`]), how a restarted node takes it back, and how it
//! treats what its peers still hold of its previous run.
//!
//! A restarted node's Lamport clocks start at zero while its peers still
//! hold its old attachments and entries (hidden while it was failed), or
//! none of them (a graceful leave deletes them cluster-wide). The node:
//!
//! 1. moves its clocks past the kept ones (and past every kept entry's
//!    time), so its node and network events are newer than its old ones;
//! 2. attaches its kept networks and stores its kept entries with their
//!    kept times, without gossiping them;
//! 3. after its next cluster join, bulk syncs those networks with every
//!    peer (which teaches it the newest times its peers hold);
//! 4. once a network is in sync, re-announces its own live entries there
//!    with new Lamport times, so they win over anything its old run left.
//!
//! With [`super::NdbConfig::adopt_own_entries`], an event about one of this
//! node's own entries that is newer than what it stores (written by its
//! previous run after the state was kept) is taken as its own, so a crash
//! right after a write loses nothing its peers saw.

use super::*;

/// One entry this node owns, as kept across a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnEntry {
    /// Network.
    pub network_id: String,
    /// Table.
    pub table: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: Vec<u8>,
    /// The Lamport time of the stored version.
    pub ltime: u64,
}

/// What a NetworkDB node keeps across a restart: taken with
/// [`crate::NetworkDb::restart_state`], given back to a fresh node with
/// [`crate::NetworkDb::restore`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartState {
    /// The table Lamport clock.
    pub table_clock: u64,
    /// The network Lamport clock.
    pub network_clock: u64,
    /// The networks this node is attached to.
    pub networks: Vec<String>,
    /// This node's live entries in those networks, by (network, table, key).
    pub entries: Vec<OwnEntry>,
}

/// What [`crate::NetworkDb::restore`] took back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Networks attached.
    pub networks: usize,
    /// Entries stored.
    pub entries: usize,
    /// Entries refused (network not kept, over a limit), with the reason.
    pub refused: Vec<(OwnEntry, NdbError)>,
}

impl TableState {
    /// This node's attached networks and live own entries in them (at most
    /// `max_entries`, in (network, table, key) order; the rest are left
    /// out), with the clocks.
    pub fn restart_state(&self, max_entries: usize) -> RestartState {
        let networks = self.networks();
        let mut entries = Vec::new();
        for nid in &networks {
            for k in self.entries.keys_of(&self.name, Some(nid)) {
                if entries.len() >= max_entries {
                    break;
                }
                let Some(e) = self.entries.get(&k).filter(|e| !e.deleting) else {
                    continue;
                };
                entries.push(OwnEntry {
                    network_id: k.0.clone(),
                    table: k.1.clone(),
                    key: k.2.to_string(),
                    value: e.value.clone(),
                    ltime: e.ltime,
                });
            }
        }
        RestartState {
            table_clock: self.table_clock,
            network_clock: self.network_clock,
            networks,
            entries,
        }
    }

    /// Steps 1 and 2 of a restart (see the module doc): the clocks, the
    /// networks, the entries (checked against the same limits as a create).
    pub(crate) fn restore_kept(&mut self, now: Instant, kept: RestartState) -> RestoreReport {
        let newest_entry = kept.entries.iter().map(|e| e.ltime).max().unwrap_or(0);
        // Refused only over CLOCK_CEILING; the clock then stays where it is.
        let _ = guard::catch_up(&mut self.table_clock, kept.table_clock.max(newest_entry));
        let _ = guard::catch_up(&mut self.network_clock, kept.network_clock);
        let mut report = RestoreReport::default();
        for nid in &kept.networks {
            if self.join_network(now, nid).is_ok() {
                report.networks += 1;
            }
        }
        for e in kept.entries {
            match self.restore_entry(&e) {
                Ok(()) => report.entries += 1,
                Err(err) => report.refused.push((e, err)),
            }
        }
        report
    }

    fn restore_entry(&mut self, e: &OwnEntry) -> Result<(), NdbError> {
        self.check_attached(&e.network_id)?;
        self.check_kv(&e.key, &e.value)?;
        let k = (
            e.network_id.clone(),
            e.table.clone(),
            Arc::from(e.key.as_str()),
        );
        self.check_room(&k)?;
        self.entries.insert(
            k,
            Entry {
                owner: self.name.clone(),
                ltime: e.ltime,
                value: e.value.clone(),
                deleting: false,
                reap_at: None,
            },
        );
        Ok(())
    }

    /// Step 3: starts a bulk sync of `nid` with every known peer of it; the
    /// network is out of sync until they answer or time out (in sync at
    /// once when it has no peer).
    pub(crate) fn resync_network(&mut self, now: Instant, nid: &str) {
        let peers = self.peer_addrs(nid);
        let Some(net) = self.local.get_mut(nid).filter(|n| !n.leaving) else {
            return;
        };
        net.in_sync = peers.is_empty();
        for (peer, addr) in peers {
            self.start_bulk_sync(now, &peer, addr, vec![nid.to_string()], Some(nid));
        }
    }

    /// Step 4: writes every own live entry of `nid` again with a new
    /// Lamport time (gossiped like a create). Returns how many were
    /// re-announced.
    pub(crate) fn reannounce_own(&mut self, now: Instant, nid: &str) -> usize {
        let mut done = 0;
        for k in self.entries.keys_of(&self.name, Some(nid)) {
            let Some(value) = self
                .entries
                .get(&k)
                .filter(|e| !e.deleting)
                .map(|e| e.value.clone())
            else {
                continue;
            };
            if self
                .local_write(now, k, TableEventType::Create, value)
                .is_ok()
            {
                done += 1;
            }
        }
        done
    }

    /// An event about one of this node's own entries came back from a
    /// peer: ignored, as Docker does, unless
    /// [`super::NdbConfig::adopt_own_entries`] is on (see
    /// [`Self::adopt_own_event`]). Never relayed: returns `false`.
    pub(super) fn on_own_event(&mut self, now: Instant, ev: &TableEvent) -> bool {
        if self.cfg.adopt_own_entries {
            self.adopt_own_event(now, ev);
        }
        false
    }

    /// An own entry's event from a peer, with adoption on: witnessed, and
    /// stored when newer than this node's version (a deletion only over a
    /// stored version).
    fn adopt_own_event(&mut self, now: Instant, ev: &TableEvent) {
        if !witness(&mut self.table_clock, ev.l_time) {
            self.stats.clock_far_future += 1;
            return;
        }
        if self.check_attached(&ev.network_id).is_err() {
            return;
        }
        let deleting = TableEventType::try_from(ev.r#type) == Ok(TableEventType::Delete);
        let k = (
            ev.network_id.clone(),
            ev.table_name.clone(),
            Arc::from(ev.key.as_str()),
        );
        let existing = self.entries.get(&k);
        let newer = match existing {
            Some(e) => {
                let new = (
                    ev.l_time,
                    ev.node_name.as_str(),
                    deleting,
                    ev.value.as_slice(),
                );
                new > (e.ltime, e.owner.as_str(), e.deleting, e.value.as_slice())
            }
            None => !deleting,
        };
        if !newer {
            return;
        }
        let was_live = existing.is_some_and(|e| !e.deleting);
        let new_record = existing.is_none();
        if !self.remote_event_within_limits(ev, new_record) {
            return;
        }
        if !deleting && !was_live && self.live_count(&k.0, &k.1) >= self.cfg.max_entries_per_table {
            self.stats.table_full_drops += 1;
            return;
        }
        self.entries.insert(
            k,
            Entry {
                owner: self.name.clone(),
                ltime: ev.l_time,
                value: ev.value.clone(),
                deleting,
                reap_at: deleting.then(|| now + self.cfg.reap_entry_interval),
            },
        );
        self.stats.own_entries_adopted += 1;
    }
}
