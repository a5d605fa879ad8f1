//! [`SerfDelegate`]: the memberlist delegate that makes a swimnet node a
//! member of a Serf 0.9.4 cluster.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use regex::RegexBuilder;
use swimnet_core::queue::TransmitLimitedQueue;
use swimnet_core::reply_limit::{ReplyLimitConfig, TokenBucket};
use swimnet_core::Delegate;

use crate::error::{TagsError, UserEventError};
use crate::lamport::{LamportClock, LamportTime};
use crate::messages::{
    Filter, Join, KeyRequest, KeyResponse, Leave, Message, MessageType, PushPull, Query,
    QueryResponse, Relay, SerfMessage, UserEvent, QUERY_FLAG_ACK,
};
use crate::query::{QueryBook, QueryError, QueryHandle, QUERY_SIZE_LIMIT};
use crate::tags::check_tags;

/// Prefix of the queries Serf handles itself.
pub const INTERNAL_QUERY_PREFIX: &str = "_serf_";
/// Reachability check; answered by the ack alone.
pub const PING_QUERY: &str = "_serf_ping";
/// Name-conflict resolution (not answered by swimnet).
pub const CONFLICT_QUERY: &str = "_serf_conflict";
/// Install a key in the keyring (payload: [`KeyRequest`]).
pub const INSTALL_KEY_QUERY: &str = "_serf_install-key";
/// Make a key primary (payload: [`KeyRequest`]).
pub const USE_KEY_QUERY: &str = "_serf_use-key";
/// Remove a key from the keyring (payload: [`KeyRequest`]).
pub const REMOVE_KEY_QUERY: &str = "_serf_remove-key";
/// List the keyring (payload: a [`KeyRequest`] with an empty key, unused).
pub const LIST_KEYS_QUERY: &str = "_serf_list-keys";

/// Serf's estimate of the smallest encoded key in a list-keys response; the
/// response starts with at most `query_response_size_limit / 25` keys.
pub const MIN_ENCODED_KEY_LENGTH: usize = 25;

/// Oldest Serf protocol (memberlist delegate version) Serf 0.9.4 speaks.
pub const PROTOCOL_VERSION_MIN: u8 = 2;
/// Newest Serf protocol (memberlist delegate version) Serf 0.9.4 speaks.
pub const PROTOCOL_VERSION_MAX: u8 = 5;

/// Most query ids remembered per Lamport time slot.
const MAX_IDS_PER_SLOT: usize = 64;
/// Most actions waiting for [`SerfDelegate::take_actions`].
const MAX_PENDING_ACTIONS: usize = 1024;
/// Most received user events waiting for [`SerfDelegate::poll_user_event`].
const MAX_PENDING_USER_EVENTS: usize = 1024;
/// Serf's default `UserEventSizeLimit`: most bytes of name plus payload,
/// and of the encoded message, of a user event we send.
pub const USER_EVENT_SIZE_LIMIT: usize = 512;

/// Settings of a [`SerfDelegate`]. Defaults are Serf 0.9.4's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerfConfig {
    /// Our node name (memberlist's and Serf's).
    pub node_name: String,
    /// Our tags (encoded into the metadata; see [`crate::tags`]).
    pub tags: BTreeMap<String, String>,
    /// memberlist's `RetransmitMult` for Serf's broadcast queues (4).
    pub retransmit_mult: usize,
    /// Lamport-time slots remembered for query deduplication (`QueryBuffer`, 512).
    pub query_buffer: usize,
    /// Lamport-time slots remembered for user-event deduplication (`EventBuffer`, 512).
    pub event_buffer: usize,
    /// Largest encoded query response (`QueryResponseSizeLimit`, 1024); a
    /// list-keys response is cut down to fit.
    pub query_response_size_limit: usize,
    /// Most messages per broadcast queue (`MaxQueueDepth`, 4096); more are dropped.
    pub max_queue_depth: usize,
    /// Most nodes whose latest join/leave intent time is remembered (to
    /// re-broadcast each intent once).
    pub max_intents: usize,
    /// How long a remembered intent is kept once the table is full
    /// (`RecentIntentTimeout`, 5 minutes).
    pub recent_intent_timeout: Duration,
    /// Re-broadcast intents, user events and queries seen for the first
    /// time, as every Serf node does (true).
    pub rebroadcast: bool,
    /// Forward relay messages to their destination, as every Serf node does (true).
    pub relay: bool,
    /// swimnet addition: the furthest a peer's Lamport time may lie ahead of
    /// the matching clock of ours (member, event or query). A message (or
    /// push/pull state) with a time further ahead is dropped and counted in
    /// [`SerfCounters::clock_jumps_rejected`], so one forged time near
    /// `u64::MAX` cannot stall the clock. The first push/pull state merged
    /// may move the clocks by up to `u64::MAX / 2`: that is how a new or
    /// restarted node catches up with a cluster whose clocks have run far
    /// from 0. Default: 2^20.
    pub max_clock_jump: u64,
    /// swimnet addition: budget for what we send to addresses a peer chose
    /// (a query's reply address, a relay's destination) when that is not
    /// the packet's sender. This delegate keeps no member table, so every
    /// such request spends a token (acks and a key response together: one);
    /// without one it is dropped and counted in
    /// [`SerfCounters::replies_limited`]. Default: 64 per second, bursts
    /// of 128 (`max_relays` is not used here).
    pub reply_limit: ReplyLimitConfig,
}

