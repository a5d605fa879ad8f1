//! Scenarios: a TOML description of a cluster, its network and the faults
//! and workload to apply, run on the harness into a [`Report`].
//!
//! # Writing a scenario
//!
//! A scenario names its cluster (`nodes`, `protocol`, `[bootstrap]`,
//! `[config]` overrides of the memberlist settings), its network
//! (`[network]`: latency, jitter, loss, regions with a latency matrix), and
//! what happens during the measured phase: `[[broadcast]]` (traced metadata
//! changes), `[[crash]]`, `[[stall]]`, `[[partition]]`, `[[loss]]`,
//! `[[churn]]`, and for NetworkDB a `[workload]` of table writes. Each
//! section is a type of this module ([`Broadcast`], [`Crash`], ...) whose
//! fields are the keys it takes; unknown keys are refused. Times are
//! strings with a unit (`"250ms"`, `"10s"`, `"2m"`), counted from the start
//! of the measured phase, which begins once the bootstrap is done. After
//! the measured phase every fault is lifted and the cluster must agree
//! again within `settle`. The repository's `scenarios/*.toml` are examples.
//!
//! ```
//! use swimnet_sim::scenario::{run, RunOptions, Scenario};
//!
//! let sc = Scenario::from_toml(r#"
//!     name = "tiny"
//!     nodes = 8
//!     duration = "20s"
//!
//!     [[broadcast]]
//!     at = "1s"
//!
//!     [[crash]]
//!     at = "5s"
//!     count = 1
//! "#).unwrap();
//! let out = run(&sc, &RunOptions { seed: Some(3), progress: false });
//! let r = &out.report;
//! assert!(r.failures.is_empty(), "{:?}", r.failures);
//! assert_eq!(r.broadcasts[0].informed, 7);
//! assert_eq!(r.detections[0].undetected_by, 0);
//! ```
//!
//! # How it is built
//!
//! * the file format ([`Scenario`] and its sections, checked by
//!   [`Scenario::from_toml`]);
//! * the runner, which builds the cluster, bootstraps it, applies the
//!   scenario's timeline of faults and writes while stepping virtual time,
//!   then lifts the faults and waits for the cluster to settle;
//! * measurement: the traces and counters the runner fills during the run,
//!   turned into the [`Report`] at the end.

mod actions;
mod format;
mod measure;
mod runner;

use std::collections::BTreeMap;

use swimnet_core::{Memberlist, NoopDelegate};
use swimnet_networkdb::{NdbConfig, NetworkDb};
use swimnet_serf::{SerfDelegate, SerfNode};

pub use format::{
    Bootstrap, BootstrapMode, Broadcast, Churn, Crash, Dur, Loss, Network, PartitionSpec, Pick,
    Protocol, Region, Scenario, ScenarioError, Settings, Stall, Workload,
};

use crate::report::{HostFigures, Report};
use crate::{Harness, NetworkModel};
use runner::Runner;

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

/// Runs a scenario with either core type. The report depends only on the
/// scenario and the seed; the host figures vary from run to run.
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
