//! Failure detection by probing (SWIM with Lifeguard): one probe per
//! probe interval, a direct ping first, then indirect pings through helpers
//! and a TCP ping, and the answers to other nodes' pings and indirect pings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;
use swimnet_wire::codec::Message;
use swimnet_wire::compound::encode_compound;
use swimnet_wire::msg::{AckResp, IndirectPing, MessageType, NackResp, Ping, Suspect};
use swimnet_wire::stream::StreamMessage;

use crate::delegate::Delegate;
use crate::member::{socket_addr, Member, NodeState};
use crate::timer::TimerKind;

use super::streams::{StreamCtx, StreamKind};
use super::{encode, Event, Memberlist, StreamCommand};

/// Probing: the round in flight, where the next one starts, and the
/// indirect pings we relay for other probers.
#[derive(Debug)]
pub(super) struct ProbeState {
    /// The probe in flight, if any.
    pub(super) current: Option<Probe>,
    /// When the next probe round is due.
    pub(super) next_at: Instant,
    /// Position in the member table of the next node to probe.
    pub(super) next_index: usize,
    /// Indirect pings we forward for other probers, by our sequence number.
    pub(super) relays: HashMap<u32, Relay>,
}

impl ProbeState {
    /// No probe yet; the first round is due at `now` until `new` staggers it.
    pub(super) fn new(now: Instant) -> Self {
        ProbeState {
            current: None,
            next_at: now,
            next_index: 0,
            relays: HashMap::new(),
        }
    }
}

#[derive(Debug)]
pub(super) struct Probe {
    pub(super) target: Arc<str>,
    /// The target's incarnation when the probe started (a failure suspects that one).
    pub(super) incarnation: u32,
    pub(super) seq: u32,
    pub(super) start: Instant,
    pub(super) interval: Duration,
    pub(super) indirect_sent: bool,
    pub(super) expected_nacks: i64,
    pub(super) nacks: i64,
    pub(super) tcp_ok: bool,
    /// The target's host refused the TCP ping: it is down, not our network.
    pub(super) refused: bool,
    pub(super) done: bool,
    /// The target's address.
    pub(super) target_addr: SocketAddr,
    /// A datagram from the target's address was opened during the probe.
    pub(super) heard_from_target: bool,
}

#[derive(Debug)]
pub(super) struct Relay {
    pub(super) prober_seq: u32,
    pub(super) prober: SocketAddr,
    pub(super) prober_name: String,
    pub(super) nack: bool,
}

impl<D: Delegate> Memberlist<D> {
    /// The probe timer fired: starts the next probe round unless one is
    /// still running.
    pub(super) fn on_probe_tick(&mut self, now: Instant) {
        if self.probing.current.is_some() {
            return; // rescheduled when the running probe ends
        }
        if now < self.probing.next_at {
            return; // stale entry
        }
        if let Some(t) = self.near_probe_target(now) {
            self.probe_node(now, t);
            return;
        }
        let mut checked = 0;
        let target = loop {
            if checked >= self.table.nodes.len() {
                break None;
            }
            if self.probing.next_index >= self.table.nodes.len() {
                self.reset_nodes(now);
                self.probing.next_index = 0;
                checked += 1;
                continue;
            }
            let m = &self.table.nodes[self.probing.next_index];
            self.probing.next_index += 1;
            if m.name == self.name || m.state.is_dead_or_left() {
                checked += 1;
                continue;
            }
            break Some(m.name.clone());
        };
        match target {
            Some(t) => self.probe_node(now, t),
            None => {
                self.probing.next_at = now + self.config.probe_interval;
                self.timers.schedule(self.probing.next_at, TimerKind::Probe);
            }
        }
    }

    /// With latency-aware selection on, in a share
    /// [`crate::topology::TopologyConfig::probe_near_fraction`] of probe rounds: the
    /// next alive or suspect member of the near cluster in a shuffled walk
    /// through it (see [`crate::topology::NearRotation`]), to probe instead of the next one
    /// in the round-robin order. `None` (the round-robin probe)
    /// otherwise, while coordinates are unsettled, or where distances show
    /// no near cluster (see [`crate::topology::near_cluster`]).
    ///
    /// Every member of a region is in the near cluster of about every other
    /// member, so each is still probed about once per probe interval in
    /// all: a share of the probes from its region, the rest from the
    /// round-robin of everyone.
    pub(super) fn near_probe_target(&mut self, now: Instant) -> Option<Arc<str>> {
        let share = self.config.topology.probe_near_fraction;
        if share <= 0.0 || !self.topology_ready(1) {
            return None;
        }
        if self.rng.gen::<f64>() >= share {
            return None;
        }
        let me = self.name.clone();
        let pool =
            self.near_cluster_members(now, |_, m| m.name != me && !m.state.is_dead_or_left());
        let nodes = &self.table.nodes;
        let &i = self
            .latency
            .probe_walk
            .take_from(
                &mut self.rng,
                1,
                &pool,
                |i| &nodes[i].name,
                |i| nodes[i].name.clone(),
            )
            .first()?;
        self.stats.topology_choices += 1;
        Some(self.table.nodes[i].name.clone())
    }

