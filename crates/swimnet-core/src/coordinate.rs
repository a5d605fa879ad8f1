//! Vivaldi network coordinates, compatible with Serf's `coordinate` package.
//!
//! Every node keeps an estimated position in a small synthetic space
//! (8 Euclidean dimensions plus a non-Euclidean *height*, an *adjustment*
//! offset and an *error* that says how much to trust the position). After
//! each successful direct probe, the node moves its own position a little,
//! towards or away from the peer, so that the distance between the two
//! positions matches the round trip time it just measured. Once positions
//! have settled, the round trip time between *any* two nodes can be
//! estimated from their coordinates alone ([`Coordinate::distance_to`]).
//!
//! The algorithm and its constants are Serf's (`serf/coordinate`, built on
//! Dabek et al., "Vivaldi", SIGCOMM 2004; Ledlie et al., "Network
//! Coordinates in the Wild", NSDI 2007; Lee et al., "On suitability of
//! Euclidean embedding", 2010), so swimnet nodes and Serf agents can share
//! one coordinate space: [`encode_ping_payload`] and
//! [`decode_ping_payload`] are the bytes Serf puts in probe acks.
//!
//! All values are in **seconds**. An update, [`CoordinateClient::update`],
//! runs these steps in order:
//!
//! 1. the peer's coordinate and the RTT are checked; anything non-finite,
//!    of the wrong dimensionality, absurdly large, or an RTT over 10 s is
//!    refused with a [`CoordinateError`] and changes nothing;
//! 2. the RTT goes through a per-peer moving-median filter (3 samples);
//! 3. the Vivaldi step moves our vector and height and updates our error;
//! 4. the adjustment becomes half the mean of the last 20 `rtt - distance`
//!    residuals;
//! 5. a weak gravity pulls the coordinate towards the origin so the whole
//!    cluster does not drift away;
//! 6. if the result is not a valid coordinate any more, ours is reset to
//!    the origin (and [`ClientStats::resets`] counts it).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swimnet_wire::msgpack::{FieldKey, Reader, Writer};
use swimnet_wire::WireError;

/// The version byte that starts Serf's ack payload (`serf.PingVersion`).
pub const PING_VERSION: u8 = 1;

/// Largest RTT accepted as an observation, as in Serf.
pub const MAX_RTT: Duration = Duration::from_secs(10);

/// Largest magnitude, in seconds, of any single component (vector element,
/// height, adjustment) of a peer's coordinate we accept.
///
/// Serf accepts any finite value. Real coordinates stay within a few times
/// the largest RTT in the cluster (RTTs above [`MAX_RTT`] are refused, and
/// gravity keeps the cluster near the origin), so a component ten times
/// that can only come from a broken or hostile peer; accepting it would
/// throw our own coordinate far away in one step.
pub const MAX_COMPONENT_SECONDS: f64 = 100.0;

/// Largest dimensionality the payload decoder accepts (Serf uses 8).
pub const MAX_DIMENSIONALITY: usize = 64;

/// Distances below this are treated as zero (two coordinates on top of each
/// other), as in Serf.
const ZERO_THRESHOLD: f64 = 1.0e-6;

/// Tuning of the Vivaldi algorithm. [`CoordinateConfig::default`] is Serf's
/// `coordinate.DefaultConfig()`; nodes sharing a coordinate space must use
/// the same dimensionality.
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinateConfig {
    /// Euclidean dimensions (Serf: 8). Coordinates of another
    /// dimensionality are refused.
    pub dimensionality: usize,
    /// Error of a node that has not observed anything yet, and the ceiling
    /// of the error afterwards (Serf: 1.5).
    pub vivaldi_error_max: f64,
    /// How much one observation can change our error estimate (Vivaldi's
    /// `c_e`, Serf: 0.25).
    pub vivaldi_ce: f64,
    /// How much one observation can move our coordinate (Vivaldi's `c_c`,
    /// Serf: 0.25).
    pub vivaldi_cc: f64,
    /// Residuals kept to compute the adjustment term (Serf: 20); 0 turns
    /// the adjustment off.
    pub adjustment_window_size: usize,
    /// Smallest height, in seconds (Serf: 10 µs).
    pub height_min: f64,
    /// RTT samples kept per peer for the moving median (Serf: 3).
    pub latency_filter_size: usize,
    /// Gravity constant ρ, in seconds (Serf: 150): the pull towards the
    /// origin is `(distance / ρ)²` per update.
    pub gravity_rho: f64,
}

impl Default for CoordinateConfig {
    fn default() -> Self {
        CoordinateConfig {
            dimensionality: 8,
            vivaldi_error_max: 1.5,
            vivaldi_ce: 0.25,
            vivaldi_cc: 0.25,
            adjustment_window_size: 20,
            height_min: 10.0e-6,
            latency_filter_size: 3,
            gravity_rho: 150.0,
        }
    }
}

