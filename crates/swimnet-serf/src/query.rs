//! Serf queries (sans-IO): the ones we send, with the acks and responses
//! they collect, and the ones we receive, waiting for the application's
//! answer.
//!
//! A query is a `messageQuery` gossiped through the cluster. Every node
//! that passes its filters (node names, tag regular expressions) sends an
//! ack at once if one was asked for, and its application may send one
//! response before the query's deadline. Acks and responses are
//! `messageQueryResponse`s sent straight to the asker's address as user
//! packets. The asker keeps the query open until its timeout (Serf's
//! default: `GossipInterval * 16 * ceil(log10(N + 1))`), counting at most
//! one ack and one response per node and at most as many of each as there
//! were members when it asked.
//!
//! [`QueryBook`] holds that state for a [`crate::SerfDelegate`]; use it
//! through [`crate::SerfNode::query`], [`crate::SerfNode::query_status`],
//! [`crate::SerfNode::respond_query`] and
//! [`crate::SerfNode::start_key_query`]. Everything it holds is bounded
//! (open and finished queries, pending incoming queries, responses per
//! query, payload sizes); what a bound refuses is counted in
//! [`QueryCounters`].

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::delegate::QueryReply;
use crate::lamport::LamportTime;
use crate::messages::{Filter, KeyResponse, MessageType, Query, QueryResponse, SerfMessage};

/// Serf's `QueryTimeoutMult`: the default timeout is this many gossip
/// intervals times `ceil(log10(N + 1))`.
pub const QUERY_TIMEOUT_MULT: u32 = 16;
/// Serf's `QuerySizeLimit`: most bytes of an encoded query we send.
pub const QUERY_SIZE_LIMIT: usize = 1024;
/// Longest timeout accepted for a query we send.
pub const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(600);
/// Most queries of ours open at once; more are refused.
pub const MAX_OPEN_QUERIES: usize = 64;
/// Most finished queries of ours kept for [`QueryBook::status`]; the
/// oldest is forgotten first.
pub const MAX_FINISHED_QUERIES: usize = 64;
/// Most received queries waiting for an answer; the oldest is forgotten
/// first (and counted).
pub const MAX_PENDING_INCOMING: usize = 256;

/// Largest payload of a received query kept for the application (Serf
/// senders stay within 1024 bytes for the whole query by default); larger
/// ones are acked but dropped and counted in
/// [`QueryCounters::incoming_too_large`].
pub const MAX_INCOMING_PAYLOAD: usize = 8 * 1024;

/// Serf's default query timeout for a cluster of `members` nodes.
pub fn default_query_timeout(gossip_interval: Duration, members: usize) -> Duration {
    let n = members as f64 + 1.0;
    let factor = n.log10().ceil().max(1.0) as u32;
    gossip_interval * QUERY_TIMEOUT_MULT * factor
}

/// How to send a query (Serf's `QueryParam`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    /// Only these nodes handle the query (empty: no node filter).
    pub filter_nodes: Vec<String>,
    /// Only nodes whose tag matches each regular expression (unanchored,
    /// RE2 syntax) handle the query.
    pub filter_tags: BTreeMap<String, String>,
    /// Every node that handles the query acks it at once.
    pub request_ack: bool,
    /// How many other nodes each responder asks to relay a copy of its
    /// answer (0: none).
    pub relay_factor: u8,
    /// How long the query stays open; `None`: Serf's default
    /// ([`default_query_timeout`]).
    pub timeout: Option<Duration>,
}

impl QueryParams {
    /// The encoded filters, node filter first. Fails on a tag expression
    /// that does not compile (Serf nodes would drop the query).
    pub fn encode_filters(&self) -> Result<Vec<Vec<u8>>, QueryError> {
        let mut out = Vec::new();
        if !self.filter_nodes.is_empty() {
            out.push(Filter::Nodes(self.filter_nodes.clone()).encode());
        }
        for (tag, expr) in &self.filter_tags {
            regex::RegexBuilder::new(expr)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| QueryError::BadTagFilter {
                    tag: tag.clone(),
                    error: e.to_string(),
                })?;
            out.push(
                Filter::Tag {
                    tag: tag.clone(),
                    expr: expr.clone(),
                }
                .encode(),
            );
        }
        Ok(out)
    }
}

