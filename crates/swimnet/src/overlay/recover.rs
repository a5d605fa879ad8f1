//! What an agent that restarts finds and takes back: the endpoints it made
//! (the host ends of its veth pairs carry their description as interface
//! alias; with `--data-dir` also a small JSON file beside the snapshot),
//! re-published when their namespace still exists and removed otherwise,
//! and overlay devices no local endpoint uses, removed. The first
//! reconcile pass then removes stale neighbour and FDB entries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use swimnet_overlay::dataplane::{DataPlane, FoundEndpoint};
use swimnet_overlay::ipam::{self, Claim, IPAM_TABLE};
use swimnet_overlay::model::{LocalEndpoint, OverlayDef};
use swimnet_overlay::OverlayError;

use super::manager::{now_ms, Local, Manager};
use crate::escape::esc;

/// The file beside the snapshot that keeps the local endpoints.
pub const ENDPOINTS_FILE: &str = "overlay-endpoints.json";

/// Largest endpoints file read at start (bytes).
pub const MAX_ENDPOINTS_FILE: u64 = 4 << 20;

/// Prefixes of the kernel devices swimnet makes.
const DEVICE_PREFIXES: [&str; 3] = ["swvx-", "swbr-", "swve-"];

/// One kept endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeptEndpoint {
    /// The overlay's network ID.
    pub overlay_id: String,
    /// The overlay's name.
    pub overlay: String,
    /// Its VNI.
    pub vni: u32,
    /// The host end of the veth.
    pub host_ifname: String,
    /// The endpoint's description ([`LocalEndpoint::alias`]).
    pub alias: String,
    /// Whether the user asked for its address.
    pub requested: bool,
}

/// The endpoints file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeptEndpoints {
    /// Format version (1).
    pub version: u32,
    /// The endpoints.
    pub endpoints: Vec<KeptEndpoint>,
}

/// Reads the endpoints file in `dir`; a missing file is empty, a corrupt
/// or oversized one is reported and skipped.
pub fn load_kept(dir: &Path) -> KeptEndpoints {
    let path = dir.join(ENDPOINTS_FILE);
    let read = || -> Result<Option<KeptEndpoints>, String> {
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if meta.len() > MAX_ENDPOINTS_FILE {
            return Err(format!("{} bytes, over {MAX_ENDPOINTS_FILE}", meta.len()));
        }
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        decode_kept(&bytes).map(Some)
    };
    match read() {
        Ok(k) => k.unwrap_or_default(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %esc(&e), "the kept overlay endpoints are unreadable: skipped");
            KeptEndpoints::default()
        }
    }
}

/// Parses the endpoints file's bytes: at most [`MAX_ENDPOINTS_FILE`], JSON,
/// format version 1. The error says what is wrong, without the path.
pub fn decode_kept(bytes: &[u8]) -> Result<KeptEndpoints, String> {
    if bytes.len() as u64 > MAX_ENDPOINTS_FILE {
        return Err(format!("{} bytes, over {MAX_ENDPOINTS_FILE}", bytes.len()));
    }
    let kept: KeptEndpoints = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if kept.version != 1 {
        return Err(format!("unknown version {}", kept.version));
    }
    Ok(kept)
}

/// The endpoints file's bytes for `kept` (what [`save_kept`] writes).
pub fn encode_kept(kept: &KeptEndpoints) -> Vec<u8> {
    serde_json::to_vec_pretty(kept).expect("kept endpoints serialize")
}

/// Writes the endpoints file in `dir` atomically (a temporary file renamed
/// over it).
pub fn save_kept(dir: &Path, kept: &KeptEndpoints) -> std::io::Result<()> {
    let path = dir.join(ENDPOINTS_FILE);
    let tmp: PathBuf = dir.join(format!("{ENDPOINTS_FILE}.tmp"));
    std::fs::write(&tmp, encode_kept(kept))?;
    std::fs::rename(&tmp, &path)
}

