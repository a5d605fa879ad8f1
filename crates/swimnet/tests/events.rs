//! The agent's events against live agents: `--event-handler` invocations
//! with Serf's environment and stdin, a handler past its timeout killed
//! while gossip goes on, `GET /v1/events` with its filters and stream cap,
//! `swimnet monitor`, and table events in networkdb mode. Each test has its
//! own `127.0.<net>.0/24` (nets 250-253).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Starts `swimnet agent` on `127.0.<net>.<host>` (gossip :7946, API
/// :7380, local profile) with `extra` flags, and waits for its API.
fn agent(env: &Env, name: &str, host: u8, protocol: &str, extra: &[String]) -> Proc {
    let ip = env.ip(host);
    let mut args = env.agent_args(name, host, protocol);
    args.extend_from_slice(extra);
    let mut p = env.spawn(name, &env.swimnet, &args);
    let api = format!("{ip}:{SWIM_API_PORT}");
    wait_for(format!("{name}'s API"), Duration::from_secs(20), || {
        if let Some(st) = p.try_exit() {
            panic!("{name} exited ({st}):\n{}", p.log_tail(30));
        }
        match http(&api, "GET", "/v1/members", None) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    p
}

fn api(env: &Env, host: u8) -> String {
    format!("{}:{SWIM_API_PORT}", env.ip(host))
}

/// A `GET` whose body is read line by line as it comes (chunked), on a
/// thread; blank keep-alive lines are skipped.
struct EventStream {
    lines: mpsc::Receiver<String>,
}

impl EventStream {
    /// Opens `path`; answers the status and, for 200, the stream.
    fn open(api: &str, path: &str) -> (u16, Option<EventStream>, String) {
        let mut s = TcpStream::connect(api).expect("connect to the API");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {api}\r\nAccept: application/x-ndjson\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut chunked = false;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            chunked |= h
                .to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked");
            if h.trim().is_empty() {
                break;
            }
        }
        if code != 200 {
            let mut body = String::new();
            r.get_mut()
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let _ = r.read_to_string(&mut body);
            return (code, None, body);
        }
        assert!(chunked, "the event stream is chunked");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            loop {
                let mut size = String::new();
                if r.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                    return;
                };
                if n == 0 {
                    return;
                }
                let mut data = vec![0u8; n + 2];
                if r.read_exact(&mut data).is_err() {
                    return;
                }
                pending.extend_from_slice(&data[..n]);
                while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let line = String::from_utf8_lossy(&line).trim().to_string();
                    if !line.is_empty() && tx.send(line).is_err() {
                        return;
                    }
                }
            }
        });
        (code, Some(EventStream { lines: rx }), String::new())
    }

    /// The next event within `timeout`, or `None`.
    fn next(&self, timeout: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
    }

    /// Events until one satisfies `want` (within `timeout`); returns all
    /// seen, that one last.
    fn until(&self, what: &str, timeout: Duration, want: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(v) => {
                    let done = want(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                None => panic!("no {what} within {timeout:?}; saw {seen:#?}"),
            }
        }
    }
}

