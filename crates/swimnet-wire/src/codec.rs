//! One memberlist message to and from bytes: a type byte and a msgpack body.
//!
//! [`encode`] and [`decode`] handle the messages that stand on their own in a
//! packet (ping, ack, gossip, user data...). The framing types (compound,
//! compress, CRC, encryption, labels) have their own modules, and the
//! stream-only bodies (push/pull header and node states, user message
//! header) are reached through [`Body`] and the helper functions below.
//!
//! Bodies are written exactly as go-msgpack 0.5.5 writes the Go structs
//! (the golden vectors in `tests/golden.rs` are bytes Go wrote): maps with
//! sorted Go field names, empty byte fields as `nil`, `omitempty` fields of
//! `ping`/`indirectPingReq` left out when zero. They are read leniently (see [`crate::msgpack`]).

use crate::error::WireError;
use crate::msg::*;
use crate::msgpack::{Reader, Writer};
use crate::msgpack_struct::{Bool, Bytes, GoInt, Int, MsgpackStruct, OmitEmpty, Raw, Str, Uint};

/// A memberlist message that can travel on its own (in a UDP packet, a
/// compound part, or for some of them a stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `ping` (type 0).
    Ping(Ping),
    /// `indirectPingReq` (type 1).
    IndirectPing(IndirectPing),
    /// `ackResp` (type 2).
    AckResp(AckResp),
    /// `nackResp` (type 11).
    NackResp(NackResp),
    /// `errResp` (type 13).
    ErrResp(ErrResp),
    /// `suspect` (type 3).
    Suspect(Suspect),
    /// `alive` (type 4).
    Alive(Alive),
    /// `dead` (type 5).
    Dead(Dead),
    /// A packet user message (type 8): the raw application bytes that follow
    /// the type byte, unchanged.
    User(Vec<u8>),
}

impl Message {
    /// The type byte this message is sent with.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Ping(_) => MessageType::Ping,
            Message::IndirectPing(_) => MessageType::IndirectPing,
            Message::AckResp(_) => MessageType::AckResp,
            Message::NackResp(_) => MessageType::NackResp,
            Message::ErrResp(_) => MessageType::ErrResp,
            Message::Suspect(_) => MessageType::Suspect,
            Message::Alive(_) => MessageType::Alive,
            Message::Dead(_) => MessageType::Dead,
            Message::User(_) => MessageType::User,
        }
    }
}

/// Appends `msg` to `out`: its type byte, then its msgpack body (for
/// [`Message::User`]: the raw bytes). Call it to build a packet's inner
/// message or a compound part.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    out.push(msg.message_type() as u8);
    match msg {
        Message::Ping(m) => m.encode_body(out),
        Message::IndirectPing(m) => m.encode_body(out),
        Message::AckResp(m) => m.encode_body(out),
        Message::NackResp(m) => m.encode_body(out),
        Message::ErrResp(m) => m.encode_body(out),
        Message::Suspect(m) => m.encode_body(out),
        Message::Alive(m) => m.encode_body(out),
        Message::Dead(m) => m.encode_body(out),
        Message::User(b) => out.extend_from_slice(b),
    }
}

/// Decodes one message that starts with its type byte.
///
/// Bytes after the msgpack body are ignored, as Go does. Framing types
/// (compound, compress, CRC, encrypt, label) and stream-only types
/// (push/pull) give [`WireError::UnexpectedType`]: walk packets with
/// [`crate::packet::for_each_message`] instead. Undefined type bytes give
/// [`WireError::UnknownType`].
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    let (&t, body) = bytes.split_first().ok_or(WireError::Empty)?;
    let ty = MessageType::from_u8(t).ok_or(WireError::UnknownType(t))?;
    let mut r = Reader::new(body);
    Ok(match ty {
        MessageType::Ping => Message::Ping(Ping::decode_body(&mut r)?),
        MessageType::IndirectPing => Message::IndirectPing(IndirectPing::decode_body(&mut r)?),
        MessageType::AckResp => Message::AckResp(AckResp::decode_body(&mut r)?),
        MessageType::NackResp => Message::NackResp(NackResp::decode_body(&mut r)?),
        MessageType::ErrResp => Message::ErrResp(ErrResp::decode_body(&mut r)?),
        MessageType::Suspect => Message::Suspect(Suspect::decode_body(&mut r)?),
        MessageType::Alive => Message::Alive(Alive::decode_body(&mut r)?),
        MessageType::Dead => Message::Dead(Dead::decode_body(&mut r)?),
        MessageType::User => Message::User(body.to_vec()),
        MessageType::PushPull
        | MessageType::Compound
        | MessageType::Compress
        | MessageType::Encrypt
        | MessageType::HasCrc
        | MessageType::HasLabel => {
            return Err(WireError::UnexpectedType {
                found: t,
                context: "single message",
            })
        }
    })
}

/// A memberlist Go struct that has a msgpack body of its own: the message
/// bodies, the push/pull stream values and `compress`. Its layout is declared
/// once with [`msgpack_struct!`](crate::msgpack_struct!) below.
pub trait Body: MsgpackStruct {
    /// Appends the msgpack map (no type byte) exactly as go-msgpack 0.5.5
    /// writes it.
    #[inline]
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.write_msgpack(&mut Writer::new(out));
    }

    /// Reads one msgpack value (map, array or nil) into the struct and leaves
    /// the reader just after it.
    #[inline]
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Self::read_msgpack(r)
    }
}

