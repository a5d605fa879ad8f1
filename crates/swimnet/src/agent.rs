//! Puts a core, its delegate, the driver and the API together: what
//! `swimnet agent` runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use swimnet_core::{Config, Memberlist, NoopDelegate};
use swimnet_serf::{SerfDelegate, SerfNode};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, Notify};

use crate::agent_events::{EventCounters, EventHub};
use crate::agent_node::AgentNode;
use crate::api::{self, ApiState};
use crate::api_server::{ApiCounters, HttpLimits};
use crate::driver::{Command, Driver};
use crate::http_guard::{AccessPolicy, Guard};
pub use crate::join::RetryJoin;
use crate::keyfile::{keyring, parse_key, KeyringFile};
use crate::snapshot::start::DataDir;

/// The protocol family the agent speaks on top of memberlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A Serf member: tags in metadata, Serf's delegate versions, leave intents, key queries.
    Serf,
    /// Plain memberlist (delegate versions 0).
    Memberlist,
    /// Docker's NetworkDB (per-network replicated tables) on memberlist.
    NetworkDb,
}

/// Timer presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// memberlist's LAN defaults.
    Lan,
    /// memberlist's WAN defaults.
    Wan,
    /// memberlist's local (loopback) defaults.
    Local,
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// One key given on the command line (base64).
    Key(String),
    /// A keyring file, rewritten after every key change.
    File(std::path::PathBuf),
}

/// Everything `swimnet agent` is told.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Node name.
    pub node: String,
    /// Address for UDP and TCP.
    pub bind: SocketAddr,
    /// Address peers use to reach us (defaults to `bind`).
    pub advertise: Option<SocketAddr>,
    /// Seeds to join at start, `HOST:PORT` or `IP:PORT`, resolved again at
    /// every attempt and retried with a short backoff until one answers.
    pub join: Vec<String>,
    /// Serf-style `--retry-join` seeds, interval and attempt limit.
    pub retry_join: RetryJoin,
    /// Encryption keys.
    pub keys: Option<KeySource>,
    /// Tags (Serf's encoding in node metadata).
    pub tags: BTreeMap<String, String>,
    /// Timer preset.
    pub profile: Profile,
    /// Local API address; `None` runs without an API.
    pub api: Option<SocketAddr>,
    /// Protocol family.
    pub protocol: Protocol,
    /// Latency-aware peer selection (`--topology-aware`): sets
    /// [`swimnet_core::topology::TopologyConfig::enabled`], which biases
    /// gossip targets, indirect-probe helpers, push/pull partners and
    /// NetworkDB's table-gossip and bulk-sync peers toward near nodes by
    /// Vivaldi distance, and a share of probes too. On by default
    /// (`--topology-aware=false` turns it off).
    pub topology_aware: bool,
    /// Who may use the HTTP listeners, the diagnostic listener, and their
    /// budgets.
    pub http: HttpOptions,
    /// Where the restart snapshot lives (`--data-dir`, see
    /// [`crate::snapshot`]); `None` keeps nothing across restarts.
    pub data_dir: Option<std::path::PathBuf>,
    /// Programs run for events (`--event-handler`) and their timeout.
    pub events: crate::event_handler::HandlerConfig,
    /// Overlay networks (`--protocol networkdb`): VTEP, VXLAN port, timers.
    pub overlay: crate::overlay::OverlayOptions,
}

/// The HTTP side of the agent: access rules, the diagnostic listener, limits.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Host names accepted in `Host`/`Origin` besides IP literals and
    /// `localhost` (`--api-host`).
    pub api_hosts: Vec<String>,
    /// Bearer token every API request must carry (`--api-token-file`);
    /// required when the API is bound to a non-loopback address.
    pub api_token: Option<String>,
    /// Address of Docker's diagnostic paths (`--diagnostic-addr`); `None`
    /// (the default) serves them nowhere.
    pub diagnostic: Option<SocketAddr>,
    /// Connection cap and timeouts of each HTTP listener.
    pub limits: HttpLimits,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A setting is wrong; the message says what to change.
    #[error("{0}")]
    Config(String),
    /// A socket could not be bound.
    #[error("{0}")]
    Bind(String),
}

