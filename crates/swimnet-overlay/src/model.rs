//! The types every part of the overlay shares: an overlay's definition, a
//! MAC address, a remote endpoint as the data plane sees it, a local
//! endpoint, the name book the DNS responders read, and the names of the
//! kernel devices swimnet owns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::OverlayError;

/// VXLAN encapsulation overhead in bytes (outer Ethernet, IPv4, UDP and
/// VXLAN headers): an endpoint's MTU is the underlay's minus this.
pub const VXLAN_OVERHEAD: u32 = 50;

/// The IANA VXLAN port, the default destination port of every overlay.
pub const VXLAN_PORT: u16 = 4789;

/// Lowest VNI an overlay may use (lower ones are left to other users).
pub const MIN_VNI: u32 = 256;

/// Highest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// Longest overlay name (it is also a DNS label suffix).
pub const MAX_OVERLAY_NAME: usize = 63;

/// Longest endpoint name (a DNS label).
pub const MAX_ENDPOINT_NAME: usize = 63;

/// Longest name of a namespace an endpoint may live in (so that the
/// endpoint's description fits its interface alias, [`MAX_ALIAS`]).
pub const MAX_ENDPOINT_NETNS: usize = 48;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The MAC an endpoint with address `ip` gets: `02:42` followed by the
    /// four bytes of the address (locally administered, unicast), as
    /// Docker's overlay driver makes them, so a MAC is a function of the
    /// address and two hosts never pick different MACs for one IP.
    pub fn from_ip(ip: Ipv4Addr) -> Mac {
        let o = ip.octets();
        Mac([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = OverlayError;

    /// Parses `02:42:0a:00:01:05` (six hex pairs separated by colons).
    fn from_str(s: &str) -> Result<Mac, OverlayError> {
        let bad =
            || OverlayError::Invalid(format!("not a MAC address: {:?}", crate::model::clip(s)));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

/// At most the first 64 characters of `s`, for error messages about
/// untrusted input.
pub fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// An overlay network as the cluster agreed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDef {
    /// Its name, unique in the cluster.
    pub name: String,
    /// The NetworkDB network that carries its tables (64 hex digits).
    pub id: String,
    /// Its subnet; endpoints get addresses from it.
    pub subnet: Ipv4Net,
    /// Its VXLAN network identifier.
    pub vni: u32,
    /// When it was created (milliseconds since the Unix epoch, the
    /// creator's clock); the earlier definition wins a name conflict.
    pub created_ms: u64,
    /// The node that created it.
    pub creator: String,
}

/// A remote endpoint as the data plane needs it: on the overlay's VXLAN
/// device, a neighbour entry `ip → mac` and an FDB entry `mac → vtep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerEntry {
    /// The endpoint's address.
    pub ip: Ipv4Addr,
    /// The endpoint's MAC.
    pub mac: Mac,
    /// The underlay address of the host it lives on (its VTEP).
    pub vtep: Ipv4Addr,
}

/// An endpoint on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// Its ID (64 hex digits), the key of its records in the overlay's tables.
    pub id: String,
    /// The overlay's network ID.
    pub overlay_id: String,
    /// The overlay's VNI (which bridge the host end joins).
    pub vni: u32,
    /// Its name (DNS).
    pub name: String,
    /// The named network namespace (`/run/netns/NAME`) it lives in.
    pub netns: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The overlay subnet's prefix length.
    pub prefix_len: u8,
    /// Its MAC ([`Mac::from_ip`]).
    pub mac: Mac,
    /// The interface's name inside the namespace (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// The host end of the veth pair ([`host_veth_name`]).
    pub host_ifname: String,
    /// The interface MTU (underlay MTU minus [`VXLAN_OVERHEAD`]).
    pub mtu: u32,
}

/// What [`LocalEndpoint::alias`] stores, by field.
#[derive(serde::Serialize, serde::Deserialize)]
struct AliasFields {
    id: String,
    name: String,
    ns: String,
    ip: Ipv4Addr,
    len: u8,
    dev: String,
    mtu: u32,
}

/// Longest interface alias the kernel keeps (bytes).
pub const MAX_ALIAS: usize = 255;

impl LocalEndpoint {
    /// The endpoint's description, stored as the interface alias of the
    /// veth's host end so an agent that restarts (even without a data
    /// directory) finds its endpoints in the kernel. Compact JSON; fits
    /// [`MAX_ALIAS`] for names within the documented limits.
    pub fn alias(&self) -> String {
        serde_json::to_string(&AliasFields {
            id: self.id.clone(),
            name: self.name.clone(),
            ns: self.netns.clone(),
            ip: self.ip,
            len: self.prefix_len,
            dev: self.ifname.clone(),
            mtu: self.mtu,
        })
        .expect("plain fields serialize")
    }

    /// Reads back an [`LocalEndpoint::alias`] found on the host end
    /// `host_ifname` of a veth on the bridge of `vni`, the bridge of the
    /// overlay `overlay_id`; `None` when the alias is not one (the device
    /// is not ours, or was changed).
    pub fn from_alias(
        alias: &str,
        host_ifname: &str,
        vni: u32,
        overlay_id: &str,
    ) -> Option<LocalEndpoint> {
        if alias.len() > MAX_ALIAS {
            return None;
        }
        let f: AliasFields = serde_json::from_str(alias).ok()?;
        if f.len > 32 || host_veth_name(&f.id) != host_ifname {
            return None;
        }
        Some(LocalEndpoint {
            mac: Mac::from_ip(f.ip),
            id: f.id,
            overlay_id: overlay_id.to_string(),
            vni,
            name: f.name,
            netns: f.ns,
            ip: f.ip,
            prefix_len: f.len,
            ifname: f.dev,
            host_ifname: host_ifname.to_string(),
            mtu: f.mtu,
        })
    }
}

/// The names the DNS responders answer, by overlay: for each overlay
/// network ID, its name and, per endpoint name, the addresses (more than
/// one only while a name is used twice). Rebuilt from the `endpoint_table`s
/// by the agent whenever they change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameBook {
    /// Overlay network ID → (overlay name, endpoint name → addresses).
    pub overlays: BTreeMap<String, (String, BTreeMap<String, BTreeSet<Ipv4Addr>>)>,
}

