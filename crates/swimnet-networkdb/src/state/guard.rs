//! Budgets on what remote nodes may make this node store or do: Lamport
//! times from the far future, table events over the local key/value limits,
//! attachments of nodes that are not members, the size of the attachment
//! table, of each network's tables and relay queue, and how often an
//! unsolicited bulk sync is answered.
//!
//! Every refusal here is a peer's input dropped and counted in
//! [`super::NdbStats`]; nothing here returns an error to a caller.

use std::time::Instant;

use super::{PeerState, TableState};
use crate::wire::{NetworkEvent, TableEvent};

/// How far ahead of this node's Lamport clock a remote time may be. An
/// event further ahead is dropped (counted in
/// [`super::NdbStats::clock_far_future`]) and does not move the clock: one
/// forged time of 2^64-1 would otherwise pin the clock, and from then on
/// this node's own writes would never be newer than what its peers store.
pub const CLOCK_WINDOW: u64 = 1 << 20;

/// Highest Lamport time accepted at all, even when catching up with a peer
/// (see [`catch_up`]): half the range, so a clock never gets near saturation.
pub const CLOCK_CEILING: u64 = u64::MAX / 2;

/// Whether remote time `v` is acceptable against local clock `clock`.
pub(super) fn plausible(clock: u64, v: u64) -> bool {
    v <= CLOCK_CEILING && v <= clock.saturating_add(CLOCK_WINDOW)
}

/// Lamport witness within [`CLOCK_WINDOW`]: moves `clock` past `v` and
/// returns `true`, or returns `false` and leaves `clock` alone for a time
/// from the far future.
pub(super) fn witness(clock: &mut u64, v: u64) -> bool {
    if !plausible(*clock, v) {
        return false;
    }
    if v >= *clock {
        *clock = v + 1;
    }
    true
}

/// Lamport witness without the window, up to [`CLOCK_CEILING`]: for the
/// times a node must adopt however far behind it is (the answer to a bulk
/// sync it asked a member for, the push/pull of a cluster join), so that a
/// fresh node catches up with a long-lived cluster.
pub(super) fn catch_up(clock: &mut u64, v: u64) -> bool {
    if v > CLOCK_CEILING {
        return false;
    }
    if v >= *clock {
        *clock = v + 1;
    }
    true
}

/// Bytes an envelope adds around `inner` bytes of a table event (type field,
/// data field tag and length).
fn envelope_len(inner: usize) -> usize {
    2 + 1 + prost::encoding::encoded_len_varint(inner as u64) + inner
}

impl TableState {
    /// Whether a remote table event obeys what a local write must: the key
    /// and value limits and one gossip packet for the whole event, the
    /// tables per network and the total of stored entries for a new record.
    /// Counts what it refuses.
    pub(super) fn remote_event_within_limits(&mut self, ev: &TableEvent, new_record: bool) -> bool {
        use prost::Message as _;
        let fits = self.check_kv(&ev.key, &ev.value).is_ok()
            && envelope_len(ev.encoded_len()) <= self.gossip_budget();
        if !fits {
            self.stats.table_events_over_limits += 1;
            return false;
        }
        if !new_record {
            return true;
        }
        if !self.entries.has_table(&ev.network_id, &ev.table_name)
            && self.entries.table_count(&ev.network_id) >= self.cfg.max_tables_per_network
        {
            self.stats.table_limit_drops += 1;
            return false;
        }
        if self.entries.len() >= self.cfg.max_entries {
            self.stats.entry_limit_drops += 1;
            return false;
        }
        true
    }

    /// Whether a network event's node may hold attachments: a member this
    /// node sees alive (or suspect). Events about other nodes are parked
    /// until the end of the current input (a member's alive and its
    /// attachments often arrive in one packet, and memberlist reports the
    /// member only once the packet is handled), then dropped by
    /// [`Self::drop_parked_attachments`].
    pub(super) fn attachment_owner_known(&mut self, ev: &NetworkEvent) -> bool {
        if matches!(
            self.nodes.get(&ev.node_name).map(|n| n.state),
            Some(PeerState::Active)
        ) {
            return true;
        }
        if self.parked_count >= self.cfg.max_attachments {
            self.stats.attachments_unknown_node += 1;
            return false;
        }
        self.parked
            .entry(ev.node_name.clone())
            .or_default()
            .push(ev.clone());
        self.parked_count += 1;
        false
    }

