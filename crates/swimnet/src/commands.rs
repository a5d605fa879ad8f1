//! What the local API (or the agent) asks of the driver, and the answers:
//! the command channel's types. The driver carries them out on its node
//! (see [`crate::agent_node::AgentNode`]); nothing here touches a socket.

use std::net::SocketAddr;
use std::sync::Arc;

use swimnet_core::coordinate::Coordinate;
use swimnet_core::{Node, Stats};
use swimnet_networkdb::TableEntry;
use tokio::sync::{broadcast, oneshot};

use crate::agent_events::Published;
use crate::driver::DriverStats;

/// Events buffered per watcher; a watcher further behind is dropped.
pub const WATCH_BUFFER: usize = crate::agent_events::EVENT_BUFFER;

/// What the local API (or the agent) asks of the driver.
#[derive(Debug)]
pub enum Command {
    /// Snapshot of the member table.
    Members(oneshot::Sender<Vec<Node>>),
    /// Join through these addresses; answers with the number that worked, or
    /// every error when none did.
    Join(Vec<SocketAddr>, oneshot::Sender<Result<usize, String>>),
    /// Leave gracefully; answers once the leave has gone out (or timed out).
    /// The driver then stops.
    Leave(oneshot::Sender<()>),
    /// A keyring change or listing.
    Keys(KeyCommand, oneshot::Sender<Result<KeyringView, String>>),
    /// A cluster-wide key operation; answers with its report once every
    /// member answered or the timeout passed, or why it could not start.
    ClusterKeys {
        /// The operation.
        op: crate::cluster_keys::KeyOp,
        /// How long to wait for answers.
        timeout: std::time::Duration,
        /// The report.
        reply: oneshot::Sender<Result<crate::cluster_keys::KeyOpReport, String>>,
    },
    /// Counters and identity.
    Stats(oneshot::Sender<StatusView>),
    /// Replace our metadata (announced with a new incarnation).
    SetMeta(Vec<u8>, oneshot::Sender<Result<(), String>>),
    /// Our Vivaldi coordinate and the latest known coordinate of each peer.
    Coordinates(oneshot::Sender<CoordinatesSnapshot>),
    /// A NetworkDB command (networks and tables); fails with
    /// [`TableError::NotNetworkDb`] unless the agent runs `--protocol networkdb`.
    Table(
        TableCommand,
        oneshot::Sender<Result<TableReply, TableError>>,
    ),
    /// A Serf command (events, queries, tags, force-leave, key queries);
    /// fails with a clear message unless the agent runs `--protocol serf`.
    Serf(
        crate::serf_cmd::SerfCommand,
        oneshot::Sender<Result<crate::serf_cmd::SerfReply, String>>,
    ),
    /// Watch a table: answers with its live entries and a subscription to
    /// every later change (of any table; the subscriber filters), taken
    /// together so no change falls between them.
    Watch {
        /// Network.
        nid: String,
        /// Table.
        table: String,
        /// The snapshot and the subscription.
        reply: oneshot::Sender<Result<WatchStart, TableError>>,
    },
    /// The state kept across a restart (`--data-dir`), see
    /// [`crate::snapshot::capture`].
    Snapshot(oneshot::Sender<crate::snapshot::Snapshot>),
    /// A subscription to every event published after it (see
    /// [`crate::agent_events`]); it closes when the driver stops.
    Subscribe(oneshot::Sender<broadcast::Receiver<Arc<Published>>>),
    /// Answer a Serf query this node received (a [`crate::agent_events::AgentEvent::Query`]).
    RespondQuery {
        /// The query's handle.
        id: u64,
        /// The response.
        payload: Vec<u8>,
        /// Whether the response went out, or why not.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// The start of a table watch.
#[derive(Debug)]
pub struct WatchStart {
    /// The live entries when the watch started, by key.
    pub entries: Vec<TableEntry>,
    /// Every event after the snapshot (table changes remote or made
    /// through this agent among them; the watcher filters).
    /// Bounded ([`WATCH_BUFFER`]): a receiver that falls behind gets
    /// `Lagged` and should stop.
    pub changes: broadcast::Receiver<Arc<Published>>,
}

/// A NetworkDB command.
#[derive(Debug, Clone)]
pub enum TableCommand {
    /// The networks this node is attached to.
    Networks,
    /// Attach to a network.
    JoinNetwork(String),
    /// Detach from a network.
    LeaveNetwork(String),
    /// Active nodes attached to a network (this one included when attached).
    NetworkPeers(String),
    /// Answers [`TableReply::Done`] when this node is attached to the
    /// network, else [`TableError::NotAttached`] (the API asks it before a
    /// read, so a network not joined does not look empty).
    CheckAttached(String),
    /// Active nodes of the cluster.
    ClusterPeers,
    /// `(entries, queue length)` of a network, Docker's `/networkstats`.
    NetworkStats(String),
    /// Create an entry owned by this node.
    Create {
        /// Network.
        nid: String,
        /// Table.
        table: String,
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
    /// Update an entry owned by this node.
    Update {
        /// Network.
        nid: String,
        /// Table.
        table: String,
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
    /// Create the entry, or update it when it exists (`PUT`).
    Put {
        /// Network.
        nid: String,
        /// Table.
        table: String,
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
    /// Delete an entry owned by this node.
    Delete {
        /// Network.
        nid: String,
        /// Table.
        table: String,
        /// Key.
        key: String,
    },
    /// Read one live entry.
    Get {
        /// Network.
        nid: String,
        /// Table.
        table: String,
        /// Key.
        key: String,
    },
    /// Read the live entries of a table.
    List {
        /// Network.
        nid: String,
        /// Table.
        table: String,
    },
    /// Read the entries of a table including those of failed owners not
    /// yet reaped (hidden from [`TableCommand::List`]).
    ListWithFailed {
        /// Network.
        nid: String,
        /// Table.
        table: String,
    },
}

/// The answer to a [`TableCommand`].
#[derive(Debug, Clone)]
pub enum TableReply {
    /// Done.
    Done,
    /// Network names.
    Networks(Vec<String>),
    /// Peers: node name and IP (`None`: address unknown).
    Peers(Vec<(String, Option<std::net::IpAddr>)>),
    /// Network stats; `None` when this node is not attached.
    Stats(Option<(usize, usize)>),
    /// One live value.
    Value(Vec<u8>),
    /// Table entries, by key.
    Entries(Vec<TableEntry>),
}

/// Why a [`TableCommand`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The agent does not run NetworkDB.
    #[error("this agent does not run NetworkDB: start it with `swimnet agent --protocol networkdb` to use networks and tables")]
    NotNetworkDb,
    /// No such entry (or network).
    #[error("{0}")]
    NotFound(String),
    /// This node is not attached to the network named.
    #[error("not attached to {0}")]
    NotAttached(String),
    /// The command failed; NetworkDB's message.
    #[error("{0}")]
    Failed(String),
}

/// A keyring command.
#[derive(Debug, Clone)]
pub enum KeyCommand {
    /// List the keys.
    List,
    /// Add a key (not primary).
    Install(Vec<u8>),
    /// Make a key primary.
    Use(Vec<u8>),
    /// Remove a key (not the primary).
    Remove(Vec<u8>),
}

/// The keyring as the API shows it (raw key bytes, primary first).
#[derive(Debug, Clone)]
pub struct KeyringView {
    /// Keys, primary first.
    pub keys: Vec<Vec<u8>>,
}

/// Identity and counters.
#[derive(Debug, Clone)]
pub struct StatusView {
    /// Our node name.
    pub name: String,
    /// Our incarnation.
    pub incarnation: u32,
    /// Lifeguard awareness score.
    pub health_score: usize,
    /// Core counters.
    pub stats: Stats,
    /// Driver counters.
    pub driver: DriverStats,
    /// Members of the table by state.
    pub members: crate::figures::MemberCounts,
    /// memberlist broadcasts waiting to be gossiped.
    pub broadcast_queue: u64,
    /// A leave has started (the agent is shutting down).
    pub leaving: bool,
    /// What the node kind (Serf, NetworkDB) adds.
    pub layer: crate::figures::LayerFigures,
}

/// Network coordinates known to the agent.
#[derive(Debug, Clone)]
pub struct CoordinatesSnapshot {
    /// Our node name.
    pub name: String,
    /// Every known coordinate by node name, ours included; `None` when
    /// coordinates are turned off.
    pub coordinates: Option<Vec<(String, Coordinate)>>,
    /// Names of the nodes in the member table.
    pub members: Vec<String>,
}

/// Callers waiting for a [`Command::Join`]: each waits until every address
/// it gave has a join result, then gets the number that worked or every
/// error.
#[derive(Debug, Default)]
pub(crate) struct JoinWaiters {
    waiting: Vec<JoinWaiter>,
}

#[derive(Debug)]
struct JoinWaiter {
    pending: Vec<SocketAddr>,
    ok: usize,
    errors: Vec<String>,
    reply: oneshot::Sender<Result<usize, String>>,
}

impl JoinWaiters {
    /// Call once a join through `addrs` has started; `reply` is answered
    /// when the last of them has a result.
    pub(crate) fn add(
        &mut self,
        addrs: Vec<SocketAddr>,
        reply: oneshot::Sender<Result<usize, String>>,
    ) {
        self.waiting.push(JoinWaiter {
            pending: addrs,
            ok: 0,
            errors: Vec::new(),
            reply,
        });
    }

    /// Call with every join result the node reports; answers the caller
    /// that waited on `addr` once it has all its results.
    pub(crate) fn on_result(
        &mut self,
        addr: SocketAddr,
        result: &Result<usize, swimnet_core::JoinError>,
    ) {
        let Some(i) = self.waiting.iter().position(|w| w.pending.contains(&addr)) else {
            return;
        };
        let w = &mut self.waiting[i];
        w.pending.retain(|a| *a != addr);
        match result {
            Ok(_) => w.ok += 1,
            Err(err) => w.errors.push(format!("{addr}: {err}")),
        }
        if w.pending.is_empty() {
            let w = self.waiting.swap_remove(i);
            let r = if w.ok > 0 {
                Ok(w.ok)
            } else {
                Err(w.errors.join("; "))
            };
            let _ = w.reply.send(r);
        }
    }
}
