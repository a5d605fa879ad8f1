//! State transitions of members: alive, suspect and dead claims applied to
//! the table, refutation of claims about ourselves, and tombstones of
//! departed nodes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use swimnet_wire::codec::Message;
use swimnet_wire::msg::{Alive, Dead, MessageType, Suspect};

use crate::delegate::Delegate;
use crate::formulas::{suspicion_timeout, suspicion_timeout_after};
use crate::member::{is_mapped, socket_addr, Member, Node, NodeState};
use crate::validate;

use super::suspicion::Suspicion;
use super::{encode, Event, Memberlist, MAX_TOMBSTONES};

/// What we remember of a dead or left node after it leaves the table, so a
/// stale alive message cannot bring it back at the incarnation it died with,
/// and so that partitioned halves can find each other again.
#[derive(Debug, Clone)]
pub(super) struct Tombstone {
    pub(super) addr_bytes: Vec<u8>,
    pub(super) addr: SocketAddr,
    pub(super) vsn: [u8; 6],
    pub(super) incarnation: u32,
    pub(super) left: bool,
    pub(super) since: Instant,
}

impl<D: Delegate> Memberlist<D> {
    /// Outbids a claim about us at incarnation `accused_inc`: raises our
    /// incarnation and broadcasts that we are alive.
    pub(super) fn refute(&mut self, accused_inc: u32) {
        // Never wrapped: a refutation at 0 would be ignored by everyone.
        let Some(inc) = validate::refutation_incarnation(self.incarnation, accused_inc) else {
            self.stats.refutations_impossible += 1;
            return;
        };
        self.incarnation = inc;
        let name = self.name.clone();
        if let Some(me) = self.member_mut(&name) {
            me.incarnation = inc;
        }
        self.awareness.apply_delta(1);
        self.stats.refutations += 1;
        let a = self.local_alive();
        self.broadcast(&name, &Message::Alive(a));
        self.out
            .events
            .push_back(Event::Refuted { incarnation: inc });
    }

    /// Applies an alive message (memberlist's `aliveNode`). Returns whether
    /// it changed anything.
    pub(super) fn alive_node(&mut self, now: Instant, a: Alive, bootstrap: bool) -> bool {
        let is_local = a.node == *self.name;
        if self.leaving && is_local {
            return false;
        }
        // Same limits as a local node's name and metadata, and a real
        // version field: an empty one used to enter as versions 0 and fail
        // every later join's version check.
        let Ok(vsn) = validate::check_alive(&a) else {
            self.stats.alives_invalid += 1;
            return false;
        };
        let Some(addr) = socket_addr(&a.addr, a.port) else {
            self.stats.messages_malformed += 1;
            return false;
        };
        if !self.incarnation_claim_plausible(&a.node, a.incarnation) {
            return false;
        }
        if !is_local {
            let candidate = Node {
                name: Arc::from(a.node.as_str()),
                addr,
                meta: a.meta.clone(),
                vsn,
                incarnation: a.incarnation,
                state: NodeState::Alive,
            };
            if self.delegate.notify_alive(&candidate).is_err() {
                return false;
            }
        }
        let mut updates_node = false;
        let is_new = self.member(&a.node).is_none();
        if is_new && !is_local {
            if let Some(t) = self.table.tombstones.get(a.node.as_str()) {
                if a.incarnation <= t.incarnation {
                    return false; // stale: it died at this incarnation, it must refute
                }
            }
        }
        if is_new && !self.admit_new_member(&a.node) {
            return false;
        }
        if is_new {
            let m = Member {
                name: Arc::from(a.node.as_str()),
                addr,
                mapped: is_mapped(&a.addr),
                meta: a.meta.clone(),
                vsn,
                incarnation: 0,
                state: NodeState::Dead,
                state_change: now,
            };
            self.insert_member(m);
        } else {
            let m = self.member(&a.node).expect("present");
            if !m.announced_as(&a.addr) || m.addr.port() != a.port {
                let reclaim = !self.config.dead_node_reclaim_time.is_zero()
                    && now.saturating_duration_since(m.state_change)
                        > self.config.dead_node_reclaim_time;
                if m.state == NodeState::Left || (m.state == NodeState::Dead && reclaim) {
                    updates_node = true;
                } else {
                    // A conflicting address for a live node: refused.
                    let (name, existing) = (m.name.clone(), m.addr);
                    self.name_conflict(now, name, existing, addr);
                    return false;
                }
            }
        }
        let m = self.member(&a.node).expect("present");
        if a.incarnation <= m.incarnation && !is_local && !updates_node && !is_new {
            return false;
        }
        if a.incarnation < m.incarnation && is_local {
            return false;
        }
        let name = m.name.clone();
        let old_state = m.state;
        let old_meta_differs = m.meta != a.meta;
        self.suspicions.active.remove(&name);
        if !bootstrap && is_local {
            let me = self.member(&name).expect("present");
            if a.incarnation == me.incarnation && a.meta == me.meta && a.vsn == me.vsn {
                return false;
            }
            self.refute(a.incarnation);
            return true;
        }
        let msg = Message::Alive(a);
        self.broadcast(&name, &msg);
        let Message::Alive(a) = msg else {
            unreachable!()
        };
        let m = self.member_mut(&name).expect("present");
        m.vsn = vsn;
        m.incarnation = a.incarnation;
        m.meta = a.meta;
        m.mapped = is_mapped(&a.addr);
        m.addr = addr;
        if m.state != NodeState::Alive {
            m.state = NodeState::Alive;
            m.state_change = now;
        }
        let snap = m.snapshot();
        self.table.tombstones.remove(&name);
        if old_state.is_dead_or_left() {
            self.out.events.push_back(Event::Join(snap));
        } else if old_meta_differs {
            self.out.events.push_back(Event::Update(snap));
        }
        true
    }

