//! The overlay manager's background loop: follows the agent's events
//! (definitions, peer records, claims, names) and a periodic tick
//! (`--overlay-reconcile`), and on each: resolves definitions, reconciles
//! every overlay that has local endpoints (the sans-IO plan of
//! `swimnet_overlay::reconcile`, applied to the kernel), re-addresses
//! local endpoints that lost their address to a claim seen later, and
//! rebuilds the name book the DNS responders read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use swimnet_overlay::dataplane::DataPlane;
use swimnet_overlay::defs::DEFS_NETWORK;
use swimnet_overlay::ipam::{self, Claim, IPAM_TABLE};
use swimnet_overlay::model::{LocalEndpoint, Mac, NameBook, PeerEntry};
use swimnet_overlay::reconcile::{self, Actual};
use swimnet_overlay::records::{EndpointRecord, PeerRecord, ENDPOINT_TABLE, PEER_TABLE};
use swimnet_overlay::OverlayError;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};

use super::manager::{Manager, NetnsDns};
use super::OverlayCounters;
use crate::agent_events::{AgentEvent, Published};
use crate::escape::esc;

/// Where `ip netns exec` finds a namespace's own `/etc` files (the agent
/// writes `NETNS/resolv.conf` there).
pub const NETNS_ETC: &str = "/etc/netns";

/// Longest wait at start for another node attached to the definitions
/// network before joining it alone.
pub const DEFS_JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most events taken in one pass before the work is done.
const MAX_EVENTS_PER_PASS: usize = 1024;

/// What changed since the last pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Dirty {
    /// Every overlay (a tick, a lag, an attach).
    pub all: bool,
    /// The definitions table.
    pub defs: bool,
    /// Overlays whose peer table changed.
    pub peers: BTreeSet<String>,
    /// Overlays whose claims changed.
    pub claims: BTreeSet<String>,
    /// Some endpoint table changed.
    pub names: bool,
}

impl Dirty {
    /// Notes one event.
    pub fn note(&mut self, event: &AgentEvent) {
        match event {
            AgentEvent::Table(c) if c.network_id == DEFS_NETWORK => self.defs = true,
            AgentEvent::Table(c) if c.table == PEER_TABLE => {
                self.peers.insert(c.network_id.clone());
            }
            AgentEvent::Table(c) if c.table == IPAM_TABLE => {
                self.claims.insert(c.network_id.clone());
            }
            AgentEvent::Table(c) if c.table == ENDPOINT_TABLE => self.names = true,
            // A node failing or coming back hides or shows its entries.
            AgentEvent::Member { .. } => self.all = true,
            _ => {}
        }
    }

    fn any(&self) -> bool {
        self.all || self.defs || self.names || !self.peers.is_empty() || !self.claims.is_empty()
    }
}

impl<D: DataPlane> Manager<D> {
    /// Runs the background loop until the driver stops (its event channel
    /// closes). Call once, in its own task.
    pub async fn run(self: Arc<Self>, mut events: broadcast::Receiver<Arc<Published>>) {
        self.recover().await;
        let mut tick = tokio::time::interval(self.cfg.reconcile);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut dirty = Dirty::default();
            tokio::select! {
                r = events.recv() => match r {
                    Ok(p) => dirty.note(&p.event),
                    Err(RecvError::Lagged(_)) => dirty.all = true,
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => dirty.all = true,
                _ = self.kick.notified() => dirty.all = true,
            }
            for _ in 0..MAX_EVENTS_PER_PASS {
                match events.try_recv() {
                    Ok(p) => dirty.note(&p.event),
                    Err(TryRecvError::Lagged(_)) => dirty.all = true,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => return,
                }
            }
            if dirty.any() {
                self.pass(&dirty).await;
            }
        }
    }

