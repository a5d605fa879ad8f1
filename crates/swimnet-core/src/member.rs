//! Members of the cluster as the core stores and reports them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// A member's state, with memberlist's numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeState {
    /// Answering probes.
    Alive = 0,
    /// Missed a probe; will be declared dead unless it refutes.
    Suspect = 1,
    /// Declared failed.
    Dead = 2,
    /// Left gracefully.
    Left = 3,
}

impl NodeState {
    /// The state for a push/pull state code, or `None` for an unknown code.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => NodeState::Alive,
            1 => NodeState::Suspect,
            2 => NodeState::Dead,
            3 => NodeState::Left,
            _ => return None,
        })
    }

    /// Dead or left.
    pub fn is_dead_or_left(self) -> bool {
        matches!(self, NodeState::Dead | NodeState::Left)
    }

    /// Lower-case name, as Serf prints it (`failed` for dead).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Suspect => "suspect",
            NodeState::Dead => "failed",
            NodeState::Left => "left",
        }
    }
}

/// A snapshot of one member, as handed to delegates and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique node name.
    pub name: Arc<str>,
    /// Where it is reached (UDP and TCP).
    pub addr: SocketAddr,
    /// Metadata (Serf: tags).
    pub meta: Vec<u8>,
    /// `[PMin, PMax, PCur, DMin, DMax, DCur]`.
    pub vsn: [u8; 6],
    /// Incarnation number.
    pub incarnation: u32,
    /// State.
    pub state: NodeState,
}

/// Internal table entry.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: Arc<str>,
    /// IP bytes exactly as announced (4 or 16).
    pub addr_bytes: Vec<u8>,
    pub addr: SocketAddr,
    pub meta: Vec<u8>,
    pub vsn: [u8; 6],
    pub incarnation: u32,
    pub state: NodeState,
    pub state_change: Instant,
}

impl Member {
    pub fn snapshot(&self) -> Node {
        Node {
            name: self.name.clone(),
            addr: self.addr,
            meta: self.meta.clone(),
            vsn: self.vsn,
            incarnation: self.incarnation,
            state: self.state,
        }
    }

    pub fn pmax(&self) -> u8 {
        self.vsn[1]
    }
}

/// Turns announced IP bytes and a port into a socket address: 4 bytes are
/// IPv4, 16 bytes IPv6 (v4-mapped ones become IPv4). Other lengths are invalid.
pub(crate) fn socket_addr(ip: &[u8], port: u16) -> Option<SocketAddr> {
    let ip = match ip.len() {
        4 => IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(ip);
            let v6 = Ipv6Addr::from(b);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The IP bytes we announce for an address: 4 for IPv4, 16 for IPv6.
pub(crate) fn ip_bytes(addr: &SocketAddr) -> Vec<u8> {
    match addr.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}
