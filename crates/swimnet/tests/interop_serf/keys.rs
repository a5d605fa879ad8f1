//! Key rotation across a mixed cluster, and what a wrong key or plaintext
//! gets.

use super::*;

// ---------------------------------------------------------------------------
// 7. key rotation
// ---------------------------------------------------------------------------

/// Runs `serf keys <args>` until it exits 0, at most 5 times, and returns
/// the successful output; panics with every attempt's output otherwise.
///
/// Why retry: serf's key commands are internal queries spread by serf's
/// gossip, which in the local profile sends each broadcast only twice per
/// node (RetransmitMult 2); in a 4-node cluster a query now and then misses
/// one member before serf's query timeout (1.6 s) and the command reports
/// "3/4 nodes reported success", exit 1. Measured on this machine with 100
/// `serf keys -list` runs: 12 failures in a serf-only 4-node cluster, 6 with
/// 3 serf agents + swimnet. The operations are idempotent (install of an
/// installed key and remove of an absent key are no-ops), so a retry is
/// the same request again; a member that never answers (a swimnet without
/// key-query support) still fails all five attempts.
fn serf_keys_ok(s: &Serf, args: &[&str]) -> CmdOut {
    let mut outs = Vec::new();
    for attempt in 1..=5 {
        let out = s.cmd("keys", args);
        if out.ok() {
            if attempt > 1 {
                eprintln!(
                    "`serf keys {}` succeeded at attempt {attempt}; earlier: {}",
                    args.join(" "),
                    outs.iter()
                        .map(|o: &CmdOut| o.stdout.trim().lines().last().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
            return out;
        }
        outs.push(out);
    }
    panic!(
        "`serf keys {}` failed 5 times (does swimnet answer serf's key queries?):\n{}",
        args.join(" "),
        outs.iter()
            .map(CmdOut::describe)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn serf_key_list(s: &Serf) -> String {
    serf_keys_ok(s, &["-list"]).stdout
}

/// Keys listed by `serf keys -list` with their "[answered/total]" count.
fn serf_keys(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let c = it.next()?;
            (c.starts_with('[') && k.len() >= 20).then(|| (k.to_string(), c.to_string()))
        })
        .collect()
}

/// 3 serf agents + swimnet, all with K1. Install K2 (`serf keys -install`,
/// which reaches swimnet through serf's key query, then `swimnet keys
/// install`), make it primary (`-use` / `use`), remove K1 (`-remove` /
/// `remove`). Every serf command must exit 0, i.e. every member including
/// swimnet answered the query (a lost query is retried, see `serf_keys_ok`),
/// and swimnet's keyring must follow each serf step by itself; the
/// following `swimnet keys` command must then succeed as a no-op. A monitor
/// polls every node throughout: nobody may be seen non-alive, and the serf
/// logs must stay clean. Afterwards nodes holding only K1 cannot join: a
/// serf agent started with `-encrypt=K1 -join=<s1 | sw1>` exits with an
/// error, and `swimnet join` from a swimnet agent with K1 to s1 or sw1
/// fails; nobody lists them. Last, `swimnet keys remove` of the already
/// removed K1 must succeed (memberlist's RemoveKey is a no-op then), and
/// install + remove of a swimnet-only key round-trips.
#[test]
fn key_rotation_mixed_cluster() {
    let env = Env::new("key_rotation_mixed_cluster", 113);
    let k1 = keygen();
    let k2 = keygen();
    let key = Some(k1.clone());
    let serfs = start_serfs(&env, &key, 3);
    let sw = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[0].addr()]));
    let all = nodes(&serfs, &[&sw]);
    let all_names = names(&all);
    wait_all_alive(&all, &all_names, CONVERGE);
    let mon = Monitor::start(
        all.iter().map(|n| n.observer()).collect(),
        all_names.iter().map(|s| s.to_string()).collect(),
        true,
    );
    let s1 = &serfs[0];

    let l = serf_keys(&serf_key_list(s1));
    assert_eq!(
        l,
        vec![(k1.clone(), "[4/4]".to_string())],
        "initial keyring"
    );
    assert_eq!(sw.keys().unwrap(), (k1.clone(), vec![k1.clone()]));

    rotation_install(s1, &sw, &k1, &k2);
    rotation_use(s1, &sw, &k2);
    // Let a few probe rounds and a push/pull-free stretch run under the new
    // primary before the old key goes away (the monitor keeps polling).
    run_probe_rounds(3);
    rotation_remove(s1, &serfs[2], &sw, &k1, &k2);
    run_probe_rounds(3);
    assert_monitor_clean(mon.finish(), "during key rotation");
    let serf_refs: Vec<&Serf> = serfs.iter().collect();
    assert_serf_logs_clean(&serf_refs, &all_names, false, "after key rotation");

    old_key_holders_cannot_join(&env, &all, s1, &sw, &k1);
    swimnet_keys_remove_and_install(&sw, &k1, &k2);
}

