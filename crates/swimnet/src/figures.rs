//! The figures an agent reports about itself, by name: what the driver puts
//! in its [`StatusView`] snapshot besides the core's counters (members by
//! state, queue depths, the layer's own counters), the named lists of every
//! counter the core, NetworkDB, Serf, the driver and the HTTP listeners
//! keep, and which of them count input that a limit dropped or refused.
//! `GET /v1/stats` ([`stats_json`]), `GET /metrics` ([`crate::metrics`]) and
//! `swimnet info` all read these lists, so they show the same figures under
//! the same names.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;
use swimnet_core::wire::msg::MessageType;
use swimnet_core::{NodeState, Stats};
use swimnet_networkdb::NdbStats;
use swimnet_serf::SerfCounters;

use crate::api_server::ApiCounters;
use crate::commands::StatusView;
use crate::driver::DriverStats;

/// Members of the node's table by state, this node included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemberCounts {
    /// Alive.
    pub alive: u64,
    /// Suspect.
    pub suspect: u64,
    /// Declared dead (`failed`, as Serf names it), until reaped.
    pub failed: u64,
    /// Left gracefully, until reaped.
    pub left: u64,
}

impl MemberCounts {
    /// Counts the states in `states` (one per member).
    pub fn of(states: impl Iterator<Item = NodeState>) -> Self {
        let mut c = MemberCounts::default();
        for s in states {
            match s {
                NodeState::Alive => c.alive += 1,
                NodeState::Suspect => c.suspect += 1,
                NodeState::Dead => c.failed += 1,
                NodeState::Left => c.left += 1,
            }
        }
        c
    }

    /// `(status, count)` with the statuses `GET /v1/members` shows.
    pub fn by_status(&self) -> [(&'static str, u64); 4] {
        [
            ("alive", self.alive),
            ("suspect", self.suspect),
            ("failed", self.failed),
            ("left", self.left),
        ]
    }
}

/// One NetworkDB network this node is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkFigures {
    /// Network ID.
    pub network: String,
    /// Entries stored for it (every table, every owner; Docker's
    /// `/networkstats` "entries").
    pub entries: u64,
    /// Table events of ours waiting to be gossiped in it (Docker's "qlen").
    pub queue: u64,
}

/// What the node kind adds to the snapshot ([`crate::agent_node::AgentNode::layer_figures`]).
#[derive(Debug, Clone, Default)]
pub enum LayerFigures {
    /// `--protocol memberlist`: nothing beyond membership.
    #[default]
    Memberlist,
    /// `--protocol serf`.
    Serf {
        /// The Serf delegate's counters.
        counters: SerfCounters,
        /// Serf messages (intents, events, queries) waiting to be gossiped.
        queue: u64,
    },
    /// `--protocol networkdb`.
    NetworkDb {
        /// NetworkDB's counters.
        stats: NdbStats,
        /// The attached networks, sorted by ID.
        networks: Vec<NetworkFigures>,
    },
}

impl LayerFigures {
    /// The `--protocol` value of this node kind.
    pub fn protocol(&self) -> &'static str {
        match self {
            LayerFigures::Memberlist => "memberlist",
            LayerFigures::Serf { .. } => "serf",
            LayerFigures::NetworkDb { .. } => "networkdb",
        }
    }
}

/// One named counter: its name (a field of `GET /v1/stats`), what it
/// counts (the HELP text of its metric) and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    /// Name.
    pub name: &'static str,
    /// What it counts, one line.
    pub help: &'static str,
    /// Value.
    pub value: u64,
}

const fn named(name: &'static str, help: &'static str, value: u64) -> Named {
    Named { name, help, value }
}

/// The memberlist message kinds a datagram carries, which the core counts
/// by kind ([`Stats::received`], [`Stats::sent`]). The others are framing
/// (compound, compressed, encrypted, crc) or travel on streams only
/// (push_pull, err), so their datagram counts stay 0 and are not shown.
pub const DATAGRAM_KINDS: [MessageType; 8] = [
    MessageType::Ping,
    MessageType::IndirectPing,
    MessageType::AckResp,
    MessageType::Suspect,
    MessageType::Alive,
    MessageType::Dead,
    MessageType::User,
    MessageType::NackResp,
];