impl CoordinateConfig {
    /// Checks that the settings can work; the message names the setting to
    /// fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.dimensionality == 0 || self.dimensionality > MAX_DIMENSIONALITY {
            return Err(format!(
                "coordinate dimensionality must be in 1..={MAX_DIMENSIONALITY} (Serf uses 8)"
            ));
        }
        if self.latency_filter_size == 0 {
            return Err("coordinate latency_filter_size must be at least 1".into());
        }
        let positive = [
            ("vivaldi_error_max", self.vivaldi_error_max),
            ("vivaldi_ce", self.vivaldi_ce),
            ("vivaldi_cc", self.vivaldi_cc),
            ("height_min", self.height_min),
            ("gravity_rho", self.gravity_rho),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "coordinate {name} must be a positive finite number"
                ));
            }
        }
        if self.height_min > MAX_COMPONENT_SECONDS {
            return Err(format!(
                "coordinate height_min must not exceed {MAX_COMPONENT_SECONDS} s"
            ));
        }
        Ok(())
    }
}

/// Why a coordinate or an observation was refused. Whenever a
/// [`CoordinateClient`] method returns one, its state is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinateError {
    /// The two coordinates have different dimensionalities.
    #[error("coordinate has {theirs} dimensions, ours has {ours}")]
    DimensionMismatch {
        /// Our dimensionality.
        ours: usize,
        /// The other coordinate's.
        theirs: usize,
    },
    /// A component is NaN or infinite.
    #[error("coordinate {field} is not a finite number")]
    NonFinite {
        /// `vec`, `error`, `adjustment` or `height`.
        field: &'static str,
    },
    /// A component is finite but outside the range a real coordinate can
    /// have (see [`MAX_COMPONENT_SECONDS`]; error and height must not be
    /// negative).
    #[error("coordinate {field} = {value} is out of range")]
    OutOfRange {
        /// `vec`, `error`, `adjustment` or `height`.
        field: &'static str,
        /// The offending value.
        value: f64,
    },
    /// The round trip time is over [`MAX_RTT`].
    #[error("round trip time {rtt:?} is over the {max:?} limit")]
    RttOutOfRange {
        /// The RTT given.
        rtt: Duration,
        /// The limit.
        max: Duration,
    },
}

/// Why an ack payload could not be read as a coordinate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PingPayloadError {
    /// The payload is empty (a peer without coordinates); not an error for
    /// Serf, which ignores it.
    #[error("empty ack payload")]
    Empty,
    /// The first byte is not [`PING_VERSION`].
    #[error("unsupported ping payload version {0}")]
    UnsupportedVersion(u8),
    /// The msgpack after the version byte is not a coordinate.
    #[error("malformed coordinate: {0}")]
    Malformed(#[from] WireError),
    /// The vector has more than [`MAX_DIMENSIONALITY`] elements.
    #[error("coordinate has {0} dimensions, more than the decoder accepts")]
    TooManyDimensions(u32),
}

/// A position in the coordinate space (Serf's `coordinate.Coordinate`).
/// All fields are in seconds, except `error`, which has no unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Coordinate {
    /// The Euclidean part.
    pub vec: Vec<f64>,
    /// Confidence in this position: small is good. Starts at
    /// [`CoordinateConfig::vivaldi_error_max`].
    pub error: f64,
    /// An offset added to distances, learned from recent residuals.
    pub adjustment: f64,
    /// Non-Euclidean part: the node's "access link", always at least
    /// [`CoordinateConfig::height_min`].
    pub height: f64,
}

impl Coordinate {
    /// The starting coordinate: the origin, with the largest error and the
    /// smallest height.
    pub fn origin(config: &CoordinateConfig) -> Coordinate {
        Coordinate {
            vec: vec![0.0; config.dimensionality],
            error: config.vivaldi_error_max,
            adjustment: 0.0,
            height: config.height_min,
        }
    }

    /// True when every component is finite (Serf's `IsValid`).
    pub fn is_valid(&self) -> bool {
        self.vec.iter().all(|v| v.is_finite())
            && self.error.is_finite()
            && self.adjustment.is_finite()
            && self.height.is_finite()
    }

