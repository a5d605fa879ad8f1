//! The memberlist messages, one Rust struct per Go struct.
//!
//! Field names follow the Go field names (snake-cased); the msgpack keys the
//! codec writes are the Go names, sorted by bytes, as go-msgpack does. Fields
//! that Go tags `omitempty` use their zero value (empty `Vec`, empty `String`,
//! `0`) for "absent", exactly like Go.

/// One-byte message type codes (memberlist `messageType`). Append-only in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// UDP ping, or a TCP fallback ping.
    Ping = 0,
    /// Indirect ping request.
    IndirectPing = 1,
    /// Acknowledgement of a ping.
    AckResp = 2,
    /// Suspicion gossip.
    Suspect = 3,
    /// Alive gossip.
    Alive = 4,
    /// Dead (or left, when `from == node`) gossip.
    Dead = 5,
    /// Push/pull state exchange (streams only).
    PushPull = 6,
    /// Several messages in one packet.
    Compound = 7,
    /// Application (delegate) message.
    User = 8,
    /// LZW-compressed message.
    Compress = 9,
    /// Encrypted stream frame prefix (streams only).
    Encrypt = 10,
    /// Negative acknowledgement from an indirect-probe relay.
    NackResp = 11,
    /// CRC32-prefixed packet.
    HasCrc = 12,
    /// Error response on a stream.
    ErrResp = 13,
    /// Label header (memberlist >= 0.3.0).
    HasLabel = 244,
}

impl MessageType {
    /// Maps a type byte to a known message type, or `None` for an unknown code.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Ping,
            1 => Self::IndirectPing,
            2 => Self::AckResp,
            3 => Self::Suspect,
            4 => Self::Alive,
            5 => Self::Dead,
            6 => Self::PushPull,
            7 => Self::Compound,
            8 => Self::User,
            9 => Self::Compress,
            10 => Self::Encrypt,
            11 => Self::NackResp,
            12 => Self::HasCrc,
            13 => Self::ErrResp,
            244 => Self::HasLabel,
            _ => return None,
        })
    }

    /// A short lowercase name for the type (`ping`, `ack`, `push_pull`,
    /// ...), as metrics and the agent's API label it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::IndirectPing => "indirect_ping",
            Self::AckResp => "ack",
            Self::Suspect => "suspect",
            Self::Alive => "alive",
            Self::Dead => "dead",
            Self::PushPull => "push_pull",
            Self::Compound => "compound",
            Self::User => "user",
            Self::Compress => "compressed",
            Self::Encrypt => "encrypted",
            Self::NackResp => "nack",
            Self::HasCrc => "crc",
            Self::ErrResp => "err",
            Self::HasLabel => "label",
        }
    }
}

/// `ping`: a direct probe (UDP) or a TCP fallback probe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ping {
    /// Sequence number, echoed in the ack.
    pub seq_no: u32,
    /// Name of the node being pinged; a receiver with another name drops it. Empty: any.
    pub node: String,
    /// Where the ack should go (4 or 16 IP bytes); empty when absent (omitempty).
    pub source_addr: Vec<u8>,
    /// Port the ack should go to; 0 when absent (omitempty).
    pub source_port: u16,
    /// Sender's node name; empty when absent (omitempty).
    pub source_node: String,
}

/// `indirectPingReq`: ask a peer to probe `node` on our behalf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndirectPing {
    /// The prober's sequence number; relayed acks and nacks carry it.
    pub seq_no: u32,
    /// Target IP bytes.
    pub target: Vec<u8>,
    /// Target port (0: the relay uses its own bind port).
    pub port: u16,
    /// Target node name.
    pub node: String,
    /// Ask for a nack if the target does not answer.
    pub nack: bool,
    /// The prober's address (omitempty).
    pub source_addr: Vec<u8>,
    /// The prober's port (omitempty).
    pub source_port: u16,
    /// The prober's name (omitempty).
    pub source_node: String,
}

/// `ackResp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckResp {
    /// Sequence number of the ping being acknowledged.
    pub seq_no: u32,
    /// Ping delegate payload (Serf: Vivaldi coordinate); empty is sent as nil.
    pub payload: Vec<u8>,
}

/// `nackResp`: the relay's target did not answer in time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NackResp {
    /// The prober's sequence number.
    pub seq_no: u32,
}

/// `errResp`: a stream peer's error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrResp {
    /// The error text.
    pub error: String,
}

/// `suspect`: `from` suspects `node` at `incarnation`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suspect {
    /// Incarnation of the suspected node as the accuser knows it.
    pub incarnation: u32,
    /// The suspected node.
    pub node: String,
    /// The accuser.
    pub from: String,
}

/// `dead`: `from` declares `node` dead; `from == node` is a graceful leave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dead {
    /// Incarnation of the dead node as the accuser knows it.
    pub incarnation: u32,
    /// The dead node.
    pub node: String,
    /// The accuser (the node itself for a leave).
    pub from: String,
}

/// `alive`: a node announces itself (or is re-announced) at an incarnation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alive {
    /// Incarnation number.
    pub incarnation: u32,
    /// Node name.
    pub node: String,
    /// IP bytes (4 or 16), stored exactly as received.
    pub addr: Vec<u8>,
    /// Gossip port (UDP and TCP).
    pub port: u16,
    /// Node metadata (at most 512 bytes when we send); empty is sent as nil.
    pub meta: Vec<u8>,
    /// `[PMin, PMax, PCur, DMin, DMax, DCur]`; we always send 6 bytes, peers may send other lengths.
    pub vsn: Vec<u8>,
}

/// `pushPullHeader`, the first value of a push/pull stream message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPullHeader {
    /// Number of [`PushNodeState`] values that follow.
    pub nodes: u32,
    /// Length of the raw user state after the node states.
    pub user_state_len: u32,
    /// Part of a join.
    pub join: bool,
}

/// `pushNodeState`: one member in a push/pull.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushNodeState {
    /// Node name.
    pub name: String,
    /// IP bytes.
    pub addr: Vec<u8>,
    /// Port.
    pub port: u16,
    /// Metadata.
    pub meta: Vec<u8>,
    /// Incarnation.
    pub incarnation: u32,
    /// State code: 0 alive, 1 suspect, 2 dead, 3 left; other values are passed through.
    pub state: i64,
    /// Version bytes, as in [`Alive::vsn`].
    pub vsn: Vec<u8>,
}

/// `userMsgHeader`, before a user message on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserMsgHeader {
    /// Length of the raw user bytes that follow.
    pub user_msg_len: u32,
}

/// `compress`: a compressed message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compress {
    /// Algorithm; only 0 (LZW) is defined.
    pub algo: u8,
    /// Compressed bytes.
    pub buf: Vec<u8>,
}
