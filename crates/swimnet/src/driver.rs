//! The thin tokio driver: one UDP socket, one TCP listener, a timer, and a
//! command channel, around one sans-IO node: a plain [`Memberlist`] (the
//! Serf and memberlist modes) or a [`NetworkDb`] (the networkdb mode), both
//! seen through the [`SansIo`] trait.
//!
//! The driver makes no protocol decisions. It moves datagrams and stream
//! bytes between the sockets and the core, sleeps until the core's next
//! deadline, and answers local commands. Everything a peer sends is bounded
//! here before the core sees it: datagrams are read into a 64 KiB buffer,
//! streams are read in 64 KiB chunks that go straight to the core (which
//! keeps the per-stream limits and the inbound budget and says when to
//! close), with a bounded queue between the sockets and the core and a cap
//! in size and time, and the number of open connections is limited; what
//! goes over a bound is counted and logged, never fatal.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swimnet_core::coordinate::Coordinate;
use swimnet_core::{
    Config, Delegate, Event, Memberlist, Node, NodeState, Stats, StreamCommand, StreamId, Transmit,
};
use swimnet_networkdb::{NetworkDb, TableChange, TableEntry};
use swimnet_wire::security::Keyring;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::stream_io::{serve_stream, StreamIn, StreamOut};

/// Largest datagram read (memberlist's receive buffer).
const UDP_BUFFER: usize = 65_536;
/// Bytes read from one TCP connection beyond the core's largest stream
/// message (`StreamLimits::max_message_bytes`): label and frame headers.
/// The core closes a stream over its limits first; this is a backstop.
const STREAM_READ_SLACK: usize = 1024;
/// Stream events (each at most one [`STREAM_CHUNK`]) queued for the core:
/// a reader waits when the core is behind, so at most this many chunks
/// (4 MiB) are in flight between the sockets and the core.
const STREAM_QUEUE: usize = 64;
/// Most TCP connections (inbound and outbound) open at once.
const MAX_CONNECTIONS: usize = 512;
/// Read chunk for streams.
pub(crate) const STREAM_CHUNK: usize = 64 * 1024;
/// Table changes buffered per watcher; a watcher further behind is dropped.
pub const WATCH_BUFFER: usize = 1024;

/// Counters kept by the driver itself (the core keeps the protocol ones).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DriverStats {
    /// Inbound connections refused because too many were open.
    pub connections_refused: u64,
    /// Outbound connections not opened because too many were open.
    pub connections_not_opened: u64,
    /// Streams that failed in the driver: size cap, deadline, connect or IO error.
    pub stream_errors: u64,
    /// Datagram socket errors (send, receive) and accept errors.
    pub io_errors: u64,
}

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
}

/// The start of a table watch.
#[derive(Debug)]
pub struct WatchStart {
    /// The live entries when the watch started, by key.
    pub entries: Vec<TableEntry>,
    /// Every change after the snapshot, remote or made through this agent.
    /// Bounded ([`WATCH_BUFFER`]): a receiver that falls behind gets
    /// `Lagged` and should stop.
    pub changes: broadcast::Receiver<TableChange>,
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
    /// The command failed; NetworkDB's message.
    #[error("{0}")]
    Failed(String),
}

