//! Incremental decoding of one TCP stream message (the format is in
//! [`crate::stream`]).
//!
//! A [`StreamDecoder`] is fed the connection's bytes as they arrive and
//! never parses the same bytes over and over:
//!
//! - an encrypted frame is only looked at once its declared length is in
//!   (then it is decrypted once);
//! - a plain push/pull is parsed one node state at a time; complete states
//!   are kept and their bytes dropped from the buffer, so only the last,
//!   partial state is ever tried again;
//! - every msgpack unit (a compressed frame, a ping, a push/pull header, a
//!   node state, a user message header) is first measured by a forward
//!   scanner that keeps its position between pieces (`ValueScanner`) and
//!   parsed once, when its last byte is in; so a unit of `n` bytes fed one
//!   byte at a time costs O(n) in all.
//!
//! The buffer grows with the bytes that arrived, never to a declared size,
//! and [`StreamDecoder::memory`] tells how much the decoder holds (buffer
//! plus decoded states) so a caller can keep a budget over many streams.

use std::mem::size_of;

use crate::codec::Body;
use crate::compress::{read_compress, LZW_ALGO, MAX_DECOMPRESSED};
use crate::error::WireError;
use crate::label::{check_label, split_label};
use crate::lzw;
use crate::msg::*;
use crate::msgpack::Reader;
use crate::security::decrypt_payload;
use crate::stream::{StreamDecodeOptions, StreamMessage};

/// Bytes a stream may carry besides the message itself: a label header
/// (2 + 255) and an encryption frame header (5).
const FRAMING_SLACK: usize = 2 + 255 + 5;

/// Which bytes the decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The dialer's message: label header required when the label is set.
    Message,
    /// The responder's reply: no label header.
    Reply,
    /// A decrypted or decompressed plaintext: no label, no encryption;
    /// compression only when `allow_compress`.
    Inner { allow_compress: bool },
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the label header and the type byte.
    Start,
    /// An encrypted frame; the buffer starts with its 5-byte header and the
    /// frame ends at `frame_end`.
    Encrypted { frame_end: usize },
    /// A plain compressed message (type byte consumed).
    Compressed,
    /// A push/pull whose header has not arrived yet (type byte consumed).
    PushPullHeader,
    /// Node states being read; then the user state.
    States {
        header: PushPullHeader,
        states: Vec<PushNodeState>,
    },
    /// Ping, ack, error or user message header of this type (type byte
    /// consumed).
    Whole(MessageType),
    /// The raw bytes of a user message (its header consumed).
    UserBody { len: usize },
    /// The message was returned (or an error was): nothing more is read.
    Done,
}

/// Decodes one stream message from bytes fed in pieces.
///
/// Create one per connection with [`StreamDecoder::message`] (we accepted
/// the connection) or [`StreamDecoder::reply`] (we dialed), call
/// [`StreamDecoder::push`] with every piece that arrives, and
/// [`StreamDecoder::finish`] when the peer closed its side. Limits in the
/// [`StreamDecodeOptions`] are checked as soon as the relevant header is in,
/// before waiting for the body. Errors are final.
#[derive(Debug)]
pub struct StreamDecoder {
    side: Side,
    phase: Phase,
    /// Bytes received and not yet consumed.
    buf: Vec<u8>,
    /// Bytes consumed (dropped from the front of `buf`).
    consumed: usize,
    /// Where the pending msgpack unit (at the start of `buf`) was measured to.
    scanner: ValueScanner,
    /// Bytes examined by parse attempts, decryption and decompression.
    scanned: u64,
    /// Heap bytes held by decoded node states (names, addresses, ...).
    decoded_heap: usize,
}

impl StreamDecoder {
    /// A decoder for the dialer's message (we accepted the connection): a
    /// label header must be present exactly when `opts.label` is non-empty.
    pub fn message() -> Self {
        Self::new(Side::Message)
    }

    /// A decoder for the responder's reply (we dialed): no label header is
    /// expected; the label is only bound into the decryption AAD.
    pub fn reply() -> Self {
        Self::new(Side::Reply)
    }

