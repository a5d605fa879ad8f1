//! The Serf commands operators use (`--protocol serf` agents): `event`,
//! `query`, `respond`, `serf-events`, `tags`, `force-leave`,
//! `reachability`, and the `members` filters. Each is a client of the
//! endpoints in `api_serf.rs`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;

use clap::{Args, Subcommand, ValueEnum};
use swimnet::api::parse_addr;
use swimnet::api_serf::{ReachabilityView, SerfEventsView};
use swimnet::client::{segment, Client};

/// Default address of the local API.
const DEFAULT_API: &str = "127.0.0.1:7380";

/// Output format.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutFormat {
    /// For people.
    Text,
    /// JSON.
    Json,
}

/// `KEY=VALUE`.
fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?}: use KEY=VALUE"))
}

/// `swimnet members` filters, as `serf members`.
#[derive(Args, Debug, Default)]
pub struct MemberFilterArgs {
    /// Only members whose status (alive, suspect, failed, left) matches
    /// this regular expression (anchored).
    #[arg(long)]
    status: Option<String>,
    /// Only members whose name matches this regular expression (anchored).
    #[arg(long)]
    name: Option<String>,
    /// Only members whose tag KEY matches the regular expression VALUE
    /// (anchored; repeatable, all must match).
    #[arg(long = "tag", value_parser = parse_kv)]
    tags: Vec<(String, String)>,
}

impl MemberFilterArgs {
    /// `/v1/members` with the filters as query parameters.
    pub fn path(&self) -> String {
        let mut q: Vec<String> = Vec::new();
        if let Some(s) = &self.status {
            q.push(format!("status={}", segment(s)));
        }
        if let Some(n) = &self.name {
            q.push(format!("name={}", segment(n)));
        }
        for (k, v) in &self.tags {
            q.push(format!("tag={}", segment(&format!("{k}={v}"))));
        }
        if q.is_empty() {
            "/v1/members".to_string()
        } else {
            format!("/v1/members?{}", q.join("&"))
        }
    }
}

