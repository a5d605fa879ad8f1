//! Harness for the overlay end-to-end tests: hosts in network namespaces on
//! an underlay bridge, one `swimnet agent --protocol networkdb` per host,
//! endpoint namespaces, and readers of the kernel state the agents program.
//!
//! Layout of a cluster with tag `T` in the overlay suite's [`Site`] (every
//! name starts with `swe-T`, so tests running side by side never share a
//! device, an address or a port):
//! - `swe-Tu`: the underlay, a namespace holding the bridge `br0`;
//! - `swe-ThN`: host N, with `eth0` = 10.203.0.N/24 plugged into `br0`;
//!   its agent `hN` binds 10.203.0.N:7946 (VTEP 10.203.0.N) and serves its
//!   API on 127.0.0.1:7380 inside the namespace; hosts 2.. join host 1;
//! - `swe-ThNeM`: endpoint M of host N (created empty; `overlay attach`
//!   fills it).
//!
//! Other suites pick their own [`Site`] (namespace prefix, underlay /24,
//! node names) with [`Cluster::at`]; [`relay`] lets a client in the root
//! namespace reach a host's API.
//!
//! Network rule: all traffic stays inside these namespaces. Every process
//! started here is killed by PID and every namespace created here is
//! deleted (with the `/etc/netns/<name>` directory an agent may have left)
//! when the [`Cluster`] drops, also when the test panics. Leftovers of an
//! earlier run of the same tag that was itself killed are removed first.
//! Missing prerequisites (root, `ip`, `bridge`, `ping`, `getent`) fail the
//! test, never skip it.

#![allow(dead_code)]

#[path = "../underlay/mod.rs"]
mod underlay;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../common/procstat.rs"]
pub mod procstat;

pub mod relay;

/// Where a cluster lives: its namespace prefix, underlay /24 and node
/// names. Each suite has its own, so suites never share a namespace, an
/// address or a stale-process pattern.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    /// Every namespace of the site starts with this.
    pub prefix: &'static str,
    /// The underlay's first three octets; host N is `.N`.
    pub net: [u8; 3],
    /// Host N's agent is named this followed by N.
    pub node: &'static str,
    /// Log directory (under the target's tmp dir).
    pub logs: &'static str,
}

impl Site {
    /// The underlay address of host `n`.
    pub fn ip(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], n)
    }
}

/// The overlay suite's site (tests/overlay_e2e.rs).
pub const E2E: Site = Site {
    prefix: PREFIX,
    net: [10, 203, 0],
    node: "h",
    logs: "overlay_e2e",
};

/// Every namespace the overlay tests, the benchmark and the demo create
/// starts with this.
pub const PREFIX: &str = "swe-";

/// The agents' API port (loopback inside each host namespace).
pub const API_PORT: u16 = 7380;

/// Gossip port (on the host's underlay address).
pub const GOSSIP_PORT: u16 = 7946;

/// How often the agents compare the kernel with the tables (seconds), kept
/// short so drift repair is quick to observe.
pub const RECONCILE_SECS: u64 = 1;

/// How long attach waits for concurrent address claims (milliseconds).
pub const SETTLE_MS: u64 = 500;

const HINT: &str = "the overlay tests need root, iproute2 (ip, bridge), iputils-ping, \
                    getent and curl; scripts/test.sh installs them";

/// The underlay address of host `n` in the overlay suite's site.
pub fn underlay_ip(n: u8) -> Ipv4Addr {
    E2E.ip(n)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Path of the swimnet binary under test.
pub fn swimnet_bin() -> &'static str {
    env!("CARGO_BIN_EXE_swimnet")
}

/// Runs a command to completion (output captured); panics if it cannot be
/// started.
pub fn cmd(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}; {HINT}"))
}

