//! Overlay networks for swimnet: the part of a network control plane that
//! turns replicated NetworkDB tables into a working multi-host data plane.
//!
//! An overlay is defined once for the whole cluster ([`defs`]), maps to one
//! NetworkDB network, and carries three tables in it: address claims
//! ([`ipam`]), Docker's `overlay_peer_table` (one [`records::PeerRecord`]
//! per endpoint: IP, MAC, the host's VTEP) and Docker's `endpoint_table`
//! ([`records::EndpointRecord`]: name and IP, for name resolution).
//!
//! The logic is sans-IO: [`reconcile`] computes, from what the tables say,
//! which neighbour and FDB entries each overlay's VXLAN device should hold
//! and the difference from what the kernel holds. The kernel side
//! ([`dataplane::DataPlane`], implemented over netlink by
//! [`netlink::Netlink`]) only applies that difference; [`dns`] answers
//! name queries inside each endpoint's namespace from the same tables.

#![deny(missing_docs)]

pub mod dataplane;
pub mod defs;
pub mod dns;
#[cfg(feature = "kernel")]
pub mod dns_responder;
pub mod error;
pub mod ipam;
pub mod model;
#[cfg(feature = "kernel")]
pub mod netlink;
#[cfg(feature = "kernel")]
pub mod netns;
pub mod reconcile;
pub mod records;

pub use error::OverlayError;
pub use model::{LocalEndpoint, Mac, NameBook, OverlayDef, PeerEntry};
