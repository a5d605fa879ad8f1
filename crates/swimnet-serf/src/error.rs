//! Errors of the Serf layer.
//!
//! Two kinds, kept apart as in the rest of swimnet:
//!
//! * [`SerfError`]: **peer input** that cannot be decoded (bad msgpack, an
//!   unknown type byte, an address of the wrong length, ...). Nothing was
//!   changed; the delegate drops the message and counts it in
//!   [`crate::SerfCounters::malformed`].
//! * [`TagsError`]: **local misuse**: tags that do not fit memberlist's
//!   512-byte metadata limit. The message says what to do instead.

use swimnet_wire::WireError;
use thiserror::Error;

/// A Serf message (or a part of one) that could not be decoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SerfError {
    /// An empty buffer where a Serf type byte was expected.
    #[error("empty serf message (no type byte)")]
    Empty,
    /// A first byte that is not one of Serf's message types (0..=9).
    #[error("unknown serf message type {0}")]
    UnknownType(u8),
    /// A known type in a place that wants another one (e.g. push/pull state
    /// that does not start with type 2).
    #[error("expected serf message type {expected}, found {found}")]
    WrongType {
        /// The type byte wanted.
        expected: u8,
        /// The type byte found.
        found: u8,
    },
    /// The msgpack body is malformed.
    #[error("serf message body: {0}")]
    Wire(#[from] WireError),
    /// An IP address field that is neither 4 nor 16 bytes long.
    #[error("IP address of {0} bytes (want 4 or 16)")]
    BadAddress(usize),
    /// A UDP port outside 0..=65535 (in a relay header).
    #[error("port {0} out of range")]
    BadPort(i64),
    /// A query filter without its type byte.
    #[error("empty query filter")]
    EmptyFilter,
    /// A query filter type other than node (0) or tag (1).
    #[error("unknown query filter type {0}")]
    UnknownFilterType(u8),
    /// A relay message with nothing after its header.
    #[error("relay message has no inner message")]
    EmptyRelay,
}

/// Tags that cannot be used as our node's metadata.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TagsError {
    /// The encoded tags are longer than memberlist allows for metadata.
    /// Nothing was changed.
    #[error(
        "encoded tags are {len} bytes, over memberlist's metadata limit of {max} bytes; \
         use fewer or shorter tags"
    )]
    TooLarge {
        /// Encoded length (magic byte included).
        len: usize,
        /// The limit ([`crate::tags::META_MAX_SIZE`]).
        max: usize,
    },
    /// Metadata that starts with the tag magic byte but does not hold a
    /// msgpack map of strings (only from [`crate::tags::try_decode_tags`]).
    #[error("tags in metadata are malformed: {0}")]
    Malformed(WireError),
    /// The node is leaving: its metadata can no longer change.
    #[error("the node is leaving the cluster: its tags can no longer change")]
    Leaving,
}

/// A user event we were asked to send was refused (local misuse).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UserEventError {
    /// The name and payload, or the encoded message, are over Serf's limit.
    #[error(
        "user event is {len} bytes, over the {limit}-byte limit: send a shorter name or payload"
    )]
    TooLarge {
        /// Size refused.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// A force-leave we were asked for was refused (local misuse).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForceLeaveError {
    /// No member of that name is known.
    #[error("no member named {0:?} is known: see `swimnet members`")]
    UnknownNode(String),
    /// The node named is this one: use `leave` instead.
    #[error("{0:?} is this node: use `swimnet leave` to leave gracefully")]
    OwnNode(String),
}
