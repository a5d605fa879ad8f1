//! Three [`Memberlist`] nodes in one process, each on its own UDP socket and
//! TCP listener on 127.0.0.1, driven by the plain `std::net` loop of
//! `examples/src/lib.rs`.
//!
//! `b` and `c` join through `a`, all three converge on three live members,
//! then `c` leaves gracefully and the others see it as left. Exits non-zero
//! if that does not happen within a few seconds.
//!
//! ```text
//! cargo run -p swimnet-examples --example udp_cluster
//! ```

use std::time::{Duration, Instant};

use swimnet_core::{Event, Memberlist, NodeState, NoopDelegate};
use swimnet_examples::{run_until, Output, UdpPeer};

/// How long the whole run may take before it is called a failure.
const RUN_BUDGET: Duration = Duration::from_secs(20);

type Peer = UdpPeer<Memberlist<NoopDelegate>>;

fn show(node: &Memberlist<NoopDelegate>, out: Output<std::convert::Infallible>) {
    for event in out.events {
        let what = match &event {
            Event::Join(n) => format!("{} joined ({})", n.name, n.addr),
            Event::Leave(n) => format!("{} is {:?}", n.name, n.state),
            Event::JoinResult { addr, result } => format!("join through {addr}: {result:?}"),
            other => format!("{other:?}"),
        };
        println!("{}: {what}", node.name());
    }
}

/// Runs the example; `pub` so that the test in `tests/` can run it too.
pub fn main() -> std::io::Result<()> {
    let fail = |what: String| std::io::Error::other(what);
    let start = Instant::now();
    let make = |config, now, seed| Memberlist::new(config, NoopDelegate, now, seed);
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
    if !run_until(&mut peers, start, RUN_BUDGET, show, |p| {
        p.node.num_alive() == 3
    }) {
        return Err(fail("the three nodes did not converge".into()));
    }
    println!("converged: every node sees 3 live members");

    peers[2].node.leave(Instant::now());
    let left = |p: &Peer| {
        p.node.has_left()
            || p.node
                .member_by_name("c")
                .is_some_and(|n| n.state == NodeState::Left)
    };
    if !run_until(&mut peers, start, RUN_BUDGET, show, left) {
        return Err(fail("c's leave was not seen by a and b".into()));
    }
    println!("c left; a and b see it as left");
    Ok(())
}
