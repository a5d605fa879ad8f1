//! `GET /metrics`, `GET /v1/health`, 404s and `swimnet info` against live
//! agents: three `swimnet agent --protocol networkdb` processes on
//! 127.0.210.0/24 go through known events (joins, a table write, a
//! `kill -9`, a leave) and the metric names and values each one must move
//! are read back from the Prometheus text. A second test checks that
//! `/metrics` and `/v1/health` need the API token when one is set
//! (127.0.211.0/24).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{procstat, run_cmd, Env, Proc, GOSSIP_PORT, SWIM_API_PORT};

/// One networkdb agent process and its API address.
struct Agent {
    name: String,
    api: String,
    proc: Proc,
}

fn start(env: &Env, name: &str, host: u8, join: Option<&Agent>, extra: &[String]) -> Agent {
    let ip = env.ip(host);
    let mut args: Vec<String> = [
        "agent",
        "--node",
        name,
        "--protocol",
        "networkdb",
        "--profile",
        "local",
        "--log-level",
        "debug",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--bind".into(),
        format!("{ip}:{GOSSIP_PORT}"),
        "--api".into(),
        format!("{ip}:{SWIM_API_PORT}"),
    ]);
    if let Some(seed) = join {
        let seed_ip = seed.api.split(':').next().unwrap();
        args.extend(["--join".into(), format!("{seed_ip}:{GOSSIP_PORT}")]);
    }
    args.extend(extra.iter().cloned());
    let mut proc = env.spawn(name, &env.swimnet, &args);
    let api = format!("{ip}:{SWIM_API_PORT}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = proc.try_exit() {
            panic!(
                "{name} exited during start-up ({st}):\n{}",
                proc.log_tail(30)
            );
        }
        if let Ok((200, _)) = get(&api, "/v1/health", token_of(extra).as_deref()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not answer /v1/health within 20 s:\n{}",
            proc.log_tail(30)
        );
        thread::sleep(Duration::from_millis(50));
    }
    Agent {
        name: name.into(),
        api,
        proc,
    }
}

/// The token in `--api-token-file PATH` among `extra`, if any.
fn token_of(extra: &[String]) -> Option<String> {
    let i = extra.iter().position(|a| a == "--api-token-file")?;
    let text = std::fs::read_to_string(&extra[i + 1]).ok()?;
    Some(text.trim().to_string())
}

/// `GET path` on `api`: (status, body); `Err` when nothing answered.
fn get(api: &str, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    request("GET", api, path, token)
}

fn request(
    method: &str,
    api: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let mut req =
        ureq::request(method, &format!("http://{api}{path}")).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    if method != "GET" {
        req = req.set("Content-Type", "application/json");
    }
    let r = if method == "GET" {
        req.call()
    } else {
        req.send_string("{}")
    };
    match r {
        Ok(resp) => Ok((
            resp.status(),
            resp.into_string().map_err(|e| e.to_string())?,
        )),
        Err(ureq::Error::Status(code, resp)) => Ok((code, resp.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

/// Prometheus text: sample name -> [(labels, value)].
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// Parses the text format's sample lines, checking that each metric has
/// its HELP and TYPE lines first.
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    let mut described = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP text");
            assert!(!help.trim().is_empty(), "{name} has an empty HELP");
            described.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        assert!(described.contains(name), "{name} sampled before its HELP");
        let labels = labels
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').expect("label=value");
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.entry(name.to_string())
            .or_default()
            .push((labels, value.parse().expect("numeric value")));
    }
    out
}

/// The one sample of `name` whose labels include `labels`.
fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
    let series = s.get(name).ok_or_else(|| format!("no metric {name}"))?;
    let hits: Vec<f64> = series
        .iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .collect();
    match hits.as_slice() {
        [v] => Ok(*v),
        _ => Err(format!("{name}{labels:?}: {} matching samples", hits.len())),
    }
}

/// Scrapes `a`'s `/metrics`, checking the content type and the time taken.
fn scrape(a: &Agent) -> Result<Samples, String> {
    let started = Instant::now();
    let resp = ureq::get(&format!("http://{}/metrics", a.api))
        .timeout(Duration::from_secs(10))
        .call()
        .map_err(|e| format!("{}: GET /metrics: {e}", a.name))?;
    let content_type = resp.header("content-type").unwrap_or("").to_string();
    let text = resp.into_string().map_err(|e| e.to_string())?;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a scrape took {:?}",
        started.elapsed()
    );
    Ok(parse(&text))
}

