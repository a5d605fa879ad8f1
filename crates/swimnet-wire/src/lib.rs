//! HashiCorp memberlist wire codecs for swimnet: the bottom layer, which
//! every other swimnet crate builds on.
//!
//! memberlist nodes talk in UDP datagrams and TCP streams. Each message is
//! a type byte and a Go struct encoded with go-msgpack 0.5.5; messages may
//! be packed into compound messages, compressed (LZW), CRC-prefixed,
//! labelled and encrypted (AES-GCM). This crate turns those bytes into Rust
//! values and back, byte-identical to memberlist 0.2.2 (the golden vectors
//! in the tests are bytes Go wrote, and `tests/goref.rs` checks against the
//! Go code itself).
//!
//! Everything here is pure computation over byte slices: no IO, no clock, no
//! randomness (callers pass nonces in). Every decoder takes untrusted bytes
//! and returns an error instead of panicking, and what one datagram may
//! expand into is bounded ([`DecodeBudget`]).
//!
//! ```
//! use swimnet_wire::codec::{decode, encode, Message};
//! use swimnet_wire::msg::Ping;
//!
//! let ping = Message::Ping(Ping {
//!     seq_no: 7,
//!     node: "node-b".into(),
//!     ..Ping::default()
//! });
//! let mut bytes = Vec::new();
//! encode(&ping, &mut bytes);
//! // Type 0, then a map of the Go fields that are not `omitempty`-empty.
//! assert_eq!(bytes, b"\x00\x82\xa4Node\xa6node-b\xa5SeqNo\x07");
//! assert_eq!(decode(&bytes).unwrap(), ping);
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`msg`] | the message structs |
//! | [`msgpack`] | the go-msgpack dialect (hand-written writer and reader) |
//! | [`msgpack_struct`] | Go structs declared once: field table, encoder and decoder from one list |
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
pub mod msgpack_struct;
pub mod overhead;
pub mod packet;
pub mod security;
pub mod stream;
pub mod stream_decoder;

pub use budget::{BudgetLimit, DecodeBudget};
pub use error::{LzwError, WireError};
