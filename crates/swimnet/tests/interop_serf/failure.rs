//! Failure detection in both directions, graceful leave, and swimnet
//! refuting a suspicion.

use super::*;

// ---------------------------------------------------------------------------
// 3. failure detection in both directions
// ---------------------------------------------------------------------------

/// 3 serf agents + swimnet (n = 4). kill -9 s3; swimnet must mark it
/// `failed` within
///
/// ```text
///   2(n−1)·ProbeInterval            its first failed probe of s3 (round-robin
///                                   over 3 peers, reshuffled at each wrap, + the
///                                   probe's own interval) = 6 s
/// + SuspicionMult·max(1,log10 n)·PI the suspicion timer once a confirmation
///                                   came (k = 1; s1 and s2 accuse s3 too) = 3 s
/// + 2·PI                            swimnet's final probe before "dead" = 2 s
/// + 2 s slack                       = 13 s
/// ```
///
/// (Without any confirmation the timer would be 6× longer: 6+18+2 = 26 s;
/// the wait goes on that long so a slow detection is measured, not just
/// flagged.) s1 and s2 must also show s3 `failed`, and the live nodes must
/// stay `alive` everywhere meanwhile.
fn swimnet_detects_killed_serf(enc: bool, net: u8) {
    let env = Env::new(&format!("swimnet_detects_killed_serf_{}", mode(enc)), net);
    let key = enc.then(keygen);
    let mut serfs = start_serfs(&env, &key, 3);
    let sw = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[0].addr()]));
    {
        let all = nodes(&serfs, &[&sw]);
        wait_all_alive(&all, &names(&all), CONVERGE);
    }
    let n = 4;
    let bound = LOCAL.dead_bound_confirmed(n, swimnet_final_probe()) + SLACK;
    let worst = LOCAL.dead_bound_unconfirmed(n, swimnet_final_probe()) + SLACK;
    let live: Vec<&dyn Node> = vec![&serfs[0], &serfs[1], &sw];
    let mon = Monitor::start(
        live.iter().map(|n| n.observer()).collect(),
        names(&live).iter().map(|s| s.to_string()).collect(),
        true,
    );

    let mut s3 = serfs.pop().unwrap();
    s3.proc.kill9();
    let (took, seen) = wait_status(&sw, "s3", "failed", &["left"], worst);
    eprintln!(
        "[{}] swimnet marked s3 failed after {:.2} s (bound {:.1} s; statuses {seen:?})",
        mode(enc),
        took.as_secs_f64(),
        bound.as_secs_f64()
    );
    let why = if took > bound {
        slow_detection_report(&sw, &serfs, "s3")
    } else {
        String::new()
    };
    assert!(
        took <= bound,
        "swimnet took {took:?} to mark the killed s3 failed; memberlist's bound with a \
         confirmation is {bound:?} (6 s first failed probe + 3 s suspicion + 2 s final probe + 2 s slack)\n{why}"
    );
    // The serf agents' own verdicts: confirmations and the dead message
    // are gossip that may miss one of them (see serf_detects_killed_swimnet).
    let serf_bound = LOCAL.dead_bound_unconfirmed(n, Duration::ZERO) + SLACK;
    for s in &serfs {
        wait_status(s, "s3", "failed", &["left"], serf_bound);
    }
    let rep = mon.finish();
    assert_monitor_clean(rep, "while s3 was being detected");
    drop(s3);
}

#[test]
fn swimnet_detects_killed_serf_plain() {
    swimnet_detects_killed_serf(false, 105);
}

#[test]
fn swimnet_detects_killed_serf_encrypted() {
    swimnet_detects_killed_serf(true, 106);
}