/// Whether this namespace has any device swimnet makes (read from sysfs,
/// so an agent that never used overlays does not open netlink).
fn kernel_has_overlay_devices() -> bool {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return false;
    };
    dir.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        DEVICE_PREFIXES.iter().any(|p| name.starts_with(p))
    })
}

impl<D: DataPlane> Manager<D> {
    /// Writes the local endpoints to the data dir, if there is one.
    pub(crate) fn save_local(&self) {
        let Some(dir) = &self.cfg.data_dir else {
            return;
        };
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let endpoints = self
            .state()
            .local
            .values()
            .map(|l| KeptEndpoint {
                overlay_id: l.ep.overlay_id.clone(),
                overlay: l.overlay.clone(),
                vni: l.ep.vni,
                host_ifname: l.ep.host_ifname.clone(),
                alias: l.ep.alias(),
                requested: l.requested,
            })
            .collect();
        let kept = KeptEndpoints {
            version: 1,
            endpoints,
        };
        if let Err(e) = save_kept(dir, &kept) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot keep the overlay endpoints in the data dir");
        }
    }

    /// At start: takes back the endpoints found in the kernel (and data
    /// dir). Waits (a few `--overlay-settle`) for the definitions to arrive
    /// from peers first. Does nothing, and opens no netlink socket, when
    /// neither holds anything of swimnet's.
    pub(crate) async fn recover(&self) {
        let kept = self
            .cfg
            .data_dir
            .as_deref()
            .map(load_kept)
            .unwrap_or_default();
        if kept.endpoints.is_empty() && !kernel_has_overlay_devices() {
            return;
        }
        if let Err(e) = self.join_defs_network().await {
            tracing::error!(error = %e, "overlays: cannot join the definitions network");
            return;
        }
        let _op = self.ops.write().await;
        let found = match self.plane().await {
            Ok(mut p) => p.endpoints().await,
            Err(e) => Err(e),
        };
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "overlays: cannot read the kernel's endpoints at start");
                return;
            }
        };
        let defs = self.wait_for_defs(&found, &kept).await;
        let requested: BTreeSet<&str> = kept
            .endpoints
            .iter()
            .filter(|k| k.requested)
            .map(|k| k.host_ifname.as_str())
            .collect();
        let mut used_vnis = BTreeSet::new();
        for f in &found {
            let def = defs.get(&f.vni);
            let ep =
                def.and_then(|d| LocalEndpoint::from_alias(&f.alias, &f.host_ifname, f.vni, &d.id));
            match (def, ep) {
                (Some(def), Some(ep)) if (self.cfg.netns_exists)(&ep.netns).is_ok() => {
                    let req = requested.contains(f.host_ifname.as_str());
                    match self.take_back(def, ep, req).await {
                        Ok(()) => {
                            used_vnis.insert(f.vni);
                        }
                        Err(e) => {
                            tracing::error!(device = %esc(&f.host_ifname), error = %e, "re-publishing a kept endpoint failed")
                        }
                    }
                }
                (_, ep) => self.remove_found(f, ep).await,
            }
        }
        self.remove_unused_devices(&used_vnis).await;
        self.save_local();
        self.update_gauges();
    }

    /// The winning definitions by VNI, waiting up to 10 `--overlay-settle`
    /// (at least 10 s) until every VNI of `found` is known.
    async fn wait_for_defs(
        &self,
        found: &[FoundEndpoint],
        kept: &super::recover::KeptEndpoints,
    ) -> BTreeMap<u32, OverlayDef> {
        let wanted: BTreeSet<u32> = found
            .iter()
            .map(|f| f.vni)
            .chain(kept.endpoints.iter().map(|k| k.vni))
            .collect();
        let mut by_vni = BTreeMap::new();
        let wait = (self.cfg.settle * 10).max(std::time::Duration::from_secs(10));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(r) = self.refresh_defs().await {
                by_vni = r.overlays.values().map(|d| (d.vni, d.clone())).collect();
            }
            if wanted.iter().all(|v| by_vni.contains_key(v))
                || tokio::time::Instant::now() >= deadline
            {
                break;
            }
            tokio::time::sleep(self.cfg.settle.max(std::time::Duration::from_millis(100))).await;
        }
        by_vni
    }

    /// Re-publishes a kept endpoint: network, claim (same address), records, DNS.
    async fn take_back(
        &self,
        def: &OverlayDef,
        ep: LocalEndpoint,
        requested: bool,
    ) -> Result<(), OverlayError> {
        self.join_overlay(def).await?;
        self.plane()
            .await?
            .ensure_overlay(def, self.cfg.vtep, self.cfg.vxlan_port)
            .await?;
        let claim = Claim {
            ip: ep.ip,
            endpoint: ep.id.clone(),
            host: self.cfg.node.clone(),
            requested,
            at_ms: now_ms(),
        };
        let key = ipam::claim_key(ep.ip, &ep.id);
        let held = self
            .claims(&def.id)
            .await?
            .into_iter()
            .any(|c| c.endpoint == ep.id && c.ip == ep.ip);
        if !held {
            self.tables
                .put(&def.id, IPAM_TABLE, &key, ipam::encode(&claim))
                .await?;
        }
        self.publish(&ep).await?;
        let netns_name = ep.netns.clone();
        tracing::info!(overlay = %esc(&def.name), netns = %esc(&netns_name), ip = %ep.ip, "endpoint found at start: re-published");
        self.state().local.insert(
            ep.id.clone(),
            Local {
                ep,
                overlay: def.name.clone(),
                requested,
            },
        );
        self.ensure_dns(&netns_name);
        Ok(())
    }

    /// Removes an endpoint found at start that cannot be taken back.
    async fn remove_found(&self, f: &FoundEndpoint, ep: Option<LocalEndpoint>) {
        tracing::warn!(device = %esc(&f.host_ifname), "endpoint found at start has no namespace or overlay any more: removed");
        let ep = ep.unwrap_or_else(|| LocalEndpoint {
            id: String::new(),
            overlay_id: String::new(),
            vni: f.vni,
            name: String::new(),
            netns: String::new(),
            ip: std::net::Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            mac: swimnet_overlay::Mac([0; 6]),
            ifname: String::new(),
            host_ifname: f.host_ifname.clone(),
            mtu: 0,
        });
        if let Ok(mut plane) = self.plane().await {
            if let Err(e) = plane.detach(&ep).await {
                tracing::error!(device = %esc(&f.host_ifname), error = %e, "removing a stale endpoint failed");
            }
        }
    }

    /// Removes overlay devices of VNIs not in `used`.
    async fn remove_unused_devices(&self, used: &BTreeSet<u32>) {
        let Ok(mut plane) = self.plane().await else {
            return;
        };
        let Ok(vnis) = plane.overlays().await else {
            return;
        };
        for vni in vnis.difference(used) {
            tracing::info!(
                vni,
                "overlay devices with no local endpoint found at start: removed"
            );
            if let Err(e) = plane.remove_overlay(*vni).await {
                tracing::error!(vni, error = %e, "removing stale overlay devices failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoints_file_round_trips_and_a_corrupt_one_is_skipped() {
        let dir = std::env::temp_dir().join(format!(
            "swimnet-kept-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load_kept(&dir), KeptEndpoints::default());
        let kept = KeptEndpoints {
            version: 1,
            endpoints: vec![KeptEndpoint {
                overlay_id: "a".repeat(64),
                overlay: "blue".into(),
                vni: 4096,
                host_ifname: "swve-aaaaaaaaa".into(),
                alias: "{}".into(),
                requested: true,
            }],
        };
        save_kept(&dir, &kept).unwrap();
        assert_eq!(load_kept(&dir), kept);
        assert!(!dir.join(format!("{ENDPOINTS_FILE}.tmp")).exists());
        std::fs::write(dir.join(ENDPOINTS_FILE), b"{not json").unwrap();
        assert_eq!(load_kept(&dir), KeptEndpoints::default());
        std::fs::write(dir.join(ENDPOINTS_FILE), br#"{"version":9,"endpoints":[]}"#).unwrap();
        assert_eq!(load_kept(&dir), KeptEndpoints::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
