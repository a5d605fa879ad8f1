//! The thin tokio driver: one UDP socket, one TCP listener, a timer, and a
//! command channel, around one sans-IO node seen through
//! [`AgentNode`] (a [`swimnet_core::SansIoNode`]): a plain memberlist core,
//! a Serf node or a NetworkDB node, picked by the agent at start-up.
//!
//! The driver makes no protocol decisions. It moves datagrams and stream
//! bytes between the sockets and the node, sleeps until the node's next
//! deadline, and answers local commands ([`crate::commands`]). Everything a
//! peer sends is bounded here before the core sees it: datagrams are read
//! into a 64 KiB buffer,
//! streams are read in 64 KiB chunks that go straight to the core (which
//! keeps the per-stream limits and the inbound budget and says when to
//! close), with a bounded queue between the sockets and the core and a cap
//! in size and time, and the number of open connections is limited; what
//! goes over a bound is counted and logged, never fatal.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swimnet_core::{Event, StreamCommand, StreamId};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::agent_events::{AgentEvent, EventHub, SelfInfo};
use crate::agent_node::AgentNode;
use crate::commands::JoinWaiters;
pub use crate::commands::{
    Command, CoordinatesSnapshot, KeyCommand, KeyringView, StatusView, TableCommand, TableError,
    TableReply, WatchStart, WATCH_BUFFER,
};
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

/// Called with every membership event, for logging or the layer above.
pub type EventSink = Box<dyn FnMut(&Event) + Send>;

/// A leave in progress: who waits for it. It ends with the node's
/// [`Event::LeaveComplete`], which the node reports by its own deadline.
struct Leaving {
    waiters: Vec<oneshot::Sender<()>>,
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

/// The driver. Build it with [`Driver::new`] and run it with [`Driver::run`].
pub struct Driver<N: AgentNode> {
    core: N,
    udp: Arc<UdpSocket>,
    listener: TcpListener,
    commands: mpsc::Receiver<Command>,
    events: Option<EventSink>,
    stats: DriverStats,
    streams: HashMap<StreamId, mpsc::Sender<StreamOut>>,
    stream_tx: mpsc::Sender<StreamIn>,
    stream_rx: mpsc::Receiver<StreamIn>,
    joins: JoinWaiters,
    leaving: Option<Leaving>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    key_op: crate::cluster_keys::KeyOpWaiter,
    keyring_file: Option<crate::keyfile::KeyringFile>,
    hub: EventHub,
}

fn now() -> Instant {
    Instant::now()
}

impl<N: AgentNode> Driver<N> {
    /// Wraps a node and its bound sockets. `commands` carries the local
    /// API's requests.
    pub fn new(
        core: N,
        udp: UdpSocket,
        listener: TcpListener,
        commands: mpsc::Receiver<Command>,
    ) -> Self {
        let (stream_tx, stream_rx) = mpsc::channel(STREAM_QUEUE);
        Driver {
            core,
            udp: Arc::new(udp),
            listener,
            commands,
            events: None,
            stats: DriverStats::default(),
            streams: HashMap::new(),
            stream_tx,
            stream_rx,
            joins: JoinWaiters::default(),
            leaving: None,
            connections: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            key_op: Default::default(),
            keyring_file: None,
            hub: EventHub::default(),
        }
    }

    /// Publishes the agent's events through `hub` (made with the
    /// counters and handler queue the agent shares) instead of a private
    /// one.
    pub fn with_event_hub(mut self, hub: EventHub) -> Self {
        self.hub = hub;
        self
    }

    /// Publishes one agent event (never waits).
    fn publish(&mut self, event: AgentEvent) {
        let core = &self.core;
        self.hub.publish(event, || self_info(core));
    }

    /// Sets the sink that sees every membership event.
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.events = Some(sink);
        self
    }