    /// Checks that every component is finite and within the range a real
    /// coordinate can have: vector elements, adjustment and height within
    /// ±[`MAX_COMPONENT_SECONDS`], error and height not negative.
    pub fn check(&self) -> Result<(), CoordinateError> {
        let finite = |field: &'static str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(CoordinateError::NonFinite { field })
            }
        };
        for &v in &self.vec {
            finite("vec", v)?;
        }
        finite("error", self.error)?;
        finite("adjustment", self.adjustment)?;
        finite("height", self.height)?;
        let range = |field: &'static str, v: f64, min: f64| {
            if (min..=MAX_COMPONENT_SECONDS).contains(&v) {
                Ok(())
            } else {
                Err(CoordinateError::OutOfRange { field, value: v })
            }
        };
        for &v in &self.vec {
            range("vec", v, -MAX_COMPONENT_SECONDS)?;
        }
        range("adjustment", self.adjustment, -MAX_COMPONENT_SECONDS)?;
        range("height", self.height, 0.0)?;
        if self.error < 0.0 {
            return Err(CoordinateError::OutOfRange {
                field: "error",
                value: self.error,
            });
        }
        Ok(())
    }

    /// True when both have the same dimensionality.
    pub fn is_compatible_with(&self, other: &Coordinate) -> bool {
        self.vec.len() == other.vec.len()
    }

    fn compatible(&self, other: &Coordinate) -> Result<(), CoordinateError> {
        if self.is_compatible_with(other) {
            Ok(())
        } else {
            Err(CoordinateError::DimensionMismatch {
                ours: self.vec.len(),
                theirs: other.vec.len(),
            })
        }
    }

    /// Estimated round trip time between the nodes at `self` and `other`,
    /// in seconds: Euclidean distance plus both heights, plus both
    /// adjustments unless that would make the result non-positive.
    /// Returns an error only if the dimensionalities differ.
    pub fn distance_secs(&self, other: &Coordinate) -> Result<f64, CoordinateError> {
        self.compatible(other)?;
        let dist = self.raw_distance(other);
        let adjusted = dist + self.adjustment + other.adjustment;
        Ok(if adjusted > 0.0 { adjusted } else { dist })
    }

    /// [`Coordinate::distance_secs`] as a [`Duration`], truncated to whole
    /// nanoseconds as Serf's `DistanceTo` does. A negative or non-finite
    /// estimate (only possible with invalid coordinates) gives zero.
    pub fn distance_to(&self, other: &Coordinate) -> Result<Duration, CoordinateError> {
        Ok(secs_to_duration(self.distance_secs(other)?))
    }

    /// Euclidean distance plus heights; dimensions already checked.
    fn raw_distance(&self, other: &Coordinate) -> f64 {
        magnitude_of_diff(&self.vec, &other.vec) + self.height + other.height
    }

    /// Moves `self` by `force` seconds along the direction from `other` to
    /// `self` (a negative force pulls towards `other`), and grows or
    /// shrinks the height in proportion. Dimensions already checked.
    fn apply_force(
        &mut self,
        config: &CoordinateConfig,
        force: f64,
        other: &Coordinate,
        rng: &mut impl Rng,
    ) {
        let (unit, mag) = unit_vector_at(&self.vec, &other.vec, rng);
        for (v, u) in self.vec.iter_mut().zip(&unit) {
            *v += u * force;
        }
        if mag > ZERO_THRESHOLD {
            self.height =
                ((self.height + other.height) * force / mag + self.height).max(config.height_min);
        }
    }
}

/// Seconds to a [`Duration`], truncating like Go's `time.Duration(f * 1e9)`.
fn secs_to_duration(secs: f64) -> Duration {
    // `as` saturates and maps NaN to 0.
    Duration::from_nanos((secs * 1.0e9) as u64)
}

fn magnitude_of_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// The unit vector pointing from `b` to `a`, and the distance between them.
/// When they are (nearly) the same point, a random direction and distance 0.
fn unit_vector_at(a: &[f64], b: &[f64], rng: &mut impl Rng) -> (Vec<f64>, f64) {
    let mut d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mag = d.iter().map(|x| x * x).sum::<f64>().sqrt();
    // Multiplying by the reciprocal, as Serf does, keeps results bit-identical.
    if mag > ZERO_THRESHOLD {
        let inv = 1.0 / mag;
        d.iter_mut().for_each(|x| *x *= inv);
        return (d, mag);
    }
    d.iter_mut().for_each(|x| *x = rng.gen::<f64>() - 0.5);
    let mag = d.iter().map(|x| x * x).sum::<f64>().sqrt();
    if mag > ZERO_THRESHOLD {
        let inv = 1.0 / mag;
        d.iter_mut().for_each(|x| *x *= inv);
        return (d, 0.0);
    }
    // Astronomically unlikely: fall back to the first axis.
    d.iter_mut().for_each(|x| *x = 0.0);
    if let Some(first) = d.first_mut() {
        *first = 1.0;
    }
    (d, 0.0)
}

/// Counters of what a [`CoordinateClient`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Observations applied.
    pub updates: u64,
    /// Observations refused (bad coordinate or RTT); ours was unchanged.
    pub rejected: u64,
    /// Times our coordinate became invalid and was reset to the origin.
    pub resets: u64,
    /// Observations with an RTT of exactly zero (coarse clocks); applied,
    /// with the RTT treated as 1 µs.
    pub zero_rtt: u64,
}

/// Maintains this node's coordinate from RTT observations (Serf's
/// `coordinate.Client`).
///
/// Call [`CoordinateClient::update`] after every successful direct probe
/// with the peer's coordinate and the measured RTT, and
/// [`CoordinateClient::forget_node`] when the peer leaves the member list.
/// Randomness (a direction when two coordinates coincide) comes from the
/// seed given at creation, so runs replay.
#[derive(Debug, Clone)]
pub struct CoordinateClient {
    config: CoordinateConfig,
    coord: Coordinate,
    origin: Coordinate,
    adjustment_index: usize,
    adjustment_samples: Vec<f64>,
    latency_samples: HashMap<String, VecDeque<f64>>,
    stats: ClientStats,
    rng: ChaCha8Rng,
}

