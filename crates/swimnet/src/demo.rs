//! `swimnet demo`: a local cluster of real agents on loopback sockets, in
//! one process. Members converge, one agent is killed without a word, the
//! others detect it, and the rest leave gracefully.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use swimnet_core::NodeState;
use tokio::sync::{mpsc, oneshot};

use crate::agent::{self, AgentOptions, Profile, Protocol, RunningAgent};
use crate::driver::Command;

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
    if !(3..=50).contains(&n) {
        return Err("use between 3 and 50 nodes".into());
    }
    let base_port = free_port()?;
    let addr = |i: usize| {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 101 + i as u8)),
            base_port,
        )
    };
    println!(
        "swimnet demo: {n} agents on loopback (UDP+TCP {}..{}), memberlist's local profile",
        addr(0),
        addr(n - 1)
    );
    let mut agents: Vec<Option<RunningAgent>> = Vec::new();
    let t0 = Instant::now();
    for i in 0..n {
        let opts = AgentOptions {
            node: format!("demo-{i}"),
            bind: addr(i),
            advertise: None,
            join: if i == 0 { Vec::new() } else { vec![addr(0)] },
            keys: None,
            tags: [(
                "role".to_string(),
                if i == 0 { "seed" } else { "worker" }.to_string(),
            )]
            .into(),
            profile: Profile::Local,
            api: None,
            protocol: Protocol::Serf,
        };
        agents.push(Some(agent::start(opts).await.map_err(|e| e.to_string())?));
    }
    println!("started {n} agents; each joins demo-0 ...");

    // Convergence: every agent sees every other alive.
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
            break;
        }
        if Instant::now() > deadline {
            return Err("the demo cluster did not converge in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Crash one agent: its sockets close, it says nothing.
    let victim = n / 2;
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
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{name} was not declared failed within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The rest leave gracefully.
    let mut remaining: Vec<RunningAgent> = agents.into_iter().flatten().collect();
    let last = remaining.pop().expect("agents left");
    last.shutdown.notify_waiters();
    let _ = last.done.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = members(&remaining[0].commands).await;
    let left = view
        .iter()
        .find(|m| m.name.ends_with(&format!("-{}", n - 1)))
        .map(|m| m.state);
    println!(
        "demo-{} left gracefully; demo-0 now shows it as {:?}",
        n - 1,
        left.map(status).unwrap_or("gone")
    );
    for a in remaining {
        a.shutdown.notify_waiters();
        let _ = a.done.await;
    }
    println!("all agents stopped; demo finished in {:.2?}", t0.elapsed());
    Ok(())
}

/// A port free on 127.0.0.101 for UDP and TCP (the demo uses the same port on each address).
fn free_port() -> Result<u16, String> {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind("127.0.0.101:0").map_err(|e| e.to_string())?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        drop(l);
        if std::net::UdpSocket::bind(("127.0.0.101", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port on 127.0.0.101".into())
}
