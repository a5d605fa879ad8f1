//! [`NetworkDb`]: a sans-IO NetworkDB node (memberlist core + tables).
//!
//! It is driven like [`swimnet_core::Memberlist`]: feed inputs with `now`,
//! then drain [`NetworkDb::poll_transmit`], [`NetworkDb::poll_stream`] and
//! [`NetworkDb::poll_event`], and sleep until [`NetworkDb::poll_timeout`].
//!
//! Who calls whom:
//!
//! - `NetworkDb` owns the core (`Memberlist<TableState>`) and, through it,
//!   the [`TableState`]. Every input goes to the core first.
//! - The core calls the table state only through memberlist's synchronous
//!   [`swimnet_core::Delegate`] hooks (a user message arrived, broadcasts
//!   to piggyback, push/pull state). A hook never calls the core back:
//!   what it wants sent (a bulk-sync answer) is queued in the table state.
//! - `NetworkDb` runs the table state's timers (gossip, bulk sync, reaper)
//!   and commands itself, and feeds it the core's membership events.
//! - After every input, `NetworkDb::after` moves the queued table traffic
//!   into the core it owns: user packets (gossip) and user streams (bulk
//!   syncs). That is the one way NetworkDB traffic leaves.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use swimnet_core::topology::TopologyView;
use swimnet_core::{Config, Event, Memberlist, StreamCommand, StreamId, Transmit};

use crate::state::{
    NdbConfig, NdbError, NdbStats, Outgoing, PeerState, RestartState, RestoreReport, TableChange,
    TableEntry, TableState,
};
use crate::wire::NodeEventType;

/// One NetworkDB node.
#[derive(Debug)]
pub struct NetworkDb {
    core: Memberlist<TableState>,
    events: VecDeque<Event>,
    next_gossip: Instant,
    next_bulk_sync: Instant,
    next_reap: Instant,
    next_rejoin: Instant,
    /// The addresses of the last [`NetworkDb::join`], for the bootstrap rejoin.
    bootstrap: Vec<SocketAddr>,
    leaving: bool,
    /// The last [`Memberlist::topology_view`] and when it was taken.
    topology: Option<(Instant, TopologyView)>,
    /// Restored networks whose own entries are re-announced once they are
    /// in sync after the next cluster join (see [`Self::restore`]).
    reannounce: BTreeSet<String>,
    /// Whether the restored networks wait for a cluster join to resync.
    resync_on_join: bool,
}

impl NetworkDb {
    /// A node named `config.name` (Docker uses a random 12-hex-digit ID;
    /// any unique name works). `seed` drives all randomness.
    pub fn new(
        config: Config,
        ndb: NdbConfig,
        now: Instant,
        seed: u64,
    ) -> Result<Self, swimnet_core::Error> {
        let mut delegate = TableState::new(
            config.name.clone(),
            config.advertise,
            ndb,
            config.retransmit_mult,
            seed,
        );
        let cfg = delegate.config().clone();
        let next_gossip = now + delegate.jitter(cfg.gossip_interval) + cfg.gossip_interval;
        let next_bulk_sync = now + delegate.jitter(cfg.bulk_sync_interval) + cfg.bulk_sync_interval;
        let next_reap = now + cfg.reap_period;
        let next_rejoin = now + cfg.rejoin_interval;
        let core = Memberlist::new(config, delegate, now, seed)?;
        let mut db = NetworkDb {
            core,
            events: VecDeque::new(),
            next_gossip,
            next_bulk_sync,
            next_reap,
            next_rejoin,
            bootstrap: Vec::new(),
            leaving: false,
            topology: None,
            reannounce: BTreeSet::new(),
            resync_on_join: false,
        };
        db.after(now);
        Ok(db)
    }

    /// The membership core.
    pub fn core(&self) -> &Memberlist<TableState> {
        &self.core
    }

    /// The membership core, mutably, for membership commands
    /// ([`Memberlist::set_meta`] and the like). Table state changes go
    /// through this type's own commands.
    pub fn core_mut(&mut self) -> &mut Memberlist<TableState> {
        &mut self.core
    }

    /// The table state (read-only; change it through this type's commands).
    pub fn state(&self) -> &TableState {
        self.core.delegate()
    }

    /// The table state, for this type's own commands and timers. Whatever
    /// traffic they queue is sent by [`Self::after`].
    fn tables_mut(&mut self) -> &mut TableState {
        self.core.delegate_mut()
    }

