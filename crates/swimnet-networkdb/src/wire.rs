//! NetworkDB's wire messages and their framing on top of memberlist.
//!
//! Docker 20.10's NetworkDB (libnetwork `networkdb/networkdb.proto`, as
//! shipped in Debian bookworm's docker.io 20.10.24 source) speaks proto3,
//! generated with gogo-protobuf. The structs here are hand-written
//! [`prost`] messages with the same field numbers, wire types and enum
//! values, so their bytes are the bytes Docker's Go code produces (golden
//! vectors from Docker's generated types are in `tests/golden.rs`).
//!
//! # Layers
//!
//! Every NetworkDB message travels inside a [`GossipMessage`] envelope
//! (`type` + serialized `data`). A [`CompoundMessage`] bundles several
//! complete envelopes; compounds may nest. The envelope is then handed to
//! memberlist, which frames it as a *user message*:
//!
//! | what | NetworkDB builds | memberlist carries it as |
//! | --- | --- | --- |
//! | per-network table gossip (every 200 ms, up to 3 peers of the network) | `GossipMessage{COMPOUND, [GossipMessage{TABLE_EVENT}, ...]}` ([`encode_compound`]) | `SendBestEffort`: a UDP packet `[8][envelope]` ([`packet_user_message`]), then LZW if smaller, CRC, encryption |
//! | cluster-wide node / network events | `GossipMessage{NODE_EVENT}` / `GossipMessage{NETWORK_EVENT}` from `GetBroadcasts` | each part `[8][envelope]` inside memberlist's own compound (type 7) piggybacked on its gossip and probes |
//! | bulk sync (anti-entropy, TCP) | `GossipMessage{BULK_SYNC, BulkSyncMessage{payload = GossipMessage{COMPOUND, [GossipMessage{TABLE_EVENT}, ...]}}}` ([`BulkSyncMessage::with_events`]) | `SendReliable`: a stream `[8] msgpack{UserMsgLen} [envelope]` ([`stream_user_message`]), compressed, then encrypted |
//! | attachments during memberlist push/pull | `GossipMessage{PUSH_PULL, NetworkPushPull}` (`LocalState`) | the push/pull "user state" blob ([`encode_push_pull_state`] / [`decode_push_pull_state`]) |
//!
//! On receipt, memberlist hands the envelope bytes (after the user-message
//! type byte and header) to `NotifyMsg`, which decodes the envelope and
//! dispatches on its type; a compound is opened part by part and each part
//! handled as if it had arrived alone ([`for_each_message`]). A part that
//! fails to decode is skipped without affecting its siblings. Push/pull
//! state goes to `MergeRemoteState` instead, never to `NotifyMsg`.
//!
//! Seen on the wire between real 20.10.24 nodes (`tests/capture.rs`): a
//! BULK_SYNC reaches the peer's `NotifyMsg` like any other message (each
//! bulk sync, answer included, is its own one-way TCP connection); stream
//! messages are always LZW-compressed; UDP packets that memberlist sends to
//! a node it knows by name (table gossip, gossip of broadcasts) carry the
//! CRC header, while probes and acks, addressed by IP only, do not.
//!
//! # Decoding untrusted bytes
//!
//! Every decoder returns a [`DecodeError`] on garbage and never panics.
//! Inputs are bounded: an envelope over [`MAX_MESSAGE_BYTES`] is refused
//! before parsing, and compounds nested deeper than [`MAX_NESTING`] are
//! refused (Go has no such limit, but Docker itself never nests deeper than
//! a bulk sync holding a compound). Compounds are read in place, part by
//! part, and a compound with more parts than [`MAX_GOSSIP_PARTS`] (bulk-sync
//! payloads: [`MAX_BULK_SYNC_PARTS`]) is dropped whole before any part is
//! handled. Allocation is bounded by the input size.
//!
//! Differences from gogo-protobuf's decoders, all on inputs Docker never
//! produces: string fields must be valid UTF-8 (Go accepts any bytes), and a
//! 10-byte varint whose last byte is above 1 is refused (Go drops the
//! overflowing bits). Unknown fields are skipped, as in Go; re-encoding a
//! decoded message drops them.

use prost::Message as _;
use swimnet_wire::budget::{BudgetLimit, DecodeBudget};

