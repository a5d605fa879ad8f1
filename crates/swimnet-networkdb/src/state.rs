//! The NetworkDB state machine: nodes, network attachments, table entries,
//! clocks and queues, held by [`TableState`]: the table state that
//! memberlist calls back (its [`Delegate`]) and that [`crate::NetworkDb`] drives.
//!
//! Rules follow Docker 20.10's NetworkDB (libnetwork `networkdb/`), with the
//! later fixes and the improvements the swimnet issue asks for:
//!
//! - **held entries**: a table event whose owner is not (yet) known to be
//!   attached to the network is kept (bounded, for at most the tombstone
//!   lifetime) and applied as soon as the attachment becomes known, instead
//!   of being dropped (Docker's `write-after-join` race, `moby/moby#53437`);
//! - **suspend, don't delete**: a node memberlist declares dead keeps its
//!   attachments and entries; the entries are hidden from reads and come back
//!   if the node returns before they are reaped (`moby/moby#53141`);
//! - **non-blocking, bounded bulk syncs**: a bulk sync is a one-way message;
//!   pending ones are matched by Lamport time per peer and expire after
//!   [`NdbConfig::bulk_sync_timeout`]; nothing ever waits on them; bulk
//!   syncs carry the attachments of the networks they cover;
//! - **total order on versions**: an incoming fact wins if `(ltime, owner,
//!   deleting, value)` is strictly greater than the stored one, so two facts
//!   with the same Lamport time are decided the same way on every node
//!   (`moby/moby#47728`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use swimnet_core::queue::TransmitLimitedQueue;
use swimnet_core::topology::{NearRotation, TopologyView};
use swimnet_core::{Delegate, Node};
use swimnet_wire::budget::DecodeBudget;

mod commands;
mod config;
mod entries;
mod error;
mod gossip;
mod guard;
mod handlers;
mod membership;
mod restart;
mod stats;
mod sync;

pub use config::{NdbConfig, COMPOUND_PART_OVERHEAD, PACKET_OVERHEAD};
use entries::Entries;
pub use error::{NdbError, NdbErrorKind};
pub use guard::{CLOCK_CEILING, CLOCK_WINDOW};
pub use restart::{OwnEntry, RestartState, RestoreReport};
pub use stats::NdbStats;

use crate::wire::{
    self, BulkSyncMessage, GossipPayload, Message, NetworkEvent, NetworkEventType, NetworkPushPull,
    NodeEvent, NodeEventType, TableEvent, TableEventType,
};

/// How this node sees another NetworkDB node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Alive in memberlist.
    Active,
    /// Announced its leave (NodeEvent LEAVE); its entries were deleted.
    Left,
    /// Declared dead by memberlist without a leave: suspended, entries hidden.
    Failed,
}

/// Most events a per-network queue keeps while the network has no peer.
pub const LONE_QUEUE_MAX: usize = 4096;

/// Most table changes kept for [`TableState::poll_table_change`]; older
/// ones are dropped (and counted) when nobody polls.
pub const MAX_PENDING_CHANGES: usize = 65_536;

/// Who made a [`TableChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOrigin {
    /// A write through this node's own API (reported only with
    /// [`NdbConfig::report_local_changes`]).
    Local,
    /// An event from a remote node, or a remote node failing, leaving or
    /// coming back.
    Remote,
}

/// A change to the locally visible store (Docker's `WatchEvent`, local
/// point of view): `prev == None` is a create, `value == None` a delete,
/// both set an update. An entry becoming hidden because its owner failed is
/// a delete; coming back, a create. Changes made by remote nodes are always
/// reported; writes made through this node's own API only when
/// [`NdbConfig::report_local_changes`] is on, with
/// [`ChangeOrigin::Local`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChange {
    /// Network.
    pub network_id: String,
    /// Table.
    pub table: String,
    /// Key.
    pub key: String,
    /// The value now visible (`None`: gone).
    pub value: Option<Vec<u8>>,
    /// The value visible before (`None`: there was none).
    pub prev: Option<Vec<u8>>,
    /// Whether this node's API or a remote node made the change.
    pub origin: ChangeOrigin,
}

