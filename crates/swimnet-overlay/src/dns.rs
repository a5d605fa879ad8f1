//! The DNS responder inside each endpoint's namespace (127.0.0.11:53, UDP
//! and TCP), answering A queries for the names of endpoints on the
//! namespace's overlays from the [`crate::NameBook`].
//!
//! [`answer`] is the whole protocol (pure: bytes in, bytes out); the
//! responder only moves bytes between the sockets and it. The wire format
//! is hickory-proto's.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use crate::model::NameBook;
use crate::OverlayError;

/// The address the responder listens on inside each namespace.
pub const DNS_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 11);

/// TTL of every answer (seconds): short, the tables change.
pub const DNS_TTL: u32 = 5;

/// The port the responder listens on.
pub const DNS_PORT: u16 = 53;

/// Most A records in one answer (a name used by more endpoints answers
/// with the first ones in address order).
pub const MAX_ANSWER_RECORDS: usize = 32;

/// Largest UDP response without EDNS (RFC 1035).
pub const UDP_CLASSIC_MAX: usize = 512;

/// Largest UDP response even when a client's EDNS offers more; also the
/// payload size the responder advertises in its own EDNS record.
pub const UDP_EDNS_MAX: u16 = 1232;

/// Largest query accepted (bytes): UDP datagrams beyond it are cut and so
/// fail to parse; a TCP length prefix beyond it closes the connection.
pub const MAX_QUERY_LEN: usize = 4096;

/// Most TCP connections served at once per responder; more are closed as
/// soon as they are accepted.
pub const MAX_TCP_CONNECTIONS: usize = 16;

/// Most queries answered on one TCP connection before it is closed.
pub const MAX_TCP_QUERIES: u32 = 64;

/// How long a TCP connection may take to deliver a query (or to take its
/// answer) before it is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which transport a response goes over: it decides the size budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: [`UDP_CLASSIC_MAX`] bytes, or what the query's EDNS record
    /// offers up to [`UDP_EDNS_MAX`]; a larger answer is sent truncated
    /// (TC set, no records) so the client retries over TCP.
    Udp,
    /// TCP: up to 65,535 bytes (the length prefix).
    Tcp,
}

/// Answers one DNS query (wire bytes) for a namespace whose endpoints are
/// on the overlays `scope` (network IDs): `NAME` or `NAME.OVERLAY` (any
/// case, trailing dot or not) → A records; a known name with no address of
/// the asked type → empty NOERROR; other names → NXDOMAIN; a malformed
/// query → FORMERR when it has a readable header, else `None` (dropped).
pub fn answer(query: &[u8], book: &NameBook, scope: &BTreeSet<String>) -> Option<Vec<u8>> {
    answer_over(query, book, scope, Transport::Udp)
}

/// [`answer`] for a given transport (its response size budget). Shorter
/// than a header, or with the response bit set (answering a response could
/// loop between two responders) → `None`; an opcode other than QUERY →
/// NOTIMP; unparseable or not exactly one question → FORMERR; an EDNS
/// version other than 0 → BADVERS; a class other than IN (or ANY) →
/// REFUSED.
pub fn answer_over(
    query: &[u8],
    book: &NameBook,
    scope: &BTreeSet<String>,
    transport: Transport,
) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    let recursion_desired = query[2] & 0x01 != 0;
    let op_code = OpCode::from_u8((query[2] >> 3) & 0x0f);
    if op_code != OpCode::Query {
        return encode_error(id, op_code, recursion_desired, ResponseCode::NotImp);
    }
    let Ok(request) = Message::from_vec(query) else {
        return encode_error(id, op_code, recursion_desired, ResponseCode::FormErr);
    };
    if request.queries.len() != 1 {
        return encode_error(id, op_code, recursion_desired, ResponseCode::FormErr);
    }
    let mut response = Message::response(id, OpCode::Query);
    response.metadata.recursion_desired = recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    let question = request.queries[0].clone();
    response.add_query(question.clone());
    if let Some(edns) = &request.edns {
        let mut ours = Edns::new();
        ours.set_max_payload(UDP_EDNS_MAX);
        response.set_edns(ours);
        if edns.version() != 0 {
            response.metadata.response_code = ResponseCode::BADVERS;
            return finish(response, request.max_payload(), transport);
        }
    }
    if !matches!(question.query_class(), DNSClass::IN | DNSClass::ANY) {
        response.metadata.response_code = ResponseCode::Refused;
        return finish(response, request.max_payload(), transport);
    }
    match lookup(question.name(), book, scope) {
        None => response.metadata.response_code = ResponseCode::NXDomain,
        Some(addresses) => {
            response.metadata.authoritative = true;
            if matches!(question.query_type(), RecordType::A | RecordType::ANY) {
                for ip in addresses.into_iter().take(MAX_ANSWER_RECORDS) {
                    let name = question.name().clone();
                    response.add_answer(Record::from_rdata(name, DNS_TTL, RData::A(A(ip))));
                }
            }
        }
    }
    finish(response, request.max_payload(), transport)
}

/// An error response carrying only the header fields read from the query.
fn encode_error(
    id: u16,
    op_code: OpCode,
    recursion_desired: bool,
    code: ResponseCode,
) -> Option<Vec<u8>> {
    let mut response = Message::error_msg(id, op_code, code);
    response.metadata.recursion_desired = recursion_desired;
    response.to_vec().ok()
}

/// Encodes `response` within the transport's budget: over UDP, a response
/// larger than the client can take goes out with TC set and no records.
fn finish(mut response: Message, client_payload: u16, transport: Transport) -> Option<Vec<u8>> {
    let limit = match transport {
        Transport::Udp => usize::from(client_payload.min(UDP_EDNS_MAX)).max(UDP_CLASSIC_MAX),
        Transport::Tcp => usize::from(u16::MAX),
    };
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.answers.clear();
    response.authorities.clear();
    response.additionals.clear();
    response.metadata.truncation = true;
    let bytes = response.to_vec().ok()?;
    (bytes.len() <= limit).then_some(bytes)
}

/// The addresses of `name` among the overlays in `scope`: `Some` (maybe
/// empty) when the name is known (an endpoint, or an overlay's own name),
/// `None` when it is not ours.
fn lookup(name: &Name, book: &NameBook, scope: &BTreeSet<String>) -> Option<BTreeSet<Ipv4Addr>> {
    let mut wanted: Vec<u8> = Vec::with_capacity(256);
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            wanted.push(b'.');
        }
        wanted.extend_from_slice(label);
    }
    let mut known = false;
    let mut found = BTreeSet::new();
    for id in scope {
        let Some((overlay, endpoints)) = book.overlays.get(id) else {
            continue;
        };
        let overlay = overlay.as_bytes();
        // `NAME.OVERLAY`: the part before the overlay's name.
        let qualified = wanted
            .len()
            .checked_sub(overlay.len() + 1)
            .filter(|&cut| wanted[cut] == b'.' && wanted[cut + 1..].eq_ignore_ascii_case(overlay))
            .map(|cut| &wanted[..cut]);
        known |= wanted.eq_ignore_ascii_case(overlay);
        for (endpoint, addresses) in endpoints {
            let endpoint = endpoint.as_bytes();
            if wanted.eq_ignore_ascii_case(endpoint)
                || qualified.is_some_and(|q| q.eq_ignore_ascii_case(endpoint))
            {
                known = true;
                found.extend(addresses.iter().copied());
            }
        }
    }
    known.then_some(found)
}

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

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
