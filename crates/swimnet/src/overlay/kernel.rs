//! PRE-MERGE STUB (replaced by the netlink version once netlink.rs lands).
use super::{OverlayConfig, OverlayHandle};
use crate::commands::Command;
pub fn spawn(_cfg: OverlayConfig, _commands: tokio::sync::mpsc::Sender<Command>) -> OverlayHandle {
    let (tx, _) = tokio::sync::mpsc::channel(1);
    OverlayHandle {
        requests: tx,
        counters: Default::default(),
    }
}
