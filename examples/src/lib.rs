//! A driver for any swimnet node over plain `std::net` sockets, shared by the
//! examples in `examples/examples/`: no async runtime, no threads.
//!
//! [`UdpPeer`] is everything a driver does, and nothing more: it reads
//! datagrams and stream bytes into the node with the current time, runs the
//! node's timers once `poll_timeout` has passed, and carries out what the
//! node asks for (`poll_transmit`, `poll_stream`, `poll_event`,
//! `poll_app_event`). Every protocol decision stays in the node, so the same
//! loop drives a plain [`swimnet_core::Memberlist`] and a
//! [`swimnet_networkdb::NetworkDb`] through [`SansIoNode`].
//!
//! It binds 127.0.0.1 only and is written for reading, not for production:
//! the agent's driver (`crates/swimnet/src/driver.rs`) adds connection
//! limits, deadlines per stream and an API.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use swimnet_core::{Config, Event, SansIoNode, StreamCommand, StreamId};

/// Largest datagram read (a UDP payload cannot be larger).
const MAX_DATAGRAM: usize = 65_536;
/// Most bytes read from one TCP connection before it is failed; the node
/// has its own (smaller) limits, this only stops a runaway peer early.
const MAX_STREAM_BYTES: usize = 8 << 20;

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

/// What one [`UdpPeer::step`] produced: membership events and the node's
/// own events (table changes for NetworkDB, nothing for plain memberlist).
pub struct Output<A> {
    /// Membership events.
    pub events: Vec<Event>,
    /// The node kind's own events.
    pub app_events: Vec<A>,
}

/// A node with its UDP socket and TCP listener on one port of 127.0.0.1.
pub struct UdpPeer<N: SansIoNode> {
    /// The node; call its commands (join, leave, writes) directly.
    pub node: N,
    udp: UdpSocket,
    tcp: TcpListener,
    conns: HashMap<StreamId, Conn>,
}

impl<N: SansIoNode> UdpPeer<N> {
    /// Binds a UDP socket and a TCP listener on the same free port of
    /// 127.0.0.1 (memberlist uses one address for both), then creates the
    /// node with `make(config, now, seed)` from `Config::local(name, addr)`.
    pub fn bind<E: std::fmt::Display>(
        name: &str,
        seed: u64,
        make: impl Fn(Config, Instant, u64) -> Result<N, E>,
    ) -> std::io::Result<Self> {
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0")?;
            let addr = udp.local_addr()?;
            let Ok(tcp) = TcpListener::bind(addr) else {
                continue; // the port is taken for TCP; try another
            };
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            let node = make(Config::local(name, addr), Instant::now(), seed)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            return Ok(UdpPeer {
                node,
                udp,
                tcp,
                conns: HashMap::new(),
            });
        }
        Err(std::io::Error::other("no free port for both UDP and TCP"))
    }

    /// The address the node advertises (its UDP and TCP port).
    pub fn addr(&self) -> SocketAddr {
        self.node.core().config().advertise
    }

    /// Feeds everything that arrived into the node, runs due timers, then
    /// carries out the node's outputs and returns its events.
    pub fn step(&mut self) -> Output<N::AppEvent> {
        let now = Instant::now();
        self.read_datagrams(now);
        self.accept_streams(now);
        self.read_streams(now);
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        self.flush(now)
    }

    fn read_datagrams(&mut self, now: Instant) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Ok((n, from)) = self.udp.recv_from(&mut buf) {
            self.node.handle_packet(now, from, &buf[..n]);
        }
    }

    fn accept_streams(&mut self, now: Instant) {
        while let Ok((stream, from)) = self.tcp.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.node.handle_stream_accept(now, from);
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
                        self.node.handle_stream_data(now, id, &[], true);
                    }
                    Ok(n) if conn.read + n > MAX_STREAM_BYTES => {
                        failed.push((id, format!("stream over {MAX_STREAM_BYTES} bytes")));
                        break;
                    }
                    Ok(n) => {
                        conn.read += n;
                        self.node.handle_stream_data(now, id, &buf[..n], false);
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
            self.node.handle_stream_error(now, id, &error);
        }
    }

    /// Sends the node's datagrams, carries out its stream commands and
    /// returns its events.
    fn flush(&mut self, now: Instant) -> Output<N::AppEvent> {
        while let Some(t) = self.node.poll_transmit() {
            // UDP is lossy anyway: a failed send is a lost datagram.
            let _ = self.udp.send_to(&t.payload, t.dst);
        }
        while let Some(command) = self.node.poll_stream() {
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
        Output {
            events: std::iter::from_fn(|| self.node.poll_event()).collect(),
            app_events: std::iter::from_fn(|| self.node.poll_app_event()).collect(),
        }
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
                return self.node.handle_stream_refused(now, id);
            }
            Err(e) => {
                return self
                    .node
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
                .node
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

/// Steps every peer, handing each step's output to `show`, until `done`
/// holds for all of them (true) or `budget` has passed since `start`
/// (false).
pub fn run_until<N: SansIoNode>(
    peers: &mut [UdpPeer<N>],
    start: Instant,
    budget: Duration,
    mut show: impl FnMut(&N, Output<N::AppEvent>),
    done: impl Fn(&UdpPeer<N>) -> bool,
) -> bool {
    while start.elapsed() < budget {
        for peer in peers.iter_mut() {
            let out = peer.step();
            show(&peer.node, out);
        }
        if peers.iter().all(&done) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}