/// Names a query we sent, for [`QueryBook::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryHandle(pub u64);

/// One node's response to a query of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResponse {
    /// The responding node.
    pub from: String,
    /// What it answered.
    pub payload: Vec<u8>,
}

/// A query of ours: what it collected so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryStatus {
    /// Its handle.
    pub handle: QueryHandle,
    /// The query name.
    pub name: String,
    /// Its Lamport time (query clock).
    pub ltime: LamportTime,
    /// Its random id.
    pub id: u32,
    /// When it closes.
    pub deadline: Instant,
    /// Acks were asked for.
    pub ack_requested: bool,
    /// Members (alive or suspect) when it was sent: the most acks, and
    /// the most responses, it accepts.
    pub expected: usize,
    /// Nodes that acked, in arrival order.
    pub acks: Vec<String>,
    /// Responses, in arrival order (one per node).
    pub responses: Vec<NodeResponse>,
    /// The deadline passed (or, for a key query, every member answered):
    /// nothing more is collected.
    pub finished: bool,
}

/// A query we received and passed the filters of, waiting for the
/// application's answer ([`crate::SerfNode::respond_query`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingQuery {
    /// Local id to answer with (not the wire id).
    pub id: u64,
    /// The query name.
    pub name: String,
    /// The query payload.
    pub payload: Vec<u8>,
    /// The asking node.
    pub source_node: String,
    /// The query's Lamport time.
    pub ltime: LamportTime,
    /// Answer before this (the asker stops listening); `None` when too far
    /// away to represent.
    pub deadline: Option<Instant>,
}

/// A query could not be sent or answered (local misuse; nothing changed).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// The encoded query (or response) is over Serf's size limit.
    #[error("{what} is {len} bytes, over the {limit}-byte limit: send a shorter name or payload")]
    TooLarge {
        /// `query` or `response`.
        what: &'static str,
        /// Encoded size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Too many queries of ours are open.
    #[error("{limit} queries are already open: wait for one to finish")]
    TooManyOpen {
        /// [`MAX_OPEN_QUERIES`].
        limit: usize,
    },
    /// The timeout is zero or over [`MAX_QUERY_TIMEOUT`].
    #[error("query timeout {0:?} is out of range (more than 0, at most 10m)")]
    BadTimeout(Duration),
    /// A tag filter's regular expression does not compile.
    #[error("tag filter {tag}: {error}")]
    BadTagFilter {
        /// The tag.
        tag: String,
        /// The regex error.
        error: String,
    },
    /// No pending incoming query has this id (never seen, already
    /// answered, or forgotten).
    #[error("no query {0} is waiting for an answer (already answered, expired or unknown)")]
    UnknownQuery(u64),
    /// The query's deadline passed: the asker no longer listens.
    #[error("query {0} is past its deadline")]
    PastDeadline(u64),
    /// The node is leaving the cluster.
    #[error("the node is leaving the cluster")]
    Leaving,
    /// Names starting with `_serf_` are Serf's internal queries.
    #[error("query name {0:?} starts with {prefix:?}, reserved for Serf's internal queries", prefix = crate::INTERNAL_QUERY_PREFIX)]
    InternalName(String),
}

/// What the query book has seen and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryCounters {
    /// Queries we sent.
    pub sent: u64,
    /// Acks collected.
    pub acks: u64,
    /// Responses collected.
    pub responses: u64,
    /// Acks or responses from a node that had already sent one.
    pub duplicates: u64,
    /// Acks or responses for no query of ours that is open (unknown,
    /// finished, or a wrong id at a known time).
    pub unexpected: u64,
    /// Acks or responses over the query's member count, or a response
    /// payload over the size limit.
    pub over_limit: u64,
    /// Received queries handed to the application.
    pub incoming: u64,
    /// Received queries forgotten unanswered because too many waited.
    pub incoming_dropped: u64,
    /// Received queries dropped for a payload over [`MAX_INCOMING_PAYLOAD`].
    pub incoming_too_large: u64,
    /// Answers sent through [`crate::SerfNode::respond_query`].
    pub answered: u64,
}

