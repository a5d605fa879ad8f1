//! Overlay definitions, replicated cluster-wide: every agent that uses
//! overlays joins the NetworkDB network [`DEFS_NETWORK`], whose table
//! [`DEFS_TABLE`] holds each node's copy of every definition it accepted
//! (key [`def_key`]), so a definition outlives the node that made it. When
//! two nodes define one name differently, [`resolve`] picks the same
//! winner on every node.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{clip, OverlayDef, MAX_OVERLAY_NAME, MAX_VNI, MIN_VNI};
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

/// Lowest VNI [`pick_vni`] hands out (the ones below are left for users
/// who ask for a VNI).
pub const AUTO_VNI_MIN: u32 = 4096;

/// Longest creator (node name) a definition may carry (bytes).
pub const MAX_CREATOR: usize = 255;

/// Longest prefix a subnet may have: a /30 still holds two endpoints.
pub const MAX_PREFIX: u8 = 30;

/// The key of `node`'s copy of the definition with network ID `id`.
pub fn def_key(id: &str, node: &str) -> String {
    format!("{id}/{node}")
}

/// Splits a [`def_key`] into the network ID and the node; `None` when the
/// key is not one.
pub fn parse_def_key(key: &str) -> Option<(&str, &str)> {
    let (id, node) = key.split_once('/')?;
    (is_network_id(id) && !node.is_empty()).then_some((id, node))
}

/// The JSON form of a [`DefRecord`].
#[derive(Serialize, Deserialize)]
struct DefJson {
    name: String,
    id: String,
    subnet: String,
    vni: u32,
    created_ms: u64,
    creator: String,
    #[serde(default)]
    deleted: bool,
}

/// Encodes a record as a [`DEFS_TABLE`] value.
pub fn encode(record: &DefRecord) -> Vec<u8> {
    let d = &record.def;
    serde_json::to_vec(&DefJson {
        name: d.name.clone(),
        id: d.id.clone(),
        subnet: d.subnet.to_string(),
        vni: d.vni,
        created_ms: d.created_ms,
        creator: d.creator.clone(),
        deleted: record.deleted,
    })
    .expect("plain fields serialize")
}

