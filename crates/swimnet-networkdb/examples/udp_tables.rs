//! Three [`NetworkDb`] nodes in one process, each on its own UDP socket and
//! TCP listener on 127.0.0.1, driven by a plain loop over `std::net`: no
//! async runtime, no threads.
//!
//! `b` and `c` join the cluster through `a`; all three attach to network
//! `overlay1`; `a` writes an entry in table `endpoint_table` and `b` and `c`
//! print it when their table changes report it; then `a` deletes it and
//! they print the delete. The loop only moves bytes and time: membership,
//! gossip, bulk sync and the tables all live in `NetworkDb`. Exits non-zero
//! if a step does not happen within a few seconds.
//!
//! ```text
//! cargo run -p swimnet-networkdb --example udp_tables
//! ```

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use swimnet_core::{Config, StreamCommand, StreamId};
use swimnet_networkdb::{NdbConfig, NetworkDb, TableChange};

/// Largest datagram read (a UDP payload cannot be larger).
const MAX_DATAGRAM: usize = 65_536;
/// Most bytes read from one TCP connection before it is failed; the core
/// has its own (smaller) limits, this only stops a runaway peer early.
const MAX_STREAM_BYTES: usize = 8 << 20;
/// How long the whole run may take before it is called a failure.
const RUN_BUDGET: Duration = Duration::from_secs(20);

/// One open TCP connection of a node.
struct Conn {
    stream: TcpStream,
    /// Bytes read so far (against [`MAX_STREAM_BYTES`]).
    read: usize,
    /// The peer closed its side and the node was told.
    eof: bool,
    /// Outbound connections give up here (the node's deadline).
    deadline: Option<Instant>,
}

/// A NetworkDB node (which owns its membership core) with its sockets.
struct Peer {
    db: NetworkDb,
    udp: UdpSocket,
    tcp: TcpListener,
    conns: HashMap<StreamId, Conn>,
}

impl Peer {
    /// Binds a UDP socket and a TCP listener on the same free port of
    /// 127.0.0.1 (memberlist uses one address for both) and creates the node.
    fn bind(name: &str, seed: u64, now: Instant) -> std::io::Result<Peer> {
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0")?;
            let addr = udp.local_addr()?;
            let Ok(tcp) = TcpListener::bind(addr) else {
                continue; // the port is taken for TCP; try another
            };
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            let config = Config::local(name, addr);
            let db = NetworkDb::new(config, NdbConfig::default(), now, seed)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            return Ok(Peer {
                db,
                udp,
                tcp,
                conns: HashMap::new(),
            });
        }
        Err(std::io::Error::other("no free port for UDP and TCP"))
    }

    /// Feeds everything that arrived into the node, runs due timers, then
    /// carries out its outputs. Returns the table changes made by others.
    fn step(&mut self) -> Vec<TableChange> {
        let now = Instant::now();
        self.read_datagrams(now);
        self.accept_streams(now);
        self.read_streams(now);
        if self.db.poll_timeout().is_some_and(|t| t <= now) {
            self.db.handle_timeout(now);
        }
        self.flush(now)
    }

    fn read_datagrams(&mut self, now: Instant) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Ok((n, from)) = self.udp.recv_from(&mut buf) {
            self.db.handle_packet(now, from, &buf[..n]);
        }
    }

    fn accept_streams(&mut self, now: Instant) {
        while let Ok((stream, from)) = self.tcp.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.db.handle_stream_accept(now, from);
            let conn = Conn {
                stream,
                read: 0,
                eof: false,
                deadline: None,
            };
            self.conns.insert(id, conn);
        }
    }

    fn read_streams(&mut self, now: Instant) {
        let mut buf = [0u8; 16 * 1024];
        let mut failed = Vec::new();
        for (&id, conn) in self.conns.iter_mut() {
            if conn.deadline.is_some_and(|d| d <= now) {
                failed.push((id, "no answer before the deadline".to_string()));
                continue;
            }
            while !conn.eof {
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        conn.eof = true;
                        self.db.handle_stream_data(now, id, &[], true);
                    }
                    Ok(n) if conn.read + n > MAX_STREAM_BYTES => {
                        failed.push((id, format!("stream over {MAX_STREAM_BYTES} bytes")));
                        break;
                    }
                    Ok(n) => {
                        conn.read += n;
                        self.db.handle_stream_data(now, id, &buf[..n], false);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        failed.push((id, format!("read: {e}")));
                        break;
                    }
                }
            }
        }
        for (id, error) in failed {
            self.conns.remove(&id);
            self.db.handle_stream_error(now, id, &error);
        }
    }

    /// Sends the node's datagrams, carries out its stream commands and
    /// returns the table changes it reports (membership events are drained
    /// and dropped: this example only watches the tables).
    fn flush(&mut self, now: Instant) -> Vec<TableChange> {
        while let Some(t) = self.db.poll_transmit() {
            // UDP is lossy anyway: a failed send is a lost datagram.
            let _ = self.udp.send_to(&t.payload, t.dst);
        }
        while let Some(command) = self.db.poll_stream() {
            match command {
                StreamCommand::Open {
                    id,
                    to,
                    data,
                    expect_reply,
                    deadline,
                } => self.open(now, id, to, &data, expect_reply, deadline),
                StreamCommand::Reply { id, data } => {
                    if let Some(conn) = self.conns.remove(&id) {
                        let _ = write_all_then_close(conn.stream, &data);
                    }
                }
                StreamCommand::Close { id } => {
                    self.conns.remove(&id);
                }
            }
        }
        while self.db.poll_event().is_some() {}
        std::iter::from_fn(|| self.db.poll_table_change()).collect()
    }

    /// Connects to `to` and writes `data`; keeps the connection to read the
    /// reply when one is expected, and reports failures to the node.
    fn open(
        &mut self,
        now: Instant,
        id: StreamId,
        to: SocketAddr,
        data: &[u8],
        expect_reply: bool,
        deadline: Instant,
    ) {
        let wait = deadline
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        let stream = match TcpStream::connect_timeout(&to, wait) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return self.db.handle_stream_refused(now, id);
            }
            Err(e) => {
                return self
                    .db
                    .handle_stream_error(now, id, &format!("connect: {e}"))
            }
        };
        if !expect_reply {
            let _ = write_all_then_close(stream, data);
            return;
        }
        let written = stream
            .set_write_timeout(Some(wait))
            .and_then(|()| (&stream).write_all(data))
            .and_then(|()| stream.set_nonblocking(true));
        match written {
            Ok(()) => {
                let conn = Conn {
                    stream,
                    read: 0,
                    eof: false,
                    deadline: Some(deadline),
                };
                self.conns.insert(id, conn);
            }
            Err(e) => self.db.handle_stream_error(now, id, &format!("write: {e}")),
        }
    }
}

