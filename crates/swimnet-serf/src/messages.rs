//! Serf's messages, carried inside memberlist user messages.
//!
//! Every Serf message is one type byte ([`MessageType`]) followed by the
//! msgpack encoding of a Go struct, in the go-msgpack dialect of the wire
//! crate (maps keyed by the sorted Go field names, strings and byte slices
//! in the raw-string family, nil for empty byte slices). The relay message
//! is the exception: type 9, a msgpack [`RelayHeader`], then a whole inner
//! message (its own type byte and body).
//!
//! Each struct implements [`SerfMessage`]: `encode` gives the bytes that go
//! after memberlist's user-message byte (0x08), `decode` parses them.
//! Decoders accept what Go's decoder accepts (keys in any order, unknown
//! keys, nil, signed or unsigned integer forms, str8 and bin), ignore bytes
//! after the value (as Go's `decodeMessage` does), return an error on
//! anything else and never panic.
//!
//! Field names, types and type codes follow serf 0.9.4's `serf/messages.go`,
//! `serf/keymanager.go` and `serf/internal_query.go`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use swimnet_wire::msgpack::{FieldKey, Reader, Writer};
use swimnet_wire::msgpack_struct::{
    read_seq, Bool, Bytes, FieldCodec, Int, Map, MsgpackStruct, Nested, NilSeq, Opt, Raw, Seq, Str,
    Uint,
};
use swimnet_wire::WireError;

use crate::error::SerfError;
use crate::lamport::LamportTime;

/// Query flag: every node that passes the filters sends an ack at once.
pub const QUERY_FLAG_ACK: u32 = 1;
/// Query flag: receivers must not re-broadcast the query.
pub const QUERY_FLAG_NO_BROADCAST: u32 = 2;

/// Filter type byte of a node-name filter ([`Filter::Nodes`]).
pub const FILTER_NODE_TYPE: u8 = 0;
/// Filter type byte of a tag filter ([`Filter::Tag`]).
pub const FILTER_TAG_TYPE: u8 = 1;

/// The type byte in front of every Serf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageType {
    /// A node's intent to leave ([`Leave`]).
    Leave = 0,
    /// A node's join intent ([`Join`]).
    Join = 1,
    /// Push/pull user state ([`PushPull`]); only in memberlist push/pulls.
    PushPull = 2,
    /// A user event ([`UserEvent`]).
    UserEvent = 3,
    /// A query ([`Query`]).
    Query = 4,
    /// A response or ack to a query ([`QueryResponse`]).
    QueryResponse = 5,
    /// The payload of a response to a `_serf_conflict` query (a Serf
    /// `Member`); only inside query responses.
    ConflictResponse = 6,
    /// The payload of a key query ([`KeyRequest`]); only inside queries.
    KeyRequest = 7,
    /// The payload of a response to a key query ([`KeyResponse`]); only
    /// inside query responses.
    KeyResponse = 8,
    /// A message to forward to another node ([`RelayHeader`] + message).
    Relay = 9,
}

impl MessageType {
    /// Number of message types (codes 0..COUNT).
    pub const COUNT: usize = 10;

    /// The type byte.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for MessageType {
    type Error = SerfError;

    fn try_from(b: u8) -> Result<Self, SerfError> {
        Ok(match b {
            0 => MessageType::Leave,
            1 => MessageType::Join,
            2 => MessageType::PushPull,
            3 => MessageType::UserEvent,
            4 => MessageType::Query,
            5 => MessageType::QueryResponse,
            6 => MessageType::ConflictResponse,
            7 => MessageType::KeyRequest,
            8 => MessageType::KeyResponse,
            9 => MessageType::Relay,
            _ => return Err(SerfError::UnknownType(b)),
        })
    }
}

/// A Serf message struct with a fixed type byte. Its msgpack body is
/// declared with [`swimnet_wire::msgpack_struct!`].
pub trait SerfMessage: MsgpackStruct {
    /// The type byte written in front of the body.
    const TYPE: MessageType;