/// `(kind name, value)` for each of [`DATAGRAM_KINDS`] in `values`
/// (indexed by type code), in code order.
pub fn by_kind(values: &[u64]) -> Vec<(&'static str, u64)> {
    DATAGRAM_KINDS
        .iter()
        .map(|t| (t.name(), values.get(*t as usize).copied().unwrap_or(0)))
        .collect()
}

fn kind_object(values: &[u64]) -> BTreeMap<&'static str, u64> {
    by_kind(values).into_iter().collect()
}

/// The core's counters that are not drops (see [`core_drops`]) and not
/// per kind.
pub fn core_activity(s: &Stats) -> Vec<Named> {
    vec![
        named("packets_in", "Datagrams received", s.packets_in),
        named("bytes_in", "Bytes of the datagrams received", s.bytes_in),
        named("packets_out", "Datagrams sent", s.packets_out),
        named("bytes_out", "Bytes of the datagrams sent", s.bytes_out),
        named(
            "probes_ok",
            "Probes answered (direct, indirect or over TCP)",
            s.probes_ok,
        ),
        named(
            "probes_indirect",
            "Probes answered only after the indirect pings went out",
            s.probes_indirect,
        ),
        named(
            "probes_tcp_rescued",
            "Probes answered only by the TCP fallback ping",
            s.probes_tcp_rescued,
        ),
        named(
            "probes_failed",
            "Probes unanswered (the target became suspect)",
            s.probes_failed,
        ),
        named(
            "pings_refused",
            "TCP pings refused by the target's host",
            s.pings_refused,
        ),
        named(
            "suspicions",
            "Members that became suspect in this node's table",
            s.suspicions,
        ),
        named(
            "refutations",
            "Suspicions or death notices about this node that it refuted",
            s.refutations,
        ),
        named(
            "dead_verdicts",
            "Members declared dead in this node's table (leaves not counted)",
            s.dead_verdicts,
        ),
        named(
            "final_checks",
            "Last checks of suspects before a dead verdict",
            s.final_checks,
        ),
        named(
            "final_checks_answered",
            "Last checks a suspect answered (a dead verdict avoided)",
            s.final_checks_answered,
        ),
        named(
            "refusal_verdicts",
            "Members declared dead after their host refused two TCP pings",
            s.refusal_verdicts,
        ),
        named(
            "push_pulls",
            "Push/pull state exchanges completed",
            s.push_pulls,
        ),
        named(
            "catch_ups",
            "Catch-up push/pulls started for a deep gossip backlog",
            s.catch_ups,
        ),
        named(
            "streams_failed",
            "Streams that failed (decode error, peer error, timeout, a budget)",
            s.streams_failed,
        ),
        named(
            "decrypt_failures",
            "Datagrams and stream messages no key of the keyring could decrypt",
            s.decrypt_failures,
        ),
        named(
            "stream_bytes_scanned",
            "Bytes examined while decoding streams",
            s.stream_bytes_scanned,
        ),
        named(
            "topology_choices",
            "Peer choices made latency-aware",
            s.topology_choices,
        ),
    ]
}

