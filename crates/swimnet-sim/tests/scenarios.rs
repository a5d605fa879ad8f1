//! Scenario runs at small sizes: each asserts the invariants (no failures)
//! and the outcome the scenario is about. Large runs are benchmarks
//! (scripts/bench-sim.sh), not tests.

use swimnet_sim::report::Report;
use swimnet_sim::scenario::{run, RunOptions, Scenario};

/// `SWIMNET_SEED` replays or sweeps other seeds.
fn seed_opt() -> Option<u64> {
    std::env::var("SWIMNET_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
}

fn run_toml(text: &str) -> Report {
    let sc = Scenario::from_toml(text).expect("scenario parses");
    let out = run(
        &sc,
        &RunOptions {
            seed: seed_opt(),
            progress: false,
        },
    );
    out.report
}

fn assert_clean(r: &Report) {
    assert!(
        r.failures.is_empty(),
        "seed {}: invariant failures: {:?}",
        r.seed,
        r.failures
    );
}

#[test]
fn broadcasts_reach_every_node_near_the_push_gossip_floor() {
    let r = run_toml(
        r#"
        name = "t-dissemination"
        nodes = 64
        duration = "60s"
        seed = 7
        [config]
        push_pull_interval = "10s"
        [[broadcast]]
        at = "1s"
        count = 4
        every = "5s"
        "#,
    );
    assert_clean(&r);
    assert_eq!(r.broadcasts.len(), 4);
    for b in &r.broadcasts {
        // Gossip alone may miss a node now and then (each node sends an
        // update 8 times at this size, so P(miss) ~ 63 e^-8 ~ 2 %); push/pull
        // (every 20 s here) repairs it well before the run ends.
        assert_eq!(b.informed, b.targets, "{b:?}");
        assert_eq!(b.targets, 63);
        assert!(b.t100_s.is_some());
        // Generous bound: twice the push-gossip floor (measured: 0.4-1.4x).
        let t99 = b.t99_s.expect("99 % reached");
        assert!(
            t99 <= 2.0 * r.floors.push_floor_s,
            "seed {}: {t99} s vs floor {} s",
            r.seed,
            r.floors.push_floor_s
        );
        assert!(b.t50_s.unwrap() <= t99);
        assert_eq!(b.curve.len(), b.informed);
    }
    assert_eq!(r.false_positives, 0);
    assert!(r.traffic.bytes_out_mean > 0.0);
    assert!(r.traffic.bytes_out_by_kind.contains_key("ping"));
    assert!(r.traffic.bytes_out_by_kind.contains_key("alive"));
}

#[test]
fn crashed_nodes_are_declared_dead_by_everyone() {
    let r = run_toml(
        r#"
        name = "t-detection"
        nodes = 30
        duration = "90s"
        seed = 8
        [[crash]]
        at = "5s"
        count = 3
        "#,
    );
    assert_clean(&r);
    assert_eq!(r.detections.len(), 3);
    // memberlist's bound: a round-robin pass (n probe intervals) plus the
    // longest suspicion timeout, 6 * 4 * log10(30) s = 35.4 s.
    for d in &r.detections {
        assert_eq!(d.undetected_by, 0, "{d:?}");
        let all = d.all_dead_s.expect("everyone marked it dead");
        assert!(all <= 30.0 + 35.5, "{d:?}");
        let first = d.first_suspicion_s.expect("suspected");
        assert!(first <= all);
    }
    assert_eq!(r.detection_dead.count, 3 * 27);
    assert_eq!(r.false_positives, 0);
}

#[test]
fn stalled_hosts_under_loss_are_not_declared_dead() {
    let r = run_toml(
        r#"
        name = "t-stalls"
        nodes = 40
        duration = "120s"
        seed = 9
        [network]
        loss = 0.05
        [[stall]]
        fraction = 0.1
        duration = "2s"
        per_host = 3
        "#,
    );
    assert_clean(&r);
    assert_eq!(r.false_positives, 0, "seed {}", r.seed);
    assert!(r.settle_s.is_some());
}

#[test]
fn halves_partition_heals_and_membership_reconverges() {
    let r = run_toml(
        r#"
        name = "t-partition"
        nodes = 40
        duration = "120s"
        seed = 10
        settle = "120s"
        [[partition]]
        at = "5s"
        heal = "50s"
        "#,
    );
    assert_clean(&r);
    // Long enough apart for the suspicion timeouts to declare the other half dead.
    assert!(
        r.partition_verdicts > 0,
        "the halves declared each other dead"
    );
    assert!(
        r.membership_after_heal_s.is_some(),
        "membership agreed after the heal"
    );
    assert!(r.settle_s.is_some());
}

#[test]
fn asymmetric_partition_churn_regions_and_restarts_keep_the_invariants() {
    let r = run_toml(
        r#"
        name = "t-mixed"
        nodes = 40
        duration = "90s"
        seed = 11
        settle = "120s"
        [network]
        cross_zone = "1ms"
        jitter_fraction = 0.1
        region_latency_ms = [[0, 30], [30, 0]]
        [[network.regions]]
        name = "a"
        zones = 2
        [[network.regions]]
        name = "b"
        [[churn]]
        from = "5s"
        until = "40s"
        joins_per_s = 0.2
        leaves_per_s = 0.1
        [[loss]]
        from = "10s"
        until = "30s"
        rate = 0.5
        count = 2
        [[partition]]
        at = "45s"
        heal = "55s"
        asymmetric = true
        [[crash]]
        at = "60s"
        count = 2
        restart_after = "10s"
        [[broadcast]]
        at = "2s"
        "#,
    );
    assert_clean(&r);
    assert_eq!(r.nodes_total, 40 + 7, "one join every 5 s in (5 s, 40 s]");
    assert!(r.settle_s.is_some());
    assert_eq!(r.detections.len(), 2);
}

#[test]
fn networkdb_table_writes_reach_every_attached_node() {
    let r = run_toml(
        r#"
        name = "t-tables"
        nodes = 24
        duration = "30s"
        seed = 12
        protocol = "networkdb"
        [workload]
        networks = 2
        attach_fraction = 0.6
        writers = 2
        rate = 1
        value_size = 32
        until = "20s"
        "#,
    );
    assert_clean(&r);
    let t = r.tables.as_ref().expect("table figures");
    assert_eq!(t.networks, 2);
    assert!(t.writes >= 70, "{} writes", t.writes);
    assert_eq!(t.writes_converged, t.writes);
    assert!(t.write_convergence.max < 5.0, "{:?}", t.write_convergence);
    assert!(t.entries_checked > 0);
}

#[test]
fn networkdb_tables_reconverge_after_a_partition() {
    let r = run_toml(
        r#"
        name = "t-tables-partition"
        nodes = 20
        duration = "80s"
        seed = 13
        protocol = "networkdb"
        settle = "120s"
        [workload]
        networks = 1
        writers = 3
        rate = 0.5
        until = "60s"
        [[partition]]
        at = "10s"
        heal = "40s"
        "#,
    );
    assert_clean(&r);
    let t = r.tables.as_ref().unwrap();
    assert!(t.after_heal_s.is_some(), "tables agreed after the heal");
    assert!(t.entries_checked > 0);
}

#[test]
fn cold_start_join_converges() {
    let r = run_toml(
        r#"
        name = "t-cold"
        nodes = 100
        duration = "40s"
        seed = 14
        [bootstrap]
        mode = "cold"
        seeds = 3
        "#,
    );
    assert_clean(&r);
    let t = r.membership_converged_s.expect("everyone sees everyone");
    assert!(t < 20.0, "{t} s");
}

/// 400 nodes join at once through 3 seeds. Gossip alone passes on a few
/// dozen alive messages per packet, so every node must relay hundreds of
/// them; the catch-up push/pull (on by default) spreads the burst by full
/// state exchanges instead.
#[test]
fn join_storm_converges_fast_with_catch_up_push_pull() {
    let storm = |catch_up: usize| {
        run_toml(&format!(
            r#"
            name = "t-join-storm"
            nodes = 400
            duration = "40s"
            seed = 21
            [bootstrap]
            mode = "cold"
            seeds = 3
            [config]
            catch_up_backlog = {catch_up}
            "#
        ))
    };
    let with = storm(16);
    let without = storm(0);
    assert_clean(&with);
    assert_clean(&without);
    let t_with = with
        .membership_converged_s
        .expect("converges with catch-up");
    // Without it the same join takes far longer (or misses the window).
    let t_without = without.membership_converged_s.unwrap_or(f64::INFINITY);
    assert!(
        t_with * 1.5 <= t_without,
        "with catch-up {t_with} s, without {t_without} s"
    );
    assert!(t_with < 8.0, "{t_with} s");
}

#[test]
fn same_seed_same_report_and_another_seed_differs() {
    let text = r#"
        name = "t-determinism"
        nodes = 30
        duration = "20s"
        seed = 15
        [[broadcast]]
        at = "1s"
        [[crash]]
        at = "3s"
        count = 1
    "#;
    let sc = Scenario::from_toml(text).unwrap();
    let a = run(&sc, &RunOptions::default()).report;
    let b = run(&sc, &RunOptions::default()).report;
    let ja = serde_json::to_string(&a).unwrap();
    assert_eq!(ja, serde_json::to_string(&b).unwrap());
    let c = run(
        &sc,
        &RunOptions {
            seed: Some(16),
            progress: false,
        },
    )
    .report;
    assert_eq!(c.seed, 16);
    assert_ne!(ja, serde_json::to_string(&c).unwrap());
}

#[test]
fn unhealed_disagreement_fails_the_run() {
    // The partition lasts to the end, and one second of settling is too
    // little for 40 nodes to take back the half they declared dead.
    let r = run_toml(
        r#"
        name = "t-fail"
        nodes = 40
        duration = "60s"
        seed = 17
        settle = "1s"
        [[partition]]
        at = "5s"
        "#,
    );
    assert!(
        r.failures
            .iter()
            .any(|f| f.what.contains("membership did not agree")),
        "{:?}",
        r.failures
    );
    assert!(r.summary(None).contains("replay with --seed 17"));
}

#[test]
fn scenario_errors_say_what_is_wrong() {
    let bad = |text: &str, needle: &str| {
        let e = Scenario::from_toml(text).expect_err("rejected");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
    };
    bad(
        "name = \"x\"\nnodes = 10\nduration = \"10 parsecs\"",
        "unknown unit",
    );
    bad(
        "name = \"x\"\nnodes = 10\nduration = \"10\"",
        "needs a unit",
    );
    bad(
        "name = \"x\"\nnodes = 10\nduration = \"1s\"\n[workload]\nnetworks = 1",
        "needs protocol",
    );
    bad(
        "name = \"x\"\nnodes = 10\nduration = \"1s\"\n[network]\nregion_latency_ms = [[0]]\n[[network.regions]]\nname = \"a\"\n[[network.regions]]\nname = \"b\"",
        "2x2 matrix",
    );
    bad(
        "name = \"x\"\nnodes = 10\nduration = \"1s\"\nnodez = 3",
        "unknown field",
    );
}

#[test]
fn serf_nodes_run_a_scenario_with_broadcasts_and_graceful_leaves() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/serf-small.toml"),
    )
    .expect("scenarios/serf-small.toml");
    let r = run_toml(&text);
    assert_clean(&r);
    assert_eq!(r.protocol, "serf");
    assert_eq!(r.broadcasts.len(), 2);
    for b in &r.broadcasts {
        assert_eq!(b.informed, b.targets, "{b:?}");
    }
    assert!(r.nodes_total > r.nodes, "churn added nodes");
    // Graceful leavers are recorded as left, not declared dead.
    assert_eq!(r.false_positives, 0);
    assert!(r.settle_s.is_some(), "the cluster agreed after the churn");
}

#[test]
fn shipped_scenarios_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("scenarios/ exists") {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 8, "{n} scenarios");
}
