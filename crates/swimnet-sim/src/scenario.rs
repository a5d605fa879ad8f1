//! Scenarios: a TOML description of a cluster, its network and the faults
//! and workload to apply, run on the harness into a [`Report`].
//!
//! Times are strings with a unit (`"250ms"`, `"10s"`, `"2m"`), counted from
//! the start of the measured phase, which begins once the bootstrap is
//! done. See `scenarios/*.toml` for examples.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer};
use swimnet_core::{Config, Event, Memberlist, NodeState, NoopDelegate, SansIoNode};
use swimnet_networkdb::{NdbConfig, NetworkDb, TableChange};
use swimnet_serf::{SerfDelegate, SerfEvent, SerfNode};

use crate::report::{
    round6, CoordinateAccuracy, CrossRegion, Detection, Dissemination, Dist, Failure, Floors,
    HostFigures, Report, SlowWrite, TablesReport, TrafficReport, SLOWEST_WRITES,
};
use crate::{Harness, NetworkModel, NodeId};

/// A duration written with a unit: `ns`, `us`, `ms`, `s`, `m`, `h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses `"1.5s"`, `"200ms"` and the like.
    pub fn parse(s: &str) -> Result<Dur, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {s:?} needs a unit (ms, s, m, h)"))?;
        let (num, unit) = s.split_at(split);
        let v: f64 = num
            .parse()
            .map_err(|_| format!("bad number in duration {s:?}"))?;
        let secs = match unit.trim() {
            "ns" => v / 1e9,
            "us" | "µs" => v / 1e6,
            "ms" => v / 1e3,
            "s" => v,
            "m" | "min" => v * 60.0,
            "h" => v * 3600.0,
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("bad duration {s:?}"));
        }
        Ok(Dur(Duration::from_nanos((secs * 1e9).round() as u64)))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Which core every node runs.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Plain memberlist.
    #[default]
    Memberlist,
    /// NetworkDB (memberlist + tables).
    Networkdb,
    /// Serf members ([`SerfNode`]: Serf's delegate versions, tags, leave
    /// intents before a graceful leave).
    Serf,
}

/// How the cluster is formed before the measured phase.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BootstrapMode {
    /// Every node is handed the full member list (one synthetic push/pull),
    /// then the cluster runs until its broadcast queues drain.
    #[default]
    Preload,
    /// Nodes join through the seeds, spread over `spread`; the measured
    /// phase starts once everyone sees everyone and queues drained.
    Join,
    /// Nodes join through the seeds at the start of the measured phase
    /// (spread over `spread`): the join itself is measured.
    Cold,
}

/// Cluster formation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Mode.
    #[serde(default)]
    pub mode: BootstrapMode,
    /// Number of seed nodes (the first ones) others join through.
    #[serde(default = "default_seeds")]
    pub seeds: usize,
    /// Joins are spread evenly over this time.
    #[serde(default)]
    pub spread: Dur,
    /// Give up bootstrapping after this long (the run fails).
    #[serde(default = "default_bootstrap_limit")]
    pub limit: Dur,
    /// Keep running this long once the bootstrap is done, before the
    /// measured phase starts (for example to let coordinates settle).
    #[serde(default)]
    pub warm: Dur,
}

fn default_seeds() -> usize {
    3
}
fn default_bootstrap_limit() -> Dur {
    Dur(Duration::from_secs(600))
}
fn default_settle() -> Dur {
    Dur(Duration::from_secs(180))
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            mode: BootstrapMode::Preload,
            seeds: default_seeds(),
            spread: Dur::default(),
            limit: default_bootstrap_limit(),
            warm: Dur::default(),
        }
    }
}

/// Overrides of memberlist's LAN settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `lan` (default), `wan` or `local`.
    pub profile: Option<String>,
    /// Probe interval.
    pub probe_interval: Option<Dur>,
    /// Probe timeout.
    pub probe_timeout: Option<Dur>,
    /// Gossip interval.
    pub gossip_interval: Option<Dur>,
    /// Gossip fanout.
    pub gossip_nodes: Option<usize>,
    /// Indirect probes.
    pub indirect_checks: Option<usize>,
    /// Retransmit multiplier.
    pub retransmit_mult: Option<usize>,
    /// Suspicion multiplier.
    pub suspicion_mult: Option<usize>,
    /// Suspicion max timeout multiplier.
    pub suspicion_max_timeout_mult: Option<usize>,
    /// Push/pull interval.
    pub push_pull_interval: Option<Dur>,
    /// Disable the TCP fallback ping.
    pub disable_tcp_pings: Option<bool>,
    /// Compression of streams and large packets.
    pub enable_compression: Option<bool>,
    /// Latency-aware peer selection (`Config::topology.enabled`; the
    /// agent's `--topology-aware`).
    pub topology_aware: Option<bool>,
    /// Share of a choice's slots given to near peers
    /// (`TopologyConfig::near_fraction`).
    pub topology_near_fraction: Option<f64>,
    /// Largest Vivaldi error of a usable coordinate
    /// (`TopologyConfig::max_error`).
    pub topology_max_error: Option<f64>,
    /// Share of probe rounds aimed at a near member
    /// (`TopologyConfig::probe_near_fraction`).
    pub topology_probe_near_fraction: Option<f64>,
    /// Catch-up push/pull threshold (`0` turns it off; see
    /// `swimnet_core::Config::catch_up_backlog`).
    pub catch_up_backlog: Option<usize>,
}

impl Settings {
    fn config(&self, name: String, addr: SocketAddr) -> Config {
        let mut c = match self.profile.as_deref() {
            Some("wan") => Config::wan(name, addr),
            Some("local") => Config::local(name, addr),
            _ => Config::lan(name, addr),
        };
        if let Some(v) = self.probe_interval {
            c.probe_interval = v.0;
        }
        if let Some(v) = self.probe_timeout {
            c.probe_timeout = v.0;
        }
        if let Some(v) = self.gossip_interval {
            c.gossip_interval = v.0;
        }
        if let Some(v) = self.gossip_nodes {
            c.gossip_nodes = v;
        }
        if let Some(v) = self.indirect_checks {
            c.indirect_checks = v;
        }
        if let Some(v) = self.retransmit_mult {
            c.retransmit_mult = v;
        }
        if let Some(v) = self.suspicion_mult {
            c.suspicion_mult = v;
        }
        if let Some(v) = self.suspicion_max_timeout_mult {
            c.suspicion_max_timeout_mult = v;
        }
        if let Some(v) = self.push_pull_interval {
            c.push_pull_interval = v.0;
        }
        if let Some(v) = self.disable_tcp_pings {
            c.disable_tcp_pings = v;
        }
        if let Some(v) = self.enable_compression {
            c.enable_compression = v;
        }
        if let Some(v) = self.topology_aware {
            c.topology.enabled = v;
        }
        if let Some(v) = self.topology_near_fraction {
            c.topology.near_fraction = v;
        }
        if let Some(v) = self.topology_max_error {
            c.topology.max_error = v;
        }
        if let Some(v) = self.topology_probe_near_fraction {
            c.topology.probe_near_fraction = v;
        }
        if let Some(v) = self.catch_up_backlog {
            c.catch_up_backlog = v;
        }
        c
    }
}

/// A region of the latency model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Name.
    pub name: String,
    /// Zones in the region (nodes are spread round-robin over all zones).
    #[serde(default = "one")]
    pub zones: usize,
}

fn one() -> usize {
    1
}