/// The core's counters of input dropped or refused by a limit or a check.
pub fn core_drops(s: &Stats) -> Vec<Named> {
    vec![
        named(
            "packets_dropped",
            "Datagrams dropped: undecryptable, wrong label, CRC mismatch",
            s.packets_dropped,
        ),
        named(
            "messages_malformed",
            "Messages in datagrams that failed to decode",
            s.messages_malformed,
        ),
        named(
            "datagrams_over_budget",
            "Datagrams cut short by their decode budget",
            s.datagrams_over_budget,
        ),
        named(
            "packets_replayed",
            "Encrypted datagrams dropped as replays",
            s.packets_replayed,
        ),
        named(
            "streams_refused",
            "Inbound streams refused over the concurrency limit",
            s.streams_refused,
        ),
        named(
            "streams_refused_per_source",
            "Inbound streams refused over the per-source limit",
            s.streams_refused_per_source,
        ),
        named(
            "streams_over_limit",
            "Streams failed for a message over a stream limit",
            s.streams_over_limit,
        ),
        named(
            "streams_over_budget",
            "Inbound streams closed to keep the inbound memory budget",
            s.streams_over_budget,
        ),
        named(
            "streams_first_bytes_timeout",
            "Inbound streams closed for sending no header in time",
            s.streams_first_bytes_timeout,
        ),
        named(
            "coordinates_rejected",
            "Unusable coordinates in probe acks",
            s.coordinates_rejected,
        ),
        named(
            "alives_invalid",
            "Alive messages with an invalid name, metadata or version",
            s.alives_invalid,
        ),
        named(
            "name_conflicts",
            "Alive claims refused: a live member already holds the name elsewhere",
            s.name_conflicts,
        ),
        named(
            "key_ops_refused",
            "Cluster-wide key operations refused (not encrypted with a key of ours)",
            s.key_ops_refused,
        ),
        named(
            "key_op_answers_dropped",
            "Answers to key operations that no open operation asked for",
            s.key_op_answers_dropped,
        ),
        named(
            "incarnation_jumps_rejected",
            "Claims with an implausible incarnation jump",
            s.incarnation_jumps_rejected,
        ),
        named(
            "refutations_impossible",
            "Accusations that could not be outbid (incarnation at its maximum)",
            s.refutations_impossible,
        ),
        named(
            "members_rejected",
            "New members not added because the table was full",
            s.members_rejected,
        ),
        named(
            "broadcasts_dropped",
            "Queued broadcasts dropped to keep the queue bounded",
            s.broadcasts_dropped,
        ),
        named(
            "replies_limited",
            "Pings left unanswered by the reply limit",
            s.replies_limited,
        ),
        named(
            "relays_rejected",
            "Indirect pings dropped: too many relays pending",
            s.relays_rejected,
        ),
    ]
}

/// The driver's counters that are not drops.
pub fn driver_activity(d: &DriverStats) -> Vec<Named> {
    vec![
        named(
            "stream_errors",
            "Streams that failed in the driver: size cap, deadline, connect or IO error",
            d.stream_errors,
        ),
        named(
            "io_errors",
            "Socket errors (datagram send and receive, accept)",
            d.io_errors,
        ),
    ]
}

/// The driver's counters of refused connections.
pub fn driver_drops(d: &DriverStats) -> Vec<Named> {
    vec![
        named(
            "connections_refused",
            "Inbound gossip connections refused: too many open",
            d.connections_refused,
        ),
        named(
            "connections_not_opened",
            "Outbound gossip connections not opened: too many open",
            d.connections_not_opened,
        ),
    ]
}

/// The HTTP listeners' counters that are not drops.
pub fn api_activity(a: &ApiCounters) -> Vec<Named> {
    let v = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    vec![
        named(
            "connections_served",
            "HTTP connections accepted and served",
            v(&a.connections_served),
        ),
        named("accept_errors", "HTTP accept failures", v(&a.accept_errors)),
    ]
}

/// The HTTP listeners' counters of refused connections and requests.
pub fn api_drops(a: &ApiCounters) -> Vec<Named> {
    let v = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    vec![
        named(
            "connections_refused",
            "HTTP connections refused over the connection cap",
            v(&a.connections_refused),
        ),
        named(
            "connections_idle_closed",
            "HTTP connections closed for sending no request in time",
            v(&a.connections_idle_closed),
        ),
        named(
            "requests_refused",
            "HTTP requests refused by the Host, Origin, token or content-type checks",
            v(&a.requests_refused),
        ),
        named(
            "requests_timed_out",
            "HTTP requests answered 408 after the request timeout",
            v(&a.requests_timed_out),
        ),
    ]
}