/// Appends `msgpack(pushPullHeader)` (no type byte) to `out`.
pub fn encode_push_pull_header(h: &PushPullHeader, out: &mut Vec<u8>) {
    h.encode_body(out)
}

/// Appends `msgpack(pushNodeState)` to `out`.
pub fn encode_push_node_state(s: &PushNodeState, out: &mut Vec<u8>) {
    s.encode_body(out)
}

/// Appends `msgpack(userMsgHeader)` to `out`.
pub fn encode_user_msg_header(h: &UserMsgHeader, out: &mut Vec<u8>) {
    h.encode_body(out)
}

/// Reads a `pushPullHeader` value at the reader's position.
pub fn decode_push_pull_header(r: &mut Reader<'_>) -> Result<PushPullHeader, WireError> {
    PushPullHeader::decode_body(r)
}

/// Reads a `pushNodeState` value at the reader's position.
pub fn decode_push_node_state(r: &mut Reader<'_>) -> Result<PushNodeState, WireError> {
    PushNodeState::decode_body(r)
}

/// Reads a `userMsgHeader` value at the reader's position.
pub fn decode_user_msg_header(r: &mut Reader<'_>) -> Result<UserMsgHeader, WireError> {
    UserMsgHeader::decode_body(r)
}

// ---------------------------------------------------------------------------
// The Go structs, one entry per field: `"GoName"(position in the Go struct)
// => rust_field: codec`, listed in the order go-msgpack writes them (names
// sorted by bytes). `ping` and `indirectPingReq` tag their source fields
// `omitempty`; every other field is always written.

crate::msgpack_struct! {
    Ping {
        "Node"(1) => node: Str,
        "SeqNo"(0) => seq_no: Uint,
        "SourceAddr"(2) => source_addr: OmitEmpty<Raw>,
        "SourceNode"(4) => source_node: OmitEmpty<Str>,
        "SourcePort"(3) => source_port: OmitEmpty<Uint>,
    }
}

crate::msgpack_struct! {
    IndirectPing {
        "Nack"(4) => nack: Bool,
        "Node"(3) => node: Str,
        "Port"(2) => port: Uint,
        "SeqNo"(0) => seq_no: Uint,
        "SourceAddr"(5) => source_addr: OmitEmpty<Raw>,
        "SourceNode"(7) => source_node: OmitEmpty<Str>,
        "SourcePort"(6) => source_port: OmitEmpty<Uint>,
        "Target"(1) => target: Bytes,
    }
}

crate::msgpack_struct! {
    AckResp {
        "Payload"(1) => payload: Bytes,
        "SeqNo"(0) => seq_no: Uint,
    }
}

crate::msgpack_struct! {
    NackResp {
        "SeqNo"(0) => seq_no: Uint,
    }
}

crate::msgpack_struct! {
    ErrResp {
        "Error"(0) => error: Str,
    }
}

crate::msgpack_struct! {
    Suspect {
        "From"(2) => from: Str,
        "Incarnation"(0) => incarnation: Uint,
        "Node"(1) => node: Str,
    }
}

crate::msgpack_struct! {
    Dead {
        "From"(2) => from: Str,
        "Incarnation"(0) => incarnation: Uint,
        "Node"(1) => node: Str,
    }
}

crate::msgpack_struct! {
    Alive {
        "Addr"(2) => addr: Bytes,
        "Incarnation"(0) => incarnation: Uint,
        "Meta"(4) => meta: Bytes,
        "Node"(1) => node: Str,
        "Port"(3) => port: Uint,
        "Vsn"(5) => vsn: Bytes,
    }
}

crate::msgpack_struct! {
    PushPullHeader {
        "Join"(2) => join: Bool,
        "Nodes"(0) => nodes: GoInt,
        "UserStateLen"(1) => user_state_len: GoInt,
    }
}

crate::msgpack_struct! {
    PushNodeState {
        "Addr"(1) => addr: Bytes,
        "Incarnation"(4) => incarnation: Uint,
        "Meta"(3) => meta: Bytes,
        "Name"(0) => name: Str,
        "Port"(2) => port: Uint,
        "State"(5) => state: Int,
        "Vsn"(6) => vsn: Bytes,
    }
}

crate::msgpack_struct! {
    UserMsgHeader {
        "UserMsgLen"(0) => user_msg_len: GoInt,
    }
}

crate::msgpack_struct! {
    Compress {
        "Algo"(0) => algo: Uint,
        "Buf"(1) => buf: Bytes,
    }
}

impl Body for Ping {}
impl Body for IndirectPing {}
impl Body for AckResp {}
impl Body for NackResp {}
impl Body for ErrResp {}
impl Body for Suspect {}
impl Body for Dead {}
impl Body for Alive {}
impl Body for PushPullHeader {}
impl Body for PushNodeState {}
impl Body for UserMsgHeader {}
impl Body for Compress {}
