//! The dashboard (`GET /ui`) in a real browser: headless Chromium (Debian's
//! `chromium`), driven over the DevTools protocol, against a 5-agent
//! NetworkDB cluster, plus a memberlist agent with an API token on
//! 127.0.193.0/24. Every assertion reads the rendered DOM. Screenshots of
//! each view go to `target/ui-screenshots/`.
//!
//! The NetworkDB agents `ui-1`..`ui-5` run in network namespaces this test
//! creates (prefix `swu-`, underlay 10.207.0.0/24), with the harness of the
//! overlay suite (tests/overlay_common), so that they attach real overlay
//! endpoints (VXLAN devices inside their namespaces, never in the root
//! one). Each agent's API stays on its namespace's 127.0.0.1:7380; a relay
//! (tests/overlay_common/relay.rs) makes it reachable as 127.0.192.N:7380
//! from the root namespace, where the browser and the test's requests are.
//! Namespaces and agents are removed (by PID) when the test ends, also on
//! failure.
//!
//! The browser resolves no host name (`--host-resolver-rules`) and its
//! background services are off, so it reaches only the agents; the test
//! also checks that every request the page made went to the agent.
//! When Chromium or a namespace cannot be started, the test fails (it is
//! never skipped).

mod common;
// Both harnesses include tests/common/procstat.rs; this test uses common's.
#[allow(clippy::duplicate_mod)]
mod overlay_common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use overlay_common::relay::Relay;
use overlay_common::{ep_ip, Cluster, Site};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A DevTools protocol connection to one page.
struct Cdp {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// URLs of every request the page made (`Network.requestWillBeSent`).
    requests: Vec<String>,
}

impl Cdp {
    /// Connects to the first page target of the browser whose DevTools
    /// listen on `port` (loopback).
    fn connect(port: u16) -> Cdp {
        let list: Value = ureq::get(&format!("http://127.0.0.1:{port}/json/list"))
            .timeout(Duration::from_secs(10))
            .call()
            .expect("DevTools /json/list")
            .into_json()
            .expect("DevTools target list JSON");
        let url = list
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target in {list}"))
            .to_string();
        let (ws, _) = tungstenite::connect(url.as_str()).expect("DevTools WebSocket");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        Cdp {
            ws,
            next_id: 1,
            requests: Vec::new(),
        }
    }