/// NetworkDB's counters that are not drops.
pub fn ndb_activity(s: &NdbStats) -> Vec<Named> {
    vec![
        named(
            "table_events_applied",
            "Table events applied (gossip and bulk sync)",
            s.table_events_applied,
        ),
        named(
            "table_events_stale",
            "Table events not newer than what was stored",
            s.table_events_stale,
        ),
        named(
            "table_events_held",
            "Table events held until their owner's attachment is known",
            s.table_events_held,
        ),
        named(
            "held_released",
            "Held table events later applied",
            s.held_released,
        ),
        named(
            "table_events_relayed",
            "Received table events queued for relaying",
            s.table_events_relayed,
        ),
        named(
            "gossip_packets",
            "Table gossip packets handed to memberlist",
            s.gossip_packets,
        ),
        named(
            "bulk_syncs_sent",
            "Bulk syncs sent (initiated and answers)",
            s.bulk_syncs_sent,
        ),
        named(
            "bulk_syncs_received",
            "Bulk syncs received",
            s.bulk_syncs_received,
        ),
        named(
            "bulk_syncs_completed",
            "Initiated bulk syncs answered in time",
            s.bulk_syncs_completed,
        ),
        named(
            "bulk_sync_timeouts",
            "Initiated bulk syncs given up",
            s.bulk_sync_timeouts,
        ),
        named(
            "backlog_pushes_sent",
            "Backlog pushes sent",
            s.backlog_pushes_sent,
        ),
        named(
            "backlog_events_pushed",
            "Own table events moved into backlog pushes",
            s.backlog_events_pushed,
        ),
        named(
            "backlog_pushes_received",
            "Backlog pushes received",
            s.backlog_pushes_received,
        ),
        named(
            "bootstrap_rejoins",
            "Bootstrap rejoins attempted",
            s.bootstrap_rejoins,
        ),
        named(
            "own_entries_adopted",
            "Newer versions of this node's own entries taken back from peers after a restart",
            s.own_entries_adopted,
        ),
        named(
            "topology_choices",
            "Table gossip targets and bulk-sync partners chosen latency-aware",
            s.topology_choices,
        ),
    ]
}

/// NetworkDB's counters of input dropped by a limit or a check.
pub fn ndb_drops(s: &NdbStats) -> Vec<Named> {
    vec![
        named(
            "held_dropped",
            "Held table events dropped (limit, expiry, owner left)",
            s.held_dropped,
        ),
        named(
            "table_full_drops",
            "Remote creates dropped: the table was full",
            s.table_full_drops,
        ),
        named(
            "decode_errors",
            "NetworkDB messages that failed to decode",
            s.decode_errors,
        ),
        named(
            "changes_dropped",
            "Table changes dropped because nobody polled them",
            s.changes_dropped,
        ),
        named(
            "compounds_too_many_parts",
            "Compounds dropped for holding too many parts",
            s.compounds_too_many_parts,
        ),
        named(
            "clock_far_future",
            "Events dropped for a Lamport time too far ahead",
            s.clock_far_future,
        ),
        named(
            "table_events_over_limits",
            "Remote table events over the key, value or packet limits",
            s.table_events_over_limits,
        ),
        named(
            "table_limit_drops",
            "Remote table events dropped: too many tables in the network",
            s.table_limit_drops,
        ),
        named(
            "entry_limit_drops",
            "Remote table events dropped: the store is full",
            s.entry_limit_drops,
        ),
        named(
            "attachments_unknown_node",
            "Network events about nodes that are not members",
            s.attachments_unknown_node,
        ),
        named(
            "attachment_limit_drops",
            "Network joins dropped by the attachment limits",
            s.attachment_limit_drops,
        ),
        named(
            "relay_queue_drops",
            "Events dropped from full relay queues",
            s.relay_queue_drops,
        ),
        named(
            "bulk_syncs_unknown_sender",
            "Bulk syncs dropped: their sender is not a member",
            s.bulk_syncs_unknown_sender,
        ),
        named(
            "bulk_sync_answers_limited",
            "Unsolicited bulk syncs not answered (answered too recently)",
            s.bulk_sync_answers_limited,
        ),
        named(
            "bulk_syncs_in_datagram",
            "Bulk syncs that came in a datagram and were dropped",
            s.bulk_syncs_in_datagram,
        ),
    ]
}

