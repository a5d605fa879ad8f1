//! The Serf commands operators use, against real serf agents: user events
//! and queries both ways, runtime tags, reachability, force-leave, member
//! filters and Serf's key queries sent by swimnet.

use std::path::Path;

use serde_json::Value;

use super::*;

/// An event handler for serf agents: logs every event (type, name,
/// payload) to `<dir>/events-<node>.log` and answers queries with
/// `pong-<node>`.
fn handler_script(env: &Env) -> String {
    let path = env.dir.join("handler.sh");
    let log = env.dir.join("events-");
    let script = format!(
        "#!/bin/sh\npayload=$(cat)\n\
         echo \"$SERF_EVENT $SERF_USER_EVENT$SERF_QUERY_NAME $payload\" >> {}$SERF_SELF_NAME.log\n\
         if [ \"$SERF_EVENT\" = query ]; then printf 'pong-%s' \"$SERF_SELF_NAME\"; fi\n",
        log.display()
    );
    std::fs::write(&path, script).expect("write handler");
    let _ = run_cmd(
        Path::new("/bin/chmod"),
        &["755".into(), path.display().to_string()],
        Duration::from_secs(5),
    );
    path.display().to_string()
}

fn handled(env: &Env, node: &str) -> String {
    std::fs::read_to_string(env.dir.join(format!("events-{node}.log"))).unwrap_or_default()
}

/// s1, s2 (with the handler) and sw1, all alive everywhere.
fn cluster(env: &Env, key: &Option<String>) -> (Vec<Serf>, Swim) {
    let handler = handler_script(env);
    let mut serfs: Vec<Serf> = Vec::new();
    for i in 1..=2u8 {
        let join = serfs.first().map(|s| vec![s.addr()]).unwrap_or_default();
        serfs.push(env.serf(
            &format!("s{i}"),
            i,
            &SerfOpts {
                key: key.clone(),
                tags: tags(&[("role", "serf")]),
                join,
                event_handlers: vec![handler.clone()],
                ..Default::default()
            },
        ));
    }
    let sw = env.swim("sw1", 21, &swim_opts(key, vec![serfs[0].addr()]));
    let all = nodes(&serfs, &[&sw]);
    wait_all_alive(&all, &names(&all), CONVERGE);
    (serfs, sw)
}

fn cli_ok(sw: &Swim, sub: &str, args: &[&str]) -> String {
    let out = sw.cli(sub, args);
    assert!(
        out.ok(),
        "swimnet {sub} {args:?} failed: {}",
        out.describe()
    );
    out.stdout
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

fn sorted_strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `swimnet event` reaches the serf agents' handlers; `serf event` shows
/// up in swimnet's `/v1/serf/events` (and its log).
#[test]
fn user_events_both_ways() {
    let env = Env::new("serf_user_events_both_ways", 240);
    let (serfs, sw) = cluster(&env, &None);
    cli_ok(&sw, "event", &["deploy", "v1"]);
    wait_for("the serf handlers to see swimnet's event", CONVERGE, || {
        for s in &serfs {
            let log = handled(&env, &s.name);
            if !log.contains("user deploy v1") {
                return Err(format!("{} handled: {log:?}", s.name));
            }
        }
        Ok(())
    });
    let out = serfs[1].cmd("event", &["hello", "world"]);
    assert!(out.ok(), "{}", out.describe());
    let (ev, _) = wait_for("swimnet to list serf's event", CONVERGE, || {
        let (code, body) =
            http(&sw.api(), "GET", "/v1/serf/events", None).map_err(|e| e.to_string())?;
        let v = json(&body);
        let found = v["events"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == "hello").cloned());
        found.ok_or(format!("{code}: {body}"))
    });
    assert_eq!(ev["type"], "user");
    assert_eq!(ev["payload"], "world");
    // Our own event is listed too, once.
    let (_, body) = http(&sw.api(), "GET", "/v1/serf/events", None).unwrap();
    let v = json(&body);
    let ours = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "deploy");
    assert_eq!(ours.count(), 1, "{body}");
    assert!(sw.log().contains("serf user event"), "logged at info");
}

