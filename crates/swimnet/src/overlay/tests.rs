//! The manager's decisions against an in-memory data plane and a fake
//! control plane (a shared table store that several "nodes" read and
//! write through the same command channel the driver serves), on paused
//! virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swimnet_networkdb::{ChangeOrigin, TableChange, TableEntry};
use swimnet_overlay::defs::DEFS_NETWORK;
use swimnet_overlay::ipam::IPAM_TABLE;
use swimnet_overlay::model::Mac;
use swimnet_overlay::records::PEER_TABLE;
use swimnet_overlay::OverlayError;
use tokio::sync::{broadcast, mpsc};

use super::manager::Manager;
use super::memplane::MemPlane;
use super::sync::Dirty;
use super::tables::Tables;
use super::OverlayConfig;
use crate::agent_events::{AgentEvent, Published};
use crate::commands::{Command, TableCommand, TableError, TableReply};

type Key = (String, String, String);

/// What every fake node sees: the tables, who joined what, who failed.
#[derive(Default)]
struct Store {
    entries: BTreeMap<Key, (String, Vec<u8>)>,
    joined: BTreeMap<String, BTreeSet<String>>,
    failed: BTreeSet<String>,
    events: BTreeMap<String, broadcast::Sender<Arc<Published>>>,
}

type Cluster = Arc<Mutex<Store>>;

fn visible(st: &Store, me: &str, nid: &str, table: &str, with_failed: bool) -> Vec<TableEntry> {
    if !st.joined.get(me).is_some_and(|j| j.contains(nid)) {
        return Vec::new();
    }
    st.entries
        .iter()
        .filter(|((n, t, _), (owner, _))| {
            n == nid && t == table && (with_failed || !st.failed.contains(owner))
        })
        .map(|((_, _, k), (owner, v))| TableEntry {
            key: k.clone(),
            value: v.clone(),
            owner: owner.clone(),
        })
        .collect()
}

fn publish(st: &Store, nid: &str, table: &str, key: &str) {
    for (node, tx) in &st.events {
        if st.joined.get(node).is_some_and(|j| j.contains(nid)) {
            let change = TableChange {
                network_id: nid.into(),
                table: table.into(),
                key: key.into(),
                value: Some(Vec::new()),
                prev: None,
                origin: ChangeOrigin::Remote,
            };
            let _ = tx.send(Arc::new(Published {
                seq: 0,
                unix_ms: 0,
                event: AgentEvent::Table(change),
            }));
        }
    }
}

fn table(st: &mut Store, me: &str, cmd: TableCommand) -> Result<TableReply, TableError> {
    let joined = st.joined.entry(me.to_string()).or_default();
    Ok(match cmd {
        TableCommand::Networks => TableReply::Networks(joined.iter().cloned().collect()),
        TableCommand::JoinNetwork(n) => {
            joined.insert(n);
            TableReply::Done
        }
        TableCommand::LeaveNetwork(n) => {
            joined.remove(&n);
            st.entries
                .retain(|(nid, _, _), (owner, _)| !(nid == &n && owner == me));
            TableReply::Done
        }
        TableCommand::NetworkPeers(n) => TableReply::Peers(
            st.joined
                .iter()
                .filter(|(node, j)| j.contains(&n) && !st.failed.contains(*node))
                .map(|(node, _)| (node.clone(), None))
                .collect(),
        ),
        TableCommand::Put {
            nid,
            table,
            key,
            value,
        } => {
            if !joined.contains(&nid) {
                return Err(TableError::NotAttached(nid));
            }
            st.entries.insert(
                (nid.clone(), table.clone(), key.clone()),
                (me.into(), value),
            );
            publish(st, &nid, &table, &key);
            TableReply::Done
        }
        TableCommand::Delete { nid, table, key } => {
            let k = (nid.clone(), table.clone(), key.clone());
            match st.entries.get(&k) {
                Some((owner, _)) if owner == me => {
                    st.entries.remove(&k);
                    publish(st, &nid, &table, &key);
                    TableReply::Done
                }
                _ => return Err(TableError::NotFound(format!("no entry {key}"))),
            }
        }
        TableCommand::List { nid, table } => {
            TableReply::Entries(visible(st, me, &nid, &table, false))
        }
        TableCommand::ListWithFailed { nid, table } => {
            TableReply::Entries(visible(st, me, &nid, &table, true))
        }
        other => panic!("the manager does not send {other:?}"),
    })
}

