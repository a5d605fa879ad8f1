//! Restart without loss against live agents (`--data-dir`): an agent killed
//! (`kill -9`) or stopped gracefully and started again with the same data
//! dir and no `--join` is a member again, attached to its networks, with
//! its own entries back on every agent; a corrupt snapshot is skipped and
//! another node's refused.
//!
//! Networks: 127.0.220.0/24 .. 127.0.222.0/24.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const NET_ID: &str = "n1";
const TABLE: &str = "t";

/// One `swimnet agent` process and where it lives.
struct Agent {
    name: String,
    ip: std::net::Ipv4Addr,
    data: PathBuf,
    proc: Proc,
}

impl Agent {
    fn api(&self) -> String {
        format!("{}:{SWIM_API_PORT}", self.ip)
    }
    fn gossip(&self) -> String {
        format!("{}:{GOSSIP_PORT}", self.ip)
    }
    fn get(&self, path: &str) -> Result<serde_json::Value, String> {
        let (code, body) = http(&self.api(), "GET", path, None).map_err(|e| e.to_string())?;
        if code != 200 {
            return Err(format!("GET {path} -> {code}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }
    fn send(&self, method: &str, path: &str, body: &str) {
        let (code, text) = http(&self.api(), method, path, Some(body)).expect("API answers");
        assert_eq!(code, 200, "{method} {path}: {text}");
    }
    /// `swimnet table put NET_ID TABLE key value` against this agent.
    fn put(&self, key: &str, value: &str) {
        let args: Vec<String> = [
            "table",
            "--api",
            &self.api(),
            "put",
            NET_ID,
            TABLE,
            key,
            value,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = run_cmd(&swimnet_bin(), &args, Duration::from_secs(10));
        assert_eq!(out.code, Some(0), "{}: {}", out.cmdline, out.stderr);
    }
    /// `key=value@owner` of every entry of NET_ID/TABLE, sorted.
    fn table(&self) -> Result<Vec<String>, String> {
        let v = self.get(&format!("/v1/tables/{NET_ID}/{TABLE}"))?;
        let mut out: Vec<String> = v["entries"]
            .as_array()
            .ok_or("no entries")?
            .iter()
            .map(|e| {
                let raw = b64_decode(e["value"].as_str().unwrap_or(""));
                format!(
                    "{}={}@{}",
                    e["key"].as_str().unwrap_or(""),
                    raw,
                    e["owner"].as_str().unwrap_or("")
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }
    fn alive(&self) -> Result<Vec<String>, String> {
        let (code, body) =
            http(&self.api(), "GET", "/v1/members", None).map_err(|e| e.to_string())?;
        if code != 200 {
            return Err(body);
        }
        let m = parse_members(&body)?;
        let mut names: Vec<String> = m
            .into_iter()
            .filter(|x| x.status == "alive")
            .map(|x| x.name)
            .collect();
        names.sort();
        Ok(names)
    }
}

fn b64_decode(s: &str) -> String {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default();
    String::from_utf8_lossy(&raw).into_owned()
}

/// Starts `swimnet agent` on `127.0.<net>.<host>` with `--data-dir` and
/// waits for its API (or returns once it exited, for `expect_exit`).
fn start(
    env: &Env,
    name: &str,
    host: u8,
    protocol: &str,
    join: Option<&Agent>,
    data: &Path,
    expect_exit: bool,
) -> Agent {
    let ip = env.ip(host);
    let mut args = env.agent_args(name, host, protocol);
    args.extend([
        "--log-level".to_string(),
        "info".to_string(),
        "--data-dir".to_string(),
        data.display().to_string(),
    ]);
    if let Some(j) = join {
        args.push("--join".into());
        args.push(j.gossip());
    }
    let proc = env.spawn(name, &env.swimnet, &args);
    let mut a = Agent {
        name: name.into(),
        ip,
        data: data.to_path_buf(),
        proc,
    };
    if expect_exit {
        return a;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.alive().map_or(true, |m| !m.contains(&a.name)) {
        assert!(
            a.proc.is_running(),
            "{name} exited:\n{}",
            a.proc.log_tail(20)
        );
        assert!(
            Instant::now() < deadline,
            "{name} API not up:\n{}",
            a.proc.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a
}

/// Waits until `f` holds for every agent in `on`.
fn wait_on(
    what: &str,
    on: &[&Agent],
    timeout: Duration,
    f: impl Fn(&Agent) -> Result<(), String>,
) -> Duration {
    let (_, took) = wait_for(what, timeout, || {
        for a in on {
            f(a).map_err(|e| format!("{}: {e}", a.name))?;
        }
        Ok(())
    });
    took
}

fn has_table(want: &[String]) -> impl Fn(&Agent) -> Result<(), String> + '_ {
    move |a| {
        let t = a.table()?;
        if t == want {
            Ok(())
        } else {
            Err(format!("table {t:?}"))
        }
    }
}

fn sees_alive<'a>(names: &'a [&'a str]) -> impl Fn(&Agent) -> Result<(), String> + 'a {
    move |a| {
        let m = a.alive()?;
        match names.iter().find(|n| !m.iter().any(|x| x == *n)) {
            None => Ok(()),
            Some(n) => Err(format!("{n} not alive in {m:?}")),
        }
    }
}

fn data_dir(env: &Env, name: &str) -> PathBuf {
    env.dir.join(format!("data-{name}"))
}

/// B's entries and A's one, as every agent should list them.
fn expected(b: &str, a: &str) -> Vec<String> {
    let mut v: Vec<String> = (0..5).map(|i| format!("b{i}=value-{i}@{b}")).collect();
    v.push(format!("a0=from-a@{a}"));
    v.sort();
    v
}

#[test]
fn networkdb_agent_restarted_from_its_data_dir_gets_networks_and_entries_back() {
    let env = Env::new("restart_networkdb", 220);
    let a = start(&env, "a", 1, "networkdb", None, &data_dir(&env, "a"), false);
    let mut b = start(
        &env,
        "b",
        2,
        "networkdb",
        Some(&a),
        &data_dir(&env, "b"),
        false,
    );
    let c = start(
        &env,
        "c",
        3,
        "networkdb",
        Some(&a),
        &data_dir(&env, "c"),
        false,
    );
    wait_on(
        "all alive",
        &[&a, &b, &c],
        secs(20),
        sees_alive(&["a", "b", "c"]),
    );
    for x in [&a, &b, &c] {
        x.send("POST", &format!("/v1/networks/{NET_ID}/join"), "");
    }
    for i in 0..5 {
        b.put(&format!("b{i}"), &format!("value-{i}"));
    }
    a.put("a0", "from-a");
    let want = expected("b", "a");
    wait_on(
        "entries everywhere",
        &[&a, &b, &c],
        secs(20),
        has_table(&want),
    );
    // The snapshot is written within about a second of a change.
    std::thread::sleep(Duration::from_millis(2500));
    let snap = b.data.join("snapshot");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&snap)
            .expect("snapshot written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // kill -9, then start again with the same data dir and no --join.
    b.proc.kill9();
    let t0 = Instant::now();
    b = start(&env, "b", 2, "networkdb", None, &data_dir(&env, "b"), false);
    let took = wait_on("b back after kill -9", &[&a, &b, &c], secs(30), |x| {
        sees_alive(&["a", "b", "c"])(x)?;
        has_table(&want)(x)
    });
    eprintln!(
        "back after kill -9 in {:?} ({took:?} after start)",
        t0.elapsed()
    );
    let nets = b.get("/v1/networks").unwrap();
    assert_eq!(nets["networks"], serde_json::json!([NET_ID]));
    assert!(b
        .proc
        .log_text()
        .contains("rejoining through the remembered members"));
    let rss = procstat::rss_kib(b.proc.pid());
    assert!(rss < 64 * 1024, "restarted agent RSS {rss} KiB");

    // Graceful stop: the leave deletes B's entries cluster-wide ...
    std::thread::sleep(Duration::from_millis(1500));
    assert!(b
        .proc
        .stop_gracefully(secs(15))
        .is_some_and(|s| s.success()));
    let only_a = vec![format!("a0=from-a@a")];
    wait_on(
        "b's entries deleted by its leave",
        &[&a, &c],
        secs(20),
        has_table(&only_a),
    );
    // ... and a restart brings them back.
    b = start(&env, "b", 2, "networkdb", None, &data_dir(&env, "b"), false);
    wait_on(
        "b back after a graceful stop",
        &[&a, &b, &c],
        secs(30),
        |x| {
            sees_alive(&["a", "b", "c"])(x)?;
            has_table(&want)(x)
        },
    );
    assert_eq!(
        b.get("/v1/networks").unwrap()["networks"],
        serde_json::json!([NET_ID])
    );
    drop((a, b, c));
}

#[test]
fn memberlist_agent_restarted_without_join_rejoins() {
    let env = Env::new("restart_memberlist", 221);
    let a = start(
        &env,
        "a",
        1,
        "memberlist",
        None,
        &data_dir(&env, "a"),
        false,
    );
    let mut b = start(
        &env,
        "b",
        2,
        "memberlist",
        Some(&a),
        &data_dir(&env, "b"),
        false,
    );
    wait_on("both alive", &[&a, &b], secs(20), sees_alive(&["a", "b"]));
    std::thread::sleep(Duration::from_millis(2500));
    b.proc.kill9();
    b = start(
        &env,
        "b",
        2,
        "memberlist",
        None,
        &data_dir(&env, "b"),
        false,
    );
    wait_on("b rejoined", &[&a, &b], secs(30), sees_alive(&["a", "b"]));
    drop((a, b));
}

#[test]
fn corrupt_snapshot_is_skipped_and_another_nodes_is_refused() {
    let env = Env::new("restart_bad_snapshot", 222);
    let dir = data_dir(&env, "x");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("snapshot"),
        "swimnet-snapshot 1 999 00000000\n{\"node\":",
    )
    .unwrap();
    let mut x = start(&env, "x", 1, "networkdb", None, &dir, false);
    let log = x.proc.log_text();
    assert!(log.contains("snapshot skipped"), "{log}");
    assert!(
        log.contains(&dir.join("snapshot").display().to_string()),
        "path logged: {log}"
    );
    assert!(dir.join("snapshot.corrupt").is_file());
    // x writes its own snapshot; an agent of another name refuses it.
    wait_for("x wrote its snapshot", secs(10), || {
        dir.join("snapshot")
            .is_file()
            .then_some(())
            .ok_or("not yet".to_string())
    });
    assert!(x.proc.stop_gracefully(secs(15)).is_some());
    let mut y = start(&env, "y", 2, "networkdb", None, &dir, true);
    let st = y.proc.wait_exit(secs(15)).expect("y exits");
    assert!(!st.success());
    let log = y.proc.log_text();
    assert!(
        log.contains("holds the snapshot of node \"x\", not \"y\""),
        "{log}"
    );
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
