//! Network attachments spread to every node without waiting for a
//! push/pull, also when a node learns one from a bulk sync.

mod ndb_cluster;

use std::time::Duration;

use ndb_cluster::Cluster;
use swimnet_networkdb::NdbConfig;

const NET: &str = "net1";

/// Eight nodes join one network 30 ms apart. A joiner bulk-syncs with the
/// peers it knows, and its bulk sync carries its own attachment: the
/// receivers must relay what they learn from it, as they do for gossip.
/// (Before: they applied it silently, so a node that the joiner's own few
/// transmissions missed waited for the next push/pull, 15 s in this
/// profile; 25 of 30 seeds took over 5 s, the worst 32 s.)
///
/// Gossip stays probabilistic: with Docker's retransmit budget (4 sends of
/// an event per node) the 28 or so sends of one attachment all miss a given
/// node about once in 70, and that node then waits for the next periodic
/// bulk sync or push/pull. Over 30 seeds of 8 attachments that happens to
/// one or two seeds (here 2 in 100 seeds, 1 with uniform peer choice), so
/// the test asks for at least 27 of 30 within 3 s.
#[test]
fn attachments_learned_from_bulk_syncs_are_relayed() {
    let mut slow = Vec::new();
    for seed in 1..=30u64 {
        let mut c = Cluster::new(8, seed, NdbConfig::default());
        c.run_for(Duration::from_secs(2));
        let start = c.now();
        for i in 0..8 {
            c.on(i, |db, now| db.join_network(now, NET).unwrap());
            c.run_for(Duration::from_millis(30));
        }
        let all_known = |h: &swimnet_sim::Harness<swimnet_networkdb::NetworkDb>| {
            (0..8).all(|i| h.core(i).is_some_and(|db| db.network_peers(NET).len() == 8))
        };
        let limit = Duration::from_secs(3) - (c.now() - start);
        if c.h
            .run_until_cond(limit, Duration::from_millis(100), all_known)
            .is_none()
        {
            slow.push(seed);
        }
    }
    assert!(
        slow.len() <= 3,
        "network peers incomplete after 3 s for seeds {slow:?}"
    );
}
