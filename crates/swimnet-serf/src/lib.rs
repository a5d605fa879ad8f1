//! Serf compatibility for swimnet.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