    /// Sends one command and waits for its answer (events read meanwhile
    /// are recorded); panics on a protocol error.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(Message::Text(msg.to_string()))
            .expect("send to DevTools");
        loop {
            let text = match self.ws.read().expect("read from DevTools") {
                Message::Text(t) => t,
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if v["method"] == "Network.requestWillBeSent" {
                if let Some(u) = v["params"]["request"]["url"].as_str() {
                    self.requests.push(u.to_string());
                }
            }
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `cond` (JavaScript) until it is true; panics after `timeout`
    /// with what the page shows.
    fn wait_for(&mut self, what: &str, cond: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            // A page still loading may not have the elements yet.
            let probe = format!(
                "(() => {{ try {{ return !!({cond}); }} catch (e) {{ return false; }} }})()"
            );
            if self.eval(&probe) == json!(true) {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                let body = self.eval(
                    "document.URL + '\\n' + (document.body ? document.body.innerText : document.documentElement.outerHTML)",
                );
                panic!("{what}: not seen within {timeout:?}; the page shows:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a PNG of the page to `target/ui-screenshots/NAME.png`.
    fn screenshot(&mut self, name: &str) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    fn show(&mut self, view: &str) {
        self.eval(&format!(
            "document.querySelector('nav button[data-view={view}]').click()"
        ));
    }
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("ui-screenshots")
}

/// Starts headless Chromium with DevTools on a loopback port; the
/// returned [`Proc`] kills it when dropped. Panics (fails the test) when
/// it does not come up.
fn start_chromium(env: &Env) -> (Proc, u16) {
    let profile = env.dir.join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let bin = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".into());
    let args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--metrics-recording-only",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.*",
        "--window-size=1280,860",
        "about:blank",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect();
    let path = which(&bin).unwrap_or_else(|| {
        panic!("{bin} not found: install Debian's chromium package (scripts/test.sh does)")
    });
    let mut proc = env.spawn("chromium", &path, &args);
    let port_file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u16>().ok())
        {
            return (proc, port);
        }
        if let Some(st) = proc.try_exit() {
            panic!("chromium exited at start ({st}):\n{}", proc.log_tail(30));
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not open DevTools within 30 s:\n{}",
            proc.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    if bin.contains('/') {
        return Some(PathBuf::from(bin));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// One API request with the content type the API wants; answers
/// (status, body).
fn request(api: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let ct = if method == "PUT" && path.starts_with("/v1/tables/") {
        "application/octet-stream"
    } else {
        "application/json"
    };
    let r = ureq::request(method, &format!("http://{api}{path}"))
        .timeout(Duration::from_secs(10))
        .set("Content-Type", ct);
    let r = if method == "GET" {
        r.call()
    } else {
        r.send_bytes(body)
    };
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap()),
        Err(e) => panic!("{method} {api}{path}: {e}"),
    }
}

fn ok(api: &str, method: &str, path: &str, body: &[u8]) {
    let (code, text) = request(api, method, path, body);
    assert_eq!(code, 200, "{method} {path} on {api}: {text}");
}

/// Where the NetworkDB agents live: namespaces `swu-u` (underlay),
/// `swu-hN` (agent `ui-N` on 10.207.0.N) and `swu-hNeM` (endpoints).
const SITE: Site = Site {
    prefix: "swu-",
    net: [10, 207, 0],
    node: "ui-",
    logs: "ui_browser",
};

/// Agents `ui-1`..`ui-5` in their namespaces (each joining `ui-1`), and a
/// relay per agent from 127.0.<net>.N:7380 in the root namespace to its
/// API. Dropping the cluster kills the agents and deletes the namespaces.
fn start_cluster(env: &Env) -> (Cluster, Vec<Relay>) {
    let cluster = Cluster::at(SITE, "", 5, &[]);
    let api: SocketAddr = format!("127.0.0.1:{}", overlay_common::API_PORT)
        .parse()
        .unwrap();
    let relays = (1..=5)
        .map(|n| {
            let listen = SocketAddr::from((env.ip(n), SWIM_API_PORT));
            Relay::start(listen, &cluster.host(n).ns, api)
        })
        .collect();
    (cluster, relays)
}

/// The address of `ui-N`'s API as the browser and the test reach it.
fn api_of(env: &Env, n: u8) -> String {
    format!("{}:{SWIM_API_PORT}", env.ip(n))
}

/// Waits until `api` lists `count` members, all alive.
fn wait_alive(api: &str, count: usize) {
    wait_for(
        format!("{count} alive members at {api}"),
        Duration::from_secs(30),
        || {
            let m = members_at(api)?;
            let alive = m.iter().filter(|x| x.status == "alive").count();
            (alive == count).then_some(()).ok_or(summary(&m))
        },
    );
}

fn members_at(api: &str) -> Result<Vec<Member>, String> {
    let (code, body) = http(api, "GET", "/v1/members", None).map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("{code}: {body}"));
    }
    parse_members(&body)
}

#[test]
fn dashboard_shows_a_live_networkdb_cluster() {
    let env = Env::new("ui_browser", 192);
    let (mut cluster, _relays) = start_cluster(&env);
    let api1 = api_of(&env, 1);
    wait_alive(&api1, 5);
    for n in 1..=5 {
        ok(&api_of(&env, n), "POST", "/v1/networks/net-a/join", b"{}");
    }
    for n in 1..=3 {
        let path = format!("/v1/tables/net-a/endpoints/ep-{n}");
        ok(
            &api_of(&env, n),
            "PUT",
            &path,
            format!("10.0.0.{n}").as_bytes(),
        );
    }
    ok(
        &api_of(&env, 4),
        "PUT",
        "/v1/tables/net-a/binary/blob",
        &[0, 1, 2, 255],
    );

    let (mut chromium, port) = start_chromium(&env);
    let mut page = Cdp::connect(port);
    page.call("Network.enable", json!({}));
    page.call("Page.enable", json!({}));
    let base = format!("http://{api1}");
    page.call("Page.navigate", json!({ "url": format!("{base}/ui") }));
    let loaded = page.wait_for(
        "five alive members",
        "document.querySelectorAll('#members tr[data-member][data-status=alive]').length === 5",
        Duration::from_secs(20),
    );
    eprintln!("members shown {loaded:?} after navigation");
    // Budgets: the page holds one event stream (of the agent's capped
    // slots), and serving it leaves the agent small.
    let (_, stats) = request(&api1, "GET", "/v1/stats", b"");
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        stats["events"]["streams_open"],
        json!(1),
        "{}",
        stats["events"]
    );
    let rss = procstat::rss_kib(cluster.agent_pid(1));
    assert!(rss < 64 * 1024, "agent RSS {rss} KiB with the page open");
    check_members(&mut page);
    check_map(&mut page);
    check_networks(&mut page, &env);
    check_overlays(&mut page, &env, &mut cluster);
    check_failure(&mut page, &mut cluster);
    check_reconnect(&mut page, &mut cluster);
    // Nothing the page loaded came from anywhere but the agent.
    page.call("Runtime.evaluate", json!({ "expression": "1" }));
    assert!(page.requests.len() >= 6, "{:?}", page.requests);
    for u in &page.requests {
        assert!(
            u.starts_with(&format!("{base}/")),
            "request off the agent: {u}"
        );
    }
    let _ = page.call("Browser.close", json!({}));
    chromium.wait_exit(Duration::from_secs(10));
}

/// Members: five alive rows, counts, header, filter, sort, detail RTT.
fn check_members(page: &mut Cdp) {
    // A marker that a reload would lose: every later check is live.
    page.eval("window.__noReload = 1");
    assert_eq!(
        page.eval("document.querySelector('#member-counts [data-count=alive]').innerText.trim()"),
        json!("alive 5")
    );
    page.wait_for(
        "the agent and health score in the header",
        "document.querySelector('#agent').innerText.includes('ui-1 · networkdb · health score')",
        Duration::from_secs(10),
    );
    // Filter and sort work on the rendered table.
    page.eval("const f = document.querySelector('#member-filter'); f.value = 'ui-3'; f.dispatchEvent(new Event('input'))");
    assert_eq!(
        page.eval("document.querySelectorAll('#members tr[data-member]').length"),
        json!(1)
    );
    page.eval("const g = document.querySelector('#member-filter'); g.value = ''; g.dispatchEvent(new Event('input'))");
    page.eval("document.querySelector('#members th[data-sort=name]').click()");
    assert_eq!(
        page.eval("document.querySelector('#members tr[data-member]').dataset.member"),
        json!("ui-5"),
        "a second click on Name sorts descending"
    );
    page.eval("document.querySelector('#members tr[data-member=\"ui-2\"]').click()");
    page.wait_for(
        "the RTT of ui-2 in its detail",
        "/^[0-9.]+ ms$/.test(document.querySelector('#detail-rtt').innerText)",
        Duration::from_secs(30),
    );
    page.screenshot("members");
}

/// The latency map: one point per member, ours marked, stress noted,
/// hover shows the RTT from this agent.
fn check_map(page: &mut Cdp) {
    page.show("map");
    page.wait_for(
        "five points on the latency map",
        "document.querySelectorAll('#map g[data-node]').length === 5",
        Duration::from_secs(40),
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#map g[data-node] circle.pt').length"),
        json!(5)
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#map circle.self-ring').length"),
        json!(1)
    );
    let note = page.eval("document.querySelector('#map-note').innerText");
    assert!(note.as_str().unwrap().contains("stress"), "{note}");
    page.eval("document.querySelector('#map g[data-node=\"ui-4\"]').dispatchEvent(new Event('mouseenter'))");
    let hover = page.eval("document.querySelector('#map-hover [data-rtt]').innerText");
    assert!(
        hover
            .as_str()
            .unwrap()
            .contains("Estimated RTT from ui-1: "),
        "{hover}"
    );
    page.screenshot("map");
}

/// Networks, peers, table counts, the entry browser, a live write.
fn check_networks(page: &mut Cdp, env: &Env) {
    page.show("networks");
    page.wait_for(
        "network net-a with its 5 peers and tables",
        "document.querySelectorAll('[data-network=\"net-a\"] [data-peer]').length === 5 && \
         document.querySelector('[data-network=\"net-a\"] [data-table=endpoints]')?.dataset.entries === '3' && \
         document.querySelector('[data-network=\"net-a\"] [data-table=binary]')?.dataset.entries === '1'",
        Duration::from_secs(20),
    );
    page.eval("document.querySelector('[data-table=endpoints]').click()");
    page.wait_for(
        "the three entries of endpoints",
        "document.querySelectorAll('#entries tr[data-key]').length === 3",
        Duration::from_secs(10),
    );
    assert_eq!(
        page.eval("document.querySelector('#entries tr[data-key=\"ep-2\"]').innerText.replace(/\\s+/g, ' ').trim()"),
        json!("ep-2 ui-2 10.0.0.2"),
    );
    // A write elsewhere in the cluster appears without a reload.
    ok(
        &api_of(env, 2),
        "PUT",
        "/v1/tables/net-a/endpoints/live-key",
        b"hello-live",
    );
    let live = page.wait_for(
        "the entry written through ui-2's API",
        "document.querySelector('#entries tr[data-key=\"live-key\"]') && \
         document.querySelector('#table-changes li[data-key=\"live-key\"]') && window.__noReload === 1",
        Duration::from_secs(15),
    );
    eprintln!("live entry shown {live:?} after the write");
    page.screenshot("networks");

    // Binary values show as base64.
    page.eval("document.querySelector('[data-table=binary]').click()");
    page.wait_for(
        "the binary entry in base64",
        "document.querySelector('#entries tr[data-key=blob] td.b64')?.innerText === 'AAEC/w=='",
        Duration::from_secs(10),
    );
}

/// One endpoint attached for the overlays check, as its attach answered.
struct Ep {
    host: String,
    ns: String,
    id: String,
    name: String,
    ip: String,
    mac: String,
    vtep: String,
}

/// Attaches the new namespace `swu-hIeM` to blue on `ui-I` (CLI
/// `overlay attach`, as the overlay suite does) with address `ip`.
fn attach(cluster: &mut Cluster, i: u8, m: u32, name: &str, ip: &str) -> Ep {
    let ns = cluster.endpoint_ns(i, m);
    let v = cluster
        .attach(i, "blue", &ns, &["--ip", ip, "--name", name])
        .unwrap_or_else(|e| panic!("{e}"));
    let field = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("attach answer without {k}: {v}"))
            .to_string()
    };
    let ep = Ep {
        host: format!("ui-{i}"),
        ns,
        id: field("id"),
        name: field("name"),
        ip: ep_ip(&v).to_string(),
        mac: field("mac"),
        vtep: field("vtep"),
    };
    assert_eq!(ep.ip, ip, "{v}");
    assert_eq!(ep.vtep, SITE.ip(i).to_string(), "VTEP of ui-{i}: {v}");
    ep
}

