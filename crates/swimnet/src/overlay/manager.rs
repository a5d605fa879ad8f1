//! The overlay manager's shared state and the cluster-wide operations on
//! definitions: create, delete, list, and the endpoints of an overlay.
//! Endpoint attach and detach are in [`super::attach`], the background
//! work in [`super::sync`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;
use swimnet_overlay::dataplane::DataPlane;
use swimnet_overlay::defs::{self, DefRecord, Resolved, DEFS_NETWORK, DEFS_TABLE};
use swimnet_overlay::model::{LocalEndpoint, NameBook, OverlayDef};
use swimnet_overlay::reconcile::Desired;
use swimnet_overlay::records::{EndpointRecord, PeerRecord, ENDPOINT_TABLE, PEER_TABLE};
use swimnet_overlay::OverlayError;
use tokio::sync::{watch, MappedMutexGuard, Notify};

use super::tables::Tables;
use super::{CreatedView, EndpointView, OverlayConfig, OverlayCounters, OverlayView, MAX_OVERLAYS};
use crate::escape::esc;

/// Makes the data plane the first time an overlay operation needs it (so
/// an agent that never uses overlays never opens netlink).
pub type PlaneFactory<D> = Box<dyn Fn() -> Result<D, OverlayError> + Send + Sync>;

/// A running DNS responder: dropping it stops it.
pub type Responder = Box<dyn Send + Sync>;

/// Starts the DNS responder of a namespace, answering for the overlays in
/// the scope from the latest name book.
pub type DnsStarter = Box<
    dyn Fn(
            &str,
            watch::Receiver<BTreeSet<String>>,
            watch::Receiver<Arc<NameBook>>,
        ) -> Result<Responder, OverlayError>
        + Send
        + Sync,
>;

/// An endpoint on this host, with what the manager needs to undo it.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    /// The endpoint.
    pub ep: LocalEndpoint,
    /// The overlay's name.
    pub overlay: String,
    /// Whether the user asked for its address.
    pub requested: bool,
}

/// The DNS responder of one namespace.
pub(crate) struct NetnsDns {
    pub _responder: Option<Responder>,
    pub scope: watch::Sender<BTreeSet<String>>,
    /// Whether the agent wrote the namespace's resolv.conf (and removes it).
    pub wrote_resolv: bool,
}

/// What the manager knows and holds.
#[derive(Default)]
pub(crate) struct State {
    /// The resolved definitions.
    pub defs: Resolved,
    /// Endpoints on this host, by ID.
    pub local: BTreeMap<String, Local>,
    /// Overlay networks this node joined, with when.
    pub joined: BTreeMap<String, Instant>,
    /// DNS responders by namespace.
    pub dns: BTreeMap<String, NetnsDns>,
    /// The desired entries of each overlay at its last reconcile.
    pub last_desired: BTreeMap<String, Desired>,
    /// Programmed (neighbours, FDB entries) by overlay ID.
    pub programmed: BTreeMap<String, (usize, usize)>,
    /// Own definitions and claims already reported lost.
    pub told_lost: BTreeSet<String>,
    /// Namespaces with an attach or detach under way.
    pub busy: BTreeSet<String>,
    /// Attaches under way per overlay ID (its devices and network stay).
    pub inflight: BTreeMap<String, usize>,
}

