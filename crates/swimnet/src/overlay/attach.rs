//! Attaching and detaching endpoints: the address (claimed in the
//! overlay's IPAM table, checked against concurrent claims after
//! `--overlay-settle`), the veth pair, the records other hosts program
//! from, DNS. Any failure undoes what was done.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use swimnet_overlay::dataplane::DataPlane;
use swimnet_overlay::ipam::{self, Claim, IPAM_TABLE};
use swimnet_overlay::model::{
    host_veth_name, LocalEndpoint, Mac, OverlayDef, MAX_ENDPOINT_NAME, MAX_ENDPOINT_NETNS,
    VXLAN_OVERHEAD,
};
use swimnet_overlay::records::{EndpointRecord, PeerRecord, ENDPOINT_TABLE, PEER_TABLE};
use swimnet_overlay::{netns, OverlayError};

use super::manager::{now_ms, Local, Manager};
use super::{EndpointView, OverlayCounters, MAX_LOCAL_ENDPOINTS};
use crate::escape::esc;

/// Times an automatic address is chosen again after losing to a
/// concurrent claim before the attach gives up.
const MAX_ADDRESS_ROUNDS: u32 = 6;

/// Checks an endpoint name: a DNS label (letters, digits, `-`, `_`, not
/// starting with `-`), at most [`MAX_ENDPOINT_NAME`].
pub fn check_endpoint_name(name: &str) -> Result<(), OverlayError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ENDPOINT_NAME
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(OverlayError::Invalid(format!(
            "endpoint name {:?} is not a DNS label (1 to {MAX_ENDPOINT_NAME} letters, digits, '-' or '_'; give --name)",
            swimnet_overlay::model::clip(name)
        )))
    }
}

/// The view of a local endpoint as attach answers it.
pub(crate) fn local_view(l: &Local, host: &str, vtep: Ipv4Addr) -> EndpointView {
    EndpointView {
        id: l.ep.id.clone(),
        name: l.ep.name.clone(),
        ip: l.ep.ip.to_string(),
        mac: l.ep.mac.to_string(),
        host: host.to_string(),
        vtep: vtep.to_string(),
        overlay: l.overlay.clone(),
        ifname: Some(l.ep.ifname.clone()),
        mtu: Some(l.ep.mtu),
        netns: Some(l.ep.netns.clone()),
        prefix_len: Some(l.ep.prefix_len),
    }
}

/// What an attach did so far, for undoing it.
#[derive(Default)]
struct Done {
    joined_now: bool,
    claim: Option<String>,
    ep: Option<LocalEndpoint>,
    published: bool,
}

impl<D: DataPlane> Manager<D> {
    /// `swimnet overlay attach`: gives the namespace `netns` an interface
    /// on the overlay `name`, at `ip` or a free address, named `epname`
    /// (default: the namespace's name) for DNS.
    pub async fn attach(
        &self,
        name: &str,
        netns_name: &str,
        ip: Option<Ipv4Addr>,
        epname: Option<&str>,
    ) -> Result<EndpointView, OverlayError> {
        netns::netns_path(netns_name)?;
        if netns_name.len() > MAX_ENDPOINT_NETNS {
            return Err(OverlayError::Invalid(format!(
                "namespace name {:?} is longer than {MAX_ENDPOINT_NETNS} bytes",
                swimnet_overlay::model::clip(netns_name)
            )));
        }
        if self.cfg.vtep.is_unspecified() {
            return Err(OverlayError::Invalid(
                "this agent has no IPv4 tunnel endpoint (it advertises an IPv6 address): restart it with --vtep-addr IP".into(),
            ));
        }
        let epname = epname.unwrap_or(netns_name);
        check_endpoint_name(epname)?;
        let _op = self.ops.read().await;
        (self.cfg.netns_exists)(netns_name)?;
        let def = self.def_named(name).await?;
        if let Some(ip) = ip {
            if !ipam::usable(def.subnet, ip) {
                return Err(OverlayError::AddressTaken {
                    ip: ip.to_string(),
                    overlay: name.to_string(),
                    why: format!("not a usable host address of {}", def.subnet),
                });
            }
        }
        {
            let mut st = self.state();
            if st
                .local
                .values()
                .any(|l| l.ep.overlay_id == def.id && l.ep.netns == netns_name)
            {
                return Err(OverlayError::Invalid(format!(
                    "namespace {netns_name:?} already has an endpoint on overlay {name:?}"
                )));
            }
            if st.local.len() >= MAX_LOCAL_ENDPOINTS {
                return Err(OverlayError::Invalid(format!(
                    "this agent already hosts {MAX_LOCAL_ENDPOINTS} endpoints"
                )));
            }
            mark_busy(&mut st, netns_name)?;
            *st.inflight.entry(def.id.clone()).or_default() += 1;
        }
        let mut done = Done::default();
        let r = self
            .attach_steps(&def, netns_name, ip, epname, &mut done)
            .await;
        {
            let mut st = self.state();
            st.busy.remove(netns_name);
            if let Some(n) = st.inflight.get_mut(&def.id) {
                *n -= 1;
                if *n == 0 {
                    st.inflight.remove(&def.id);
                }
            }
        }
        if r.is_err() {
            self.undo_attach(&def, done).await;
        }
        r
    }