    /// Drops dead and left nodes whose state changed more than
    /// `gossip_to_the_dead_time` ago (reporting each as [`Event::Reap`]),
    /// then shuffles the probe order.
    pub(super) fn reset_nodes(&mut self, now: Instant) {
        let ttl = self.config.gossip_to_the_dead_time;
        let me = self.name.clone();
        let reaped = &mut self.out.events;
        self.table.nodes.retain(|m| {
            let keep = m.name == me
                || !m.state.is_dead_or_left()
                || now.saturating_duration_since(m.state_change) <= ttl;
            if !keep {
                reaped.push_back(Event::Reap(m.snapshot()));
            }
            keep
        });
        self.table.nodes.shuffle(&mut self.rng);
        self.rebuild_index();
        if let Some(c) = &mut self.latency.coords {
            let (index, nodes) = (&self.table.index, &self.table.nodes);
            c.retain(|n| index.contains(nodes, n));
        }
    }

    /// Starts a probe round of `target`: a direct ping, with the indirect
    /// and TCP fallbacks armed on timers.
    pub(super) fn probe_node(&mut self, now: Instant, target: Arc<str>) {
        let interval = self.awareness.scale(self.config.probe_interval);
        let seq = self.next_seq();
        let (source_addr, source_port, source_node) = self.self_source();
        let Some(m) = self.member(&target) else {
            return;
        };
        let (addr, state, inc, pmax) = (m.addr, m.state, m.incarnation, m.pmax());
        let ping = Ping {
            seq_no: seq,
            node: target.to_string(),
            source_addr,
            source_port,
            source_node,
        };
        if state == NodeState::Alive {
            self.send_msg(addr, Some(&target), &Message::Ping(ping));
        } else {
            // Lifeguard's buddy system: tell the suspect directly so it can refute.
            let s = Suspect {
                incarnation: inc,
                node: target.to_string(),
                from: self.name.to_string(),
            };
            let a = encode(&Message::Ping(ping));
            let b = encode(&Message::Suspect(s));
            self.stats.count_sent(MessageType::Ping, a.len());
            self.stats.count_sent(MessageType::Suspect, b.len());
            let mut compound = Vec::with_capacity(a.len() + b.len() + 6);
            encode_compound(&[&a, &b], &mut compound);
            self.raw_send(addr, Some(pmax), &compound);
        }
        self.probing.current = Some(Probe {
            target,
            incarnation: inc,
            seq,
            start: now,
            interval,
            indirect_sent: false,
            expected_nacks: 0,
            nacks: 0,
            tcp_ok: false,
            refused: false,
            done: false,
            target_addr: addr,
            heard_from_target: false,
        });
        self.timers.schedule(
            now + self.config.probe_timeout,
            TimerKind::ProbeTimeout { seq },
        );
        self.timers
            .schedule(now + interval, TimerKind::ProbeDeadline { seq });
    }

    /// No ack within the probe timeout: asks helpers for indirect pings and
    /// opens a TCP ping to a target that speaks TCP.
    pub(super) fn on_probe_timeout(&mut self, now: Instant, seq: u32) {
        let Some(p) = &self.probing.current else {
            return;
        };
        if p.seq != seq || p.done || p.indirect_sent {
            return;
        }
        let target = p.target.clone();
        let start = p.start;
        let interval = p.interval;
        let Some(t) = self.member(&target) else {
            return;
        };
        let (t_addr_bytes, t_port, t_addr, t_pmax) =
            (t.addr_bytes(), t.addr.port(), t.addr, t.pmax());
        // Ask up to k random alive peers to probe the target for us (near
        // ones first when topology-aware selection is on).
        let expected = self.send_indirect_pings(&target, t_addr_bytes, t_port, seq, true);
        let (source_addr, source_port, source_node) = self.self_source();
        // TCP fallback, in parallel, to peers that understand it.
        if !self.config.disable_tcp_pings && t_pmax >= 3 {
            let ping = Ping {
                seq_no: seq,
                node: target.to_string(),
                source_addr,
                source_port,
                source_node,
            };
            self.open_tcp_ping(t_addr, ping, start + interval);
        }
        if let Some(p) = &mut self.probing.current {
            p.indirect_sent = true;
            p.expected_nacks = expected;
        }
        let _ = now;
    }