/// The overlay manager of one agent.
pub struct Manager<D: DataPlane> {
    pub(crate) cfg: OverlayConfig,
    pub(crate) tables: Tables,
    pub(crate) counters: Arc<OverlayCounters>,
    pub(crate) state: Mutex<State>,
    /// Create, delete, re-address and the start-up recovery hold it
    /// exclusively; attach and detach share it (they run concurrently,
    /// each namespace one at a time).
    pub(crate) ops: tokio::sync::RwLock<()>,
    /// Held while an attach reads the claims, chooses and writes its own,
    /// so concurrent attaches on this host never choose one address.
    pub(crate) claiming: tokio::sync::Mutex<()>,
    /// Held while this node joins or leaves an overlay's network (and
    /// removes its devices), so an attach never races a release.
    pub(crate) membership: tokio::sync::Mutex<()>,
    /// Held while the endpoints file is written (writes in order).
    pub(crate) saving: Mutex<()>,
    /// Asks the background loop for a reconcile pass now.
    pub(crate) kick: Notify,
    pub(crate) book: watch::Sender<Arc<NameBook>>,
    plane: tokio::sync::Mutex<Option<D>>,
    factory: PlaneFactory<D>,
    pub(crate) dns_start: DnsStarter,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The settings of a definition, as conflict errors show them.
pub(crate) fn describe(d: &OverlayDef) -> String {
    format!(
        "subnet {}, VNI {} (created by {})",
        d.subnet,
        d.vni,
        esc(&d.creator)
    )
}

impl<D: DataPlane> Manager<D> {
    /// A manager that talks to the driver through `tables`, opens its data
    /// plane with `factory` when first needed and starts DNS responders
    /// with `dns_start`.
    pub fn new(
        cfg: OverlayConfig,
        tables: Tables,
        factory: PlaneFactory<D>,
        dns_start: DnsStarter,
    ) -> Manager<D> {
        Manager {
            cfg,
            tables,
            counters: Arc::new(OverlayCounters::default()),
            state: Mutex::new(State::default()),
            ops: tokio::sync::RwLock::new(()),
            claiming: tokio::sync::Mutex::new(()),
            saving: Mutex::new(()),
            membership: tokio::sync::Mutex::new(()),
            kick: Notify::new(),
            book: watch::channel(Arc::new(NameBook::default())).0,
            plane: tokio::sync::Mutex::new(None),
            factory,
            dns_start,
        }
    }

    /// The counters (shared with the metrics).
    pub fn counters(&self) -> Arc<OverlayCounters> {
        self.counters.clone()
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The data plane, opened on first use.
    pub(crate) async fn plane(&self) -> Result<MappedMutexGuard<'_, D>, OverlayError> {
        let mut guard = self.plane.lock().await;
        if guard.is_none() {
            *guard = Some((self.factory)()?);
        }
        Ok(tokio::sync::MutexGuard::map(guard, |p| {
            p.as_mut().expect("opened above")
        }))
    }

    /// Whether the data plane was opened (nothing to reconcile before).
    pub(crate) async fn plane_opened(&self) -> bool {
        self.plane.lock().await.is_some()
    }

    /// Reads the definitions table, resolves it, keeps this node's copy of
    /// every winner (and of every deletion), drops its copies of losers,
    /// and reports its own definitions that lost. Call on every change of
    /// the table and before each operation that needs the definitions.
    pub(crate) async fn refresh_defs(&self) -> Result<Resolved, OverlayError> {
        let me = self.cfg.node.clone();
        let entries = self.tables.list(DEFS_NETWORK, DEFS_TABLE).await?;
        let mut records = Vec::new();
        let mut own: BTreeMap<String, (String, DefRecord)> = BTreeMap::new();
        for e in entries.iter().take(MAX_OVERLAYS * 8) {
            match defs::decode(&e.value) {
                Ok(r) => {
                    if e.owner == me {
                        own.insert(r.def.id.clone(), (e.key.clone(), r.clone()));
                    }
                    records.push(r);
                }
                Err(err) => {
                    OverlayCounters::bump(&self.counters.decode_failures, 1);
                    tracing::warn!(key = %esc(&e.key), owner = %esc(&e.owner), error = %err, "overlay definition does not decode: ignored");
                }
            }
        }
        let resolved = defs::resolve(records.iter());
        self.keep_copies(&resolved, &own).await?;
        for (loser, winner) in &resolved.losers {
            if loser.creator == me && self.state().told_lost.insert(loser.id.clone()) {
                OverlayCounters::bump(&self.counters.conflicts_lost, 1);
                tracing::error!(overlay = %esc(&loser.name), lost = %describe(loser), winner = %describe(winner), "overlay definition made here lost to another node's");
            }
        }
        OverlayCounters::set(&self.counters.overlays, resolved.overlays.len() as u64);
        self.state().defs = resolved.clone();
        Ok(resolved)
    }

    /// Writes this node's copies so the table holds exactly: each winner,
    /// each deletion this node knew of.
    async fn keep_copies(
        &self,
        resolved: &Resolved,
        own: &BTreeMap<String, (String, DefRecord)>,
    ) -> Result<(), OverlayError> {
        let me = &self.cfg.node;
        for def in resolved.overlays.values() {
            if !own.contains_key(&def.id) {
                let rec = DefRecord {
                    def: def.clone(),
                    deleted: false,
                };
                let key = defs::def_key(&def.id, me);
                self.tables
                    .put(DEFS_NETWORK, DEFS_TABLE, &key, defs::encode(&rec))
                    .await?;
            }
        }
        for (id, (key, rec)) in own {
            if resolved.deleted.contains(id) {
                if !rec.deleted {
                    let tomb = DefRecord {
                        def: rec.def.clone(),
                        deleted: true,
                    };
                    self.tables
                        .put(DEFS_NETWORK, DEFS_TABLE, key, defs::encode(&tomb))
                        .await?;
                }
            } else if !resolved.overlays.values().any(|d| &d.id == id) {
                self.tables.delete(DEFS_NETWORK, DEFS_TABLE, key).await?;
            }
        }
        Ok(())
    }