    /// swimnet addition: someone accuses us (suspect or dead). Besides the
    /// refutation gossip, send our current alive straight to the accuser,
    /// once per accuser and incarnation. The accuser holds the earliest
    /// suspicion timer, and a gossip broadcast can miss any one node.
    pub(super) fn tell_accuser(&mut self, accuser: &str) {
        if self.leaving || accuser == &*self.name {
            return;
        }
        if self.suspicions.told_accusers.get(accuser) == Some(&self.incarnation) {
            return;
        }
        let Some(m) = self.member(accuser) else {
            return;
        };
        if m.state.is_dead_or_left() {
            return;
        }
        let (addr, pmax) = (m.addr, m.pmax());
        if self.suspicions.told_accusers.len() > 2 * self.table.nodes.len() + 16 {
            self.suspicions.told_accusers.clear();
        }
        self.suspicions
            .told_accusers
            .insert(accuser.to_string(), self.incarnation);
        let buf = encode(&Message::Alive(self.local_alive()));
        self.stats.count_sent(MessageType::Alive, buf.len());
        self.raw_send(addr, Some(pmax), &buf);
    }

    /// Applies a suspect claim: refutes it when it is about us, or marks the
    /// node suspect and starts (or confirms) its suspicion timer.
    pub(super) fn suspect_node(&mut self, now: Instant, s: Suspect) {
        if !self.incarnation_claim_plausible(&s.node, s.incarnation) {
            return;
        }
        if s.node == *self.name {
            let stale = s.incarnation < self.incarnation;
            if !stale {
                if let Some(m) = self.member(&s.node) {
                    if m.state == NodeState::Alive && !self.leaving {
                        self.refute(s.incarnation);
                    }
                }
            }
            self.tell_accuser(&s.from);
            return;
        }
        let Some(m) = self.member(&s.node) else {
            return;
        };
        if s.incarnation < m.incarnation {
            return;
        }
        let name = m.name.clone();
        let mut state = m.state;
        let newer = s.incarnation > m.incarnation;
        if newer && state == NodeState::Suspect {
            // swimnet: a suspicion at a higher incarnation than ours proves the
            // node refuted the one we hold (we missed its alive). Start over at
            // the new incarnation instead of counting it as a confirmation of the
            // stale one, which would shorten a timer the node already answered.
            self.suspicions.active.remove(&name);
            state = NodeState::Alive;
        }
        if let Some(susp) = self.suspicions.active.get_mut(&name) {
            if susp.n < susp.k && !susp.confirmations.contains(&s.from) {
                susp.confirmations.insert(s.from.clone());
                susp.n += 1;
                let timeout = suspicion_timeout_after(susp.n, susp.k, susp.min, susp.max);
                let deadline = susp.start + timeout;
                self.arm_suspicion(now, &name, deadline);
                self.broadcast(&name, &Message::Suspect(s));
            }
            return;
        }
        if state != NodeState::Alive {
            return;
        }
        self.broadcast(&name, &Message::Suspect(s.clone()));
        let m = self.member_mut(&name).expect("present");
        m.incarnation = s.incarnation;
        m.state = NodeState::Suspect;
        m.state_change = now;
        let snap = m.snapshot();
        let n = self.table.nodes.len();
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if n < k + 2 {
            k = 0;
        }
        let min = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult as u32;
        let timeout = if k >= 1 { max } else { min };
        self.suspicions.next_generation += 1;
        let generation = self.suspicions.next_generation;
        let mut confirmations = HashSet::new();
        confirmations.insert(s.from.clone());
        self.suspicions.active.insert(
            name.clone(),
            Suspicion {
                start: now,
                k,
                n: 0,
                min,
                max,
                confirmations,
                generation,
                state_change: now,
                deadline: now + timeout,
                check: None,
                check_until: now,
                next_check_at: (now + min)
                    .checked_sub(self.config.probe_timeout)
                    .unwrap_or(now)
                    .max(now),
                check_failed: false,
                check_sent_at: now,
                refused_at: None,
                crash_confirmed: false,
            },
        );
        self.arm_suspicion(now, &name, now + timeout);
        self.stats.suspicions += 1;
        self.out.events.push_back(Event::Suspect {
            node: snap,
            from: s.from,
        });
    }