/// A node attached to or detached from a network, as this node learned it
/// (reported with [`NdbConfig::report_network_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkChange {
    /// Network.
    pub network_id: String,
    /// The node.
    pub node: String,
    /// Attached (`true`) or detached.
    pub attached: bool,
    /// This node's own API, or a remote node's network event.
    pub origin: ChangeOrigin,
}

/// One live entry, as returned by reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Vec<u8>,
    /// Owner node.
    pub owner: String,
}

#[derive(Debug, Clone)]
struct NodeInfo {
    addr: Option<SocketAddr>,
    state: PeerState,
    ltime: u64,
    reap_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Attachment {
    ltime: u64,
    leaving: bool,
    reap_at: Option<Instant>,
}

#[derive(Debug)]
struct LocalNetwork {
    ltime: u64,
    leaving: bool,
    reap_at: Option<Instant>,
    in_sync: bool,
    own: TransmitLimitedQueue,
    relay: TransmitLimitedQueue,
    /// Where this network's gossip rounds are in their walk through the
    /// near cluster (see [`NearRotation`]).
    near_walk: NearRotation<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    owner: String,
    ltime: u64,
    value: Vec<u8>,
    deleting: bool,
    reap_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct PendingSync {
    peer: String,
    ltime: u64,
    deadline: Instant,
    join_network: Option<String>,
}

/// Traffic the delegate wants sent; [`crate::NetworkDb`] hands it to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A best-effort user packet (per-network gossip).
    Packet(SocketAddr, Vec<u8>),
    /// A reliable user stream (bulk sync).
    Stream(SocketAddr, Vec<u8>),
}

/// (network, table, key) of an entry. The key is shared with the owner
/// index (see `entries`), so it is stored once per entry.
type EntryKey = (String, String, Arc<str>);

/// How a table event arrived, which decides whether it is relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Gossip (or a held event released): relayed.
    Gossip,
    /// Bulk sync: relayed while the relay queue is short.
    Bulk,
    /// Backlog push that reached every peer: never relayed.
    Push,
}

use guard::witness;

fn increment(clock: &mut u64) -> u64 {
    *clock = clock.saturating_add(1);
    *clock
}

/// The NetworkDB state, plugged into memberlist as its [`Delegate`].
#[derive(Debug)]
pub struct TableState {
    cfg: NdbConfig,
    name: String,
    addr: SocketAddr,
    rng: u64,
    network_clock: u64,
    table_clock: u64,
    nodes: BTreeMap<String, NodeInfo>,
    attachments: BTreeMap<String, BTreeMap<String, Attachment>>,
    /// Attachments in `attachments`, in all.
    attachment_count: usize,
    /// Network events of nodes not (yet) members, for the current input.
    parked: BTreeMap<String, Vec<NetworkEvent>>,
    parked_count: usize,
    /// When each (peer, network) last got an answer to an unsolicited sync.
    answered: BTreeMap<(String, String), Instant>,
    local: BTreeMap<String, LocalNetwork>,
    entries: Entries,
    held: BTreeMap<(String, String), Vec<(Instant, TableEvent)>>,
    held_count: usize,
    broadcasts: TransmitLimitedQueue,
    outbox: VecDeque<Outgoing>,
    syncs: Vec<PendingSync>,
    changes: VecDeque<TableChange>,
    network_changes: VecDeque<NetworkChange>,
    stats: NdbStats,
}

