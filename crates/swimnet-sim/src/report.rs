//! What a scenario run measured: the JSON report and its text summary.
//!
//! Everything in [`Report`] is a function of the scenario and the seed (no
//! wall-clock time, no memory figures), so the same seed gives a
//! byte-identical `report.json`. Host figures (wall time, peak memory) are
//! kept apart in [`HostFigures`].

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// Percentiles of a set of durations, in seconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Dist {
    /// Number of samples.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Dist {
    /// The distribution of `xs` (nearest-rank percentiles).
    pub fn of(xs: &[f64]) -> Dist {
        if xs.is_empty() {
            return Dist::default();
        }
        let mut v = xs.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        Dist {
            count: v.len(),
            min: v[0],
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: v[v.len() - 1],
            mean: round6(v.iter().sum::<f64>() / v.len() as f64),
        }
    }
}

/// Rounds to microsecond precision (keeps the JSON short and stable).
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Reference figures for push gossip at this size and fanout.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Floors {
    /// Cluster size used.
    pub n: usize,
    /// Gossip fanout.
    pub fanout: usize,
    /// Gossip interval, seconds (one round).
    pub round_s: f64,
    /// Push-gossip floor, rounds: log_{f+1} N + ln N / f. Rumour spreading
    /// by push with fanout f needs about this many rounds to reach all N
    /// nodes: the informed set grows at most (f+1)-fold per round, then each
    /// last straggler is missed with probability about e^-f per round. (For
    /// f = 1 this is the classic log2 N + ln N result of Frieze and
    /// Grimmett, and of Pittel, on rumour spreading.)
    pub push_floor_rounds: f64,
    /// The same in seconds.
    pub push_floor_s: f64,
    /// Rounds to reach 50 %, 99 % and 99.9 % of nodes in the epidemic model
    /// of Serf's gossip convergence simulator, with the scenario's uniform
    /// loss: the informed share after x rounds is
    /// 1 / (1 + (N+1) e^(-(f/2)(1-loss) x)), solved here for x.
    pub serf_model_rounds: BTreeMap<String, f64>,
}

impl Floors {
    /// Figures for `n` nodes, fanout `f`, round length `round_s` and loss.
    pub fn new(n: usize, f: usize, round_s: f64, loss: f64) -> Floors {
        let nf = n.max(2) as f64;
        let ff = f.max(1) as f64;
        let push = nf.ln() / (ff + 1.0).ln() + nf.ln() / ff;
        let mut serf = BTreeMap::new();
        let rate = (ff / 2.0) * (1.0 - loss);
        for (name, p) in [("50", 0.5), ("99", 0.99), ("99.9", 0.999)] {
            let x = ((nf + 1.0) * p / (1.0 - p)).ln() / rate;
            serf.insert(name.to_string(), round6(x));
        }
        Floors {
            n,
            fanout: f,
            round_s,
            push_floor_rounds: round6(push),
            push_floor_s: round6(push * round_s),
            serf_model_rounds: serf,
        }
    }
}

/// One traced broadcast (a metadata update, or a table write).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Dissemination {
    /// What was sent (`meta` or `table`) and by whom.
    pub what: String,
    /// When it was sent, seconds since the measured phase began.
    pub at_s: f64,
    /// Nodes that should learn it (running, not the sender).
    pub targets: usize,
    /// Nodes that learned it before the run ended.
    pub informed: usize,
    /// Seconds after sending until 50 %, 99 %, 99.9 % and 100 % of the
    /// targets knew (absent: never reached).
    pub t50_s: Option<f64>,
    /// 99 %.
    pub t99_s: Option<f64>,
    /// 99.9 %.
    pub t999_s: Option<f64>,
    /// 100 %.
    pub t100_s: Option<f64>,
    /// `t100_s` in gossip rounds.
    pub t100_rounds: Option<f64>,
    /// The curve: (seconds after sending, fraction informed), one point per
    /// newly informed node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<(f64, f64)>,
}

/// Detection of one crashed node.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Detection {
    /// The crashed node.
    pub node: usize,
    /// Crash time, seconds since the measured phase began.
    pub at_s: f64,
    /// Seconds until the first node suspected it.
    pub first_suspicion_s: Option<f64>,
    /// Seconds until the first node declared it dead.
    pub first_dead_s: Option<f64>,
    /// Seconds until every live observer declared it dead.
    pub all_dead_s: Option<f64>,
    /// Live observers that never declared it dead during the run (0 when
    /// it was restarted).
    pub undetected_by: usize,
    /// Seconds after the crash when it was restarted.
    pub restarted_after_s: Option<f64>,
}

