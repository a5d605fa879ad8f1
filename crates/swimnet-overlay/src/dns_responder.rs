//! The serving half of [`crate::dns`]: sockets bound inside an endpoint's
//! namespace, the UDP and TCP loops and their limits. Built with the
//! `kernel` feature (it enters namespaces); the answering logic it calls,
//! [`crate::dns::answer_over`], is in [`crate::dns`].

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use crate::dns::*;
use crate::model::NameBook;
use crate::OverlayError;

/// What a responder has done, for the agent's stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Queries answered over UDP.
    pub udp_answered: u64,
    /// Queries answered over TCP.
    pub tcp_answered: u64,
    /// Datagrams or TCP messages dropped unanswered (not a query).
    pub dropped: u64,
    /// UDP answers sent truncated (too large for the client's budget).
    pub truncated: u64,
    /// TCP connections closed at accept: [`MAX_TCP_CONNECTIONS`] reached.
    pub tcp_rejected: u64,
    /// TCP connections closed: idle past [`TCP_IDLE_TIMEOUT`], a query
    /// longer than [`MAX_QUERY_LEN`], or [`MAX_TCP_QUERIES`] reached.
    pub tcp_cut: u64,
}

/// The live counters behind [`DnsStats`].
#[derive(Default)]
struct Counters {
    udp_answered: AtomicU64,
    tcp_answered: AtomicU64,
    dropped: AtomicU64,
    truncated: AtomicU64,
    tcp_rejected: AtomicU64,
    tcp_cut: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every serving task reads: the latest scope and book, the counters.
#[derive(Clone)]
struct Shared {
    scope: watch::Receiver<BTreeSet<String>>,
    book: watch::Receiver<Arc<NameBook>>,
    counters: Arc<Counters>,
}

impl Shared {
    /// Answers `query` from the current scope and book.
    fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let book = Arc::clone(&*self.book.borrow());
        let scope = self.scope.borrow();
        answer_over(query, &book, &scope, transport)
    }
}

/// A running responder; dropping it stops it and closes its sockets.
pub struct DnsResponder {
    tasks: Vec<AbortHandle>,
    counters: Arc<Counters>,
}

impl DnsResponder {
    /// Starts a responder on 127.0.0.11:53 (UDP and TCP) inside the named
    /// namespace, answering for the overlays in `scope` from the latest
    /// book. Call from within a tokio runtime.
    pub fn start(
        netns: &str,
        scope: watch::Receiver<BTreeSet<String>>,
        book: watch::Receiver<Arc<NameBook>>,
    ) -> Result<DnsResponder, OverlayError> {
        let op = format!("binding {DNS_ADDR}:{DNS_PORT} in namespace {netns:?}");
        let (udp, tcp) =
            crate::netns::run_in_netns(netns, bind_sockets)?.map_err(|e| OverlayError::Kernel {
                op: op.clone(),
                detail: io_detail(&e),
            })?;
        let to_tokio = |e: io::Error| OverlayError::Kernel {
            op: op.clone(),
            detail: io_detail(&e),
        };
        let udp = UdpSocket::from_std(udp).map_err(to_tokio)?;
        let tcp = TcpListener::from_std(tcp).map_err(to_tokio)?;
        let shared = Shared {
            scope,
            book,
            counters: Arc::new(Counters::default()),
        };
        let counters = Arc::clone(&shared.counters);
        let udp_task = tokio::spawn(serve_udp(udp, shared.clone()));
        let tcp_task = tokio::spawn(serve_tcp(tcp, shared));
        Ok(DnsResponder {
            tasks: vec![udp_task.abort_handle(), tcp_task.abort_handle()],
            counters,
        })
    }

    /// What the responder has done so far.
    pub fn stats(&self) -> DnsStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DnsStats {
            udp_answered: get(&c.udp_answered),
            tcp_answered: get(&c.tcp_answered),
            dropped: get(&c.dropped),
            truncated: get(&c.truncated),
            tcp_rejected: get(&c.tcp_rejected),
            tcp_cut: get(&c.tcp_cut),
        }
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds both sockets (run inside the target namespace), non-blocking.
fn bind_sockets() -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let addr = SocketAddr::V4(SocketAddrV4::new(DNS_ADDR, DNS_PORT));
    let udp = std::net::UdpSocket::bind(addr)?;
    udp.set_nonblocking(true)?;
    let tcp = std::net::TcpListener::bind(addr)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// The OS's words for an I/O error, without Rust's "(os error N)".
fn io_detail(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// Answers datagrams until aborted.
async fn serve_udp(socket: UdpSocket, shared: Shared) {
    let mut buf = vec![0u8; MAX_QUERY_LEN];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "dns: udp receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(response) = shared.answer(&buf[..len], Transport::Udp) else {
            Counters::bump(&shared.counters.dropped);
            continue;
        };
        if response.len() > 2 && response[2] & 0x02 != 0 {
            Counters::bump(&shared.counters.truncated);
        }
        Counters::bump(&shared.counters.udp_answered);
        if let Err(e) = socket.send_to(&response, from).await {
            tracing::debug!(error = %e, %from, "dns: udp send failed");
        }
    }
}

/// Accepts connections until aborted; dropping it (abort) drops the
/// [`JoinSet`], which aborts every connection.
async fn serve_tcp(listener: TcpListener, shared: Shared) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "dns: tcp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_TCP_CONNECTIONS {
            Counters::bump(&shared.counters.tcp_rejected);
            drop(stream);
            continue;
        }
        connections.spawn(serve_connection(stream, shared.clone()));
    }
}

/// Serves one TCP connection: length-prefixed queries, one answer each,
/// until the client closes it or a limit cuts it.
async fn serve_connection(mut stream: TcpStream, shared: Shared) {
    let mut buf = vec![0u8; MAX_QUERY_LEN];
    for _ in 0..MAX_TCP_QUERIES {
        let read = async {
            let len = usize::from(stream.read_u16().await?);
            if len > MAX_QUERY_LEN {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "query too long"));
            }
            stream.read_exact(&mut buf[..len]).await?;
            Ok(len)
        };
        let len = match tokio::time::timeout(TCP_IDLE_TIMEOUT, read).await {
            Ok(Ok(len)) => len,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return,
            Ok(Err(_)) | Err(_) => {
                Counters::bump(&shared.counters.tcp_cut);
                return;
            }
        };
        let Some(response) = shared.answer(&buf[..len], Transport::Tcp) else {
            Counters::bump(&shared.counters.dropped);
            continue;
        };
        let Ok(prefix) = u16::try_from(response.len()) else {
            Counters::bump(&shared.counters.dropped);
            continue;
        };
        Counters::bump(&shared.counters.tcp_answered);
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&prefix.to_be_bytes());
        framed.extend_from_slice(&response);
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                Counters::bump(&shared.counters.tcp_cut);
                return;
            }
        }
    }
    Counters::bump(&shared.counters.tcp_cut);
}
