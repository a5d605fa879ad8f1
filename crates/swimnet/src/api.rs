//! The local control API (HTTP/JSON), served on loopback by default. The CLI
//! is a client of it; every endpoint is documented in the README.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use swimnet_core::coordinate::Coordinate;
use swimnet_core::{Node, NodeState};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::driver::{
    Command, CoordinatesSnapshot, KeyCommand, KeyringView, TableCommand, TableError, TableReply,
    WatchStart,
};
use crate::keyfile::{encode_key, parse_key, KeyringFile};

/// One member, shaped like `serf members -format=json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberView {
    /// Node name.
    pub name: String,
    /// `IP:PORT`.
    pub addr: String,
    /// Port.
    pub port: u16,
    /// Tags (Serf's encoding of the node metadata).
    pub tags: BTreeMap<String, String>,
    /// `alive`, `suspect`, `failed` or `left`.
    pub status: String,
    /// Delegate protocol versions, as Serf shows them.
    pub protocol: ProtocolView,
    /// Incarnation number.
    pub incarnation: u32,
}

/// Delegate protocol versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProtocolView {
    /// Lowest understood.
    pub min: u8,
    /// Highest understood.
    pub max: u8,
    /// Spoken.
    pub version: u8,
}

/// `GET /v1/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembersView {
    /// Every member in the table.
    pub members: Vec<MemberView>,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeysView {
    /// The primary key (base64).
    pub primary: String,
    /// All keys, primary first (base64).
    pub keys: Vec<String>,
}

/// A member's tags from its metadata, decoded as Serf does; empty metadata
/// (a NetworkDB or plain memberlist node) has no tags, where Serf's legacy
/// rule would show it as a phantom `role=""`.
pub fn member_tags(meta: &[u8]) -> BTreeMap<String, String> {
    if meta.is_empty() {
        return Default::default();
    }
    swimnet_serf::tags::decode_tags(meta)
}

/// Turns a core node into its API view.
pub fn member_view(n: &Node) -> MemberView {
    MemberView {
        name: n.name.to_string(),
        addr: n.addr.to_string(),
        port: n.addr.port(),
        tags: member_tags(&n.meta),
        status: match n.state {
            NodeState::Alive => "alive",
            NodeState::Suspect => "suspect",
            NodeState::Dead => "failed",
            NodeState::Left => "left",
        }
        .to_string(),
        protocol: ProtocolView {
            min: n.vsn[3],
            max: n.vsn[4],
            version: n.vsn[5],
        },
        incarnation: n.incarnation,
    }
}

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    /// Commands to the driver.
    pub commands: mpsc::Sender<Command>,
    /// Where to persist the keyring after changes, if anywhere.
    pub keyring_file: Option<KeyringFile>,
    /// Signalled when a client asks the agent to leave and exit.
    pub shutdown: Arc<Notify>,
    /// The HTTP listeners' counters (shown by `GET /v1/stats`).
    pub http_counters: Arc<crate::api_server::ApiCounters>,
    /// `GET /v1/events`' stream slots and the event counters.
    pub events: Arc<crate::api_events::EventStreams>,
    /// The overlay manager (`--protocol networkdb` only).
    pub overlay: Option<crate::overlay::OverlayHandle>,
}

/// An API error: a status and a one-line message.
#[derive(Debug)]
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

pub(crate) fn gone() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent is shutting down".into(),
    )
}

pub(crate) async fn ask<T>(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    state.commands.send(make(tx)).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())
}

/// The `Server` header of every API answer: how the CLI tells a swimnet
/// agent (whose errors may be plain text, e.g. a body over the size limit)
/// from another HTTP server at `--api`.
pub const SERVER_HEADER: &str = concat!("swimnet/", env!("CARGO_PKG_VERSION"));

/// Adds [`SERVER_HEADER`] to an answer; a layer over the whole API router
/// (`axum::middleware::map_response`), so refusals and 404s carry it too.
pub async fn mark_swimnet(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        axum::http::header::SERVER,
        axum::http::HeaderValue::from_static(SERVER_HEADER),
    );
    resp
}