impl CoordinateClient {
    /// A client at the origin. Fails if `config` does not validate.
    pub fn new(config: CoordinateConfig, seed: u64) -> Result<Self, crate::Error> {
        config.validate().map_err(crate::Error::InvalidConfig)?;
        Ok(CoordinateClient {
            coord: Coordinate::origin(&config),
            origin: Coordinate::origin(&config),
            adjustment_index: 0,
            adjustment_samples: vec![0.0; config.adjustment_window_size],
            latency_samples: HashMap::new(),
            stats: ClientStats::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            config,
        })
    }

    /// Our current coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.coord
    }

    /// The configuration in use.
    pub fn config(&self) -> &CoordinateConfig {
        &self.config
    }

    /// What the client has done so far.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Number of peers with RTT samples in the latency filter.
    pub fn tracked_nodes(&self) -> usize {
        self.latency_samples.len()
    }

    /// Replaces our coordinate (e.g. one saved before a restart). Refused,
    /// with nothing changed, if it does not pass [`Coordinate::check`] or
    /// has another dimensionality.
    pub fn set_coordinate(&mut self, coord: Coordinate) -> Result<(), CoordinateError> {
        self.coord.compatible(&coord)?;
        coord.check()?;
        self.coord = coord;
        Ok(())
    }

    /// Drops the RTT samples kept for `node`. Call when the node is removed
    /// from the member list.
    pub fn forget_node(&mut self, node: &str) {
        self.latency_samples.remove(node);
    }

    /// Estimated RTT from us to a node at `other`.
    pub fn distance_to(&self, other: &Coordinate) -> Result<Duration, CoordinateError> {
        self.coord.distance_to(other)
    }

    /// Applies one observation: a direct probe of `node`, whose coordinate
    /// is `other`, took `rtt`. On success our coordinate has moved and is
    /// returned. On error (bad coordinate, wrong dimensionality, RTT over
    /// [`MAX_RTT`]) nothing changed, not even the latency filter, and
    /// [`ClientStats::rejected`] counts it.
    pub fn update(
        &mut self,
        node: &str,
        other: &Coordinate,
        rtt: Duration,
    ) -> Result<&Coordinate, CoordinateError> {
        if let Err(e) = self.check_observation(other, rtt) {
            self.stats.rejected += 1;
            return Err(e);
        }
        if rtt.is_zero() {
            self.stats.zero_rtt += 1;
        }
        let rtt_secs = self.latency_filter(node, rtt.as_secs_f64());
        self.update_vivaldi(other, rtt_secs);
        self.update_adjustment(other, rtt_secs);
        self.update_gravity();
        if self.coord.check().is_err() {
            self.stats.resets += 1;
            self.coord = Coordinate::origin(&self.config);
        }
        self.stats.updates += 1;
        Ok(&self.coord)
    }

    fn check_observation(&self, other: &Coordinate, rtt: Duration) -> Result<(), CoordinateError> {
        self.coord.compatible(other)?;
        other.check()?;
        if rtt > MAX_RTT {
            return Err(CoordinateError::RttOutOfRange { rtt, max: MAX_RTT });
        }
        Ok(())
    }

    /// Adds a sample to `node`'s window and returns the window's median.
    fn latency_filter(&mut self, node: &str, rtt_secs: f64) -> f64 {
        let size = self.config.latency_filter_size;
        if !self.latency_samples.contains_key(node) {
            self.latency_samples
                .insert(node.to_owned(), VecDeque::with_capacity(size + 1));
        }
        let samples = self.latency_samples.get_mut(node).expect("inserted above");
        samples.push_back(rtt_secs);
        while samples.len() > size {
            samples.pop_front();
        }
        let mut sorted: Vec<f64> = samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn update_vivaldi(&mut self, other: &Coordinate, rtt_secs: f64) {
        let cfg = &self.config;
        // Serf measures the distance through a whole-nanosecond Duration.
        let dist = secs_to_duration(self.coord.distance_secs(other).unwrap_or(0.0)).as_secs_f64();
        let rtt = rtt_secs.max(ZERO_THRESHOLD);
        let wrongness = (dist - rtt).abs() / rtt;
        let total_error = (self.coord.error + other.error).max(ZERO_THRESHOLD);
        let weight = self.coord.error / total_error;
        let error = cfg.vivaldi_ce * weight * wrongness
            + self.coord.error * (1.0 - cfg.vivaldi_ce * weight);
        self.coord.error = error.min(cfg.vivaldi_error_max);
        let force = cfg.vivaldi_cc * weight * (rtt - dist);
        self.coord
            .apply_force(&self.config, force, other, &mut self.rng);
    }

    fn update_adjustment(&mut self, other: &Coordinate, rtt_secs: f64) {
        let window = self.config.adjustment_window_size;
        if window == 0 {
            return;
        }
        // The residual uses the raw distance: adjustments do not feed back.
        self.adjustment_samples[self.adjustment_index] = rtt_secs - self.coord.raw_distance(other);
        self.adjustment_index = (self.adjustment_index + 1) % window;
        let sum: f64 = self.adjustment_samples.iter().sum();
        self.coord.adjustment = sum / (2.0 * window as f64);
    }

    fn update_gravity(&mut self) {
        let dist =
            secs_to_duration(self.origin.distance_secs(&self.coord).unwrap_or(0.0)).as_secs_f64();
        let force = -(dist / self.config.gravity_rho).powi(2);
        self.coord
            .apply_force(&self.config, force, &self.origin, &mut self.rng);
    }
}

