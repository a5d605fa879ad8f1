//! An in-memory data plane for the manager's tests: what a kernel would
//! hold, shared with the test through an `Arc` so it can look and meddle.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use swimnet_overlay::dataplane::{DataPlane, FoundEndpoint};
use swimnet_overlay::model::{LocalEndpoint, Mac, OverlayDef};
use swimnet_overlay::OverlayError;

/// What the fake kernel holds.
#[derive(Debug, Default)]
pub struct Kernel {
    pub overlays: BTreeSet<u32>,
    pub neighbours: BTreeMap<u32, BTreeSet<(Ipv4Addr, Mac)>>,
    pub fdb: BTreeMap<u32, BTreeSet<(Mac, Ipv4Addr)>>,
    /// host ifname -> (vni, alias, netns)
    pub endpoints: BTreeMap<String, (u32, String, String)>,
    /// Entry additions made (neighbour and FDB).
    pub adds: usize,
    /// Makes the next attach fail.
    pub fail_attach: bool,
}

/// The fake data plane.
#[derive(Clone, Default)]
pub struct MemPlane(pub Arc<Mutex<Kernel>>);

impl MemPlane {
    pub fn k(&self) -> std::sync::MutexGuard<'_, Kernel> {
        self.0.lock().unwrap()
    }
}

impl DataPlane for MemPlane {
    async fn ensure_overlay(
        &mut self,
        def: &OverlayDef,
        _vtep: Ipv4Addr,
        _port: u16,
    ) -> Result<(), OverlayError> {
        self.k().overlays.insert(def.vni);
        Ok(())
    }
    async fn remove_overlay(&mut self, vni: u32) -> Result<(), OverlayError> {
        let mut k = self.k();
        k.overlays.remove(&vni);
        k.neighbours.remove(&vni);
        k.fdb.remove(&vni);
        Ok(())
    }
    async fn overlays(&mut self) -> Result<BTreeSet<u32>, OverlayError> {
        Ok(self.k().overlays.clone())
    }
    async fn neighbours(&mut self, vni: u32) -> Result<BTreeSet<(Ipv4Addr, Mac)>, OverlayError> {
        Ok(self.k().neighbours.get(&vni).cloned().unwrap_or_default())
    }
    async fn fdb(&mut self, vni: u32) -> Result<BTreeSet<(Mac, Ipv4Addr)>, OverlayError> {
        Ok(self.k().fdb.get(&vni).cloned().unwrap_or_default())
    }
    async fn add_neighbour(
        &mut self,
        vni: u32,
        ip: Ipv4Addr,
        mac: Mac,
    ) -> Result<(), OverlayError> {
        let mut k = self.k();
        k.adds += 1;
        let set = k.neighbours.entry(vni).or_default();
        set.retain(|(i, _)| *i != ip);
        set.insert((ip, mac));
        Ok(())
    }
    async fn remove_neighbour(
        &mut self,
        vni: u32,
        ip: Ipv4Addr,
        _mac: Mac,
    ) -> Result<(), OverlayError> {
        if let Some(s) = self.k().neighbours.get_mut(&vni) {
            s.retain(|(i, _)| *i != ip);
        }
        Ok(())
    }
    async fn add_fdb(&mut self, vni: u32, mac: Mac, vtep: Ipv4Addr) -> Result<(), OverlayError> {
        let mut k = self.k();
        k.adds += 1;
        k.fdb.entry(vni).or_default().insert((mac, vtep));
        Ok(())
    }
    async fn remove_fdb(&mut self, vni: u32, mac: Mac, vtep: Ipv4Addr) -> Result<(), OverlayError> {
        if let Some(s) = self.k().fdb.get_mut(&vni) {
            s.remove(&(mac, vtep));
        }
        Ok(())
    }
    async fn attach(&mut self, ep: &LocalEndpoint) -> Result<(), OverlayError> {
        let mut k = self.k();
        if std::mem::take(&mut k.fail_attach) {
            return Err(OverlayError::Kernel {
                op: "creating a veth".into(),
                detail: "injected failure".into(),
            });
        }
        k.endpoints.insert(
            ep.host_ifname.clone(),
            (ep.vni, ep.alias(), ep.netns.clone()),
        );
        Ok(())
    }
    async fn detach(&mut self, ep: &LocalEndpoint) -> Result<(), OverlayError> {
        self.k().endpoints.remove(&ep.host_ifname);
        Ok(())
    }
    async fn endpoints(&mut self) -> Result<Vec<FoundEndpoint>, OverlayError> {
        Ok(self
            .k()
            .endpoints
            .iter()
            .map(|(name, (vni, alias, _))| FoundEndpoint {
                host_ifname: name.clone(),
                vni: *vni,
                alias: alias.clone(),
            })
            .collect())
    }
    async fn free_ifname(&mut self, netns: &str) -> Result<String, OverlayError> {
        let used = self.k().endpoints.values().filter(|e| e.2 == netns).count();
        Ok(format!("eth{used}"))
    }
    async fn underlay_mtu(&mut self, _vtep: Ipv4Addr) -> Result<u32, OverlayError> {
        Ok(1500)
    }
}