    async fn attach_steps(
        &self,
        def: &OverlayDef,
        netns_name: &str,
        ip: Option<Ipv4Addr>,
        epname: &str,
        done: &mut Done,
    ) -> Result<EndpointView, OverlayError> {
        done.joined_now = self.join_overlay(def).await?;
        let id = hex::random_id();
        let addr = self.claim_address(def, &id, ip, done).await?;
        let (ifname, underlay) = {
            let mut plane = self.plane().await?;
            let ifname = plane.free_ifname(netns_name).await?;
            (ifname, plane.underlay_mtu(self.cfg.vtep).await?)
        };
        let ep = LocalEndpoint {
            host_ifname: host_veth_name(&id),
            id,
            overlay_id: def.id.clone(),
            vni: def.vni,
            name: epname.to_string(),
            netns: netns_name.to_string(),
            ip: addr,
            prefix_len: def.subnet.prefix_len(),
            mac: Mac::from_ip(addr),
            ifname,
            mtu: underlay.saturating_sub(VXLAN_OVERHEAD).max(68),
        };
        {
            let mut plane = self.plane().await?;
            plane
                .ensure_overlay(def, self.cfg.vtep, self.cfg.vxlan_port)
                .await?;
            done.ep = Some(ep.clone());
            plane.attach(&ep).await?;
        }
        done.published = true;
        self.publish(&ep).await?;
        let local = Local {
            ep: ep.clone(),
            overlay: def.name.clone(),
            requested: ip.is_some(),
        };
        let view = super::attach::local_view(&local, &self.cfg.node, self.cfg.vtep);
        self.state().local.insert(ep.id.clone(), local);
        self.update_gauges();
        self.ensure_dns(netns_name);
        self.save_local();
        self.kick.notify_one();
        tracing::info!(overlay = %esc(&def.name), netns = %esc(netns_name), ip = %addr, id = %ep.id, "endpoint attached");
        Ok(view)
    }

    /// Joins the overlay's network (when not yet) and waits until the
    /// bulk sync had `--overlay-settle` to bring its tables; `true` when
    /// this call joined it.
    pub(crate) async fn join_overlay(&self, def: &OverlayDef) -> Result<bool, OverlayError> {
        let membership = self.membership.lock().await;
        let (since, joined_now) = {
            let mut st = self.state();
            match st.joined.get(&def.id) {
                Some(t) => (*t, false),
                None => {
                    let t = std::time::Instant::now();
                    st.joined.insert(def.id.clone(), t);
                    (t, true)
                }
            }
        };
        if joined_now {
            if let Err(e) = self.tables.join(&def.id).await {
                self.state().joined.remove(&def.id);
                return Err(e);
            }
        }
        drop(membership);
        tokio::time::sleep_until((since + self.cfg.settle).into()).await;
        Ok(joined_now)
    }

