//! Docker's overlay records in their exact protobuf encodings: the
//! `PeerRecord` of `overlay_peer_table` and the `EndpointRecord` of
//! `endpoint_table`.
//!
//! The wire structs mirror Docker 20.10's `drivers/overlay/overlay.proto`
//! and libnetwork's `agent.proto` field for field (numbers and types);
//! `tests/records_golden.rs` holds byte vectors produced by Docker's own
//! generated Go code (`tools/overlayref`) and proves both directions.
//! Every decoder refuses values over [`MAX_RECORD_BYTES`], repeated fields
//! over [`MAX_REPEATED`] items and strings over [`MAX_RECORD_STRING`] bytes.

use std::net::Ipv4Addr;

use prost::Message;

use crate::model::{clip, Mac, PeerEntry};
use crate::OverlayError;

/// Docker's overlay peer table.
pub const PEER_TABLE: &str = "overlay_peer_table";

/// Docker's service-discovery table.
pub const ENDPOINT_TABLE: &str = "endpoint_table";

/// Largest record value accepted from a peer (bytes).
pub const MAX_RECORD_BYTES: usize = 4096;

/// Most items a repeated field of a record may hold (aliases, task aliases,
/// ingress ports); more is refused.
pub const MAX_REPEATED: usize = 64;

/// Longest string field of a record (bytes); longer is refused.
pub const MAX_RECORD_STRING: usize = 255;

/// Docker's `PeerRecord`: an endpoint's address in CIDR form
/// (`10.0.1.5/24`), its MAC (`02:42:0a:00:01:05`) and its host's VTEP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// The endpoint's address with the subnet's prefix length.
    pub endpoint_ip: String,
    /// The endpoint's MAC.
    pub endpoint_mac: String,
    /// The host's VTEP address.
    pub tunnel_endpoint_ip: String,
}

impl PeerRecord {
    /// The record for an endpoint at `ip/prefix_len` with `mac` on the host
    /// whose VTEP is `vtep`.
    pub fn new(ip: Ipv4Addr, prefix_len: u8, mac: Mac, vtep: Ipv4Addr) -> PeerRecord {
        PeerRecord {
            endpoint_ip: format!("{ip}/{prefix_len}"),
            endpoint_mac: mac.to_string(),
            tunnel_endpoint_ip: vtep.to_string(),
        }
    }

    /// Its protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        PeerWire {
            endpoint_ip: self.endpoint_ip.clone(),
            endpoint_mac: self.endpoint_mac.clone(),
            tunnel_endpoint_ip: self.tunnel_endpoint_ip.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes a value of `overlay_peer_table` (at most [`MAX_RECORD_BYTES`]).
    pub fn decode(bytes: &[u8]) -> Result<PeerRecord, OverlayError> {
        const WHAT: &str = "overlay_peer_table record";
        check_size(WHAT, bytes)?;
        let w = PeerWire::decode(bytes).map_err(|e| malformed(WHAT, &e))?;
        check_string(WHAT, "endpoint_ip", &w.endpoint_ip)?;
        check_string(WHAT, "endpoint_mac", &w.endpoint_mac)?;
        check_string(WHAT, "tunnel_endpoint_ip", &w.tunnel_endpoint_ip)?;
        Ok(PeerRecord {
            endpoint_ip: w.endpoint_ip,
            endpoint_mac: w.endpoint_mac,
            tunnel_endpoint_ip: w.tunnel_endpoint_ip,
        })
    }

    /// What the data plane programs for it; an error names the bad field.
    /// Call it on every record read from the table: an address that is
    /// not a unicast IPv4 CIDR, a MAC that does not parse, or a VTEP that
    /// is not a unicast IPv4 address is refused (the record is then
    /// skipped by the caller).
    pub fn entry(&self) -> Result<PeerEntry, OverlayError> {
        let bad = |field: &str, value: &str, want: &str| {
            OverlayError::Invalid(format!(
                "overlay_peer_table record: {field} {:?} is not {want}",
                clip(value)
            ))
        };
        let (ip, len) = self
            .endpoint_ip
            .split_once('/')
            .ok_or_else(|| bad("endpoint_ip", &self.endpoint_ip, "an IPv4 CIDR"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| bad("endpoint_ip", &self.endpoint_ip, "an IPv4 CIDR"))?;
        let len_ok = !len.is_empty()
            && len.len() <= 2
            && len.bytes().all(|b| b.is_ascii_digit())
            && len.parse::<u8>().is_ok_and(|l| l <= 32);
        if !len_ok || !is_unicast(ip) {
            return Err(bad("endpoint_ip", &self.endpoint_ip, "a unicast IPv4 CIDR"));
        }
        let mac: Mac = self
            .endpoint_mac
            .parse()
            .map_err(|_| bad("endpoint_mac", &self.endpoint_mac, "a MAC address"))?;
        let vtep = self
            .tunnel_endpoint_ip
            .parse::<Ipv4Addr>()
            .ok()
            .filter(|v| is_unicast(*v))
            .ok_or_else(|| {
                bad(
                    "tunnel_endpoint_ip",
                    &self.tunnel_endpoint_ip,
                    "a unicast IPv4 address",
                )
            })?;
        Ok(PeerEntry { ip, mac, vtep })
    }
}

/// Docker's `EndpointRecord` (service discovery): a container's name and
/// address; the service fields are empty for a plain endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointRecord {
    /// The endpoint's (container's) name.
    pub name: String,
    /// The service name (empty for a plain endpoint).
    pub service_name: String,
    /// The service ID (empty for a plain endpoint).
    pub service_id: String,
    /// The service's virtual IP (empty for a plain endpoint).
    pub virtual_ip: String,
    /// The endpoint's address (no prefix length).
    pub endpoint_ip: String,
    /// Extra names.
    pub aliases: Vec<String>,
    /// Extra task names.
    pub task_aliases: Vec<String>,
    /// Whether the service is disabled.
    pub service_disabled: bool,
}