/// What the driver needs of a sans-IO node: inputs, outputs, and the few
/// accessors and commands the local API uses. Implemented by
/// [`Memberlist`] (Serf and plain memberlist modes) and [`NetworkDb`].
pub trait SansIo: Send + 'static {
    /// A datagram arrived.
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    /// A TCP connection was accepted.
    fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId;
    /// Bytes arrived on a stream.
    fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool);
    /// A stream failed.
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str);
    /// An outbound connection was actively refused (nothing listening).
    fn handle_stream_refused(&mut self, now: Instant, id: StreamId);
    /// A deadline passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Next TCP command.
    fn poll_stream(&mut self) -> Option<StreamCommand>;
    /// Next membership event.
    fn poll_event(&mut self) -> Option<Event>;
    /// Next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Our node name.
    fn name(&self) -> &str;
    /// Our incarnation.
    fn incarnation(&self) -> u32;
    /// Lifeguard awareness score.
    fn health_score(&self) -> usize;
    /// Core counters.
    fn stats(&self) -> &Stats;
    /// Core configuration.
    fn config(&self) -> &Config;
    /// Snapshot of the member table.
    fn members(&self) -> Vec<Node>;
    /// The keyring, when encryption is on.
    fn keyring(&self) -> Option<&Keyring>;
    /// Join the cluster through these addresses.
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), swimnet_core::Error>;
    /// Leave the cluster.
    fn leave(&mut self, now: Instant);
    /// Add a key.
    fn install_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error>;
    /// Make a key primary.
    fn use_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error>;
    /// Remove a key.
    fn remove_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error>;
    /// Replace our metadata.
    fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<(), String>;
    /// Send a user message (payload after the 0x08 byte) to one address.
    fn send_user_packet(&mut self, to: SocketAddr, msg: &[u8]);
    /// Every known coordinate by node name, ours included (`None` when
    /// coordinates are off).
    fn coordinates(&self) -> Option<Vec<(String, Coordinate)>>;
    /// Next change to the table store made by a remote node (NetworkDB
    /// only).
    fn poll_table_change(&mut self) -> Option<TableChange> {
        None
    }
    /// A NetworkDB command; nodes without tables refuse it.
    fn table(&mut self, _now: Instant, _cmd: TableCommand) -> Result<TableReply, TableError> {
        Err(TableError::NotNetworkDb)
    }
}

impl<D: Delegate + Send + 'static> SansIo for Memberlist<D> {
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        Memberlist::handle_packet(self, now, from, datagram)
    }
    fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId {
        Memberlist::handle_stream_accept(self, now, from)
    }
    fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool) {
        Memberlist::handle_stream_data(self, now, id, data, fin)
    }
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str) {
        Memberlist::handle_stream_error(self, now, id, error)
    }
    fn handle_stream_refused(&mut self, now: Instant, id: StreamId) {
        Memberlist::handle_stream_refused(self, now, id)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Memberlist::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Memberlist::poll_transmit(self)
    }
    fn poll_stream(&mut self) -> Option<StreamCommand> {
        Memberlist::poll_stream(self)
    }
    fn poll_event(&mut self) -> Option<Event> {
        Memberlist::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Memberlist::poll_timeout(self)
    }
    fn name(&self) -> &str {
        Memberlist::name(self)
    }
    fn incarnation(&self) -> u32 {
        Memberlist::incarnation(self)
    }
    fn health_score(&self) -> usize {
        Memberlist::health_score(self)
    }
    fn stats(&self) -> &Stats {
        Memberlist::stats(self)
    }
    fn config(&self) -> &Config {
        Memberlist::config(self)
    }
    fn members(&self) -> Vec<Node> {
        Memberlist::members(self).collect()
    }
    fn keyring(&self) -> Option<&Keyring> {
        Memberlist::keyring(self)
    }
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), swimnet_core::Error> {
        Memberlist::join(self, now, addrs)
    }
    fn leave(&mut self, now: Instant) {
        Memberlist::leave(self, now)
    }
    fn install_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        Memberlist::install_key(self, key)
    }
    fn use_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        Memberlist::use_key(self, key)
    }
    fn remove_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        Memberlist::remove_key(self, key)
    }
    fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<(), String> {
        Memberlist::set_meta(self, now, meta).map_err(|e| e.to_string())
    }
    fn coordinates(&self) -> Option<Vec<(String, Coordinate)>> {
        self.coordinate()?;
        Some(
            Memberlist::coordinates(self)
                .map(|(n, c)| (n.to_string(), c.clone()))
                .collect(),
        )
    }
    fn send_user_packet(&mut self, to: SocketAddr, msg: &[u8]) {
        Memberlist::send_user_packet(self, to, msg)
    }
}

fn ndb_error(e: swimnet_networkdb::NdbError) -> TableError {
    match e.kind() {
        swimnet_networkdb::NdbErrorKind::NotFound => TableError::NotFound(e.to_string()),
        _ => TableError::Failed(e.to_string()),
    }
}