// ------------------------------------------------------------ in the core

/// What the core keeps when coordinates are enabled: our client, and the
/// latest accepted coordinate of each peer.
#[derive(Debug, Clone)]
pub(crate) struct Coordinates {
    pub(crate) client: CoordinateClient,
    pub(crate) peers: HashMap<String, Coordinate>,
}

impl Coordinates {
    pub(crate) fn new(config: CoordinateConfig, seed: u64) -> Result<Self, crate::Error> {
        Ok(Coordinates {
            client: CoordinateClient::new(config, seed)?,
            peers: HashMap::new(),
        })
    }

    /// Our coordinate as Serf's ack payload.
    pub(crate) fn ack_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 9 * self.client.config().dimensionality);
        encode_ping_payload(self.client.coordinate(), &mut out);
        out
    }

    /// A direct probe of `node` was acked after `rtt` with `payload`.
    /// Returns false when the payload was not empty but was refused
    /// (undecodable, or a coordinate/RTT the client refuses). An empty
    /// payload (a peer without coordinates) is ignored, as Serf does.
    pub(crate) fn on_ping_complete(&mut self, node: &str, rtt: Duration, payload: &[u8]) -> bool {
        if payload.is_empty() {
            return true;
        }
        let Ok(theirs) = decode_ping_payload(payload) else {
            return false;
        };
        if self.client.update(node, &theirs, rtt).is_err() {
            return false;
        }
        self.peers.insert(node.to_owned(), theirs);
        true
    }

    /// Forgets every peer for which `keep` is false.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let gone: Vec<String> = self
            .peers
            .keys()
            .chain(self.client.latency_samples.keys())
            .filter(|n| !keep(n))
            .cloned()
            .collect();
        for n in gone {
            self.peers.remove(&n);
            self.client.forget_node(&n);
        }
    }
}

// ------------------------------------------------------------------- wire

const F_VEC: FieldKey = FieldKey::new("Vec");
const F_ERROR: FieldKey = FieldKey::new("Error");
const F_ADJUSTMENT: FieldKey = FieldKey::new("Adjustment");
const F_HEIGHT: FieldKey = FieldKey::new("Height");
/// Go source order of `coordinate.Coordinate`'s fields (used when a struct
/// arrives as an array).
const FIELDS: [FieldKey; 4] = [F_VEC, F_ERROR, F_ADJUSTMENT, F_HEIGHT];

/// Appends Serf's ack payload for `coord` to `out`: the byte
/// [`PING_VERSION`], then the coordinate as go-msgpack writes the Go struct
/// (a map with keys `Adjustment`, `Error`, `Height`, `Vec` in that order,
/// every number a float64, `Vec` an array).
pub fn encode_ping_payload(coord: &Coordinate, out: &mut Vec<u8>) {
    out.push(PING_VERSION);
    let mut w = Writer::new(out);
    w.write_map_len(4);
    w.write_str("Adjustment");
    w.write_f64(coord.adjustment);
    w.write_str("Error");
    w.write_f64(coord.error);
    w.write_str("Height");
    w.write_f64(coord.height);
    w.write_str("Vec");
    w.write_array_len(coord.vec.len() as u32);
    for &v in &coord.vec {
        w.write_f64(v);
    }
}

