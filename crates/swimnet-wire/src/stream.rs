//! TCP stream messages.
//!
//! Each direction of a memberlist TCP connection carries one message:
//!
//! ```text
//! [label header: only from the dialer, once, memberlist >= 0.3.0]
//! ( [0x0A][L: u32-be][vsn][nonce][ciphertext+tag]     when encrypting (L = bytes after the 5-byte header)
//! | plaintext message )
//! plaintext = [0x09] msgpack(compress{0, lzw(message)})  when compressing
//!           | message
//! message   = [0x06] msgpack(pushPullHeader) msgpack(pushNodeState)*N  user state (U raw bytes)
//!           | [0x00] msgpack(ping) | [0x02] msgpack(ackResp) | [0x0D] msgpack(errResp)
//!           | [0x08] msgpack(userMsgHeader) user bytes
//! ```
//!
//! Compression comes first, then encryption; the encryption AAD is the five
//! frame-header bytes followed by the label. Plain messages have **no
//! length prefix**: the decoder parses one msgpack value at a time and never
//! looks past the end of the message, so the bytes after it stay for the
//! caller.
//!
//! Labels: the dialer sends the label header, the responder does not, and
//! both bind the label into the AAD. [`encode_stream_message`] /
//! [`decode_stream_message`] handle the dialer's message (header written /
//! required when the label is non-empty); [`encode_stream_reply`] /
//! [`decode_stream_reply`] handle the responder's reply (no header, label
//! only in the AAD). With an empty label (the only setting memberlist 0.2.2
//! understands) both pairs are identical.

use crate::codec::Body;
use crate::compress::compress_payload;
use crate::error::WireError;
use crate::label::encode_label_header;
use crate::msg::*;
use crate::security::{
    begin_encrypt, encrypted_length, finish_encrypt, EncryptionVersion, Key, Keyring,
};
pub use crate::stream_decoder::StreamDecoder;

/// Most node states a push/pull may announce (memberlist HEAD's
/// `maxPushStateNodes`).
pub const MAX_PUSH_STATE_NODES: u32 = 1_048_576;
/// Largest encrypted stream frame, push/pull user state and stream user
/// message (memberlist's `maxPushStateBytes` / `maxUserMsgBytes`, 20 MiB).
pub const MAX_PUSH_STATE_BYTES: usize = 20 << 20;
/// Most memory one decoded stream message may take (node states and user
/// state), 64 MiB: room for every state a 20 MiB push/pull can carry.
pub const MAX_STREAM_DECODED: usize = 64 << 20;

/// A message that travels on a TCP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// Push/pull state exchange (type 6).
    PushPull {
        /// The header. When encoding, `nodes` and `user_state_len` are taken
        /// from `states` and `user_state` (the values here are ignored).
        header: PushPullHeader,
        /// Every node the sender knows.
        states: Vec<PushNodeState>,
        /// The delegate's raw state (empty: none).
        user_state: Vec<u8>,
    },
    /// TCP fallback ping (type 0).
    Ping(Ping),
    /// Ack of a TCP fallback ping (type 2).
    AckResp(AckResp),
    /// Reliable user message (type 8): the raw user bytes.
    User(Vec<u8>),
    /// The peer's error (type 13).
    ErrResp(ErrResp),
}

/// How [`encode_stream_message`] / [`encode_stream_reply`] wrap a message.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamEncodeOptions<'a> {
    /// Compress (memberlist always compresses streams when compression is on).
    pub compress: bool,
    /// Encrypt with this key, nonce (fresh and random) and version.
    pub encrypt: Option<(&'a Key, [u8; 12], EncryptionVersion)>,
    /// The connection's label (empty: none).
    pub label: &'a [u8],
}

/// Appends the plaintext form of `msg` (type byte, msgpack values, raw
/// bytes) to `out`, without compression or encryption.
pub fn encode_stream_body(msg: &StreamMessage, out: &mut Vec<u8>) {
    match msg {
        StreamMessage::PushPull {
            header,
            states,
            user_state,
        } => {
            out.push(MessageType::PushPull as u8);
            let h = PushPullHeader {
                nodes: u32::try_from(states.len()).expect("fewer than 2^32 node states"),
                user_state_len: u32::try_from(user_state.len()).expect("user state under 4 GiB"),
                join: header.join,
            };
            h.encode_body(out);
            for s in states {
                s.encode_body(out);
            }
            out.extend_from_slice(user_state);
        }
        StreamMessage::Ping(p) => {
            out.push(MessageType::Ping as u8);
            p.encode_body(out);
        }
        StreamMessage::AckResp(a) => {
            out.push(MessageType::AckResp as u8);
            a.encode_body(out);
        }
        StreamMessage::ErrResp(e) => {
            out.push(MessageType::ErrResp as u8);
            e.encode_body(out);
        }
        StreamMessage::User(data) => {
            out.push(MessageType::User as u8);
            let h = UserMsgHeader {
                user_msg_len: u32::try_from(data.len()).expect("user message under 4 GiB"),
            };
            h.encode_body(out);
            out.extend_from_slice(data);
        }
    }
}