impl SerfConfig {
    /// Serf's defaults for a node called `node_name`, without tags.
    pub fn new(node_name: impl Into<String>) -> Self {
        SerfConfig {
            node_name: node_name.into(),
            tags: BTreeMap::new(),
            retransmit_mult: 4,
            query_buffer: 512,
            event_buffer: 512,
            query_response_size_limit: 1024,
            max_queue_depth: 4096,
            max_intents: 4096,
            recent_intent_timeout: Duration::from_secs(300),
            rebroadcast: true,
            relay: true,
            max_clock_jump: 1 << 20,
            reply_limit: ReplyLimitConfig::default(),
        }
    }
}

/// A keyring operation asked for by a Serf key query: the same operations
/// as swimnet's own cluster-wide key messages ([`swimnet_core::key_ops`]).
pub use swimnet_core::key_ops::KeyOp;

/// The Serf query name that asks for `op`.
pub fn key_query_name(op: &KeyOp) -> &'static str {
    match op {
        KeyOp::Install(_) => INSTALL_KEY_QUERY,
        KeyOp::Use(_) => USE_KEY_QUERY,
        KeyOp::Remove(_) => REMOVE_KEY_QUERY,
        KeyOp::List => LIST_KEYS_QUERY,
    }
}

/// The error text Serf answers `op` with when encryption is off; pass it
/// as `Err(..)` to [`SerfDelegate::key_response`] when there is no keyring.
pub fn no_keyring_message(op: &KeyOp) -> &'static str {
    match op {
        KeyOp::List => "Keyring is empty (encryption not enabled)",
        _ => "No keyring to modify (encryption not enabled)",
    }
}

/// Where and how to answer a query; handed out with [`SerfAction::Key`] and
/// given back to [`SerfDelegate::key_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryReply {
    /// The query's Lamport time.
    pub ltime: LamportTime,
    /// The query's id.
    pub id: u32,
    /// The asker's address (responses go there as user packets).
    pub to: SocketAddr,
    /// The asker's node name.
    pub source_node: String,
    /// The query name.
    pub name: String,
    /// The asker stops listening after this (receive time + query timeout);
    /// `None` if that is too far away to represent.
    pub deadline: Option<Instant>,
}

/// Work the delegate cannot do itself; drained with
/// [`SerfDelegate::take_actions`] after each input, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerfAction {
    /// Apply `op` to the core's keyring, then send
    /// [`SerfDelegate::key_response`]'s result.
    Key {
        /// The keyring operation.
        op: KeyOp,
        /// How to answer.
        reply: QueryReply,
    },
    /// Send `payload` to `to` as a memberlist user packet
    /// (`Memberlist::send_user_packet(to, &payload)`, which adds the 0x08
    /// byte): query acks, immediate error responses, relayed messages.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The Serf message (type byte + body).
        payload: Vec<u8>,
    },
}

/// What the delegate has seen and done. Peer input never makes an error;
/// it ends up in one of these counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SerfCounters {
    /// User messages received, by Serf type byte (0..=9), malformed or not.
    pub received: [u64; MessageType::COUNT],
    /// User messages whose first byte is not a Serf type.
    pub unknown_type: u64,
    /// Messages (or query parts: filters, key requests, reply addresses)
    /// that could not be decoded.
    pub malformed: u64,
    /// Well-formed messages we have no use for (query responses, push/pull
    /// state outside a push/pull, conflict/key payloads on their own, relays
    /// when relaying is off, empty messages).
    pub ignored: u64,
    /// Queries dropped because their id was already seen at that time.
    pub queries_duplicate: u64,
    /// Queries dropped because they are older than the dedupe buffer.
    pub queries_too_old: u64,
    /// Queries whose filters exclude us.
    pub queries_filtered_out: u64,
    /// Queries that pass the filters but that we do not answer (user
    /// queries, `_serf_conflict`, unknown internal queries).
    pub queries_ignored: u64,
    /// `_serf_ping` queries (answered by the ack alone, if one was asked for).
    pub pings: u64,
    /// Key queries handed out as [`SerfAction::Key`].
    pub key_queries: u64,
    /// Query responses produced (key responses and immediate errors; acks
    /// not included).
    pub queries_answered: u64,
    /// Query acks produced.
    pub acks_sent: u64,
    /// Relay messages forwarded.
    pub relayed: u64,
    /// Messages queued for re-broadcast.
    pub rebroadcasts: u64,
    /// Broadcasts or actions dropped because a queue was full.
    pub dropped: u64,
    /// Leave intents about us that we refuted with a join intent.
    pub refutations: u64,
    /// Push/pull states merged (their Lamport times witnessed).
    pub remote_states: u64,
    /// Push/pull states that could not be decoded.
    pub remote_states_malformed: u64,
    /// Messages and push/pull states dropped for a Lamport time more than
    /// [`SerfConfig::max_clock_jump`] ahead of our clock.
    pub clock_jumps_rejected: u64,
    /// Queries left unanswered and relays not forwarded because they would
    /// have sent to a peer-chosen address beyond [`SerfConfig::reply_limit`].
    pub replies_limited: u64,
    /// New user events handed out by [`SerfDelegate::poll_user_event`]
    /// (ours included).
    pub user_events: u64,
    /// User events dropped (the oldest first) because nobody drained
    /// [`SerfDelegate::poll_user_event`] in time.
    pub user_events_dropped: u64,
}

