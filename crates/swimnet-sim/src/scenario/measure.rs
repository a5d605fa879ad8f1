//! Measurement: what the runner records while a scenario runs
//! ([`Measurements`]) and how that record becomes the [`Report`].
//!
//! Nothing here reads the wall clock or draws from the run's random stream,
//! so building the report cannot change the run it describes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::format::{BootstrapMode, Protocol, Scenario};
use crate::report::{
    round6, CoordinateAccuracy, CrossRegion, Detection, Dissemination, Dist, Failure, Floors,
    Report, SlowWrite, TablesReport, TrafficReport, SLOWEST_WRITES,
};
use crate::{Harness, NodeId};
use swimnet_core::SansIoNode;

/// A traced metadata broadcast: when each of its targets saw the new meta.
pub(super) struct MetaTrace {
    /// The node whose meta changed.
    pub node: NodeId,
    /// The new meta (unique per broadcast).
    pub meta: Vec<u8>,
    /// When it was set, measured-phase time.
    pub at: Duration,
    /// Nodes that should learn it.
    pub targets: BTreeSet<NodeId>,
    /// Target -> when it first saw the meta.
    pub seen: BTreeMap<NodeId, Duration>,
}

/// A crashed node and what the others made of it.
pub(super) struct CrashTrace {
    /// The crashed node.
    pub node: NodeId,
    /// When it crashed, measured-phase time.
    pub at: Duration,
    /// When it was restarted, if it was.
    pub restarted: Option<Duration>,
    /// Nodes running at the crash.
    pub observers: BTreeSet<NodeId>,
    /// The first suspicion of it, by anyone.
    pub first_suspect: Option<Duration>,
    /// Observer -> when it declared the node dead.
    pub dead: BTreeMap<NodeId, Duration>,
}

/// A table write and when each attached node saw it.
pub(super) struct WriteTrace {
    /// When it was written, measured-phase time.
    pub at: Duration,
    /// Network index.
    pub net: usize,
    /// The writing node.
    pub writer: NodeId,
    /// Attached live nodes that should see it.
    pub targets: BTreeSet<NodeId>,
    /// Target -> when it first saw the entry.
    pub seen: BTreeMap<NodeId, Duration>,
}

/// A node's ((packets, bytes) sent, (packets, bytes) received).
type Counters = ((u64, u64), (u64, u64));

/// Cluster-wide counters read when the measured phase starts: the report
/// counts only what happened after.
#[derive(Default)]
pub(super) struct Baseline {
    counters: Vec<Counters>,
    cross: Vec<(u64, u64)>,
    refutations: u64,
    topology_choices: u64,
    false_positives: usize,
    false_suspicions: u64,
}

impl Baseline {
    /// Reads the counters of every node of `h` now.
    pub(super) fn read<C: SansIoNode>(h: &Harness<C>) -> Baseline {
        let n = h.len();
        Baseline {
            counters: (0..n).map(|i| (h.sent(i), h.received(i))).collect(),
            cross: (0..n).map(|i| h.cross_region_sent(i)).collect(),
            refutations: stat_sum(h, |s| s.refutations),
            topology_choices: stat_sum(h, |s| s.topology_choices),
            false_positives: h.false_positives().len(),
            false_suspicions: h.false_suspicions(),
        }
    }
}

/// One membership statistic summed over the running nodes.
fn stat_sum<C: SansIoNode>(h: &Harness<C>, stat: impl Fn(&swimnet_core::Stats) -> u64) -> u64 {
    (0..h.len())
        .filter_map(|i| h.core(i))
        .map(|c| stat(c.core().stats()))
        .sum()
}

/// Everything a run records for its report, filled in as the run goes.
#[derive(Default)]
pub(super) struct Measurements {
    /// Virtual seconds the bootstrap took.
    pub bootstrap_s: f64,
    /// Counters at the start of the measured phase.
    pub baseline: Baseline,
    /// Traced metadata broadcasts.
    pub metas: Vec<MetaTrace>,
    /// Crashes.
    pub crashes: Vec<CrashTrace>,
    /// Table writes; a write's index is the sequence number in its value.
    pub writes: Vec<WriteTrace>,
    /// Partitions applied: (start, heal).
    pub partitions: Vec<(Duration, Option<Duration>)>,
    /// Time of the last heal.
    pub last_heal: Option<Duration>,
    /// Seconds from the last heal until membership agreed.
    pub membership_after_heal: Option<f64>,
    /// Seconds from the last heal until the tables agreed.
    pub tables_after_heal: Option<f64>,
    /// Cold start: seconds until membership converged.
    pub membership_converged: Option<f64>,
    /// Seconds after the measured phase until everything agreed.
    pub settle_s: Option<f64>,
    /// Entries compared at the end.
    pub entries_checked: usize,
    /// Coordinate accuracy at the end of the measured phase.
    pub coordinates: Option<CoordinateAccuracy>,
    /// Invariant failures.
    pub failures: Vec<Failure>,
}