impl SansIo for NetworkDb {
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        NetworkDb::handle_packet(self, now, from, datagram)
    }
    fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId {
        NetworkDb::handle_stream_accept(self, now, from)
    }
    fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool) {
        NetworkDb::handle_stream_data(self, now, id, data, fin)
    }
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str) {
        NetworkDb::handle_stream_error(self, now, id, error)
    }
    fn handle_stream_refused(&mut self, now: Instant, id: StreamId) {
        NetworkDb::handle_stream_refused(self, now, id)
    }
    fn handle_timeout(&mut self, now: Instant) {
        NetworkDb::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        NetworkDb::poll_transmit(self)
    }
    fn poll_stream(&mut self) -> Option<StreamCommand> {
        NetworkDb::poll_stream(self)
    }
    fn poll_event(&mut self) -> Option<Event> {
        NetworkDb::poll_event(self)
    }
    fn poll_table_change(&mut self) -> Option<TableChange> {
        // The driver drains this after every input, so the queue stays
        // bounded whether or not anyone watches.
        NetworkDb::poll_table_change(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        NetworkDb::poll_timeout(self)
    }
    fn name(&self) -> &str {
        NetworkDb::name(self)
    }
    fn incarnation(&self) -> u32 {
        self.core().incarnation()
    }
    fn health_score(&self) -> usize {
        self.core().health_score()
    }
    fn stats(&self) -> &Stats {
        self.core().stats()
    }
    fn config(&self) -> &Config {
        self.core().config()
    }
    fn members(&self) -> Vec<Node> {
        self.core().members().collect()
    }
    fn keyring(&self) -> Option<&Keyring> {
        self.core().keyring()
    }
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), swimnet_core::Error> {
        NetworkDb::join(self, now, addrs)
    }
    fn leave(&mut self, now: Instant) {
        NetworkDb::leave(self, now)
    }
    fn install_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        NetworkDb::install_key(self, key)
    }
    fn use_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        NetworkDb::use_key(self, key)
    }
    fn remove_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        NetworkDb::remove_key(self, key)
    }
    fn set_meta(&mut self, _now: Instant, _meta: Vec<u8>) -> Result<(), String> {
        Err("node metadata cannot be changed in networkdb mode".into())
    }
    fn coordinates(&self) -> Option<Vec<(String, Coordinate)>> {
        let core = self.core();
        core.coordinate()?;
        Some(
            core.coordinates()
                .map(|(n, c)| (n.to_string(), c.clone()))
                .collect(),
        )
    }
    fn send_user_packet(&mut self, to: SocketAddr, _msg: &[u8]) {
        // NetworkDB owns the user-message channel; nothing else may use it.
        tracing::debug!(%to, "user packet dropped: not supported in networkdb mode");
    }
    fn table(&mut self, now: Instant, cmd: TableCommand) -> Result<TableReply, TableError> {
        let done = |r: Result<(), swimnet_networkdb::NdbError>| {
            r.map(|()| TableReply::Done).map_err(ndb_error)
        };
        match cmd {
            TableCommand::Networks => Ok(TableReply::Networks(self.networks())),
            TableCommand::JoinNetwork(nid) => done(self.join_network(now, &nid)),
            TableCommand::LeaveNetwork(nid) => done(self.leave_network(now, &nid)),
            TableCommand::NetworkPeers(nid) => Ok(TableReply::Peers(self.network_peer_ips(&nid))),
            TableCommand::ClusterPeers => Ok(TableReply::Peers(self.cluster_peer_ips())),
            TableCommand::NetworkStats(nid) => Ok(TableReply::Stats(self.network_stats(&nid))),
            TableCommand::Create {
                nid,
                table,
                key,
                value,
            } => done(self.create_entry(now, &nid, &table, &key, &value)),
            TableCommand::Update {
                nid,
                table,
                key,
                value,
            } => done(self.update_entry(now, &nid, &table, &key, &value)),
            TableCommand::Put {
                nid,
                table,
                key,
                value,
            } => done(self.put_entry(now, &nid, &table, &key, &value)),
            TableCommand::Delete { nid, table, key } => {
                done(self.delete_entry(now, &nid, &table, &key))
            }
            TableCommand::Get { nid, table, key } => self
                .get_entry(&nid, &table, &key)
                .map(TableReply::Value)
                .map_err(ndb_error),
            TableCommand::List { nid, table } => {
                Ok(TableReply::Entries(self.table_entries(&nid, &table)))
            }
        }
    }
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

