//! How bytes move between simulated nodes: the queue of scheduled
//! deliveries, draining a node's outputs into it ([`Harness::flush`]), and
//! handing each delivery to its node when its time comes (held in the socket
//! buffer while the node is stalled, refused or failed while it is crashed).

use std::cmp::Ordering;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use swimnet_core::{Event, StreamCommand, StreamId, Transmit};

use crate::{kinds, Harness, NodeId, Status};
use swimnet_core::SansIoNode;

/// Something that reaches a node (or happens to it) at a scheduled time.
pub(crate) enum Delivery {
    /// The node's process stops (the end of a graceful leave's linger).
    Stop { node: NodeId },
    /// A datagram arrives.
    Packet {
        to: NodeId,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// An inbound connection with its data; `origin` is where replies go.
    StreamOpen {
        to: NodeId,
        from: SocketAddr,
        origin: Option<(NodeId, StreamId)>,
        data: Vec<u8>,
    },
    /// A reply arrives on an outbound stream.
    StreamReply {
        to: NodeId,
        id: StreamId,
        data: Vec<u8>,
    },
    /// A stream broke.
    StreamError { to: NodeId, id: StreamId },
    /// The connection attempt was reset: nobody listens at the address.
    StreamRefused { to: NodeId, id: StreamId },
    /// A stall ends.
    Resume { node: NodeId },
}

/// A delivery in the queue, ordered by time then by scheduling order.
pub(crate) struct Scheduled {
    pub(crate) at: Instant,
    seq: u64,
    pub(crate) d: Delivery,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: the earliest delivery is the heap's maximum.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Most datagrams a stalled node's socket buffers hold before dropping more.
const STALL_BUFFER: usize = 4096;

impl<C: SansIoNode> Harness<C> {
    /// Schedules `d` at `at`, after everything already scheduled for that time.
    pub(crate) fn push_delivery(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            d,
        });
    }

    /// Drains node `id`'s outputs into the network and records its events.
    /// Call it after giving a node a command through [`Harness::core_mut`].
    pub fn flush(&mut self, id: NodeId) {
        let mut cmds = std::mem::take(&mut self.scratch_cmds);
        let mut events = std::mem::take(&mut self.scratch_events);
        if let Some(transmits) = self.poll_outputs(id, &mut cmds, &mut events) {
            let from = self.nodes[id].addr;
            for t in transmits {
                self.send_datagram(id, from, t);
            }
            for c in cmds.drain(..) {
                self.stream_command(id, from, c);
            }
            let elapsed = self.elapsed();
            for e in events.drain(..) {
                self.observe(id, &e);
                if self.keep_events {
                    self.events.push((elapsed, id, e));
                }
            }
        }
        cmds.clear();
        events.clear();
        self.scratch_cmds = cmds;
        self.scratch_events = events;
    }

    /// Pulls everything node `id`'s core has to say: its datagrams (returned),
    /// stream commands and events (into `cmds` and `events`), its table
    /// changes (kept when recording), and its next deadline. Checks its own
    /// incarnation. `None` when the node is crashed.
    fn poll_outputs(
        &mut self,
        id: NodeId,
        cmds: &mut Vec<StreamCommand>,
        events: &mut Vec<Event>,
    ) -> Option<Vec<Transmit>> {
        let elapsed = self.elapsed();
        let core = self.nodes[id].core.as_mut()?;
        let mut transmits = Vec::new();
        while let Some(t) = core.poll_transmit() {
            transmits.push(t);
        }
        while let Some(c) = core.poll_stream() {
            cmds.push(c);
        }
        while let Some(e) = core.poll_event() {
            events.push(e);
        }
        if self.keep_events {
            while let Some(c) = core.poll_app_event() {
                self.app_events.push((elapsed, id, c));
            }
        } else {
            while core.poll_app_event().is_some() {}
        }
        let inc = core.core().incarnation();
        let deadline = core.poll_timeout();
        self.check_own_incarnation(id, inc, elapsed);
        if deadline != self.nodes[id].deadline {
            self.nodes[id].deadline = deadline;
            if let Some(d) = deadline {
                self.timers.push(std::cmp::Reverse((d, id)));
            }
        }
        Some(transmits)
    }