/// What the report needs to know about the cluster when the run ends.
pub(super) struct EndOfRun<'a, C: SansIoNode> {
    /// The scenario run.
    pub sc: &'a Scenario,
    /// The run's seed.
    pub seed: u64,
    /// The cluster.
    pub h: &'a Harness<C>,
    /// Virtual instant of t = 0 (the start of the measured phase).
    pub t0: Instant,
    /// Nodes that crashed at some point.
    pub crashed_ever: &'a BTreeSet<NodeId>,
    /// Nodes that left gracefully.
    pub left: &'a BTreeSet<NodeId>,
}

impl<C: SansIoNode> EndOfRun<'_, C> {
    /// Measured-phase time now (measured phase and settle).
    fn t(&self) -> Duration {
        self.h.now().saturating_duration_since(self.t0)
    }

    /// Running now, and never crashed nor left.
    fn stayed_live(&self, i: NodeId) -> bool {
        self.h.is_running(i) && !self.crashed_ever.contains(&i) && !self.left.contains(&i)
    }
}

/// Crash detection figures: per crash, and pooled over crashes.
struct DetectionFigures {
    detections: Vec<Detection>,
    /// Seconds from a crash to each observer's dead verdict.
    dead: Vec<f64>,
    /// Seconds from a crash to its first suspicion.
    first_suspicion: Vec<f64>,
}

impl Measurements {
    /// Turns the record of a finished run into its report.
    pub(super) fn report<C: SansIoNode>(&self, end: &EndOfRun<C>) -> Report {
        let sc = end.sc;
        let cfg = sc.config.config("x".into(), crate::node_addr(0));
        let round = cfg.gossip_interval.as_secs_f64();
        let broadcasts = self.broadcasts(round, sc.curves);
        let t100: Vec<f64> = broadcasts.iter().filter_map(|b| b.t100_s).collect();
        let t99: Vec<f64> = broadcasts.iter().filter_map(|b| b.t99_s).collect();
        let t999: Vec<f64> = broadcasts.iter().filter_map(|b| b.t999_s).collect();
        let detection = self.detections(end);
        let (partition_verdicts, fps) = self.false_positives(end);
        let fp_nodes: BTreeSet<NodeId> = fps.iter().map(|f| f.target).collect();
        let h = end.h;
        let base = &self.baseline;
        Report {
            scenario: sc.name.clone(),
            seed: end.seed,
            protocol: match sc.protocol {
                Protocol::Memberlist => "memberlist".into(),
                Protocol::Networkdb => "networkdb".into(),
                Protocol::Serf => "serf".into(),
            },
            nodes: sc.nodes,
            nodes_total: h.len(),
            duration_s: sc.duration.0.as_secs_f64(),
            bootstrap: match sc.bootstrap.mode {
                BootstrapMode::Preload => "preload".into(),
                BootstrapMode::Join => "join".into(),
                BootstrapMode::Cold => "cold".into(),
            },
            bootstrap_s: round6(self.bootstrap_s),
            membership_converged_s: self.membership_converged,
            membership_after_heal_s: self.membership_after_heal,
            settle_s: self.settle_s,
            floors: Floors::new(sc.nodes, cfg.gossip_nodes, round, sc.network.loss),
            dissemination_t100: Dist::of(&t100),
            dissemination_t99: Dist::of(&t99),
            dissemination_t999: Dist::of(&t999),
            broadcasts,
            detections: detection.detections,
            detection_dead: Dist::of(&detection.dead),
            detection_first_suspicion: Dist::of(&detection.first_suspicion),
            false_positives: fps.len(),
            partition_verdicts,
            false_positive_nodes: fp_nodes.len(),
            false_suspicions: h.false_suspicions() - base.false_suspicions,
            refutations: stat_sum(h, |s| s.refutations).saturating_sub(base.refutations),
            topology_choices: stat_sum(h, |s| s.topology_choices)
                .saturating_sub(base.topology_choices),
            traffic: self.traffic(end),
            coordinates: self.coordinates.clone(),
            tables: self.tables(end),
            failures: self.failures.clone(),
        }
    }

