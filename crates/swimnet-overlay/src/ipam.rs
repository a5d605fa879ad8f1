//! Address allocation without a central allocator. Each endpoint's address
//! is claimed in the overlay's table [`IPAM_TABLE`] (key [`claim_key`]);
//! hosts start their search at a point derived from their own name, so
//! concurrent allocations rarely meet, and when two claims for one address
//! do meet, [`winner`] picks the same one on every host and the other
//! endpoint re-addresses (or, if its address was asked for, fails).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::OverlayError;

/// The claims table in each overlay's NetworkDB network.
pub const IPAM_TABLE: &str = "swimnet_ipam";

/// Largest claim value accepted from a peer (bytes).
pub const MAX_CLAIM_BYTES: usize = 512;

/// A claim of one address by one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The address.
    pub ip: Ipv4Addr,
    /// The endpoint's ID.
    pub endpoint: String,
    /// The host (node name) of the endpoint.
    pub host: String,
    /// Whether the user asked for this address.
    pub requested: bool,
    /// When it was claimed (milliseconds since the Unix epoch, the host's clock).
    pub at_ms: u64,
}

/// The key of a claim in [`IPAM_TABLE`].
pub fn claim_key(ip: Ipv4Addr, endpoint: &str) -> String {
    let _ = (ip, endpoint);
    todo!()
}

/// Encodes a claim as an [`IPAM_TABLE`] value.
pub fn encode(claim: &Claim) -> Vec<u8> {
    let _ = claim;
    todo!()
}

/// Decodes and validates an [`IPAM_TABLE`] value (at most [`MAX_CLAIM_BYTES`]).
pub fn decode(bytes: &[u8]) -> Result<Claim, OverlayError> {
    let _ = bytes;
    todo!()
}

/// Whether `ip` may be given to an endpoint of `subnet` (inside it, not
/// its network or broadcast address).
pub fn usable(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    let _ = (subnet, ip);
    todo!()
}

/// A free address of `subnet` for an endpoint on `host`, not in `taken`:
/// the search starts at a point derived from `host` and wraps. `None` when
/// the subnet is full.
pub fn choose(subnet: Ipv4Net, host: &str, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let _ = (subnet, host, taken);
    todo!()
}

/// Which of two claims of one address keeps it: a requested address beats
/// an allocated one, then the earlier `at_ms`, then the lower endpoint ID.
/// The same on every host.
pub fn winner<'a>(a: &'a Claim, b: &'a Claim) -> &'a Claim {
    let _ = (a, b);
    todo!()
}

/// The claims among `claims` that lost their address to another
/// ([`winner`]), each with the claim that beat it.
pub fn losers(claims: &[Claim]) -> Vec<(Claim, Claim)> {
    let _ = claims;
    todo!()
}
