//! TCP streams on the core's side: accepting and reading them within
//! per-stream limits and a budget over all inbound streams.
//!
//! Every stream's bytes go through a [`StreamDecoder`], which parses them
//! as they arrive (never from the start again) and holds only what arrived.
//! On top of that, for inbound streams (anyone can open them):
//!
//! - all inbound streams whose message is not complete share one memory
//!   budget ([`StreamLimits::inbound_budget_bytes`]); past it, the stream
//!   holding the most is closed. On an agent that requires encryption these
//!   are exactly the unauthenticated bytes;
//! - with encryption required, one source IP may have at most
//!   [`StreamLimits::max_unauthenticated_per_source`] such streams;
//! - a stream must deliver its frame header within
//!   [`StreamLimits::first_bytes_timeout`].

use crate::JoinError;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use swimnet_wire::msg::{AckResp, ErrResp};
use swimnet_wire::stream::{
    StreamDecodeOptions, StreamDecoder, StreamMessage, MAX_PUSH_STATE_NODES,
};
use swimnet_wire::WireError;

use crate::config::Config;
use crate::delegate::Delegate;
use crate::timer::TimerKind;

use super::{Event, Memberlist, StreamCommand, StreamId};

/// The TCP exchanges in flight and what inbound ones hold.
#[derive(Debug, Default)]
pub(super) struct StreamTable {
    /// Every stream in flight, by id.
    pub(super) open: HashMap<StreamId, StreamCtx>,
    /// The last stream id handed out.
    pub(super) next_id: u64,
    /// Inbound streams in flight (limited by `Config::max_inbound_streams`).
    pub(super) inbound_count: usize,
    /// Memory and per-source counts of inbound streams.
    pub(super) inbound_budget: InboundBudget,
}

/// Limits on TCP streams (see [`Config::stream_limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLimits {
    /// Largest stream message on the wire: an encrypted frame, a plain
    /// message, a push/pull user state, a user message, a single string.
    /// Default: 20 MiB (memberlist's `maxPushStateBytes`).
    pub max_message_bytes: usize,
    /// Most node states one push/pull may announce. Default: 2^20
    /// (memberlist's `maxPushStateNodes`).
    pub max_node_states: u32,
    /// Most memory one decoded message may take: its node states (struct
    /// and heap bytes) and user state. Default: 64 MiB, room for every
    /// state a 20 MiB push/pull can carry.
    pub max_decoded_bytes: usize,
    /// Memory all inbound streams whose message is not complete yet may
    /// hold together (buffers and decoded states); with encryption required
    /// these are the unauthenticated bytes. Past it, the inbound stream
    /// holding the most is closed ([`crate::Stats::streams_over_budget`]).
    /// Default: 64 MiB.
    pub inbound_budget_bytes: usize,
    /// With encryption required (a keyring and
    /// [`Config::gossip_verify_incoming`]): most inbound streams one source
    /// IP may have open before their message is complete; more are refused
    /// at once ([`crate::Stats::streams_refused_per_source`]). Default: 4.
    pub max_unauthenticated_per_source: usize,
    /// An inbound stream that has not delivered its frame header (the type
    /// byte; for an encrypted frame, its 5-byte header with the length)
    /// this long after it was accepted is closed
    /// ([`crate::Stats::streams_first_bytes_timeout`]); never later than
    /// [`Config::tcp_timeout`]. Default: 5 s.
    pub first_bytes_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_message_bytes: 20 << 20,
            max_node_states: MAX_PUSH_STATE_NODES,
            max_decoded_bytes: 64 << 20,
            inbound_budget_bytes: 64 << 20,
            max_unauthenticated_per_source: 4,
            first_bytes_timeout: Duration::from_secs(5),
        }
    }
}

impl StreamLimits {
    /// Checks the limits: every one positive, and the inbound budget room
    /// for at least one whole message.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_message_bytes == 0
            || self.max_node_states == 0
            || self.max_decoded_bytes == 0
            || self.max_unauthenticated_per_source == 0
            || self.first_bytes_timeout.is_zero()
        {
            return Err("stream limits must all be positive".into());
        }
        if self.inbound_budget_bytes < self.max_message_bytes {
            return Err(format!(
                "the inbound stream budget ({} bytes) is smaller than one message ({} bytes)",
                self.inbound_budget_bytes, self.max_message_bytes
            ));
        }
        Ok(())
    }
}

