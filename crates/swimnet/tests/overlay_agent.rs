//! Overlay networks through live agents, as root, in network namespaces
//! this test creates (prefix `swa-`): an underlay bridge in `swa-u`, two
//! hosts `swa-h1`/`swa-h2` (10.202.0.1 and .2) each running an agent bound
//! to its underlay address with its API on the namespace's own 127.0.0.1,
//! and endpoint namespaces `swa-e1`.. attached through the CLI.
//!
//! Shown: a definition made on h1 is listed on h2; endpoints on both hosts
//! ping each other across the VXLAN; a neighbour entry deleted by hand
//! comes back within one reconcile interval; the one-line errors (missing
//! namespace, full subnet, VNI in use, conflicting definition, not
//! NetworkDB); `kill -9` and restart of h2's agent re-publishes its
//! endpoint once, with no duplicate kernel entries; detach removes the
//! entries on the other host. Every namespace is deleted and every agent
//! killed (by PID) at the end, also on failure.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run_cmd, CmdOut, Env, Proc};

const PREFIX: &str = "swa-";
const UNDERLAY: &str = "10.202.0";
const RECONCILE_SECS: u64 = 1;

fn ip(args: &[&str]) -> CmdOut {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_cmd(Path::new("ip"), &args, Duration::from_secs(10))
}

fn must(out: CmdOut) -> CmdOut {
    assert!(out.ok(), "{}", out.describe());
    out
}

/// The namespaces of this test; deleted on drop (also after a panic).
struct Topology {
    names: Vec<String>,
}