impl TableState {
    #[doc(hidden)]
    /// A fresh state for node `name` reachable at `addr`; `retransmit_mult`
    /// is memberlist's (for the cluster-wide node and network events).
    pub fn new(
        name: String,
        addr: SocketAddr,
        cfg: NdbConfig,
        retransmit_mult: usize,
        seed: u64,
    ) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            name.clone(),
            NodeInfo {
                addr: Some(addr),
                state: PeerState::Active,
                ltime: 0,
                reap_at: None,
            },
        );
        TableState {
            cfg,
            name,
            addr,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            network_clock: 0,
            table_clock: 0,
            nodes,
            attachments: BTreeMap::new(),
            attachment_count: 0,
            parked: BTreeMap::new(),
            parked_count: 0,
            answered: BTreeMap::new(),
            local: BTreeMap::new(),
            entries: Entries::default(),
            held: BTreeMap::new(),
            held_count: 0,
            broadcasts: TransmitLimitedQueue::new(retransmit_mult),
            outbox: VecDeque::new(),
            syncs: Vec::new(),
            changes: VecDeque::new(),
            network_changes: VecDeque::new(),
            stats: NdbStats::default(),
        }
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> &NdbConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &NdbStats {
        &self.stats
    }

    /// The table Lamport clock's current value.
    pub fn table_clock(&self) -> u64 {
        self.table_clock
    }

    /// The network Lamport clock's current value.
    pub fn network_clock(&self) -> u64 {
        self.network_clock
    }

    /// Number of table events currently held for unknown attachments.
    pub fn held_events(&self) -> usize {
        self.held_count
    }

    /// Number of initiated bulk syncs still waiting for their answer.
    pub fn pending_bulk_syncs(&self) -> usize {
        self.syncs.len()
    }

    /// Whether the first bulk syncs after joining `nid` have finished (or
    /// timed out); until then nothing received for it is relayed.
    pub fn in_sync(&self, nid: &str) -> bool {
        self.local.get(nid).is_some_and(|n| n.in_sync)
    }

    /// How this node sees `name` (`None`: unknown).
    pub fn peer_state(&self, name: &str) -> Option<PeerState> {
        self.nodes.get(name).map(|n| n.state)
    }

    /// The next change to the visible store made by a remote node.
    pub fn poll_table_change(&mut self) -> Option<TableChange> {
        self.changes.pop_front()
    }

    /// The next network attachment change (with
    /// [`NdbConfig::report_network_changes`]).
    pub fn poll_network_change(&mut self) -> Option<NetworkChange> {
        self.network_changes.pop_front()
    }

    /// Queues a [`NetworkChange`] when they are reported; the oldest one is
    /// dropped (and counted in `changes_dropped`) when
    /// [`MAX_PENDING_CHANGES`] are waiting.
    fn record_network_change(
        &mut self,
        nid: &str,
        node: &str,
        attached: bool,
        origin: ChangeOrigin,
    ) {
        if !self.cfg.report_network_changes {
            return;
        }
        if self.network_changes.len() >= MAX_PENDING_CHANGES {
            self.network_changes.pop_front();
            self.stats.changes_dropped += 1;
        }
        self.network_changes.push_back(NetworkChange {
            network_id: nid.to_string(),
            node: node.to_string(),
            attached,
            origin,
        });
    }

    /// The value of `k` as reads see it (`None`: missing, deleted, or its
    /// owner failed or left).
    fn visible(&self, k: &EntryKey) -> Option<Vec<u8>> {
        self.entries
            .get(k)
            .filter(|e| !e.deleting && self.owner_visible(&e.owner))
            .map(|e| e.value.clone())
    }

    /// Runs `f` and records how the visibility of `keys` changed.
    fn watched<R>(&mut self, keys: Vec<EntryKey>, f: impl FnOnce(&mut Self) -> R) -> R {
        let before: Vec<Option<Vec<u8>>> = keys.iter().map(|k| self.visible(k)).collect();
        let r = f(self);
        for (k, prev) in keys.into_iter().zip(before) {
            let value = self.visible(&k);
            self.record_change(k, prev, value, ChangeOrigin::Remote);
        }
        r
    }

    /// Queues a [`TableChange`] for `k` when the visible value moved from
    /// `prev` to `value`; the oldest one is dropped (and counted) when
    /// [`MAX_PENDING_CHANGES`] are waiting.
    fn record_change(
        &mut self,
        k: EntryKey,
        prev: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        origin: ChangeOrigin,
    ) {
        if value == prev {
            return;
        }
        if self.changes.len() >= MAX_PENDING_CHANGES {
            self.changes.pop_front();
            self.stats.changes_dropped += 1;
        }
        self.changes.push_back(TableChange {
            network_id: k.0,
            table: k.1,
            key: k.2.to_string(),
            value,
            prev,
            origin,
        });
    }

    #[doc(hidden)]
    /// Counts one bootstrap rejoin ([`crate::NetworkDb`] runs it).
    pub fn count_rejoin(&mut self) {
        self.stats.bootstrap_rejoins += 1;
    }

    #[doc(hidden)]
    /// Takes the traffic queued since the last call.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        self.outbox.drain(..).collect()
    }

    // ---------------------------------------------------------------- reads

    fn owner_visible(&self, owner: &str) -> bool {
        !matches!(
            self.nodes.get(owner).map(|n| n.state),
            Some(PeerState::Failed) | Some(PeerState::Left)
        )
    }

    /// Docker's `GetEntry`: the value of a live entry.
    pub fn get_entry(&self, nid: &str, table: &str, key: &str) -> Result<Vec<u8>, NdbError> {
        let k = (nid.to_string(), table.to_string(), Arc::from(key));
        match self.entries.get(&k) {
            Some(e) if !self.owner_visible(&e.owner) => Err(NdbError::NotFound {
                table: table.into(),
                nid: nid.into(),
                key: key.into(),
            }),
            Some(e) if e.deleting => Err(NdbError::Deleted {
                table: table.into(),
                nid: nid.into(),
                key: key.into(),
            }),
            Some(e) => Ok(e.value.clone()),
            None => Err(NdbError::NotFound {
                table: table.into(),
                nid: nid.into(),
                key: key.into(),
            }),
        }
    }

    /// Docker's `GetTableByNetwork`: the live entries of one table, by key.
    /// Entries of failed nodes are hidden.
    pub fn table_entries(&self, nid: &str, table: &str) -> Vec<TableEntry> {
        self.table_range(nid, table)
            .filter(|(_, e)| !e.deleting && self.owner_visible(&e.owner))
            .map(|(k, e)| TableEntry {
                key: k.2.to_string(),
                value: e.value.clone(),
                owner: e.owner.clone(),
            })
            .collect()
    }

    /// [`Self::table_entries`] with the entries of failed (not yet reaped)
    /// owners too: what a node must not reuse while their owner may return.
    pub fn table_entries_with_failed(&self, nid: &str, table: &str) -> Vec<TableEntry> {
        self.table_range(nid, table)
            .filter(|(_, e)| !e.deleting)
            .map(|(k, e)| TableEntry {
                key: k.2.to_string(),
                value: e.value.clone(),
                owner: e.owner.clone(),
            })
            .collect()
    }

    /// Number of stored records (live, hidden and tombstones) for a table.
    pub fn stored_records(&self, nid: &str, table: &str) -> usize {
        self.table_range(nid, table).count()
    }

    fn table_range<'a>(
        &'a self,
        nid: &str,
        table: &str,
    ) -> impl Iterator<Item = (&'a EntryKey, &'a Entry)> + 'a {
        let start = (nid.to_string(), table.to_string(), Arc::from(""));
        let (n, t) = (nid.to_string(), table.to_string());
        self.entries
            .range(start..)
            .take_while(move |(k, _)| k.0 == n && k.1 == t)
    }

    fn live_count(&self, nid: &str, table: &str) -> usize {
        self.entries.live_count(nid, table)
    }

    /// Docker's `Peers(nid)`: the active nodes attached to `nid`, this node
    /// included when it is attached. Sorted.
    pub fn network_peers(&self, nid: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .attached_nodes(nid)
            .into_iter()
            .filter(|n| {
                self.nodes
                    .get(n)
                    .is_some_and(|i| i.state == PeerState::Active)
            })
            .collect();
        if self.local.get(nid).is_some_and(|n| !n.leaving) {
            out.push(self.name.clone());
        }
        out.sort();
        out
    }

    /// Docker's `ClusterPeers()`: every active node, this one included. Sorted.
    pub fn cluster_peers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.state == PeerState::Active)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Docker's `/networkstats` figures for a network this node is attached
    /// to: stored records of the network (all tables, tombstones included,
    /// like Docker's `entriesNumber`) and the length of this node's own
    /// broadcast queue for it. `None` when not attached.
    pub fn network_stats(&self, nid: &str) -> Option<(usize, usize)> {
        let net = self.local.get(nid)?;
        let entries = self
            .entries
            .range((nid.to_string(), String::new(), Arc::from(""))..)
            .take_while(|(k, _)| k.0 == nid)
            .count();
        Some((entries, net.own.len()))
    }

    /// The networks this node is attached to (not leaving).
    pub fn networks(&self) -> Vec<String> {
        self.local
            .iter()
            .filter(|(_, n)| !n.leaving)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Remote nodes with a non-leaving attachment to `nid` (any state).
    fn attached_nodes(&self, nid: &str) -> Vec<String> {
        self.attachments
            .iter()
            .filter(|(_, nets)| nets.get(nid).is_some_and(|a| !a.leaving))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Active peers of `nid` with a known address (not this node).
    fn peer_addrs(&self, nid: &str) -> Vec<(String, SocketAddr)> {
        self.attached_nodes(nid)
            .into_iter()
            .filter_map(|n| {
                let info = self.nodes.get(&n)?;
                if info.state != PeerState::Active || n == self.name {
                    return None;
                }
                Some((n, info.addr?))
            })
            .collect()
    }

    /// The address this node advertises.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Delegate for TableState {
    fn notify_msg(&mut self, now: Instant, from: SocketAddr, msg: &[u8]) {
        self.handle_message(now, from, msg, None);
    }

    fn notify_packet_msg(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &[u8],
        budget: &mut DecodeBudget,
    ) {
        self.handle_message(now, from, msg, Some(budget));
    }

    fn get_broadcasts(&mut self, overhead: usize, limit: usize, num_nodes: usize) -> Vec<Vec<u8>> {
        self.broadcasts.get_broadcasts(overhead, limit, num_nodes)
    }

    fn local_state(&mut self, join: bool) -> Vec<u8> {
        let pp = self.push_pull_state(join);
        wire::encode_push_pull_state(&pp)
    }

    fn merge_remote_state(&mut self, now: Instant, state: &[u8], join: bool) {
        let Ok(pp) = wire::decode_push_pull_state(state) else {
            self.stats.decode_errors += 1;
            return;
        };
        // A join's push/pull may move the clock any distance (a fresh node
        // catching up with the cluster); a periodic one only within the window.
        let clock_ok = if join {
            guard::catch_up(&mut self.network_clock, pp.l_time)
        } else {
            witness(&mut self.network_clock, pp.l_time)
        };
        if !clock_ok {
            self.stats.clock_far_future += 1;
            return;
        }
        self.handle_node_event(
            now,
            &NodeEvent {
                r#type: NodeEventType::Join as i32,
                l_time: pp.l_time,
                node_name: pp.node_name.clone(),
            },
        );
        for n in &pp.networks {
            self.handle_network_event(
                now,
                &NetworkEvent {
                    r#type: if n.leaving {
                        NetworkEventType::Leave
                    } else {
                        NetworkEventType::Join
                    } as i32,
                    l_time: n.l_time,
                    node_name: n.node_name.clone(),
                    network_id: n.network_id.clone(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests;