/// A serf agent takes swimnet's crash verdict as an ordinary dead message.
/// s1 runs serf with the `wan` profile, whose own suspicion timeout cannot
/// end sooner than 6·5 s = 30 s after its suspicion starts; s2 (serf, local
/// profile) and eight swimnet agents complete the cluster (n = 10). After
/// kill -9 of s2 its host refuses TCP pings, so a swimnet agent declares it
/// dead from that evidence (README, "Crash verdicts from refused TCP
/// pings") within a few seconds, and s1 must show s2 `failed` within 28 s,
/// before its own timer could have: it learned it from swimnet's dead
/// message (gossip, or a push/pull), which its log confirms (a member-failed
/// event, no suspect timeout of its own). Eight swimnet agents, because
/// memberlist's gossip hands a message to only retransmit-mult ·
/// ceil(log10(n + 1)) peers per node (2 in a 5-node local cluster, where s1
/// would miss it about one time in eight and wait for a push/pull).
fn serf_takes_swimnet_crash_verdict(enc: bool, net: u8) {
    let env = Env::new(
        &format!("serf_takes_swimnet_crash_verdict_{}", mode(enc)),
        net,
    );
    let key = enc.then(keygen);
    let s1 = env.serf(
        "s1",
        1,
        &SerfOpts {
            key: key.clone(),
            profile: Some("wan"),
            ..Default::default()
        },
    );
    let serf_opts = SerfOpts {
        key: key.clone(),
        join: vec![s1.addr()],
        ..Default::default()
    };
    let mut s2 = env.serf("s2", 2, &serf_opts);
    let swims: Vec<Swim> = (1..=8)
        .map(|i| env.swim(&format!("sw{i}"), 20 + i, &swim_opts(&key, vec![s1.addr()])))
        .collect();
    {
        let mut all: Vec<&dyn Node> = vec![&s1, &s2];
        all.extend(swims.iter().map(|s| s as &dyn Node));
        wait_all_alive(&all, &names(&all), CONVERGE);
    }
    s2.proc.kill9();
    let bound = Duration::from_secs(28);
    let (took, seen) = wait_status(&s1, "s2", "failed", &["left"], bound);
    let verdicts: u64 = swims
        .iter()
        .map(|s| {
            s.stat("refusal_verdicts")
                .unwrap_or_else(|e| panic!("{}: {e}", s.name))
        })
        .sum();
    eprintln!(
        "[{}] serf (wan profile) showed the killed s2 failed after {:.2} s; \
         swimnet refusal verdicts: {verdicts}; statuses {seen:?}",
        mode(enc),
        took.as_secs_f64()
    );
    assert!(
        verdicts >= 1,
        "no swimnet agent gave a crash verdict about s2"
    );
    let log = s1.log();
    assert!(
        log.contains("EventMemberFailed: s2 "),
        "s1 logged no member-failed event for s2:\n{}",
        tail(&log, 30)
    );
    assert!(
        !log.contains("Marking s2 as failed"),
        "s1's own suspicion timer declared s2 dead:\n{}",
        tail(&log, 30)
    );
}

#[test]
fn serf_takes_swimnet_crash_verdict_plain() {
    serf_takes_swimnet_crash_verdict(false, 119);
}

#[test]
fn serf_takes_swimnet_crash_verdict_encrypted() {
    serf_takes_swimnet_crash_verdict(true, 120);
}

/// 3 serf agents + swimnet (n = 4). kill -9 swimnet; every serf agent must
/// mark it `failed` (never `left`) within 2(n−1)·PI + 10.8 s (suspicion with
/// no confirmation) + 2 s slack = 18.8 s. Usually the first verdict comes
/// about 3 s after the first failed probe, but a serf agent can take the
/// whole unconfirmed timer: in a 4-node local-profile cluster memberlist
/// hands each suspect and dead message to only 2 of the 3 other members, so
/// one agent misses both others' messages about one time in nine and waits
/// for its own timer (seen in a run: s1 and s3 at +4 s, s2 not yet at +11 s).
fn serf_detects_killed_swimnet(enc: bool, net: u8) {
    let env = Env::new(&format!("serf_detects_killed_swimnet_{}", mode(enc)), net);
    let key = enc.then(keygen);
    let serfs = start_serfs(&env, &key, 3);
    let mut sw = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[2].addr()]));
    {
        let all = nodes(&serfs, &[&sw]);
        wait_all_alive(&all, &names(&all), CONVERGE);
    }
    let n = 4;
    let bound = LOCAL.dead_bound_unconfirmed(n, Duration::ZERO) + SLACK;
    let serf_nodes = nodes(&serfs, &[]);
    let mon = Monitor::start(
        serf_nodes.iter().map(|n| n.observer()).collect(),
        names(&serf_nodes).iter().map(|s| s.to_string()).collect(),
        true,
    );
    sw.proc.kill9();
    let t0 = Instant::now();
    // The three serf agents are polled one after the other; each wait
    // returns once that agent shows "failed", so the total is the slowest.
    for s in &serfs {
        wait_status(
            s,
            "sw1",
            "failed",
            &["left", "leaving"],
            bound.saturating_sub(t0.elapsed()),
        );
    }
    eprintln!(
        "[{}] every serf agent marked the killed swimnet failed after {:.2} s (bound {:.1} s)",
        mode(enc),
        t0.elapsed().as_secs_f64(),
        bound.as_secs_f64()
    );
    assert_monitor_clean(mon.finish(), "while swimnet was being detected");
}

#[test]
fn serf_detects_killed_swimnet_plain() {
    serf_detects_killed_swimnet(false, 107);
}

#[test]
fn serf_detects_killed_swimnet_encrypted() {
    serf_detects_killed_swimnet(true, 108);
}

