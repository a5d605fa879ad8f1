//! No silent misconfiguration: operations on a network the agent has not
//! joined answer 404 "not attached to NETWORK" (API and CLI; a watch ends at
//! once instead of hanging); the CLI says in one line what answered at
//! `--api` (nothing, another HTTP server, or the agent with its message);
//! NetworkDB members carry no phantom `role` tag; `swimnet demo` runs its
//! table phase on every agent. Addresses are 127.0.191.x-127.0.193.x only.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The one line a failed CLI command printed on stderr.
fn one_line_error(out: &CmdOut) -> String {
    assert!(!out.ok() && !out.timed_out, "{}", out.describe());
    let err = out.stderr.trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err
}

/// A NetworkDB agent on `127.0.<net>.<host>`, its API answering.
fn networkdb_agent(env: &Env, name: &str, host: u8) -> Proc {
    let ip = env.ip(host);
    let api = format!("{ip}:{SWIM_API_PORT}");
    let args = env.agent_args(name, host, "networkdb");
    let mut proc = env.spawn(name, &env.swimnet, &args);
    let started = Instant::now();
    while !matches!(http(&api, "GET", "/v1/members", None), Ok((200, _))) {
        assert!(proc.is_running(), "{name} exited:\n{}", proc.log_tail(20));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name}: no API in 20 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
    proc
}

fn cli(env: &Env, args: &[&str]) -> CmdOut {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_cmd(&env.swimnet, &args, Duration::from_secs(20))
}

#[test]
fn a_network_not_joined_is_404_not_an_empty_network() {
    let env = Env::new("not_attached", 191);
    let mut agent = networkdb_agent(&env, "solo", 1);
    let api = format!("{}:{SWIM_API_PORT}", env.ip(1));

    for path in [
        "/v1/tables/nope/t",
        "/v1/tables/nope/t/k",
        "/v1/networks/nope/peers",
    ] {
        let (code, body) = http(&api, "GET", path, None).unwrap();
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body.contains("not attached to nope"), "{path}: {body}");
    }

    let t = Instant::now();
    for args in [
        &["table", "list", "--api", &api, "nope", "t"][..],
        &["table", "get", "--api", &api, "nope", "t", "k"],
        &["table", "put", "--api", &api, "nope", "t", "k", "v"],
        &["table", "delete", "--api", &api, "nope", "t", "k"],
        &["table", "watch", "--api", &api, "nope", "t"],
        &["network", "peers", "--api", &api, "nope"],
        &["network", "leave", "--api", &api, "nope"],
    ] {
        let err = one_line_error(&cli(&env, args));
        assert!(
            err.contains("not attached to nope") && err.contains("answered 404"),
            "{args:?}: {err}"
        );
    }
    // The watch above ended with its error instead of waiting for changes.
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // Once joined, the same network is an empty one.
    assert!(cli(&env, &["network", "join", "--api", &api, "nope"]).ok());
    let out = cli(&env, &["table", "list", "--api", &api, "nope", "t"]);
    assert!(out.ok() && out.stdout.is_empty(), "{}", out.describe());
    let out = cli(&env, &["network", "peers", "--api", &api, "nope"]);
    assert!(
        out.ok() && out.stdout.contains("solo"),
        "{}",
        out.describe()
    );

    // NetworkDB nodes carry no metadata: no tags, no phantom role="".
    let (code, body) = http(&api, "GET", "/v1/members", None).unwrap();
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["members"][0]["tags"], serde_json::json!({}), "{body}");
    let out = cli(&env, &["members", "--api", &api]);
    assert!(
        out.ok() && !out.stdout.contains("role="),
        "{}",
        out.describe()
    );
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(10)).is_some());
}

/// Serves `answer` (a whole HTTP response) to every connection on `ip`
/// until the test ends; answers the port.
fn fake_server(ip: Ipv4Addr, answer: &'static str) -> u16 {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    port
}

const HTML_PAGE: &str = "<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1>\n</body></html>\n";

const SWIMNET_PLAIN_413: &str = "HTTP/1.1 413 Payload Too Large\r\nServer: swimnet/0.1.0\r\n\
    Content-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\nConnection: close\r\n\r\n\
    length limit exceeded";

#[test]
fn cli_errors_say_what_answered() {
    let env = Env::new("cli_errors", 192);
    let ip = env.ip(1);

    // Nothing listens: connection refused.
    let port = TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = format!("{ip}:{port}");
    let err = one_line_error(&cli(&env, &["members", "--api", &api]));
    assert!(
        err.starts_with(&format!("swimnet: no agent at {api}: connection refused")),
        "{err}"
    );

    // Another web server: said so, without its page.
    let ok_html: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{HTML_PAGE}",
            HTML_PAGE.len()
        )
        .into_boxed_str(),
    );
    let missing_html: &'static str =
        Box::leak(ok_html.replace("200 OK", "404 Not Found").into_boxed_str());
    for (answer, code) in [(ok_html, 200), (missing_html, 404)] {
        let api = format!("{ip}:{}", fake_server(ip, answer));
        for args in [
            &["members", "--api", &api][..],
            &["table", "watch", "--api", &api, "n", "t"],
            &["leave", "--api", &api],
        ] {
            let err = one_line_error(&cli(&env, args));
            assert!(
                err.contains(&format!(
                    "{api} is not a swimnet agent API: it answered HTTP {code}"
                )),
                "{args:?}: {err}"
            );
            assert!(!err.contains("<html") && !err.contains("nginx"), "{err}");
        }
    }

    // The agent itself: its message, and the status.
    let mut agent = networkdb_agent(&env, "errs", 2);
    let api = format!("{}:{SWIM_API_PORT}", env.ip(2));
    let err = one_line_error(&cli(
        &env,
        &["table", "get", "--api", &api, "nope", "t", "k"],
    ));
    assert_eq!(
        err,
        format!("swimnet: not attached to nope (the agent at {api} answered 404)")
    );
    // Every answer names its server; a plain-text error from a swimnet
    // server (axum's own rejections are text) is the agent's message.
    let mut conn = std::net::TcpStream::connect(&api).unwrap();
    write!(
        conn,
        "GET /nowhere HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    conn.read_to_string(&mut head).unwrap();
    assert!(
        head.to_ascii_lowercase().contains("\r\nserver: swimnet/"),
        "{head}"
    );
    let plain = format!("{ip}:{}", fake_server(ip, SWIMNET_PLAIN_413));
    let err = one_line_error(&cli(&env, &["members", "--api", &plain]));
    assert_eq!(
        err,
        format!("swimnet: length limit exceeded (the agent at {plain} answered 413)")
    );
    // A value over the API's request limit is refused before it is sent.
    let big = env.dir.join("big-value");
    std::fs::write(&big, vec![b'x'; 3 << 20]).unwrap();
    let big = big.to_str().unwrap();
    let err = one_line_error(&cli(
        &env,
        &["table", "put", "--api", &api, "n", "t", "k", "--file", big],
    ));
    assert!(err.contains("over the API's 2 MiB request limit"), "{err}");
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(10)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_its_table_phase_on_every_agent() {
    let report = swimnet::demo::run_on(3, Ipv4Addr::new(127, 0, 193, 1))
        .await
        .unwrap();
    assert_eq!(report.writers, ["demo-0", "demo-1", "demo-2"]);
    // Each agent saw every agent's entry, then the delete.
    assert_eq!(report.entries_seen, [3, 3, 3]);
    assert_eq!(report.entries_after_delete, [2, 2, 2]);
}
