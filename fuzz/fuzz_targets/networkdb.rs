//! NetworkDB messages (swimnet-networkdb's `wire` module): every public
//! decoder fed arbitrary bytes; whatever decodes is encoded again and must
//! decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_networkdb::wire::*;

fn check<M: GossipPayload + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(m) = M::decode_inner(data) {
        assert_eq!(M::decode_inner(&m.encode_inner()), Ok(m));
    }
    if let Ok(m) = M::decode_gossip(data) {
        assert_eq!(M::decode_gossip(&m.encode_gossip()), Ok(m));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = decode_gossip(data) {
        let again = encode_gossip_raw(g.r#type, &g.data);
        if !again.is_empty() {
            assert_eq!(decode_gossip(&again), Ok(g.clone()));
        }
        let _ = Message::from_gossip(&g);
    }
    if let Ok(m) = Message::decode(data) {
        assert_eq!(Message::decode(&m.encode()), Ok(m));
    }
    // The part caps hold whatever the bytes: a gossip message yields at most
    // MAX_GOSSIP_PARTS + 1 results, a bulk-sync payload MAX_BULK_SYNC_PARTS + 1,
    // and each compound is either read whole or refused whole.
    let mut calls = 0usize;
    for_each_message_within(data, 3, &mut |_| calls += 1);
    assert!(calls <= 4, "{calls} results under a cap of 3 parts");
    let all = decode_all(data);
    assert!(all.len() <= MAX_GOSSIP_PARTS + 1);
    if let Ok(parts) = decode_compound(data) {
        assert!(parts.len() <= MAX_GOSSIP_PARTS);
    }
    for m in all.into_iter().flatten() {
        assert_eq!(Message::decode(&m.encode()), Ok(m.clone()));
        if let Message::BulkSync(b) = &m {
            let payload = b.payload_messages();
            assert!(payload.len() <= MAX_BULK_SYNC_PARTS + 1);
            for p in payload.into_iter().flatten() {
                let _ = p.encode();
            }
        }
    }
    if let Ok(parts) = decode_compound(data) {
        let c = encode_compound(&parts);
        let g = decode_gossip(&c).expect("our compound decodes");
        assert_eq!(decode_compound(&g.data), Ok(parts));
    }
    if let Ok(pp) = decode_push_pull_state(data) {
        assert_eq!(decode_push_pull_state(&encode_push_pull_state(&pp)), Ok(pp));
    }
    check::<NodeEvent>(data);
    check::<NetworkEvent>(data);
    check::<NetworkPushPull>(data);
    check::<TableEvent>(data);
    check::<BulkSyncMessage>(data);
    check::<CompoundMessage>(data);
});