    /// The type byte followed by the body: the payload of a memberlist user
    /// message.
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![Self::TYPE.code()];
        self.write_msgpack(&mut Writer::new(&mut out));
        out
    }

    /// Decodes a body without its type byte. Trailing bytes are ignored.
    fn decode_body(body: &[u8]) -> Result<Self, SerfError> {
        Ok(Self::read_msgpack(&mut Reader::new(body))?)
    }

    /// Decodes a type byte and body; the type byte must be [`Self::TYPE`].
    fn decode(buf: &[u8]) -> Result<Self, SerfError> {
        let (&t, body) = buf.split_first().ok_or(SerfError::Empty)?;
        if t != Self::TYPE.code() {
            return Err(SerfError::WrongType {
                expected: Self::TYPE.code(),
                found: t,
            });
        }
        Self::decode_body(body)
    }
}

/// An IP address from a Go `net.IP` (4 or 16 bytes). IPv4-mapped IPv6
/// addresses become IPv4, as Go prints them.
pub fn ip_from_bytes(b: &[u8]) -> Result<IpAddr, SerfError> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Ok(IpAddr::V4(Ipv4Addr::from(a)));
    }
    if let Ok(a) = <[u8; 16]>::try_from(b) {
        let v6 = Ipv6Addr::from(a);
        return Ok(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        });
    }
    Err(SerfError::BadAddress(b.len()))
}

/// The bytes of a Go `net.IP` for an address: 4 bytes for IPv4 (what
/// memberlist stores for a node bound to an IPv4 address), 16 for IPv6.
pub fn ip_to_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

// ------------------------------------------------------------------ bodies
//
// Each Go struct is declared once: `"GoName"(position in the Go struct) =>
// rust_field: codec`, in the order go-msgpack writes the fields (names sorted
// by bytes). The codecs say how Serf's Go types are written: `Bytes` is a
// `[]byte` that is nil when empty, `Seq` a slice that Serf always fills
// (an array even when empty), `NilSeq` one that is nil when empty.

// --------------------------------------------------------------- leave/join

/// `messageLeave`: a node announces that it is leaving (type 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leave {
    /// Lamport time (Serf's member clock).
    pub ltime: LamportTime,
    /// The leaving node.
    pub node: String,
    /// Erase the node from member lists at once (`serf force-leave -prune`).
    pub prune: bool,
}

swimnet_wire::msgpack_struct! {
    Leave {
        "LTime"(0) => ltime: Uint,
        "Node"(1) => node: Str,
        "Prune"(2) => prune: Bool,
    }
}

impl SerfMessage for Leave {
    const TYPE: MessageType = MessageType::Leave;
}

/// `messageJoin`: a node's join intent, which stamps its membership with a
/// Lamport time (type 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Join {
    /// Lamport time (Serf's member clock).
    pub ltime: LamportTime,
    /// The joining node.
    pub node: String,
}

swimnet_wire::msgpack_struct! {
    Join {
        "LTime"(0) => ltime: Uint,
        "Node"(1) => node: Str,
    }
}

impl SerfMessage for Join {
    const TYPE: MessageType = MessageType::Join;
}

// --------------------------------------------------------------- user event

/// `messageUserEvent`: a user event (type 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserEvent {
    /// Lamport time (Serf's event clock).
    pub ltime: LamportTime,
    /// Event name.
    pub name: String,
    /// Event payload (empty is written as nil).
    pub payload: Vec<u8>,
    /// "Can coalesce".
    pub cc: bool,
}

swimnet_wire::msgpack_struct! {
    UserEvent {
        "CC"(3) => cc: Bool,
        "LTime"(0) => ltime: Uint,
        "Name"(1) => name: Str,
        "Payload"(2) => payload: Bytes,
    }
}

impl SerfMessage for UserEvent {
    const TYPE: MessageType = MessageType::UserEvent;
}

// ---------------------------------------------------------------- push/pull

/// One event in Serf's event buffer (`userEvent`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BufferedEvent {
    /// Event name.
    pub name: String,
    /// Event payload.
    pub payload: Vec<u8>,
}