/// The network model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Uniform one-way latency (also: within a zone).
    #[serde(default = "default_latency")]
    pub latency: Dur,
    /// Uniform jitter bound (also: within a zone).
    #[serde(default = "default_jitter")]
    pub jitter: Dur,
    /// Background loss of every datagram.
    #[serde(default)]
    pub loss: f64,
    /// Regions; empty: the uniform model.
    #[serde(default)]
    pub regions: Vec<Region>,
    /// One-way latency between zones of one region.
    #[serde(default)]
    pub cross_zone: Option<Dur>,
    /// One-way latency between regions, milliseconds, a square matrix in
    /// the order of `regions` (the diagonal is unused).
    #[serde(default)]
    pub region_latency_ms: Vec<Vec<f64>>,
    /// Jitter as a fraction of each link's base latency (cross-zone and
    /// cross-region links).
    #[serde(default)]
    pub jitter_fraction: f64,
}

fn default_latency() -> Dur {
    Dur(Duration::from_micros(500))
}
fn default_jitter() -> Dur {
    Dur(Duration::from_micros(200))
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency: default_latency(),
            jitter: default_jitter(),
            loss: 0.0,
            regions: Vec::new(),
            cross_zone: None,
            region_latency_ms: Vec::new(),
            jitter_fraction: 0.0,
        }
    }
}

/// Which nodes an action picks: explicit ids, a count or a fraction of the
/// eligible nodes (chosen at random from the seed; seeds are never picked).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pick {
    /// Explicit node ids.
    #[serde(default)]
    pub nodes: Vec<usize>,
    /// This many random nodes.
    #[serde(default)]
    pub count: usize,
    /// This fraction of nodes (rounded up).
    #[serde(default)]
    pub fraction: f64,
}

/// A packet-loss window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    /// Start.
    #[serde(default)]
    pub from: Dur,
    /// End (default: end of the measured phase).
    pub until: Option<Dur>,
    /// Loss probability.
    pub rate: f64,
    /// Inbound loss of these nodes (UDP); empty with no `links`: every datagram.
    #[serde(flatten)]
    pub pick: Pick,
    /// One-way links `[from, to]` (UDP and TCP).
    #[serde(default)]
    pub links: Vec<[usize; 2]>,
}

/// A partition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Start.
    pub at: Dur,
    /// Heal time (default: end of the measured phase).
    pub heal: Option<Dur>,
    /// Number of groups (nodes split into contiguous id blocks).
    #[serde(default = "two")]
    pub groups: usize,
    /// One-way: only traffic from group 0 to group 1 is cut.
    #[serde(default)]
    pub asymmetric: bool,
}

fn two() -> usize {
    2
}

/// Crashes (kill -9), optionally restarted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crash {
    /// When.
    pub at: Dur,
    /// Who.
    #[serde(flatten)]
    pub pick: Pick,
    /// Restart this long after the crash (fresh state, joins the seeds).
    pub restart_after: Option<Dur>,
}

/// Stalls: nodes stop processing for a while (SIGSTOP, long GC).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    /// Window start.
    #[serde(default)]
    pub from: Dur,
    /// Window end (default: end of the measured phase).
    pub until: Option<Dur>,
    /// Each stall lasts this long.
    pub duration: Dur,
    /// Stalls per picked host, at random times in the window.
    #[serde(default = "one")]
    pub per_host: usize,
    /// Who stalls.
    #[serde(flatten)]
    pub pick: Pick,
}

/// Churn: nodes join and leave over time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Window start.
    #[serde(default)]
    pub from: Dur,
    /// Window end (default: end of the measured phase).
    pub until: Option<Dur>,
    /// New nodes per second.
    #[serde(default)]
    pub joins_per_s: f64,
    /// Graceful leaves per second (random non-seed nodes).
    #[serde(default)]
    pub leaves_per_s: f64,
}

/// Traced metadata broadcasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    /// First one.
    pub at: Dur,
    /// How many.
    #[serde(default = "one")]
    pub count: usize,
    /// Spacing.
    #[serde(default = "default_every")]
    pub every: Dur,
    /// Sender (default: a random non-seed node each time).
    pub node: Option<usize>,
}

fn default_every() -> Dur {
    Dur(Duration::from_secs(5))
}

/// NetworkDB table workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Networks.
    #[serde(default = "one")]
    pub networks: usize,
    /// Fraction of nodes attached to each network.
    #[serde(default = "full")]
    pub attach_fraction: f64,
    /// Writers per network (attached nodes).
    #[serde(default = "one")]
    pub writers: usize,
    /// Writes per second per writer.
    #[serde(default = "full")]
    pub rate: f64,
    /// Value size in bytes (at least 8).
    #[serde(default = "default_value_size")]
    pub value_size: usize,
    /// Window start.
    #[serde(default)]
    pub from: Dur,
    /// Window end (default: end of the measured phase).
    pub until: Option<Dur>,
}

fn full() -> f64 {
    1.0
}
fn default_value_size() -> usize {
    64
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (in reports).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Nodes at the start.
    pub nodes: usize,
    /// Length of the measured phase.
    pub duration: Dur,
    /// Default seed (`--seed` overrides).
    #[serde(default)]
    pub seed: u64,
    /// Core to run.
    #[serde(default)]
    pub protocol: Protocol,
    /// Cluster formation.
    #[serde(default)]
    pub bootstrap: Bootstrap,
    /// After the measured phase every fault is lifted; all live nodes must
    /// then agree within this long.
    #[serde(default = "default_settle")]
    pub settle: Dur,
    /// Protocol settings.
    #[serde(default)]
    pub config: Settings,
    /// Network model.
    #[serde(default)]
    pub network: Network,
    /// Traced broadcasts.
    #[serde(default)]
    pub broadcast: Vec<Broadcast>,
    /// Loss windows.
    #[serde(default)]
    pub loss: Vec<Loss>,
    /// Partitions.
    #[serde(default)]
    pub partition: Vec<PartitionSpec>,
    /// Crashes.
    #[serde(default)]
    pub crash: Vec<Crash>,
    /// Stalls.
    #[serde(default)]
    pub stall: Vec<Stall>,
    /// Churn.
    #[serde(default)]
    pub churn: Vec<Churn>,
    /// Table workload (NetworkDB).
    pub workload: Option<Workload>,
    /// Keep per-node curves in the report (large at scale).
    #[serde(default = "yes")]
    pub curves: bool,
}

fn yes() -> bool {
    true
}

/// A scenario that cannot run as written.
#[derive(Debug, Clone)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError(e.to_string()))?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), ScenarioError> {
        let err = |m: String| Err(ScenarioError(m));
        if self.nodes < 2 {
            return err("nodes must be at least 2".into());
        }
        if self.bootstrap.seeds == 0 || self.bootstrap.seeds > self.nodes {
            return err("bootstrap.seeds must be between 1 and nodes".into());
        }
        let r = self.network.regions.len();
        if r > 0
            && (self.network.region_latency_ms.len() != r
                || self
                    .network
                    .region_latency_ms
                    .iter()
                    .any(|row| row.len() != r))
        {
            return err(format!(
                "network.region_latency_ms must be a {r}x{r} matrix (one row per region)"
            ));
        }
        for l in &self.loss {
            if !(0.0..=1.0).contains(&l.rate) {
                return err(format!("loss rate {} is not in 0..=1", l.rate));
            }
        }
        if !(0.0..=1.0).contains(&self.network.loss) {
            return err("network.loss is not in 0..=1".into());
        }
        if self.workload.is_some() && self.protocol != Protocol::Networkdb {
            return err("a [workload] needs protocol = \"networkdb\"".into());
        }
        if let Some(w) = &self.workload {
            if w.value_size < 8 {
                return err("workload.value_size must be at least 8".into());
            }
        }
        for p in &self.partition {
            if p.groups < 2 {
                return err("partition.groups must be at least 2".into());
            }
        }
        let probe = self.config.config("check".into(), crate::node_addr(0));
        if let Err(e) = probe.validate() {
            return err(format!("[config]: {e}"));
        }
        Ok(())
    }
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Seed (default: the scenario's).
    pub seed: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The deterministic report.
    pub report: Report,
    /// Host figures.
    pub host: HostFigures,
}

