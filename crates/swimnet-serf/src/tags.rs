//! Serf tags carried in memberlist node metadata.
//!
//! With Serf protocol 3 and later, a node's `Meta` is the magic byte `0xFF`
//! followed by a msgpack map of string to string. Metadata that does not
//! start with the magic byte is the legacy form: the whole of it is the
//! value of the `role` tag (so empty metadata reads as `{"role": ""}`, which
//! is how Serf shows a plain memberlist node).
//!
//! Serf writes the map in Go's random map order; we write it sorted (a
//! `BTreeMap`), which every reader accepts. Memberlist refuses metadata over
//! [`META_MAX_SIZE`] bytes, so check tags with [`check_tags`] (or
//! [`encoded_tags_len`]) before handing them to the core.

use std::collections::BTreeMap;

use swimnet_wire::msgpack::{Reader, Writer};
use swimnet_wire::WireError;

use crate::error::TagsError;

/// First byte of metadata that holds msgpack-encoded tags.
pub const TAG_MAGIC_BYTE: u8 = 0xFF;

/// memberlist's limit on node metadata (`MetaMaxSize`), in bytes.
pub const META_MAX_SIZE: usize = 512;

/// Encodes tags as Serf (protocol >= 3) does: `0xFF` then a msgpack map of
/// strings. An empty tag set is `ff 80`. Does not check the size limit; see
/// [`check_tags`].
pub fn encode_tags(tags: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_tags_len(tags));
    out.push(TAG_MAGIC_BYTE);
    let mut w = Writer::new(&mut out);
    // A map over u32::MAX entries cannot exist in memory anyway.
    w.write_map_len(u32::try_from(tags.len()).unwrap_or(u32::MAX));
    for (k, v) in tags {
        w.write_str(k);
        w.write_str(v);
    }
    out
}

/// Length in bytes of [`encode_tags`]'s output, without encoding.
pub fn encoded_tags_len(tags: &BTreeMap<String, String>) -> usize {
    fn header(n: usize, fix: usize) -> usize {
        if n < fix {
            1
        } else if n <= 0xffff {
            3
        } else {
            5
        }
    }
    1 + header(tags.len(), 16)
        + tags
            .iter()
            .map(|(k, v)| header(k.len(), 32) + k.len() + header(v.len(), 32) + v.len())
            .sum::<usize>()
}

/// Encodes tags and checks that they fit in memberlist's metadata
/// ([`META_MAX_SIZE`]). Call before giving tags to the core (at start-up and
/// on every change); on error nothing should change.
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<Vec<u8>, TagsError> {
    let len = encoded_tags_len(tags);
    if len > META_MAX_SIZE {
        return Err(TagsError::TooLarge {
            len,
            max: META_MAX_SIZE,
        });
    }
    Ok(encode_tags(tags))
}

/// Decodes a node's metadata into tags, strictly.
///
/// * Metadata that does not start with `0xFF` (including empty metadata) is
///   the legacy `role` tag: `{"role": <all of meta>}`.
/// * Otherwise the rest must be a msgpack map (or `nil`) of strings; any
///   other shape is [`TagsError::Malformed`]. Strings that are not UTF-8 are
///   converted lossily (Go strings may hold any bytes). A repeated key keeps
///   its last value, as in Go. Bytes after the map are ignored, as Go does.
pub fn try_decode_tags(meta: &[u8]) -> Result<BTreeMap<String, String>, TagsError> {
    let mut tags = BTreeMap::new();
    decode_into(meta, &mut tags).map_err(TagsError::Malformed)?;
    Ok(tags)
}

/// Decodes a node's metadata into tags, best effort (never fails, never
/// panics).
///
/// Same as [`try_decode_tags`], except that malformed tags give the entries
/// decoded before the error (possibly none), which is what Serf shows for
/// such a node (it logs the error and keeps the partly filled map).
pub fn decode_tags(meta: &[u8]) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    let _ = decode_into(meta, &mut tags);
    tags
}