/// What inbound streams hold together (see the module docs).
#[derive(Debug, Default)]
pub(super) struct InboundBudget {
    /// Memory held by inbound streams whose message is not complete.
    held: usize,
    /// Such streams per source IP, counted only with encryption required.
    per_source: HashMap<IpAddr, usize>,
}

/// One stream's state in the core.
#[derive(Debug)]
pub(super) struct StreamCtx {
    pub(super) kind: StreamKind,
    pub(super) peer: SocketAddr,
    decoder: StreamDecoder,
    /// Memory counted in the inbound budget for this stream.
    held: usize,
    /// Counted in [`InboundBudget::per_source`].
    per_source: bool,
    /// When the exchange is given up.
    deadline: Instant,
}

impl StreamCtx {
    /// A stream we opened (a push/pull or a TCP ping), given up at `deadline`.
    pub(super) fn outbound(kind: StreamKind, peer: SocketAddr, deadline: Instant) -> Self {
        StreamCtx {
            kind,
            peer,
            decoder: StreamDecoder::reply(),
            held: 0,
            per_source: false,
            deadline,
        }
    }
}

fn decode_options(config: &Config) -> StreamDecodeOptions<'_> {
    let limits = &config.stream_limits;
    StreamDecodeOptions {
        keyring: config.keyring.as_ref(),
        verify_incoming: config.gossip_verify_incoming,
        label: &config.label,
        max_nodes: limits.max_node_states,
        max_bytes: limits.max_message_bytes,
        max_decoded: limits.max_decoded_bytes,
    }
}

impl<D: Delegate> Memberlist<D> {
    /// A peer opened a TCP connection to us. Returns the handle to use for
    /// its data. The core refuses it (queues a [`StreamCommand::Close`] for
    /// it) when [`Config::max_push_pull_requests`] inbound streams are open,
    /// or, with encryption required, when its source IP already has
    /// [`StreamLimits::max_unauthenticated_per_source`] open.
    pub fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId {
        let id = self.new_stream_id();
        if self.streams.inbound_count >= self.config.max_push_pull_requests {
            self.stats.streams_refused += 1;
            self.out.stream_cmds.push_back(StreamCommand::Close { id });
            return id;
        }
        let limits = &self.config.stream_limits;
        let per_source = self.config.keyring.is_some() && self.config.gossip_verify_incoming;
        if per_source {
            let open = self
                .streams
                .inbound_budget
                .per_source
                .entry(from.ip())
                .or_insert(0);
            if *open >= limits.max_unauthenticated_per_source {
                self.stats.streams_refused_per_source += 1;
                self.out.stream_cmds.push_back(StreamCommand::Close { id });
                return id;
            }
            *open += 1;
        }
        let deadline = now + self.config.tcp_timeout;
        let first_check = deadline.min(now + limits.first_bytes_timeout);
        self.streams.inbound_count += 1;
        self.streams.open.insert(
            id,
            StreamCtx {
                kind: StreamKind::In,
                peer: from,
                decoder: StreamDecoder::message(),
                held: 0,
                per_source,
                deadline,
            },
        );
        self.timers.schedule(first_check, TimerKind::Stream { id });
        id
    }