/// Largest envelope any decoder here accepts: 20 MiB, memberlist's cap on
/// push/pull state and stream user messages (`maxPushStateBytes`). A UDP
/// gossip packet is far smaller (`PacketBufferSize`, 1400 bytes by default);
/// a bulk sync of a large network is the biggest thing NetworkDB sends.
pub const MAX_MESSAGE_BYTES: usize = 20 << 20;

/// Most compound parts one gossip message may hold, nested parts included
/// (every part counts, empty or malformed). A NetworkDB gossip packet of
/// 1,400 bytes holds a few dozen table events, and even a 64 KiB datagram of
/// empty parts stays under 33,000; a compound over this is dropped whole,
/// before any part is handled.
pub const MAX_GOSSIP_PARTS: usize = 4096;

/// Most compound parts one bulk sync's payload may hold (see
/// [`MAX_GOSSIP_PARTS`]): a bulk sync of [`MAX_MESSAGE_BYTES`] holds at most
/// about 400,000 real table events.
pub const MAX_BULK_SYNC_PARTS: usize = 1 << 20;

/// How many compound levels [`for_each_message`] opens. Docker nests at most
/// two (a bulk sync's payload is a compound of table events), so 8 leaves
/// room while stopping a hostile peer from recursing without end.
pub const MAX_NESTING: usize = 8;

/// The type tag of a [`GossipMessage`] (`enum MessageType` in the .proto).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// 0, `INVALID`: never sent; an empty envelope decodes to it.
    Invalid = 0,
    /// 1, `NETWORK_EVENT`: a node joined or left a network ([`NetworkEvent`]);
    /// cluster-wide, piggybacked on memberlist gossip.
    NetworkEvent = 1,
    /// 2, `TABLE_EVENT`: an entry was created, updated or deleted
    /// ([`TableEvent`]); per-network UDP gossip and bulk-sync payloads.
    TableEvent = 2,
    /// 3, `PUSH_PULL`: this node's view of every network attachment
    /// ([`NetworkPushPull`]); only as memberlist push/pull user state.
    PushPull = 3,
    /// 4, `BULK_SYNC`: a full dump of some networks' tables
    /// ([`BulkSyncMessage`]); TCP, on network join and every 30 s.
    BulkSync = 4,
    /// 5, `COMPOUND`: several complete envelopes in one ([`CompoundMessage`]).
    Compound = 5,
    /// 6, `NODE_EVENT`: a node joined or is leaving the cluster
    /// ([`NodeEvent`]); cluster-wide, piggybacked on memberlist gossip.
    NodeEvent = 6,
}

impl MessageType {
    /// The name the .proto gives this value (`"TABLE_EVENT"`, ...).
    pub fn proto_name(self) -> &'static str {
        match self {
            MessageType::Invalid => "INVALID",
            MessageType::NetworkEvent => "NETWORK_EVENT",
            MessageType::TableEvent => "TABLE_EVENT",
            MessageType::PushPull => "PUSH_PULL",
            MessageType::BulkSync => "BULK_SYNC",
            MessageType::Compound => "COMPOUND",
            MessageType::NodeEvent => "NODE_EVENT",
        }
    }
}

/// What a [`NodeEvent`] announces (`NodeEvent.Type` in the .proto).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum NodeEventType {
    /// 0, `INVALID`: never sent; Docker ignores it.
    Invalid = 0,
    /// 1, `JOIN`: the node (re)joined the cluster; moves it back to active.
    Join = 1,
    /// 2, `LEAVE`: the node is leaving gracefully; its entries are dropped.
    Leave = 2,
}

/// What a [`NetworkEvent`] announces (`NetworkEvent.Type` in the .proto).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum NetworkEventType {
    /// 0, `INVALID`: never sent; Docker treats it like a join.
    Invalid = 0,
    /// 1, `JOIN`: the node attached to the network.
    Join = 1,
    /// 2, `LEAVE`: the node is leaving the network.
    Leave = 2,
}

/// What a [`TableEvent`] does to its entry (`TableEvent.Type` in the .proto).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum TableEventType {
    /// 0, `INVALID`: never sent.
    Invalid = 0,
    /// 1, `CREATE`: the entry was created (bulk syncs send every live entry
    /// as a create).
    Create = 1,
    /// 2, `UPDATE`: the entry's value changed.
    Update = 2,
    /// 3, `DELETE`: the entry was deleted; it is kept as a tombstone for
    /// `residual_reap_time` seconds.
    Delete = 3,
}

