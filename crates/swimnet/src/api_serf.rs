//! The Serf endpoints of the local API (`--protocol serf`): user events,
//! queries (answers streamed as they come), answers to received queries,
//! runtime tags, force-leave, reachability, cluster-wide key queries and
//! the recent received events; and the `GET /v1/members` filters (Serf's
//! anchored regular expressions on status, name and tags). Every endpoint
//! is documented in the README ("Serf commands").

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use swimnet_core::NodeState;
use swimnet_serf::{KeyOp, KeyReport, QueryHandle, QueryParams, QueryStatus, SerfEvent};

use crate::api::{ask, bad, json_line, ApiError, ApiState, MemberView};
use crate::commands::Command;
use crate::serf_cmd::{SerfCommand, SerfReply};

/// How often a running query is polled for new acks and answers.
const QUERY_POLL: Duration = Duration::from_millis(50);
/// Most bytes of a regular expression in a member filter.
const MAX_FILTER_REGEX: usize = 1024;

/// The Serf routes, merged into [`crate::api::router`].
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/serf/event", post(event))
        .route("/v1/serf/query", post(query))
        .route("/v1/serf/respond", post(respond))
        .route("/v1/serf/tags", post(tags))
        .route("/v1/serf/force-leave", post(force_leave))
        .route("/v1/serf/reachability", get(reachability))
        .route("/v1/serf/keys/:op", post(key_query))
        .route("/v1/serf/events", get(events))
        .route("/v1/serf/stats", get(stats))
}

/// `GET /v1/serf/stats`: the Serf layer's counters by name.
async fn stats(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    match serf(&state, SerfCommand::Counters).await? {
        SerfReply::Counters(v) => Ok(Json(v)),
        _ => Err(unexpected()),
    }
}

/// Runs a Serf command; a refusal is 409 (wrong mode) or 400.
async fn serf(state: &ApiState, cmd: SerfCommand) -> Result<SerfReply, ApiError> {
    ask(state, |tx| Command::Serf(cmd, tx)).await?.map_err(|e| {
        if e.contains("--protocol serf") {
            ApiError(StatusCode::CONFLICT, e)
        } else {
            bad(e)
        }
    })
}

fn unexpected() -> ApiError {
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected answer from the driver".into(),
    )
}

fn body<T>(b: Option<Json<T>>, shape: &str) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .ok_or_else(|| bad(format!("send a JSON body {shape}")))
}

fn ok() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "ok": true }))
}

/// A payload as JSON shows it: text (lossy UTF-8) and exact base64.
fn payload_fields(p: &[u8]) -> (String, String) {
    (
        String::from_utf8_lossy(p).into_owned(),
        base64::engine::general_purpose::STANDARD.encode(p),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    name: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    coalesce: bool,
}

/// `POST /v1/serf/event {"name", "payload", "coalesce"}`.
async fn event(
    State(state): State<ApiState>,
    b: Option<Json<EventBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let b = body(b, r#"{"name": "...", "payload": "...", "coalesce": false}"#)?;
    let cmd = SerfCommand::Event {
        name: b.name,
        payload: b.payload.into_bytes(),
        coalesce: b.coalesce,
    };
    serf(&state, cmd).await?;
    Ok(ok())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    name: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default = "yes")]
    ack: bool,
    #[serde(default)]
    relay_factor: u8,
}

fn yes() -> bool {
    true
}

fn parse_timeout(t: Option<&str>) -> Result<Option<Duration>, ApiError> {
    t.map(crate::api_server::parse_duration)
        .transpose()
        .map_err(|e| bad(format!("timeout: {e}")))
}

/// One line of a query's stream.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum QueryLine {
    /// The query went out.
    Query {
        name: String,
        ltime: u64,
        id: u32,
        timeout_ms: u64,
        expected: usize,
    },
    /// A node acked.
    Ack { from: String },
    /// A node answered.
    Response {
        from: String,
        payload: String,
        payload_base64: String,
    },
    /// The query closed.
    Done {
        acks: usize,
        responses: usize,
        expected: usize,
    },
}

