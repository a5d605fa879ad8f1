//! Overlay networks in the agent: a task that is a client of the driver
//! (through the command channel, like the API) and turns user requests
//! (create, delete, attach, detach) and the replicated tables into kernel
//! state through a [`swimnet_overlay::dataplane::DataPlane`]. The decisions
//! (who wins a definition or an address, which entries the kernel should
//! hold) are the sans-IO functions of `swimnet_overlay`; this module runs
//! them and carries out what they say.
//!
//! * [`manager`]: the shared state and create / delete / list;
//! * [`attach`]: attach and detach of endpoints (addresses, veth, records);
//! * [`sync`]: the event loop (definitions, reconcile of neighbour and FDB
//!   entries, address conflicts found later, the name book for DNS);
//! * [`recover`]: what an agent finds in the kernel and its data dir at start;
//! * [`tables`]: the NetworkDB reads and writes;
//! * [`service`]: the request channel the API uses.

pub mod attach;
mod kernel;
pub mod manager;
#[cfg(test)]
mod memplane;
pub mod recover;
pub mod service;
pub mod sync;
pub mod tables;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use manager::Manager;
pub use service::{OverlayHandle, OverlayRequest};

/// What the agent tells its overlay manager.
#[derive(Debug, Clone)]
pub struct OverlayConfig {
    /// This node's name (owner of its table entries).
    pub node: String,
    /// The local VXLAN tunnel endpoint (`--vtep-addr`, default the
    /// advertise address).
    pub vtep: Ipv4Addr,
    /// The VXLAN UDP port (`--vxlan-port`).
    pub vxlan_port: u16,
    /// How often kernel state is compared with the tables (`--overlay-reconcile`).
    pub reconcile: Duration,
    /// How long create and attach wait for concurrent claims (`--overlay-settle`).
    pub settle: Duration,
    /// Where local endpoints are kept across restarts (`--data-dir`), if anywhere.
    pub data_dir: Option<PathBuf>,
    /// Says whether a named network namespace exists
    /// ([`swimnet_overlay::netns::open_netns`]; tests use their own).
    pub netns_exists: fn(&str) -> Result<(), swimnet_overlay::OverlayError>,
    /// Where namespaces' own `/etc` files live ([`sync::NETNS_ETC`]; tests
    /// use a directory of their own).
    pub netns_etc: PathBuf,
}

/// Default of `--overlay-reconcile`.
pub const DEFAULT_RECONCILE: Duration = Duration::from_secs(5);

/// Default of `--overlay-settle`.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(1000);

/// Most overlays one agent tracks (definitions beyond are ignored and counted).
pub const MAX_OVERLAYS: usize = 4096;

/// Most endpoints one agent hosts.
pub const MAX_LOCAL_ENDPOINTS: usize = 4096;

/// An overlay as `GET /v1/overlays` and `swimnet overlay list` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverlayView {
    /// Name.
    pub name: String,
    /// NetworkDB network ID.
    pub id: String,
    /// Subnet (CIDR).
    pub subnet: String,
    /// VNI.
    pub vni: u32,
    /// Nodes with endpoints on it (attached to its network), sorted.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// The answer to a create.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreatedView {
    /// Name.
    pub name: String,
    /// NetworkDB network ID.
    pub id: String,
    /// Subnet (CIDR).
    pub subnet: String,
    /// VNI.
    pub vni: u32,
    /// Whether this request created it (`false`: it existed with the same settings).
    pub created: bool,
}

/// An endpoint as `swimnet overlay endpoints` and the API show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointView {
    /// Endpoint ID (64 hex).
    pub id: String,
    /// Name (DNS).
    pub name: String,
    /// Address (no prefix length).
    pub ip: String,
    /// MAC.
    pub mac: String,
    /// The node it lives on.
    pub host: String,
    /// That node's VTEP.
    pub vtep: String,
    /// The overlay's name.
    pub overlay: String,
    /// The interface inside the namespace (attach answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// The interface MTU (attach answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The namespace (attach answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// The subnet's prefix length (attach answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
}

/// What the overlay manager counted (`GET /v1/stats`, `GET /metrics`).
#[derive(Debug, Default)]
pub struct OverlayCounters {
    /// Reconcile runs (one per overlay with local endpoints per pass).
    pub reconcile_runs: AtomicU64,
    /// Neighbour and FDB entries put back that were desired before and
    /// had gone from the kernel (removed behind the agent's back).
    pub repairs: AtomicU64,
    /// Table values that did not decode (definitions, claims, records).
    pub decode_failures: AtomicU64,
    /// Own definitions or address claims that lost to another node's.
    pub conflicts_lost: AtomicU64,
    /// Kernel operations that failed during reconcile.
    pub kernel_errors: AtomicU64,
    /// Overlays known (winning definitions), a gauge.
    pub overlays: AtomicU64,
    /// Endpoints on this host, a gauge.
    pub local_endpoints: AtomicU64,
    /// Neighbour entries programmed on this host's VXLAN devices, a gauge.
    pub neighbours: AtomicU64,
    /// FDB entries programmed on this host's VXLAN devices, a gauge.
    pub fdb_entries: AtomicU64,
}