/// The envelope around every NetworkDB message (`GossipMessage`).
///
/// Field 1 `type` (enum [`MessageType`]), field 2 `data` (bytes: the
/// serialized inner message). This is exactly what NetworkDB hands to
/// memberlist and what `NotifyMsg` receives.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct GossipMessage {
    /// The kind of message in `data` (a [`MessageType`] value; unknown values
    /// are kept as received).
    #[prost(enumeration = "MessageType", tag = "1")]
    pub r#type: i32,
    /// The serialized inner message.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// A node joined or is leaving the gossip cluster (`NodeEvent`).
///
/// Sent by `Join` (JOIN) and on shutdown (LEAVE), queued on the
/// cluster-wide node-event broadcast queue, and also synthesized from a
/// push/pull (a JOIN at the push/pull's `l_time`). Applied only if
/// `l_time` is newer than the Lamport time stored for the node.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct NodeEvent {
    /// JOIN or LEAVE (a [`NodeEventType`] value).
    #[prost(enumeration = "NodeEventType", tag = "1")]
    pub r#type: i32,
    /// The event's time on the sender's *network* Lamport clock.
    #[prost(uint64, tag = "2")]
    pub l_time: u64,
    /// The node the event is about: its NetworkDB node ID (a random
    /// 12-hex-digit string, also its memberlist name), not its hostname.
    #[prost(string, tag = "3")]
    pub node_name: String,
}

/// A node attached to or is leaving a network (`NetworkEvent`).
///
/// Sent by `JoinNetwork` / `LeaveNetwork` on the cluster-wide network-event
/// queue (a newer event for the same node and network replaces a queued
/// one). Peers keep `networks[node_name][network_id]` from these, and only
/// accept table events whose owner they know to be attached.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct NetworkEvent {
    /// JOIN or LEAVE (a [`NetworkEventType`] value).
    #[prost(enumeration = "NetworkEventType", tag = "1")]
    pub r#type: i32,
    /// The event's time on the sender's *network* Lamport clock.
    #[prost(uint64, tag = "2")]
    pub l_time: u64,
    /// The node that joined or left (its node ID).
    #[prost(string, tag = "3")]
    pub node_name: String,
    /// The network's ID (Docker's full network ID; any string on the wire).
    #[prost(string, tag = "4")]
    pub network_id: String,
}

/// One network attachment inside a [`NetworkPushPull`] (`NetworkEntry`).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct NetworkEntry {
    /// The network's ID.
    #[prost(string, tag = "1")]
    pub network_id: String,
    /// Network-clock Lamport time of the attachment's last change.
    #[prost(uint64, tag = "2")]
    pub l_time: u64,
    /// The attached node (its node ID); not necessarily the sender.
    #[prost(string, tag = "3")]
    pub node_name: String,
    /// The node is leaving the network (the receiver treats the entry as a
    /// LEAVE event).
    #[prost(bool, tag = "4")]
    pub leaving: bool,
}

/// A node's whole attachment table, exchanged in memberlist push/pull
/// (`NetworkPushPull`).
///
/// `LocalState` sends it (on join, after re-stamping all of its own
/// attachments with a fresh network-clock time); `MergeRemoteState` turns it
/// into a synthetic [`NodeEvent`] JOIN and one [`NetworkEvent`] per entry.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct NetworkPushPull {
    /// The sender's network Lamport clock when the state was taken.
    #[prost(uint64, tag = "1")]
    pub l_time: u64,
    /// Every attachment the sender knows: its own and other nodes'.
    #[prost(message, repeated, tag = "2")]
    pub networks: Vec<NetworkEntry>,
    /// The sender's node ID.
    #[prost(string, tag = "3")]
    pub node_name: String,
}

