//! Interop tests between swimnet's NetworkDB mode (`swimnet agent --protocol
//! networkdb`) and Docker's real NetworkDB (`networkdb-test` from Debian's
//! docker.io 20.10.24 source, built by scripts/build-networkdb-test.sh).
//!
//! Every node runs in its own network namespace (`swn<pid>-<test>-h<i>`, eth0
//! = 10.79.0.<i>/24 on a bridge in `swn<pid>-<test>-br`); both sides are driven
//! through Docker's diagnostic API (served by swimnet from src/diag.rs) on 127.0.0.1:8000
//! inside the node's namespace, with `ip netns exec <ns> curl`. Logs go to
//! `target/tmp/interop_networkdb/<test>/`; a failing test prints their tails.
//!
//! The tests need root (`ip netns`), curl and the Docker binary; they fail,
//! never skip, when any is missing: run scripts/build-networkdb-test.sh as
//! root (`NDB_BIN` overrides the binary's path).
//!
//! Docker 20.10.24 runs memberlist's LAN defaults (push/pull every 30 s) and
//! NetworkDB bulk-syncs every 60 s, so convergence bounds below allow for a
//! missed broadcast being repaired by one anti-entropy round.

mod ndb_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ndb_common::*;

/// Bound for membership and table convergence (one NetworkDB bulk sync is
/// 60 s; most cases converge through gossip in well under a second).
const CONVERGE: Duration = Duration::from_secs(75);

const NET: &str = "net1";
const TBL: &str = "t1";

fn expected_peers(nodes: &[&Node]) -> BTreeSet<(String, String)> {
    nodes
        .iter()
        .map(|n| (n.name.clone(), n.ip.clone()))
        .collect()
}

/// Waits until every node lists exactly `nodes` in /clusterpeers.
fn wait_cluster(env: &Env, nodes: &[&Node]) {
    let want = expected_peers(nodes);
    for n in nodes {
        env.wait_for(
            &format!("{} /clusterpeers == all {}", n.name, nodes.len()),
            CONVERGE,
            || {
                let got = env.peers(n);
                if got == want {
                    Ok(())
                } else {
                    Err(format!("got {got:?}, want {want:?}"))
                }
            },
        );
    }
}

/// Waits until every node lists exactly `nodes` in /networkpeers?nid=NET.
fn wait_network(env: &Env, nodes: &[&Node]) {
    let want = expected_peers(nodes);
    for n in nodes {
        env.wait_for(
            &format!("{} /networkpeers {NET} == all", n.name),
            CONVERGE,
            || {
                let got = env.network_peers(n, NET);
                if got == want {
                    Ok(())
                } else {
                    Err(format!("got {got:?}, want {want:?}"))
                }
            },
        );
    }
}

/// Waits until `n`'s table equals `want`.
fn wait_table(env: &Env, n: &Node, want: &Table, what: &str) {
    env.wait_for(&format!("{} table: {what}", n.name), CONVERGE, || {
        let got = env.table(n, NET, TBL)?;
        if &got == want {
            Ok(())
        } else {
            let missing: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(5).collect();
            let extra: Vec<_> = got.iter().filter(|(k, _)| !want.contains_key(*k)).take(5).collect();
            Err(format!(
                "have {} want {}; wrong/missing e.g. {missing:?}; extra e.g. {extra:?} (got e.g. {:?})",
                got.len(),
                want.len(),
                missing.iter().map(|(k, _)| got.get(*k)).collect::<Vec<_>>()
            ))
        }
    });
}

fn entry(value: &str, owner: &Node) -> (String, String) {
    (b64_raw(value), owner.name.clone())
}

/// Three Docker nodes form a cluster; swimnet joins it through its /join.
#[test]
fn swimnet_joins_docker_cluster() {
    let mut env = Env::new("joind");
    let d1 = env.docker(1);
    let d2 = env.docker(2);
    let d3 = env.docker(3);
    env.join(&d2, &[&d1]);
    env.join(&d3, &[&d1]);
    wait_cluster(&env, &[&d1, &d2, &d3]);
    let s4 = env.swim(4, "swim4");
    let t = Instant::now();
    env.join(&s4, &[&d2]);
    wait_cluster(&env, &[&d1, &d2, &d3, &s4]);
    eprintln!("swimnet joined 3 Docker nodes in {:?}", t.elapsed());
}