    /// One [`Dissemination`] per traced metadata broadcast.
    fn broadcasts(&self, round: f64, curves: bool) -> Vec<Dissemination> {
        self.metas
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
            .collect()
    }

    /// Detection of every crash, by the observers that stayed live throughout.
    fn detections<C: SansIoNode>(&self, end: &EndOfRun<C>) -> DetectionFigures {
        let mut dead = Vec::new();
        let mut first_suspicion = Vec::new();
        let detections = self
            .crashes
            .iter()
            .map(|c| {
                let obs: Vec<NodeId> = c
                    .observers
                    .iter()
                    .copied()
                    .filter(|&o| end.stayed_live(o))
                    .collect();
                let lat: Vec<f64> = obs
                    .iter()
                    .filter_map(|o| c.dead.get(o))
                    .map(|t| round6(t.saturating_sub(c.at).as_secs_f64()))
                    .collect();
                dead.extend(lat.iter().copied());
                let fs = c
                    .first_suspect
                    .map(|t| round6(t.saturating_sub(c.at).as_secs_f64()));
                if let Some(f) = fs {
                    first_suspicion.push(f);
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
        DetectionFigures {
            detections,
            dead,
            first_suspicion,
        }
    }

    /// Dead verdicts about live nodes during the measured phase, split into
    /// the count of those the partitions explain and the false positives.
    ///
    /// Dead verdicts while a partition is in force, or within 30 s of its
    /// heal (stale verdicts from the other side crossing over until the
    /// accused refute), are the partition's doing, not false positives.
    fn false_positives<'h, C: SansIoNode>(
        &self,
        end: &EndOfRun<'h, C>,
    ) -> (usize, Vec<&'h crate::FalsePositive>) {
        let h = end.h;
        let base_el = end.t0 - (h.now() - h.elapsed());
        let grace = Duration::from_secs(30);
        let (across, fps): (Vec<_>, Vec<_>) = h.false_positives()[self.baseline.false_positives..]
            .iter()
            .partition(|f| {
                let t = f.at.saturating_sub(base_el);
                self.partitions.iter().any(|&(start, heal)| {
                    let end = heal.map_or(Duration::MAX, |h| h + grace);
                    t >= start && t <= end
                })
            });
        (across.len(), fps)
    }

    /// Traffic per node per second over the measured phase and settle.
    fn traffic<C: SansIoNode>(&self, end: &EndOfRun<C>) -> TrafficReport {
        let h = end.h;
        let secs = end.t().as_secs_f64().max(1e-9);
        let n = h.len();
        let mut out_b = Vec::new();
        let mut in_b = Vec::new();
        let mut out_p = Vec::new();
        let mut in_p = Vec::new();
        for i in 0..n {
            let ((sp0, sb0), (rp0, rb0)) =
                self.baseline.counters.get(i).copied().unwrap_or_default();
            let (sp, sb) = h.sent(i);
            let (rp, rb) = h.received(i);
            out_b.push((sb - sb0) as f64 / secs);
            in_b.push((rb - rb0) as f64 / secs);
            out_p.push((sp - sp0) as f64 / secs);
            in_p.push((rp - rp0) as f64 / secs);
        }
        let mean = |v: &[f64]| round6(v.iter().sum::<f64>() / v.len().max(1) as f64);
        let max = |v: &[f64]| round6(v.iter().copied().fold(0.0, f64::max));
        let per = (n.max(1) as f64) * secs;
        let tr = h.traffic();
        TrafficReport {
            bytes_out_mean: mean(&out_b),
            bytes_in_mean: mean(&in_b),
            bytes_out_max: max(&out_b),
            bytes_in_max: max(&in_b),
            packets_out_mean: mean(&out_p),
            packets_in_mean: mean(&in_p),
            packets_out_max: max(&out_p),
            packets_in_max: max(&in_p),
            bytes_out_by_kind: per_node_second(&tr.bytes, per),
            messages_out_by_kind: per_node_second(&tr.packets, per),
            cross_region: (!end.sc.network.regions.is_empty()).then(|| self.cross_region(end, per)),
        }
    }

    /// What crossed regions; `per` is node count times seconds.
    fn cross_region<C: SansIoNode>(&self, end: &EndOfRun<C>, per: f64) -> CrossRegion {
        let h = end.h;
        let n = h.len();
        let (mut packets, mut bytes) = (0u64, 0u64);
        for i in 0..n {
            let (p0, b0) = self.baseline.cross.get(i).copied().unwrap_or_default();
            let (p, b) = h.cross_region_sent(i);
            packets += p - p0;
            bytes += b - b0;
        }
        let all: u64 = (0..n)
            .map(|i| {
                let ((_, b0), _) = self.baseline.counters.get(i).copied().unwrap_or_default();
                h.sent(i).1 - b0
            })
            .sum();
        let ct = h.cross_region_traffic();
        CrossRegion {
            packets,
            bytes,
            packets_out_mean: round6(packets as f64 / per),
            bytes_out_mean: round6(bytes as f64 / per),
            share_of_bytes: round6(bytes as f64 / all.max(1) as f64),
            bytes_out_by_kind: per_node_second(&ct.bytes, per),
            messages_out_by_kind: per_node_second(&ct.packets, per),
        }
    }

    /// Table convergence figures (scenarios with a workload).
    fn tables<C: SansIoNode>(&self, end: &EndOfRun<C>) -> Option<TablesReport> {
        let w = end.sc.workload.as_ref()?;
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
                slowest.push(slow_write(end.h, index, wr, last));
                slowest.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
                slowest.truncate(SLOWEST_WRITES);
            }
        }
        Some(TablesReport {
            networks: w.networks,
            writes: self.writes.len(),
            writes_converged: conv.len(),
            write_convergence: Dist::of(&conv),
            write_half: Dist::of(&half),
            after_heal_s: self.tables_after_heal,
            entries_checked: self.entries_checked,
            slowest,
        })
    }
}