/// A change to one table entry (`TableEvent`).
///
/// The entry is identified by (`table_name`, `network_id`, `key`) and owned
/// by `node_name`. Relays keep the owner and `l_time`. A receiver applies it
/// only if `l_time` is strictly newer than what it stores.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct TableEvent {
    /// CREATE, UPDATE or DELETE (a [`TableEventType`] value).
    #[prost(enumeration = "TableEventType", tag = "1")]
    pub r#type: i32,
    /// The change's time on the owner's *table* Lamport clock.
    #[prost(uint64, tag = "2")]
    pub l_time: u64,
    /// The entry's owner (node ID); unchanged when the event is relayed.
    #[prost(string, tag = "3")]
    pub node_name: String,
    /// The network the entry belongs to.
    #[prost(string, tag = "4")]
    pub network_id: String,
    /// The table (e.g. `endpoint_table`, `overlay_peer_table`).
    #[prost(string, tag = "5")]
    pub table_name: String,
    /// The entry's key within the table and network.
    #[prost(string, tag = "6")]
    pub key: String,
    /// The entry's value: opaque bytes NetworkDB never looks into.
    #[prost(bytes = "vec", tag = "7")]
    pub value: Vec<u8>,
    /// Seconds a tombstone has left before it is reaped (whole seconds,
    /// truncated); 0 on live entries. Docker substitutes its full 30 min if a
    /// DELETE arrives with 0.
    #[prost(int32, tag = "8")]
    pub residual_reap_time: i32,
}

/// A full dump of some networks' tables, sent over TCP (`BulkSyncMessage`).
///
/// The initiator sends it with `unsolicited = true` when it joins a network
/// and every 30 s to a random peer; the receiver applies the payload and
/// answers with its own dump (`unsolicited = false`) for the same networks.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct BulkSyncMessage {
    /// The sender's *table* Lamport clock when the dump was taken.
    #[prost(uint64, tag = "1")]
    pub l_time: u64,
    /// `true` on the initiator's message (the receiver must answer),
    /// `false` on the answer.
    #[prost(bool, tag = "2")]
    pub unsolicited: bool,
    /// The sender's node ID.
    #[prost(string, tag = "3")]
    pub node_name: String,
    /// The IDs of the networks the dump covers.
    #[prost(string, repeated, tag = "4")]
    pub networks: Vec<String>,
    /// A complete encoded [`GossipMessage`] of type COMPOUND holding one
    /// TABLE_EVENT envelope per entry, tombstones included (as DELETEs).
    #[prost(bytes = "vec", tag = "5")]
    pub payload: Vec<u8>,
}

/// One part of a [`CompoundMessage`] (`CompoundMessage.SimpleMessage`).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct SimpleMessage {
    /// A complete encoded [`GossipMessage`] (field `Payload`, number 1).
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
}

/// Several envelopes sent as one (`CompoundMessage`).
///
/// Per-network gossip packs as many table events as fit one packet into a
/// compound; bulk syncs carry every entry as one compound. Each part is a
/// complete [`GossipMessage`] and may itself be a compound.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct CompoundMessage {
    /// The parts, in order.
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<SimpleMessage>,
}

/// Why NetworkDB bytes could not be decoded. Nothing was changed: the caller
/// drops the message (and counts it), as Docker logs and drops it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// An empty buffer where a message was expected (Docker's `NotifyMsg`
    /// ignores empty messages; `MergeRemoteState` logs them).
    #[error("empty NetworkDB message")]
    Empty,
    /// The input is larger than [`MAX_MESSAGE_BYTES`].
    #[error("NetworkDB message of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid protobuf encoding of the expected message.
    #[error("invalid protobuf in {what}: {source}")]
    Protobuf {
        /// The message being decoded (`"GossipMessage"`, `"TableEvent"`, ...).
        what: &'static str,
        /// prost's description of the problem.
        source: prost::DecodeError,
    },
    /// An envelope whose type is INVALID (0) or not defined by the .proto.
    #[error("unknown NetworkDB message type {0}")]
    UnknownMessageType(i32),
    /// An envelope of a defined type where another one is required (e.g. a
    /// push/pull state that is not PUSH_PULL).
    #[error("expected a {} message, found message type {found}", expected.proto_name())]
    UnexpectedMessageType {
        /// The type required here.
        expected: MessageType,
        /// The type on the wire.
        found: i32,
    },
    /// Bytes that are not a protobuf envelope or compound (read without
    /// prost, so no prost error to show).
    #[error("malformed protobuf in {what}")]
    Malformed {
        /// The message being read (`"GossipMessage"` or `"CompoundMessage"`).
        what: &'static str,
    },
    /// A compound with more parts than the caller's cap
    /// ([`MAX_GOSSIP_PARTS`], [`MAX_BULK_SYNC_PARTS`]); dropped whole.
    #[error("compound message with more than {max} parts")]
    TooManyParts {
        /// The cap.
        max: usize,
    },
    /// Compounds nested more than [`MAX_NESTING`] levels deep.
    #[error("compound messages nested more than {max} levels deep")]
    TooDeep {
        /// The limit.
        max: usize,
    },
}