impl OverlayCounters {
    /// A copy of every figure.
    pub fn snapshot(&self) -> OverlayFigures {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OverlayFigures {
            overlays: g(&self.overlays),
            local_endpoints: g(&self.local_endpoints),
            neighbours: g(&self.neighbours),
            fdb_entries: g(&self.fdb_entries),
            reconcile_runs: g(&self.reconcile_runs),
            repairs: g(&self.repairs),
            decode_failures: g(&self.decode_failures),
            conflicts_lost: g(&self.conflicts_lost),
            kernel_errors: g(&self.kernel_errors),
        }
    }

    pub(crate) fn bump(a: &AtomicU64, by: u64) {
        a.fetch_add(by, Ordering::Relaxed);
    }

    pub(crate) fn set(a: &AtomicU64, v: u64) {
        a.store(v, Ordering::Relaxed);
    }
}

/// The overlay figures at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverlayFigures {
    /// Overlays known.
    pub overlays: u64,
    /// Endpoints on this host.
    pub local_endpoints: u64,
    /// Neighbour entries programmed.
    pub neighbours: u64,
    /// FDB entries programmed.
    pub fdb_entries: u64,
    /// Reconcile runs.
    pub reconcile_runs: u64,
    /// Entries put back.
    pub repairs: u64,
    /// Values that did not decode.
    pub decode_failures: u64,
    /// Definitions or claims lost to another node.
    pub conflicts_lost: u64,
    /// Kernel operations that failed during reconcile.
    pub kernel_errors: u64,
}

/// The overlay flags of `swimnet agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayOptions {
    /// `--vtep-addr`: the local VTEP; `None` takes the advertise address.
    pub vtep_addr: Option<Ipv4Addr>,
    /// `--vxlan-port`.
    pub vxlan_port: u16,
    /// `--overlay-reconcile`.
    pub reconcile: Duration,
    /// `--overlay-settle`.
    pub settle: Duration,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        OverlayOptions {
            vtep_addr: None,
            vxlan_port: swimnet_overlay::model::VXLAN_PORT,
            reconcile: DEFAULT_RECONCILE,
            settle: DEFAULT_SETTLE,
        }
    }
}

/// Checks a VTEP address: a unicast IPv4 address.
pub fn check_vtep(ip: Ipv4Addr) -> Result<(), String> {
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err(format!(
            "--vtep-addr {ip} is not a unicast IPv4 address: give the address other hosts reach this one at"
        ));
    }
    Ok(())
}

/// The manager's settings for an agent advertising `advertise`.
pub fn overlay_config(
    opts: &crate::agent::AgentOptions,
    advertise: std::net::SocketAddr,
) -> Result<OverlayConfig, String> {
    let o = &opts.overlay;
    let vtep = match (o.vtep_addr, advertise.ip()) {
        (Some(ip), _) => ip,
        (None, std::net::IpAddr::V4(ip)) => ip,
        (None, std::net::IpAddr::V6(_)) => Ipv4Addr::UNSPECIFIED,
    };
    if o.vtep_addr.is_some() {
        check_vtep(vtep)?;
    }
    if o.reconcile.is_zero() || o.reconcile > Duration::from_secs(3600) {
        return Err("--overlay-reconcile must be between 1ms and 1h".into());
    }
    if o.settle > Duration::from_secs(60) {
        return Err("--overlay-settle must be at most 60s".into());
    }
    if o.vxlan_port == 0 {
        return Err("--vxlan-port must not be 0".into());
    }
    Ok(OverlayConfig {
        node: opts.node.clone(),
        vtep,
        vxlan_port: o.vxlan_port,
        reconcile: o.reconcile,
        settle: o.settle,
        data_dir: opts.data_dir.clone(),
        netns_etc: PathBuf::from(sync::NETNS_ETC),
        netns_exists: |name| swimnet_overlay::netns::open_netns(name).map(drop),
    })
}

/// Starts the overlay manager of an agent run with `--protocol networkdb`
/// (other protocols have none: `None`). Call from inside the runtime.
pub fn start_for_agent(
    opts: &crate::agent::AgentOptions,
    advertise: std::net::SocketAddr,
    commands: tokio::sync::mpsc::Sender<crate::commands::Command>,
) -> Result<Option<OverlayHandle>, crate::agent::AgentError> {
    if opts.protocol != crate::agent::Protocol::NetworkDb {
        return Ok(None);
    }
    let cfg = overlay_config(opts, advertise).map_err(crate::agent::AgentError::Config)?;
    Ok(Some(kernel::spawn(cfg, commands)))
}
