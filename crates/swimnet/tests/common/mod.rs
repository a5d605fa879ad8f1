//! Helpers for the interop tests against real Serf agents (Debian `serf`,
//! memberlist 0.2.2 inside): process guards, agents on their own loopback
//! addresses, membership and stats queries, bounded polling, a background
//! membership monitor and log checks.
//!
//! Network rule: every socket here is on 127.0.0.0/8. Each test gets its own
//! `127.0.<net>.0/24`; every agent gets its own address in it and the default
//! ports (gossip 7946, serf RPC 7373, swimnet API 7380).
//!
//! Every process started here is owned by a [`Proc`] whose `Drop` kills it
//! (SIGKILL; graceful stops are explicit), also when the test panics. When
//! `setpriv` is available, agents are also started with a parent-death signal
//! (SIGKILL), so they die with the test thread even if the test process is
//! killed and no destructor runs. Their PIDs are written to a pid file in the
//! test's log directory; the next run of the same test kills any that are
//! still alive (checked by PID and command line) before it starts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod procstat;

/// Gossip port of every agent (memberlist's default).
pub const GOSSIP_PORT: u16 = 7946;
/// serf's RPC port (on the agent's own IP).
pub const SERF_RPC_PORT: u16 = 7373;
/// swimnet's HTTP API port (on the agent's own IP).
pub const SWIM_API_PORT: u16 = 7380;

const INSTALL_HINT: &str =
    "install the `serf` Debian package (apt-get update && apt-get install -y serf), \
     or point SERF_BIN at a serf 0.9.4 binary";

// ---------------------------------------------------------------------------
// memberlist timing (spec/memberlist-wire.md §7.2, §7.4, §8)
// ---------------------------------------------------------------------------

/// The memberlist timing parameters of a profile (`DefaultLocalConfig` for
/// `-profile=local` in serf and `--profile local` in swimnet).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub suspicion_mult: u32,
    pub suspicion_max_timeout_mult: u32,
    pub push_pull_interval: Duration,
}

/// memberlist 0.2.2 `DefaultLocalConfig` (spec §8, "Local" column).
pub const LOCAL: Timing = Timing {
    probe_interval: Duration::from_secs(1),
    probe_timeout: Duration::from_millis(200),
    suspicion_mult: 3,
    suspicion_max_timeout_mult: 6,
    push_pull_interval: Duration::from_secs(15),
};

impl Timing {
    /// `suspicionTimeout` (util.go): `mult × max(1, log10(max(1, n))) × interval`,
    /// with the log factor truncated to 3 decimals.
    pub fn suspicion_min(&self, n: u32) -> Duration {
        let scale = f64::max(1.0, f64::log10(f64::max(1.0, n as f64)));
        let milli = (scale * 1000.0) as u64; // truncation, as Go's time.Duration(x*1000)
        self.probe_interval * self.suspicion_mult * (milli as u32) / 1000
    }

    /// `SuspicionMaxTimeoutMult × min`.
    pub fn suspicion_max(&self, n: u32) -> Duration {
        self.suspicion_min(n) * self.suspicion_max_timeout_mult
    }

    /// Confirmations wanted: `k = SuspicionMult − 2`, or 0 when `n − 2 < k`.
    pub fn confirmations_wanted(&self, n: u32) -> u32 {
        let k = self.suspicion_mult.saturating_sub(2);
        if (n as i64) - 2 < k as i64 {
            0
        } else {
            k
        }
    }

    /// Worst-case time from a node's crash until the first probe of it by a
    /// given node has failed: the probe list is walked round-robin and
    /// reshuffled at each wrap, so two probes of the same target are at most
    /// `2(n−1)−1` intervals apart; the failing probe itself takes one more
    /// interval (the ack handler fires at the end of the probe interval).
    pub fn first_failed_probe(&self, n: u32) -> Duration {
        self.probe_interval * (2 * (n - 1))
    }

