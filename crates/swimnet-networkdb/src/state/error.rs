//! [`NdbError`]: why a local NetworkDB command was refused.

/// What went wrong with a NetworkDB command. The entry texts are Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdbError {
    /// `join_network` on a network already joined.
    #[error("network {0} is already joined")]
    AlreadyJoined(String),
    /// `leave_network`, an entry command or [`crate::NetworkDb::check_attached`]
    /// on a network not joined (Docker's text).
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

/// The class of an [`NdbError`], for callers that map errors to their own
/// codes (an HTTP status, an exit code) without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdbErrorKind {
    /// A read or delete of an entry that is not there (missing, deleted,
    /// or its owner failed).
    NotFound,
    /// The command names a network this node is not attached to.
    NotAttached,
    /// The command contradicts the current state: the network is joined
    /// already, the entry exists already or is missing for an update, or
    /// another node owns it.
    Conflict,
    /// The key or value is outside the configured limits.
    Invalid,
    /// A store, table or network limit is reached.
    LimitReached,
}

impl NdbError {
    /// The class of this error (see [`NdbErrorKind`]).
    pub fn kind(&self) -> NdbErrorKind {
        match self {
            NdbError::NotFound { .. }
            | NdbError::Deleted { .. }
            | NdbError::DeleteMissing { .. } => NdbErrorKind::NotFound,
            NdbError::NetworkNotJoined(_) => NdbErrorKind::NotAttached,
            NdbError::AlreadyJoined(_)
            | NdbError::EntryExists { .. }
            | NdbError::UpdateMissing { .. }
            | NdbError::NotOwner { .. } => NdbErrorKind::Conflict,
            NdbError::BadKey { .. } | NdbError::ValueTooLarge { .. } => NdbErrorKind::Invalid,
            NdbError::TooManyTables { .. }
            | NdbError::StoreFull { .. }
            | NdbError::TableFull { .. } => NdbErrorKind::LimitReached,
        }
    }
}