swimnet_wire::msgpack_struct! {
    BufferedEvent {
        "Name"(0) => name: Str,
        "Payload"(1) => payload: Bytes,
    }
}

/// The events Serf saw at one Lamport time (`userEvents`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserEvents {
    /// Event-clock time of these events.
    pub ltime: LamportTime,
    /// The events.
    pub events: Vec<BufferedEvent>,
}

swimnet_wire::msgpack_struct! {
    UserEvents {
        "Events"(1) => events: Seq<Nested>,
        "LTime"(0) => ltime: Uint,
    }
}

/// `messagePushPull`: Serf's push/pull user state (type 2).
///
/// Encoding writes what Serf's `LocalState` writes: `StatusLTimes` as a map
/// and `LeftMembers` as an array even when empty, and `Events` as Serf's
/// whole ring buffer (`None` entries are nil; no entries at all is nil).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushPull {
    /// The sender's member clock.
    pub ltime: LamportTime,
    /// Member name → Lamport time of its latest join/leave intent.
    pub status_ltimes: BTreeMap<String, LamportTime>,
    /// Members that left.
    pub left_members: Vec<String>,
    /// The sender's event clock.
    pub event_ltime: LamportTime,
    /// The sender's recent events (its event buffer; unused slots are nil).
    pub events: Vec<Option<UserEvents>>,
    /// The sender's query clock.
    pub query_ltime: LamportTime,
}

swimnet_wire::msgpack_struct! {
    PushPull {
        "EventLTime"(3) => event_ltime: Uint,
        "Events"(4) => events: NilSeq<Opt<Nested>>,
        "LTime"(0) => ltime: Uint,
        "LeftMembers"(2) => left_members: Seq<Str>,
        "QueryLTime"(5) => query_ltime: Uint,
        "StatusLTimes"(1) => status_ltimes: Map<Str, Uint>,
    }
}

impl SerfMessage for PushPull {
    const TYPE: MessageType = MessageType::PushPull;
}

// -------------------------------------------------------------------- query

/// `messageQuery`: a query (type 4). Every node that passes the filters
/// handles it; the response goes straight back to `addr:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Lamport time (Serf's query clock).
    pub ltime: LamportTime,
    /// Random query id (with `ltime`, identifies the query).
    pub id: u32,
    /// The asker's IP (a Go `net.IP`: 4 or 16 bytes).
    pub addr: Vec<u8>,
    /// The asker's memberlist port.
    pub port: u16,
    /// The asker's node name.
    pub source_node: String,
    /// Encoded filters (see [`Filter`]); all must pass.
    pub filters: Vec<Vec<u8>>,
    /// [`QUERY_FLAG_ACK`], [`QUERY_FLAG_NO_BROADCAST`].
    pub flags: u32,
    /// How many other nodes should relay a copy of each response.
    pub relay_factor: u8,
    /// Time to answer within, in nanoseconds (a Go `time.Duration`).
    pub timeout: i64,
    /// Query name (internal queries start with `_serf_`).
    pub name: String,
    /// Query payload.
    pub payload: Vec<u8>,
}

swimnet_wire::msgpack_struct! {
    Query {
        "Addr"(2) => addr: Bytes,
        "Filters"(5) => filters: NilSeq<Bytes>,
        "Flags"(6) => flags: Uint,
        "ID"(1) => id: Uint,
        "LTime"(0) => ltime: Uint,
        "Name"(9) => name: Str,
        "Payload"(10) => payload: Bytes,
        "Port"(3) => port: Uint,
        "RelayFactor"(7) => relay_factor: Uint,
        "SourceNode"(4) => source_node: Str,
        "Timeout"(8) => timeout: Int,
    }
}

impl Query {
    /// The ack flag is set: answer with an ack at once.
    pub fn ack(&self) -> bool {
        self.flags & QUERY_FLAG_ACK != 0
    }

    /// The no-broadcast flag is set: do not gossip the query further.
    pub fn no_broadcast(&self) -> bool {
        self.flags & QUERY_FLAG_NO_BROADCAST != 0
    }

