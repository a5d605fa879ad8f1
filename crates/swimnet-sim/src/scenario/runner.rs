//! The runner: builds the cluster a scenario describes, bootstraps it, runs
//! the measured phase (stepping the harness and applying the timeline of
//! [`Action`]s), lifts every fault, waits for the cluster to settle and
//! checks what must hold at the end.
//!
//! The order of every random draw here is part of the result: the same seed
//! must give the same report, so changes must keep the draws in order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swimnet_core::{Event, Memberlist, NodeState, NoopDelegate};
use swimnet_networkdb::{NetworkDb, TableChange};
use swimnet_serf::{SerfEvent, SerfNode};

use super::actions::{Action, Timeline};
use super::format::{BootstrapMode, Pick, Scenario};
use super::measure::{self, Baseline, EndOfRun, Measurements};
use super::{RunOptions, RunOutput};
use crate::report::{round6, Failure, HostFigures};
use crate::{Harness, NetworkModel, NodeId};
use swimnet_core::SansIoNode;

/// One table row: key, value, owner.
type Row = (String, Vec<u8>, String);

/// The table operations the runner needs from a node; plain memberlist
/// nodes have no tables.
pub(super) trait Tables: SansIoNode {
    /// The value a table change left visible (`None`: deleted, or no tables).
    fn changed_value(change: &Self::AppEvent) -> Option<&[u8]>;
    /// Attaches the node to network `nid`.
    fn join_network(&mut self, now: Instant, nid: &str);
    /// Writes `key = value` in the sim's table of network `nid`; false if refused.
    fn write(&mut self, now: Instant, nid: &str, key: &str, value: &[u8]) -> bool;
    /// Sorted `(key, value, owner)` of the visible entries of a network's table.
    fn table(&self, nid: &str) -> Vec<Row>;
}

impl Tables for Memberlist<NoopDelegate> {
    fn changed_value(change: &std::convert::Infallible) -> Option<&[u8]> {
        match *change {}
    }
    fn join_network(&mut self, _now: Instant, _nid: &str) {}
    fn write(&mut self, _now: Instant, _nid: &str, _key: &str, _value: &[u8]) -> bool {
        false
    }
    fn table(&self, _nid: &str) -> Vec<Row> {
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
    fn table(&self, _nid: &str) -> Vec<Row> {
        Vec::new()
    }
}

/// The one table every workload writes to.
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
    fn table(&self, nid: &str) -> Vec<Row> {
        let mut v: Vec<_> = self
            .table_entries(nid, TABLE)
            .into_iter()
            .map(|e| (e.key, e.value, e.owner))
            .collect();
        v.sort();
        v
    }
}

/// The name of network number `i`.
pub(super) fn net_name(i: usize) -> String {
    format!("net{i:04}")
}

/// One run of a scenario on a harness of cores `C`.
pub(super) struct Runner<'a, C: SansIoNode + Tables> {
    pub(super) sc: &'a Scenario,
    pub(super) seed: u64,
    progress: bool,
    pub(super) h: Harness<C>,
    /// The runner's own random stream (picks, attachments, stall times).
    pub(super) rng: ChaCha8Rng,
    /// Virtual instant of t = 0 (set when the measured phase starts).
    t0: Instant,
    /// What the report is built from.
    pub(super) m: Measurements,
    /// Network -> attached nodes.
    pub(super) attached: Vec<BTreeSet<NodeId>>,
    /// Network -> writers.
    pub(super) writers: Vec<Vec<NodeId>>,
    /// (network, key) -> (owner, value) of every write.
    pub(super) expected: BTreeMap<(usize, String), (NodeId, Vec<u8>)>,
    pub(super) crashed_ever: BTreeSet<NodeId>,
    pub(super) left: BTreeSet<NodeId>,
    /// The scenario's background loss (restored when a loss window ends).
    pub(super) base_loss: f64,
    /// Metadata broadcasts made so far (numbers each new meta).
    pub(super) meta_seq: u64,
    /// Actions scheduled by other actions (restarts).
    pub(super) pending: Vec<(Duration, Action)>,
}

