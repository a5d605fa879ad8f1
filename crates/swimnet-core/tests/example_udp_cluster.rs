//! Runs `examples/udp_cluster.rs` to completion: three cores over real UDP
//! and TCP sockets on 127.0.0.1 join, converge and see a graceful leave.

#[path = "../examples/udp_cluster.rs"]
mod udp_cluster;

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn udp_cluster_example_converges_and_sees_the_leave() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(udp_cluster::main().map_err(|e| e.to_string()));
    });
    // The example gives itself 20 s; on loopback it needs well under 5.
    let outcome = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the example did not finish within 60 s");
    assert_eq!(outcome, Ok(()));
}