/// Two swimnet nodes form a cluster; a Docker node joins it.
#[test]
fn docker_joins_swimnet_cluster() {
    let mut env = Env::new("joins");
    let s1 = env.swim(1, "swim1");
    let s2 = env.swim(2, "swim2");
    env.join(&s2, &[&s1]);
    wait_cluster(&env, &[&s1, &s2]);
    let d3 = env.docker(3);
    let t = Instant::now();
    env.join(&d3, &[&s1]);
    wait_cluster(&env, &[&s1, &s2, &d3]);
    eprintln!("Docker joined 2 swimnet nodes in {:?}", t.elapsed());
}

/// Two Docker nodes and one swimnet node on net1: creates, updates and
/// deletes propagate both ways, with the writer as owner.
#[test]
fn entries_propagate_both_ways() {
    let mut env = Env::new("crud");
    let d1 = env.docker(1);
    let d2 = env.docker(2);
    let s3 = env.swim(3, "swim3");
    env.join(&d2, &[&d1]);
    env.join(&s3, &[&d1]);
    wait_cluster(&env, &[&d1, &d2, &s3]);
    for n in [&d1, &d2, &s3] {
        env.join_network(n, NET);
    }
    wait_network(&env, &[&d1, &d2, &s3]);
    let all = [&d1, &d2, &s3];
    let mut want = Table::new();

    // Docker -> swimnet (and the other Docker node).
    env.create(&d1, NET, TBL, "kd", "from-docker");
    want.insert("kd".into(), entry("from-docker", &d1));
    // swimnet -> Docker, owned by swimnet's node.
    env.create(&s3, NET, TBL, "ks", "from-swim");
    want.insert("ks".into(), entry("from-swim", &s3));
    let t = Instant::now();
    for n in all {
        wait_table(&env, n, &want, "after creates");
    }
    eprintln!("creates converged in {:?}", t.elapsed());
    // swimnet's own CLI sees Docker's entry too.
    let out = env.cli(&s3, &["table", "get", NET, TBL, "kd"]);
    assert!(out.contains("from-docker"), "swimnet table get kd: {out:?}");

    env.update(&d1, NET, TBL, "kd", "docker-v2");
    want.insert("kd".into(), entry("docker-v2", &d1));
    env.update(&s3, NET, TBL, "ks", "swim-v2");
    want.insert("ks".into(), entry("swim-v2", &s3));
    for n in all {
        wait_table(&env, n, &want, "after updates");
    }

    env.delete(&d1, NET, TBL, "kd");
    want.remove("kd");
    for n in all {
        wait_table(&env, n, &want, "after Docker's delete");
    }
    env.delete(&s3, NET, TBL, "ks");
    want.remove("ks");
    for n in all {
        wait_table(&env, n, &want, "after swimnet's delete");
    }

    // Values whose base64 holds '+', '/' and '=' (sent percent-encoded),
    // and /getentry on both sides.
    env.create(&s3, NET, TBL, "kb", ">>>???>");
    want.insert("kb".into(), entry(">>>???>", &s3));
    env.create(&d2, NET, TBL, "kb2", "???>>>?");
    want.insert("kb2".into(), entry("???>>>?", &d2));
    for n in all {
        wait_table(&env, n, &want, "after base64 edge-case values");
    }
    for n in all {
        for (k, (v, _)) in &want {
            let body = env.get(n, &format!("/getentry?nid={NET}&tname={TBL}&key={k}"));
            assert!(
                body.contains(v.as_str()),
                "{} /getentry {k}: {body:?}, want {v}",
                n.name
            );
        }
    }

    // Writes through swimnet's own CLI (REST API) reach Docker too.
    env.cli(&s3, &["table", "put", NET, TBL, "kcli", "via-cli"]);
    want.insert("kcli".into(), entry("via-cli", &s3));
    for n in all {
        wait_table(&env, n, &want, "after swimnet table put");
    }
    env.cli(&s3, &["table", "delete", NET, TBL, "kcli"]);
    want.remove("kcli");
    for n in all {
        wait_table(&env, n, &want, "after swimnet table delete");
    }

    // A key deleted elsewhere can be created again (over the tombstone).
    env.create(&s3, NET, TBL, "kd", "swim-takes-kd");
    want.insert("kd".into(), entry("swim-takes-kd", &s3));
    for n in all {
        wait_table(&env, n, &want, "after re-create over a tombstone");
    }
}