/// `swimnet query` is acked by everyone and answered by the serf agents'
/// handlers; a node filter narrows it. `serf query` is acked by swimnet,
/// and answered through `POST /v1/serf/respond`.
#[test]
fn queries_both_ways() {
    let env = Env::new("serf_queries_both_ways", 241);
    let (serfs, sw) = cluster(&env, &None);
    let mut want_all = vec!["s1".to_string(), "s2".to_string(), "sw1".to_string()];
    want_all.sort();
    // A query can miss a node (gossip sends each broadcast twice in the
    // local profile); retry a few times, as the keys tests do.
    let mut last = String::new();
    let ok = (0..4).any(|_| {
        let out = sw.cli(
            "query",
            &["uptime", "ping", "--timeout", "3s", "--format", "json"],
        );
        last = out.describe();
        if !out.ok() {
            return false;
        }
        let v = json(&out.stdout);
        sorted_strings(&v["Acks"]) == want_all
            && v["Responses"]["s1"] == "pong-s1"
            && v["Responses"]["s2"] == "pong-s2"
    });
    assert!(
        ok,
        "swimnet query: every node acks, serf agents answer: {last}"
    );
    assert!(handled(&env, "s1").contains("query uptime ping"));
    let t0 = Instant::now();
    let out = cli_ok(
        &sw,
        "query",
        &[
            "uptime",
            "--node",
            "s2",
            "--timeout",
            "2s",
            "--format",
            "json",
        ],
    );
    // The query stays open for its whole timeout, and not much longer.
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took <= Duration::from_secs(2) + SLACK,
        "a 2 s query took {took:?}"
    );
    let v = json(&out);
    assert_eq!(sorted_strings(&v["Acks"]), vec!["s2".to_string()], "{out}");
    let text = cli_ok(
        &sw,
        "query",
        &["uptime", "--tag", "role=serf", "--timeout", "2s"],
    );
    assert!(text.contains("Response from 's1': pong-s1"), "{text}");
    assert!(
        !text.contains("Ack from 'sw1'"),
        "sw1 has role=swim: {text}"
    );

    serf_query_answered_by_swimnet(&serfs, &sw);
}

/// serf asks; swimnet acks at once and answers through the API; the
/// counters show the queries both ways; memory stays small.
fn serf_query_answered_by_swimnet(serfs: &[Serf], sw: &Swim) {
    let (bin, rpc) = (serfs[0].bin.clone(), serfs[0].rpc());
    let asker = thread::spawn(move || {
        let args = [
            "query",
            &format!("-rpc-addr={rpc}"),
            "-format=json",
            "-timeout=6s",
            "whoami",
            "please",
        ];
        run_cmd(&bin, &args.map(String::from), Duration::from_secs(30))
    });
    let (id, _) = wait_for(
        "swimnet to receive serf's query",
        Duration::from_secs(5),
        || {
            let (_, body) =
                http(&sw.api(), "GET", "/v1/serf/events", None).map_err(|e| e.to_string())?;
            json(&body)["events"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|e| e["name"] == "whoami" && e["type"] == "query")
                        .cloned()
                })
                .and_then(|e| e["id"].as_u64())
                .ok_or(body)
        },
    );
    let body = format!(r#"{{"id": {id}, "payload": "i am sw1"}}"#);
    let (code, resp) = http(&sw.api(), "POST", "/v1/serf/respond", Some(&body)).unwrap();
    assert_eq!(code, 200, "{resp}");
    let (code, again) = http(&sw.api(), "POST", "/v1/serf/respond", Some(&body)).unwrap();
    assert_eq!(code, 400, "one answer per query: {again}");
    let out = asker.join().expect("serf query thread");
    assert!(out.ok(), "{}", out.describe());
    let v = json(&out.stdout);
    assert!(
        sorted_strings(&v["Acks"]).contains(&"sw1".to_string()),
        "{}",
        out.stdout
    );
    assert_eq!(v["Responses"]["sw1"], "i am sw1", "{}", out.stdout);
    assert_eq!(v["Responses"]["s2"], "pong-s2", "{}", out.stdout);

    let (_, body) = http(&sw.api(), "GET", "/v1/serf/stats", None).unwrap();
    let st = json(&body);
    assert!(st["queries_sent"]["sent"].as_u64().unwrap() >= 3, "{body}");
    assert!(st["queries_sent"]["acks"].as_u64().unwrap() >= 3, "{body}");
    assert!(
        st["queries_received"]["answered"].as_u64().unwrap() >= 1,
        "{body}"
    );
    assert_eq!(st["queries_sent"]["open"], 0, "{body}");
    // Queries cost no lasting memory: the agent stays small.
    let rss = procstat::rss_kib(sw.proc.pid());
    assert!(rss < 64 * 1024, "swimnet RSS {rss} KiB after the queries");
}