/// Overlays: the view does not join the definitions network by itself;
/// an overlay created through the API shows live with its ID, subnet and
/// VNI and the hosts attached; the page's agent, not attached, says where
/// the endpoints are; once it attaches one, the view lists every endpoint
/// (attached for real on two hosts) grouped by host, and a detached one
/// disappears, all without a reload.
fn check_overlays(page: &mut Cdp, env: &Env, cluster: &mut Cluster) {
    let api1 = api_of(env, 1);
    page.show("overlays");
    page.wait_for(
        "the offer to load overlays on an agent that used none",
        "document.querySelector('#overlays-load') && window.__noReload === 1",
        Duration::from_secs(15),
    );
    let (_, nets) = request(&api1, "GET", "/v1/networks", b"");
    assert!(
        !nets.contains("swimnet-overlay-definitions"),
        "showing the view joined the definitions network: {nets}"
    );
    let (code, created) = request(
        &api1,
        "POST",
        "/v1/overlays",
        br#"{"name": "blue", "subnet": "10.77.0.0/24", "vni": 4242}"#,
    );
    assert_eq!(code, 201, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let id = created["id"].as_str().expect("overlay id").to_string();
    // ui-2 attaches two endpoints: it joins the overlay's network.
    assert_eq!(cluster.overlay_id(2, "blue"), id, "blue's ID on ui-2");
    let mut eps = vec![
        attach(cluster, 2, 1, "web2", "10.77.0.3"),
        attach(cluster, 2, 2, "db", "10.77.0.4"),
    ];
    let shown = page.wait_for(
        "overlay blue with its ID, subnet, VNI and host",
        &format!(
            "(() => {{ const o = document.querySelector('[data-overlay=blue]'); \
             const f = (n) => o.querySelector('[data-field=' + n + ']').innerText; \
             return o && f('id') === '{id}' && f('subnet') === '10.77.0.0/24' && f('vni') === '4242' && \
             o.querySelector('[data-field=hosts] [data-host=ui-2]') && \
             o.querySelector('[data-endpoints-error]')?.innerText.includes('ui-2') && \
             window.__noReload === 1; }})()"
        ),
        Duration::from_secs(20),
    );
    eprintln!("overlay shown {shown:?} after ui-2 attached");
    page.screenshot("overlays");
    // The page's agent attaches one too: it holds blue's tables now.
    eps.push(attach(cluster, 1, 1, "web1", "10.77.0.2"));
    let listed = check_endpoint_rows(page, &eps);
    eprintln!("3 endpoints listed {listed:?} after ui-1 attached");
    page.screenshot("overlays-endpoints");
    let gone = eps.remove(1);
    cluster.cli_ok(2, &["overlay", "detach", "blue", "--netns", &gone.ns]);
    let removed = check_endpoint_rows(page, &eps);
    eprintln!("{} gone {removed:?} after its detach", gone.name);
}

/// Waits until blue's endpoint table shows exactly `eps`, grouped by host
/// (hosts in order, endpoints by name), each row with its name, address,
/// MAC and VTEP and tagged with its host and ID, without a reload.
fn check_endpoint_rows(page: &mut Cdp, eps: &[Ep]) -> Duration {
    let hosts: BTreeSet<&str> = eps.iter().map(|e| e.host.as_str()).collect();
    let (mut rows, mut tags) = (Vec::new(), Vec::new());
    for h in hosts {
        let mut list: Vec<&Ep> = eps.iter().filter(|e| e.host == h).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let this = if h == "ui-1" { " (this agent)" } else { "" };
        let plural = if list.len() == 1 { "" } else { "s" };
        rows.push(format!("{h}{this}: {} endpoint{plural}", list.len()));
        for e in list {
            rows.push(format!("{} {} {} {}", e.name, e.ip, e.mac, e.vtep));
            tags.push(format!("{} {}", e.host, e.id));
        }
    }
    let want = json!({ "rows": rows, "tags": tags }).to_string();
    page.wait_for(
        &format!("blue's endpoints grouped by host: {want}"),
        &format!(
            "(() => {{ const o = document.querySelector('[data-overlay=blue]'); \
             const rows = [...o.querySelectorAll('tbody tr')].map((r) => r.innerText.replace(/\\s+/g, ' ').trim()); \
             const tags = [...o.querySelectorAll('tr[data-endpoint]')].map((r) => r.dataset.host + ' ' + r.dataset.endpoint); \
             return JSON.stringify({{ rows, tags }}) === {want_js} && window.__noReload === 1; }})()",
            want_js = serde_json::to_string(&want).unwrap()
        ),
        Duration::from_secs(20),
    )
}

/// An agent dies: its row turns failed without a reload, and the feed
/// says so.
fn check_failure(page: &mut Cdp, cluster: &mut Cluster) {
    cluster.kill9(5);
    page.show("members");
    let failed = page.wait_for(
        "ui-5 failed",
        "document.querySelector('#members tr[data-member=\"ui-5\"]')?.dataset.status === 'failed' && window.__noReload === 1",
        Duration::from_secs(40),
    );
    eprintln!("ui-5 shown failed {failed:?} after it was killed");
    page.show("activity");
    page.wait_for(
        "the failure in the activity feed and three charts",
        "document.querySelector('#feed li[data-type=member-failed]') && \
         document.querySelectorAll('#charts .uplot').length === 3",
        Duration::from_secs(10),
    );
    page.screenshot("activity");
}

/// The agent behind the page restarts: a banner, then it reconnects.
fn check_reconnect(page: &mut Cdp, cluster: &mut Cluster) {
    cluster.kill9(1);
    page.wait_for(
        "the disconnected banner",
        "!document.querySelector('#banner').hidden",
        Duration::from_secs(15),
    );
    page.screenshot("disconnected");
    cluster.start_agent_joining(1, Some(2));
    page.wait_for(
        "the page reconnected",
        "document.querySelector('#banner').hidden && document.body.dataset.connected === 'true' && window.__noReload === 1",
        Duration::from_secs(30),
    );
    page.show("members");
    page.wait_for(
        "ui-2 alive after the reconnect",
        "document.querySelector('#members tr[data-member=\"ui-2\"]')?.dataset.status === 'alive'",
        Duration::from_secs(20),
    );
}

#[test]
fn dashboard_with_a_token_in_memberlist_mode() {
    let env = Env::new("ui_browser_token", 193);
    let token_file = env.dir.join("token");
    std::fs::write(&token_file, "ui-test-token-0123456789").unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut args = env.agent_args("tok-1", 1, "memberlist");
    args.extend(["--api-token-file".into(), token_file.display().to_string()]);
    let _agent = env.spawn("tok-1", &env.swimnet, &args);
    let api = api_of(&env, 1);
    // The API itself refuses a request without the token...
    wait_for("the API up", Duration::from_secs(20), || {
        match http(&api, "GET", "/v1/members", None) {
            Ok((401, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // ...but serves the page's static files, with the policy.
    let resp = ureq::get(&format!("http://{api}/ui"))
        .call()
        .expect("GET /ui");
    let csp = resp.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );

    let (mut chromium, port) = start_chromium(&env);
    let mut page = Cdp::connect(port);
    page.call("Page.enable", json!({}));
    // Without the token the page loads, and says what it needs.
    page.call(
        "Page.navigate",
        json!({ "url": format!("http://{api}/ui") }),
    );
    page.wait_for(
        "the banner asking for a token",
        "!document.querySelector('#banner').hidden && \
         document.querySelector('#banner').innerText.includes('/ui#token=TOKEN')",
        Duration::from_secs(15),
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#members tr[data-member]').length"),
        json!(0)
    );
    page.call(
        "Page.navigate",
        json!({ "url": format!("http://{api}/ui#token=ui-test-token-0123456789") }),
    );
    page.wait_for(
        "the member list read with the token",
        "document.querySelector('#members tr[data-member=\"tok-1\"]')?.dataset.status === 'alive' && \
         document.body.dataset.connected === 'true'",
        Duration::from_secs(20),
    );
    assert_eq!(
        page.eval("location.hash + location.search"),
        json!(""),
        "the token is taken out of the address bar"
    );
    page.show("networks");
    page.wait_for(
        "networks not available in memberlist mode",
        "document.querySelector('#networks-na').innerText.includes('not available in this mode')",
        Duration::from_secs(15),
    );
    page.screenshot("not-available");
    page.show("overlays");
    page.wait_for(
        "overlays not available in memberlist mode",
        "document.querySelector('#overlays-na').innerText.includes('not available in this mode')",
        Duration::from_secs(15),
    );
    let _ = page.call("Browser.close", json!({}));
    chromium.wait_exit(Duration::from_secs(10));
}