    /// Docker's memberlist settings for NetworkDB, applied to `config` (a
    /// LAN, WAN or local profile): retransmit multiplier 4 and no node
    /// metadata. Call it on the [`Config`] given to [`Self::new`] to run
    /// as Docker 20.10 does; the table settings are [`NdbConfig::default`].
    pub fn docker_memberlist(mut config: Config) -> Config {
        config.retransmit_mult = 4;
        config.meta = Vec::new();
        config
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// Counters.
    pub fn stats(&self) -> &NdbStats {
        self.state().stats()
    }

    /// Ends every input: passes the core's membership events to the table
    /// state (and keeps them for [`Self::poll_event`]), then sends the
    /// traffic the table state queued through the core.
    fn after(&mut self, now: Instant) {
        let mut joined = false;
        while let Some(e) = self.core.poll_event() {
            match &e {
                Event::Join(n) | Event::Update(n) => self.tables_mut().on_member_join(now, n),
                Event::Leave(n) => self.tables_mut().on_member_leave(now, n),
                Event::JoinResult { result: Ok(_), .. } => joined = true,
                _ => {}
            }
            self.events.push_back(e);
        }
        // Attachments of nodes that this input did not make members.
        self.tables_mut().drop_parked_attachments();
        self.continue_restore(now, joined);
        // The one way table traffic leaves: what the table state queued
        // (during this input's hooks, timers or commands) goes to the core.
        for o in self.tables_mut().take_outbox() {
            match o {
                Outgoing::Packet(to, msg) => self.core.send_user_packet(to, &msg),
                Outgoing::Stream(to, msg) => self.core.send_user_stream(now, to, msg),
            }
        }
    }

    /// What this node keeps across a restart: its clocks, attached
    /// networks and live own entries (at most `max_entries`, in (network,
    /// table, key) order). Cheap enough to take every second.
    pub fn restart_state(&self, max_entries: usize) -> RestartState {
        self.state().restart_state(max_entries)
    }

    /// Takes back what a previous run of this node kept
    /// ([`Self::restart_state`]); call it on a fresh node, before
    /// [`Self::join`]. The clocks move past the kept ones, the networks are
    /// attached and the entries stored (not gossiped yet). After the next
    /// successful cluster join each restored network is bulk synced with
    /// all its peers, and once in sync this node's entries there are
    /// written again with new Lamport times, so they win over whatever its
    /// previous run left at its peers (tombstones, older values). Entries
    /// over a limit, or of a network not in `kept.networks`, are refused
    /// and listed in the report.
    pub fn restore(&mut self, now: Instant, kept: RestartState) -> RestoreReport {
        let report = self.tables_mut().restore_kept(now, kept);
        self.reannounce = self.networks().into_iter().collect();
        self.resync_on_join = !self.reannounce.is_empty();
        self.after(now);
        report
    }

    /// Moves a restore on (see [`Self::restore`]): after a successful
    /// cluster join (`joined`), resyncs the restored networks; re-announces
    /// the own entries of those now in sync.
    fn continue_restore(&mut self, now: Instant, joined: bool) {
        if self.reannounce.is_empty() {
            return;
        }
        if self.resync_on_join {
            if !joined {
                return;
            }
            self.resync_on_join = false;
            for nid in self.reannounce.clone() {
                self.tables_mut().resync_network(now, &nid);
            }
        }
        let ready: Vec<String> = self
            .reannounce
            .iter()
            .filter(|nid| self.state().in_sync(nid) || !self.networks().contains(nid))
            .cloned()
            .collect();
        for nid in ready {
            self.reannounce.remove(&nid);
            self.tables_mut().reannounce_own(now, &nid);
        }
    }

    // --------------------------------------------------------------- inputs

    /// A datagram arrived.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.core.handle_packet(now, from, datagram);
        self.after(now);
    }

    /// A TCP connection was accepted.
    pub fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId {
        let id = self.core.handle_stream_accept(now, from);
        self.after(now);
        id
    }

