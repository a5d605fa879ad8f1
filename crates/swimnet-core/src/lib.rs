//! Sans-IO membership core (SWIM + Lifeguard) speaking memberlist's protocol.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
