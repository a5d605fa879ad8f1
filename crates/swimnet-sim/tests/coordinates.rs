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
    let mut errors: Vec<f64> = Vec::new();
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
            errors.push(err);
        }
    }
    errors.sort_by(f64::total_cmp);
    let checked = errors.len();
    let at = |q: f64| errors[((checked - 1) as f64 * q).round() as usize];
    let (median, p90, worst) = (at(0.5), at(0.9), at(1.0));
    println!(
        "{checked} estimates, relative error median {median:.3}, p90 {p90:.3}, worst {worst:.3}"
    );
    // Every node probes every other within a minute or so.
    assert!(
        checked >= n * (n - 1) * 3 / 4,
        "only {checked} coordinates known"
    );
    // Serf's own bound for this kind of layout is a median; single
    // estimates can be further off while a node's coordinate is still
    // moving (the peer's coordinate is the one learnt at our last probe of
    // it): over 16 seeds the worst of 56 reached 0.32 (0.43 with
    // latency-aware selection off, after 300 s), while the medians stayed
    // at or below 0.074 and the 90th percentiles at or below 0.223.
    assert!(median < 0.10, "median relative error {median}");
    assert!(p90 < 0.25, "90th percentile relative error {p90}");
}
