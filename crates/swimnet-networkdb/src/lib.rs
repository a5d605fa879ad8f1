//! Docker NetworkDB compatible per-network replicated tables (sans-IO).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod wire;