/// The router with every endpoint, each request checked by `guard` first
/// (Docker's diagnostic paths are not here: see [`crate::diag::router`]).
pub fn router(state: ApiState, guard: crate::http_guard::Guard) -> Router {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/join", post(join))
        .route("/v1/leave", post(leave))
        .route("/v1/keys", get(keys))
        .route("/v1/keys/:op", post(key_op))
        .route("/v1/stats", get(stats))
        .route("/v1/coordinate", get(coordinates))
        .route("/v1/rtt", get(rtt))
        .route("/v1/networks", get(networks))
        .route("/v1/networks/:nid/:op", post(network_op))
        .route("/v1/networks/:nid/peers", get(network_peers))
        .route("/v1/tables/:nid/:table", get(table_list))
        .route(
            "/v1/tables/:nid/:table/:key",
            get(entry_get).put(entry_put).delete(entry_delete),
        )
        .merge(crate::api_metrics::routes())
        .merge(crate::api_keys::routes())
        .merge(crate::api_serf::routes())
        .merge(crate::api_events::routes())
        .merge(crate::api_overlay::routes())
        .fallback(no_endpoint)
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::http_guard::enforce,
        ))
        .with_state(state)
}

async fn no_endpoint(uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {}: see the README for the API (Docker's diagnostic paths are served on --diagnostic-addr)",
            uri.path()
        ),
    )
}

/// `GET /v1/members[?status=RE&name=RE&tag=KEY=RE...]` (see
/// [`crate::api_serf::MemberFilter`]).
async fn members(
    State(state): State<ApiState>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Json<MembersView>, ApiError> {
    let filter = crate::api_serf::MemberFilter::from_query(q.as_deref()).map_err(bad)?;
    let nodes = ask(&state, Command::Members).await?;
    let mut members: Vec<MemberView> = nodes.iter().map(member_view).collect();
    members.retain(|m| filter.matches(m));
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(MembersView { members }))
}

/// Most addresses one `POST /v1/join` may name.
const MAX_JOIN_ADDRS: usize = 64;

#[derive(Deserialize)]
struct JoinBody {
    addrs: Vec<String>,
}

async fn join(
    State(state): State<ApiState>,
    body: Option<Json<JoinBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(Json(body)) = body else {
        return Err(bad(r#"send a JSON body {"addrs": ["IP:PORT", ...]}"#));
    };
    if body.addrs.len() > MAX_JOIN_ADDRS {
        return Err(bad(format!(
            "{} addresses: give at most {MAX_JOIN_ADDRS}",
            body.addrs.len()
        )));
    }
    for a in &body.addrs {
        crate::resolve::check_seed(a).map_err(bad)?;
    }
    // Host names are resolved here, at each request.
    let (addrs, errors) = crate::resolve::resolve_seeds(&body.addrs).await;
    if addrs.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_GATEWAY,
            format!("join failed: {}", errors.join("; ")),
        ));
    }
    let n = ask(&state, |tx| Command::Join(addrs, tx))
        .await?
        .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, format!("join failed: {e}")))?;
    Ok(Json(serde_json::json!({ "joined": n })))
}

/// Parses `IP:PORT`, or a bare IP with memberlist's default port 7946.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = t.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 7946));
    }
    Err(format!(
        "{t:?} is not an address: write IP:PORT, e.g. 127.0.0.1:7946"
    ))
}

async fn leave(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    ask(&state, Command::Leave).await?;
    state.shutdown.notify_waiters();
    Ok(Json(serde_json::json!({ "left": true })))
}

fn keys_view(v: KeyringView) -> KeysView {
    let keys: Vec<String> = v.keys.iter().map(|k| encode_key(k)).collect();
    KeysView {
        primary: keys.first().cloned().unwrap_or_default(),
        keys,
    }
}

async fn keys(State(state): State<ApiState>) -> Result<Json<KeysView>, ApiError> {
    let v = ask(&state, |tx| Command::Keys(KeyCommand::List, tx))
        .await?
        .map_err(bad)?;
    Ok(Json(keys_view(v)))
}

#[derive(Deserialize)]
struct KeyBody {
    key: String,
}

async fn key_op(
    State(state): State<ApiState>,
    Path(op): Path<String>,
    body: Option<Json<KeyBody>>,
) -> Result<Json<KeysView>, ApiError> {
    let Some(Json(body)) = body else {
        return Err(bad(r#"send a JSON body {"key": "BASE64"}"#));
    };
    let key = parse_key(&body.key).map_err(bad)?;
    let cmd = match op.as_str() {
        "install" => KeyCommand::Install(key),
        "use" => KeyCommand::Use(key),
        "remove" => KeyCommand::Remove(key),
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown key operation {other:?}: use install, use or remove"),
            ))
        }
    };
    let v = ask(&state, |tx| Command::Keys(cmd, tx))
        .await?
        .map_err(bad)?;
    if let Some(f) = &state.keyring_file {
        f.save(&v.keys)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    }
    Ok(Json(keys_view(v)))
}

