//! Latency-aware peer selection (issue 6): choosing `k` peers biased toward
//! near ones, by Vivaldi distance, while always keeping uniformly random
//! choices in the mix.
//!
//! # Why a mix
//!
//! Uniform random choice is what makes epidemic dissemination finish in
//! O(log N) rounds and reach every part of the cluster. A selection that
//! only picked near peers would gossip around one region, reach far regions
//! late or never, and could not heal a partition. So every call that picks
//! `k >= 2` peers keeps **at least one slot uniformly random** among all
//! candidates; the other slots (a fraction [`TopologyConfig::near_fraction`]
//! of `k`) go to peers drawn at random among the near ones. With `k = 1`
//! (push/pull partner) the one slot is near with probability
//! `near_fraction` and uniform otherwise. The uniform slots alone are a
//! random gossip graph with fanout at least 1 per round, which keeps the
//! O(log N) bound (with a larger constant) and the reach to far regions.
//!
//! Near picks are spread out: they are drawn uniformly from the *near
//! cluster* ([`near_cluster`]): the candidates within a few times the
//! distance of our nearest, which is our region where there are regions;
//! not from the very nearest few, so that every member of a region is
//! picked by its neighbours about equally often. Only candidates with a known distance
//! count, so the cluster grows with what is known: a node learns a peer's
//! coordinate from its own probes (as Serf does), one peer per probe
//! interval.
//!
//! # When it falls back to uniform
//!
//! [`select`] returns `None`, and the caller makes its usual uniform choice
//! (with exactly the random draws it made before this module existed), when:
//!
//! * selection is off ([`TopologyConfig::enabled`] is false; it is on by
//!   default);
//! * `k == 0` or `k >= n` (every candidate is taken anyway);
//! * our coordinate is unsettled (no coordinate, or its error estimate is
//!   not below [`TopologyConfig::max_error`]);
//! * fewer than [`TopologyConfig::min_known_fraction`] of the candidates,
//!   or fewer than `k`, have a known, settled distance;
//! * there is no near cluster of at least [`min_cluster_size`] members:
//!   distances show no structure worth following (a LAN, or a young
//!   cluster).
//!
//! # Determinism
//!
//! All randomness comes from the RNG passed in (the core's seeded RNG, or
//! NetworkDB's), so a seeded run replays. When selection is off no random
//! number is drawn here, so seeded runs behave exactly as before.

use rand::seq::index;
use rand::Rng;

use crate::coordinate::Coordinate;

/// Settings of latency-aware peer selection ([`crate::Config::topology`]).
///
/// On by default (see [`crate::Config::topology`] for the figures);
/// [`TopologyConfig::off`] restores uniform choice.
#[derive(Clone, Debug, PartialEq)]
pub struct TopologyConfig {
    /// Bias gossip targets, indirect-probe helpers, push/pull partners (and
    /// NetworkDB's table gossip and bulk-sync partners) toward near peers.
    /// Uses [`crate::Config::coordinates`] (without them every choice stays
    /// uniform). Default: true.
    pub enabled: bool,
    /// Share of the `k` slots of one choice given to near peers, in
    /// `[0, 1]`. With `k >= 2` at most `k - 1` slots are near, so at least
    /// one is always uniform. Default: 2/3 (2 of the 3 gossip targets).
    pub near_fraction: f64,
    /// Share of probe rounds, in `[0, 1]`, that probe a random member of
    /// the near cluster instead of the next member in the round-robin
    /// probe order. Default: 2/3. 0 keeps memberlist's round-robin.
    ///
    /// Probes and their acks are about half of an idle cluster's wide-area
    /// bytes; with uniform probing 3 of 4 cross regions in a 4-region
    /// cluster whatever the other settings do. The probe rate a member
    /// receives stays about one per probe interval: every member of a
    /// region is in the near cluster of about every other member, so what
    /// it loses in round-robin probes from far away it gains from its
    /// region. Where there is no near cluster (a LAN) probing stays
    /// round-robin.
    pub probe_near_fraction: f64,
    /// Our coordinate counts as settled (and our choices biased) when its
    /// Vivaldi error estimate is below this (coordinates start at
    /// Serf's `VivaldiErrorMax`, 1.5, and fall as probes agree with them;
    /// Serf never lets the estimate exceed 1.5). Default: 1.5, so any
    /// coordinate that has been adjusted at least once and is not at the
    /// maximum error counts. Peers' coordinates are used whatever their
    /// estimate (see [`peer_usable`]). The estimate is a relative error averaged
    /// over the node's samples: where round trips differ by two orders of
    /// magnitude (1 ms within a region, 100 ms between regions) the short
    /// ones keep it high (1.0 to 1.5 in the simulator with near-biased
    /// probing) although near and far are told apart without fail; at 1.0
    /// so many coordinates went unused that nodes fell back to uniform
    /// choice and the members nobody knew were reached only by uniform
    /// picks. Wrong coordinates cost little: at worst a "near" pick that is
    /// not, and the near cluster must stand out from the rest (see
    /// [`near_cluster`]).
    pub max_error: f64,
    /// Smallest share of the candidates, in `[0, 1]`, that must have a
    /// usable coordinate for the biased choice to be used (and at least
    /// `k` of them must). Default: 0.05: a node learns one peer's
    /// coordinate per probe, so at 1,000 nodes a larger share would keep
    /// the choice uniform for many minutes after a start.
    pub min_known_fraction: f64,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            enabled: true,
            near_fraction: 2.0 / 3.0,
            probe_near_fraction: 2.0 / 3.0,
            max_error: 1.5,
            min_known_fraction: 0.05,
        }
    }
}

