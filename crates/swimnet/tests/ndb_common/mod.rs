//! Harness for interop tests against Docker's real NetworkDB
//! (`networkdb-test` built from Debian's docker.io 20.10.24 source).
//!
//! Every node (Docker or swimnet) runs in its own network namespace with an
//! `eth0` (veth) plugged into a bridge that lives in a namespace of its own;
//! addresses are 10.79.0.<i>/24. Namespace names start with
//! `swn<pid>-<test>-`, so parallel tests and other runs never collide. All
//! HTTP queries go through `ip netns exec <ns> curl http://127.0.0.1:8000/...`.
//! The `Env` guard kills every process it started (by PID) and deletes every
//! namespace it created, also on panic.

#![allow(dead_code)]

#[path = "../underlay/mod.rs"]
mod underlay;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Diagnostic API port inside every namespace (loopback): Docker's
/// `networkdb-test` server, and swimnet's `--diagnostic-addr`.
pub const API_PORT: u16 = 8000;

/// swimnet's JSON API port inside a swimnet node's namespace (loopback).
pub const JSON_API_PORT: u16 = 7380;

const HINT: &str = "run scripts/build-networkdb-test.sh as root";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Path of Docker's `networkdb-test`; `NDB_BIN` overrides.
pub fn docker_bin() -> PathBuf {
    match std::env::var_os("NDB_BIN") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("target/ndb/networkdb-test"),
    }
}

/// Fails (never skips) when the prerequisites are missing.
fn preflight() {
    let bin = docker_bin();
    assert!(
        bin.is_file(),
        "Docker's networkdb-test not found at {}: {HINT}",
        bin.display()
    );
    let ok = Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "`ip netns` is unavailable: {HINT}");
    let ok = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "curl is missing (apt-get install curl); {HINT}");
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}; {HINT}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}; {HINT}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Swim,
}

/// One node: host index `i` lives in namespace `<prefix>h<i>` at 10.79.0.<i>.
#[derive(Clone, Debug)]
pub struct Node {
    pub idx: u8,
    pub kind: Kind,
    pub ns: String,
    pub ip: String,
    /// memberlist node name (Docker's is a random 12-hex id, learned at start).
    pub name: String,
}

pub struct Env {
    prefix: String,
    /// First three octets of the hosts' addresses (`10.79.0`).
    subnet: String,
    namespaces: Vec<String>,
    procs: Vec<(String, Child)>,
    logs: PathBuf,
}

impl Env {
    pub fn new(tag: &str) -> Env {
        let prefix = format!("swn{}-{tag}-", std::process::id());
        Env::with_names(tag, &prefix, "10.79.0")
    }