    /// Where responses and acks go: `addr:port`.
    pub fn reply_addr(&self) -> Result<SocketAddr, SerfError> {
        Ok(SocketAddr::new(ip_from_bytes(&self.addr)?, self.port))
    }

    /// The timeout as a `Duration` (negative counts as zero).
    pub fn timeout_duration(&self) -> Duration {
        Duration::from_nanos(u64::try_from(self.timeout).unwrap_or(0))
    }
}

impl SerfMessage for Query {
    const TYPE: MessageType = MessageType::Query;
}

/// `messageQueryResponse`: a response or an ack to a query (type 5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResponse {
    /// The query's Lamport time.
    pub ltime: LamportTime,
    /// The query's id.
    pub id: u32,
    /// The responding node.
    pub from: String,
    /// [`QUERY_FLAG_ACK`] for an ack, 0 for a response.
    pub flags: u32,
    /// Response payload (empty, written as nil, for acks).
    pub payload: Vec<u8>,
}

swimnet_wire::msgpack_struct! {
    QueryResponse {
        "Flags"(3) => flags: Uint,
        "From"(2) => from: Str,
        "ID"(1) => id: Uint,
        "LTime"(0) => ltime: Uint,
        "Payload"(4) => payload: Bytes,
    }
}

impl QueryResponse {
    /// This is an ack, not a response.
    pub fn ack(&self) -> bool {
        self.flags & QUERY_FLAG_ACK != 0
    }
}

impl SerfMessage for QueryResponse {
    const TYPE: MessageType = MessageType::QueryResponse;
}

// ------------------------------------------------------------------ filters

/// A query filter. On the wire a filter is a type byte followed by msgpack:
/// a node filter is an array of node names, a tag filter is
/// `filterTag{Tag, Expr}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Only these nodes handle the query.
    Nodes(Vec<String>),
    /// Only nodes whose tag `tag` matches the regular expression `expr`
    /// (unanchored, as Go's `regexp.MatchString`; a missing tag matches as
    /// the empty string) handle the query.
    Tag {
        /// Tag name.
        tag: String,
        /// Regular expression (RE2 syntax).
        expr: String,
    },
}

/// `filterTag`, the body of [`Filter::Tag`].
#[derive(Debug, Default)]
struct TagFilter {
    tag: String,
    expr: String,
}

swimnet_wire::msgpack_struct! {
    TagFilter {
        "Expr"(1) => expr: Str,
        "Tag"(0) => tag: Str,
    }
}

impl Filter {
    /// Encodes the filter (type byte + msgpack), as it goes into
    /// [`Query::filters`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Filter::Nodes(nodes) => {
                out.push(FILTER_NODE_TYPE);
                NilSeq::<Str>::write(&mut Writer::new(&mut out), nodes);
            }
            Filter::Tag { tag, expr } => {
                out.push(FILTER_TAG_TYPE);
                let body = TagFilter {
                    tag: tag.clone(),
                    expr: expr.clone(),
                };
                body.write_msgpack(&mut Writer::new(&mut out));
            }
        }
        out
    }

    /// Decodes one encoded filter.
    pub fn decode(buf: &[u8]) -> Result<Filter, SerfError> {
        let (&t, body) = buf.split_first().ok_or(SerfError::EmptyFilter)?;
        let mut r = Reader::new(body);
        match t {
            FILTER_NODE_TYPE => Ok(Filter::Nodes(read_seq::<String, Str>(
                &mut r,
                "filterNode",
            )?)),
            FILTER_TAG_TYPE => {
                let TagFilter { tag, expr } = TagFilter::read_msgpack(&mut r)?;
                Ok(Filter::Tag { tag, expr })
            }
            other => Err(SerfError::UnknownFilterType(other)),
        }
    }
}

// --------------------------------------------------------------------- keys

/// `keyRequest`: the payload of the `_serf_install-key`, `_serf_use-key`,
/// `_serf_remove-key` and `_serf_list-keys` queries (type 7 + msgpack).
///
/// Serf always sends a non-nil key slice (a base64 decoding), so even an
/// empty key is written as an empty string (`a0`), not nil.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRequest {
    /// The raw key (empty for list-keys).
    pub key: Vec<u8>,
}