/// Which of Serf's three Lamport clocks a time is for.
#[derive(Debug, Clone, Copy)]
enum Clock {
    Member,
    Event,
    Query,
}

#[derive(Debug, Clone, Copy)]
enum Queue {
    Intent,
    Query,
    Event,
}

/// Remembers (Lamport time, id) pairs in a ring indexed by time, as Serf's
/// query and event buffers do.
#[derive(Debug)]
struct SeenRing {
    slots: Vec<Option<(LamportTime, Vec<u64>)>>,
}

impl SeenRing {
    fn new(len: usize) -> Self {
        SeenRing {
            slots: vec![None; len.max(1)],
        }
    }

    fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Older than the ring covers, given the clock's current time.
    fn too_old(&self, ltime: LamportTime, now: LamportTime) -> bool {
        now > self.len() && ltime < now - self.len()
    }

    /// Records `id` at `ltime`; false if it was already there.
    fn insert(&mut self, ltime: LamportTime, id: u64) -> bool {
        let idx = (ltime % self.len()) as usize;
        let Some(slot) = self.slots.get_mut(idx) else {
            return false;
        };
        match slot {
            Some((t, ids)) if *t == ltime => {
                if ids.contains(&id) {
                    return false;
                }
                if ids.len() >= MAX_IDS_PER_SLOT {
                    ids.remove(0);
                }
                ids.push(id);
            }
            _ => *slot = Some((ltime, vec![id])),
        }
        true
    }
}

/// The memberlist [`Delegate`] that speaks Serf.
///
/// It keeps our tags, Serf's three Lamport clocks (member, event, query),
/// deduplication buffers, and three broadcast queues (intents, queries,
/// events), and turns Serf messages into [`SerfAction`]s for the agent.
///
/// [`crate::SerfNode`] does all of the steps below for you; use the
/// delegate on its own only to embed Serf in another node type, like this:
///
/// 1. create it with [`SerfDelegate::new`] (or [`SerfDelegate::with_config`]),
///    configure the core with [`SerfDelegate::meta`] as metadata and delegate
///    versions within
///    [`PROTOCOL_VERSION_MIN`]..=[`PROTOCOL_VERSION_MAX`] (e.g. 2, 5, 4), and
///    hand the delegate to `Memberlist::new`;
/// 2. after every input to the core, drain [`SerfDelegate::take_actions`]
///    (through `Memberlist::delegate_mut`) and carry the actions out;
/// 3. after a successful join, optionally send [`SerfDelegate::join_intent`];
/// 4. to leave, send [`SerfDelegate::leave_intent`] to every alive member,
///    then call `Memberlist::leave`.
#[derive(Debug)]
pub struct SerfDelegate {
    config: SerfConfig,
    meta: Vec<u8>,
    clock: LamportClock,
    event_clock: LamportClock,
    query_clock: LamportClock,
    leaving: bool,
    /// Latest intent time about us (ours or one seen from peers).
    own_status_ltime: LamportTime,
    /// Node → (latest intent time seen, when).
    intents: HashMap<String, (LamportTime, Instant)>,
    queries_seen: SeenRing,
    events_seen: SeenRing,
    intent_queue: TransmitLimitedQueue,
    query_queue: TransmitLimitedQueue,
    event_queue: TransmitLimitedQueue,
    actions: Vec<SerfAction>,
    user_events: VecDeque<UserEvent>,
    counters: SerfCounters,
    /// A push/pull state has been merged: from then on every peer time is
    /// held to [`SerfConfig::max_clock_jump`].
    clocks_synced: bool,
    /// Tokens for sends to peer-chosen addresses; created on first use
    /// (the delegate is built before it sees a clock).
    reply_bucket: Option<TokenBucket>,
    /// Our queries and received ones waiting for an answer.
    queries: QueryBook,
}

impl SerfDelegate {
    /// A delegate for node `node_name` with `tags` and Serf's defaults
    /// otherwise ([`SerfConfig::new`]). Fails, creating nothing, if the tags
    /// do not fit memberlist's 512-byte metadata.
    pub fn new(
        node_name: impl Into<String>,
        tags: BTreeMap<String, String>,
    ) -> Result<Self, TagsError> {
        let mut config = SerfConfig::new(node_name);
        config.tags = tags;
        Self::with_config(config)
    }