    /// Joins the definitions network on the first overlay operation (an
    /// agent that never uses overlays stays out of it), waiting
    /// `--overlay-settle` for the bulk sync that joining starts to bring
    /// the definitions.
    pub(crate) async fn ensure_defs(&self) -> Result<(), OverlayError> {
        if self
            .tables
            .networks()
            .await?
            .iter()
            .any(|n| n == DEFS_NETWORK)
        {
            return Ok(());
        }
        self.tables.join(DEFS_NETWORK).await?;
        tokio::time::sleep(self.cfg.settle).await;
        Ok(())
    }

    /// The winning definition named `name`.
    pub(crate) async fn def_named(&self, name: &str) -> Result<OverlayDef, OverlayError> {
        self.ensure_defs().await?;
        let resolved = self.refresh_defs().await?;
        resolved
            .overlays
            .get(name)
            .cloned()
            .ok_or_else(|| OverlayError::NoSuchOverlay(name.to_string()))
    }

    /// `swimnet overlay create`: defines the overlay for the whole cluster
    /// (or finds it defined the same way), waiting `--overlay-settle` for
    /// concurrent definitions of the name to show up.
    pub async fn create(
        &self,
        name: &str,
        subnet: Ipv4Net,
        vni: Option<u32>,
    ) -> Result<CreatedView, OverlayError> {
        let _op = self.ops.write().await;
        defs::validate(name, subnet, vni)?;
        self.ensure_defs().await?;
        let resolved = self.refresh_defs().await?;
        let same = |d: &OverlayDef| d.subnet == subnet && vni.is_none_or(|v| v == d.vni);
        if let Some(d) = resolved.overlays.get(name) {
            return if same(d) {
                Ok(created_view(d, false))
            } else {
                Err(conflict(name, d))
            };
        }
        let taken: BTreeSet<u32> = resolved.overlays.values().map(|d| d.vni).collect();
        let vni = match vni {
            Some(v) => {
                if let Some(other) = resolved.overlays.values().find(|d| d.vni == v) {
                    return Err(OverlayError::VniInUse {
                        vni: v,
                        by: format!("overlay {:?}", other.name),
                    });
                }
                v
            }
            None => defs::pick_vni(name, &taken)
                .ok_or_else(|| OverlayError::Invalid("no free VNI is left".into()))?,
        };
        let created_ms = now_ms();
        let me = self.cfg.node.clone();
        let def = OverlayDef {
            name: name.to_string(),
            id: defs::network_id(name, subnet, vni, created_ms, &me),
            subnet,
            vni,
            created_ms,
            creator: me.clone(),
        };
        let rec = DefRecord {
            def: def.clone(),
            deleted: false,
        };
        let key = defs::def_key(&def.id, &me);
        self.tables
            .put(DEFS_NETWORK, DEFS_TABLE, &key, defs::encode(&rec))
            .await?;
        tokio::time::sleep(self.cfg.settle).await;
        let resolved = self.refresh_defs().await?;
        match resolved.overlays.get(name) {
            Some(w) if w.id == def.id => {
                tracing::info!(overlay = %esc(name), id = %def.id, subnet = %subnet, vni, "overlay created");
                Ok(created_view(w, true))
            }
            Some(w) if w.subnet == def.subnet && w.vni == def.vni => Ok(created_view(w, false)),
            Some(w) => Err(conflict(name, w)),
            None => match resolved.losers.iter().find(|(l, _)| l.id == def.id) {
                Some((_, w)) => Err(OverlayError::VniInUse {
                    vni: w.vni,
                    by: format!("overlay {:?}", w.name),
                }),
                None => Err(OverlayError::NoSuchOverlay(name.to_string())),
            },
        }
    }