/// Writes `data` on a (possibly non-blocking) connection and closes it.
fn write_all_then_close(stream: TcpStream, data: &[u8]) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    (&stream).write_all(data)?;
    stream.shutdown(Shutdown::Write)
}

const NETWORK: &str = "overlay1";
const TABLE: &str = "endpoint_table";
const KEY: &str = "container-1";

/// Steps every peer until `done` holds for all of them, or the budget ends;
/// prints every table change as it arrives.
fn run_until(peers: &mut [Peer], start: Instant, done: impl Fn(&Peer) -> bool) -> bool {
    while start.elapsed() < RUN_BUDGET {
        for peer in peers.iter_mut() {
            for change in peer.step() {
                let value = change.value.as_deref().map(String::from_utf8_lossy);
                println!(
                    "{}: {}/{}/{} = {}",
                    peer.db.name(),
                    change.network_id,
                    change.table,
                    change.key,
                    value.as_deref().unwrap_or("(deleted)")
                );
            }
        }
        if peers.iter().all(&done) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Runs the example; `pub` so that the test in `tests/` can run it too.
pub fn main() -> std::io::Result<()> {
    let fail = |what: &str| std::io::Error::other(what.to_string());
    let start = Instant::now();
    let mut peers = vec![
        Peer::bind("a", 1, start)?,
        Peer::bind("b", 2, start)?,
        Peer::bind("c", 3, start)?,
    ];
    let seed_addr = peers[0].db.core().config().advertise;
    for peer in &mut peers[1..] {
        let joined = peer.db.join(Instant::now(), &[seed_addr]);
        joined.map_err(|e| fail(&e.to_string()))?;
    }
    for peer in &mut peers {
        let attached = peer.db.join_network(Instant::now(), NETWORK);
        attached.map_err(|e| fail(&e.to_string()))?;
    }
    let all_attached = |p: &Peer| p.db.network_peers(NETWORK).len() == 3;
    if !run_until(&mut peers, start, all_attached) {
        return Err(fail("the three nodes did not all attach to the network"));
    }
    println!("every node sees 3 nodes in {NETWORK}");

    let written = peers[0].db.create_entry(
        Instant::now(),
        NETWORK,
        TABLE,
        KEY,
        b"10.0.0.2 02:42:0a:00:00:02",
    );
    written.map_err(|e| fail(&e.to_string()))?;
    let has_entry = |p: &Peer| p.db.get_entry(NETWORK, TABLE, KEY).is_ok();
    if !run_until(&mut peers, start, has_entry) {
        return Err(fail("the entry did not reach every node"));
    }
    println!("every node has {NETWORK}/{TABLE}/{KEY}");

    let deleted = peers[0]
        .db
        .delete_entry(Instant::now(), NETWORK, TABLE, KEY);
    deleted.map_err(|e| fail(&e.to_string()))?;
    if !run_until(&mut peers, start, |p| !has_entry(p)) {
        return Err(fail("the delete did not reach every node"));
    }
    println!("the delete reached every node");
    Ok(())
}