#[derive(Debug)]
struct Pending {
    query: IncomingQuery,
    reply: QueryReply,
    relay_factor: u8,
}

/// Key query bookkeeping: which keyring operation a query of ours asks.
#[derive(Debug, Clone)]
struct Outgoing {
    status: QueryStatus,
    /// For key queries: the operation name; the query finishes early
    /// once every member answered (as Serf's key manager does).
    key_op: Option<&'static str>,
}

/// Serf's query state of one node: our open and recently finished
/// queries, and received queries waiting for the application's answer.
#[derive(Debug, Default)]
pub struct QueryBook {
    outgoing: VecDeque<Outgoing>,
    next_handle: u64,
    incoming: VecDeque<Pending>,
    next_incoming: u64,
    incoming_events: VecDeque<IncomingQuery>,
    counters: QueryCounters,
    response_size_limit: usize,
    /// Acks to relay through other members: (relay factor, asker, ack,
    /// salt); drained by the node, which knows the members.
    relays: Vec<(u8, SocketAddr, Vec<u8>, u64)>,
}

impl QueryBook {
    /// An empty book; responses with a payload over `response_size_limit`
    /// bytes are refused (Serf's `QueryResponseSizeLimit`).
    pub fn new(response_size_limit: usize) -> Self {
        QueryBook {
            response_size_limit,
            ..QueryBook::default()
        }
    }

    /// What was seen and refused so far.
    pub fn counters(&self) -> &QueryCounters {
        &self.counters
    }

    /// Queries of ours not finished yet.
    pub fn open(&self) -> usize {
        self.outgoing.iter().filter(|o| !o.status.finished).count()
    }

    /// A query of ours, open or recently finished.
    pub fn status(&self, handle: QueryHandle) -> Option<&QueryStatus> {
        self.outgoing
            .iter()
            .find(|o| o.status.handle == handle)
            .map(|o| &o.status)
    }