impl<'a, C: SansIoNode + Tables + 'static> Runner<'a, C> {
    /// A runner for `sc` on `h` (a harness built with seed 0: it is reseeded).
    pub(super) fn new(sc: &'a Scenario, opts: &RunOptions, mut h: Harness<C>) -> Self {
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
            m: Measurements::default(),
            attached: vec![BTreeSet::new(); nets],
            writers: vec![Vec::new(); nets],
            expected: BTreeMap::new(),
            crashed_ever: BTreeSet::new(),
            left: BTreeSet::new(),
            base_loss: sc.network.loss,
            meta_seq: 0,
            pending: Vec::new(),
        }
    }

    /// Time since the measured phase began (zero before).
    pub(super) fn t(&self) -> Duration {
        self.h.now().saturating_duration_since(self.t0)
    }

    /// Records an invariant failure at the current time.
    pub(super) fn fail(&mut self, what: String) {
        let at = if self.h.now() >= self.t0 {
            format!("{:.6}", self.t().as_secs_f64())
        } else {
            format!("-{:.6}", (self.t0 - self.h.now()).as_secs_f64())
        };
        self.m.failures.push(Failure { at_s: at, what });
    }

    /// Runs the scenario to the end and builds its report.
    pub(super) fn run(mut self) -> RunOutput {
        let wall = Instant::now();
        let sc = self.sc;
        self.build_cluster();
        self.m.bootstrap_s = self.bootstrap();
        let rss_boot = crate::report::proc_status_kib("VmRSS:");
        self.start_measured_phase();
        let timeline = self.timeline();
        if sc.bootstrap.mode == BootstrapMode::Cold {
            self.joins(sc.bootstrap.spread.0);
        }
        let bar = self.bar(sc.duration.0 + sc.settle.0);
        self.measured_phase(timeline, bar.as_ref());
        self.m.coordinates = measure::coordinate_accuracy(&self.h, self.seed);
        self.lift_faults();
        self.m.settle_s = self.settle(bar.as_ref());
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        if self.m.settle_s.is_none() {
            self.report_disagreement();
        }
        self.m.entries_checked = self.check_entries();
        self.record_violations();
        let report = self.m.report(&EndOfRun {
            sc,
            seed: self.seed,
            h: &self.h,
            t0: self.t0,
            crashed_ever: &self.crashed_ever,
            left: &self.left,
        });
        let host = HostFigures {
            wall_s: wall.elapsed().as_secs_f64(),
            peak_rss_kib: crate::report::proc_status_kib("VmHWM:"),
            rss_after_bootstrap_kib: rss_boot,
            bytes_per_node: rss_boot * 1024 / sc.nodes.max(1) as u64,
        };
        RunOutput { report, host }
    }

    /// Installs the latency model, adds the starting nodes and picks the
    /// writers of every network.
    fn build_cluster(&mut self) {
        let sc = self.sc;
        self.install_latency();
        // Events are traced from the measured phase on (a cold start records
        // its joins); a bootstrap's N^2 join events would only cost memory.
        self.h
            .record_events(sc.bootstrap.mode == BootstrapMode::Cold);
        for _ in 0..sc.nodes {
            self.add_node();
        }
        // Writers: a random choice among the attached nodes of each network.
        for net in 0..self.attached.len() {
            let w = sc.workload.as_ref().map_or(0, |w| w.writers);
            let mut cands: Vec<NodeId> = self.attached[net].iter().copied().collect();
            cands.shuffle(&mut self.rng);
            self.writers[net] = cands.into_iter().take(w).collect();
        }
    }

    /// Forms the cluster as `bootstrap.mode` says (a cold start does it
    /// later, in the measured phase), then warms it up. Returns the virtual
    /// seconds the formation took.
    fn bootstrap(&mut self) -> f64 {
        let mode = self.sc.bootstrap.mode;
        let boot_start = self.h.now();
        let converged = match mode {
            BootstrapMode::Preload => {
                self.h.preload_membership(0);
                for i in 0..self.sc.nodes {
                    self.attach_networks(i);
                }
                self.warm_up(boot_start)
            }
            BootstrapMode::Join => {
                self.joins(self.sc.bootstrap.spread.0);
                self.warm_up(boot_start)
            }
            BootstrapMode::Cold => true,
        };
        if !converged {
            self.fail("bootstrap did not converge within bootstrap.limit".into());
        }
        let bootstrap_s = (self.h.now() - boot_start).as_secs_f64();
        let warm = self.sc.bootstrap.warm.0;
        if mode != BootstrapMode::Cold && !warm.is_zero() {
            self.h.run_for(warm);
            self.h.take_events();
            self.h.take_app_events();
        }
        bootstrap_s
    }

    /// Sets t = 0: drops what the bootstrap recorded, starts tracing events
    /// and classifying traffic, and reads the counters' baseline.
    fn start_measured_phase(&mut self) {
        self.h.take_events();
        self.h.take_app_events();
        self.t0 = self.h.now();
        self.h.record_events(true);
        self.m.baseline = Baseline::read(&self.h);
        self.h.classify_traffic(true);
    }

    /// Steps the harness through the measured phase, at most a second at a
    /// time, applying each action of `timeline` when its time comes.
    fn measured_phase(&mut self, timeline: Timeline, bar: Option<&indicatif::ProgressBar>) {
        let mut tl: VecDeque<(Duration, usize, Action)> = timeline.into_sorted().into();
        let end = self.sc.duration.0;
        let mut next_check = Duration::ZERO;
        loop {
            // Deferred restarts join the timeline.
            for (at, a) in self.pending.drain(..) {
                let pos = tl.iter().position(|(t, _, _)| *t > at).unwrap_or(tl.len());
                tl.insert(pos, (at, usize::MAX, a));
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
            if let Some(b) = bar {
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
    }

    /// Ends every partition and loss window (the settle phase runs clean).
    fn lift_faults(&mut self) {
        self.h.heal();
        self.h.net.loss = self.base_loss;
        for i in 0..self.h.len() {
            self.h.set_node_loss(i, 0.0);
        }
        for l in &self.sc.loss {
            for [a, b] in &l.links {
                if *a < self.h.len() && *b < self.h.len() {
                    self.h.set_link_loss(*a, *b, 0.0);
                }
            }
        }
    }

    /// Runs until membership and tables agree, at most `settle`. Returns the
    /// seconds it took, or `None`.
    fn settle(&mut self, bar: Option<&indicatif::ProgressBar>) -> Option<f64> {
        let settle_start = self.t();
        while self.t() < settle_start + self.sc.settle.0 {
            if self.h.converged() && (self.attached.is_empty() || self.tables_disagree().is_none())
            {
                return Some(round6((self.t() - settle_start).as_secs_f64()));
            }
            let next = self.t() + Duration::from_secs(1);
            self.h.run_until(self.t0 + next);
            self.drain();
            if let Some(b) = bar {
                b.set_position(self.t().as_millis() as u64);
            }
        }
        None
    }

    /// Records what still disagreed when the settle time ran out.
    fn report_disagreement(&mut self) {
        let settle = self.sc.settle.0;
        let bad = self.h.disagreeing_nodes(5);
        if !bad.is_empty() {
            self.fail(format!(
                "membership did not agree within {settle:?} after faults were lifted (e.g. nodes {bad:?})"
            ));
        }
        if let Some(d) = self.tables_disagree() {
            self.fail(format!(
                "tables did not agree within {settle:?} after faults were lifted: {d}"
            ));
        }
    }

    /// Checks that no entry was lost whose owner stayed alive: every live
    /// attached node holds the last value of each. Records up to five
    /// losses as failures; returns the number of (entry, node) pairs checked.
    fn check_entries(&mut self) -> usize {
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
        checked
    }

    /// Copies the harness's SWIM invariant violations into the failures,
    /// with measured-phase times.
    fn record_violations(&mut self) {
        let base_el = (self.t0 - (self.h.now() - self.h.elapsed())).as_secs_f64();
        for v in self.h.violations() {
            let at = v.at.as_secs_f64() - base_el;
            self.m.failures.push(Failure {
                at_s: format!("{at:.6}"),
                what: v.what.clone(),
            });
        }
    }

    /// Places nodes in regions and zones with the scenario's latency matrix
    /// (nothing to do with the uniform model).
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

    /// Adds a node and draws which networks it attaches to.
    pub(super) fn add_node(&mut self) -> NodeId {
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

    /// Node `id` joins the networks it was attached to.
    pub(super) fn attach_networks(&mut self, id: NodeId) {
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

    /// The running seed nodes other than `id`.
    pub(super) fn seeds_for(&self, id: NodeId) -> Vec<NodeId> {
        (0..self.sc.bootstrap.seeds.min(self.h.len()))
            .filter(|&s| s != id && self.h.is_running(s))
            .collect()
    }

    /// The nodes `p` names: its explicit ids, then random running non-seed nodes.
    pub(super) fn pick(&mut self, p: &Pick) -> Vec<NodeId> {
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

    /// Takes the harness's recorded events and table changes into the traces.
    fn drain(&mut self) {
        let base = self
            .t0
            .saturating_duration_since(self.h.now() - self.h.elapsed());
        let events = self.h.take_events();
        for (el, obs, e) in events {
            if let Some(at) = el.checked_sub(base) {
                self.trace_event(at, obs, &e);
            }
        }
        let changes = self.h.take_app_events();
        for (el, obs, ch) in changes {
            let Some(at) = el.checked_sub(base) else {
                continue;
            };
            // Every workload value starts with the write's sequence number.
            let Some(v) = C::changed_value(&ch).filter(|v| v.len() >= 8) else {
                continue;
            };
            let seq = u64::from_be_bytes(v[..8].try_into().expect("8 bytes")) as usize;
            if let Some(w) = self.m.writes.get_mut(seq) {
                if w.targets.contains(&obs) {
                    w.seen.entry(obs).or_insert(at);
                }
            }
        }
    }

    /// Notes a membership event seen by `obs` at `at` in the broadcast and
    /// crash traces it concerns.
    fn trace_event(&mut self, at: Duration, obs: NodeId, e: &Event) {
        match e {
            Event::Update(n) | Event::Join(n) => {
                if self.m.metas.is_empty() {
                    return;
                }
                let Some(target) = self.h.node_of(&n.name) else {
                    return;
                };
                if let Some(m) = self
                    .m
                    .metas
                    .iter_mut()
                    .rev()
                    .find(|m| m.node == target && m.meta == n.meta)
                {
                    if m.targets.contains(&obs) {
                        m.seen.entry(obs).or_insert(at);
                    }
                }
            }
            Event::Suspect { node, .. } => {
                if let Some(c) = self.crash_of(&node.name, at) {
                    c.first_suspect.get_or_insert(at);
                }
            }
            Event::Leave(n) if n.state == NodeState::Dead => {
                if let Some(c) = self.crash_of(&n.name, at) {
                    c.dead.entry(obs).or_insert(at);
                }
            }
            _ => {}
        }
    }

    /// The latest crash of the node named `name` at or before `at`.
    fn crash_of(&mut self, name: &str, at: Duration) -> Option<&mut measure::CrashTrace> {
        let target = self.h.node_of(name)?;
        self.m
            .crashes
            .iter_mut()
            .rev()
            .find(|c| c.node == target && at >= c.at)
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

    /// A progress bar over `total` virtual time, when asked for.
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

    /// Every starting node but the first joins through the seeds already
    /// there, the joins spread evenly over `spread`.
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

    /// Once a second: notes when a cold start converged, and when
    /// membership and tables agreed again after the last heal.
    fn check_convergence(&mut self) {
        let t = self.t();
        if self.sc.bootstrap.mode == BootstrapMode::Cold && self.m.membership_converged.is_none() {
            if self.h.converged() {
                self.m.membership_converged = Some(round6(t.as_secs_f64()));
            }
            return;
        }
        if let Some(heal) = self.m.last_heal {
            if self.m.membership_after_heal.is_none() && self.h.converged() {
                self.m.membership_after_heal = Some(round6((t - heal).as_secs_f64()));
            }
            if !self.attached.is_empty()
                && self.m.tables_after_heal.is_none()
                && self.tables_disagree().is_none()
            {
                self.m.tables_after_heal = Some(round6((t - heal).as_secs_f64()));
            }
        }
    }
}