fn check_len(buf: &[u8]) -> Result<(), DecodeError> {
    if buf.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            len: buf.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(())
}

fn proto<M: prost::Message + Default>(what: &'static str, buf: &[u8]) -> Result<M, DecodeError> {
    check_len(buf)?;
    M::decode(buf).map_err(|source| DecodeError::Protobuf { what, source })
}

/// A message that travels as the `data` of a [`GossipMessage`] of one fixed
/// [`MessageType`].
pub trait GossipPayload: prost::Message + Default + Sized {
    /// The envelope type this message is sent with.
    const MESSAGE_TYPE: MessageType;
    /// The .proto name of the message, for error messages.
    const NAME: &'static str;

    /// Encodes the message alone (no envelope).
    fn encode_inner(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Decodes the message alone (no envelope), e.g. a compound part's inner
    /// bytes after [`decode_gossip`].
    fn decode_inner(buf: &[u8]) -> Result<Self, DecodeError> {
        proto(Self::NAME, buf)
    }

    /// Encodes the message inside its envelope: `GossipMessage{MESSAGE_TYPE,
    /// data}` (Docker's `encodeMessage`).
    fn encode_gossip(&self) -> Vec<u8> {
        encode_gossip(Self::MESSAGE_TYPE, &self.encode_to_vec())
    }

    /// Decodes an envelope that must hold this message type.
    fn decode_gossip(buf: &[u8]) -> Result<Self, DecodeError> {
        let env = decode_gossip(buf)?;
        if env.r#type != Self::MESSAGE_TYPE as i32 {
            return Err(DecodeError::UnexpectedMessageType {
                expected: Self::MESSAGE_TYPE,
                found: env.r#type,
            });
        }
        Self::decode_inner(&env.data)
    }
}

impl GossipPayload for NodeEvent {
    const MESSAGE_TYPE: MessageType = MessageType::NodeEvent;
    const NAME: &'static str = "NodeEvent";
}
impl GossipPayload for NetworkEvent {
    const MESSAGE_TYPE: MessageType = MessageType::NetworkEvent;
    const NAME: &'static str = "NetworkEvent";
}
impl GossipPayload for NetworkPushPull {
    const MESSAGE_TYPE: MessageType = MessageType::PushPull;
    const NAME: &'static str = "NetworkPushPull";
}
impl GossipPayload for TableEvent {
    const MESSAGE_TYPE: MessageType = MessageType::TableEvent;
    const NAME: &'static str = "TableEvent";
}
impl GossipPayload for BulkSyncMessage {
    const MESSAGE_TYPE: MessageType = MessageType::BulkSync;
    const NAME: &'static str = "BulkSyncMessage";
}
impl GossipPayload for CompoundMessage {
    const MESSAGE_TYPE: MessageType = MessageType::Compound;
    const NAME: &'static str = "CompoundMessage";
}

/// Wraps already-serialized `data` in an envelope of type `t` (Docker's
/// `encodeRawMessage`; relays use it to re-wrap the inner bytes they got).
pub fn encode_gossip(t: MessageType, data: &[u8]) -> Vec<u8> {
    encode_gossip_raw(t as i32, data)
}

/// Like [`encode_gossip`] with a raw type value (for tests and relaying
/// envelopes of types this crate does not know).
pub fn encode_gossip_raw(t: i32, data: &[u8]) -> Vec<u8> {
    GossipMessage {
        r#type: t,
        data: data.to_vec(),
    }
    .encode_to_vec()
}

/// Decodes an envelope without looking into `data` (Docker's
/// `decodeMessage`). The type is returned as received; an empty buffer is
/// [`DecodeError::Empty`].
pub fn decode_gossip(buf: &[u8]) -> Result<GossipMessage, DecodeError> {
    if buf.is_empty() {
        return Err(DecodeError::Empty);
    }
    proto("GossipMessage", buf)
}