/// Appends the dialer's stream message to `out`: the label header (if the
/// label is non-empty), then the message, compressed first and then
/// encrypted as `opts` says (AAD = the 5 frame-header bytes + label).
///
/// # Panics
/// If the label is longer than [`crate::label::LABEL_MAX`] (a configuration
/// error).
pub fn encode_stream_message(
    msg: &StreamMessage,
    opts: &StreamEncodeOptions<'_>,
    out: &mut Vec<u8>,
) {
    encode_label_header(opts.label, out);
    encode_frame(msg, opts, out);
}

/// Appends the responder's reply to `out`: like [`encode_stream_message`]
/// but without a label header (the label is still bound into the AAD).
pub fn encode_stream_reply(msg: &StreamMessage, opts: &StreamEncodeOptions<'_>, out: &mut Vec<u8>) {
    encode_frame(msg, opts, out);
}

fn encode_frame(msg: &StreamMessage, opts: &StreamEncodeOptions<'_>, out: &mut Vec<u8>) {
    let plain = |out: &mut Vec<u8>| {
        if opts.compress {
            let mut body = Vec::new();
            encode_stream_body(msg, &mut body);
            compress_payload(&body, out);
        } else {
            encode_stream_body(msg, out);
        }
    };
    let Some((key, nonce, vsn)) = opts.encrypt else {
        return plain(out);
    };
    let frame_at = out.len();
    out.extend_from_slice(&[MessageType::Encrypt as u8, 0, 0, 0, 0]);
    let start = begin_encrypt(vsn, &nonce, out);
    plain(out);
    let len = encrypted_length(vsn, out.len() - start);
    let len = u32::try_from(len).expect("stream message under 4 GiB");
    out[frame_at + 1..frame_at + 5].copy_from_slice(&len.to_be_bytes());
    let mut aad = Vec::with_capacity(5 + opts.label.len());
    aad.extend_from_slice(&out[frame_at..frame_at + 5]);
    aad.extend_from_slice(opts.label);
    finish_encrypt(vsn, key, &nonce, &aad, out, start);
}

/// How [`decode_stream_message`] / [`decode_stream_reply`] read a stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamDecodeOptions<'a> {
    /// Our keys; `None` when encryption is off (an encrypted stream is then
    /// [`WireError::EncryptionNotConfigured`]).
    pub keyring: Option<&'a Keyring>,
    /// With a keyring: refuse plaintext streams ([`WireError::NotEncrypted`]).
    pub verify_incoming: bool,
    /// The connection's label (empty: none).
    pub label: &'a [u8],
    /// Most node states a push/pull may announce
    /// (default [`MAX_PUSH_STATE_NODES`]).
    pub max_nodes: u32,
    /// Largest encrypted frame, plain message, user state, user message, or
    /// single msgpack string (default [`MAX_PUSH_STATE_BYTES`]).
    pub max_bytes: usize,
    /// Most memory the decoded message may take: node states (struct and
    /// heap bytes) plus user state (default [`MAX_STREAM_DECODED`]).
    pub max_decoded: usize,
}

impl Default for StreamDecodeOptions<'_> {
    fn default() -> Self {
        StreamDecodeOptions {
            keyring: None,
            verify_incoming: false,
            label: b"",
            max_nodes: MAX_PUSH_STATE_NODES,
            max_bytes: MAX_PUSH_STATE_BYTES,
            max_decoded: MAX_STREAM_DECODED,
        }
    }
}

/// Decodes the dialer's message from the start of a connection's bytes
/// (the responder's side). A label header must be present exactly when
/// `opts.label` is non-empty, and carry that label.
///
/// Returns `Ok(None)` when `buf` does not hold the whole message yet (each
/// call parses from the start: a connection's bytes arriving in pieces are
/// better fed to a [`StreamDecoder`]). Returns
/// `Ok(Some((message, consumed)))` once complete, where `consumed` is the
/// number of bytes of `buf` the message used; later bytes are not looked at.
///
/// Limits are checked as soon as the relevant header is in, before waiting
/// for the body: the encrypted frame length, node count, user state and user
/// message lengths, single strings (all against `opts`), and the
/// decompressed size ([`crate::compress::MAX_DECOMPRESSED`]) and the decoded
/// size (`opts.max_decoded`). Errors are final: close the
/// connection (Go answers with an `errResp` when the error is not EOF).
pub fn decode_stream_message(
    buf: &[u8],
    opts: &StreamDecodeOptions<'_>,
) -> Result<Option<(StreamMessage, usize)>, WireError> {
    decode(buf, opts, true)
}

/// Decodes the responder's reply (the dialer's side): like
/// [`decode_stream_message`], but no label header is expected (one is an
/// error); `opts.label` is only bound into the decryption AAD.
pub fn decode_stream_reply(
    buf: &[u8],
    opts: &StreamDecodeOptions<'_>,
) -> Result<Option<(StreamMessage, usize)>, WireError> {
    decode(buf, opts, false)
}

fn decode(
    buf: &[u8],
    opts: &StreamDecodeOptions<'_>,
    header_expected: bool,
) -> Result<Option<(StreamMessage, usize)>, WireError> {
    let mut decoder = if header_expected {
        StreamDecoder::message()
    } else {
        StreamDecoder::reply()
    };
    Ok(decoder.push(buf, opts)?.map(|m| (m, decoder.consumed())))
}
