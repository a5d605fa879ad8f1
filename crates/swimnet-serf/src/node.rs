//! [`SerfNode`]: a Serf member as one sans-IO node. It owns its
//! `Memberlist<SerfDelegate>` and carries out, after every input, what the
//! delegate could not do from inside the core's handlers: key changes asked
//! for by Serf's key queries and their responses, acks and relays. It also
//! owns Serf's graceful leave: the leave intent, the grace period that lets
//! the intent spread, then the memberlist leave, all on its own timer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_core::{
    Config, Delegate, Event, Memberlist, NodeState, SansIoNode, StreamCommand, StreamId, Transmit,
};

use crate::delegate::{KeyOp, SerfAction, SerfDelegate};
use crate::error::UserEventError;
use crate::messages::UserEvent;
use crate::query::IncomingQuery;

mod commands;

pub use commands::RecentEvent;

/// Most received user events and queries kept for
/// [`SerfNode::recent_events`].
pub const MAX_RECENT_EVENTS: usize = 256;
/// Most rounds of messages to ourselves handled after one input (a
/// relay to our own address may wrap another).
const MAX_LOOPBACK_ROUNDS: usize = 8;

/// Shortest wait between the leave intent and the memberlist leave.
const MIN_LEAVE_GRACE: Duration = Duration::from_millis(300);

/// Persists the keyring (keys primary first) after a key query changed it.
/// Called synchronously, before the query is answered: an `Err` (a
/// one-line reason) is reported to the asker as the query's failure.
pub type KeyringSaver = Box<dyn FnMut(&[Vec<u8>]) -> Result<(), String> + Send>;

/// What a [`SerfNode`] reports besides membership events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SerfEvent {
    /// A user event seen for the first time (ours included).
    User(UserEvent),
    /// A key query changed the keyring (the query's name, e.g. `install`).
    KeyringChanged {
        /// [`KeyOp::name`] of the change.
        op: &'static str,
    },
    /// A key query changed the keyring but the [`KeyringSaver`] failed;
    /// the asker was told.
    KeyringNotSaved {
        /// The saver's reason.
        error: String,
    },
    /// A user query (from a peer, or ours) that passed our filters. The
    /// ack, if one was asked for, went out already; answer it with
    /// [`SerfNode::respond_query`] (with the query's `id`) before its
    /// deadline, or let it expire. Internal `_serf_` queries are handled
    /// by the node and never show up here.
    Query(IncomingQuery),
}

/// One Serf member: a memberlist core with a [`SerfDelegate`], driven
/// through [`SansIoNode`].
pub struct SerfNode {
    core: Memberlist<SerfDelegate>,
    /// When the memberlist leave is due (the grace after the intent).
    leave_at: Option<Instant>,
    keyring_saver: Option<KeyringSaver>,
    events: VecDeque<SerfEvent>,
    /// State of the generator of query ids (splitmix64).
    query_ids: u64,
    /// Received user events and queries, newest last, with sequence numbers.
    recent: VecDeque<RecentEvent>,
    recent_seq: u64,
    /// Key queries started with `start_key_query` whose report
    /// `poll_key_report` has not handed out yet (bounded by the query book).
    key_queries: Vec<crate::query::QueryHandle>,
}

impl std::fmt::Debug for SerfNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerfNode")
            .field("core", &self.core)
            .field("leave_at", &self.leave_at)
            .finish_non_exhaustive()
    }
}

impl SerfNode {
    /// A Serf member with `delegate`. Configure `config` as Serf needs
    /// (delegate versions within Serf's range, e.g.
    /// [`Config::with_serf_versions`], and the delegate's
    /// [`SerfDelegate::meta`] as metadata). `seed` drives all randomness.
    pub fn new(
        config: Config,
        delegate: SerfDelegate,
        now: Instant,
        seed: u64,
    ) -> Result<Self, swimnet_core::Error> {
        Ok(SerfNode {
            core: Memberlist::new(config, delegate, now, seed)?,
            leave_at: None,
            keyring_saver: None,
            events: VecDeque::new(),
            query_ids: seed ^ 0x5e7f_0000_0000_0001,
            recent: VecDeque::new(),
            recent_seq: 0,
            key_queries: Vec::new(),
        })
    }

    /// Sets what persists the keyring after a key query changed it.
    pub fn with_keyring_saver(mut self, saver: KeyringSaver) -> Self {
        self.keyring_saver = Some(saver);
        self
    }

    /// The Serf layer's state (clocks, counters, tags).
    pub fn serf(&self) -> &SerfDelegate {
        self.core.delegate()
    }

    /// Sends a user event to the cluster (see [`SerfDelegate::user_event`]).
    pub fn user_event(
        &mut self,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), UserEventError> {
        self.core.delegate_mut().user_event(name, payload, coalesce)
    }

    /// The wait between our leave intent and the memberlist leave: three
    /// gossip rounds, at least [`MIN_LEAVE_GRACE`].
    fn leave_grace(&self) -> Duration {
        (self.core.config().gossip_interval * 3).max(MIN_LEAVE_GRACE)
    }

