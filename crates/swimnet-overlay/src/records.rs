//! Docker's overlay records in their exact protobuf encodings: the
//! `PeerRecord` of `overlay_peer_table` and the `EndpointRecord` of
//! `endpoint_table`.

use std::net::Ipv4Addr;

use crate::model::{Mac, PeerEntry};
use crate::OverlayError;

/// Docker's overlay peer table.
pub const PEER_TABLE: &str = "overlay_peer_table";

/// Docker's service-discovery table.
pub const ENDPOINT_TABLE: &str = "endpoint_table";

/// Largest record value accepted from a peer (bytes).
pub const MAX_RECORD_BYTES: usize = 4096;

/// Docker's `PeerRecord`: an endpoint's address in CIDR form
/// (`10.0.1.5/24`), its MAC (`02:42:0a:00:01:05`) and its host's VTEP.
#[derive(Clone, PartialEq, Eq)]
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
        let _ = (ip, prefix_len, mac, vtep);
        todo!()
    }

    /// Its protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        todo!()
    }

    /// Decodes a value of `overlay_peer_table` (at most [`MAX_RECORD_BYTES`]).
    pub fn decode(bytes: &[u8]) -> Result<PeerRecord, OverlayError> {
        let _ = bytes;
        todo!()
    }

    /// What the data plane programs for it; an error names the bad field.
    pub fn entry(&self) -> Result<PeerEntry, OverlayError> {
        todo!()
    }
}

/// Docker's `EndpointRecord` (service discovery): a container's name and
/// address; the service fields are empty for a plain endpoint.
#[derive(Clone, PartialEq, Eq, Default)]
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
        let _ = (name, ip);
        todo!()
    }

    /// Its protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        todo!()
    }

    /// Decodes a value of `endpoint_table` (at most [`MAX_RECORD_BYTES`]).
    pub fn decode(bytes: &[u8]) -> Result<EndpointRecord, OverlayError> {
        let _ = bytes;
        todo!()
    }
}