swimnet_wire::msgpack_struct! {
    KeyRequest {
        "Key"(0) => key: Raw,
    }
}

impl SerfMessage for KeyRequest {
    const TYPE: MessageType = MessageType::KeyRequest;
}

/// `nodeKeyResponse`: one node's answer to a key query (type 8 + msgpack),
/// carried as the payload of a [`QueryResponse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyResponse {
    /// The operation succeeded.
    pub result: bool,
    /// Error text, or a warning (e.g. a truncated key list).
    pub message: String,
    /// list-keys: the installed keys, standard base64, primary first.
    /// Written as nil when empty.
    pub keys: Vec<String>,
    /// list-keys: the primary key, standard base64 (else empty).
    pub primary_key: String,
}

swimnet_wire::msgpack_struct! {
    KeyResponse {
        "Keys"(2) => keys: NilSeq<Str>,
        "Message"(1) => message: Str,
        "PrimaryKey"(3) => primary_key: Str,
        "Result"(0) => result: Bool,
    }
}

impl SerfMessage for KeyResponse {
    const TYPE: MessageType = MessageType::KeyResponse;
}

// -------------------------------------------------------------------- relay

/// `relayHeader`: where a relayed message must go. On the wire: type 9,
/// this header, then the whole inner message (type byte + body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayHeader {
    /// Destination IP (a Go `net.IP`, field `DestAddr.IP`).
    pub dest_ip: Vec<u8>,
    /// Destination UDP port (`DestAddr.Port`, a Go `int`).
    pub dest_port: i64,
    /// IPv6 zone (`DestAddr.Zone`), normally empty.
    pub dest_zone: String,
    /// Destination node name.
    pub dest_name: String,
}

// Written by hand rather than with `msgpack_struct!`: Go nests the address
// (`DestAddr`, a `net.UDPAddr` map of its own) while this struct keeps its
// three fields flat.
const RELAY_FIELDS: [FieldKey; 2] = [FieldKey::new("DestAddr"), FieldKey::new("DestName")];
const UDP_ADDR_FIELDS: [FieldKey; 3] = [
    FieldKey::new("IP"),
    FieldKey::new("Port"),
    FieldKey::new("Zone"),
];

impl RelayHeader {
    /// The destination as a socket address.
    pub fn dest_addr(&self) -> Result<SocketAddr, SerfError> {
        let port = u16::try_from(self.dest_port).map_err(|_| SerfError::BadPort(self.dest_port))?;
        Ok(SocketAddr::new(ip_from_bytes(&self.dest_ip)?, port))
    }

    /// Appends the msgpack header.
    pub fn write(&self, w: &mut Writer<'_>) {
        w.write_map_len(2);
        w.write_str("DestAddr");
        w.write_map_len(3);
        w.write_str("IP");
        w.write_bytes(&self.dest_ip);
        w.write_str("Port");
        w.write_int(self.dest_port);
        w.write_str("Zone");
        w.write_str(&self.dest_zone);
        w.write_str("DestName");
        w.write_str(&self.dest_name);
    }

