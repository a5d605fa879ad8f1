//! Push/pull: full state exchanges over TCP, periodic and on join, the
//! reconnect attempts towards dead nodes, and merging a remote state.

use crate::MergeRefusal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::Rng;
use swimnet_wire::codec::Message;
use swimnet_wire::msg::{Alive, Dead, MessageType, PushNodeState, PushPullHeader, Suspect};
use swimnet_wire::stream::StreamMessage;

use crate::delegate::Delegate;
use crate::member::{socket_addr, Node, NodeState};
use crate::timer::TimerKind;

use super::state::Tombstone;
use super::streams::{StreamCtx, StreamKind};
use super::{encode, vsn6, Event, Memberlist, StreamCommand, MAX_TOMBSTONES_PUSHED};

impl<D: Delegate> Memberlist<D> {
    /// The push/pull timer fired: a full state exchange with one random
    /// alive member.
    pub(super) fn periodic_push_pull(&mut self, now: Instant) {
        let me = self.name.clone();
        let candidates: Vec<usize> = self
            .table
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.name != me && m.state == NodeState::Alive)
            .map(|(i, _)| i)
            .collect();
        let partner = match self.topology_select(&candidates, 1, None) {
            Some(near) => near.first().copied(),
            None => candidates.choose(&mut self.rng).copied(),
        };
        if let Some(i) = partner {
            let addr = self.table.nodes[i].addr;
            self.start_push_pull(now, addr, false);
        }
    }

    /// swimnet addition (Serf's reconnect): push/pull with a node we believe
    /// dead, so that both sides learn of each other again after a partition.
    pub(super) fn reconnect(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        let timeout = self.config.reconnect_timeout;
        self.table
            .tombstones
            .retain(|_, t| now.saturating_duration_since(t.since) <= timeout);
        let mut failed: Vec<(&Arc<str>, SocketAddr)> = self
            .table
            .tombstones
            .iter()
            .filter(|(_, t)| !t.left)
            .map(|(n, t)| (n, t.addr))
            .collect();
        if failed.is_empty() {
            return;
        }
        let alive = self.num_alive().max(1);
        // Like Serf: the chance to try scales with failed / alive, so the
        // cluster as a whole makes about one attempt per interval per failed node.
        let prob = failed.len() as f64 / alive as f64;
        if self.rng.gen::<f64>() > prob {
            return;
        }
        failed.sort();
        let Some(&(_, addr)) = failed.choose(&mut self.rng) else {
            return;
        };
        self.start_push_pull(now, addr, false);
    }

    /// Opens a stream to `to` carrying our full state (`join` marks a join,
    /// whose result is reported as [`Event::JoinResult`]).
    pub(super) fn start_push_pull(&mut self, now: Instant, to: SocketAddr, join: bool) {
        let data = self.local_push_pull(join, false);
        let id = self.new_stream_id();
        let deadline = now + self.config.tcp_timeout;
        self.streams.open.insert(
            id,
            StreamCtx::outbound(StreamKind::OutPushPull { join, to }, to, deadline),
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

    /// Encodes our full state (members, recent tombstones, the delegate's
    /// state) as a push/pull message; `reply` for the responder's side.
    pub(super) fn local_push_pull(&mut self, join: bool, reply: bool) -> Vec<u8> {
        let mut states: Vec<PushNodeState> = self
            .table
            .nodes
            .iter()
            .map(|m| PushNodeState {
                name: m.name.to_string(),
                addr: m.addr_bytes(),
                port: m.addr.port(),
                meta: m.meta.clone(),
                incarnation: m.incarnation,
                state: m.state as i64,
                vsn: m.vsn.to_vec(),
            })
            .collect();
        // Nodes reaped from the table still travel as dead or left, so that a
        // node we gave up on learns it and refutes with a higher incarnation.
        let mut gone: Vec<(&Arc<str>, &Tombstone)> = self
            .table
            .tombstones
            .iter()
            .filter(|(n, _)| !self.table.index.contains(&self.table.nodes, n))
            .collect();
        gone.sort_by(|a, b| b.1.since.cmp(&a.1.since).then_with(|| a.0.cmp(b.0)));
        states.extend(
            gone.into_iter()
                .take(MAX_TOMBSTONES_PUSHED)
                .map(|(n, t)| PushNodeState {
                    name: n.to_string(),
                    addr: t.addr_bytes.clone(),
                    port: t.addr.port(),
                    meta: Vec::new(),
                    incarnation: t.incarnation,
                    state: if t.left {
                        NodeState::Left as i64
                    } else {
                        NodeState::Dead as i64
                    },
                    vsn: t.vsn.to_vec(),
                }),
        );
        let user_state = self.delegate.local_state(join);
        let msg = StreamMessage::PushPull {
            header: PushPullHeader {
                nodes: states.len() as u32,
                user_state_len: user_state.len() as u32,
                join,
            },
            states,
            user_state,
        };
        self.encode_stream(&msg, reply)
    }

    /// Merges a peer's push/pull. `direct` is the peer's gossip address when
    /// we dialed it: if it told us we were suspect or dead, our refutation is
    /// also sent straight to it so it learns we are alive at once.
    pub(super) fn merge_remote(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        direct: Option<SocketAddr>,
        join: bool,
        states: &[PushNodeState],
        user_state: &[u8],
    ) -> Result<(), MergeRefusal> {
        if let Err(reason) = self.verify_protocol(states) {
            let reason = MergeRefusal::IncompatibleVersions(reason);
            self.out.events.push_back(Event::MergeRefused {
                peer,
                reason: reason.clone(),
            });
            return Err(reason);
        }
        if join && direct.is_some() {
            // We are the one joining: refuse a cluster that has our name.
            if let Err(reason) = self.check_name_free(states) {
                self.out.events.push_back(Event::MergeRefused {
                    peer,
                    reason: reason.clone(),
                });
                return Err(reason);
            }
        }
        if join {
            let peers: Vec<Node> = states
                .iter()
                .filter_map(|s| {
                    Some(Node {
                        name: Arc::from(s.name.as_str()),
                        addr: socket_addr(&s.addr, s.port)?,
                        meta: s.meta.clone(),
                        vsn: vsn6(&s.vsn)?,
                        incarnation: s.incarnation,
                        state: NodeState::from_code(s.state)?,
                    })
                })
                .collect();
            if let Err(veto) = self.delegate.notify_merge(&peers) {
                let reason = MergeRefusal::Vetoed(veto);
                self.out.events.push_back(Event::MergeRefused {
                    peer,
                    reason: reason.clone(),
                });
                return Err(reason);
            }
        }
        let inc_before = self.incarnation;
        for r in states {
            let port = if r.port == 0 || self.config.protocol_version < 2 {
                self.config.advertise.port()
            } else {
                r.port
            };
            match NodeState::from_code(r.state) {
                Some(NodeState::Alive) => {
                    let a = Alive {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        addr: r.addr.clone(),
                        port,
                        meta: r.meta.clone(),
                        vsn: r.vsn.clone(),
                    };
                    self.alive_node(now, a, false);
                }
                Some(NodeState::Left) => self.dead_node(
                    now,
                    Dead {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: r.name.clone(),
                    },
                ),
                Some(NodeState::Dead) | Some(NodeState::Suspect) => self.suspect_node(
                    now,
                    Suspect {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: self.name.to_string(),
                    },
                ),
                None => {}
            }
        }
        if let Some(addr) = direct {
            if self.incarnation != inc_before && !self.leaving {
                let pmax = self.pmax_for_addr(addr);
                let buf = encode(&Message::Alive(self.local_alive()));
                self.stats.count_sent(MessageType::Alive, buf.len());
                self.raw_send(addr, pmax, &buf);
            }
        }
        if !user_state.is_empty() {
            self.delegate.merge_remote_state(now, user_state, join);
        }
        Ok(())
    }
}