/// Reads a peer's ack payload as Serf writes it. Lenient like Go's decoder:
/// keys in any order, unknown keys skipped, missing fields zero, integers
/// and float32 accepted as numbers, `nil` as an empty vector, bytes after
/// the coordinate ignored. Never panics; whether the numbers make sense is
/// checked later, by [`CoordinateClient::update`].
pub fn decode_ping_payload(payload: &[u8]) -> Result<Coordinate, PingPayloadError> {
    let (&version, body) = payload.split_first().ok_or(PingPayloadError::Empty)?;
    if version != PING_VERSION {
        return Err(PingPayloadError::UnsupportedVersion(version));
    }
    let mut c = Coordinate {
        vec: Vec::new(),
        error: 0.0,
        adjustment: 0.0,
        height: 0.0,
    };
    let mut too_many = None;
    let mut r = Reader::new(body);
    r.read_struct(&FIELDS, |i, r| {
        match i {
            0 => {
                c.vec.clear();
                if r.read_nil()? {
                    return Ok(());
                }
                let n = r.read_array_len()?;
                if n as usize > MAX_DIMENSIONALITY {
                    too_many = Some(n);
                    // Refused before reading (or allocating) the elements.
                    return Err(WireError::TooLarge {
                        what: "coordinate vector",
                        len: u64::from(n),
                        max: MAX_DIMENSIONALITY as u64,
                    });
                }
                for _ in 0..n {
                    c.vec.push(r.read_f64()?);
                }
            }
            1 => c.error = r.read_f64()?,
            2 => c.adjustment = r.read_f64()?,
            _ => c.height = r.read_f64()?,
        }
        Ok(())
    })
    .map_err(|e| match too_many {
        Some(n) => PingPayloadError::TooManyDimensions(n),
        None => PingPayloadError::Malformed(e),
    })?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CoordinateConfig {
        CoordinateConfig::default()
    }

    fn at(vec: &[f64]) -> Coordinate {
        Coordinate {
            vec: vec.to_vec(),
            error: 1.5,
            adjustment: 0.0,
            height: 10.0e-6,
        }
    }

    fn client() -> CoordinateClient {
        CoordinateClient::new(cfg(), 1).expect("default config")
    }

    #[test]
    fn defaults_are_serfs() {
        let c = cfg();
        assert_eq!(c.dimensionality, 8);
        assert_eq!(c.vivaldi_error_max, 1.5);
        assert_eq!(c.vivaldi_ce, 0.25);
        assert_eq!(c.vivaldi_cc, 0.25);
        assert_eq!(c.adjustment_window_size, 20);
        assert_eq!(c.height_min, 10.0e-6);
        assert_eq!(c.latency_filter_size, 3);
        assert_eq!(c.gravity_rho, 150.0);
        let o = Coordinate::origin(&c);
        assert_eq!(o.vec, vec![0.0; 8]);
        assert_eq!((o.error, o.adjustment, o.height), (1.5, 0.0, 10.0e-6));
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut c = cfg();
        c.dimensionality = 0;
        assert!(CoordinateClient::new(c, 0).is_err());
        let mut c = cfg();
        c.gravity_rho = f64::NAN;
        assert!(CoordinateClient::new(c, 0).is_err());
        let mut c = cfg();
        c.latency_filter_size = 0;
        assert!(CoordinateClient::new(c, 0).is_err());
    }

    #[test]
    fn distance_adds_heights_and_positive_adjustments() {
        // 3-4-5 triangle plus heights.
        let mut a = at(&[0.0, 0.0]);
        let mut b = at(&[3.0, 4.0]);
        a.height = 0.5;
        b.height = 0.25;
        assert_eq!(a.distance_secs(&b), Ok(5.75));
        a.adjustment = 0.1;
        b.adjustment = 0.2;
        assert!((a.distance_secs(&b).unwrap() - 6.05).abs() < 1e-12);
        // An adjustment that would make the distance non-positive is ignored.
        a.adjustment = -10.0;
        assert_eq!(a.distance_secs(&b), Ok(5.75));
        assert_eq!(
            a.distance_to(&b),
            Ok(Duration::from_nanos(5_750_000_000)),
            "Duration form"
        );
        assert_eq!(
            a.distance_secs(&at(&[1.0])),
            Err(CoordinateError::DimensionMismatch { ours: 2, theirs: 1 })
        );
    }

    #[test]
    fn apply_force_moves_along_the_line_and_grows_height() {
        let c = cfg();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let origin = Coordinate::origin(&c);
        let mut above = origin.clone();
        above.vec[0] = 1.0;
        // Push `above` 0.5 s further away from the origin.
        let mut moved = above.clone();
        moved.apply_force(&c, 0.5, &origin, &mut rng);
        assert!((moved.vec[0] - 1.5).abs() < 1e-12);
        assert!(moved.vec[1..].iter().all(|&v| v == 0.0));
        // Height grows by (h + h_other) * force / distance.
        let expect = (above.height + origin.height) * 0.5 / 1.0 + above.height;
        assert!((moved.height - expect).abs() < 1e-15);
        // Pulling hard shrinks the height, but not below the minimum.
        let mut pulled = above.clone();
        pulled.apply_force(&c, -10.0, &origin, &mut rng);
        assert_eq!(pulled.height, c.height_min);
        assert!((pulled.vec[0] + 9.0).abs() < 1e-12);
        // Coinciding points: a random unit direction, height unchanged.
        let mut same = origin.clone();
        same.apply_force(&c, 1.0, &origin, &mut rng);
        let mag = same.vec.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((mag - 1.0).abs() < 1e-9, "moved by exactly the force");
        assert_eq!(same.height, origin.height);
    }

    #[test]
    fn update_moves_apart_to_match_rtt() {
        let mut c = client();
        let other = Coordinate::origin(&cfg());
        let before = c.coordinate().clone();
        // Both at the origin, 10 ms RTT: we get pushed out in a random direction.
        for _ in 0..100 {
            c.update("peer", &other, Duration::from_millis(10)).unwrap();
        }
        let d = c.distance_to(&other).unwrap().as_secs_f64();
        assert!((d - 0.010).abs() < 0.001, "estimate {d} after 100 samples");
        assert!(c.coordinate().error < before.error, "confidence grew");
        assert_eq!(c.stats().updates, 100);
        assert_eq!(c.tracked_nodes(), 1);
    }

    #[test]
    fn latency_filter_is_a_moving_median_per_node() {
        let mut c = client();
        let s = |c: &mut CoordinateClient, node: &str, ms: f64| c.latency_filter(node, ms / 1e3);
        assert_eq!(s(&mut c, "a", 201.0), 0.201);
        assert_eq!(s(&mut c, "a", 200.0), 0.201);
        assert_eq!(s(&mut c, "a", 207.0), 0.201);
        // The window slides: 200, 207, 10 -> 200.
        assert_eq!(s(&mut c, "a", 10.0), 0.200);
        // A one-off spike is filtered out.
        assert_eq!(s(&mut c, "a", 5000.0), 0.207);
        // Another node has its own window.
        assert_eq!(s(&mut c, "b", 1.0), 0.001);
        c.forget_node("a");
        assert_eq!(s(&mut c, "a", 50.0), 0.050);
        assert_eq!(c.tracked_nodes(), 2);
    }

    #[test]
    fn bad_observations_are_rejected_and_change_nothing() {
        let mut c = client();
        let good = at(&[0.01; 8]);
        c.update("warm", &good, Duration::from_millis(20)).unwrap();
        let before = c.clone();
        let mut cases: Vec<(Coordinate, Duration)> = Vec::new();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0e300, -1.0e9] {
            let mut v = good.clone();
            v.vec[3] = bad;
            cases.push((v, Duration::from_millis(5)));
            let mut h = good.clone();
            h.height = bad;
            cases.push((h, Duration::from_millis(5)));
            let mut a = good.clone();
            a.adjustment = bad;
            cases.push((a, Duration::from_millis(5)));
            let mut e = good.clone();
            e.error = bad;
            if bad != 1.0e300 {
                cases.push((e, Duration::from_millis(5)));
            }
        }
        cases.push((at(&[0.01; 7]), Duration::from_millis(5)));
        cases.push((
            Coordinate {
                vec: vec![],
                ..good.clone()
            },
            Duration::from_millis(5),
        ));
        cases.push((good.clone(), Duration::from_secs(11)));
        cases.push((good.clone(), Duration::MAX));
        for (i, (coord, rtt)) in cases.iter().enumerate() {
            assert!(
                c.update("evil", coord, *rtt).is_err(),
                "case {i}: {coord:?} {rtt:?}"
            );
        }
        // Only the counter moved.
        assert_eq!(c.stats().rejected, cases.len() as u64);
        assert_eq!(c.coord, before.coord);
        assert_eq!(c.latency_samples, before.latency_samples);
        assert_eq!(c.adjustment_samples, before.adjustment_samples);
        assert_eq!(c.adjustment_index, before.adjustment_index);
        assert_eq!(c.stats().updates, before.stats().updates);
        // A huge but legal error only lowers the peer's weight.
        let mut e = good.clone();
        e.error = 1.0e300;
        c.update("trusting", &e, Duration::from_millis(5)).unwrap();
        assert!(c.coordinate().check().is_ok());
    }

    #[test]
    fn zero_rtt_is_counted_and_applied() {
        let mut c = client();
        c.update("p", &at(&[0.0; 8]), Duration::ZERO).unwrap();
        assert_eq!(c.stats().zero_rtt, 1);
        assert!(c.coordinate().check().is_ok());
    }

    #[test]
    fn an_invalid_result_resets_to_the_origin() {
        // Drive our own coordinate out of range directly, then update:
        // the client notices and starts again from the origin.
        let mut c = client();
        c.coord.vec[0] = f64::INFINITY;
        c.update("p", &at(&[0.0; 8]), Duration::from_millis(1))
            .unwrap();
        assert_eq!(c.stats().resets, 1);
        assert_eq!(c.coordinate(), &Coordinate::origin(&cfg()));
    }

    #[test]
    fn set_coordinate_checks_its_input() {
        let mut c = client();
        assert!(c.set_coordinate(at(&[0.0; 3])).is_err());
        let mut nan = at(&[0.0; 8]);
        nan.height = f64::NAN;
        assert!(c.set_coordinate(nan).is_err());
        assert_eq!(c.coordinate(), &Coordinate::origin(&cfg()));
        c.set_coordinate(at(&[0.5; 8])).unwrap();
        assert_eq!(c.coordinate().vec, vec![0.5; 8]);
    }

    #[test]
    fn many_hostile_samples_never_poison_us() {
        // Interleave honest peers with a peer sending extreme but in-range
        // coordinates and the largest RTT; ours stays valid and in range.
        let mut c = client();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for i in 0..2000 {
            let (name, coord, rtt) = if i % 2 == 0 {
                let mut v = at(&[0.0; 8]);
                for x in &mut v.vec {
                    *x = if rng.gen() {
                        MAX_COMPONENT_SECONDS
                    } else {
                        -MAX_COMPONENT_SECONDS
                    };
                }
                v.error = 0.0;
                v.adjustment = -MAX_COMPONENT_SECONDS;
                v.height = MAX_COMPONENT_SECONDS;
                ("evil", v, MAX_RTT)
            } else {
                ("good", at(&[0.001; 8]), Duration::from_millis(1))
            };
            let ours = c.update(name, &coord, rtt).unwrap();
            assert!(ours.check().is_ok(), "step {i}: {ours:?}");
        }
    }

    // ------------------------------------------------------------ wire

    /// Serf's ack payload for its starting coordinate, as serf 0.9.4 sends
    /// it in its probe acks (captured on the wire; see docs/PROTOCOL.md).
    fn serf_origin_payload() -> Vec<u8> {
        let mut v = vec![0x01, 0x84];
        v.push(0xaa);
        v.extend_from_slice(b"Adjustment");
        v.extend_from_slice(&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0]);
        v.push(0xa5);
        v.extend_from_slice(b"Error");
        v.extend_from_slice(&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        v.push(0xa6);
        v.extend_from_slice(b"Height");
        v.extend_from_slice(&[0xcb, 0x3e, 0xe4, 0xf8, 0xb5, 0x88, 0xe3, 0x68, 0xf1]);
        v.push(0xa3);
        v.extend_from_slice(b"Vec");
        v.push(0x98);
        for _ in 0..8 {
            v.extend_from_slice(&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        v
    }

    #[test]
    fn origin_encodes_like_serf() {
        let mut out = Vec::new();
        encode_ping_payload(&Coordinate::origin(&cfg()), &mut out);
        assert_eq!(out, serf_origin_payload());
        assert_eq!(out.len(), 1 + 1 + 11 + 9 + 6 + 9 + 7 + 9 + 4 + 1 + 8 * 9);
        assert_eq!(
            decode_ping_payload(&out).unwrap(),
            Coordinate::origin(&cfg())
        );
    }

    #[test]
    fn decode_round_trips_and_is_lenient() {
        let c = Coordinate {
            vec: vec![-0.25, 1.0e-9, 3.5, 0.0],
            error: 0.75,
            adjustment: -1.0e-4,
            height: 2.0e-5,
        };
        let mut out = Vec::new();
        encode_ping_payload(&c, &mut out);
        assert_eq!(decode_ping_payload(&out).unwrap(), c);
        // Trailing bytes after the struct are ignored, like Go's decoder.
        out.extend_from_slice(b"junk");
        assert_eq!(decode_ping_payload(&out).unwrap(), c);

        // Keys in another order, an unknown key, integers and a float32.
        let mut b = vec![0x01, 0x85];
        let mut w = Writer::new(&mut b);
        w.write_str("Vec");
        w.write_array_len(2);
        w.write_uint(1);
        w.write_int(-2);
        w.write_str("Extra");
        w.write_str("ignored");
        w.write_str("Height");
        w.write_f64(0.5);
        w.write_str("Error");
        w.write_encoded(&[0xca, 0x3f, 0xc0, 0, 0]); // float32 1.5
        w.write_str("Adjustment");
        w.write_nil();
        let d = decode_ping_payload(&b).unwrap();
        assert_eq!(d.vec, vec![1.0, -2.0]);
        assert_eq!((d.error, d.adjustment, d.height), (1.5, 0.0, 0.5));

        // The struct as an array, in Go field order; nil vector.
        let mut b = vec![0x01];
        let mut w = Writer::new(&mut b);
        w.write_array_len(4);
        w.write_nil();
        w.write_f64(1.0);
        w.write_f64(2.0);
        w.write_f64(3.0);
        let d = decode_ping_payload(&b).unwrap();
        assert!(d.vec.is_empty());
        assert_eq!((d.error, d.adjustment, d.height), (1.0, 2.0, 3.0));
    }

    #[test]
    fn decode_refuses_garbage() {
        assert_eq!(decode_ping_payload(&[]), Err(PingPayloadError::Empty));
        assert_eq!(
            decode_ping_payload(&[2, 0x80]),
            Err(PingPayloadError::UnsupportedVersion(2))
        );
        let mut full = serf_origin_payload();
        for cut in 1..full.len() {
            assert!(decode_ping_payload(&full[..cut]).is_err(), "cut at {cut}");
        }
        // A string where a float belongs.
        let i = full.iter().position(|&b| b == 0x3f).unwrap() - 1;
        full[i] = 0xa1;
        assert!(matches!(
            decode_ping_payload(&full),
            Err(PingPayloadError::Malformed(_))
        ));
        // A vector claiming 65536 elements.
        let mut b = vec![0x01, 0x81, 0xa3, b'V', b'e', b'c', 0xdc, 0xff, 0xff];
        b.extend(std::iter::repeat_n(0, 100));
        assert_eq!(
            decode_ping_payload(&b),
            Err(PingPayloadError::TooManyDimensions(65535))
        );
    }

    #[test]
    fn decoded_nan_is_caught_by_update() {
        let mut nan = Coordinate::origin(&cfg());
        nan.vec[2] = f64::NAN;
        let mut out = Vec::new();
        encode_ping_payload(&nan, &mut out);
        let d = decode_ping_payload(&out).unwrap();
        assert!(d.vec[2].is_nan());
        let mut c = client();
        assert_eq!(
            c.update("p", &d, Duration::from_millis(1)),
            Err(CoordinateError::NonFinite { field: "vec" })
        );
    }
}
