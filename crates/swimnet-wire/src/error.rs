//! The one error type of the wire layer.
//!
//! Two families live in [`WireError`]:
//!
//! * **peer input** that cannot be accepted (bad msgpack, a failed checksum, a
//!   packet that no key decrypts, a length over a limit, ...). The caller
//!   drops the packet or closes the stream and counts it; nothing was changed.
//! * **local misuse** of an API (a key of the wrong length, removing the
//!   primary key, ...). The message says what to do instead.
//!
//! [`WireError::Incomplete`] is special: for stream decoding it means "not
//! enough bytes yet" and is turned into `Ok(None)` by
//! [`crate::stream::decode_stream_message`]; for complete inputs (packets,
//! decrypted or decompressed buffers) it means the input was cut short.

use thiserror::Error;

/// Everything that can go wrong while encoding or decoding memberlist bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    // ----- framing and msgpack (peer input) -----
    /// The input ended before the value being read was complete.
    #[error("input ended before the value was complete")]
    Incomplete,
    /// A message type byte that memberlist does not define.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A defined message type in a place where it is not allowed (e.g. a
    /// push/pull in a UDP packet, or a compound handed to [`crate::codec::decode`]).
    #[error("message type {found} is not allowed here ({context})")]
    UnexpectedType {
        /// The type byte found.
        found: u8,
        /// Where it was found.
        context: &'static str,
    },
    /// A msgpack value of the wrong kind (or an invalid marker byte).
    #[error("msgpack: expected {expected}, found marker 0x{found:02x}")]
    Msgpack {
        /// What the decoder wanted.
        expected: &'static str,
        /// The marker byte it found.
        found: u8,
    },
    /// An integer that does not fit the Go field type (overflow, or negative
    /// for an unsigned field).
    #[error("integer {value} out of range for {target}")]
    IntOutOfRange {
        /// The value on the wire.
        value: i128,
        /// The Go type it had to fit.
        target: &'static str,
    },
    /// A string field that is not valid UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The Go field name.
        field: &'static str,
    },
    /// msgpack containers nested deeper than the decoder allows.
    #[error("msgpack values nested too deeply")]
    NestingTooDeep,
    /// An empty message: there is not even a type byte.
    #[error("empty message (no type byte)")]
    Empty,

    // ----- compound -----
    /// A compound message without its part-count byte.
    #[error("compound message is missing its length byte")]
    MissingLength,
    /// A fixed-size part of a frame was cut short.
    #[error("{what} is truncated")]
    Truncated {
        /// What was cut short.
        what: &'static str,
    },
    /// Parts of a compound message ran past its end; the parts before them
    /// were still delivered.
    #[error("{count} compound part(s) truncated")]
    CompoundTruncated {
        /// How many parts were dropped.
        count: usize,
    },

    // ----- CRC, compression -----
    /// CRC-32 mismatch on a `hasCrc` packet.
    #[error("CRC mismatch: packet says {expected:#010x}, content has {actual:#010x}")]
    Crc {
        /// The checksum carried by the packet.
        expected: u32,
        /// The checksum of the bytes received.
        actual: u32,
    },
    /// The LZW stream is malformed.
    #[error("LZW: {0}")]
    Lzw(LzwError),
    /// A `compress` message with an algorithm other than LZW (0).
    #[error("unsupported compression algorithm {0}")]
    UnsupportedCompression(u8),
    /// A decompressed stream message was empty.
    #[error("decompressed payload is empty")]
    EmptyDecompressed,

    // ----- limits -----
    /// A length from the peer is over a limit.
    #[error("{what} is {len} bytes/items, over the limit of {max}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its length (for decompression: the size reached when it was stopped).
        len: u64,
        /// The limit.
        max: u64,
    },

    // ----- encryption (peer input) -----
    /// No installed key could decrypt (or authenticate) the payload.
    #[error("no installed key could decrypt the payload")]
    Decrypt,
    /// The encryption version byte is not 0 or 1.
    #[error("unsupported encryption version {0}")]
    UnsupportedEncryptionVersion(u8),
    /// The v0 PKCS#7 padding of a decrypted payload is invalid.
    #[error("invalid PKCS#7 padding in a v0 encrypted payload")]
    BadPadding,
    /// The peer's stream is encrypted but we have no keyring.
    #[error("remote stream is encrypted but encryption is not configured")]
    EncryptionNotConfigured,
    /// We require encryption (verify_incoming) but the peer's data is plaintext.
    #[error("encryption is configured but the remote data is not encrypted")]
    NotEncrypted,

    // ----- labels -----
    /// The label on the packet/stream is not the one we expect (an absent
    /// label counts as the empty label).
    #[error("label mismatch: expected {expected:?}, found {found:?}")]
    BadLabel {
        /// Our label.
        expected: Vec<u8>,
        /// The peer's label.
        found: Vec<u8>,
    },
    /// A label header whose size byte is 0.
    #[error("label header with an empty label")]
    EmptyLabel,

    // ----- keys and keyrings (local misuse) -----
    /// An AES key must be 16, 24 or 32 bytes long.
    #[error("key is {0} bytes; AES keys must be 16, 24 or 32 bytes")]
    BadKeyLength(usize),
    /// A keyring needs at least one key.
    #[error("a keyring needs at least one key")]
    EmptyKeyring,
    /// The same key was given twice when building a keyring.
    #[error("the same key was given twice")]
    DuplicateKey,
    /// The key is not in the keyring; install it first.
    #[error("the key is not installed in the keyring")]
    KeyNotInstalled,
    /// The primary key cannot be removed; make another key primary first.
    #[error("cannot remove the primary key; call use_key with another key first")]
    RemovePrimaryKey,
}

/// Details of a malformed LZW stream.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LzwError {
    /// The input ended before the end-of-information code.
    #[error("unexpected end of input (no EOI code)")]
    UnexpectedEof,
    /// A code that is not yet defined.
    #[error("invalid code {0}")]
    InvalidCode(u16),
}

impl From<LzwError> for WireError {
    fn from(e: LzwError) -> Self {
        WireError::Lzw(e)
    }
}