/// The [`SlowWrite`] entry of write number `index`, which took `last` seconds.
fn slow_write<C: SansIoNode>(
    h: &Harness<C>,
    index: usize,
    wr: &WriteTrace,
    last: f64,
) -> SlowWrite {
    let last_node = wr
        .seen
        .iter()
        .max_by_key(|(_, t)| **t)
        .map_or(0, |(n, _)| *n);
    SlowWrite {
        write: index,
        network: wr.net,
        at_s: round6(wr.at.as_secs_f64()),
        seconds: round6(last),
        last_node,
        last_region: h.region_of(last_node),
        writer_region: h.region_of(wr.writer),
    }
}

/// Counts by message kind divided by `per` (node count times seconds).
fn per_node_second(counts: &BTreeMap<&'static str, u64>, per: f64) -> BTreeMap<String, f64> {
    counts
        .iter()
        .map(|(k, v)| (k.to_string(), round6(*v as f64 / per)))
        .collect()
}

/// The [`Dissemination`] of one broadcast made at `at` for `targets`
/// nodes, from the seconds each informed node took to learn it.
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

/// Node pairs sampled for [`CoordinateAccuracy`].
const COORD_PAIRS: usize = 4000;

/// Relative error of Vivaldi RTT estimates against the network model, over
/// up to [`COORD_PAIRS`] random pairs of live nodes. The pairs come from an
/// RNG of their own (derived from `seed`), so sampling changes nothing else
/// in the run. `None` without coordinates.
pub(super) fn coordinate_accuracy<C: SansIoNode>(
    h: &Harness<C>,
    seed: u64,
) -> Option<CoordinateAccuracy> {
    let live: Vec<NodeId> = (0..h.len())
        .filter(|&i| h.core(i).is_some_and(|c| c.core().coordinate().is_some()))
        .collect();
    if live.len() < 2 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x434f_4f52_4400_0002);
    let (mut seen, mut current, mut same, mut cross) = (vec![], vec![], vec![], vec![]);
    for _ in 0..COORD_PAIRS {
        let a = live[rng.gen_range(0..live.len())];
        let b = live[rng.gen_range(0..live.len())];
        if a == b {
            continue;
        }
        let truth = h.expected_rtt(a, b).as_secs_f64();
        let (Some(ca), Some(cb)) = (h.core(a), h.core(b)) else {
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
                if h.region_of(a) == h.region_of(b) {
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
