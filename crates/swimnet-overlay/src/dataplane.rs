//! What the agent asks of the kernel for overlays, as a trait: the netlink
//! implementation ([`crate::netlink::Netlink`]) programs real devices;
//! tests of the agent's overlay logic may use an in-memory one. Every
//! method is idempotent (asking for what is already there succeeds and
//! changes nothing) and leaves nothing half-created when it fails.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::Ipv4Addr;

use crate::model::{LocalEndpoint, Mac, OverlayDef};
use crate::OverlayError;

/// A local endpoint found in the kernel (the host end of a veth pair
/// swimnet made, on one of its bridges), for re-publishing after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundEndpoint {
    /// The host end's name ([`crate::model::host_veth_name`]).
    pub host_ifname: String,
    /// The VNI of the bridge it is attached to.
    pub vni: u32,
    /// The host end's interface alias: the endpoint's description
    /// ([`LocalEndpoint::alias`]), read back with [`LocalEndpoint::from_alias`].
    pub alias: String,
}

/// The kernel side of the overlays on this host.
pub trait DataPlane: Send {
    /// Makes sure the overlay's VXLAN device (its VNI, `port`, local VTEP
    /// `vtep`, learning off, ARP proxy on) and bridge exist and are up.
    fn ensure_overlay(
        &mut self,
        def: &OverlayDef,
        vtep: Ipv4Addr,
        port: u16,
    ) -> impl Future<Output = Result<(), OverlayError>> + Send;

    /// Removes the overlay's VXLAN device and bridge (with every entry on
    /// them). Succeeds when they are already gone.
    fn remove_overlay(&mut self, vni: u32)
        -> impl Future<Output = Result<(), OverlayError>> + Send;

    /// The VNIs of the overlay devices swimnet made that exist now.
    fn overlays(&mut self) -> impl Future<Output = Result<BTreeSet<u32>, OverlayError>> + Send;

    /// The permanent neighbour entries (`ip → mac`) on the overlay's VXLAN device.
    fn neighbours(
        &mut self,
        vni: u32,
    ) -> impl Future<Output = Result<BTreeSet<(Ipv4Addr, Mac)>, OverlayError>> + Send;

    /// The static FDB entries (`mac → vtep`) on the overlay's VXLAN device.
    fn fdb(
        &mut self,
        vni: u32,
    ) -> impl Future<Output = Result<BTreeSet<(Mac, Ipv4Addr)>, OverlayError>> + Send;

    /// Adds (or replaces) the permanent neighbour entry `ip → mac`.
    fn add_neighbour(
        &mut self,
        vni: u32,
        ip: Ipv4Addr,
        mac: Mac,
    ) -> impl Future<Output = Result<(), OverlayError>> + Send;

    /// Removes the neighbour entry for `ip` (success when absent).
    fn remove_neighbour(
        &mut self,
        vni: u32,
        ip: Ipv4Addr,
        mac: Mac,
    ) -> impl Future<Output = Result<(), OverlayError>> + Send;

    /// Adds (or replaces) the static FDB entry `mac → vtep`.
    fn add_fdb(
        &mut self,
        vni: u32,
        mac: Mac,
        vtep: Ipv4Addr,
    ) -> impl Future<Output = Result<(), OverlayError>> + Send;

    /// Removes the FDB entry `mac → vtep` (success when absent).
    fn remove_fdb(
        &mut self,
        vni: u32,
        mac: Mac,
        vtep: Ipv4Addr,
    ) -> impl Future<Output = Result<(), OverlayError>> + Send;

    /// Creates the endpoint: a veth pair whose host end joins the overlay's
    /// bridge (interface alias = [`LocalEndpoint::alias`]) and whose other end moves into
    /// `ep.netns` as `ep.ifname` with `ep.ip/ep.prefix_len`, `ep.mac` and
    /// `ep.mtu`, up, with the namespace's loopback up. On failure nothing
    /// of it is left.
    fn attach(
        &mut self,
        ep: &LocalEndpoint,
    ) -> impl Future<Output = Result<(), OverlayError>> + Send;

    /// Removes the endpoint's veth pair (success when already gone).
    fn detach(
        &mut self,
        ep: &LocalEndpoint,
    ) -> impl Future<Output = Result<(), OverlayError>> + Send;

    /// The endpoints swimnet made that exist now.
    fn endpoints(
        &mut self,
    ) -> impl Future<Output = Result<Vec<FoundEndpoint>, OverlayError>> + Send;

    /// The first free interface name `ethN` inside the namespace.
    fn free_ifname(
        &mut self,
        netns: &str,
    ) -> impl Future<Output = Result<String, OverlayError>> + Send;

    /// The MTU of the interface that holds `vtep` (the underlay).
    fn underlay_mtu(
        &mut self,
        vtep: Ipv4Addr,
    ) -> impl Future<Output = Result<u32, OverlayError>> + Send;
}
