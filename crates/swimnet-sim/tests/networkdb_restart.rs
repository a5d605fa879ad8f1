//! Restart without loss on virtual time: a node restarted with what it kept
//! ([`NetworkDb::restart_state`] / [`NetworkDb::restore`]) gets its
//! networks and entries back at its peers, over what its old run left.

mod ndb_cluster;

use std::time::Duration;

use ndb_cluster::{addr, name, Cluster};
use swimnet_networkdb::{NdbConfig, NetworkDb, OwnEntry, RestartState};

const NET: &str = "net1";
const T: &str = "endpoint_table";
const B: usize = 1;

fn adopting() -> NdbConfig {
    NdbConfig {
        adopt_own_entries: true,
        ..NdbConfig::default()
    }
}

/// Three nodes attached to NET; node B owns `k0..k3` = `v0..v3`.
fn cluster(cfg: NdbConfig) -> Cluster {
    let mut c = Cluster::new(3, 5, cfg);
    c.run_for(Duration::from_secs(3));
    for i in 0..3 {
        c.on(i, |db, now| db.join_network(now, NET)).unwrap();
    }
    c.run_for(Duration::from_secs(3));
    for k in 0..4 {
        c.on(B, |db, now| {
            db.create_entry(now, NET, T, &format!("k{k}"), format!("v{k}").as_bytes())
        })
        .unwrap();
    }
    c.run_for(Duration::from_secs(3));
    for i in 0..3 {
        assert_eq!(c.table(i, NET, T).len(), 4, "node {i} sees B's entries");
    }
    c
}

/// `key=value` of every live entry of NET/T on node `i`, with its owner.
fn view(c: &Cluster, i: usize) -> Vec<String> {
    c.table(i, NET, T)
        .into_iter()
        .map(|e| {
            format!(
                "{}={}@{}",
                e.key,
                String::from_utf8_lossy(&e.value),
                e.owner
            )
        })
        .collect()
}

fn expected(values: [&str; 4]) -> Vec<String> {
    (0..4)
        .map(|k| format!("k{k}={}@{}", values[k], name(B)))
        .collect()
}

/// Restarts B from `kept` (fresh node, same name and address) and joins it
/// through node 0, then lets the cluster run.
fn restart_b(c: &mut Cluster, kept: RestartState) {
    c.replace_node(B);
    let report = c.on(B, |db, now| db.restore(now, kept.clone()));
    assert_eq!(report.networks, 1);
    assert_eq!(report.entries, kept.entries.len());
    assert!(report.refused.is_empty());
    let seed = addr(0);
    c.on(B, |db, now| db.join(now, &[seed])).unwrap();
    c.run_for(Duration::from_secs(15));
}

#[test]
fn restart_state_holds_networks_own_live_entries_and_clocks() {
    let mut c = cluster(NdbConfig::default());
    c.on(B, |db, now| db.delete_entry(now, NET, T, "k3"))
        .unwrap();
    c.on(0, |db, now| db.create_entry(now, NET, T, "theirs", b"x"))
        .unwrap();
    c.run_for(Duration::from_secs(2));
    let kept = c.node(B).restart_state(usize::MAX);
    assert_eq!(kept.networks, vec![NET.to_string()]);
    let keys: Vec<&str> = kept.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["k0", "k1", "k2"], "own live entries only");
    assert_eq!(kept.table_clock, c.node(B).state().table_clock());
    assert!(kept.entries.iter().all(|e| e.ltime <= kept.table_clock));
    assert_eq!(c.node(B).restart_state(2).entries.len(), 2, "capped");
}

#[test]
fn after_a_graceful_leave_restored_entries_come_back_everywhere() {
    let mut c = cluster(adopting());
    c.on(B, |db, now| db.leave(now));
    c.run_for(Duration::from_secs(3));
    let kept = c.node(B).restart_state(usize::MAX);
    c.h.crash(B);
    for i in [0, 2] {
        assert!(c.table(i, NET, T).is_empty(), "the leave deleted them");
    }
    c.run_for(Duration::from_secs(5));
    restart_b(&mut c, kept);
    for i in 0..3 {
        assert_eq!(view(&c, i), expected(["v0", "v1", "v2", "v3"]), "node {i}");
        assert_eq!(c.node(i).network_peers(NET).len(), 3, "node {i} peers");
    }
}