/// Builds a compound envelope from complete envelopes (Docker's
/// `makeCompoundMessage`): `GossipMessage{COMPOUND, CompoundMessage{parts}}`.
/// With no parts this is the two bytes `08 05`.
pub fn encode_compound<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    let c = CompoundMessage {
        messages: parts
            .iter()
            .map(|p| SimpleMessage {
                payload: p.as_ref().to_vec(),
            })
            .collect(),
    };
    c.encode_gossip()
}

/// Splits a compound's inner bytes (the `data` of a COMPOUND envelope) into
/// its parts, each a complete envelope (Docker's `decodeCompoundMessage`).
/// More than [`MAX_GOSSIP_PARTS`] parts is [`DecodeError::TooManyParts`],
/// found before anything is allocated.
pub fn decode_compound(data: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    check_len(data)?;
    let n =
        crate::scan::count_parts(data, MAX_GOSSIP_PARTS).map_err(|_| DecodeError::Malformed {
            what: "CompoundMessage",
        })?;
    if n > MAX_GOSSIP_PARTS {
        return Err(DecodeError::TooManyParts {
            max: MAX_GOSSIP_PARTS,
        });
    }
    let mut parts = Vec::with_capacity(n);
    crate::scan::for_each_part(data, &mut |p| parts.push(p.to_vec()));
    Ok(parts)
}

/// One NetworkDB message with its envelope removed and its type resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// NETWORK_EVENT (1).
    NetworkEvent(NetworkEvent),
    /// TABLE_EVENT (2).
    TableEvent(TableEvent),
    /// PUSH_PULL (3).
    PushPull(NetworkPushPull),
    /// BULK_SYNC (4). Its payload is left encoded; see
    /// [`BulkSyncMessage::payload_messages`].
    BulkSync(BulkSyncMessage),
    /// COMPOUND (5), parts left encoded; see [`for_each_message`].
    Compound(CompoundMessage),
    /// NODE_EVENT (6).
    NodeEvent(NodeEvent),
}

impl Message {
    /// The envelope type this message is sent with.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::NetworkEvent(_) => MessageType::NetworkEvent,
            Message::TableEvent(_) => MessageType::TableEvent,
            Message::PushPull(_) => MessageType::PushPull,
            Message::BulkSync(_) => MessageType::BulkSync,
            Message::Compound(_) => MessageType::Compound,
            Message::NodeEvent(_) => MessageType::NodeEvent,
        }
    }

    /// Encodes the message in its envelope.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::NetworkEvent(m) => m.encode_gossip(),
            Message::TableEvent(m) => m.encode_gossip(),
            Message::PushPull(m) => m.encode_gossip(),
            Message::BulkSync(m) => m.encode_gossip(),
            Message::Compound(m) => m.encode_gossip(),
            Message::NodeEvent(m) => m.encode_gossip(),
        }
    }

    /// Decodes one envelope and its inner message (a compound's parts stay
    /// encoded).
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        Message::from_gossip(&decode_gossip(buf)?)
    }

    /// Decodes the inner message of an already decoded envelope.
    pub fn from_gossip(env: &GossipMessage) -> Result<Message, DecodeError> {
        Message::from_type_and_data(env.r#type, &env.data)
    }

    /// Decodes the inner message `data` of an envelope of type `t`.
    fn from_type_and_data(t: i32, data: &[u8]) -> Result<Message, DecodeError> {
        Ok(match MessageType::try_from(t) {
            Ok(MessageType::NetworkEvent) => {
                Message::NetworkEvent(GossipPayload::decode_inner(data)?)
            }
            Ok(MessageType::TableEvent) => Message::TableEvent(GossipPayload::decode_inner(data)?),
            Ok(MessageType::PushPull) => Message::PushPull(GossipPayload::decode_inner(data)?),
            Ok(MessageType::BulkSync) => Message::BulkSync(GossipPayload::decode_inner(data)?),
            Ok(MessageType::Compound) => Message::Compound(GossipPayload::decode_inner(data)?),
            Ok(MessageType::NodeEvent) => Message::NodeEvent(GossipPayload::decode_inner(data)?),
            Ok(MessageType::Invalid) | Err(_) => return Err(DecodeError::UnknownMessageType(t)),
        })
    }
}

