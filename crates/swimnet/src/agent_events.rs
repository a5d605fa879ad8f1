//! The agent's events, one model for every node kind: member changes (from
//! the core's [`Event`]s), Serf user events and queries, NetworkDB table
//! changes and this node's network attachments. The driver publishes each
//! one through an [`EventHub`]: on a bounded broadcast channel read by
//! `GET /v1/events` and table watches (a subscriber that falls behind is
//! told it lagged, never waited for), and to the event handlers' bounded
//! queue ([`crate::event_handler`]).
//!
//! The JSON of each event ([`EventView`]) is what `GET /v1/events` streams
//! and what `swimnet monitor` prints; the README documents it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde::{Deserialize, Serialize};
use swimnet_core::{Event, Node, NodeState};
use swimnet_networkdb::{ChangeOrigin, TableChange};
use tokio::sync::{broadcast, mpsc};

use crate::api::{member_view, MemberView};

/// Events buffered per subscriber; one further behind is dropped.
pub const EVENT_BUFFER: usize = 1024;

/// Most `GET /v1/events` streams open at once; more are answered 503.
pub const MAX_EVENT_STREAMS: usize = 32;

/// Every event type, as named in `type` fields, handler filters and
/// `SWIMNET_EVENT`.
pub const EVENT_TYPES: &[&str] = &[
    "member-join",
    "member-leave",
    "member-failed",
    "member-update",
    "member-reap",
    "user",
    "query",
    "table-create",
    "table-update",
    "table-delete",
    "network-attach",
    "network-detach",
];

/// One event of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// A member joined, left, failed, changed its metadata or was reaped.
    Member {
        /// Which of the five (`member-join` ...).
        kind: MemberKind,
        /// The member as the event reported it.
        node: Node,
    },
    /// A Serf user event seen for the first time.
    User {
        /// Event name.
        name: String,
        /// Serf's event clock time.
        ltime: u64,
        /// Payload.
        payload: Vec<u8>,
        /// May be coalesced with later events of the same name.
        coalesce: bool,
    },
    /// A Serf query to this node, answered with [`crate::commands::Command::RespondQuery`].
    Query {
        /// The answer handle.
        id: u64,
        /// Query name.
        name: String,
        /// Serf's query clock time.
        ltime: u64,
        /// Payload.
        payload: Vec<u8>,
    },
    /// A NetworkDB table entry was created, updated or deleted.
    Table(TableChange),
    /// A node (this one or a peer) attached to or detached from a
    /// NetworkDB network.
    Network {
        /// Attached (`true`) or detached.
        attached: bool,
        /// Network ID.
        network: String,
        /// The node.
        node: String,
        /// Through this agent's API, or learned from a peer.
        origin: ChangeOrigin,
    },
}

/// The five member events, as Serf names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// `member-join`.
    Join,
    /// `member-leave`.
    Leave,
    /// `member-failed`.
    Failed,
    /// `member-update`.
    Update,
    /// `member-reap`.
    Reap,
}

impl AgentEvent {
    /// The event the agent reports for a core event, if any (suspicions,
    /// refutations and join results are only logged).
    pub fn from_core(e: &Event) -> Option<AgentEvent> {
        let (kind, node) = match e {
            Event::Join(n) => (MemberKind::Join, n),
            Event::Update(n) => (MemberKind::Update, n),
            Event::Leave(n) if n.state == NodeState::Left => (MemberKind::Leave, n),
            Event::Leave(n) => (MemberKind::Failed, n),
            Event::Reap(n) => (MemberKind::Reap, n),
            _ => return None,
        };
        Some(AgentEvent::Member {
            kind,
            node: node.clone(),
        })
    }

    /// The event for a table change; `None` for a change that shows
    /// nothing (no value before or after).
    pub fn from_table_change(c: TableChange) -> Option<AgentEvent> {
        (c.prev.is_some() || c.value.is_some()).then_some(AgentEvent::Table(c))
    }

    /// The event's type (one of [`EVENT_TYPES`]).
    pub fn kind(&self) -> &'static str {
        match self {
            AgentEvent::Member { kind, .. } => match kind {
                MemberKind::Join => "member-join",
                MemberKind::Leave => "member-leave",
                MemberKind::Failed => "member-failed",
                MemberKind::Update => "member-update",
                MemberKind::Reap => "member-reap",
            },
            AgentEvent::User { .. } => "user",
            AgentEvent::Query { .. } => "query",
            AgentEvent::Table(c) => match (&c.prev, &c.value) {
                (None, _) => "table-create",
                (Some(_), Some(_)) => "table-update",
                (Some(_), None) => "table-delete",
            },
            AgentEvent::Network { attached: true, .. } => "network-attach",
            AgentEvent::Network { .. } => "network-detach",
        }
    }

    /// The NetworkDB network the event is about, if any.
    pub fn network(&self) -> Option<&str> {
        match self {
            AgentEvent::Table(c) => Some(&c.network_id),
            AgentEvent::Network { network, .. } => Some(network),
            _ => None,
        }
    }

    /// The user event's or query's name, if it is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            AgentEvent::User { name, .. } | AgentEvent::Query { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// An event as published: its number and wall-clock time with it.