/// Runtime tags reach serf; reachability (ours and serf's) sees every
/// live node; member filters; force-leave of a failed serf agent makes
/// the serf agents show it left.
#[test]
fn tags_reachability_filters_and_force_leave() {
    let env = Env::new("serf_tags_reachability_force_leave", 242);
    let (mut serfs, sw) = cluster(&env, &None);
    cli_ok(&sw, "tags", &["--set", "zone=b", "--delete", "dc"]);
    wait_for("serf to see sw1's new tags", CONVERGE, || {
        let out = serfs[0].cmd("members", &["-format=json", "-tag", "zone=b"]);
        let m = parse_members(&out.stdout)?;
        match find(&m, "sw1") {
            Some(x)
                if !x.tags.contains_key("dc")
                    && x.tags.get("role").map(String::as_str) == Some("swim") =>
            {
                Ok(())
            }
            _ => Err(out.describe()),
        }
    });
    // Serf's default timeout in the local profile: 100 ms * 16 * 1.
    let t0 = Instant::now();
    let out = cli_ok(&sw, "reachability", &[]);
    assert!(
        out.contains("Successfully contacted all live nodes"),
        "{out}"
    );
    let took = t0.elapsed();
    assert!(took <= Duration::from_millis(1600) + SLACK, "took {took:?}");
    let out = serfs[0].cmd("reachability", &[]);
    // Three live members (sw1 included) all acked.
    assert!(
        out.ok() && out.stdout.contains("Successfully contacted all live nodes"),
        "serf's reachability: {}",
        out.describe()
    );

    let out = cli_ok(
        &sw,
        "members",
        &["--format", "json", "--tag", "role=serf", "--name", "s[0-9]"],
    );
    let m = parse_members(&out).unwrap();
    let mut n: Vec<&str> = m.iter().map(|x| x.name.as_str()).collect();
    n.sort();
    assert_eq!(n, vec!["s1", "s2"]);
    let bad = sw.cli("members", &["--status", "("]);
    assert!(
        !bad.ok() && bad.stderr.contains("not a valid regular expression"),
        "{}",
        bad.describe()
    );

    serfs[1].proc.kill9();
    wait_for("sw1 to see s2 failed", CONVERGE, || {
        shows(&sw, &["s2"], "failed")
    });
    let out = sw.cli("force-leave", &["nobody"]);
    assert!(
        !out.ok() && out.stderr.contains("no member named"),
        "{}",
        out.describe()
    );
    cli_ok(&sw, "force-leave", &["s2"]);
    wait_for("s1 to show s2 left", Duration::from_secs(10), || {
        shows(&serfs[0], &["s2"], "left")
    });
    let out = sw.cli("reachability", &["--timeout", "2s"]);
    assert!(out.ok(), "s2 is no longer live: {}", out.describe());
}