    /// Applies a dead claim: refutes it when it is about us, or marks the
    /// node dead (left, when it announced that itself) and keeps a tombstone.
    pub(super) fn dead_node(&mut self, now: Instant, d: Dead) {
        if !self.incarnation_claim_plausible(&d.node, d.incarnation) {
            return;
        }
        if d.node == *self.name && d.from != d.node && !self.leaving {
            if d.incarnation >= self.incarnation {
                self.refute(d.incarnation);
            }
            self.tell_accuser(&d.from);
            return;
        }
        let Some(m) = self.member(&d.node) else {
            return;
        };
        if d.incarnation < m.incarnation {
            return;
        }
        let name = m.name.clone();
        let dead_or_left = m.state.is_dead_or_left();
        self.suspicions.active.remove(&name);
        if dead_or_left {
            return;
        }
        if name == self.name {
            if !self.leaving {
                self.refute(d.incarnation);
            }
            return;
        }
        let left = d.node == d.from;
        self.broadcast(&name, &Message::Dead(d.clone()));
        let m = self.member_mut(&name).expect("present");
        m.incarnation = d.incarnation;
        m.state = if left {
            NodeState::Left
        } else {
            NodeState::Dead
        };
        m.state_change = now;
        let snap = m.snapshot();
        if self.table.tombstones.len() >= MAX_TOMBSTONES
            && !self.table.tombstones.contains_key(&name)
        {
            if let Some(oldest) = self
                .table
                .tombstones
                .iter()
                .min_by(|a, b| a.1.since.cmp(&b.1.since).then_with(|| a.0.cmp(b.0)))
                .map(|(n, _)| n.clone())
            {
                self.table.tombstones.remove(&oldest);
            }
        }
        let m = self.member(&name).expect("present");
        let tomb = Tombstone {
            addr_bytes: m.addr_bytes(),
            addr: m.addr,
            vsn: m.vsn,
            incarnation: m.incarnation,
            left,
            since: now,
        };
        self.table.tombstones.insert(name, tomb);
        if !left {
            self.stats.dead_verdicts += 1;
        }
        self.out.events.push_back(Event::Leave(snap));
    }
}
