//! One memberlist message to and from bytes: a type byte and a msgpack body.
//!
//! [`encode`] and [`decode`] handle the messages that stand on their own in a
//! packet (ping, ack, gossip, user data...). The framing types (compound,
//! compress, CRC, encryption, labels) have their own modules, and the
//! stream-only bodies (push/pull header and node states, user message
//! header) are reached through [`Body`] and the helper functions below.
//!
//! Bodies are written exactly as go-msgpack 0.5.5 writes the Go structs
//! (spec §4 and Appendix A): maps with sorted Go field names, empty byte
//! fields as `nil`, `omitempty` fields of `ping`/`indirectPingReq` left out
//! when zero. They are read leniently (see [`crate::msgpack`]).

use crate::error::WireError;
use crate::msg::*;
use crate::msgpack::{FieldKey, Reader, Writer};

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

/// A Go struct that has a msgpack body of its own.
pub trait Body: Sized {
    /// Appends the msgpack map (no type byte) exactly as go-msgpack 0.5.5
    /// writes it.
    fn encode_body(&self, out: &mut Vec<u8>);
    /// Reads one msgpack value (map, array or nil) into the struct and leaves
    /// the reader just after it.
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError>;
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

// Field names of each Go struct, in Go source order (the order of the array
// form).
const PING_FIELDS: [FieldKey; 5] = [
    FieldKey::new("SeqNo"),
    FieldKey::new("Node"),
    FieldKey::new("SourceAddr"),
    FieldKey::new("SourcePort"),
    FieldKey::new("SourceNode"),
];
const INDIRECT_PING_FIELDS: [FieldKey; 8] = [
    FieldKey::new("SeqNo"),
    FieldKey::new("Target"),
    FieldKey::new("Port"),
    FieldKey::new("Node"),
    FieldKey::new("Nack"),
    FieldKey::new("SourceAddr"),
    FieldKey::new("SourcePort"),
    FieldKey::new("SourceNode"),
];
const ACK_FIELDS: [FieldKey; 2] = [FieldKey::new("SeqNo"), FieldKey::new("Payload")];
const NACK_FIELDS: [FieldKey; 1] = [FieldKey::new("SeqNo")];
const ERR_FIELDS: [FieldKey; 1] = [FieldKey::new("Error")];
const ACCUSATION_FIELDS: [FieldKey; 3] = [
    FieldKey::new("Incarnation"),
    FieldKey::new("Node"),
    FieldKey::new("From"),
];
const ALIVE_FIELDS: [FieldKey; 6] = [
    FieldKey::new("Incarnation"),
    FieldKey::new("Node"),
    FieldKey::new("Addr"),
    FieldKey::new("Port"),
    FieldKey::new("Meta"),
    FieldKey::new("Vsn"),
];
const PUSH_PULL_HEADER_FIELDS: [FieldKey; 3] = [
    FieldKey::new("Nodes"),
    FieldKey::new("UserStateLen"),
    FieldKey::new("Join"),
];
const PUSH_NODE_STATE_FIELDS: [FieldKey; 7] = [
    FieldKey::new("Name"),
    FieldKey::new("Addr"),
    FieldKey::new("Port"),
    FieldKey::new("Meta"),
    FieldKey::new("Incarnation"),
    FieldKey::new("State"),
    FieldKey::new("Vsn"),
];
const USER_MSG_HEADER_FIELDS: [FieldKey; 1] = [FieldKey::new("UserMsgLen")];
const COMPRESS_FIELDS: [FieldKey; 2] = [FieldKey::new("Algo"), FieldKey::new("Buf")];

fn string(r: &mut Reader<'_>, field: &'static str) -> Result<String, WireError> {
    r.read_str(field).map(str::to_owned)
}

fn bytes(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    r.read_bytes().map(|c| c.into_owned())
}

/// Reads a Go `int` that this crate stores as `u32` (counts and lengths).
fn go_int_u32(r: &mut Reader<'_>) -> Result<u32, WireError> {
    Ok(r.read_uint_max(u64::from(u32::MAX), "int")? as u32)
}

impl Body for Ping {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        let n = 2
            + u32::from(!self.source_addr.is_empty())
            + u32::from(!self.source_node.is_empty())
            + u32::from(self.source_port != 0);
        w.write_map_len(n);
        w.write_encoded(b"\xa4Node");
        w.write_str(&self.node);
        w.write_encoded(b"\xa5SeqNo");
        w.write_uint(self.seq_no.into());
        if !self.source_addr.is_empty() {
            w.write_encoded(b"\xaaSourceAddr");
            w.write_raw(&self.source_addr);
        }
        if !self.source_node.is_empty() {
            w.write_encoded(b"\xaaSourceNode");
            w.write_str(&self.source_node);
        }
        if self.source_port != 0 {
            w.write_encoded(b"\xaaSourcePort");
            w.write_uint(self.source_port.into());
        }
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = Ping::default();
        r.read_struct(&PING_FIELDS, |i, r| {
            match i {
                0 => m.seq_no = r.read_u32()?,
                1 => m.node = string(r, "Node")?,
                2 => m.source_addr = bytes(r)?,
                3 => m.source_port = r.read_u16()?,
                _ => m.source_node = string(r, "SourceNode")?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl Body for IndirectPing {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        let n = 5
            + u32::from(!self.source_addr.is_empty())
            + u32::from(!self.source_node.is_empty())
            + u32::from(self.source_port != 0);
        w.write_map_len(n);
        w.write_encoded(b"\xa4Nack");
        w.write_bool(self.nack);
        w.write_encoded(b"\xa4Node");
        w.write_str(&self.node);
        w.write_encoded(b"\xa4Port");
        w.write_uint(self.port.into());
        w.write_encoded(b"\xa5SeqNo");
        w.write_uint(self.seq_no.into());
        if !self.source_addr.is_empty() {
            w.write_encoded(b"\xaaSourceAddr");
            w.write_raw(&self.source_addr);
        }
        if !self.source_node.is_empty() {
            w.write_encoded(b"\xaaSourceNode");
            w.write_str(&self.source_node);
        }
        if self.source_port != 0 {
            w.write_encoded(b"\xaaSourcePort");
            w.write_uint(self.source_port.into());
        }
        w.write_encoded(b"\xa6Target");
        w.write_bytes(&self.target);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = IndirectPing::default();
        r.read_struct(&INDIRECT_PING_FIELDS, |i, r| {
            match i {
                0 => m.seq_no = r.read_u32()?,
                1 => m.target = bytes(r)?,
                2 => m.port = r.read_u16()?,
                3 => m.node = string(r, "Node")?,
                4 => m.nack = r.read_bool()?,
                5 => m.source_addr = bytes(r)?,
                6 => m.source_port = r.read_u16()?,
                _ => m.source_node = string(r, "SourceNode")?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl Body for AckResp {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.write_map_len(2);
        w.write_encoded(b"\xa7Payload");
        w.write_bytes(&self.payload);
        w.write_encoded(b"\xa5SeqNo");
        w.write_uint(self.seq_no.into());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = AckResp::default();
        r.read_struct(&ACK_FIELDS, |i, r| {
            match i {
                0 => m.seq_no = r.read_u32()?,
                _ => m.payload = bytes(r)?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl Body for NackResp {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.write_map_len(1);
        w.write_encoded(b"\xa5SeqNo");
        w.write_uint(self.seq_no.into());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = NackResp::default();
        r.read_struct(&NACK_FIELDS, |_, r| {
            m.seq_no = r.read_u32()?;
            Ok(())
        })?;
        Ok(m)
    }
}

impl Body for ErrResp {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.write_map_len(1);
        w.write_encoded(b"\xa5Error");
        w.write_str(&self.error);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = ErrResp::default();
        r.read_struct(&ERR_FIELDS, |_, r| {
            m.error = string(r, "Error")?;
            Ok(())
        })?;
        Ok(m)
    }
}

/// `suspect` and `dead` have the same fields.
fn encode_accusation(w: &mut Writer<'_>, from: &str, incarnation: u32, node: &str) {
    w.write_map_len(3);
    w.write_encoded(b"\xa4From");
    w.write_str(from);
    w.write_encoded(b"\xabIncarnation");
    w.write_uint(incarnation.into());
    w.write_encoded(b"\xa4Node");
    w.write_str(node);
}

fn decode_accusation(r: &mut Reader<'_>) -> Result<(u32, String, String), WireError> {
    let (mut inc, mut node, mut from) = (0, String::new(), String::new());
    r.read_struct(&ACCUSATION_FIELDS, |i, r| {
        match i {
            0 => inc = r.read_u32()?,
            1 => node = string(r, "Node")?,
            _ => from = string(r, "From")?,
        }
        Ok(())
    })?;
    Ok((inc, node, from))
}

impl Body for Suspect {
    fn encode_body(&self, out: &mut Vec<u8>) {
        encode_accusation(
            &mut Writer::new(out),
            &self.from,
            self.incarnation,
            &self.node,
        );
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (incarnation, node, from) = decode_accusation(r)?;
        Ok(Suspect {
            incarnation,
            node,
            from,
        })
    }
}

impl Body for Dead {
    fn encode_body(&self, out: &mut Vec<u8>) {
        encode_accusation(
            &mut Writer::new(out),
            &self.from,
            self.incarnation,
            &self.node,
        );
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (incarnation, node, from) = decode_accusation(r)?;
        Ok(Dead {
            incarnation,
            node,
            from,
        })
    }
}

impl Body for Alive {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.write_map_len(6);
        w.write_encoded(b"\xa4Addr");
        w.write_bytes(&self.addr);
        w.write_encoded(b"\xabIncarnation");
        w.write_uint(self.incarnation.into());
        w.write_encoded(b"\xa4Meta");
        w.write_bytes(&self.meta);
        w.write_encoded(b"\xa4Node");
        w.write_str(&self.node);
        w.write_encoded(b"\xa4Port");
        w.write_uint(self.port.into());
        w.write_encoded(b"\xa3Vsn");
        w.write_bytes(&self.vsn);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = Alive::default();
        r.read_struct(&ALIVE_FIELDS, |i, r| {
            match i {
                0 => m.incarnation = r.read_u32()?,
                1 => m.node = string(r, "Node")?,
                2 => m.addr = bytes(r)?,
                3 => m.port = r.read_u16()?,
                4 => m.meta = bytes(r)?,
                _ => m.vsn = bytes(r)?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl Body for PushPullHeader {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.write_map_len(3);
        w.write_encoded(b"\xa4Join");
        w.write_bool(self.join);
        w.write_encoded(b"\xa5Nodes");
        w.write_uint(self.nodes.into());
        w.write_encoded(b"\xacUserStateLen");
        w.write_uint(self.user_state_len.into());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = PushPullHeader::default();
        r.read_struct(&PUSH_PULL_HEADER_FIELDS, |i, r| {
            match i {
                0 => m.nodes = go_int_u32(r)?,
                1 => m.user_state_len = go_int_u32(r)?,
                _ => m.join = r.read_bool()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl Body for PushNodeState {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.write_map_len(7);
        w.write_encoded(b"\xa4Addr");
        w.write_bytes(&self.addr);
        w.write_encoded(b"\xabIncarnation");
        w.write_uint(self.incarnation.into());
        w.write_encoded(b"\xa4Meta");
        w.write_bytes(&self.meta);
        w.write_encoded(b"\xa4Name");
        w.write_str(&self.name);
        w.write_encoded(b"\xa4Port");
        w.write_uint(self.port.into());
        w.write_encoded(b"\xa5State");
        w.write_int(self.state);
        w.write_encoded(b"\xa3Vsn");
        w.write_bytes(&self.vsn);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = PushNodeState::default();
        r.read_struct(&PUSH_NODE_STATE_FIELDS, |i, r| {
            match i {
                0 => m.name = string(r, "Name")?,
                1 => m.addr = bytes(r)?,
                2 => m.port = r.read_u16()?,
                3 => m.meta = bytes(r)?,
                4 => m.incarnation = r.read_u32()?,
                5 => m.state = r.read_i64()?,
                _ => m.vsn = bytes(r)?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl Body for UserMsgHeader {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.write_map_len(1);
        w.write_encoded(b"\xaaUserMsgLen");
        w.write_uint(self.user_msg_len.into());
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = UserMsgHeader::default();
        r.read_struct(&USER_MSG_HEADER_FIELDS, |_, r| {
            m.user_msg_len = go_int_u32(r)?;
            Ok(())
        })?;
        Ok(m)
    }
}

impl Body for Compress {
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.write_map_len(2);
        w.write_encoded(b"\xa4Algo");
        w.write_uint(self.algo.into());
        w.write_encoded(b"\xa3Buf");
        w.write_bytes(&self.buf);
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut m = Compress::default();
        r.read_struct(&COMPRESS_FIELDS, |i, r| {
            match i {
                0 => m.algo = r.read_u8()?,
                _ => m.buf = bytes(r)?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}