    /// Bytes arrived on a stream (inbound, or the reply on one we opened).
    /// `fin` says the peer closed its side. The bytes are parsed as they
    /// come (see [`StreamDecoder`]); once a whole message is in, the core
    /// acts on it and queues a reply or a close. A message over a
    /// [`StreamLimits`] limit fails the stream
    /// ([`crate::Stats::streams_over_limit`]); an inbound stream that takes
    /// the inbound budget over its limit closes the biggest holder.
    pub fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool) {
        if !self.reserve_inbound(id, data.len()) {
            return;
        }
        let opts = decode_options(&self.config);
        let Some(ctx) = self.streams.open.get_mut(&id) else {
            return;
        };
        let scanned_before = ctx.decoder.scanned();
        let mut result = ctx.decoder.push(data, &opts);
        if fin && matches!(result, Ok(None)) {
            result = ctx.decoder.finish().map(|()| None);
        }
        self.stats.stream_bytes_scanned += ctx.decoder.scanned() - scanned_before;
        match result {
            Ok(Some(msg)) => {
                let ctx = self.take_stream(id).expect("present");
                self.on_stream_message(now, id, ctx, msg);
            }
            Ok(None) => {
                if matches!(ctx.kind, StreamKind::In) {
                    let memory = ctx.decoder.memory();
                    self.streams.inbound_budget.held =
                        self.streams.inbound_budget.held - ctx.held + memory;
                    ctx.held = memory;
                    self.enforce_inbound_budget();
                }
            }
            Err(e) => {
                if e == WireError::Decrypt {
                    self.stats.decrypt_failures += 1;
                }
                if matches!(e, WireError::TooLarge { .. }) {
                    self.stats.streams_over_limit += 1;
                }
                self.fail_stream(id, &e.to_string());
            }
        }
    }

    /// Before an inbound stream's buffer grows by `more` bytes, counts the
    /// growth in the inbound budget and closes the biggest holders while it
    /// is over. Returns false when the stream is gone (unknown, or closed
    /// itself as the biggest).
    fn reserve_inbound(&mut self, id: StreamId, more: usize) -> bool {
        let Some(ctx) = self.streams.open.get_mut(&id) else {
            return false;
        };
        if !matches!(ctx.kind, StreamKind::In) {
            return true;
        }
        let after = ctx.decoder.memory_after(more);
        if after > ctx.held {
            self.streams.inbound_budget.held = self.streams.inbound_budget.held - ctx.held + after;
            ctx.held = after;
            self.enforce_inbound_budget();
        }
        self.streams.open.contains_key(&id)
    }

    /// Closes the inbound streams holding the most until the inbound budget
    /// is kept.
    fn enforce_inbound_budget(&mut self) {
        while self.streams.inbound_budget.held > self.config.stream_limits.inbound_budget_bytes {
            let Some(biggest) = self
                .streams
                .open
                .iter()
                .filter(|(_, c)| c.held > 0)
                .max_by_key(|(id, c)| (c.held, std::cmp::Reverse(**id)))
                .map(|(id, _)| *id)
            else {
                return;
            };
            self.stats.streams_over_budget += 1;
            self.drop_stream(biggest);
        }
    }

    /// Runs a stream's timer: the first-bytes check, then the deadline.
    pub(super) fn on_stream_timer(&mut self, now: Instant, id: StreamId) {
        let Some(ctx) = self.streams.open.get(&id) else {
            return;
        };
        if now < ctx.deadline {
            if matches!(ctx.kind, StreamKind::In) && !ctx.decoder.header_seen() {
                self.stats.streams_first_bytes_timeout += 1;
                self.drop_stream(id);
            } else {
                let deadline = ctx.deadline;
                self.timers.schedule(deadline, TimerKind::Stream { id });
            }
            return;
        }
        let ctx = self.take_stream(id).expect("present");
        self.stats.streams_failed += 1;
        self.stream_finished(&ctx, Err(JoinError::Stream("timed out".into())));
        self.out.stream_cmds.push_back(StreamCommand::Close { id });
    }

    /// Closes a stream without a word (a hostile or stalled peer): counted
    /// as failed.
    fn drop_stream(&mut self, id: StreamId) {
        if let Some(ctx) = self.take_stream(id) {
            self.stats.streams_failed += 1;
            self.stream_finished(
                &ctx,
                Err(JoinError::Stream("closed: over a stream budget".into())),
            );
            self.out.stream_cmds.push_back(StreamCommand::Close { id });
        }
    }

    /// Removes a stream and gives back what it held: its inbound slot, its
    /// share of the inbound budget and its per-source count.
    pub(super) fn take_stream(&mut self, id: StreamId) -> Option<StreamCtx> {
        let ctx = self.streams.open.remove(&id)?;
        if matches!(ctx.kind, StreamKind::In) {
            self.streams.inbound_count = self.streams.inbound_count.saturating_sub(1);
            self.streams.inbound_budget.held -= ctx.held;
            if ctx.per_source {
                let ip = ctx.peer.ip();
                if let Some(open) = self.streams.inbound_budget.per_source.get_mut(&ip) {
                    *open -= 1;
                    if *open == 0 {
                        self.streams.inbound_budget.per_source.remove(&ip);
                    }
                }
            }
        }
        Some(ctx)
    }

    /// Memory held by inbound streams whose message is not complete (what
    /// [`StreamLimits::inbound_budget_bytes`] bounds).
    pub fn inbound_stream_memory(&self) -> usize {
        self.streams.inbound_budget.held
    }
}