    /// Upper bound for "observer marks a crashed node dead" in a cluster of
    /// `n` nodes (n counts the crashed node), when at least `k` other live
    /// nodes probe it too, so the Lifeguard confirmations arrive (each
    /// accuser's own first failed probe is within `first_failed_probe(n)`):
    /// the observer's timer started no later than its own failed probe,
    /// confirmations bring it down to `min`, so the node is declared dead by
    /// `first_failed_probe(n) + suspicion_min(n)`. `extra` is added for the
    /// implementation (swimnet's final probe before declaring dead).
    pub fn dead_bound_confirmed(&self, n: u32, extra: Duration) -> Duration {
        self.first_failed_probe(n) + self.suspicion_min(n) + extra
    }

    /// The same bound when no confirmation arrives (timer = max when k ≥ 1).
    pub fn dead_bound_unconfirmed(&self, n: u32, extra: Duration) -> Duration {
        let timer = if self.confirmations_wanted(n) >= 1 {
            self.suspicion_max(n)
        } else {
            self.suspicion_min(n)
        };
        self.first_failed_probe(n) + timer + extra
    }
}

// ---------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------

/// A child process that is killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Non-blocking: the exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
            }
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Sends a signal by PID (`kill -SIG pid`). Only to our own child, and
    /// only while it has not been reaped.
    pub fn signal(&mut self, sig: &str) {
        if !self.is_running() {
            return;
        }
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(
            st.success(),
            "kill -{sig} {} ({}) failed",
            self.pid(),
            self.name
        );
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            if let Ok(st) = self.child.wait() {
                self.exited = Some(st);
            }
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop: SIGINT, wait up to `timeout`, then SIGKILL. Returns
    /// the exit status if it exited by itself.
    pub fn stop_gracefully(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("INT");
        let st = self.wait_exit(timeout);
        if st.is_none() {
            self.kill9();
        }
        st
    }

    pub fn log_text(&self) -> String {
        read_lossy(&self.log)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_text(), lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let running = self.is_running();
        if running {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "----- {} (pid {}, {}), last lines of {} -----\n{}",
                self.name,
                self.child.id(),
                if running { "was running" } else { "had exited" },
                self.log.display(),
                self.log_tail(40)
            );
        }
    }
}

fn read_lossy(p: &Path) -> String {
    match fs::read(p) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    }
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Output of a short command run with a deadline.
#[derive(Debug)]
pub struct CmdOut {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub cmdline: String,
}

