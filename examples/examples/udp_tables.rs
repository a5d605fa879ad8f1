//! Three [`NetworkDb`] nodes in one process, each on its own UDP socket and
//! TCP listener on 127.0.0.1, driven by the plain `std::net` loop of
//! `examples/src/lib.rs` (the same loop `udp_cluster` uses for plain
//! memberlist nodes).
//!
//! `b` and `c` join the cluster through `a`; all three attach to network
//! `overlay1`; `a` writes an entry in table `endpoint_table` and `b` and `c`
//! print it when their table changes report it; then `a` deletes it and
//! they print the delete. The loop only moves bytes and time: membership,
//! gossip, bulk sync and the tables all live in `NetworkDb`. Exits non-zero
//! if a step does not happen within a few seconds.
//!
//! ```text
//! cargo run -p swimnet-examples --example udp_tables
//! ```

use std::time::{Duration, Instant};

use swimnet_examples::{run_until, Output, UdpPeer};
use swimnet_networkdb::{NdbConfig, NetworkDb, TableChange};

/// How long the whole run may take before it is called a failure.
const RUN_BUDGET: Duration = Duration::from_secs(20);
const NETWORK: &str = "overlay1";
const TABLE: &str = "endpoint_table";
const KEY: &str = "container-1";

type Peer = UdpPeer<NetworkDb>;

/// Prints every table change as it arrives.
fn show(db: &NetworkDb, out: Output<TableChange>) {
    for change in out.app_events {
        let value = change.value.as_deref().map(String::from_utf8_lossy);
        println!(
            "{}: {}/{}/{} = {}",
            db.name(),
            change.network_id,
            change.table,
            change.key,
            value.as_deref().unwrap_or("(deleted)")
        );
    }
}

/// Runs the example; `pub` so that the test in `tests/` can run it too.
pub fn main() -> std::io::Result<()> {
    let fail = |what: String| std::io::Error::other(what);
    let start = Instant::now();
    let make = |config, now, seed| NetworkDb::new(config, NdbConfig::default(), now, seed);
    let mut peers: Vec<Peer> = vec![
        UdpPeer::bind("a", 1, make)?,
        UdpPeer::bind("b", 2, make)?,
        UdpPeer::bind("c", 3, make)?,
    ];
    let seed_addr = peers[0].addr();
    for peer in &mut peers[1..] {
        let joined = peer.node.join(Instant::now(), &[seed_addr]);
        joined.map_err(|e| fail(e.to_string()))?;
    }
    for peer in &mut peers {
        let attached = peer.node.join_network(Instant::now(), NETWORK);
        attached.map_err(|e| fail(e.to_string()))?;
    }
    let all_attached = |p: &Peer| p.node.network_peers(NETWORK).len() == 3;
    if !run_until(&mut peers, start, RUN_BUDGET, show, all_attached) {
        return Err(fail(
            "the three nodes did not all attach to the network".into(),
        ));
    }
    println!("every node sees 3 nodes in {NETWORK}");

    let value = b"10.0.0.2 02:42:0a:00:00:02";
    let written = peers[0]
        .node
        .create_entry(Instant::now(), NETWORK, TABLE, KEY, value);
    written.map_err(|e| fail(e.to_string()))?;
    let has_entry = |p: &Peer| p.node.get_entry(NETWORK, TABLE, KEY).is_ok();
    if !run_until(&mut peers, start, RUN_BUDGET, show, has_entry) {
        return Err(fail("the entry did not reach every node".into()));
    }
    println!("every node has {NETWORK}/{TABLE}/{KEY}");

    let deleted = peers[0]
        .node
        .delete_entry(Instant::now(), NETWORK, TABLE, KEY);
    deleted.map_err(|e| fail(e.to_string()))?;
    if !run_until(&mut peers, start, RUN_BUDGET, show, |p| !has_entry(p)) {
        return Err(fail("the delete did not reach every node".into()));
    }
    println!("the delete reached every node");
    Ok(())
}
