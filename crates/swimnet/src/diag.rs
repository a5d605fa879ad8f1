//! Docker's NetworkDB diagnostic API (`libnetwork/diagnostic` and
//! `networkdb/networkdbdiagnostic.go`), served on its own listener
//! (`--diagnostic-addr`, off by default, like Docker's
//! network-diagnostic-port) with the same paths, parameters and response shapes, so Docker's
//! `networkdb-test` client and `diagnosticClient` can drive a swimnet agent.
//!
//! Every answer is HTTP 200, failures included. Text by default
//! (`"<message>\n<details>"`); `?json` gives compact JSON and `?json=pretty`
//! indented JSON, `{"message": ..., "details": ...}`. `?unsafe` takes and
//! shows table values raw instead of base64.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::api::{parse_addr, ApiState};
use crate::driver::{Command, TableCommand, TableError, TableReply};

const MISSING_PARAMETER: &str = "missing parameter";
const DB_NOT_AVAILABLE: &str = "database not available";

/// The paths served, as `/help` lists them.
pub const PATHS: &[&str] = &[
    "/",
    "/clusterpeers",
    "/createentry",
    "/deleteentry",
    "/getentry",
    "/gettable",
    "/help",
    "/join",
    "/joinnetwork",
    "/leavenetwork",
    "/networkpeers",
    "/networkstats",
    "/ready",
    "/updateentry",
];

/// Docker's `HTTPResult`.
#[derive(Debug, Serialize)]
struct DiagResult {
    message: String,
    details: Option<Details>,
}

#[derive(Debug, Serialize)]
struct PeerObj {
    #[serde(rename = "-=name")]
    name: String,
    ip: String,
}

#[derive(Debug, Serialize)]
struct EntryObj {
    key: String,
    value: String,
    owner: String,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Details {
    Usage {
        usage: String,
    },
    Info {
        info: String,
    },
    Error {
        error: String,
    },
    Peers {
        size: usize,
        entries: Option<Vec<PeerObj>>,
    },
    Entries {
        size: usize,
        entries: Option<Vec<EntryObj>>,
    },
    Entry(EntryObj),
    Stats {
        entries: i64,
        #[serde(rename = "QueueLen")]
        queue_len: i64,
    },
}

fn entry_line(i: usize, e: &EntryObj) -> String {
    format!(
        "{i}) k:`{}` -> v:`{}` owner:`{}`\n",
        e.key, e.value, e.owner
    )
}

impl Details {
    fn text(&self) -> String {
        match self {
            Details::Usage { usage } => format!("Usage: {usage}"),
            Details::Info { info } => info.clone(),
            Details::Error { error } => format!("Error: {error}"),
            Details::Peers { size, entries } => {
                let mut out = format!("total entries: {size}\n");
                for (i, p) in entries.iter().flatten().enumerate() {
                    out += &format!("{i}) {} -> {}\n", p.name, p.ip);
                }
                out
            }
            Details::Entries { size, entries } => {
                let mut out = format!("total entries: {size}\n");
                for (i, e) in entries.iter().flatten().enumerate() {
                    out += &entry_line(i, e);
                }
                out
            }
            Details::Entry(e) => entry_line(0, e),
            Details::Stats { entries, queue_len } => {
                format!("entries: {entries}, qlen: {queue_len}\n")
            }
        }
    }
}

impl DiagResult {
    fn ok(details: Option<Details>) -> Self {
        DiagResult {
            message: "OK".into(),
            details,
        }
    }

    fn fail(error: impl Into<String>) -> Self {
        DiagResult {
            message: "FAIL".into(),
            details: Some(Details::Error {
                error: error.into(),
            }),
        }
    }

    fn wrong(message: &str, usage: String) -> Self {
        DiagResult {
            message: message.into(),
            details: Some(Details::Usage { usage }),
        }
    }

