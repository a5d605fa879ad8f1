//! Runs every example to completion on 127.0.0.1: three memberlist nodes
//! join, converge and see a graceful leave; three NetworkDB nodes attach to
//! a network and see an entry and its delete.

#[path = "../examples/udp_cluster.rs"]
mod udp_cluster;
#[path = "../examples/udp_tables.rs"]
mod udp_tables;

use std::sync::mpsc;
use std::time::Duration;

/// Runs `main` on a thread and returns its outcome, failing the test if it
/// does not finish within 60 s (the examples give themselves 20 s; on
/// loopback they need well under 5).
fn run(name: &str, main: fn() -> std::io::Result<()>) -> Result<(), String> {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(main().map_err(|e| e.to_string()));
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("example {name} did not finish within 60 s"))
}

#[test]
fn udp_cluster_converges_and_sees_the_leave() {
    assert_eq!(run("udp_cluster", udp_cluster::main), Ok(()));
}

#[test]
fn udp_tables_replicates_an_entry_and_its_delete() {
    assert_eq!(run("udp_tables", udp_tables::main), Ok(()));
}