    /// Carries out what the delegate collected during the last input.
    /// Messages to our own address (our acks and answers to our own
    /// queries) are handed to the delegate directly.
    fn after(&mut self, now: Instant) {
        for _ in 0..MAX_LOOPBACK_ROUNDS {
            let actions = self.core.delegate_mut().take_actions();
            if actions.is_empty() {
                break;
            }
            for action in actions {
                match action {
                    SerfAction::Send { to, payload } => self.send(now, to, &payload),
                    SerfAction::Key { op, reply } => {
                        let result = self.apply_key_op(&op);
                        let keys = self.keys();
                        let result = result.and_then(|()| self.save_keys(&op, &keys));
                        let d = self.core.delegate_mut();
                        let (to, payload) = d.key_response(&reply, result, &keys);
                        self.send(now, to, &payload);
                    }
                }
            }
        }
        for (factor, to, msg, salt) in self.core.delegate_mut().queries_mut().take_relays() {
            self.relay_response(factor, to, &msg, salt);
        }
        while let Some(e) = self.core.delegate_mut().poll_user_event() {
            self.remember(now, SerfEvent::User(e.clone()));
            self.events.push_back(SerfEvent::User(e));
        }
        while let Some(q) = self.core.delegate_mut().queries_mut().poll_incoming() {
            self.remember(now, SerfEvent::Query(q.clone()));
            self.events.push_back(SerfEvent::Query(q));
        }
    }

    /// Sends a Serf message to `to`, or hands it to our own delegate when
    /// `to` is our address.
    fn send(&mut self, now: Instant, to: SocketAddr, payload: &[u8]) {
        if to == self.core.config().advertise {
            self.core.delegate_mut().notify_msg(now, to, payload);
        } else {
            self.core.send_user_packet(to, payload);
        }
    }

    fn apply_key_op(&mut self, op: &KeyOp) -> Result<(), String> {
        let core = &mut self.core;
        match op {
            KeyOp::List if core.keyring().is_some() => Ok(()),
            KeyOp::List => Err("encryption is not enabled on this node".to_string()),
            KeyOp::Install(k) => core.install_key(k).map_err(|e| e.to_string()),
            KeyOp::Use(k) => core.use_key(k).map_err(|e| e.to_string()),
            KeyOp::Remove(k) => core.remove_key(k).map_err(|e| e.to_string()),
        }
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        self.core
            .keyring()
            .map(|r| r.keys().iter().map(|k| k.as_bytes().to_vec()).collect())
            .unwrap_or_default()
    }

    /// After a successful change (not a listing): reports it and persists.
    fn save_keys(&mut self, op: &KeyOp, keys: &[Vec<u8>]) -> Result<(), String> {
        if matches!(op, KeyOp::List) {
            return Ok(());
        }
        self.events
            .push_back(SerfEvent::KeyringChanged { op: op.name() });
        let Some(save) = self.keyring_saver.as_mut() else {
            return Ok(());
        };
        save(keys).inspect_err(|error| {
            self.events.push_back(SerfEvent::KeyringNotSaved {
                error: error.clone(),
            });
        })
    }
}

impl SansIoNode for SerfNode {
    type Delegate = SerfDelegate;
    type AppEvent = SerfEvent;

    fn core(&self) -> &Memberlist<SerfDelegate> {
        &self.core
    }
    fn core_mut(&mut self) -> &mut Memberlist<SerfDelegate> {
        &mut self.core
    }
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.core.handle_packet(now, from, datagram);
        self.after(now);
    }
    fn handle_stream_accept(&mut self, now: Instant, from: SocketAddr) -> StreamId {
        let id = self.core.handle_stream_accept(now, from);
        self.after(now);
        id
    }
    fn handle_stream_data(&mut self, now: Instant, id: StreamId, data: &[u8], fin: bool) {
        self.core.handle_stream_data(now, id, data, fin);
        self.after(now);
    }
    fn handle_stream_error(&mut self, now: Instant, id: StreamId, error: &str) {
        self.core.handle_stream_error(now, id, error);
        self.after(now);
    }
    fn handle_stream_refused(&mut self, now: Instant, id: StreamId) {
        self.core.handle_stream_refused(now, id);
        self.after(now);
    }
    /// Also runs the memberlist leave once the grace after our leave
    /// intent has passed.
    fn handle_timeout(&mut self, now: Instant) {
        if self.leave_at.is_some_and(|at| at <= now) {
            self.leave_at = None;
            self.core.leave(now);
        }
        self.core.handle_timeout(now);
        self.core.delegate_mut().queries_mut().expire(now);
        self.after(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }
    fn poll_stream(&mut self) -> Option<StreamCommand> {
        self.core.poll_stream()
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }
    fn poll_app_event(&mut self) -> Option<SerfEvent> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.core.poll_timeout(),
            self.leave_at,
            self.core.delegate().queries().next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
    fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), swimnet_core::Error> {
        let r = self.core.join(now, addrs);
        self.after(now);
        r
    }
    /// Serf's leave: our leave intent goes to every alive member at once
    /// (and into gossip), so they show us `left` rather than `failed`; the
    /// memberlist leave follows after the grace period, from
    /// [`SansIoNode::handle_timeout`].
    fn leave(&mut self, now: Instant) {
        if self.leave_at.is_some() || self.core.delegate().is_leaving() {
            return;
        }
        let intent = self.core.delegate_mut().leave_intent();
        let me = self.core.name();
        let live: Vec<SocketAddr> = self
            .core
            .members()
            .filter(|m| m.state == NodeState::Alive && *m.name != *me)
            .map(|m| m.addr)
            .collect();
        for addr in live {
            self.core.send_user_packet(addr, &intent);
        }
        self.leave_at = Some(now + self.leave_grace());
        self.after(now);
    }
    fn install_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        self.core.install_key(key)
    }
    fn use_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        self.core.use_key(key)
    }
    fn remove_key(&mut self, key: &[u8]) -> Result<(), swimnet_core::Error> {
        self.core.remove_key(key)
    }
}
