//! The NetworkDB state machine: nodes, network attachments, table entries,
//! clocks and queues, held by [`NdbDelegate`] (the memberlist delegate).
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
use std::time::{Duration, Instant};

use rand::RngCore;
use swimnet_core::queue::TransmitLimitedQueue;
use swimnet_core::topology::{NearRotation, TopologyView};
use swimnet_core::{Delegate, Node};
use swimnet_wire::budget::DecodeBudget;

mod entries;
mod guard;

use entries::Entries;
pub use guard::{CLOCK_CEILING, CLOCK_WINDOW};

use crate::wire::{
    self, BulkSyncMessage, GossipPayload, Message, NetworkEvent, NetworkEventType, NetworkPushPull,
    NodeEvent, NodeEventType, TableEvent, TableEventType,
};

/// Bytes one part costs inside a compound (field tag and length of the
/// `SimpleMessage`, field tag and length of its payload).
pub const COMPOUND_PART_OVERHEAD: usize = 6;

/// Bytes reserved in a gossip packet for everything around the compound:
/// Docker's 5, the compound envelope (5), the user-message type byte, the
/// CRC header and AES-GCM (version, nonce, tag).
pub const PACKET_OVERHEAD: usize = 5 + 5 + swimnet_wire::overhead::USER_DATAGRAM;

/// NetworkDB's own settings (memberlist's are in [`swimnet_core::Config`]).
#[derive(Clone, Debug)]
pub struct NdbConfig {
    /// Per-network table gossip period (Docker: memberlist's `GossipInterval`, 200 ms).
    pub gossip_interval: Duration,
    /// Peers of a network each gossip round goes to (Docker: 3).
    pub fanout: usize,
    /// Budget of one gossip packet (Docker `PacketBufferSize`: 1400).
    pub packet_buffer_size: usize,
    /// Retransmit multiplier of the per-network queues (Docker: 4).
    pub retransmit_mult: usize,
    /// Period of the anti-entropy bulk sync (Docker: 30 s).
    pub bulk_sync_interval: Duration,
    /// A bulk sync not answered within this is given up (Docker: 30 s, blocking).
    pub bulk_sync_timeout: Duration,
    /// Lifetime of a tombstone, and of a failed node's hidden entries (30 min).
    pub reap_entry_interval: Duration,
    /// Lifetime of a network-leave record (30 min 25 s).
    pub reap_network_interval: Duration,
    /// Reaper tick (5 s).
    pub reap_period: Duration,
    /// How long a failed or left node is remembered (24 h).
    pub node_reap_interval: Duration,
    /// Longest key accepted by the API, in bytes.
    pub max_key_len: usize,
    /// Largest value accepted by the API, in bytes. The whole encoded event
    /// must also fit one gossip packet.
    pub max_value_len: usize,
    /// Most live entries (tombstones not counted) one table of one network
    /// may hold; further creates fail, and remote creates are dropped.
    pub max_entries_per_table: usize,
    /// Most table events held while waiting for their owner's attachment.
    pub max_held_events: usize,
    /// Events learned by bulk sync are relayed only while the relay queue is
    /// shorter than this (Docker `maxQueueLenBroadcastOnSync`: 500).
    pub max_relay_queue_on_sync: usize,
    /// Backlog push (swimnet): when this node's own events waiting for their
    /// first gossip transmission exceed this many bytes at a gossip round (a
    /// burst of writes that gossip would need many rounds to carry), they
    /// are taken out of the gossip queue and streamed once to the network's
    /// peers as a one-way bulk sync. `0` turns it off (Docker's behaviour:
    /// the burst drains one packet per round).
    pub backlog_push_bytes: usize,
    /// How often to check that some peer given to the last join is still
    /// a live member, and join through them again if none is (Docker's
    /// `rejoinClusterInterval`: 60 s).
    pub rejoin_interval: Duration,
    /// Most peers one backlog push goes to. In a larger network the push
    /// goes to this many random peers, the events also stay in the gossip
    /// queue, and the receivers relay them like bulk-synced events.
    pub backlog_push_peers: usize,
    /// Most attachments (node, network) of other nodes kept, in all
    /// (default 100,000); further network joins are dropped and counted in
    /// [`NdbStats::attachment_limit_drops`]. Also the most network events
    /// parked for nodes not yet known as members within one input.
    pub max_attachments: usize,
    /// Most networks one other node may be attached to (default 1,024).
    pub max_networks_per_node: usize,
    /// Most tables one network may hold (default 64); a remote create in a
    /// further table is dropped ([`NdbStats::table_limit_drops`]), a local
    /// one fails with [`NdbError::TooManyTables`].
    pub max_tables_per_network: usize,
    /// Most records (live entries, hidden ones and tombstones) kept in all
    /// (default 500,000); a remote event for a further record is dropped
    /// ([`NdbStats::entry_limit_drops`]), a local create fails with
    /// [`NdbError::StoreFull`].
    pub max_entries: usize,
    /// Most events one network's relay queue holds (default 4,096); the
    /// oldest are dropped beyond ([`NdbStats::relay_queue_drops`]).
    pub max_relay_queue: usize,
    /// An unsolicited bulk sync from a peer is answered for a network at
    /// most once per this interval (default 5 s; Docker answers every one).
    /// Others are applied but not answered
    /// ([`NdbStats::bulk_sync_answers_limited`]).
    pub bulk_sync_answer_interval: Duration,
}

impl Default for NdbConfig {
    fn default() -> Self {
        let reap_period = Duration::from_secs(5);
        let reap_entry_interval = Duration::from_secs(30 * 60);
        NdbConfig {
            gossip_interval: Duration::from_millis(200),
            fanout: 3,
            packet_buffer_size: 1400,
            retransmit_mult: 4,
            bulk_sync_interval: Duration::from_secs(30),
            bulk_sync_timeout: Duration::from_secs(10),
            reap_entry_interval,
            reap_network_interval: reap_entry_interval + 5 * reap_period,
            reap_period,
            node_reap_interval: Duration::from_secs(24 * 3600),
            max_key_len: 256,
            max_value_len: 1024,
            max_entries_per_table: 100_000,
            max_held_events: 10_000,
            max_relay_queue_on_sync: 500,
            backlog_push_bytes: 2 * 1400,
            backlog_push_peers: 32,
            rejoin_interval: Duration::from_secs(60),
            max_attachments: 100_000,
            max_networks_per_node: 1024,
            max_tables_per_network: 64,
            max_entries: 500_000,
            max_relay_queue: 4096,
            bulk_sync_answer_interval: Duration::from_secs(5),
        }
    }
}

