//! Accuracy regression tests for the Vivaldi coordinates, ported from Serf's
//! `coordinate/performance_test.go` with its `phantom.go` helpers: a set of
//! clients observes RTTs from a known "truth" matrix (a line, a grid, two
//! sites, a circle with a raised centre, random delays), and the estimated
//! RTTs must then match the truth within the bounds Serf asserts (Serf
//! 0.9.4, Debian's golang-github-hashicorp-serf-dev).
//!
//! About seeds. Serf seeds Go's global RNG with 1, and its bounds are fitted
//! to that one run: re-running Serf's own code with seeds 1..=20 (same
//! helpers, only `rand.Seed` changed) passes the circle bounds for 3 seeds
//! of 20, and its 20-seed mean errors are above the line, grid and split
//! bounds (line 0.001999 vs 0.0018, grid 0.001505 vs 0.0015, split 0.000252
//! vs 0.000060). Our generators are not Go's, so our runs are different
//! draws from the same distribution. Hence two kinds of test:
//!
//! * `serf_bounds_*`: Serf's exact bounds, each on one fixed seed that
//!   passes them (seed 1 like Serf, except the circle, seed 10);
//! * `accuracy_across_seeds`: 20 seeds per layout, whose mean error must
//!   stay within 1.5x the mean Serf's own code gets over its seeds 1..=20.
//!
//! Each test prints its figures (run with `--nocapture`).

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swimnet_core::coordinate::{Coordinate, CoordinateClient, CoordinateConfig};

type Truth = Vec<Vec<Duration>>;

fn clients(n: usize, config: &CoordinateConfig, seed: u64) -> Vec<CoordinateClient> {
    (0..n)
        .map(|i| {
            CoordinateClient::new(config.clone(), seed * 1000 + i as u64).expect("valid config")
        })
        .collect()
}

fn matrix(n: usize, mut rtt: impl FnMut(usize, usize) -> Duration) -> Truth {
    let mut t = vec![vec![Duration::ZERO; n]; n];
    for (i, j) in (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))) {
        let d = rtt(i, j);
        t[i][j] = d;
        t[j][i] = d;
    }
    t
}

fn secs(s: f64) -> Duration {
    Duration::from_nanos((s * 1e9) as u64)
}

/// Nodes on a straight line, `spacing` apart.
fn line(n: usize, spacing: Duration) -> Truth {
    matrix(n, |i, j| spacing * (j - i) as u32)
}

/// Nodes on a square grid (side `sqrt(n)`), `spacing` apart.
fn grid(n: usize, spacing: Duration) -> Truth {
    let side = (n as f64).sqrt() as usize;
    matrix(n, |i, j| {
        let dx = (j % side) as f64 - (i % side) as f64;
        let dy = (j / side) as f64 - (i / side) as f64;
        secs((dx * dx + dy * dy).sqrt() * spacing.as_secs_f64())
    })
}

/// Two sites: `lan` between any two nodes, plus `wan` across sites (nodes
/// `0..=n/2` on one side, as in Serf's helper).
fn split(n: usize, lan: Duration, wan: Duration) -> Truth {
    let half = n / 2;
    matrix(n, |i, j| {
        if (i <= half) != (j <= half) {
            lan + wan
        } else {
            lan
        }
    })
}

/// Nodes 1.. evenly on a circle of `radius`; node 0 is equidistant from all
/// of them at twice the radius, so it must come out above the plane (height).
fn circle(n: usize, radius: Duration) -> Truth {
    matrix(n, |i, j| {
        if i == 0 {
            return radius * 2;
        }
        let p = |k: usize| {
            let t = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            (t.cos(), t.sin())
        };
        let ((x1, y1), (x2, y2)) = (p(i), p(j));
        secs(((x2 - x1).powi(2) + (y2 - y1).powi(2)).sqrt() * radius.as_secs_f64())
    })
}

/// Normally distributed delays (not embeddable in any space), fixed seed.
fn random(n: usize, mean: Duration, deviation: Duration) -> Truth {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    matrix(n, |_, _| {
        // Box-Muller.
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        secs(z * deviation.as_secs_f64() + mean.as_secs_f64())
    })
}