    /// The key operation a query of ours asked for, if it is a key query.
    pub fn key_op(&self, handle: QueryHandle) -> Option<&'static str> {
        self.outgoing
            .iter()
            .find(|o| o.status.handle == handle)
            .and_then(|o| o.key_op)
    }

    /// Forgets a finished query of ours (after its results were read).
    pub fn forget(&mut self, handle: QueryHandle) {
        self.outgoing
            .retain(|o| !(o.status.handle == handle && o.status.finished));
    }

    /// The earliest deadline of an open query of ours.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.outgoing
            .iter()
            .filter(|o| !o.status.finished)
            .map(|o| o.status.deadline)
            .min()
    }

    /// Closes every query of ours whose deadline is at or before `now`,
    /// and forgets incoming queries past their deadline.
    pub fn expire(&mut self, now: Instant) {
        for o in &mut self.outgoing {
            if o.status.deadline <= now {
                o.status.finished = true;
            }
        }
        self.incoming
            .retain(|p| p.query.deadline.is_none_or(|d| d > now));
    }

    /// Refuses a new query when too many are open.
    pub(crate) fn check_room(&self) -> Result<(), QueryError> {
        if self.open() >= MAX_OPEN_QUERIES {
            return Err(QueryError::TooManyOpen {
                limit: MAX_OPEN_QUERIES,
            });
        }
        Ok(())
    }

    /// Registers a query of ours (call before it is processed locally, so
    /// that our own ack and answer are collected).
    pub(crate) fn register(
        &mut self,
        q: &Query,
        deadline: Instant,
        expected: usize,
        key_op: Option<&'static str>,
    ) -> QueryHandle {
        self.next_handle += 1;
        let handle = QueryHandle(self.next_handle);
        let finished = self.outgoing.iter().filter(|o| o.status.finished).count();
        if finished >= MAX_FINISHED_QUERIES {
            if let Some(i) = self.outgoing.iter().position(|o| o.status.finished) {
                self.outgoing.remove(i);
            }
        }
        self.counters.sent += 1;
        self.outgoing.push_back(Outgoing {
            status: QueryStatus {
                handle,
                name: q.name.clone(),
                ltime: q.ltime,
                id: q.id,
                deadline,
                ack_requested: q.ack(),
                expected: expected.max(1),
                acks: Vec::new(),
                responses: Vec::new(),
                finished: false,
            },
            key_op,
        });
        handle
    }

    /// Takes an ack or response; false if no open query of ours wanted it
    /// (the caller counts it as ignored).
    pub(crate) fn on_response(&mut self, resp: QueryResponse) -> bool {
        let limit = self.response_size_limit;
        let c = &mut self.counters;
        let Some(o) = self
            .outgoing
            .iter_mut()
            .find(|o| !o.status.finished && o.status.ltime == resp.ltime && o.status.id == resp.id)
        else {
            c.unexpected += 1;
            return false;
        };
        let s = &mut o.status;
        if resp.ack() {
            if s.acks.contains(&resp.from) {
                c.duplicates += 1;
            } else if !s.ack_requested || s.acks.len() >= s.expected {
                c.over_limit += 1;
            } else {
                c.acks += 1;
                s.acks.push(resp.from);
            }
            return true;
        }
        if s.responses.iter().any(|r| r.from == resp.from) {
            c.duplicates += 1;
        } else if s.responses.len() >= s.expected || resp.payload.len() > limit {
            c.over_limit += 1;
        } else {
            c.responses += 1;
            s.responses.push(NodeResponse {
                from: resp.from,
                payload: resp.payload,
            });
            if o.key_op.is_some() && s.responses.len() >= s.expected {
                s.finished = true;
            }
        }
        true
    }

    /// Takes a query that passed our filters: keeps it until answered and
    /// hands it out through [`QueryBook::poll_incoming`].
    pub(crate) fn on_incoming(&mut self, reply: QueryReply, payload: Vec<u8>, relay_factor: u8) {
        if payload.len() > MAX_INCOMING_PAYLOAD {
            self.counters.incoming_too_large += 1;
            return;
        }
        self.next_incoming += 1;
        let query = IncomingQuery {
            id: self.next_incoming,
            name: reply.name.clone(),
            payload,
            source_node: reply.source_node.clone(),
            ltime: reply.ltime,
            deadline: reply.deadline,
        };
        if self.incoming.len() >= MAX_PENDING_INCOMING {
            self.incoming.pop_front();
            self.counters.incoming_dropped += 1;
        }
        if self.incoming_events.len() >= MAX_PENDING_INCOMING {
            self.incoming_events.pop_front();
        }
        self.counters.incoming += 1;
        self.incoming_events.push_back(query.clone());
        self.incoming.push_back(Pending {
            query,
            reply,
            relay_factor,
        });
    }

    /// Asks the node to relay `msg` (an ack for `to`) through
    /// `relay_factor` other members, as Serf relays acks; at most
    /// [`MAX_PENDING_INCOMING`] wait.
    pub(crate) fn relay_later(
        &mut self,
        relay_factor: u8,
        to: SocketAddr,
        msg: Vec<u8>,
        salt: u32,
    ) {
        if self.relays.len() < MAX_PENDING_INCOMING {
            self.relays.push((relay_factor, to, msg, u64::from(salt)));
        }
    }

    /// Takes the acks waiting to be relayed.
    pub(crate) fn take_relays(&mut self) -> Vec<(u8, SocketAddr, Vec<u8>, u64)> {
        std::mem::take(&mut self.relays)
    }

    /// The next received query for the application, oldest first.
    pub fn poll_incoming(&mut self) -> Option<IncomingQuery> {
        self.incoming_events.pop_front()
    }

    /// Builds the answer to pending query `id` from node `from_node` and
    /// forgets the query (one answer per query, as in Serf). Returns the
    /// reply address, the encoded response and the query's relay factor.
    pub(crate) fn respond(
        &mut self,
        now: Instant,
        id: u64,
        from_node: &str,
        payload: &[u8],
    ) -> Result<(SocketAddr, Vec<u8>, u8), QueryError> {
        let i = self
            .incoming
            .iter()
            .position(|p| p.query.id == id)
            .ok_or(QueryError::UnknownQuery(id))?;
        let p = &self.incoming[i];
        if p.query.deadline.is_some_and(|d| d < now) {
            self.incoming.remove(i);
            return Err(QueryError::PastDeadline(id));
        }
        let raw = QueryResponse {
            ltime: p.reply.ltime,
            id: p.reply.id,
            from: from_node.to_string(),
            flags: 0,
            payload: payload.to_vec(),
        }
        .encode();
        if raw.len() > self.response_size_limit {
            return Err(QueryError::TooLarge {
                what: "response",
                len: raw.len(),
                limit: self.response_size_limit,
            });
        }
        let to = p.reply.to;
        let relay_factor = p.relay_factor;
        self.incoming.remove(i);
        self.counters.answered += 1;
        Ok((to, raw, relay_factor))
    }
}