#[derive(Debug, Clone)]
enum Action {
    SetLoss(f64),
    NodeLoss(Vec<NodeId>, f64),
    LinkLoss(Vec<[usize; 2]>, f64),
    Partition { groups: usize, asymmetric: bool },
    Heal,
    Crash(NodeId, Option<Duration>),
    Restart(NodeId),
    Stall(NodeId, Duration),
    Join,
    Leave,
    Broadcast(Option<NodeId>),
    Write { net: usize, writer: usize },
}

struct MetaTrace {
    node: NodeId,
    meta: Vec<u8>,
    at: Duration,
    targets: BTreeSet<NodeId>,
    seen: BTreeMap<NodeId, Duration>,
}

struct CrashTrace {
    node: NodeId,
    at: Duration,
    restarted: Option<Duration>,
    observers: BTreeSet<NodeId>,
    first_suspect: Option<Duration>,
    dead: BTreeMap<NodeId, Duration>,
}

struct WriteTrace {
    at: Duration,
    net: usize,
    writer: NodeId,
    targets: BTreeSet<NodeId>,
    seen: BTreeMap<NodeId, Duration>,
}

/// Node pairs sampled for [`CoordinateAccuracy`].
const COORD_PAIRS: usize = 4000;

/// Runs a scenario with either core type.
pub fn run(sc: &Scenario, opts: &RunOptions) -> RunOutput {
    match sc.protocol {
        Protocol::Memberlist => {
            let h: Harness<Memberlist<NoopDelegate>> =
                Harness::new(0, NetworkModel::default(), |_| NoopDelegate);
            Runner::new(sc, opts, h).run()
        }
        Protocol::Networkdb => {
            let h = Harness::with_cores(0, NetworkModel::default(), |_, config, now, seed| {
                NetworkDb::new(config, NdbConfig::default(), now, seed).expect("valid config")
            });
            Runner::new(sc, opts, h).run()
        }
        Protocol::Serf => {
            let h = Harness::with_cores(0, NetworkModel::default(), |id, config, now, seed| {
                let serf =
                    SerfDelegate::new(crate::node_name(id), BTreeMap::new()).expect("no tags");
                SerfNode::new(config.with_serf_versions(), serf, now, seed).expect("valid config")
            });
            Runner::new(sc, opts, h).run()
        }
    }
}

/// One table row: key, value, owner.
type Row = (String, Vec<u8>, String);
/// A node's ((packets, bytes) sent, (packets, bytes) received).
type Counters = ((u64, u64), (u64, u64));

trait Tables: SansIoNode {
    /// The value a table change left visible (`None`: deleted, or no tables).
    fn changed_value(change: &Self::AppEvent) -> Option<&[u8]>;
    fn join_network(&mut self, now: Instant, nid: &str);
    fn write(&mut self, now: Instant, nid: &str, key: &str, value: &[u8]) -> bool;
    /// Sorted `(key, value, owner)` of the visible entries of a network's table.
    fn table(&self, nid: &str) -> Vec<(String, Vec<u8>, String)>;
}

impl Tables for Memberlist<NoopDelegate> {
    fn changed_value(change: &std::convert::Infallible) -> Option<&[u8]> {
        match *change {}
    }
    fn join_network(&mut self, _now: Instant, _nid: &str) {}
    fn write(&mut self, _now: Instant, _nid: &str, _key: &str, _value: &[u8]) -> bool {
        false
    }
    fn table(&self, _nid: &str) -> Vec<(String, Vec<u8>, String)> {
        Vec::new()
    }
}

/// Serf nodes have no tables.
impl Tables for SerfNode {
    fn changed_value(_change: &SerfEvent) -> Option<&[u8]> {
        None
    }
    fn join_network(&mut self, _now: Instant, _nid: &str) {}
    fn write(&mut self, _now: Instant, _nid: &str, _key: &str, _value: &[u8]) -> bool {
        false
    }
    fn table(&self, _nid: &str) -> Vec<(String, Vec<u8>, String)> {
        Vec::new()
    }
}

const TABLE: &str = "sim_table";

impl Tables for NetworkDb {
    fn changed_value(change: &TableChange) -> Option<&[u8]> {
        change.value.as_deref()
    }
    fn join_network(&mut self, now: Instant, nid: &str) {
        let _ = NetworkDb::join_network(self, now, nid);
    }
    fn write(&mut self, now: Instant, nid: &str, key: &str, value: &[u8]) -> bool {
        self.create_entry(now, nid, TABLE, key, value).is_ok()
    }
    fn table(&self, nid: &str) -> Vec<(String, Vec<u8>, String)> {
        let mut v: Vec<_> = self
            .table_entries(nid, TABLE)
            .into_iter()
            .map(|e| (e.key, e.value, e.owner))
            .collect();
        v.sort();
        v
    }
}

fn net_name(i: usize) -> String {
    format!("net{i:04}")
}

struct Runner<'a, C: SansIoNode + Tables> {
    sc: &'a Scenario,
    seed: u64,
    progress: bool,
    h: Harness<C>,
    rng: ChaCha8Rng,
    /// Virtual instant of t = 0 (set when the measured phase starts).
    t0: Instant,
    failures: Vec<Failure>,
    metas: Vec<MetaTrace>,
    crashes: Vec<CrashTrace>,
    writes: Vec<WriteTrace>,
    /// Network -> attached nodes.
    attached: Vec<BTreeSet<NodeId>>,
    /// Network -> writers.
    writers: Vec<Vec<NodeId>>,
    /// (network, key) -> (owner, value) of every write.
    expected: BTreeMap<(usize, String), (NodeId, Vec<u8>)>,
    crashed_ever: BTreeSet<NodeId>,
    left: BTreeSet<NodeId>,
    base_loss: f64,
    last_heal: Option<Duration>,
    membership_after_heal: Option<f64>,
    tables_after_heal: Option<f64>,
    membership_converged: Option<f64>,
    write_seq: u64,
    meta_seq: u64,
    /// Actions scheduled by other actions (restarts).
    pending: Vec<(Duration, Action)>,
    /// Partitions applied: (start, heal).
    partitions: Vec<(Duration, Option<Duration>)>,
}

