//! Deterministic multi-node harness for swimnet cores.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
