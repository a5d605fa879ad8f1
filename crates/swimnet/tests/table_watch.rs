//! `GET /v1/tables/{nid}/{table}?watch=true`: two agents in networkdb mode
//! on loopback; a watcher on one sees the current entries, then a create,
//! an update and a delete made on the other node, in order. Addresses are
//! 127.0.79.x only.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use swimnet::agent::{self, AgentOptions, Profile, Protocol, RunningAgent};
use swimnet::api::WatchEvent;

fn opts(i: u8, join: Option<SocketAddr>) -> AgentOptions {
    AgentOptions {
        node: format!("watch-{i}"),
        bind: format!("127.0.79.{i}:0").parse().unwrap(),
        advertise: None,
        join: join.into_iter().map(|a| a.to_string()).collect(),
        retry_join: Default::default(),
        keys: None,
        tags: BTreeMap::new(),
        profile: Profile::Local,
        api: Some(format!("127.0.79.{i}:0").parse().unwrap()),
        protocol: Protocol::NetworkDb,
        topology_aware: false,
        http: Default::default(),
        data_dir: None,
        events: Default::default(),
        overlay: Default::default(),
    }
}

fn base(a: &RunningAgent) -> String {
    format!("http://{}", a.api_addr.expect("API bound"))
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

async fn ok(a: &RunningAgent, method: &'static str, path: &str, body: Option<&str>) {
    let (status, text) = http(
        method,
        format!("{}{path}", base(a)),
        body.map(|b| b.as_bytes().to_vec()),
    )
    .await;
    assert_eq!(status, 200, "{method} {path}: {text}");
}

async fn json(a: &RunningAgent, path: &str) -> serde_json::Value {
    let (status, text) = http("GET", format!("{}{path}", base(a)), None).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
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

/// Opens a watch and forwards its lines; the reading thread ends with the
/// stream (or the test process).
fn watch(url: String) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let resp = ureq::get(&url).call().expect("watch request");
        assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
        for line in std::io::BufReader::new(resp.into_reader()).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> (String, String, String) {
    let line = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a watch event within 15 s")
        .expect("the watch stream is open");
    let e: WatchEvent = serde_json::from_str(&line).unwrap_or_else(|err| panic!("{err}: {line}"));
    assert_eq!(
        (e.network.as_str(), e.table.as_str()),
        ("net", "t"),
        "{line}"
    );
    let value = base64::engine::general_purpose::STANDARD
        .decode(&e.value)
        .unwrap();
    (e.event, e.key, String::from_utf8(value).unwrap())
}

fn ev(event: &str, key: &str, value: &str) -> (String, String, String) {
    (event.into(), key.into(), value.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_initial_entries_then_remote_changes_in_order() {
    let a1 = agent::start(opts(1, None)).await.unwrap();
    let a2 = agent::start(opts(2, Some(a1.gossip_addr))).await.unwrap();
    ok(&a1, "POST", "/v1/networks/net/join", None).await;
    ok(&a2, "POST", "/v1/networks/net/join", None).await;
    wait_for(
        "both nodes attached to net",
        Duration::from_secs(20),
        || async {
            let mut all = true;
            for a in [&a1, &a2] {
                let v = json(a, "/v1/networks/net/peers").await;
                all &= v["peers"].as_array().map_or(0, |p| p.len()) == 2;
            }
            all
        },
    )
    .await;

    // Current entries: one written locally, one replicated from the peer.
    ok(&a1, "PUT", "/v1/tables/net/t/a", Some("from-1")).await;
    ok(&a2, "PUT", "/v1/tables/net/t/b", Some("from-2")).await;
    wait_for(
        "b replicated to watch-1",
        Duration::from_secs(20),
        || async {
            json(&a1, "/v1/tables/net/t").await["entries"]
                .as_array()
                .map_or(0, |e| e.len())
                == 2
        },
    )
    .await;

    let mut rx = watch(format!("{}/v1/tables/net/t?watch=true", base(&a1)));
    assert_eq!(next_event(&mut rx).await, ev("create", "a", "from-1"));
    assert_eq!(next_event(&mut rx).await, ev("create", "b", "from-2"));

    // Changes made on the other node, each awaited before the next so the
    // order on the wire is the order written.
    ok(&a2, "PUT", "/v1/tables/net/t/c", Some("v1")).await;
    assert_eq!(next_event(&mut rx).await, ev("create", "c", "v1"));
    ok(&a2, "PUT", "/v1/tables/net/t/c", Some("v2")).await;
    assert_eq!(next_event(&mut rx).await, ev("update", "c", "v2"));
    ok(&a2, "DELETE", "/v1/tables/net/t/c", None).await;
    assert_eq!(next_event(&mut rx).await, ev("delete", "c", "v2"));

    // A local write is reported too.
    ok(&a1, "PUT", "/v1/tables/net/t/a", Some("again")).await;
    assert_eq!(next_event(&mut rx).await, ev("update", "a", "again"));

    // Nothing else arrived (another table, or duplicates): the next event
    // is a sentinel written after everything above, and after a write to
    // another table of the same network.
    ok(&a1, "PUT", "/v1/tables/net/u/x", Some("other")).await;
    ok(&a1, "PUT", "/v1/tables/net/t/zz-end", Some("end")).await;
    assert_eq!(next_event(&mut rx).await, ev("create", "zz-end", "end"));

    // An agent not running NetworkDB refuses to watch, with one error.
    let mut plain = opts(3, None);
    plain.protocol = Protocol::Memberlist;
    let a3 = agent::start(plain).await.unwrap();
    let (status, text) = http(
        "GET",
        format!("{}/v1/tables/net/t?watch=true", base(&a3)),
        None,
    )
    .await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("--protocol networkdb"), "{text}");

    for a in [a1, a2, a3] {
        a.shutdown.notify_waiters();
        let _ = a.done.await;
    }
}