// ---------------------------------------------------------------------------
// 4. graceful leave
// ---------------------------------------------------------------------------

/// 3 serf agents + two swimnet agents. sw1 gets SIGINT: it must exit 0 and
/// every serf agent (and sw2) must show it `left`, never `failed`. sw2 is
/// told `swimnet leave`: the command exits 0, the agent exits 0, and every
/// serf agent shows it `left`.
fn graceful_leave(enc: bool, net: u8) {
    let env = Env::new(&format!("graceful_leave_{}", mode(enc)), net);
    let key = enc.then(keygen);
    let serfs = start_serfs(&env, &key, 3);
    let mut sw1 = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[0].addr()]));
    let mut sw2 = env.swim("sw2", 22, &swim_opts(&key, vec![serfs[1].addr()]));
    {
        let all = nodes(&serfs, &[&sw1, &sw2]);
        wait_all_alive(&all, &names(&all), CONVERGE);
    }
    let leave_time = Duration::from_secs(15);

    // SIGINT.
    let stay = nodes(&serfs, &[&sw2]);
    let mon = Monitor::start(
        stay.iter().map(|n| n.observer()).collect(),
        names(&stay).iter().map(|s| s.to_string()).collect(),
        true,
    );
    let t0 = Instant::now();
    sw1.proc.signal("INT");
    for o in &stay {
        wait_status(
            *o,
            "sw1",
            "left",
            &["failed"],
            leave_time.saturating_sub(t0.elapsed()),
        );
    }
    let st = sw1.proc.wait_exit(Duration::from_secs(15));
    assert!(
        matches!(st.map(|s| s.code()), Some(Some(0))),
        "swimnet did not exit 0 after SIGINT: {st:?}"
    );
    eprintln!(
        "[{}] sw1 (SIGINT) shown as left everywhere after {:.2} s",
        mode(enc),
        t0.elapsed().as_secs_f64()
    );
    assert_monitor_clean(mon.finish(), "during sw1's leave");

    // swimnet leave.
    let serf_nodes = nodes(&serfs, &[]);
    let mon = Monitor::start(
        serf_nodes.iter().map(|n| n.observer()).collect(),
        names(&serf_nodes).iter().map(|s| s.to_string()).collect(),
        true,
    );
    let t0 = Instant::now();
    let out = sw2.cli("leave", &[]);
    assert!(out.ok(), "swimnet leave failed: {}", out.describe());
    for s in &serfs {
        wait_status(
            s,
            "sw2",
            "left",
            &["failed"],
            leave_time.saturating_sub(t0.elapsed()),
        );
    }
    let st = sw2.proc.wait_exit(Duration::from_secs(15));
    assert!(
        matches!(st.map(|s| s.code()), Some(Some(0))),
        "swimnet agent did not exit 0 after `swimnet leave`: {st:?}"
    );
    eprintln!(
        "[{}] sw2 (swimnet leave) shown as left everywhere after {:.2} s",
        mode(enc),
        t0.elapsed().as_secs_f64()
    );
    assert_monitor_clean(mon.finish(), "during sw2's leave");
    let serf_refs: Vec<&Serf> = serfs.iter().collect();
    assert_serf_logs_clean(
        &serf_refs,
        &["s1", "s2", "s3", "sw1", "sw2"],
        false,
        "after the leaves",
    );
}

#[test]
fn graceful_leave_plain() {
    graceful_leave(false, 109);
}

#[test]
fn graceful_leave_encrypted() {
    graceful_leave(true, 110);
}

// ---------------------------------------------------------------------------
// 6. refutation
// ---------------------------------------------------------------------------

