//! Network attachments spread to every node without waiting for a
//! push/pull, also when a node learns one from a bulk sync.

mod harness;

use std::time::Duration;

use harness::Cluster;
use swimnet_networkdb::NdbConfig;

const NET: &str = "net1";

/// Eight nodes join one network 30 ms apart. A joiner bulk-syncs with the
/// peers it knows, and its bulk sync carries its own attachment: the
/// receivers must relay what they learn from it, as they do for gossip.
/// (Before: they applied it silently, so a node that the joiner's own few
/// transmissions missed waited for the next push/pull, 15 s in this
/// profile; 25 of these 30 seeds took over 5 s, the worst 32 s.)
#[test]
fn attachments_learned_from_bulk_syncs_are_relayed() {
    for seed in 1..=30u64 {
        let mut c = Cluster::new(8, seed, NdbConfig::default());
        c.run_for(Duration::from_secs(2));
        let start = c.now;
        for i in 0..8 {
            c.on(i, |db, now| db.join_network(now, NET).unwrap());
            c.run_for(Duration::from_millis(30));
        }
        while !(0..8).all(|i| c.nodes[i].network_peers(NET).len() == 8) {
            assert!(
                c.now - start < Duration::from_secs(3),
                "seed {seed}: network peers incomplete after 3 s: {:?}",
                (0..8)
                    .map(|i| c.nodes[i].network_peers(NET).len())
                    .collect::<Vec<_>>()
            );
            c.run_for(Duration::from_millis(100));
        }
    }
}
