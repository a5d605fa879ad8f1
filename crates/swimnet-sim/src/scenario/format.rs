//! The scenario file format: what a TOML scenario may say, its defaults,
//! and the checks [`Scenario::from_toml`] makes before anything runs.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use swimnet_core::Config;

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
    /// Serf members ([`swimnet_serf::SerfNode`]: Serf's delegate versions,
    /// tags, leave intents before a graceful leave).
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
    /// The node config these overrides give on top of the chosen profile.
    pub(crate) fn config(&self, name: String, addr: SocketAddr) -> Config {
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
