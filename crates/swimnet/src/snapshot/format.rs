//! The snapshot file's bytes: one header line, then a JSON body.
//!
//! ```text
//! swimnet-snapshot 1 <body length> <CRC-32 of the body, 8 hex digits>\n
//! {"node":"b","members":[...],...}
//! ```
//!
//! The header names the format and its version; the length tells a
//! truncated file from a whole one, the checksum a damaged one. Decoding
//! never trusts the file: sizes are checked before anything is allocated
//! for them, counts after parsing.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The first word of every snapshot file.
pub const MAGIC: &str = "swimnet-snapshot";
/// The version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Largest snapshot file read or written (64 MiB).
pub const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;
/// Most members kept (in name order; the others are counted in
/// [`Snapshot::members_dropped`]).
pub const MAX_MEMBERS: usize = 4096;
/// Most own table entries kept.
pub const MAX_ENTRIES: usize = 100_000;
/// Most bytes of network, table, key and value, summed over the kept
/// entries (16 MiB: about 22 MiB once the values are base64 in JSON).
pub const MAX_ENTRY_BYTES: usize = 16 * 1024 * 1024;
/// Most keys in a kept keyring.
pub const MAX_KEYS: usize = 256;
/// Longest header line accepted.
const MAX_HEADER: usize = 128;

/// What an agent keeps in its data dir to come back after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The node that wrote it; another node refuses it.
    pub node: String,
    /// Members alive or suspect when written (not this node), by name.
    pub members: Vec<SnapMember>,
    /// Members left out over [`MAX_MEMBERS`].
    #[serde(default)]
    pub members_dropped: usize,
    /// NetworkDB: the networks this node is attached to.
    #[serde(default)]
    pub networks: Vec<String>,
    /// NetworkDB: this node's live entries in those networks.
    #[serde(default)]
    pub entries: Vec<SnapEntry>,
    /// NetworkDB: some own entries were left out (over [`MAX_ENTRIES`] or
    /// [`MAX_ENTRY_BYTES`], the last ones in (network, table, key) order).
    #[serde(default)]
    pub entries_capped: bool,
    /// NetworkDB: the table Lamport clock.
    #[serde(default)]
    pub table_clock: u64,
    /// NetworkDB: the network Lamport clock.
    #[serde(default)]
    pub network_clock: u64,
    /// The keyring, base64 keys with the primary first; kept only when the
    /// agent has keys and no keyring file of its own.
    #[serde(default)]
    pub keyring: Option<Vec<String>>,
}

/// A member as kept: where to find it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapMember {
    /// Node name.
    pub name: String,
    /// Gossip address.
    pub addr: SocketAddr,
}

/// An own table entry as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapEntry {
    /// Network.
    pub network: String,
    /// Table.
    pub table: String,
    /// Key.
    pub key: String,
    /// Value, base64.
    pub value: String,
    /// Lamport time of the kept version.
    pub ltime: u64,
}

/// Why a snapshot file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The file does not start with a snapshot header.
    #[error("not a swimnet snapshot (no `{MAGIC}` header)")]
    NotASnapshot,
    /// Written by another version of the format.
    #[error("snapshot format version {0}, this agent reads version {FORMAT_VERSION}")]
    WrongVersion(u32),
    /// Over [`MAX_SNAPSHOT_BYTES`].
    #[error("snapshot is {0} bytes, over the {MAX_SNAPSHOT_BYTES}-byte limit")]
    Oversize(u64),
    /// Shorter than its header says.
    #[error("snapshot is truncated: {have} of {want} body bytes")]
    Truncated {
        /// Body bytes present.
        have: usize,
        /// Body bytes announced.
        want: usize,
    },
    /// The checksum or the length does not match the body.
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    /// The body is not a valid snapshot.
    #[error("snapshot body is malformed: {0}")]
    Malformed(String),
}

/// The file's bytes for `snap`.
pub fn encode(snap: &Snapshot) -> Vec<u8> {
    let body = serde_json::to_vec(snap).expect("a snapshot serializes");
    let crc = crc32fast::hash(&body);
    let mut out = format!("{MAGIC} {FORMAT_VERSION} {} {crc:08x}\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Parses a snapshot file's bytes, checking the header, the length, the
/// checksum, and the counts of what the body holds.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    if bytes.len() as u64 > MAX_SNAPSHOT_BYTES {
        return Err(SnapshotError::Oversize(bytes.len() as u64));
    }
    let head_end = bytes
        .iter()
        .take(MAX_HEADER)
        .position(|b| *b == b'\n')
        .ok_or(SnapshotError::NotASnapshot)?;
    let header =
        std::str::from_utf8(&bytes[..head_end]).map_err(|_| SnapshotError::NotASnapshot)?;
    let mut words = header.split(' ');
    if words.next() != Some(MAGIC) {
        return Err(SnapshotError::NotASnapshot);
    }
    let bad_header = || SnapshotError::Corrupt(format!("bad header {header:?}"));
    let version: u32 = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(bad_header)?;
    if version != FORMAT_VERSION {
        return Err(SnapshotError::WrongVersion(version));
    }
    let want: u64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(bad_header)?;
    let crc = words
        .next()
        .filter(|w| w.len() == 8)
        .and_then(|w| u32::from_str_radix(w, 16).ok())
        .ok_or_else(bad_header)?;
    if words.next().is_some() {
        return Err(bad_header());
    }
    if want > MAX_SNAPSHOT_BYTES {
        return Err(SnapshotError::Oversize(want));
    }
    let want = want as usize;
    let body = &bytes[head_end + 1..];
    if body.len() < want {
        return Err(SnapshotError::Truncated {
            have: body.len(),
            want,
        });
    }
    if body.len() > want {
        return Err(SnapshotError::Corrupt(format!(
            "{} bytes after the {want}-byte body",
            body.len() - want
        )));
    }
    if crc32fast::hash(body) != crc {
        return Err(SnapshotError::Corrupt("checksum mismatch".into()));
    }
    let snap: Snapshot =
        serde_json::from_slice(body).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    check_counts(&snap)?;
    Ok(snap)
}