/// `POST /v1/serf/query {"name", "payload", "nodes", "tags", "timeout",
/// "ack", "relay_factor"}`: NDJSON, one line per ack and answer as they
/// come, then a `done` line when the query closes.
async fn query(
    State(state): State<ApiState>,
    b: Option<Json<QueryBody>>,
) -> Result<Response, ApiError> {
    let b = body(
        b,
        r#"{"name": "...", "payload": "...", "nodes": [], "tags": {}, "timeout": "3s", "ack": true}"#,
    )?;
    let params = QueryParams {
        filter_nodes: b.nodes,
        filter_tags: b.tags,
        request_ack: b.ack,
        relay_factor: b.relay_factor,
        timeout: parse_timeout(b.timeout.as_deref())?,
    };
    let cmd = SerfCommand::Query {
        name: b.name,
        payload: b.payload.into_bytes(),
        params,
    };
    let SerfReply::Handle(handle) = serf(&state, cmd).await? else {
        return Err(unexpected());
    };
    Ok(stream_query(state, handle))
}

struct Follow {
    state: ApiState,
    handle: QueryHandle,
    acks: usize,
    responses: usize,
    lines: VecDeque<QueryLine>,
    started: bool,
    done: bool,
}

impl Follow {
    /// Queues the lines for what `st` holds beyond what was sent.
    fn take(&mut self, st: &QueryStatus, now: std::time::Instant) {
        if !self.started {
            self.started = true;
            self.lines.push_back(QueryLine::Query {
                name: st.name.clone(),
                ltime: st.ltime,
                id: st.id,
                timeout_ms: st.deadline.saturating_duration_since(now).as_millis() as u64,
                expected: st.expected,
            });
        }
        for from in st.acks.iter().skip(self.acks) {
            self.lines.push_back(QueryLine::Ack { from: from.clone() });
        }
        self.acks = st.acks.len();
        for r in st.responses.iter().skip(self.responses) {
            let (payload, payload_base64) = payload_fields(&r.payload);
            self.lines.push_back(QueryLine::Response {
                from: r.from.clone(),
                payload,
                payload_base64,
            });
        }
        self.responses = st.responses.len();
        if st.finished {
            self.done = true;
            self.lines.push_back(QueryLine::Done {
                acks: st.acks.len(),
                responses: st.responses.len(),
                expected: st.expected,
            });
        }
    }
}