/// Traffic per node per second.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TrafficReport {
    /// Mean over nodes: bytes sent per second.
    pub bytes_out_mean: f64,
    /// Mean over nodes: bytes received per second.
    pub bytes_in_mean: f64,
    /// Busiest node: bytes sent per second.
    pub bytes_out_max: f64,
    /// Busiest node: bytes received per second.
    pub bytes_in_max: f64,
    /// Mean over nodes: packets (datagrams and stream messages) sent per second.
    pub packets_out_mean: f64,
    /// Mean over nodes: packets received per second.
    pub packets_in_mean: f64,
    /// Busiest node: packets sent per second.
    pub packets_out_max: f64,
    /// Busiest node: packets received per second.
    pub packets_in_max: f64,
    /// Sent bytes per node per second, by message kind.
    pub bytes_out_by_kind: BTreeMap<String, f64>,
    /// Sent messages per node per second, by message kind.
    pub messages_out_by_kind: BTreeMap<String, f64>,
    /// What crossed regions (scenarios with `[[network.regions]]` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_region: Option<CrossRegion>,
}

/// Traffic sent to a node of another region, over the same window as the
/// rest of [`TrafficReport`] (sent, whether or not it arrived).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CrossRegion {
    /// Datagrams and stream messages, in total.
    pub packets: u64,
    /// Bytes, in total.
    pub bytes: u64,
    /// Packets per node per second.
    pub packets_out_mean: f64,
    /// Bytes per node per second.
    pub bytes_out_mean: f64,
    /// Share of all sent bytes that crossed regions.
    pub share_of_bytes: f64,
    /// Bytes per node per second, by message kind (as
    /// [`TrafficReport::bytes_out_by_kind`]).
    pub bytes_out_by_kind: BTreeMap<String, f64>,
    /// Messages per node per second, by message kind.
    pub messages_out_by_kind: BTreeMap<String, f64>,
}

/// How well Vivaldi coordinates estimate the modelled round trip times,
/// at the end of the measured phase, over random pairs of live nodes:
/// relative error `|estimate - truth| / truth`, where the truth is the
/// model's mean RTT (base latencies plus half the jitter bounds).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CoordinateAccuracy {
    /// Pairs compared with both nodes' current coordinates.
    pub pairs: usize,
    /// Median relative error, current coordinates.
    pub median_rel_error: f64,
    /// 90th percentile of the relative error, current coordinates.
    pub p90_rel_error: f64,
    /// Median over pairs in the same region (short RTTs).
    pub median_rel_error_same_region: f64,
    /// Median over pairs in different regions.
    pub median_rel_error_cross_region: f64,
    /// Pairs where the first node knew a coordinate of the second (learnt
    /// from its own probes, as Serf does): what peer selection uses.
    pub pairs_known: usize,
    /// Median relative error of those estimates (possibly stale).
    pub median_rel_error_known: f64,
}

/// Table convergence figures (NetworkDB scenarios).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TablesReport {
    /// Networks.
    pub networks: usize,
    /// Writes made.
    pub writes: usize,
    /// Writes every target node saw before the run ended.
    pub writes_converged: usize,
    /// Seconds from a write until every attached live node saw it.
    pub write_convergence: Dist,
    /// Seconds from a write until half the attached live nodes saw it.
    pub write_half: Dist,
    /// Seconds from the last heal until every network's tables agreed.
    pub after_heal_s: Option<f64>,
    /// Entries checked at the end (live owners' latest values).
    pub entries_checked: usize,
    /// The slowest converged writes, slowest first (at most
    /// [`SLOWEST_WRITES`]): where a tail comes from.
    pub slowest: Vec<SlowWrite>,
}

/// Slowest writes kept in [`TablesReport::slowest`].
pub const SLOWEST_WRITES: usize = 5;