/// The outcome of a cluster-wide key query (Serf's `KeyResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyReport {
    /// `install`, `use`, `remove` or `list`.
    pub op: &'static str,
    /// Members (alive or suspect) when the query was sent.
    pub total: usize,
    /// Nodes that answered.
    pub responded: usize,
    /// Node → why it failed (answers with `Result: false`, or that could
    /// not be decoded).
    pub failures: BTreeMap<String, String>,
    /// Node → warning sent with a success (e.g. a truncated key list).
    pub warnings: BTreeMap<String, String>,
    /// Key (base64) → how many nodes hold it (list only).
    pub keys: BTreeMap<String, usize>,
    /// Primary key (base64) → how many nodes use it (list only).
    pub primary_keys: BTreeMap<String, usize>,
    /// The query closed (deadline, or everybody answered).
    pub finished: bool,
}

impl KeyReport {
    /// Every member answered and none failed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.responded >= self.total
    }

    /// Reads the answers collected by a key query, as Serf's key manager
    /// does (`streamKeyResp`).
    pub fn from_status(op: &'static str, status: &QueryStatus) -> KeyReport {
        let mut r = KeyReport {
            op,
            total: status.expected,
            finished: status.finished,
            ..KeyReport::default()
        };
        for resp in &status.responses {
            r.responded += 1;
            let decoded = match resp.payload.first() {
                Some(&t) if t == MessageType::KeyResponse.code() => {
                    KeyResponse::decode(&resp.payload).map_err(|e| e.to_string())
                }
                _ => Err("invalid key query response type".to_string()),
            };
            match decoded {
                Err(e) => {
                    r.failures.insert(resp.from.clone(), e);
                }
                Ok(k) => {
                    if !k.result {
                        r.failures.insert(resp.from.clone(), k.message.clone());
                    } else if !k.message.is_empty() {
                        r.warnings.insert(resp.from.clone(), k.message.clone());
                    }
                    for key in k.keys {
                        *r.keys.entry(key).or_default() += 1;
                    }
                    if k.result && op == "list" {
                        *r.primary_keys.entry(k.primary_key).or_default() += 1;
                    }
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timeout_follows_serf() {
        let g = Duration::from_millis(200);
        assert_eq!(default_query_timeout(g, 1), g * 16);
        assert_eq!(default_query_timeout(g, 9), g * 16);
        assert_eq!(default_query_timeout(g, 10), g * 32);
        assert_eq!(default_query_timeout(g, 0), g * 16);
    }

    fn resp(ltime: LamportTime, id: u32, from: &str, ack: bool, payload: &[u8]) -> QueryResponse {
        QueryResponse {
            ltime,
            id,
            from: from.into(),
            flags: if ack {
                crate::messages::QUERY_FLAG_ACK
            } else {
                0
            },
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn responses_are_deduplicated_and_bounded() {
        let now = Instant::now();
        let mut b = QueryBook::new(16);
        let q = Query {
            ltime: 5,
            id: 42,
            flags: crate::messages::QUERY_FLAG_ACK,
            ..Query::default()
        };
        let h = b.register(&q, now + Duration::from_secs(1), 2, None);
        assert!(b.on_response(resp(5, 42, "a", true, b"")));
        assert!(b.on_response(resp(5, 42, "a", true, b"")), "duplicate ack");
        assert!(b.on_response(resp(5, 42, "a", false, b"1")));
        assert!(
            b.on_response(resp(5, 42, "a", false, b"2")),
            "duplicate answer"
        );
        assert!(b.on_response(resp(5, 42, "b", false, &[0; 17])), "too big");
        assert!(b.on_response(resp(5, 42, "b", false, b"3")));
        assert!(
            b.on_response(resp(5, 42, "c", false, b"4")),
            "over the member count"
        );
        assert!(!b.on_response(resp(5, 43, "a", false, b"")), "wrong id");
        assert!(!b.on_response(resp(6, 42, "a", false, b"")), "wrong time");
        let st = b.status(h).unwrap();
        assert_eq!(st.acks, vec!["a".to_string()]);
        let from: Vec<&str> = st.responses.iter().map(|r| r.from.as_str()).collect();
        assert_eq!(from, vec!["a", "b"]);
        let c = b.counters();
        assert_eq!((c.duplicates, c.over_limit, c.unexpected), (2, 2, 2));
        b.expire(now + Duration::from_secs(1));
        assert!(b.status(h).unwrap().finished);
        assert!(!b.on_response(resp(5, 42, "d", false, b"")), "closed");
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn finished_queries_and_incoming_queries_are_bounded() {
        let now = Instant::now();
        let mut b = QueryBook::new(1024);
        for i in 0..(MAX_FINISHED_QUERIES + 10) as u32 {
            let q = Query {
                ltime: u64::from(i),
                id: i,
                ..Query::default()
            };
            b.register(&q, now, 1, None);
            b.expire(now);
        }
        assert_eq!(b.outgoing.len(), MAX_FINISHED_QUERIES);
        let reply = |id: u32| QueryReply {
            ltime: 1,
            id,
            to: "127.0.0.1:1".parse().unwrap(),
            source_node: "s".into(),
            name: "q".into(),
            deadline: Some(now + Duration::from_secs(1)),
        };
        for i in 0..(MAX_PENDING_INCOMING + 5) as u32 {
            b.on_incoming(reply(i), Vec::new(), 0);
        }
        assert_eq!(b.incoming.len(), MAX_PENDING_INCOMING);
        assert_eq!(b.counters().incoming_dropped, 5);
        b.on_incoming(reply(1), vec![0; MAX_INCOMING_PAYLOAD + 1], 0);
        assert_eq!(b.counters().incoming_too_large, 1);
        assert_eq!(b.counters().incoming, (MAX_PENDING_INCOMING + 5) as u64);
        assert!(matches!(
            b.respond(now, 1, "me", b""),
            Err(QueryError::UnknownQuery(1))
        ));
        let last = (MAX_PENDING_INCOMING + 5) as u64;
        assert!(matches!(
            b.respond(now, last, "me", &[0; 2000]),
            Err(QueryError::TooLarge { .. })
        ));
        assert!(b.respond(now, last, "me", b"ok").is_ok());
        b.expire(now + Duration::from_secs(2));
        assert!(b.incoming.is_empty(), "past their deadline");
    }

    #[test]
    fn a_bad_tag_regex_is_refused() {
        let mut p = QueryParams::default();
        p.filter_tags.insert("role".into(), "(".into());
        assert!(matches!(
            p.encode_filters(),
            Err(QueryError::BadTagFilter { .. })
        ));
    }
}
