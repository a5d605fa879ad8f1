//! Vivaldi coordinates across a simulated cluster: with a uniform 10 ms
//! one-way latency, every pair of nodes is 20 ms apart, and after a couple
//! of minutes of probing every node's estimate for every other node it has
//! heard from must be close to that.

use std::time::Duration;

use swimnet_core::{Config, NoopDelegate};
use swimnet_sim::{node_name, NetworkModel, Sim};

#[test]
fn estimates_converge_to_the_simulated_rtt() {
    let net = NetworkModel {
        latency: Duration::from_millis(10),
        jitter: Duration::from_micros(500),
        loss: 0.0,
    };
    let mut s = Sim::new(3, net, |_| NoopDelegate);
    let n = 8;
    for _ in 0..n {
        s.add_node(Config::lan);
    }
    for i in 1..n {
        s.join(i, &[0]);
    }
    s.run_for(Duration::from_secs(180));
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for a in 0..n {
        let core = s.core(a).unwrap();
        let ours = core.coordinate().expect("coordinates are on by default");
        assert_eq!(core.stats().coordinates_rejected, 0);
        for b in 0..n {
            if a == b {
                continue;
            }
            let Some(theirs) = core.coordinate_of(&node_name(b)) else {
                continue;
            };
            let est = ours.distance_to(theirs).unwrap().as_secs_f64();
            let err = (est - 0.0205).abs() / 0.0205;
            worst = worst.max(err);
            checked += 1;
        }
    }
    println!("{checked} estimates, worst relative error {worst:.3}");
    // Every node probes every other within a minute or so.
    assert!(
        checked >= n * (n - 1) * 3 / 4,
        "only {checked} coordinates known"
    );
    assert!(worst < 0.25, "worst relative error {worst}");
}