/// Serf's message kinds by type code (`SerfCounters::received` index).
pub const SERF_KINDS: [&str; 10] = [
    "leave_intent",
    "join_intent",
    "push_pull",
    "user_event",
    "query",
    "query_response",
    "conflict_response",
    "key_request",
    "key_response",
    "relay",
];

/// `(kind, value)` of the Serf messages received, by kind.
pub fn serf_received(c: &SerfCounters) -> Vec<(&'static str, u64)> {
    SERF_KINDS
        .iter()
        .zip(c.received.iter())
        .map(|(k, v)| (*k, *v))
        .collect()
}

/// Serf's counters that are not drops.
pub fn serf_activity(c: &SerfCounters) -> Vec<Named> {
    vec![
        named(
            "ignored",
            "Serf messages with no use here (responses, stray states)",
            c.ignored,
        ),
        named(
            "queries_filtered_out",
            "Queries whose filters exclude this node",
            c.queries_filtered_out,
        ),
        named(
            "queries_ignored",
            "Queries not answered here (user queries, unknown internal ones)",
            c.queries_ignored,
        ),
        named("pings", "Serf ping queries", c.pings),
        named("key_queries", "Key queries carried out", c.key_queries),
        named(
            "queries_answered",
            "Query responses produced",
            c.queries_answered,
        ),
        named("acks_sent", "Query acks produced", c.acks_sent),
        named("relayed", "Relay messages forwarded", c.relayed),
        named(
            "rebroadcasts",
            "Serf messages queued for re-broadcast",
            c.rebroadcasts,
        ),
        named(
            "refutations",
            "Leave intents about this node refuted",
            c.refutations,
        ),
        named("remote_states", "Push/pull states merged", c.remote_states),
        named("user_events", "New user events", c.user_events),
    ]
}

/// Serf's counters of input dropped by a limit or a check.
pub fn serf_drops(c: &SerfCounters) -> Vec<Named> {
    vec![
        named(
            "unknown_type",
            "User messages whose first byte is not a Serf type",
            c.unknown_type,
        ),
        named(
            "malformed",
            "Serf messages that could not be decoded",
            c.malformed,
        ),
        named(
            "queries_duplicate",
            "Queries dropped as duplicates",
            c.queries_duplicate,
        ),
        named(
            "queries_too_old",
            "Queries dropped as older than the dedupe buffer",
            c.queries_too_old,
        ),
        named(
            "dropped",
            "Serf broadcasts or actions dropped: a queue was full",
            c.dropped,
        ),
        named(
            "remote_states_malformed",
            "Push/pull states that could not be decoded",
            c.remote_states_malformed,
        ),
        named(
            "clock_jumps_rejected",
            "Serf messages dropped for a Lamport time too far ahead",
            c.clock_jumps_rejected,
        ),
        named(
            "replies_limited",
            "Queries and relays dropped by the reply limit",
            c.replies_limited,
        ),
        named(
            "user_events_dropped",
            "User events dropped: nobody drained them in time",
            c.user_events_dropped,
        ),
    ]
}