async fn stats(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let v = ask(&state, Command::Stats).await?;
    let mut body = crate::figures::stats_json(&v, &state.http_counters);
    body["events"] = serde_json::to_value(&*state.events.counters).unwrap_or_default();
    if let Some(o) = &state.overlay {
        body["overlay"] = serde_json::to_value(o.counters.snapshot()).unwrap_or_default();
    }
    Ok(Json(body))
}

/// A Vivaldi network coordinate, in seconds (Serf's fields).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CoordinateView {
    /// Euclidean part.
    pub vec: Vec<f64>,
    /// Confidence (smaller is better; starts at 1.5).
    pub error: f64,
    /// Distance offset learned from recent samples.
    pub adjustment: f64,
    /// Non-Euclidean part (the node's access link).
    pub height: f64,
}

impl From<&Coordinate> for CoordinateView {
    fn from(c: &Coordinate) -> Self {
        CoordinateView {
            vec: c.vec.clone(),
            error: c.error,
            adjustment: c.adjustment,
            height: c.height,
        }
    }
}

/// One node's coordinate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeCoordinateView {
    /// Node name.
    pub node: String,
    /// Its latest known coordinate.
    pub coord: CoordinateView,
}

/// `GET /v1/coordinate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoordinatesView {
    /// This agent's node name.
    pub node: String,
    /// Every known coordinate, ours included, sorted by node name.
    pub coordinates: Vec<NodeCoordinateView>,
}

/// `GET /v1/rtt?a=NODE&b=NODE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RttView {
    /// First node.
    pub a: String,
    /// Second node.
    pub b: String,
    /// Estimated round trip time, nanoseconds.
    pub rtt_ns: u64,
    /// The same in milliseconds.
    pub rtt_ms: f64,
}

fn coordinates_on(v: &CoordinatesSnapshot) -> Result<&[(String, Coordinate)], ApiError> {
    v.coordinates.as_deref().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "network coordinates are turned off on this agent".into(),
        )
    })
}