/// Decodes and validates a [`DEFS_TABLE`] value (at most [`MAX_DEF_BYTES`]).
pub fn decode(bytes: &[u8]) -> Result<DefRecord, OverlayError> {
    if bytes.len() > MAX_DEF_BYTES {
        return Err(OverlayError::Invalid(format!(
            "overlay definition of {} bytes is over the {MAX_DEF_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let j: DefJson = serde_json::from_slice(bytes)
        .map_err(|e| OverlayError::Invalid(format!("bad overlay definition: {e}")))?;
    let subnet: Ipv4Net = j.subnet.parse().map_err(|_| {
        OverlayError::Invalid(format!(
            "overlay definition has a bad subnet {:?}",
            clip(&j.subnet)
        ))
    })?;
    validate(&j.name, subnet, Some(j.vni))?;
    if !is_network_id(&j.id) {
        return Err(OverlayError::Invalid(format!(
            "overlay definition has a bad network ID {:?} (want 64 lowercase hex digits)",
            clip(&j.id)
        )));
    }
    if j.creator.is_empty() || j.creator.len() > MAX_CREATOR {
        return Err(OverlayError::Invalid(format!(
            "overlay definition has a creator of {} bytes (want 1 to {MAX_CREATOR})",
            j.creator.len()
        )));
    }
    Ok(DefRecord {
        def: OverlayDef {
            name: j.name,
            id: j.id,
            subnet,
            vni: j.vni,
            created_ms: j.created_ms,
            creator: j.creator,
        },
        deleted: j.deleted,
    })
}

/// Whether `id` has the form of a network ID: 64 lowercase hex digits.
pub fn is_network_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks what a user asked for: a name (DNS label rules, at most
/// [`crate::model::MAX_OVERLAY_NAME`]), a subnet with room for endpoints
/// (prefix at most /30), a VNI in range when given.
pub fn validate(name: &str, subnet: Ipv4Net, vni: Option<u32>) -> Result<(), OverlayError> {
    let label_ok = !name.is_empty()
        && name.len() <= MAX_OVERLAY_NAME
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !label_ok {
        return Err(OverlayError::Invalid(format!(
            "bad overlay name {:?}: use 1 to {MAX_OVERLAY_NAME} lowercase letters, digits and \
             inner hyphens",
            clip(name)
        )));
    }
    if subnet.prefix_len() > MAX_PREFIX {
        return Err(OverlayError::Invalid(format!(
            "subnet {subnet} is too small: the prefix may be at most /{MAX_PREFIX}"
        )));
    }
    if subnet.trunc() != subnet {
        return Err(OverlayError::Invalid(format!(
            "subnet {subnet} has host bits set (did you mean {}?)",
            subnet.trunc()
        )));
    }
    if let Some(v) = vni {
        if !(MIN_VNI..=MAX_VNI).contains(&v) {
            return Err(OverlayError::Invalid(format!(
                "VNI {v} is out of range ({MIN_VNI} to {MAX_VNI})"
            )));
        }
    }
    Ok(())
}

/// SHA-256 of the parts, each followed by a zero byte.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0u8]);
    }
    h.finalize().into()
}

/// A new definition's network ID: 64 hex digits, a function of every field.
pub fn network_id(name: &str, subnet: Ipv4Net, vni: u32, created_ms: u64, creator: &str) -> String {
    let digest = sha256(&[
        b"swimnet-overlay",
        name.as_bytes(),
        subnet.to_string().as_bytes(),
        &vni.to_be_bytes(),
        &created_ms.to_be_bytes(),
        creator.as_bytes(),
    ]);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A VNI for a new overlay named `name` that is not in `taken`: derived
/// from the name (so concurrent creations of one name pick the same one),
/// the next free one after it otherwise. `None` when none is free.
pub fn pick_vni(name: &str, taken: &BTreeSet<u32>) -> Option<u32> {
    let span = u64::from(MAX_VNI - AUTO_VNI_MIN) + 1;
    let digest = sha256(&[b"swimnet-vni", name.as_bytes()]);
    let h = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let start = h % span;
    // Among `taken.len() + 1` consecutive VNIs at least one is free, so the
    // scan is bounded by the number of overlays, not the VNI space.
    let steps = (taken.len() as u64 + 1).min(span);
    (0..steps)
        .map(|k| AUTO_VNI_MIN + ((start + k) % span) as u32)
        .find(|v| !taken.contains(v))
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

/// The order in which definitions claim names and VNIs: earliest
/// `created_ms`, then lowest network ID, then the other fields (so even
/// forged copies with one ID order the same everywhere).
fn precedence(d: &OverlayDef) -> (u64, &str, &str, Ipv4Net, u32, &str) {
    (d.created_ms, &d.id, &d.name, d.subnet, d.vni, &d.creator)
}

/// Resolves the records: a deleted ID stays deleted; among definitions of
/// one name (or one VNI) the earliest `created_ms` wins, then the lowest
/// network ID. The same records give the same answer on every node.
pub fn resolve<'a>(records: impl IntoIterator<Item = &'a DefRecord>) -> Resolved {
    let mut deleted = BTreeSet::new();
    let mut live: Vec<&OverlayDef> = Vec::new();
    for r in records {
        if r.deleted {
            deleted.insert(r.def.id.clone());
        } else {
            live.push(&r.def);
        }
    }
    live.retain(|d| !deleted.contains(&d.id));
    live.sort_by(|a, b| precedence(a).cmp(&precedence(b)));
    live.dedup();
    let mut overlays: BTreeMap<String, OverlayDef> = BTreeMap::new();
    let mut by_vni: BTreeMap<u32, String> = BTreeMap::new();
    let mut by_id: BTreeMap<&str, String> = BTreeMap::new();
    let mut losers = Vec::new();
    for d in live {
        let beaten_by = overlays
            .get(&d.name)
            .or_else(|| by_vni.get(&d.vni).and_then(|n| overlays.get(n)))
            .or_else(|| by_id.get(d.id.as_str()).and_then(|n| overlays.get(n)));
        if let Some(w) = beaten_by {
            losers.push((d.clone(), w.clone()));
            continue;
        }
        by_vni.insert(d.vni, d.name.clone());
        by_id.insert(&d.id, d.name.clone());
        overlays.insert(d.name.clone(), d.clone());
    }
    Resolved {
        overlays,
        losers,
        deleted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn def(name: &str, subnet: &str, vni: u32, created_ms: u64, creator: &str) -> OverlayDef {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        OverlayDef {
            name: name.into(),
            id: network_id(name, subnet, vni, created_ms, creator),
            subnet,
            vni,
            created_ms,
            creator: creator.into(),
        }
    }

    fn live(d: &OverlayDef) -> DefRecord {
        DefRecord {
            def: d.clone(),
            deleted: false,
        }
    }

    #[test]
    fn records_round_trip_and_keys_split() {
        let d = def("blue", "10.0.1.0/24", 4096, 1_700_000_000_000, "node-a");
        for deleted in [false, true] {
            let r = DefRecord {
                def: d.clone(),
                deleted,
            };
            let bytes = encode(&r);
            assert!(bytes.len() <= MAX_DEF_BYTES);
            assert_eq!(decode(&bytes).unwrap(), r);
        }
        let key = def_key(&d.id, "node-a");
        assert_eq!(parse_def_key(&key), Some((d.id.as_str(), "node-a")));
        assert_eq!(parse_def_key("abc/node"), None);
        assert_eq!(parse_def_key(&format!("{}/", d.id)), None);
    }

    #[test]
    fn decode_refuses_bad_fields() {
        let good = def("blue", "10.0.1.0/24", 4096, 1, "node-a");
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_slice(&encode(&live(&good))).unwrap();
            f(&mut v);
            decode(&serde_json::to_vec(&v).unwrap())
        };
        assert!(with(&|_| {}).is_ok());
        assert!(with(&|v| v["name"] = "Bad_Name".into()).is_err());
        assert!(with(&|v| v["id"] = "ABC".into()).is_err());
        assert!(with(&|v| v["id"] = "G".repeat(64).into()).is_err());
        assert!(with(&|v| v["subnet"] = "10.0.1.0/31".into()).is_err());
        assert!(with(&|v| v["subnet"] = "not a subnet".into()).is_err());
        assert!(with(&|v| v["vni"] = 12.into()).is_err());
        assert!(with(&|v| v["vni"] = (MAX_VNI + 1).into()).is_err());
        assert!(with(&|v| v["creator"] = "".into()).is_err());
        assert!(with(&|v| v["creator"] = "x".repeat(256).into()).is_err());
        assert!(decode(b"{").is_err());
        let big = vec![b' '; MAX_DEF_BYTES + 1];
        assert!(decode(&big).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn validate_checks_name_subnet_and_vni() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        assert!(validate("blue-2", net, None).is_ok());
        assert!(validate("blue", net, Some(MIN_VNI)).is_ok());
        assert!(validate("", net, None).is_err());
        assert!(validate("-blue", net, None).is_err());
        assert!(validate("blue-", net, None).is_err());
        assert!(validate("a.b", net, None).is_err());
        assert!(validate(&"a".repeat(MAX_OVERLAY_NAME + 1), net, None).is_err());
        assert!(validate("blue", "10.0.0.0/30".parse().unwrap(), None).is_ok());
        assert!(validate("blue", "10.0.0.0/31".parse().unwrap(), None).is_err());
        let err = validate("blue", "10.0.0.5/24".parse().unwrap(), None).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/24"), "{err}");
        assert!(validate("blue", net, Some(MIN_VNI - 1)).is_err());
    }

    #[test]
    fn network_ids_depend_on_every_field() {
        let base = def("blue", "10.0.1.0/24", 4096, 5, "a");
        assert!(is_network_id(&base.id));
        let others = [
            def("blue2", "10.0.1.0/24", 4096, 5, "a"),
            def("blue", "10.0.2.0/24", 4096, 5, "a"),
            def("blue", "10.0.1.0/24", 4097, 5, "a"),
            def("blue", "10.0.1.0/24", 4096, 6, "a"),
            def("blue", "10.0.1.0/24", 4096, 5, "b"),
        ];
        for o in others {
            assert_ne!(o.id, base.id);
        }
    }

    #[test]
    fn pick_vni_is_a_function_of_the_name_and_skips_taken_ones() {
        let none = BTreeSet::new();
        let v = pick_vni("blue", &none).unwrap();
        assert!((AUTO_VNI_MIN..=MAX_VNI).contains(&v));
        assert_eq!(pick_vni("blue", &none), Some(v));
        assert_ne!(pick_vni("red", &none), Some(v));
        let taken: BTreeSet<u32> = [v].into();
        let w = pick_vni("blue", &taken).unwrap();
        assert_ne!(w, v);
        let taken: BTreeSet<u32> = (0..=MAX_VNI).filter(|x| *x >= v).take(1000).collect();
        let w = pick_vni("blue", &taken).unwrap();
        assert!(!taken.contains(&w) && (AUTO_VNI_MIN..=MAX_VNI).contains(&w));
    }

    #[test]
    fn resolve_picks_the_earliest_then_lowest_id_and_vni_clashes_lose() {
        let blue_a = def("blue", "10.0.1.0/24", 5000, 10, "a");
        let blue_b = def("blue", "10.0.9.0/24", 5001, 20, "b");
        let red_same_vni = def("red", "10.0.2.0/24", 5000, 15, "c");
        let green = def("green", "10.0.3.0/24", 6000, 1, "c");
        let r = resolve(&[
            live(&blue_b),
            live(&red_same_vni),
            live(&blue_a),
            live(&green),
        ]);
        assert_eq!(r.overlays.len(), 2);
        assert_eq!(r.overlays["blue"], blue_a);
        assert_eq!(r.overlays["green"], green);
        assert!(r.losers.contains(&(blue_b.clone(), blue_a.clone())));
        assert!(r.losers.contains(&(red_same_vni.clone(), blue_a.clone())));
        // Same created_ms: the lower ID wins.
        let x = def("pink", "10.0.4.0/24", 7000, 3, "x");
        let y = def("pink", "10.0.5.0/24", 7001, 3, "y");
        let low = if x.id < y.id { &x } else { &y };
        assert_eq!(&resolve(&[live(&x), live(&y)]).overlays["pink"], low);
    }

    #[test]
    fn deleted_ids_stay_deleted_and_copies_count_once() {
        let blue = def("blue", "10.0.1.0/24", 5000, 10, "a");
        let later = def("blue", "10.0.2.0/24", 5001, 20, "b");
        let tomb = DefRecord {
            def: blue.clone(),
            deleted: true,
        };
        let r = resolve(&[live(&blue), live(&blue), tomb.clone(), live(&blue)]);
        assert!(r.overlays.is_empty());
        assert!(r.deleted.contains(&blue.id));
        // With the earlier one deleted, the later definition of the name wins.
        let r = resolve(&[live(&blue), tomb, live(&later)]);
        assert_eq!(r.overlays["blue"], later);
        assert!(r.losers.is_empty());
        let r = resolve(&[live(&later), live(&later), live(&later)]);
        assert_eq!(r.overlays.len(), 1);
        assert!(r.losers.is_empty());
    }

    fn arb_record() -> impl Strategy<Value = DefRecord> {
        (0usize..4, 0u32..4, 0u64..4, 0usize..3, 0u8..8).prop_map(|(n, v, t, c, d)| {
            let names = ["blue", "red", "green", "pink"];
            let creators = ["a", "b", "c"];
            let subnet = format!("10.{n}.{v}.0/24");
            DefRecord {
                def: def(names[n], &subnet, 5000 + v, t, creators[c]),
                deleted: d == 0,
            }
        })
    }

    proptest! {
        #[test]
        fn resolve_ignores_order_and_duplication(
            records in proptest::collection::vec(arb_record(), 0..12),
            dup in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
            seed in any::<u64>(),
        ) {
            let base = resolve(&records);
            let mut shuffled = records.clone();
            for i in &dup {
                if !records.is_empty() {
                    shuffled.push(records[i.index(records.len())].clone());
                }
            }
            // A deterministic shuffle from `seed`.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let other = resolve(&shuffled);
            prop_assert_eq!(&other, &base);
            // No two winners share a VNI or an ID; no winner is deleted.
            let vnis: BTreeSet<u32> = base.overlays.values().map(|d| d.vni).collect();
            prop_assert_eq!(vnis.len(), base.overlays.len());
            for d in base.overlays.values() {
                prop_assert!(!base.deleted.contains(&d.id));
            }
        }
    }
}