/// Builds the core configuration from the options; `bound` is the address
/// the gossip sockets actually got (it differs from `--bind` for port 0).
pub fn core_config(opts: &AgentOptions, bound: SocketAddr) -> Result<Config, AgentError> {
    let advertise = opts.advertise.unwrap_or(bound);
    if advertise.ip().is_unspecified() {
        return Err(AgentError::Config(format!(
            "cannot advertise {advertise}: when binding to {} give --advertise IP:PORT, the address peers should use",
            opts.bind.ip()
        )));
    }
    if opts.node.is_empty() {
        return Err(AgentError::Config("--node must not be empty".into()));
    }
    let mut c = match opts.profile {
        Profile::Lan => Config::lan(opts.node.clone(), advertise),
        Profile::Wan => Config::wan(opts.node.clone(), advertise),
        Profile::Local => Config::local(opts.node.clone(), advertise),
    };
    if opts.protocol == Protocol::Serf {
        c = c.with_serf_versions();
    }
    if opts.protocol == Protocol::NetworkDb {
        if !opts.tags.is_empty() {
            return Err(AgentError::Config(
                "--tag is not supported with --protocol networkdb (NetworkDB nodes carry no metadata)"
                    .into(),
            ));
        }
        c = swimnet_networkdb::NetworkDb::docker_memberlist(c);
    }
    let meta = if opts.protocol == Protocol::NetworkDb {
        Vec::new()
    } else {
        swimnet_serf::tags::encode_tags(&opts.tags)
    };
    if meta.len() > swimnet_core::config::META_MAX_SIZE {
        return Err(AgentError::Config(format!(
            "the tags encode to {} bytes, over memberlist's 512-byte metadata limit: use fewer or shorter tags",
            meta.len()
        )));
    }
    c.meta = meta;
    c.keyring = match &opts.keys {
        None => None,
        Some(KeySource::Key(k)) => {
            let key = parse_key(k).map_err(|e| AgentError::Config(format!("--encrypt: {e}")))?;
            Some(keyring(&[key]).map_err(AgentError::Config)?)
        }
        Some(KeySource::File(p)) => {
            let keys = KeyringFile::new(p).load().map_err(AgentError::Config)?;
            Some(keyring(&keys).map_err(|e| AgentError::Config(format!("{}: {e}", p.display())))?)
        }
    };
    c.topology.enabled = opts.topology_aware;
    // Serf nodes use Serf's key queries; the others swimnet's key messages.
    c.cluster_key_ops = opts.protocol != Protocol::Serf;
    c.validate()
        .map_err(|e| AgentError::Config(e.to_string()))?;
    Ok(c)
}

/// Gives the node what the data dir kept, runs its driver, and writes the
/// last snapshot once the driver has stopped.
fn spawn_driver<N: AgentNode>(
    mut node: N,
    (udp, tcp): (UdpSocket, TcpListener),
    (cmd_rx, hub): (mpsc::Receiver<Command>, EventHub),
    shutdown: Arc<Notify>,
    data: Option<&DataDir>,
    keyring_file: Option<KeyringFile>,
) -> tokio::task::JoinHandle<()> {
    if let Some(d) = data {
        d.restore_into(&mut node);
    }
    let writer = data.map(|d| d.writer.clone());
    let driver = Driver::new(node, udp, tcp, cmd_rx)
        .with_keyring_file(keyring_file)
        .with_event_hub(hub);
    tokio::spawn(async move {
        let stop_fut = async move { shutdown.notified().await };
        let node = driver.run(stop_fut).await;
        if let Some(w) = writer {
            let snap = crate::snapshot::capture(&node);
            let _ = tokio::task::spawn_blocking(move || w.write(snap, true)).await;
        }
    })
}

/// Binds the gossip sockets (UDP and TCP on the same address).
pub async fn bind_gossip(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), AgentError> {
    let in_use = |what: &str, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            AgentError::Bind(format!(
                "{what} address {addr} is already in use (another agent?): pick another --bind"
            ))
        } else {
            AgentError::Bind(format!("cannot bind {what} on {addr}: {e}"))
        }
    };
    let udp = UdpSocket::bind(addr).await.map_err(|e| in_use("UDP", e))?;
    // With port 0, TCP takes the port UDP got, so both share one address.
    let tcp_addr = udp
        .local_addr()
        .map_err(|e| AgentError::Bind(e.to_string()))?;
    let tcp = TcpListener::bind(tcp_addr)
        .await
        .map_err(|e| in_use("TCP", e))?;
    Ok((udp, tcp))
}