/// Writes an executable handler script that records its environment and
/// stdin to `<dir>/<n>.rec` (written whole, then renamed into place).
fn recording_handler(dir: &Path) -> PathBuf {
    let records = dir.join("records");
    std::fs::create_dir_all(&records).unwrap();
    let script = dir.join("record.sh");
    let vars = [
        "SERF_EVENT",
        "SWIMNET_EVENT",
        "SERF_SELF_NAME",
        "SWIMNET_SELF_NAME",
        "SERF_SELF_ROLE",
        "SERF_TAG_ROLE",
        "SERF_TAG_RACK_ID",
        "SWIMNET_NETWORK",
        "SWIMNET_TABLE",
        "SWIMNET_KEY",
        "SERF_USER_EVENT",
        "SERF_USER_LTIME",
    ];
    let mut body = String::from("#!/bin/sh\nf=\"");
    body.push_str(&records.display().to_string());
    body.push_str("/$(date +%s%N)-$$\"\n{\n");
    for v in vars {
        body.push_str(&format!("  echo \"{v}=${v}\"\n"));
    }
    body.push_str("  echo STDIN:\n  cat\n} > \"$f.tmp\" && mv \"$f.tmp\" \"$f.rec\"\n");
    std::fs::write(&script, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Every record written so far, as text.
fn records(dir: &Path) -> Vec<String> {
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(dir.join("records"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "rec"))
                .map(|p| {
                    let t = std::fs::read_to_string(&p).unwrap_or_default();
                    (p, t)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.into_iter().map(|(_, t)| t).collect()
}

/// Waits for a record containing every one of `parts`.
fn wait_record(dir: &Path, parts: &[&str], timeout: Duration) -> String {
    wait_for(format!("a handler record with {parts:?}"), timeout, || {
        let all = records(dir);
        all.iter()
            .find(|r| parts.iter().all(|p| r.contains(p)))
            .cloned()
            .ok_or_else(|| format!("records so far: {all:#?}"))
    })
    .0
}

fn stats(api: &str) -> Value {
    let (code, body) = http(api, "GET", "/v1/stats", None).unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Member names and statuses as `api` lists them.
fn member_status(api: &str) -> Vec<(String, String)> {
    let (code, body) = http(api, "GET", "/v1/members", None).unwrap();
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `swimnet monitor --api API ARGS...`, running in the background (its
/// output in the test's log directory).
fn monitor(env: &Env, api: &str, args: &[&str]) -> Proc {
    let mut a = vec!["monitor".to_string(), "--api".into(), api.into()];
    a.extend(args.iter().map(|s| s.to_string()));
    env.spawn("monitor", &env.swimnet, &a)
}

/// The handler's record of b's join carries Serf's environment and b's
/// member line.
fn check_join_record(env: &Env, b_ip: &str) {
    let rec = wait_record(
        &env.dir,
        &[
            "SERF_EVENT=member-join\n",
            &format!("b\t{b_ip}\tdb\trole=db\n"),
        ],
        Duration::from_secs(20),
    );
    for want in [
        "SWIMNET_EVENT=member-join\n",
        "SERF_SELF_NAME=a\n",
        "SWIMNET_SELF_NAME=a\n",
        "SERF_SELF_ROLE=web\n",
        "SERF_TAG_ROLE=web\n",
        "SERF_TAG_RACK_ID=r1\n",
    ] {
        assert!(rec.contains(want), "{want:?} missing from {rec}");
    }
}

#[test]
fn handlers_and_streams_see_a_join_and_a_failure() {
    let env = Env::new("events_join_failure", 250);
    let script = recording_handler(&env.dir);
    let handler = format!("member-join,member-failed={}", script.display());
    let mut a = agent(
        &env,
        "a",
        1,
        "serf",
        &[
            "--event-handler".into(),
            handler,
            "--tag".into(),
            "role=web".into(),
            "--tag".into(),
            "rack-id=r1".into(),
        ],
    );
    let api_a = api(&env, 1);
    let (code, all, _) = EventStream::open(&api_a, "/v1/events");
    assert_eq!(code, 200);
    let all = all.unwrap();
    let (_, failed_only, _) = EventStream::open(&api_a, "/v1/events?type=member-failed");
    let failed_only = failed_only.unwrap();
    let mut monitor = monitor(&env, &api_a, &["--filter", "member-failed"]);
    let mut b = agent(
        &env,
        "b",
        2,
        "serf",
        &[
            "--join".into(),
            format!("{}:{GOSSIP_PORT}", env.ip(1)),
            "--tag".into(),
            "role=db".into(),
        ],
    );
    let b_ip = env.ip(2).to_string();
    let seen = all.until("member-join of b", Duration::from_secs(20), |v| {
        v["type"] == "member-join" && v["member"]["name"] == "b"
    });
    let join = seen.last().unwrap();
    assert_eq!(join["member"]["status"], "alive");
    assert_eq!(join["member"]["tags"]["role"], "db");
    assert!(join["seq"].as_u64().unwrap() >= 1 && join["time_ms"].as_u64().unwrap() > 0);
    check_join_record(&env, &b_ip);

    let killed = Instant::now();
    b.kill9();
    let seen = all.until("member-failed of b", Duration::from_secs(30), |v| {
        v["type"] == "member-failed" && v["member"]["name"] == "b"
    });
    assert_eq!(seen.last().unwrap()["member"]["status"], "failed");
    let detected = killed.elapsed();
    let rec = wait_record(
        &env.dir,
        &[
            "SERF_EVENT=member-failed\n",
            &format!("b\t{b_ip}\tdb\trole=db\n"),
        ],
        Duration::from_secs(10),
    );
    assert!(rec.contains("SERF_SELF_NAME=a\n"), "{rec}");
    // The filtered stream has the failure and nothing before it.
    let first = failed_only.next(Duration::from_secs(5)).expect("an event");
    assert_eq!(first["type"], "member-failed");
    assert_eq!(first["member"]["name"], "b");
    // Only the two filtered types ran the handler.
    for r in records(&env.dir) {
        assert!(
            r.contains("SERF_EVENT=member-join\n") || r.contains("SERF_EVENT=member-failed\n"),
            "a handler ran for an event outside its filter: {r}"
        );
    }
    wait_for(
        "monitor's member-failed line",
        Duration::from_secs(10),
        || {
            let log = monitor.log_text();
            let line = log.lines().find(|l| l.contains("member-failed"));
            match line {
                Some(l) if l.contains("node=b") && l.contains(&format!("addr={b_ip}:7946")) => {
                    Ok(())
                }
                _ => Err(log),
            }
        },
    );
    assert!(
        !monitor.log_text().contains("member-join"),
        "monitor --filter member-failed printed a join:\n{}",
        monitor.log_text()
    );
    let s = stats(&api_a);
    assert!(s["events"]["handler_runs"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["events"]["handler_failures"], 0, "{s}");
    assert_eq!(s["events"]["streams_open"], 3, "{s}");
    eprintln!("failure seen by the stream {detected:?} after the kill");
    assert!(
        procstat::rss_kib(a.pid()) < 100 * 1024,
        "agent RSS over 100 MiB"
    );
    monitor.kill9();
    a.stop_gracefully(Duration::from_secs(10));
}

/// `sleep` with a duration no other test uses, to find its processes.
const SLOW: &str = "sleep 59.25";

fn slow_handlers_running() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                c == b"sleep\x0059.25\x00" || c == b"/bin/sh\x00-c\x00sleep 59.25\x00"
            })
        })
        .count()
}

#[test]
fn a_handler_past_its_timeout_is_killed_and_gossip_goes_on() {
    let env = Env::new("events_slow_handler", 251);
    let started = Instant::now();
    let mut a = agent(
        &env,
        "a",
        1,
        "serf",
        &[
            "--event-handler".into(),
            SLOW.into(),
            "--event-handler-timeout".into(),
            "1s".into(),
        ],
    );
    let seed = format!("{}:{GOSSIP_PORT}", env.ip(1));
    let _b = agent(&env, "b", 2, "serf", &["--join".into(), seed.clone()]);
    let _c = agent(&env, "c", 3, "serf", &["--join".into(), seed]);
    let api_a = api(&env, 1);
    wait_for("two handler timeouts", Duration::from_secs(20), || {
        let s = stats(&api_a);
        match s["events"]["handler_timeouts"].as_u64() {
            Some(n) if n >= 2 => Ok(()),
            _ => Err(s.to_string()),
        }
    });
    assert!(
        a.log_text().contains("ran past its timeout: killed"),
        "no log line for the killed handler:\n{}",
        a.log_tail(40)
    );
    // Gossip goes on: everyone stays alive everywhere for several seconds
    // while handlers keep timing out.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        for host in 1..=3 {
            let ms = member_status(&api(&env, host));
            assert_eq!(ms.len(), 3, "{ms:?}");
            assert!(ms.iter().all(|(_, s)| s == "alive"), "host {host}: {ms:?}");
        }
        assert!(
            slow_handlers_running() <= 1,
            "killed handlers are still running"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu = procstat::cpu_time(a.pid());
    assert!(cpu < Duration::from_secs(10), "agent CPU {cpu:?}");
    assert!(
        procstat::rss_kib(a.pid()) < 100 * 1024,
        "agent RSS over 100 MiB"
    );
    // Stopping the agent kills a handler that is still running.
    a.stop_gracefully(Duration::from_secs(10));
    wait_for(
        "no handler left",
        Duration::from_secs(5),
        || match slow_handlers_running() {
            0 => Ok(()),
            n => Err(format!("{n} still running")),
        },
    );
    eprintln!("done in {:?}", started.elapsed());
}

/// `swimnet table --api API ARGS...`, which must succeed.
fn table(env: &Env, host: u8, args: &[&str]) {
    let mut a = vec!["table".to_string(), "--api".into(), api(env, host)];
    a.extend(args.iter().map(|s| s.to_string()));
    let out = run_cmd(&env.swimnet, &a, Duration::from_secs(10));
    assert!(out.ok(), "{}", out.describe());
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `swimnet network --api API join NID`, which must succeed.
fn network_join(env: &Env, host: u8, nid: &str) {
    let a = [
        "network".into(),
        "--api".into(),
        api(env, host),
        "join".into(),
        nid.into(),
    ];
    let out = run_cmd(&env.swimnet, &a, Duration::from_secs(10));
    assert!(out.ok(), "{}", out.describe());
}

/// b creates, updates and deletes n1/t/k; returns the types of the events
/// `n1` shows for them.
fn write_and_see(env: &Env, n1: &EventStream) -> Vec<String> {
    // Each write waits to be seen: gossip carries only the latest state of
    // a key, so quick successive writes could reach a as one.
    let mut types = Vec::new();
    for args in [
        &["put", "n1", "t", "k", "v1"][..],
        &["put", "n1", "t", "k", "v2"],
        &["delete", "n1", "t", "k"],
    ] {
        table(env, 2, args);
        let e = n1.next(Duration::from_secs(20)).expect("a table event");
        assert_eq!(
            (&e["network"], &e["table"], &e["key"]),
            (&"n1".into(), &"t".into(), &"k".into()),
            "{e}"
        );
        assert_eq!(e["origin"], "remote");
        types.push(e["type"].as_str().unwrap().to_string());
        if e["type"] == "table-update" {
            assert_eq!(
                (&e["value"], &e["prev"]),
                (&b64("v2").into(), &b64("v1").into())
            );
        }
    }
    assert_eq!(types, ["table-create", "table-update", "table-delete"]);
    types
}

/// The table handler's records: the update with its env and the value on
/// stdin, a's own write in n2, the delete.
fn check_table_records(env: &Env) {
    let rec = wait_record(
        &env.dir,
        &[
            "SWIMNET_EVENT=table-update\n",
            "SWIMNET_NETWORK=n1\n",
            "SWIMNET_TABLE=t\n",
            "SWIMNET_KEY=k\n",
        ],
        Duration::from_secs(10),
    );
    assert!(rec.ends_with("STDIN:\nv2"), "{rec}");
    assert!(
        rec.contains("SERF_EVENT=\n"),
        "no SERF_EVENT for our own types: {rec}"
    );
    wait_record(
        &env.dir,
        &["SWIMNET_EVENT=table-create\n", "SWIMNET_KEY=other\n"],
        Duration::from_secs(10),
    );
    wait_record(
        &env.dir,
        &["SWIMNET_EVENT=table-delete\n", "SWIMNET_KEY=k\n"],
        Duration::from_secs(10),
    );
}

/// Waits until the monitor's log holds JSON lines of exactly these types.
fn wait_monitor_kinds(monitor: &Proc, want: &[&str]) {
    wait_for("the monitor's lines", Duration::from_secs(10), || {
        let log = monitor.log_text();
        let kinds: Vec<String> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["type"].as_str().unwrap_or("").to_string())
            .collect();
        match kinds == want {
            true => Ok(()),
            false => Err(log),
        }
    });
}

#[test]
fn table_writes_stream_with_network_and_type_filters() {
    let env = Env::new("events_tables", 252);
    let script = recording_handler(&env.dir);
    let mut a = agent(
        &env,
        "a",
        1,
        "networkdb",
        &[
            "--event-handler".into(),
            format!("table={}", script.display()),
        ],
    );
    let seed = format!("{}:{GOSSIP_PORT}", env.ip(1));
    let _b = agent(&env, "b", 2, "networkdb", &["--join".into(), seed]);
    let api_a = api(&env, 1);
    wait_for("b alive on a", Duration::from_secs(20), || {
        let ms = member_status(&api_a);
        match ms.iter().any(|(n, s)| n == "b" && s == "alive") {
            true => Ok(()),
            false => Err(format!("{ms:?}")),
        }
    });
    let (code, _, body) = EventStream::open(&api_a, "/v1/events?type=member-joined");
    assert_eq!(code, 400);
    assert!(body.contains("unknown event type"), "{body}");

    let (_, n1, _) = EventStream::open(&api_a, "/v1/events?network=n1");
    let n1 = n1.unwrap();
    let (_, deletes, _) = EventStream::open(&api_a, "/v1/events?type=table-delete");
    let deletes = deletes.unwrap();
    let mut monitor = monitor(&env, &api_a, &["--format", "json", "--network", "n1"]);
    // Give the monitor its subscription before the first event.
    wait_for(
        "the monitor's stream",
        Duration::from_secs(10),
        || match stats(&api_a)["events"]["streams_open"].as_u64() {
            Some(3) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    network_join(&env, 1, "n1");
    network_join(&env, 2, "n1");
    let attach = n1.next(Duration::from_secs(5)).expect("network-attach");
    assert_eq!(attach["type"], "network-attach");
    assert_eq!(
        (&attach["network"], &attach["node"], &attach["origin"]),
        (&"n1".into(), &"a".into(), &"local".into())
    );
    // b's attachment, learned from its gossip.
    let attach = n1
        .next(Duration::from_secs(10))
        .expect("b's network-attach");
    assert_eq!(
        (&attach["type"], &attach["node"], &attach["origin"]),
        (&"network-attach".into(), &"b".into(), &"remote".into())
    );
    // b writes only once it knows a is attached too (else its writes wait
    // for the next bulk sync).
    let api_b = api(&env, 2);
    wait_for("a among b's n1 peers", Duration::from_secs(20), || {
        let (code, body) = http(&api_b, "GET", "/v1/networks/n1/peers", None).unwrap();
        match code == 200 && body.contains("\"a\"") {
            true => Ok(()),
            false => Err(body),
        }
    });
    let (_, watch, _) = EventStream::open(&api_a, "/v1/tables/n1/t?watch=true");
    let watch = watch.unwrap();
    // Another network's events stay out of the n1 stream.
    network_join(&env, 1, "n2");
    table(&env, 1, &["put", "n2", "t", "other", "x"]);
    assert_eq!(
        write_and_see(&env, &n1),
        ["table-create", "table-update", "table-delete"]
    );
    assert!(
        n1.next(Duration::from_millis(500)).is_none(),
        "nothing else on n1"
    );
    let d = deletes.next(Duration::from_secs(5)).expect("the delete");
    assert_eq!(
        (&d["type"], &d["key"]),
        (&"table-delete".into(), &"k".into())
    );
    assert!(
        deletes.next(Duration::from_millis(300)).is_none(),
        "only deletes"
    );
    // The table watch runs on the same events.
    let w: Vec<String> = (0..3)
        .map(|_| {
            watch.next(Duration::from_secs(5)).expect("a watch line")["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(w, ["create", "update", "delete"]);
    check_table_records(&env);
    // The monitor printed the n1 events as JSON lines.
    wait_monitor_kinds(
        &monitor,
        &[
            "network-attach",
            "network-attach",
            "table-create",
            "table-update",
            "table-delete",
        ],
    );
    monitor.kill9();
    a.stop_gracefully(Duration::from_secs(10));
}

#[test]
fn event_streams_are_capped() {
    let env = Env::new("events_stream_cap", 253);
    let mut a = agent(&env, "a", 1, "memberlist", &[]);
    let api_a = api(&env, 1);
    let open: Vec<EventStream> = (0..32)
        .map(|i| {
            let (code, s, body) = EventStream::open(&api_a, "/v1/events");
            assert_eq!(code, 200, "stream {i}: {body}");
            s.unwrap()
        })
        .collect();
    let (code, _, body) = EventStream::open(&api_a, "/v1/events");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("too many event streams"), "{body}");
    let s = stats(&api_a);
    assert_eq!(s["events"]["streams_open"], 32, "{s}");
    assert_eq!(s["events"]["streams_refused"], 1, "{s}");
    // Other requests are still served.
    assert_eq!(member_status(&api_a).len(), 1);
    drop(open);
    a.stop_gracefully(Duration::from_secs(10));
}

/// Only a Serf node answers queries: the other modes refuse a response in
/// one line, and a Serf node refuses one for a query it never received.
#[tokio::test]
async fn query_responses_need_a_serf_node_and_a_received_query() {
    use swimnet::agent::{self, AgentOptions, Profile, Protocol};
    use swimnet::driver::Command;
    for protocol in [Protocol::Serf, Protocol::NetworkDb, Protocol::Memberlist] {
        let opts = AgentOptions {
            node: "q".into(),
            bind: "127.0.254.1:0".parse().unwrap(),
            advertise: None,
            join: Vec::new(),
            retry_join: Default::default(),
            keys: None,
            tags: Default::default(),
            profile: Profile::Local,
            api: None,
            protocol,
            topology_aware: false,
            http: Default::default(),
            data_dir: None,
            events: Default::default(),
            overlay: Default::default(),
        };
        let running = agent::start(opts).await.unwrap();
        let (reply, rx) = tokio::sync::oneshot::channel();
        running
            .commands
            .send(Command::RespondQuery {
                id: 7,
                payload: b"answer".to_vec(),
                reply,
            })
            .await
            .unwrap();
        let err = rx.await.unwrap().unwrap_err();
        if protocol == Protocol::Serf {
            assert!(err.contains('7'), "{err}");
        } else {
            assert!(err.contains("--protocol serf"), "{err}");
        }
        assert_eq!(err.lines().count(), 1, "{err}");
        running.shutdown.notify_waiters();
        tokio::time::timeout(Duration::from_secs(10), running.done)
            .await
            .unwrap()
            .unwrap();
    }
}

/// A query from a real serf agent reaches a swimnet agent's `query:NAME`
/// handler, and what the handler prints is the answer serf gets back.
#[test]
fn a_query_handler_answers_a_serf_agents_query() {
    let env = Env::new("events_serf_query", 255);
    let script = env.dir.join("answer.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"pong-$(cat)\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut a = agent(
        &env,
        "a",
        2,
        "serf",
        &[
            "--event-handler".into(),
            format!("query:ask={}", script.display()),
        ],
    );
    let serf = env.serf(
        "s",
        3,
        &SerfOpts {
            join: vec![format!("{}:{GOSSIP_PORT}", env.ip(2))],
            ..SerfOpts::default()
        },
    );
    let mut last = String::new();
    let answered = (0..5).any(|_| {
        let out = serf.cmd("query", &["-format=json", "-timeout=3s", "ask", "hi"]);
        last = out.describe();
        out.ok() && out.stdout.contains("pong-hi")
    });
    assert!(answered, "serf got the handler's answer: {last}");
    a.stop_gracefully(Duration::from_secs(10));
}

#[test]
fn a_serf_agents_user_events_reach_the_stream_and_handlers() {
    let env = Env::new("events_serf_user", 254);
    let script = recording_handler(&env.dir);
    let mut a = agent(
        &env,
        "a",
        2,
        "serf",
        &[
            "--event-handler".into(),
            format!("user:deploy={}", script.display()),
        ],
    );
    let api_a = api(&env, 2);
    let (_, users, _) = EventStream::open(&api_a, "/v1/events?type=user");
    let users = users.unwrap();
    let serf = env.serf(
        "s",
        3,
        &SerfOpts {
            join: vec![format!("{}:{GOSSIP_PORT}", env.ip(2))],
            ..SerfOpts::default()
        },
    );
    for (name, payload) in [("other", "x"), ("deploy", "hello")] {
        let out = serf.cmd("event", &[name, payload]);
        assert!(out.ok(), "{}", out.describe());
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let e = users.next(Duration::from_secs(20)).expect("a user event");
        got.push((
            e["name"].as_str().unwrap().to_string(),
            e["payload"].as_str().unwrap().to_string(),
        ));
        assert!(e["ltime"].as_u64().is_some(), "{e}");
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("deploy".to_string(), b64("hello")),
            ("other".to_string(), b64("x"))
        ]
    );
    let rec = wait_record(
        &env.dir,
        &["SERF_EVENT=user\n", "SERF_USER_EVENT=deploy\n"],
        Duration::from_secs(10),
    );
    assert!(rec.ends_with("STDIN:\nhello\n"), "{rec}");
    assert!(!rec.contains("SERF_USER_LTIME=\n"), "{rec}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        records(&env.dir).len(),
        1,
        "the handler ran for user:deploy only"
    );
    a.stop_gracefully(Duration::from_secs(10));
}