/// Lets `n` probe intervals pass (the monitor keeps polling meanwhile).
fn run_probe_rounds(n: u32) {
    let t = Instant::now();
    while t.elapsed() < LOCAL.probe_interval * n {
        thread::sleep(Duration::from_millis(200));
    }
}

/// Installs K2 through serf's key query; swimnet follows by itself, and
/// `swimnet keys install` of it afterwards is a no-op.
fn rotation_install(s1: &Serf, sw: &Swim, k1: &str, k2: &str) {
    serf_keys_ok(s1, &["-install", k2]);
    wait_for(
        "swimnet to install K2 on serf's query",
        Duration::from_secs(5),
        || {
            let (p, ks) = sw.keys()?;
            (p == k1 && ks.iter().any(|k| k == k2) && ks.len() == 2)
                .then_some(())
                .ok_or(format!("{p} {ks:?}"))
        },
    );
    let out = sw.cli("keys", &["install", "--local", k2]);
    assert!(
        out.ok(),
        "swimnet keys install (already installed): {}",
        out.describe()
    );
    let mut l = serf_keys(&serf_key_list(s1));
    l.sort();
    let mut want = vec![
        (k1.to_string(), "[4/4]".to_string()),
        (k2.to_string(), "[4/4]".to_string()),
    ];
    want.sort();
    assert_eq!(l, want, "keyring after install");
}

/// Makes K2 primary through serf's key query; swimnet follows by itself,
/// and `swimnet keys use` of it afterwards succeeds.
fn rotation_use(s1: &Serf, sw: &Swim, k2: &str) {
    serf_keys_ok(s1, &["-use", k2]);
    wait_for(
        "swimnet to make K2 primary on serf's query",
        Duration::from_secs(5),
        || {
            let (p, ks) = sw.keys()?;
            (p == k2 && ks.len() == 2)
                .then_some(())
                .ok_or(format!("{p} {ks:?}"))
        },
    );
    let out = sw.cli("keys", &["use", "--local", k2]);
    assert!(out.ok(), "swimnet keys use: {}", out.describe());
}

/// Removes K1 through serf's key query (sent by `s1`); swimnet follows by
/// itself and `s3` lists only K2, answered by all four members.
fn rotation_remove(s1: &Serf, s3: &Serf, sw: &Swim, k1: &str, k2: &str) {
    serf_keys_ok(s1, &["-remove", k1]);
    wait_for(
        "swimnet to remove K1 on serf's query",
        Duration::from_secs(5),
        || {
            let (p, ks) = sw.keys()?;
            (p == k2 && ks == vec![k2.to_string()])
                .then_some(())
                .ok_or(format!("{p} {ks:?}"))
        },
    );
    let l = serf_keys(&serf_key_list(s3));
    assert_eq!(
        l,
        vec![(k2.to_string(), "[4/4]".to_string())],
        "keyring after remove"
    );
}