/// Entries written before swimnet joins the network reach it by bulk sync,
/// and swimnet's earlier entries reach Docker nodes joining after it.
#[test]
fn bulk_sync_on_network_join() {
    let mut env = Env::new("bulk");
    let d1 = env.docker(1);
    let d2 = env.docker(2);
    let s3 = env.swim(3, "swim3");
    env.join(&d2, &[&d1]);
    env.join(&s3, &[&d1]);
    wait_cluster(&env, &[&d1, &d2, &s3]);
    env.join_network(&d1, NET);
    env.join_network(&d2, NET);
    wait_network(&env, &[&d1, &d2]);
    let mut want = Table::new();
    for i in 0..25 {
        let (n, v) = if i % 2 == 0 { (&d1, "a") } else { (&d2, "b") };
        let key = format!("pre{i}");
        let val = format!("{v}{i}");
        env.create(n, NET, TBL, &key, &val);
        want.insert(key, entry(&val, n));
    }
    for n in [&d1, &d2] {
        wait_table(&env, n, &want, "Docker nodes before swimnet joins net1");
    }
    let t = Instant::now();
    env.join_network(&s3, NET);
    wait_table(&env, &s3, &want, "bulk sync after joinnetwork");
    eprintln!("bulk sync of 25 entries to swimnet in {:?}", t.elapsed());

    // The other direction: a Docker node joining net1 after swimnet wrote.
    for i in 0..10 {
        let key = format!("swim{i}");
        let val = format!("s{i}");
        env.create(&s3, NET, TBL, &key, &val);
        want.insert(key, entry(&val, &s3));
    }
    let d4 = env.docker(4);
    env.join(&d4, &[&s3]);
    wait_cluster(&env, &[&d1, &d2, &s3, &d4]);
    let t = Instant::now();
    env.join_network(&d4, NET);
    wait_table(&env, &d4, &want, "bulk sync to a Docker node joining late");
    eprintln!("bulk sync of 35 entries to Docker in {:?}", t.elapsed());
}

/// Three Docker and three swimnet nodes; 1,000 entries written round-robin
/// over all six converge to identical tables everywhere.
#[test]
fn mixed_cluster_1000_entries() {
    let mut env = Env::new("mixed");
    let d1 = env.docker(1);
    let d2 = env.docker(2);
    let d3 = env.docker(3);
    let s4 = env.swim(4, "swim4");
    let s5 = env.swim(5, "swim5");
    let s6 = env.swim(6, "swim6");
    let all = [&d1, &d2, &d3, &s4, &s5, &s6];
    env.join(&d2, &[&d1]);
    env.join(&s4, &[&d1]);
    env.join(&s5, &[&s4]);
    env.join(&d3, &[&s5]);
    env.join(&s6, &[&d2]);
    wait_cluster(&env, &all);
    for n in all {
        env.join_network(n, NET);
    }
    wait_network(&env, &all);
    let mut want = Table::new();
    for i in 0..1000 {
        let n = all[i % all.len()];
        want.insert(format!("k{i:04}"), entry(&format!("v{i}x{}", n.idx), n));
    }
    let t = Instant::now();
    // All six write at the same time, one writer thread per node.
    std::thread::scope(|sc| {
        for (j, n) in all.iter().enumerate() {
            let env = &env;
            sc.spawn(move || {
                for i in (j..1000).step_by(all.len()) {
                    env.create(n, NET, TBL, &format!("k{i:04}"), &format!("v{i}x{}", n.idx));
                }
            });
        }
    });
    let written = t.elapsed();
    for n in all {
        wait_table(&env, n, &want, "1000 entries");
    }
    eprintln!(
        "1000 entries written in {written:?}, all six identical after {:?}",
        t.elapsed()
    );
}

/// kill -9 of the swimnet node: Docker nodes mark it failed and drop its
/// entries (Docker 20.10 hard-deletes a failed node's entries rather than
/// keeping them as tombstones); restarted, it rejoins and its new entries propagate.
#[test]
fn swimnet_kill9_and_restart() {
    let mut env = Env::new("kill");
    let d1 = env.docker(1);
    let d2 = env.docker(2);
    let s3 = env.swim(3, "swim3");
    env.join(&d2, &[&d1]);
    env.join(&s3, &[&d1]);
    wait_cluster(&env, &[&d1, &d2, &s3]);
    for n in [&d1, &d2, &s3] {
        env.join_network(n, NET);
    }
    wait_network(&env, &[&d1, &d2, &s3]);
    let mut want = Table::new();
    env.create(&d1, NET, TBL, "kd", "docker");
    want.insert("kd".into(), entry("docker", &d1));
    env.create(&s3, NET, TBL, "ks", "swim-before");
    want.insert("ks".into(), entry("swim-before", &s3));
    for n in [&d1, &d2, &s3] {
        wait_table(&env, n, &want, "before the kill");
    }

    env.kill9(&s3);
    let t = Instant::now();
    wait_cluster(&env, &[&d1, &d2]);
    wait_network(&env, &[&d1, &d2]);
    eprintln!(
        "Docker nodes dropped the killed swimnet node after {:?}",
        t.elapsed()
    );
    want.remove("ks");
    for n in [&d1, &d2] {
        wait_table(&env, n, &want, "killed node's entries gone");
    }

    env.start_swim(&s3);
    let t = Instant::now();
    env.join(&s3, &[&d2]);
    wait_cluster(&env, &[&d1, &d2, &s3]);
    env.join_network(&s3, NET);
    wait_network(&env, &[&d1, &d2, &s3]);
    env.create(&s3, NET, TBL, "ks2", "swim-after");
    want.insert("ks2".into(), entry("swim-after", &s3));
    for n in [&d1, &d2, &s3] {
        wait_table(&env, n, &want, "after restart");
    }
    eprintln!(
        "restarted swimnet node rejoined and synced in {:?}",
        t.elapsed()
    );
}