impl TopologyConfig {
    /// The default settings with selection turned on.
    pub fn on() -> Self {
        TopologyConfig {
            enabled: true,
            ..TopologyConfig::default()
        }
    }

    /// The default settings with selection turned off (as by default):
    /// uniform choice, as memberlist and Docker's NetworkDB make it.
    pub fn off() -> Self {
        TopologyConfig {
            enabled: false,
            ..TopologyConfig::default()
        }
    }

    /// Checks the ranges; the message says which setting is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.near_fraction) {
            return Err(format!(
                "topology near_fraction {} is outside [0, 1]",
                self.near_fraction
            ));
        }
        if !(0.0..=1.0).contains(&self.probe_near_fraction) {
            return Err(format!(
                "topology probe_near_fraction {} is outside [0, 1]",
                self.probe_near_fraction
            ));
        }
        if !(self.max_error.is_finite() && self.max_error > 0.0) {
            return Err(format!(
                "topology max_error {} must be a positive number",
                self.max_error
            ));
        }
        if !(0.0..=1.0).contains(&self.min_known_fraction) {
            return Err(format!(
                "topology min_known_fraction {} is outside [0, 1]",
                self.min_known_fraction
            ));
        }
        Ok(())
    }

    /// True when `coord` is settled enough to be used: valid and with an
    /// error estimate below [`TopologyConfig::max_error`].
    pub fn is_settled(&self, coord: &Coordinate) -> bool {
        coord.is_valid() && coord.error < self.max_error
    }

    /// Our estimated round trip to `peer` in seconds, or `None` when our
    /// coordinate is unsettled, `peer`'s is unusable (see
    /// [`peer_usable`]) or they are incompatible.
    pub fn distance(&self, ours: &Coordinate, peer: &Coordinate) -> Option<f64> {
        if !self.is_settled(ours) || !peer_usable(peer) {
            return None;
        }
        ours.distance_secs(peer).ok().filter(|d| d.is_finite())
    }
}

/// Whether a peer's coordinate can place it: valid and adjusted at least
/// once (not a fresh node's origin). Its error estimate does not matter:
/// a member whose estimate sits at the maximum (common where 1 ms and
/// 100 ms round trips mix) is still placed in the right region, and
/// leaving it out would leave it to the uniform picks alone, a third of
/// the gossip it gets otherwise.
pub fn peer_usable(peer: &Coordinate) -> bool {
    peer.is_valid() && peer.vec.iter().any(|&x| x != 0.0)
}

impl TopologyConfig {
    /// The round trip between two peers' coordinates in seconds, when both
    /// are usable ([`peer_usable`]).
    pub fn between(&self, a: &Coordinate, b: &Coordinate) -> Option<f64> {
        if !peer_usable(a) || !peer_usable(b) {
            return None;
        }
        a.distance_secs(b).ok().filter(|d| d.is_finite())
    }
}

