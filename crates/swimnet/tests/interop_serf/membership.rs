//! Joining in both directions, stability under probing, and Serf's
//! gossip reaching swimnet.

use super::*;

// ---------------------------------------------------------------------------
// 1. join in both directions, tags, statuses
// ---------------------------------------------------------------------------

/// swimnet joins a 3-agent serf cluster through a non-seed member (s2), and a
/// 4th serf agent joins the cluster through the swimnet node only. Every
/// serf agent must list the swimnet node `alive` with its tags and with
/// delegate versions inside serf's range; `swimnet members --format json`
/// must list every serf agent `alive` with its tags and address. In plain
/// mode the hand-built plaintext ping (`plaintext_ping`) is answered by both a serf
/// agent and swimnet (the positive control for the "plaintext is dropped"
/// test).
fn join_both_directions(enc: bool, net: u8) {
    let env = Env::new(&format!("join_both_directions_{}", mode(enc)), net);
    let key = enc.then(keygen);
    let mut serfs = start_serfs(&env, &key, 3);
    let sw = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[1].addr()]));
    // A serf agent that joins the swimnet node (and nobody else).
    serfs.push(env.serf(
        "s4",
        4,
        &SerfOpts {
            key: key.clone(),
            tags: tags(&[("role", "serf"), ("idx", "4")]),
            join: vec![sw.addr()],
            ..Default::default()
        },
    ));
    let all = nodes(&serfs, &[&sw]);
    let all_names = names(&all);
    let took = wait_all_alive(&all, &all_names, CONVERGE);
    eprintln!("[{}] converged in {:.1} s", mode(enc), took.as_secs_f64());

    // serf's view of the swimnet node.
    for s in &serfs {
        let m = s.members().unwrap();
        let me = find(&m, "sw1").unwrap_or_else(|| panic!("{} does not list sw1: {m:?}", s.name));
        assert_eq!(me.status, "alive", "{} shows sw1 {me:?}", s.name);
        assert_eq!(
            me.addr,
            sw.addr(),
            "{} shows sw1 at the wrong address",
            s.name
        );
        assert_eq!(
            me.tags,
            [
                ("dc".to_string(), "lo".to_string()),
                ("role".to_string(), "swim".to_string())
            ]
            .into_iter()
            .collect(),
            "{} shows the wrong tags for sw1",
            s.name
        );
        let (min, max, ver) = me.protocol.expect("serf shows protocol versions");
        assert!(
            min <= ver && ver <= max && (2..=5).contains(&ver),
            "{} shows sw1 with delegate protocol {min}/{max}/{ver}, outside serf's range 2..5",
            s.name
        );
        assert_eq!(
            m.len(),
            5,
            "{} should list exactly 5 members: {}",
            s.name,
            summary(&m)
        );
    }

    // swimnet's view, through the CLI.
    let m = sw.members_cli().expect("swimnet members --format json");
    assert_eq!(
        m.len(),
        5,
        "swimnet should list exactly 5 members: {}",
        summary(&m)
    );
    for s in &serfs {
        let e = find(&m, &s.name).unwrap_or_else(|| panic!("swimnet does not list {}", s.name));
        assert_eq!(e.status, "alive", "swimnet shows {} {e:?}", s.name);
        assert_eq!(
            e.addr,
            s.addr(),
            "swimnet shows {} at the wrong address",
            s.name
        );
        let idx = s.name.trim_start_matches('s');
        assert_eq!(
            e.tags,
            [
                ("idx".to_string(), idx.to_string()),
                ("role".to_string(), "serf".to_string())
            ]
            .into_iter()
            .collect(),
            "swimnet shows the wrong tags for {}",
            s.name
        );
    }
    let me = find(&m, "sw1").expect("swimnet lists itself");
    assert_eq!(me.status, "alive");
    assert_eq!(me.tags.get("role").map(String::as_str), Some("swim"));

    if !enc {
        check_ping_vector();
        let from = env.ip(250);
        assert!(
            ping_plaintext(from, serfs[0].ip, "s1", Duration::from_secs(2)).is_some(),
            "control: a plain serf agent did not answer the hand-built plaintext ping"
        );
        assert!(
            ping_plaintext(from, sw.ip, "sw1", Duration::from_secs(2)).is_some(),
            "control: a plain swimnet agent did not answer the hand-built plaintext ping"
        );
    }

    let serf_refs: Vec<&Serf> = serfs.iter().collect();
    assert_serf_logs_clean(&serf_refs, &all_names, false, "after join");
}

#[test]
fn join_both_directions_plain() {
    join_both_directions(false, 101);
}

#[test]
fn join_both_directions_encrypted() {
    join_both_directions(true, 102);
}

// ---------------------------------------------------------------------------
// 2. stability under probing
// ---------------------------------------------------------------------------

