//! HashiCorp memberlist wire codecs for swimnet.
//!
//! Everything here is pure computation over byte slices: no IO, no clock, no
//! randomness (callers pass nonces in). Every decoder takes untrusted bytes
//! and returns an error instead of panicking.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod msg;