fn check_counts(snap: &Snapshot) -> Result<(), SnapshotError> {
    let over = |what: &str, n: usize, max: usize| {
        (n > max).then(|| SnapshotError::Malformed(format!("{n} {what}, over the limit of {max}")))
    };
    let entry_bytes: usize = snap
        .entries
        .iter()
        .map(|e| e.network.len() + e.table.len() + e.key.len() + e.value.len() * 3 / 4)
        .sum();
    let keys = snap.keyring.as_ref().map_or(0, Vec::len);
    match over("members", snap.members.len(), MAX_MEMBERS)
        .or_else(|| over("entries", snap.entries.len(), MAX_ENTRIES))
        .or_else(|| over("entry bytes", entry_bytes, MAX_ENTRY_BYTES))
        .or_else(|| over("keys", keys, MAX_KEYS))
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            node: "b".into(),
            members: vec![SnapMember {
                name: "a".into(),
                addr: "127.0.0.1:7946".parse().unwrap(),
            }],
            members_dropped: 0,
            networks: vec!["net1".into()],
            entries: vec![SnapEntry {
                network: "net1".into(),
                table: "t".into(),
                key: "k".into(),
                value: "dg==".into(),
                ltime: 7,
            }],
            entries_capped: false,
            table_clock: 9,
            network_clock: 4,
            keyring: Some(vec!["AAAAAAAAAAAAAAAAAAAAAA==".into()]),
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let bytes = encode(&s);
        assert!(bytes.starts_with(b"swimnet-snapshot 1 "));
        assert_eq!(decode(&bytes).unwrap(), s);
        assert_eq!(
            decode(&encode(&Snapshot::default())).unwrap(),
            Snapshot::default()
        );
    }

    #[test]
    fn every_truncation_is_reported_never_parsed() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            let e = decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    e,
                    SnapshotError::Truncated { .. }
                        | SnapshotError::NotASnapshot
                        | SnapshotError::Corrupt(_)
                ),
                "cut at {cut}: {e}"
            );
        }
    }

    #[test]
    fn a_flipped_byte_is_corrupt() {
        let bytes = encode(&sample());
        let head = bytes.iter().position(|b| *b == b'\n').unwrap();
        for i in head + 1..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert_eq!(
                decode(&b),
                Err(SnapshotError::Corrupt("checksum mismatch".into())),
                "byte {i}"
            );
        }
        let mut long = bytes.clone();
        long.push(b' ');
        assert!(matches!(decode(&long), Err(SnapshotError::Corrupt(_))));
        assert_eq!(
            decode(b"{\"node\":\"b\"}"),
            Err(SnapshotError::NotASnapshot)
        );
    }

    #[test]
    fn wrong_version_and_oversize_are_refused() {
        let bytes = encode(&sample());
        let text = String::from_utf8(bytes).unwrap();
        let v2 = text.replacen("swimnet-snapshot 1 ", "swimnet-snapshot 2 ", 1);
        assert_eq!(decode(v2.as_bytes()), Err(SnapshotError::WrongVersion(2)));
        let huge = format!("{MAGIC} 1 {} 00000000\n{{}}", MAX_SNAPSHOT_BYTES + 1);
        assert!(matches!(
            decode(huge.as_bytes()),
            Err(SnapshotError::Oversize(_))
        ));
        let big = vec![b' '; MAX_SNAPSHOT_BYTES as usize + 1];
        assert!(matches!(decode(&big), Err(SnapshotError::Oversize(_))));
    }

    #[test]
    fn counts_over_the_limits_are_malformed() {
        let mut s = sample();
        s.members = (0..=MAX_MEMBERS)
            .map(|i| SnapMember {
                name: format!("n{i}"),
                addr: "127.0.0.1:1".parse().unwrap(),
            })
            .collect();
        assert!(
            matches!(decode(&encode(&s)), Err(SnapshotError::Malformed(m)) if m.contains("members"))
        );
        let mut s = sample();
        s.keyring = Some(vec![String::new(); MAX_KEYS + 1]);
        assert!(
            matches!(decode(&encode(&s)), Err(SnapshotError::Malformed(m)) if m.contains("keys"))
        );
        let body = br#"{"node":"b","members":[],"surprise":1}"#;
        let crc = crc32fast::hash(body);
        let mut f = format!("{MAGIC} 1 {} {crc:08x}\n", body.len()).into_bytes();
        f.extend_from_slice(body);
        assert!(matches!(decode(&f), Err(SnapshotError::Malformed(_))));
    }
}