/// A serf agent holding only K1 and joining `s1` or `sw` exits with an
/// error; a swimnet agent holding only K1 cannot join either and learns no
/// member; no member of `all` lists any of them.
fn old_key_holders_cannot_join(env: &Env, all: &[&dyn Node], s1: &Serf, sw: &Swim, k1: &str) {
    for (i, target) in [s1.addr(), sw.addr()].into_iter().enumerate() {
        let name = format!("old{}", i + 1);
        let mut o = env.serf(
            &name,
            41 + i as u8,
            &SerfOpts {
                key: Some(k1.to_string()),
                join: vec![target.clone()],
                expect_start_failure: true,
                ..Default::default()
            },
        );
        let st = o.proc.wait_exit(Duration::from_secs(20));
        assert!(
            matches!(st.map(|s| s.success()), Some(false)),
            "serf agent with the old key and -join={target} should exit with an error, got {st:?}:\n{}",
            o.proc.log_tail(10)
        );
        assert!(
            o.proc.log_text().contains("Failed to join"),
            "serf agent with the old key: no 'Failed to join' in its log:\n{}",
            o.proc.log_tail(10)
        );
    }
    let old_sw = env.swim("old3", 43, &swim_opts(&Some(k1.to_string()), vec![]));
    for target in [s1.addr(), sw.addr()] {
        let out = old_sw.cli("join", &[&target]);
        assert!(
            !out.ok() && !out.timed_out,
            "swimnet agent holding only the old key joined {target} (or hung): {}",
            out.describe()
        );
    }
    let m = old_sw.members().unwrap();
    assert_eq!(
        m.len(),
        1,
        "old-key swimnet learned members: {}",
        summary(&m)
    );
    for o in all {
        let m = o.members().unwrap();
        for name in ["old1", "old2", "old3"] {
            assert!(
                find(&m, name).is_none(),
                "{} lists {name}: {}",
                o.name(),
                summary(&m)
            );
        }
    }
}

/// `swimnet keys remove` on swimnet's side of the rotation. serf's query
/// already removed K1 there, so this removes a key that is no longer
/// installed: memberlist's Keyring.RemoveKey and `serf keys -remove` treat
/// that as a no-op success (like `install` of an installed key, which
/// swimnet accepts in `rotation_install`). Checked last so that the checks
/// before it run either way. Then a real removal of a key only swimnet
/// holds.
fn swimnet_keys_remove_and_install(sw: &Swim, k1: &str, k2: &str) {
    let out = sw.cli("keys", &["remove", "--local", k1]);
    assert!(
        out.ok(),
        "swimnet keys remove of a key no longer installed should be a no-op like memberlist's \
         RemoveKey and `serf keys -remove`: {}",
        out.describe()
    );
    let k3 = keygen();
    let out = sw.cli("keys", &["install", "--local", &k3]);
    assert!(out.ok(), "swimnet keys install: {}", out.describe());
    assert_eq!(
        sw.keys().unwrap(),
        (k2.to_string(), vec![k2.to_string(), k3.clone()])
    );
    let out = sw.cli("keys", &["remove", "--local", &k3]);
    assert!(out.ok(), "swimnet keys remove: {}", out.describe());
    assert_eq!(sw.keys().unwrap(), (k2.to_string(), vec![k2.to_string()]));
}

// ---------------------------------------------------------------------------
// 8. wrong key, plaintext
// ---------------------------------------------------------------------------