    fn text(&self) -> String {
        match &self.details {
            Some(d) => format!("{}\n{}", self.message, d.text()),
            None => self.message.clone(),
        }
    }
}

/// Go's `encoding/json` escapes these inside strings; they only ever occur
/// inside strings in JSON text, so a plain replacement is exact.
fn go_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The request's form: every `name=value` pair of the query, in order
/// (a bare `name` has an empty value, as in Go's `r.Form`).
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn reply(&self, r: DiagResult) -> Response {
        match self.get("json") {
            Some(mode) => {
                let body = if mode == "pretty" {
                    serde_json::to_string_pretty(&r)
                } else {
                    serde_json::to_string(&r)
                }
                .unwrap_or_default();
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    go_escape(body),
                )
                    .into_response()
            }
            None => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                r.text(),
            )
                .into_response(),
        }
    }
}

async fn table(state: &ApiState, cmd: TableCommand) -> Result<TableReply, String> {
    let (tx, rx) = oneshot::channel();
    if state.commands.send(Command::Table(cmd, tx)).await.is_err() {
        return Err(DB_NOT_AVAILABLE.into());
    }
    match rx.await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(TableError::NotNetworkDb)) | Err(_) => Err(DB_NOT_AVAILABLE.into()),
        // Docker's own text on these paths.
        Ok(Err(TableError::NotAttached(nid))) => {
            Err(swimnet_networkdb::NdbError::NetworkNotJoined(nid).to_string())
        }
        Ok(Err(e)) => Err(e.to_string()),
    }
}

fn go_base64_error(e: base64::DecodeError) -> String {
    let at = match e {
        base64::DecodeError::InvalidByte(at, _) => at,
        base64::DecodeError::InvalidLength(n) => n,
        base64::DecodeError::InvalidLastSymbol(at, _) => at,
        base64::DecodeError::InvalidPadding => 0,
    };
    format!("illegal base64 data at input byte {at}")
}

fn show(value: &[u8], unsafe_: bool) -> String {
    if unsafe_ {
        String::from_utf8_lossy(value).into_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(value)
    }
}

/// The diagnostic listener's router (`--diagnostic-addr`): every path goes
/// to [`handle`], each request checked by `guard` (Host and Origin) first.
/// Its GETs change state, as Docker's do, so it is off unless asked for.
pub fn router(state: ApiState, guard: crate::http_guard::Guard) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::any(handle))
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::http_guard::enforce,
        ))
        .with_state(state)
}

/// Every diagnostic path: dispatches on the URL path. Unknown paths answer
/// Docker's "not implemented" text with status 404 (Docker answers 200, but
/// then a probe or scraper pointed at a wrong path reads success; under
/// `/v1/`, swimnet's own API, a JSON 404).
pub async fn handle(
    State(state): State<ApiState>,
    uri: Uri,
    query: Option<Query<Vec<(String, String)>>>,
) -> Response {
    let path = uri.path().to_string();
    if path.starts_with("/v1/") || path == "/v1" {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": format!("no endpoint {path}: see the README for the API")
            })),
        )
            .into_response();
    }
    let form = Form(query.map(|Query(q)| q).unwrap_or_default());
    let r = dispatch(&state, &path, &form).await;
    let mut response = form.reply(r);
    if !PATHS.contains(&path.as_str()) {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

/// What a handler answers: `Err` carries the answer for a request that
/// stopped early (a missing parameter, a failed command), so handlers can
/// use `?`; both sides are sent as they are.
type Answer = Result<DiagResult, DiagResult>;

/// One diagnostic request as a handler sees it: the agent, the URL path and
/// the query's form.
struct Request<'a> {
    state: &'a ApiState,
    path: &'a str,
    form: &'a Form,
}

