//! Agents in `--protocol networkdb` mode on real loopback sockets, driven
//! through Docker's diagnostic paths and swimnet's JSON endpoints.
//! Addresses are 127.0.78.x only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet::agent::{self, AgentOptions, Profile, Protocol, RunningAgent};

fn opts(i: u8, join: Option<SocketAddr>, protocol: Protocol) -> AgentOptions {
    AgentOptions {
        node: format!("ndb-{i}"),
        bind: format!("127.0.78.{i}:0").parse().unwrap(),
        advertise: None,
        join: join.into_iter().map(|a| a.to_string()).collect(),
        retry_join: Default::default(),
        keys: None,
        tags: BTreeMap::new(),
        profile: Profile::Local,
        api: Some(format!("127.0.78.{i}:0").parse().unwrap()),
        protocol,
        topology_aware: false,
        http: agent::HttpOptions {
            diagnostic: Some(format!("127.0.78.{i}:0").parse().unwrap()),
            ..Default::default()
        },
        data_dir: None,
        events: Default::default(),
        overlay: Default::default(),
    }
}

/// One HTTP request; answers (status, body).
async fn http(method: &'static str, url: String, body: Option<Vec<u8>>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let req = ureq::request(method, &url).timeout(Duration::from_secs(10));
        // The API takes state changes only with a content type a web page
        // cannot send cross-origin without a preflight.
        let req = match method {
            "GET" => req,
            "PUT" if url.contains("/v1/tables/") => {
                req.set("Content-Type", "application/octet-stream")
            }
            _ => req.set("Content-Type", "application/json"),
        };
        let r = match body {
            Some(b) => req.send_bytes(&b),
            None => req.call(),
        };
        match r {
            Ok(resp) => {
                let status = resp.status();
                (status, resp.into_string().unwrap())
            }
            Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap()),
            Err(e) => panic!("{method} {url}: {e}"),
        }
    })
    .await
    .unwrap()
}

fn base(a: &RunningAgent) -> String {
    format!("http://{}", a.api_addr.expect("API bound"))
}

/// A Docker diagnostic request (on the `--diagnostic-addr` listener):
/// always HTTP 200.
async fn diag(a: &RunningAgent, path_and_query: &str) -> String {
    let (status, body) = diag_status(a, path_and_query).await;
    assert_eq!(status, 200, "{path_and_query}: {body}");
    body
}

/// A diagnostic request's status and body.
async fn diag_status(a: &RunningAgent, path_and_query: &str) -> (u16, String) {
    let at = a.diagnostic_addr.expect("diagnostic listener bound");
    http("GET", format!("http://{at}{path_and_query}"), None).await
}

async fn diag_json(a: &RunningAgent, path_and_query: &str) -> serde_json::Value {
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let body = diag(a, &format!("{path_and_query}{sep}json")).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path_and_query}: {e}: {body}"))
}

