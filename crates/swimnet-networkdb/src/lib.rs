//! Docker NetworkDB compatible per-network replicated tables (sans-IO).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod db;
mod scan;
pub mod state;
pub mod wire;

pub use db::NetworkDb;
pub use state::{
    ChangeOrigin, NdbConfig, NdbError, NdbErrorKind, NdbStats, PeerState, TableChange, TableEntry,
    TableState,
};
