//! The DNS responder in real network namespaces (needs root): UDP and TCP
//! on 127.0.0.11:53 inside a namespace, live book updates, NXDOMAIN without
//! a hang, glibc's resolver (`getent hosts`), the TCP limits, and the
//! sockets closed when the responder is dropped. Namespaces are named
//! `swd-N` and deleted by a guard, also when a test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use swimnet_overlay::dns::{
    DnsResponder, DNS_ADDR, MAX_TCP_CONNECTIONS, MAX_TCP_QUERIES, TCP_IDLE_TIMEOUT,
};
use swimnet_overlay::netns::run_in_netns;
use swimnet_overlay::{NameBook, OverlayError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

const OVERLAY: &str = "5555555555555555555555555555555555555555555555555555555555555555";

/// A namespace this test made; deleted (with its `/etc/netns` directory,
/// if the test wrote one) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: &str, lo_up: bool) -> Netns {
        // Left over by an earlier run that was killed before its guard ran.
        if PathBuf::from("/run/netns").join(name).exists() {
            run(&["ip", "netns", "delete", name]);
        }
        let guard = Netns {
            name: name.to_string(),
        };
        run(&["ip", "netns", "add", name]);
        if lo_up {
            run(&["ip", "-n", name, "link", "set", "lo", "up"]);
        }
        guard
    }

    fn etc_dir(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.etc_dir().join("resolv.conf"));
        let _ = std::fs::remove_dir(self.etc_dir());
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed");
}

fn book(names: &[(&str, [u8; 4])]) -> Arc<NameBook> {
    let mut eps = BTreeMap::new();
    for (name, ip) in names {
        eps.entry(name.to_string())
            .or_insert_with(BTreeSet::new)
            .insert(Ipv4Addr::from(*ip));
    }
    let mut overlays = BTreeMap::new();
    overlays.insert(OVERLAY.to_string(), ("front".to_string(), eps));
    Arc::new(NameBook { overlays })
}

fn query_bytes(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

fn addresses(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn server() -> SocketAddr {
    SocketAddr::from((DNS_ADDR, 53))
}

/// Asks over UDP from inside `ns`; the answer must come within 1 s.
async fn ask_udp(ns: &str, id: u16, name: &str) -> Message {
    let std_socket = run_in_netns(ns, || std::net::UdpSocket::bind("127.0.0.1:0"))
        .unwrap()
        .unwrap();
    std_socket.set_nonblocking(true).unwrap();
    let socket = UdpSocket::from_std(std_socket).unwrap();
    socket
        .send_to(&query_bytes(id, name), server())
        .await
        .unwrap();
    let mut buf = [0u8; 1500];
    let (len, from) = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf))
        .await
        .expect("a UDP answer within 1 s")
        .unwrap();
    assert_eq!(from, server());
    let m = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(m.metadata.id, id);
    m
}

/// Opens a TCP connection to the responder from inside `ns`.
async fn connect_tcp(ns: &str) -> std::io::Result<TcpStream> {
    let std_stream = run_in_netns(ns, || {
        std::net::TcpStream::connect_timeout(&server(), Duration::from_secs(1))
    })
    .unwrap()?;
    std_stream.set_nonblocking(true)?;
    TcpStream::from_std(std_stream)
}

/// Sends one framed query and reads one framed answer (within 1 s).
async fn ask_tcp(stream: &mut TcpStream, id: u16, name: &str) -> Message {
    let q = query_bytes(id, name);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    stream.write_all(&framed).await.unwrap();
    let read = async {
        let len = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(1), read)
        .await
        .expect("a TCP answer within 1 s")
        .unwrap();
    let m = Message::from_vec(&buf).unwrap();
    assert_eq!(m.metadata.id, id);
    m
}

