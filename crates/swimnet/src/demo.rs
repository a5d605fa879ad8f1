//! `swimnet demo`: a local cluster of real agents on loopback sockets, in
//! one process. Members converge; every agent runs NetworkDB, attaches to a
//! network and writes an entry, and the table (writes, then a delete)
//! converges on every agent; then one agent is killed without a word, the
//! others detect it, and one leaves gracefully.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use swimnet_core::NodeState;
use tokio::sync::{mpsc, oneshot};

use crate::agent::{self, AgentOptions, Profile, Protocol, RunningAgent};
use crate::driver::{Command, TableCommand, TableReply};

/// The demo's network and table.
const NET: &str = "demo-net";
const TABLE: &str = "endpoints";

async fn table(tx: &mpsc::Sender<Command>, cmd: TableCommand) -> Result<TableReply, String> {
    let (rtx, rrx) = oneshot::channel();
    tx.send(Command::Table(cmd, rtx))
        .await
        .map_err(|_| "an agent stopped".to_string())?;
    rrx.await
        .map_err(|_| "an agent stopped".to_string())?
        .map_err(|e| e.to_string())
}

/// What the demo's table phase saw (for tests and the summary).
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// The agents that attached to the network and wrote an entry.
    pub writers: Vec<String>,
    /// Entries of the demo table each agent (in `writers` order) held once
    /// the writes converged.
    pub entries_seen: Vec<usize>,
    /// Entries each held once the delete converged.
    pub entries_after_delete: Vec<usize>,
}

/// Entries of the demo table each agent holds.
async fn entry_counts(agents: &[(String, &RunningAgent)]) -> Result<Vec<usize>, String> {
    let mut counts = Vec::new();
    for (_, a) in agents {
        let list = TableCommand::List {
            nid: NET.into(),
            table: TABLE.into(),
        };
        counts.push(match table(&a.commands, list).await? {
            TableReply::Entries(es) => es.len(),
            _ => 0,
        });
    }
    Ok(counts)
}

/// Polls every 100 ms until each agent holds `want` entries, printing the
/// counts; answers the time it took.
async fn wait_entries(
    agents: &[(String, &RunningAgent)],
    want: usize,
    since: Instant,
) -> Result<(Duration, Vec<usize>), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counts = entry_counts(agents).await?;
        println!(
            "  {:>8.2?}  entries in {NET}/{TABLE} held by each agent: {counts:?}",
            since.elapsed()
        );
        if counts.iter().all(|&c| c == want) {
            return Ok((since.elapsed(), counts));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the table did not converge to {want} entries in 20 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn members(tx: &mpsc::Sender<Command>) -> Vec<swimnet_core::Node> {
    let (rtx, rrx) = oneshot::channel();
    if tx.send(Command::Members(rtx)).await.is_err() {
        return Vec::new();
    }
    rrx.await.unwrap_or_default()
}

fn status(state: NodeState) -> &'static str {
    state.as_str()
}

/// Runs the demo with `n` agents (at least 3). Uses loopback addresses
/// 127.0.0.101 and up, on a port picked free at start.
pub async fn run(n: usize) -> Result<(), String> {
    run_on(n, Ipv4Addr::new(127, 0, 0, 101)).await.map(drop)
}

/// [`run`] with the agents on `first` and the addresses after it (all in
/// one /24); answers what the table phase saw.
pub async fn run_on(n: usize, first: Ipv4Addr) -> Result<DemoReport, String> {
    if !(3..=50).contains(&n) {
        return Err("use between 3 and 50 nodes".into());
    }
    if !first.is_loopback() || first.octets()[3] as usize + n > 255 {
        return Err(format!(
            "{first} and the {n} addresses after it must be loopback ones in one /24"
        ));
    }
    let base_port = free_port(first)?;
    let addr = |i: usize| {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(u32::from(first) + i as u32)),
            base_port,
        )
    };
    println!(
        "swimnet demo: {n} agents on loopback (UDP+TCP {}..{}), memberlist's local profile, NetworkDB",
        addr(0),
        addr(n - 1)
    );
    let t0 = Instant::now();
    let mut agents = start_agents(n, addr).await?;
    println!("started {n} agents; each joins demo-0 ...");
    wait_converged(&agents, t0).await?;
    let named: Vec<(String, &RunningAgent)> = agents
        .iter()
        .enumerate()
        .filter_map(|(i, a)| Some((format!("demo-{i}"), a.as_ref()?)))
        .collect();
    let report = tables(&named).await?;
    crash_one(&mut agents, t0).await?;
    let remaining = leave_one(agents).await;
    for (_, a) in remaining {
        a.shutdown.notify_waiters();
        let _ = a.done.await;
    }
    println!("all agents stopped; demo finished in {:.2?}", t0.elapsed());
    Ok(report)
}

/// Starts `n` NetworkDB agents on `addr(0)..addr(n-1)`, each joining the
/// first.
async fn start_agents(
    n: usize,
    addr: impl Fn(usize) -> SocketAddr,
) -> Result<Vec<Option<RunningAgent>>, String> {
    let mut agents = Vec::new();
    for i in 0..n {
        let opts = AgentOptions {
            node: format!("demo-{i}"),
            bind: addr(i),
            advertise: None,
            join: if i == 0 {
                Vec::new()
            } else {
                vec![addr(0).to_string()]
            },
            retry_join: Default::default(),
            keys: None,
            // NetworkDB nodes carry no metadata, hence no tags.
            tags: Default::default(),
            profile: Profile::Local,
            api: None,
            protocol: Protocol::NetworkDb,
            topology_aware: true,
            http: Default::default(),
            data_dir: None,
            events: Default::default(),
            overlay: Default::default(),
        };
        agents.push(Some(agent::start(opts).await.map_err(|e| e.to_string())?));
    }
    Ok(agents)
}

