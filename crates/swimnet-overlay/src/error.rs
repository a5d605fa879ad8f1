//! What can go wrong with an overlay operation, each as a one-line message
//! an operator can act on.

use thiserror::Error;

/// An overlay error.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OverlayError {
    /// Bad input from the user or a peer (the message says what and why).
    #[error("{0}")]
    Invalid(String),
    /// No overlay with this name.
    #[error("no overlay named {0:?}")]
    NoSuchOverlay(String),
    /// An overlay with this name exists with other settings.
    #[error("overlay {name:?} already exists with {existing}")]
    Conflict {
        /// The overlay.
        name: String,
        /// The settings it has (subnet, VNI, creator).
        existing: String,
    },
    /// The VNI is used by another overlay (or a device swimnet does not own).
    #[error("VNI {vni} is already in use by {by}")]
    VniInUse {
        /// The VNI.
        vni: u32,
        /// Who uses it.
        by: String,
    },
    /// Every address of the subnet is taken.
    #[error("subnet {0} of overlay {1:?} is full")]
    SubnetFull(String, String),
    /// The address asked for is taken (or outside the subnet, or reserved).
    #[error("address {ip} on overlay {overlay:?} is not available: {why}")]
    AddressTaken {
        /// The address.
        ip: String,
        /// The overlay.
        overlay: String,
        /// Why (held by which endpoint on which host, out of the subnet...).
        why: String,
    },
    /// The overlay still has endpoints attached (delete refused).
    #[error("overlay {0:?} still has {1} endpoint(s) attached; detach them first")]
    InUse(String, usize),
    /// No endpoint of this overlay in this namespace.
    #[error("no endpoint of overlay {overlay:?} in namespace {netns:?}")]
    NoSuchEndpoint {
        /// The overlay.
        overlay: String,
        /// The namespace.
        netns: String,
    },
    /// The named network namespace does not exist.
    #[error("network namespace {0:?} does not exist (no /run/netns/{0})")]
    NoSuchNetns(String),
    /// The agent lacks `CAP_NET_ADMIN` (run it as root or grant the capability).
    #[error("{0}: operation not permitted (the agent needs CAP_NET_ADMIN: run it as root or grant the capability)")]
    NoPermission(String),
    /// The kernel has no VXLAN support.
    #[error("the kernel has no VXLAN support ({0}); load the vxlan module")]
    NoVxlan(String),
    /// Any other kernel error, with the operation that failed.
    #[error("{op}: {detail}")]
    Kernel {
        /// What was being done (`creating vxlan device swvx-001000`).
        op: String,
        /// The kernel's answer.
        detail: String,
    },
    /// The agent is not running NetworkDB (overlays need its tables).
    #[error("overlays need the agent to run with --protocol networkdb")]
    NotNetworkDb,
    /// This agent has no endpoint on the overlay, so it does not hold the
    /// overlay's tables (only nodes attached to its network do); the
    /// second field names the hosts that do.
    #[error("this agent has no endpoint on overlay {0:?} and does not hold its tables: ask an agent on one of its hosts ({1})")]
    NotHere(String, String),
}