    /// `swimnet overlay delete`: refused while any host has an endpoint on
    /// the overlay; otherwise marks it deleted cluster-wide.
    pub async fn delete(&self, name: &str) -> Result<(), OverlayError> {
        let _op = self.ops.write().await;
        let def = self.def_named(name).await?;
        let attached = self.endpoint_count(&def).await?;
        if attached > 0 {
            return Err(OverlayError::InUse(name.to_string(), attached));
        }
        let tomb = DefRecord {
            def: def.clone(),
            deleted: true,
        };
        let key = defs::def_key(&def.id, &self.cfg.node);
        self.tables
            .put(DEFS_NETWORK, DEFS_TABLE, &key, defs::encode(&tomb))
            .await?;
        self.refresh_defs().await?;
        tracing::info!(overlay = %esc(name), id = %def.id, "overlay deleted");
        Ok(())
    }

    /// How many endpoints the overlay has anywhere: its peer table when
    /// this node holds it, else the number of other nodes attached to its
    /// network (each attached node has at least one).
    async fn endpoint_count(&self, def: &OverlayDef) -> Result<usize, OverlayError> {
        let local = self
            .state()
            .local
            .values()
            .filter(|l| l.ep.overlay_id == def.id)
            .count();
        let peers = self.tables.network_peers(&def.id).await?;
        let others = peers.iter().filter(|p| **p != self.cfg.node).count();
        let listed = if self.state().joined.contains_key(&def.id) {
            self.tables.list(&def.id, PEER_TABLE).await?.len()
        } else {
            0
        };
        Ok(listed.max(local + others))
    }

    /// `swimnet overlay list`: every overlay with the hosts attached.
    pub async fn list(&self) -> Result<Vec<OverlayView>, OverlayError> {
        self.ensure_defs().await?;
        let resolved = self.refresh_defs().await?;
        let mut out = Vec::new();
        for d in resolved.overlays.values() {
            let mut hosts = self.tables.network_peers(&d.id).await?;
            hosts.sort();
            out.push(OverlayView {
                name: d.name.clone(),
                id: d.id.clone(),
                subnet: d.subnet.to_string(),
                vni: d.vni,
                hosts,
            });
        }
        Ok(out)
    }

    /// `swimnet overlay endpoints`: every endpoint of the overlay, from its
    /// tables (which only nodes with an endpoint on it hold).
    pub async fn endpoints(&self, name: &str) -> Result<Vec<EndpointView>, OverlayError> {
        let def = self.def_named(name).await?;
        if !self.state().joined.contains_key(&def.id) {
            let mut hosts = self.tables.network_peers(&def.id).await?;
            hosts.retain(|h| *h != self.cfg.node);
            if hosts.is_empty() {
                return Ok(Vec::new());
            }
            hosts.sort();
            return Err(OverlayError::NotHere(name.to_string(), hosts.join(", ")));
        }
        let names: BTreeMap<String, EndpointRecord> = self
            .tables
            .list(&def.id, ENDPOINT_TABLE)
            .await?
            .into_iter()
            .filter_map(|e| Some((e.key, EndpointRecord::decode(&e.value).ok()?)))
            .collect();
        let mut out = Vec::new();
        for e in self.tables.list(&def.id, PEER_TABLE).await? {
            let Ok(entry) = PeerRecord::decode(&e.value).and_then(|r| r.entry()) else {
                OverlayCounters::bump(&self.counters.decode_failures, 1);
                continue;
            };
            out.push(EndpointView {
                name: names
                    .get(&e.key)
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                id: e.key,
                ip: entry.ip.to_string(),
                mac: entry.mac.to_string(),
                host: e.owner,
                vtep: entry.vtep.to_string(),
                overlay: def.name.clone(),
                ifname: None,
                mtu: None,
                netns: None,
                prefix_len: None,
            });
        }
        out.sort_by(|a, b| (&a.host, &a.name, &a.id).cmp(&(&b.host, &b.name, &b.id)));
        Ok(out)
    }

    /// Updates the gauges from the state.
    pub(crate) fn update_gauges(&self) {
        let st = self.state();
        let c = &self.counters;
        c.local_endpoints
            .store(st.local.len() as u64, Ordering::Relaxed);
        let (n, f) = st
            .programmed
            .values()
            .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
        c.neighbours.store(n as u64, Ordering::Relaxed);
        c.fdb_entries.store(f as u64, Ordering::Relaxed);
    }
}

fn created_view(d: &OverlayDef, created: bool) -> CreatedView {
    CreatedView {
        name: d.name.clone(),
        id: d.id.clone(),
        subnet: d.subnet.to_string(),
        vni: d.vni,
        created,
    }
}

fn conflict(name: &str, d: &OverlayDef) -> OverlayError {
    OverlayError::Conflict {
        name: name.to_string(),
        existing: describe(d),
    }
}