/// Waits up to `timeout` until `cond` holds on `a`'s metrics.
fn wait_metrics(
    a: &Agent,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&Samples) -> Result<(), String>,
) -> Samples {
    let deadline = Instant::now() + timeout;
    loop {
        let r = scrape(a).and_then(|s| cond(&s).map(|()| s));
        match r {
            Ok(s) => return s,
            Err(e) if Instant::now() >= deadline => {
                panic!(
                    "{}: timed out waiting for {what}: {e}\n{}",
                    a.name,
                    a.proc.log_tail(20)
                )
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn at_least(s: &Samples, name: &str, labels: &[(&str, &str)], min: f64) -> Result<(), String> {
    let v = value(s, name, labels)?;
    if v >= min {
        Ok(())
    } else {
        Err(format!("{name}{labels:?} = {v}, want >= {min}"))
    }
}

fn equals(s: &Samples, name: &str, labels: &[(&str, &str)], want: f64) -> Result<(), String> {
    let v = value(s, name, labels)?;
    if v == want {
        Ok(())
    } else {
        Err(format!("{name}{labels:?} = {v}, want {want}"))
    }
}

fn cli(env: &Env, a: &Agent, args: &[&str]) -> String {
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.insert(1, "--api".into());
    argv.insert(2, a.api.clone());
    let out = run_cmd(&env.swimnet, &argv, Duration::from_secs(20));
    assert!(out.ok(), "swimnet {args:?}: {}", out.describe());
    out.stdout
}

/// The joins: every member alive, push/pulls done, pings and acks both ways.
fn check_joins(m1: &Agent) {
    let s = wait_metrics(m1, "3 alive members", Duration::from_secs(20), |s| {
        equals(s, "swimnet_members", &[("status", "alive")], 3.0)?;
        at_least(
            s,
            "swimnet_messages_received_total",
            &[("kind", "ack")],
            1.0,
        )
    });
    let node = [("node", "m1"), ("protocol", "networkdb")];
    equals(&s, "swimnet_node_info", &node, 1.0).unwrap();
    at_least(&s, "swimnet_push_pulls_total", &[], 2.0).unwrap();
    at_least(&s, "swimnet_messages_sent_total", &[("kind", "ping")], 1.0).unwrap();
    let ping = [("kind", "ping")];
    at_least(&s, "swimnet_messages_sent_bytes_total", &ping, 20.0).unwrap();
    at_least(&s, "swimnet_packets_received_bytes_total", &[], 20.0).unwrap();
    equals(&s, "swimnet_members", &[("status", "failed")], 0.0).unwrap();
    equals(&s, "swimnet_dead_verdicts_total", &[], 0.0).unwrap();
    equals(&s, "swimnet_health_score", &[], 0.0).unwrap();
    let dropped = [("layer", "core"), ("reason", "packets_dropped")];
    equals(&s, "swimnet_dropped_total", &dropped, 0.0).unwrap();
}

/// A table write on m2, on a network m1 is attached to as well.
fn check_table_write(env: &Env, m1: &Agent, m2: &Agent) {
    cli(env, m1, &["network", "join", "net1"]);
    cli(env, m2, &["network", "join", "net1"]);
    cli(env, m2, &["table", "put", "net1", "t", "k1", "hello"]);
    let s = wait_metrics(
        m1,
        "the entry of m2 in net1",
        Duration::from_secs(20),
        |s| equals(s, "swimnet_networkdb_entries", &[("network", "net1")], 1.0),
    );
    equals(&s, "swimnet_networkdb_networks", &[], 1.0).unwrap();
    at_least(&s, "swimnet_networkdb_table_events_applied_total", &[], 1.0).unwrap();
    at_least(
        &s,
        "swimnet_messages_received_total",
        &[("kind", "user")],
        1.0,
    )
    .unwrap();
}

/// Health while running, and 404s for unknown paths.
fn check_health_and_404s(m1: &Agent) {
    let (code, body) = get(&m1.api, "/v1/health", None).unwrap();
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let want = serde_json::json!({"status": "ok", "node": "m1", "members_alive": 3});
    assert_eq!(health, want);
    for path in ["/nope", "/metrics/x", "/v1/nope", "/health"] {
        let (code, body) = get(&m1.api, path, None).unwrap();
        assert_eq!(code, 404, "{path}: {body}");
    }
}

/// kill -9 m3: suspected, then declared dead by m1. Returns m1's count of
/// dead verdicts.
fn check_kill(m1: &Agent, m3: &mut Agent) -> f64 {
    m3.proc.kill9();
    let s = wait_metrics(m1, "a dead verdict on m3", Duration::from_secs(30), |s| {
        equals(s, "swimnet_members", &[("status", "failed")], 1.0)?;
        at_least(s, "swimnet_dead_verdicts_total", &[], 1.0)
    });
    equals(&s, "swimnet_members", &[("status", "alive")], 2.0).unwrap();
    at_least(&s, "swimnet_suspicions_total", &[], 1.0).unwrap();
    value(&s, "swimnet_dead_verdicts_total", &[]).unwrap()
}

/// `swimnet info` shows the same figures.
fn check_info(env: &Env, m1: &Agent) {
    let info = cli(env, m1, &["info"]);
    let members = "members:     2 alive, 0 suspect, 1 failed, 0 left";
    assert!(info.contains(members), "{info}");
    assert!(
        info.lines().any(|l| l.trim_start().starts_with("net1 ")),
        "{info}"
    );
    let json = cli(env, m1, &["info", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["members"]["failed"], 1);
    assert!(
        json["stats"]["messages_in"]["ack"].as_u64().unwrap() > 0,
        "{json}"
    );
}

/// m2 leaves: its health answers 503 "leaving" until the process exits.
fn check_leave_health(m2: &mut Agent) {
    let api2 = m2.api.clone();
    let leave = thread::spawn(move || request("POST", &api2, "/v1/leave", None));
    let mut saw_leaving = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        match get(&m2.api, "/v1/health", None) {
            Ok((503, body)) => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["status"], "leaving", "{body}");
                saw_leaving = true;
            }
            Ok((200, _)) => assert!(!saw_leaving, "healthy again after leaving"),
            Ok((code, body)) => panic!("/v1/health answered {code}: {body}"),
            Err(_) => break, // the process is gone
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(saw_leaving, "no 503 from /v1/health while m2 left");
    assert_eq!(leave.join().unwrap().unwrap().0, 200);
    assert!(
        m2.proc.wait_exit(Duration::from_secs(10)).is_some(),
        "m2 did not exit"
    );
}

/// Joins, a table write, a kill and a leave, each read back from /metrics;
/// health 200 then 503 while leaving; 404 for unknown paths; `swimnet info`.
#[test]
fn metrics_follow_known_events_and_health_follows_the_leave() {
    let env = Env::new("metrics_events", 210);
    let mut m1 = start(&env, "m1", 1, None, &[]);
    let mut m2 = start(&env, "m2", 2, Some(&m1), &[]);
    let mut m3 = start(&env, "m3", 3, Some(&m1), &[]);
    check_joins(&m1);
    check_table_write(&env, &m1, &m2);
    check_health_and_404s(&m1);
    let dead_verdicts = check_kill(&m1, &mut m3);
    check_info(&env, &m1);
    check_leave_health(&mut m2);
    // m1 sees the leave, and a leave is no dead verdict.
    wait_metrics(&m1, "m2 left", Duration::from_secs(20), |s| {
        equals(s, "swimnet_members", &[("status", "left")], 1.0)?;
        equals(s, "swimnet_dead_verdicts_total", &[], dead_verdicts)
    });
    // Budgets of a scraped agent.
    let rss = procstat::rss_kib(m1.proc.pid());
    assert!(rss < 64 * 1024, "m1 RSS {rss} KiB");
    let cpu = procstat::cpu_time(m1.proc.pid());
    assert!(cpu < Duration::from_secs(10), "m1 used {cpu:?} of CPU");
    m1.proc.stop_gracefully(Duration::from_secs(10));
}

/// With `--api-token-file`, `/metrics` and `/v1/health` need the token like
/// the rest of the API.
#[test]
fn metrics_and_health_need_the_token_when_one_is_set() {
    let env = Env::new("metrics_token", 211);
    let token_file = env.dir.join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    set_mode_0600(&token_file);
    let extra = [
        "--api-token-file".to_string(),
        token_file.display().to_string(),
    ];
    let mut a = start(&env, "t1", 1, None, &extra);
    for path in ["/metrics", "/v1/health"] {
        let (code, _) = get(&a.api, path, None).unwrap();
        assert_eq!(code, 401, "{path} without the token");
        let (code, body) = get(&a.api, path, Some("s3cret-token")).unwrap();
        assert_eq!(code, 200, "{path} with the token: {body}");
    }
    a.proc.stop_gracefully(Duration::from_secs(10));
}

fn set_mode_0600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