/// Opens `buf` the way Docker's `NotifyMsg` / `handleMessage` does: decodes
/// the envelope and, for a compound, each part in order, recursively (up to
/// [`MAX_NESTING`] levels). `f` gets every non-compound message, or the
/// error for an envelope or part that could not be decoded; a bad part does
/// not stop its siblings. A [`Message::BulkSync`]'s payload is not opened
/// (the bulk-sync handler does that with [`BulkSyncMessage::for_each_payload_message`]).
///
/// Parts are handled as they are read, nothing is collected first, and at
/// most [`MAX_GOSSIP_PARTS`] parts are opened in all (see
/// [`for_each_message_within`]).
pub fn for_each_message(buf: &[u8], f: &mut dyn FnMut(Result<Message, DecodeError>)) {
    for_each_message_within(buf, MAX_GOSSIP_PARTS, f);
}

/// [`for_each_message`] with a cap of `max_parts` compound parts in all,
/// nested ones included, every part counted whatever it holds. A compound
/// whose parts would pass the cap is checked (without allocating) before any
/// of its parts is handled, and dropped whole: `f` gets one
/// [`DecodeError::TooManyParts`] for it. A malformed compound is dropped
/// whole too (one [`DecodeError::Malformed`]), as Go drops it. So `f` is
/// called at most `max_parts + 1` times.
pub fn for_each_message_within(
    buf: &[u8],
    max_parts: usize,
    f: &mut dyn FnMut(Result<Message, DecodeError>),
) {
    let mut budget = max_parts;
    walk(buf, 0, max_parts, &mut budget, f);
}

fn walk(
    buf: &[u8],
    depth: usize,
    max_parts: usize,
    budget: &mut usize,
    f: &mut dyn FnMut(Result<Message, DecodeError>),
) {
    if buf.is_empty() {
        return f(Err(DecodeError::Empty));
    }
    if let Err(e) = check_len(buf) {
        return f(Err(e));
    }
    let Ok((t, data)) = crate::scan::envelope(buf) else {
        return f(Err(DecodeError::Malformed {
            what: "GossipMessage",
        }));
    };
    if t != MessageType::Compound as i32 {
        return f(Message::from_type_and_data(t, data));
    }
    if depth >= MAX_NESTING {
        return f(Err(DecodeError::TooDeep { max: MAX_NESTING }));
    }
    match crate::scan::count_parts(data, *budget) {
        Err(_) => f(Err(DecodeError::Malformed {
            what: "CompoundMessage",
        })),
        Ok(n) if n > *budget => {
            *budget = 0;
            f(Err(DecodeError::TooManyParts { max: max_parts }))
        }
        Ok(n) => {
            *budget -= n;
            crate::scan::for_each_part(data, &mut |part| {
                walk(part, depth + 1, max_parts, budget, f)
            });
        }
    }
}

/// [`for_each_message`] for a message that arrived in a datagram, paying
/// from what is left of that datagram's decode budget: every compound part,
/// nested ones included, takes one part of `budget` (the envelope itself
/// was paid for by the layer below). Call it from
/// [`swimnet_core::Delegate::notify_packet_msg`] so that a datagram's
/// memberlist parts and NetworkDB parts share one cap.
///
/// At most [`MAX_GOSSIP_PARTS`] parts are opened, as with
/// [`for_each_message`]. When the budget holds fewer, a compound whose parts
/// would pass what is left is dropped whole (`f` gets one
/// [`DecodeError::TooManyParts`]) and `budget` is marked exceeded
/// ([`DecodeBudget::exhaust`]), so the caller drops the rest of the
/// datagram. An already exceeded budget opens nothing and calls `f` never.
pub fn for_each_message_in_budget(
    buf: &[u8],
    budget: &mut DecodeBudget,
    f: &mut dyn FnMut(Result<Message, DecodeError>),
) {
    if budget.exceeded().is_some() {
        return;
    }
    let budget_binds = budget.parts_left() < MAX_GOSSIP_PARTS;
    let max_parts = budget.parts_left().min(MAX_GOSSIP_PARTS);
    let mut left = max_parts;
    let mut refused = false;
    walk(buf, 0, max_parts, &mut left, &mut |m| {
        refused |= matches!(m, Err(DecodeError::TooManyParts { .. }));
        f(m)
    });
    if refused && budget_binds {
        budget.exhaust(BudgetLimit::Parts);
        return;
    }
    for _ in left..max_parts {
        budget.take_part();
    }
}