/// Called by the driver after every input so the layer above can act on
/// what its delegate collected (apply key changes, send replies, persist).
/// Gets the node and the current time.
pub type Hook<N> = Box<dyn FnMut(&mut N, Instant) + Send>;

/// Called with every membership event, for logging or the layer above.
pub type EventSink = Box<dyn FnMut(&Event) + Send>;

/// Asked when a leave starts: what to send first and how long to wait.
pub type LeavePlanner<N> = Box<dyn FnMut(&mut N) -> LeavePlan + Send>;

/// How to leave.
#[derive(Debug, Clone, Default)]
pub struct LeavePlan {
    /// User messages (payload after the 0x08 byte) to send to every live
    /// member before the memberlist leave, such as Serf's leave intent.
    pub intent: Vec<u8>,
    /// Wait this long after the intent before leaving.
    pub intent_grace: Duration,
    /// Give up waiting for the leave broadcast after this long.
    pub timeout: Duration,
}

struct Leaving {
    waiters: Vec<oneshot::Sender<()>>,
    leave_at: Option<Instant>,
    deadline: Instant,
    done: bool,
}

impl Leaving {
    fn finish(&mut self) {
        self.done = true;
        for w in self.waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

struct JoinWaiter {
    pending: Vec<SocketAddr>,
    ok: usize,
    errors: Vec<String>,
    reply: oneshot::Sender<Result<usize, String>>,
}

/// The driver. Build it with [`Driver::new`] and run it with [`Driver::run`].
pub struct Driver<N: SansIo> {
    core: N,
    udp: Arc<UdpSocket>,
    listener: TcpListener,
    commands: mpsc::Receiver<Command>,
    hook: Option<Hook<N>>,
    events: Option<EventSink>,
    leave_plan: LeavePlanner<N>,
    stats: DriverStats,
    streams: HashMap<StreamId, mpsc::Sender<StreamOut>>,
    stream_tx: mpsc::Sender<StreamIn>,
    stream_rx: mpsc::Receiver<StreamIn>,
    joins: Vec<JoinWaiter>,
    leaving: Option<Leaving>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    changes: broadcast::Sender<TableChange>,
}

fn now() -> Instant {
    Instant::now()
}

impl<N: SansIo> Driver<N> {
    /// Wraps a core and its bound sockets. `commands` carries the local API's
    /// requests. `leave_plan` is asked, when a leave starts, what to send
    /// first (Serf's leave intent) and how long to wait.
    pub fn new(
        core: N,
        udp: UdpSocket,
        listener: TcpListener,
        commands: mpsc::Receiver<Command>,
        leave_plan: impl FnMut(&mut N) -> LeavePlan + Send + 'static,
    ) -> Self {
        let (stream_tx, stream_rx) = mpsc::channel(STREAM_QUEUE);
        Driver {
            core,
            udp: Arc::new(udp),
            listener,
            commands,
            hook: None,
            events: None,
            leave_plan: Box::new(leave_plan),
            stats: DriverStats::default(),
            streams: HashMap::new(),
            stream_tx,
            stream_rx,
            joins: Vec::new(),
            leaving: None,
            connections: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            changes: broadcast::channel(WATCH_BUFFER).0,
        }
    }

    /// Sets the hook run after every input.
    pub fn with_hook(mut self, hook: Hook<N>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Sets the sink that sees every membership event.
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.events = Some(sink);
        self
    }

    /// Runs until a leave completes (by command or `shutdown`) and returns
    /// the core. `shutdown` resolving starts a graceful leave, like SIGINT.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> N {
        tokio::pin!(shutdown);
        let mut shutdown_seen = false;
        let mut buf = vec![0u8; UDP_BUFFER];
        let udp = self.udp.clone();
        loop {
            self.flush().await;
            if self.leaving.as_ref().is_some_and(|l| l.done) {
                break;
            }
            let deadline = self.next_deadline();
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        tracing::trace!(%from, len = n, "datagram in");
                        self.core.handle_packet(now(), from, &buf[..n]);
                    }
                    Err(e) => {
                        self.stats.io_errors += 1;
                        tracing::debug!(error = %e, "udp receive error");
                    }
                },
                r = self.listener.accept() => match r {
                    Ok((stream, peer)) => self.accept(stream, peer),
                    Err(e) => {
                        self.stats.io_errors += 1;
                        tracing::warn!(error = %e, "tcp accept error");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(input) = self.stream_rx.recv() => match input {
                    StreamIn::Data(id, data, fin) => self.core.handle_stream_data(now(), id, &data, fin),
                    StreamIn::Error(id, e) => {
                        self.stats.stream_errors += 1;
                        tracing::debug!(stream = id.0, error = %crate::escape::esc(&e), "stream failed");
                        self.streams.remove(&id);
                        self.core.handle_stream_error(now(), id, &e);
                    }
                    StreamIn::Refused(id) => {
                        self.stats.stream_errors += 1;
                        tracing::debug!(stream = id.0, "connection refused");
                        self.streams.remove(&id);
                        self.core.handle_stream_refused(now(), id);
                    }
                },
                Some(cmd) = self.commands.recv() => self.command(cmd),
                _ = &mut shutdown, if !shutdown_seen => {
                    shutdown_seen = true;
                    self.start_leave(None);
                }
                _ = sleep => self.on_deadline(),
            }
            if let Some(hook) = &mut self.hook {
                hook(&mut self.core, now());
            }
        }
        self.flush().await;
        self.core
    }