    /// Bytes arrived on a stream (`fin`: the peer closed its side).
    pub fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool) {
        self.core.handle_stream_data(now, id, data, fin);
        self.after(now);
    }

    /// A stream failed.
    pub fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str) {
        self.core.handle_stream_error(now, id, error);
        self.after(now);
    }

    /// An outbound connection was actively refused (see
    /// [`Memberlist::handle_stream_refused`]).
    pub fn handle_stream_refused(&mut self, now: Instant, id: StreamId) {
        self.core.handle_stream_refused(now, id);
        self.after(now);
    }

    /// Runs whatever timers are due at `now` (the core's and NetworkDB's).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        let cfg = self.state().config().clone();
        let gossip_due = self.next_gossip <= now;
        let sync_due = self.next_bulk_sync <= now;
        // Distances from the core's coordinates, for latency-aware choices
        // (None when Config::topology is off: uniform choice). Coordinates
        // move about once per probe, so the snapshot is refreshed at most
        // once per probe interval rather than every gossip round.
        if gossip_due || sync_due {
            let fresh = self
                .topology
                .as_ref()
                .is_some_and(|(at, _)| now < *at + self.core.config().probe_interval);
            if !fresh {
                self.topology = self.core.topology_view().map(|v| (now, v));
            }
        }
        // Moved out for the table calls below (which borrow self mutably)
        // and put back after: no copy of the view.
        let topology = self.topology.take();
        let view = topology.as_ref().map(|(_, v)| v);
        self.tables_mut().expire_syncs(now);
        if gossip_due {
            self.tables_mut().gossip_tick(view);
            self.next_gossip = now + cfg.gossip_interval;
        }
        if sync_due {
            self.tables_mut().bulk_sync_tick(now, view);
            self.next_bulk_sync = now + cfg.bulk_sync_interval;
        }
        self.topology = topology;
        if self.next_reap <= now {
            self.tables_mut().reap(now);
            self.next_reap = now + cfg.reap_period;
        }
        if self.next_rejoin <= now {
            self.rejoin_bootstrap(now);
            self.next_rejoin = now + cfg.rejoin_interval;
        }
        self.after(now);
    }

    // -------------------------------------------------------------- outputs

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }

    /// Next TCP command.
    pub fn poll_stream(&mut self) -> Option<StreamCommand> {
        self.core.poll_stream()
    }

    /// Next membership event (the core's, passed through).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Next change to the visible tables made by a remote node (Docker's
    /// watch events; see [`TableChange`]).
    pub fn poll_table_change(&mut self) -> Option<TableChange> {
        self.tables_mut().poll_table_change()
    }

    /// Next network attachment change, this node's or a remote node's
    /// (only with [`crate::NdbConfig::report_network_changes`]).
    pub fn poll_network_change(&mut self) -> Option<crate::NetworkChange> {
        self.tables_mut().poll_network_change()
    }

    /// Docker's `rejoinClusterBootStrap`: when none of the addresses given
    /// to the last [`Self::join`] belongs to a live member any more (this
    /// node was cut off from them, or they restarted and forgot it), join
    /// through them again. Runs every [`NdbConfig::rejoin_interval`].
    fn rejoin_bootstrap(&mut self, now: Instant) {
        if self.bootstrap.is_empty() || self.leaving {
            return;
        }
        let me = self.core.config().advertise;
        let connected = self.core.members().any(|m| {
            m.state == swimnet_core::NodeState::Alive
                && m.addr != me
                && self.bootstrap.contains(&m.addr)
        });
        if connected {
            return;
        }
        let addrs: Vec<SocketAddr> = self
            .bootstrap
            .iter()
            .copied()
            .filter(|a| *a != me)
            .collect();
        if addrs.is_empty() {
            return;
        }
        self.tables_mut().count_rejoin();
        // An error here means no address was usable; the next round retries.
        let _ = self.core.join(now, &addrs);
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = [
            Some(self.next_rejoin),
            Some(self.next_gossip),
            Some(self.next_bulk_sync),
            Some(self.next_reap),
            self.state().next_sync_deadline(),
            self.core.poll_timeout(),
        ];
        own.into_iter().flatten().min()
    }

    // ------------------------------------------------------------- commands

    /// Joins the gossip cluster through `addrs` (memberlist push/pull) and
    /// announces this node with a NodeEvent JOIN.
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), swimnet_core::Error> {
        self.core.join(now, addrs)?;
        self.bootstrap = addrs.to_vec();
        self.tables_mut().send_node_event(NodeEventType::Join);
        self.after(now);
        Ok(())
    }

    /// Leaves the cluster: a NodeEvent LEAVE, then memberlist's leave.
    pub fn leave(&mut self, now: Instant) {
        self.leaving = true;
        self.tables_mut().send_node_event(NodeEventType::Leave);
        self.core.leave(now);
        self.after(now);
    }

    /// Attaches this node to network `nid` and bulk syncs with its peers.
    pub fn join_network(&mut self, now: Instant, nid: &str) -> Result<(), NdbError> {
        let r = self.tables_mut().join_network(now, nid);
        self.after(now);
        r
    }

    /// Detaches this node from network `nid`.
    pub fn leave_network(&mut self, now: Instant, nid: &str) -> Result<(), NdbError> {
        let r = self.tables_mut().leave_network(now, nid);
        self.after(now);
        r
    }

    /// Creates an entry owned by this node.
    pub fn create_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), NdbError> {
        let r = self.tables_mut().create_entry(now, nid, table, key, value);
        self.after(now);
        r
    }

    /// Updates an entry owned by this node.
    pub fn update_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), NdbError> {
        let r = self.tables_mut().update_entry(now, nid, table, key, value);
        self.after(now);
        r
    }

    /// Creates the entry, or updates it when a live one is visible (see
    /// [`TableState::put_entry`]).
    pub fn put_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), NdbError> {
        let r = self.tables_mut().put_entry(now, nid, table, key, value);
        self.after(now);
        r
    }

    /// Deletes an entry owned by this node (leaves a tombstone).
    pub fn delete_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
    ) -> Result<(), NdbError> {
        let r = self.tables_mut().delete_entry(now, nid, table, key);
        self.after(now);
        r
    }

    /// The value of a live entry.
    pub fn get_entry(&self, nid: &str, table: &str, key: &str) -> Result<Vec<u8>, NdbError> {
        self.state().get_entry(nid, table, key)
    }

    /// `Ok` when this node is attached to `nid`; see
    /// [`TableState::check_attached`]. Changes nothing.
    pub fn check_attached(&self, nid: &str) -> Result<(), NdbError> {
        self.state().check_attached(nid)
    }

    /// The live, visible entries of one table of one network, by key.
    pub fn table_entries(&self, nid: &str, table: &str) -> Vec<TableEntry> {
        self.state().table_entries(nid, table)
    }

    /// The entries of a table including those of failed owners that are
    /// not reaped yet (hidden from [`Self::table_entries`]); read-only.
    pub fn table_entries_with_failed(&self, nid: &str, table: &str) -> Vec<TableEntry> {
        self.state().table_entries_with_failed(nid, table)
    }

    /// Active nodes attached to `nid` (this node included if attached).
    pub fn network_peers(&self, nid: &str) -> Vec<String> {
        self.state().network_peers(nid)
    }

    /// Active nodes of the cluster, this one included.
    pub fn cluster_peers(&self) -> Vec<String> {
        self.state().cluster_peers()
    }

    /// [`Self::network_peers`], each with the IP address memberlist knows
    /// for it (`None`: not a member any more).
    pub fn network_peer_ips(&self, nid: &str) -> Vec<(String, Option<IpAddr>)> {
        self.with_ips(self.network_peers(nid))
    }

    /// [`Self::cluster_peers`], each with the IP address memberlist knows
    /// for it (`None`: not a member any more).
    pub fn cluster_peer_ips(&self) -> Vec<(String, Option<IpAddr>)> {
        self.with_ips(self.cluster_peers())
    }

    fn with_ips(&self, names: Vec<String>) -> Vec<(String, Option<IpAddr>)> {
        let addrs: HashMap<String, IpAddr> = self
            .core
            .members()
            .map(|m| (m.name.to_string(), m.addr.ip()))
            .collect();
        names
            .into_iter()
            .map(|n| {
                let ip = addrs.get(&n).copied();
                (n, ip)
            })
            .collect()
    }

    /// Adds a gossip encryption key (Docker's `SetKey`).
    pub fn install_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        self.core.install_key(key)
    }

    /// Makes an installed key the primary one (Docker's `SetPrimaryKey`).
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        self.core.use_key(key)
    }

    /// Removes a key (Docker's `RemoveKey`).
    pub fn remove_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        self.core.remove_key(key)
    }

    /// The networks this node is attached to.
    pub fn networks(&self) -> Vec<String> {
        self.state().networks()
    }

    /// `(entries, own queue length)` of an attached network (Docker's
    /// `/networkstats`); `None` when not attached.
    pub fn network_stats(&self, nid: &str) -> Option<(usize, usize)> {
        self.state().network_stats(nid)
    }

    /// How this node sees another one.
    pub fn peer_state(&self, name: &str) -> Option<PeerState> {
        self.state().peer_state(name)
    }
}