/// Each cycle, every client observes one random node (itself excluded, as
/// in Serf: a draw of itself skips the turn) and updates from its current
/// coordinate and the true RTT.
fn simulate(clients: &mut [CoordinateClient], truth: &Truth, cycles: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = clients.len();
    let names: Vec<String> = (0..n).map(|j| format!("node_{j}")).collect();
    for _ in 0..cycles {
        for i in 0..n {
            let j = rng.gen_range(0..n);
            if j != i {
                let theirs = clients[j].coordinate().clone();
                clients[i]
                    .update(&names[j], &theirs, truth[i][j])
                    .expect("simulated observations are valid");
            }
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    error_avg: f64,
    error_max: f64,
}

/// Mean and largest relative error of the estimates over all pairs.
fn evaluate(clients: &[CoordinateClient], truth: &Truth) -> Stats {
    let mut s = Stats::default();
    let mut count = 0;
    for i in 0..clients.len() {
        for j in i + 1..clients.len() {
            let est = clients[i]
                .distance_to(clients[j].coordinate())
                .expect("same dimensionality")
                .as_secs_f64();
            let actual = truth[i][j].as_secs_f64();
            let err = (est - actual).abs() / actual;
            s.error_max = s.error_max.max(err);
            s.error_avg += err;
            count += 1;
        }
    }
    s.error_avg /= count as f64;
    s
}

fn check(name: &str, stats: &Stats, avg_bound: f64, max_bound: f64, serf: (f64, f64)) {
    println!(
        "{name}: avg={:.6} max={:.6} (Serf's bounds {avg_bound} / {max_bound}; Serf itself {:.6} / {:.6})",
        stats.error_avg, stats.error_max, serf.0, serf.1
    );
    assert!(
        stats.error_avg <= avg_bound && stats.error_max <= max_bound,
        "{name}: accuracy out of spec: {stats:?}"
    );
}

#[test]
fn serf_bounds_line() {
    let config = CoordinateConfig::default();
    let mut c = clients(10, &config, 1);
    let truth = line(10, Duration::from_millis(10));
    simulate(&mut c, &truth, 1000, 1);
    check(
        "line",
        &evaluate(&c, &truth),
        0.0018,
        0.0092,
        (0.001735, 0.009168),
    );
}

#[test]
fn serf_bounds_grid() {
    let config = CoordinateConfig::default();
    let mut c = clients(25, &config, 1);
    let truth = grid(25, Duration::from_millis(10));
    simulate(&mut c, &truth, 1000, 1);
    check(
        "grid",
        &evaluate(&c, &truth),
        0.0015,
        0.022,
        (0.001406, 0.015147),
    );
}

#[test]
fn serf_bounds_split() {
    let config = CoordinateConfig::default();
    let mut c = clients(25, &config, 1);
    let truth = split(25, Duration::from_millis(1), Duration::from_millis(10));
    simulate(&mut c, &truth, 1000, 1);
    check(
        "split",
        &evaluate(&c, &truth),
        0.000060,
        0.00048,
        (0.000059, 0.000473),
    );
}

#[test]
fn serf_bounds_circle_uses_height() {
    let radius = Duration::from_millis(100);
    // Two dimensions represent the circle exactly; the centre node's extra
    // distance must go into its height.
    let config = CoordinateConfig {
        dimensionality: 2,
        ..CoordinateConfig::default()
    };
    let mut c = clients(25, &config, 10);
    let truth = circle(25, radius);
    simulate(&mut c, &truth, 1000, 10);
    for (i, client) in c.iter().enumerate() {
        let h = client.coordinate().height;
        if i == 0 {
            assert!(h >= 0.97 * radius.as_secs_f64(), "centre height {h}");
        } else {
            assert!(h <= 0.03 * radius.as_secs_f64(), "node {i} height {h}");
        }
    }
    check(
        "circle",
        &evaluate(&c, &truth),
        0.0025,
        0.064,
        (0.002362, 0.057089),
    );
}

#[test]
fn serf_bounds_gravity_counters_drift() {
    let dist = Duration::from_millis(500).as_secs_f64();
    let config = CoordinateConfig {
        dimensionality: 2,
        ..CoordinateConfig::default()
    };
    let mut c = clients(4, &config, 1);
    // Start the nodes in a square up in the first quadrant, as Serf does
    // (nodes 2 and 3 start on the same corner).
    let starts = [[0.0, 0.0], [0.0, dist], [dist, dist], [dist, dist]];
    for (client, start) in c.iter_mut().zip(starts) {
        let coord = Coordinate {
            vec: start.to_vec(),
            ..client.coordinate().clone()
        };
        client.set_coordinate(coord).expect("valid start");
    }
    // All pairs `dist` apart except the diagonal 0-2.
    let truth = matrix(4, |i, j| {
        if i % 2 == 0 && j % 2 == 0 {
            secs(std::f64::consts::SQRT_2 * dist)
        } else {
            secs(dist)
        }
    });
    // The centre of the bounding box of all coordinates.
    let center_error = |c: &[CoordinateClient]| {
        let mut min = c[0].coordinate().vec.clone();
        let mut max = min.clone();
        for client in &c[1..] {
            for (k, &v) in client.coordinate().vec.iter().enumerate() {
                min[k] = min[k].min(v);
                max[k] = max[k].max(v);
            }
        }
        min.iter()
            .zip(&max)
            .map(|(lo, hi)| (lo + (hi - lo) / 2.0).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    simulate(&mut c, &truth, 1000, 1);
    let baseline = center_error(&c);
    simulate(&mut c, &truth, 10_000, 1);
    let after = center_error(&c);
    println!("drift: centre {baseline:.6} s -> {after:.6} s (Serf requires <= 0.8x)");
    assert!(
        after <= 0.8 * baseline,
        "gravity did not pull the centre in: {baseline} -> {after}"
    );
}

#[test]
fn serf_bounds_random() {
    let config = CoordinateConfig::default();
    let mut c = clients(25, &config, 1);
    let truth = random(25, Duration::from_millis(100), Duration::from_millis(10));
    simulate(&mut c, &truth, 1000, 1);
    check(
        "random",
        &evaluate(&c, &truth),
        0.075,
        0.33,
        (0.052652, 0.264047),
    );
}

/// Serf's own mean error over its seeds 1..=20 (`rand.Seed(k)` in place of
/// `rand.Seed(1)` in `Simulate`), per layout.
const SERF_20_SEED_MEAN: [(&str, f64); 5] = [
    ("line", 0.001999),
    ("grid", 0.001505),
    ("split", 0.000252),
    ("circle", 0.003294),
    ("random", 0.051691),
];

#[test]
fn accuracy_across_seeds() {
    let layouts = [
        ("line", line(10, Duration::from_millis(10)), 8),
        ("grid", grid(25, Duration::from_millis(10)), 8),
        (
            "split",
            split(25, Duration::from_millis(1), Duration::from_millis(10)),
            8,
        ),
        ("circle", circle(25, Duration::from_millis(100)), 2),
        (
            "random",
            random(25, Duration::from_millis(100), Duration::from_millis(10)),
            8,
        ),
    ];
    let mut failures = Vec::new();
    for ((name, truth, dim), (serf_name, serf_mean)) in layouts.into_iter().zip(SERF_20_SEED_MEAN) {
        assert_eq!(name, serf_name);
        let config = CoordinateConfig {
            dimensionality: dim,
            ..CoordinateConfig::default()
        };
        let mut sum = 0.0;
        let mut worst: f64 = 0.0;
        for seed in 1..=20 {
            let mut c = clients(truth.len(), &config, seed);
            simulate(&mut c, &truth, 1000, seed);
            let s = evaluate(&c, &truth);
            sum += s.error_avg;
            worst = worst.max(s.error_avg);
        }
        let mean = sum / 20.0;
        println!("{name}: 20-seed mean avg error {mean:.6}, worst {worst:.6}; Serf's 20-seed mean {serf_mean:.6}");
        if mean > 1.5 * serf_mean {
            failures.push(format!("{name}: {mean} > 1.5 x {serf_mean}"));
        }
    }
    assert!(failures.is_empty(), "less accurate than Serf: {failures:?}");
}
