//! Hostile datagrams against a live release-build agent (`--protocol
//! networkdb --profile local`) on loopback: each kind of datagram below is
//! sent 20 times to a fresh agent, which must keep its peak RSS within
//! 16 MiB of where it started, spend under 50 ms of CPU per datagram on
//! average, and answer `GET /v1/members` within 1 s throughout.
//!
//! The datagrams are built with the project's own encoders: memberlist
//! messages and wrappers from `swimnet_wire`, NetworkDB envelopes from
//! `swimnet_networkdb::wire`. Addresses are 127.0.141.x only.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::procstat::{cpu_time, peak_rss_kib};
use common::{http, Env, Proc, GOSSIP_PORT, SWIM_API_PORT};
use swimnet_networkdb::wire::{encode_compound as ndb_compound, encode_gossip, MessageType};
use swimnet_wire::codec::{self, Message};
use swimnet_wire::compound::encode_compound;
use swimnet_wire::compress::compress_payload;
use swimnet_wire::msg::NackResp;

/// Test network: 127.0.141.0/24.
const NET: u8 = 141;
/// Datagrams of each kind sent to its agent.
const PER_KIND: u32 = 20;
/// Most peak-RSS growth allowed over a whole kind (every datagram must stay
/// under this, and the memory of one must be reusable by the next).
const RSS_BUDGET_KIB: u64 = 16 * 1024;
/// Most CPU per datagram, averaged over [`PER_KIND`].
const CPU_BUDGET_PER_DATAGRAM: Duration = Duration::from_millis(50);
/// Slowest `GET /v1/members` allowed while the datagrams arrive.
const API_BUDGET: Duration = Duration::from_secs(1);
/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// One memberlist message encoded (type byte first).
fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(msg, &mut out);
    out
}

/// `[0x09] msgpack{Algo: 0, Buf: lzw(inner)}`.
fn compressed(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress_payload(inner, &mut out);
    out
}

/// A memberlist compound of `n` copies of `part`.
fn compound_of(part: &[u8], n: usize) -> Vec<u8> {
    let parts = vec![part; n];
    let mut out = Vec::new();
    encode_compound(&parts, &mut out);
    out
}

/// A NetworkDB COMPOUND envelope of `n` empty parts, in a memberlist user
/// message, LZW-compressed. An empty `SimpleMessage` is the two bytes
/// `0a 00`, so the envelope is built from that repeated rather than from
/// `n` part structs (checked against the crate's encoder on a few parts).
fn ndb_empty_parts(n: usize) -> Vec<u8> {
    let few = ndb_compound(&[&[] as &[u8]; 3]);
    assert_eq!(
        few,
        encode_gossip(MessageType::Compound, &[0x0a, 0, 0x0a, 0, 0x0a, 0])
    );
    let body = [0x0au8, 0].repeat(n);
    let envelope = encode_gossip(MessageType::Compound, &body);
    compressed(&encode(&Message::User(envelope)))
}

/// compress(compound(255 × compress(compound(255 × leaf)))): 65,025 leaves
/// in four levels of wrappers (memberlist's nesting limit).
fn nested(leaf: &[u8]) -> Vec<u8> {
    let inner = compressed(&compound_of(leaf, 255));
    compressed(&compound_of(&inner, 255))
}

/// The kinds of datagram tried, by name.
fn hostile_datagrams() -> Vec<(&'static str, Vec<u8>)> {
    let nack = encode(&Message::NackResp(NackResp { seq_no: 7 }));
    // A user message of 16 KiB whose body NetworkDB rejects at once (field
    // number 0), compressed to ~240 bytes.
    let mut user = vec![0u8; 16 << 10];
    user[0] = 8;
    let user_bomb = compressed(&user);
    let kinds = vec![
        // The datagram of the issue: ~10 million empty NetworkDB parts.
        ("ndb_compound_10m_parts", ndb_empty_parts(10_000_000)),
        // ~1 MB of empty NetworkDB parts: within the byte budget, over the
        // part budget that memberlist and NetworkDB parts share.
        ("ndb_compound_1mib", ndb_empty_parts(500_000)),
        // 65,025 nacks in nested compound/compress wrappers.
        ("nested_wrappers_nacks", nested(&nack)),
        // 255 compressed user messages of 16 KiB each in one compound.
        ("compound_of_compressed", compound_of(&user_bomb, 255)),
        // A compress bomb: 40 MiB less 1 KiB of zeros.
        ("compress_bomb", compressed(&vec![0u8; (40 << 20) - 1024])),
    ];
    for (name, d) in &kinds {
        eprintln!("{name}: {} bytes", d.len());
        assert!(
            d.len() <= MAX_DATAGRAM,
            "{name}: {} bytes do not fit one datagram",
            d.len()
        );
    }
    kinds
}

