//! NetworkDB's own settings ([`NdbConfig`]) and the sizes that budget a
//! gossip packet.

use std::time::Duration;

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
    /// Whether writes made through this node's own API are reported by
    /// [`crate::NetworkDb::poll_table_change`] too (with
    /// [`crate::ChangeOrigin::Local`]), so that one stream of changes feeds
    /// watchers. Off by default: only remote changes are reported.
    pub report_local_changes: bool,
    /// Whether an event about one of this node's own entries that is newer
    /// than its stored version (its previous run wrote it, then crashed or
    /// restarted) is taken as its own, so this node and its peers agree on
    /// it. Off by default (Docker ignores events about its own entries,
    /// since its node names are never reused); the agent turns it on, since
    /// its node names are.
    pub adopt_own_entries: bool,
    /// Whether nodes attaching to and detaching from networks (this one
    /// included) are reported by [`crate::NetworkDb::poll_network_change`].
    /// Off by default.
    pub report_network_changes: bool,
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
            report_local_changes: false,
            adopt_own_entries: false,
            report_network_changes: false,
        }
    }
}