    /// Counts datagram `t` as sent by `id` and puts it on the network (unless
    /// it goes nowhere, is partitioned off, or is lost).
    fn send_datagram(&mut self, id: NodeId, from: SocketAddr, t: Transmit) {
        self.nodes[id].sent_packets += 1;
        self.nodes[id].sent_bytes += t.payload.len() as u64;
        self.largest_datagram = self.largest_datagram.max(t.payload.len());
        if self.classify {
            kinds::classify_packet(&t.payload, &mut self.traffic);
        }
        let Some(&to) = self.by_addr.get(&t.dst) else {
            return;
        };
        if self.crosses_regions(id, to) {
            self.nodes[id].cross_packets += 1;
            self.nodes[id].cross_bytes += t.payload.len() as u64;
            if self.classify {
                kinds::classify_packet(&t.payload, &mut self.cross_traffic);
            }
        }
        if !self.reachable(id, to) {
            return;
        }
        let loss = self.link_loss(id, to);
        if loss > 0.0 && self.rng.gen::<f64>() < loss {
            return;
        }
        let at = self.now + self.delay(id, to);
        self.push_delivery(
            at,
            Delivery::Packet {
                to,
                from,
                bytes: t.payload,
            },
        );
    }

    /// Carries out one TCP command of node `id` (whose address is `from`).
    fn stream_command(&mut self, id: NodeId, from: SocketAddr, c: StreamCommand) {
        match c {
            StreamCommand::Open {
                id: sid,
                to,
                data,
                expect_reply,
                ..
            } => self.open_stream(id, from, sid, to, data, expect_reply),
            StreamCommand::Reply { id: sid, data } => self.reply_stream(id, sid, data),
            StreamCommand::Close { id: sid } => {
                if let Some((origin, oid)) = self.nodes[id].reply_to.remove(&sid) {
                    let at = self.now + self.delay(id, origin);
                    self.push_delivery(
                        at,
                        Delivery::StreamError {
                            to: origin,
                            id: oid,
                        },
                    );
                }
            }
        }
    }

    /// Counts stream bytes `data` as sent by `id` (cross-region counting
    /// is separate: the peer may be unknown).
    fn count_stream_sent(&mut self, id: NodeId, data: &[u8]) {
        self.nodes[id].sent_packets += 1;
        self.nodes[id].sent_bytes += data.len() as u64;
        if self.classify {
            kinds::classify_stream(data, &mut self.traffic);
        }
    }

    /// Node `id` connects to `to` and sends `data` on stream `sid`. The
    /// connection is delivered after the handshake and any retransmissions;
    /// it hangs across a partition (the core's own deadline ends it), fails
    /// after 7 s when the handshake gives up, and is refused after a round
    /// trip when nobody listens.
    fn open_stream(
        &mut self,
        id: NodeId,
        from: SocketAddr,
        sid: StreamId,
        to: SocketAddr,
        data: Vec<u8>,
        expect_reply: bool,
    ) {
        self.count_stream_sent(id, &data);
        let target = self.by_addr.get(&to).copied();
        if let Some(t) = target {
            self.count_cross_stream(id, t, &data);
        }
        let now = self.now;
        match target {
            Some(t)
                if self.stream_reachable(id, t)
                    && self.is_running(t)
                    && !self.tcp_refused.contains(&t)
                    && !self.tcp_silent.contains(&t) =>
            {
                let origin = expect_reply.then_some((id, sid));
                match self.stream_delay(id, t, true) {
                    Some(d) => self.push_delivery(
                        now + d,
                        Delivery::StreamOpen {
                            to: t,
                            from,
                            origin,
                            data,
                        },
                    ),
                    None if expect_reply => {
                        let at = now + Duration::from_secs(7);
                        self.push_delivery(at, Delivery::StreamError { to: id, id: sid });
                    }
                    None => {}
                }
            }
            Some(t) if !self.stream_reachable(id, t) || self.tcp_silent.contains(&t) => {
                // Partitioned or silent: the attempt hangs until the core's own deadline.
            }
            other => {
                // Nobody listening: refused after a round trip.
                if expect_reply {
                    let t = other.unwrap_or(id);
                    let at = now + self.delay(id, t) + self.delay(t, id);
                    self.push_delivery(at, Delivery::StreamRefused { to: id, id: sid });
                }
            }
        }
    }

