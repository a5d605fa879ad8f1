//! `swimnet monitor`: prints an agent's event stream (`GET /v1/events`),
//! one line per event, until interrupted or the agent stops. Every field a
//! peer chose (names, tags, keys, values) is escaped, so an event cannot
//! forge lines or drive the terminal.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use swimnet::agent_events::EventView;
use swimnet::api::parse_addr;
use swimnet::client::{segment, Client};
use swimnet::escape::{esc, needs_escape};

/// How `monitor` prints each event.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum MonitorFormat {
    /// `TIME TYPE field=value ...`.
    Text,
    /// The API's JSON line.
    Json,
}

/// `swimnet monitor`'s flags.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Agent API address.
    #[arg(long, default_value = crate::DEFAULT_API, value_parser = parse_addr)]
    pub api: SocketAddr,
    /// Only these events, comma-separated: types (member-join,
    /// member-leave, member-failed, member-update, member-reap, user,
    /// query, table-create, table-update, table-delete, network-attach,
    /// network-detach), groups (member, table, network), user:NAME,
    /// query:NAME.
    #[arg(long)]
    pub filter: Option<String>,
    /// Only the table and network events of this NetworkDB network.
    #[arg(long)]
    pub network: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: MonitorFormat,
}

/// The request path for `args`.
fn events_path(args: &MonitorArgs) -> String {
    let mut query = Vec::new();
    if let Some(f) = &args.filter {
        query.push(format!("type={}", segment(f)));
    }
    if let Some(n) = &args.network {
        query.push(format!("network={}", segment(n)));
    }
    if query.is_empty() {
        "/v1/events".into()
    } else {
        format!("/v1/events?{}", query.join("&"))
    }
}

/// Streams the events to stdout until the agent ends the stream; a
/// `lagged` line ends it with that error.
pub fn run(client: &Client, args: &MonitorArgs) -> Result<(), String> {
    let lines = client.watch(&events_path(args))?;
    let stdout = std::io::stdout();
    for line in lines.lines() {
        let line = line.map_err(|e| format!("the event stream broke: {e}"))?;
        if line.trim().is_empty() {
            continue; // keep-alive
        }
        let v: EventView = serde_json::from_str(&line)
            .map_err(|e| format!("bad event line from the agent: {e}"))?;
        if v.kind == "lagged" {
            return Err(v
                .error
                .unwrap_or_else(|| "the event stream fell behind".into()));
        }
        let shown = match args.format {
            MonitorFormat::Json => json_escaped(&line),
            MonitorFormat::Text => text_line(&v),
        };
        let mut out = stdout.lock();
        writeln!(out, "{shown}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    Err("the agent closed the event stream (it stopped)".into())
}

/// A JSON line with every character [`needs_escape`] would escape written
/// as `\uXXXX` (valid inside JSON strings, and the only place such
/// characters can be).
pub fn json_escaped(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if needs_escape(c) && !matches!(c, '\\' | '"') {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A byte string the API sent as base64: as (escaped) text when it is
/// UTF-8, otherwise `base64:...`.
fn shown_bytes(b64: &str) -> String {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => esc(t).to_string(),
            Err(_) => format!("base64:{b64}"),
        },
        Err(_) => format!("base64:{b64}"),
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
fn clock(unix_ms: u64) -> String {
    let s = unix_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        unix_ms % 1000
    )
}

/// One event as a text line: `TIME TYPE field=value ...`, values escaped.
pub fn text_line(v: &EventView) -> String {
    let mut fields: Vec<String> = Vec::new();
    let mut put = |k: &str, val: String| fields.push(format!("{k}={val}"));
    if let Some(m) = &v.member {
        put("node", esc(&m.name).to_string());
        put("addr", esc(&m.addr).to_string());
        put("status", esc(&m.status).to_string());
        if !m.tags.is_empty() {
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            put("tags", esc(tags.join(",")).to_string());
        }
    }
    if let Some(id) = v.id {
        put("id", id.to_string());
    }
    for (k, val) in [
        ("name", &v.name),
        ("network", &v.network),
        ("table", &v.table),
        ("key", &v.key),
        ("node", &v.node),
    ] {
        if let Some(val) = val {
            put(k, esc(val).to_string());
        }
    }
    if let Some(l) = v.ltime {
        put("ltime", l.to_string());
    }
    for (k, val) in [
        ("payload", &v.payload),
        ("value", &v.value),
        ("prev", &v.prev),
    ] {
        if let Some(val) = val {
            put(k, shown_bytes(val));
        }
    }
    if let Some(o) = &v.origin {
        put("origin", esc(o).to_string());
    }
    format!(
        "{} {:<14} {}",
        clock(v.time_ms),
        esc(&v.kind).to_string(),
        fields.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_escape_what_peers_chose() {
        let v: EventView = serde_json::from_str(
            r#"{"type":"table-update","seq":3,"time_ms":3723004,"network":"n\u001b[2J","table":"t","key":"k\nx","value":"aGk=","prev":"/w==","origin":"remote"}"#,
        )
        .unwrap();
        let l = text_line(&v);
        assert_eq!(
            l,
            "01:02:03.004 table-update   network=n\\x1b[2J table=t key=k\\nx value=hi prev=base64:/w== origin=remote"
        );
        assert!(!l.chars().any(char::is_control));
    }

    #[test]
    fn json_lines_escape_bidi_and_c1_controls() {
        let line = "{\"type\":\"user\",\"name\":\"a\u{202e}b\u{9b}c \\\"q\\\"\"}";
        let out = json_escaped(line);
        assert_eq!(
            out,
            "{\"type\":\"user\",\"name\":\"a\\u202eb\\u009bc \\\"q\\\"\"}"
        );
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["name"], "a\u{202e}b\u{9b}c \"q\"");
    }

    #[test]
    fn the_path_carries_the_filters() {
        let args = |filter: Option<&str>, network: Option<&str>| MonitorArgs {
            api: "127.0.0.1:7380".parse().unwrap(),
            filter: filter.map(String::from),
            network: network.map(String::from),
            format: MonitorFormat::Text,
        };
        assert_eq!(events_path(&args(None, None)), "/v1/events");
        assert_eq!(
            events_path(&args(Some("member-join,user:d d"), Some("n1"))),
            "/v1/events?type=member-join%2Cuser%3Ad%20d&network=n1"
        );
    }
}
