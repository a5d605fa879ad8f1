//! The swimnet agent: the membership core driven on real sockets.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