    /// Sets the keyring file rewritten when a cluster-wide key operation
    /// changes this node's keyring.
    pub fn with_keyring_file(mut self, file: Option<crate::keyfile::KeyringFile>) -> Self {
        self.keyring_file = file;
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
        }
        self.flush().await;
        self.core
    }

    fn next_deadline(&self) -> Instant {
        self.core
            .poll_timeout()
            .unwrap_or_else(|| now() + Duration::from_secs(3600))
    }

    fn on_deadline(&mut self) {
        self.core.handle_timeout(now());
    }

    /// Starts the node's leave (once) and adds `waiter` to those answered
    /// when it completes (the node's [`Event::LeaveComplete`]).
    fn start_leave(&mut self, waiter: Option<oneshot::Sender<()>>) {
        if let Some(l) = &mut self.leaving {
            if let Some(w) = waiter {
                l.waiters.push(w);
            }
            return;
        }
        let t = now();
        tracing::info!("leaving the cluster");
        self.leaving = Some(Leaving {
            waiters: waiter.into_iter().collect(),
            done: false,
        });
        self.core.leave(t);
    }

    fn command(&mut self, cmd: Command) {
        let t = now();
        match cmd {
            Command::Members(tx) => {
                let _ = tx.send(self.core.core().members().collect());
            }
            Command::Join(addrs, tx) => {
                if addrs.is_empty() {
                    let _ = tx.send(Err("no address to join".into()));
                    return;
                }
                match self.core.join(t, &addrs) {
                    Ok(()) => self.joins.add(addrs, tx),
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
            Command::ClusterKeys { op, timeout, reply } => {
                match self.core.start_key_op(t, op, timeout) {
                    Ok(id) => self.key_op.wait(id, reply),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Stats(tx) => {
                let _ = tx.send(self.status_view());
            }
            Command::Coordinates(tx) => {
                let _ = tx.send(self.coordinates_snapshot());
            }
            Command::SetMeta(meta, tx) => {
                let _ = tx.send(self.core.set_meta(t, meta));
            }
            Command::Serf(sc, tx) => {
                let _ = tx.send(self.core.serf(t, sc));
            }
            Command::Table(tc, tx) => {
                // Local writes reach watchers through poll_table_change
                // (NdbConfig::report_local_changes).
                let _ = tx.send(self.core.table(t, tc));
            }
            Command::Subscribe(tx) => {
                let _ = tx.send(self.hub.subscribe());
            }
            Command::RespondQuery { id, payload, reply } => {
                let _ = reply.send(self.core.respond_query(t, id, payload));
            }
            Command::Watch { nid, table, reply } => {
                // A network not joined would look empty and the watch
                // would wait forever: refuse it.
                let r = self
                    .core
                    .table(t, TableCommand::CheckAttached(nid.clone()))
                    .and_then(|_| self.core.table(t, TableCommand::List { nid, table }))
                    .and_then(|r| match r {
                        TableReply::Entries(entries) => Ok(WatchStart {
                            entries,
                            changes: self.hub.subscribe(),
                        }),
                        _ => Err(TableError::Failed("unexpected table answer".into())),
                    });
                let _ = reply.send(r);
            }
            Command::Snapshot(tx) => {
                let _ = tx.send(crate::snapshot::capture(&self.core));
            }
        }
    }

    fn status_view(&self) -> StatusView {
        let core = self.core.core();
        StatusView {
            name: core.name().to_string(),
            incarnation: core.incarnation(),
            health_score: core.health_score(),
            stats: core.stats().clone(),
            driver: self.stats.clone(),
            members: crate::figures::MemberCounts::of(core.members().map(|n| n.state)),
            broadcast_queue: core.pending_broadcasts() as u64,
            leaving: self.leaving.is_some(),
            layer: self.core.layer_figures(),
        }
    }

    fn coordinates_snapshot(&self) -> CoordinatesSnapshot {
        let core = self.core.core();
        let coordinates = core.coordinate().map(|_| {
            core.coordinates()
                .map(|(n, c)| (n.to_string(), c.clone()))
                .collect()
        });
        CoordinatesSnapshot {
            name: core.name().to_string(),
            coordinates,
            members: core.members().map(|n| n.name.to_string()).collect(),
            near_cluster: if core.config().topology.enabled {
                core.near_cluster_now()
            } else {
                Vec::new()
            },
        }
    }

    fn keyring_view(&self) -> Result<KeyringView, String> {
        match self.core.core().keyring() {
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
        let deadline = now() + self.core.core().config().tcp_timeout;
        self.spawn_stream(id, stream, None, true, deadline, out_rx);
    }

    /// Most bytes read from one connection (see [`STREAM_READ_SLACK`]).
    fn max_stream_read(&self) -> usize {
        let limits = &self.core.core().config().stream_limits;
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
            while let Some(e) = self.core.poll_app_event() {
                if let Some(a) = N::on_app_event(e) {
                    self.publish(a);
                }
            }
            while let Some((id, report)) = self.core.poll_key_report() {
                self.key_op.on_report(id, report);
            }
            while let Some(n) = self.core.core_mut().poll_key_notice() {
                let ring = self.core.core().keyring();
                crate::cluster_keys::on_key_notice(n, ring, self.keyring_file.as_ref());
            }
            while let Some(a) = self.core.poll_agent_event() {
                self.publish(a);
            }
            while let Some(e) = self.core.poll_event() {
                progressed = true;
                self.on_event(&e);
                if let Some(a) = AgentEvent::from_core(&e) {
                    self.publish(a);
                }
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
            Event::JoinResult { addr, result } => self.joins.on_result(*addr, result),
            Event::LeaveComplete { .. } => {
                if let Some(l) = &mut self.leaving {
                    l.finish();
                }
            }
            _ => {}
        }
    }
}

/// This node's name and tags (Serf's encoding of its metadata), for the
/// event handlers.
fn self_info<N: AgentNode>(node: &N) -> SelfInfo {
    let core = node.core();
    let tags = core
        .member_by_name(core.name())
        .map(|n| swimnet_serf::tags::decode_tags(&n.meta))
        .unwrap_or_default();
    SelfInfo {
        name: core.name().to_string(),
        tags,
    }
}