impl EndpointRecord {
    /// The record of a plain endpoint named `name` at `ip`.
    pub fn plain(name: &str, ip: Ipv4Addr) -> EndpointRecord {
        EndpointRecord {
            name: name.to_string(),
            endpoint_ip: ip.to_string(),
            ..EndpointRecord::default()
        }
    }

    /// Its protobuf encoding (no ingress ports: swimnet has no services).
    pub fn encode(&self) -> Vec<u8> {
        EndpointWire {
            name: self.name.clone(),
            service_name: self.service_name.clone(),
            service_id: self.service_id.clone(),
            virtual_ip: self.virtual_ip.clone(),
            endpoint_ip: self.endpoint_ip.clone(),
            ingress_ports: Vec::new(),
            aliases: self.aliases.clone(),
            task_aliases: self.task_aliases.clone(),
            service_disabled: self.service_disabled,
        }
        .encode_to_vec()
    }

    /// Decodes a value of `endpoint_table` (at most [`MAX_RECORD_BYTES`]).
    /// Ingress ports (Docker swarm services) are checked against the
    /// bounds and dropped: nothing in swimnet uses them.
    pub fn decode(bytes: &[u8]) -> Result<EndpointRecord, OverlayError> {
        const WHAT: &str = "endpoint_table record";
        check_size(WHAT, bytes)?;
        let w = EndpointWire::decode(bytes).map_err(|e| malformed(WHAT, &e))?;
        for (field, value) in [
            ("name", &w.name),
            ("service_name", &w.service_name),
            ("service_id", &w.service_id),
            ("virtual_ip", &w.virtual_ip),
            ("endpoint_ip", &w.endpoint_ip),
        ] {
            check_string(WHAT, field, value)?;
        }
        check_count(WHAT, "ingress_ports", w.ingress_ports.len())?;
        for port in &w.ingress_ports {
            check_string(WHAT, "ingress_ports.name", &port.name)?;
        }
        for (field, list) in [("aliases", &w.aliases), ("task_aliases", &w.task_aliases)] {
            check_count(WHAT, field, list.len())?;
            for value in list {
                check_string(WHAT, field, value)?;
            }
        }
        Ok(EndpointRecord {
            name: w.name,
            service_name: w.service_name,
            service_id: w.service_id,
            virtual_ip: w.virtual_ip,
            endpoint_ip: w.endpoint_ip,
            aliases: w.aliases,
            task_aliases: w.task_aliases,
            service_disabled: w.service_disabled,
        })
    }
}

/// `overlay.PeerRecord` on the wire (Docker's `drivers/overlay/overlay.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct PeerWire {
    #[prost(string, tag = "1")]
    endpoint_ip: String,
    #[prost(string, tag = "2")]
    endpoint_mac: String,
    #[prost(string, tag = "3")]
    tunnel_endpoint_ip: String,
}

/// `libnetwork.EndpointRecord` on the wire (libnetwork's `agent.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct EndpointWire {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    service_name: String,
    #[prost(string, tag = "3")]
    service_id: String,
    #[prost(string, tag = "4")]
    virtual_ip: String,
    #[prost(string, tag = "5")]
    endpoint_ip: String,
    #[prost(message, repeated, tag = "6")]
    ingress_ports: Vec<PortConfigWire>,
    #[prost(string, repeated, tag = "7")]
    aliases: Vec<String>,
    #[prost(string, repeated, tag = "8")]
    task_aliases: Vec<String>,
    #[prost(bool, tag = "9")]
    service_disabled: bool,
}

/// `libnetwork.PortConfig` on the wire (an enum is an `int32` varint).
#[derive(Clone, PartialEq, prost::Message)]
struct PortConfigWire {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "2")]
    protocol: i32,
    #[prost(uint32, tag = "3")]
    target_port: u32,
    #[prost(uint32, tag = "4")]
    published_port: u32,
}

/// Refuses a value over [`MAX_RECORD_BYTES`] before decoding it.
fn check_size(what: &str, bytes: &[u8]) -> Result<(), OverlayError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(OverlayError::Invalid(format!(
            "{what}: {} bytes is over the limit of {MAX_RECORD_BYTES}",
            bytes.len()
        )));
    }
    Ok(())
}

/// Refuses a string field over [`MAX_RECORD_STRING`] bytes.
fn check_string(what: &str, field: &str, value: &str) -> Result<(), OverlayError> {
    if value.len() > MAX_RECORD_STRING {
        return Err(OverlayError::Invalid(format!(
            "{what}: {field} is {} bytes, over the limit of {MAX_RECORD_STRING}",
            value.len()
        )));
    }
    Ok(())
}

/// Refuses a repeated field over [`MAX_REPEATED`] items.
fn check_count(what: &str, field: &str, count: usize) -> Result<(), OverlayError> {
    if count > MAX_REPEATED {
        return Err(OverlayError::Invalid(format!(
            "{what}: {field} has {count} items, over the limit of {MAX_REPEATED}"
        )));
    }
    Ok(())
}

/// The one-line error for bytes that are not the record's protobuf.
fn malformed(what: &str, e: &prost::DecodeError) -> OverlayError {
    let detail = e.to_string();
    OverlayError::Invalid(format!("{what}: not valid protobuf: {}", clip(&detail)))
}

/// Whether `ip` can be an endpoint's or a VTEP's address.
fn is_unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast())
}
