//! Latency-aware peer selection: choosing `k` peers biased toward
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
//! Near picks are spread out: they come from the whole *near cluster*
//! ([`near_cluster`]): the candidates within a few times the distance of
//! our nearest, with that boundary moved into the gap between the near
//! and the far distances, which is our region where there are regions;
//! not from the very nearest few. Callers that pick round after round
//! (gossip, probes, NetworkDB's table gossip) walk the cluster in a
//! shuffled order ([`NearRotation`]), so every member of a region is
//! picked by each neighbour that knows it once per walk, not a Poisson
//! number of times. Only candidates with a known distance count, so the
//! cluster grows with what is known: a node learns a peer's coordinate
//! from its own probes (as Serf does), one peer per probe interval.
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

use rand::seq::{index, SliceRandom};
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
/// nearest, with that boundary then moved to where the distances split
/// into a near and a far group (see `refine_split`). Empties it unless at
/// least `min_size` candidates are farther than the boundary: distances
/// without latency structure (a LAN, where "nearest" is measurement noise
/// and biasing toward it only slows dissemination down) differ by much
/// less than a factor of 8, so everyone would be "near". Linear time; the
/// survivors' order is unspecified but deterministic.
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
/// Near picks come from the whole cluster (in a walk, see
/// [`NearRotation`]), not from the few nearest: in a region every member
/// then is a near pick of the others about equally often. With a pool of the nearest few, a member
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
    let start = NEAR_SPREAD * reference.0;
    let bound = refine_split(known, start, min_size);
    let before = known.len();
    known.retain(|&(d, _)| d <= bound);
    if before - known.len() < min_size {
        known.clear();
    }
}

/// Most refinement steps [`near_cluster`] takes.
const REFINE_STEPS: usize = 8;