#[derive(Debug)]
pub(super) enum StreamKind {
    OutPushPull { join: bool, to: SocketAddr },
    OutPing { seq: u32 },
    In,
}

impl<D: Delegate> Memberlist<D> {
    /// The driver could not connect, write or read a stream, or its own
    /// deadline passed. The exchange is abandoned.
    pub fn handle_stream_error(&mut self, _now: Instant, id: StreamId, error: &str) {
        if let Some(ctx) = self.take_stream(id) {
            self.stats.streams_failed += 1;
            self.stream_finished(&ctx, Err(JoinError::Stream(error.to_string())));
        }
    }

    /// An outbound connection was actively refused: the peer's host is up
    /// but nothing listens on its port (a TCP reset), so the member process
    /// at that address is not running. Call it instead of
    /// [`Self::handle_stream_error`] when the driver can tell (Linux:
    /// `ECONNREFUSED`). Besides failing the stream, a refused TCP ping ends
    /// the probe it belongs to as failed at once rather than at the end of
    /// the probe interval, and fails a check of a suspect at once; with
    /// [`crate::Config::refusal_verdicts`] it is crash evidence instead (see
    /// `note_refusal` in `memberlist/suspicion.rs`).
    pub fn handle_stream_refused(&mut self, now: Instant, id: StreamId) {
        let Some(ctx) = self.streams.open.get(&id) else {
            return;
        };
        let ping_seq = match ctx.kind {
            StreamKind::OutPing { seq } => Some(seq),
            _ => None,
        };
        self.handle_stream_error(now, id, "connection refused");
        let Some(seq) = ping_seq else {
            return;
        };
        self.stats.pings_refused += 1;
        if self
            .probing
            .current
            .as_ref()
            .is_some_and(|p| p.seq == seq && !p.done && !p.tcp_ok)
        {
            if let Some(p) = &mut self.probing.current {
                p.refused = true;
            }
            self.finish_probe(now, false);
            return;
        }
        let node = self
            .suspicions
            .active
            .iter()
            .find(|(_, s)| s.check == Some(seq))
            .map(|(n, _)| n.clone());
        if let Some(node) = node {
            let sent = self.suspicions.active.get(&node).map(|s| s.check_sent_at);
            if self.note_refusal(now, &node, sent) {
                return;
            }
            let deadline = match self.suspicions.active.get_mut(&node) {
                Some(susp) => {
                    susp.check_until = now;
                    susp.deadline
                }
                None => return,
            };
            self.arm_suspicion(now, &node, deadline);
        }
    }

    /// Abandons stream `id` for `why`: an inbound peer gets an error reply, an
    /// outbound exchange reports its failure.
    pub(super) fn fail_stream(&mut self, id: StreamId, why: &str) {
        let Some(ctx) = self.take_stream(id) else {
            return;
        };
        self.stats.streams_failed += 1;
        if matches!(ctx.kind, StreamKind::In) {
            // Tell the peer, as memberlist does for read errors.
            let data = self.encode_stream(
                &StreamMessage::ErrResp(ErrResp {
                    error: why.to_string(),
                }),
                true,
            );
            self.out
                .stream_cmds
                .push_back(StreamCommand::Reply { id, data });
        } else {
            self.stream_finished(&ctx, Err(JoinError::Stream(why.to_string())));
            self.out.stream_cmds.push_back(StreamCommand::Close { id });
        }
    }