/// Whether the TCP peer closed the connection within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_over_udp_and_tcp_inside_a_namespace_and_stops_on_drop() {
    let ns = Netns::new("swd-1", true);
    let (_scope_tx, scope_rx) = watch::channel(BTreeSet::from([OVERLAY.to_string()]));
    let (book_tx, book_rx) = watch::channel(book(&[("web", [10, 0, 1, 2])]));
    let responder = DnsResponder::start(&ns.name, scope_rx, book_rx).unwrap();

    let m = ask_udp(&ns.name, 1, "web").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(10, 0, 1, 2)]);
    let mut tcp = connect_tcp(&ns.name).await.unwrap();
    let m = ask_tcp(&mut tcp, 2, "WEB.front.").await;
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(10, 0, 1, 2)]);

    // A new book is answered at once, on both transports, on the same
    // connection.
    book_tx.send_replace(book(&[("web", [10, 0, 1, 9]), ("api", [10, 0, 1, 3])]));
    assert_eq!(
        addresses(&ask_udp(&ns.name, 3, "api").await),
        vec![Ipv4Addr::new(10, 0, 1, 3)]
    );
    assert_eq!(
        addresses(&ask_tcp(&mut tcp, 4, "web").await),
        vec![Ipv4Addr::new(10, 0, 1, 9)]
    );

    // Unknown names: NXDOMAIN, promptly.
    let started = Instant::now();
    let m = ask_udp(&ns.name, 5, "nobody.example").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask_tcp(&mut tcp, 6, "nobody").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(started.elapsed() < Duration::from_secs(1));

    // glibc's resolver, through the namespace's resolv.conf.
    std::fs::create_dir_all(ns.etc_dir()).unwrap();
    std::fs::write(ns.etc_dir().join("resolv.conf"), "nameserver 127.0.0.11\n").unwrap();
    let getent = |name: &'static str| {
        let ns = ns.name.clone();
        tokio::time::timeout(
            Duration::from_secs(10),
            tokio::process::Command::new("ip")
                .args(["netns", "exec", &ns, "getent", "hosts", name])
                .kill_on_drop(true)
                .output(),
        )
    };
    let out = getent("api").await.expect("getent within 10 s").unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("10.0.1.3 "), "{line:?}");
    let started = Instant::now();
    let out = getent("nobody").await.expect("getent within 10 s").unwrap();
    assert_eq!(out.status.code(), Some(2), "not found: {out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "NXDOMAIN, no retries"
    );

    let stats = responder.stats();
    assert!(stats.udp_answered >= 3, "{stats:?}");
    assert_eq!(stats.tcp_answered, 3, "{stats:?}");

    // Dropped: the connection closes, the port is refused and free again.
    drop(responder);
    assert!(closed_within(&mut tcp, Duration::from_secs(2)).await);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let refused = matches!(connect_tcp(&ns.name).await, Err(e)
            if e.kind() == std::io::ErrorKind::ConnectionRefused);
        let udp_free =
            run_in_netns(&ns.name, || std::net::UdpSocket::bind(server()).is_ok()).unwrap();
        if refused && udp_free {
            break;
        }
        assert!(Instant::now() < deadline, "port 53 still open after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And a new responder can bind at once.
    let (_s, scope_rx) = watch::channel(BTreeSet::from([OVERLAY.to_string()]));
    let (_b, book_rx) = watch::channel(book(&[("web", [10, 0, 1, 2])]));
    let again = DnsResponder::start(&ns.name, scope_rx, book_rx).unwrap();
    assert_eq!(addresses(&ask_udp(&ns.name, 7, "web").await).len(), 1);
    drop(again);
}