/// Every counter of dropped or refused input, as `(layer, counter)`:
/// layers `core`, `driver`, `api`, and `networkdb` or `serf` by node kind.
pub fn all_drops(v: &StatusView, api: &ApiCounters) -> Vec<(&'static str, Named)> {
    let mut out: Vec<(&'static str, Named)> = Vec::new();
    out.extend(core_drops(&v.stats).into_iter().map(|n| ("core", n)));
    out.extend(driver_drops(&v.driver).into_iter().map(|n| ("driver", n)));
    out.extend(api_drops(api).into_iter().map(|n| ("api", n)));
    match &v.layer {
        LayerFigures::Memberlist => {}
        LayerFigures::Serf { counters, .. } => {
            out.extend(serf_drops(counters).into_iter().map(|n| ("serf", n)))
        }
        LayerFigures::NetworkDb { stats, .. } => {
            out.extend(ndb_drops(stats).into_iter().map(|n| ("networkdb", n)))
        }
    }
    out
}

fn object(lists: &[Vec<Named>]) -> serde_json::Map<String, serde_json::Value> {
    lists
        .iter()
        .flatten()
        .map(|n| (n.name.to_string(), n.value.into()))
        .collect()
}

/// The body of `GET /v1/stats`: identity, members by status, queue
/// depths, and every counter by name (messages and their bytes as objects
/// keyed by message kind); `limits` repeats the counters of dropped or
/// refused input, by layer.
pub fn stats_json(v: &StatusView, api: &ApiCounters) -> serde_json::Value {
    let s = &v.stats;
    let mut stats = object(&[core_activity(s), core_drops(s)]);
    stats.insert(
        "messages_in".into(),
        serde_json::json!(kind_object(&s.messages_in)),
    );
    stats.insert(
        "messages_out".into(),
        serde_json::json!(kind_object(&s.messages_out)),
    );
    stats.insert(
        "message_bytes_in".into(),
        serde_json::json!(kind_object(&s.message_bytes_in)),
    );
    stats.insert(
        "message_bytes_out".into(),
        serde_json::json!(kind_object(&s.message_bytes_out)),
    );
    let mut api_obj = object(&[api_activity(api), api_drops(api)]);
    api_obj.insert(
        "connections_open".into(),
        api.connections_open.load(Ordering::Relaxed).into(),
    );
    let mut body = serde_json::json!({
        "name": v.name,
        "protocol": v.layer.protocol(),
        "incarnation": v.incarnation,
        "health_score": v.health_score,
        "leaving": v.leaving,
        "members": v.members,
        "broadcast_queue": v.broadcast_queue,
        "stats": stats,
        "driver": object(&[driver_activity(&v.driver), driver_drops(&v.driver)]),
        "api": api_obj,
    });
    let mut limits = serde_json::Map::new();
    for (layer, n) in all_drops(v, api) {
        let entry = limits
            .entry(layer)
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        entry[n.name] = n.value.into();
    }
    body["limits"] = limits.into();
    match &v.layer {
        LayerFigures::Memberlist => {}
        LayerFigures::Serf { counters, queue } => {
            let mut o = object(&[serf_activity(counters), serf_drops(counters)]);
            let received: BTreeMap<_, _> = serf_received(counters).into_iter().collect();
            o.insert("received".into(), serde_json::json!(received));
            o.insert("queue".into(), (*queue).into());
            body["serf"] = o.into();
        }
        LayerFigures::NetworkDb { stats, networks } => {
            body["networkdb"] = serde_json::json!({
                "stats": object(&[ndb_activity(stats), ndb_drops(stats)]),
                "networks": networks,
            });
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{ndb, view};

    #[test]
    fn stats_name_every_figure() {
        let v = stats_json(&view(ndb()), &ApiCounters::default());
        assert_eq!(v["protocol"], "networkdb");
        assert_eq!(v["members"]["alive"], 3);
        assert_eq!(v["broadcast_queue"], 9);
        assert_eq!(v["stats"]["messages_in"]["ping"], 7);
        assert_eq!(v["stats"]["messages_in"]["ack"], 0);
        assert_eq!(v["stats"]["message_bytes_out"]["ack"], 420);
        assert_eq!(v["stats"]["messages_in"].as_object().unwrap().len(), 8);
        assert_eq!(v["stats"]["packets_replayed"], 5);
        assert_eq!(v["stats"]["dead_verdicts"], 4);
        assert_eq!(v["driver"]["connections_refused"], 6);
        assert_eq!(v["networkdb"]["stats"]["entry_limit_drops"], 8);
        assert_eq!(v["networkdb"]["networks"][0]["network"], "net-a");
        assert_eq!(v["networkdb"]["networks"][0]["entries"], 12);
        assert!(v.get("serf").is_none());
        assert_eq!(v["limits"]["core"]["packets_replayed"], 5);
        assert_eq!(v["limits"]["networkdb"]["entry_limit_drops"], 8);
        // No unlabelled arrays anywhere.
        fn no_arrays_of_numbers(v: &serde_json::Value) {
            match v {
                serde_json::Value::Array(a) => {
                    assert!(a.iter().all(|x| !x.is_number()), "{v}");
                    a.iter().for_each(no_arrays_of_numbers);
                }
                serde_json::Value::Object(o) => o.values().for_each(no_arrays_of_numbers),
                _ => {}
            }
        }
        no_arrays_of_numbers(&v);
    }

    /// The top-level field names of a struct, from its pretty `Debug`.
    fn fields(pretty_debug: &str) -> Vec<String> {
        pretty_debug
            .lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
            .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
            .collect()
    }

    fn assert_covers(what: &str, debug: String, named: &[Vec<Named>], per_kind: &[&str]) {
        let mut want = fields(&debug);
        want.sort();
        let mut got: Vec<String> = named.iter().flatten().map(|n| n.name.to_string()).collect();
        got.extend(per_kind.iter().map(|s| s.to_string()));
        got.sort();
        assert_eq!(
            got, want,
            "{what}: every counter is reported, under its field name"
        );
    }

    #[test]
    fn every_counter_of_every_layer_is_reported() {
        let s = Stats::default();
        let per_kind = [
            "messages_in",
            "messages_out",
            "message_bytes_in",
            "message_bytes_out",
        ];
        assert_covers(
            "core",
            format!("{s:#?}"),
            &[core_activity(&s), core_drops(&s)],
            &per_kind,
        );
        let n = NdbStats::default();
        assert_covers(
            "networkdb",
            format!("{n:#?}"),
            &[ndb_activity(&n), ndb_drops(&n)],
            &[],
        );
        let c = SerfCounters::default();
        assert_covers(
            "serf",
            format!("{c:#?}"),
            &[serf_activity(&c), serf_drops(&c)],
            &["received"],
        );
        let d = DriverStats::default();
        assert_covers(
            "driver",
            format!("{d:#?}"),
            &[driver_activity(&d), driver_drops(&d)],
            &[],
        );
        let a = ApiCounters::default();
        assert_covers(
            "api",
            format!("{a:#?}"),
            &[api_activity(&a), api_drops(&a)],
            &["connections_open"],
        );
    }

    #[test]
    fn member_counts_map_core_states_to_api_statuses() {
        let c = MemberCounts::of(
            [
                NodeState::Alive,
                NodeState::Alive,
                NodeState::Dead,
                NodeState::Left,
                NodeState::Suspect,
            ]
            .into_iter(),
        );
        assert_eq!(
            c.by_status(),
            [("alive", 2), ("suspect", 1), ("failed", 1), ("left", 1)]
        );
    }

    #[test]
    fn drop_lists_cover_every_layer_without_repeats() {
        let serf = LayerFigures::Serf {
            counters: Default::default(),
            queue: 0,
        };
        for layer in [serf, ndb()] {
            let drops = all_drops(&view(layer), &ApiCounters::default());
            let keys: std::collections::BTreeSet<(&str, &str)> =
                drops.iter().map(|(l, n)| (*l, n.name)).collect();
            assert_eq!(keys.len(), drops.len());
            for layer in ["core", "driver", "api"] {
                assert!(keys.iter().any(|(l, _)| *l == layer));
            }
        }
    }
}