/// Follows query `handle` until it closes, as NDJSON.
fn stream_query(state: ApiState, handle: QueryHandle) -> Response {
    let f = Follow {
        state,
        handle,
        acks: 0,
        responses: 0,
        lines: VecDeque::new(),
        started: false,
        done: false,
    };
    let stream = futures_util::stream::unfold(f, |mut f| async move {
        loop {
            if let Some(line) = f.lines.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(json_line(&line)), f));
            }
            if f.done {
                return None;
            }
            if f.started {
                tokio::time::sleep(QUERY_POLL).await;
            }
            let cmd = SerfCommand::Status {
                handle: f.handle,
                forget: true,
            };
            match serf(&f.state, cmd).await {
                Ok(SerfReply::Status(st)) => f.take(&st, std::time::Instant::now()),
                Ok(_) | Err(_) => {
                    f.done = true;
                    let line = json_line(&serde_json::json!({"error": "the query was lost"}));
                    return Some((Ok(line), f));
                }
            }
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RespondBody {
    id: u64,
    #[serde(default)]
    payload: String,
}

/// `POST /v1/serf/respond {"id", "payload"}`: answers a received query
/// (its `id` in `GET /v1/serf/events`).
async fn respond(
    State(state): State<ApiState>,
    b: Option<Json<RespondBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let b = body(b, r#"{"id": 1, "payload": "..."}"#)?;
    let cmd = SerfCommand::Respond {
        id: b.id,
        payload: b.payload.into_bytes(),
    };
    serf(&state, cmd).await?;
    Ok(ok())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

/// `POST /v1/serf/tags {"set": {K: V}, "delete": [K]}`: our tags after.
async fn tags(
    State(state): State<ApiState>,
    b: Option<Json<TagsBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let b = body(b, r#"{"set": {"key": "value"}, "delete": ["key"]}"#)?;
    let SerfReply::Tags(t) = serf(
        &state,
        SerfCommand::Tags {
            set: b.set,
            delete: b.delete,
        },
    )
    .await?
    else {
        return Err(unexpected());
    };
    Ok(Json(serde_json::json!({ "tags": t })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceLeaveBody {
    node: String,
    #[serde(default)]
    prune: bool,
}

/// `POST /v1/serf/force-leave {"node", "prune"}`.
async fn force_leave(
    State(state): State<ApiState>,
    b: Option<Json<ForceLeaveBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let b = body(b, r#"{"node": "NAME", "prune": false}"#)?;
    serf(
        &state,
        SerfCommand::ForceLeave {
            node: b.node,
            prune: b.prune,
        },
    )
    .await?;
    Ok(ok())
}

/// Polls a query of ours until it finished; returns what it collected.
async fn wait_finished(state: &ApiState, handle: QueryHandle) -> Result<QueryStatus, ApiError> {
    loop {
        let cmd = SerfCommand::Status {
            handle,
            forget: true,
        };
        match serf(state, cmd).await? {
            SerfReply::Status(st) if st.finished => return Ok(st),
            SerfReply::Status(_) => tokio::time::sleep(QUERY_POLL).await,
            _ => return Err(unexpected()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutParam {
    timeout: Option<String>,
}

/// `GET /v1/reachability?timeout=D`'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReachabilityView {
    /// Members alive when the ping finished.
    pub live: Vec<String>,
    /// Nodes that acked.
    pub acked: Vec<String>,
    /// Live members that did not ack.
    pub missing: Vec<String>,
    /// Nodes that acked but are not live members.
    pub unexpected: Vec<String>,
}

/// `GET /v1/serf/reachability?timeout=D`: Serf's reachability check (a
/// `_serf_ping` query with acks), answered when the query closes.
async fn reachability(
    State(state): State<ApiState>,
    Query(q): Query<TimeoutParam>,
) -> Result<Json<ReachabilityView>, ApiError> {
    let timeout = parse_timeout(q.timeout.as_deref())?;
    let SerfReply::Handle(handle) = serf(&state, SerfCommand::Ping { timeout }).await? else {
        return Err(unexpected());
    };
    let st = wait_finished(&state, handle).await?;
    let nodes = ask(&state, Command::Members).await?;
    let mut live: Vec<String> = nodes
        .iter()
        .filter(|n| n.state == NodeState::Alive)
        .map(|n| n.name.to_string())
        .collect();
    live.sort();
    let mut acked = st.acks;
    acked.sort();
    let missing = live
        .iter()
        .filter(|n| !acked.contains(n))
        .cloned()
        .collect();
    let unexpected = acked
        .iter()
        .filter(|n| !live.contains(n))
        .cloned()
        .collect();
    Ok(Json(ReachabilityView {
        live,
        acked,
        missing,
        unexpected,
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    #[serde(default)]
    key: String,
    #[serde(default)]
    relay_factor: u8,
}

/// A cluster-wide key operation's outcome, like `serf keys`.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyReportView {
    /// `install`, `use`, `remove` or `list`.
    pub op: String,
    /// Members when the query was sent.
    pub total: usize,
    /// Nodes that answered.
    pub responded: usize,
    /// Node → failure message.
    pub failures: BTreeMap<String, String>,
    /// Node → warning.
    pub warnings: BTreeMap<String, String>,
    /// Key (base64) → nodes holding it (list).
    pub keys: BTreeMap<String, usize>,
    /// Primary key (base64) → nodes using it (list).
    pub primary_keys: BTreeMap<String, usize>,
}

impl From<KeyReport> for KeyReportView {
    fn from(r: KeyReport) -> Self {
        KeyReportView {
            op: r.op.to_string(),
            total: r.total,
            responded: r.responded,
            failures: r.failures,
            warnings: r.warnings,
            keys: r.keys,
            primary_keys: r.primary_keys,
        }
    }
}

/// `POST /v1/serf/keys/{install,use,remove,list} {"key"}`: Serf's own key
/// query to the whole cluster (serf agents included); answered when every
/// member answered or the query timed out.
async fn key_query(
    State(state): State<ApiState>,
    Path(op): Path<String>,
    b: Option<Json<KeyBody>>,
) -> Result<Json<KeyReportView>, ApiError> {
    let b = b.map(|Json(b)| b).unwrap_or_default();
    let key = || crate::keyfile::parse_key(&b.key).map_err(bad);
    let op = match op.as_str() {
        "install" => KeyOp::Install(key()?),
        "use" => KeyOp::Use(key()?),
        "remove" => KeyOp::Remove(key()?),
        "list" => KeyOp::List,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no key operation {other:?}: use install, use, remove or list"),
            ))
        }
    };
    let cmd = SerfCommand::KeyQuery {
        op,
        relay_factor: b.relay_factor,
    };
    let SerfReply::Handle(handle) = serf(&state, cmd).await? else {
        return Err(unexpected());
    };
    loop {
        let cmd = SerfCommand::KeyReport {
            handle,
            forget: true,
        };
        match serf(&state, cmd).await? {
            SerfReply::KeyReport(r) if r.finished => return Ok(Json(r.into())),
            SerfReply::KeyReport(_) => tokio::time::sleep(QUERY_POLL).await,
            _ => return Err(unexpected()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AfterParam {
    #[serde(default)]
    after: u64,
}

/// One received user event or query in `GET /v1/serf/events`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SerfEventView {
    /// Sequence number (pass the last one as `?after=` to get newer ones).
    pub seq: u64,
    /// `user` or `query`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Event or query name.
    pub name: String,
    /// Payload as text (lossy UTF-8).
    pub payload: String,
    /// Payload, exact, base64.
    pub payload_base64: String,
    /// Lamport time (event or query clock).
    pub ltime: u64,
    /// User events: may be coalesced.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub coalesce: Option<bool>,
    /// Queries: the id to answer with (`POST /v1/serf/respond`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<u64>,
    /// Queries: the asking node.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<String>,
    /// How long ago it was received, in milliseconds.
    pub age_ms: u64,
}

/// `GET /v1/serf/events`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SerfEventsView {
    /// The received events kept (at most 256), oldest first.
    pub events: Vec<SerfEventView>,
}

/// `GET /v1/serf/events?after=SEQ`: the user events and queries received
/// lately (ours included), oldest first.
async fn events(
    State(state): State<ApiState>,
    Query(q): Query<AfterParam>,
) -> Result<Json<SerfEventsView>, ApiError> {
    let SerfReply::Recent(list) = serf(&state, SerfCommand::Recent { after: q.after }).await?
    else {
        return Err(unexpected());
    };
    let now = std::time::Instant::now();
    let events = list
        .into_iter()
        .filter_map(|r| {
            let age_ms = now.saturating_duration_since(r.at).as_millis() as u64;
            let v = match r.event {
                SerfEvent::User(e) => {
                    let (payload, payload_base64) = payload_fields(&e.payload);
                    SerfEventView {
                        seq: r.seq,
                        kind: "user".into(),
                        name: e.name,
                        payload,
                        payload_base64,
                        ltime: e.ltime,
                        coalesce: Some(e.cc),
                        id: None,
                        from: None,
                        age_ms,
                    }
                }
                SerfEvent::Query(q) => {
                    let (payload, payload_base64) = payload_fields(&q.payload);
                    SerfEventView {
                        seq: r.seq,
                        kind: "query".into(),
                        name: q.name,
                        payload,
                        payload_base64,
                        ltime: q.ltime,
                        coalesce: None,
                        id: Some(q.id),
                        from: Some(q.source_node),
                        age_ms,
                    }
                }
                _ => return None,
            };
            Some(v)
        })
        .collect();
    Ok(Json(SerfEventsView { events }))
}

/// `GET /v1/members` filters, as `serf members`: `status`, `name` and each
/// `tag=KEY=VALUE` are regular expressions anchored at both ends; a member
/// must match all of them (a missing tag matches as the empty string).
#[derive(Debug, Default)]
pub struct MemberFilter {
    status: Option<Regex>,
    name: Option<Regex>,
    tags: Vec<(String, Regex)>,
}

fn anchored(expr: &str, what: &str) -> Result<Regex, String> {
    if expr.len() > MAX_FILTER_REGEX {
        return Err(format!("{what} filter is over {MAX_FILTER_REGEX} bytes"));
    }
    RegexBuilder::new(&format!("^(?:{expr})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("{what} filter {expr:?} is not a valid regular expression: {e}"))
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

impl MemberFilter {
    /// Reads `status=RE`, `name=RE` and repeated `tag=KEY=RE` from a query
    /// string; anything else is refused with a one-line error.
    pub fn from_query(q: Option<&str>) -> Result<MemberFilter, String> {
        let mut f = MemberFilter::default();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = form_decode(v)?;
            match form_decode(k)?.as_str() {
                "status" => f.status = Some(anchored(&v, "status")?),
                "name" => f.name = Some(anchored(&v, "name")?),
                "tag" => {
                    let (tag, expr) = v
                        .split_once('=')
                        .ok_or_else(|| format!("tag filter {v:?}: use tag=KEY=VALUE"))?;
                    f.tags.push((tag.to_string(), anchored(expr, "tag")?));
                }
                other => {
                    return Err(format!(
                        "unknown member filter {other:?}: use status, name or tag"
                    ))
                }
            }
        }
        Ok(f)
    }

    /// The member passes every filter.
    pub fn matches(&self, m: &MemberView) -> bool {
        self.status.as_ref().is_none_or(|re| re.is_match(&m.status))
            && self.name.as_ref().is_none_or(|re| re.is_match(&m.name))
            && self
                .tags
                .iter()
                .all(|(k, re)| re.is_match(m.tags.get(k).map_or("", String::as_str)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, status: &str, tags: &[(&str, &str)]) -> MemberView {
        MemberView {
            name: name.into(),
            addr: "127.0.0.1:7946".into(),
            port: 7946,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            status: status.into(),
            protocol: crate::api::ProtocolView {
                min: 2,
                max: 5,
                version: 4,
            },
            incarnation: 1,
        }
    }

    #[test]
    fn member_filters_are_anchored_regexes_like_serf() {
        let web1 = member("web-1", "alive", &[("role", "web"), ("dc", "a")]);
        let db1 = member("db-1", "failed", &[("role", "db")]);
        let f = |q: &str| MemberFilter::from_query(Some(q)).unwrap();
        assert!(f("").matches(&web1) && f("").matches(&db1));
        assert!(f("status=alive").matches(&web1));
        assert!(!f("status=alive").matches(&db1));
        assert!(!f("status=aliv").matches(&web1), "anchored");
        assert!(f("name=web-.*").matches(&web1));
        assert!(!f("name=web").matches(&web1), "anchored");
        assert!(f("tag=role%3Dweb&tag=dc=a").matches(&web1));
        assert!(!f("tag=dc=a").matches(&db1), "missing tag is empty");
        assert!(f("tag=dc=").matches(&db1));
        assert!(f("status=alive%7Cfailed").matches(&db1));
        for bad in ["status=(", "tag=role", "colour=red", "name=%zz"] {
            assert!(MemberFilter::from_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