/// A fake driver for node `me`: serves table commands and subscriptions.
fn fake_driver(cluster: &Cluster, me: &str) -> mpsc::Sender<Command> {
    let (tx, mut rx) = mpsc::channel::<Command>(64);
    let (events, _) = broadcast::channel(4096);
    cluster
        .lock()
        .unwrap()
        .events
        .insert(me.to_string(), events.clone());
    let cluster = cluster.clone();
    let me = me.to_string();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Table(c, reply) => {
                    let r = table(&mut cluster.lock().unwrap(), &me, c);
                    let _ = reply.send(r);
                }
                Command::Subscribe(reply) => {
                    let _ = reply.send(events.subscribe());
                }
                _ => {}
            }
        }
    });
    tx
}

struct Host {
    m: Arc<Manager<MemPlane>>,
    plane: MemPlane,
}

const SETTLE: Duration = Duration::from_millis(1000);

fn config(node: &str, vtep: Ipv4Addr, etc: PathBuf, data_dir: Option<PathBuf>) -> OverlayConfig {
    OverlayConfig {
        node: node.into(),
        vtep,
        vxlan_port: 4789,
        reconcile: Duration::from_secs(5),
        settle: SETTLE,
        data_dir,
        netns_etc: etc,
        netns_exists: |n| {
            if n.starts_with("missing") {
                Err(OverlayError::NoSuchNetns(n.into()))
            } else {
                Ok(())
            }
        },
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "swimnet-overlay-test-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn host_with(
    cluster: &Cluster,
    node: &str,
    last_octet: u8,
    plane: MemPlane,
    data_dir: Option<PathBuf>,
) -> Host {
    let cmds = fake_driver(cluster, node);
    let vtep = Ipv4Addr::new(192, 0, 2, last_octet);
    let p = plane.clone();
    let m = Arc::new(Manager::new(
        config(node, vtep, tempdir("etc"), data_dir),
        Tables::new(cmds),
        Box::new(move || Ok(p.clone())),
        Box::new(|_, _, _| Ok(Box::new(()))),
    ));
    m.tables.join(DEFS_NETWORK).await.unwrap();
    Host { m, plane }
}

async fn host(cluster: &Cluster, node: &str, last_octet: u8) -> Host {
    host_with(cluster, node, last_octet, MemPlane::default(), None).await
}

async fn pass(h: &Host) {
    h.m.pass(&Dirty {
        all: true,
        ..Dirty::default()
    })
    .await;
}

fn net(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_definition_is_seen_everywhere_idempotent_and_conflicts_are_refused() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    let b = host(&cluster, "b", 2).await;
    let made = a.m.create("blue", net("10.1.0.0/24"), None).await.unwrap();
    assert!(made.created);
    let listed = b.m.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].vni),
        (made.id.as_str(), made.vni)
    );
    let again = b.m.create("blue", net("10.1.0.0/24"), None).await.unwrap();
    assert!(!again.created);
    let err =
        b.m.create("blue", net("10.2.0.0/24"), None)
            .await
            .unwrap_err();
    assert!(matches!(err, OverlayError::Conflict { .. }), "{err}");
    let err =
        b.m.create("red", net("10.3.0.0/24"), Some(made.vni))
            .await
            .unwrap_err();
    assert!(matches!(err, OverlayError::VniInUse { .. }), "{err}");
    // b keeps its own copy: the definition outlives its creator's entries.
    cluster.lock().unwrap().entries.retain(|_, (o, _)| o != "a");
    assert_eq!(b.m.list().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_creations_of_one_name_have_one_winner_and_the_loser_is_told() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    let b = host(&cluster, "b", 2).await;
    let (ra, rb) = tokio::join!(
        a.m.create("green", net("10.4.0.0/24"), None),
        b.m.create("green", net("10.5.0.0/24"), None)
    );
    let ok = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{ra:?} {rb:?}");
    let loser = if ra.is_err() { &ra } else { &rb };
    assert!(
        matches!(loser, Err(OverlayError::Conflict { .. })),
        "{loser:?}"
    );
    let la = a.m.list().await.unwrap();
    let lb = b.m.list().await.unwrap();
    assert_eq!(la, lb);
    let lost = a.m.counters.snapshot().conflicts_lost + b.m.counters.snapshot().conflicts_lost;
    assert_eq!(lost, 1);
}