    /// Reports how an outbound exchange ended (a join's [`Event::JoinResult`]).
    pub(super) fn stream_finished(&mut self, ctx: &StreamCtx, result: Result<usize, JoinError>) {
        if let StreamKind::OutPushPull { join: true, to } = ctx.kind {
            self.out
                .events
                .push_back(Event::JoinResult { addr: to, result });
        }
    }

    /// A fresh stream id.
    pub(super) fn new_stream_id(&mut self) -> StreamId {
        self.streams.next_id += 1;
        StreamId(self.streams.next_id)
    }

    /// Handles the one complete message of stream `id`: answers an inbound
    /// push/pull or ping, or merges the reply to ours.
    pub(super) fn on_stream_message(
        &mut self,
        now: Instant,
        id: StreamId,
        ctx: StreamCtx,
        msg: StreamMessage,
    ) {
        match ctx.kind {
            StreamKind::In => {
                match msg {
                    StreamMessage::PushPull {
                        header,
                        states,
                        user_state,
                    } => {
                        // Reply with our state first, then merge theirs (memberlist's order).
                        let reply = self.local_push_pull(header.join, true);
                        self.out
                            .stream_cmds
                            .push_back(StreamCommand::Reply { id, data: reply });
                        self.stats.push_pulls += 1;
                        let _ = self.merge_remote(
                            now,
                            ctx.peer,
                            None,
                            header.join,
                            &states,
                            &user_state,
                        );
                    }
                    StreamMessage::Ping(p) => {
                        if p.node.is_empty() || p.node == *self.name {
                            let data = self.encode_stream(
                                &StreamMessage::AckResp(AckResp {
                                    seq_no: p.seq_no,
                                    payload: Vec::new(),
                                }),
                                true,
                            );
                            self.out
                                .stream_cmds
                                .push_back(StreamCommand::Reply { id, data });
                        } else {
                            self.out.stream_cmds.push_back(StreamCommand::Close { id });
                        }
                    }
                    StreamMessage::User(buf) => {
                        self.out.stream_cmds.push_back(StreamCommand::Close { id });
                        if !buf.is_empty() {
                            self.delegate.notify_msg(now, ctx.peer, &buf);
                        }
                    }
                    StreamMessage::AckResp(_) | StreamMessage::ErrResp(_) => {
                        self.out.stream_cmds.push_back(StreamCommand::Close { id });
                    }
                }
            }
            StreamKind::OutPushPull { join, to } => {
                self.out.stream_cmds.push_back(StreamCommand::Close { id });
                match msg {
                    StreamMessage::PushPull {
                        states, user_state, ..
                    } => {
                        self.stats.push_pulls += 1;
                        let result =
                            self.merge_remote(now, to, Some(to), join, &states, &user_state);
                        if join {
                            self.out.events.push_back(Event::JoinResult {
                                addr: to,
                                result: result.map(|_| states.len()).map_err(JoinError::from),
                            });
                        }
                    }
                    StreamMessage::ErrResp(e) => {
                        self.stats.streams_failed += 1;
                        if join {
                            self.out.events.push_back(Event::JoinResult {
                                addr: to,
                                result: Err(JoinError::Remote(e.error)),
                            });
                        }
                    }
                    _ => {
                        self.stats.streams_failed += 1;
                        if join {
                            self.out.events.push_back(Event::JoinResult {
                                addr: to,
                                result: Err(JoinError::UnexpectedReply),
                            });
                        }
                    }
                }
            }
            StreamKind::OutPing { seq } => {
                self.out.stream_cmds.push_back(StreamCommand::Close { id });
                if let StreamMessage::AckResp(ack) = msg {
                    if let Some(p) = &mut self.probing.current {
                        if p.seq == seq && ack.seq_no == seq && !p.done {
                            p.tcp_ok = true;
                        }
                    }
                    if ack.seq_no == seq {
                        self.on_check_ack(now, seq);
                    }
                }
            }
        }
    }
}
