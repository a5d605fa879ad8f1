//! The snapshot writer: asks the driver for the state once a second, writes
//! it when it changed (clocks alone do not count: they move with every bulk
//! sync, and the kept entries carry their own times), and writes it one
//! last time when the driver has stopped.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::Snapshot;
use crate::commands::Command;

/// How often the state is asked for.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// One agent's snapshot file and what was last written to it.
#[derive(Debug, Clone)]
pub struct SnapshotWriter {
    dir: PathBuf,
    /// Keep the keyring in the snapshot (false when a keyring file holds it).
    keep_keyring: bool,
    state: Arc<Mutex<Written>>,
}

#[derive(Debug, Default)]
struct Written {
    /// The last snapshot written, clocks zeroed (what "changed" compares).
    last: Option<Snapshot>,
    /// The final snapshot was written: nothing is written after it.
    closed: bool,
    /// Whether the last cap warning was logged (logged once per capping).
    warned_capped: bool,
}

impl SnapshotWriter {
    /// A writer for the snapshot in `dir` (made with
    /// [`super::prepare_dir`]); `keep_keyring`: whether the keyring goes in.
    pub fn new(dir: PathBuf, keep_keyring: bool) -> Self {
        SnapshotWriter {
            dir,
            keep_keyring,
            state: Arc::default(),
        }
    }

    /// Spawns the task that asks the driver for the state every
    /// [`SNAPSHOT_INTERVAL`] and writes it when it changed; it ends when
    /// the driver stops answering.
    pub fn spawn(&self, commands: mpsc::Sender<Command>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SNAPSHOT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (tx, rx) = oneshot::channel();
                if commands.send(Command::Snapshot(tx)).await.is_err() {
                    return;
                }
                let Ok(snap) = rx.await else { return };
                let w = me.clone();
                let _ = tokio::task::spawn_blocking(move || w.write(snap, false)).await;
            }
        });
    }

    /// Writes `snap` if it differs from the last one written (always when
    /// `last`; nothing is written after a `last` write). Failures are
    /// logged, never fatal. Blocking: call it off the async threads.
    pub fn write(&self, mut snap: Snapshot, last: bool) {
        if !self.keep_keyring {
            snap.keyring = None;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return;
        }
        let content = Snapshot {
            table_clock: 0,
            network_clock: 0,
            ..snap.clone()
        };
        st.closed = last;
        if !last && st.last.as_ref() == Some(&content) {
            return;
        }
        if (snap.entries_capped || snap.members_dropped > 0) && !st.warned_capped {
            tracing::warn!(
                members_dropped = snap.members_dropped,
                entries_capped = snap.entries_capped,
                "snapshot over its limits: the members and entries past them are not kept"
            );
        }
        st.warned_capped = snap.entries_capped || snap.members_dropped > 0;
        match super::write(&self.dir, &snap) {
            Ok(()) => st.last = Some(content),
            Err(e) => {
                tracing::error!(path = %super::path_in(&self.dir).display(), error = %e, "cannot write the snapshot")
            }
        }
    }
}