/// One slow write of [`TablesReport::slowest`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlowWrite {
    /// Index of the write in the run (its value starts with it).
    pub write: usize,
    /// Network index.
    pub network: usize,
    /// Virtual seconds into the measured phase when it was made.
    pub at_s: f64,
    /// Seconds until the last attached live node saw it.
    pub seconds: f64,
    /// The node that saw it last.
    pub last_node: usize,
    /// That node's region (0 without regions).
    pub last_region: u32,
    /// The writer's region.
    pub writer_region: u32,
}

/// An invariant that did not hold.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// Virtual seconds since the measured phase began (bootstrap is negative).
    pub at_s: String,
    /// What went wrong.
    pub what: String,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed of the run.
    pub seed: u64,
    /// `memberlist`, `networkdb` or `serf`.
    pub protocol: String,
    /// Nodes at the start of the measured phase.
    pub nodes: usize,
    /// Nodes ever created (churn adds more).
    pub nodes_total: usize,
    /// Length of the measured phase, virtual seconds.
    pub duration_s: f64,
    /// How the cluster was formed.
    pub bootstrap: String,
    /// Virtual seconds the bootstrap took (before the measured phase).
    pub bootstrap_s: f64,
    /// Cold start: virtual seconds until every node saw every other alive.
    pub membership_converged_s: Option<f64>,
    /// Seconds from the last partition heal until membership agreed again.
    pub membership_after_heal_s: Option<f64>,
    /// Seconds after the measured phase until all live nodes agreed
    /// (membership and tables) with every fault lifted.
    pub settle_s: Option<f64>,
    /// Reference figures.
    pub floors: Floors,
    /// Metadata broadcasts traced.
    pub broadcasts: Vec<Dissemination>,
    /// Summary over broadcasts: seconds to 100 %.
    pub dissemination_t100: Dist,
    /// Summary over broadcasts: seconds to 99 %.
    pub dissemination_t99: Dist,
    /// Summary over broadcasts: seconds to 99.9 %.
    pub dissemination_t999: Dist,
    /// Crashed nodes and their detection.
    pub detections: Vec<Detection>,
    /// Pooled over crashes: seconds from crash to each observer's dead verdict.
    pub detection_dead: Dist,
    /// Pooled over crashes: seconds from crash to first suspicion.
    pub detection_first_suspicion: Dist,
    /// Live nodes declared dead (observer verdicts).
    pub false_positives: usize,
    /// Dead verdicts about live nodes while a partition was in force or
    /// within 30 s after it healed: expected, not counted as false positives.
    pub partition_verdicts: usize,
    /// Distinct live nodes declared dead by someone.
    pub false_positive_nodes: usize,
    /// Suspicions raised about live nodes (observer events).
    pub false_suspicions: u64,
    /// Refutations made by nodes.
    pub refutations: u64,
    /// Peer choices (gossip, indirect-probe helpers, push/pull partners)
    /// the membership cores made latency-aware during the measured phase
    /// (0 with topology awareness off, or while coordinates are unsettled).
    pub topology_choices: u64,
    /// Traffic.
    pub traffic: TrafficReport,
    /// Coordinate accuracy (absent when coordinates are off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<CoordinateAccuracy>,
    /// Tables (NetworkDB).
    pub tables: Option<TablesReport>,
    /// Invariant failures; non-empty fails the run.
    pub failures: Vec<Failure>,
}

/// Figures about the host run, which vary between runs (kept out of the report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostFigures {
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Peak resident memory of the process, KiB (Linux `VmHWM`).
    pub peak_rss_kib: u64,
    /// Resident memory after the bootstrap, KiB.
    pub rss_after_bootstrap_kib: u64,
    /// `rss_after_bootstrap_kib` per node, bytes.
    pub bytes_per_node: u64,
}

/// Reads a field of `/proc/self/status` in KiB (0 when unavailable).
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn opt(x: Option<f64>) -> String {
    x.map_or("never".to_string(), |v| format!("{v:.3} s"))
}

fn dist(d: &Dist) -> String {
    if d.count == 0 {
        return "no samples".into();
    }
    format!(
        "n={} min {:.3} p50 {:.3} p90 {:.3} p99 {:.3} max {:.3} s",
        d.count, d.min, d.p50, d.p90, d.p99, d.max
    )
}

impl Report {
    /// A readable summary (with the host figures when given), one section
    /// per part of the report that has something to say.
    pub fn summary(&self, host: Option<&HostFigures>) -> String {
        let mut s = String::new();
        self.write_header(&mut s, host);
        self.write_dissemination(&mut s);
        self.write_detection(&mut s);
        self.write_accuracy(&mut s);
        self.write_traffic(&mut s);
        self.write_coordinates(&mut s);
        self.write_tables(&mut s);
        self.write_outcome(&mut s);
        s
    }

