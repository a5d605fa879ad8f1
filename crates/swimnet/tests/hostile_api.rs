//! The agent's HTTP side against hostile local clients and web pages, and
//! its handling of key files and peer-supplied log text, on live `swimnet
//! agent` processes. Addresses are 127.0.93.x only; every process started
//! is ended by its PID when the test ends.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::procstat::{cpu_time, rss_kib};

const BIN: &str = env!("CARGO_BIN_EXE_swimnet");

/// A `swimnet agent` process; killed (by PID) when dropped.
struct Agent {
    child: Child,
    api: SocketAddr,
    gossip: SocketAddr,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Starts an agent on 127.0.93.`host` (gossip :7946, API :17380) with
    /// `extra` arguments, its stderr in `dir`, and waits for its API.
    fn start(dir: &Path, host: u8, extra: &[&str]) -> Agent {
        Agent::start_with(dir, host, extra, |c| c)
    }

    fn start_with(
        dir: &Path,
        host: u8,
        extra: &[&str],
        prepare: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Agent {
        let gossip: SocketAddr = format!("127.0.93.{host}:7946").parse().unwrap();
        let api: SocketAddr = format!("127.0.93.{host}:17380").parse().unwrap();
        let log = dir.join(format!("agent-{host}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args(["agent", "--profile", "local"]);
        if !extra.contains(&"--node") {
            cmd.args(["--node", &format!("n{host}")]);
        }
        cmd.args(["--bind", &gossip.to_string(), "--api", &api.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = prepare(&mut cmd).spawn().unwrap();
        let mut a = Agent {
            child,
            api,
            gossip,
            log,
        };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            // Any answer (401 when a token is needed) means the API is up.
            if try_request(api, &get("/v1/members", api)).is_ok() {
                return a;
            }
            if let Ok(Some(status)) = a.child.try_wait() {
                panic!("agent exited with {status}: {}", a.log_text());
            }
            assert!(Instant::now() < end, "API not up: {}", a.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A fresh private directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swimnet-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A GET request with a proper Host header.
fn get(path: &str, api: SocketAddr) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n")
}

/// Sends a raw request, reads the whole answer; (status, body).
fn try_request(addr: SocketAddr, raw: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(raw.as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {text:?}")))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

fn request(addr: SocketAddr, raw: &str) -> (u16, String) {
    try_request(addr, raw).unwrap_or_else(|e| panic!("{raw:?} to {addr}: {e}"))
}

/// The one-line `{"error": ...}` of a refusal.
fn refusal(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    let e = v["error"].as_str().expect("an error message").to_string();
    assert!(!e.contains('\n'), "{e}");
    e
}

fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err
}

#[test]
fn dns_rebinding_host_gets_no_keys() {
    let dir = temp_dir("host");
    let key = swimnet::keyfile::generate_key();
    let mut a = Agent::start_with(&dir, 1, &["--api-host", "agent.test"], |c| {
        c.env("SWIMNET_ENCRYPT_KEY", &key)
    });
    // The key given by environment is not on the command line (`ps`).
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", a.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(&key));
    for host in [
        "evil.example",
        "evil.example:17380",
        "127.0.93.1.evil.example:17380",
    ] {
        let raw = format!("GET /v1/keys HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, body) = request(a.api, &raw);
        assert_eq!(status, 403, "{host}: {body}");
        assert!(!body.contains(&key), "{body}");
        assert!(refusal(&body).contains("--api-host"), "{body}");
    }
    for host in [
        a.api.to_string(),
        "localhost:17380".into(),
        "Agent.Test:17380".into(),
    ] {
        let raw = format!("GET /v1/keys HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, body) = request(a.api, &raw);
        assert_eq!(status, 200, "{host}: {body}");
        assert!(body.contains(&key), "{body}");
    }
    let (_, stats) = request(a.api, &get("/v1/stats", a.api));
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(v["api"]["requests_refused"], 3, "{v}");
    assert!(a.running());
}

#[test]
fn cross_origin_simple_post_cannot_make_the_agent_leave() {
    let dir = temp_dir("origin");
    let mut a = Agent::start(&dir, 2, &[]);
    let api = a.api;
    // What any web page can send without a preflight: a text/plain POST,
    // with its Origin, or a form post through a rebound name.
    let attempts = [
        (
            format!("Origin: http://evil.example\r\nHost: {api}"),
            "text/plain",
            403,
        ),
        (
            format!("Origin: null\r\nHost: {api}"),
            "application/json",
            403,
        ),
        (
            format!("Origin: http://127.0.0.1:8080\r\nHost: {api}"),
            "application/json",
            403,
        ),
        (format!("Host: {api}"), "text/plain", 415),
        (
            format!("Host: {api}"),
            "application/x-www-form-urlencoded",
            415,
        ),
        (
            format!("Host: {api}"),
            "multipart/form-data; boundary=x",
            415,
        ),
    ];
    for (headers, ct, want) in &attempts {
        let raw = format!(
            "POST /v1/leave HTTP/1.1\r\n{headers}\r\nContent-Type: {ct}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let (status, body) = request(api, &raw);
        assert_eq!(status, *want, "{headers} {ct}: {body}");
        refusal(&body);
    }
    let put = format!(
        "PUT /v1/tables/n/t/k HTTP/1.1\r\nHost: {api}\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
    );
    assert_eq!(request(api, &put).0, 415);
    std::thread::sleep(Duration::from_millis(500));
    assert!(a.running(), "the agent left: {}", a.log_text());
    assert_eq!(request(api, &get("/v1/members", api)).0, 200);
    // The CLI sends what the API wants: `swimnet leave` still works.
    let out = cli(&["leave", "--api", &api.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let end = Instant::now() + Duration::from_secs(10);
    while a.running() {
        assert!(Instant::now() < end, "the agent did not exit after a leave");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn diagnostic_paths_live_only_on_their_own_listener() {
    let dir = temp_dir("diag");
    let a = Agent::start(&dir, 3, &[]);
    // Today's GETs that change state do nothing on the API port.
    let (status, body) = request(a.api, &get("/joinnetwork?nid=net1", a.api));
    assert_eq!(status, 404, "{body}");
    assert!(refusal(&body).contains("--diagnostic-addr"), "{body}");
    let (_, nets) = request(a.api, &get("/v1/networks", a.api));
    assert!(!nets.contains("net1"), "{nets}");
    drop(a);

    let diag: SocketAddr = "127.0.93.4:18000".parse().unwrap();
    let b = Agent::start(&dir, 4, &["--diagnostic-addr", &diag.to_string()]);
    let (status, body) = request(diag, &get("/joinnetwork?nid=net1", diag));
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (_, nets) = request(b.api, &get("/v1/networks", b.api));
    assert!(nets.contains("net1"), "{nets}");
    assert_eq!(request(diag, &get("/ready", diag)), (200, "OK\nOK".into()));
    // The diagnostic listener checks Host too.
    let raw = "GET /leavenetwork?nid=net1 HTTP/1.1\r\nHost: evil.example:18000\r\nConnection: close\r\n\r\n";
    assert_eq!(request(diag, raw).0, 403);
    let (_, nets) = request(b.api, &get("/v1/networks", b.api));
    assert!(nets.contains("net1"), "{nets}");
}

#[test]
fn a_configured_token_is_required() {
    let dir = temp_dir("token");
    let token_file = dir.join("token");
    write_mode(&token_file, "t0k3n-for-tests\n", 0o600);
    let tf = token_file.to_str().unwrap();
    // A non-loopback API without a token is refused before anything binds it.
    let out = cli(&[
        "agent",
        "--node",
        "x",
        "--bind",
        "127.0.93.5:7946",
        "--api",
        "192.0.2.1:17380",
    ]);
    let err = one_line_error(&out);
    assert!(err.contains("--api-token-file"), "{err}");
    // A token file others may read is refused with the fix.
    let loose = dir.join("loose");
    write_mode(&loose, "t0k3n\n", 0o644);
    let out = cli(&[
        "agent",
        "--node",
        "x",
        "--bind",
        "127.0.93.5:7946",
        "--api-token-file",
        loose.to_str().unwrap(),
    ]);
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!("chmod 600 {}", loose.display())),
        "{err}"
    );

    let a = Agent::start_with(&dir, 5, &["--api-token-file", tf], |c| c);
    let api = a.api;
    let with_auth = |auth: &str| {
        format!("GET /v1/members HTTP/1.1\r\nHost: {api}\r\n{auth}Connection: close\r\n\r\n")
    };
    assert_eq!(request(api, &with_auth("")).0, 401);
    assert_eq!(
        request(api, &with_auth("Authorization: Bearer t0k3n-for-testS\r\n")).0,
        401
    );
    assert_eq!(
        request(api, &with_auth("Authorization: Bearer t0k3n-for-tests\r\n")).0,
        200
    );
    let api_s = api.to_string();
    let err = one_line_error(&cli(&["members", "--api", &api_s]));
    assert!(err.contains("Bearer"), "{err}");
    let out = cli(&["members", "--api", &api_s, "--token-file", tf]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["members", "--api", &api_s])
        .env("SWIMNET_API_TOKEN", "t0k3n-for-tests")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("n5"));
}

#[test]
fn idle_connections_starve_neither_gossip_nor_the_api() {
    swimnet::fdlimit::raise_nofile_limit();
    let dir = temp_dir("idle");
    // The agent starts with the common soft limit of 1024 open files.
    let a = Agent::start_with(&dir, 6, &["--api-idle-timeout", "3s"], |c| {
        let args: Vec<String> = c
            .get_args()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("ulimit -Sn 1024 && exec \"$0\" \"$@\"")
            .arg(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("agent-6.log")).unwrap());
        *c = sh;
        c
    });
    let cpu_before = cpu_time(a.pid());
    let t0 = Instant::now();
    let idle: Vec<TcpStream> = (0..1100)
        .map(|i| {
            TcpStream::connect_timeout(&a.api, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    // Every connection is either held or answered 503 and closed; the API
    // answers a new request within a second either way.
    // (A second for the over-the-cap ones to be answered and closed.)
    std::thread::sleep(Duration::from_secs(1));
    let asked = Instant::now();
    let (status, body) = request(a.api, &get("/v1/members", a.api));
    let latency = asked.elapsed();
    assert!(status == 200 || status == 503, "{status}: {body}");
    assert!(
        latency < Duration::from_secs(1),
        "API answered in {latency:?}"
    );
    // Gossip still accepts: a second agent joins over TCP push/pull.
    let b = Agent::start(&dir, 7, &["--join", &a.gossip.to_string()]);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m) = request(b.api, &get("/v1/members", b.api));
        if m.matches("\"alive\"").count() == 2 {
            break;
        }
        assert!(
            Instant::now() < end,
            "the join did not complete: {m}\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss = rss_kib(a.pid());
    // The idle connections are closed by the agent after the idle timeout.
    let mut held = idle;
    let mut buf = [0u8; 256];
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("an idle connection stayed open {:?}: {e}", t0.elapsed()),
            }
        }
    }
    let closed_after = t0.elapsed();
    assert!(closed_after < Duration::from_secs(10), "{closed_after:?}");
    let (status, stats) = request(a.api, &get("/v1/stats", a.api));
    assert_eq!(status, 200, "{stats}");
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let api = &v["api"];
    let refused = api["connections_refused"].as_u64().unwrap();
    let served = api["connections_served"].as_u64().unwrap();
    let idle_closed = api["connections_idle_closed"].as_u64().unwrap();
    // The cap bit (at most 256 held at once), and every connection was
    // either served or refused at once.
    assert!(refused > 0 && refused + served >= 1100, "{api}");
    assert!(idle_closed >= 256, "{api}");
    assert_eq!(api["accept_errors"], 0, "{api}");
    let cpu = cpu_time(a.pid()) - cpu_before;
    eprintln!(
        "1,100 idle API connections: API answered {status} in {latency:?}, RSS {rss} KiB, \
         CPU {cpu:?}, all closed after {closed_after:?}; {api}"
    );
    assert!(rss < 64 * 1024, "RSS {rss} KiB");
    assert!(
        cpu < Duration::from_secs(3),
        "CPU {cpu:?} over {closed_after:?}"
    );
}

#[test]
fn keyring_file_is_never_written_through_a_symlink() {
    let dir = temp_dir("symlink");
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let ring = dir.join("keyring.json");
    let k1 = swimnet::keyfile::generate_key();
    let k2 = swimnet::keyfile::generate_key();
    write_mode(&ring, &format!("[\"{k1}\"]"), 0o600);
    // The fixed temporary name used before, planted by another local user.
    std::os::unix::fs::symlink(&victim, dir.join("keyring.tmp")).unwrap();
    let a = Agent::start(
        &dir,
        8,
        &[
            "--protocol",
            "serf",
            "--keyring-file",
            ring.to_str().unwrap(),
        ],
    );
    let out = cli(&[
        "keys",
        "--api",
        &a.api.to_string(),
        "install",
        "--local",
        &k2,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let saved: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&ring).unwrap()).unwrap();
    assert_eq!(saved, vec![k1, k2]);
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(&ring).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn key_files_open_to_others_are_refused() {
    let dir = temp_dir("keymode");
    let key = dir.join("key");
    write_mode(&key, &swimnet::keyfile::generate_key(), 0o644);
    let ring = dir.join("ring.json");
    write_mode(
        &ring,
        &format!("[\"{}\"]", swimnet::keyfile::generate_key()),
        0o640,
    );
    for (flag, path) in [("--encrypt-file", &key), ("--keyring-file", &ring)] {
        let out = cli(&[
            "agent",
            "--node",
            "x",
            "--bind",
            "127.0.93.9:7946",
            "--api",
            "127.0.93.9:17380",
            flag,
            path.to_str().unwrap(),
        ]);
        let err = one_line_error(&out);
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{flag}: {err}"
        );
    }
    // Private, the key file works.
    write_mode(&key, &swimnet::keyfile::generate_key(), 0o600);
    let a = Agent::start(&dir, 9, &["--encrypt-file", key.to_str().unwrap()]);
    let (_, keys) = request(a.api, &get("/v1/keys", a.api));
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(keys.contains(text.trim()), "{keys}");
}

#[test]
fn peer_node_names_are_logged_escaped() {
    let dir = temp_dir("logs");
    let a = Agent::start(&dir, 10, &[]);
    let evil = "evil\n2030-01-01T00:00:00Z  INFO forged: member joined node=admin\x1b[2J";
    let b = Agent::start(&dir, 11, &["--node", evil, "--join", &a.gossip.to_string()]);
    let end = Instant::now() + Duration::from_secs(10);
    while !a.log_text().contains("evil") {
        assert!(Instant::now() < end, "no join logged: {}", a.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = a.log_text();
    assert!(!log.contains('\x1b'), "raw ESC in the log: {log:?}");
    assert!(
        !log.lines().any(|l| l.starts_with("2030-01-01")),
        "forged line: {log}"
    );
    assert!(
        log.contains("evil\\n2030-01-01T00:00:00Z  INFO forged: member joined node=admin\\x1b[2J"),
        "{log}"
    );
    drop(b);
}

#[test]
fn a_table_watch_outlives_the_idle_timeout() {
    let dir = temp_dir("watch");
    let a = Agent::start(&dir, 12, &["--api-idle-timeout", "1s"]);
    let api = a.api;
    let post = format!(
        "POST /v1/networks/net/join HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(request(api, &post).0, 200);
    let mut watch = TcpStream::connect(api).unwrap();
    watch
        .write_all(get("/v1/tables/net/t?watch=true", api).as_bytes())
        .unwrap();
    let mut idle = TcpStream::connect(api).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // The idle connection is gone; the watch is not.
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(idle.read(&mut [0u8; 16]).unwrap(), 0);
    let put = format!(
        "PUT /v1/tables/net/t/late-key HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv"
    );
    assert_eq!(request(api, &put).0, 200);
    watch
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("late-key") {
        let n = watch.read(&mut buf).expect("the watch stream stays open");
        assert!(
            n > 0,
            "the watch was closed: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("\"event\":\"create\""));
}

#[test]
fn oversized_request_heads_are_refused() {
    let dir = temp_dir("heads");
    let a = Agent::start(&dir, 13, &[]);
    let api = a.api;
    let big = format!(
        "GET /v1/members HTTP/1.1\r\nHost: {api}\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let status = try_request(api, &big).map(|r| r.0);
    assert!(matches!(status, Ok(431) | Err(_)), "{status:?}");
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = format!("GET /v1/members HTTP/1.1\r\nHost: {api}\r\n{many}Connection: close\r\n\r\n");
    let status = try_request(api, &raw).map(|r| r.0);
    assert!(matches!(status, Ok(431) | Err(_)), "{status:?}");
    assert_eq!(request(api, &get("/v1/members", api)).0, 200);
}