impl CmdOut {
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {}{}\nstdout: {}\nstderr: {}",
            self.cmdline,
            match self.code {
                Some(c) => format!("exit {c}"),
                None => "killed".into(),
            },
            if self.timed_out { " (timed out)" } else { "" },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs a command to completion, killing it after `timeout`.
pub fn run_cmd(program: &Path, args: &[String], timeout: Duration) -> CmdOut {
    let cmdline = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{cmdline}`: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    CmdOut {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
        cmdline,
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The serf binary; panics (the test fails, never skips) when it is missing
/// or does not run.
pub fn serf_bin() -> PathBuf {
    let bin = match std::env::var_os("SERF_BIN") {
        Some(p) => PathBuf::from(p),
        None => find_in_path("serf").unwrap_or_else(|| {
            panic!("serf not found in PATH: {INSTALL_HINT}");
        }),
    };
    assert!(
        bin.is_file(),
        "serf not found at {}: {INSTALL_HINT}",
        bin.display()
    );
    let out = run_cmd(&bin, &["version".to_string()], Duration::from_secs(10));
    assert!(
        out.ok() && out.stdout.contains("Agent Protocol"),
        "`{} version` does not work ({}): {INSTALL_HINT}",
        bin.display(),
        out.describe()
    );
    bin
}

pub fn swimnet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_swimnet"))
}

/// A new key from `serf keygen` (base64 of 32 random bytes).
pub fn keygen() -> String {
    let out = run_cmd(
        &serf_bin(),
        &["keygen".to_string()],
        Duration::from_secs(10),
    );
    assert!(out.ok(), "serf keygen failed: {}", out.describe());
    out.stdout.trim().to_string()
}

// ---------------------------------------------------------------------------
// test environment
// ---------------------------------------------------------------------------

/// One test's loopback network `127.0.<net>.0/24`, log directory and pid file.
pub struct Env {
    pub test: String,
    pub net: u8,
    pub dir: PathBuf,
    pub serf: PathBuf,
    pub swimnet: PathBuf,
    setpriv: Option<PathBuf>,
    pidfile: PathBuf,
}

impl Env {
    /// `net` picks the third octet. `SWIMNET_INTEROP_NET_OFFSET` shifts all
    /// of them (e.g. to run two copies of the suite side by side).
    pub fn new(test: &str, net: u8) -> Env {
        let offset: u16 = std::env::var("SWIMNET_INTEROP_NET_OFFSET")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let net = u8::try_from((net as u16 + offset) % 256).unwrap();
        let serf = serf_bin();
        let swimnet = swimnet_bin();
        assert!(
            swimnet.is_file(),
            "swimnet binary missing at {}",
            swimnet.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("interop_serf")
            .join(test);
        let pidfile = dir.join("pids");
        kill_stale(&pidfile, net);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create log dir");
        let setpriv = find_in_path("setpriv").filter(|p| {
            run_cmd(
                p,
                &[
                    "--pdeathsig".into(),
                    "KILL".into(),
                    "--".into(),
                    "true".into(),
                ],
                Duration::from_secs(5),
            )
            .ok()
        });
        eprintln!(
            "[{test}] logs in {} (network 127.0.{net}.0/24)",
            dir.display()
        );
        Env {
            test: test.to_string(),
            net,
            dir,
            serf,
            swimnet,
            setpriv,
            pidfile,
        }
    }

    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.net, host)
    }

    /// Starts a long-running process with stdout+stderr to `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str, program: &Path, args: &[String]) -> Proc {
        let log = self.dir.join(format!("{name}.log"));
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log");
        let f2 = f.try_clone().expect("dup log fd");
        let mut cmd = match &self.setpriv {
            Some(sp) => {
                let mut c = Command::new(sp);
                c.args(["--pdeathsig", "KILL", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args).stdin(Stdio::null()).stdout(f).stderr(f2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {:?}: {e}", program.display(), args));
        if let Ok(mut pf) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.pidfile)
        {
            let _ = writeln!(pf, "{}", child.id());
        }
        Proc {
            name: name.to_string(),
            log,
            child,
            exited: None,
        }
    }

    fn check_free(&self, ip: Ipv4Addr, name: &str) {
        if let Err(e) = UdpSocket::bind((ip, GOSSIP_PORT)) {
            panic!(
                "[{}] cannot start {name}: {ip}:{GOSSIP_PORT} is in use ({e}); an agent from an \
                 earlier run may still be running",
                self.test
            );
        }
    }

    /// Starts a serf agent on `127.0.<net>.<host>:7946` (RPC on :7373) with
    /// `-profile=local -log-level=debug` and waits until its RPC answers.
    pub fn serf(&self, name: &str, host: u8, opts: &SerfOpts) -> Serf {
        let ip = self.ip(host);
        self.check_free(ip, name);
        let mut args = vec![
            "agent".to_string(),
            format!("-node={name}"),
            format!("-bind={ip}:{GOSSIP_PORT}"),
            format!("-rpc-addr={ip}:{SERF_RPC_PORT}"),
            "-profile=local".into(),
            "-log-level=debug".into(),
        ];
        if let Some(k) = &opts.key {
            args.push(format!("-encrypt={k}"));
        }
        for (k, v) in &opts.tags {
            args.push("-tag".into());
            args.push(format!("{k}={v}"));
        }
        for j in &opts.join {
            args.push(format!("-join={j}"));
        }
        let proc = self.spawn(name, &self.serf, &args);
        let mut s = Serf {
            name: name.to_string(),
            ip,
            bin: self.serf.clone(),
            proc,
        };
        if opts.expect_start_failure {
            return s;
        }
        // Up when its RPC lists itself; with -join, when the join went
        // through too (serf starts its RPC first, then joins, and exits if
        // the join fails).
        let want = if opts.join.is_empty() { 1 } else { 2 };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = s.proc.try_exit() {
                panic!(
                    "serf agent {name} exited during start-up ({st}) (if serf itself is broken: \
                     {INSTALL_HINT})\n{}",
                    s.proc.log_tail(30)
                );
            }
            if let Ok(m) = s.members() {
                if m.iter().any(|x| x.name == name) && m.len() >= want {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "serf agent {name} did not start within 20 s:\n{}",
                s.proc.log_tail(30)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `swimnet agent --protocol serf --profile local` on
    /// `127.0.<net>.<host>:7946` with its API on :7380, and waits until the
    /// API lists the node itself.
    pub fn swim(&self, name: &str, host: u8, opts: &SwimOpts) -> Swim {
        let ip = self.ip(host);
        self.check_free(ip, name);
        let mut args = vec![
            "agent".to_string(),
            "--node".into(),
            name.into(),
            "--bind".into(),
            format!("{ip}:{GOSSIP_PORT}"),
            "--api".into(),
            format!("{ip}:{SWIM_API_PORT}"),
            "--profile".into(),
            opts.profile.unwrap_or("local").into(),
            "--protocol".into(),
            "serf".into(),
            "--log-level".into(),
            "debug".into(),
        ];
        if let Some(k) = &opts.key {
            args.push("--encrypt".into());
            args.push(k.clone());
        }
        for (k, v) in &opts.tags {
            args.push("--tag".into());
            args.push(format!("{k}={v}"));
        }
        for j in &opts.join {
            args.push("--join".into());
            args.push(j.clone());
        }
        let proc = self.spawn(name, &self.swimnet, &args);
        let mut s = Swim {
            name: name.to_string(),
            ip,
            bin: self.swimnet.clone(),
            proc,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = s.proc.try_exit() {
                panic!(
                    "swimnet agent {name} exited during start-up ({st}):\n{}",
                    s.proc.log_tail(30)
                );
            }
            if let Ok(m) = s.members() {
                if m.iter().any(|x| x.name == name) {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "swimnet agent {name} did not serve its API within 20 s:\n{}",
                s.proc.log_tail(30)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Kills agents left over from an earlier run of the same test (by PID from
/// the pid file, only if the command line still is one of our agents on
/// this test's network).
fn kill_stale(pidfile: &Path, net: u8) {
    let text = read_lossy(pidfile);
    let needle = format!("127.0.{net}.");
    for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let cmdline = read_lossy(Path::new(&format!("/proc/{pid}/cmdline"))).replace('\0', " ");
        let ours = cmdline.contains(&needle)
            && (cmdline.contains("serf agent") || cmdline.contains("swimnet agent"));
        if ours {
            eprintln!("killing stale agent {pid}: {cmdline}");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[derive(Default, Clone)]
pub struct SerfOpts {
    pub key: Option<String>,
    pub tags: Vec<(String, String)>,
    pub join: Vec<String>,
    /// Do not wait for the RPC (the agent is expected to exit, e.g. a failing `-join`).
    pub expect_start_failure: bool,
}

#[derive(Default, Clone)]
pub struct SwimOpts {
    pub key: Option<String>,
    pub tags: Vec<(String, String)>,
    pub join: Vec<String>,
    /// Timer profile (`--profile`); `local` when unset.
    pub profile: Option<&'static str>,
}

pub fn tags(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------
// members
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub status: String,
    pub tags: BTreeMap<String, String>,
    pub protocol: Option<(u64, u64, u64)>,
    pub incarnation: Option<u64>,
}

/// Parses `{"members":[...]}` (serf's `members -format=json` and swimnet's).
pub fn parse_members(json: &str) -> Result<Vec<Member>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("bad JSON ({e}): {json}"))?;
    let arr = v
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no \"members\" array: {json}"))?;
    let mut out = Vec::new();
    for m in arr {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let name = s("name").ok_or_else(|| format!("member without name: {m}"))?;
        let status = s("status").ok_or_else(|| format!("member without status: {m}"))?;
        let addr = s("addr").unwrap_or_default();
        let mut tags = BTreeMap::new();
        if let Some(t) = m.get("tags").and_then(Value::as_object) {
            for (k, v) in t {
                tags.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
        }
        let protocol = m.get("protocol").and_then(|p| {
            Some((
                p.get("min")?.as_u64()?,
                p.get("max")?.as_u64()?,
                p.get("version")?.as_u64()?,
            ))
        });
        let incarnation = m.get("incarnation").and_then(Value::as_u64);
        out.push(Member {
            name,
            addr,
            status,
            tags,
            protocol,
            incarnation,
        });
    }
    Ok(out)
}

pub fn find<'a>(members: &'a [Member], name: &str) -> Option<&'a Member> {
    members.iter().find(|m| m.name == name)
}

pub fn status_of(members: &[Member], name: &str) -> Option<String> {
    find(members, name).map(|m| m.status.clone())
}

pub fn summary(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.status))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Anything that can report its view of the membership.
pub trait Node {
    fn name(&self) -> &str;
    fn members(&self) -> Result<Vec<Member>, String>;
    fn observer(&self) -> Observer;
}

// ---------------------------------------------------------------------------
// serf agent
// ---------------------------------------------------------------------------

pub struct Serf {
    pub name: String,
    pub ip: Ipv4Addr,
    pub bin: PathBuf,
    pub proc: Proc,
}

impl Serf {
    pub fn addr(&self) -> String {
        format!("{}:{GOSSIP_PORT}", self.ip)
    }

    pub fn rpc(&self) -> String {
        format!("{}:{SERF_RPC_PORT}", self.ip)
    }

    /// `serf <sub> -rpc-addr=<ours> <args...>`.
    pub fn cmd(&self, sub: &str, args: &[&str]) -> CmdOut {
        let mut a = vec![sub.to_string(), format!("-rpc-addr={}", self.rpc())];
        a.extend(args.iter().map(|s| s.to_string()));
        run_cmd(&self.bin, &a, Duration::from_secs(30))
    }

    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

impl Node for Serf {
    fn name(&self) -> &str {
        &self.name
    }

    fn members(&self) -> Result<Vec<Member>, String> {
        serf_members(&self.bin, &self.rpc())
    }

    fn observer(&self) -> Observer {
        Observer::Serf {
            name: self.name.clone(),
            bin: self.bin.clone(),
            rpc: self.rpc(),
        }
    }
}

fn serf_members(bin: &Path, rpc: &str) -> Result<Vec<Member>, String> {
    let out = run_cmd(
        bin,
        &[
            "members".into(),
            "-format=json".into(),
            format!("-rpc-addr={rpc}"),
        ],
        Duration::from_secs(10),
    );
    if !out.ok() {
        return Err(out.describe());
    }
    parse_members(&out.stdout)
}

// ---------------------------------------------------------------------------
// swimnet agent
// ---------------------------------------------------------------------------

pub struct Swim {
    pub name: String,
    pub ip: Ipv4Addr,
    pub bin: PathBuf,
    pub proc: Proc,
}

impl Swim {
    pub fn addr(&self) -> String {
        format!("{}:{GOSSIP_PORT}", self.ip)
    }

    pub fn api(&self) -> String {
        format!("{}:{SWIM_API_PORT}", self.ip)
    }

    /// `swimnet <sub> --api <ours> <args...>` (the CLI contract puts
    /// `--api` right after the subcommand).
    pub fn cli(&self, sub: &str, args: &[&str]) -> CmdOut {
        let mut a = vec![sub.to_string(), "--api".into(), self.api()];
        a.extend(args.iter().map(|s| s.to_string()));
        run_cmd(&self.bin, &a, Duration::from_secs(30))
    }

    /// `swimnet members --api X --format json`.
    pub fn members_cli(&self) -> Result<Vec<Member>, String> {
        let out = self.cli("members", &["--format", "json"]);
        if !out.ok() {
            return Err(out.describe());
        }
        parse_members(&out.stdout)
    }

    /// `GET /v1/stats`.
    pub fn stats(&self) -> Result<Value, String> {
        let (code, body) = http(&self.api(), "GET", "/v1/stats", None)
            .map_err(|e| format!("GET /v1/stats: {e}"))?;
        if code != 200 {
            return Err(format!("GET /v1/stats -> {code}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("bad stats JSON ({e}): {body}"))
    }

    /// A counter from `stats.stats`.
    pub fn stat(&self, key: &str) -> Result<u64, String> {
        let v = self.stats()?;
        v.get("stats")
            .and_then(|s| s.get(key))
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no stats.{key} in {v}"))
    }

    pub fn incarnation(&self) -> Result<u64, String> {
        let v = self.stats()?;
        v.get("incarnation")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no incarnation in {v}"))
    }

    /// `swimnet keys --api X list --format json` → (primary, keys).
    pub fn keys(&self) -> Result<(String, Vec<String>), String> {
        let out = self.cli("keys", &["list", "--format", "json"]);
        if !out.ok() {
            return Err(out.describe());
        }
        let v: Value = serde_json::from_str(&out.stdout)
            .map_err(|e| format!("bad keys JSON ({e}): {}", out.stdout))?;
        let primary = v
            .get("primary")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no primary: {v}"))?
            .to_string();
        let keys = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no keys: {v}"))?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        Ok((primary, keys))
    }

    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

impl Node for Swim {
    fn name(&self) -> &str {
        &self.name
    }

    /// `GET /v1/members` (cheaper than the CLI for polling loops).
    fn members(&self) -> Result<Vec<Member>, String> {
        swim_members_http(&self.api())
    }

    fn observer(&self) -> Observer {
        Observer::Swim {
            name: self.name.clone(),
            api: self.api(),
        }
    }
}

fn swim_members_http(api: &str) -> Result<Vec<Member>, String> {
    let (code, body) =
        http(api, "GET", "/v1/members", None).map_err(|e| format!("GET {api}/v1/members: {e}"))?;
    if code != 200 {
        return Err(format!("GET {api}/v1/members -> {code}: {body}"));
    }
    parse_members(&body)
}

/// A minimal HTTP/1.1 client (one request per connection).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let sa: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("malformed HTTP response: {text:?}")))?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

// ---------------------------------------------------------------------------
// polling
// ---------------------------------------------------------------------------

/// Polls `f` every `poll` until it returns `Ok` or `timeout` passes; returns
/// the value and the time it took, or the last error.
pub fn poll_until<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> Result<(T, Duration), String> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok((v, start.elapsed())),
            Err(e) => {
                if start.elapsed() >= timeout {
                    return Err(e);
                }
            }
        }
        thread::sleep(poll);
    }
}

/// Like [`poll_until`] with a 100 ms poll, panicking with `what` on timeout.
pub fn wait_for<T>(
    what: impl Display,
    timeout: Duration,
    f: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    match poll_until(timeout, Duration::from_millis(100), f) {
        Ok(v) => v,
        Err(e) => panic!("timed out after {timeout:?} waiting for {what}; last state: {e}"),
    }
}

/// Condition: `node` lists each of `names` with status `status`.
pub fn shows(node: &dyn Node, names: &[&str], status: &str) -> Result<Vec<Member>, String> {
    let m = node.members()?;
    for n in names {
        match status_of(&m, n) {
            Some(s) if s == status => {}
            other => {
                return Err(format!(
                    "{} shows {n} as {:?} (want {status}); view: {}",
                    node.name(),
                    other,
                    summary(&m)
                ))
            }
        }
    }
    Ok(m)
}

/// Waits until every node in `observers` lists every name in `names` alive.
pub fn wait_all_alive(observers: &[&dyn Node], names: &[&str], timeout: Duration) -> Duration {
    let (_, took) = wait_for(format!("{names:?} alive everywhere"), timeout, || {
        for o in observers {
            shows(*o, names, "alive")?;
        }
        Ok(())
    });
    took
}

// ---------------------------------------------------------------------------
// membership monitor
// ---------------------------------------------------------------------------

/// Where the monitor reads a membership view from.
#[derive(Clone, Debug)]
pub enum Observer {
    Serf {
        name: String,
        bin: PathBuf,
        rpc: String,
    },
    Swim {
        name: String,
        api: String,
    },
}

impl Observer {
    fn name(&self) -> &str {
        match self {
            Observer::Serf { name, .. } | Observer::Swim { name, .. } => name,
        }
    }

    fn members(&self) -> Result<Vec<Member>, String> {
        match self {
            Observer::Serf { bin, rpc, .. } => serf_members(bin, rpc),
            Observer::Swim { api, .. } => swim_members_http(api),
        }
    }
}

#[derive(Debug, Default)]
pub struct MonitorReport {
    pub rounds: u64,
    /// "t=…s <observer> saw <subject> <status>"
    pub violations: Vec<String>,
    /// Failed queries (an observer that did not answer).
    pub errors: Vec<String>,
}

/// Polls every observer's view in a background thread and records every
/// time one of `subjects` is seen in a status other than `alive` (or, with
/// `require_present`, missing).
pub struct Monitor {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<MonitorReport>>,
}

impl Monitor {
    pub fn start(
        observers: Vec<Observer>,
        subjects: Vec<String>,
        require_present: bool,
    ) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let mut rep = MonitorReport::default();
            while !stop2.load(Ordering::Relaxed) {
                for o in &observers {
                    match o.members() {
                        Ok(m) => {
                            for s in &subjects {
                                let st = status_of(&m, s);
                                let bad = match &st {
                                    Some(st) => st != "alive",
                                    None => require_present,
                                };
                                if bad && rep.violations.len() < 200 {
                                    rep.violations.push(format!(
                                        "t={:.1}s {} saw {s} {}",
                                        start.elapsed().as_secs_f64(),
                                        o.name(),
                                        st.as_deref().unwrap_or("missing")
                                    ));
                                }
                            }
                        }
                        Err(e) => {
                            if rep.errors.len() < 50 {
                                rep.errors.push(format!(
                                    "t={:.1}s {}: {e}",
                                    start.elapsed().as_secs_f64(),
                                    o.name()
                                ));
                            }
                        }
                    }
                }
                rep.rounds += 1;
                thread::sleep(Duration::from_millis(200));
            }
            rep
        });
        Monitor {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> MonitorReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().expect("monitor thread")
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------
// serf log checks
// ---------------------------------------------------------------------------

/// serf/memberlist log lines that must not appear in a healthy mixed
/// cluster. Per-node patterns are checked for every name in `names`.
pub fn serf_log_problems(log: &str, names: &[&str], allow_decrypt_errors: bool) -> Vec<String> {
    let mut generic = vec![
        "Failed push/pull merge",
        "Push/Pull with",
        "Got invalid checksum",
        "Failed to decode",
        "Unsupported ping version",
        "Failed to decompress",
        "not supported",
        "Received invalid msgType",
        "Conflicting address",
        "incompatible",
        "Refuting a suspect message",
        "Refuting a dead message",
        "Refuting an alive message",
        "failed to receive",
        "Failed to read remote state",
        "Failed to push local state",
        "handler queue full",
        "truncated messages",
    ];
    if !allow_decrypt_errors {
        generic.push("Decrypt packet failed");
        generic.push("No installed keys could decrypt");
    }
    let allowed = |l: &str| {
        allow_decrypt_errors
            && (l.contains("No installed keys could decrypt")
                || l.contains("Decrypt packet failed"))
    };
    let mut per_node = Vec::new();
    for n in names {
        per_node.push(format!("Suspect {n} has failed"));
        per_node.push(format!("Marking {n} as failed"));
        per_node.push(format!("EventMemberFailed: {n} "));
        per_node.push(format!("Failed ping: {n} ("));
        per_node.push(format!("Was able to connect to {n} but"));
    }
    log.lines()
        .filter(|l| !allowed(l))
        .filter(|l| {
            generic.iter().any(|p| l.contains(p)) || per_node.iter().any(|p| l.contains(p.as_str()))
        })
        .map(|l| l.trim().to_string())
        .collect()
}

/// Panics with every problem line found in the serf agents' logs.
pub fn assert_serf_logs_clean(
    serfs: &[&Serf],
    names: &[&str],
    allow_decrypt_errors: bool,
    when: &str,
) {
    let mut all = Vec::new();
    for s in serfs {
        for l in serf_log_problems(&s.log(), names, allow_decrypt_errors) {
            all.push(format!("{}: {l}", s.name));
        }
    }
    assert!(
        all.is_empty(),
        "{when}: problem lines in serf logs:\n{}",
        all.join("\n")
    );
}

// ---------------------------------------------------------------------------
// raw memberlist packets
// ---------------------------------------------------------------------------

fn mp_str(out: &mut Vec<u8>, b: &[u8]) {
    assert!(b.len() < 32);
    out.push(0xa0 | b.len() as u8);
    out.extend_from_slice(b);
}

/// The plaintext ping of spec Appendix A (first vector: SeqNo 7, SourceNode
/// "n1") with `Node` set to the target's name and the Source address set to
/// the sending socket, so an ack would come back to it.
pub fn plaintext_ping(target: &str, src: SocketAddr) -> Vec<u8> {
    let ip = match src {
        SocketAddr::V4(a) => a.ip().octets(),
        SocketAddr::V6(_) => panic!("IPv4 only"),
    };
    let mut m = vec![0x00, 0x85];
    mp_str(&mut m, b"Node");
    mp_str(&mut m, target.as_bytes());
    mp_str(&mut m, b"SeqNo");
    m.push(0x07);
    mp_str(&mut m, b"SourceAddr");
    mp_str(&mut m, &ip);
    mp_str(&mut m, b"SourceNode");
    mp_str(&mut m, b"n1");
    mp_str(&mut m, b"SourcePort");
    m.push(0xcd);
    m.extend_from_slice(&src.port().to_be_bytes());
    m
}

/// Sends the plaintext ping from a socket bound to `from` (port chosen by
/// the kernel) to `to:7946` and returns whatever datagram comes back within
/// `wait` (None if nothing does).
pub fn ping_plaintext(
    from: Ipv4Addr,
    to: Ipv4Addr,
    target: &str,
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((from, 0)).expect("bind UDP prober");
    let src = sock.local_addr().unwrap();
    let pkt = plaintext_ping(target, src);
    sock.send_to(&pkt, (to, GOSSIP_PORT)).expect("send ping");
    let mut buf = [0u8; 65536];
    sock.set_read_timeout(Some(wait)).unwrap();
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            None
        }
        Err(e) => panic!("recv: {e}"),
    }
}

/// Checks the Appendix A vector is reproduced byte for byte by
/// [`plaintext_ping`] when given the vector's own fields.
pub fn check_ping_vector() {
    let got = plaintext_ping("n2", "127.0.0.1:7946".parse().unwrap());
    let want = "0085a44e6f6465a26e32a55365714e6f07aa536f7572636541646472a47f000001aa536f757263654e6f6465a26e31aa536f75726365506f7274cd1f0a";
    let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex, want,
        "plaintext ping encoder does not match spec Appendix A"
    );
}

pub fn file_exists(p: &Path) -> bool {
    File::open(p).is_ok()
}