/// Smallest near cluster worth biasing toward, for `k` picks among `n`
/// candidates with a known distance: `max(2k, ceil(sqrt(n)))`. A smaller
/// one is a few outliers (a peer on the same host, a noisy coordinate),
/// not a region, and near picks from it would hammer the same few peers.
pub fn min_cluster_size(k: usize, n: usize) -> usize {
    let sqrt = (n as f64).sqrt().ceil() as usize;
    (2 * k).max(sqrt)
}

/// The near cluster reaches out to this many times the distance of the
/// `min_size`-th nearest candidate (see [`near_cluster`]).
pub const NEAR_SPREAD: f64 = 8.0;

/// Reduces `known`, pairs of (distance, candidate), to the *near cluster*:
/// the candidates at most [`NEAR_SPREAD`] times as far as the `min_size`-th
/// nearest. Empties it unless at least `min_size` candidates are farther
/// than that: distances without latency structure (a LAN, where "nearest"
/// is measurement noise and biasing toward it only slows dissemination
/// down) differ by much less than a factor of 8, so everyone would be
/// "near". Linear time; the survivors' order is unspecified but
/// deterministic.
///
/// The reference is a low quantile, not the median, on purpose. With
/// near-biased probing a node learns its own region's coordinates first,
/// so the median of the *known* distances is often a near one; and seen
/// from a region with others at 50, 100 and 150 ms, half the median is
/// 50 ms, which the nearest other region straddles. The `min_size`-th
/// nearest is inside our region wherever it has that many members, and
/// regions are far more than 8 times farther apart than their members
/// are (1 to 3 ms against 50 ms and up in the simulator's model). Nor is
/// it the very nearest: the few smallest distances can differ by large
/// factors without meaning anything (0.1 ms against 0.3 ms). Looking for
/// a jump in the sorted distances instead (tried) fails on real data: a
/// handful of coordinates still settling fill the gap between regions.
///
/// Near picks are drawn uniformly from the whole cluster, not from the
/// few nearest: in a region every member then is a near pick of the
/// others about equally often. With a pool of the nearest few, a member
/// at the edge of its region in coordinate space was in few pools and was
/// reached late (in the simulator, one table write reached its last
/// attached node after 16 s instead of 1.5 s), and near-biased probing
/// would probe it less often than the rest.
pub fn near_cluster(known: &mut Vec<(f64, usize)>, min_size: usize) {
    let min_size = min_size.max(1);
    if known.len() < 2 * min_size {
        known.clear();
        return;
    }
    let by_distance = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let (_, reference, _) = known.select_nth_unstable_by(min_size - 1, by_distance);
    let bound = NEAR_SPREAD * reference.0;
    let before = known.len();
    known.retain(|&(d, _)| d <= bound);
    if before - known.len() < min_size {
        known.clear();
    }
}

/// How many of `k` slots go to near peers: `k * near_fraction`, the
/// fractional part drawn at random from `rng` (one draw), never all `k`
/// when `k >= 2`.
pub fn near_slots<R: Rng + ?Sized>(cfg: &TopologyConfig, rng: &mut R, k: usize) -> usize {
    let want = k as f64 * cfg.near_fraction;
    let mut near = want.floor() as usize;
    if rng.gen::<f64>() < want - want.floor() {
        near += 1;
    }
    if k >= 2 {
        near = near.min(k - 1);
    }
    near.min(k)
}

