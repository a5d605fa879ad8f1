//! HashiCorp memberlist wire codecs for swimnet.
//!
//! Everything here is pure computation over byte slices: no IO, no clock, no
//! randomness (callers pass nonces in). Every decoder takes untrusted bytes
//! and returns an error instead of panicking.
//!
//! The byte layouts follow `spec/memberlist-wire.md` and are byte-identical
//! to memberlist 0.2.2 with go-msgpack 0.5.5 (golden vectors in the tests).
//!
//! | module | what |
//! | --- | --- |
//! | [`msg`] | the message structs |
//! | [`msgpack`] | the go-msgpack dialect (hand-written writer and reader) |
//! | [`codec`] | one message ⇄ type byte + msgpack body |
//! | [`compound`], [`compress`], [`lzw`], [`crc`], [`security`], [`label`] | the framing layers |
//! | [`packet`] | the UDP pipeline: [`packet::seal_packet`], [`packet::open_packet`], [`packet::for_each_message_within`] |
//! | [`overhead`] | bytes each framing layer adds, for packet budgets |
//! | [`budget`] | [`DecodeBudget`]: what one datagram may expand into (bytes, parts) |
//! | [`stream`] | TCP stream messages, incremental decoding |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod budget;
pub mod codec;
pub mod compound;
pub mod compress;
pub mod crc;
pub mod error;
pub mod label;
pub mod lzw;
pub mod msg;
pub mod msgpack;
pub mod overhead;
pub mod packet;
pub mod security;
pub mod stream;
pub mod stream_decoder;

pub use budget::{BudgetLimit, DecodeBudget};
pub use error::{LzwError, WireError};