/// `stats.<key>` of the agent's `/v1/stats`.
fn stat(api: &str, key: &str) -> Result<u64, String> {
    let (code, body) = http(api, "GET", "/v1/stats", None).map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("/v1/stats -> {code}: {body}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    v["stats"][key]
        .as_u64()
        .ok_or_else(|| format!("no stats.{key} in {body}"))
}

/// Polls `GET /v1/members` every 20 ms in the background and keeps the
/// slowest answer (a failed request counts as its time to fail).
struct ApiWatch {
    stop: Arc<AtomicBool>,
    slowest_us: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ApiWatch {
    fn start(api: String) -> ApiWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_us = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let (s, m, n, f) = (
            stop.clone(),
            slowest_us.clone(),
            requests.clone(),
            failures.clone(),
        );
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = matches!(http(&api, "GET", "/v1/members", None), Ok((200, _)));
                m.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                n.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        ApiWatch {
            stop,
            slowest_us,
            requests,
            failures,
            thread: Some(thread),
        }
    }

    /// Stops polling (after at least one more request); answers (slowest
    /// answer, requests, failed requests).
    fn finish(mut self) -> (Duration, u64, u64) {
        let asked = self.requests.load(Ordering::Relaxed);
        let end = Instant::now() + Duration::from_secs(10);
        while self.requests.load(Ordering::Relaxed) == asked && Instant::now() < end {
            thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            Duration::from_micros(self.slowest_us.load(Ordering::Relaxed)),
            self.requests.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// What one kind of datagram cost its agent.
struct Cost {
    kind: &'static str,
    datagram_bytes: usize,
    sent: u32,
    rss_rise_kib: u64,
    cpu_per_datagram: Duration,
    api_slowest: Duration,
    api_requests: u64,
    api_failures: u64,
    over_budget: Option<u64>,
}

impl Cost {
    fn line(&self) -> String {
        format!(
            "{}: {} B x{}: peak RSS +{} KiB, CPU {:?}/datagram, API slowest {:?} ({} requests, \
             {} failed), over budget {:?}",
            self.kind,
            self.datagram_bytes,
            self.sent,
            self.rss_rise_kib,
            self.cpu_per_datagram,
            self.api_slowest,
            self.api_requests,
            self.api_failures,
            self.over_budget
        )
    }

    /// Within the cost budget, and every datagram counted as over its
    /// decode budget (each kind expands past 1 MiB or 4,096 parts).
    fn within_budget(&self) -> bool {
        self.sent == PER_KIND
            && self.rss_rise_kib < RSS_BUDGET_KIB
            && self.cpu_per_datagram < CPU_BUDGET_PER_DATAGRAM
            && self.api_slowest < API_BUDGET
            && self.api_requests > 0
            && self.api_failures == 0
            && self.over_budget == Some(u64::from(PER_KIND))
    }
}

/// Starts an agent on 127.0.141.`host` and waits for its API.
fn start_agent(env: &Env, name: &str, host: u8) -> (Proc, String) {
    let ip = env.ip(host);
    let api = format!("{ip}:{SWIM_API_PORT}");
    let args = env.agent_args(name, host, "networkdb");
    let mut proc = env.spawn(name, &env.swimnet, &args);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(proc.is_running(), "{name} exited:\n{}", proc.log_tail(30));
        if matches!(http(&api, "GET", "/v1/members", None), Ok((200, _))) {
            return (proc, api);
        }
        assert!(Instant::now() < end, "{name}: no API within 20 s");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `datagram` to a fresh agent up to [`PER_KIND`] times, each after
/// the previous one was handled, and measures what it cost. Stops early
/// once the budget is clearly blown (so that a failing run stays short).
fn measure(env: &Env, host: u8, kind: &'static str, datagram: &[u8]) -> Cost {
    let (mut agent, api) = start_agent(env, kind, host);
    let pid = agent.pid();
    let target = format!("{}:{GOSSIP_PORT}", env.ip(host));
    let sock = UdpSocket::bind((env.ip(200), 0)).expect("bind sender");
    // Settle: let start-up allocations and the first timers happen.
    thread::sleep(Duration::from_millis(500));
    let watch = ApiWatch::start(api.clone());
    let rss0 = peak_rss_kib(pid);
    let cpu0 = cpu_time(pid);
    let packets0 = stat(&api, "packets_in").expect("stats");
    let mut sent = 0;
    while sent < PER_KIND {
        sock.send_to(datagram, &target).expect("send");
        sent += 1;
        let want = packets0 + u64::from(sent);
        let end = Instant::now() + Duration::from_secs(60);
        while stat(&api, "packets_in").unwrap_or(0) < want {
            assert!(agent.is_running(), "{kind}: agent died");
            assert!(Instant::now() < end, "{kind}: datagram {sent} not handled");
            thread::sleep(Duration::from_millis(5));
        }
        let blown = peak_rss_kib(pid) - rss0 >= RSS_BUDGET_KIB
            || cpu_time(pid) - cpu0 >= CPU_BUDGET_PER_DATAGRAM * PER_KIND;
        if blown {
            break;
        }
    }
    let rss_rise_kib = peak_rss_kib(pid) - rss0;
    let cpu = cpu_time(pid) - cpu0;
    let (api_slowest, api_requests, api_failures) = watch.finish();
    let over_budget = stat(&api, "datagrams_over_budget").ok();
    agent.kill9();
    Cost {
        kind,
        datagram_bytes: datagram.len(),
        sent,
        rss_rise_kib,
        cpu_per_datagram: cpu / sent,
        api_slowest,
        api_requests,
        api_failures,
        over_budget,
    }
}

#[test]
fn hostile_datagrams_cost_little() {
    let env = Env::new("hostile_datagram", NET);
    let mut costs = Vec::new();
    for (i, (kind, datagram)) in hostile_datagrams().into_iter().enumerate() {
        let cost = measure(&env, i as u8 + 1, kind, &datagram);
        eprintln!("{}", cost.line());
        costs.push(cost);
    }
    let report: Vec<String> = costs.iter().map(Cost::line).collect();
    for c in &costs {
        assert!(
            c.within_budget(),
            "{} over budget (limits: all {PER_KIND} sent and counted over their decode budget, \
             peak RSS +{RSS_BUDGET_KIB} KiB, {CPU_BUDGET_PER_DATAGRAM:?} CPU per datagram, API \
             {API_BUDGET:?}):\n{}",
            c.kind,
            report.join("\n")
        );
    }
}