/// Moves the near/far boundary `bound` to where the candidates split:
/// the midpoint (in log distance) between the mean log distance of those
/// within it and of those beyond, repeated until it stops moving (two
/// means, one dimension). A step that would leave fewer than `min_size`
/// on either side is not taken, so where there is no split (everyone on
/// one side) `bound` comes back unchanged.
///
/// Why: the starting bound, [`NEAR_SPREAD`] times a near distance, is
/// right when our region's coordinates sit tightly together, but a region
/// between two others (in the simulator's 4-region model, the two middle
/// ones) settles slowly: four minutes into a cluster's life its members
/// estimated each other 2 to 20 ms apart (truly 1 ms), the starting bound
/// came out at 40 to 80 ms, and one node in ten took in the nearest other
/// region (estimated 37 ms and up) as well. Those nodes sent a third of
/// their near picks across regions and gave their own region's members a
/// third of the near picks they should have; the members they starved
/// missed table writes that reached everyone else within a second, and
/// waited up to 12 s for a bulk sync. The midpoint lands in the gap
/// between the groups, about 20 ms there, whatever the spread within our
/// region. Linear time per step.
fn refine_split(known: &[(f64, usize)], mut bound: f64, min_size: usize) -> f64 {
    let log = |d: f64| d.max(1e-9).ln();
    let sides = |b: f64| {
        let (mut near, mut far) = ((0.0, 0usize), (0.0, 0usize));
        for &(d, _) in known {
            let side = if d <= b { &mut near } else { &mut far };
            side.0 += log(d);
            side.1 += 1;
        }
        (near, far)
    };
    for _ in 0..REFINE_STEPS {
        let ((near_sum, near_n), (far_sum, far_n)) = sides(bound);
        if near_n < min_size || far_n < min_size {
            break;
        }
        let next = ((near_sum / near_n as f64 + far_sum / far_n as f64) / 2.0).exp();
        let ((_, near_next), (_, far_next)) = sides(next);
        if next == bound || near_next < min_size || far_next < min_size {
            break;
        }
        bound = next;
    }
    bound
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
/// partial selection. A caller that chooses repeatedly from the same
/// cluster should use [`select_near_by`] with a [`NearRotation`] instead.
pub fn select<R: Rng + ?Sized>(
    cfg: &TopologyConfig,
    rng: &mut R,
    n: usize,
    k: usize,
    settled: bool,
    distance: impl Fn(usize) -> Option<f64>,
) -> Option<Vec<usize>> {
    select_near_by(cfg, rng, n, k, settled, distance, |rng, cluster, m| {
        index::sample(rng, cluster.len(), m)
            .into_iter()
            .map(|j| cluster[j])
            .collect()
    })
}

/// [`select`], with the near picks made by `near(rng, cluster, m)`: up to
/// `m` distinct indices taken from `cluster` (the near cluster's candidate
/// indices, `m <= cluster.len()`). Returning fewer leaves more slots to the
/// uniform picks. Falls back (returns `None`) exactly when [`select`] does.
pub fn select_near_by<R: Rng + ?Sized>(
    cfg: &TopologyConfig,
    rng: &mut R,
    n: usize,
    k: usize,
    settled: bool,
    distance: impl Fn(usize) -> Option<f64>,
    near: impl FnOnce(&mut R, &[usize], usize) -> Vec<usize>,
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
    let m = near_slots(cfg, rng, k).min(known.len());
    let cluster: Vec<usize> = known.iter().map(|&(_, i)| i).collect();
    let mut chosen = near(rng, &cluster, m);
    chosen.truncate(m);
    // The rest uniformly among every candidate not chosen yet.
    let rest: Vec<usize> = (0..n).filter(|i| !chosen.contains(i)).collect();
    chosen.extend(
        index::sample(rng, rest.len(), k - chosen.len())
            .into_iter()
            .map(|j| rest[j]),
    );
    Some(chosen)
}

/// A walk through the near cluster in shuffled order, for a caller that
/// makes near picks round after round (gossip, probes): every member of
/// the cluster is picked once before any is picked twice.
///
/// Why not independent random picks: a member of our region is then
/// picked by a neighbour a Poisson number of times, and a member that few
/// neighbours know yet (in a young cluster a node has probed, and so
/// knows the coordinate of, only part of its region) can go a whole
/// dissemination without any near pick. In the simulator (400 NetworkDB
/// nodes, 4 regions, 4 minutes old) such a node missed table writes that
/// every other node had within 0.7 s and waited up to 20 s for a bulk
/// sync. Walking the cluster turns "picked with probability about
/// `1 - e^(-s/c)`" (for `s` near slots over a cluster of `c`) into
/// "picked with probability `min(1, s/c)`".
#[derive(Clone, Debug)]
pub struct NearRotation<T> {
    order: Vec<T>,
    next: usize,
}

impl<T> Default for NearRotation<T> {
    fn default() -> Self {
        NearRotation {
            order: Vec::new(),
            next: 0,
        }
    }
}

impl<T: Clone + PartialEq> NearRotation<T> {
    /// Up to `n` distinct members, continuing the walk where the last call
    /// stopped. Members reached that fail `keep` (no longer in the cluster,
    /// or not eligible right now) are passed over. When the walk is used
    /// up, a new one starts over `cluster()` shuffled with `rng`, at most
    /// once per call, so a call ends even when nothing passes `keep`.
    /// Members that joined the cluster during a walk are in the next one.
    pub fn take<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        n: usize,
        keep: impl Fn(&T) -> bool,
        cluster: impl FnOnce() -> Vec<T>,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(n);
        let mut cluster = Some(cluster);
        while out.len() < n {
            if self.next >= self.order.len() {
                let Some(fresh) = cluster.take() else {
                    break;
                };
                self.order = fresh();
                self.order.shuffle(rng);
                self.next = 0;
                if self.order.is_empty() {
                    break;
                }
            }
            let x = &self.order[self.next];
            self.next += 1;
            if keep(x) && !out.contains(x) {
                out.push(x.clone());
            }
        }
        out
    }

    /// [`NearRotation::take`] over candidate positions: `pool` holds the
    /// positions of the cluster members eligible now, `name(i)` names
    /// position `i` and `owned(i)` is the key the walk keeps for it (the
    /// same name, owned). Returns up to `n` positions from `pool`.
    pub fn take_from<'a, R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        n: usize,
        pool: &[usize],
        name: impl Fn(usize) -> &'a str,
        owned: impl Fn(usize) -> T,
    ) -> Vec<usize>
    where
        T: std::borrow::Borrow<str>,
    {
        let index: std::collections::HashMap<&str, usize> =
            pool.iter().map(|&i| (name(i), i)).collect();
        self.take(
            rng,
            n,
            |key| index.contains_key(key.borrow()),
            || pool.iter().map(|&i| owned(i)).collect(),
        )
        .iter()
        .map(|key| index[key.borrow()])
        .collect()
    }
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

    /// [`TopologyView::select`] for a caller that chooses round after
    /// round: the near picks continue `walk` (see [`NearRotation`]), keyed
    /// by name, so every member of the near cluster is picked once before
    /// any twice. Keep one walk per pool of candidates (NetworkDB keeps one
    /// per network).
    pub fn select_rotating<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        names: &[&str],
        k: usize,
        walk: &mut NearRotation<String>,
    ) -> Option<Vec<usize>> {
        let distance = |i: usize| self.distances.get(names[i]).copied();
        select_near_by(
            &self.config,
            rng,
            names.len(),
            k,
            self.settled,
            distance,
            |rng, cluster, m| {
                walk.take_from(rng, m, cluster, |i| names[i], |i| names[i].to_string())
            },
        )
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
        let base = if i.is_multiple_of(4) { 0.001 } else { 0.100 };
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
        let mut straddle = bands(
            50,
            [
                (0.0005, 0.0025),
                (0.045, 0.010),
                (0.100, 0.001),
                (0.150, 0.001),
            ],
        );
        near_cluster(&mut straddle, min_cluster_size(3, 200));
        assert_eq!(ids_of(&straddle), (0..50).collect::<Vec<_>>());

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
        let near = |i: usize| i.is_multiple_of(4);
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
        let d = |i: usize| if i.is_multiple_of(2) { dist(i) } else { None };
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

    /// Four groups of `per` candidates (ids in order), group `g` spread
    /// evenly over `[lo, lo + width]` seconds for `(lo, width) = groups[g]`.
    fn bands(per: usize, groups: [(f64, f64); 4]) -> Vec<(f64, usize)> {
        (0..4 * per)
            .map(|i| {
                let (lo, width) = groups[i / per];
                (lo + width * (i % per) as f64 / (per - 1) as f64, i)
            })
            .collect()
    }

    /// The candidate ids left in `known`, sorted.
    fn ids_of(known: &[(f64, usize)]) -> Vec<usize> {
        let mut ids: Vec<usize> = known.iter().map(|k| k.1).collect();
        ids.sort_unstable();
        ids
    }

    /// A region whose members still see each other 2 to 20 ms apart (a
    /// middle region, young): 8 times its 11th nearest is 66 ms, which
    /// takes in the next region at 37 to 45 ms. The split moves the
    /// boundary into the gap, so the cluster is our region alone.
    #[test]
    fn near_cluster_leaves_out_the_next_region_when_ours_is_spread() {
        let mut known = bands(
            30,
            [
                (0.002, 0.018),
                (0.037, 0.008),
                (0.070, 0.002),
                (0.120, 0.005),
            ],
        );
        let min = min_cluster_size(3, known.len());
        let mut unrefined = known.clone();
        let (_, reference, _) =
            unrefined.select_nth_unstable_by(min - 1, |a, b| a.0.total_cmp(&b.0));
        let start = NEAR_SPREAD * reference.0;
        assert!(
            start > 0.045,
            "the starting bound {start} straddles the next region"
        );
        near_cluster(&mut known, min);
        assert_eq!(ids_of(&known), (0..30).collect::<Vec<_>>());
    }

    /// A walk takes every member once before any twice, across calls,
    /// passes over members `keep` rejects, and picks up members that joined
    /// the cluster when the next walk starts.
    #[test]
    fn near_rotation_takes_every_member_once_before_any_twice() {
        let mut r = rng();
        let mut walk: NearRotation<u32> = NearRotation::default();
        let cluster: Vec<u32> = (0..10).collect();
        let mut first_walk = Vec::new();
        for _ in 0..5 {
            let got = walk.take(&mut r, 2, |_| true, || cluster.clone());
            assert_eq!(got.len(), 2);
            first_walk.extend(got);
        }
        first_walk.sort_unstable();
        assert_eq!(first_walk, cluster, "one walk covers the cluster exactly");

        // Member 3 left the cluster; 10 and 11 joined. The next walk (this
        // call starts it) is over the new cluster and never yields 3.
        let now: Vec<u32> = (0..12).filter(|&m| m != 3).collect();
        let mut second = Vec::new();
        for _ in 0..11 {
            second.extend(walk.take(&mut r, 1, |m| *m != 3, || now.clone()));
        }
        second.sort_unstable();
        assert_eq!(second, now);

        // Nothing passes `keep`: the call ends, empty.
        assert!(walk.take(&mut r, 2, |_| false, || now.clone()).is_empty());
        // An empty cluster: empty too.
        let mut empty: NearRotation<u32> = NearRotation::default();
        assert!(empty.take(&mut r, 2, |_| true, Vec::new).is_empty());
    }
}