    /// Node `id` answers on inbound stream `sid`; the reply reaches the
    /// stream's origin unless a partition or the link's loss stops it.
    fn reply_stream(&mut self, id: NodeId, sid: StreamId, data: Vec<u8>) {
        self.count_stream_sent(id, &data);
        let Some((origin, oid)) = self.nodes[id].reply_to.remove(&sid) else {
            return;
        };
        self.count_cross_stream(id, origin, &data);
        if self.stream_reachable(id, origin) {
            if let Some(d) = self.stream_delay(id, origin, false) {
                self.push_delivery(
                    self.now + d,
                    Delivery::StreamReply {
                        to: origin,
                        id: oid,
                        data,
                    },
                );
            }
        }
    }

    /// Counts stream bytes `data` from `from` to `to` as cross-region traffic
    /// when the two sit in different regions.
    fn count_cross_stream(&mut self, from: NodeId, to: NodeId, data: &[u8]) {
        if self.crosses_regions(from, to) {
            self.nodes[from].cross_packets += 1;
            self.nodes[from].cross_bytes += data.len() as u64;
            if self.classify {
                kinds::classify_stream(data, &mut self.cross_traffic);
            }
        }
    }

    /// Hands a due delivery to its node: applied at once when it runs, kept
    /// in its socket buffer (up to [`STALL_BUFFER`]) while it is stalled,
    /// and for a crashed node, a stream open fails back at its origin.
    pub(crate) fn deliver(&mut self, d: Delivery) {
        let to = match &d {
            Delivery::Packet { to, .. }
            | Delivery::StreamOpen { to, .. }
            | Delivery::StreamReply { to, .. }
            | Delivery::StreamError { to, .. }
            | Delivery::StreamRefused { to, .. } => *to,
            Delivery::Stop { node } => {
                self.crash(*node);
                return;
            }
            Delivery::Resume { node } => {
                self.resume(*node);
                return;
            }
        };
        match self.nodes[to].status {
            Status::Crashed => {
                if let Delivery::StreamOpen {
                    origin: Some((o, oid)),
                    ..
                } = d
                {
                    let at = self.now + self.delay(to, o);
                    self.push_delivery(at, Delivery::StreamError { to: o, id: oid });
                }
            }
            Status::Stalled { .. } => {
                if self.nodes[to].inbox.len() < STALL_BUFFER {
                    self.nodes[to].inbox.push_back(d);
                }
            }
            Status::Running => {
                self.apply(to, d);
                self.flush(to);
            }
        }
    }

    /// Ends node `node`'s stall if it is due: it reads what waited in its
    /// socket buffer, then runs its overdue timers.
    fn resume(&mut self, node: NodeId) {
        let now = self.now;
        let Status::Stalled { until } = self.nodes[node].status else {
            return;
        };
        if until > now {
            return;
        }
        self.nodes[node].status = Status::Running;
        while let Some(d) = self.nodes[node].inbox.pop_front() {
            self.apply(node, d);
        }
        if let Some(core) = self.nodes[node].core.as_mut() {
            core.handle_timeout(now);
        }
        self.flush(node);
    }

    /// Gives delivery `d` to node `to`'s core and counts what it received.
    fn apply(&mut self, to: NodeId, d: Delivery) {
        let now = self.now;
        let node = &mut self.nodes[to];
        let Some(core) = node.core.as_mut() else {
            return;
        };
        match d {
            Delivery::Packet { from, bytes, .. } => {
                node.recv_packets += 1;
                node.recv_bytes += bytes.len() as u64;
                core.handle_packet(now, from, &bytes)
            }
            Delivery::StreamOpen {
                from, origin, data, ..
            } => {
                node.recv_packets += 1;
                node.recv_bytes += data.len() as u64;
                let sid = core.handle_stream_accept(now, from);
                if let Some(o) = origin {
                    node.reply_to.insert(sid, o);
                }
                core.handle_stream_data(now, sid, &data, true);
            }
            Delivery::StreamReply { id, data, .. } => {
                node.recv_packets += 1;
                node.recv_bytes += data.len() as u64;
                core.handle_stream_data(now, id, &data, true)
            }
            Delivery::StreamError { id, .. } => {
                core.handle_stream_error(now, id, "connection lost")
            }
            Delivery::StreamRefused { id, .. } => core.handle_stream_refused(now, id),
            Delivery::Resume { .. } | Delivery::Stop { .. } => {}
        }
    }
}