async fn api_json(
    a: &RunningAgent,
    method: &'static str,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, serde_json::Value) {
    let (status, text) = http(method, format!("{}{path}", base(a)), body).await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, v)
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn table_size(a: &RunningAgent) -> u64 {
    let v = diag_json(a, "/gettable?nid=net1&tname=t").await;
    assert_eq!(v["message"], "OK", "{v}");
    v["details"]["size"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networkdb_agents_replicate_tables() {
    let a1 = agent::start(opts(1, None, Protocol::NetworkDb))
        .await
        .unwrap();
    let seed = a1.gossip_addr;
    let a2 = agent::start(opts(2, Some(seed), Protocol::NetworkDb))
        .await
        .unwrap();
    let a3 = agent::start(opts(3, Some(seed), Protocol::NetworkDb))
        .await
        .unwrap();
    let all = [&a1, &a2, &a3];

    docker_simple_paths(&a1).await;
    cluster_forms_and_docker_join(all).await;
    join_network_through_both_apis(all).await;
    write_entries_through_both_apis(all).await;
    entries_replicate(all).await;
    deletes_replicate(all).await;

    // Leaving the network.
    let (status, _) = api_json(&a3, "POST", "/v1/networks/net1/leave", Some(Vec::new())).await;
    assert_eq!(status, 200);
    let (_, v) = api_json(&a3, "GET", "/v1/networks", None).await;
    assert_eq!(v["networks"], serde_json::json!([]));

    // Graceful leaves, one after the other: the others see each leave.
    a1.shutdown.notify_waiters();
    tokio::time::timeout(Duration::from_secs(10), a1.done)
        .await
        .expect("agent stops")
        .unwrap();
    wait_for("a leave seen", Duration::from_secs(10), || async {
        diag(&a2, "/clusterpeers")
            .await
            .starts_with("OK\ntotal entries: 2\n0) ndb-2 -> 127.0.78.2\n")
    })
    .await;
    for a in [a2, a3] {
        a.shutdown.notify_waiters();
        tokio::time::timeout(Duration::from_secs(10), a.done)
            .await
            .expect("agent stops")
            .unwrap();
    }
}

/// Docker's simple paths: /ready, an unknown path, a missing parameter,
/// stats of a network the agent is not on (text and JSON).
async fn docker_simple_paths(a1: &RunningAgent) {
    assert_eq!(diag(a1, "/ready").await, "OK\nOK");
    // Docker's text, but a 404: a probe pointed at a wrong path must not
    // read success.
    assert_eq!(
        diag_status(a1, "/nosuchpath").await,
        (
            404,
            "not implemented\nUsage: URL path: /nosuchpath no method implemented check /help\n"
                .to_string()
        )
    );
    assert_eq!(diag_status(a1, "/metrics").await.0, 404);
    assert_eq!(
        diag(a1, "/createentry?tname=t&nid=net1&key=k").await,
        "missing parameter\nUsage: /createentry?tname=table_name&nid=network_id&key=k&value=v"
    );
    assert_eq!(
        diag(a1, "/networkstats?nid=nope").await,
        "OK\nentries: -1, qlen: -1\n"
    );
    assert_eq!(
        diag(a1, "/networkstats?nid=nope&json").await,
        r#"{"message":"OK","details":{"entries":-1,"QueueLen":-1}}"#
    );
}

/// The three agents see each other on /clusterpeers; Docker's /join works
/// (again, through the seed) and fails with Docker's messages.
async fn cluster_forms_and_docker_join(all: [&RunningAgent; 3]) {
    let [a1, _, a3] = all;
    wait_for("cluster of 3", Duration::from_secs(20), || async {
        let mut ok = true;
        for a in all {
            ok &= diag(a, "/clusterpeers")
                .await
                .starts_with("OK\ntotal entries: 3\n");
        }
        ok
    })
    .await;
    let peers = diag_json(a1, "/clusterpeers").await;
    assert_eq!(peers["details"]["size"], 3);
    let names: Vec<&str> = peers["details"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["-=name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ndb-1", "ndb-2", "ndb-3"]);
    assert_eq!(peers["details"]["entries"][1]["ip"], "127.0.78.2");

    // Docker's /join (again, through the seed), and a failing one.
    assert_eq!(
        diag(a3, &format!("/join?members={}", a1.gossip_addr)).await,
        "OK"
    );
    let v = diag_json(a3, "/join?members=127.0.78.1:1").await;
    assert_eq!(v["message"], "FAIL", "{v}");
    assert!(v["details"]["error"]
        .as_str()
        .unwrap()
        .starts_with("/join error in the DB join 127.0.78.1:1: "));
    assert!(diag(a3, "/join?members=127.0.78.1:1")
        .await
        .starts_with("FAIL\nError: /join error in the DB join 127.0.78.1:1: "));
    assert_eq!(
        diag(a3, "/join").await,
        "missing parameter\nUsage: /join?members=ip1,ip2,..."
    );
}

/// Joins net1: Docker's path on two agents, swimnet's on the third; a
/// second join fails; every agent sees the three peers.
async fn join_network_through_both_apis(all: [&RunningAgent; 3]) {
    let [a1, a2, a3] = all;
    assert_eq!(diag(a1, "/joinnetwork?nid=net1").await, "OK");
    assert_eq!(
        diag(a2, "/joinnetwork?nid=net1&json").await,
        r#"{"message":"OK","details":null}"#
    );
    let (status, v) = api_json(a3, "POST", "/v1/networks/net1/join", Some(Vec::new())).await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = api_json(a3, "GET", "/v1/networks", None).await;
    assert_eq!(v["networks"], serde_json::json!(["net1"]));
    // Joining twice fails, with HTTP 200 on the diagnostic path.
    assert!(diag(a1, "/joinnetwork?nid=net1")
        .await
        .starts_with("FAIL\nError: "));

    wait_for("network of 3", Duration::from_secs(20), || async {
        let mut ok = true;
        for a in all {
            let (_, v) = api_json(a, "GET", "/v1/networks/net1/peers", None).await;
            ok &= v["peers"].as_array().map(Vec::len) == Some(3);
        }
        ok
    })
    .await;
    let np = diag(a2, "/networkpeers?nid=net1").await;
    assert!(
        np.starts_with("OK\ntotal entries: 3\n0) ndb-1 -> 127.0.78.1\n"),
        "{np}"
    );
}

/// Writes on two nodes, through both APIs; the non-owner's update fails.
async fn write_entries_through_both_apis(all: [&RunningAgent; 3]) {
    let [a1, a2, a3] = all;
    assert_eq!(
        diag(a1, "/createentry?tname=t&nid=net1&key=k1&value=djE=").await,
        "OK"
    );
    let (status, v) = api_json(a2, "PUT", "/v1/tables/net1/t/k2", Some(b"v2".to_vec())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        diag(a2, "/createentry?tname=t&nid=net1&key=k3&value=aGVsbG8=").await,
        "OK"
    );
    assert_eq!(
        diag(
            a2,
            "/updateentry?tname=t&nid=net1&key=k3&value=world&unsafe"
        )
        .await,
        "OK"
    );
    // Not the owner.
    assert!(diag(a3, "/updateentry?tname=t&nid=net1&key=k1&value=eA==")
        .await
        .starts_with("FAIL\nError: "));
}

/// The three entries reach every agent, shown the same by both APIs in
/// every format.
async fn entries_replicate(all: [&RunningAgent; 3]) {
    let [a1, _, a3] = all;
    wait_for("3 entries everywhere", Duration::from_secs(30), || async {
        let mut ok = true;
        for a in all {
            ok &= table_size(a).await == 3;
        }
        ok
    })
    .await;
    for a in all {
        assert_eq!(
            diag(a, "/gettable?nid=net1&tname=t").await,
            "OK\ntotal entries: 3\n\
             0) k:`k1` -> v:`djE=` owner:`ndb-1`\n\
             1) k:`k2` -> v:`djI=` owner:`ndb-2`\n\
             2) k:`k3` -> v:`d29ybGQ=` owner:`ndb-2`\n"
        );
        assert_eq!(
            diag(a, "/gettable?nid=net1&tname=t&json").await,
            r#"{"message":"OK","details":{"size":3,"entries":[{"key":"k1","value":"djE=","owner":"ndb-1"},{"key":"k2","value":"djI=","owner":"ndb-2"},{"key":"k3","value":"d29ybGQ=","owner":"ndb-2"}]}}"#
        );
        assert_eq!(
            diag(a, "/getentry?nid=net1&tname=t&key=k1").await,
            "OK\n0) k:`k1` -> v:`djE=` owner:``\n"
        );
        assert_eq!(
            diag(a, "/getentry?nid=net1&tname=t&key=k3&unsafe&json").await,
            r#"{"message":"OK","details":{"key":"k3","value":"world","owner":""}}"#
        );
        let (status, v) = api_json(a, "GET", "/v1/tables/net1/t", None).await;
        assert_eq!(status, 200);
        assert_eq!(
            v,
            serde_json::json!({"network": "net1", "table": "t", "entries": [
                {"key": "k1", "value": "djE=", "owner": "ndb-1"},
                {"key": "k2", "value": "djI=", "owner": "ndb-2"},
                {"key": "k3", "value": "d29ybGQ=", "owner": "ndb-2"},
            ]})
        );
        let (status, v) = api_json(a, "GET", "/v1/tables/net1/t/k2", None).await;
        assert_eq!(status, 200);
        assert_eq!(v["value"], "djI=");
    }
    let pretty = diag(a3, "/getentry?nid=net1&tname=t&key=k1&json=pretty").await;
    assert_eq!(
        pretty,
        "{\n  \"message\": \"OK\",\n  \"details\": {\n    \"key\": \"k1\",\n    \"value\": \"djE=\",\n    \"owner\": \"\"\n  }\n}"
    );
    let stats = diag(a1, "/networkstats?nid=net1").await;
    assert!(stats.starts_with("OK\nentries: 3, qlen: "), "{stats}");
}

/// Deletes propagate (one through each API); deleting again, or an entry
/// owned by another agent, fails.
async fn deletes_replicate(all: [&RunningAgent; 3]) {
    let [a1, a2, _] = all;
    assert_eq!(diag(a1, "/deleteentry?tname=t&nid=net1&key=k1").await, "OK");
    let (status, v) = api_json(a2, "DELETE", "/v1/tables/net1/t/k2", None).await;
    assert_eq!(status, 200, "{v}");
    wait_for("deletes everywhere", Duration::from_secs(30), || async {
        let mut ok = true;
        for a in all {
            ok &= table_size(a).await == 1;
        }
        ok
    })
    .await;
    let (status, _) = api_json(a2, "DELETE", "/v1/tables/net1/t/k2", None).await;
    assert_eq!(status, 404);
    let (status, _) = api_json(a1, "DELETE", "/v1/tables/net1/t/k3", None).await;
    assert_eq!(status, 400);
    for a in all {
        let (status, _) = api_json(a, "GET", "/v1/tables/net1/t/k1", None).await;
        assert_eq!(status, 404);
        assert!(diag(a, "/getentry?nid=net1&tname=t&key=k2")
            .await
            .starts_with("FAIL\nError: "));
        assert_eq!(
            diag(a, "/gettable?nid=net1&tname=t").await,
            "OK\ntotal entries: 1\n0) k:`k3` -> v:`d29ybGQ=` owner:`ndb-2`\n"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serf_agent_refuses_table_commands() {
    let a = agent::start(opts(9, None, Protocol::Serf)).await.unwrap();
    let (status, v) = api_json(&a, "GET", "/v1/networks", None).await;
    assert_eq!(status, 409);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("--protocol networkdb"),
        "{v}"
    );
    let (status, _) = api_json(&a, "PUT", "/v1/tables/n/t/k", Some(b"x".to_vec())).await;
    assert_eq!(status, 409);
    assert_eq!(
        diag(&a, "/gettable?nid=n&tname=t").await,
        "FAIL\nError: database not available"
    );
    assert_eq!(
        diag(&a, "/gettable?nid=n&tname=t&json").await,
        r#"{"message":"FAIL","details":{"error":"database not available"}}"#
    );
    assert_eq!(diag(&a, "/ready").await, "OK\nOK");
    let (status, _) = api_json(&a, "GET", "/v1/nosuch", None).await;
    assert_eq!(status, 404);
    a.shutdown.notify_waiters();
    tokio::time::timeout(Duration::from_secs(10), a.done)
        .await
        .expect("agent stops")
        .unwrap();
}

fn cli(api: SocketAddr, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_swimnet"))
        .args(args)
        .args(["--api", &api.to_string()])
        .output()
        .unwrap()
}

fn cli_ok(api: SocketAddr, args: &[&str]) -> Vec<u8> {
    let out = cli(api, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_drives_networks_and_tables() {
    let a = agent::start(opts(11, None, Protocol::NetworkDb))
        .await
        .unwrap();
    let s = agent::start(opts(12, None, Protocol::Serf)).await.unwrap();
    let api = a.api_addr.unwrap();
    let serf_api = s.api_addr.unwrap();
    let file = std::env::temp_dir().join(format!("swimnet-ndb-{}.bin", std::process::id()));
    std::fs::write(&file, [0u8, 1, 2, 255]).unwrap();
    let file_arg = file.to_string_lossy().to_string();
    tokio::task::spawn_blocking(move || {
        cli_ok(api, &["network", "join", "net/1"]);
        assert_eq!(cli_ok(api, &["network", "list"]), b"net/1\n");
        let peers = String::from_utf8(cli_ok(api, &["network", "peers", "net/1"])).unwrap();
        assert!(peers.starts_with("ndb-11 "), "{peers}");
        assert!(peers.trim_end().ends_with("127.0.78.11"), "{peers}");
        cli_ok(api, &["table", "put", "net/1", "t 1", "k/1", "hello"]);
        cli_ok(api, &["table", "put", "net/1", "t 1", "k/1", "hello again"]);
        cli_ok(
            api,
            &["table", "put", "net/1", "t 1", "bin", "--file", &file_arg],
        );
        assert_eq!(
            cli_ok(api, &["table", "get", "net/1", "t 1", "k/1"]),
            b"hello again"
        );
        assert_eq!(
            cli_ok(api, &["table", "get", "net/1", "t 1", "bin"]),
            [0u8, 1, 2, 255]
        );
        let list: serde_json::Value = serde_json::from_slice(&cli_ok(
            api,
            &["table", "list", "net/1", "t 1", "--format", "json"],
        ))
        .unwrap();
        assert_eq!(
            list,
            serde_json::json!({"network": "net/1", "table": "t 1", "entries": [
                {"key": "bin", "value": "AAEC/w==", "owner": "ndb-11"},
                {"key": "k/1", "value": "aGVsbG8gYWdhaW4=", "owner": "ndb-11"},
            ]})
        );
        let text = String::from_utf8(cli_ok(api, &["table", "list", "net/1", "t 1"])).unwrap();
        assert!(text.contains("base64:AAEC/w=="), "{text}");
        assert!(text.contains("hello again"), "{text}");
        cli_ok(api, &["table", "delete", "net/1", "t 1", "k/1"]);
        let out = cli(api, &["table", "get", "net/1", "t 1", "k/1"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("deleted") || err.contains("could not get"),
            "{err}"
        );
        cli_ok(api, &["network", "leave", "net/1"]);
        assert_eq!(cli_ok(api, &["network", "list"]), b"");

        // An agent that does not run NetworkDB says how to fix it.
        let out = cli(serf_api, &["table", "list", "n", "t"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("--protocol networkdb"), "{err}");
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&file);
    for x in [a, s] {
        x.shutdown.notify_waiters();
        tokio::time::timeout(Duration::from_secs(10), x.done)
            .await
            .expect("agent stops")
            .unwrap();
    }
}