fn decode_into(meta: &[u8], tags: &mut BTreeMap<String, String>) -> Result<(), WireError> {
    let Some((&TAG_MAGIC_BYTE, rest)) = meta.split_first() else {
        tags.insert(
            "role".to_owned(),
            String::from_utf8_lossy(meta).into_owned(),
        );
        return Ok(());
    };
    let mut r = Reader::new(rest);
    if r.read_nil()? {
        return Ok(());
    }
    let n = r.read_map_len()?;
    for _ in 0..n {
        let k = String::from_utf8_lossy(r.read_raw()?).into_owned();
        let v = String::from_utf8_lossy(r.read_raw()?).into_owned();
        tags.insert(k, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tags(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_tags_are_ff_80() {
        assert_eq!(encode_tags(&BTreeMap::new()), [0xff, 0x80]);
        assert!(decode_tags(&[0xff, 0x80]).is_empty());
        assert!(decode_tags(&[0xff, 0xc0]).is_empty());
    }

    #[test]
    fn live_probe_example() {
        // A live probe of a Serf 0.9.4 agent showed {"dc":"x1","role":"web"}.
        let meta = b"\xff\x82\xa4role\xa3web\xa2dc\xa2x1";
        assert_eq!(
            try_decode_tags(meta).unwrap(),
            tags(&[("dc", "x1"), ("role", "web")])
        );
        // We write sorted keys.
        assert_eq!(
            encode_tags(&tags(&[("role", "web"), ("dc", "x1")])),
            b"\xff\x82\xa2dc\xa2x1\xa4role\xa3web"
        );
    }

    #[test]
    fn legacy_role() {
        assert_eq!(decode_tags(b""), tags(&[("role", "")]));
        assert_eq!(decode_tags(b"web"), tags(&[("role", "web")]));
        assert_eq!(try_decode_tags(b"db").unwrap(), tags(&[("role", "db")]));
    }

    #[test]
    fn malformed_strict_vs_best_effort() {
        // Two entries announced, the second value is an integer.
        let meta = b"\xff\x82\xa1a\xa1b\xa1c\x05";
        assert!(matches!(
            try_decode_tags(meta),
            Err(TagsError::Malformed(_))
        ));
        assert_eq!(decode_tags(meta), tags(&[("a", "b")]));
        assert!(decode_tags(&[0xff]).is_empty());
        assert!(decode_tags(&[0xff, 0x05]).is_empty());
    }

    #[test]
    fn size_limit() {
        let mut t = BTreeMap::new();
        // 1 (magic) + 1 (fixmap) + 1+1 (key "k") + 3+505 (value) = 512.
        t.insert("k".to_string(), "v".repeat(505));
        assert_eq!(encoded_tags_len(&t), 512);
        assert_eq!(check_tags(&t).unwrap().len(), 512);
        t.insert("k".to_string(), "v".repeat(506));
        let err = check_tags(&t).unwrap_err();
        assert_eq!(err, TagsError::TooLarge { len: 513, max: 512 });
        assert!(err.to_string().contains("512"));
    }

    #[test]
    fn len_matches_encoding_at_boundaries() {
        for n in [0usize, 1, 15, 16, 17] {
            for l in [0usize, 31, 32, 300] {
                let t: BTreeMap<String, String> = (0..n)
                    .map(|i| (format!("k{i:03}"), "x".repeat(l)))
                    .collect();
                assert_eq!(encoded_tags_len(&t), encode_tags(&t).len());
            }
        }
    }

    proptest! {
        #[test]
        fn roundtrip(t in proptest::collection::btree_map(".{0,40}", ".{0,40}", 0..20)) {
            let meta = encode_tags(&t);
            prop_assert_eq!(meta.len(), encoded_tags_len(&t));
            prop_assert_eq!(try_decode_tags(&meta).unwrap(), t);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_tags(&b);
            let _ = try_decode_tags(&b);
            let mut with_magic = vec![0xff];
            with_magic.extend_from_slice(&b);
            let _ = decode_tags(&with_magic);
            let _ = try_decode_tags(&with_magic);
        }
    }
}