impl<'a, C: SansIoNode + Tables + 'static> Runner<'a, C> {
    fn new(sc: &'a Scenario, opts: &RunOptions, mut h: Harness<C>) -> Self {
        let seed = opts.seed.unwrap_or(sc.seed);
        // The harness was built with seed 0; rebuild its RNG from the real seed.
        h.reseed(seed);
        h.net = NetworkModel {
            latency: sc.network.latency.0,
            jitter: sc.network.jitter.0,
            loss: sc.network.loss,
        };
        let nets = sc.workload.as_ref().map_or(0, |w| w.networks);
        Runner {
            sc,
            seed,
            progress: opts.progress,
            h,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5157_4e45_5400_0001),
            t0: Instant::now(),
            failures: Vec::new(),
            metas: Vec::new(),
            crashes: Vec::new(),
            writes: Vec::new(),
            attached: vec![BTreeSet::new(); nets],
            writers: vec![Vec::new(); nets],
            expected: BTreeMap::new(),
            crashed_ever: BTreeSet::new(),
            left: BTreeSet::new(),
            base_loss: sc.network.loss,
            last_heal: None,
            membership_after_heal: None,
            tables_after_heal: None,
            membership_converged: None,
            write_seq: 0,
            meta_seq: 0,
            pending: Vec::new(),
            partitions: Vec::new(),
        }
    }

    fn t(&self) -> Duration {
        self.h.now().saturating_duration_since(self.t0)
    }

    fn fail(&mut self, what: String) {
        let at = if self.h.now() >= self.t0 {
            format!("{:.6}", self.t().as_secs_f64())
        } else {
            format!("-{:.6}", (self.t0 - self.h.now()).as_secs_f64())
        };
        self.failures.push(Failure { at_s: at, what });
    }

    fn install_latency(&mut self) {
        let net = &self.sc.network;
        if net.regions.is_empty() {
            return;
        }
        // Zones are numbered across regions; node i sits in zone i % zones.
        let mut zone_region = Vec::new();
        for (r, reg) in net.regions.iter().enumerate() {
            for _ in 0..reg.zones.max(1) {
                zone_region.push(r);
            }
        }
        let zones = zone_region.len();
        let same = (net.latency.0, net.jitter.0);
        let cross_zone = net.cross_zone.map_or(net.latency.0 * 2, |d| d.0);
        let jf = net.jitter_fraction;
        let matrix: Vec<Vec<Duration>> = net
            .region_latency_ms
            .iter()
            .map(|row| {
                row.iter()
                    .map(|ms| Duration::from_nanos((ms * 1e6).round() as u64))
                    .collect()
            })
            .collect();
        let regions = zone_region.clone();
        self.h.set_latency_model(Box::new(move |a, b| {
            let (za, zb) = (a % zones, b % zones);
            if za == zb {
                return same;
            }
            let (ra, rb) = (zone_region[za], zone_region[zb]);
            let base = if ra == rb { cross_zone } else { matrix[ra][rb] };
            (base, base.mul_f64(jf))
        }));
        self.h
            .set_regions(Box::new(move |i| regions[i % zones] as u32));
    }

    fn config(&self, name: String, addr: SocketAddr) -> Config {
        self.sc.config.config(name, addr)
    }

    fn add_node(&mut self) -> NodeId {
        let settings = self.sc.config.clone();
        let id = self.h.add_node(move |n, a| settings.config(n, a));
        // Network attachments: each network takes each node with attach_fraction.
        if let Some(w) = &self.sc.workload {
            for net in 0..w.networks {
                if self.rng.gen::<f64>() < w.attach_fraction {
                    self.attached[net].insert(id);
                }
            }
        }
        id
    }

    fn attach_networks(&mut self, id: NodeId) {
        let nets: Vec<usize> = (0..self.attached.len())
            .filter(|&n| self.attached[n].contains(&id))
            .collect();
        let now = self.h.now();
        for n in nets {
            if let Some(c) = self.h.core_mut(id) {
                c.join_network(now, &net_name(n));
            }
        }
        self.h.flush(id);
    }

    fn seeds_for(&self, id: NodeId) -> Vec<NodeId> {
        (0..self.sc.bootstrap.seeds.min(self.h.len()))
            .filter(|&s| s != id && self.h.is_running(s))
            .collect()
    }

    fn pick(&mut self, p: &Pick) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = p
            .nodes
            .iter()
            .copied()
            .filter(|&i| i < self.h.len())
            .collect();
        let seeds = self.sc.bootstrap.seeds;
        let mut eligible: Vec<NodeId> = (seeds..self.h.len())
            .filter(|&i| self.h.is_running(i) && !out.contains(&i))
            .collect();
        eligible.shuffle(&mut self.rng);
        let mut k = p.count;
        if p.fraction > 0.0 {
            k += (p.fraction * self.h.len() as f64).ceil() as usize;
        }
        out.extend(eligible.into_iter().take(k));
        out
    }

    fn drain(&mut self) {
        let t0 = self.t0;
        let base = t0.saturating_duration_since(self.h.now() - self.h.elapsed());
        let events = self.h.take_events();
        for (el, obs, e) in events {
            let Some(at) = el.checked_sub(base) else {
                continue;
            };
            match &e {
                Event::Update(n) | Event::Join(n) => {
                    if self.metas.is_empty() {
                        continue;
                    }
                    let Some(target) = self.h.node_of(&n.name) else {
                        continue;
                    };
                    for m in self.metas.iter_mut().rev() {
                        if m.node == target && m.meta == n.meta {
                            if m.targets.contains(&obs) {
                                m.seen.entry(obs).or_insert(at);
                            }
                            break;
                        }
                    }
                }
                Event::Suspect { node, .. } => {
                    let Some(target) = self.h.node_of(&node.name) else {
                        continue;
                    };
                    for c in self.crashes.iter_mut().rev() {
                        if c.node == target && at >= c.at {
                            c.first_suspect.get_or_insert(at);
                            break;
                        }
                    }
                }
                Event::Leave(n) if n.state == NodeState::Dead => {
                    let Some(target) = self.h.node_of(&n.name) else {
                        continue;
                    };
                    for c in self.crashes.iter_mut().rev() {
                        if c.node == target && at >= c.at {
                            c.dead.entry(obs).or_insert(at);
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        let changes = self.h.take_app_events();
        for (el, obs, ch) in changes {
            let Some(at) = el.checked_sub(base) else {
                continue;
            };
            let Some(v) = C::changed_value(&ch) else {
                continue;
            };
            if v.len() < 8 {
                continue;
            }
            let seq = u64::from_be_bytes(v[..8].try_into().expect("8 bytes")) as usize;
            if let Some(w) = self.writes.get_mut(seq) {
                if w.targets.contains(&obs) {
                    w.seen.entry(obs).or_insert(at);
                }
            }
        }
    }

    fn timeline(&mut self) -> Vec<(Duration, usize, Action)> {
        let sc = self.sc;
        let end = sc.duration.0;
        let mut tl: Vec<(Duration, usize, Action)> = Vec::new();
        let push = |tl: &mut Vec<(Duration, usize, Action)>, at: Duration, a: Action| {
            let k = tl.len();
            tl.push((at, k, a));
        };
        for l in &sc.loss {
            let until = l.until.map_or(end, |d| d.0);
            if !l.links.is_empty() {
                push(&mut tl, l.from.0, Action::LinkLoss(l.links.clone(), l.rate));
                push(&mut tl, until, Action::LinkLoss(l.links.clone(), 0.0));
            } else if l.pick.nodes.is_empty() && l.pick.count == 0 && l.pick.fraction == 0.0 {
                push(&mut tl, l.from.0, Action::SetLoss(l.rate));
                push(&mut tl, until, Action::SetLoss(self.base_loss));
            } else {
                let who = self.pick(&l.pick);
                push(&mut tl, l.from.0, Action::NodeLoss(who.clone(), l.rate));
                push(&mut tl, until, Action::NodeLoss(who, 0.0));
            }
        }
        for p in &sc.partition {
            push(
                &mut tl,
                p.at.0,
                Action::Partition {
                    groups: p.groups,
                    asymmetric: p.asymmetric,
                },
            );
            push(&mut tl, p.heal.map_or(end, |d| d.0), Action::Heal);
        }
        for c in &sc.crash {
            for id in self.pick(&c.pick) {
                push(
                    &mut tl,
                    c.at.0,
                    Action::Crash(id, c.restart_after.map(|d| d.0)),
                );
            }
        }
        for s in &sc.stall {
            let until = s.until.map_or(end, |d| d.0);
            let span = until.saturating_sub(s.from.0).saturating_sub(s.duration.0);
            for id in self.pick(&s.pick) {
                for _ in 0..s.per_host {
                    let off = span.mul_f64(self.rng.gen::<f64>());
                    push(&mut tl, s.from.0 + off, Action::Stall(id, s.duration.0));
                }
            }
        }
        for c in &sc.churn {
            let until = c.until.map_or(end, |d| d.0);
            for (rate, a) in [
                (c.joins_per_s, Action::Join),
                (c.leaves_per_s, Action::Leave),
            ] {
                if rate <= 0.0 {
                    continue;
                }
                let step = Duration::from_secs_f64(1.0 / rate);
                let mut t = c.from.0 + step;
                while t <= until {
                    push(&mut tl, t, a.clone());
                    t += step;
                }
            }
        }
        for b in &sc.broadcast {
            for k in 0..b.count {
                push(
                    &mut tl,
                    b.at.0 + b.every.0 * k as u32,
                    Action::Broadcast(b.node),
                );
            }
        }
        if let Some(w) = &sc.workload {
            let until = w.until.map_or(end, |d| d.0);
            if w.rate > 0.0 {
                let step = Duration::from_secs_f64(1.0 / w.rate);
                for net in 0..w.networks {
                    for writer in 0..self.writers[net].len() {
                        // Stagger writers evenly within one step.
                        let mut t = w.from.0
                            + step.mul_f64(
                                (writer as f64 + 0.5) / w.writers as f64 / w.networks as f64
                                    * (net as f64 + 1.0),
                            );
                        while t < until {
                            push(&mut tl, t, Action::Write { net, writer });
                            t += step;
                        }
                    }
                }
            }
        }
        tl.sort_by_key(|a| (a.0, a.1));
        tl
    }

    fn apply(&mut self, a: Action) {
        let now = self.h.now();
        match a {
            Action::SetLoss(r) => self.h.net.loss = r,
            Action::NodeLoss(ids, r) => {
                for i in ids {
                    self.h.set_node_loss(i, r);
                }
            }
            Action::LinkLoss(links, r) => {
                for [a, b] in links {
                    if a < self.h.len() && b < self.h.len() {
                        self.h.set_link_loss(a, b, r);
                    }
                }
            }
            Action::Partition { groups, asymmetric } => {
                let n = self.h.len();
                let g = move |i: NodeId| ((i * groups) / n).min(groups - 1) as u32;
                self.partitions.push((self.t(), None));
                if asymmetric {
                    self.h.partition_directed(g, [(0, 1)]);
                } else {
                    self.h.partition(g);
                }
            }
            Action::Heal => {
                self.h.heal();
                let now_t = self.t();
                if let Some(p) = self.partitions.last_mut() {
                    p.1.get_or_insert(now_t);
                }
                self.last_heal = Some(self.t());
                self.membership_after_heal = None;
                self.tables_after_heal = None;
            }
            Action::Crash(id, restart) => {
                if !self.h.is_running(id) {
                    return;
                }
                self.h.crash(id);
                self.crashed_ever.insert(id);
                let observers: BTreeSet<NodeId> = (0..self.h.len())
                    .filter(|&i| self.h.is_running(i))
                    .collect();
                self.crashes.push(CrashTrace {
                    node: id,
                    at: self.t(),
                    restarted: None,
                    observers,
                    first_suspect: None,
                    dead: BTreeMap::new(),
                });
                if let Some(after) = restart {
                    self.pending.push((self.t() + after, Action::Restart(id)));
                }
            }
            Action::Restart(id) => {
                let t = self.t();
                if let Some(c) = self.crashes.iter_mut().rev().find(|c| c.node == id) {
                    c.restarted.get_or_insert(t);
                }
                let seeds = self.seeds_for(id);
                let settings = self.sc.config.clone();
                self.h
                    .restart(id, move |n, a| settings.config(n, a), &seeds);
                self.attach_networks(id);
            }
            Action::Stall(id, d) => {
                if self.h.is_running(id) && !self.h.is_stalled(id) {
                    self.h.stall(id, d);
                }
            }
            Action::Join => {
                let id = self.add_node();
                let seeds = self.seeds_for(id);
                self.h.join(id, &seeds);
                self.attach_networks(id);
            }
            Action::Leave => {
                let who = self.pick(&Pick {
                    count: 1,
                    ..Pick::default()
                });
                for id in who {
                    if self.left.contains(&id) {
                        continue;
                    }
                    self.left.insert(id);
                    self.h.leave(id, Duration::from_secs(5));
                }
            }
            Action::Broadcast(node) => {
                let node = match node {
                    Some(n) if n < self.h.len() && self.h.is_running(n) => n,
                    Some(_) => return,
                    None => match self
                        .pick(&Pick {
                            count: 1,
                            ..Pick::default()
                        })
                        .first()
                    {
                        Some(&n) => n,
                        None => return,
                    },
                };
                self.meta_seq += 1;
                let meta = format!("b{}", self.meta_seq).into_bytes();
                let targets: BTreeSet<NodeId> = (0..self.h.len())
                    .filter(|&i| i != node && self.h.is_running(i) && !self.left.contains(&i))
                    .collect();
                if let Some(c) = self.h.core_mut(node) {
                    let _ = c.core_mut().set_meta(now, meta.clone());
                }
                self.metas.push(MetaTrace {
                    node,
                    meta,
                    at: self.t(),
                    targets,
                    seen: BTreeMap::new(),
                });
                self.h.flush(node);
            }
            Action::Write { net, writer } => {
                let Some(&owner) = self.writers[net].get(writer) else {
                    return;
                };
                if !self.h.is_running(owner)
                    || self.h.is_stalled(owner)
                    || self.left.contains(&owner)
                {
                    return;
                }
                let size = self.sc.workload.as_ref().map_or(64, |w| w.value_size);
                let seq = self.writes.len() as u64;
                self.write_seq += 1;
                let mut value = seq.to_be_bytes().to_vec();
                value.resize(size, b'v');
                let key = format!("k{owner}-{seq}");
                let ok = match self.h.core_mut(owner) {
                    Some(c) => c.write(now, &net_name(net), &key, &value),
                    None => false,
                };
                self.h.flush(owner);
                if !ok {
                    self.fail(format!(
                        "node {owner} could not write {key} in {}",
                        net_name(net)
                    ));
                    return;
                }
                let targets: BTreeSet<NodeId> = self.attached[net]
                    .iter()
                    .copied()
                    .filter(|&i| i != owner && self.h.is_running(i) && !self.left.contains(&i))
                    .collect();
                self.writes.push(WriteTrace {
                    at: self.t(),
                    net,
                    writer: owner,
                    targets,
                    seen: BTreeMap::new(),
                });
                self.expected.insert((net, key), (owner, value));
            }
        }
    }

    /// Whether every attached live node holds the same table of every
    /// network. Returns a description of the first difference.
    fn tables_disagree(&self) -> Option<String> {
        for (net, members) in self.attached.iter().enumerate() {
            let mut reference: Option<(NodeId, Vec<Row>)> = None;
            for &i in members {
                if !self.h.is_running(i) || self.left.contains(&i) {
                    continue;
                }
                let Some(c) = self.h.core(i) else { continue };
                let t = c.table(&net_name(net));
                match &reference {
                    None => reference = Some((i, t)),
                    Some((r, rt)) => {
                        if *rt != t {
                            return Some(format!(
                                "{}: node {i} holds {} entries, node {r} {}",
                                net_name(net),
                                t.len(),
                                rt.len()
                            ));
                        }
                    }
                }
            }
        }
        None
    }

    fn run(mut self) -> RunOutput {
        let wall = Instant::now();
        let sc = self.sc;
        self.install_latency();
        // Events are traced from the measured phase on (a cold start records
        // its joins); a bootstrap's N^2 join events would only cost memory.
        self.h
            .record_events(sc.bootstrap.mode == BootstrapMode::Cold);
        for _ in 0..sc.nodes {
            self.add_node();
        }
        // Writers: the first attached nodes of each network, after the seeds when possible.
        for net in 0..self.attached.len() {
            let w = sc.workload.as_ref().map_or(0, |w| w.writers);
            let mut cands: Vec<NodeId> = self.attached[net].iter().copied().collect();
            cands.shuffle(&mut self.rng);
            self.writers[net] = cands.into_iter().take(w).collect();
        }
        let mode = sc.bootstrap.mode;
        let spread = sc.bootstrap.spread.0;
        let boot_start = self.h.now();
        let mut boot_ok = true;
        match mode {
            BootstrapMode::Preload => {
                self.h.preload_membership(0);
                for i in 0..sc.nodes {
                    self.attach_networks(i);
                }
                boot_ok = self.warm_up(boot_start);
            }
            BootstrapMode::Join => {
                self.joins(spread);
                boot_ok = self.warm_up(boot_start);
            }
            BootstrapMode::Cold => {}
        }
        if !boot_ok {
            self.fail("bootstrap did not converge within bootstrap.limit".into());
        }
        let bootstrap_s = (self.h.now() - boot_start).as_secs_f64();
        if mode != BootstrapMode::Cold && !sc.bootstrap.warm.0.is_zero() {
            self.h.run_for(sc.bootstrap.warm.0);
            self.h.take_events();
            self.h.take_app_events();
        }
        let rss_boot = crate::report::proc_status_kib("VmRSS:");
        self.h.take_events();
        self.h.take_app_events();
        self.t0 = self.h.now();
        self.h.record_events(true);
        // Baselines for traffic.
        let base: Vec<Counters> = (0..self.h.len())
            .map(|i| (self.h.sent(i), self.h.received(i)))
            .collect();
        let base_cross: Vec<(u64, u64)> = (0..self.h.len())
            .map(|i| self.h.cross_region_sent(i))
            .collect();
        let base_refutations: u64 = (0..self.h.len())
            .filter_map(|i| self.h.core(i))
            .map(|c| c.core().stats().refutations)
            .sum();
        let base_topology: u64 = (0..self.h.len())
            .filter_map(|i| self.h.core(i))
            .map(|c| c.core().stats().topology_choices)
            .sum();
        let fp_before = self.h.false_positives().len();
        let fs_before = self.h.false_suspicions();
        self.h.classify_traffic(true);
        let mut tl: std::collections::VecDeque<(Duration, usize, Action)> = self.timeline().into();
        if mode == BootstrapMode::Cold {
            self.joins(spread);
        }
        let end = sc.duration.0;
        let bar = self.bar(end + sc.settle.0);
        let mut next_check = Duration::ZERO;
        loop {
            // Deferred restarts join the timeline.
            for (at, a) in self.pending.drain(..) {
                let k = usize::MAX;
                let pos = tl.iter().position(|(t, _, _)| *t > at).unwrap_or(tl.len());
                tl.insert(pos, (at, k, a));
            }
            let step_end = (self.t() + Duration::from_secs(1)).min(end);
            let next_action = tl.front().map(|(t, _, _)| *t).filter(|t| *t <= step_end);
            let target = next_action.unwrap_or(step_end);
            self.h.run_until(self.t0 + target);
            self.drain();
            if next_action.is_some() {
                let (_, _, a) = tl.pop_front().expect("front");
                self.apply(a);
                continue;
            }
            if let Some(b) = &bar {
                b.set_position(self.t().as_millis() as u64);
            }
            if self.t() >= next_check {
                next_check = self.t() + Duration::from_secs(1);
                self.check_convergence();
            }
            if self.t() >= end {
                break;
            }
        }
        let coordinates = self.coordinate_accuracy();
        // Settle: lift every fault, then wait for agreement.
        self.h.heal();
        self.h.net.loss = self.base_loss;
        for i in 0..self.h.len() {
            self.h.set_node_loss(i, 0.0);
        }
        for l in &sc.loss {
            for [a, b] in &l.links {
                if *a < self.h.len() && *b < self.h.len() {
                    self.h.set_link_loss(*a, *b, 0.0);
                }
            }
        }
        let settle_start = self.t();
        let mut settle_s = None;
        while self.t() < settle_start + sc.settle.0 {
            if self.h.converged() && (self.attached.is_empty() || self.tables_disagree().is_none())
            {
                settle_s = Some(round6((self.t() - settle_start).as_secs_f64()));
                break;
            }
            let next = self.t() + Duration::from_secs(1);
            self.h.run_until(self.t0 + next);
            self.drain();
            if let Some(b) = &bar {
                b.set_position(self.t().as_millis() as u64);
            }
        }
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        if settle_s.is_none() {
            let bad = self.h.disagreeing_nodes(5);
            if !bad.is_empty() {
                self.fail(format!(
                    "membership did not agree within {:?} after faults were lifted (e.g. nodes {bad:?})",
                    sc.settle.0
                ));
            }
            if let Some(d) = self.tables_disagree() {
                self.fail(format!(
                    "tables did not agree within {:?} after faults were lifted: {d}",
                    sc.settle.0
                ));
            }
        }
        // No entry lost whose owner stayed alive.
        let mut checked = 0;
        let mut lost = Vec::new();
        for (net, members) in self.attached.iter().enumerate() {
            let want: Vec<(&String, &NodeId, &Vec<u8>)> = self
                .expected
                .range((net, String::new())..(net + 1, String::new()))
                .filter(|(_, (owner, _))| {
                    self.h.is_running(*owner)
                        && !self.crashed_ever.contains(owner)
                        && !self.left.contains(owner)
                })
                .map(|((_, k), (o, v))| (k, o, v))
                .collect();
            if want.is_empty() {
                continue;
            }
            for &i in members {
                if !self.h.is_running(i) || self.left.contains(&i) {
                    continue;
                }
                let Some(c) = self.h.core(i) else { continue };
                let t: BTreeMap<String, Vec<u8>> = c
                    .table(&net_name(net))
                    .into_iter()
                    .map(|(k, v, _)| (k, v))
                    .collect();
                for (key, owner, value) in &want {
                    checked += 1;
                    if t.get(*key) != Some(*value) && lost.len() < 5 {
                        lost.push(format!("{key} of node {owner} missing at node {i}"));
                    }
                }
            }
        }
        for l in lost {
            self.fail(format!("entry lost while its owner lives: {l}"));
        }
        for v in self.h.violations().to_vec() {
            let at =
                v.at.as_secs_f64() - (self.t0 - (self.h.now() - self.h.elapsed())).as_secs_f64();
            self.failures.push(Failure {
                at_s: format!("{at:.6}"),
                what: v.what,
            });
        }
        let report = self.report(
            mode,
            bootstrap_s,
            settle_s,
            &base,
            &base_cross,
            base_refutations,
            base_topology,
            fp_before,
            fs_before,
            checked,
            coordinates,
        );
        let wall_s = wall.elapsed().as_secs_f64();
        let host = HostFigures {
            wall_s,
            peak_rss_kib: crate::report::proc_status_kib("VmHWM:"),
            rss_after_bootstrap_kib: rss_boot,
            bytes_per_node: rss_boot * 1024 / sc.nodes.max(1) as u64,
        };
        RunOutput { report, host }
    }

    fn bar(&self, total: Duration) -> Option<indicatif::ProgressBar> {
        if !self.progress {
            return None;
        }
        let b = indicatif::ProgressBar::new(total.as_millis() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} virtual ms, ETA {eta}",
            )
            .expect("valid template"),
        );
        Some(b)
    }

    fn joins(&mut self, spread: Duration) {
        let n = self.sc.nodes;
        let seeds = self.sc.bootstrap.seeds;
        let start = self.h.now();
        // Seeds join each other first.
        for i in 0..n {
            if i > 0 {
                let at = start + spread.mul_f64(i as f64 / n as f64);
                self.h.run_until(at);
                let mut s: Vec<NodeId> = (0..seeds.min(i)).filter(|&x| x != i).collect();
                if s.is_empty() {
                    s.push(0);
                }
                self.h.join(i, &s);
            }
            self.attach_networks(i);
        }
    }

    /// Runs until every node sees every other and all broadcast queues are
    /// empty (or the limit passes). Returns whether it got there.
    fn warm_up(&mut self, start: Instant) -> bool {
        let limit = start + self.sc.bootstrap.limit.0;
        loop {
            let quiet = (0..self.h.len())
                .filter_map(|i| self.h.core(i))
                .all(|c| c.core().pending_broadcasts() == 0);
            if quiet && self.h.converged() && self.tables_disagree().is_none() {
                return true;
            }
            if self.h.now() >= limit {
                return false;
            }
            let next = self.h.now() + Duration::from_secs(1);
            self.h.run_until(next);
            self.h.take_events();
            self.h.take_app_events();
        }
    }

    /// Relative error of Vivaldi RTT estimates against the network model,
    /// over up to [`COORD_PAIRS`] random pairs of live nodes (its own RNG,
    /// so sampling changes nothing else). `None` without coordinates.
    fn coordinate_accuracy(&self) -> Option<CoordinateAccuracy> {
        let live: Vec<NodeId> = (0..self.h.len())
            .filter(|&i| {
                self.h
                    .core(i)
                    .is_some_and(|c| c.core().coordinate().is_some())
            })
            .collect();
        if live.len() < 2 {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x434f_4f52_4400_0002);
        let (mut seen, mut current, mut same, mut cross) = (vec![], vec![], vec![], vec![]);
        for _ in 0..COORD_PAIRS {
            let a = live[rng.gen_range(0..live.len())];
            let b = live[rng.gen_range(0..live.len())];
            if a == b {
                continue;
            }
            let truth = self.h.expected_rtt(a, b).as_secs_f64();
            let (Some(ca), Some(cb)) = (self.h.core(a), self.h.core(b)) else {
                continue;
            };
            let ca = ca.core();
            let ours = ca.coordinate().expect("live has coordinates");
            let rel = |est: f64| (est - truth).abs() / truth;
            // What `a` itself would estimate: its coordinate and the one
            // it last heard from `b` (only known once `a` probed `b`).
            if let Some(theirs) = ca.coordinate_of(&crate::node_name(b)) {
                if let Ok(d) = ours.distance_secs(theirs) {
                    seen.push(rel(d));
                }
            }
            // Both nodes' coordinates as they are now.
            if let Some(now_b) = cb.core().coordinate() {
                if let Ok(d) = ours.distance_secs(now_b) {
                    let e = rel(d);
                    current.push(e);
                    if self.h.region_of(a) == self.h.region_of(b) {
                        same.push(e);
                    } else {
                        cross.push(e);
                    }
                }
            }
        }
        let median = |v: &[f64]| round6(Dist::of(v).p50);
        let p90 = |v: &[f64]| round6(Dist::of(v).p90);
        Some(CoordinateAccuracy {
            pairs: current.len(),
            median_rel_error: median(&current),
            p90_rel_error: p90(&current),
            median_rel_error_same_region: median(&same),
            median_rel_error_cross_region: median(&cross),
            pairs_known: seen.len(),
            median_rel_error_known: median(&seen),
        })
    }

    fn check_convergence(&mut self) {
        if self.sc.bootstrap.mode == BootstrapMode::Cold && self.membership_converged.is_none() {
            if self.h.converged() {
                self.membership_converged = Some(round6(self.t().as_secs_f64()));
            }
            return;
        }
        if let Some(heal) = self.last_heal {
            if self.membership_after_heal.is_none() && self.h.converged() {
                self.membership_after_heal = Some(round6((self.t() - heal).as_secs_f64()));
            }
            if !self.attached.is_empty()
                && self.tables_after_heal.is_none()
                && self.tables_disagree().is_none()
            {
                self.tables_after_heal = Some(round6((self.t() - heal).as_secs_f64()));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        mode: BootstrapMode,
        bootstrap_s: f64,
        settle_s: Option<f64>,
        base: &[Counters],
        base_cross: &[(u64, u64)],
        base_refutations: u64,
        base_topology: u64,
        fp_before: usize,
        fs_before: u64,
        checked: usize,
        coordinates: Option<CoordinateAccuracy>,
    ) -> Report {
        let sc = self.sc;
        let cfg = self.config("x".into(), crate::node_addr(0));
        let round = cfg.gossip_interval.as_secs_f64();
        let floors = Floors::new(sc.nodes, cfg.gossip_nodes, round, sc.network.loss);
        let curves = sc.curves;
        let broadcasts: Vec<Dissemination> = self
            .metas
            .iter()
            .map(|m| {
                let times: Vec<f64> = m
                    .seen
                    .values()
                    .map(|t| t.saturating_sub(m.at).as_secs_f64())
                    .collect();
                dissemination(
                    format!("meta of node {}", m.node),
                    m.at,
                    m.targets.len(),
                    times,
                    round,
                    curves,
                )
            })
            .collect();
        let t100: Vec<f64> = broadcasts.iter().filter_map(|b| b.t100_s).collect();
        let t99: Vec<f64> = broadcasts.iter().filter_map(|b| b.t99_s).collect();
        let t999: Vec<f64> = broadcasts.iter().filter_map(|b| b.t999_s).collect();
        let mut dead_all = Vec::new();
        let mut first_susp = Vec::new();
        let detections: Vec<Detection> = self
            .crashes
            .iter()
            .map(|c| {
                // Observers that stayed live throughout.
                let obs: Vec<NodeId> = c
                    .observers
                    .iter()
                    .copied()
                    .filter(|&o| {
                        self.h.is_running(o)
                            && !self.crashed_ever.contains(&o)
                            && !self.left.contains(&o)
                    })
                    .collect();
                let lat: Vec<f64> = obs
                    .iter()
                    .filter_map(|o| c.dead.get(o))
                    .map(|t| round6(t.saturating_sub(c.at).as_secs_f64()))
                    .collect();
                dead_all.extend(lat.iter().copied());
                let fs = c
                    .first_suspect
                    .map(|t| round6(t.saturating_sub(c.at).as_secs_f64()));
                if let Some(f) = fs {
                    first_susp.push(f);
                }
                // A node restarted before everyone timed it out is not
                // "undetected" by the rest.
                let undetected = if c.restarted.is_some() {
                    0
                } else {
                    obs.len() - lat.len()
                };
                Detection {
                    node: c.node,
                    at_s: round6(c.at.as_secs_f64()),
                    restarted_after_s: c
                        .restarted
                        .map(|r| round6(r.saturating_sub(c.at).as_secs_f64())),
                    first_suspicion_s: fs,
                    first_dead_s: lat.iter().copied().reduce(f64::min),
                    all_dead_s: if lat.len() == obs.len() && !lat.is_empty() {
                        lat.iter().copied().reduce(f64::max)
                    } else {
                        None
                    },
                    undetected_by: undetected,
                }
            })
            .collect();
        // Dead verdicts while a partition is in force, or within 30 s of its
        // heal (stale verdicts from the other side crossing over until the
        // accused refute), are the partition's doing, not false positives.
        let base_el = self.t0 - (self.h.now() - self.h.elapsed());
        let grace = Duration::from_secs(30);
        let (across, fps): (Vec<_>, Vec<_>) =
            self.h.false_positives()[fp_before..].iter().partition(|f| {
                let t = f.at.saturating_sub(base_el);
                self.partitions.iter().any(|&(start, heal)| {
                    let end = heal.map_or(Duration::MAX, |h| h + grace);
                    t >= start && t <= end
                })
            });
        let fp_nodes: BTreeSet<NodeId> = fps.iter().map(|f| f.target).collect();
        let topology_choices: u64 = (0..self.h.len())
            .filter_map(|i| self.h.core(i))
            .map(|c| c.core().stats().topology_choices)
            .sum::<u64>()
            .saturating_sub(base_topology);
        let refutations: u64 = (0..self.h.len())
            .filter_map(|i| self.h.core(i))
            .map(|c| c.core().stats().refutations)
            .sum::<u64>()
            .saturating_sub(base_refutations);
        // Traffic over the measured phase and settle.
        let secs = self.t().as_secs_f64().max(1e-9);
        let n = self.h.len();
        let mut out_b = Vec::new();
        let mut in_b = Vec::new();
        let mut out_p = Vec::new();
        let mut in_p = Vec::new();
        for i in 0..n {
            let ((sp0, sb0), (rp0, rb0)) = base.get(i).copied().unwrap_or_default();
            let (sp, sb) = self.h.sent(i);
            let (rp, rb) = self.h.received(i);
            out_b.push((sb - sb0) as f64 / secs);
            in_b.push((rb - rb0) as f64 / secs);
            out_p.push((sp - sp0) as f64 / secs);
            in_p.push((rp - rp0) as f64 / secs);
        }
        let mean = |v: &[f64]| round6(v.iter().sum::<f64>() / v.len().max(1) as f64);
        let max = |v: &[f64]| round6(v.iter().copied().fold(0.0, f64::max));
        let per = (n.max(1) as f64) * secs;
        let tr = self.h.traffic();
        let traffic = TrafficReport {
            bytes_out_mean: mean(&out_b),
            bytes_in_mean: mean(&in_b),
            bytes_out_max: max(&out_b),
            bytes_in_max: max(&in_b),
            packets_out_mean: mean(&out_p),
            packets_in_mean: mean(&in_p),
            packets_out_max: max(&out_p),
            packets_in_max: max(&in_p),
            bytes_out_by_kind: tr
                .bytes
                .iter()
                .map(|(k, v)| (k.to_string(), round6(*v as f64 / per)))
                .collect(),
            messages_out_by_kind: tr
                .packets
                .iter()
                .map(|(k, v)| (k.to_string(), round6(*v as f64 / per)))
                .collect(),
            cross_region: (!sc.network.regions.is_empty()).then(|| {
                let (mut packets, mut bytes) = (0u64, 0u64);
                for i in 0..n {
                    let (p0, b0) = base_cross.get(i).copied().unwrap_or_default();
                    let (p, b) = self.h.cross_region_sent(i);
                    packets += p - p0;
                    bytes += b - b0;
                }
                let all: u64 = (0..n)
                    .map(|i| {
                        let ((_, b0), _) = base.get(i).copied().unwrap_or_default();
                        self.h.sent(i).1 - b0
                    })
                    .sum();
                let ct = self.h.cross_region_traffic();
                CrossRegion {
                    packets,
                    bytes,
                    packets_out_mean: round6(packets as f64 / per),
                    bytes_out_mean: round6(bytes as f64 / per),
                    share_of_bytes: round6(bytes as f64 / all.max(1) as f64),
                    bytes_out_by_kind: ct
                        .bytes
                        .iter()
                        .map(|(k, v)| (k.to_string(), round6(*v as f64 / per)))
                        .collect(),
                    messages_out_by_kind: ct
                        .packets
                        .iter()
                        .map(|(k, v)| (k.to_string(), round6(*v as f64 / per)))
                        .collect(),
                }
            }),
        };
        let tables = sc.workload.as_ref().map(|w| {
            let mut conv = Vec::new();
            let mut half = Vec::new();
            let mut slowest: Vec<SlowWrite> = Vec::new();
            for (index, wr) in self.writes.iter().enumerate() {
                let mut times: Vec<f64> = wr
                    .seen
                    .values()
                    .map(|t| t.saturating_sub(wr.at).as_secs_f64())
                    .collect();
                times.sort_by(|a, b| a.total_cmp(b));
                if wr.targets.is_empty() {
                    continue;
                }
                let need_half = wr.targets.len().div_ceil(2);
                if times.len() >= need_half {
                    half.push(round6(times[need_half - 1]));
                }
                if times.len() == wr.targets.len() {
                    let last = times[times.len() - 1];
                    conv.push(round6(last));
                    let last_node = wr
                        .seen
                        .iter()
                        .max_by_key(|(_, t)| **t)
                        .map_or(0, |(n, _)| *n);
                    slowest.push(SlowWrite {
                        write: index,
                        network: wr.net,
                        at_s: round6(wr.at.as_secs_f64()),
                        seconds: round6(last),
                        last_node,
                        last_region: self.h.region_of(last_node),
                        writer_region: self.h.region_of(wr.writer),
                    });
                    slowest.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
                    slowest.truncate(SLOWEST_WRITES);
                }
            }
            TablesReport {
                networks: w.networks,
                writes: self.writes.len(),
                writes_converged: conv.len(),
                write_convergence: Dist::of(&conv),
                write_half: Dist::of(&half),
                after_heal_s: self.tables_after_heal,
                entries_checked: checked,
                slowest,
            }
        });
        Report {
            scenario: sc.name.clone(),
            seed: self.seed,
            protocol: match sc.protocol {
                Protocol::Memberlist => "memberlist".into(),
                Protocol::Networkdb => "networkdb".into(),
                Protocol::Serf => "serf".into(),
            },
            nodes: sc.nodes,
            nodes_total: self.h.len(),
            duration_s: sc.duration.0.as_secs_f64(),
            bootstrap: match mode {
                BootstrapMode::Preload => "preload".into(),
                BootstrapMode::Join => "join".into(),
                BootstrapMode::Cold => "cold".into(),
            },
            bootstrap_s: round6(bootstrap_s),
            membership_converged_s: self.membership_converged,
            membership_after_heal_s: self.membership_after_heal,
            settle_s,
            floors,
            dissemination_t100: Dist::of(&t100),
            dissemination_t99: Dist::of(&t99),
            dissemination_t999: Dist::of(&t999),
            broadcasts,
            detections,
            detection_dead: Dist::of(&dead_all),
            detection_first_suspicion: Dist::of(&first_susp),
            false_positives: fps.len(),
            partition_verdicts: across.len(),
            false_positive_nodes: fp_nodes.len(),
            false_suspicions: self.h.false_suspicions() - fs_before,
            refutations,
            topology_choices,
            traffic,
            coordinates,
            tables,
            failures: self.failures.clone(),
        }
    }
}

fn dissemination(
    what: String,
    at: Duration,
    targets: usize,
    mut times: Vec<f64>,
    round: f64,
    curves: bool,
) -> Dissemination {
    times.sort_by(|a, b| a.total_cmp(b));
    let reach = |p: f64| -> Option<f64> {
        if targets == 0 {
            return Some(0.0);
        }
        let need = ((p * targets as f64).ceil() as usize).max(1);
        times.get(need - 1).map(|t| round6(*t))
    };
    let t100 = if times.len() >= targets {
        reach(1.0)
    } else {
        None
    };
    let curve = if curves {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| (round6(*t), round6((i + 1) as f64 / targets.max(1) as f64)))
            .collect()
    } else {
        Vec::new()
    };
    Dissemination {
        what,
        at_s: round6(at.as_secs_f64()),
        targets,
        informed: times.len(),
        t50_s: reach(0.5),
        t99_s: reach(0.99),
        t999_s: reach(0.999),
        t100_s: t100,
        t100_rounds: t100.map(|t| round6(t / round)),
        curve,
    }
}

/// Writes `report.json`, `summary.txt` (with host figures), `host.json` and
/// the SVG charts into `dir` (created if missing). Returns the files written.
pub fn write_outputs(out: &RunOutput, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let json = serde_json::to_string_pretty(&out.report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    files.push("report.json".to_string());
    std::fs::write(dir.join("summary.txt"), out.report.summary(Some(&out.host)))?;
    files.push("summary.txt".to_string());
    let host = serde_json::to_string_pretty(&out.host).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("host.json"), host + "\n")?;
    files.push("host.json".to_string());
    let charts = crate::charts::write_charts(&out.report, dir)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    files.extend(charts);
    Ok(files)
}