    /// A delegate with `config`. Fails, creating nothing, if the tags do not
    /// fit memberlist's 512-byte metadata.
    pub fn with_config(config: SerfConfig) -> Result<Self, TagsError> {
        let meta = check_tags(&config.tags)?;
        Ok(SerfDelegate {
            meta,
            clock: LamportClock::new(),
            event_clock: LamportClock::new(),
            query_clock: LamportClock::new(),
            leaving: false,
            own_status_ltime: 0,
            intents: HashMap::new(),
            queries_seen: SeenRing::new(config.query_buffer),
            events_seen: SeenRing::new(config.event_buffer),
            intent_queue: TransmitLimitedQueue::new(config.retransmit_mult),
            query_queue: TransmitLimitedQueue::new(config.retransmit_mult),
            event_queue: TransmitLimitedQueue::new(config.retransmit_mult),
            actions: Vec::new(),
            user_events: VecDeque::new(),
            counters: SerfCounters::default(),
            clocks_synced: false,
            reply_bucket: None,
            queries: QueryBook::new(config.query_response_size_limit),
            config,
        })
    }

    // ---------------------------------------------------------------- getters

    /// Our node name.
    pub fn node_name(&self) -> &str {
        &self.config.node_name
    }

    /// Our tags.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.config.tags
    }

    /// Our metadata (the encoded tags): give it to the core's config.
    pub fn meta(&self) -> &[u8] {
        &self.meta
    }

    /// The configuration.
    pub fn config(&self) -> &SerfConfig {
        &self.config
    }

    /// Serf's member clock (join/leave intents).
    pub fn clock(&self) -> &LamportClock {
        &self.clock
    }

    /// Serf's event clock (user events).
    pub fn event_clock(&self) -> &LamportClock {
        &self.event_clock
    }

    /// Serf's query clock (queries).
    pub fn query_clock(&self) -> &LamportClock {
        &self.query_clock
    }

    /// True once [`SerfDelegate::leave_intent`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// What has been seen and done so far.
    pub fn counters(&self) -> &SerfCounters {
        &self.counters
    }

    /// Our queries (open and recently finished) and received queries
    /// waiting for an answer.
    pub fn queries(&self) -> &QueryBook {
        &self.queries
    }

    /// The query state, to drain received queries
    /// ([`QueryBook::poll_incoming`]) and expire old ones when embedding the
    /// delegate in another node type ([`crate::SerfNode`] does both).
    pub fn queries_mut(&mut self) -> &mut QueryBook {
        &mut self.queries
    }

    /// Messages waiting in the broadcast queues.
    pub fn pending_broadcasts(&self) -> usize {
        self.intent_queue.len() + self.query_queue.len() + self.event_queue.len()
    }

    // --------------------------------------------------------------- commands

    /// Replaces our tags and returns the new metadata, which the agent must
    /// then give to the core (`Memberlist::set_meta`). Tags over the
    /// 512-byte limit are refused and nothing changes.
    pub fn set_tags(&mut self, tags: BTreeMap<String, String>) -> Result<Vec<u8>, TagsError> {
        let meta = check_tags(&tags)?;
        self.config.tags = tags;
        self.meta = meta.clone();
        Ok(meta)
    }

    /// Our leave intent, to send before the memberlist leave so that Serf
    /// shows us `left` instead of `failed`.
    ///
    /// Advances the member clock and returns the user-message payload
    /// (`messageLeave{LTime, Node: us, Prune: false}` with its type byte),
    /// which is also queued for gossip. The agent sends it to every alive
    /// member (`Memberlist::send_user_packet`), then calls
    /// `Memberlist::leave`. From now on leave intents about us are no longer
    /// refuted.
    pub fn leave_intent(&mut self) -> Vec<u8> {
        let ltime = self.clock.increment();
        self.leaving = true;
        self.own_status_ltime = self.own_status_ltime.max(ltime);
        let msg = Leave {
            ltime,
            node: self.config.node_name.clone(),
            prune: false,
        }
        .encode();
        self.queue(Queue::Intent, msg.clone());
        msg
    }

    /// Our join intent, as Serf broadcasts after a successful join: it
    /// stamps our membership with the member clock's current time so that
    /// older leave intents about us are ignored.
    ///
    /// Returns the user-message payload (`messageJoin{LTime, Node: us}`),
    /// also queued for gossip; sending it directly is optional.
    pub fn join_intent(&mut self) -> Vec<u8> {
        let ltime = self.clock.time();
        self.clock.witness(ltime);
        self.own_status_ltime = self.own_status_ltime.max(ltime);
        let msg = Join {
            ltime,
            node: self.config.node_name.clone(),
        }
        .encode();
        self.queue(Queue::Intent, msg.clone());
        msg
    }

    /// Sends query `q` as Serf's `Query` does: stamps it with the query
    /// clock, registers it (closing at now + its timeout, accepting up to
    /// `expected` acks and responses), queues it for gossip and processes
    /// it locally as if received from `me` (our own address), so that we
    /// ack and answer it too. Refuses, changing nothing, a query over
    /// [`QUERY_SIZE_LIMIT`] or one too many open.
    pub(crate) fn send_query(
        &mut self,
        now: Instant,
        me: SocketAddr,
        mut q: Query,
        expected: usize,
        key_op: Option<&'static str>,
    ) -> Result<QueryHandle, QueryError> {
        self.queries.check_room()?;
        q.ltime = self.query_clock.time();
        let raw = q.encode();
        if raw.len() > QUERY_SIZE_LIMIT {
            return Err(QueryError::TooLarge {
                what: "query",
                len: raw.len(),
                limit: QUERY_SIZE_LIMIT,
            });
        }
        let deadline = now + q.timeout_duration();
        let handle = self.queries.register(&q, deadline, expected, key_op);
        self.queue(Queue::Query, raw.clone());
        self.handle_query(now, me, q, &raw, true);
        Ok(handle)
    }

    /// A leave intent about another node, as Serf's force-leave sends it:
    /// stamped with the member clock, recorded, queued for gossip and
    /// returned (the caller also sends it to every alive member).
    pub fn force_leave_intent(&mut self, now: Instant, node: &str, prune: bool) -> Vec<u8> {
        let ltime = self.clock.time();
        self.clock.increment();
        self.note_intent(now, node, ltime);
        let msg = Leave {
            ltime,
            node: node.to_string(),
            prune,
        }
        .encode();
        self.queue(Queue::Intent, msg.clone());
        msg
    }

    /// Sends a user event to the cluster, as Serf's `UserEvent` does: stamps
    /// it with the event clock, records it as seen (it is also handed out by
    /// [`SerfDelegate::poll_user_event`], as Serf delivers its own events)
    /// and queues it for gossip. Refuses, changing nothing, a name and
    /// payload over [`USER_EVENT_SIZE_LIMIT`] bytes.
    pub fn user_event(
        &mut self,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), UserEventError> {
        let limit = USER_EVENT_SIZE_LIMIT;
        let len = name.len() + payload.len();
        if len > limit {
            return Err(UserEventError::TooLarge { len, limit });
        }
        let event = UserEvent {
            ltime: self.event_clock.time(),
            name: name.to_string(),
            payload: payload.to_vec(),
            cc: coalesce,
        };
        let raw = event.encode();
        if raw.len() > limit {
            return Err(UserEventError::TooLarge {
                len: raw.len(),
                limit,
            });
        }
        self.event_clock.increment();
        if self.remember_event(event.ltime, &event.name, &event.payload) {
            self.deliver_user_event(event);
        }
        self.queue(Queue::Event, raw);
        Ok(())
    }

    /// The next user event seen for the first time (from a peer, or ours
    /// from [`SerfDelegate::user_event`]), oldest first. Drain it after
    /// every input: at most 1024 wait, older ones are dropped and counted.
    pub fn poll_user_event(&mut self) -> Option<UserEvent> {
        self.user_events.pop_front()
    }

    /// Takes the pending actions (acks, key operations, relays), oldest
    /// first, and empties the list. Call after every input to the core; at
    /// most 1024 wait, later ones are dropped and counted.
    pub fn take_actions(&mut self) -> Vec<SerfAction> {
        std::mem::take(&mut self.actions)
    }

    /// Builds the answer to a key query once the agent has applied the
    /// [`KeyOp`] of a [`SerfAction::Key`].
    ///
    /// `result` is the outcome (`Err` with the text to report, e.g.
    /// [`no_keyring_message`] when encryption is off); `keys` is the
    /// keyring after the operation, primary first (used for list-keys only).
    /// Returns where to send and the user-message payload: a
    /// `messageQueryResponse` whose payload is a type-8 `nodeKeyResponse`
    /// (`Result`, `Message`, base64 `Keys`, base64 `PrimaryKey`), exactly as
    /// Serf's key manager reads it. A list that does not fit
    /// `query_response_size_limit` is cut down, with a message saying so, as
    /// Serf does.
    pub fn key_response(
        &mut self,
        reply: &QueryReply,
        result: Result<(), String>,
        keys: &[Vec<u8>],
    ) -> (SocketAddr, Vec<u8>) {
        let list = reply.name == LIST_KEYS_QUERY;
        let mut resp = KeyResponse {
            result: result.is_ok(),
            message: result.err().unwrap_or_default(),
            keys: Vec::new(),
            primary_key: String::new(),
        };
        if list && resp.result {
            resp.keys = keys.iter().map(|k| STANDARD.encode(k)).collect();
            resp.primary_key = keys.first().map(|k| STANDARD.encode(k)).unwrap_or_default();
        }
        let raw = if list {
            self.fit_key_list(reply, resp)
        } else {
            self.wrap_response(reply, &resp)
        };
        self.counters.queries_answered += 1;
        (reply.to, raw)
    }

    // -------------------------------------------------------------- internals

    fn wrap_response(&self, reply: &QueryReply, resp: &KeyResponse) -> Vec<u8> {
        QueryResponse {
            ltime: reply.ltime,
            id: reply.id,
            from: self.config.node_name.clone(),
            flags: 0,
            payload: resp.encode(),
        }
        .encode()
    }

    /// Serf's list truncation: start with at most limit/25 keys and drop
    /// one at a time until the response fits.
    fn fit_key_list(&self, reply: &QueryReply, mut resp: KeyResponse) -> Vec<u8> {
        let limit = self.config.query_response_size_limit;
        let actual = resp.keys.len();
        let mut i = limit / MIN_ENCODED_KEY_LENGTH;
        loop {
            let raw = self.wrap_response(reply, &resp);
            if raw.len() <= limit || resp.keys.is_empty() {
                return raw;
            }
            resp.keys.truncate(i);
            resp.message =
                format!("truncated key list response, showing first {i} of {actual} keys");
            i = i.saturating_sub(1);
        }
    }

    fn push_action(&mut self, a: SerfAction) {
        if self.actions.len() >= MAX_PENDING_ACTIONS {
            self.counters.dropped += 1;
        } else {
            self.actions.push(a);
        }
    }

    fn queue(&mut self, which: Queue, msg: Vec<u8>) {
        let max = self.config.max_queue_depth;
        let q = match which {
            Queue::Intent => &mut self.intent_queue,
            Queue::Query => &mut self.query_queue,
            Queue::Event => &mut self.event_queue,
        };
        if q.len() >= max {
            self.counters.dropped += 1;
        } else {
            q.queue(None, msg);
        }
    }

    fn rebroadcast(&mut self, which: Queue, raw: &[u8]) {
        if self.config.rebroadcast {
            self.counters.rebroadcasts += 1;
            self.queue(which, raw.to_vec());
        }
    }

    /// Records the latest intent time about another node; true if it is
    /// newer than what we had (so the intent is worth re-broadcasting).
    fn note_intent(&mut self, now: Instant, node: &str, ltime: LamportTime) -> bool {
        if let Some(e) = self.intents.get_mut(node) {
            if ltime > e.0 {
                *e = (ltime, now);
                return true;
            }
            return false;
        }
        if self.intents.len() >= self.config.max_intents {
            let timeout = self.config.recent_intent_timeout;
            self.intents
                .retain(|_, (_, at)| now.saturating_duration_since(*at) <= timeout);
            if self.intents.len() >= self.config.max_intents {
                return false;
            }
        }
        self.intents.insert(node.to_owned(), (ltime, now));
        true
    }

    /// A leave intent about us at `ltime`. While we are not leaving, a newer
    /// one is refuted with a join intent (as Serf does). Returns whether the
    /// intent should be re-broadcast.
    fn leave_about_us(&mut self, ltime: LamportTime) -> bool {
        if ltime <= self.own_status_ltime {
            return false;
        }
        if self.leaving {
            self.own_status_ltime = ltime;
            return true;
        }
        self.counters.refutations += 1;
        self.join_intent();
        false
    }

    /// Witnesses a peer's time `v` on `which` clock, refusing (and counting)
    /// one more than `max_ahead` past it; returns whether it was accepted.
    fn witness_peer(&mut self, which: Clock, v: LamportTime, max_ahead: u64) -> bool {
        let clock = match which {
            Clock::Member => &mut self.clock,
            Clock::Event => &mut self.event_clock,
            Clock::Query => &mut self.query_clock,
        };
        let ok = clock.witness_within(v, max_ahead);
        if !ok {
            self.counters.clock_jumps_rejected += 1;
        }
        ok
    }

    /// Whether we may send to `to` at `now` on behalf of a message from
    /// `from`: free for the sender itself, otherwise one token; a refusal is
    /// counted in `replies_limited`.
    fn reply_allowed(&mut self, now: Instant, from: SocketAddr, to: SocketAddr) -> bool {
        if to == from {
            return true;
        }
        let cfg = self.config.reply_limit;
        let bucket = self
            .reply_bucket
            .get_or_insert_with(|| TokenBucket::new(&cfg, now));
        let ok = bucket.try_take(now, 1);
        if !ok {
            self.counters.replies_limited += 1;
        }
        ok
    }

    fn handle_message(&mut self, now: Instant, from: SocketAddr, msg: &[u8]) {
        let Some(&t) = msg.first() else {
            self.counters.ignored += 1;
            return;
        };
        let Ok(ty) = MessageType::try_from(t) else {
            self.counters.unknown_type += 1;
            return;
        };
        if let Some(c) = self.counters.received.get_mut(usize::from(t)) {
            *c += 1;
        }
        let decoded = match Message::decode(msg) {
            Ok(m) => m,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        debug_assert_eq!(decoded.message_type(), ty);
        match decoded {
            Message::Leave(m) => self.handle_leave(now, &m, msg),
            Message::Join(m) => self.handle_join(now, &m, msg),
            Message::UserEvent(m) => self.handle_user_event(m, msg),
            Message::Query(q) => self.handle_query(now, from, q, msg, false),
            Message::Relay(r) => self.handle_relay(now, from, r),
            Message::QueryResponse(r) => {
                if !self.queries.on_response(r) {
                    self.counters.ignored += 1;
                }
            }
            Message::PushPull(_)
            | Message::ConflictResponse(_)
            | Message::KeyRequest(_)
            | Message::KeyResponse(_) => self.counters.ignored += 1,
        }
    }

    fn handle_leave(&mut self, now: Instant, m: &Leave, raw: &[u8]) {
        if !self.witness_peer(Clock::Member, m.ltime, self.config.max_clock_jump) {
            return;
        }
        let again = if m.node == self.config.node_name {
            self.leave_about_us(m.ltime)
        } else {
            self.note_intent(now, &m.node, m.ltime)
        };
        if again {
            self.rebroadcast(Queue::Intent, raw);
        }
    }

    fn handle_join(&mut self, now: Instant, m: &Join, raw: &[u8]) {
        if !self.witness_peer(Clock::Member, m.ltime, self.config.max_clock_jump) {
            return;
        }
        let again = if m.node == self.config.node_name {
            let newer = m.ltime > self.own_status_ltime;
            if newer {
                self.own_status_ltime = m.ltime;
            }
            newer
        } else {
            self.note_intent(now, &m.node, m.ltime)
        };
        if again {
            self.rebroadcast(Queue::Intent, raw);
        }
    }

    /// Witnesses an event time and records the event; true if it is new.
    fn remember_event(&mut self, ltime: LamportTime, name: &str, payload: &[u8]) -> bool {
        if !self.witness_peer(Clock::Event, ltime, self.config.max_clock_jump) {
            return false;
        }
        if self.events_seen.too_old(ltime, self.event_clock.time()) {
            return false;
        }
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        payload.hash(&mut h);
        self.events_seen.insert(ltime, h.finish())
    }

    fn handle_user_event(&mut self, m: UserEvent, raw: &[u8]) {
        if self.remember_event(m.ltime, &m.name, &m.payload) {
            self.rebroadcast(Queue::Event, raw);
            self.deliver_user_event(m);
        }
    }

    fn deliver_user_event(&mut self, event: UserEvent) {
        if self.user_events.len() >= MAX_PENDING_USER_EVENTS {
            self.user_events.pop_front();
            self.counters.user_events_dropped += 1;
        }
        self.counters.user_events += 1;
        self.user_events.push_back(event);
    }

    fn handle_relay(&mut self, now: Instant, from: SocketAddr, r: Relay) {
        if !self.config.relay {
            self.counters.ignored += 1;
            return;
        }
        match r.header.dest_addr() {
            Ok(to) => {
                if !self.reply_allowed(now, from, to) {
                    return;
                }
                self.counters.relayed += 1;
                self.push_action(SerfAction::Send {
                    to,
                    payload: r.inner,
                });
            }
            Err(_) => self.counters.malformed += 1,
        }
    }

    /// Serf's `shouldProcessQuery`: every filter must pass; a filter that
    /// cannot be decoded (or a regex that does not compile) fails.
    fn should_process(&mut self, filters: &[Vec<u8>]) -> bool {
        for f in filters {
            let pass = match Filter::decode(f) {
                Ok(Filter::Nodes(nodes)) => nodes.contains(&self.config.node_name),
                Ok(Filter::Tag { tag, expr }) => {
                    let value = self.config.tags.get(&tag).map_or("", String::as_str);
                    match RegexBuilder::new(&expr).size_limit(1 << 20).build() {
                        Ok(re) => re.is_match(value),
                        Err(_) => false,
                    }
                }
                Err(_) => {
                    self.counters.malformed += 1;
                    false
                }
            };
            if !pass {
                return false;
            }
        }
        true
    }

    /// A query from `from`; `local`: one of ours (already queued for gossip).
    fn handle_query(&mut self, now: Instant, from: SocketAddr, q: Query, raw: &[u8], local: bool) {
        if !self.witness_peer(Clock::Query, q.ltime, self.config.max_clock_jump) {
            return;
        }
        if self.queries_seen.too_old(q.ltime, self.query_clock.time()) {
            self.counters.queries_too_old += 1;
            return;
        }
        if !self.queries_seen.insert(q.ltime, u64::from(q.id)) {
            self.counters.queries_duplicate += 1;
            return;
        }
        if !q.no_broadcast() && !local {
            self.rebroadcast(Queue::Query, raw);
        }
        if !self.should_process(&q.filters) {
            self.counters.queries_filtered_out += 1;
            return;
        }
        let Ok(to) = q.reply_addr() else {
            self.counters.malformed += 1;
            return;
        };
        let key_query = matches!(
            q.name.as_str(),
            LIST_KEYS_QUERY | INSTALL_KEY_QUERY | USE_KEY_QUERY | REMOVE_KEY_QUERY
        );
        if (q.ack() || key_query) && !self.reply_allowed(now, from, to) {
            return;
        }
        if q.ack() {
            let ack = QueryResponse {
                ltime: q.ltime,
                id: q.id,
                from: self.config.node_name.clone(),
                flags: QUERY_FLAG_ACK,
                payload: Vec::new(),
            };
            self.counters.acks_sent += 1;
            let payload = ack.encode();
            if q.relay_factor > 0 && !local {
                self.queries
                    .relay_later(q.relay_factor, to, payload.clone(), q.id);
            }
            self.push_action(SerfAction::Send { to, payload });
        }
        let reply = QueryReply {
            ltime: q.ltime,
            id: q.id,
            to,
            source_node: q.source_node.clone(),
            name: q.name.clone(),
            deadline: now.checked_add(q.timeout_duration()),
        };
        if !q.name.starts_with(INTERNAL_QUERY_PREFIX) {
            self.queries.on_incoming(reply, q.payload, q.relay_factor);
            return;
        }
        // Serf reads the key request after the payload's type byte without
        // checking that byte.
        let key = || KeyRequest::decode_body(q.payload.get(1..).unwrap_or(&[]));
        let op = match q.name.as_str() {
            PING_QUERY => {
                self.counters.pings += 1;
                return;
            }
            LIST_KEYS_QUERY => Ok(KeyOp::List),
            INSTALL_KEY_QUERY => key().map(|k| KeyOp::Install(k.key)),
            USE_KEY_QUERY => key().map(|k| KeyOp::Use(k.key)),
            REMOVE_KEY_QUERY => key().map(|k| KeyOp::Remove(k.key)),
            _ => {
                self.counters.queries_ignored += 1;
                return;
            }
        };
        match op {
            Ok(op) => {
                self.counters.key_queries += 1;
                self.push_action(SerfAction::Key { op, reply });
            }
            Err(e) => {
                // Serf answers a key request it cannot decode with a failure.
                self.counters.malformed += 1;
                let (to, payload) = self.key_response(
                    &reply,
                    Err(format!("Failed to decode key request: {e}")),
                    &[],
                );
                self.push_action(SerfAction::Send { to, payload });
            }
        }
    }

    fn merge_state(&mut self, state: &[u8]) {
        let pp = match PushPull::decode(state) {
            Ok(pp) => pp,
            Err(_) => {
                self.counters.remote_states_malformed += 1;
                return;
            }
        };
        // The first state may move our clocks far (catching up with the
        // cluster), later ones only within the window; all-or-nothing.
        let max_ahead = if self.clocks_synced {
            self.config.max_clock_jump
        } else {
            u64::MAX / 2
        };
        let within =
            |clock: &LamportClock, v: LamportTime| v <= clock.time().saturating_add(max_ahead);
        let status_max = pp.status_ltimes.values().max().copied().unwrap_or(0);
        if !within(&self.clock, pp.ltime.max(status_max.saturating_add(1)))
            || !within(&self.event_clock, pp.event_ltime)
            || !within(&self.query_clock, pp.query_ltime)
        {
            self.counters.clock_jumps_rejected += 1;
            return;
        }
        self.counters.remote_states += 1;
        self.clocks_synced = true;
        // The peer has not sent anything at its current times yet.
        if pp.ltime > 0 {
            self.clock.witness(pp.ltime - 1);
        }
        if pp.event_ltime > 0 {
            self.event_clock.witness(pp.event_ltime - 1);
        }
        if pp.query_ltime > 0 {
            self.query_clock.witness(pp.query_ltime - 1);
        }
        // A left member's leave came after its last status time.
        for name in &pp.left_members {
            let ltime = pp
                .status_ltimes
                .get(name)
                .copied()
                .unwrap_or(0)
                .saturating_add(1);
            self.clock.witness(ltime);
            if *name == self.config.node_name {
                self.leave_about_us(ltime);
            }
        }
        for (name, &ltime) in &pp.status_ltimes {
            if pp.left_members.contains(name) {
                continue;
            }
            self.clock.witness(ltime);
            if *name == self.config.node_name {
                self.own_status_ltime = self.own_status_ltime.max(ltime);
            }
        }
        for events in pp.events.iter().flatten() {
            for e in &events.events {
                self.remember_event(events.ltime, &e.name, &e.payload);
            }
        }
    }
}