    /// Applies the network events parked for `name`, now a member; relays
    /// the ones that changed something.
    pub(super) fn release_parked_attachments(&mut self, now: Instant, name: &str) {
        let Some(events) = self.parked.remove(name) else {
            return;
        };
        self.parked_count -= events.len();
        for ev in events {
            if self.handle_network_event(now, &ev) {
                self.queue_network_event(&ev);
            }
        }
    }

    #[doc(hidden)]
    /// Drops the network events of nodes that did not become members while
    /// the input that brought them was handled (counted in
    /// [`super::NdbStats::attachments_unknown_node`]). [`crate::NetworkDb`]
    /// calls it after every input, once membership events were delivered.
    pub fn drop_parked_attachments(&mut self) {
        self.stats.attachments_unknown_node += self.parked_count as u64;
        self.parked.clear();
        self.parked_count = 0;
    }

    /// Whether `node` may get one more attachment (per node and in all).
    pub(super) fn attachment_room(&mut self, node: &str) -> bool {
        let of_node = self.attachments.get(node).map_or(0, |n| n.len());
        if of_node >= self.cfg.max_networks_per_node
            || self.attachment_count >= self.cfg.max_attachments
        {
            self.stats.attachment_limit_drops += 1;
            return false;
        }
        true
    }

    /// Recounts the attachments after a bulk change.
    pub(super) fn recount_attachments(&mut self) {
        self.attachment_count = self.attachments.values().map(|n| n.len()).sum();
    }

    /// Keeps network `nid`'s relay queue within
    /// [`super::NdbConfig::max_relay_queue`], oldest dropped first.
    pub(super) fn bound_relay_queue(&mut self, nid: &str) {
        let max = self.cfg.max_relay_queue;
        if let Some(net) = self.local.get_mut(nid) {
            let over = net.relay.len().saturating_sub(max);
            if over > 0 {
                net.relay.prune(max);
                self.stats.relay_queue_drops += over as u64;
            }
        }
    }

    /// Whether `name` is a member this node sees alive (or suspect); a bulk
    /// sync from anyone else is dropped (counted in
    /// [`super::NdbStats::bulk_syncs_unknown_sender`]).
    pub(super) fn bulk_sync_sender_known(&mut self, name: &str) -> bool {
        let known = matches!(
            self.nodes.get(name).map(|n| n.state),
            Some(PeerState::Active)
        );
        if !known {
            self.stats.bulk_syncs_unknown_sender += 1;
        }
        known
    }

    /// The networks of an unsolicited bulk sync from member `peer` to answer
    /// now: those of `requested` this node is attached to and has not
    /// answered `peer` for within
    /// [`super::NdbConfig::bulk_sync_answer_interval`] (possibly none, when
    /// nothing is shared). `None`: send no answer, every network asked for
    /// was answered too recently (counted).
    pub(super) fn networks_to_answer(
        &mut self,
        now: Instant,
        peer: &str,
        requested: &[String],
    ) -> Option<Vec<String>> {
        let every = self.cfg.bulk_sync_answer_interval;
        let mut nets = Vec::new();
        let mut limited = false;
        for nid in requested {
            if self.local.get(nid).is_none_or(|l| l.leaving) || nets.contains(nid) {
                continue;
            }
            let key = (peer.to_string(), nid.clone());
            match self.answered.get(&key) {
                Some(at) if now.saturating_duration_since(*at) < every => limited = true,
                _ => {
                    self.answered.insert(key, now);
                    nets.push(nid.clone());
                }
            }
        }
        if nets.is_empty() && !limited {
            // Nothing in common: Docker still expects an (empty) answer, and
            // that answer is rate-limited like the others.
            let key = (peer.to_string(), String::from("\0"));
            match self.answered.get(&key) {
                Some(at) if now.saturating_duration_since(*at) < every => limited = true,
                _ => {
                    self.answered.insert(key, now);
                }
            }
        }
        if limited && nets.is_empty() {
            self.stats.bulk_sync_answers_limited += 1;
            return None;
        }
        Some(nets)
    }

    /// Forgets answer times older than the answer interval (reaper).
    pub(super) fn forget_old_answers(&mut self, now: Instant) {
        let every = self.cfg.bulk_sync_answer_interval;
        self.answered
            .retain(|_, at| now.saturating_duration_since(*at) < every);
    }
}