/// A cluster-wide key install sent by swimnet (Serf's own key query)
/// reaches the serf agents; listing counts every node; `serf keys
/// -install` reaches swimnet.
#[test]
fn key_queries_sent_by_swimnet() {
    let env = Env::new("serf_key_queries_sent_by_swimnet", 243);
    let k1 = keygen();
    let k2 = keygen();
    let k3 = keygen();
    let (serfs, sw) = cluster(&env, &Some(k1.clone()));
    // Nobody may be seen anything but alive during the whole rotation.
    let live: Vec<&dyn Node> = vec![&serfs[0], &serfs[1], &sw];
    let mon = Monitor::start(
        live.iter().map(|n| n.observer()).collect(),
        names(&live).iter().map(|s| s.to_string()).collect(),
        true,
    );
    let body = format!(r#"{{"key": "{k2}"}}"#);
    let mut last = String::new();
    let ok = (0..4).any(|_| {
        let (code, resp) = http(&sw.api(), "POST", "/v1/serf/keys/install", Some(&body)).unwrap();
        last = format!("{code}: {resp}");
        let v = json(&resp);
        code == 200
            && v["responded"] == 3
            && v["total"] == 3
            && v["failures"] == serde_json::json!({})
    });
    assert!(ok, "install reached all three: {last}");
    let listing = serfs[1].cmd("keys", &["-list"]);
    assert!(
        listing.stdout.contains(&k2),
        "serf lists the new key: {}",
        listing.describe()
    );
    let (code, resp) = http(&sw.api(), "POST", "/v1/serf/keys/list", Some("{}")).unwrap();
    assert_eq!(code, 200, "{resp}");
    let v = json(&resp);
    assert_eq!(v["keys"][&k1], 3, "{resp}");
    assert_eq!(v["keys"][&k2], 3, "{resp}");
    assert_eq!(v["primary_keys"][&k1], 3, "{resp}");
    let out = serfs[0].cmd("keys", &["-install", &k3]);
    assert!(out.ok(), "{}", out.describe());
    let (_, keys) = sw.keys().unwrap();
    assert!(
        keys.contains(&k3),
        "serf's install reached swimnet: {keys:?}"
    );
    // `swimnet keys` (cluster-wide by default) uses the same queries: the
    // serf agents take part in the rotation and count in N/M.
    let out = sw.cli("keys", &["use", &k2]);
    assert!(
        out.ok() && out.stdout.contains("3/3 nodes responded"),
        "{}",
        out.describe()
    );
    let out = sw.cli("keys", &["remove", &k1]);
    assert!(out.ok(), "{}", out.describe());
    let listing = serfs[0].cmd("keys", &["-list"]);
    assert!(
        listing.stdout.contains(&k2) && !listing.stdout.contains(&k1),
        "serf dropped the old key: {}",
        listing.describe()
    );
    // Past a few probe rounds on the new key alone, still all alive.
    std::thread::sleep(Duration::from_secs(3));
    let report = mon.finish();
    assert!(
        report.rounds > 0 && report.violations.is_empty(),
        "members seen not alive during the rotation: {:?}",
        report.violations
    );
}

/// Outside serf mode the Serf commands are refused with a clear message.
#[test]
fn serf_commands_need_serf_mode() {
    let env = Env::new("serf_commands_need_serf_mode", 244);
    let ip = env.ip(1);
    let api = format!("{ip}:{SWIM_API_PORT}");
    let mut p = env.spawn(
        "ml1",
        &env.swimnet,
        &[
            "agent".into(),
            "--node".into(),
            "ml1".into(),
            "--bind".into(),
            format!("{ip}:{GOSSIP_PORT}"),
            "--api".into(),
            api.clone(),
            "--protocol".into(),
            "memberlist".into(),
        ],
    );
    wait_for(
        "the memberlist agent's API",
        Duration::from_secs(20),
        || http(&api, "GET", "/v1/members", None).map_err(|e| e.to_string()),
    );
    for args in [
        vec!["tags", "--api", &api, "--set", "a=b"],
        vec!["event", "--api", &api, "x"],
        vec!["force-leave", "--api", &api, "ml1"],
        vec!["query", "--api", &api, "x"],
    ] {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = run_cmd(&env.swimnet, &a, Duration::from_secs(10));
        assert!(!out.ok(), "{args:?} must fail: {}", out.describe());
        assert!(
            out.stderr.contains("--protocol serf") && out.stderr.lines().count() <= 2,
            "{args:?}: one clear line: {}",
            out.describe()
        );
    }
    p.stop_gracefully(Duration::from_secs(10));
}