/// [`for_each_message`] collected into a vector (at most
/// [`MAX_GOSSIP_PARTS`] + 1 results).
pub fn decode_all(buf: &[u8]) -> Vec<Result<Message, DecodeError>> {
    let mut out = Vec::new();
    for_each_message(buf, &mut |m| out.push(m));
    out
}

impl BulkSyncMessage {
    /// Builds a bulk sync whose payload is a compound of one TABLE_EVENT
    /// envelope per event, in order (what Docker's `bulkSyncNode` sends).
    pub fn with_events(
        l_time: u64,
        unsolicited: bool,
        node_name: impl Into<String>,
        networks: Vec<String>,
        events: &[TableEvent],
    ) -> BulkSyncMessage {
        let parts: Vec<Vec<u8>> = events.iter().map(GossipPayload::encode_gossip).collect();
        BulkSyncMessage {
            l_time,
            unsolicited,
            node_name: node_name.into(),
            networks,
            payload: encode_compound(&parts),
        }
    }

    /// Opens the payload as Docker's `handleBulkSync` does (through
    /// `handleMessage`, so compounds are opened and every message type is
    /// possible; Docker's own payloads hold only table events).
    /// At most [`MAX_BULK_SYNC_PARTS`] parts are opened; collecting them
    /// costs memory in proportion, so handlers use
    /// [`Self::for_each_payload_message`] instead.
    pub fn payload_messages(&self) -> Vec<Result<Message, DecodeError>> {
        let mut out = Vec::new();
        self.for_each_payload_message(&mut |m| out.push(m));
        out
    }

    /// Opens the payload like [`Self::payload_messages`], handing each
    /// message (or error) to `f` as it is read, with a cap of
    /// [`MAX_BULK_SYNC_PARTS`] parts ([`for_each_message_within`]).
    pub fn for_each_payload_message(&self, f: &mut dyn FnMut(Result<Message, DecodeError>)) {
        for_each_message_within(&self.payload, MAX_BULK_SYNC_PARTS, f);
    }
}

/// The push/pull user state NetworkDB's `LocalState` returns:
/// `GossipMessage{PUSH_PULL, state}`.
pub fn encode_push_pull_state(state: &NetworkPushPull) -> Vec<u8> {
    state.encode_gossip()
}

/// Reads a peer's push/pull user state (what `MergeRemoteState` receives).
/// Docker logs a non-PUSH_PULL envelope and goes on decoding; this decoder
/// refuses it with [`DecodeError::UnexpectedMessageType`].
pub fn decode_push_pull_state(buf: &[u8]) -> Result<NetworkPushPull, DecodeError> {
    NetworkPushPull::decode_gossip(buf)
}

/// Frames an envelope as memberlist sends it in a UDP packet
/// (`SendBestEffort`) or as a part of memberlist's compound (broadcasts from
/// `GetBroadcasts`): a user message, type byte 8 followed by the envelope.
/// [`swimnet_wire::codec::encode`] writes it; compression, CRC and
/// encryption are added by the packet layer.
pub fn packet_user_message(envelope: Vec<u8>) -> swimnet_wire::codec::Message {
    swimnet_wire::codec::Message::User(envelope)
}

/// Frames an envelope as memberlist sends it on a TCP stream
/// (`SendReliable`, used for bulk syncs): type byte 8, msgpack
/// `{UserMsgLen}`, the envelope.
pub fn stream_user_message(envelope: Vec<u8>) -> swimnet_wire::stream::StreamMessage {
    swimnet_wire::stream::StreamMessage::User(envelope)
}

/// The reverse of [`packet_user_message`]: the envelope inside a memberlist
/// packet message (`None` for memberlist's own message types).
pub fn envelope_of_packet_message(msg: &swimnet_wire::codec::Message) -> Option<&[u8]> {
    match msg {
        swimnet_wire::codec::Message::User(b) => Some(b),
        _ => None,
    }
}

/// The reverse of [`stream_user_message`]: the envelope inside a memberlist
/// stream message (`None` for other stream messages; push/pull user state is
/// read with [`decode_push_pull_state`]).
pub fn envelope_of_stream_message(msg: &swimnet_wire::stream::StreamMessage) -> Option<&[u8]> {
    match msg {
        swimnet_wire::stream::StreamMessage::User(b) => Some(b),
        _ => None,
    }
}
