//! `--data-dir`: what an agent keeps to come back after a restart, in one
//! file (`DATA_DIR/snapshot`, mode 0600, see [`format`]):
//!
//! - the members it saw alive or suspect, with their addresses: a restart
//!   without `--join` rejoins through them (as Serf's `-rejoin` does);
//! - in NetworkDB mode, the networks it is attached to and its own live
//!   table entries (with the Lamport clocks), given back to the node with
//!   [`swimnet_networkdb::NetworkDb::restore`], which re-announces them
//!   once it is in sync again;
//! - the keyring, when the agent has keys and no keyring file.
//!
//! The driver only hands the state out ([`capture`], answering
//! [`crate::commands::Command::Snapshot`]); [`writer`] asks for it once a
//! second and writes it when it changed, and once more when the agent
//! stops. Writes are atomic (temporary file, fsync, rename, directory
//! fsync). A corrupt, truncated or unreadable snapshot is logged with its
//! path, moved aside (`snapshot.corrupt`) and skipped; a snapshot written by
//! another node name is refused (the agent does not start).

pub mod format;
pub mod start;
pub mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use swimnet_core::NodeState;
use swimnet_networkdb::{OwnEntry, RestartState};

use crate::agent_node::AgentNode;
pub use format::{SnapEntry, SnapMember, Snapshot, SnapshotError};
use format::{MAX_ENTRIES, MAX_ENTRY_BYTES, MAX_MEMBERS};

/// The snapshot's file name inside the data dir.
pub const FILE_NAME: &str = "snapshot";
/// Most remembered members one rejoin attempt goes to (picked at random).
pub const MAX_REJOIN: usize = 32;

/// The state of `node` as a snapshot: called by the driver (it only reads).
pub fn capture<N: AgentNode>(node: &N) -> Snapshot {
    let core = node.core();
    let me = core.name();
    let mut members: Vec<SnapMember> = core
        .members()
        .filter(|m| &*m.name != me && matches!(m.state, NodeState::Alive | NodeState::Suspect))
        .map(|m| SnapMember {
            name: m.name.to_string(),
            addr: m.addr,
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let members_dropped = members.len().saturating_sub(MAX_MEMBERS);
    members.truncate(MAX_MEMBERS);
    let keyring = core.keyring().map(|ring| {
        ring.keys()
            .iter()
            .map(|k| STANDARD.encode(k.as_bytes()))
            .collect()
    });
    let mut snap = Snapshot {
        node: me.to_string(),
        members,
        members_dropped,
        keyring,
        ..Snapshot::default()
    };
    if let Some(tables) = node.restart_tables(MAX_ENTRIES + 1) {
        snap.table_clock = tables.table_clock;
        snap.network_clock = tables.network_clock;
        snap.networks = tables.networks;
        let mut bytes = 0usize;
        for e in tables.entries {
            bytes += e.network_id.len() + e.table.len() + e.key.len() + e.value.len();
            if snap.entries.len() >= MAX_ENTRIES || bytes > MAX_ENTRY_BYTES {
                snap.entries_capped = true;
                break;
            }
            snap.entries.push(SnapEntry {
                network: e.network_id,
                table: e.table,
                key: e.key,
                value: STANDARD.encode(&e.value),
                ltime: e.ltime,
            });
        }
    }
    snap
}

/// The NetworkDB part of a snapshot, for
/// [`swimnet_networkdb::NetworkDb::restore`] (entries whose value is not
/// base64 are left out).
pub fn tables_of(snap: &Snapshot) -> RestartState {
    RestartState {
        table_clock: snap.table_clock,
        network_clock: snap.network_clock,
        networks: snap.networks.clone(),
        entries: snap
            .entries
            .iter()
            .filter_map(|e| {
                Some(OwnEntry {
                    network_id: e.network.clone(),
                    table: e.table.clone(),
                    key: e.key.clone(),
                    value: STANDARD.decode(&e.value).ok()?,
                    ltime: e.ltime,
                })
            })
            .collect(),
    }
}

/// The addresses to rejoin through: remembered members other than this
/// node (by name or address), at most [`MAX_REJOIN`] picked at random.
pub fn rejoin_addrs(snap: &Snapshot, me: &str, my_addr: SocketAddr) -> Vec<SocketAddr> {
    use rand::seq::SliceRandom;
    let mut addrs: Vec<SocketAddr> = snap
        .members
        .iter()
        .filter(|m| m.name != me && m.addr != my_addr)
        .map(|m| m.addr)
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs.shuffle(&mut rand::thread_rng());
    addrs.truncate(MAX_REJOIN);
    addrs
}

/// The keyring of a snapshot, raw keys, primary first (`None`: none kept,
/// or a key is not valid base64).
pub fn keys_of(snap: &Snapshot) -> Option<Vec<Vec<u8>>> {
    let list = snap.keyring.as_ref()?;
    list.iter()
        .map(|k| crate::keyfile::parse_key(k).ok())
        .collect::<Option<Vec<_>>>()
        .filter(|keys| !keys.is_empty())
}

/// Makes the data dir (mode 0700) if needed; the error is one line.
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| format!("cannot create --data-dir {}: {e}", dir.display()))?;
    if !dir.is_dir() {
        return Err(format!("--data-dir {} is not a directory", dir.display()));
    }
    Ok(())
}

/// The snapshot's path in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the snapshot of `dir` for node `node`. `Ok(None)`: there is none,
/// or it was unusable (logged with its path and moved aside, never fatal).
/// `Err`: it was written by another node (the message says what to do).
pub fn load(dir: &Path, node: &str) -> Result<Option<Snapshot>, String> {
    let path = path_in(dir);
    let snap = match read(&path) {
        Ok(None) => return Ok(None),
        Ok(Some(s)) => s,
        Err(e) => {
            let aside = dir.join(format!("{FILE_NAME}.corrupt"));
            let moved = std::fs::rename(&path, &aside).is_ok();
            tracing::error!(
                path = %path.display(),
                error = %e,
                moved_to = %if moved { aside.display().to_string() } else { "-".into() },
                "snapshot skipped: starting without it"
            );
            return Ok(None);
        }
    };
    if snap.node != node {
        return Err(format!(
            "--data-dir {} holds the snapshot of node {:?}, not {node:?}: give each node its own data dir",
            dir.display(),
            snap.node
        ));
    }
    Ok(Some(snap))
}

fn read(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SnapshotError::Corrupt(format!("cannot read it: {e}"))),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > format::MAX_SNAPSHOT_BYTES {
        return Err(SnapshotError::Oversize(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(format::MAX_SNAPSHOT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SnapshotError::Corrupt(format!("cannot read it: {e}")))?;
    format::decode(&bytes).map(Some)
}

/// Writes `snap` to `dir` atomically: a fresh temporary file (mode 0600)
/// synced and renamed over the snapshot, then the directory synced.
pub fn write(dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    let bytes = format::encode(snap);
    if bytes.len() as u64 > format::MAX_SNAPSHOT_BYTES {
        return Err(std::io::Error::other(format!(
            "snapshot of {} bytes is over the {}-byte limit",
            bytes.len(),
            format::MAX_SNAPSHOT_BYTES
        )));
    }
    crate::keyfile::write_replacing(&path_in(dir), &bytes)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
