//! Arbitrary and mutated bytes never make a decoder panic; whatever decodes
//! re-encodes and decodes again to the same value.

mod common;

use common::*;
use proptest::prelude::*;
use swimnet_networkdb::wire::*;

/// Runs every public decoder over `b`.
fn all_decoders(b: &[u8]) {
    if let Ok(g) = decode_gossip(b) {
        let again = encode_gossip_raw(g.r#type, &g.data);
        if again.is_empty() {
            // INVALID with no data encodes to nothing.
            assert_eq!((g.r#type, g.data.len()), (0, 0));
        } else {
            assert_eq!(decode_gossip(&again), Ok(g));
        }
    }
    if let Ok(m) = Message::decode(b) {
        assert_eq!(Message::decode(&m.encode()), Ok(m));
    }
    for m in decode_all(b).into_iter().flatten() {
        assert_eq!(Message::decode(&m.encode()), Ok(m.clone()));
        if let Message::BulkSync(bs) = &m {
            let _ = bs.payload_messages();
        }
    }
    if let Ok(parts) = decode_compound(b) {
        let _ = encode_compound(&parts);
    }
    if let Ok(pp) = decode_push_pull_state(b) {
        assert_eq!(decode_push_pull_state(&encode_push_pull_state(&pp)), Ok(pp));
    }
    fn each<M: GossipPayload + PartialEq + std::fmt::Debug>(b: &[u8]) {
        if let Ok(m) = M::decode_inner(b) {
            assert_eq!(M::decode_inner(&m.encode_inner()), Ok(m));
        }
        if let Ok(m) = M::decode_gossip(b) {
            assert_eq!(M::decode_gossip(&m.encode_gossip()), Ok(m));
        }
    }
    each::<NodeEvent>(b);
    each::<NetworkEvent>(b);
    each::<NetworkPushPull>(b);
    each::<TableEvent>(b);
    each::<BulkSyncMessage>(b);
    each::<CompoundMessage>(b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        all_decoders(&b);
    }

    #[test]
    fn mutated_messages_never_panic(
        (bytes, _) in tree(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = bytes;
        if b.is_empty() { return Ok(()); }
        for (i, x) in flips {
            let i = i.index(b.len());
            b[i] ^= x;
        }
        all_decoders(&b);
        let n = cut.index(b.len() + 1);
        all_decoders(&b[..n]);
    }
}
