//! Interop tests against real Serf agents (Debian's `serf` 0.9.4, with
//! memberlist 0.2.2 inside), plain and with `-encrypt`, all on loopback.
//!
//! The tests start `serf agent` and `swimnet agent --protocol serf` processes
//! themselves, each on its own address `127.0.<net>.<host>` with the default
//! ports (gossip 7946, serf RPC 7373, swimnet API 7380); every test has its
//! own `<net>`, so they run in parallel. Both sides use the `local` profile
//! (probe interval 1 s, probe timeout 200 ms, suspicion multiplier 3, push/pull
//! every 15 s: memberlist's `DefaultLocalConfig`). Logs go to
//! `target/tmp/interop_serf/<test>/<node>.log`; on a failure the last lines
//! of every agent's log are printed.
//!
//! The tests fail (they never skip) when serf is missing: install the `serf`
//! Debian package (`apt-get install serf`); `SERF_BIN` overrides the path.
//!
//! Time bounds for failure detection come from memberlist's formulas for
//! probing and suspicion timeouts (see `Timing` in `common`). swimnet probes a
//! suspect once more before declaring it dead (README, "Check before dead"),
//! which adds up to
//! two probe intervals; that is included in the bound for swimnet.

mod commands;
#[path = "../common/mod.rs"]
mod common;
mod coordinates;
mod failure;
mod keys;
mod membership;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// swimnet's extra probe before it declares a suspect dead: at most about
/// two probe intervals (README, "Check before dead").
fn swimnet_final_probe() -> Duration {
    LOCAL.probe_interval * 2
}

/// Allowance for polling (100 ms), CLI latency, gossip delivery and
/// scheduling on a loaded machine, added to every computed bound.
const SLACK: Duration = Duration::from_secs(2);

/// Convergence can need push/pull: with the local profile a broadcast is sent
/// only RetransmitMult·ceil(log10(n+1)) = 2 times, and serf-only clusters miss
/// a joiner now and then too (seen: 19 s), so allow three push/pull intervals.
const CONVERGE: Duration = Duration::from_secs(45);

fn mode(enc: bool) -> &'static str {
    if enc {
        "encrypted"
    } else {
        "plain"
    }
}

/// Starts serf agents s1..s<count> on hosts 1..count; s2.. join s1. Tags:
/// role=serf, idx=<i>.
fn start_serfs(env: &Env, key: &Option<String>, count: u8) -> Vec<Serf> {
    let mut v: Vec<Serf> = Vec::new();
    for i in 1..=count {
        let join = match v.first() {
            Some(s1) => vec![s1.addr()],
            None => vec![],
        };
        let idx = i.to_string();
        v.push(env.serf(
            &format!("s{i}"),
            i,
            &SerfOpts {
                key: key.clone(),
                tags: tags(&[("role", "serf"), ("idx", &idx)]),
                join,
                ..Default::default()
            },
        ));
    }
    v
}

fn swim_opts(key: &Option<String>, join: Vec<String>) -> SwimOpts {
    SwimOpts {
        key: key.clone(),
        tags: tags(&[("role", "swim"), ("dc", "lo")]),
        join,
        ..Default::default()
    }
}

fn nodes<'a>(serfs: &'a [Serf], swims: &[&'a Swim]) -> Vec<&'a dyn Node> {
    let mut v: Vec<&dyn Node> = serfs.iter().map(|s| s as &dyn Node).collect();
    v.extend(swims.iter().map(|s| *s as &dyn Node));
    v
}

fn names<'a>(nodes: &[&'a dyn Node]) -> Vec<&'a str> {
    nodes.iter().map(|n| n.name()).collect()
}

/// Polls `observer` every 100 ms until it shows `subject` as `want`. Fails at
/// once if it shows one of `forbidden`, or after `timeout`. Returns the time
/// it took and the statuses seen on the way. A failure lists every change of
/// status and every failed poll with the time since the start, so a slow
/// observer can be told from a slow verdict.
fn wait_status(
    observer: &dyn Node,
    subject: &str,
    want: &str,
    forbidden: &[&str],
    timeout: Duration,
) -> (Duration, Vec<String>) {
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut history: Vec<String> = Vec::new();
    loop {
        let asked = start.elapsed().as_secs_f64();
        match observer.members() {
            Ok(m) => {
                let st = status_of(&m, subject).unwrap_or_else(|| "missing".into());
                if seen.last() != Some(&st) {
                    seen.push(st.clone());
                    history.push(format!("{asked:.1} s: {st}"));
                }
                assert!(
                    !forbidden.contains(&st.as_str()),
                    "{} showed {subject} as {st} after {:.1} s (want {want}; statuses seen: {history:?})",
                    observer.name(),
                    start.elapsed().as_secs_f64()
                );
                if st == want {
                    return (start.elapsed(), seen);
                }
            }
            Err(e) => history.push(format!(
                "{asked:.1}-{:.1} s: poll failed: {e}",
                start.elapsed().as_secs_f64()
            )),
        }
        assert!(
            start.elapsed() < timeout,
            "{} did not show {subject} as {want} within {timeout:?} (polls: {history:?})",
            observer.name()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// What to look at when swimnet detected `subject`'s death late: its
/// counters, its member list (with incarnations), what the serf agents
/// show, and every line of its debug log that names `subject`.
fn slow_detection_report(sw: &Swim, serfs: &[Serf], subject: &str) -> String {
    let mut out = String::new();
    match sw.stats() {
        Ok(v) => out.push_str(&format!("{} /v1/stats: {v}\n", sw.name)),
        Err(e) => out.push_str(&format!("{} /v1/stats failed: {e}\n", sw.name)),
    }
    match sw.members() {
        Ok(m) => out.push_str(&format!("{} members: {m:?}\n", sw.name)),
        Err(e) => out.push_str(&format!("{} members failed: {e}\n", sw.name)),
    }
    for s in serfs {
        match s.members() {
            Ok(m) => out.push_str(&format!(
                "{} shows {subject} as {:?}\n",
                s.name,
                status_of(&m, subject)
            )),
            Err(e) => out.push_str(&format!("{} members failed: {e}\n", s.name)),
        }
    }
    let log = sw.proc.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(subject)).collect();
    let from = lines.len().saturating_sub(60);
    out.push_str(&format!(
        "{}'s log, last {} of {} lines naming {subject}:\n{}",
        sw.name,
        lines.len() - from,
        lines.len(),
        lines[from..].join("\n")
    ));
    out
}

fn assert_monitor_clean(rep: MonitorReport, what: &str) {
    assert!(
        rep.violations.is_empty(),
        "{what}: a live node was seen in a non-alive state ({} polling rounds):\n{}",
        rep.rounds,
        rep.violations.join("\n")
    );
    assert!(
        rep.errors.is_empty(),
        "{what}: membership queries failed during the window:\n{}",
        rep.errors.join("\n")
    );
}

fn count_lines(log: &str, pat: &str) -> usize {
    log.lines().filter(|l| l.contains(pat)).count()
}