impl Topology {
    fn new() -> Topology {
        remove_stale();
        let mut t = Topology { names: Vec::new() };
        t.add("u");
        must(ip(&[
            "-n", "swa-u", "link", "add", "swa-br", "type", "bridge",
        ]));
        must(ip(&["-n", "swa-u", "link", "set", "swa-br", "up"]));
        for h in 1..=2 {
            let ns = t.add(&format!("h{h}"));
            let port = format!("swa-p{h}");
            must(ip(&[
                "-n", "swa-u", "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]));
            must(ip(&[
                "-n", "swa-u", "link", "set", &port, "master", "swa-br", "up",
            ]));
            must(ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{UNDERLAY}.{h}/24"),
                "dev",
                "eth0",
            ]));
            must(ip(&["-n", &ns, "link", "set", "eth0", "up"]));
        }
        for e in 1..=3 {
            t.add(&format!("e{e}"));
        }
        t
    }

    fn add(&mut self, suffix: &str) -> String {
        let ns = format!("{PREFIX}{suffix}");
        must(ip(&["netns", "add", &ns]));
        must(ip(&["-n", &ns, "link", "set", "lo", "up"]));
        self.names.push(ns.clone());
        ns
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.names.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
    }
}

/// Namespaces and agents left by an earlier run of this test that was
/// killed: only ours (the `swa-` prefix, our underlay in the command line).
fn remove_stale() {
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("swimnet agent") && cmd.contains(&format!("{UNDERLAY}.")) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
    let listed = ip(&["netns", "list"]).stdout;
    for line in listed.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(PREFIX) {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

struct Host {
    ns: String,
    node: String,
    h: u8,
}

impl Host {
    fn agent(&self, env: &Env, join: bool) -> Proc {
        let mut args: Vec<String> = ["netns", "exec", &self.ns]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(env.swimnet.display().to_string());
        for a in [
            "agent",
            "--node",
            &self.node,
            "--bind",
            &format!("{UNDERLAY}.{}:7946", self.h),
            "--api",
            "127.0.0.1:7380",
            "--profile",
            "local",
            "--protocol",
            "networkdb",
            "--overlay-reconcile",
            &RECONCILE_SECS.to_string(),
            "--overlay-settle",
            "300",
        ] {
            args.push(a.to_string());
        }
        if join {
            args.push("--join".into());
            args.push(format!("{UNDERLAY}.1:7946"));
        }
        env.spawn(&self.node, Path::new("ip"), &args)
    }

    /// Runs `swimnet ARGS --api 127.0.0.1:7380` inside the host.
    fn cli(&self, env: &Env, args: &[&str]) -> CmdOut {
        let mut all: Vec<String> = vec!["netns".into(), "exec".into(), self.ns.clone()];
        all.push(env.swimnet.display().to_string());
        all.extend(args.iter().map(|s| s.to_string()));
        all.push("--api".into());
        all.push("127.0.0.1:7380".into());
        run_cmd(Path::new("ip"), &all, Duration::from_secs(20))
    }

    fn json(&self, env: &Env, args: &[&str]) -> serde_json::Value {
        let out = must(self.cli(env, args));
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()))
    }
}

fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return start.elapsed(),
            Err(e) if start.elapsed() > timeout => panic!("{what}: not within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn ping(from: &str, to: &str) -> CmdOut {
    ip(&["netns", "exec", from, "ping", "-c1", "-W2", to])
}

/// `ip neigh` entries of `dev` in `ns` with `addr`, counted.
fn neigh_count(ns: &str, dev: &str, addr: &str) -> usize {
    let out = ip(&["-n", ns, "neigh", "show", "dev", dev]).stdout;
    out.lines()
        .filter(|l| l.split_whitespace().next() == Some(addr))
        .count()
}

fn fdb_count(ns: &str, dev: &str, mac: &str) -> usize {
    let args: Vec<String> = ["-n", ns, "fdb", "show", "dev", dev]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = run_cmd(Path::new("bridge"), &args, Duration::from_secs(10)).stdout;
    out.lines()
        .filter(|l| l.starts_with(mac) && l.contains(" dst "))
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn err_line(out: &CmdOut) -> String {
    assert!(!out.ok(), "expected a failure: {}", out.describe());
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {}", out.describe());
    lines[0].to_string()
}

#[test]
fn overlay_through_live_agents_in_namespaces() {
    let env = Env::new("overlay_agent", 170);
    let topo = Topology::new();
    let h1 = Host {
        ns: "swa-h1".into(),
        node: "h1".into(),
        h: 1,
    };
    let h2 = Host {
        ns: "swa-h2".into(),
        node: "h2".into(),
        h: 2,
    };
    let mut a1 = h1.agent(&env, false);
    let mut a2 = h2.agent(&env, true);
    wait_for("two members", Duration::from_secs(15), || {
        let out = h2.cli(&env, &["members", "--format", "json"]);
        let alive = out.stdout.matches("\"alive\"").count();
        (alive == 2).then_some(()).ok_or(out.describe())
    });

    // Create on h1, listed on h2.
    let out = must(h1.cli(
        &env,
        &["overlay", "create", "blue", "--subnet", "10.77.0.0/24"],
    ));
    assert!(
        out.stdout.starts_with("created overlay blue: id "),
        "{}",
        out.stdout
    );
    let vni = wait_for_listed(&env, &h2, "blue");
    let dev = format!("swvx-{vni:06x}");
    let out = must(h2.cli(
        &env,
        &["overlay", "create", "blue", "--subnet", "10.77.0.0/24"],
    ));
    assert_eq!(
        out.stdout.trim(),
        "overlay blue already exists with the same settings"
    );

    // One endpoint per host; they ping each other across the VXLAN.
    let e1 = h1.json(
        &env,
        &[
            "overlay", "attach", "blue", "--netns", "swa-e1", "--format", "json",
        ],
    );
    let e2 = h2.json(
        &env,
        &[
            "overlay", "attach", "blue", "--netns", "swa-e2", "--format", "json",
        ],
    );
    let (ip1, ip2) = (e1["ip"].as_str().unwrap(), e2["ip"].as_str().unwrap());
    assert_eq!(e1["ifname"], "eth0");
    assert_eq!(e1["mtu"], 1450);
    let t = wait_for("ping e1 -> e2", Duration::from_secs(20), || {
        let o = ping("swa-e1", ip2);
        o.ok().then_some(()).ok_or(o.describe())
    });
    eprintln!("first ping after {t:?}");
    must(ping("swa-e2", ip1));
    // Names resolve through the namespace's responder (resolv.conf written).
    wait_for(
        "swa-e2.blue resolves in swa-e1",
        Duration::from_secs(10),
        || {
            let o = ip(&["netns", "exec", "swa-e1", "getent", "hosts", "swa-e2.blue"]);
            o.stdout.starts_with(ip2).then_some(()).ok_or(o.describe())
        },
    );
    let eps = h1.json(&env, &["overlay", "endpoints", "blue", "--format", "json"]);
    assert_eq!(eps.as_array().unwrap().len(), 2, "{eps}");
    let list = h1.json(&env, &["overlay", "list", "--format", "json"]);
    assert_eq!(list[0]["hosts"], serde_json::json!(["h1", "h2"]), "{list}");

    // Drift: a neighbour entry removed by hand comes back.
    must(ip(&["-n", "swa-h1", "neigh", "del", ip2, "dev", &dev]));
    let back = wait_for(
        "neighbour put back",
        Duration::from_secs(RECONCILE_SECS * 2 + 3),
        || {
            (neigh_count("swa-h1", &dev, ip2) == 1)
                .then_some(())
                .ok_or("missing".into())
        },
    );
    eprintln!("neighbour entry put back after {back:?}");

    errors(&env, &h1, &h2, vni);

    restart_h2(&env, (&h1, &h2), &mut a2, (&e1, &e2), &dev);
    detach_and_delete(&env, (&h1, &h2), (&e1, &e2), &dev);

    for (p, name) in [(&a1, "h1"), (&a2, "h2")] {
        let rss = rss_kib(p.pid());
        assert!(rss > 0 && rss < 100 * 1024, "{name} RSS {rss} KiB");
    }
    a1.kill9();
    a2.kill9();
    drop(topo);
}

/// `kill -9` of h2's agent and a restart: the endpoint is found in the
/// kernel and re-published once, with no duplicate kernel entries.
fn restart_h2(
    env: &Env,
    (h1, h2): (&Host, &Host),
    a2: &mut Proc,
    (e1, e2): (&serde_json::Value, &serde_json::Value),
    dev: &str,
) {
    let (ip1, ip2) = (e1["ip"].as_str().unwrap(), e2["ip"].as_str().unwrap());
    // kill -9 and restart of h2: its endpoint is re-published once.
    a2.kill9();
    let mac2 = e2["mac"].as_str().unwrap().to_string();
    *a2 = h2.agent(env, true);
    wait_for(
        "h2 back, endpoint re-published",
        Duration::from_secs(20),
        || {
            let eps = h1.json(env, &["overlay", "endpoints", "blue", "--format", "json"]);
            let mine: Vec<_> = eps
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["host"] == "h2")
                .collect();
            (mine.len() == 1 && mine[0]["ip"] == ip2 && mine[0]["id"] == e2["id"])
                .then_some(())
                .ok_or(eps.to_string())
        },
    );
    wait_for("ping after restart", Duration::from_secs(20), || {
        let o = ping("swa-e1", ip2);
        o.ok().then_some(()).ok_or(o.describe())
    });
    std::thread::sleep(Duration::from_secs(RECONCILE_SECS * 2));
    assert_eq!(neigh_count("swa-h2", dev, ip1), 1, "no duplicate neighbour");
    assert_eq!(
        fdb_count("swa-h2", dev, e1["mac"].as_str().unwrap()),
        1,
        "no duplicate fdb"
    );
    assert_eq!(fdb_count("swa-h1", dev, &mac2), 1);

    assert!(
        a2.log_text()
            .contains("endpoint found at start: re-published"),
        "{}",
        a2.log_tail(20)
    );
}

/// Detach removes the entries on the other host; delete is refused while
/// an endpoint is attached and works after.
fn detach_and_delete(
    env: &Env,
    (h1, h2): (&Host, &Host),
    (_e1, e2): (&serde_json::Value, &serde_json::Value),
    dev: &str,
) {
    let ip2 = e2["ip"].as_str().unwrap();
    let mac2 = e2["mac"].as_str().unwrap().to_string();
    // Detach: the entries go on the other host; delete then works.
    must(h2.cli(env, &["overlay", "detach", "blue", "--netns", "swa-e2"]));
    wait_for("entries of e2 gone on h1", Duration::from_secs(10), || {
        let n = neigh_count("swa-h1", dev, ip2) + fdb_count("swa-h1", dev, &mac2);
        (n == 0).then_some(()).ok_or(format!("{n} left"))
    });
    assert!(!ping("swa-e1", ip2).ok());
    let out = h2.cli(env, &["overlay", "delete", "blue"]);
    assert!(
        err_line(&out).contains("still has 1 endpoint"),
        "{}",
        out.describe()
    );
    must(h1.cli(env, &["overlay", "detach", "blue", "--netns", "swa-e1"]));
    wait_for("blue deletable", Duration::from_secs(10), || {
        let o = h2.cli(env, &["overlay", "delete", "blue"]);
        o.ok().then_some(()).ok_or(o.describe())
    });
    let links = ip(&["-n", "swa-h1", "-o", "link", "show"]).stdout;
    assert!(
        !links.contains("swvx-") && !links.contains("swve-"),
        "{links}"
    );
}

fn wait_for_listed(env: &Env, h: &Host, name: &str) -> u64 {
    let mut vni = 0;
    wait_for(
        "overlay listed on the other host",
        Duration::from_secs(10),
        || {
            let v = h.json(env, &["overlay", "list", "--format", "json"]);
            match v.as_array().unwrap().iter().find(|o| o["name"] == name) {
                Some(o) => {
                    vni = o["vni"].as_u64().unwrap();
                    Ok(())
                }
                None => Err(v.to_string()),
            }
        },
    );
    vni
}

/// The one-line errors a user can run into.
fn errors(env: &Env, h1: &Host, h2: &Host, blue_vni: u64) {
    let out = h1.cli(env, &["overlay", "attach", "blue", "--netns", "swa-nosuch"]);
    let line = err_line(&out);
    assert!(
        line.contains("network namespace \"swa-nosuch\" does not exist"),
        "{line}"
    );
    assert!(line.contains("404"), "{line}");
    let out = h2.cli(
        env,
        &["overlay", "create", "blue", "--subnet", "10.78.0.0/24"],
    );
    assert!(
        err_line(&out).contains("already exists with subnet 10.77.0.0/24"),
        "{}",
        out.describe()
    );
    let vni = blue_vni.to_string();
    let out = h2.cli(
        env,
        &[
            "overlay",
            "create",
            "red",
            "--subnet",
            "10.79.0.0/24",
            "--vni",
            &vni,
        ],
    );
    assert!(
        err_line(&out).contains(&format!("VNI {vni} is already in use")),
        "{}",
        out.describe()
    );
    // A /30 holds two endpoints.
    must(h1.cli(
        env,
        &["overlay", "create", "tiny", "--subnet", "10.80.0.0/30"],
    ));
    wait_for_listed(env, h2, "tiny");
    must(h1.cli(env, &["overlay", "attach", "tiny", "--netns", "swa-e1"]));
    must(h2.cli(env, &["overlay", "attach", "tiny", "--netns", "swa-e2"]));
    let out = h1.cli(env, &["overlay", "attach", "tiny", "--netns", "swa-e3"]);
    assert!(
        err_line(&out).contains("subnet 10.80.0.0/30 of overlay \"tiny\" is full"),
        "{}",
        out.describe()
    );
    let links = ip(&["-n", "swa-e3", "-o", "link", "show"]).stdout;
    assert!(!links.contains("eth0"), "nothing half-created: {links}");
    must(h1.cli(env, &["overlay", "detach", "tiny", "--netns", "swa-e1"]));
    must(h2.cli(env, &["overlay", "detach", "tiny", "--netns", "swa-e2"]));
    // Once h2's detach has reached h1 (gossip), nothing is attached.
    wait_for("tiny deletable", Duration::from_secs(10), || {
        let o = h1.cli(env, &["overlay", "delete", "tiny"]);
        o.ok().then_some(()).ok_or(o.describe())
    });
    // An agent in another protocol mode.
    let mut args: Vec<String> = ["netns", "exec", "swa-h1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(env.swimnet.display().to_string());
    for a in [
        "agent",
        "--node",
        "m1",
        "--bind",
        "10.202.0.1:7950",
        "--api",
        "127.0.0.1:7381",
        "--protocol",
        "memberlist",
    ] {
        args.push(a.into());
    }
    let mut m1 = env.spawn("m1", Path::new("ip"), &args);
    let mut last = String::new();
    wait_for("memberlist agent answers", Duration::from_secs(10), || {
        let mut a: Vec<String> = ["netns", "exec", "swa-h1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(env.swimnet.display().to_string());
        for x in ["overlay", "list", "--api", "127.0.0.1:7381"] {
            a.push(x.into());
        }
        let out = run_cmd(Path::new("ip"), &a, Duration::from_secs(10));
        last = out.stderr.clone();
        out.stderr
            .contains("overlays need the agent to run with --protocol networkdb")
            .then_some(())
            .ok_or(out.describe())
    });
    assert_eq!(last.lines().count(), 1, "{last}");
    m1.kill9();
}