    /// The run, the host, the reference floors and a cold start's convergence.
    fn write_header(&self, s: &mut String, host: Option<&HostFigures>) {
        let _ = writeln!(
            s,
            "scenario {} (seed {}, {}, {} nodes, {} s measured, bootstrap {} took {:.1} s)",
            self.scenario,
            self.seed,
            self.protocol,
            self.nodes,
            self.duration_s,
            self.bootstrap,
            self.bootstrap_s
        );
        if let Some(h) = host {
            let _ = writeln!(
                s,
                "host: wall {:.1} s, peak RSS {:.1} MiB, RSS after bootstrap {:.1} MiB ({} B per node)",
                h.wall_s,
                h.peak_rss_kib as f64 / 1024.0,
                h.rss_after_bootstrap_kib as f64 / 1024.0,
                h.bytes_per_node
            );
        }
        let f = &self.floors;
        let _ = writeln!(
            s,
            "floors (N={}, fanout {}, round {:.3} s): push gossip {:.2} rounds ({:.3} s); Serf model 50%/99%/99.9%: {:.2}/{:.2}/{:.2} rounds",
            f.n,
            f.fanout,
            f.round_s,
            f.push_floor_rounds,
            f.push_floor_s,
            f.serf_model_rounds.get("50").copied().unwrap_or(0.0),
            f.serf_model_rounds.get("99").copied().unwrap_or(0.0),
            f.serf_model_rounds.get("99.9").copied().unwrap_or(0.0),
        );
        if let Some(t) = self.membership_converged_s {
            let _ = writeln!(
                s,
                "membership converged (every node sees every other) after {t:.3} s"
            );
        }
    }

    /// Each traced broadcast and the pooled times to 99.9 % and 100 %.
    fn write_dissemination(&self, s: &mut String) {
        if self.broadcasts.is_empty() {
            return;
        }
        let _ = writeln!(s, "dissemination ({} broadcasts):", self.broadcasts.len());
        for b in &self.broadcasts {
            let _ = writeln!(
                s,
                "  {} at {:.3} s: {}/{} informed; 50% {} 99% {} 99.9% {} 100% {}{}",
                b.what,
                b.at_s,
                b.informed,
                b.targets,
                opt(b.t50_s),
                opt(b.t99_s),
                opt(b.t999_s),
                opt(b.t100_s),
                b.t100_rounds.map_or(String::new(), |r| format!(
                    " = {r:.1} rounds ({:.2}x push floor)",
                    r / self.floors.push_floor_rounds
                )),
            );
        }
        let _ = writeln!(s, "  to 99.9%: {}", dist(&self.dissemination_t999));
        let _ = writeln!(s, "  to 100%: {}", dist(&self.dissemination_t100));
    }

    /// How fast crashes were suspected and declared dead.
    fn write_detection(&self, s: &mut String) {
        if self.detections.is_empty() {
            return;
        }
        let _ = writeln!(s, "failure detection ({} crashes):", self.detections.len());
        let _ = writeln!(
            s,
            "  first suspicion: {}",
            dist(&self.detection_first_suspicion)
        );
        let _ = writeln!(s, "  dead verdicts:   {}", dist(&self.detection_dead));
        let all: Vec<f64> = self
            .detections
            .iter()
            .filter_map(|d| d.all_dead_s)
            .collect();
        let _ = writeln!(s, "  everyone knows:  {}", dist(&Dist::of(&all)));
        let und: usize = self.detections.iter().map(|d| d.undetected_by).sum();
        if und > 0 {
            let _ = writeln!(
                s,
                "  observers that never declared the crashed node dead: {und}"
            );
        }
    }

