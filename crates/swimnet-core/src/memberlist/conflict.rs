//! Node-name conflicts: an alive claim for a name that a live member holds
//! at another address (memberlist's "conflicting address"). The claim is
//! refused as before; this module makes the refusal visible: it is counted
//! in [`crate::Stats::name_conflicts`], reported as
//! [`Event::NameConflict`] (at most once per name, address and
//! [`CONFLICT_REPORT_INTERVAL`], since every gossiped copy of the claim
//! repeats it), and a joining node whose name is taken refuses the join.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swimnet_wire::msg::PushNodeState;

use crate::delegate::Delegate;
use crate::member::{socket_addr, NodeState};
use crate::MergeRefusal;

use super::{Event, Memberlist};

/// The same conflict (name and claimed address) is reported again only
/// after this long; it is counted every time.
pub(crate) const CONFLICT_REPORT_INTERVAL: Duration = Duration::from_secs(30);
/// Conflicts remembered for the rate limit; the memory is cleared when
/// full, which at worst repeats a report early.
const CONFLICTS_REMEMBERED: usize = 64;

/// Recently reported conflicts: (name, claimed address, when).
#[derive(Debug, Default)]
pub(super) struct ConflictReports {
    recent: Vec<(Arc<str>, SocketAddr, Instant)>,
}

impl ConflictReports {
    /// Whether the conflict over `name` claimed from `claimed` is to be
    /// reported at `now`; remembers it when it is.
    fn should_report(&mut self, now: Instant, name: &Arc<str>, claimed: SocketAddr) -> bool {
        self.recent
            .retain(|(_, _, at)| now.saturating_duration_since(*at) < CONFLICT_REPORT_INTERVAL);
        if self
            .recent
            .iter()
            .any(|(n, a, _)| n == name && *a == claimed)
        {
            return false;
        }
        if self.recent.len() >= CONFLICTS_REMEMBERED {
            self.recent.clear();
        }
        self.recent.push((name.clone(), claimed, now));
        true
    }
}

impl<D: Delegate> Memberlist<D> {
    /// Counts an alive claim for `name` from `claimed` refused because the
    /// member holding the name is live at `existing`, and reports it as
    /// [`Event::NameConflict`] unless it was reported recently.
    pub(super) fn name_conflict(
        &mut self,
        now: Instant,
        name: Arc<str>,
        existing: SocketAddr,
        claimed: SocketAddr,
    ) {
        self.stats.name_conflicts += 1;
        if !self.conflicts.should_report(now, &name, claimed) {
            return;
        }
        let local = name == self.name;
        self.out.events.push_back(Event::NameConflict {
            name: name.to_string(),
            existing,
            claimed,
            local,
        });
    }

    /// On the joining side, before a join's push/pull reply is merged: the
    /// refusal when the reply shows our name held by a live (alive or
    /// suspect) node at another address. Nothing of the reply is merged
    /// then, so the joiner stays out of the cluster instead of half in it.
    pub(super) fn check_name_free(&mut self, states: &[PushNodeState]) -> Result<(), MergeRefusal> {
        let me = self.config.advertise;
        let taken = states.iter().find_map(|s| {
            let live = matches!(
                NodeState::from_code(s.state),
                Some(NodeState::Alive | NodeState::Suspect)
            );
            // Port 0 (or protocol 1) means ours, as in the merge itself.
            let port = if s.port == 0 || self.config.protocol_version < 2 {
                me.port()
            } else {
                s.port
            };
            let addr = socket_addr(&s.addr, port)?;
            (live && *s.name == *self.name && addr != me).then_some(addr)
        });
        match taken {
            Some(holder) => {
                self.stats.name_conflicts += 1;
                Err(MergeRefusal::NameTaken {
                    name: self.name.to_string(),
                    holder,
                })
            }
            None => Ok(()),
        }
    }
}