    fn new(side: Side) -> Self {
        StreamDecoder {
            side,
            phase: Phase::Start,
            buf: Vec::new(),
            consumed: 0,
            scanner: ValueScanner::default(),
            scanned: 0,
            decoded_heap: 0,
        }
    }

    /// Feeds the next bytes of the connection. Returns `Ok(Some(message))`
    /// once the whole message is in (bytes after it are not looked at, see
    /// [`Self::consumed`]), `Ok(None)` while more are needed, and an error
    /// when the input breaks the format or a limit (the stream is then
    /// done: close it). After the message or an error, further calls return
    /// `Ok(None)` and keep nothing.
    pub fn push(
        &mut self,
        data: &[u8],
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<Option<StreamMessage>, WireError> {
        if matches!(self.phase, Phase::Done) {
            return Ok(None);
        }
        self.append(data);
        let r = self.advance(opts);
        self.settle(r, opts)
    }

    /// The peer closed its side: `Ok(())` if the message was already
    /// returned (or an error was), else [`WireError::Truncated`] (and the
    /// decoder lets go of what it held).
    pub fn finish(&mut self) -> Result<(), WireError> {
        if matches!(self.phase, Phase::Done) {
            return Ok(());
        }
        self.close();
        Err(WireError::Truncated {
            what: "stream message",
        })
    }

    /// Bytes of input the message used so far (all of it once complete).
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Bytes examined by parse attempts, decryption and decompression so
    /// far: stays within a small multiple of the input however it is cut.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Memory the decoder holds: the buffer's capacity plus the decoded node
    /// states. Goes to 0 once the message was returned or an error was.
    pub fn memory(&self) -> usize {
        let states = match &self.phase {
            Phase::States { states, .. } => states.capacity() * size_of::<PushNodeState>(),
            _ => 0,
        };
        self.buf.capacity() + self.decoded_heap + states
    }

    /// What [`Self::memory`] will be at most after pushing `more` bytes and
    /// before they are parsed: call it to reserve room in a budget before
    /// the buffer grows.
    pub fn memory_after(&self, more: usize) -> usize {
        self.memory() - self.buf.capacity() + self.grown_capacity(more)
    }

    /// True once the frame header is in: the type byte of a plain message,
    /// or the 5-byte header of an encrypted frame (with its length).
    pub fn header_seen(&self) -> bool {
        !matches!(self.phase, Phase::Start)
    }

    /// True while a message is still expected (no message, no error yet).
    pub fn is_pending(&self) -> bool {
        !matches!(self.phase, Phase::Done)
    }

    fn close(&mut self) {
        self.phase = Phase::Done;
        self.buf = Vec::new();
        self.decoded_heap = 0;
    }

    /// Closes the decoder on an error or a message; on `Ok(None)` checks
    /// that the incomplete message is not over the stream size limit.
    fn settle(
        &mut self,
        r: Result<Option<StreamMessage>, WireError>,
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<Option<StreamMessage>, WireError> {
        match r {
            Ok(None) => {
                let held = self.consumed + self.buf.len();
                let max = opts.max_bytes.saturating_add(FRAMING_SLACK);
                if !matches!(self.side, Side::Inner { .. }) && held > max {
                    self.close();
                    return Err(WireError::TooLarge {
                        what: "stream message",
                        len: held as u64,
                        max: max as u64,
                    });
                }
                Ok(None)
            }
            other => {
                self.close();
                other
            }
        }
    }

    /// Appends `data`, growing the buffer with what arrived (doubling, but
    /// never past the end of a declared encrypted frame).
    fn append(&mut self, data: &[u8]) {
        let want = self.grown_capacity(data.len());
        if want > self.buf.capacity() {
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.buf.extend_from_slice(data);
    }

    /// The buffer's capacity once `more` bytes are appended.
    fn grown_capacity(&self, more: usize) -> usize {
        let need = self.buf.len() + more;
        if need <= self.buf.capacity() {
            return self.buf.capacity();
        }
        let mut want = need.max(self.buf.capacity() * 2).max(256);
        if let Phase::Encrypted { frame_end } = self.phase {
            want = want.min(frame_end.max(need));
        }
        want
    }

    /// Drops the first `n` bytes (a finished unit); the next unit starts.
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.consumed += n;
        self.scanner = ValueScanner::default();
    }

    /// Measures the msgpack value at the start of `buf` from where the
    /// last piece left off: its end once it is all in.
    fn measure(&mut self, from: usize, max_len: usize) -> Result<Option<usize>, WireError> {
        let before = self.scanner.pos;
        let r = self.scanner.scan(&self.buf[from..], max_len);
        self.scanned += (self.scanner.pos - before) as u64;
        r
    }

    fn advance(
        &mut self,
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<Option<StreamMessage>, WireError> {
        loop {
            let step = match &mut self.phase {
                Phase::Start => self.start(opts)?,
                Phase::Encrypted { frame_end } => {
                    let end = *frame_end;
                    return self.encrypted(end, opts);
                }
                Phase::Compressed => return self.compressed(opts),
                Phase::PushPullHeader => self.push_pull_header(opts)?,
                Phase::States { .. } => return self.states(opts),
                Phase::Whole(t) => {
                    let t = *t;
                    match self.whole(t, opts)? {
                        Some(Some(msg)) => return Ok(Some(msg)),
                        Some(None) => true,
                        None => false,
                    }
                }
                Phase::UserBody { len } => {
                    let len = *len;
                    if self.buf.len() < len {
                        return Ok(None);
                    }
                    let data = self.buf[..len].to_vec();
                    self.consume(len);
                    return Ok(Some(StreamMessage::User(data)));
                }
                Phase::Done => return Ok(None),
            };
            if !step {
                return Ok(None);
            }
        }
    }

    /// Reads the label header and the type byte. Returns false while they
    /// are not all in.
    fn start(&mut self, opts: &StreamDecodeOptions<'_>) -> Result<bool, WireError> {
        if self.buf.is_empty() {
            return Ok(false);
        }
        let (pos, t) = {
            let (label, rest) = if matches!(self.side, Side::Inner { .. }) {
                (&[][..], &self.buf[..])
            } else {
                match split_label(&self.buf) {
                    Ok(x) => x,
                    Err(WireError::Incomplete) => return Ok(false),
                    Err(e) => return Err(e),
                }
            };
            if self.side == Side::Message {
                check_label(opts.label, label)?;
            } else if self.side == Side::Reply {
                check_label(b"", label)?;
            }
            let Some(&t) = rest.first() else {
                return Ok(false);
            };
            (self.buf.len() - rest.len(), t)
        };
        let inner = match self.side {
            Side::Inner { allow_compress } => Some(allow_compress),
            _ => None,
        };
        if t == MessageType::Encrypt as u8 && inner.is_none() {
            opts.keyring.ok_or(WireError::EncryptionNotConfigured)?;
            let Some(hdr) = self.buf.get(pos..pos + 5) else {
                return Ok(false);
            };
            let len = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]);
            if len as u64 > opts.max_bytes as u64 {
                return Err(WireError::TooLarge {
                    what: "encrypted stream message",
                    len: u64::from(len),
                    max: opts.max_bytes as u64,
                });
            }
            self.consume(pos);
            self.phase = Phase::Encrypted {
                frame_end: 5 + len as usize,
            };
            return Ok(true);
        }
        if inner.is_none() && opts.keyring.is_some() && opts.verify_incoming {
            return Err(WireError::NotEncrypted);
        }
        self.phase = match MessageType::from_u8(t) {
            Some(MessageType::Compress) if inner != Some(false) => Phase::Compressed,
            Some(MessageType::PushPull) => Phase::PushPullHeader,
            Some(
                t @ (MessageType::Ping
                | MessageType::AckResp
                | MessageType::ErrResp
                | MessageType::User),
            ) => Phase::Whole(t),
            Some(_) => {
                return Err(WireError::UnexpectedType {
                    found: t,
                    context: "stream message",
                })
            }
            None => return Err(WireError::UnknownType(t)),
        };
        self.consume(pos + 1);
        Ok(true)
    }

    /// Decrypts the frame once it is all in, then decodes its plaintext.
    fn encrypted(
        &mut self,
        frame_end: usize,
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<Option<StreamMessage>, WireError> {
        if self.buf.len() < frame_end {
            return Ok(None);
        }
        let keyring = opts.keyring.ok_or(WireError::EncryptionNotConfigured)?;
        let mut aad = Vec::with_capacity(5 + opts.label.len());
        aad.extend_from_slice(&self.buf[..5]);
        aad.extend_from_slice(opts.label);
        self.scanned += frame_end as u64;
        let plain = decrypt_payload(keyring, &self.buf[5..frame_end], &aad)?;
        self.consume(frame_end);
        let msg = self.decode_inner(&plain, true, opts)?;
        Ok(Some(msg))
    }

    /// Decodes a complete plaintext (decrypted or decompressed): running out
    /// of bytes means the message was cut short; bytes after it are ignored.
    fn decode_inner(
        &mut self,
        plain: &[u8],
        allow_compress: bool,
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<StreamMessage, WireError> {
        let mut inner = StreamDecoder::new(Side::Inner { allow_compress });
        let r = inner.push(plain, opts);
        self.scanned += inner.scanned;
        match r? {
            Some(msg) => Ok(msg),
            None => Err(WireError::Truncated {
                what: "stream message",
            }),
        }
    }

    /// Reads a plain compressed message once its msgpack value is all in.
    fn compressed(
        &mut self,
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<Option<StreamMessage>, WireError> {
        let Some(end) = self.measure(0, opts.max_bytes)? else {
            return Ok(None);
        };
        let mut r = Reader::new(&self.buf[..end]).with_max_len(opts.max_bytes);
        let (algo, compressed) = read_compress(&mut r).map_err(cut_short)?;
        let used = r.position();
        if algo != LZW_ALGO {
            return Err(WireError::UnsupportedCompression(algo));
        }
        self.scanned += used as u64;
        let plain = lzw::decompress(&compressed, MAX_DECOMPRESSED)?;
        if plain.is_empty() {
            return Err(WireError::EmptyDecompressed);
        }
        self.scanned += plain.len() as u64;
        let msg = self.decode_inner(&plain, false, opts)?;
        self.consume(used);
        Ok(Some(msg))
    }

    /// Reads the push/pull header and checks its counts against the limits.
    fn push_pull_header(&mut self, opts: &StreamDecodeOptions<'_>) -> Result<bool, WireError> {
        let Some(end) = self.measure(0, opts.max_bytes)? else {
            return Ok(false);
        };
        let mut r = Reader::new(&self.buf[..end]).with_max_len(opts.max_bytes);
        let header = PushPullHeader::decode_body(&mut r).map_err(cut_short)?;
        let used = r.position();
        if header.nodes > opts.max_nodes {
            return Err(WireError::TooLarge {
                what: "push/pull node count",
                len: header.nodes.into(),
                max: opts.max_nodes.into(),
            });
        }
        if header.user_state_len as u64 > opts.max_bytes as u64 {
            return Err(WireError::TooLarge {
                what: "push/pull user state",
                len: header.user_state_len.into(),
                max: opts.max_bytes as u64,
            });
        }
        self.scanned += used as u64;
        self.consume(used);
        self.phase = Phase::States {
            header,
            states: Vec::new(),
        };
        Ok(true)
    }

    /// Reads as many node states as are complete, then the user state.
    fn states(
        &mut self,
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<Option<StreamMessage>, WireError> {
        let mut pos = 0;
        let result = self.read_states(&mut pos, opts);
        // Drop the states read (once per piece, not per state).
        let scanner = std::mem::take(&mut self.scanner);
        self.consume(pos);
        self.scanner = scanner;
        if !result? {
            return Ok(None);
        }
        let Phase::States { header, .. } = &self.phase else {
            unreachable!("called in the States phase");
        };
        let user_len = header.user_state_len as usize;
        if self.buf.len() < user_len {
            // Raw bytes: nothing to parse, just wait for them all.
            return Ok(None);
        }
        if self.decoded_heap + user_len > opts.max_decoded {
            return Err(WireError::TooLarge {
                what: "decoded push/pull",
                len: (self.decoded_heap + user_len) as u64,
                max: opts.max_decoded as u64,
            });
        }
        let user_state = self.buf[..user_len].to_vec();
        self.consume(user_len);
        let Phase::States { header, states } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            unreachable!("still in the States phase");
        };
        Ok(Some(StreamMessage::PushPull {
            header,
            states,
            user_state,
        }))
    }

    /// Parses the complete node states from `*pos` on, advancing it past
    /// each. Returns true once all announced states are in.
    fn read_states(
        &mut self,
        pos: &mut usize,
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<bool, WireError> {
        loop {
            let Phase::States { header, states } = &self.phase else {
                unreachable!("called in the States phase");
            };
            if states.len() == header.nodes as usize {
                return Ok(true);
            }
            let Some(end) = self.measure(*pos, opts.max_bytes)? else {
                return Ok(false);
            };
            let mut r = Reader::new(&self.buf[*pos..*pos + end]).with_max_len(opts.max_bytes);
            let state = PushNodeState::decode_body(&mut r).map_err(cut_short)?;
            *pos += r.position();
            self.scanned += r.position() as u64;
            self.scanner = ValueScanner::default();
            self.decoded_heap += state.name.capacity()
                + state.addr.capacity()
                + state.meta.capacity()
                + state.vsn.capacity();
            let Phase::States { header, states } = &mut self.phase else {
                unreachable!("called in the States phase");
            };
            if states.len() == states.capacity() {
                // Grow with what arrived: never past the announced count.
                let more = states
                    .capacity()
                    .max(16)
                    .min(header.nodes as usize - states.len());
                states.reserve_exact(more);
            }
            states.push(state);
            let decoded = self.decoded_heap + states.capacity() * size_of::<PushNodeState>();
            if decoded > opts.max_decoded {
                return Err(WireError::TooLarge {
                    what: "decoded push/pull",
                    len: decoded as u64,
                    max: opts.max_decoded as u64,
                });
            }
        }
    }

    /// Reads a ping, ack or error message once it is all in, or a user
    /// message header (then waits for its raw bytes). Returns `None` while
    /// more bytes are needed, `Some(message)` once one is decoded,
    /// `Some(None)` when a user message header was read.
    fn whole(
        &mut self,
        t: MessageType,
        opts: &StreamDecodeOptions<'_>,
    ) -> Result<Option<Option<StreamMessage>>, WireError> {
        let Some(end) = self.measure(0, opts.max_bytes)? else {
            return Ok(None);
        };
        let mut r = Reader::new(&self.buf[..end]).with_max_len(opts.max_bytes);
        let next = match t {
            MessageType::Ping => Phase::Done,
            MessageType::AckResp => Phase::Done,
            MessageType::ErrResp => Phase::Done,
            _ => {
                let h = UserMsgHeader::decode_body(&mut r).map_err(cut_short)?;
                if h.user_msg_len as u64 > opts.max_bytes as u64 {
                    return Err(WireError::TooLarge {
                        what: "stream user message",
                        len: h.user_msg_len.into(),
                        max: opts.max_bytes as u64,
                    });
                }
                Phase::UserBody {
                    len: h.user_msg_len as usize,
                }
            }
        };
        let msg = match t {
            MessageType::Ping => Some(StreamMessage::Ping(
                Ping::decode_body(&mut r).map_err(cut_short)?,
            )),
            MessageType::AckResp => Some(StreamMessage::AckResp(
                AckResp::decode_body(&mut r).map_err(cut_short)?,
            )),
            MessageType::ErrResp => Some(StreamMessage::ErrResp(
                ErrResp::decode_body(&mut r).map_err(cut_short)?,
            )),
            _ => None,
        };
        let used = r.position();
        self.scanned += used as u64;
        self.consume(used);
        self.phase = next;
        Ok(Some(msg))
    }
}

/// A unit measured complete that its parser still finds short is cut.
fn cut_short(e: WireError) -> WireError {
    match e {
        WireError::Incomplete => WireError::Truncated {
            what: "stream message",
        },
        e => e,
    }
}

/// Finds where one msgpack value ends, a piece at a time: it keeps its
/// position and the number of values still to skip, so every byte of the
/// value's structure is looked at once however the value is cut. Raw
/// payloads (strings, binaries, extensions) are skipped by their length,
/// which is checked against the caller's limit as soon as it is in.
#[derive(Debug, Default)]
struct ValueScanner {
    /// Where the next value starts, from the start of the unit.
    pos: usize,
    /// Values still to skip (0 before the first call).
    pending: u64,
    /// The first call set `pending` to 1.
    started: bool,
}

impl ValueScanner {
    /// Advances over `buf` (the unit's bytes so far). Returns the value's
    /// end once it is all in, `None` while more bytes are needed.
    fn scan(&mut self, buf: &[u8], max_len: usize) -> Result<Option<usize>, WireError> {
        if !self.started {
            self.started = true;
            self.pending = 1;
        }
        while self.pending > 0 {
            let Some(&m) = buf.get(self.pos) else {
                return Ok(None);
            };
            let (head, len_bytes, children_per) = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
                0x80..=0x8f => {
                    self.step(1, 0, 2 * u64::from(m & 0x0f));
                    continue;
                }
                0x90..=0x9f => {
                    self.step(1, 0, u64::from(m & 0x0f));
                    continue;
                }
                0xa0..=0xbf => (1, 0, 0),
                0xc4 | 0xd9 => (2, 1, 0),
                0xc5 | 0xda => (3, 2, 0),
                0xc6 | 0xdb => (5, 4, 0),
                0xc7 => (3, 1, 0),
                0xc8 => (4, 2, 0),
                0xc9 => (6, 4, 0),
                0xca | 0xce | 0xd2 => (5, 0, 0),
                0xcb | 0xcf | 0xd3 => (9, 0, 0),
                0xcc | 0xd0 => (2, 0, 0),
                0xcd | 0xd1 => (3, 0, 0),
                0xd4 => (3, 0, 0),
                0xd5 => (4, 0, 0),
                0xd6 => (6, 0, 0),
                0xd7 => (10, 0, 0),
                0xd8 => (18, 0, 0),
                0xdc => (3, 2, 1),
                0xdd => (5, 4, 1),
                0xde => (3, 2, 2),
                0xdf => (5, 4, 2),
                0xc1 => {
                    return Err(WireError::Msgpack {
                        expected: "any value",
                        found: m,
                    })
                }
            };
            let Some(hdr) = buf.get(self.pos..self.pos + head) else {
                return Ok(None);
            };
            let mut n = 0u64;
            for &b in &hdr[1..1 + len_bytes] {
                n = (n << 8) | u64::from(b);
            }
            if (0xa0..=0xbf).contains(&m) {
                n = u64::from(m & 0x1f);
            }
            if children_per > 0 {
                self.step(head, 0, children_per * n);
                continue;
            }
            if n > max_len as u64 {
                return Err(WireError::TooLarge {
                    what: "msgpack string or binary",
                    len: n,
                    max: max_len as u64,
                });
            }
            if buf.len() < self.pos + head + n as usize {
                return Ok(None);
            }
            self.step(head, n as usize, 0);
        }
        Ok(Some(self.pos))
    }

    /// Moves past one value's header and `body` bytes; it has `children`
    /// values inside (map entries count two).
    fn step(&mut self, head: usize, body: usize, children: u64) {
        self.pos += head + body;
        self.pending = (self.pending - 1).saturating_add(children);
    }
}