    /// Joins the definitions network once another node attached to it is
    /// known (joining then bulk-syncs the definitions from it at once,
    /// instead of at the next periodic bulk sync), or after
    /// [`DEFS_JOIN_WAIT`] when none shows up (the first node). For an agent
    /// that restarts with overlay state.
    pub(crate) async fn join_defs_network(&self) -> Result<(), OverlayError> {
        let deadline = tokio::time::Instant::now() + DEFS_JOIN_WAIT;
        while tokio::time::Instant::now() < deadline {
            if self
                .tables
                .networks()
                .await?
                .iter()
                .any(|n| n == DEFS_NETWORK)
            {
                return Ok(());
            }
            let peers = self.tables.network_peers(DEFS_NETWORK).await?;
            if peers.iter().any(|p| *p != self.cfg.node) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        self.tables.join(DEFS_NETWORK).await
    }

    /// One pass over what `dirty` names.
    pub(crate) async fn pass(&self, dirty: &Dirty) {
        if dirty.all || dirty.defs {
            if let Err(e) = self.refresh_defs().await {
                tracing::warn!(error = %e, "overlays: reading the definitions failed");
            }
        }
        let with_local: BTreeMap<String, u32> = self
            .state()
            .local
            .values()
            .map(|l| (l.ep.overlay_id.clone(), l.ep.vni))
            .collect();
        for (nid, vni) in &with_local {
            if dirty.all || dirty.claims.contains(nid) {
                self.check_claims(nid).await;
            }
            if dirty.all || dirty.peers.contains(nid) {
                if let Err(e) = self.reconcile_overlay(nid, *vni).await {
                    OverlayCounters::bump(&self.counters.kernel_errors, 1);
                    tracing::error!(overlay = %nid, error = %e, "overlay reconcile failed");
                }
            }
        }
        if dirty.all || dirty.names {
            self.rebuild_book().await;
        }
        self.update_gauges();
    }

    /// The visible peer records of the overlay as entries (values that do
    /// not decode are counted, logged and skipped).
    async fn peer_entries(&self, nid: &str) -> Result<Vec<PeerEntry>, OverlayError> {
        let entries = self.tables.list(nid, PEER_TABLE).await?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            match PeerRecord::decode(&e.value).and_then(|r| r.entry()) {
                Ok(p) => out.push(p),
                Err(err) => {
                    OverlayCounters::bump(&self.counters.decode_failures, 1);
                    tracing::warn!(overlay = %nid, key = %esc(&e.key), owner = %esc(&e.owner), error = %err, "peer record does not decode: not programmed");
                }
            }
        }
        Ok(out)
    }

    /// Makes the kernel's neighbour and FDB entries of the overlay match
    /// its visible peer records. Entries desired at the last run too and
    /// missing now count as repairs.
    pub(crate) async fn reconcile_overlay(&self, nid: &str, vni: u32) -> Result<(), OverlayError> {
        let peers = self.peer_entries(nid).await?;
        let desired = reconcile::desired(peers.iter(), self.cfg.vtep);
        let mut plane = self.plane().await?;
        let actual = Actual {
            neighbours: plane.neighbours(vni).await?,
            fdb: plane.fdb(vni).await?,
        };
        let plan = reconcile::plan(&desired, &actual);
        let same_as_before = self.state().last_desired.get(nid) == Some(&desired);
        if same_as_before {
            let put_back = plan.add_neighbours.len() + plan.add_fdb.len();
            OverlayCounters::bump(&self.counters.repairs, put_back as u64);
            if put_back > 0 {
                tracing::warn!(overlay = %nid, entries = put_back, "kernel entries removed behind the agent's back: put back");
            }
        }
        let mut failed = 0u64;
        let mut note = |r: Result<(), OverlayError>| {
            if let Err(e) = r {
                failed += 1;
                tracing::error!(overlay = %nid, error = %e, "programming an overlay entry failed");
            }
        };
        for (ip, mac) in &plan.remove_neighbours {
            note(plane.remove_neighbour(vni, *ip, *mac).await);
        }
        for (mac, vtep) in &plan.remove_fdb {
            note(plane.remove_fdb(vni, *mac, *vtep).await);
        }
        for (ip, mac) in &plan.add_neighbours {
            note(plane.add_neighbour(vni, *ip, *mac).await);
        }
        for (mac, vtep) in &plan.add_fdb {
            note(plane.add_fdb(vni, *mac, *vtep).await);
        }
        drop(plane);
        OverlayCounters::bump(&self.counters.kernel_errors, failed);
        OverlayCounters::bump(&self.counters.reconcile_runs, 1);
        let mut st = self.state();
        st.programmed.insert(
            nid.to_string(),
            (desired.neighbours.len(), desired.fdb.len()),
        );
        st.last_desired.insert(nid.to_string(), desired);
        Ok(())
    }