/// Runs a command and panics (with its stderr) unless it succeeds.
pub fn run(args: &[&str]) -> String {
    let out = cmd(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails (never skips) when what the tests need is missing.
fn preflight() {
    let uid = cmd(&["id", "-u"]);
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "not root: {HINT}"
    );
    for tool in [
        &["ip", "-V"][..],
        &["bridge", "-V"][..],
        &["ping", "-V"][..],
        &["getent", "--version"][..],
        &["curl", "--version"][..],
    ] {
        let ok = Command::new(tool[0])
            .args(&tool[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "`{}` is missing: {HINT}", tool[0]);
    }
}

/// Polls `f` every 100 ms until it answers Ok or `limit` passes; panics
/// with `what` and the last error.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => assert!(
                start.elapsed() <= limit,
                "timed out after {limit:?} waiting for {what}: {e}"
            ),
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// One host: namespace, index and underlay address.
#[derive(Clone, Debug)]
pub struct Host {
    pub idx: u8,
    pub ns: String,
    pub ip: Ipv4Addr,
}

/// A remote endpoint as programmed on a VXLAN device: (ip, mac, vtep).
pub type Programmed = (Ipv4Addr, String, Ipv4Addr);

/// Hosts on an underlay, their agents, and every namespace made for them.
pub struct Cluster {
    pub site: Site,
    pub tag: String,
    pub hosts: Vec<Host>,
    /// Agent process per host (index = host index - 1); None while stopped.
    agents: Vec<Option<Child>>,
    /// Namespaces created, in creation order (deleted in reverse).
    namespaces: Vec<String>,
    /// Other processes started (e.g. a Docker node), killed on drop.
    others: Vec<(String, Child)>,
    pub logs: PathBuf,
    pidfile: PathBuf,
    underlay: String,
    /// Extra agent flags for every agent.
    pub agent_flags: Vec<String>,
}

impl Cluster {
    /// Makes the underlay and `n` hosts and starts their agents (host 1
    /// first; the others join it); answers when every agent lists all `n`.
    pub fn new(tag: &str, n: u8) -> Cluster {
        Self::with_flags(tag, n, &[])
    }

    /// [`Cluster::new`] with extra flags for every agent.
    pub fn with_flags(tag: &str, n: u8, flags: &[&str]) -> Cluster {
        Self::at(E2E, tag, n, flags)
    }

    /// [`Cluster::with_flags`] in another suite's `site`.
    pub fn at(site: Site, tag: &str, n: u8, flags: &[&str]) -> Cluster {
        let mut c = Cluster::bare_at(site, tag);
        c.agent_flags = flags.iter().map(|s| s.to_string()).collect();
        for i in 1..=n {
            c.add_host(i);
        }
        for i in 1..=n {
            c.start_agent(i);
        }
        c.wait_members(n as usize);
        c
    }

    /// The underlay only (no hosts yet).
    pub fn bare(tag: &str) -> Cluster {
        Self::bare_at(E2E, tag)
    }

    /// [`Cluster::bare`] in `site`.
    pub fn bare_at(site: Site, tag: &str) -> Cluster {
        preflight();
        let prefix = site.prefix;
        assert!(
            prefix.len() + tag.len() + 6 <= 15,
            "tag {tag:?} too long for 15-character namespace names"
        );
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(site.logs)
            .join(tag);
        let pidfile = logs.join("pids");
        let n = site.net;
        kill_stale(&pidfile, &format!("{}.{}.{}.", n[0], n[1], n[2]));
        remove_stale(&format!("{prefix}{tag}"));
        let _ = fs::remove_dir_all(&logs);
        fs::create_dir_all(&logs).expect("create log dir");
        eprintln!("[{prefix}{tag}] logs in {}", logs.display());
        let underlay = format!("{prefix}{tag}u");
        let mut c = Cluster {
            site,
            tag: tag.to_string(),
            hosts: Vec::new(),
            agents: Vec::new(),
            namespaces: Vec::new(),
            others: Vec::new(),
            logs,
            pidfile,
            underlay: underlay.clone(),
            agent_flags: Vec::new(),
        };
        c.add_ns(&underlay);
        run(&[
            "ip", "-n", &underlay, "link", "add", "br0", "type", "bridge",
        ]);
        run(&["ip", "-n", &underlay, "link", "set", "br0", "up"]);
        c
    }

    fn add_ns(&mut self, name: &str) {
        assert!(name.len() <= 15, "namespace name {name:?} too long");
        run(&["ip", "netns", "add", name]);
        self.namespaces.push(name.to_string());
    }

    /// Creates host namespace `swe-ThI` with eth0 = 10.203.0.I/24 (in the
    /// overlay suite's site) on the underlay bridge (the veth is made inside
    /// the underlay namespace, so the root namespace is never touched).
    pub fn add_host(&mut self, i: u8) -> Host {
        let ns = format!("{}{}h{i}", self.site.prefix, self.tag);
        self.add_ns(&ns);
        let v = format!("v{i}");
        let u = self.underlay.clone();
        let ip = self.site.ip(i);
        underlay::plug_host(&u, &v, &ns, &ip.to_string());
        let h = Host { idx: i, ns, ip };
        self.hosts.push(h.clone());
        self.agents.push(None);
        h
    }

    pub fn host(&self, i: u8) -> &Host {
        &self.hosts[i as usize - 1]
    }

    /// Creates the (empty) endpoint namespace `swe-ThIeM`; answers its name.
    pub fn endpoint_ns(&mut self, i: u8, m: u32) -> String {
        let ns = format!("{}{}h{i}e{m}", self.site.prefix, self.tag);
        self.add_ns(&ns);
        ns
    }

    /// The agent command line of host `i`, joining host `seed`.
    fn agent_argv(&self, i: u8, seed: Option<u8>) -> Vec<String> {
        let ip = self.site.ip(i);
        let mut v: Vec<String> = [
            "agent",
            "--node",
            &format!("{}{i}", self.site.node),
            "--bind",
            &format!("{ip}:{GOSSIP_PORT}"),
            "--api",
            &format!("127.0.0.1:{API_PORT}"),
            "--profile",
            "local",
            "--protocol",
            "networkdb",
            "--log-level",
            "debug",
            "--overlay-reconcile",
            &RECONCILE_SECS.to_string(),
            "--overlay-settle",
            &SETTLE_MS.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(s) = seed {
            v.push("--join".into());
            v.push(format!("{}:{GOSSIP_PORT}", self.site.ip(s)));
        }
        v.extend(self.agent_flags.iter().cloned());
        v
    }

    /// Starts a process inside namespace `ns` (`ip netns exec` execs it, so
    /// the child's PID is the program's), with a parent-death SIGKILL and
    /// output appended to `<logs>/<label>.log`; its PID goes to the pid file.
    pub fn spawn_in(&self, label: &str, ns: &str, envs: &[(&str, &str)], argv: &[&str]) -> Child {
        let log = self.logs.join(format!("{label}.log"));
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log");
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "--", "ip", "netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup log"))
            .stderr(f);
        for (k, v) in envs {
            c.env(k, v);
        }
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} in {ns}: {e}; {HINT}"));
        if let Ok(mut pf) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.pidfile)
        {
            let _ = writeln!(pf, "{}", child.id());
        }
        child
    }

    /// Starts (or restarts) host `i`'s agent and waits until its API answers;
    /// hosts other than 1 join host 1.
    pub fn start_agent(&mut self, i: u8) {
        self.start_agent_joining(i, (i != 1).then_some(1));
    }

    /// [`Cluster::start_agent`] joining host `seed` (none: joins nobody).
    pub fn start_agent_joining(&mut self, i: u8, seed: Option<u8>) {
        assert!(self.agents[i as usize - 1].is_none(), "agent h{i} runs");
        let ns = self.host(i).ns.clone();
        let argv = self.agent_argv(i, seed);
        let mut full = vec![swimnet_bin()];
        full.extend(argv.iter().map(String::as_str));
        let child = self.spawn_in(&format!("h{i}"), &ns, &[], &full);
        self.agents[i as usize - 1] = Some(child);
        wait_for(&format!("agent h{i} API"), secs(20), || {
            if let Some(st) = self.agents[i as usize - 1]
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "agent h{i} exited during start-up ({st}):\n{}",
                    self.log_tail(&format!("h{i}"), 30)
                );
            }
            self.cli(i, &["members", "--format", "json"]).map(|_| ())
        });
    }

    /// PID of host `i`'s running agent.
    pub fn agent_pid(&self, i: u8) -> u32 {
        self.agents[i as usize - 1]
            .as_ref()
            .expect("agent running")
            .id()
    }

    /// `kill -9` of host `i`'s agent (reaped).
    pub fn kill9(&mut self, i: u8) {
        let mut c = self.agents[i as usize - 1].take().expect("agent running");
        c.kill().expect("kill agent");
        c.wait().expect("reap agent");
    }

    /// SIGTERM to host `i`'s agent; waits (bounded) until it exits.
    pub fn stop(&mut self, i: u8) {
        let mut c = self.agents[i as usize - 1].take().expect("agent running");
        run(&["kill", "-TERM", &c.id().to_string()]);
        let deadline = Instant::now() + secs(20);
        while c.try_wait().expect("wait agent").is_none() {
            assert!(Instant::now() < deadline, "agent h{i} ignored SIGTERM");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running agent lists `n` alive members.
    pub fn wait_members(&self, n: usize) {
        for h in &self.hosts {
            if self.agents[h.idx as usize - 1].is_none() {
                continue;
            }
            wait_for(&format!("h{} sees {n} alive", h.idx), secs(30), || {
                let v = self.cli_json(h.idx, &["members", "--format", "json"])?;
                let alive = v["members"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|m| {
                                let s = m["status"].as_str().unwrap_or_default();
                                s.eq_ignore_ascii_case("alive")
                            })
                            .count()
                    })
                    .unwrap_or(0);
                if alive == n {
                    Ok(())
                } else {
                    Err(format!("{alive} alive: {v}"))
                }
            });
        }
    }

    /// Runs `swimnet SUB --api 127.0.0.1:7380 ARGS...` inside host `i`'s
    /// namespace: stdout on success, stderr (and stdout) on failure.
    pub fn cli(&self, i: u8, args: &[&str]) -> Result<String, String> {
        let api = format!("127.0.0.1:{API_PORT}");
        let (sub, rest) = args.split_first().expect("subcommand");
        let ns = &self.host(i).ns;
        let mut argv = vec!["ip", "netns", "exec", ns, swimnet_bin()];
        // `overlay` takes its own subcommand before the flags.
        let rest = if *sub == "overlay" {
            argv.push(sub);
            let (op, more) = rest.split_first().expect("overlay op");
            argv.push(op);
            more
        } else {
            argv.push(sub);
            rest
        };
        argv.extend(["--api", &api]);
        argv.extend(rest.iter().copied());
        let out = cmd(&argv);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "swimnet {args:?} on h{i} exited {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout.trim()
            ))
        }
    }

    /// [`Cluster::cli`] that must succeed.
    pub fn cli_ok(&self, i: u8, args: &[&str]) -> String {
        self.cli(i, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::cli`] parsed as JSON.
    pub fn cli_json(&self, i: u8, args: &[&str]) -> Result<Value, String> {
        let out = self.cli(i, args)?;
        serde_json::from_str(&out).map_err(|e| format!("{args:?}: {e}: {out}"))
    }

    /// `overlay create NAME --subnet SUBNET --vni VNI` on host `i`.
    pub fn create_overlay(&self, i: u8, name: &str, subnet: &str, vni: u32) -> String {
        self.cli_ok(
            i,
            &[
                "overlay",
                "create",
                name,
                "--subnet",
                subnet,
                "--vni",
                &vni.to_string(),
            ],
        )
    }

    /// The overlay's network ID from `overlay list --format json` on host
    /// `i`; Err while host `i` does not list it.
    pub fn try_overlay_id(&self, i: u8, name: &str) -> Result<String, String> {
        let v = self.cli_json(i, &["overlay", "list", "--format", "json"])?;
        v.as_array()
            .and_then(|a| a.iter().find(|o| o["name"] == name))
            .and_then(|o| o["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("overlay {name} not listed on h{i}: {v}"))
    }

    /// [`Cluster::try_overlay_id`], waiting up to 20 s for it to be listed.
    pub fn overlay_id(&self, i: u8, name: &str) -> String {
        wait_for(&format!("h{i} lists overlay {name}"), secs(20), || {
            self.try_overlay_id(i, name)
        })
    }

    /// `overlay attach` on host `i` of namespace `ns` (JSON output): the
    /// endpoint object.
    pub fn attach(&self, i: u8, overlay: &str, ns: &str, extra: &[&str]) -> Result<Value, String> {
        let mut args = vec!["overlay", "attach", overlay, "--netns", ns];
        args.extend(extra.iter().copied());
        args.extend(["--format", "json"]);
        self.cli_json(i, &args)
    }

    /// `overlay endpoints NAME --format json` on host `i`.
    pub fn endpoints(&self, i: u8, overlay: &str) -> Result<Vec<Value>, String> {
        let v = self.cli_json(i, &["overlay", "endpoints", overlay, "--format", "json"])?;
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("not a list: {v}"))
    }

    /// `GET /v1/stats` of host `i`'s agent (curl inside its namespace).
    pub fn stats(&self, i: u8) -> Result<Value, String> {
        let url = format!("http://127.0.0.1:{API_PORT}/v1/stats");
        let out = self.exec(&self.host(i).ns, &["curl", "-sS", "--max-time", "5", &url]);
        if !out.status.success() {
            return Err(format!(
                "curl {url} on h{i}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("stats of h{i}: {e}"))
    }

    /// Neighbour entries (ip, mac) on host `i`'s VXLAN device of `vni`
    /// (every line, so duplicates would show).
    pub fn neigh(&self, i: u8, vni: u32) -> Vec<(Ipv4Addr, String)> {
        let dev = vxlan_name(vni);
        let out = cmd(&["ip", "-n", &self.host(i).ns, "neigh", "show", "dev", &dev]);
        parse_neigh(&String::from_utf8_lossy(&out.stdout))
    }

    /// FDB entries with a remote destination (mac, dst) on host `i`'s VXLAN
    /// device of `vni` (every line, so duplicates would show).
    pub fn fdb(&self, i: u8, vni: u32) -> Vec<(String, Ipv4Addr)> {
        let dev = vxlan_name(vni);
        let out = cmd(&["bridge", "-n", &self.host(i).ns, "fdb", "show", "dev", &dev]);
        parse_fdb(&String::from_utf8_lossy(&out.stdout))
    }

    /// What host `i` has programmed for `vni`, as (ip, mac, vtep) triples
    /// joined from its neighbour and FDB entries; Err when the two tables
    /// disagree or hold duplicates.
    pub fn programmed(&self, i: u8, vni: u32) -> Result<BTreeSet<Programmed>, String> {
        let neigh = self.neigh(i, vni);
        let fdb = self.fdb(i, vni);
        let macs: BTreeSet<&String> = fdb.iter().map(|(m, _)| m).collect();
        if macs.len() != fdb.len() {
            return Err(format!("h{i}: duplicate FDB entries: {fdb:?}"));
        }
        let ips: BTreeSet<&Ipv4Addr> = neigh.iter().map(|(ip, _)| ip).collect();
        if ips.len() != neigh.len() {
            return Err(format!("h{i}: duplicate neighbour entries: {neigh:?}"));
        }
        if neigh.len() != fdb.len() {
            return Err(format!(
                "h{i}: {} neighbour vs {} FDB entries: {neigh:?} / {fdb:?}",
                neigh.len(),
                fdb.len()
            ));
        }
        let mut out = BTreeSet::new();
        for (ip, mac) in &neigh {
            let vtep = fdb
                .iter()
                .find(|(m, _)| m == mac)
                .map(|(_, d)| *d)
                .ok_or_else(|| format!("h{i}: neighbour {ip} {mac} has no FDB entry: {fdb:?}"))?;
            out.insert((*ip, mac.clone(), vtep));
        }
        Ok(out)
    }

    /// Waits until host `i` has programmed exactly `want` for `vni`.
    pub fn wait_programmed(&self, i: u8, vni: u32, want: &BTreeSet<Programmed>, limit: Duration) {
        wait_for(
            &format!("h{i} programs {} peers", want.len()),
            limit,
            || {
                let got = self.programmed(i, vni)?;
                if &got == want {
                    Ok(())
                } else {
                    Err(format!("got {got:?}\nwant {want:?}"))
                }
            },
        );
    }

    /// Runs `argv` inside namespace `ns`.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend(argv.iter().copied());
        cmd(&full)
    }

    /// One ping from namespace `ns` to `ip` (1 s timeout); with `size`, a
    /// payload of that many bytes with don't-fragment set.
    pub fn ping(&self, ns: &str, ip: Ipv4Addr, size: Option<u32>) -> bool {
        let ip = ip.to_string();
        let size_s = size.map(|s| s.to_string()).unwrap_or_default();
        let mut argv = vec!["ping", "-n", "-q", "-c", "1", "-W", "1"];
        if size.is_some() {
            argv.extend(["-M", "do", "-s", &size_s]);
        }
        argv.push(&ip);
        self.exec(ns, &argv).status.success()
    }

    /// `getent hosts NAME` inside `ns`: the addresses, or Err with the exit
    /// status.
    pub fn getent(&self, ns: &str, name: &str) -> Result<Vec<Ipv4Addr>, String> {
        let out = self.exec(ns, &["getent", "ahostsv4", name]);
        if !out.status.success() {
            return Err(format!("getent {name} in {ns}: {}", out.status));
        }
        let mut v: Vec<Ipv4Addr> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    /// The IPv4 addresses (with prefix) on `dev` inside namespace `ns`.
    pub fn addrs(&self, ns: &str, dev: &str) -> Vec<String> {
        let out = cmd(&["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", dev]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.position(|x| x == "inet")?;
                w.next().map(str::to_string)
            })
            .collect()
    }

    /// The last `n` lines of `<logs>/<label>.log`.
    pub fn log_tail(&self, label: &str, n: usize) -> String {
        log_tail(&self.logs, label, n)
    }

    /// Keeps a process started with [`Cluster::spawn_in`] so that it is
    /// killed with the cluster.
    pub fn adopt(&mut self, label: &str, child: Child) {
        self.others.push((label.to_string(), child));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = thread::panicking();
        for (i, a) in self.agents.iter_mut().enumerate() {
            if let Some(c) = a {
                let _ = c.kill();
                let _ = c.wait();
            }
            if panicking {
                let label = format!("h{}", i + 1);
                eprintln!("---- agent {label}, last lines ----");
                eprintln!("{}", log_tail(&self.logs, &label, 40));
            }
        }
        for (label, c) in &mut self.others {
            let _ = c.kill();
            let _ = c.wait();
            if panicking {
                eprintln!("---- {label}, last lines ----");
                eprintln!("{}", log_tail(&self.logs, label, 30));
            }
        }
        for ns in self.namespaces.iter().rev() {
            delete_ns(ns);
        }
        let _ = fs::remove_file(&self.pidfile);
    }
}

/// The last `n` lines of `<logs>/<label>.log`.
fn log_tail(logs: &Path, label: &str, n: usize) -> String {
    let Ok(f) = File::open(logs.join(format!("{label}.log"))) else {
        return String::new();
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Deletes namespace `ns` and the `/etc/netns/<ns>` directory (which holds
/// the resolv.conf an agent may have written for it).
fn delete_ns(ns: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
    let _ = fs::remove_dir_all(Path::new("/etc/netns").join(ns));
}

/// Kills agents an earlier, killed run of the same tag left (by PID from
/// its pid file, only when the process still is one of ours: its command
/// line holds `underlay`, the site's first three octets).
fn kill_stale(pidfile: &Path, underlay: &str) {
    let text = fs::read_to_string(pidfile).unwrap_or_default();
    for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(underlay) || cmdline.contains("networkdb-test") {
            eprintln!("killing stale process {pid}: {cmdline}");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Deletes namespaces named `<stem>...` an earlier, killed run left.
fn remove_stale(stem: &str) {
    let out = cmd(&["ip", "netns", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    let mut stale: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(stem) && n[stem.len()..].starts_with(['u', 'h']))
        .collect();
    // Endpoint namespaces (longer names) before hosts, hosts before the underlay.
    stale.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for ns in stale {
        eprintln!("removing stale namespace {ns}");
        delete_ns(ns);
    }
}

/// The VXLAN device of `vni` (the agent's naming: `swvx-` + 6 hex digits).
pub fn vxlan_name(vni: u32) -> String {
    format!("swvx-{vni:06x}")
}

/// Parses `ip neigh show dev D` lines (`10.0.1.5 lladdr 02:42:.. PERMANENT`).
pub fn parse_neigh(text: &str) -> Vec<(Ipv4Addr, String)> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let ip = w.first()?.parse().ok()?;
            let mac = w
                .iter()
                .position(|x| *x == "lladdr")
                .map(|p| w.get(p + 1))??;
            Some((ip, mac.to_string()))
        })
        .collect()
}

/// Parses `bridge fdb show dev D` lines that have a remote destination
/// (`02:42:.. dst 10.203.0.2 self permanent`).
pub fn parse_fdb(text: &str) -> Vec<(String, Ipv4Addr)> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let mac = w.first()?;
            let dst = w.iter().position(|x| *x == "dst").map(|p| w.get(p + 1))??;
            Some((mac.to_string(), dst.parse().ok()?))
        })
        .collect()
}

/// `ip` field of an endpoint object (without prefix length).
pub fn ep_ip(v: &Value) -> Ipv4Addr {
    let s = v["ip"].as_str().unwrap_or_else(|| panic!("no ip: {v}"));
    s.split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("ip {s}: {e}"))
}

/// What every other host should program for the endpoints `eps` (JSON
/// objects from `overlay endpoints`) not on host `i`.
pub fn expected_for(i: u8, eps: &[Value]) -> BTreeSet<Programmed> {
    eps.iter()
        .filter(|e| e["vtep"].as_str() != Some(&underlay_ip(i).to_string()))
        .map(|e| {
            (
                ep_ip(e),
                e["mac"].as_str().unwrap_or_default().to_string(),
                e["vtep"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no vtep: {e}")),
            )
        })
        .collect()
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn neighbour_and_fdb_lines() {
        let n = parse_neigh(
            "10.0.1.5 lladdr 02:42:0a:00:01:05 PERMANENT\n10.0.1.6 FAILED\n\
             10.0.1.7 lladdr 02:42:0a:00:01:07 PERMANENT proxy\n",
        );
        assert_eq!(
            n,
            vec![
                ("10.0.1.5".parse().unwrap(), "02:42:0a:00:01:05".into()),
                ("10.0.1.7".parse().unwrap(), "02:42:0a:00:01:07".into())
            ]
        );
        let f = parse_fdb(
            "aa:bb:cc:dd:ee:ff master swbr-000100 permanent\n\
             02:42:0a:00:01:05 dst 10.203.0.2 self permanent\n",
        );
        assert_eq!(
            f,
            vec![("02:42:0a:00:01:05".into(), "10.203.0.2".parse().unwrap())]
        );
    }
}