    /// Reads the msgpack header.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = RelayHeader::default();
        r.read_struct(&RELAY_FIELDS, |i, r| {
            match i {
                0 => r.read_struct(&UDP_ADDR_FIELDS, |j, r| {
                    match j {
                        0 => m.dest_ip = r.read_bytes()?.into_owned(),
                        1 => m.dest_port = r.read_i64()?,
                        _ => m.dest_zone = r.read_str("Zone")?.to_owned(),
                    }
                    Ok(())
                })?,
                _ => m.dest_name = r.read_str("DestName")?.to_owned(),
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// A relay message: forward `inner` to the header's destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relay {
    /// Where to send `inner`.
    pub header: RelayHeader,
    /// The message to forward, verbatim (type byte + body).
    pub inner: Vec<u8>,
}

impl Relay {
    /// Encodes type 9 + header + inner message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![MessageType::Relay.code()];
        self.header.write(&mut Writer::new(&mut out));
        out.extend_from_slice(&self.inner);
        out
    }

    /// Decodes the body after the type byte. The inner message must not be
    /// empty; it is kept as bytes (see [`Relay::inner_message`]).
    pub fn decode_body(body: &[u8]) -> Result<Relay, SerfError> {
        let mut r = Reader::new(body);
        let header = RelayHeader::read(&mut r)?;
        let inner = r.remaining();
        if inner.is_empty() {
            return Err(SerfError::EmptyRelay);
        }
        Ok(Relay {
            header,
            inner: inner.to_vec(),
        })
    }

    /// Decodes the inner message (it must not itself be a relay).
    pub fn inner_message(&self) -> Result<Message, SerfError> {
        match self.inner.first() {
            Some(&t) if t == MessageType::Relay.code() => Err(SerfError::WrongType {
                expected: MessageType::QueryResponse.code(),
                found: t,
            }),
            _ => Message::decode(&self.inner),
        }
    }
}

// ------------------------------------------------------------------ message

/// Any Serf message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Type 0.
    Leave(Leave),
    /// Type 1.
    Join(Join),
    /// Type 2.
    PushPull(PushPull),
    /// Type 3.
    UserEvent(UserEvent),
    /// Type 4.
    Query(Query),
    /// Type 5.
    QueryResponse(QueryResponse),
    /// Type 6, body kept undecoded (a Serf `Member`).
    ConflictResponse(Vec<u8>),
    /// Type 7.
    KeyRequest(KeyRequest),
    /// Type 8.
    KeyResponse(KeyResponse),
    /// Type 9.
    Relay(Relay),
}

impl Message {
    /// Decodes a Serf message: type byte, then body.
    pub fn decode(buf: &[u8]) -> Result<Message, SerfError> {
        let (&t, body) = buf.split_first().ok_or(SerfError::Empty)?;
        Ok(match MessageType::try_from(t)? {
            MessageType::Leave => Message::Leave(Leave::decode_body(body)?),
            MessageType::Join => Message::Join(Join::decode_body(body)?),
            MessageType::PushPull => Message::PushPull(PushPull::decode_body(body)?),
            MessageType::UserEvent => Message::UserEvent(UserEvent::decode_body(body)?),
            MessageType::Query => Message::Query(Query::decode_body(body)?),
            MessageType::QueryResponse => Message::QueryResponse(QueryResponse::decode_body(body)?),
            MessageType::ConflictResponse => Message::ConflictResponse(body.to_vec()),
            MessageType::KeyRequest => Message::KeyRequest(KeyRequest::decode_body(body)?),
            MessageType::KeyResponse => Message::KeyResponse(KeyResponse::decode_body(body)?),
            MessageType::Relay => Message::Relay(Relay::decode_body(body)?),
        })
    }

    /// Encodes the message (type byte + body).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Leave(m) => m.encode(),
            Message::Join(m) => m.encode(),
            Message::PushPull(m) => m.encode(),
            Message::UserEvent(m) => m.encode(),
            Message::Query(m) => m.encode(),
            Message::QueryResponse(m) => m.encode(),
            Message::ConflictResponse(body) => {
                let mut out = vec![MessageType::ConflictResponse.code()];
                out.extend_from_slice(body);
                out
            }
            Message::KeyRequest(m) => m.encode(),
            Message::KeyResponse(m) => m.encode(),
            Message::Relay(m) => m.encode(),
        }
    }

    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Leave(_) => MessageType::Leave,
            Message::Join(_) => MessageType::Join,
            Message::PushPull(_) => MessageType::PushPull,
            Message::UserEvent(_) => MessageType::UserEvent,
            Message::Query(_) => MessageType::Query,
            Message::QueryResponse(_) => MessageType::QueryResponse,
            Message::ConflictResponse(_) => MessageType::ConflictResponse,
            Message::KeyRequest(_) => MessageType::KeyRequest,
            Message::KeyResponse(_) => MessageType::KeyResponse,
            Message::Relay(_) => MessageType::Relay,
        }
    }
}