/// kill -9 of a Docker node: swimnet marks it failed and stops serving its
/// entries. Restarted, Docker's node comes back under a new random name on
/// the same IP:port; swimnet drops the old identity, lists the new one and
/// exchanges entries with it.
#[test]
fn docker_kill9_and_reincarnation() {
    let mut env = Env::new("dkill");
    let s1 = env.swim(1, "swim1");
    let d2 = env.docker(2);
    let d3 = env.docker(3);
    env.join(&d2, &[&s1]);
    env.join(&d3, &[&s1]);
    wait_cluster(&env, &[&s1, &d2, &d3]);
    for n in [&s1, &d2, &d3] {
        env.join_network(n, NET);
    }
    wait_network(&env, &[&s1, &d2, &d3]);
    let mut want = Table::new();
    env.create(&s1, NET, TBL, "ks", "swim");
    want.insert("ks".into(), entry("swim", &s1));
    env.create(&d3, NET, TBL, "kd3", "doomed");
    want.insert("kd3".into(), entry("doomed", &d3));
    for n in [&s1, &d2, &d3] {
        wait_table(&env, n, &want, "before the kill");
    }

    env.kill9(&d3);
    let t = Instant::now();
    wait_cluster(&env, &[&s1, &d2]);
    wait_network(&env, &[&s1, &d2]);
    eprintln!(
        "swimnet dropped the killed Docker node after {:?}",
        t.elapsed()
    );
    want.remove("kd3");
    for n in [&s1, &d2] {
        wait_table(&env, n, &want, "killed Docker node's entries gone");
    }

    let d3b = env.start_docker(&d3);
    assert_ne!(d3b.name, d3.name, "Docker picks a new name per process");
    let t = Instant::now();
    env.join(&d3b, &[&s1]);
    wait_cluster(&env, &[&s1, &d2, &d3b]);
    env.join_network(&d3b, NET);
    wait_network(&env, &[&s1, &d2, &d3b]);
    env.create(&d3b, NET, TBL, "kd3b", "reborn");
    want.insert("kd3b".into(), entry("reborn", &d3b));
    env.create(&s1, NET, TBL, "ks2", "swim-again");
    want.insert("ks2".into(), entry("swim-again", &s1));
    for n in [&s1, &d2, &d3b] {
        wait_table(&env, n, &want, "after the Docker node came back");
    }
    eprintln!("reincarnated Docker node synced in {:?}", t.elapsed());
}

