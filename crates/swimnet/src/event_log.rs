//! The log line of each membership event. Every peer-supplied string (node
//! names, accusers, peer addresses, refusal reasons, error texts) goes
//! through [`crate::escape::esc`], so a peer cannot forge log lines or send
//! terminal escapes to whoever reads the log.

use swimnet_core::{Event, NodeState};

use crate::escape::esc;

/// Logs one event from the core; the driver calls it for every event
/// before acting on it. Changes nothing but the log.
pub fn log_event(e: &Event) {
    match e {
        Event::Join(n) => tracing::info!(node = %esc(&n.name), addr = %n.addr, "member joined"),
        Event::Update(n) => tracing::info!(node = %esc(&n.name), "member updated"),
        Event::Leave(n) if n.state == NodeState::Left => {
            tracing::info!(node = %esc(&n.name), "member left")
        }
        Event::Leave(n) => tracing::info!(node = %esc(&n.name), "member failed"),
        Event::Suspect { node, from } => {
            tracing::info!(node = %esc(&node.name), accuser = %esc(from), "member suspected")
        }
        Event::Refuted { incarnation } => {
            tracing::warn!(incarnation, "refuted a suspicion about this node")
        }
        Event::MergeRefused { peer, reason } => {
            tracing::warn!(peer = %esc(peer), reason = %esc(reason), "refused a peer's state")
        }
        Event::JoinResult { addr, result } => match result {
            Ok(n) => tracing::info!(%addr, nodes = n, "joined"),
            Err(err) => tracing::warn!(%addr, error = %esc(err), "join failed"),
        },
        Event::LeaveComplete { timed_out: false } => tracing::info!("left the cluster"),
        Event::LeaveComplete { timed_out: true } => {
            tracing::warn!("leave broadcast not finished in time; left the cluster anyway")
        }
        Event::NameConflict {
            name,
            existing,
            claimed,
            local: true,
        } => tracing::error!(
            node = %esc(name), ours = %existing, other = %claimed,
            "another node announces itself under this node's name: refused; give one of them another --node"
        ),
        Event::NameConflict {
            name,
            existing,
            claimed,
            local: false,
        } => tracing::error!(
            node = %esc(name), member = %existing, other = %claimed,
            "duplicate node name: a node tried to join with the name of a live member; refused"
        ),
        Event::Reap(n) => tracing::debug!(node = %esc(&n.name), "member reaped"),
    }
}
