//! Runs `examples/udp_tables.rs` to completion: three NetworkDB nodes over
//! real UDP and TCP sockets on 127.0.0.1 join, attach to a network, and
//! replicate an entry and its delete.

#[path = "../examples/udp_tables.rs"]
mod udp_tables;

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn udp_tables_example_replicates_an_entry_and_its_delete() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(udp_tables::main().map_err(|e| e.to_string()));
    });
    // The example gives itself 20 s; on loopback it needs well under 5.
    let outcome = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the example did not finish within 60 s");
    assert_eq!(outcome, Ok(()));
}