#[test]
fn reannounced_entries_win_over_newer_tombstones_of_the_old_run() {
    // Without adoption, what was kept is the truth: B's delete after the
    // state was kept left tombstones newer than the kept entry, and the
    // re-announcement (new Lamport times) must still win over them.
    let mut c = cluster(NdbConfig::default());
    let kept = c.node(B).restart_state(usize::MAX);
    c.on(B, |db, now| db.delete_entry(now, NET, T, "k0"))
        .unwrap();
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.table(0, NET, T).len(), 3, "the tombstone reached node 0");
    c.h.crash(B);
    c.run_for(Duration::from_secs(10));
    restart_b(&mut c, kept);
    for i in 0..3 {
        assert_eq!(view(&c, i), expected(["v0", "v1", "v2", "v3"]), "node {i}");
    }
}

#[test]
fn writes_after_the_state_was_kept_are_adopted_not_reverted() {
    let mut c = cluster(adopting());
    let kept = c.node(B).restart_state(usize::MAX);
    c.on(B, |db, now| db.update_entry(now, NET, T, "k1", b"newer"))
        .unwrap();
    c.on(B, |db, now| db.delete_entry(now, NET, T, "k2"))
        .unwrap();
    c.run_for(Duration::from_secs(2));
    c.h.crash(B); // kill -9
    c.run_for(Duration::from_secs(10));
    restart_b(&mut c, kept);
    let want = vec![
        format!("k0=v0@{}", name(B)),
        format!("k1=newer@{}", name(B)),
        format!("k3=v3@{}", name(B)),
    ];
    for i in 0..3 {
        assert_eq!(view(&c, i), want, "node {i}");
    }
    assert!(c.node(B).stats().own_entries_adopted >= 2);
    // B owns the adopted version: it can update it.
    c.on(B, |db, now| db.update_entry(now, NET, T, "k1", b"again"))
        .unwrap();
}

#[test]
fn restored_clocks_pass_the_kept_ones_and_refused_entries_are_listed() {
    let mut db = NetworkDb::new(
        NetworkDb::docker_memberlist(swimnet_core::Config::local(name(B), addr(B))),
        NdbConfig::default(),
        std::time::Instant::now(),
        1,
    )
    .unwrap();
    let entry = |nid: &str, key: &str, ltime| OwnEntry {
        network_id: nid.into(),
        table: T.into(),
        key: key.into(),
        value: b"v".to_vec(),
        ltime,
    };
    let kept = RestartState {
        table_clock: 40,
        network_clock: 70,
        networks: vec![NET.into()],
        entries: vec![
            entry(NET, "a", 55),
            entry("other", "b", 3),
            entry(NET, "", 4),
        ],
    };
    let report = db.restore(std::time::Instant::now(), kept);
    assert_eq!((report.networks, report.entries), (1, 1));
    assert_eq!(report.refused.len(), 2, "unkept network and empty key");
    assert!(db.state().table_clock() > 55, "past the newest kept entry");
    assert!(db.state().network_clock() > 70);
    assert_eq!(db.get_entry(NET, T, "a").unwrap(), b"v");
}

#[test]
fn a_quick_second_restart_is_answered_despite_the_answer_rate_limit() {
    let mut c = cluster(adopting());
    c.on(0, |db, now| db.create_entry(now, NET, T, "a0", b"x"))
        .unwrap();
    c.run_for(Duration::from_secs(2));
    for round in 0..2 {
        let kept = c.node(B).restart_state(usize::MAX);
        c.h.crash(B);
        c.run_for(Duration::from_millis(500));
        c.replace_node(B);
        c.on(B, |db, now| db.restore(now, kept));
        let seed = addr(0);
        c.on(B, |db, now| db.join(now, &[seed])).unwrap();
        // Well within the answer interval (5 s) of the previous run's
        // syncs, and far from the next periodic bulk sync (30 s).
        c.run_for(Duration::from_secs(2));
        let keys: Vec<String> = c.table(B, NET, T).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["a0", "k0", "k1", "k2", "k3"], "restart {round}");
    }
}
