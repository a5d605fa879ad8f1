//! Overlay definitions, replicated cluster-wide: every agent that uses
//! overlays joins the NetworkDB network [`DEFS_NETWORK`], whose table
//! [`DEFS_TABLE`] holds each node's copy of every definition it accepted
//! (key [`def_key`]), so a definition outlives the node that made it. When
//! two nodes define one name differently, [`resolve`] picks the same
//! winner on every node.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use crate::model::OverlayDef;
use crate::OverlayError;

/// The NetworkDB network every overlay-using agent joins for definitions.
pub const DEFS_NETWORK: &str = "swimnet-overlay-definitions";

/// The table of definitions in [`DEFS_NETWORK`].
pub const DEFS_TABLE: &str = "overlay_networks";

/// Largest definition value accepted from a peer (bytes).
pub const MAX_DEF_BYTES: usize = 1024;

/// One record of [`DEFS_TABLE`]: a definition, or the mark that it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefRecord {
    /// The definition.
    pub def: OverlayDef,
    /// Deleted (a tombstone kept so copies elsewhere are dropped too).
    pub deleted: bool,
}

/// The key of `node`'s copy of the definition with network ID `id`.
pub fn def_key(id: &str, node: &str) -> String {
    let _ = (id, node);
    todo!()
}

/// Encodes a record as a [`DEFS_TABLE`] value.
pub fn encode(record: &DefRecord) -> Vec<u8> {
    let _ = record;
    todo!()
}

/// Decodes and validates a [`DEFS_TABLE`] value (at most [`MAX_DEF_BYTES`]).
pub fn decode(bytes: &[u8]) -> Result<DefRecord, OverlayError> {
    let _ = bytes;
    todo!()
}

/// Checks what a user asked for: a name (DNS label rules, at most
/// [`crate::model::MAX_OVERLAY_NAME`]), a subnet with room for endpoints
/// (prefix at most /30), a VNI in range when given.
pub fn validate(name: &str, subnet: Ipv4Net, vni: Option<u32>) -> Result<(), OverlayError> {
    let _ = (name, subnet, vni);
    todo!()
}

/// A new definition's network ID: 64 hex digits, a function of every field.
pub fn network_id(name: &str, subnet: Ipv4Net, vni: u32, created_ms: u64, creator: &str) -> String {
    let _ = (name, subnet, vni, created_ms, creator);
    todo!()
}

/// A VNI for a new overlay named `name` that is not in `taken`: derived
/// from the name (so concurrent creations of one name pick the same one),
/// the next free one after it otherwise. `None` when none is free.
pub fn pick_vni(name: &str, taken: &BTreeSet<u32>) -> Option<u32> {
    let _ = (name, taken);
    todo!()
}

/// What the visible records of [`DEFS_TABLE`] (with their owners) say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The winning definition of each name.
    pub overlays: BTreeMap<String, OverlayDef>,
    /// Definitions that lost to another of the same name or VNI: (loser, winner).
    pub losers: Vec<(OverlayDef, OverlayDef)>,
    /// Network IDs marked deleted.
    pub deleted: BTreeSet<String>,
}

/// Resolves the records: a deleted ID stays deleted; among definitions of
/// one name (or one VNI) the earliest `created_ms` wins, then the lowest
/// network ID. The same records give the same answer on every node.
pub fn resolve<'a>(records: impl IntoIterator<Item = &'a DefRecord>) -> Resolved {
    let _ = records.into_iter();
    todo!()
}
