//! Suspicion timers (Lifeguard's confirmations shorten them) and
//! swimnet's last check of a suspect before it is declared dead.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swimnet_wire::codec::Message;
use swimnet_wire::compound::encode_compound;
use swimnet_wire::msg::{Dead, MessageType, Ping, Suspect};

use crate::delegate::Delegate;
use crate::member::NodeState;
use crate::timer::TimerKind;

use super::{encode, Memberlist};

/// Suspicions of other members, and what we told the nodes accusing us.
#[derive(Debug, Default)]
pub(super) struct Suspicions {
    /// Running suspicions, by suspect.
    pub(super) active: HashMap<Arc<str>, Suspicion>,
    /// Generation of the last suspicion timer armed (older timers are stale).
    pub(super) next_generation: u64,
    /// Accusers we already sent our current alive to, with the incarnation sent.
    pub(super) told_accusers: HashMap<String, u32>,
}

#[derive(Debug)]
pub(super) struct Suspicion {
    pub(super) start: Instant,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) min: Duration,
    pub(super) max: Duration,
    pub(super) confirmations: HashSet<String>,
    pub(super) generation: u64,
    pub(super) state_change: Instant,
    /// When the node is declared dead unless something changes.
    pub(super) deadline: Instant,
    /// swimnet's check before dead: sequence number of the check of the
    /// suspect in flight, if any.
    pub(super) check: Option<u32>,
    /// When the check in flight is given up as unanswered.
    pub(super) check_until: Instant,
    /// When the next check goes out (first: one check window before the
    /// earliest possible deadline, then every minimum timeout).
    pub(super) next_check_at: Instant,
    /// A check went unanswered and nothing answered since: a verdict may
    /// be given at the deadline.
    pub(super) check_failed: bool,
    /// When the check in flight (or the last one) went out.
    pub(super) check_sent_at: Instant,
    /// When the suspect's host first refused a TCP ping with nothing
    /// answering since: crash evidence (see `note_refusal`).
    pub(super) refused_at: Option<Instant>,
    /// The check in flight was refused as well, after `refused_at`: if its
    /// window ends unanswered, the verdict is given then, whatever the
    /// deadline (see `note_refusal`).
    pub(super) crash_confirmed: bool,
}

impl<D: Delegate> Memberlist<D> {
    /// How long before a suspicion's deadline the last check of the
    /// suspect goes out (swimnet's probe-before-dead): one probe timeout,
    /// enough for a direct or an indirect answer.
    pub(super) fn check_window(&self) -> Duration {
        self.config.probe_timeout
    }

    /// Sets the verdict time of `node`'s suspicion to `deadline` and arms
    /// its timer for whatever comes first: the verdict, the end of the check
    /// in flight, or the next check. Cancels any timer armed before.
    pub(super) fn arm_suspicion(&mut self, now: Instant, node: &Arc<str>, deadline: Instant) {
        self.suspicions.next_generation += 1;
        let generation = self.suspicions.next_generation;
        let Some(susp) = self.suspicions.active.get_mut(node) else {
            return;
        };
        let before_dead = self.config.probe_before_dead || susp.refused_at.is_some();
        susp.deadline = deadline;
        susp.generation = generation;
        let at = match (before_dead, susp.check.is_some(), susp.check_failed) {
            (false, _, _) => deadline,
            // No verdict before a check failed: the one in flight decides.
            (true, true, false) => susp.check_until,
            (true, true, true) => susp.check_until.min(deadline),
            (true, false, _) => deadline.min(susp.next_check_at),
        };
        self.timers.schedule(
            at.max(now),
            TimerKind::Suspicion {
                node: node.clone(),
                generation,
            },
        );
    }

    /// A check of a suspect: a ping (with the suspicion, so it can
    /// refute) straight to it, indirect pings through up to
    /// `indirect_checks` alive helpers, and a TCP ping when it speaks TCP,
    /// all with one new sequence number, which is returned.
    pub(super) fn send_check(&mut self, now: Instant, node: &Arc<str>) -> u32 {
        let seq = self.next_seq();
        let (source_addr, source_port, source_node) = self.self_source();
        let Some(m) = self.member(node) else {
            return seq;
        };
        let (addr, addr_bytes, inc, pmax) = (m.addr, m.addr_bytes(), m.incarnation, m.pmax());
        self.stats.final_checks += 1;
        let ping = Ping {
            seq_no: seq,
            node: node.to_string(),
            source_addr: source_addr.clone(),
            source_port,
            source_node: source_node.clone(),
        };
        let s = Suspect {
            incarnation: inc,
            node: node.to_string(),
            from: self.name.to_string(),
        };
        let a = encode(&Message::Ping(ping.clone()));
        let b = encode(&Message::Suspect(s));
        self.stats.count_sent(MessageType::Ping, a.len());
        self.stats.count_sent(MessageType::Suspect, b.len());
        let mut compound = Vec::with_capacity(a.len() + b.len() + 6);
        encode_compound(&[&a, &b], &mut compound);
        self.raw_send(addr, Some(pmax), &compound);
        self.send_indirect_pings(node, addr_bytes, addr.port(), seq, false);
        if !self.config.disable_tcp_pings && pmax >= 3 {
            let deadline = now + self.check_window();
            self.open_tcp_ping(addr, ping, deadline);
        }
        seq
    }