async fn coordinates(State(state): State<ApiState>) -> Result<Json<CoordinatesView>, ApiError> {
    let v = ask(&state, Command::Coordinates).await?;
    let mut coords = coordinates_on(&v)?.to_vec();
    coords.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(CoordinatesView {
        node: v.name,
        coordinates: coords
            .iter()
            .map(|(n, c)| NodeCoordinateView {
                node: n.clone(),
                coord: c.into(),
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
struct RttQuery {
    a: Option<String>,
    b: Option<String>,
}

async fn rtt(
    State(state): State<ApiState>,
    Query(q): Query<RttQuery>,
) -> Result<Json<RttView>, ApiError> {
    let Some(a) = q.a.filter(|a| !a.is_empty()) else {
        return Err(bad("give the node to estimate: /v1/rtt?a=NODE (and &b=NODE for a pair not including this agent)"));
    };
    let v = ask(&state, Command::Coordinates).await?;
    let (coords, members) = (coordinates_on(&v)?, &v.members);
    let b =
        q.b.filter(|b| !b.is_empty())
            .unwrap_or_else(|| v.name.clone());
    let find = |name: &str| -> Result<&Coordinate, ApiError> {
        if let Some((_, c)) = coords.iter().find(|(n, _)| n == name) {
            return Ok(c);
        }
        let why = if members.iter().any(|m| m == name) {
            format!(
                "no coordinate for node {name:?} yet: this agent learns it from the ack of a direct probe of that node (about one node per probe interval); try again shortly"
            )
        } else {
            format!("unknown node {name:?}: it is not in this agent's member list")
        };
        Err(ApiError(StatusCode::NOT_FOUND, why))
    };
    let (ca, cb) = (find(&a)?, find(&b)?);
    let d = ca.distance_to(cb).map_err(|e| {
        ApiError(
            StatusCode::CONFLICT,
            format!("coordinates of {a:?} and {b:?} cannot be compared: {e}"),
        )
    })?;
    Ok(Json(RttView {
        a,
        b,
        rtt_ns: d.as_nanos() as u64,
        rtt_ms: d.as_secs_f64() * 1e3,
    }))
}

/// `GET /v1/networks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworksView {
    /// Networks this node is attached to.
    pub networks: Vec<String>,
}

/// One peer of a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerView {
    /// Node name.
    pub name: String,
    /// Its IP (empty when unknown).
    pub ip: String,
}

/// `GET /v1/networks/{nid}/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeersView {
    /// Network ID.
    pub network: String,
    /// Active nodes attached to it, this one included when attached.
    pub peers: Vec<PeerView>,
}

/// One table entry; `value` is base64 (standard alphabet, padded).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryView {
    /// Key.
    pub key: String,
    /// Value, base64.
    pub value: String,
    /// Owner node (empty in `GET .../{key}` answers).
    #[serde(default)]
    pub owner: String,
}

/// `GET /v1/tables/{nid}/{table}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableView {
    /// Network ID.
    pub network: String,
    /// Table name.
    pub table: String,
    /// Live entries, by key.
    pub entries: Vec<EntryView>,
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// The API's status for a failed table command: 404 for a missing entry or
/// a network this node is not attached to.
fn table_error(e: TableError) -> ApiError {
    match e {
        TableError::NotNetworkDb => ApiError(StatusCode::CONFLICT, e.to_string()),
        TableError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
        TableError::NotAttached(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        TableError::Failed(m) => bad(m),
    }
}

async fn table_cmd(state: &ApiState, cmd: TableCommand) -> Result<TableReply, ApiError> {
    ask(state, |tx| Command::Table(cmd, tx))
        .await?
        .map_err(table_error)
}

/// 404 "not attached to NID" unless this node is attached to `nid`: asked
/// before reading a network, so one not joined does not look empty.
async fn require_attached(state: &ApiState, nid: &str) -> Result<(), ApiError> {
    table_cmd(state, TableCommand::CheckAttached(nid.to_string()))
        .await
        .map(drop)
}

fn unexpected() -> ApiError {
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected answer from the driver".into(),
    )
}

async fn networks(State(state): State<ApiState>) -> Result<Json<NetworksView>, ApiError> {
    match table_cmd(&state, TableCommand::Networks).await? {
        TableReply::Networks(networks) => Ok(Json(NetworksView { networks })),
        _ => Err(unexpected()),
    }
}

async fn network_op(
    State(state): State<ApiState>,
    Path((nid, op)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cmd = match op.as_str() {
        "join" => TableCommand::JoinNetwork(nid.clone()),
        "leave" => TableCommand::LeaveNetwork(nid.clone()),
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown network operation {other:?}: use join or leave"),
            ))
        }
    };
    table_cmd(&state, cmd).await?;
    Ok(Json(serde_json::json!({ "network": nid, op: true })))
}

async fn network_peers(
    State(state): State<ApiState>,
    Path(nid): Path<String>,
) -> Result<Json<PeersView>, ApiError> {
    require_attached(&state, &nid).await?;
    match table_cmd(&state, TableCommand::NetworkPeers(nid.clone())).await? {
        TableReply::Peers(ps) => Ok(Json(PeersView {
            network: nid,
            peers: ps
                .into_iter()
                .map(|(name, ip)| PeerView {
                    name,
                    ip: ip.map(|i| i.to_string()).unwrap_or_default(),
                })
                .collect(),
        })),
        _ => Err(unexpected()),
    }
}

/// One line of `GET /v1/tables/{nid}/{table}?watch=true`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WatchEvent {
    /// `create`, `update` or `delete`.
    pub event: String,
    /// Network ID.
    pub network: String,
    /// Table name.
    pub table: String,
    /// Key.
    pub key: String,
    /// The value now (base64); for `delete`, the value it had.
    pub value: String,
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    watch: Option<String>,
}

pub(crate) fn json_line(v: &impl Serialize) -> axum::body::Bytes {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    line.into()
}

