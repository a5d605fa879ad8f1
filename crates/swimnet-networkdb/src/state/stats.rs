//! [`NdbStats`]: NetworkDB's counters.

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
    /// Table and network changes dropped because nobody polled them.
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
    /// Bulk syncs that came in a datagram and were dropped: peers send them
    /// over TCP only, and a datagram's decode budget does not stretch to a
    /// whole table dump.
    pub bulk_syncs_in_datagram: u64,
    /// Events about this node's own entries, newer than its stored version
    /// (written by its previous run), taken as its own
    /// ([`NdbConfig::adopt_own_entries`]).
    pub own_entries_adopted: u64,
}