#[derive(Debug, Clone)]
pub struct Published {
    /// Counts up from 1 for each event the agent publishes, so a gap shows
    /// a subscriber what it missed.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when it was published.
    pub unix_ms: u64,
    /// The event.
    pub event: AgentEvent,
}

/// One line of `GET /v1/events`: the `type`, then the fields of that type
/// (absent ones are left out). Byte strings are base64.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventView {
    /// One of [`EVENT_TYPES`], or `lagged` (the last line of a stream that
    /// fell behind).
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's number ([`Published::seq`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub time_ms: u64,
    /// `member-*`: the member, as `GET /v1/members` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberView>,
    /// `user`, `query`: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `user`, `query`: Serf's Lamport time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ltime: Option<u64>,
    /// `query`: the handle a response is sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// `user`, `query`: the payload (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// `user`: whether Serf may coalesce it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<bool>,
    /// `table-*`, `network-*`: the network ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `table-*`: the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// `table-*`: the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `table-create`, `table-update`: the value now (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `table-update`, `table-delete`: the value before (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// `table-*`, `network-*`: `local` (through this agent's API) or
    /// `remote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// `network-*`: the node that attached or detached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `lagged`: how many events this stream missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
    /// `lagged`: what happened and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `local` or `remote`.
fn origin_name(o: ChangeOrigin) -> &'static str {
    match o {
        ChangeOrigin::Local => "local",
        ChangeOrigin::Remote => "remote",
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Standard base64, as the API writes byte strings.
pub fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

impl EventView {
    /// The JSON view of a published event.
    pub fn of(p: &Published) -> EventView {
        let mut v = EventView {
            kind: p.event.kind().to_string(),
            seq: p.seq,
            time_ms: p.unix_ms,
            ..EventView::default()
        };
        match &p.event {
            AgentEvent::Member { node, .. } => v.member = Some(member_view(node)),
            AgentEvent::User {
                name,
                ltime,
                payload,
                coalesce,
            } => {
                v.name = Some(name.clone());
                v.ltime = Some(*ltime);
                v.payload = Some(b64(payload));
                v.coalesce = Some(*coalesce);
            }
            AgentEvent::Query {
                id,
                name,
                ltime,
                payload,
            } => {
                v.id = Some(*id);
                v.name = Some(name.clone());
                v.ltime = Some(*ltime);
                v.payload = Some(b64(payload));
            }
            AgentEvent::Table(c) => {
                v.network = Some(c.network_id.clone());
                v.table = Some(c.table.clone());
                v.key = Some(c.key.clone());
                v.value = c.value.as_deref().map(b64);
                v.prev = c.prev.as_deref().map(b64);
                v.origin = Some(origin_name(c.origin).into());
            }
            AgentEvent::Network {
                network,
                node,
                origin,
                ..
            } => {
                v.network = Some(network.clone());
                v.node = Some(node.clone());
                v.origin = Some(origin_name(*origin).into());
            }
        }
        v
    }

    /// The last line of a stream that fell `missed` events behind.
    pub fn lagged(missed: u64) -> EventView {
        EventView {
            kind: "lagged".into(),
            missed: Some(missed),
            error: Some(format!(
                "this event stream fell behind and missed {missed} events; connect again"
            )),
            ..EventView::default()
        }
    }
}

/// Which events a handler or a stream wants: Serf's filter syntax,
/// comma-separated — an event type (`member-join`), a group of them
/// (`member`, `table`, `network`), `user:NAME` or `query:NAME` for one
/// name, or `*` for everything. An empty filter takes everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `(type or group, name)`; empty: everything.
    rules: Vec<(String, Option<String>)>,
}

impl EventFilter {
    /// Parses `member-join,user:deploy`; the error names the bad part and
    /// the types there are.
    pub fn parse(text: &str) -> Result<EventFilter, String> {
        let mut rules = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "*" {
                return Ok(EventFilter::default());
            }
            let (kind, name) = match part.split_once(':') {
                Some((k @ ("user" | "query"), n)) if !n.is_empty() => (k, Some(n.to_string())),
                Some(_) => {
                    return Err(format!(
                        "event filter {part:?}: only user:NAME and query:NAME take a name"
                    ))
                }
                None => (part, None),
            };
            let known =
                EVENT_TYPES.contains(&kind) || matches!(kind, "member" | "table" | "network");
            if !known {
                return Err(format!(
                    "unknown event type {:?}: use {}, member, table, network, user:NAME, query:NAME or *",
                    crate::escape::esc(kind).to_string(),
                    EVENT_TYPES.join(", ")
                ));
            }
            rules.push((kind.to_string(), name));
        }
        Ok(EventFilter { rules })
    }

    /// True when the filter takes `e`.
    pub fn matches(&self, e: &AgentEvent) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let kind = e.kind();
        self.rules.iter().any(|(k, name)| {
            let type_ok = k == kind
                || kind
                    .strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.starts_with('-'));
            type_ok && name.as_deref().is_none_or(|n| e.name() == Some(n))
        })
    }
}

