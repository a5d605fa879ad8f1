//! Serf commands of the local API ([`crate::commands::Command::Serf`]):
//! user events, queries and their answers, runtime tags, force-leave,
//! reachability pings, cluster-wide key queries and the recent events
//! list. [`run`] carries one out on a [`SerfNode`]; the other node kinds
//! answer [`not_serf`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use swimnet_serf::{
    KeyOp, KeyReport, QueryHandle, QueryParams, QueryStatus, RecentEvent, SerfNode,
};

/// A Serf command.
#[derive(Debug, Clone)]
pub enum SerfCommand {
    /// Send a user event (`serf event`).
    Event {
        /// Event name.
        name: String,
        /// Payload.
        payload: Vec<u8>,
        /// Receivers may coalesce it with others of the same name.
        coalesce: bool,
    },
    /// Send a user query (`serf query`); answers with its handle.
    Query {
        /// Query name (not starting with `_serf_`).
        name: String,
        /// Payload.
        payload: Vec<u8>,
        /// Filters, acks, relay factor, timeout.
        params: QueryParams,
    },
    /// A `_serf_ping` query with acks from every node; answers with its handle.
    Ping {
        /// Query timeout (`None`: Serf's default).
        timeout: Option<Duration>,
    },
    /// What a query of ours collected; with `forget`, a finished query is
    /// forgotten after this answer.
    Status {
        /// The query.
        handle: QueryHandle,
        /// Forget it once finished.
        forget: bool,
    },
    /// Answer a received query (its id in the recent events).
    Respond {
        /// The [`swimnet_serf::IncomingQuery::id`].
        id: u64,
        /// The answer.
        payload: Vec<u8>,
    },
    /// Set and delete tags at runtime (deletions after the settings).
    Tags {
        /// Tags to set.
        set: BTreeMap<String, String>,
        /// Tags to delete.
        delete: Vec<String>,
    },
    /// Serf's force-leave of a (failed) node.
    ForceLeave {
        /// Node name.
        node: String,
        /// Ask Serf nodes to erase it at once.
        prune: bool,
    },
    /// Start a cluster-wide key query (Serf's `_serf_*-key` queries).
    KeyQuery {
        /// The operation.
        op: KeyOp,
        /// Relay factor of the answers.
        relay_factor: u8,
    },
    /// The outcome so far of a key query; with `forget`, a finished one is
    /// forgotten after this answer.
    KeyReport {
        /// The key query.
        handle: QueryHandle,
        /// Forget it once finished.
        forget: bool,
    },
    /// The Serf layer's counters (messages, queries, limits that bit).
    Counters,
    /// Received user events and queries with a sequence number over `after`.
    Recent {
        /// Last sequence number already seen (0: all).
        after: u64,
    },
}

/// The answer to a [`SerfCommand`].
#[derive(Debug, Clone)]
pub enum SerfReply {
    /// Done.
    Done,
    /// A query was sent.
    Handle(QueryHandle),
    /// A query's collected acks and answers.
    Status(QueryStatus),
    /// Our tags after a change.
    Tags(BTreeMap<String, String>),
    /// A key query's outcome so far.
    KeyReport(KeyReport),
    /// Recent received events, oldest first.
    Recent(Vec<RecentEvent>),
    /// Counters by name.
    Counters(serde_json::Value),
}

/// What node kinds other than Serf answer to every Serf command.
pub fn not_serf(mode: &str) -> String {
    format!(
        "this agent runs --protocol {mode}: Serf events, queries, tags and force-leave need `swimnet agent --protocol serf`"
    )
}

/// Carries out `cmd` on `node` at `now`; errors are one-line messages.
pub fn run(node: &mut SerfNode, now: Instant, cmd: SerfCommand) -> Result<SerfReply, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    match cmd {
        SerfCommand::Event {
            name,
            payload,
            coalesce,
        } => node
            .user_event(&name, &payload, coalesce)
            .map(|()| SerfReply::Done)
            .map_err(|e| err(&e)),
        SerfCommand::Query {
            name,
            payload,
            params,
        } => node
            .query(now, &name, &payload, &params)
            .map(SerfReply::Handle)
            .map_err(|e| err(&e)),
        SerfCommand::Ping { timeout } => node
            .ping_query(now, timeout)
            .map(SerfReply::Handle)
            .map_err(|e| err(&e)),
        SerfCommand::Status { handle, forget } => {
            let st = node
                .query_status(handle)
                .cloned()
                .ok_or_else(|| format!("no query {} is known (finished and read?)", handle.0))?;
            if forget && st.finished {
                node.forget_query(handle);
            }
            Ok(SerfReply::Status(st))
        }
        SerfCommand::Respond { id, payload } => node
            .respond_query(now, id, &payload)
            .map(|()| SerfReply::Done)
            .map_err(|e| err(&e)),
        SerfCommand::Tags { set, delete } => {
            let mut tags = node.serf().tags().clone();
            tags.extend(set);
            for k in &delete {
                tags.remove(k);
            }
            node.set_tags(now, tags).map_err(|e| err(&e))?;
            Ok(SerfReply::Tags(node.serf().tags().clone()))
        }
        SerfCommand::ForceLeave { node: name, prune } => node
            .force_leave(now, &name, prune)
            .map(|()| SerfReply::Done)
            .map_err(|e| err(&e)),
        SerfCommand::KeyQuery { op, relay_factor } => node
            .start_key_query(now, &op, relay_factor, None)
            .map(SerfReply::Handle)
            .map_err(|e| err(&e)),
        SerfCommand::KeyReport { handle, forget } => {
            let r = node
                .key_report(handle)
                .ok_or_else(|| format!("no key query {} is known", handle.0))?;
            if forget && r.finished {
                node.forget_query(handle);
            }
            Ok(SerfReply::KeyReport(r))
        }
        SerfCommand::Counters => Ok(SerfReply::Counters(counters(node))),
        SerfCommand::Recent { after } => Ok(SerfReply::Recent(
            node.recent_events(after).cloned().collect(),
        )),
    }
}

/// The Serf layer's counters by name: messages handled and dropped, the
/// queries we sent and received, and every limit that bit.
fn counters(node: &SerfNode) -> serde_json::Value {
    let c = node.serf().counters();
    let q = node.serf().queries().counters();
    serde_json::json!({
        "messages": {
            "received_by_type": c.received,
            "unknown_type": c.unknown_type,
            "malformed": c.malformed,
            "ignored": c.ignored,
            "clock_jumps_rejected": c.clock_jumps_rejected,
            "replies_limited": c.replies_limited,
            "dropped": c.dropped,
            "relayed": c.relayed,
            "rebroadcasts": c.rebroadcasts,
        },
        "user_events": c.user_events,
        "user_events_dropped": c.user_events_dropped,
        "queries_received": {
            "duplicate": c.queries_duplicate,
            "too_old": c.queries_too_old,
            "filtered_out": c.queries_filtered_out,
            "ignored": c.queries_ignored,
            "pings": c.pings,
            "key_queries": c.key_queries,
            "acks_sent": c.acks_sent,
            "handed_out": q.incoming,
            "dropped_unanswered": q.incoming_dropped,
            "too_large": q.incoming_too_large,
            "answered": q.answered,
        },
        "queries_sent": {
            "sent": q.sent,
            "open": node.serf().queries().open(),
            "acks": q.acks,
            "responses": q.responses,
            "duplicates": q.duplicates,
            "unexpected": q.unexpected,
            "over_limit": q.over_limit,
        },
        "recent_events_kept": node.recent_events(0).count(),
    })
}