    /// Finds local endpoints whose address lost to another claim (seen
    /// after the attach, e.g. when a partition heals): an automatic
    /// address is replaced, a requested one is reported.
    async fn check_claims(&self, nid: &str) {
        let claims = match self.claims(nid).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(overlay = %nid, error = %e, "reading address claims failed");
                return;
            }
        };
        for (lost, winner) in ipam::losers(&claims) {
            if lost.host != self.cfg.node {
                continue;
            }
            let local = self.state().local.get(&lost.endpoint).cloned();
            let Some(local) = local else { continue };
            if local.ep.ip != lost.ip {
                continue;
            }
            if local.requested {
                if self
                    .state()
                    .told_lost
                    .insert(format!("{}/{}", lost.endpoint, lost.ip))
                {
                    OverlayCounters::bump(&self.counters.conflicts_lost, 1);
                    tracing::error!(overlay = %esc(&local.overlay), ip = %lost.ip, netns = %esc(&local.ep.netns), winner_host = %esc(&winner.host), "the requested address of a local endpoint is also claimed by another endpoint that wins it: detach and attach with another --ip");
                }
                continue;
            }
            OverlayCounters::bump(&self.counters.conflicts_lost, 1);
            if let Err(e) = self.readdress(&local.ep, &claims).await {
                tracing::error!(overlay = %esc(&local.overlay), ip = %lost.ip, error = %e, "re-addressing an endpoint that lost its address failed");
            }
        }
    }

    /// Gives a local endpoint a new address: claim, veth, records.
    async fn readdress(&self, old: &LocalEndpoint, claims: &[Claim]) -> Result<(), OverlayError> {
        let _op = self.ops.write().await;
        let Some(local) = self.state().local.get(&old.id).cloned() else {
            return Ok(());
        };
        let subnet = ipnet::Ipv4Net::new(old.ip, old.prefix_len)
            .map_err(|e| OverlayError::Invalid(e.to_string()))?
            .trunc();
        let taken: BTreeSet<_> = claims.iter().map(|c| c.ip).collect();
        let ip = ipam::choose(subnet, &self.cfg.node, &taken)
            .ok_or_else(|| OverlayError::SubnetFull(subnet.to_string(), local.overlay.clone()))?;
        let claim = Claim {
            ip,
            endpoint: old.id.clone(),
            host: self.cfg.node.clone(),
            requested: false,
            at_ms: super::manager::now_ms(),
        };
        self.tables
            .put(
                &old.overlay_id,
                IPAM_TABLE,
                &ipam::claim_key(ip, &old.id),
                ipam::encode(&claim),
            )
            .await?;
        let mut ep = local.ep.clone();
        ep.ip = ip;
        ep.mac = Mac::from_ip(ip);
        {
            let mut plane = self.plane().await?;
            plane.detach(&local.ep).await?;
            plane.attach(&ep).await?;
        }
        self.tables
            .delete(
                &old.overlay_id,
                IPAM_TABLE,
                &ipam::claim_key(old.ip, &old.id),
            )
            .await?;
        self.publish(&ep).await?;
        if let Some(l) = self.state().local.get_mut(&old.id) {
            l.ep = ep.clone();
        }
        self.save_local();
        tracing::warn!(overlay = %esc(&local.overlay), old = %old.ip, new = %ip, netns = %esc(&ep.netns), "endpoint lost its address to a concurrent claim: re-addressed");
        Ok(())
    }

    /// Rebuilds the name book from the endpoint tables of the overlays
    /// this node is on, and publishes it when it changed.
    pub(crate) async fn rebuild_book(&self) {
        let joined: Vec<String> = self.state().joined.keys().cloned().collect();
        let names: BTreeMap<String, String> = self
            .state()
            .defs
            .overlays
            .values()
            .map(|d| (d.id.clone(), d.name.clone()))
            .collect();
        let mut book = NameBook::default();
        for nid in joined {
            let Ok(entries) = self.tables.list(&nid, ENDPOINT_TABLE).await else {
                continue;
            };
            let mut by_name: BTreeMap<String, BTreeSet<std::net::Ipv4Addr>> = BTreeMap::new();
            for e in entries {
                match EndpointRecord::decode(&e.value) {
                    Ok(r) => {
                        if let Ok(ip) = r.endpoint_ip.parse() {
                            by_name
                                .entry(r.name.to_ascii_lowercase())
                                .or_default()
                                .insert(ip);
                        }
                    }
                    Err(_) => OverlayCounters::bump(&self.counters.decode_failures, 1),
                }
            }
            let name = names.get(&nid).cloned().unwrap_or_default();
            book.overlays.insert(nid, (name, by_name));
        }
        self.book.send_if_modified(|cur| {
            if **cur == book {
                false
            } else {
                *cur = Arc::new(book);
                true
            }
        });
    }

    /// Makes the DNS state of the namespace match its local endpoints:
    /// starts its responder (writing its resolv.conf when absent) for the
    /// first, updates the scope, stops it (removing the resolv.conf it
    /// wrote) after the last.
    pub(crate) fn ensure_dns(&self, netns_name: &str) {
        let scope: BTreeSet<String> = self
            .state()
            .local
            .values()
            .filter(|l| l.ep.netns == netns_name)
            .map(|l| l.ep.overlay_id.clone())
            .collect();
        let mut st = self.state();
        if scope.is_empty() {
            if let Some(dns) = st.dns.remove(netns_name) {
                if dns.wrote_resolv {
                    let dir = self.cfg.netns_etc.join(netns_name);
                    let _ = std::fs::remove_file(dir.join("resolv.conf"));
                    let _ = std::fs::remove_dir(dir);
                }
            }
            return;
        }
        if let Some(dns) = st.dns.get(netns_name) {
            dns.scope.send_replace(scope);
            return;
        }
        let wrote_resolv = write_resolv_if_absent(&self.cfg.netns_etc.join(netns_name));
        let (tx, rx) = watch::channel(scope);
        let responder = match (self.dns_start)(netns_name, rx, self.book.subscribe()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(netns = %esc(netns_name), error = %e, "the namespace's DNS responder did not start: names will not resolve there");
                None
            }
        };
        st.dns.insert(
            netns_name.to_string(),
            NetnsDns {
                _responder: responder,
                scope: tx,
                wrote_resolv,
            },
        );
    }
}

/// Writes `nameserver 127.0.0.11` as `dir/resolv.conf` (a namespace's)
/// when there is none; `true` when written.
fn write_resolv_if_absent(dir: &std::path::Path) -> bool {
    let path = dir.join("resolv.conf");
    if path.exists() {
        return false;
    }
    let r = std::fs::create_dir_all(dir).and_then(|()| {
        std::fs::write(
            &path,
            format!("nameserver {}\n", swimnet_overlay::dns::DNS_ADDR),
        )
    });
    match r {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the namespace's resolv.conf");
            false
        }
    }
}