    /// An ack arrived: ends the probe it answers (a direct one also updates
    /// our coordinate), or the check of a suspect, or is forwarded to the
    /// prober we relay for.
    pub(super) fn on_ack(&mut self, now: Instant, ack: AckResp) {
        if let Some(p) = &mut self.probing.current {
            if p.seq == ack.seq_no && !p.done {
                let direct = !p.indirect_sent;
                let rtt = now.saturating_duration_since(p.start);
                let target = p.target.clone();
                if !direct {
                    self.stats.probes_indirect += 1;
                }
                self.finish_probe(now, true);
                if direct {
                    if let Some(c) = &mut self.latency.coords {
                        if !c.on_ping_complete(&target, rtt, &ack.payload) {
                            self.stats.coordinates_rejected += 1;
                        }
                    }
                    if let Some(node) = self.member(&target).map(Member::snapshot) {
                        self.delegate.notify_ping_complete(&node, rtt, &ack.payload);
                    }
                }
                return;
            }
        }
        if self.on_check_ack(now, ack.seq_no) {
            return;
        }
        if let Some(relay) = self.probing.relays.remove(&ack.seq_no) {
            let fwd = AckResp {
                seq_no: relay.prober_seq,
                payload: Vec::new(),
            };
            let name = relay.prober_name.clone();
            self.send_msg(relay.prober, Some(&name), &Message::AckResp(fwd));
        }
    }

    /// The probe interval is over without an ack: the probe fails unless the
    /// TCP ping got through.
    pub(super) fn on_probe_deadline(&mut self, now: Instant, seq: u32) {
        let Some(p) = &self.probing.current else {
            return;
        };
        if p.seq != seq || p.done {
            return;
        }
        if p.tcp_ok {
            self.stats.probes_tcp_rescued += 1;
            self.finish_probe(now, true);
            return;
        }
        self.finish_probe(now, false);
    }

    /// Ends the probe in flight, adjusting our health score; a failed probe
    /// makes the target suspect. Schedules the next round.
    pub(super) fn finish_probe(&mut self, now: Instant, ok: bool) {
        let Some(mut p) = self.probing.current.take() else {
            return;
        };
        p.done = true;
        if ok {
            self.stats.probes_ok += 1;
            self.awareness.apply_delta(-1);
        } else {
            self.stats.probes_failed += 1;
            let delta = if p.refused {
                // A reset from the target's host proves our own network
                // works: no local-health penalty.
                0
            } else if p.expected_nacks > 0 {
                (p.expected_nacks - p.nacks).max(0)
            } else {
                1
            };
            self.awareness.apply_delta(delta);
            if p.heard_from_target && !p.refused && self.config.keyring.is_some() {
                self.notice_probes_unanswered(now, &p.target, p.target_addr);
            }
            if self.member(&p.target).is_some() {
                let s = Suspect {
                    incarnation: p.incarnation,
                    node: p.target.to_string(),
                    from: self.name.to_string(),
                };
                self.suspect_node(now, s);
                if p.refused {
                    self.note_refusal(now, &p.target, None);
                }
            }
        }
        // The next probe starts one interval after this one started, or now
        // if this one ran longer (memberlist's ticker behaviour).
        self.probing.next_at = (p.start + self.config.probe_interval).max(now);
        self.timers.schedule(self.probing.next_at, TimerKind::Probe);
    }

    /// Answers a ping addressed to us with an ack (within the reply budget).
    pub(super) fn on_ping(&mut self, now: Instant, from: SocketAddr, p: Ping) {
        if !p.node.is_empty() && p.node != *self.name {
            return;
        }
        let dst = if !p.source_addr.is_empty() && p.source_port > 0 {
            socket_addr(&p.source_addr, p.source_port).unwrap_or(from)
        } else {
            from
        };
        if !self.reply_allowed(now, from, &[(&p.source_node, dst)]) {
            return;
        }
        let mut payload = self.delegate.ack_payload();
        if let (true, Some(c)) = (payload.is_empty(), &self.latency.coords) {
            payload = c.ack_payload();
        }
        let ack = AckResp {
            seq_no: p.seq_no,
            payload,
        };
        let node = (!p.source_node.is_empty()).then_some(p.source_node);
        self.send_msg(dst, node.as_deref(), &Message::AckResp(ack));
    }