/// What went wrong with a NetworkDB command. The entry texts are Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdbError {
    /// `join_network` on a network already joined.
    #[error("network {0} is already joined")]
    AlreadyJoined(String),
    /// `leave_network` or an entry command on a network not joined.
    #[error("could not find network {0}")]
    NetworkNotJoined(String),
    /// `create_entry` over a live entry.
    #[error(
        "cannot create entry in table {table} with network id {nid} and key {key}, already exists"
    )]
    EntryExists {
        /// Table.
        table: String,
        /// Network.
        nid: String,
        /// Key.
        key: String,
    },
    /// `update_entry` of a missing or deleted entry.
    #[error("cannot update entry as the entry in table {table} with network id {nid} and key {key} does not exist")]
    UpdateMissing {
        /// Table.
        table: String,
        /// Network.
        nid: String,
        /// Key.
        key: String,
    },
    /// `delete_entry` of a missing or deleted entry.
    #[error("cannot delete entry {table} with network id {nid} and key {key} does not exist or is already being deleted")]
    DeleteMissing {
        /// Table.
        table: String,
        /// Network.
        nid: String,
        /// Key.
        key: String,
    },
    /// `get_entry` of a missing entry (or one whose owner failed).
    #[error("could not get entry in table {table} with network id {nid} and key {key}")]
    NotFound {
        /// Table.
        table: String,
        /// Network.
        nid: String,
        /// Key.
        key: String,
    },
    /// `get_entry` of a tombstone.
    #[error("entry in table {table} network id {nid} and key {key} deleted and pending garbage collection")]
    Deleted {
        /// Table.
        table: String,
        /// Network.
        nid: String,
        /// Key.
        key: String,
    },
    /// `update_entry` / `delete_entry` of an entry another node owns.
    #[error("entry in table {table} with network id {nid} and key {key} is owned by {owner}")]
    NotOwner {
        /// Table.
        table: String,
        /// Network.
        nid: String,
        /// Key.
        key: String,
        /// Its owner.
        owner: String,
    },
    /// Key longer than [`NdbConfig::max_key_len`] (or empty).
    #[error("invalid key length {len} (must be 1..={max} bytes)")]
    BadKey {
        /// Length given.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Value larger than [`NdbConfig::max_value_len`], or the event would
    /// not fit one gossip packet.
    #[error("value of {len} bytes too large (limit {max})")]
    ValueTooLarge {
        /// Size given.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The network holds [`NdbConfig::max_tables_per_network`] tables
    /// already; write to one of them, or raise the limit.
    #[error("network {nid} has {max} tables already; cannot add table {table}")]
    TooManyTables {
        /// Table.
        table: String,
        /// Network.
        nid: String,
        /// Limit.
        max: usize,
    },
    /// The store holds [`NdbConfig::max_entries`] records already.
    #[error("the store holds {max} records already; delete some or raise max_entries")]
    StoreFull {
        /// Limit.
        max: usize,
    },
    /// The table holds [`NdbConfig::max_entries_per_table`] entries already.
    #[error("table {table} of network {nid} is full ({max} entries)")]
    TableFull {
        /// Table.
        table: String,
        /// Network.
        nid: String,
        /// Limit.
        max: usize,
    },
}

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

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NdbStats {
    /// Table events applied (gossip and bulk sync).
    pub table_events_applied: u64,
    /// Table events not newer than what was stored.
    pub table_events_stale: u64,
    /// Table events held because their owner's attachment was unknown.
    pub table_events_held: u64,
    /// Held events later applied.
    pub held_released: u64,
    /// Held events dropped (limit, expiry, or owner left the network).
    pub held_dropped: u64,
    /// Remote creates dropped because the table was full.
    pub table_full_drops: u64,
    /// Messages that failed to decode.
    pub decode_errors: u64,
    /// Bulk syncs sent (initiated and answers).
    pub bulk_syncs_sent: u64,
    /// Bulk syncs received.
    pub bulk_syncs_received: u64,
    /// Initiated bulk syncs answered in time.
    pub bulk_syncs_completed: u64,
    /// Initiated bulk syncs given up after [`NdbConfig::bulk_sync_timeout`].
    pub bulk_sync_timeouts: u64,
    /// Gossip packets handed to memberlist.
    pub gossip_packets: u64,
    /// Table changes dropped because nobody polled them.
    pub changes_dropped: u64,
    /// Received table events queued for relaying to the network.
    pub table_events_relayed: u64,
    /// Backlog pushes sent (one per peer).
    pub backlog_pushes_sent: u64,
    /// Own table events moved from the gossip queue into backlog pushes.
    pub backlog_events_pushed: u64,
    /// Backlog pushes received.
    pub backlog_pushes_received: u64,
    /// Bootstrap rejoins attempted (no bootstrap peer was a live member).
    pub bootstrap_rejoins: u64,
    /// Table-gossip targets and bulk-sync partners chosen latency-aware
    /// (see [`swimnet_core::topology`]) rather than uniformly.
    pub topology_choices: u64,
    /// Compounds dropped whole for holding more parts than the cap
    /// ([`wire::MAX_GOSSIP_PARTS`], [`wire::MAX_BULK_SYNC_PARTS`]).
    pub compounds_too_many_parts: u64,
    /// Events and states dropped for a Lamport time more than
    /// [`CLOCK_WINDOW`] ahead of this node's clock (or over
    /// [`CLOCK_CEILING`]); the clock did not move.
    pub clock_far_future: u64,
    /// Remote table events over the local key, value or packet limits.
    pub table_events_over_limits: u64,
    /// Remote table events dropped because their network has
    /// [`NdbConfig::max_tables_per_network`] tables.
    pub table_limit_drops: u64,
    /// Remote table events dropped because the store holds
    /// [`NdbConfig::max_entries`] records.
    pub entry_limit_drops: u64,
    /// Network events about nodes that are not members (alive or suspect).
    pub attachments_unknown_node: u64,
    /// Network joins dropped by [`NdbConfig::max_attachments`] or
    /// [`NdbConfig::max_networks_per_node`].
    pub attachment_limit_drops: u64,
    /// Events dropped from full relay queues ([`NdbConfig::max_relay_queue`]).
    pub relay_queue_drops: u64,
    /// Bulk syncs dropped because their sender is not a member.
    pub bulk_syncs_unknown_sender: u64,
    /// Unsolicited bulk syncs not answered (answered too recently).
    pub bulk_sync_answers_limited: u64,
}

/// Most events a per-network queue keeps while the network has no peer.
pub const LONE_QUEUE_MAX: usize = 4096;

/// Most table changes kept for [`NdbDelegate::poll_table_change`]; older
/// ones are dropped (and counted) when nobody polls.
pub const MAX_PENDING_CHANGES: usize = 65_536;

/// A change to the locally visible store caused by a remote node (Docker's
/// `WatchEvent`, local point of view): `prev == None` is a create,
/// `value == None` a delete, both set an update. An entry becoming hidden
/// because its owner failed is a delete; coming back, a create. Writes made
/// through this node's own API are not reported.
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

type EntryKey = (String, String, String);

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
pub struct NdbDelegate {
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
    stats: NdbStats,
}

impl NdbDelegate {
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
        NdbDelegate {
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
            if value != prev {
                if self.changes.len() >= MAX_PENDING_CHANGES {
                    self.changes.pop_front();
                    self.stats.changes_dropped += 1;
                }
                self.changes.push_back(TableChange {
                    network_id: k.0,
                    table: k.1,
                    key: k.2,
                    value,
                    prev,
                });
            }
        }
        r
    }

    /// Counts one bootstrap rejoin ([`crate::NetworkDb`] runs it).
    pub fn count_rejoin(&mut self) {
        self.stats.bootstrap_rejoins += 1;
    }

    /// Takes the traffic queued since the last call.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        self.outbox.drain(..).collect()
    }

    fn rand(&mut self) -> u64 {
        SplitMix(&mut self.rng).next_u64()
    }

    /// `k` of `peers`: latency-aware through `view` when it allows (see
    /// [`TopologyView::select`]), else uniformly with [`Self::pick`],
    /// drawing the same numbers as before topology awareness existed.
    ///
    /// With `walk_of` (a joined network), the near picks continue that
    /// network's walk through the near cluster
    /// ([`TopologyView::select_rotating`]), for gossip rounds.
    fn choose_peers(
        &mut self,
        peers: Vec<(String, SocketAddr)>,
        k: usize,
        view: Option<&TopologyView>,
        walk_of: Option<&str>,
    ) -> Vec<(String, SocketAddr)> {
        if let Some(view) = view {
            let names: Vec<&str> = peers.iter().map(|(n, _)| n.as_str()).collect();
            let rng = &mut SplitMix(&mut self.rng);
            let walk = walk_of
                .and_then(|nid| self.local.get_mut(nid))
                .map(|net| &mut net.near_walk);
            let picked = match walk {
                Some(walk) => view.select_rotating(rng, &names, k, walk),
                None => view.select(rng, &names, k),
            };
            if let Some(idx) = picked {
                self.stats.topology_choices += 1;
                return idx.into_iter().map(|i| peers[i].clone()).collect();
            }
        }
        self.pick(peers, k)
    }

    fn pick<T>(&mut self, mut v: Vec<T>, k: usize) -> Vec<T> {
        let k = k.min(v.len());
        for i in 0..k {
            let j = i + (self.rand() % (v.len() - i) as u64) as usize;
            v.swap(i, j);
        }
        v.truncate(k);
        v
    }

    /// Deterministic jitter in `[0, max)`, used to stagger timers.
    pub fn jitter(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis() as u64;
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rand() % ms)
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
        let k = (nid.to_string(), table.to_string(), key.to_string());
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
                key: k.2.clone(),
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
        let start = (nid.to_string(), table.to_string(), String::new());
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
            .range((nid.to_string(), String::new(), String::new())..)
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

    // ------------------------------------------------------------- commands

    /// Queues a NodeEvent about this node (JOIN on cluster join, LEAVE before leaving).
    pub fn send_node_event(&mut self, kind: NodeEventType) {
        let ltime = increment(&mut self.network_clock);
        if let Some(me) = self.nodes.get_mut(&self.name) {
            me.ltime = ltime;
        }
        let ev = NodeEvent {
            r#type: kind as i32,
            l_time: ltime,
            node_name: self.name.clone(),
        };
        self.queue_node_event(&ev);
    }

    /// Queues a node event for the cluster, replacing any queued one about
    /// the same node (only the newest matters: it was applied last).
    fn queue_node_event(&mut self, ev: &NodeEvent) {
        let name = format!("node\0{}", ev.node_name);
        self.broadcasts
            .queue(Some(name.as_bytes()), ev.encode_gossip());
    }

    fn queue_network_event(&mut self, ev: &NetworkEvent) {
        let name = format!("net\0{}\0{}", ev.network_id, ev.node_name);
        self.broadcasts
            .queue(Some(name.as_bytes()), ev.encode_gossip());
    }

    /// Docker's `JoinNetwork`: attach, announce, and bulk sync with every
    /// known peer of the network (without waiting for anything).
    pub fn join_network(&mut self, now: Instant, nid: &str) -> Result<(), NdbError> {
        if self.local.get(nid).is_some_and(|n| !n.leaving) {
            return Err(NdbError::AlreadyJoined(nid.into()));
        }
        let ltime = increment(&mut self.network_clock);
        let mult = self.cfg.retransmit_mult;
        let net = self
            .local
            .entry(nid.to_string())
            .or_insert_with(|| LocalNetwork {
                ltime,
                leaving: false,
                reap_at: None,
                in_sync: false,
                own: TransmitLimitedQueue::new(mult),
                relay: TransmitLimitedQueue::new(mult),
                near_walk: NearRotation::default(),
            });
        net.ltime = ltime;
        net.leaving = false;
        net.reap_at = None;
        net.in_sync = false;
        self.queue_network_event(&NetworkEvent {
            r#type: NetworkEventType::Join as i32,
            l_time: ltime,
            node_name: self.name.clone(),
            network_id: nid.to_string(),
        });
        let peers = self.peer_addrs(nid);
        if peers.is_empty() {
            if let Some(n) = self.local.get_mut(nid) {
                n.in_sync = true;
            }
        }
        for (peer, addr) in peers {
            self.start_bulk_sync(now, &peer, addr, vec![nid.to_string()], Some(nid));
        }
        Ok(())
    }

    /// Docker's `LeaveNetwork` (2025+): own entries become tombstones with
    /// fresh times, others' entries are dropped, a LEAVE is announced.
    pub fn leave_network(&mut self, now: Instant, nid: &str) -> Result<(), NdbError> {
        if !self.local.get(nid).is_some_and(|n| !n.leaving) {
            return Err(NdbError::NetworkNotJoined(nid.into()));
        }
        let keys = self
            .entries
            .range((nid.to_string(), String::new(), String::new())..)
            .take_while(|(k, _)| k.0 == nid)
            .map(|(k, _)| k.clone())
            .collect();
        self.watched(keys, |s| s.leave_network_inner(now, nid));
        Ok(())
    }

    fn leave_network_inner(&mut self, now: Instant, nid: &str) {
        let ltime = increment(&mut self.network_clock);
        let reap_net = now + self.cfg.reap_network_interval;
        if let Some(n) = self.local.get_mut(nid) {
            n.ltime = ltime;
            n.leaving = true;
            n.in_sync = false;
            n.reap_at = Some(reap_net);
            n.own.clear();
            n.relay.clear();
        }
        let keys: Vec<EntryKey> = self
            .entries
            .range((nid.to_string(), String::new(), String::new())..)
            .take_while(|(k, _)| k.0 == nid)
            .map(|(k, _)| k.clone())
            .collect();
        let reap = now + self.cfg.reap_entry_interval;
        for k in keys {
            let mine = self.entries.get(&k).is_some_and(|e| e.owner == self.name);
            if mine {
                let t = increment(&mut self.table_clock);
                if let Some(e) = self.entries.get(&k).filter(|e| !e.deleting) {
                    let tomb = Entry {
                        ltime: t,
                        deleting: true,
                        reap_at: Some(reap),
                        ..e.clone()
                    };
                    self.entries.insert(k, tomb);
                }
            } else {
                self.entries.remove(&k);
            }
        }
        self.held.retain(|(_, n), v| {
            if n == nid {
                v.clear();
            }
            !v.is_empty()
        });
        self.recount_held();
        self.syncs
            .retain(|s| s.join_network.as_deref() != Some(nid));
        self.queue_network_event(&NetworkEvent {
            r#type: NetworkEventType::Leave as i32,
            l_time: ltime,
            node_name: self.name.clone(),
            network_id: nid.to_string(),
        });
    }

    fn check_kv(&self, key: &str, value: &[u8]) -> Result<(), NdbError> {
        if key.is_empty() || key.len() > self.cfg.max_key_len {
            return Err(NdbError::BadKey {
                len: key.len(),
                max: self.cfg.max_key_len,
            });
        }
        if value.len() > self.cfg.max_value_len {
            return Err(NdbError::ValueTooLarge {
                len: value.len(),
                max: self.cfg.max_value_len,
            });
        }
        Ok(())
    }

    fn check_joined(&self, nid: &str) -> Result<(), NdbError> {
        if self.local.get(nid).is_some_and(|n| !n.leaving) {
            Ok(())
        } else {
            Err(NdbError::NetworkNotJoined(nid.into()))
        }
    }

    fn gossip_budget(&self) -> usize {
        self.cfg
            .packet_buffer_size
            .saturating_sub(PACKET_OVERHEAD + COMPOUND_PART_OVERHEAD)
    }

    /// Docker's `CreateEntry`. Allowed over a tombstone.
    pub fn create_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), NdbError> {
        self.check_joined(nid)?;
        self.check_kv(key, value)?;
        let k = (nid.to_string(), table.to_string(), key.to_string());
        if let Some(e) = self.entries.get(&k) {
            if !e.deleting && self.owner_visible(&e.owner) {
                return Err(NdbError::EntryExists {
                    table: table.into(),
                    nid: nid.into(),
                    key: key.into(),
                });
            }
        }
        if !self.entries.has_table(nid, table)
            && self.entries.table_count(nid) >= self.cfg.max_tables_per_network
        {
            return Err(NdbError::TooManyTables {
                table: table.into(),
                nid: nid.into(),
                max: self.cfg.max_tables_per_network,
            });
        }
        if !self.entries.contains_key(&k) && self.entries.len() >= self.cfg.max_entries {
            return Err(NdbError::StoreFull {
                max: self.cfg.max_entries,
            });
        }
        if self.live_count(nid, table) >= self.cfg.max_entries_per_table {
            return Err(NdbError::TableFull {
                table: table.into(),
                nid: nid.into(),
                max: self.cfg.max_entries_per_table,
            });
        }
        self.local_write(now, k, TableEventType::Create, value.to_vec())
    }

    /// Docker's `UpdateEntry`: only the owner may update a live entry.
    pub fn update_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), NdbError> {
        self.check_joined(nid)?;
        self.check_kv(key, value)?;
        let k = (nid.to_string(), table.to_string(), key.to_string());
        match self.entries.get(&k) {
            Some(e) if !e.deleting && self.owner_visible(&e.owner) => {
                if e.owner != self.name {
                    return Err(NdbError::NotOwner {
                        table: table.into(),
                        nid: nid.into(),
                        key: key.into(),
                        owner: e.owner.clone(),
                    });
                }
            }
            _ => {
                return Err(NdbError::UpdateMissing {
                    table: table.into(),
                    nid: nid.into(),
                    key: key.into(),
                })
            }
        }
        self.local_write(now, k, TableEventType::Update, value.to_vec())
    }

    /// Docker's `DeleteEntry`: leaves a tombstone for the reap interval.
    pub fn delete_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
    ) -> Result<(), NdbError> {
        self.check_joined(nid)?;
        let k = (nid.to_string(), table.to_string(), key.to_string());
        match self.entries.get(&k) {
            Some(e) if !e.deleting && self.owner_visible(&e.owner) => {
                if e.owner != self.name {
                    return Err(NdbError::NotOwner {
                        table: table.into(),
                        nid: nid.into(),
                        key: key.into(),
                        owner: e.owner.clone(),
                    });
                }
            }
            _ => {
                return Err(NdbError::DeleteMissing {
                    table: table.into(),
                    nid: nid.into(),
                    key: key.into(),
                })
            }
        }
        self.local_write(now, k, TableEventType::Delete, Vec::new())
    }

    fn local_write(
        &mut self,
        now: Instant,
        k: EntryKey,
        kind: TableEventType,
        value: Vec<u8>,
    ) -> Result<(), NdbError> {
        let deleting = kind == TableEventType::Delete;
        let ltime = self.table_clock.saturating_add(1);
        let ev = TableEvent {
            r#type: kind as i32,
            l_time: ltime,
            node_name: self.name.clone(),
            network_id: k.0.clone(),
            table_name: k.1.clone(),
            key: k.2.clone(),
            value: value.clone(),
            residual_reap_time: if deleting {
                self.cfg.reap_entry_interval.as_secs().min(i32::MAX as u64) as i32
            } else {
                0
            },
        };
        let bytes = ev.encode_gossip();
        let budget = self.gossip_budget();
        if bytes.len() > budget {
            return Err(NdbError::ValueTooLarge {
                len: value.len(),
                max: budget.saturating_sub(bytes.len() - value.len()),
            });
        }
        self.table_clock = ltime;
        self.entries.insert(
            k.clone(),
            Entry {
                owner: self.name.clone(),
                ltime,
                value,
                deleting,
                reap_at: deleting.then(|| now + self.cfg.reap_entry_interval),
            },
        );
        if let Some(net) = self.local.get_mut(&k.0) {
            let name = format!("{}\0{}", k.1, k.2);
            net.own.queue(Some(name.as_bytes()), bytes);
        }
        Ok(())
    }

    // ------------------------------------------------------------- timers

    /// One per-network gossip round: for every joined network with
    /// something queued, one compound to up to `fanout` random peers.
    /// With a `view` (from [`swimnet_core::Memberlist::topology_view`],
    /// taken just before), the peers are biased toward near ones, with at
    /// least one uniform pick per round; `None` chooses uniformly.
    pub fn gossip_tick(&mut self, view: Option<&TopologyView>) {
        let nids: Vec<String> = self.networks();
        let budget = self.cfg.packet_buffer_size.saturating_sub(PACKET_OVERHEAD);
        for nid in nids {
            let queued = self
                .local
                .get(&nid)
                .is_some_and(|n| !n.own.is_empty() || !n.relay.is_empty());
            if !queued {
                continue;
            }
            let peers = self.peer_addrs(&nid);
            if peers.is_empty() {
                // Nobody to tell yet. Keep the newest events for a peer that
                // attaches later (older ones reach it by bulk sync) instead
                // of letting the queue grow with every write.
                if let Some(net) = self.local.get_mut(&nid) {
                    net.own.prune(LONE_QUEUE_MAX);
                    net.relay.prune(LONE_QUEUE_MAX);
                }
                continue;
            }
            self.maybe_push_backlog(&nid, &peers);
            let n_nodes = peers.len() + 1;
            // Events of our own that have not been sent yet go to uniformly
            // random peers, so they enter every region on their first round
            // rather than through the one uniform slot of each round. Relays
            // stay biased; this costs about 1 % more cross-region bytes (no
            // effect on write latency could be measured over two seeds).
            let fresh_own = self
                .local
                .get(&nid)
                .is_some_and(|n| n.own.untransmitted_more_than(0));
            let chosen = if fresh_own {
                self.pick(peers, self.cfg.fanout)
            } else {
                self.choose_peers(peers, self.cfg.fanout, view, Some(&nid))
            };
            let Some(net) = self.local.get_mut(&nid) else {
                continue;
            };
            let mut parts = net
                .own
                .get_broadcasts(COMPOUND_PART_OVERHEAD, budget, n_nodes);
            let used: usize = parts.iter().map(|p| p.len() + COMPOUND_PART_OVERHEAD).sum();
            if budget > used {
                parts.extend(net.relay.get_broadcasts(
                    COMPOUND_PART_OVERHEAD,
                    budget - used,
                    n_nodes,
                ));
            }
            if parts.is_empty() {
                continue;
            }
            let compound = wire::encode_compound(&parts);
            for (_, addr) in chosen {
                self.stats.gossip_packets += 1;
                self.outbox
                    .push_back(Outgoing::Packet(addr, compound.clone()));
            }
        }
    }

    /// Backlog push: when this node's own untransmitted events of `nid` are
    /// more than [`NdbConfig::backlog_push_bytes`], they leave the gossip
    /// queue and go to the network's peers in one stream each, as a bulk
    /// sync with `unsolicited = false` and no network list. Docker treats
    /// such a message as the answer to a sync and simply applies its events;
    /// swimnet recognises it by the empty network list. Gossip would need
    /// `backlog / packet size * retransmits` rounds for the same events.
    fn maybe_push_backlog(&mut self, nid: &str, peers: &[(String, SocketAddr)]) {
        let threshold = self.cfg.backlog_push_bytes;
        let Some(net) = self.local.get_mut(nid) else {
            return;
        };
        if threshold == 0 || net.own.untransmitted_bytes() <= threshold {
            return;
        }
        let parts = net.own.take_untransmitted();
        let everyone = peers.len() <= self.cfg.backlog_push_peers;
        if !everyone {
            // Gossip still has to reach the peers the push skips.
            for p in &parts {
                net.own.queue(None, p.clone());
            }
        }
        self.stats.backlog_events_pushed += parts.len() as u64;
        let msg = BulkSyncMessage {
            l_time: self.table_clock,
            unsolicited: false,
            node_name: self.name.clone(),
            networks: Vec::new(),
            payload: wire::encode_compound(&parts),
        }
        .encode_gossip();
        let targets = self.pick(peers.to_vec(), self.cfg.backlog_push_peers);
        for (_, addr) in targets {
            self.stats.backlog_pushes_sent += 1;
            self.outbox.push_back(Outgoing::Stream(addr, msg.clone()));
        }
    }

    /// Periodic anti-entropy: every joined network not yet covered this round
    /// is synced with one random peer; a sync covers all networks shared
    /// with that peer. Peers with a sync still pending are skipped. With a
    /// `view`, the peer is a near one most of the time (see
    /// [`Self::gossip_tick`]); `None` chooses uniformly.
    pub fn bulk_sync_tick(&mut self, now: Instant, view: Option<&TopologyView>) {
        let mut covered: BTreeSet<String> = BTreeSet::new();
        for nid in self.networks() {
            if covered.contains(&nid) {
                continue;
            }
            let peers: Vec<(String, SocketAddr)> = self
                .peer_addrs(&nid)
                .into_iter()
                .filter(|(p, _)| !self.syncs.iter().any(|s| &s.peer == p))
                .collect();
            let Some((peer, addr)) = self.choose_peers(peers, 1, view, None).pop() else {
                continue;
            };
            let common: Vec<String> = self
                .networks()
                .into_iter()
                .filter(|n| {
                    self.attachments
                        .get(&peer)
                        .and_then(|a| a.get(n))
                        .is_some_and(|a| !a.leaving)
                })
                .collect();
            covered.extend(common.iter().cloned());
            self.start_bulk_sync(now, &peer, addr, common, None);
        }
    }

    fn start_bulk_sync(
        &mut self,
        now: Instant,
        peer: &str,
        addr: SocketAddr,
        networks: Vec<String>,
        join_network: Option<&str>,
    ) {
        let (ltime, msg) = self.build_bulk_sync(now, networks, true, peer);
        self.syncs.push(PendingSync {
            peer: peer.to_string(),
            ltime,
            deadline: now + self.cfg.bulk_sync_timeout,
            join_network: join_network.map(str::to_string),
        });
        self.stats.bulk_syncs_sent += 1;
        self.outbox.push_back(Outgoing::Stream(addr, msg));
    }

    fn build_bulk_sync(
        &mut self,
        now: Instant,
        networks: Vec<String>,
        unsolicited: bool,
        receiver: &str,
    ) -> (u64, Vec<u8>) {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        // Attachments first (moby PR #53437), so the receiver learns who is
        // attached before it sees their entries. Not about the receiver.
        for nid in &networks {
            if let Some(n) = self.local.get(nid) {
                parts.push(
                    NetworkEvent {
                        r#type: if n.leaving {
                            NetworkEventType::Leave
                        } else {
                            NetworkEventType::Join
                        } as i32,
                        l_time: n.ltime,
                        node_name: self.name.clone(),
                        network_id: nid.clone(),
                    }
                    .encode_gossip(),
                );
            }
            for (node, nets) in &self.attachments {
                if node == receiver {
                    continue;
                }
                if let Some(a) = nets.get(nid) {
                    parts.push(
                        NetworkEvent {
                            r#type: if a.leaving {
                                NetworkEventType::Leave
                            } else {
                                NetworkEventType::Join
                            } as i32,
                            l_time: a.ltime,
                            node_name: node.clone(),
                            network_id: nid.clone(),
                        }
                        .encode_gossip(),
                    );
                }
            }
        }
        for nid in &networks {
            let start = (nid.clone(), String::new(), String::new());
            for (k, e) in self.entries.range(start..).take_while(|(k, _)| &k.0 == nid) {
                let residual = match (e.deleting, e.reap_at) {
                    (true, Some(at)) => at.saturating_duration_since(now).as_secs().max(1),
                    (true, None) => self.cfg.reap_entry_interval.as_secs(),
                    _ => 0,
                };
                parts.push(
                    TableEvent {
                        r#type: if e.deleting {
                            TableEventType::Delete
                        } else {
                            TableEventType::Create
                        } as i32,
                        l_time: e.ltime,
                        node_name: e.owner.clone(),
                        network_id: k.0.clone(),
                        table_name: k.1.clone(),
                        key: k.2.clone(),
                        value: e.value.clone(),
                        residual_reap_time: residual.min(i32::MAX as u64) as i32,
                    }
                    .encode_gossip(),
                );
            }
        }
        let ltime = increment(&mut self.table_clock);
        let msg = BulkSyncMessage {
            l_time: ltime,
            unsolicited,
            node_name: self.name.clone(),
            networks,
            payload: wire::encode_compound(&parts),
        };
        (ltime, msg.encode_gossip())
    }

    /// Gives up on bulk syncs past their deadline; a network whose join
    /// syncs are all done or given up is marked in sync.
    pub fn expire_syncs(&mut self, now: Instant) {
        let mut finished = Vec::new();
        self.syncs.retain(|s| {
            if s.deadline <= now {
                finished.push(s.join_network.clone());
                false
            } else {
                true
            }
        });
        self.stats.bulk_sync_timeouts += finished.len() as u64;
        for nid in finished.into_iter().flatten() {
            self.maybe_in_sync(&nid);
        }
    }

    /// The earliest pending bulk-sync deadline.
    pub fn next_sync_deadline(&self) -> Option<Instant> {
        self.syncs.iter().map(|s| s.deadline).min()
    }

    fn maybe_in_sync(&mut self, nid: &str) {
        if self
            .syncs
            .iter()
            .any(|s| s.join_network.as_deref() == Some(nid))
        {
            return;
        }
        if let Some(n) = self.local.get_mut(nid) {
            if !n.leaving {
                n.in_sync = true;
            }
        }
    }

    /// Drops expired tombstones, hidden entries of failed nodes, held
    /// events, left networks and forgotten nodes.
    pub fn reap(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| e.reap_at.map_or(true, |at| at > now));
        let horizon = self.cfg.reap_entry_interval;
        let mut dropped = 0u64;
        self.held.retain(|_, v| {
            let before = v.len();
            v.retain(|(at, _)| now.saturating_duration_since(*at) < horizon);
            dropped += (before - v.len()) as u64;
            !v.is_empty()
        });
        self.stats.held_dropped += dropped;
        self.recount_held();
        self.local
            .retain(|_, n| !(n.leaving && n.reap_at.is_some_and(|at| at <= now)));
        for nets in self.attachments.values_mut() {
            nets.retain(|_, a| !(a.leaving && a.reap_at.is_some_and(|at| at <= now)));
        }
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, i)| *n != &self.name && i.reap_at.is_some_and(|at| at <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for n in gone {
            self.nodes.remove(&n);
            self.attachments.remove(&n);
            self.entries.remove_owner(&n, None);
        }
        self.attachments.retain(|_, nets| !nets.is_empty());
        self.recount_attachments();
        self.forget_old_answers(now);
    }

    fn recount_held(&mut self) {
        self.held_count = self.held.values().map(Vec::len).sum();
    }

    // --------------------------------------------------- membership events

    /// memberlist reported `node` alive (join, or back from dead/left).
    pub fn on_member_join(&mut self, now: Instant, node: &Node) {
        if *node.name == *self.name {
            return;
        }
        let owners: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|(n, i)| **n == *node.name || i.addr == Some(node.addr))
            .map(|(n, _)| n.clone())
            .collect();
        let keys = owners
            .iter()
            .flat_map(|o| self.entries.keys_of(o, None))
            .collect();
        self.watched(keys, |s| s.on_member_join_inner(now, node));
    }

    fn on_member_join_inner(&mut self, now: Instant, node: &Node) {
        let name = node.name.to_string();
        // Reincarnation: the same address under another name retires the old one.
        let stale: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, i)| {
                **n != name
                    && **n != self.name
                    && i.addr == Some(node.addr)
                    && i.state != PeerState::Left
            })
            .map(|(n, _)| n.clone())
            .collect();
        for old in stale {
            self.mark_left(&old, now);
        }
        let info = self.nodes.entry(name.clone()).or_insert(NodeInfo {
            addr: Some(node.addr),
            state: PeerState::Active,
            ltime: 0,
            reap_at: None,
        });
        info.addr = Some(node.addr);
        let was_active = info.state == PeerState::Active;
        info.state = PeerState::Active;
        self.release_parked_attachments(now, &name);
        let Some(info) = self.nodes.get_mut(&name) else {
            return;
        };
        if !was_active {
            info.state = PeerState::Active;
            info.reap_at = None;
            // Restore the suspended entries.
            self.entries.set_live_reap_of(&name, None);
            // Like Docker's reconnectNode: resynchronise the shared networks
            // with the returning node at once instead of waiting for the
            // periodic bulk sync.
            let common: Vec<String> = self
                .networks()
                .into_iter()
                .filter(|n| {
                    self.attachments
                        .get(&name)
                        .and_then(|a| a.get(n))
                        .is_some_and(|a| !a.leaving)
                })
                .collect();
            if !common.is_empty() && !self.syncs.iter().any(|s| s.peer == name) {
                self.start_bulk_sync(now, &name, node.addr, common, None);
            }
        }
    }

    /// memberlist reported `node` dead or left. Without a prior NodeEvent
    /// LEAVE the node is *failed*: suspended, its entries hidden and set to
    /// expire after [`NdbConfig::reap_entry_interval`].
    pub fn on_member_leave(&mut self, now: Instant, node: &Node) {
        let name = node.name.to_string();
        if name == self.name {
            return;
        }
        let keys = self.entries.keys_of(&name, None);
        self.watched(keys, |s| s.on_member_leave_inner(now, &name));
    }

    fn on_member_leave_inner(&mut self, now: Instant, name: &str) {
        let reap = now + self.cfg.reap_entry_interval;
        let node_reap = now + self.cfg.node_reap_interval;
        if let Some(info) = self.nodes.get_mut(name) {
            if info.state == PeerState::Active {
                info.state = PeerState::Failed;
                info.reap_at = Some(node_reap);
                self.entries.set_live_reap_of(name, Some(reap));
            }
        }
    }

    fn mark_left(&mut self, name: &str, now: Instant) {
        let reap = now + self.cfg.node_reap_interval;
        if let Some(info) = self.nodes.get_mut(name) {
            info.state = PeerState::Left;
            info.reap_at = Some(reap);
        }
        self.entries.remove_owner(name, None);
        self.attachments.remove(name);
        self.recount_attachments();
        self.held.retain(|(o, _), _| o != name);
        self.recount_held();
    }

    // ------------------------------------------------------------ handlers

    fn handle_node_event(&mut self, now: Instant, ev: &NodeEvent) -> bool {
        let keys = self.entries.keys_of(&ev.node_name, None);
        self.watched(keys, |s| s.handle_node_event_inner(now, ev))
    }

    fn handle_node_event_inner(&mut self, now: Instant, ev: &NodeEvent) -> bool {
        if !witness(&mut self.network_clock, ev.l_time) {
            self.stats.clock_far_future += 1;
            return false;
        }
        if ev.node_name == self.name {
            return false;
        }
        let Some(info) = self.nodes.get_mut(&ev.node_name) else {
            return false;
        };
        if ev.l_time <= info.ltime {
            return false;
        }
        info.ltime = ev.l_time;
        match NodeEventType::try_from(ev.r#type) {
            Ok(NodeEventType::Leave) => {
                let name = ev.node_name.clone();
                self.mark_left(&name, now);
            }
            _ => {
                if info.state != PeerState::Active && info.addr.is_some() {
                    info.state = PeerState::Active;
                    info.reap_at = None;
                    let name = ev.node_name.clone();
                    self.entries.set_live_reap_of(&name, None);
                }
            }
        }
        true
    }

    fn handle_network_event(&mut self, now: Instant, ev: &NetworkEvent) -> bool {
        if !witness(&mut self.network_clock, ev.l_time) {
            self.stats.clock_far_future += 1;
            return false;
        }
        if ev.node_name == self.name {
            return false;
        }
        let leave = NetworkEventType::try_from(ev.r#type) == Ok(NetworkEventType::Leave);
        if matches!(
            self.nodes.get(&ev.node_name).map(|n| n.state),
            Some(PeerState::Left)
        ) {
            return false;
        }
        if !self.attachment_owner_known(ev) {
            return false;
        }
        let known = self
            .attachments
            .get(&ev.node_name)
            .is_some_and(|n| n.contains_key(&ev.network_id));
        if !known && (leave || !self.attachment_room(&ev.node_name)) {
            return false;
        }
        let reap = now + self.cfg.reap_network_interval;
        let nets = self.attachments.entry(ev.node_name.clone()).or_default();
        match nets.get_mut(&ev.network_id) {
            Some(a) => {
                if a.ltime >= ev.l_time {
                    return false;
                }
                a.ltime = ev.l_time;
                a.leaving = leave;
                a.reap_at = leave.then_some(reap);
            }
            None => {
                nets.insert(
                    ev.network_id.clone(),
                    Attachment {
                        ltime: ev.l_time,
                        leaving: false,
                        reap_at: None,
                    },
                );
                self.attachment_count += 1;
            }
        }
        let key = (ev.node_name.clone(), ev.network_id.clone());
        if leave {
            // Hard-delete the leaver's entries in that network, drop held ones.
            let (node, nid) = (&ev.node_name, &ev.network_id);
            let keys = self.entries.keys_of(node, Some(nid));
            self.watched(keys, |s| s.entries.remove_owner(node, Some(nid)));
            if let Some(v) = self.held.remove(&key) {
                self.stats.held_dropped += v.len() as u64;
            }
            self.recount_held();
        } else if let Some(v) = self.held.remove(&key) {
            self.recount_held();
            for (_, tev) in v {
                self.stats.held_released += 1;
                self.process_table_event(now, tev, Source::Gossip);
            }
        }
        true
    }

    fn owner_attachment(&self, owner: &str, nid: &str) -> Option<&Attachment> {
        self.attachments.get(owner).and_then(|a| a.get(nid))
    }

    /// Applies a table event; returns whether to relay it.
    fn handle_table_event(&mut self, now: Instant, ev: &TableEvent, src: Source) -> bool {
        if ev.node_name == self.name {
            return false;
        }
        if !witness(&mut self.table_clock, ev.l_time) {
            self.stats.clock_far_future += 1;
            return false;
        }
        let Some(net) = self.local.get(&ev.network_id) else {
            return false;
        };
        if net.leaving {
            return false;
        }
        match self.owner_attachment(&ev.node_name, &ev.network_id) {
            Some(a) if !a.leaving => {}
            Some(_) => return false,
            None => {
                if matches!(
                    self.nodes.get(&ev.node_name).map(|n| n.state),
                    Some(PeerState::Left)
                ) {
                    return false;
                }
                // Hold it until the owner's attachment is known.
                if self.held_count >= self.cfg.max_held_events {
                    self.stats.held_dropped += 1;
                    return false;
                }
                self.held
                    .entry((ev.node_name.clone(), ev.network_id.clone()))
                    .or_default()
                    .push((now, ev.clone()));
                self.held_count += 1;
                self.stats.table_events_held += 1;
                return false;
            }
        }
        let deleting = TableEventType::try_from(ev.r#type) == Ok(TableEventType::Delete);
        let k = (ev.network_id.clone(), ev.table_name.clone(), ev.key.clone());
        let existing = self.entries.get(&k);
        let known = existing.is_some();
        if let Some(e) = existing {
            let new = (
                ev.l_time,
                ev.node_name.as_str(),
                deleting,
                ev.value.as_slice(),
            );
            let old = (e.ltime, e.owner.as_str(), e.deleting, e.value.as_slice());
            if new <= old {
                self.stats.table_events_stale += 1;
                return false;
            }
        }
        let was_live = existing.is_some_and(|e| !e.deleting);
        if !self.remote_event_within_limits(ev, !known) {
            return false;
        }
        if !deleting
            && !was_live
            && self.live_count(&ev.network_id, &ev.table_name) >= self.cfg.max_entries_per_table
        {
            self.stats.table_full_drops += 1;
            return false;
        }
        let owner_failed = matches!(
            self.nodes.get(&ev.node_name).map(|n| n.state),
            Some(PeerState::Failed)
        );
        let reap_at = if deleting {
            let secs = if ev.residual_reap_time > 0 {
                Duration::from_secs(ev.residual_reap_time as u64)
            } else {
                self.cfg.reap_entry_interval
            };
            Some(now + secs)
        } else if owner_failed {
            Some(now + self.cfg.reap_entry_interval)
        } else {
            None
        };
        self.entries.insert(
            k,
            Entry {
                owner: ev.node_name.clone(),
                ltime: ev.l_time,
                value: ev.value.clone(),
                deleting,
                reap_at,
            },
        );
        self.stats.table_events_applied += 1;
        let Some(net) = self.local.get(&ev.network_id) else {
            return false;
        };
        if !net.in_sync {
            return false;
        }
        match src {
            Source::Push => return false,
            Source::Bulk if net.relay.len() >= self.cfg.max_relay_queue_on_sync => return false,
            _ => {}
        }
        if deleting && !known {
            let residual = u64::try_from(ev.residual_reap_time).unwrap_or(0);
            return residual > self.cfg.reap_entry_interval.as_secs() / 6;
        }
        true
    }

    fn process_table_event(&mut self, now: Instant, ev: TableEvent, src: Source) {
        let k = (ev.network_id.clone(), ev.table_name.clone(), ev.key.clone());
        if self.watched(vec![k], |s| s.handle_table_event(now, &ev, src)) {
            let name = format!("{}\0{}", ev.table_name, ev.key);
            if let Some(net) = self.local.get_mut(&ev.network_id) {
                net.relay.queue(Some(name.as_bytes()), ev.encode_gossip());
                self.stats.table_events_relayed += 1;
                self.bound_relay_queue(&ev.network_id);
            }
        }
    }

    fn handle_bulk_sync(&mut self, now: Instant, from: SocketAddr, b: BulkSyncMessage) {
        // The answer to a sync this node asked a member for may move the
        // clock any distance (a fresh node catching up); anything else only
        // within the window.
        let ours = !b.unsolicited && self.syncs.iter().any(|s| s.peer == b.node_name);
        let clock_ok = if ours {
            guard::catch_up(&mut self.table_clock, b.l_time)
        } else {
            witness(&mut self.table_clock, b.l_time)
        };
        if !clock_ok {
            self.stats.clock_far_future += 1;
            return;
        }
        if b.node_name == self.name || !self.bulk_sync_sender_known(&b.node_name) {
            return;
        }
        if !b.unsolicited && b.networks.is_empty() {
            self.handle_backlog_push(now, b);
            return;
        }
        self.stats.bulk_syncs_received += 1;
        // Every pending sync to that peer older than this message is answered.
        let mut done = Vec::new();
        let before = self.syncs.len();
        self.syncs.retain(|s| {
            if s.peer == b.node_name && s.ltime < b.l_time {
                done.push(s.join_network.clone());
                false
            } else {
                true
            }
        });
        self.stats.bulk_syncs_completed += (before - self.syncs.len()) as u64;
        self.apply_bulk_attachments(now, &b, Source::Bulk);
        for nid in done.into_iter().flatten() {
            self.maybe_in_sync(&nid);
        }
        if b.unsolicited {
            let Some(nets) = self.networks_to_answer(now, &b.node_name, &b.networks) else {
                return;
            };
            let addr = self
                .nodes
                .get(&b.node_name)
                .and_then(|n| n.addr)
                .unwrap_or(from);
            let (_, msg) = self.build_bulk_sync(now, nets, false, &b.node_name);
            self.stats.bulk_syncs_sent += 1;
            self.outbox.push_back(Outgoing::Stream(addr, msg));
        }
    }

    /// Applies the network events of a bulk sync's payload (attachments
    /// first, so its entries find their owners attached) and returns its
    /// table events; undecodable parts are counted and skipped.
    ///
    /// The payload is read twice, attachments on the first pass and table
    /// events on the second, so nothing of it is collected in memory.
    fn apply_bulk_attachments(&mut self, now: Instant, b: &BulkSyncMessage, src: Source) {
        b.for_each_payload_message(&mut |m| match m {
            Ok(Message::NetworkEvent(ev)) => {
                self.handle_network_event(now, &ev);
            }
            Ok(_) => {}
            Err(e) => self.count_decode_error(&e),
        });
        b.for_each_payload_message(&mut |m| {
            if let Ok(Message::TableEvent(ev)) = m {
                let src = match src {
                    Source::Push
                        if self.peer_addrs(&ev.network_id).len() >= self.cfg.backlog_push_peers =>
                    {
                        Source::Bulk
                    }
                    other => other,
                };
                self.process_table_event(now, ev, src);
            }
        });
    }

    fn count_decode_error(&mut self, e: &wire::DecodeError) {
        self.stats.decode_errors += 1;
        if matches!(e, wire::DecodeError::TooManyParts { .. }) {
            self.stats.compounds_too_many_parts += 1;
        }
    }

    /// A backlog push (see [`Self::maybe_push_backlog`]): the sender's own
    /// events, sent once to (up to `backlog_push_peers` of) the network's
    /// peers. Applied like bulk-synced events; relayed only when the
    /// network is larger than a push reaches. Answers no pending sync.
    fn handle_backlog_push(&mut self, now: Instant, b: BulkSyncMessage) {
        self.stats.backlog_pushes_received += 1;
        self.apply_bulk_attachments(now, &b, Source::Push);
    }

    /// Handles every message in `buf`, paying its compound parts from
    /// `budget` when it came in a datagram (see
    /// [`wire::for_each_message_in_budget`]).
    fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
        budget: Option<&mut DecodeBudget>,
    ) {
        let mut handle = |m| match m {
            Ok(Message::NodeEvent(ev)) => {
                if self.handle_node_event(now, &ev) {
                    self.queue_node_event(&ev);
                }
            }
            Ok(Message::NetworkEvent(ev)) => {
                if self.handle_network_event(now, &ev) {
                    self.queue_network_event(&ev);
                }
            }
            Ok(Message::TableEvent(ev)) => self.process_table_event(now, ev, Source::Gossip),
            Ok(Message::BulkSync(b)) => self.handle_bulk_sync(now, from, b),
            Ok(Message::PushPull(_)) | Ok(Message::Compound(_)) => {}
            Err(e) => self.count_decode_error(&e),
        };
        match budget {
            Some(budget) => wire::for_each_message_in_budget(buf, budget, &mut handle),
            None => wire::for_each_message(buf, &mut handle),
        }
    }

    fn push_pull_state(&mut self, join: bool) -> NetworkPushPull {
        if join {
            let t = increment(&mut self.network_clock);
            for n in self.local.values_mut() {
                n.ltime = t;
            }
        }
        let mut networks = Vec::new();
        for (nid, n) in &self.local {
            networks.push(wire::NetworkEntry {
                network_id: nid.clone(),
                l_time: n.ltime,
                node_name: self.name.clone(),
                leaving: n.leaving,
            });
        }
        for (node, nets) in &self.attachments {
            for (nid, a) in nets {
                networks.push(wire::NetworkEntry {
                    network_id: nid.clone(),
                    l_time: a.ltime,
                    node_name: node.clone(),
                    leaving: a.leaving,
                });
            }
        }
        NetworkPushPull {
            l_time: self.network_clock,
            networks,
            node_name: self.name.clone(),
        }
    }

    /// The address this node advertises.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Delegate for NdbDelegate {
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

/// NetworkDB's random source (splitmix64 over one `u64` of state) as a
/// [`RngCore`], so the core's [`swimnet_core::topology`] can draw from it.
struct SplitMix<'a>(&'a mut u64);

impl RngCore for SplitMix<'_> {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        *self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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

    fn recount(d: &NdbDelegate) -> BTreeMap<(String, String), usize> {
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
        let mut d = NdbDelegate::new("me".into(), addr(1), cfg, 4, 7);
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
        }
        assert!(d.entries.len() > 10, "the mix left entries behind");
    }

    /// A node attached to network `n1` with 40 peers, p0..p9 near (1 ms)
    /// and p10..p39 far (80 ms).
    fn attached_with_peers(now: Instant) -> (NdbDelegate, TopologyView) {
        let mut d = NdbDelegate::new("me".into(), addr(1), NdbConfig::default(), 4, 11);
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
}