/// A started agent: the driver task and the API server.
pub struct RunningAgent {
    /// Commands to the driver (the API uses the same channel).
    pub commands: mpsc::Sender<Command>,
    /// Resolves when the driver has stopped (after a leave).
    pub done: tokio::task::JoinHandle<()>,
    /// Starts a graceful leave and stop.
    pub shutdown: Arc<Notify>,
    /// The gossip address bound.
    pub gossip_addr: SocketAddr,
    /// The API address bound (differs from `--api` for port 0).
    pub api_addr: Option<SocketAddr>,
    /// The diagnostic listener's address bound, when one was asked for.
    pub diagnostic_addr: Option<SocketAddr>,
    /// What the HTTP listeners counted (also in `GET /v1/stats`).
    pub http_counters: Arc<ApiCounters>,
    /// The `--retry-join` task, when retry-join seeds were given: it ends
    /// with the number of nodes joined through, or with why it gave up
    /// after `--retry-max` attempts.
    pub retry_join: Option<tokio::task::JoinHandle<Result<usize, String>>>,
}

/// Binds one HTTP listener; `flag` names the option in errors.
async fn bind_http(addr: SocketAddr, flag: &str) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            AgentError::Bind(format!(
                "{flag} address {addr} is already in use: pick another {flag}"
            ))
        } else {
            AgentError::Bind(format!("cannot bind {flag} on {addr}: {e}"))
        }
    })
}

/// Refuses settings that would expose the API: a non-loopback API
/// without a token.
pub fn check_http_options(opts: &AgentOptions) -> Result<(), AgentError> {
    if let Some(api) = opts.api {
        if !api.ip().is_loopback() && opts.http.api_token.is_none() {
            return Err(AgentError::Config(format!(
                "--api {api} is not a loopback address: give --api-token-file PATH so only clients with the token can use it"
            )));
        }
    }
    if opts.http.api_token.as_deref() == Some("") {
        return Err(AgentError::Config("the API token is empty".into()));
    }
    Ok(())
}