    fn next_deadline(&self) -> Instant {
        let mut d = self
            .core
            .poll_timeout()
            .unwrap_or_else(|| now() + Duration::from_secs(3600));
        if let Some(l) = &self.leaving {
            if let Some(at) = l.leave_at {
                d = d.min(at);
            }
            d = d.min(l.deadline);
        }
        d
    }

    fn on_deadline(&mut self) {
        let t = now();
        if let Some(l) = &mut self.leaving {
            if let Some(at) = l.leave_at {
                if at <= t {
                    l.leave_at = None;
                    self.core.leave(t);
                }
            }
            if l.leave_at.is_none() && l.deadline <= t && !l.done {
                tracing::warn!("leave broadcast not finished in time; leaving anyway");
                l.finish();
            }
        }
        self.core.handle_timeout(t);
    }

    fn start_leave(&mut self, waiter: Option<oneshot::Sender<()>>) {
        if let Some(l) = &mut self.leaving {
            if let Some(w) = waiter {
                l.waiters.push(w);
            }
            return;
        }
        let plan = (self.leave_plan)(&mut self.core);
        let t = now();
        if !plan.intent.is_empty() {
            let live: Vec<SocketAddr> = self
                .core
                .members()
                .into_iter()
                .filter(|m| m.state == NodeState::Alive && *m.name != *self.core.name())
                .map(|m| m.addr)
                .collect();
            for addr in live {
                self.core.send_user_packet(addr, &plan.intent);
            }
        }
        tracing::info!("leaving the cluster");
        self.leaving = Some(Leaving {
            waiters: waiter.into_iter().collect(),
            leave_at: Some(t + plan.intent_grace),
            deadline: t + plan.intent_grace + plan.timeout,
            done: false,
        });
    }