#[tokio::test(start_paused = true)]
async fn endpoints_on_two_hosts_program_each_other_and_detach_removes_everything() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    let b = host(&cluster, "b", 2).await;
    a.m.create("blue", net("10.1.0.0/24"), Some(4096))
        .await
        .unwrap();
    let ea = a.m.attach("blue", "ns1", None, None).await.unwrap();
    let eb = b.m.attach("blue", "ns2", None, Some("web")).await.unwrap();
    assert_ne!(ea.ip, eb.ip);
    assert_eq!(ea.mtu, Some(1450));
    assert_eq!(ea.ifname.as_deref(), Some("eth0"));
    assert_eq!(eb.name, "web");
    pass(&a).await;
    pass(&b).await;
    let ipb: Ipv4Addr = eb.ip.parse().unwrap();
    let want_a = BTreeSet::from([(ipb, Mac::from_ip(ipb))]);
    assert_eq!(a.plane.k().neighbours[&4096], want_a);
    assert_eq!(
        a.plane.k().fdb[&4096],
        BTreeSet::from([(Mac::from_ip(ipb), Ipv4Addr::new(192, 0, 2, 2))])
    );
    assert_eq!(b.plane.k().neighbours[&4096].len(), 1);
    let all = a.m.endpoints("blue").await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|e| e.host == "b" && e.name == "web"));
    assert_eq!(a.m.list().await.unwrap()[0].hosts, vec!["a", "b"]);
    // The name book holds both.
    a.m.rebuild_book().await;
    let book = a.m.book.borrow().clone();
    assert_eq!(book.overlays.values().next().unwrap().1.len(), 2);

    b.m.detach("blue", "ns2").await.unwrap();
    assert!(b.plane.k().endpoints.is_empty());
    assert!(
        !b.plane.k().overlays.contains(&4096),
        "devices removed with the last endpoint"
    );
    pass(&a).await;
    assert!(a.plane.k().neighbours[&4096].is_empty());
    assert!(a.plane.k().fdb[&4096].is_empty());
    let err = b.m.detach("blue", "ns2").await.unwrap_err();
    assert!(matches!(err, OverlayError::NoSuchEndpoint { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_full_subnet_and_a_missing_namespace_leave_nothing_behind() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    a.m.create("tiny", net("10.9.0.0/30"), None).await.unwrap();
    let err =
        a.m.attach("tiny", "missing-ns", None, None)
            .await
            .unwrap_err();
    assert_eq!(err, OverlayError::NoSuchNetns("missing-ns".into()));
    a.m.attach("tiny", "n1", None, None).await.unwrap();
    a.m.attach("tiny", "n2", None, None).await.unwrap();
    let before = cluster.lock().unwrap().entries.len();
    let err = a.m.attach("tiny", "n3", None, None).await.unwrap_err();
    assert!(matches!(err, OverlayError::SubnetFull(..)), "{err}");
    assert_eq!(cluster.lock().unwrap().entries.len(), before);
    assert_eq!(a.plane.k().endpoints.len(), 2);
    // An injected kernel failure is undone too, network membership included.
    let b = host(&cluster, "b", 2).await;
    b.m.create("other", net("10.8.0.0/24"), None).await.unwrap();
    b.plane.k().fail_attach = true;
    let err = b.m.attach("other", "n9", None, None).await.unwrap_err();
    assert!(matches!(err, OverlayError::Kernel { .. }), "{err}");
    let st = cluster.lock().unwrap();
    assert!(
        st.entries
            .iter()
            .all(|((n, _, _), (owner, _))| owner != "b" || n == DEFS_NETWORK),
        "no claim or record left"
    );
    assert_eq!(
        st.joined["b"],
        BTreeSet::from([DEFS_NETWORK.to_string()]),
        "left the overlay's network"
    );
    drop(st);
    assert!(b.plane.k().overlays.is_empty());
    assert!(b.plane.k().endpoints.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_requested_address_held_elsewhere_is_refused_and_concurrent_requests_have_one_winner() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    let b = host(&cluster, "b", 2).await;
    a.m.create("blue", net("10.1.0.0/24"), None).await.unwrap();
    let want: Ipv4Addr = "10.1.0.50".parse().unwrap();
    let (ra, rb) = tokio::join!(
        a.m.attach("blue", "n1", Some(want), None),
        b.m.attach("blue", "n2", Some(want), None)
    );
    assert_eq!(
        [&ra, &rb].iter().filter(|r| r.is_ok()).count(),
        1,
        "{ra:?} {rb:?}"
    );
    let lost = if ra.is_err() { ra } else { rb };
    assert!(
        matches!(lost, Err(OverlayError::AddressTaken { .. })),
        "{lost:?}"
    );
    let err =
        a.m.attach("blue", "n3", Some(want), None)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("held by"), "{err}");
    let err =
        a.m.attach("blue", "n3", Some("10.1.0.255".parse().unwrap()), None)
            .await
            .unwrap_err();
    assert!(
        err.to_string().contains("not a usable host address"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_entry_removed_behind_the_agents_back_is_put_back_and_counted() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    let b = host(&cluster, "b", 2).await;
    a.m.create("blue", net("10.1.0.0/24"), Some(300))
        .await
        .unwrap();
    a.m.attach("blue", "n1", None, None).await.unwrap();
    b.m.attach("blue", "n2", None, None).await.unwrap();
    pass(&a).await;
    let adds = a.plane.k().adds;
    pass(&a).await;
    assert_eq!(a.plane.k().adds, adds, "nothing programmed twice");
    a.plane.k().neighbours.get_mut(&300).unwrap().clear();
    pass(&a).await;
    assert_eq!(a.plane.k().neighbours[&300].len(), 1);
    assert_eq!(a.m.counters.snapshot().repairs, 1);
    // b fails: its entries are hidden, so a removes them; it returns: back.
    cluster.lock().unwrap().failed.insert("b".into());
    pass(&a).await;
    assert!(a.plane.k().neighbours[&300].is_empty());
    cluster.lock().unwrap().failed.clear();
    pass(&a).await;
    assert_eq!(a.plane.k().neighbours[&300].len(), 1);
    assert_eq!(
        a.m.counters.snapshot().repairs,
        1,
        "a return is not a repair"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_republishes_its_endpoints_and_drops_stale_entries() {
    let cluster = Cluster::default();
    let data = tempdir("data");
    let plane = MemPlane::default();
    let a = host_with(&cluster, "a", 1, plane.clone(), Some(data.clone())).await;
    let b = host(&cluster, "b", 2).await;
    a.m.create("blue", net("10.1.0.0/24"), Some(500))
        .await
        .unwrap();
    let ea = a.m.attach("blue", "n1", None, None).await.unwrap();
    b.m.attach("blue", "n2", None, None).await.unwrap();
    pass(&a).await;
    // A stale entry of an endpoint that is gone, left in the kernel.
    let stale: Ipv4Addr = "10.1.0.99".parse().unwrap();
    plane
        .k()
        .neighbours
        .get_mut(&500)
        .unwrap()
        .insert((stale, Mac::from_ip(stale)));
    // a dies (its entries go with it) and a new agent starts on the same kernel.
    {
        let mut st = cluster.lock().unwrap();
        st.entries
            .retain(|(n, _, _), (o, _)| o != "a" || n == DEFS_NETWORK);
        st.joined.remove("a");
    }
    drop(a);
    let a2 = host_with(&cluster, "a", 1, plane.clone(), Some(data)).await;
    a2.m.recover().await;
    pass(&a2).await;
    let eps = b.m.endpoints("blue").await.unwrap();
    let mine: Vec<_> = eps.iter().filter(|e| e.host == "a").collect();
    assert_eq!(mine.len(), 1, "re-published once: {eps:?}");
    assert_eq!(
        (mine[0].id.as_str(), mine[0].ip.as_str()),
        (ea.id.as_str(), ea.ip.as_str())
    );
    let neigh = &plane.k().neighbours[&500];
    assert_eq!(neigh.len(), 1, "stale entry removed: {neigh:?}");
    assert!(!neigh.iter().any(|(ip, _)| *ip == stale));
    let claims = cluster
        .lock()
        .unwrap()
        .entries
        .keys()
        .filter(|(_, t, _)| t == IPAM_TABLE)
        .count();
    assert_eq!(claims, 2);
}

#[tokio::test(start_paused = true)]
async fn delete_is_refused_while_endpoints_are_attached() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    let b = host(&cluster, "b", 2).await;
    a.m.create("blue", net("10.1.0.0/24"), None).await.unwrap();
    b.m.attach("blue", "n2", None, None).await.unwrap();
    let err = a.m.delete("blue").await.unwrap_err();
    assert!(matches!(err, OverlayError::InUse(_, 1)), "{err}");
    b.m.detach("blue", "n2").await.unwrap();
    a.m.delete("blue").await.unwrap();
    assert!(b.m.list().await.unwrap().is_empty());
    let err = b.m.attach("blue", "n2", None, None).await.unwrap_err();
    assert_eq!(err, OverlayError::NoSuchOverlay("blue".into()));
    assert!(cluster
        .lock()
        .unwrap()
        .entries
        .keys()
        .all(|(n, t, _)| n == DEFS_NETWORK || t != PEER_TABLE));
}

#[tokio::test(start_paused = true)]
async fn an_agent_without_networkdb_answers_one_clear_error() {
    let (tx, mut rx) = mpsc::channel::<Command>(4);
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if let Command::Table(_, reply) = cmd {
                let _ = reply.send(Err(TableError::NotNetworkDb));
            }
        }
    });
    let m: Manager<MemPlane> = Manager::new(
        config("x", Ipv4Addr::new(192, 0, 2, 9), tempdir("etc"), None),
        Tables::new(tx),
        Box::new(|| Ok(MemPlane::default())),
        Box::new(|_, _, _| Ok(Box::new(()))),
    );
    let err = m
        .create("blue", net("10.1.0.0/24"), None)
        .await
        .unwrap_err();
    assert_eq!(err, OverlayError::NotNetworkDb);
}

#[tokio::test(start_paused = true)]
async fn the_definitions_network_is_joined_at_the_first_overlay_operation() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    a.m.create("blue", net("10.1.0.0/24"), None).await.unwrap();
    let m: Manager<MemPlane> = Manager::new(
        config("b", Ipv4Addr::new(192, 0, 2, 2), tempdir("etc"), None),
        Tables::new(fake_driver(&cluster, "b")),
        Box::new(|| Ok(MemPlane::default())),
        Box::new(|_, _, _| Ok(Box::new(()))),
    );
    let in_defs = || {
        cluster
            .lock()
            .unwrap()
            .joined
            .get("b")
            .is_some_and(|j| j.contains(DEFS_NETWORK))
    };
    m.pass(&Dirty {
        all: true,
        ..Dirty::default()
    })
    .await;
    assert!(!in_defs(), "an agent that uses no overlay stays out");
    assert_eq!(m.list().await.unwrap().len(), 1);
    assert!(in_defs());
}

#[tokio::test(start_paused = true)]
async fn an_agent_without_an_ipv4_vtep_refuses_attach_with_the_fix() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    a.m.create("blue", net("10.1.0.0/24"), None).await.unwrap();
    let m: Manager<MemPlane> = Manager::new(
        config("b", Ipv4Addr::UNSPECIFIED, tempdir("etc"), None),
        Tables::new(fake_driver(&cluster, "b")),
        Box::new(|| Ok(MemPlane::default())),
        Box::new(|_, _, _| Ok(Box::new(()))),
    );
    let err = m.attach("blue", "n1", None, None).await.unwrap_err();
    assert!(err.to_string().contains("--vtep-addr"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_attaches_runs_concurrently_with_distinct_addresses() {
    let cluster = Cluster::default();
    let a = host(&cluster, "a", 1).await;
    a.m.create("blue", net("10.1.0.0/24"), None).await.unwrap();
    let start = tokio::time::Instant::now();
    let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    let views =
        futures_util::future::join_all(names.iter().map(|n| a.m.attach("blue", n, None, None)))
            .await;
    let took = start.elapsed();
    let ips: BTreeSet<String> = views.into_iter().map(|v| v.unwrap().ip).collect();
    assert_eq!(ips.len(), 8, "{ips:?}");
    assert!(
        took < SETTLE * 3,
        "8 attaches took {took:?}: not concurrent"
    );
    // One namespace at a time: a second attach there while one is under
    // way is refused.
    let (r1, r2) = tokio::join!(
        a.m.attach("blue", "same", None, None),
        a.m.attach("blue", "same", None, Some("other"))
    );
    assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");
    // Detaching them all leaves no device and no membership behind.
    let all: Vec<&str> = names.iter().map(String::as_str).chain(["same"]).collect();
    for r in futures_util::future::join_all(all.iter().map(|n| a.m.detach("blue", n))).await {
        r.unwrap();
    }
    assert!(a.plane.k().overlays.is_empty());
    assert!(a.plane.k().endpoints.is_empty());
}