impl Delegate for SerfDelegate {
    /// Handles a Serf message: witnesses its Lamport time, re-broadcasts it
    /// if it is new, and queues [`SerfAction`]s (acks, key operations,
    /// relays). Anything else is counted and dropped.
    fn notify_msg(&mut self, now: Instant, from: SocketAddr, msg: &[u8]) {
        self.handle_message(now, from, msg);
    }

    /// Serf's queues, in Serf's order: intents, then queries, then events,
    /// each within what the previous ones left of `limit`.
    fn get_broadcasts(&mut self, overhead: usize, limit: usize, num_nodes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for q in [
            &mut self.intent_queue,
            &mut self.query_queue,
            &mut self.event_queue,
        ] {
            let used: usize = out.iter().map(|m: &Vec<u8>| m.len() + overhead).sum();
            let Some(left) = limit.checked_sub(used) else {
                break;
            };
            out.extend(q.get_broadcasts(overhead, left, num_nodes));
        }
        out
    }

    /// Empty: Serf only merges remote state when there is some, so sending
    /// none is safe, and we keep no Serf member table to send.
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        Vec::new()
    }

    /// Witnesses the Lamport times in a Serf push/pull state (and refutes a
    /// claim that we left, while we are not leaving). Malformed state is
    /// counted and ignored.
    fn merge_remote_state(&mut self, _now: Instant, state: &[u8], _join: bool) {
        self.merge_state(state);
    }
}