/// Starts an agent: binds its sockets and API, spawns the driver, and
/// starts joining the seeds in the background ([`crate::join`]: `--join`
/// with backoff until one answers, `--retry-join` every interval). Call
/// from inside a tokio runtime.
pub async fn start(opts: AgentOptions) -> Result<RunningAgent, AgentError> {
    let (udp, tcp) = bind_gossip(opts.bind).await?;
    let gossip_addr = udp
        .local_addr()
        .map_err(|e| AgentError::Bind(e.to_string()))?;
    let mut config = core_config(&opts, gossip_addr)?;
    check_http_options(&opts)?;
    let data = DataDir::open(&opts, &mut config)?;
    let advertise = config.advertise;
    let api_listener = match opts.api {
        Some(a) => Some(bind_http(a, "--api").await?),
        None => None,
    };
    let diag_listener = match opts.http.diagnostic {
        Some(a) => Some(bind_http(a, "--diagnostic-addr").await?),
        None => None,
    };
    let keyring_file = match &opts.keys {
        Some(KeySource::File(p)) => Some(KeyringFile::new(p)),
        _ => None,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let shutdown = Arc::new(Notify::new());
    let overlay = crate::overlay::start_for_agent(&opts, advertise, cmd_tx.clone())?;
    crate::memory::spawn_heap_trim();
    let event_counters = Arc::new(EventCounters::default());
    let handlers =
        crate::event_handler::spawn(opts.events.clone(), cmd_tx.clone(), event_counters.clone());
    let done = spawn_node(
        &opts,
        config,
        keyring_file.clone(),
        (udp, tcp),
        (cmd_rx, EventHub::new(event_counters.clone(), handlers)),
        &shutdown,
        data.as_ref(),
    )?;
    let api_addr = api_listener.as_ref().and_then(|l| l.local_addr().ok());
    let diagnostic_addr = diag_listener.as_ref().and_then(|l| l.local_addr().ok());
    let http_counters = Arc::new(ApiCounters::default());
    let mut limits = opts.http.limits;
    limits.max_connections = crate::fdlimit::api_connection_cap(
        limits.max_connections,
        crate::fdlimit::raise_nofile_limit(),
    );
    let state = ApiState {
        commands: cmd_tx.clone(),
        keyring_file,
        shutdown: shutdown.clone(),
        http_counters: http_counters.clone(),
        events: Arc::new(crate::api_events::EventStreams::new(event_counters)),
        overlay,
    };
    let guard = |policy: AccessPolicy| Guard {
        policy: Arc::new(policy),
        counters: http_counters.clone(),
        request_timeout: limits.request_timeout,
    };
    if let (Some(listener), Some(addr)) = (api_listener, api_addr) {
        let policy = AccessPolicy::api(
            &opts.http.api_hosts,
            opts.http.api_token.clone(),
            addr.port(),
        );
        let app = api::router(state.clone(), guard(policy))
            .layer(axum::middleware::map_response(api::mark_swimnet));
        tokio::spawn(crate::api_server::serve(
            listener,
            app,
            limits,
            http_counters.clone(),
        ));
    }
    if let (Some(listener), Some(addr)) = (diag_listener, diagnostic_addr) {
        let policy = AccessPolicy::diagnostic(&opts.http.api_hosts, addr.port());
        let app = crate::diag::router(state, guard(policy));
        tokio::spawn(crate::api_server::serve(
            listener,
            app,
            limits,
            http_counters.clone(),
        ));
    }
    let mut seeds = opts.join.clone();
    if let Some(d) = &data {
        d.writer.spawn(cmd_tx.clone());
        let rejoin = d.rejoin(&opts.node, advertise);
        if !rejoin.is_empty() {
            tracing::info!(
                members = rejoin.len(),
                "rejoining through the remembered members"
            );
        }
        let remembered = rejoin.into_iter().map(|a| a.to_string());
        seeds.extend(remembered.filter(|a| !opts.join.contains(a)));
    }
    if !seeds.is_empty() {
        crate::join::spawn_seed_join(cmd_tx.clone(), seeds);
    }
    let retry_join = (!opts.retry_join.seeds.is_empty())
        .then(|| crate::join::spawn_retry_join(cmd_tx.clone(), opts.retry_join.clone()));
    Ok(RunningAgent {
        commands: cmd_tx,
        done,
        shutdown,
        gossip_addr,
        api_addr,
        diagnostic_addr,
        http_counters,
        retry_join,
    })
}

/// Builds the node `--protocol` asks for and spawns its driver.
fn spawn_node(
    opts: &AgentOptions,
    config: Config,
    keyring_file: Option<KeyringFile>,
    (udp, tcp): (UdpSocket, TcpListener),
    (cmd_rx, hub): (mpsc::Receiver<Command>, EventHub),
    shutdown: &Arc<Notify>,
    data: Option<&DataDir>,
) -> Result<tokio::task::JoinHandle<()>, AgentError> {
    let sockets = (udp, tcp);
    let started = |e: swimnet_core::Error| AgentError::Config(e.to_string());
    Ok(match opts.protocol {
        Protocol::NetworkDb => {
            let ndb = swimnet_networkdb::NdbConfig {
                // Watchers see this agent's own writes too.
                report_local_changes: true,
                // Node names are reused across restarts: what peers hold of
                // this node's entries from its previous run is taken back.
                adopt_own_entries: true,
                // Network attachments are agent events.
                report_network_changes: true,
                ..swimnet_networkdb::NdbConfig::default()
            };
            let db = swimnet_networkdb::NetworkDb::new(config, ndb, Instant::now(), rand::random())
                .map_err(started)?;
            spawn_driver(
                db,
                sockets,
                (cmd_rx, hub),
                shutdown.clone(),
                data,
                keyring_file,
            )
        }
        Protocol::Serf => {
            let delegate = SerfDelegate::new(opts.node.clone(), opts.tags.clone())
                .map_err(|e| AgentError::Config(e.to_string()))?;
            let mut node =
                SerfNode::new(config, delegate, Instant::now(), rand::random()).map_err(started)?;
            if let Some(file) = keyring_file {
                node = node.with_keyring_saver(Box::new(move |keys| file.save(keys)));
            }
            spawn_driver(node, sockets, (cmd_rx, hub), shutdown.clone(), data, None)
        }
        Protocol::Memberlist => {
            let core = Memberlist::new(config, NoopDelegate, Instant::now(), rand::random())
                .map_err(started)?;
            spawn_driver(
                core,
                sockets,
                (cmd_rx, hub),
                shutdown.clone(),
                data,
                keyring_file,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_aware_option_sets_the_core_config() {
        let bound: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        for on in [false, true] {
            let opts = AgentOptions {
                node: "a".into(),
                bind: bound,
                advertise: None,
                join: Vec::new(),
                retry_join: RetryJoin::default(),
                keys: None,
                tags: BTreeMap::new(),
                profile: Profile::Lan,
                api: None,
                protocol: Protocol::NetworkDb,
                topology_aware: on,
                http: HttpOptions::default(),
                data_dir: None,
                events: Default::default(),
                overlay: Default::default(),
            };
            let c = core_config(&opts, bound).unwrap();
            assert_eq!(c.topology.enabled, on);
            assert!(c.coordinates.is_some(), "selection needs coordinates");
        }
    }
}
