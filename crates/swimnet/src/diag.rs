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
/// Docker's "not implemented" (under `/v1/`, swimnet's own API, a JSON 404).
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
    form.reply(r)
}

async fn dispatch(state: &ApiState, path: &str, form: &Form) -> DiagResult {
    let unsafe_ = form.has("unsafe");
    let need = |names: &[&str], usage: &str| -> Result<Vec<String>, DiagResult> {
        let mut out = Vec::new();
        for n in names {
            match form.get(n) {
                Some(v) => out.push(v.to_string()),
                None => {
                    return Err(DiagResult::wrong(
                        MISSING_PARAMETER,
                        format!("{path}{usage}"),
                    ))
                }
            }
        }
        Ok(out)
    };
    macro_rules! params {
        ($names:expr, $usage:expr) => {
            match need($names, $usage) {
                Ok(v) => v,
                Err(r) => return r,
            }
        };
    }
    let done = |r: Result<TableReply, String>| match r {
        Ok(_) => DiagResult::ok(None),
        Err(e) => DiagResult::fail(e),
    };
    match path {
        "/ready" => DiagResult::ok(Some(Details::Info { info: "OK".into() })),
        "/help" => {
            let info: String = PATHS.iter().map(|p| format!("{p}\n")).collect();
            DiagResult::ok(Some(Details::Info { info }))
        }
        "/join" => {
            let p = params!(&["members"], "?members=ip1,ip2,...");
            let addrs: Result<Vec<_>, String> = p[0].split(',').map(parse_addr).collect();
            let addrs = match addrs {
                Ok(a) => a,
                Err(e) => return DiagResult::fail(format!("{path} error in the DB join {e}")),
            };
            // Only a NetworkDB agent answers /join, as in Docker.
            if let Err(e) = table(state, TableCommand::Networks).await {
                return DiagResult::fail(e);
            }
            let (tx, rx) = oneshot::channel();
            if state.commands.send(Command::Join(addrs, tx)).await.is_err() {
                return DiagResult::fail(DB_NOT_AVAILABLE);
            }
            match rx.await {
                Ok(Ok(_)) => DiagResult::ok(None),
                Ok(Err(e)) => DiagResult::fail(format!("{path} error in the DB join {e}")),
                Err(_) => DiagResult::fail(DB_NOT_AVAILABLE),
            }
        }
        "/joinnetwork" | "/leavenetwork" => {
            let p = params!(&["nid"], "?nid=network_id");
            let nid = p[0].clone();
            let cmd = if path == "/joinnetwork" {
                TableCommand::JoinNetwork(nid)
            } else {
                TableCommand::LeaveNetwork(nid)
            };
            done(table(state, cmd).await)
        }
        "/networkpeers" | "/clusterpeers" => {
            let cmd = if path == "/networkpeers" {
                let p = params!(&["nid"], "?nid=test");
                TableCommand::NetworkPeers(p[0].clone())
            } else {
                TableCommand::ClusterPeers
            };
            match table(state, cmd).await {
                Ok(TableReply::Peers(peers)) => {
                    let orphans = path == "/networkpeers";
                    let entries: Vec<PeerObj> = peers
                        .into_iter()
                        .map(|(name, ip)| match ip {
                            Some(ip) => PeerObj {
                                name,
                                ip: ip.to_string(),
                            },
                            None => PeerObj {
                                name: if orphans {
                                    format!("orphan-{name}")
                                } else {
                                    name
                                },
                                ip: "unknown".into(),
                            },
                        })
                        .collect();
                    DiagResult::ok(Some(Details::Peers {
                        size: entries.len(),
                        entries: (!entries.is_empty()).then_some(entries),
                    }))
                }
                Ok(_) => DiagResult::fail(DB_NOT_AVAILABLE),
                Err(e) => DiagResult::fail(e),
            }
        }
        "/createentry" | "/updateentry" => {
            let p = params!(
                &["tname", "nid", "key", "value"],
                "?tname=table_name&nid=network_id&key=k&value=v"
            );
            let value = if unsafe_ {
                p[3].clone().into_bytes()
            } else {
                match base64::engine::general_purpose::STANDARD.decode(&p[3]) {
                    Ok(v) => v,
                    Err(e) => return DiagResult::fail(go_base64_error(e)),
                }
            };
            let (table_name, nid, key) = (p[0].clone(), p[1].clone(), p[2].clone());
            let cmd = if path == "/createentry" {
                TableCommand::Create {
                    nid,
                    table: table_name,
                    key,
                    value,
                }
            } else {
                TableCommand::Update {
                    nid,
                    table: table_name,
                    key,
                    value,
                }
            };
            done(table(state, cmd).await)
        }
        "/deleteentry" => {
            let p = params!(
                &["tname", "nid", "key"],
                "?tname=table_name&nid=network_id&key=k"
            );
            done(
                table(
                    state,
                    TableCommand::Delete {
                        table: p[0].clone(),
                        nid: p[1].clone(),
                        key: p[2].clone(),
                    },
                )
                .await,
            )
        }
        "/getentry" => {
            let p = params!(
                &["tname", "nid", "key"],
                "?tname=table_name&nid=network_id&key=k"
            );
            let cmd = TableCommand::Get {
                table: p[0].clone(),
                nid: p[1].clone(),
                key: p[2].clone(),
            };
            match table(state, cmd).await {
                Ok(TableReply::Value(v)) => DiagResult::ok(Some(Details::Entry(EntryObj {
                    key: p[2].clone(),
                    value: show(&v, unsafe_),
                    owner: String::new(),
                }))),
                Ok(_) => DiagResult::fail(DB_NOT_AVAILABLE),
                Err(e) => DiagResult::fail(e),
            }
        }
        "/gettable" => {
            let p = params!(&["tname", "nid"], "?tname=table_name&nid=network_id");
            let cmd = TableCommand::List {
                table: p[0].clone(),
                nid: p[1].clone(),
            };
            match table(state, cmd).await {
                Ok(TableReply::Entries(es)) => {
                    let entries: Vec<EntryObj> = es
                        .into_iter()
                        .map(|e| EntryObj {
                            key: e.key,
                            value: show(&e.value, unsafe_),
                            owner: e.owner,
                        })
                        .collect();
                    DiagResult::ok(Some(Details::Entries {
                        size: entries.len(),
                        entries: (!entries.is_empty()).then_some(entries),
                    }))
                }
                Ok(_) => DiagResult::fail(DB_NOT_AVAILABLE),
                Err(e) => DiagResult::fail(e),
            }
        }
        "/networkstats" => {
            let p = params!(&["nid"], "?nid=test");
            match table(state, TableCommand::NetworkStats(p[0].clone())).await {
                Ok(TableReply::Stats(s)) => {
                    let (entries, queue_len) = match s {
                        Some((e, q)) => (e as i64, q as i64),
                        None => (-1, -1),
                    };
                    DiagResult::ok(Some(Details::Stats { entries, queue_len }))
                }
                Ok(_) => DiagResult::fail(DB_NOT_AVAILABLE),
                Err(e) => DiagResult::fail(e),
            }
        }
        other => DiagResult::wrong(
            "not implemented",
            format!("URL path: {other} no method implemented check /help\n"),
        ),
    }
}