/// Chooses `k` of `n` candidates biased toward near ones, or returns
/// `None` when the caller should choose uniformly instead (see the module
/// docs for when). `distance(i)` is the estimated distance (any unit,
/// smaller is nearer) to candidate `i`, or `None` when unknown.
/// `settled` says whether our own coordinate is settled.
///
/// The result holds `k` distinct indices in `0..n`: first the near picks
/// (random among the near cluster), then the uniform ones (random among
/// all candidates not yet picked). Draws from `rng` only when it returns
/// `Some`. Costs one `distance` call per candidate and a linear-time
/// partial selection.
pub fn select<R: Rng + ?Sized>(
    cfg: &TopologyConfig,
    rng: &mut R,
    n: usize,
    k: usize,
    settled: bool,
    distance: impl Fn(usize) -> Option<f64>,
) -> Option<Vec<usize>> {
    if !cfg.enabled || !settled || k == 0 || k >= n {
        return None;
    }
    let mut known: Vec<(f64, usize)> = (0..n)
        .filter_map(|i| distance(i).filter(|d| d.is_finite()).map(|d| (d, i)))
        .collect();
    if (known.len() as f64) < cfg.min_known_fraction * n as f64 || known.len() < k {
        return None;
    }
    let min = min_cluster_size(k, known.len());
    near_cluster(&mut known, min);
    if known.is_empty() {
        return None;
    }
    let near = near_slots(cfg, rng, k).min(known.len());
    let mut chosen: Vec<usize> = index::sample(rng, known.len(), near)
        .into_iter()
        .map(|j| known[j].1)
        .collect();
    // The rest uniformly among every candidate not chosen yet.
    let rest: Vec<usize> = (0..n).filter(|i| !chosen.contains(i)).collect();
    chosen.extend(
        index::sample(rng, rest.len(), k - chosen.len())
            .into_iter()
            .map(|j| rest[j]),
    );
    Some(chosen)
}

/// [`select`], with the uniform fallback done here: always returns
/// `min(k, n)` distinct indices in `0..n`. For callers with no uniform
/// choice of their own to preserve.
pub fn choose<R: Rng + ?Sized>(
    cfg: &TopologyConfig,
    rng: &mut R,
    n: usize,
    k: usize,
    settled: bool,
    distance: impl Fn(usize) -> Option<f64>,
) -> Vec<usize> {
    select(cfg, rng, n, k, settled, distance)
        .unwrap_or_else(|| index::sample(rng, n, k.min(n)).into_vec())
}

/// Estimated distances from one node to its peers, by name: what
/// NetworkDB (or any layer above the core) needs to bias its own choices.
/// Take one with [`crate::Memberlist::topology_view`] just before choosing.
#[derive(Clone, Debug, Default)]
pub struct TopologyView {
    /// The settings in effect.
    pub config: TopologyConfig,
    /// Whether our own coordinate is settled.
    pub settled: bool,
    /// Estimated round trip in seconds to each peer with a settled
    /// coordinate.
    pub distances: std::collections::HashMap<String, f64>,
}

