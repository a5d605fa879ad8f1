//! What `swimnet agent --data-dir` does at start: read the snapshot, put
//! its keyring into the core configuration, give its tables back to the
//! node, and say where to rejoin.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use swimnet_core::Config;

use super::writer::SnapshotWriter;
use super::{keys_of, load, prepare_dir, rejoin_addrs, tables_of, Snapshot};
use crate::agent::{AgentError, AgentOptions, KeySource};
use crate::agent_node::AgentNode;

/// An agent's data dir at start: the snapshot found (when usable) and the
/// writer that keeps it up to date.
#[derive(Debug)]
pub struct DataDir {
    /// Writes the snapshot while the agent runs and when it stops.
    pub writer: SnapshotWriter,
    /// The snapshot of the previous run, if there was a usable one.
    pub snapshot: Option<Snapshot>,
}

impl DataDir {
    /// Opens `--data-dir` (making it, mode 0700), reads its snapshot, and
    /// puts the kept keyring into `config` unless the agent has a keyring
    /// file (a key given with `--encrypt` that the kept keyring lacks is
    /// added to it as a secondary key). `Ok(None)` without `--data-dir`.
    /// Errors: the directory cannot be made, or the snapshot is another
    /// node's.
    pub fn open(opts: &AgentOptions, config: &mut Config) -> Result<Option<DataDir>, AgentError> {
        let Some(dir) = &opts.data_dir else {
            return Ok(None);
        };
        prepare_dir(dir).map_err(AgentError::Config)?;
        let snapshot = load(dir, &opts.node).map_err(AgentError::Config)?;
        let keyring_file = matches!(opts.keys, Some(KeySource::File(_)));
        if let Some(s) = &snapshot {
            tracing::info!(
                path = %super::path_in(dir).display(),
                members = s.members.len(),
                networks = s.networks.len(),
                entries = s.entries.len(),
                "snapshot found"
            );
            if !keyring_file {
                restore_keyring(s, config, dir);
            }
        }
        Ok(Some(DataDir {
            writer: SnapshotWriter::new(dir.clone(), !keyring_file),
            snapshot,
        }))
    }

    /// Gives `node` the tables kept in the snapshot (NetworkDB; other node
    /// kinds ignore them). Call before the node joins.
    pub fn restore_into<N: AgentNode>(&self, node: &mut N) {
        let Some(snap) = &self.snapshot else {
            return;
        };
        let Some(report) = node.restore_tables(Instant::now(), tables_of(snap)) else {
            return;
        };
        tracing::info!(
            networks = report.networks,
            entries = report.entries,
            refused = report.refused.len(),
            "networks and own entries restored from the snapshot"
        );
        if let Some((entry, why)) = report.refused.first() {
            tracing::warn!(
                network = %crate::escape::esc(&entry.network_id),
                table = %crate::escape::esc(&entry.table),
                key = %crate::escape::esc(&entry.key),
                error = %why,
                "a kept entry was not restored"
            );
        }
    }

    /// Where to rejoin: the remembered members (not this node).
    pub fn rejoin(&self, me: &str, my_addr: SocketAddr) -> Vec<SocketAddr> {
        self.snapshot
            .as_ref()
            .map(|s| rejoin_addrs(s, me, my_addr))
            .unwrap_or_default()
    }
}

fn restore_keyring(snap: &Snapshot, config: &mut Config, dir: &Path) {
    let Some(mut keys) = keys_of(snap) else {
        return;
    };
    if let Some(ring) = &config.keyring {
        for k in ring.keys() {
            if !keys.iter().any(|x| x.as_slice() == k.as_bytes()) {
                tracing::info!(
                    "the --encrypt key is not in the kept keyring: added as a secondary key"
                );
                keys.push(k.as_bytes().to_vec());
            }
        }
    }
    let ring = match crate::keyfile::keyring(&keys) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(path = %super::path_in(dir).display(), error = %e, "the kept keyring is unusable: not restored");
            return;
        }
    };
    tracing::info!(keys = keys.len(), "keyring restored from the snapshot");
    config.keyring = Some(ring);
}
