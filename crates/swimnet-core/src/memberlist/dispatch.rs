//! Inputs that fan out: due timers to their handlers, and decoded datagram
//! messages to the probe, gossip and state-transition code.

use std::net::SocketAddr;
use std::time::Instant;

use swimnet_wire::budget::DecodeBudget;
use swimnet_wire::codec::Message;

use crate::delegate::Delegate;
use crate::formulas::push_pull_scale;
use crate::timer::TimerKind;

use super::Memberlist;

impl<D: Delegate> Memberlist<D> {
    /// Runs every timer that is due at `now`: probes, gossip, push/pull,
    /// suspicion timeouts, stream deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(kind) = self.timers.pop_due(now) {
            match kind {
                TimerKind::Probe => self.on_probe_tick(now),
                TimerKind::Gossip => {
                    self.catch_up(now);
                    self.gossip(now);
                    self.timers
                        .schedule(now + self.config.gossip_interval, TimerKind::Gossip);
                }
                TimerKind::PushPull => {
                    self.periodic_push_pull(now);
                    let next =
                        push_pull_scale(self.config.push_pull_interval, self.table.nodes.len());
                    self.timers.schedule(now + next, TimerKind::PushPull);
                }
                TimerKind::Reconnect => {
                    self.reconnect(now);
                    self.timers
                        .schedule(now + self.config.reconnect_interval, TimerKind::Reconnect);
                }
                TimerKind::ProbeTimeout { seq } => self.on_probe_timeout(now, seq),
                TimerKind::ProbeDeadline { seq } => self.on_probe_deadline(now, seq),
                TimerKind::RelayExpire { seq } => self.on_relay_expire(seq),
                TimerKind::Suspicion { node, generation } => {
                    self.on_suspicion_timeout(now, &node, generation)
                }
                TimerKind::Stream { id } => self.on_stream_timer(now, id),
                TimerKind::LeaveDeadline => self.on_leave_deadline(),
                TimerKind::KeyOpResend { id } => self.on_key_op_resend(now, id),
                TimerKind::KeyOpDeadline { id } => self.on_key_op_deadline(id),
            }
        }
        self.check_leave_done();
    }

    /// Handles one message of a datagram; a user message gets what is left
    /// of the datagram's `budget` (see [`super::inbound`]). `authenticated`:
    /// the datagram was decrypted with a key of our keyring.
    pub(super) fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: Message,
        budget: &mut DecodeBudget,
        authenticated: bool,
    ) {
        match msg {
            Message::Ping(p) => self.on_ping(now, from, p),
            Message::IndirectPing(ind) => self.on_indirect_ping(now, from, ind),
            Message::AckResp(ack) => self.on_ack(now, ack),
            Message::NackResp(nack) => {
                if let Some(p) = &mut self.probing.current {
                    if p.seq == nack.seq_no && !p.done {
                        p.nacks += 1;
                    }
                }
            }
            Message::Alive(a) => {
                self.alive_node(now, a, false);
            }
            Message::Suspect(s) => self.suspect_node(now, s),
            Message::Dead(d) => self.dead_node(now, d),
            Message::User(buf)
                if self.config.cluster_key_ops && crate::key_ops::is_key_op_message(&buf) =>
            {
                self.on_key_op_message(from, &buf, authenticated)
            }
            Message::User(buf) => self.delegate.notify_packet_msg(now, from, &buf, budget),
            Message::ErrResp(_) => {}
        }
    }
}
