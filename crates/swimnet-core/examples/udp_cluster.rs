//! Three [`Memberlist`] nodes in one process, each on its own UDP socket and
//! TCP listener on 127.0.0.1, driven by a plain loop over `std::net`: no
//! async runtime, no threads.
//!
//! The loop is everything a driver does: read datagrams and stream bytes
//! into the core with the current time, run its timers when
//! `poll_timeout` has passed, and carry out what it asks for
//! (`poll_transmit`, `poll_stream`, `poll_event`). Every protocol decision
//! stays in the core.
//!
//! `b` and `c` join through `a`, all three converge on three live members,
//! then `c` leaves gracefully and the others see it as left. Exits non-zero
//! if that does not happen within a few seconds.
//!
//! ```text
//! cargo run -p swimnet-core --example udp_cluster
//! ```

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use swimnet_core::{Config, Event, Memberlist, NodeState, NoopDelegate, StreamCommand, StreamId};

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
    /// The peer closed its side and the core was told.
    eof: bool,
    /// Outbound connections give up here (the core's deadline).
    deadline: Option<Instant>,
}

/// A membership core with its sockets.
struct Peer {
    core: Memberlist<NoopDelegate>,
    udp: UdpSocket,
    tcp: TcpListener,
    conns: HashMap<StreamId, Conn>,
}

impl Peer {
    /// Binds a UDP socket and a TCP listener on the same free port of
    /// 127.0.0.1 (memberlist uses one address for both) and creates the core.
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
            let core = Memberlist::new(config, NoopDelegate, now, seed)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            return Ok(Peer {
                core,
                udp,
                tcp,
                conns: HashMap::new(),
            });
        }
        Err(std::io::Error::other("no free port for UDP and TCP"))
    }

    /// Feeds everything that arrived into the core, runs due timers, then
    /// carries out the core's outputs. Returns the membership events.
    fn step(&mut self) -> Vec<Event> {
        let now = Instant::now();
        self.read_datagrams(now);
        self.accept_streams(now);
        self.read_streams(now);
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        self.flush(now)
    }

    fn read_datagrams(&mut self, now: Instant) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Ok((n, from)) = self.udp.recv_from(&mut buf) {
            self.core.handle_packet(now, from, &buf[..n]);
        }
    }

    fn accept_streams(&mut self, now: Instant) {
        while let Ok((stream, from)) = self.tcp.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.core.handle_stream_accept(now, from);
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
                        self.core.handle_stream_data(now, id, &[], true);
                    }
                    Ok(n) if conn.read + n > MAX_STREAM_BYTES => {
                        failed.push((id, format!("stream over {MAX_STREAM_BYTES} bytes")));
                        break;
                    }
                    Ok(n) => {
                        conn.read += n;
                        self.core.handle_stream_data(now, id, &buf[..n], false);
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
            self.core.handle_stream_error(now, id, &error);
        }
    }

    /// Sends the core's datagrams, carries out its stream commands and
    /// returns its events.
    fn flush(&mut self, now: Instant) -> Vec<Event> {
        while let Some(t) = self.core.poll_transmit() {
            // UDP is lossy anyway: a failed send is a lost datagram.
            let _ = self.udp.send_to(&t.payload, t.dst);
        }
        while let Some(command) = self.core.poll_stream() {
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
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }

    /// Connects to `to` and writes `data`; keeps the connection to read the
    /// reply when one is expected, and reports failures to the core.
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
                return self.core.handle_stream_refused(now, id);
            }
            Err(e) => {
                return self
                    .core
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
            Err(e) => self
                .core
                .handle_stream_error(now, id, &format!("write: {e}")),
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

/// Steps every peer until `done` holds for all of them, or the budget ends.
fn run_until(peers: &mut [Peer], start: Instant, done: impl Fn(&Peer) -> bool) -> bool {
    while start.elapsed() < RUN_BUDGET {
        for peer in peers.iter_mut() {
            for event in peer.step() {
                println!("{}: {}", peer.core.name(), describe(&event));
            }
        }
        if peers.iter().all(&done) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn describe(event: &Event) -> String {
    match event {
        Event::Join(n) => format!("{} joined ({})", n.name, n.addr),
        Event::Leave(n) => format!("{} is {:?}", n.name, n.state),
        Event::JoinResult { addr, result } => format!("join through {addr}: {result:?}"),
        other => format!("{other:?}"),
    }
}

/// Runs the example; `pub` so that the test in `tests/` can run it too.
pub fn main() -> std::io::Result<()> {
    let start = Instant::now();
    let mut peers = vec![
        Peer::bind("a", 1, start)?,
        Peer::bind("b", 2, start)?,
        Peer::bind("c", 3, start)?,
    ];
    let seed_addr = peers[0].core.config().advertise;
    for peer in &mut peers[1..] {
        peer.core
            .join(Instant::now(), &[seed_addr])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    if !run_until(&mut peers, start, |p| p.core.num_alive() == 3) {
        return Err(std::io::Error::other("the three nodes did not converge"));
    }
    println!("converged: every node sees 3 live members");

    peers[2].core.leave(Instant::now());
    let left = |p: &Peer| {
        p.core.has_left()
            || p.core
                .member_by_name("c")
                .is_some_and(|n| n.state == NodeState::Left)
    };
    if !run_until(&mut peers, start, left) {
        return Err(std::io::Error::other("c's leave was not seen by a and b"));
    }
    println!("c left; a and b see it as left");
    Ok(())
}
