//! The DNS responder inside each endpoint's namespace (127.0.0.11:53, UDP
//! and TCP), answering A queries for the names of endpoints on the
//! namespace's overlays from the [`crate::NameBook`].
//!
//! [`answer`] is the whole protocol (pure: bytes in, bytes out); the
//! responder only moves bytes between the sockets and it. The wire format
//! is hickory-proto's.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

#[cfg(feature = "kernel")]
pub use crate::dns_responder::{DnsResponder, DnsStats};
use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::model::NameBook;

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

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