    /// An ack for a check of a suspect: it is alive, so its verdict waits at
    /// least one more minimum suspicion timeout for its refutation (which
    /// the check's suspect message asked for), and another check must fail
    /// before it. Returns whether `seq` was such a check.
    pub(super) fn on_check_ack(&mut self, now: Instant, seq: u32) -> bool {
        let Some(node) = self
            .suspicions
            .active
            .iter()
            .find(|(_, s)| s.check == Some(seq))
            .map(|(n, _)| n.clone())
        else {
            return false;
        };
        self.stats.final_checks_answered += 1;
        let window = self.check_window();
        let deadline = match self.suspicions.active.get_mut(&node) {
            Some(susp) => {
                susp.check = None;
                susp.check_failed = false;
                // Something answers for it: a refusal seen before is no
                // longer evidence of a crash.
                susp.refused_at = None;
                susp.crash_confirmed = false;
                let deadline = susp.deadline.max(now + susp.min);
                susp.next_check_at = deadline.checked_sub(window).unwrap_or(now).max(now);
                deadline
            }
            None => return true,
        };
        self.arm_suspicion(now, &node, deadline);
        true
    }

    /// A suspicion timer fired: sends the last check, gives up on a check
    /// in flight, or declares the suspect dead.
    pub(super) fn on_suspicion_timeout(&mut self, now: Instant, node: &Arc<str>, generation: u64) {
        let Some(susp) = self.suspicions.active.get(node) else {
            return;
        };
        if susp.generation != generation {
            return;
        }
        let state_change = susp.state_change;
        let Some(m) = self.member(node) else {
            self.suspicions.active.remove(node);
            return;
        };
        if m.state != NodeState::Suspect || m.state_change != state_change {
            self.suspicions.active.remove(node);
            return;
        }
        let incarnation = m.incarnation;
        let deadline = susp.deadline;
        if self.config.probe_before_dead || susp.refused_at.is_some() {
            // swimnet's check before dead: the suspect is asked (directly,
            // through helpers and over TCP) one check window before the
            // earliest deadline the suspicion can have, then every minimum
            // timeout; the verdict needs a check that went unanswered and no
            // answer since (an answer re-arms the suspicion in on_check_ack),
            // so a check still in flight at the deadline does not delay it.
            let window = self.check_window();
            let Some(susp) = self.suspicions.active.get_mut(node) else {
                return;
            };
            if susp.check.is_some() && now >= susp.check_until {
                susp.check = None;
                susp.check_failed = true;
            }
            let (pending, failed, next_check) =
                (susp.check.is_some(), susp.check_failed, susp.next_check_at);
            let crashed = failed && susp.crash_confirmed;
            let verdict = failed && (now >= deadline || crashed);
            if crashed && now < deadline {
                self.stats.refusal_verdicts += 1;
            }
            if !verdict && !pending && (now >= next_check || now >= deadline) {
                let seq = self.send_check(now, node);
                if let Some(susp) = self.suspicions.active.get_mut(node) {
                    susp.check = Some(seq);
                    susp.check_sent_at = now;
                    susp.check_until = now + window;
                    susp.next_check_at = now + susp.min;
                }
            }
            if !verdict {
                self.arm_suspicion(now, node, deadline);
                return;
            }
        } else if now < deadline {
            self.arm_suspicion(now, node, deadline);
            return;
        }
        let d = Dead {
            incarnation,
            node: node.to_string(),
            from: self.name.to_string(),
        };
        self.dead_node(now, d);
    }

    /// The host of suspect `node` refused a TCP ping (a reset: the host is
    /// up, nothing listens on the member's port). `check_started` is when
    /// the check of the suspect it belonged to went out, or `None` when it
    /// belonged to a probe. With [`crate::Config::refusal_verdicts`] this is
    /// crash evidence, weighed in two steps:
    /// - a first refusal (no evidence standing) brings the next check of the
    ///   suspect forward to [`crate::Config::refusal_recheck`] from now;
    /// - a refusal of a check that went out after the first refusal confirms
    ///   the crash: when that check's window ends with no answer (direct,
    ///   indirect or TCP), the suspect is declared dead, before its
    ///   suspicion deadline (`on_suspicion_timeout`).
    ///
    /// Any answer from the suspect in between clears the evidence
    /// (`on_check_ack`), so a host that rejects TCP but answers over UDP is
    /// never condemned by it. Returns whether the evidence was taken (false
    /// when the feature is off or `node` is not under suspicion); a check
    /// whose refusal was taken stays in flight until its window ends.
    pub(super) fn note_refusal(
        &mut self,
        now: Instant,
        node: &Arc<str>,
        check_started: Option<Instant>,
    ) -> bool {
        if !self.config.refusal_verdicts {
            return false;
        }
        let recheck = self.config.refusal_recheck;
        let Some(susp) = self.suspicions.active.get_mut(node) else {
            return false;
        };
        match (susp.refused_at, check_started) {
            (Some(first), Some(sent)) if sent >= first => susp.crash_confirmed = true,
            (Some(_), _) => {}
            (None, _) => {
                susp.refused_at = Some(now);
                susp.next_check_at = susp.next_check_at.min(now + recheck);
            }
        }
        let deadline = susp.deadline;
        self.arm_suspicion(now, node, deadline);
        true
    }
}
