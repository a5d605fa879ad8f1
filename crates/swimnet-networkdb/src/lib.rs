//! Docker NetworkDB compatible per-network replicated tables (sans-IO).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod db;
mod node;
mod scan;
pub mod state;
pub mod wire;

pub use db::NetworkDb;
pub use state::{NdbConfig, NdbDelegate, NdbError, NdbStats, PeerState, TableChange, TableEntry};