/// The Serf subcommands (flattened into the top-level command list).
#[derive(Subcommand)]
pub enum SerfCmd {
    /// Send a Serf user event to the cluster (`--protocol serf` agents).
    Event {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Receivers may coalesce it with other events of the same name.
        #[arg(long)]
        coalesce: bool,
        /// Event name.
        name: String,
        /// Payload (text).
        payload: Option<String>,
    },
    /// Send a Serf query and print the acks and answers as they come.
    Query {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Only this node handles the query (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Only nodes whose tag KEY matches the regular expression VALUE
        /// (repeatable).
        #[arg(long = "tag", value_parser = parse_kv)]
        tags: Vec<(String, String)>,
        /// How long the query stays open (`3s`; default: Serf's, from the
        /// cluster size).
        #[arg(long)]
        timeout: Option<String>,
        /// Do not ask for acks.
        #[arg(long)]
        no_ack: bool,
        /// Ask each responder to relay its answer through this many other
        /// nodes too.
        #[arg(long, default_value_t = 0)]
        relay_factor: u8,
        /// Output format (json: one object at the end, like `serf query
        /// -format=json`).
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
        /// Query name.
        name: String,
        /// Payload (text).
        payload: Option<String>,
    },
    /// Answer a query this agent received (its id in `serf-events`).
    Respond {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// The query's id.
        id: u64,
        /// Answer (text).
        payload: Option<String>,
    },
    /// The Serf user events and queries this agent received lately.
    SerfEvents {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Only those after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutFormat,
    },
    /// Change this agent's Serf tags at runtime.
    Tags {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Set a tag (repeatable).
        #[arg(long = "set", value_parser = parse_kv)]
        set: Vec<(String, String)>,
        /// Delete a tag (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Tell the cluster that a failed node left (Serf's force-leave).
    ForceLeave {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Also ask Serf nodes to erase it from their member lists at once.
        #[arg(long)]
        prune: bool,
        /// Node name.
        node: String,
    },
    /// Ping every member with a Serf query and report who did not ack.
    Reachability {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// How long to wait for acks (default: Serf's query timeout).
        #[arg(long)]
        timeout: Option<String>,
    },
}

/// Runs a Serf subcommand.
pub fn run(cmd: SerfCmd, token_file: Option<&Path>) -> Result<(), String> {
    let connect = |api: SocketAddr| Client::connect(api, token_file);
    match cmd {
        SerfCmd::Event {
            api,
            coalesce,
            name,
            payload,
        } => {
            let body = serde_json::json!({
                "name": name, "payload": payload.unwrap_or_default(), "coalesce": coalesce,
            });
            let _: serde_json::Value = connect(api)?.post("/v1/serf/event", body)?;
            println!("Event '{name}' dispatched! Coalescing enabled: {coalesce}");
            Ok(())
        }
        SerfCmd::Query {
            api,
            nodes,
            tags,
            timeout,
            no_ack,
            relay_factor,
            format,
            name,
            payload,
        } => {
            let body = serde_json::json!({
                "name": name,
                "payload": payload.unwrap_or_default(),
                "nodes": nodes,
                "tags": tags.into_iter().collect::<BTreeMap<_, _>>(),
                "timeout": timeout,
                "ack": !no_ack,
                "relay_factor": relay_factor,
            });
            run_query(connect(api)?, body, format)
        }
        SerfCmd::Respond { api, id, payload } => {
            let body = serde_json::json!({"id": id, "payload": payload.unwrap_or_default()});
            let _: serde_json::Value = connect(api)?.post("/v1/serf/respond", body)?;
            println!("answered query {id}");
            Ok(())
        }
        SerfCmd::SerfEvents { api, after, format } => {
            let v: SerfEventsView = connect(api)?.get(&format!("/v1/serf/events?after={after}"))?;
            print_events(&v, format)
        }
        SerfCmd::Tags { api, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                return Err("nothing to do: give --set KEY=VALUE and/or --delete KEY".into());
            }
            let body = serde_json::json!({
                "set": set.into_iter().collect::<BTreeMap<_, _>>(), "delete": delete,
            });
            let v: serde_json::Value = connect(api)?.post("/v1/serf/tags", body)?;
            println!("Successfully updated agent tags: {}", v["tags"]);
            Ok(())
        }
        SerfCmd::ForceLeave { api, prune, node } => {
            let body = serde_json::json!({"node": node, "prune": prune});
            let _: serde_json::Value = connect(api)?.post("/v1/serf/force-leave", body)?;
            println!("force-leave of {node} sent");
            Ok(())
        }
        SerfCmd::Reachability { api, timeout } => {
            let path = match timeout {
                Some(t) => format!("/v1/serf/reachability?timeout={}", segment(&t)),
                None => "/v1/serf/reachability".to_string(),
            };
            let v: ReachabilityView = connect(api)?.get(&path)?;
            print_reachability(&v)
        }
    }
}

/// Streams a query's lines; text as they come, JSON at the end.
fn run_query(client: Client, body: serde_json::Value, format: OutFormat) -> Result<(), String> {
    let reader = client.post_stream("/v1/serf/query", body)?;
    let mut acks: Vec<String> = Vec::new();
    let mut responses: BTreeMap<String, String> = BTreeMap::new();
    let text = format == OutFormat::Text;
    for line in reader.lines() {
        let line = line.map_err(|e| format!("reading the query's answers: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("bad line from the agent: {e}"))?;
        let from = v["from"].as_str().unwrap_or("").to_string();
        match v["type"].as_str() {
            Some("query") if text => {
                println!("Query '{}' dispatched", v["name"].as_str().unwrap_or(""))
            }
            Some("ack") => {
                if text {
                    println!("Ack from '{from}'");
                }
                acks.push(from);
            }
            Some("response") => {
                let p = v["payload"].as_str().unwrap_or("").to_string();
                if text {
                    println!("Response from '{from}': {p}");
                }
                responses.insert(from, p);
            }
            Some("done") if text => {
                println!("Total Acks: {}", acks.len());
                println!("Total Responses: {}", responses.len());
            }
            _ if v.get("error").is_some() => {
                return Err(v["error"].as_str().unwrap_or("query failed").to_string());
            }
            _ => {}
        }
    }
    if !text {
        let out = serde_json::json!({"Acks": acks, "Responses": responses});
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

fn print_events(v: &SerfEventsView, format: OutFormat) -> Result<(), String> {
    if format == OutFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    for e in &v.events {
        let who = e
            .from
            .as_ref()
            .map(|f| format!(" from {f} (id {})", e.id.unwrap_or(0)))
            .unwrap_or_default();
        println!(
            "{:>5} {:<5} {}{} ltime {} payload {:?} ({} ms ago)",
            e.seq, e.kind, e.name, who, e.ltime, e.payload, e.age_ms
        );
    }
    Ok(())
}

fn print_reachability(v: &ReachabilityView) -> Result<(), String> {
    println!("Live members: {}", v.live.len());
    println!("Acks received: {}", v.acked.len());
    for n in &v.unexpected {
        println!("Ack from a node that is not a live member: {n}");
    }
    if v.missing.is_empty() {
        println!("Successfully contacted all live nodes");
        return Ok(());
    }
    println!("Missing ACKs from:");
    for n in &v.missing {
        println!("  {n}");
    }
    Err(format!(
        "{} of {} live members did not ack",
        v.missing.len(),
        v.live.len()
    ))
}