/// Whether 127.0.0.11:53/udp in `ns` can be bound, polled for up to
/// `within`. A socket closed here can stay bound for a moment: while another
/// test thread forks a child (getent, ip), the child holds a copy of every
/// descriptor until it execs. A socket really left open stays bound.
async fn udp_port_free_within(ns: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if run_in_netns(ns, || std::net::UdpSocket::bind(server()).is_ok()) == Ok(true) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `start()`, retried for up to `within` while it fails (for the same
/// reason as [`udp_port_free_within`]).
fn start_within<T, E>(within: Duration, start: impl Fn() -> Result<T, E>) -> Result<T, E> {
    let deadline = Instant::now() + within;
    loop {
        match start() {
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_start_says_why_it_cannot_bind_and_leaves_nothing_bound() {
    let ns = Netns::new("swd-2", true);
    let (_s, scope_rx) = watch::channel(BTreeSet::new());
    let (_b, book_rx) = watch::channel(Arc::new(NameBook::default()));
    let start = || DnsResponder::start(&ns.name, scope_rx.clone(), book_rx.clone());
    let in_use = "binding 127.0.0.11:53 in namespace \"swd-2\": Address already in use";
    // Someone else holds the UDP port.
    let squatter = run_in_netns(&ns.name, || std::net::UdpSocket::bind(server()))
        .unwrap()
        .unwrap();
    assert_eq!(start().err().expect("UDP port taken").to_string(), in_use);
    drop(squatter);
    // Someone else holds the TCP port: the UDP socket bound first is
    // closed again.
    let squatter = run_in_netns(&ns.name, || std::net::TcpListener::bind(server()))
        .unwrap()
        .unwrap();
    assert_eq!(start().err().expect("TCP port taken").to_string(), in_use);
    assert!(
        udp_port_free_within(&ns.name, Duration::from_secs(2)).await,
        "the failed start left the UDP port bound"
    );
    drop(squatter);
    let responder = start_within(Duration::from_secs(2), start).expect("both ports free again");
    drop(responder);
    let err = DnsResponder::start("swd-missing", scope_rx.clone(), book_rx.clone())
        .err()
        .unwrap();
    assert_eq!(err, OverlayError::NoSuchNetns("swd-missing".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_tcp_connections_are_capped_and_cut_when_idle_or_abused() {
    let ns = Netns::new("swd-3", true);
    let (_s, scope_rx) = watch::channel(BTreeSet::from([OVERLAY.to_string()]));
    let (_b, book_rx) = watch::channel(book(&[("web", [10, 0, 1, 2])]));
    let responder = DnsResponder::start(&ns.name, scope_rx, book_rx).unwrap();

    // A length prefix beyond the query budget closes the connection.
    let mut abuse = connect_tcp(&ns.name).await.unwrap();
    abuse.write_all(&[0xff, 0xff, 0, 0]).await.unwrap();
    assert!(closed_within(&mut abuse, Duration::from_secs(1)).await);

    // One connection answers MAX_TCP_QUERIES queries, then is closed.
    let mut busy = connect_tcp(&ns.name).await.unwrap();
    for i in 0..MAX_TCP_QUERIES {
        assert_eq!(
            addresses(&ask_tcp(&mut busy, i as u16, "web").await).len(),
            1
        );
    }
    assert!(closed_within(&mut busy, Duration::from_secs(1)).await);

    // MAX_TCP_CONNECTIONS idle connections: the next is closed at once.
    let idle_since = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..MAX_TCP_CONNECTIONS {
        idle.push(connect_tcp(&ns.name).await.unwrap());
    }
    // Let the responder register them all before the extra one arrives.
    let mut check = idle.pop().unwrap();
    assert_eq!(addresses(&ask_tcp(&mut check, 1, "web").await).len(), 1);
    idle.push(check);
    let mut extra = connect_tcp(&ns.name).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(1)).await);
    assert_eq!(responder.stats().tcp_rejected, 1);
    // UDP still answers meanwhile.
    assert_eq!(addresses(&ask_udp(&ns.name, 9, "web").await).len(), 1);

    // Idle connections are cut after the timeout (not before it).
    for conn in &mut idle {
        let left = (idle_since + TCP_IDLE_TIMEOUT + Duration::from_secs(2))
            .saturating_duration_since(Instant::now());
        assert!(
            closed_within(conn, left).await,
            "idle connection still open"
        );
    }
    assert!(idle_since.elapsed() >= TCP_IDLE_TIMEOUT - Duration::from_millis(200));
    let stats = responder.stats();
    // abuse + busy + 16 idle.
    assert_eq!(stats.tcp_cut, 2 + MAX_TCP_CONNECTIONS as u64, "{stats:?}");
    // Room again.
    let mut fresh = connect_tcp(&ns.name).await.unwrap();
    assert_eq!(addresses(&ask_tcp(&mut fresh, 2, "web").await).len(), 1);
}