/// Convergence: polls every 200 ms until every agent sees every other alive
/// (30 s at most), printing the counts.
async fn wait_converged(agents: &[Option<RunningAgent>], t0: Instant) -> Result<(), String> {
    let n = agents.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut counts = Vec::new();
        for a in agents.iter().flatten() {
            let m = members(&a.commands).await;
            counts.push(m.iter().filter(|m| m.state == NodeState::Alive).count());
        }
        println!(
            "  {:>8.2?}  alive members seen by each agent: {counts:?}",
            t0.elapsed()
        );
        if counts.iter().all(|&c| c == n) {
            println!(
                "converged: all {n} agents see {n} alive members after {:.2?}",
                t0.elapsed()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the demo cluster did not converge in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Crashes the middle agent (its sockets close, it says nothing) and polls
/// every 250 ms until every other agent marks it failed (60 s at most).
async fn crash_one(agents: &mut [Option<RunningAgent>], t0: Instant) -> Result<(), String> {
    let victim = agents.len() / 2;
    let name = format!("demo-{victim}");
    let dead = agents[victim].take().expect("running");
    dead.done.abort();
    let _ = dead.done.await;
    let crash = Instant::now();
    println!(
        "killed {name} (no leave) at {:.2?}; waiting for the others to notice ...",
        t0.elapsed()
    );
    let mut first_suspect: Option<Duration> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut views = Vec::new();
        for a in agents.iter().flatten() {
            let m = members(&a.commands).await;
            let v = m
                .iter()
                .find(|m| *m.name == *name)
                .map(|m| m.state)
                .unwrap_or(NodeState::Dead);
            views.push(v);
        }
        if first_suspect.is_none() && views.iter().any(|v| *v != NodeState::Alive) {
            first_suspect = Some(crash.elapsed());
        }
        let shown: Vec<&str> = views.iter().map(|v| status(*v)).collect();
        println!(
            "  {:>8.2?}  {name} as seen by the others: {shown:?}",
            crash.elapsed()
        );
        if views.iter().all(|v| *v == NodeState::Dead) {
            println!(
                "detected: first suspicion after {:.2?}, every agent marked {name} failed after {:.2?}",
                first_suspect.unwrap_or_default(),
                crash.elapsed()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{name} was not declared failed within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The last agent leaves gracefully; answers the agents still running,
/// with their names.
async fn leave_one(agents: Vec<Option<RunningAgent>>) -> Vec<(String, RunningAgent)> {
    let n = agents.len();
    let mut remaining: Vec<(String, RunningAgent)> = agents
        .into_iter()
        .enumerate()
        .filter_map(|(i, a)| a.map(|a| (format!("demo-{i}"), a)))
        .collect();
    let (_, last) = remaining.pop().expect("agents left");
    last.shutdown.notify_waiters();
    let _ = last.done.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = members(&remaining[0].1.commands).await;
    let left = view
        .iter()
        .find(|m| m.name.ends_with(&format!("-{}", n - 1)))
        .map(|m| m.state);
    println!(
        "demo-{} left gracefully; demo-0 now shows it as {:?}",
        n - 1,
        left.map(status).unwrap_or("gone")
    );
    remaining
}

/// The table part: every agent attaches to [`NET`], writes one entry (its
/// name, its address), and the table converges everywhere; then one entry
/// is deleted and the delete converges.
async fn tables(agents: &[(String, &RunningAgent)]) -> Result<DemoReport, String> {
    let k = agents.len();
    let t = Instant::now();
    for (_, a) in agents {
        table(&a.commands, TableCommand::JoinNetwork(NET.into())).await?;
    }
    println!("network tables: all {k} agents join network {NET} ...");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut peers = Vec::new();
        for (_, a) in agents {
            peers.push(
                match table(&a.commands, TableCommand::NetworkPeers(NET.into())).await? {
                    TableReply::Peers(p) => p.len(),
                    _ => 0,
                },
            );
        }
        if peers.iter().all(|&p| p == k) {
            println!(
                "attached: every agent sees {k} peers on {NET} after {:.2?}",
                t.elapsed()
            );
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{NET} membership did not converge in 20 s: {peers:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let t = Instant::now();
    for (name, a) in agents {
        let put = TableCommand::Put {
            nid: NET.into(),
            table: TABLE.into(),
            key: name.clone(),
            value: a.gossip_addr.to_string().into_bytes(),
        };
        table(&a.commands, put).await?;
    }
    println!("each agent writes {NET}/{TABLE}[its name] = its address ...");
    let (took, entries_seen) = wait_entries(agents, k, t).await?;
    println!("replicated: all {k} agents hold all {k} entries after {took:.2?}");

    let (name, owner) = &agents[0];
    let t = Instant::now();
    let del = TableCommand::Delete {
        nid: NET.into(),
        table: TABLE.into(),
        key: name.clone(),
    };
    table(&owner.commands, del).await?;
    println!("{name} deletes its entry ...");
    let (took, entries_after_delete) = wait_entries(agents, k - 1, t).await?;
    println!(
        "deleted: every agent holds {} entries after {took:.2?}",
        k - 1
    );
    Ok(DemoReport {
        writers: agents.iter().map(|(name, _)| name.clone()).collect(),
        entries_seen,
        entries_after_delete,
    })
}

/// A port free on `ip` for UDP and TCP (the demo uses the same port on each address).
fn free_port(ip: Ipv4Addr) -> Result<u16, String> {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind((ip, 0)).map_err(|e| e.to_string())?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        drop(l);
        if std::net::UdpSocket::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!("no free port on {ip}"))
}
