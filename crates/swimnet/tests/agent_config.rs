//! The agent's configuration on real processes: a config file with an
//! environment override, host names in --bind and --join, --retry-join
//! against an agent that starts later (and giving up after --retry-max),
//! duplicate node names refused on both sides, and --log-level checks.
//! Addresses: 127.0.200.0/24 to 127.0.204.0/24, plus ephemeral ports on
//! 127.0.0.1 where a test must join through the name `localhost`.

mod common;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Starts `swimnet agent ARGS` (with `vars` in its environment; logs in
/// `<label>.log`) for node `name`, whose API is on `api_ip:7380`, and waits
/// until the API lists `name`. Adds `--node name` unless ARGS name the
/// node or a config file.
fn start(
    env: &Env,
    label: &str,
    name: &str,
    api_ip: std::net::Ipv4Addr,
    args: &[&str],
    vars: &[(&str, &str)],
) -> Swim {
    let mut argv = vec!["agent".to_string()];
    if !args.iter().any(|a| *a == "--node" || *a == "--config") {
        argv.extend(["--node".to_string(), name.to_string()]);
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    let proc = env.spawn_env(label, &env.swimnet, &argv, vars);
    let mut s = Swim {
        name: name.to_string(),
        ip: api_ip,
        bin: env.swimnet.clone(),
        proc,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = s.proc.try_exit() {
            panic!(
                "agent {name} exited during start-up ({st}):\n{}",
                s.proc.log_tail(30)
            );
        }
        if s.members().is_ok_and(|m| m.iter().any(|x| x.name == name)) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "agent {name} did not serve its API within 20 s:\n{}",
            s.proc.log_tail(30)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The standard flags of an agent of these tests at `ip`.
fn at(ip: &str) -> Vec<String> {
    vec![
        "--bind".into(),
        format!("{ip}:7946"),
        "--api".into(),
        format!("{ip}:7380"),
        "--profile".into(),
        "local".into(),
        "--protocol".into(),
        "serf".into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Waits until `who`'s log has `text`.
fn wait_log(who: &Swim, text: &str, timeout: Duration) {
    wait_for(format!("{:?} in {}'s log", text, who.name), timeout, || {
        if who.log().contains(text) {
            Ok(())
        } else {
            Err(who.proc.log_tail(10))
        }
    });
}

#[test]
fn a_config_file_with_an_environment_override_configures_a_real_agent() {
    let env = Env::new("config_file", 200);
    let ip = env.ip(1);
    let path = env.dir.join("agent.toml");
    fs::write(
        &path,
        format!(
            "# swimnet agent settings\nnode = \"from-file\"\nbind = \"{ip}:7946\"\napi = \"{ip}:7380\"\n\
             protocol = \"serf\"\nprofile = \"local\"\ntag = [\"source=file\", \"zone=a\"]\n\
             log_level = \"trace\"\n"
        ),
    )
    .unwrap();
    let cfg = path.to_str().unwrap();
    // SWIMNET_TAG replaces the file's tags; the flag --node would beat both
    // a variable and the file, so the name proves the file was read.
    let a = start(
        &env,
        "from-file",
        "from-file",
        ip,
        &["--config", cfg],
        &[("SWIMNET_TAG", "source=env")],
    );
    let me = a.members().unwrap();
    let me = find(&me, "from-file").expect("itself");
    assert_eq!(me.addr, format!("{ip}:7946"), "bind from the file");
    assert_eq!(
        me.tags.get("source").map(String::as_str),
        Some("env"),
        "{:?}",
        me.tags
    );
    assert!(
        !me.tags.contains_key("zone"),
        "the variable's list replaces the file's"
    );
    // A second agent: the flag beats the variable and the file.
    let b_ip = env.ip(2);
    let b = start(
        &env,
        "from-flag",
        "from-flag",
        b_ip,
        &[
            "--config",
            cfg,
            "--node",
            "from-flag",
            "--bind",
            &format!("{b_ip}:7946"),
            "--api",
            &format!("{b_ip}:7380"),
            "--join",
            &a.addr(),
        ],
        &[("SWIMNET_NODE", "from-env")],
    );
    wait_all_alive(
        &[&a, &b],
        &["from-file", "from-flag"],
        Duration::from_secs(15),
    );
    // TRACE lines (datagrams) once there is traffic: log_level from the file.
    wait_log(&a, "TRACE", Duration::from_secs(5));
    let rss = procstat::rss_kib(b.proc.pid());
    assert!(rss < 64 * 1024, "agent RSS {rss} KiB");
}

#[test]
fn a_bad_config_file_or_value_stops_the_agent_with_one_line() {
    let env = Env::new("config_errors", 200);
    let path = env.dir.join("bad.toml");
    fs::write(&path, "node = \"x\"\nretry_intervl = \"1s\"\n").unwrap();
    let cfg = path.to_str().unwrap().to_string();
    let run = |label: &str, args: &[&str], vars: &[(&str, &str)]| {
        let mut argv = vec!["agent".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut p = env.spawn_env(label, &env.swimnet, &argv, vars);
        let st = p.wait_exit(Duration::from_secs(10)).expect("exits at once");
        (st.code(), p.log_text())
    };
    let (code, out) = run("unknown-key", &["--config", &cfg], &[]);
    assert_eq!(code, Some(2));
    assert!(
        out.contains(&format!(
            "config file {cfg}: key `retry_intervl`: unknown key"
        )),
        "{out}"
    );
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    let (code, out) = run("bad-flag", &["--node", "x", "--log-level", "bogus"], &[]);
    assert_eq!(code, Some(2));
    assert!(out.contains("'--log-level"), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    let (code, out) = run(
        "bad-variable",
        &["--node", "x"],
        &[("SWIMNET_LOG_LEVEL", "loud")],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("\"loud\" is not a level"), "{out}");
}

#[test]
fn host_names_work_for_bind_and_join() {
    let env = Env::new("host_names", 201);
    // `localhost` is the one name that resolves to loopback everywhere:
    // agent A binds it on an ephemeral port (so no fixed port is taken).
    let a_api = env.ip(1);
    let a = start(
        &env,
        "a",
        "a",
        a_api,
        &[
            "--bind",
            "localhost:0",
            "--api",
            &format!("{a_api}:7380"),
            "--profile",
            "local",
            "--protocol",
            "serf",
        ],
        &[],
    );
    let m = a.members().unwrap();
    let a_addr = find(&m, "a").unwrap().addr.clone();
    assert!(
        a_addr.starts_with("127.0.0.1:"),
        "localhost bound as IPv4: {a_addr}"
    );
    let port = a_addr.rsplit_once(':').unwrap().1;
    let mut args = at(&env.ip(2).to_string());
    args.extend(["--join".into(), format!("localhost:{port}")]);
    let b = start(&env, "b", "b", env.ip(2), &strs(&args), &[]);
    let took = wait_all_alive(&[&a, &b], &["a", "b"], Duration::from_secs(15));
    assert!(took < Duration::from_secs(10), "join by name took {took:?}");
    wait_log(&b, "joined the cluster", Duration::from_secs(5));
    // The API's join resolves names too (and refuses what is no address).
    let c = start(
        &env,
        "c",
        "c",
        env.ip(3),
        &strs(&at(&env.ip(3).to_string())),
        &[],
    );
    let (code, body) = http(
        &c.api(),
        "POST",
        "/v1/join",
        Some(r#"{"addrs":["no host:1"]}"#),
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    let req = format!(r#"{{"addrs":["localhost:{port}"]}}"#);
    let (code, body) = http(&c.api(), "POST", "/v1/join", Some(&req)).unwrap();
    assert_eq!((code, body.as_str()), (200, r#"{"joined":1}"#));
    wait_all_alive(&[&a, &b, &c], &["a", "b", "c"], Duration::from_secs(15));
}

#[test]
fn retry_join_reaches_an_agent_that_starts_later_and_gives_up_after_retry_max() {
    let env = Env::new("retry_join", 202);
    let seed = format!("{}:7946", env.ip(1));
    let mut args = at(&env.ip(2).to_string());
    args.extend(["--retry-join", &seed, "--retry-interval", "500ms"].map(String::from));
    let b = start(&env, "b", "b", env.ip(2), &strs(&args), &[]);
    // Nobody there yet: each failed attempt is one log line.
    wait_for("two failed attempts", Duration::from_secs(10), || {
        let n = b
            .log()
            .lines()
            .filter(|l| l.contains("could not join yet"))
            .count();
        if n >= 2 {
            Ok(())
        } else {
            Err(format!("{n} attempts logged"))
        }
    });
    assert!(b.log().lines().any(|l| l.contains("could not join yet")
        && l.contains("--retry-join")
        && l.contains(&seed)));
    let a = start(
        &env,
        "a",
        "a",
        env.ip(1),
        &strs(&at(&env.ip(1).to_string())),
        &[],
    );
    let took = wait_all_alive(&[&a, &b], &["a", "b"], Duration::from_secs(15));
    assert!(
        took < Duration::from_secs(8),
        "retry-join took {took:?} with a 500 ms interval"
    );
    wait_log(&b, "joined the cluster", Duration::from_secs(5));

    // With --retry-max, an unreachable seed ends the agent with an error.
    let mut args = at(&env.ip(3).to_string());
    args.extend(
        [
            "--node",
            "c",
            "--retry-join",
            &format!("{}:7946", env.ip(9)),
            "--retry-interval",
            "100ms",
            "--retry-max",
            "3",
        ]
        .map(String::from),
    );
    let started = Instant::now();
    let mut c = env.spawn("c", &env.swimnet, &{
        let mut v = vec!["agent".to_string()];
        v.extend(args);
        v
    });
    let st = c
        .wait_exit(Duration::from_secs(20))
        .expect("c gives up and exits");
    assert_eq!(st.code(), Some(1), "{}", c.log_tail(10));
    assert!(started.elapsed() < Duration::from_secs(15));
    let log = c.log_text();
    assert!(
        log.contains("swimnet: --retry-join: could not join after 3 attempt(s)"),
        "{log}"
    );
}

#[test]
fn a_second_agent_with_a_taken_name_is_refused_on_both_sides() {
    let env = Env::new("duplicate_name", 203);
    let (ip1, ip2, ip3) = (
        env.ip(1).to_string(),
        env.ip(2).to_string(),
        env.ip(3).to_string(),
    );
    let mut a_args = at(&ip1);
    a_args.extend(["--node".into(), "dup".into()]);
    let a = start(&env, "holder", "dup", env.ip(1), &strs(&a_args), &[]);
    let mut b_args = at(&ip2);
    b_args.extend(["--node".into(), "other".into(), "--join".into(), a.addr()]);
    let b = start(&env, "other", "other", env.ip(2), &strs(&b_args), &[]);
    wait_all_alive(&[&a, &b], &["dup", "other"], Duration::from_secs(15));
    // A second "dup" joins through both: the holder and the other member.
    let mut c_args = at(&ip3);
    c_args.extend(["--node", "dup", "--join", &a.addr(), "--join", &b.addr()].map(String::from));
    let c = start(&env, "impostor", "dup", env.ip(3), &strs(&c_args), &[]);
    wait_log(
        &c,
        "already taken by a live member",
        Duration::from_secs(10),
    );
    wait_log(&b, "duplicate node name", Duration::from_secs(10));
    wait_log(
        &a,
        "another node announces itself under this node's name",
        Duration::from_secs(10),
    );
    let joiner_line = c
        .log()
        .lines()
        .find(|l| l.contains("already taken"))
        .unwrap()
        .to_string();
    assert!(
        joiner_line.contains("dup") && joiner_line.contains(&ip1),
        "{joiner_line}"
    );
    let b_line = b
        .log()
        .lines()
        .find(|l| l.contains("duplicate node name"))
        .unwrap()
        .to_string();
    assert!(
        b_line.contains(&format!("member={ip1}:7946"))
            && b_line.contains(&format!("other={ip3}:7946")),
        "{b_line}"
    );
    assert!(b.stat("name_conflicts").unwrap() >= 1);
    // Nobody took the impostor in, and it took nobody in.
    thread::sleep(Duration::from_secs(2));
    for who in [&a, &b] {
        let m = who.members().unwrap();
        assert_eq!(
            find(&m, "dup").unwrap().addr,
            format!("{ip1}:7946"),
            "{}",
            summary(&m)
        );
        assert_eq!(status_of(&m, "dup").as_deref(), Some("alive"));
        assert_eq!(m.len(), 2, "{}", summary(&m));
    }
    assert_eq!(c.members().unwrap().len(), 1);
}

#[test]
fn log_level_directives_pick_targets() {
    let env = Env::new("log_level", 204);
    let a = start(
        &env,
        "a",
        "a",
        env.ip(1),
        &strs(&at(&env.ip(1).to_string())),
        &[],
    );
    let mut args = at(&env.ip(2).to_string());
    args.extend(
        [
            "--node",
            "b",
            "--join",
            &a.addr(),
            "--log-level",
            "warn,swimnet::join=info",
        ]
        .map(String::from),
    );
    let b = start(&env, "b", "b", env.ip(2), &strs(&args), &[]);
    wait_log(&b, "joined the cluster", Duration::from_secs(15));
    // The info line of another target is filtered out.
    assert!(!b.log().contains("agent started"), "{}", b.log());
    assert!(a.log().contains("agent started"));
}