    /// Like [`Env::new`], with namespaces named `<prefix>br`, `<prefix>h<i>`
    /// and hosts at `<subnet>.<i>` (`subnet` = three octets), for tests that
    /// must keep to a namespace prefix and an underlay of their own.
    pub fn with_names(tag: &str, prefix: &str, subnet: &str) -> Env {
        preflight();
        let prefix = prefix.to_string();
        let logs = workspace_root()
            .join("target/tmp/interop_networkdb")
            .join(tag);
        let _ = fs::remove_dir_all(&logs);
        fs::create_dir_all(&logs).unwrap();
        let mut env = Env {
            prefix,
            subnet: subnet.to_string(),
            namespaces: Vec::new(),
            procs: Vec::new(),
            logs,
        };
        let br = env.ns("br");
        env.add_ns(&br);
        run(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &br, "link", "set", "br0", "up"]);
        env
    }

    fn ns(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    fn add_ns(&mut self, name: &str) {
        run(&["ip", "netns", "add", name]);
        self.namespaces.push(name.to_string());
    }

    /// Creates host namespace i with eth0 = <subnet>.i/24 on the bridge.
    fn host(&mut self, i: u8) -> (String, String) {
        let ns = self.ns(&format!("h{i}"));
        let br = self.ns("br");
        self.add_ns(&ns);
        let v = format!("v{i}");
        // The veth is created inside the bridge namespace: nothing touches
        // the root namespace.
        let ip = format!("{}.{i}", self.subnet);
        underlay::plug_host(&br, &v, &ns, &ip);
        (ns, ip)
    }

    fn spawn(&mut self, label: &str, ns: &str, envs: &[(&str, &str)], argv: &[&str]) {
        let log = self.logs.join(format!("{label}.log"));
        let f = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        // `ip netns exec` execs the program, so the child's PID is the node's.
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        self.procs.push((label.to_string(), child));
    }

    /// Starts a Docker NetworkDB node on host i and waits until it is ready.
    pub fn docker(&mut self, i: u8) -> Node {
        let (ns, ip) = self.host(i);
        let n = Node {
            idx: i,
            kind: Kind::Docker,
            ns,
            ip,
            name: String::new(),
        };
        self.start_docker(&n)
    }

    /// Starts a swimnet agent (`--protocol networkdb`) on host i.
    pub fn swim(&mut self, i: u8, name: &str) -> Node {
        let (ns, ip) = self.host(i);
        let n = Node {
            idx: i,
            kind: Kind::Swim,
            ns,
            ip,
            name: name.to_string(),
        };
        self.start_swim(&n);
        n
    }

    /// (Re)starts the swimnet agent for an existing swimnet node.
    pub fn start_swim(&mut self, n: &Node) {
        let bind = format!("{}:7946", n.ip);
        let api = format!("127.0.0.1:{JSON_API_PORT}");
        let diagnostic = format!("127.0.0.1:{API_PORT}");
        self.spawn(
            &format!("s{}", n.idx),
            &n.ns.clone(),
            &[],
            &[
                env!("CARGO_BIN_EXE_swimnet"),
                "agent",
                "--node",
                &n.name,
                "--bind",
                &bind,
                "--api",
                &api,
                "--diagnostic-addr",
                &diagnostic,
                "--protocol",
                "networkdb",
            ],
        );
        self.wait_ready(n);
    }

    /// Runs the swimnet CLI inside n's namespace against its API; answers
    /// stdout, panics on a non-zero exit.
    pub fn cli(&self, n: &Node, args: &[&str]) -> String {
        let api = format!("127.0.0.1:{JSON_API_PORT}");
        let (sub, rest) = args.split_first().expect("subcommand");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &n.ns,
                env!("CARGO_BIN_EXE_swimnet"),
                sub,
                "--api",
                &api,
            ])
            .args(rest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "swimnet {args:?} in {}: {}",
            n.ns,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a fresh Docker process for a Docker node (it picks a new
    /// random name) and answers the node with that name.
    pub fn start_docker(&mut self, n: &Node) -> Node {
        let bin = docker_bin();
        let label = format!("d{}", n.idx);
        self.spawn(
            &label,
            &n.ns.clone(),
            &[("TASK_ID", &format!("dock{}", n.idx))],
            &[bin.to_str().unwrap(), "server", &API_PORT.to_string()],
        );
        let mut m = n.clone();
        m.name = String::new();
        self.wait_ready(&m);
        let ip = m.ip.clone();
        m.name = self.wait_for(&format!("{label} knows its own name"), secs(20), || {
            self.peers(&m)
                .into_iter()
                .find(|(_, pip)| *pip == ip)
                .map(|(name, _)| name)
                .ok_or_else(|| "own IP not in /clusterpeers".to_string())
        });
        m
    }

    /// SIGTERMs the (latest) process of node n (swimnet then leaves
    /// gracefully) and waits, bounded, for it to exit; answers its status.
    pub fn term(&mut self, n: &Node) -> std::process::ExitStatus {
        let label = self.label(n);
        let pos = self
            .procs
            .iter()
            .rposition(|(l, _)| *l == label)
            .expect("process started");
        let pid = self.procs[pos].1.id().to_string();
        run(&["kill", "-TERM", &pid]);
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.procs[pos].1.try_wait().unwrap() {
                break st;
            }
            assert!(
                start.elapsed() < secs(20),
                "{label} did not exit within 20 s of SIGTERM"
            );
            thread::sleep(Duration::from_millis(100));
        };
        self.procs.remove(pos);
        status
    }

    fn label(&self, n: &Node) -> String {
        match n.kind {
            Kind::Docker => format!("d{}", n.idx),
            Kind::Swim => format!("s{}", n.idx),
        }
    }

    /// Takes n's eth0 down or up (a partition of n, inside its namespace).
    pub fn link(&self, n: &Node, up: bool) {
        run(&[
            "ip",
            "-n",
            &n.ns,
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ]);
    }

    /// SIGKILLs the (latest) process of node n.
    pub fn kill9(&mut self, n: &Node) {
        let label = self.label(n);
        let pos = self
            .procs
            .iter()
            .rposition(|(l, _)| *l == label)
            .expect("process started");
        let (_, mut child) = self.procs.remove(pos);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn wait_ready(&self, n: &Node) {
        self.wait_for(&format!("{} ({}) /ready", n.name, n.ns), secs(20), || {
            let body = self.try_get(n, "/ready")?;
            if body.trim_start().starts_with("OK") {
                Ok(())
            } else {
                Err(format!("{body:?}"))
            }
        });
    }

    /// GET on the node's diagnostic API; Err on transport failure.
    pub fn try_get(&self, n: &Node, path: &str) -> Result<String, String> {
        let url = format!("http://127.0.0.1:{API_PORT}{path}");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &n.ns,
                "curl",
                "-sS",
                "--max-time",
                "5",
                &url,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "curl {url} in {}: {}",
                n.ns,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn get(&self, n: &Node, path: &str) -> String {
        self.try_get(n, path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A diagnostic call answering "OK" (join, joinnetwork, createentry...).
    pub fn ok(&self, n: &Node, path: &str) {
        let body = self.get(n, path);
        assert!(
            body.trim_start().starts_with("OK"),
            "{} {path}: {body}",
            n.name
        );
    }

    fn try_json(&self, n: &Node, path: &str) -> Result<serde_json::Value, String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let body = self.try_get(n, &format!("{path}{sep}json"))?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))?;
        if v["message"] != "OK" {
            return Err(format!("{path}: {body}"));
        }
        Ok(v)
    }

    /// /clusterpeers as a set of (name, ip); empty on transport errors.
    pub fn peers(&self, n: &Node) -> BTreeSet<(String, String)> {
        self.peer_list(n, "/clusterpeers")
    }

    pub fn network_peers(&self, n: &Node, nid: &str) -> BTreeSet<(String, String)> {
        self.peer_list(n, &format!("/networkpeers?nid={nid}"))
    }

    fn peer_list(&self, n: &Node, path: &str) -> BTreeSet<(String, String)> {
        let Ok(v) = self.try_json(n, path) else {
            return BTreeSet::new();
        };
        v["details"]["entries"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["-=name"].as_str().unwrap_or_default().to_string(),
                            e["ip"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// /gettable as key -> (base64 value, owner).
    pub fn table(&self, n: &Node, nid: &str, tname: &str) -> Result<Table, String> {
        let v = self.try_json(n, &format!("/gettable?nid={nid}&tname={tname}"))?;
        let mut t = Table::new();
        if let Some(a) = v["details"]["entries"].as_array() {
            for e in a {
                t.insert(
                    e["key"].as_str().unwrap_or_default().to_string(),
                    (
                        e["value"].as_str().unwrap_or_default().to_string(),
                        e["owner"].as_str().unwrap_or_default().to_string(),
                    ),
                );
            }
        }
        Ok(t)
    }

    pub fn join(&self, n: &Node, seeds: &[&Node]) {
        let m: Vec<&str> = seeds.iter().map(|s| s.ip.as_str()).collect();
        self.ok(n, &format!("/join?members={}", m.join(",")));
    }

    pub fn join_network(&self, n: &Node, nid: &str) {
        self.ok(n, &format!("/joinnetwork?nid={nid}"));
    }

    pub fn create(&self, n: &Node, nid: &str, t: &str, key: &str, value: &str) {
        self.ok(
            n,
            &format!(
                "/createentry?nid={nid}&tname={t}&key={key}&value={}",
                b64(value)
            ),
        );
    }

    pub fn update(&self, n: &Node, nid: &str, t: &str, key: &str, value: &str) {
        self.ok(
            n,
            &format!(
                "/updateentry?nid={nid}&tname={t}&key={key}&value={}",
                b64(value)
            ),
        );
    }

    pub fn delete(&self, n: &Node, nid: &str, t: &str, key: &str) {
        self.ok(n, &format!("/deleteentry?nid={nid}&tname={t}&key={key}"));
    }

    /// Polls `f` every 100 ms until it returns Ok or `limit` passes; panics
    /// with the last error.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut() -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        loop {
            match f() {
                Ok(v) => return v,
                Err(e) => {
                    if start.elapsed() > limit {
                        panic!("timed out after {limit:?} waiting for {what}: {e}");
                    }
                }
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn dump_logs(&self) {
        let Ok(rd) = fs::read_dir(&self.logs) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(f) = File::open(e.path()) else {
                continue;
            };
            let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
            eprintln!("---- {} (last 30 lines)", e.path().display());
            for l in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump_logs();
        }
        for (_, c) in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub type Table = BTreeMap<String, (String, String)>;

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Standard base64, URL-safe enough for our values (alphanumeric input;
/// '+', '/' and '=' are percent-encoded).
pub fn b64(s: &str) -> String {
    b64_bytes(s.as_bytes())
}

/// [`b64`] of arbitrary bytes.
pub fn b64_bytes(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// The base64 form /gettable reports (not percent-encoded).
pub fn b64_raw(s: &str) -> String {
    b64(s)
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=")
}
