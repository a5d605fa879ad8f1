//! The agent on real loopback sockets: convergence, encryption, hostile
//! peers, and the CLI's errors. Addresses are 127.0.77.x only.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command as Proc;
use std::time::{Duration, Instant};

use swimnet::agent::{self, AgentOptions, KeySource, Profile, Protocol, RunningAgent};
use swimnet::driver::Command;
use swimnet_core::NodeState;
use tokio::sync::oneshot;

fn opts(i: u8, join: Option<SocketAddr>, key: Option<&str>) -> AgentOptions {
    AgentOptions {
        node: format!("agent-{i}"),
        bind: format!("127.0.77.{i}:0").parse().unwrap(),
        advertise: None,
        join: join.into_iter().map(|a| a.to_string()).collect(),
        retry_join: Default::default(),
        keys: key.map(|k| KeySource::Key(k.to_string())),
        tags: BTreeMap::from([("n".to_string(), i.to_string())]),
        profile: Profile::Local,
        api: None,
        protocol: Protocol::Serf,
        topology_aware: false,
        http: Default::default(),
        data_dir: None,
        events: Default::default(),
        overlay: Default::default(),
    }
}

async fn alive_count(a: &RunningAgent) -> usize {
    let (tx, rx) = oneshot::channel();
    a.commands.send(Command::Members(tx)).await.unwrap();
    rx.await
        .unwrap()
        .iter()
        .filter(|m| m.state == NodeState::Alive)
        .count()
}