impl Request<'_> {
    /// The values of the parameters `names`, in order; a missing one answers
    /// Docker's "missing parameter" with the path's `usage`.
    fn params<const N: usize>(
        &self,
        names: [&str; N],
        usage: &str,
    ) -> Result<[String; N], DiagResult> {
        let mut out: [String; N] = std::array::from_fn(|_| String::new());
        for (slot, name) in out.iter_mut().zip(names) {
            match self.form.get(name) {
                Some(v) => *slot = v.to_string(),
                None => {
                    return Err(DiagResult::wrong(
                        MISSING_PARAMETER,
                        format!("{}{usage}", self.path),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Whether `?unsafe` asks for raw table values instead of base64.
    fn raw_values(&self) -> bool {
        self.form.has("unsafe")
    }

    /// Sends `cmd` to the agent's NetworkDB; a failure becomes a "FAIL" answer.
    async fn table(&self, cmd: TableCommand) -> Result<TableReply, DiagResult> {
        table(self.state, cmd).await.map_err(DiagResult::fail)
    }
}

/// Answers one diagnostic request: picks the handler for `path` (Docker's
/// "not implemented" for an unknown one).
async fn dispatch(state: &ApiState, path: &str, form: &Form) -> DiagResult {
    let req = Request { state, path, form };
    let answer = match path {
        "/ready" => ready(),
        "/help" => help(),
        "/join" => join(&req).await,
        "/joinnetwork" | "/leavenetwork" => join_or_leave_network(&req).await,
        "/networkpeers" | "/clusterpeers" => peers(&req).await,
        "/createentry" | "/updateentry" => write_entry(&req).await,
        "/deleteentry" => delete_entry(&req).await,
        "/getentry" => get_entry(&req).await,
        "/gettable" => get_table(&req).await,
        "/networkstats" => network_stats(&req).await,
        other => Err(DiagResult::wrong(
            "not implemented",
            format!("URL path: {other} no method implemented check /help\n"),
        )),
    };
    answer.unwrap_or_else(|stopped| stopped)
}

/// `OK` once a table command went through.
fn done(r: Result<TableReply, DiagResult>) -> Answer {
    r.map(|_| DiagResult::ok(None))
}

/// `/ready`: always OK.
fn ready() -> Answer {
    Ok(DiagResult::ok(Some(Details::Info { info: "OK".into() })))
}

/// `/help`: the paths served, one a line.
fn help() -> Answer {
    let info: String = PATHS.iter().map(|p| format!("{p}\n")).collect();
    Ok(DiagResult::ok(Some(Details::Info { info })))
}

/// `/join?members=ip1,ip2,...`: joins those nodes (a NetworkDB agent only).
async fn join(req: &Request<'_>) -> Answer {
    let [members] = req.params(["members"], "?members=ip1,ip2,...")?;
    let path = req.path;
    let addrs = members
        .split(',')
        .map(parse_addr)
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| DiagResult::fail(format!("{path} error in the DB join {e}")))?;
    // Only a NetworkDB agent answers /join, as in Docker.
    req.table(TableCommand::Networks).await?;
    let (tx, rx) = oneshot::channel();
    if req
        .state
        .commands
        .send(Command::Join(addrs, tx))
        .await
        .is_err()
    {
        return Err(DiagResult::fail(DB_NOT_AVAILABLE));
    }
    match rx.await {
        Ok(Ok(_)) => Ok(DiagResult::ok(None)),
        Ok(Err(e)) => Err(DiagResult::fail(format!("{path} error in the DB join {e}"))),
        Err(_) => Err(DiagResult::fail(DB_NOT_AVAILABLE)),
    }
}

/// `/joinnetwork?nid=` and `/leavenetwork?nid=`.
async fn join_or_leave_network(req: &Request<'_>) -> Answer {
    let [nid] = req.params(["nid"], "?nid=network_id")?;
    let cmd = if req.path == "/joinnetwork" {
        TableCommand::JoinNetwork(nid)
    } else {
        TableCommand::LeaveNetwork(nid)
    };
    done(req.table(cmd).await)
}

/// `/networkpeers?nid=` (a peer with no known IP shown as `orphan-NAME`)
/// and `/clusterpeers`.
async fn peers(req: &Request<'_>) -> Answer {
    let network_peers = req.path == "/networkpeers";
    let cmd = if network_peers {
        let [nid] = req.params(["nid"], "?nid=test")?;
        TableCommand::NetworkPeers(nid)
    } else {
        TableCommand::ClusterPeers
    };
    let TableReply::Peers(peers) = req.table(cmd).await? else {
        return Err(DiagResult::fail(DB_NOT_AVAILABLE));
    };
    let entries: Vec<PeerObj> = peers
        .into_iter()
        .map(|(name, ip)| match ip {
            Some(ip) => PeerObj {
                name,
                ip: ip.to_string(),
            },
            None => PeerObj {
                name: if network_peers {
                    format!("orphan-{name}")
                } else {
                    name
                },
                ip: "unknown".into(),
            },
        })
        .collect();
    Ok(DiagResult::ok(Some(Details::Peers {
        size: entries.len(),
        entries: (!entries.is_empty()).then_some(entries),
    })))
}

/// `/createentry` and `/updateentry` (`?tname=&nid=&key=&value=`, the value
/// base64 unless `?unsafe`).
async fn write_entry(req: &Request<'_>) -> Answer {
    let [table, nid, key, value] = req.params(
        ["tname", "nid", "key", "value"],
        "?tname=table_name&nid=network_id&key=k&value=v",
    )?;
    let value = if req.raw_values() {
        value.into_bytes()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(&value)
            .map_err(|e| DiagResult::fail(go_base64_error(e)))?
    };
    let cmd = if req.path == "/createentry" {
        TableCommand::Create {
            nid,
            table,
            key,
            value,
        }
    } else {
        TableCommand::Update {
            nid,
            table,
            key,
            value,
        }
    };
    done(req.table(cmd).await)
}

/// `/deleteentry?tname=&nid=&key=`.
async fn delete_entry(req: &Request<'_>) -> Answer {
    let [table, nid, key] = req.params(
        ["tname", "nid", "key"],
        "?tname=table_name&nid=network_id&key=k",
    )?;
    done(req.table(TableCommand::Delete { table, nid, key }).await)
}

/// `/getentry?tname=&nid=&key=`: one entry (no owner shown, as in Docker).
async fn get_entry(req: &Request<'_>) -> Answer {
    let [table, nid, key] = req.params(
        ["tname", "nid", "key"],
        "?tname=table_name&nid=network_id&key=k",
    )?;
    let cmd = TableCommand::Get {
        table,
        nid,
        key: key.clone(),
    };
    let TableReply::Value(v) = req.table(cmd).await? else {
        return Err(DiagResult::fail(DB_NOT_AVAILABLE));
    };
    Ok(DiagResult::ok(Some(Details::Entry(EntryObj {
        key,
        value: show(&v, req.raw_values()),
        owner: String::new(),
    }))))
}

/// `/gettable?tname=&nid=`: every live entry of the table.
async fn get_table(req: &Request<'_>) -> Answer {
    let [table, nid] = req.params(["tname", "nid"], "?tname=table_name&nid=network_id")?;
    let TableReply::Entries(es) = req.table(TableCommand::List { table, nid }).await? else {
        return Err(DiagResult::fail(DB_NOT_AVAILABLE));
    };
    let raw = req.raw_values();
    let entries: Vec<EntryObj> = es
        .into_iter()
        .map(|e| EntryObj {
            key: e.key,
            value: show(&e.value, raw),
            owner: e.owner,
        })
        .collect();
    Ok(DiagResult::ok(Some(Details::Entries {
        size: entries.len(),
        entries: (!entries.is_empty()).then_some(entries),
    })))
}

/// `/networkstats?nid=`: the network's entry count and queue length (-1
/// each when the agent is not on it).
async fn network_stats(req: &Request<'_>) -> Answer {
    let [nid] = req.params(["nid"], "?nid=test")?;
    let TableReply::Stats(s) = req.table(TableCommand::NetworkStats(nid)).await? else {
        return Err(DiagResult::fail(DB_NOT_AVAILABLE));
    };
    let (entries, queue_len) = match s {
        Some((e, q)) => (e as i64, q as i64),
        None => (-1, -1),
    };
    Ok(DiagResult::ok(Some(Details::Stats { entries, queue_len })))
}
