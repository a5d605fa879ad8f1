//! `swimnet`: the agent and its command-line client.

mod cli;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use swimnet::agent::{self, AgentOptions, HttpOptions, KeySource, Profile, Protocol};
use swimnet::api::{
    CoordinatesView, EntryView, MembersView, NetworksView, PeersView, RttView, TableView,
};
use swimnet::api_server::{parse_duration, HttpLimits};
use swimnet::client::{segment, Client};
use swimnet::keyfile::{encode_key, generate_key, load_key_file, load_token_file, parse_key};

/// Parses an address flag: `IP:PORT` or `HOST:PORT` (resolved now; IPv4
/// preferred), port 7946 when left out.
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    swimnet::resolve::resolve_now(text)
}

/// Default address of the local API.
const DEFAULT_API: &str = "127.0.0.1:7380";

#[derive(Parser)]
#[command(
    name = "swimnet",
    version,
    about = "Gossip-based membership and network control plane (memberlist/Serf wire-compatible)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// File holding the agent's API token (client commands; mode 0600).
    /// `SWIMNET_API_TOKEN` gives the token itself instead.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    Lan,
    Wan,
    Local,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Serf,
    Memberlist,
    Networkdb,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// The `agent` subcommand's flags. Each also reads `SWIMNET_<FLAG>` and
/// the `--config` file's key of the same name (see `cli::config_file`).
#[derive(Args)]
struct AgentArgs {
    /// TOML file whose keys are these flags' names with `_` for `-`
    /// (`api_idle_timeout = "10s"`); flags and SWIMNET_* variables win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Unique node name.
    #[arg(long)]
    node: String,
    /// Address for gossip (UDP and TCP), IP:PORT or HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7946", value_parser = parse_addr)]
    bind: SocketAddr,
    /// Address peers use to reach this node (default: --bind).
    #[arg(long, value_parser = parse_addr)]
    advertise: Option<SocketAddr>,
    /// A node to join at start, HOST:PORT or IP:PORT (repeatable, or
    /// comma-separated); resolved at each attempt and retried with a short
    /// backoff until one answers.
    #[arg(long, value_delimiter = ',', value_parser = swimnet::resolve::check_seed)]
    join: Vec<String>,
    /// Like --join, Serf's way: tried every --retry-interval, at most
    /// --retry-max times, then the agent exits with an error.
    #[arg(long, value_delimiter = ',', value_parser = swimnet::resolve::check_seed)]
    retry_join: Vec<String>,
    /// Wait between --retry-join attempts (`30s`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    retry_interval: std::time::Duration,
    /// --retry-join attempts before giving up; 0 tries forever.
    #[arg(long, default_value_t = 0)]
    retry_max: u32,
    /// Encryption key, base64 of 16, 24 or 32 bytes (`swimnet keygen` makes
    /// one). Visible to every local user in `ps`: prefer --encrypt-file or
    /// the SWIMNET_ENCRYPT_KEY environment variable.
    #[arg(long, env = "SWIMNET_ENCRYPT_KEY", hide_env_values = true, conflicts_with_all = ["keyring_file", "encrypt_file"])]
    encrypt: Option<String>,
    /// File holding one base64 encryption key (mode 0600).
    #[arg(long, conflicts_with = "keyring_file")]
    encrypt_file: Option<PathBuf>,
    /// Keyring file (JSON list of base64 keys, primary first); rewritten on key changes.
    #[arg(long)]
    keyring_file: Option<PathBuf>,
    /// A tag KEY=VALUE (repeatable), carried in the node metadata the way Serf does.
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// Timer preset (memberlist's LAN, WAN or local defaults).
    #[arg(long, value_enum, default_value = "lan")]
    profile: ProfileArg,
    /// Local API address. A non-loopback address needs --api-token-file.
    #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
    api: SocketAddr,
    /// A host name the API answers to besides IP addresses and localhost
    /// (repeatable); requests naming any other host are refused.
    #[arg(long = "api-host", value_delimiter = ',')]
    api_hosts: Vec<String>,
    /// File holding the API's bearer token (mode 0600); every request must
    /// then send `Authorization: Bearer TOKEN`.
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// Serve Docker's NetworkDB diagnostic paths on this IP:PORT (off by
    /// default: their GETs change state, so any web page could drive them).
    #[arg(long, value_parser = parse_addr)]
    diagnostic_addr: Option<SocketAddr>,
    /// Most HTTP connections served at once per listener.
    #[arg(long, default_value_t = 256)]
    api_max_connections: usize,
    /// Close an HTTP connection whose next request has not arrived in this
    /// time (`30s`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    api_idle_timeout: std::time::Duration,
    /// Answer 408 to a request not answered in this time.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    api_request_timeout: std::time::Duration,
    /// Protocol on top of memberlist: Docker NetworkDB tables (the default), a Serf member, or plain memberlist.
    #[arg(long, value_enum, default_value = "networkdb")]
    protocol: ProtocolArg,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level (off, error, warn, info, debug, trace), or RUST_LOG-style
    /// directives: `swimnet_core=debug,info`.
    #[arg(long, default_value = "info", value_parser = cli::log_level::parse_log_level)]
    log_level: String,
    /// Latency-aware peer selection: bias gossip, probes, indirect-probe,
    /// push/pull and NetworkDB table-gossip and bulk-sync peers toward
    /// near nodes (Vivaldi distance), always keeping one uniformly
    /// random pick. `--topology-aware=false` restores uniform choice.
    /// Default: true.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    topology_aware: bool,
    /// Directory for the restart snapshot (members, networks, own table
    /// entries, keyring); a restart without --join rejoins through it.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run a program for events, `[FILTER=]PATH` (repeatable), as Serf's
    /// -event-handler: FILTER is e.g. `member-join,member-failed`,
    /// `user:NAME`, `query:NAME` or `table` (default: every event).
    #[arg(long = "event-handler", value_parser = swimnet::event_handler::HandlerSpec::parse)]
    event_handlers: Vec<swimnet::event_handler::HandlerSpec>,
    /// Kill an event handler still running after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    event_handler_timeout: std::time::Duration,
    #[command(flatten)]
    overlay: cli::overlay::OverlayAgentArgs,
}