/// What the event machinery counted, shown under `"events"` in
/// `GET /v1/stats`.
#[derive(Debug, Default, Serialize)]
pub struct EventCounters {
    /// Events published.
    pub published: AtomicU64,
    /// `GET /v1/events` streams open now.
    pub streams_open: AtomicU64,
    /// Streams refused because [`MAX_EVENT_STREAMS`] were open.
    pub streams_refused: AtomicU64,
    /// `GET /v1/events` streams ended because they fell behind.
    pub streams_lagged: AtomicU64,
    /// Handler invocations started.
    pub handler_runs: AtomicU64,
    /// Invocations that exited non-zero or could not start.
    pub handler_failures: AtomicU64,
    /// Invocations killed at the handler timeout.
    pub handler_timeouts: AtomicU64,
    /// Invocations whose output went over the cap (the rest was dropped).
    pub handler_output_truncated: AtomicU64,
    /// Events not handed to the handlers because their queue was full.
    pub handler_queue_dropped: AtomicU64,
}

/// What a handler is told about this node: `SERF_SELF_NAME`,
/// `SERF_SELF_ROLE` and `SERF_TAG_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfInfo {
    /// Our node name.
    pub name: String,
    /// Our tags.
    pub tags: BTreeMap<String, String>,
}

/// One event for the handler worker.
#[derive(Debug, Clone)]
pub struct HandlerJob {
    /// The event.
    pub event: AgentEvent,
    /// This node as it was when the event was published.
    pub me: SelfInfo,
}

/// Where the driver publishes events: the broadcast channel and the
/// handlers' queue. Publishing never waits.
#[derive(Debug)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Published>>,
    handlers: Option<mpsc::Sender<HandlerJob>>,
    counters: Arc<EventCounters>,
    seq: u64,
    /// When a full handler queue was last logged (at most once a second).
    last_drop_log: Option<Instant>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new(Arc::new(EventCounters::default()), None)
    }
}

impl EventHub {
    /// A hub counting into `counters` that hands events to `handlers`
    /// when given (see [`crate::event_handler::spawn`]).
    pub fn new(counters: Arc<EventCounters>, handlers: Option<mpsc::Sender<HandlerJob>>) -> Self {
        EventHub {
            tx: broadcast::channel(EVENT_BUFFER).0,
            handlers,
            counters,
            seq: 0,
            last_drop_log: None,
        }
    }

