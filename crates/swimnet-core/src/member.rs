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
///
/// A node keeps one per member, so at 10,000 members its size is what a
/// large cluster costs in memory (and the simulator holds N of these tables):
/// the announced IP bytes are not stored, only whether an IPv4 address was
/// announced in its 16-byte mapped form, and the fields are ordered so the
/// small ones pack together.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub meta: Vec<u8>,
    pub state_change: Instant,
    pub incarnation: u32,
    pub vsn: [u8; 6],
    pub state: NodeState,
    /// The IPv4 address was announced as 16 bytes (IPv4-mapped IPv6), so it
    /// is re-announced that way.
    pub mapped: bool,
}

impl Member {
    /// The IP bytes exactly as the member announced them (4 or 16).
    pub fn addr_bytes(&self) -> Vec<u8> {
        announced_ip(&self.addr, self.mapped)
    }

    /// Whether `ip` (announced bytes) is the address we hold, in the same form.
    pub fn announced_as(&self, ip: &[u8]) -> bool {
        is_mapped(ip) == self.mapped && socket_addr(ip, 0).map(|a| a.ip()) == Some(self.addr.ip())
    }

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

/// Whether announced IP bytes are an IPv4 address in IPv4-mapped IPv6 form.
pub(crate) fn is_mapped(ip: &[u8]) -> bool {
    ip.len() == 16 && ip[..10].iter().all(|&b| b == 0) && ip[10] == 0xff && ip[11] == 0xff
}

/// The IP bytes to announce for `addr`: 4 for IPv4 (16, mapped, when
/// `mapped`), 16 for IPv6.
pub(crate) fn announced_ip(addr: &SocketAddr, mapped: bool) -> Vec<u8> {
    match addr.ip() {
        IpAddr::V4(v4) if mapped => v4.to_ipv6_mapped().octets().to_vec(),
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Name lookup into the member table: for each member, its position in the
/// table, found by hashing the name and comparing against the table entry.
///
/// Why not a `HashMap<Arc<str>, usize>`: that stores a 16-byte name handle
/// and an 8-byte position per member (about 40 bytes with the load factor);
/// this stores a 4-byte position (about 8 bytes), the name being read from
/// the table itself. It matters when a simulator holds 10,000 tables of
/// 10,000 members.
///
/// Every method takes the member table; the caller keeps the two in step:
/// after moving a member call [`MemberIndex::relocate`], after reordering
/// the whole table [`MemberIndex::rebuild`].
#[derive(Debug, Default, Clone)]
pub(crate) struct MemberIndex {
    table: hashbrown::HashTable<u32>,
    hasher: std::collections::hash_map::RandomState,
}

impl MemberIndex {
    fn hash(&self, name: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(name)
    }

    /// The position of `name` in `nodes`.
    pub fn get(&self, nodes: &[Member], name: &str) -> Option<usize> {
        self.table
            .find(self.hash(name), |&i| &*nodes[i as usize].name == name)
            .map(|&i| i as usize)
    }

    /// Whether `name` is in the table.
    pub fn contains(&self, nodes: &[Member], name: &str) -> bool {
        self.get(nodes, name).is_some()
    }

    /// Records that `nodes[i]`, not yet indexed, is at `i`. Every other
    /// indexed member must already be at its recorded position.
    pub fn insert(&mut self, nodes: &[Member], i: usize) {
        let h = self.hash(&nodes[i].name);
        let hasher = &self.hasher;
        self.table.insert_unique(h, i as u32, |&j| {
            use std::hash::BuildHasher;
            hasher.hash_one(&*nodes[j as usize].name)
        });
    }

    /// Records that the member named `name` moved from position `from` to `to`.
    pub fn relocate(&mut self, name: &str, from: usize, to: usize) {
        let h = self.hash(name);
        if let Some(slot) = self.table.find_mut(h, |&j| j as usize == from) {
            *slot = to as u32;
        }
    }

    /// Forgets every position and indexes `nodes` afresh.
    pub fn rebuild(&mut self, nodes: &[Member]) {
        self.table.clear();
        self.reserve(nodes, nodes.len());
        for i in 0..nodes.len() {
            self.insert(nodes, i);
        }
    }

    /// Makes room for `additional` more members without rehashing.
    pub fn reserve(&mut self, nodes: &[Member], additional: usize) {
        let hasher = &self.hasher;
        self.table.reserve(additional, |&j| {
            use std::hash::BuildHasher;
            hasher.hash_one(&*nodes[j as usize].name)
        });
    }
}

/// The IP bytes we announce for an address: 4 for IPv4, 16 for IPv6.
pub(crate) fn ip_bytes(addr: &SocketAddr) -> Vec<u8> {
    match addr.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn member(name: &str, mapped: bool) -> Member {
        Member {
            name: name.into(),
            addr: "10.1.2.3:7946".parse().unwrap(),
            meta: Vec::new(),
            state_change: Instant::now(),
            incarnation: 1,
            vsn: [1, 5, 2, 0, 0, 0],
            state: NodeState::Alive,
            mapped,
        }
    }

    /// The per-member cost that decides whether a simulator fits 10,000
    /// nodes (10^8 entries) in memory: keep it from creeping back up.
    #[test]
    fn member_entry_stays_compact() {
        assert!(
            std::mem::size_of::<Member>() <= 104,
            "{}",
            std::mem::size_of::<Member>()
        );
    }

    #[test]
    fn announced_form_is_kept() {
        let plain = member("a", false);
        assert_eq!(plain.addr_bytes(), vec![10, 1, 2, 3]);
        assert!(plain.announced_as(&[10, 1, 2, 3]));
        let mut mapped_bytes = vec![0u8; 10];
        mapped_bytes.extend_from_slice(&[0xff, 0xff, 10, 1, 2, 3]);
        assert!(is_mapped(&mapped_bytes));
        assert!(
            !plain.announced_as(&mapped_bytes),
            "same address, other form"
        );
        let mapped = member("b", true);
        assert_eq!(mapped.addr_bytes(), mapped_bytes);
        assert!(mapped.announced_as(&mapped_bytes));
        assert!(!mapped.announced_as(&[10, 1, 2, 4]));
        assert!(!plain.announced_as(&[1, 2, 3]), "invalid length");
    }

    /// Random inserts at random positions (as the member table does),
    /// reshuffles and lookups, checked against a plain map.
    #[test]
    fn index_follows_moves_and_rebuilds() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut nodes: Vec<Member> = Vec::new();
        let mut index = MemberIndex::default();
        for round in 0..2000 {
            let n = nodes.len();
            nodes.push(member(&format!("node-{round}"), false));
            let at = rng.gen_range(0..=n);
            nodes.swap(at, n);
            if at != n {
                let moved = nodes[n].name.clone();
                index.relocate(&moved, at, n);
            }
            index.insert(&nodes, at);
            if round % 500 == 499 {
                nodes.shuffle(&mut rng);
                index.rebuild(&nodes);
            }
        }
        for (i, m) in nodes.iter().enumerate() {
            assert_eq!(index.get(&nodes, &m.name), Some(i));
        }
        assert_eq!(index.get(&nodes, "node-2000"), None);
        assert!(!index.contains(&nodes, "nobody"));
    }
}