    /// The decoded claims of the overlay, failed owners' included.
    pub(crate) async fn claims(&self, nid: &str) -> Result<Vec<Claim>, OverlayError> {
        let entries = self.tables.list_with_failed(nid, IPAM_TABLE).await?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            match ipam::decode(&e.value) {
                Ok(c) => out.push(c),
                Err(err) => {
                    OverlayCounters::bump(&self.counters.decode_failures, 1);
                    tracing::warn!(key = %esc(&e.key), owner = %esc(&e.owner), error = %err, "address claim does not decode: ignored");
                }
            }
        }
        Ok(out)
    }

    /// Claims `ip` (or a free address) for the endpoint `id`, waits for
    /// concurrent claims, and chooses again after losing an automatic
    /// address (a requested one fails).
    async fn claim_address(
        &self,
        def: &OverlayDef,
        id: &str,
        ip: Option<Ipv4Addr>,
        done: &mut Done,
    ) -> Result<Ipv4Addr, OverlayError> {
        let taken_err = |ip: Ipv4Addr, c: &Claim, at_once: bool| OverlayError::AddressTaken {
            ip: ip.to_string(),
            overlay: def.name.clone(),
            why: format!(
                "{} endpoint {} on host {}",
                if at_once {
                    "claimed at the same time by"
                } else {
                    "held by"
                },
                short(&c.endpoint),
                esc(&c.host)
            ),
        };
        let mut lost: BTreeSet<Ipv4Addr> = BTreeSet::new();
        for round in 0..MAX_ADDRESS_ROUNDS {
            let choosing = self.claiming.lock().await;
            let claims = self.claims(&def.id).await?;
            let mut taken: BTreeSet<Ipv4Addr> = claims.iter().map(|c| c.ip).collect();
            taken.extend(lost.iter().copied());
            let addr = match ip {
                Some(want) => {
                    if let Some(c) = claims.iter().find(|c| c.ip == want) {
                        return Err(taken_err(want, c, false));
                    }
                    want
                }
                // After a lost round, scatter: the hosts that collided
                // would otherwise meet again at the same next address.
                None if round == 0 => {
                    ipam::choose(def.subnet, &self.cfg.node, &taken).ok_or_else(|| {
                        OverlayError::SubnetFull(def.subnet.to_string(), def.name.clone())
                    })?
                }
                None => ipam::choose_again(def.subnet, &self.cfg.node, id, round, &taken)
                    .ok_or_else(|| {
                        OverlayError::SubnetFull(def.subnet.to_string(), def.name.clone())
                    })?,
            };
            let claim = Claim {
                ip: addr,
                endpoint: id.to_string(),
                host: self.cfg.node.clone(),
                requested: ip.is_some(),
                at_ms: now_ms(),
            };
            let key = ipam::claim_key(addr, id);
            self.tables
                .put(&def.id, IPAM_TABLE, &key, ipam::encode(&claim))
                .await?;
            done.claim = Some(key.clone());
            drop(choosing);
            tokio::time::sleep(self.cfg.settle).await;
            let claims = self.claims(&def.id).await?;
            let beaten = ipam::losers(&claims)
                .into_iter()
                .find(|(l, _)| l.endpoint == id && l.ip == addr);
            let Some((_, winner)) = beaten else {
                return Ok(addr);
            };
            self.tables.delete(&def.id, IPAM_TABLE, &key).await?;
            done.claim = None;
            OverlayCounters::bump(&self.counters.conflicts_lost, 1);
            if ip.is_some() {
                return Err(taken_err(addr, &winner, true));
            }
            tracing::info!(overlay = %esc(&def.name), ip = %addr, winner = %esc(&winner.host), "address claim lost to a concurrent one: choosing again");
            lost.insert(addr);
        }
        Err(OverlayError::AddressTaken {
            ip: "any".into(),
            overlay: def.name.clone(),
            why: format!("lost {MAX_ADDRESS_ROUNDS} concurrent claims in a row; try again"),
        })
    }

    /// Writes the endpoint's claim (when missing), peer record and
    /// endpoint record.
    pub(crate) async fn publish(&self, ep: &LocalEndpoint) -> Result<(), OverlayError> {
        let peer = PeerRecord::new(ep.ip, ep.prefix_len, ep.mac, self.cfg.vtep);
        self.tables
            .put(&ep.overlay_id, PEER_TABLE, &ep.id, peer.encode())
            .await?;
        let rec = EndpointRecord::plain(&ep.name, ep.ip);
        self.tables
            .put(&ep.overlay_id, ENDPOINT_TABLE, &ep.id, rec.encode())
            .await
    }

    /// Removes the endpoint's records and claim.
    pub(crate) async fn unpublish(&self, ep: &LocalEndpoint) -> Result<(), OverlayError> {
        self.tables
            .delete(&ep.overlay_id, PEER_TABLE, &ep.id)
            .await?;
        self.tables
            .delete(&ep.overlay_id, ENDPOINT_TABLE, &ep.id)
            .await?;
        let key = ipam::claim_key(ep.ip, &ep.id);
        self.tables.delete(&ep.overlay_id, IPAM_TABLE, &key).await
    }

    /// Undoes a failed attach: records, claim, veth, the overlay's devices
    /// and network membership when nothing else on this host uses them.
    async fn undo_attach(&self, def: &OverlayDef, done: Done) {
        if let Some(ep) = &done.ep {
            if done.published {
                let _ = self.unpublish(ep).await;
            }
            if let Ok(mut plane) = self.plane().await {
                if let Err(e) = plane.detach(ep).await {
                    tracing::error!(error = %e, "undoing a failed attach: removing the veth failed");
                }
            }
        }
        if let Some(key) = &done.claim {
            let _ = self.tables.delete(&def.id, IPAM_TABLE, key).await;
        }
        self.release_overlay_if_unused(def, done.joined_now || done.ep.is_some())
            .await;
    }

    /// When no local endpoint is left on the overlay: removes its devices
    /// (if `devices`) and leaves its network.
    async fn release_overlay_if_unused(&self, def: &OverlayDef, devices: bool) {
        let _membership = self.membership.lock().await;
        let used = {
            let st = self.state();
            st.local.values().any(|l| l.ep.overlay_id == def.id)
                || st.inflight.contains_key(&def.id)
        };
        if used {
            return;
        }
        if devices && self.plane_opened().await {
            if let Ok(mut plane) = self.plane().await {
                if let Err(e) = plane.remove_overlay(def.vni).await {
                    tracing::error!(overlay = %esc(&def.name), error = %e, "removing the overlay's devices failed");
                }
            }
        }
        {
            let mut st = self.state();
            st.joined.remove(&def.id);
            st.last_desired.remove(&def.id);
            st.programmed.remove(&def.id);
        }
        if let Err(e) = self.tables.leave(&def.id).await {
            tracing::error!(overlay = %esc(&def.name), error = %e, "leaving the overlay's network failed");
        }
        self.update_gauges();
    }

    /// `swimnet overlay detach`: removes the endpoint of overlay `name` in
    /// `netns`: records, claim, veth; the overlay's devices and network
    /// membership with the last local endpoint; DNS with the namespace's
    /// last endpoint.
    pub async fn detach(&self, name: &str, netns_name: &str) -> Result<(), OverlayError> {
        let _op = self.ops.read().await;
        let found = self
            .state()
            .local
            .values()
            .find(|l| l.overlay == name && l.ep.netns == netns_name)
            .cloned();
        let Some(local) = found else {
            self.def_named(name).await?;
            return Err(OverlayError::NoSuchEndpoint {
                overlay: name.to_string(),
                netns: netns_name.to_string(),
            });
        };
        mark_busy(&mut self.state(), netns_name)?;
        let r = self.detach_steps(&local).await;
        self.state().busy.remove(netns_name);
        r?;
        tracing::info!(overlay = %esc(name), netns = %esc(netns_name), id = %local.ep.id, "endpoint detached");
        Ok(())
    }

    /// Removes a local endpoint: records, claim, veth, then what nothing
    /// uses any more.
    async fn detach_steps(&self, local: &Local) -> Result<(), OverlayError> {
        let ep = &local.ep;
        let netns_name = ep.netns.as_str();
        self.unpublish(ep).await?;
        self.plane().await?.detach(ep).await?;
        self.state().local.remove(&ep.id);
        let def = OverlayDef {
            name: local.overlay.clone(),
            id: ep.overlay_id.clone(),
            subnet: format!("{}/{}", ep.ip, ep.prefix_len)
                .parse::<ipnet::Ipv4Net>()
                .map(|n| n.trunc())
                .map_err(|e| OverlayError::Invalid(e.to_string()))?,
            vni: ep.vni,
            created_ms: 0,
            creator: String::new(),
        };
        self.release_overlay_if_unused(&def, true).await;
        self.ensure_dns(netns_name);
        self.save_local();
        Ok(())
    }
}

/// Marks a namespace as having an attach or detach under way; refused
/// when one already is.
fn mark_busy(st: &mut super::manager::State, netns_name: &str) -> Result<(), OverlayError> {
    if !st.busy.insert(netns_name.to_string()) {
        return Err(OverlayError::Invalid(format!(
            "an attach or detach in namespace {netns_name:?} is under way; try again when it is done"
        )));
    }
    Ok(())
}

/// The first 12 characters of an ID, for messages.
pub(crate) fn short(id: &str) -> String {
    esc(&id.chars().take(12).collect::<String>()).to_string()
}

mod hex {
    /// A new endpoint ID: 64 random hex digits, as Docker's.
    pub fn random_id() -> String {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