impl TopologyView {
    /// [`select`] over `names`, with this view's distances.
    pub fn select<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        names: &[&str],
        k: usize,
    ) -> Option<Vec<usize>> {
        select(&self.config, rng, names.len(), k, self.settled, |i| {
            self.distances.get(names[i]).copied()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Two regions: every fourth candidate is in ours, about 1 ms away
    /// (slightly more for higher indices), the rest about 100 ms away.
    fn dist(i: usize) -> Option<f64> {
        let base = if i % 4 == 0 { 0.001 } else { 0.100 };
        Some(base * (1.0 + i as f64 / 10_000.0))
    }

    /// Distances with no structure: 1 ms give or take 30 %.
    fn flat(i: usize) -> Option<f64> {
        let wobble = ((i * 7919) % 601) as f64 / 1000.0 - 0.3;
        Some(0.001 * (1.0 + wobble))
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(42)
    }

    #[test]
    fn off_unsettled_or_unknown_falls_back_and_draws_nothing() {
        let on = TopologyConfig::on();
        type Distance = fn(usize) -> Option<f64>;
        let cases: [(TopologyConfig, bool, Distance); 3] = [
            (TopologyConfig::off(), true, dist),
            (on.clone(), false, dist),
            // Only 1 in 25 known: below min_known_fraction (0.05).
            (on.clone(), true, |i| (i % 25 == 0).then_some(0.001)),
        ];
        for (cfg, settled, d) in cases {
            let mut r = rng();
            assert_eq!(select(&cfg, &mut r, 100, 3, settled, d), None);
            assert_eq!(r, rng(), "no random number drawn on fallback");
        }
        // The convenience form falls back to a uniform sample.
        let mut r = rng();
        let picked = choose(&TopologyConfig::off(), &mut r, 100, 3, true, dist);
        let expected = index::sample(&mut rng(), 100, 3).into_vec();
        assert_eq!(picked, expected);
    }

    #[test]
    fn k_at_least_n_takes_everyone() {
        let cfg = TopologyConfig::on();
        for (n, k) in [(3, 3), (3, 5), (0, 2), (1, 1)] {
            let mut got = choose(&cfg, &mut rng(), n, k, true, dist);
            got.sort_unstable();
            assert_eq!(got, (0..n).collect::<Vec<_>>());
        }
        assert!(choose(&cfg, &mut rng(), 10, 0, true, dist).is_empty());
    }

    #[test]
    fn picks_are_distinct_and_in_range() {
        let cfg = TopologyConfig {
            near_fraction: 1.0,
            ..TopologyConfig::on()
        };
        let mut r = rng();
        let mut biased = 0;
        for n in 2..80 {
            for k in 1..n {
                let Some(got) = select(&cfg, &mut r, n, k, true, dist) else {
                    continue;
                };
                biased += 1;
                assert_eq!(got.len(), k);
                let mut s = got.clone();
                s.sort_unstable();
                s.dedup();
                assert_eq!(s.len(), k, "duplicates in {got:?}");
                assert!(got.iter().all(|&i| i < n));
            }
        }
        assert!(biased > 100, "only {biased} biased choices");
    }

    #[test]
    fn near_cluster_is_our_region() {
        // 50 of 200 near (1 to 1.5 ms), the rest 50 to 150 ms.
        let mut known: Vec<(f64, usize)> = (0..200)
            .map(|i| {
                let d = if i < 50 {
                    0.001 + i as f64 * 1e-5
                } else {
                    0.050 + (i - 50) as f64 * 0.1 / 150.0
                };
                (d, i)
            })
            .collect();
        near_cluster(&mut known, min_cluster_size(3, 200));
        let mut ids: Vec<usize> = known.iter().map(|k| k.1).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());

        // Seen from the region nearest to another: ours at 0.5 to 3 ms,
        // then 50 members at 45 to 55 ms (straddling half the median distance),
        // 50 at 100 ms and 50 at 150 ms.
        let mut straddle: Vec<(f64, usize)> = (0..200)
            .map(|i| {
                let j = (i % 50) as f64 / 49.0;
                let d = match i / 50 {
                    0 => 0.0005 + 0.0025 * j,
                    1 => 0.045 + 0.010 * j,
                    2 => 0.100 + 0.001 * j,
                    _ => 0.150 + 0.001 * j,
                };
                (d, i)
            })
            .collect();
        near_cluster(&mut straddle, min_cluster_size(3, 200));
        let mut ids: Vec<usize> = straddle.iter().map(|k| k.1).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());

        // Three outliers (same host, say) are not a cluster.
        let mut few: Vec<(f64, usize)> = (0..200)
            .map(|i| (if i < 3 { 0.0001 } else { 0.001 }, i))
            .collect();
        near_cluster(&mut few, min_cluster_size(3, 200));
        assert!(few.is_empty());

        // Nor is the low end of measurement noise.
        let mut noise: Vec<(f64, usize)> = (0..200).map(|i| (flat(i).unwrap(), i)).collect();
        near_cluster(&mut noise, min_cluster_size(3, 200));
        assert!(noise.is_empty());
    }

    #[test]
    fn distances_without_structure_fall_back_to_uniform() {
        let cfg = TopologyConfig::on();
        for (n, k) in [(20, 3), (100, 3), (1000, 3), (1000, 1)] {
            let mut r = rng();
            assert_eq!(select(&cfg, &mut r, n, k, true, flat), None);
            assert_eq!(r, rng(), "no random number drawn on fallback");
        }
    }

    /// 400 candidates, every fourth in our region; k = 3: the near cluster
    /// is our region's 100. Over many draws, 2 of 3 picks on average are in
    /// it (plus the uniform slot's chance), and the uniform slot covers the
    /// whole range.
    #[test]
    fn settled_picks_are_mostly_near_with_one_uniform_slot_each_call() {
        let cfg = TopologyConfig::on();
        let (n, k, calls) = (400, 3, 20_000);
        let near = |i: usize| i % 4 == 0;
        let mut r = rng();
        let mut near_picks = 0usize;
        let mut per_candidate = vec![0usize; n];
        for _ in 0..calls {
            let got = select(&cfg, &mut r, n, k, true, dist).unwrap();
            near_picks += got.iter().filter(|&&i| near(i)).count();
            // Exactly 2 near slots (k * 2/3); the third is uniform among
            // the rest.
            assert!(got[..2].iter().all(|&i| near(i)), "{got:?}");
            for &i in &got {
                per_candidate[i] += 1;
            }
        }
        let near_share = near_picks as f64 / (calls * k) as f64;
        // Expected: (2 + 98/398) / 3 = 0.749.
        assert!(
            (0.73..0.77).contains(&near_share),
            "near share {near_share}"
        );
        // Every candidate is reached, the farthest included.
        assert!(per_candidate.iter().all(|&c| c > 0), "someone never picked");
        // Near picks are spread over the whole region, not stuck on the
        // nearest: about 450 picks each.
        let (lo, hi) = (0..n)
            .filter(|&i| near(i))
            .map(|i| per_candidate[i])
            .fold((usize::MAX, 0), |(lo, hi), c| (lo.min(c), hi.max(c)));
        assert!(hi * 10 < lo * 13, "region load from {lo} to {hi}");
    }

    #[test]
    fn single_slot_is_near_with_the_configured_probability() {
        let cfg = TopologyConfig::on();
        let (n, calls) = (100, 30_000);
        let mut r = rng();
        let near = (0..calls)
            .filter(|_| select(&cfg, &mut r, n, 1, true, dist).unwrap()[0] % 4 == 0)
            .count();
        // 2/3 near + 1/3 * 25/100 uniform hits in the region = 0.75.
        let share = near as f64 / calls as f64;
        assert!((0.73..0.77).contains(&share), "near share {share}");
    }

    #[test]
    fn unknown_candidates_are_only_reached_by_uniform_slots() {
        let cfg = TopologyConfig::on();
        let mut r = rng();
        // Odd candidates have no coordinate.
        let d = |i: usize| if i % 2 == 0 { dist(i) } else { None };
        let mut seen_odd = false;
        for _ in 0..2000 {
            let got = select(&cfg, &mut r, 64, 3, true, d).unwrap();
            assert!(got[..2].iter().all(|i| i % 2 == 0));
            seen_odd |= got[2] % 2 == 1;
        }
        assert!(seen_odd);
    }

    #[test]
    fn settledness_and_distance_follow_the_error_threshold() {
        let cfg = TopologyConfig::on();
        let mut a = Coordinate::origin(&Default::default());
        let mut b = a.clone();
        b.vec[0] = 0.010;
        assert_eq!(
            cfg.distance(&a, &b),
            None,
            "fresh coordinates have error 1.5"
        );
        a.error = 0.2;
        let d = cfg.distance(&a, &b).unwrap();
        assert!((d - (0.010 + 2.0 * a.height)).abs() < 1e-12, "{d}");
        // A peer's error estimate does not matter, ours does.
        b.error = 1.5;
        assert_eq!(cfg.distance(&a, &b), Some(d));
        a.error = 1.5;
        assert_eq!(cfg.distance(&a, &b), None);
        let strict = TopologyConfig {
            max_error: 0.5,
            ..TopologyConfig::on()
        };
        a.error = 0.5;
        assert_eq!(strict.distance(&a, &b), None);
        a.error = 0.49;
        assert_eq!(strict.distance(&a, &b), Some(d));
        // A fresh peer (at the origin) cannot be placed.
        let fresh = Coordinate::origin(&Default::default());
        assert_eq!(strict.distance(&a, &fresh), None);
        assert_eq!(cfg.between(&b, &fresh), None);
        let mut c = b.clone();
        c.vec[1] = 0.020;
        assert!((cfg.between(&b, &c).unwrap() - b.distance_secs(&c).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(TopologyConfig::default().validate().is_ok());
        for bad in [
            TopologyConfig {
                near_fraction: 1.5,
                ..Default::default()
            },
            TopologyConfig {
                max_error: 0.0,
                ..Default::default()
            },
            TopologyConfig {
                max_error: f64::NAN,
                ..Default::default()
            },
            TopologyConfig {
                min_known_fraction: -0.1,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