// Parsed once per run: the size of the `agent` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run an agent until SIGINT/SIGTERM, then leave gracefully.
    Agent(AgentArgs),
    /// List the members an agent knows.
    Members {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        filter: cli::serf::MemberFilterArgs,
    },
    #[command(flatten)]
    Serf(cli::serf::SerfCmd),
    /// Estimated round trip time between this agent's node and NODE, or
    /// between two nodes, from their Vivaldi network coordinates.
    Rtt {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Node to estimate the RTT to.
        node: String,
        /// Second node (default: the agent's own node).
        other: Option<String>,
    },
    /// Show the Vivaldi network coordinates an agent knows (its own included).
    Coordinates {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Show an agent's figures: identity, members by status, health,
    /// traffic by message kind, queues, networks, and the limits that bit.
    Info {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Ask an agent to join other nodes.
    Join {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        /// Addresses to join (IP:PORT).
        #[arg(required = true, value_parser = parse_addr)]
        addrs: Vec<SocketAddr>,
    },
    /// Stream an agent's events (members, user events, queries, tables,
    /// networks), one line each, until interrupted.
    Monitor(cli::monitor::MonitorArgs),
    /// Ask an agent to leave the cluster gracefully and stop.
    Leave {
        /// Agent API address.
        #[arg(long, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
    },
    /// Inspect or change the keyrings of the cluster (or, with `--local`, of one agent) at runtime.
    Keys {
        /// Agent API address.
        #[arg(long, global = true, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        #[command(subcommand)]
        op: cli::keys::KeysCmd,
    },
    /// NetworkDB networks of an agent run with `--protocol networkdb`.
    Network {
        /// Agent API address.
        #[arg(long, global = true, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        #[command(subcommand)]
        op: NetworkCmd,
    },
    /// NetworkDB tables of an agent run with `--protocol networkdb`.
    Table {
        /// Agent API address.
        #[arg(long, global = true, default_value = DEFAULT_API, value_parser = parse_addr)]
        api: SocketAddr,
        #[command(subcommand)]
        op: TableCmd,
    },
    /// Overlay networks (VXLAN) of agents run with `--protocol networkdb`:
    /// create, list, delete, attach and detach namespaces, list endpoints.
    Overlay(cli::overlay::OverlayArgs),
    /// Print a new random encryption key (base64, 32 bytes).
    Keygen,
    /// Run a local cluster on loopback, crash a node, show its detection, exit.
    Demo {
        /// Number of agents.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
    },
    /// Print a shell completion script (bash, zsh, fish, ...) to stdout.
    Completions(cli::packaging::CompletionsArgs),
    /// Print the swimnet(1) man page, or write one page per command with
    /// --out DIR.
    Man(cli::packaging::ManArgs),
    /// Run a simulated cluster described by a scenario file (virtual time,
    /// modelled network) and write a report: report.json (identical for the
    /// same seed), summary.txt, host.json and SVG charts. Exits non-zero when
    /// an invariant fails, printing the seed to replay.
    #[cfg(feature = "sim")]
    Sim {
        /// Scenario file (TOML; see scenarios/).
        scenario: PathBuf,
        /// Seed (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Output directory (default: sim-out/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Attach the agent to a network.
    Join {
        /// Network ID.
        network: String,
    },
    /// Detach the agent from a network.
    Leave {
        /// Network ID.
        network: String,
    },
    /// List the networks the agent is attached to.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// List the active nodes attached to a network.
    Peers {
        /// Network ID.
        network: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum TableCmd {
    /// Create or update an entry owned by the agent.
    Put {
        /// Network ID.
        network: String,
        /// Table name.
        table: String,
        /// Key.
        key: String,
        /// Value (text, taken as its UTF-8 bytes).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value (raw bytes) from this file instead.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print an entry's value (raw bytes) to stdout.
    Get {
        /// Network ID.
        network: String,
        /// Table name.
        table: String,
        /// Key.
        key: String,
    },
    /// Delete an entry owned by the agent.
    Delete {
        /// Network ID.
        network: String,
        /// Table name.
        table: String,
        /// Key.
        key: String,
    },
    /// List the live entries of a table.
    List {
        /// Network ID.
        network: String,
        /// Table name.
        table: String,
        /// Output format (JSON values are base64).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Stream a table's changes as JSON lines (the current entries first, as
    /// `create` events) until interrupted.
    Watch {
        /// Network ID.
        network: String,
        /// Table name.
        table: String,
    },
}

fn decode_b64(v: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(v)
        .map_err(|e| format!("bad value from the agent: {e}"))
}

/// A value for a text listing: as text when it is printable UTF-8,
/// otherwise `base64:...`.
fn printable(v: &[u8], b64: &str) -> String {
    match std::str::from_utf8(v) {
        Ok(t) if !t.chars().any(char::is_control) => t.to_string(),
        _ => format!("base64:{b64}"),
    }
}

fn run_network(client: Client, op: NetworkCmd) -> Result<(), String> {
    match op {
        NetworkCmd::Join { network } => {
            let _: serde_json::Value = client.post(
                &format!("/v1/networks/{}/join", segment(&network)),
                serde_json::json!({}),
            )?;
            println!("joined network {network}");
        }
        NetworkCmd::Leave { network } => {
            let _: serde_json::Value = client.post(
                &format!("/v1/networks/{}/leave", segment(&network)),
                serde_json::json!({}),
            )?;
            println!("left network {network}");
        }
        NetworkCmd::List { format } => {
            let v: NetworksView = client.get("/v1/networks")?;
            print_view(format, &v, |v| {
                for n in &v.networks {
                    println!("{n}");
                }
                Ok(())
            })?;
        }
        NetworkCmd::Peers { network, format } => {
            let v: PeersView = client.get(&format!("/v1/networks/{}/peers", segment(&network)))?;
            print_view(format, &v, |v| {
                for p in &v.peers {
                    let ip = if p.ip.is_empty() { "unknown" } else { &p.ip };
                    println!("{:<20} {ip}", p.name);
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn run_table(client: Client, op: TableCmd) -> Result<(), String> {
    let path = |n: &str, t: &str, k: &str| {
        format!("/v1/tables/{}/{}/{}", segment(n), segment(t), segment(k))
    };
    match op {
        TableCmd::Put {
            network,
            table,
            key,
            value,
            file,
        } => {
            let bytes = match (value, file) {
                (_, Some(p)) => {
                    std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
                }
                (Some(v), None) => v.into_bytes(),
                (None, None) => return Err("give a VALUE or --file PATH".into()),
            };
            let _: serde_json::Value = client.put_bytes(&path(&network, &table, &key), &bytes)?;
            println!("wrote {key} ({} bytes)", bytes.len());
        }
        TableCmd::Get {
            network,
            table,
            key,
        } => {
            let v: EntryView = client.get(&path(&network, &table, &key))?;
            let bytes = decode_b64(&v.value)?;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write the value: {e}"))?;
        }
        TableCmd::Delete {
            network,
            table,
            key,
        } => {
            let _: serde_json::Value = client.delete(&path(&network, &table, &key))?;
            println!("deleted {key}");
        }
        TableCmd::List {
            network,
            table,
            format,
        } => {
            let v: TableView = client.get(&format!(
                "/v1/tables/{}/{}",
                segment(&network),
                segment(&table)
            ))?;
            print_view(format, &v, |v| {
                for e in &v.entries {
                    let bytes = decode_b64(&e.value)?;
                    println!(
                        "{:<24} {:<16} {}",
                        e.key,
                        e.owner,
                        printable(&bytes, &e.value)
                    );
                }
                Ok(())
            })?;
        }
        TableCmd::Watch { network, table } => return watch_table(&client, &network, &table),
    }
    Ok(())
}

/// `swimnet table watch`: prints the table's change events as JSON lines
/// until the agent ends the stream; an `error` line ends it with that error.
fn watch_table(client: &Client, network: &str, table: &str) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let lines = client.watch(&format!(
        "/v1/tables/{}/{}?watch=true",
        segment(network),
        segment(table)
    ))?;
    let stdout = std::io::stdout();
    for line in lines.lines() {
        let line = line.map_err(|e| format!("the watch stream broke: {e}"))?;
        if line.is_empty() {
            continue;
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
                return Err(err.to_string());
            }
        }
        let mut out = stdout.lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    Err("the agent closed the watch (it stopped)".into())
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("tag {s:?} is not KEY=VALUE")),
    }
}

fn init_logs(format: LogFormat, level: &str) -> Result<(), String> {
    use tracing_subscriber::prelude::*;
    let targets = cli::log_level::log_filter(level)?;
    use std::io::IsTerminal;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer.with_filter(targets))
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().with_filter(targets))
            .init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match cli::config_file::parse_args::<Cli, _>(std::env::args_os()) {
        Ok(cli) => cli,
        Err(cli::config_file::ParseError::Clap(e)) => e.exit(),
        Err(cli::config_file::ParseError::Config(e)) => {
            eprintln!("swimnet: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swimnet: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the parsed command line: one function per subcommand.
fn run(cli: Cli) -> Result<(), String> {
    let token_file = cli.token_file.clone();
    let connect = |api: SocketAddr| Client::connect(api, token_file.as_deref());
    match cli.command {
        Cmd::Agent(args) => run_agent(args),
        Cmd::Members {
            api,
            format,
            filter,
        } => run_members(connect(api)?, format, &filter.path()),
        Cmd::Serf(c) => cli::serf::run(c, token_file.as_deref()),
        Cmd::Rtt { api, node, other } => run_rtt(connect(api)?, &node, other.as_deref()),
        Cmd::Coordinates { api, format } => run_coordinates(connect(api)?, format),
        Cmd::Info { api, format } => cli::info::run(connect(api)?, format == Format::Json),
        Cmd::Join { api, addrs } => run_join(connect(api)?, &addrs),
        Cmd::Leave { api } => {
            let _: serde_json::Value = connect(api)?.post("/v1/leave", serde_json::json!({}))?;
            println!("left the cluster");
            Ok(())
        }
        Cmd::Keys { api, op } => cli::keys::run_keys(connect(api)?, op),
        Cmd::Monitor(args) => cli::monitor::run(&connect(args.api)?, &args),
        Cmd::Network { api, op } => run_network(connect(api)?, op),
        Cmd::Table { api, op } => run_table(connect(api)?, op),
        Cmd::Overlay(args) => cli::overlay::run(connect(args.api)?, args.op),
        Cmd::Completions(args) => cli::packaging::run_completions(args),
        Cmd::Man(args) => cli::packaging::run_man(args),
        Cmd::Keygen => {
            println!("{}", generate_key());
            Ok(())
        }
        #[cfg(feature = "sim")]
        Cmd::Sim {
            scenario,
            seed,
            out,
            quiet,
        } => run_sim(&scenario, seed, out, quiet),
        Cmd::Demo { nodes } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(swimnet::demo::run(nodes))
        }
    }
}

/// Prints `view` as indented JSON when `format` asks for it, otherwise as
/// `text` prints it.
fn print_view<T: serde::Serialize>(
    format: Format,
    view: &T,
    text: impl FnOnce(&T) -> Result<(), String>,
) -> Result<(), String> {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(view).expect("serializable")
        );
        Ok(())
    } else {
        text(view)
    }
}

impl AgentArgs {
    /// The agent's options from the flags; reads the key and token files.
    fn options(self) -> Result<AgentOptions, String> {
        // clap checks these conflicts between flags and variables; a config
        // file's values are defaults, which clap does not check.
        let given = [
            ("encrypt", self.encrypt.is_some()),
            ("encrypt-file", self.encrypt_file.is_some()),
            ("keyring-file", self.keyring_file.is_some()),
        ];
        let set: Vec<&str> = given.iter().filter(|g| g.1).map(|g| g.0).collect();
        if set.len() > 1 {
            return Err(format!(
                "--{} cannot be used together (from flags, SWIMNET_* variables or the config file): give one key source",
                set.join(" and --")
            ));
        }
        if let Some(k) = &self.encrypt {
            parse_key(k).map_err(|e| format!("--encrypt: {e}"))?;
        }
        let encrypt = match self.encrypt_file {
            Some(p) => Some(encode_key(&load_key_file(&p)?)),
            None => self.encrypt,
        };
        let keys = match (encrypt, self.keyring_file) {
            (Some(k), None) => Some(KeySource::Key(k)),
            (None, Some(p)) => Some(KeySource::File(p)),
            _ => None,
        };
        let http = HttpOptions {
            api_hosts: self.api_hosts,
            api_token: self
                .api_token_file
                .as_deref()
                .map(load_token_file)
                .transpose()?,
            diagnostic: self.diagnostic_addr,
            limits: HttpLimits {
                max_connections: self.api_max_connections,
                idle_timeout: self.api_idle_timeout,
                request_timeout: self.api_request_timeout,
            },
        };
        Ok(AgentOptions {
            node: self.node,
            bind: self.bind,
            advertise: self.advertise,
            join: self.join,
            retry_join: swimnet::agent::RetryJoin {
                seeds: self.retry_join,
                interval: self.retry_interval,
                max_attempts: self.retry_max,
            },
            keys,
            tags: self.tags.into_iter().collect::<BTreeMap<_, _>>(),
            profile: match self.profile {
                ProfileArg::Lan => Profile::Lan,
                ProfileArg::Wan => Profile::Wan,
                ProfileArg::Local => Profile::Local,
            },
            api: Some(self.api),
            protocol: match self.protocol {
                ProtocolArg::Serf => Protocol::Serf,
                ProtocolArg::Memberlist => Protocol::Memberlist,
                ProtocolArg::Networkdb => Protocol::NetworkDb,
            },
            topology_aware: self.topology_aware,
            http,
            data_dir: self.data_dir,
            events: swimnet::event_handler::HandlerConfig {
                handlers: self.event_handlers,
                timeout: self.event_handler_timeout,
            },
            overlay: self.overlay.options(),
        })
    }
}

/// `swimnet agent`: starts the logs and the agent, runs it until a signal
/// makes it leave.
fn run_agent(args: AgentArgs) -> Result<(), String> {
    init_logs(args.log_format, &args.log_level)?;
    let api = args.api;
    let opts = args.options()?;
    // One thread runs everything: the protocol work of an agent is a
    // few packets per second, and each extra worker thread costs a
    // stack and a malloc arena of resident memory.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut running = agent::start(opts).await.map_err(|e| e.to_string())?;
        tracing::info!(addr = %running.gossip_addr, api = %api, diagnostic = ?running.diagnostic_addr, "agent started");
        let stop = running.shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received: leaving");
            stop.notify_waiters();
        });
        // Like Serf, running out of --retry-max attempts stops the agent.
        let gave_up = swimnet::join::gave_up(running.retry_join.take());
        let failed = tokio::select! {
            r = &mut running.done => r.map(|()| None),
            e = gave_up => {
                running.shutdown.notify_waiters();
                (&mut running.done).await.map(|()| Some(e))
            }
        }
        .map_err(|e| e.to_string())?;
        // Let the API finish the answer to the request that asked for
        // the leave before the process exits.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        failed.map_or(Ok(()), Err)
    })
}

/// `swimnet members`: one line per member (name, address, status, tags).
fn run_members(client: Client, format: Format, path: &str) -> Result<(), String> {
    let v: MembersView = client.get(path)?;
    print_view(format, &v, |v| {
        for m in &v.members {
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "{:<20} {:<22} {:<8} {}",
                m.name,
                m.addr,
                m.status,
                tags.join(",")
            );
        }
        Ok(())
    })
}

/// `swimnet rtt NODE [OTHER]`.
fn run_rtt(client: Client, node: &str, other: Option<&str>) -> Result<(), String> {
    let mut path = format!("/v1/rtt?a={}", segment(node));
    if let Some(b) = other {
        path.push_str(&format!("&b={}", segment(b)));
    }
    let v: RttView = client.get(&path)?;
    println!("Estimated {} <-> {} rtt: {:.3} ms", v.a, v.b, v.rtt_ms);
    Ok(())
}

/// `swimnet coordinates`: one line per node, in milliseconds.
fn run_coordinates(client: Client, format: Format) -> Result<(), String> {
    let v: CoordinatesView = client.get("/v1/coordinate")?;
    print_view(format, &v, |v| {
        for c in &v.coordinates {
            let vec: Vec<String> = c
                .coord
                .vec
                .iter()
                .map(|x| format!("{:.6}", x * 1e3))
                .collect();
            println!(
                "{:<20} error {:.3} height {:.3} ms adjustment {:.3} ms vec [{}] ms{}",
                c.node,
                c.coord.error,
                c.coord.height * 1e3,
                c.coord.adjustment * 1e3,
                vec.join(" "),
                if c.node == v.node {
                    "  (this agent)"
                } else {
                    ""
                }
            );
        }
        Ok(())
    })
}

/// `swimnet join ADDR...`.
fn run_join(client: Client, addrs: &[SocketAddr]) -> Result<(), String> {
    let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let v: serde_json::Value = client.post("/v1/join", serde_json::json!({ "addrs": addrs }))?;
    println!("joined {} node(s)", v["joined"]);
    Ok(())
}

#[cfg(feature = "sim")]
fn run_sim(
    path: &std::path::Path,
    seed: Option<u64>,
    out: Option<PathBuf>,
    quiet: bool,
) -> Result<(), String> {
    use std::io::IsTerminal;
    use swimnet_sim::scenario::{self, RunOptions, Scenario};
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let sc = Scenario::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = out.unwrap_or_else(|| PathBuf::from("sim-out").join(&sc.name));
    let opts = RunOptions {
        seed,
        progress: !quiet && std::io::stderr().is_terminal(),
    };
    let output = scenario::run(&sc, &opts);
    let files = scenario::write_outputs(&output, &dir)
        .map_err(|e| format!("writing to {}: {e}", dir.display()))?;
    print!("{}", output.report.summary(Some(&output.host)));
    println!("wrote {} in {}", files.join(", "), dir.display());
    if output.report.failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} invariant failure(s); replay with: swimnet sim {} --seed {}",
            output.report.failures.len(),
            path.display(),
            output.report.seed
        ))
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology_aware(args: &[&str]) -> Result<bool, clap::Error> {
        let mut argv = vec!["swimnet", "agent", "--node", "a"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Cmd::Agent(args) => Ok(args.topology_aware),
            _ => unreachable!("parsed an agent command"),
        }
    }

    #[test]
    fn topology_aware_flag_defaults_on_and_takes_an_optional_value() {
        assert!(topology_aware(&[]).unwrap());
        assert!(topology_aware(&["--topology-aware"]).unwrap());
        assert!(topology_aware(&["--topology-aware=true"]).unwrap());
        assert!(!topology_aware(&["--topology-aware=false"]).unwrap());
        assert!(topology_aware(&["--topology-aware=maybe"]).is_err());
    }
}