    fn command(&mut self, cmd: Command) {
        let t = now();
        match cmd {
            Command::Members(tx) => {
                let _ = tx.send(self.core.members());
            }
            Command::Join(addrs, tx) => {
                if addrs.is_empty() {
                    let _ = tx.send(Err("no address to join".into()));
                    return;
                }
                match self.core.join(t, &addrs) {
                    Ok(()) => self.joins.push(JoinWaiter {
                        pending: addrs,
                        ok: 0,
                        errors: Vec::new(),
                        reply: tx,
                    }),
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            }
            Command::Leave(tx) => self.start_leave(Some(tx)),
            Command::Keys(kc, tx) => {
                let r = match kc {
                    KeyCommand::List => Ok(()),
                    KeyCommand::Install(k) => self.core.install_key(&k),
                    KeyCommand::Use(k) => self.core.use_key(&k),
                    KeyCommand::Remove(k) => self.core.remove_key(&k),
                };
                let view = self.keyring_view();
                let _ = tx.send(r.map_err(|e| e.to_string()).and(view));
            }
            Command::Stats(tx) => {
                let _ = tx.send(StatusView {
                    name: self.core.name().to_string(),
                    incarnation: self.core.incarnation(),
                    health_score: self.core.health_score(),
                    stats: self.core.stats().clone(),
                    driver: self.stats.clone(),
                });
            }
            Command::Coordinates(tx) => {
                let _ = tx.send(CoordinatesSnapshot {
                    name: self.core.name().to_string(),
                    coordinates: self.core.coordinates(),
                    members: self
                        .core
                        .members()
                        .into_iter()
                        .map(|n| n.name.to_string())
                        .collect(),
                });
            }
            Command::SetMeta(meta, tx) => {
                let _ = tx.send(self.core.set_meta(t, meta));
            }
            Command::Table(tc, tx) => {
                // Local writes reach watchers through poll_table_change
                // (NdbConfig::report_local_changes).
                let _ = tx.send(self.core.table(t, tc));
            }
            Command::Watch { nid, table, reply } => {
                let r = self
                    .core
                    .table(t, TableCommand::List { nid, table })
                    .and_then(|r| match r {
                        TableReply::Entries(entries) => Ok(WatchStart {
                            entries,
                            changes: self.changes.subscribe(),
                        }),
                        _ => Err(TableError::Failed("unexpected table answer".into())),
                    });
                let _ = reply.send(r);
            }
        }
    }

    fn keyring_view(&self) -> Result<KeyringView, String> {
        match self.core.keyring() {
            Some(ring) => Ok(KeyringView {
                keys: ring.keys().iter().map(|k| k.as_bytes().to_vec()).collect(),
            }),
            None => Err(
                "encryption is not enabled on this node: start it with --encrypt or --keyring-file"
                    .into(),
            ),
        }
    }

    fn accept(&mut self, stream: TcpStream, peer: SocketAddr) {
        use std::sync::atomic::Ordering;
        if self.connections.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            self.stats.connections_refused += 1;
            tracing::warn!(%peer, "too many open connections; refusing one");
            return;
        }
        let id = self.core.handle_stream_accept(now(), peer);
        let (out_tx, out_rx) = mpsc::channel(2);
        self.streams.insert(id, out_tx);
        let deadline = now() + self.core.config().tcp_timeout;
        self.spawn_stream(id, stream, None, true, deadline, out_rx);
    }

    /// Most bytes read from one connection (see [`STREAM_READ_SLACK`]).
    fn max_stream_read(&self) -> usize {
        let limits = &self.core.config().stream_limits;
        limits.max_message_bytes.saturating_add(STREAM_READ_SLACK)
    }