    /// False positives, suspicions, refutations, latency-aware choices and
    /// agreement after the last heal.
    fn write_accuracy(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "false positives: {} dead verdicts about {} live nodes (plus {} across partitions); suspicions of live nodes: {}; refutations: {}",
            self.false_positives, self.false_positive_nodes, self.partition_verdicts, self.false_suspicions, self.refutations
        );
        if self.topology_choices > 0 {
            let _ = writeln!(
                s,
                "latency-aware peer choices (membership core): {}",
                self.topology_choices
            );
        }
        if let Some(t) = self.membership_after_heal_s {
            let _ = writeln!(s, "membership agreed {t:.3} s after the last heal");
        }
    }

    /// Traffic per node, by message kind, and what crossed regions.
    fn write_traffic(&self, s: &mut String) {
        let t = &self.traffic;
        let _ = writeln!(
            s,
            "traffic per node: out {:.0} B/s ({:.1} pkt/s), in {:.0} B/s ({:.1} pkt/s); busiest node out {:.0} B/s in {:.0} B/s",
            t.bytes_out_mean,
            t.packets_out_mean,
            t.bytes_in_mean,
            t.packets_in_mean,
            t.bytes_out_max,
            t.bytes_in_max
        );
        let parts: Vec<String> = by_size(&t.bytes_out_by_kind)
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{k} {v:.0} B/s ({:.2} msg/s)",
                    t.messages_out_by_kind.get(k).copied().unwrap_or(0.0)
                )
            })
            .collect();
        let _ = writeln!(s, "  by kind (out): {}", parts.join(", "));
        if let Some(c) = &t.cross_region {
            let _ = writeln!(
                s,
                "cross-region: {} packets, {} bytes ({:.1}% of bytes); per node {:.0} B/s ({:.1} pkt/s)",
                c.packets,
                c.bytes,
                100.0 * c.share_of_bytes,
                c.bytes_out_mean,
                c.packets_out_mean
            );
            let parts: Vec<String> = by_size(&c.bytes_out_by_kind)
                .into_iter()
                .map(|(k, v)| format!("{k} {v:.0} B/s"))
                .collect();
            let _ = writeln!(s, "  by kind (out): {}", parts.join(", "));
        }
    }

    /// Vivaldi coordinate accuracy, when coordinates were on.
    fn write_coordinates(&self, s: &mut String) {
        let Some(c) = &self.coordinates else {
            return;
        };
        let _ = writeln!(
            s,
            "coordinates: median relative RTT error {:.3} (p90 {:.3}; same region {:.3}, across regions {:.3}) over {} pairs; as seen by the first node {:.3} over {} pairs",
            c.median_rel_error,
            c.p90_rel_error,
            c.median_rel_error_same_region,
            c.median_rel_error_cross_region,
            c.pairs,
            c.median_rel_error_known,
            c.pairs_known
        );
    }

    /// Table convergence (NetworkDB scenarios).
    fn write_tables(&self, s: &mut String) {
        let Some(tb) = &self.tables else {
            return;
        };
        let _ = writeln!(
            s,
            "tables: {} networks, {} writes, {} reached every attached node",
            tb.networks, tb.writes, tb.writes_converged
        );
        let _ = writeln!(s, "  write -> all nodes: {}", dist(&tb.write_convergence));
        let _ = writeln!(s, "  write -> half:      {}", dist(&tb.write_half));
        if let Some(w) = tb.slowest.first() {
            let _ = writeln!(
                s,
                "  slowest: write {} (network {}, at {:.1} s, region {} -> {}) reached node {} last, after {:.3} s",
                w.write, w.network, w.at_s, w.writer_region, w.last_region, w.last_node, w.seconds
            );
        }
        if let Some(h) = tb.after_heal_s {
            let _ = writeln!(s, "  tables agreed {h:.3} s after the last heal");
        }
        let _ = writeln!(s, "  entries checked at the end: {}", tb.entries_checked);
    }

    /// Settling and the invariants (with the seed to replay a failure).
    fn write_outcome(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "settled (all live nodes agree, faults lifted): {}",
            opt(self.settle_s)
        );
        if self.failures.is_empty() {
            let _ = writeln!(s, "invariants: all held");
        } else {
            let _ = writeln!(s, "INVARIANT FAILURES ({}):", self.failures.len());
            for f in self.failures.iter().take(20) {
                let _ = writeln!(s, "  at {} s: {}", f.at_s, f.what);
            }
            let _ = writeln!(s, "replay with --seed {}", self.seed);
        }
    }
}

/// The entries of a per-kind map, largest first (ties by name).
fn by_size(m: &BTreeMap<String, f64>) -> Vec<(&String, &f64)> {
    let mut kinds: Vec<(&String, &f64)> = m.iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    kinds
}