/// s1, s2 and swimnet with key K; a serf agent `ws` and a swimnet agent `wsw`
/// with another key W. Joins must fail in all four directions (wrong serf →
/// swimnet, wrong swimnet → serf, serf → wrong swimnet, swimnet → wrong
/// serf) and nobody may list a node of the other key; as a control, `ws` and
/// `wsw` (same key W) can join each other. Then the hand-built plaintext
/// ping (`plaintext_ping`) is sent from 127.0.<net>.250 to s1 and to swimnet: no answer within
/// 2 s from either, s1 logs "Decrypt packet failed ... from=127.0.<net>.250",
/// and swimnet's `packets_dropped` goes up.
#[test]
fn wrong_key_and_plaintext_rejected() {
    let env = Env::new("wrong_key_and_plaintext_rejected", 114);
    let key = Some(keygen());
    let wrong = Some(keygen());
    let serfs = start_serfs(&env, &key, 2);
    let sw = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[0].addr()]));
    let all = nodes(&serfs, &[&sw]);
    wait_all_alive(&all, &names(&all), CONVERGE);
    let (s1, s2) = (&serfs[0], &serfs[1]);

    let ws = env.serf(
        "ws",
        31,
        &SerfOpts {
            key: wrong.clone(),
            ..Default::default()
        },
    );
    let wsw = env.swim("wsw", 32, &swim_opts(&wrong, vec![]));

    let out = ws.cmd("join", &[&sw.addr()]);
    assert!(
        !out.ok(),
        "serf with the wrong key joined swimnet: {}",
        out.describe()
    );
    let out = wsw.cli("join", &[&s1.addr()]);
    assert!(
        !out.ok() && !out.timed_out,
        "swimnet with the wrong key joined serf (or hung): {}",
        out.describe()
    );
    let out = s2.cmd("join", &[&wsw.addr()]);
    assert!(
        !out.ok(),
        "serf joined a swimnet node with the wrong key: {}",
        out.describe()
    );
    let out = sw.cli("join", &[&ws.addr()]);
    assert!(
        !out.ok() && !out.timed_out,
        "swimnet joined a serf node with the wrong key (or hung): {}",
        out.describe()
    );
    for o in &all {
        let m = o.members().unwrap();
        assert_eq!(
            m.len(),
            3,
            "{} lists a wrong-key node: {}",
            o.name(),
            summary(&m)
        );
    }
    for o in [&ws as &dyn Node, &wsw] {
        let m = o.members().unwrap();
        assert_eq!(m.len(), 1, "{} learned members: {}", o.name(), summary(&m));
    }
    // Control: the two wrong-key nodes share a key and can join each other.
    let out = wsw.cli("join", &[&ws.addr()]);
    assert!(
        out.ok(),
        "control: swimnet could not join a serf agent with the same key: {}",
        out.describe()
    );
    wait_all_alive(&[&ws, &wsw], &["ws", "wsw"], CONVERGE);

    // Plaintext ping.
    check_ping_vector();
    let from = env.ip(250);
    let dropped0 = sw.stat("packets_dropped").unwrap();
    let r = ping_plaintext(from, s1.ip, "s1", Duration::from_secs(2));
    assert!(
        r.is_none(),
        "encrypted serf answered a plaintext ping: {r:?}"
    );
    let needle = format!("from={from}:");
    wait_for(
        "s1 to log the decrypt failure",
        Duration::from_secs(10),
        || {
            s1.log()
                .lines()
                .any(|l| l.contains("Decrypt packet failed") && l.contains(&needle))
                .then_some(())
                .ok_or_else(|| {
                    "no 'Decrypt packet failed ... ".to_string() + &needle + "' line yet"
                })
        },
    );
    let r = ping_plaintext(from, sw.ip, "sw1", Duration::from_secs(2));
    assert!(
        r.is_none(),
        "encrypted swimnet answered a plaintext ping: {r:?}"
    );
    wait_for(
        "swimnet's packets_dropped to go up",
        Duration::from_secs(10),
        || {
            let d = sw.stat("packets_dropped")?;
            (d > dropped0)
                .then_some(())
                .ok_or(format!("packets_dropped still {d} (was {dropped0})"))
        },
    );
    // The main cluster is unaffected.
    wait_all_alive(&all, &names(&all), CONVERGE);
    let serf_refs: Vec<&Serf> = serfs.iter().collect();
    assert_serf_logs_clean(
        &serf_refs,
        &names(&all),
        true,
        "after the wrong-key attempts",
    );
}