fn stability_window() -> Duration {
    let secs = std::env::var("SWIMNET_INTEROP_STABLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60u64);
    Duration::from_secs(secs.max(60))
}

/// 3 serf agents + swimnet, left alone for 60 s while a monitor polls every
/// node's view every ~200 ms: nobody may ever show a live node as anything
/// but `alive` (swimnet reports `suspect` too, serf only `failed`). After the
/// window: no suspicion or failed probe of anybody in the serf logs (see
/// `serf_log_problems`), swimnet's `refutations` and `probes_failed`
/// counters did not move, and swimnet did receive traffic (it was probed).
fn stability(enc: bool, net: u8) {
    let env = Env::new(&format!("stable_under_probing_{}", mode(enc)), net);
    let key = enc.then(keygen);
    let serfs = start_serfs(&env, &key, 3);
    let mut sw = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[0].addr()]));
    let all_names = ["s1", "s2", "s3", "sw1"];
    let observers: Vec<Observer> = {
        let all = nodes(&serfs, &[&sw]);
        wait_all_alive(&all, &all_names, CONVERGE);
        all.iter().map(|n| n.observer()).collect()
    };

    let refutations0 = sw.stat("refutations").unwrap();
    let probes_failed0 = sw.stat("probes_failed").unwrap();
    let packets_in0 = sw.stat("packets_in").unwrap();
    let inc0 = sw.incarnation().unwrap();
    let mon = Monitor::start(
        observers,
        all_names.iter().map(|s| s.to_string()).collect(),
        true,
    );
    let window = stability_window();
    let start = Instant::now();
    while start.elapsed() < window {
        assert!(sw.proc.is_running(), "swimnet exited during the window");
        thread::sleep(Duration::from_millis(500));
    }
    let rep = mon.finish();
    let rounds = rep.rounds;
    assert_monitor_clean(rep, &format!("{} stability window", mode(enc)));
    assert!(rounds >= 30, "monitor ran only {rounds} rounds");

    let refutations = sw.stat("refutations").unwrap();
    let probes_failed = sw.stat("probes_failed").unwrap();
    let packets_in = sw.stat("packets_in").unwrap();
    let inc = sw.incarnation().unwrap();
    assert_eq!(
        refutations, refutations0,
        "swimnet had to refute a suspicion during the window"
    );
    assert_eq!(inc, inc0, "swimnet's incarnation changed during the window");
    assert_eq!(
        probes_failed, probes_failed0,
        "swimnet had failed probes of live serf agents during the window"
    );
    // Each serf agent probes each of its 3 peers once every ~3 s, and gossip
    // comes every 100 ms: far more than one packet per second reaches swimnet.
    assert!(
        packets_in - packets_in0 >= window.as_secs(),
        "swimnet received only {} packets in {window:?}: was it probed at all?",
        packets_in - packets_in0
    );
    let serf_refs: Vec<&Serf> = serfs.iter().collect();
    assert_serf_logs_clean(&serf_refs, &all_names, false, "after the stability window");
    eprintln!(
        "[{}] stable for {:.0} s: {rounds} polling rounds, {} packets in at swimnet",
        mode(enc),
        window.as_secs_f64(),
        packets_in - packets_in0
    );
}

/// Runs the plain and the encrypted cluster at the same time (the 60 s
/// window is the longest part of the suite).
#[test]
fn stable_under_probing_60s_plain_and_encrypted() {
    thread::scope(|sc| {
        let plain = sc.spawn(|| stability(false, 103));
        let enc = sc.spawn(|| stability(true, 104));
        let (a, b) = (plain.join(), enc.join());
        if let Err(e) = a {
            std::panic::resume_unwind(e);
        }
        if let Err(e) = b {
            std::panic::resume_unwind(e);
        }
    });
}

// ---------------------------------------------------------------------------
// 5. gossip intake
// ---------------------------------------------------------------------------

/// swimnet joins s1 only (with `swimnet join`, which must exit 0); s2 and s3
/// reach it only through s1's push/pull answer. Then s4 joins s2: swimnet
/// must learn s4 from serf's gossip or push/pull (bound: three push/pull
/// intervals, as gossip with RetransmitMult 2 can miss a node and leave it
/// to anti-entropy; usually it takes well under a second), and s4 must list
/// swimnet alive.
fn serf_gossip_reaches_swimnet(enc: bool, net: u8) {
    let env = Env::new(&format!("serf_gossip_reaches_swimnet_{}", mode(enc)), net);
    let key = enc.then(keygen);
    let mut serfs = start_serfs(&env, &key, 3);
    let sw = env.swim("sw1", 21, &swim_opts(&key, vec![]));
    let out = sw.cli("join", &[&serfs[0].addr()]);
    assert!(
        out.ok(),
        "swimnet join {} failed: {}",
        serfs[0].addr(),
        out.describe()
    );
    {
        let all = nodes(&serfs, &[&sw]);
        wait_all_alive(&all, &names(&all), CONVERGE);
    }

    // s4 joins s2 later; swimnet hears of it only through serf.
    serfs.push(env.serf(
        "s4",
        4,
        &SerfOpts {
            key: key.clone(),
            tags: tags(&[("role", "serf"), ("idx", "4")]),
            join: vec![serfs[1].addr()],
            ..Default::default()
        },
    ));
    let learn_bound = LOCAL.push_pull_interval * 3;
    let (m, took) = wait_for("swimnet to learn s4 (joined via s2)", learn_bound, || {
        shows(&sw, &["s4"], "alive")
    });
    eprintln!(
        "[{}] swimnet learned s4 after {:.2} s",
        mode(enc),
        took.as_secs_f64()
    );
    let s4 = find(&m, "s4").unwrap();
    assert_eq!(s4.addr, serfs[3].addr());
    assert_eq!(s4.tags.get("idx").map(String::as_str), Some("4"));
    wait_for("s4 to list sw1 alive", learn_bound, || {
        shows(&serfs[3], &["sw1"], "alive")
    });
    let serf_refs: Vec<&Serf> = serfs.iter().collect();
    assert_serf_logs_clean(
        &serf_refs,
        &["s1", "s2", "s3", "s4", "sw1"],
        false,
        "after s4 joined",
    );
}

#[test]
fn serf_gossip_reaches_swimnet_plain() {
    serf_gossip_reaches_swimnet(false, 111);
}

#[test]
fn serf_gossip_reaches_swimnet_encrypted() {
    serf_gossip_reaches_swimnet(true, 112);
}