/// Leaving net1 (a NetworkDB network leave, gossiped to the network's
/// peers): peers drop the leaver's entries
/// for that network, both when swimnet leaves and when Docker leaves; a
/// graceful swimnet shutdown (SIGTERM) makes Docker mark it left and delete
/// its entries.
#[test]
fn network_leave_and_graceful_leave() {
    let mut env = Env::new("leave");
    let d1 = env.docker(1);
    let d2 = env.docker(2);
    let s3 = env.swim(3, "swim3");
    env.join(&d2, &[&d1]);
    env.join(&s3, &[&d1]);
    wait_cluster(&env, &[&d1, &d2, &s3]);
    for n in [&d1, &d2, &s3] {
        env.join_network(n, NET);
    }
    wait_network(&env, &[&d1, &d2, &s3]);
    let mut want = Table::new();
    env.create(&d1, NET, TBL, "k1", "d1");
    want.insert("k1".into(), entry("d1", &d1));
    env.create(&d2, NET, TBL, "k2", "d2");
    want.insert("k2".into(), entry("d2", &d2));
    env.create(&s3, NET, TBL, "k3", "s3");
    want.insert("k3".into(), entry("s3", &s3));
    for n in [&d1, &d2, &s3] {
        wait_table(&env, n, &want, "before leaving");
    }

    // swimnet leaves net1: Docker drops its entries and its attachment.
    env.ok(&s3, &format!("/leavenetwork?nid={NET}"));
    let mut docker_view = want.clone();
    docker_view.remove("k3");
    wait_network(&env, &[&d1, &d2]);
    for n in [&d1, &d2] {
        wait_table(&env, n, &docker_view, "swimnet left net1");
    }

    // swimnet rejoins: it gets the table back by bulk sync and can write.
    env.join_network(&s3, NET);
    wait_network(&env, &[&d1, &d2, &s3]);
    env.create(&s3, NET, TBL, "k3", "s3-again");
    docker_view.insert("k3".into(), entry("s3-again", &s3));
    for n in [&d1, &d2, &s3] {
        wait_table(&env, n, &docker_view, "swimnet rejoined net1");
    }

    // Docker's d2 leaves net1: swimnet drops d2's entries.
    env.ok(&d2, &format!("/leavenetwork?nid={NET}"));
    let mut view = docker_view.clone();
    view.remove("k2");
    wait_network(&env, &[&d1, &s3]);
    for n in [&d1, &s3] {
        wait_table(&env, n, &view, "Docker's d2 left net1");
    }

    // Graceful swimnet shutdown: Docker marks it left, deletes its entries.
    let st = env.term(&s3);
    assert!(st.success(), "swimnet agent exit after SIGTERM: {st}");
    let t = Instant::now();
    wait_cluster(&env, &[&d1, &d2]);
    view.remove("k3");
    wait_table(&env, &d1, &view, "swimnet left the cluster");
    eprintln!(
        "Docker processed swimnet's graceful leave in {:?}",
        t.elapsed()
    );
}

/// The swimnet node is cut off (its eth0 down) until both sides declare the
/// other failed, then healed: membership and net1 attachments re-converge on
/// all three nodes and the tables end up identical, holding both sides'
/// entries, including one written on each side during the partition.
#[test]
fn partition_and_heal() {
    let mut env = Env::new("part");
    let d1 = env.docker(1);
    let d2 = env.docker(2);
    let s3 = env.swim(3, "swim3");
    env.join(&d2, &[&d1]);
    env.join(&s3, &[&d1]);
    wait_cluster(&env, &[&d1, &d2, &s3]);
    for n in [&d1, &d2, &s3] {
        env.join_network(n, NET);
    }
    wait_network(&env, &[&d1, &d2, &s3]);
    let mut want = Table::new();
    env.create(&d1, NET, TBL, "kd", "docker");
    want.insert("kd".into(), entry("docker", &d1));
    env.create(&s3, NET, TBL, "ks", "swim");
    want.insert("ks".into(), entry("swim", &s3));
    for n in [&d1, &d2, &s3] {
        wait_table(&env, n, &want, "before the partition");
    }

    env.link(&s3, false);
    let t = Instant::now();
    wait_cluster(&env, &[&d1, &d2]);
    env.wait_for("swimnet sees only itself", CONVERGE, || {
        let got = env.peers(&s3);
        if got == expected_peers(&[&s3]) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    eprintln!("both sides split after {:?}", t.elapsed());
    env.create(&d2, NET, TBL, "kd2", "during");
    want.insert("kd2".into(), entry("during", &d2));
    env.create(&s3, NET, TBL, "ks2", "during");
    want.insert("ks2".into(), entry("during", &s3));

    env.link(&s3, true);
    let t = Instant::now();
    // Records when each node's cluster and net1 views became whole.
    let all = [&d1, &d2, &s3];
    let whole = expected_peers(&all);
    let mut healed: Vec<(String, Option<Duration>, Option<Duration>)> =
        all.iter().map(|n| (n.name.clone(), None, None)).collect();
    env.wait_for("cluster and net1 views heal", CONVERGE, || {
        for (n, h) in all.iter().zip(healed.iter_mut()) {
            if h.1.is_none() && env.peers(n) == whole {
                h.1 = Some(t.elapsed());
            }
            if h.2.is_none() && env.network_peers(n, NET) == whole {
                h.2 = Some(t.elapsed());
            }
        }
        if healed.iter().all(|h| h.1.is_some() && h.2.is_some()) {
            Ok(())
        } else {
            Err(format!("(name, cluster, net1) healed: {healed:?}"))
        }
    });
    eprintln!("(name, cluster, net1) healed after: {healed:?}");
    eprintln!("membership healed after {:?}", t.elapsed());
    for n in [&s3, &d1, &d2] {
        wait_table(&env, n, &want, "after the heal");
    }
    eprintln!("tables healed after {:?}", t.elapsed());
}