async fn wait_alive(agents: &[&RunningAgent], n: usize, limit: Duration) {
    let end = Instant::now() + limit;
    loop {
        let mut ok = true;
        for a in agents {
            ok &= alive_count(a).await == n;
        }
        if ok {
            return;
        }
        assert!(
            Instant::now() < end,
            "agents did not converge to {n} alive within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stats(a: &RunningAgent) -> swimnet::driver::StatusView {
    let (tx, rx) = oneshot::channel();
    a.commands.send(Command::Stats(tx)).await.unwrap();
    rx.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_agents_converge_and_survive_hostile_peers() {
    let key = swimnet::keyfile::generate_key();
    let a = agent::start(opts(1, None, Some(&key))).await.unwrap();
    let b = agent::start(opts(2, Some(a.gossip_addr), Some(&key)))
        .await
        .unwrap();
    let c = agent::start(opts(3, Some(a.gossip_addr), Some(&key)))
        .await
        .unwrap();
    wait_alive(&[&a, &b, &c], 3, Duration::from_secs(10)).await;

    let target = a.gossip_addr;
    let before = stats(&a).await;
    // Garbage, truncated and oversized datagrams.
    let sock = UdpSocket::bind("127.0.77.9:0").unwrap();
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..(i % 97) as u8)
            .map(|x| x.wrapping_mul(31).wrapping_add(i as u8))
            .collect();
        let _ = sock.send_to(&junk, target);
    }
    let _ = sock.send_to(&vec![0x07u8; 65_000], target);
    let _ = sock.send_to(&[0x0c, 0, 0], target);
    // A TCP peer that connects and says nothing, one that sends endless bytes,
    // and one that sends a huge encrypted-frame length.
    let idle = TcpStream::connect(target).unwrap();
    let flood = std::thread::spawn(move || {
        let mut s = TcpStream::connect(target).unwrap();
        let chunk = vec![0x5au8; 1 << 20];
        let start = Instant::now();
        let mut sent = 0usize;
        while start.elapsed() < Duration::from_secs(5) && sent < (40 << 20) {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let mut big = TcpStream::connect(target).unwrap();
    let _ = big.write_all(&[0x0a, 0xff, 0xff, 0xff, 0xff]);
    let sent = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    assert!(
        sent < (40 << 20),
        "the agent stopped reading an endless stream (read {sent} bytes)"
    );
    // The datagrams may still be queued in the socket: wait (bounded) until
    // the agent has counted them.
    let end = Instant::now() + Duration::from_secs(5);
    let mut after = stats(&a).await;
    while after.stats.packets_dropped < before.stats.packets_dropped + 200 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = stats(&a).await;
    }
    assert!(
        after.stats.packets_dropped >= before.stats.packets_dropped + 200,
        "garbage datagrams were counted: {} -> {}",
        before.stats.packets_dropped,
        after.stats.packets_dropped
    );
    assert!(
        after.stats.streams_failed + after.driver.stream_errors
            > before.stats.streams_failed + before.driver.stream_errors
    );
    drop(idle);
    // Still a healthy cluster.
    wait_alive(&[&a, &b, &c], 3, Duration::from_secs(5)).await;

    // A plaintext node cannot join the encrypted cluster.
    let refused = |v: &swimnet::driver::StatusView| {
        v.stats.packets_dropped + v.stats.streams_failed + v.driver.stream_errors
    };
    let dropped = refused(&stats(&a).await);
    let plain = agent::start(opts(4, Some(a.gossip_addr), None))
        .await
        .unwrap();
    // Wait until the encrypted node has seen (and refused) the plaintext
    // node's join, then check that nobody let it in.
    let end = Instant::now() + Duration::from_secs(10);
    while refused(&stats(&a).await) == dropped {
        assert!(
            Instant::now() < end,
            "the plaintext node's packets never reached the encrypted node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(alive_count(&plain).await, 1);
    assert_eq!(alive_count(&a).await, 3);

    // Graceful leave: the others see `left`.
    c.shutdown.notify_waiters();
    c.done.await.unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let (tx, rx) = oneshot::channel();
        a.commands.send(Command::Members(tx)).await.unwrap();
        let m = rx.await.unwrap();
        if m.iter()
            .any(|m| &*m.name == "agent-3" && m.state == NodeState::Left)
        {
            break;
        }
        assert!(Instant::now() < end, "agent-3 never showed as left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for x in [a, b, plain] {
        x.done.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_agent_is_marked_failed() {
    let a = agent::start(opts(11, None, None)).await.unwrap();
    let b = agent::start(opts(12, Some(a.gossip_addr), None))
        .await
        .unwrap();
    let c = agent::start(opts(13, Some(a.gossip_addr), None))
        .await
        .unwrap();
    wait_alive(&[&a, &b, &c], 3, Duration::from_secs(10)).await;
    c.done.abort();
    let t = Instant::now();
    // Local profile, 3 nodes: probe 1 s, suspicion 3 s, plus the final probe (~1-2 s).
    let end = t + Duration::from_secs(15);
    loop {
        let (tx, rx) = oneshot::channel();
        a.commands.send(Command::Members(tx)).await.unwrap();
        let m = rx.await.unwrap();
        if m.iter()
            .any(|m| &*m.name == "agent-13" && m.state == NodeState::Dead)
        {
            break;
        }
        assert!(Instant::now() < end, "agent-13 not marked failed in 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.done.abort();
    b.done.abort();
}

fn swimnet() -> Proc {
    Proc::new(env!("CARGO_BIN_EXE_swimnet"))
}

fn one_line_error(out: std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err
}

#[test]
fn cli_errors_are_one_clear_line() {
    let err = one_line_error(
        swimnet()
            .args([
                "agent",
                "--node",
                "x",
                "--bind",
                "127.0.77.20:0",
                "--api",
                "127.0.77.20:0",
                "--encrypt",
                "c2hvcnQ=",
            ])
            .output()
            .unwrap(),
    );
    assert!(err.contains("16, 24 or 32 bytes"), "{err}");

    let err = one_line_error(
        swimnet()
            .args(["members", "--api", "127.0.77.21:1"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("no agent at 127.0.77.21:1: connection refused"),
        "{err}"
    );

    let busy = UdpSocket::bind("127.0.77.22:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let err = one_line_error(
        swimnet()
            .args(["agent", "--node", "x", "--api", "127.0.77.22:0"])
            .arg("--bind")
            .arg(format!("127.0.77.22:{port}"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("already in use"), "{err}");

    let long = "v".repeat(600);
    let err = one_line_error(
        swimnet()
            .args([
                "agent",
                "--node",
                "x",
                "--bind",
                "127.0.77.23:0",
                "--api",
                "127.0.77.23:0",
                "--protocol",
                "serf",
            ])
            .arg("--tag")
            .arg(format!("big={long}"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("512-byte"), "{err}");

    let out = swimnet().arg("keygen").output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(swimnet::keyfile::parse_key(key.trim()).is_ok());
}

#[test]
fn cli_drives_an_agent_and_keeps_the_keyring_file() {
    let dir = std::env::temp_dir().join(format!("swimnet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keyring.json");
    let k1 = swimnet::keyfile::generate_key();
    let k2 = swimnet::keyfile::generate_key();
    std::fs::write(&file, format!("[\"{k1}\"]")).unwrap();
    // Key files open to group or others are refused, as ssh refuses keys.
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let api = "127.0.77.30:17380";
    let child = swimnet()
        .args([
            "agent",
            "--node",
            "cli",
            "--bind",
            "127.0.77.30:0",
            "--api",
            api,
            "--profile",
            "local",
        ])
        .arg("--keyring-file")
        .arg(&file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    /// Kills the agent if the test fails before it exits by itself.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let end = Instant::now() + Duration::from_secs(10);
    while swimnet()
        .args(["members", "--api", api])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < end, "agent API did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = |args: &[&str]| swimnet().args(args).args(["--api", api]).output().unwrap();
    let out = run(&["members", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["members"][0]["name"], "cli");
    assert_eq!(v["members"][0]["status"], "alive");
    assert!(run(&["keys", "install", "--local", &k2]).status.success());
    assert!(run(&["keys", "use", "--local", &k2]).status.success());
    let err = one_line_error(run(&["keys", "remove", "--local", &k2]));
    assert!(err.contains("primary"), "{err}");
    assert!(run(&["keys", "remove", "--local", &k1]).status.success());
    let saved: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        saved,
        vec![k2.clone()],
        "the keyring file follows runtime changes"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Coordinates: alone, the agent knows only its own (at the origin), and
    // the estimate to itself is twice the minimum height.
    let out = run(&["coordinates", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node"], "cli");
    assert_eq!(v["coordinates"][0]["node"], "cli");
    assert_eq!(v["coordinates"][0]["coord"]["error"], 1.5);
    let out = run(&["rtt", "cli"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Estimated cli <-> cli rtt: 0.020 ms"
    );
    let err = one_line_error(run(&["rtt", "ghost"]));
    assert!(err.contains("unknown node \"ghost\""), "{err}");
    assert!(run(&["leave"]).status.success());
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "agent did not exit after leave");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the agent exits 0 after a graceful leave");
    std::fs::remove_dir_all(&dir).unwrap();
}