/// `?watch=true`: the current entries as `create` events, then every change
/// to the table as it happens, one JSON object per line, until the client
/// goes away or the agent stops. A client that falls more than
/// [`crate::driver::WATCH_BUFFER`] changes behind gets a final
/// `{"error": ...}` line and the stream ends.
async fn table_watch(state: &ApiState, nid: String, table: String) -> Result<Response, ApiError> {
    let (tx, rx) = oneshot::channel();
    let cmd = Command::Watch {
        nid: nid.clone(),
        table: table.clone(),
        reply: tx,
    };
    state.commands.send(cmd).await.map_err(|_| gone())?;
    let WatchStart { entries, changes } = rx.await.map_err(|_| gone())?.map_err(table_error)?;
    let initial: std::collections::VecDeque<axum::body::Bytes> = entries
        .into_iter()
        .map(|e| {
            json_line(&WatchEvent {
                event: "create".into(),
                network: nid.clone(),
                table: table.clone(),
                key: e.key,
                value: b64(&e.value),
            })
        })
        .collect();
    struct St {
        initial: std::collections::VecDeque<axum::body::Bytes>,
        changes: tokio::sync::broadcast::Receiver<Arc<crate::agent_events::Published>>,
        nid: String,
        table: String,
        done: bool,
    }
    let st = St {
        initial,
        changes,
        nid,
        table,
        done: false,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if let Some(line) = st.initial.pop_front() {
            return Some((Ok::<_, std::convert::Infallible>(line), st));
        }
        if st.done {
            return None;
        }
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match st.changes.recv().await {
                Ok(p) => {
                    let crate::agent_events::AgentEvent::Table(c) = &p.event else {
                        continue;
                    };
                    if c.network_id != st.nid || c.table != st.table {
                        continue;
                    }
                    let (event, value) = match (&c.prev, &c.value) {
                        (None, Some(v)) => ("create", v),
                        (Some(_), Some(v)) => ("update", v),
                        (Some(p), None) => ("delete", p),
                        (None, None) => continue,
                    };
                    let line = json_line(&WatchEvent {
                        event: event.into(),
                        network: c.network_id.clone(),
                        table: c.table.clone(),
                        key: c.key.clone(),
                        value: b64(value),
                    });
                    return Some((Ok(line), st));
                }
                Err(RecvError::Lagged(n)) => {
                    st.done = true;
                    let line = json_line(&serde_json::json!({
                        "error": format!("this watch fell behind and missed {n} events; start it again")
                    }));
                    return Some((Ok(line), st));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

async fn table_list(
    State(state): State<ApiState>,
    Path((nid, table)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    match q.watch.as_deref() {
        None | Some("false") | Some("0") => {}
        Some("true") | Some("1") | Some("") => return table_watch(&state, nid, table).await,
        Some(other) => return Err(bad(format!("watch={other:?}: use watch=true"))),
    }
    require_attached(&state, &nid).await?;
    let cmd = TableCommand::List {
        nid: nid.clone(),
        table: table.clone(),
    };
    match table_cmd(&state, cmd).await? {
        TableReply::Entries(es) => Ok(Json(TableView {
            network: nid,
            table,
            entries: es
                .into_iter()
                .map(|e| EntryView {
                    value: b64(&e.value),
                    key: e.key,
                    owner: e.owner,
                })
                .collect(),
        })
        .into_response()),
        _ => Err(unexpected()),
    }
}

async fn entry_get(
    State(state): State<ApiState>,
    Path((nid, table, key)): Path<(String, String, String)>,
) -> Result<Json<EntryView>, ApiError> {
    require_attached(&state, &nid).await?;
    let cmd = TableCommand::Get {
        nid,
        table,
        key: key.clone(),
    };
    match table_cmd(&state, cmd).await? {
        TableReply::Value(v) => Ok(Json(EntryView {
            key,
            value: b64(&v),
            owner: String::new(),
        })),
        _ => Err(unexpected()),
    }
}

/// `PUT`: the request body is the value, raw bytes taken as they are.
async fn entry_put(
    State(state): State<ApiState>,
    Path((nid, table, key)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cmd = TableCommand::Put {
        nid,
        table,
        key: key.clone(),
        value: body.to_vec(),
    };
    table_cmd(&state, cmd).await?;
    Ok(Json(serde_json::json!({ "key": key, "written": true })))
}

async fn entry_delete(
    State(state): State<ApiState>,
    Path((nid, table, key)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cmd = TableCommand::Delete {
        nid,
        table,
        key: key.clone(),
    };
    table_cmd(&state, cmd).await?;
    Ok(Json(serde_json::json!({ "key": key, "deleted": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_metadata_has_no_tags_not_a_phantom_role() {
        assert!(member_tags(b"").is_empty());
        let tagged = swimnet_serf::tags::encode_tags(
            &[("role".to_string(), "web".to_string())]
                .into_iter()
                .collect(),
        );
        assert_eq!(member_tags(&tagged)["role"], "web");
        // Serf's legacy form (metadata without the tags magic byte) is
        // still its role.
        assert_eq!(member_tags(b"db")["role"], "db");
    }
}