/// Name of the VXLAN device of the overlay with `vni` (in the agent's own
/// network namespace): `swvx-` and the VNI in 6 hex digits.
pub fn vxlan_name(vni: u32) -> String {
    format!("swvx-{vni:06x}")
}

/// Name of the bridge of the overlay with `vni`: `swbr-` and the VNI in 6
/// hex digits.
pub fn bridge_name(vni: u32) -> String {
    format!("swbr-{vni:06x}")
}

/// Name of the host end of an endpoint's veth pair: `swve-` and the first
/// 9 hex digits of the endpoint ID (15 characters, the kernel's limit).
pub fn host_veth_name(endpoint_id: &str) -> String {
    let short: String = endpoint_id.chars().take(9).collect();
    format!("swve-{short}")
}

/// The VNI in a device name made by [`vxlan_name`] or [`bridge_name`],
/// `None` for any other name (devices swimnet does not own).
pub fn vni_of_device(name: &str) -> Option<u32> {
    let hex = name
        .strip_prefix("swvx-")
        .or_else(|| name.strip_prefix("swbr-"))?;
    if hex.len() != 6 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_from_ip_is_dockers_and_round_trips() {
        let mac = Mac::from_ip(Ipv4Addr::new(10, 0, 1, 5));
        assert_eq!(mac.to_string(), "02:42:0a:00:01:05");
        assert_eq!("02:42:0a:00:01:05".parse::<Mac>().unwrap(), mac);
        assert!("02:42:0a:00:01".parse::<Mac>().is_err());
        assert!("02:42:0a:00:01:05:07".parse::<Mac>().is_err());
        assert!("zz:42:0a:00:01:05".parse::<Mac>().is_err());
    }

    #[test]
    fn device_names_fit_the_kernel_limit_and_parse_back() {
        assert_eq!(vxlan_name(0xabcdef), "swvx-abcdef");
        assert_eq!(vni_of_device(&vxlan_name(4096)), Some(4096));
        assert_eq!(vni_of_device(&bridge_name(MAX_VNI)), Some(MAX_VNI));
        assert_eq!(vni_of_device("eth0"), None);
        let veth = host_veth_name(&"f".repeat(64));
        assert!(veth.len() <= 15, "{veth}");
    }

    #[test]
    fn an_endpoint_survives_its_alias() {
        let ip = Ipv4Addr::new(10, 9, 0, 7);
        let ep = LocalEndpoint {
            id: "a".repeat(64),
            overlay_id: "b".repeat(64),
            vni: 4096,
            name: "n".repeat(MAX_ENDPOINT_NAME),
            netns: "s".repeat(MAX_ENDPOINT_NETNS),
            ip,
            prefix_len: 24,
            mac: Mac::from_ip(ip),
            ifname: "eth0".into(),
            host_ifname: host_veth_name(&"a".repeat(64)),
            mtu: 1450,
        };
        let alias = ep.alias();
        assert!(alias.len() <= MAX_ALIAS, "{} bytes", alias.len());
        let ov = "b".repeat(64);
        assert_eq!(
            LocalEndpoint::from_alias(&alias, &ep.host_ifname, 4096, &ov),
            Some(ep.clone())
        );
        assert_eq!(
            LocalEndpoint::from_alias(&alias, "swve-other", 4096, &ov),
            None
        );
        assert_eq!(
            LocalEndpoint::from_alias("eth0 uplink", &ep.host_ifname, 4096, &ov),
            None
        );
    }
}