    fn spawn_stream(
        &self,
        id: StreamId,
        stream: TcpStream,
        initial: Option<Vec<u8>>,
        read: bool,
        deadline: Instant,
        out_rx: mpsc::Receiver<StreamOut>,
    ) {
        let tx = self.stream_tx.clone();
        let conns = self.connections.clone();
        let max_read = self.max_stream_read();
        conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            let dl = tokio::time::Instant::from_std(deadline);
            let serve = serve_stream(id, stream, initial, read, max_read, out_rx, &tx);
            let r = tokio::time::timeout_at(dl, serve).await;
            let err = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("deadline passed".to_string()),
            };
            if let Some(e) = err {
                let _ = tx.send(StreamIn::Error(id, e)).await;
            }
            conns.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }

    fn open(
        &mut self,
        id: StreamId,
        to: SocketAddr,
        data: Vec<u8>,
        expect_reply: bool,
        deadline: Instant,
    ) {
        let tx = self.stream_tx.clone();
        let conns = self.connections.clone();
        if conns.load(std::sync::atomic::Ordering::Relaxed) >= MAX_CONNECTIONS {
            // Outbound connections count against the limit too.
            self.stats.connections_not_opened += 1;
            let e = format!("not connecting to {to}: too many open connections");
            let _ = expect_reply
                .then(|| tokio::spawn(async move { tx.send(StreamIn::Error(id, e)).await }));
            return;
        }
        let (out_tx, out_rx) = mpsc::channel(2);
        if expect_reply {
            self.streams.insert(id, out_tx);
        }
        let max_read = self.max_stream_read();
        conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            let dl = tokio::time::Instant::from_std(deadline);
            let r = tokio::time::timeout_at(dl, async {
                let stream = match TcpStream::connect(to).await {
                    Ok(s) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(None);
                    }
                    Err(e) => return Err(Some(format!("connect {to}: {e}"))),
                };
                let _ = stream.set_nodelay(true);
                serve_stream(id, stream, Some(data), expect_reply, max_read, out_rx, &tx)
                    .await
                    .map_err(Some)
            })
            .await;
            let outcome = match r {
                Ok(Ok(())) => None,
                Ok(Err(None)) => Some(StreamIn::Refused(id)),
                Ok(Err(Some(e))) => Some(StreamIn::Error(id, e)),
                Err(_) => Some(StreamIn::Error(
                    id,
                    format!("no answer from {to} before the deadline"),
                )),
            };
            if let (Some(o), true) = (outcome, expect_reply) {
                let _ = tx.send(o).await;
            }
            conns.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }

    /// Sends everything the core produced and handles its events.
    async fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.core.poll_transmit() {
                progressed = true;
                tracing::trace!(dst = %t.dst, len = t.payload.len(), "datagram out");
                if let Err(e) = self.udp.send_to(&t.payload, t.dst).await {
                    self.stats.io_errors += 1;
                    tracing::debug!(dst = %t.dst, error = %e, "udp send failed");
                }
            }
            while let Some(c) = self.core.poll_stream() {
                progressed = true;
                match c {
                    StreamCommand::Open {
                        id,
                        to,
                        data,
                        expect_reply,
                        deadline,
                    } => self.open(id, to, data, expect_reply, deadline),
                    StreamCommand::Reply { id, data } => {
                        if let Some(tx) = self.streams.remove(&id) {
                            let _ = tx.try_send(StreamOut::Reply(data));
                        }
                    }
                    StreamCommand::Close { id } => {
                        if let Some(tx) = self.streams.remove(&id) {
                            let _ = tx.try_send(StreamOut::Close);
                        }
                    }
                }
            }
            while let Some(c) = self.core.poll_table_change() {
                // No receiver is fine; a full buffer drops the oldest and
                // the lagging receivers learn it.
                let _ = self.changes.send(c);
            }
            while let Some(e) = self.core.poll_event() {
                progressed = true;
                self.on_event(&e);
                if let Some(sink) = &mut self.events {
                    sink(&e);
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_event(&mut self, e: &Event) {
        crate::event_log::log_event(e);
        match e {
            Event::JoinResult { addr, result } => {
                if let Some(i) = self.joins.iter().position(|w| w.pending.contains(addr)) {
                    let w = &mut self.joins[i];
                    w.pending.retain(|a| a != addr);
                    match result {
                        Ok(_) => w.ok += 1,
                        Err(err) => w.errors.push(format!("{addr}: {err}")),
                    }
                    if w.pending.is_empty() {
                        let w = self.joins.swap_remove(i);
                        let r = if w.ok > 0 {
                            Ok(w.ok)
                        } else {
                            Err(w.errors.join("; "))
                        };
                        let _ = w.reply.send(r);
                    }
                }
            }
            Event::LeaveComplete => {
                if let Some(l) = &mut self.leaving {
                    l.finish();
                }
            }
            _ => {}
        }
    }
}