/// Two serf agents + swimnet (n = 3). swimnet is SIGSTOPped for 2 s and
/// continued. A serf probe of it that started in the window fails, and serf
/// suspects it (logged "Suspect sw1 has failed, no acks received"). The
/// suspicion timer is min = 3 s once the other serf agent confirms (k = 1),
/// 18 s without; the earliest suspicion starts one probe interval after the
/// stop, so no serf agent can declare swimnet dead before 1 + 3 = 4 s after
/// the stop, 2 s after SIGCONT. In that time swimnet must refute: its alive
/// with a higher incarnation reaches both serf agents (with n = 3 the gossip
/// goes to every other node; swimnet also answers each accuser directly).
/// When no probe fell into the window the stop is repeated (up to 8 times).
///
/// Pass: a serf log shows the suspicion, swimnet's incarnation (from
/// /v1/stats and its own entry in /v1/members) and `refutations` went up,
/// and no serf agent ever shows swimnet `failed` or logs "Marking sw1 as
/// failed", watched until the longest suspicion timer (18 s) has run out
/// after the last SIGCONT.
///
/// Why n = 3 and not the 4-agent cluster: with 4 serf agents + one stopped
/// node, memberlist's own refutation (RetransmitMult 2 in the local profile:
/// each broadcast goes out twice) can miss a confirming agent before its 3 s
/// timer fires. Measured on this machine with the same 2.5 s stop: serf-only
/// clusters (the stopped node a serf agent) were marked failed in 2 of 46
/// trials that raised a suspicion, swimnet in 3 of ~70. That is memberlist
/// behaviour, not a compatibility property, so this test uses the cluster
/// size where memberlist guarantees the refutation reaches everyone.
fn swimnet_refutes_suspicion(enc: bool, net: u8) {
    let env = Env::new(&format!("swimnet_refutes_suspicion_{}", mode(enc)), net);
    let key = enc.then(keygen);
    let serfs = start_serfs(&env, &key, 2);
    let mut sw = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[0].addr()]));
    {
        let all = nodes(&serfs, &[&sw]);
        wait_all_alive(&all, &names(&all), CONVERGE);
    }
    let n = 3;
    let inc0 = sw.incarnation().unwrap();
    let refutations0 = sw.stat("refutations").unwrap();
    let serf_nodes = nodes(&serfs, &[]);
    let mon = Monitor::start(
        serf_nodes.iter().map(|n| n.observer()).collect(),
        vec!["sw1".to_string()],
        true,
    );
    let suspect_pat = "Suspect sw1 has failed";
    let suspicions = |serfs: &[Serf]| -> usize {
        serfs
            .iter()
            .map(|s| count_lines(&s.log(), suspect_pat))
            .sum()
    };
    let before = suspicions(&serfs);
    let stop_for = Duration::from_secs(2);
    let mut last_cont = Instant::now();
    let mut refuted = false;
    for attempt in 1..=8 {
        sw.proc.signal("STOP");
        thread::sleep(stop_for);
        sw.proc.signal("CONT");
        last_cont = Instant::now();
        let inc_up = poll_until(Duration::from_secs(2), Duration::from_millis(50), || {
            let i = sw.incarnation()?;
            if i > inc0 {
                Ok(i)
            } else {
                Err(format!("incarnation still {i}"))
            }
        });
        // A probe that started just before SIGCONT may still fail.
        thread::sleep(LOCAL.probe_interval);
        let suspected = suspicions(&serfs) > before;
        eprintln!(
            "[{}] stop #{attempt}: serf suspicion logged: {suspected}, incarnation: {inc_up:?}",
            mode(enc)
        );
        match (suspected, inc_up) {
            (true, Ok(_)) => {
                refuted = true;
                break;
            }
            (true, Err(e)) => {
                panic!("serf suspected sw1 but swimnet did not refute within 2 s of SIGCONT ({e})")
            }
            (false, Ok((i, _))) => panic!(
                "swimnet's incarnation went up to {i} although no serf agent logged a suspicion"
            ),
            (false, Err(_)) => thread::sleep(Duration::from_secs(1)),
        }
    }
    assert!(
        refuted,
        "no serf probe of swimnet failed in 8 stops of {stop_for:?}"
    );
    // Every serf agent's suspicion timer (at most suspicion_max) must run out
    // without a "failed" verdict.
    let hold = LOCAL.suspicion_max(n) + SLACK;
    while last_cont.elapsed() < hold {
        thread::sleep(Duration::from_millis(250));
    }
    assert_monitor_clean(mon.finish(), "after swimnet was suspected");
    let refutations = sw.stat("refutations").unwrap();
    assert!(
        refutations > refutations0,
        "swimnet's refutations counter did not go up"
    );
    let inc = sw.incarnation().unwrap();
    let own = sw.members().unwrap();
    assert_eq!(
        find(&own, "sw1").and_then(|m| m.incarnation),
        Some(inc),
        "swimnet's own member entry does not carry its incarnation"
    );
    for s in &serfs {
        let log = s.log();
        for bad in ["Marking sw1 as failed", "EventMemberFailed: sw1 "] {
            assert_eq!(count_lines(&log, bad), 0, "{} logged '{bad}'", s.name);
        }
        shows(s, &["sw1"], "alive").unwrap();
    }
    let holders: Vec<&str> = serfs
        .iter()
        .filter(|s| count_lines(&s.log(), suspect_pat) > 0)
        .map(|s| s.name.as_str())
        .collect();
    eprintln!(
        "[{}] refuted: incarnation {inc0} -> {inc}, suspected by {holders:?}",
        mode(enc)
    );
}

#[test]
fn swimnet_refutes_suspicion_plain() {
    swimnet_refutes_suspicion(false, 115);
}

#[test]
fn swimnet_refutes_suspicion_encrypted() {
    swimnet_refutes_suspicion(true, 116);
}
