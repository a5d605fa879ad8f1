//! The core's guards against hostile peers: incarnation plausibility, the
//! member-table bound, the version check over live members, and the budget
//! for replies to peer-chosen addresses. The rules themselves live in
//! `crates/swimnet-core/src/validate.rs` and
//! `crates/swimnet-core/src/reply_limit.rs`; this file applies them to the
//! core's state and counts every bite in [`Stats`](super::Stats).

use std::net::SocketAddr;
use std::time::Instant;

use swimnet_wire::msg::PushNodeState;

use crate::delegate::Delegate;
use crate::member::NodeState;
use crate::validate;

use super::Memberlist;

impl<D: Delegate> Memberlist<D> {
    /// The incarnation we know for `name`: ours for ourselves, the table's
    /// for a member, a tombstone's for a reaped node, `None` for a stranger.
    fn known_incarnation(&self, name: &str) -> Option<u32> {
        if name == &*self.name {
            return Some(self.incarnation);
        }
        if let Some(m) = self.member(name) {
            return Some(m.incarnation);
        }
        self.table.tombstones.get(name).map(|t| t.incarnation)
    }

    /// Whether a claim that `name` is at `claimed` is plausible (at most
    /// [`crate::Config::max_incarnation_jump`] above what we know; for a
    /// stranger, at most [`validate::STRANGER_INCARNATION_MAX`], so a node
    /// joining an old cluster still learns members that refuted many times,
    /// while a name squatted at `u32::MAX` stays refutable by its owner).
    /// Call it before acting on an alive, suspect or dead; an implausible
    /// claim is counted in `incarnation_jumps_rejected` and must be dropped.
    pub(super) fn incarnation_claim_plausible(&mut self, name: &str, claimed: u32) -> bool {
        let ok = match self.known_incarnation(name) {
            Some(known) => {
                validate::incarnation_plausible(known, claimed, self.config.max_incarnation_jump)
            }
            None => claimed <= validate::STRANGER_INCARNATION_MAX,
        };
        if !ok {
            self.stats.incarnation_jumps_rejected += 1;
        }
        ok
    }

    /// Whether a node not in the table may be added: always for one we hold
    /// a tombstone of (it replaces the tombstone), otherwise only while
    /// members plus tombstones stay under [`crate::Config::max_members`].
    /// A refusal is counted in `members_rejected`.
    pub(super) fn admit_new_member(&mut self, name: &str) -> bool {
        if self.table.tombstones.contains_key(name)
            || self.table.nodes.len() + self.table.tombstones.len() < self.config.max_members
        {
            return true;
        }
        self.stats.members_rejected += 1;
        false
    }

    /// Whether a request that makes us send to each of `dsts` may be
    /// answered at `now`. Each destination is `(claimed name, address,
    /// sender)`: one that is the request's sender, or the address of the
    /// member with the claimed name, is free; every other one spends a
    /// token of the reply bucket. Without enough tokens nothing is spent,
    /// the refusal is counted in `replies_limited`, and the request must be
    /// dropped.
    pub(super) fn reply_allowed(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dsts: &[(&str, SocketAddr)],
    ) -> bool {
        let strangers = dsts
            .iter()
            .filter(|(name, addr)| {
                *addr != from && self.member(name).map(|m| m.addr) != Some(*addr)
            })
            .count() as u32;
        if strangers == 0 || self.reply_bucket.try_take(now, strangers) {
            return true;
        }
        self.stats.replies_limited += 1;
        false
    }

    /// Whether one more indirect probe may be relayed (fewer than
    /// `reply_limit.max_relays` wait for their ack); counts a refusal in
    /// `relays_rejected`.
    pub(super) fn relay_room(&mut self) -> bool {
        if self.probing.relays.len() < self.config.reply_limit.max_relays {
            return true;
        }
        self.stats.relays_rejected += 1;
        false
    }

    /// memberlist's `verifyProtocol` over live nodes only: the protocol and
    /// delegate ranges every live node (alive or suspect, ours and the
    /// peer's) understands must contain every live node's current versions.
    /// Dead, left and reaped nodes take no part, so a node that is gone
    /// cannot block joins; remote states without a well-formed version field
    /// are skipped here (the merge drops and counts them).
    pub(super) fn verify_protocol(&self, remote: &[PushNodeState]) -> Result<(), String> {
        let live_code = |c: i64| c == NodeState::Alive as i64 || c == NodeState::Suspect as i64;
        let remote_live = remote
            .iter()
            .filter(|r| live_code(r.state))
            .filter_map(|r| {
                let v: [u8; 6] = r.vsn.as_slice().try_into().ok()?;
                validate::versions_valid(&v).then_some((r.name.as_str(), v))
            });
        let local_live = self
            .table
            .nodes
            .iter()
            .filter(|n| !n.state.is_dead_or_left())
            .map(|n| (&*n.name, n.vsn));
        let live: Vec<(&str, [u8; 6])> = remote_live.chain(local_live).collect();
        let (mut max_pmin, mut min_pmax, mut max_dmin, mut min_dmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        // The six version bytes: protocol min, max, current, then the
        // delegate's min, max, current.
        for &(_, [pmin, pmax, _, dmin, dmax, _]) in &live {
            max_pmin = max_pmin.max(pmin);
            min_pmax = min_pmax.min(pmax);
            max_dmin = max_dmin.max(dmin);
            min_dmax = min_dmax.min(dmax);
        }
        for &(name, [_, _, pcur, _, _, dcur]) in &live {
            if pcur < max_pmin || pcur > min_pmax {
                return Err(format!(
                    "node '{name}' protocol version ({pcur}) is incompatible: [{max_pmin}, {min_pmax}]"
                ));
            }
            if dcur < max_dmin || dcur > min_dmax {
                return Err(format!(
                    "node '{name}' delegate protocol version ({dcur}) is incompatible: [{max_dmin}, {min_dmax}]"
                ));
            }
        }
        Ok(())
    }
}
