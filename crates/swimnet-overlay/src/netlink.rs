//! The kernel data plane over netlink ([`rtnetlink`]): VXLAN devices,
//! bridges, veth pairs, addresses, neighbour and FDB entries.

/// [`crate::dataplane::DataPlane`] over netlink.
pub struct Netlink;