    /// Pings a target on behalf of another prober and remembers to relay
    /// the ack (or send a nack).
    pub(super) fn on_indirect_ping(&mut self, now: Instant, from: SocketAddr, ind: IndirectPing) {
        let port = if self.config.protocol_version < 2 || ind.port == 0 {
            self.config.advertise.port()
        } else {
            ind.port
        };
        let Some(target) = socket_addr(&ind.target, port) else {
            self.stats.messages_malformed += 1;
            return;
        };
        let prober = if !ind.source_addr.is_empty() && ind.source_port > 0 {
            socket_addr(&ind.source_addr, ind.source_port).unwrap_or(from)
        } else {
            from
        };
        let dsts = [
            (ind.node.as_str(), target),
            (ind.source_node.as_str(), prober),
        ];
        if !self.relay_room() || !self.reply_allowed(now, from, &dsts) {
            return;
        }
        let local_seq = self.next_seq();
        let (source_addr, source_port, source_node) = self.self_source();
        self.probing.relays.insert(
            local_seq,
            Relay {
                prober_seq: ind.seq_no,
                prober,
                prober_name: ind.source_node,
                nack: ind.nack,
            },
        );
        self.timers.schedule(
            now + self.config.probe_timeout,
            TimerKind::RelayExpire { seq: local_seq },
        );
        let ping = Ping {
            seq_no: local_seq,
            node: ind.node.clone(),
            source_addr,
            source_port,
            source_node,
        };
        self.send_msg(target, Some(&ind.node), &Message::Ping(ping));
    }

    /// A relayed ping went unanswered: sends the prober the nack it asked
    /// for, and forgets the relay.
    pub(super) fn on_relay_expire(&mut self, seq: u32) {
        if let Some(relay) = self.probing.relays.remove(&seq) {
            if relay.nack {
                let name = relay.prober_name.clone();
                self.send_msg(
                    relay.prober,
                    Some(&name),
                    &Message::NackResp(NackResp {
                        seq_no: relay.prober_seq,
                    }),
                );
            }
        }
    }

    /// Sends indirect pings for `target` (at `addr_bytes`:`port`) with
    /// sequence number `seq` through up to `indirect_checks` alive helpers
    /// (near ones first when topology-aware selection is on). With `nacks`,
    /// helpers that speak protocol 4+ are asked to nack; returns how many
    /// nacks to expect.
    pub(super) fn send_indirect_pings(
        &mut self,
        target: &Arc<str>,
        addr_bytes: Vec<u8>,
        port: u16,
        seq: u32,
        nacks: bool,
    ) -> i64 {
        let me = self.name.clone();
        let candidates: Vec<usize> = self
            .table
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.name != me && m.name != *target && m.state == NodeState::Alive)
            .map(|(i, _)| i)
            .collect();
        let k = self.config.indirect_checks.min(candidates.len());
        let chosen: Vec<usize> = match self.topology_select(&candidates, k, Some(target)) {
            Some(near) => near,
            None => candidates
                .choose_multiple(&mut self.rng, k)
                .copied()
                .collect(),
        };
        let (source_addr, source_port, source_node) = self.self_source();
        let mut expected = 0;
        for i in chosen {
            let (peer_addr, peer_name, peer_pmax) = (
                self.table.nodes[i].addr,
                self.table.nodes[i].name.clone(),
                self.table.nodes[i].pmax(),
            );
            let nack = nacks && peer_pmax >= 4;
            if nack {
                expected += 1;
            }
            let ind = IndirectPing {
                seq_no: seq,
                target: addr_bytes.clone(),
                port,
                node: target.to_string(),
                nack,
                source_addr: source_addr.clone(),
                source_port,
                source_node: source_node.clone(),
            };
            self.send_msg(peer_addr, Some(&peer_name), &Message::IndirectPing(ind));
        }
        expected
    }

    /// Opens a TCP ping (memberlist's fallback ping over a stream) to `to`;
    /// its ack, a refusal or `deadline` ends it (see `StreamKind::OutPing`).
    pub(super) fn open_tcp_ping(&mut self, to: SocketAddr, ping: Ping, deadline: Instant) {
        let seq = ping.seq_no;
        let data = self.encode_stream(&StreamMessage::Ping(ping), false);
        let id = self.new_stream_id();
        self.streams.open.insert(
            id,
            StreamCtx::outbound(StreamKind::OutPing { seq }, to, deadline),
        );
        self.timers.schedule(deadline, TimerKind::Stream { id });
        self.out.stream_cmds.push_back(StreamCommand::Open {
            id,
            to,
            data,
            expect_reply: true,
            deadline,
        });
    }
}