    /// A subscription to every event published after this call.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Publishes `event` to subscribers and, when handlers are configured,
    /// queues it for them with `me` (called only then). A full handler
    /// queue drops the event for the handlers, counted and logged.
    pub fn publish(&mut self, event: AgentEvent, me: impl FnOnce() -> SelfInfo) {
        self.seq += 1;
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        if let Some(q) = &self.handlers {
            let job = HandlerJob {
                event: event.clone(),
                me: me(),
            };
            if q.try_send(job).is_err() {
                let dropped = self
                    .counters
                    .handler_queue_dropped
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                let now = Instant::now();
                if self
                    .last_drop_log
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                {
                    self.last_drop_log = Some(now);
                    tracing::warn!(
                        event = event.kind(),
                        dropped_total = dropped,
                        "event handlers are behind: their queue is full, event not handled"
                    );
                }
            }
        }
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // No subscriber is fine; a full buffer drops the oldest and the
        // lagging receivers learn it.
        let _ = self.tx.send(Arc::new(Published {
            seq: self.seq,
            unix_ms,
            event,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, state: NodeState) -> Node {
        Node {
            name: name.into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            meta: Vec::new(),
            vsn: [1, 5, 2, 2, 5, 4],
            incarnation: 3,
            state,
        }
    }

    fn change(prev: Option<&[u8]>, value: Option<&[u8]>) -> TableChange {
        TableChange {
            network_id: "n1".into(),
            table: "t".into(),
            key: "k".into(),
            value: value.map(<[u8]>::to_vec),
            prev: prev.map(<[u8]>::to_vec),
            origin: ChangeOrigin::Remote,
        }
    }

    #[test]
    fn core_events_map_to_serf_member_events() {
        let kind = |e: Event| AgentEvent::from_core(&e).map(|a| a.kind());
        assert_eq!(
            kind(Event::Join(node("a", NodeState::Alive))),
            Some("member-join")
        );
        assert_eq!(
            kind(Event::Update(node("a", NodeState::Alive))),
            Some("member-update")
        );
        assert_eq!(
            kind(Event::Leave(node("a", NodeState::Left))),
            Some("member-leave")
        );
        assert_eq!(
            kind(Event::Leave(node("a", NodeState::Dead))),
            Some("member-failed")
        );
        assert_eq!(
            kind(Event::Reap(node("a", NodeState::Dead))),
            Some("member-reap")
        );
        assert_eq!(kind(Event::LeaveComplete { timed_out: false }), None);
        assert_eq!(kind(Event::Refuted { incarnation: 2 }), None);
    }

    #[test]
    fn table_changes_map_to_create_update_delete() {
        let kind = |c| AgentEvent::from_table_change(c).map(|a| a.kind());
        assert_eq!(kind(change(None, Some(b"v"))), Some("table-create"));
        assert_eq!(kind(change(Some(b"u"), Some(b"v"))), Some("table-update"));
        assert_eq!(kind(change(Some(b"u"), None)), Some("table-delete"));
        assert_eq!(kind(change(None, None)), None);
    }

    #[test]
    fn filters_take_types_groups_and_names() {
        let join = AgentEvent::from_core(&Event::Join(node("a", NodeState::Alive))).unwrap();
        let user = |name: &str| AgentEvent::User {
            name: name.into(),
            ltime: 1,
            payload: Vec::new(),
            coalesce: false,
        };
        let table = AgentEvent::from_table_change(change(None, Some(b"v"))).unwrap();
        let f = |t: &str| EventFilter::parse(t).unwrap();
        assert!(f("").matches(&join) && f("*").matches(&table));
        assert!(f("member-join").matches(&join));
        assert!(!f("member-failed").matches(&join));
        assert!(f("member").matches(&join) && !f("member").matches(&table));
        assert!(f("table").matches(&table) && f("table-create").matches(&table));
        assert!(f("user").matches(&user("deploy")));
        assert!(f("user:deploy").matches(&user("deploy")));
        assert!(!f("user:deploy").matches(&user("other")));
        assert!(f("member-failed, user:deploy").matches(&user("deploy")));
        assert!(EventFilter::parse("member-joined").is_err());
        assert!(EventFilter::parse("mem").is_err());
        assert!(EventFilter::parse("member-join:x").is_err());
        assert!(EventFilter::parse("user:").is_err());
    }

    #[test]
    fn views_carry_the_fields_of_their_type() {
        let publish = |event| Published {
            seq: 7,
            unix_ms: 1000,
            event,
        };
        let v = EventView::of(&publish(
            AgentEvent::from_core(&Event::Leave(node("a", NodeState::Dead))).unwrap(),
        ));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["type"], "member-failed");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["member"]["name"], "a");
        assert_eq!(json["member"]["status"], "failed");
        assert!(json.get("network").is_none());
        let v = EventView::of(&publish(
            AgentEvent::from_table_change(change(Some(b"u"), Some(b"v"))).unwrap(),
        ));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["type"], "table-update");
        assert_eq!(json["value"], b64(b"v"));
        assert_eq!(json["prev"], b64(b"u"));
        assert_eq!(json["origin"], "remote");
        let back: EventView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[tokio::test]
    async fn a_full_handler_queue_drops_and_counts_without_waiting() {
        let counters = Arc::new(EventCounters::default());
        let (tx, mut rx) = mpsc::channel(2);
        let mut hub = EventHub::new(counters.clone(), Some(tx));
        let mut sub = hub.subscribe();
        for i in 0..5 {
            hub.publish(
                AgentEvent::Network {
                    attached: true,
                    network: format!("n{i}"),
                    node: "me".into(),
                    origin: ChangeOrigin::Local,
                },
                SelfInfo::default,
            );
        }
        assert_eq!(counters.handler_queue_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(counters.published.load(Ordering::Relaxed), 5);
        assert_eq!(rx.recv().await.unwrap().event.network(), Some("n0"));
        let first = sub.recv().await.unwrap();
        assert_eq!((first.seq, first.event.network()), (1, Some("n0")));
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_instead_of_blocking() {
        let mut hub = EventHub::default();
        let mut sub = hub.subscribe();
        for _ in 0..EVENT_BUFFER + 10 {
            hub.publish(
                AgentEvent::Network {
                    attached: false,
                    network: "n".into(),
                    node: "me".into(),
                    origin: ChangeOrigin::Local,
                },
                SelfInfo::default,
            );
        }
        assert!(matches!(
            sub.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
    }
}
