//! Address allocation without a central allocator. Each endpoint's address
//! is claimed in the overlay's table [`IPAM_TABLE`] (key [`claim_key`]);
//! hosts start their search at a point derived from their own name, so
//! concurrent allocations rarely meet, and when two claims for one address
//! do meet, [`winner`] picks the same one on every host and the other
//! endpoint re-addresses (or, if its address was asked for, fails).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use serde::{Deserialize, Serialize};

use crate::defs::{is_network_id, sha256};
use crate::model::clip;
use crate::OverlayError;

/// The claims table in each overlay's NetworkDB network.
pub const IPAM_TABLE: &str = "swimnet_ipam";

/// Largest claim value accepted from a peer (bytes).
pub const MAX_CLAIM_BYTES: usize = 512;

/// A claim of one address by one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The address.
    pub ip: Ipv4Addr,
    /// The endpoint's ID.
    pub endpoint: String,
    /// The host (node name) of the endpoint.
    pub host: String,
    /// Whether the user asked for this address.
    pub requested: bool,
    /// When it was claimed (milliseconds since the Unix epoch, the host's clock).
    pub at_ms: u64,
}

/// Longest host name a claim may carry (bytes).
pub const MAX_HOST: usize = 255;

/// The key of a claim in [`IPAM_TABLE`].
pub fn claim_key(ip: Ipv4Addr, endpoint: &str) -> String {
    format!("{ip}/{endpoint}")
}

/// The JSON form of a [`Claim`].
#[derive(Serialize, Deserialize)]
struct ClaimJson {
    ip: Ipv4Addr,
    endpoint: String,
    host: String,
    #[serde(default)]
    requested: bool,
    at_ms: u64,
}

/// Encodes a claim as an [`IPAM_TABLE`] value.
pub fn encode(claim: &Claim) -> Vec<u8> {
    serde_json::to_vec(&ClaimJson {
        ip: claim.ip,
        endpoint: claim.endpoint.clone(),
        host: claim.host.clone(),
        requested: claim.requested,
        at_ms: claim.at_ms,
    })
    .expect("plain fields serialize")
}

/// Decodes and validates an [`IPAM_TABLE`] value (at most [`MAX_CLAIM_BYTES`]).
pub fn decode(bytes: &[u8]) -> Result<Claim, OverlayError> {
    if bytes.len() > MAX_CLAIM_BYTES {
        return Err(OverlayError::Invalid(format!(
            "address claim of {} bytes is over the {MAX_CLAIM_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let j: ClaimJson = serde_json::from_slice(bytes)
        .map_err(|e| OverlayError::Invalid(format!("bad address claim: {e}")))?;
    if !is_network_id(&j.endpoint) {
        return Err(OverlayError::Invalid(format!(
            "address claim has a bad endpoint ID {:?} (want 64 lowercase hex digits)",
            clip(&j.endpoint)
        )));
    }
    if j.host.is_empty() || j.host.len() > MAX_HOST {
        return Err(OverlayError::Invalid(format!(
            "address claim has a host name of {} bytes (want 1 to {MAX_HOST})",
            j.host.len()
        )));
    }
    Ok(Claim {
        ip: j.ip,
        endpoint: j.endpoint,
        host: j.host,
        requested: j.requested,
        at_ms: j.at_ms,
    })
}

/// Whether `ip` may be given to an endpoint of `subnet` (inside it, not
/// its network or broadcast address).
pub fn usable(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}

/// The first usable address of `subnet` as a number and how many there
/// are (zero for a /31 or /32).
fn usable_range(subnet: Ipv4Net) -> (u32, u32) {
    let first = u32::from(subnet.network()).saturating_add(1);
    let last = u32::from(subnet.broadcast()).saturating_sub(1);
    if last < first || subnet.prefix_len() > 30 {
        return (first, 0);
    }
    (first, last - first + 1)
}

/// A free address of `subnet` for an endpoint on `host`, not in `taken`:
/// the search starts at a point derived from `host` and wraps. `None` when
/// the subnet is full.
///
/// The scan is bounded by the number of taken addresses in the subnet (a
/// run of taken addresses can be no longer than that), not its size.
pub fn choose(subnet: Ipv4Net, host: &str, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (first, count) = usable_range(subnet);
    if count == 0 {
        return None;
    }
    let digest = sha256(&[b"swimnet-ipam", host.as_bytes()]);
    let h = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let start = (h % u64::from(count)) as u32;
    let taken_inside = taken.range(subnet.network()..=subnet.broadcast()).count();
    let steps = (taken_inside as u64 + 1).min(u64::from(count));
    (0..steps)
        .map(|k| Ipv4Addr::from(first + ((u64::from(start) + k) % u64::from(count)) as u32))
        .find(|ip| !taken.contains(ip))
}

/// Most usable addresses [`choose_again`] lists to pick among; in larger
/// subnets it probes random positions instead.
pub const MAX_LISTED_ADDRESSES: u32 = 1 << 16;

/// Random positions [`choose_again`] probes in a subnet larger than
/// [`MAX_LISTED_ADDRESSES`] before falling back to [`choose`].
const RANDOM_PROBES: u64 = 64;

/// A free address for `endpoint` on `host` after it lost `round` (1, 2,
/// ...) claims in a row. [`choose`] would send two hosts whose searches
/// ran into the same block of taken addresses to the same next free
/// address round after round; this picks among all free addresses at a
/// point derived from the endpoint and the round, so two losers meet again
/// with probability about 1 / (free addresses). `None` when the subnet is
/// full.
pub fn choose_again(
    subnet: Ipv4Net,
    host: &str,
    endpoint: &str,
    round: u32,
    taken: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let (first, count) = usable_range(subnet);
    if count == 0 {
        return None;
    }
    let seed = |probe: u64| {
        let digest = sha256(&[
            b"swimnet-ipam-again",
            host.as_bytes(),
            endpoint.as_bytes(),
            &round.to_be_bytes(),
            &probe.to_be_bytes(),
        ]);
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    };
    if count > MAX_LISTED_ADDRESSES {
        return (0..RANDOM_PROBES)
            .map(|i| Ipv4Addr::from(first + (seed(i) % u64::from(count)) as u32))
            .find(|ip| !taken.contains(ip))
            .or_else(|| choose(subnet, host, taken));
    }
    let free: Vec<Ipv4Addr> = (0..count)
        .map(|k| Ipv4Addr::from(first + k))
        .filter(|ip| !taken.contains(ip))
        .collect();
    if free.is_empty() {
        return None;
    }
    Some(free[(seed(0) % free.len() as u64) as usize])
}

/// The order of claims for one address: the least keeps it.
fn precedence(c: &Claim) -> (bool, u64, &str, &str, Ipv4Addr) {
    (!c.requested, c.at_ms, &c.endpoint, &c.host, c.ip)
}

/// Which of two claims of one address keeps it: a requested address beats
/// an allocated one, then the earlier `at_ms`, then the lower endpoint ID.
/// The same on every host.
pub fn winner<'a>(a: &'a Claim, b: &'a Claim) -> &'a Claim {
    match precedence(a).cmp(&precedence(b)) {
        Ordering::Greater => b,
        _ => a,
    }
}

/// The claims among `claims` that lost their address to another
/// ([`winner`]), each with the claim that beat it. Identical copies of one
/// claim count once (they are no conflict); the answer is sorted by
/// address, then by the losing claim's precedence.
pub fn losers(claims: &[Claim]) -> Vec<(Claim, Claim)> {
    let mut by_ip: BTreeMap<Ipv4Addr, Vec<&Claim>> = BTreeMap::new();
    for c in claims {
        by_ip.entry(c.ip).or_default().push(c);
    }
    let mut out = Vec::new();
    for (_, mut group) in by_ip {
        group.sort_by(|a, b| precedence(a).cmp(&precedence(b)));
        group.dedup();
        let (best, rest) = group.split_first().expect("groups are not empty");
        out.extend(rest.iter().map(|c| ((*c).clone(), (*best).clone())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losers_whose_searches_met_scatter_on_the_next_round() {
        let subnet: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        // All but the top 30 addresses taken: a search that starts in the
        // taken block ends at its first free address, whoever searches.
        let taken: BTreeSet<Ipv4Addr> = (1..=224).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let (mut by_host, mut by_endpoint) = (0, 0);
        for trial in 0..200u32 {
            let (a, b) = (format!("host-a{trial}"), format!("host-b{trial}"));
            if choose(subnet, &a, &taken) == choose(subnet, &b, &taken) {
                by_host += 1;
            }
            let (ea, eb) = (format!("{trial:064x}"), format!("{:064x}", trial + 1000));
            let pa = choose_again(subnet, &a, &ea, 1, &taken).unwrap();
            let pb = choose_again(subnet, &b, &eb, 1, &taken).unwrap();
            assert!(!taken.contains(&pa) && usable(subnet, pa));
            if pa == pb {
                by_endpoint += 1;
            }
        }
        assert!(by_host > 150, "choose collided {by_host} of 200 times");
        assert!(
            by_endpoint < 30,
            "choose_again collided {by_endpoint} of 200 times"
        );
        let full: BTreeSet<Ipv4Addr> = (1..=254).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(choose_again(subnet, "h", "e", 1, &full), None);
        let big: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let ip = choose_again(big, "h", "e", 2, &taken).unwrap();
        assert!(usable(big, ip) && !taken.contains(&ip));
    }
    use proptest::prelude::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn claim(ip: [u8; 4], ep: u8, requested: bool, at_ms: u64) -> Claim {
        Claim {
            ip: Ipv4Addr::from(ip),
            endpoint: format!("{ep:02x}").repeat(32),
            host: format!("host-{ep}"),
            requested,
            at_ms,
        }
    }

    #[test]
    fn claims_round_trip_and_bad_ones_are_refused() {
        let c = claim([10, 0, 1, 5], 0xab, true, 1_700_000_000_000);
        assert_eq!(
            claim_key(c.ip, &c.endpoint),
            format!("10.0.1.5/{}", c.endpoint)
        );
        let bytes = encode(&c);
        assert!(bytes.len() <= MAX_CLAIM_BYTES);
        assert_eq!(decode(&bytes).unwrap(), c);
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_slice(&encode(&c)).unwrap();
            f(&mut v);
            decode(&serde_json::to_vec(&v).unwrap())
        };
        assert!(with(&|v| v["ip"] = "10.0.1.300".into()).is_err());
        assert!(with(&|v| v["endpoint"] = "abc".into()).is_err());
        assert!(with(&|v| v["host"] = "".into()).is_err());
        assert!(with(&|v| v["host"] = "h".repeat(MAX_HOST + 1).into()).is_err());
        assert!(decode(b"[]").is_err());
        let big = vec![b' '; MAX_CLAIM_BYTES + 1];
        assert!(decode(&big).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn usable_excludes_network_broadcast_and_outsiders() {
        let s = net("10.0.1.0/24");
        assert!(usable(s, Ipv4Addr::new(10, 0, 1, 1)));
        assert!(usable(s, Ipv4Addr::new(10, 0, 1, 254)));
        assert!(!usable(s, Ipv4Addr::new(10, 0, 1, 0)));
        assert!(!usable(s, Ipv4Addr::new(10, 0, 1, 255)));
        assert!(!usable(s, Ipv4Addr::new(10, 0, 2, 1)));
    }

    #[test]
    fn choose_fills_a_subnet_then_says_full() {
        let s = net("10.0.1.0/29");
        let mut taken = BTreeSet::new();
        for _ in 0..6 {
            let ip = choose(s, "h1", &taken).unwrap();
            assert!(usable(s, ip) && !taken.contains(&ip));
            taken.insert(ip);
        }
        assert_eq!(choose(s, "h1", &taken), None);
        assert_eq!(choose(net("10.0.1.0/31"), "h1", &BTreeSet::new()), None);
        assert_eq!(choose(net("10.0.1.0/32"), "h1", &BTreeSet::new()), None);
    }

    #[test]
    fn choose_in_a_huge_subnet_is_bounded_by_the_taken_set() {
        let s = net("10.0.0.0/8");
        let start = choose(s, "h1", &BTreeSet::new()).unwrap();
        // A run of taken addresses from the start point: the scan steps over it.
        let taken: BTreeSet<Ipv4Addr> = (0..50_000u32)
            .map(|k| Ipv4Addr::from(u32::from(start) + k))
            .filter(|ip| usable(s, *ip))
            .collect();
        let ip = choose(s, "h1", &taken).unwrap();
        assert!(usable(s, ip) && !taken.contains(&ip));
    }

    #[test]
    fn winner_prefers_requested_then_earlier_then_lower_id() {
        let a = claim([10, 0, 0, 5], 1, false, 10);
        let b = claim([10, 0, 0, 5], 2, true, 20);
        assert_eq!(winner(&a, &b), &b);
        assert_eq!(winner(&b, &a), &b);
        let c = claim([10, 0, 0, 5], 3, false, 5);
        assert_eq!(winner(&a, &c), &c);
        let d = claim([10, 0, 0, 5], 0, false, 10);
        assert_eq!(winner(&a, &d), &d);
        assert_eq!(winner(&d, &a), &d);
    }

    #[test]
    fn losers_pairs_each_loser_with_the_winner_of_its_address() {
        let w = claim([10, 0, 0, 5], 1, false, 1);
        let l1 = claim([10, 0, 0, 5], 2, false, 2);
        let l2 = claim([10, 0, 0, 5], 3, false, 3);
        let alone = claim([10, 0, 0, 6], 4, false, 9);
        let got = losers(&[l2.clone(), alone.clone(), w.clone(), l1.clone(), w.clone()]);
        assert_eq!(got, vec![(l1, w.clone()), (l2, w)]);
        assert!(losers(&[alone.clone(), alone]).is_empty());
    }

    /// How often at least two of `hosts` hosts pick the same address when
    /// each chooses one from the same view of a /24 with some taken.
    fn collision_rate(hosts: usize, trials: usize) -> f64 {
        let s = net("10.7.0.0/24");
        let mut collided = 0;
        for t in 0..trials {
            let taken: BTreeSet<Ipv4Addr> = (0..20u32)
                .map(|k| Ipv4Addr::new(10, 7, 0, ((t as u32 * 7 + k * 13) % 254 + 1) as u8))
                .collect();
            let picks: BTreeSet<Ipv4Addr> = (0..hosts)
                .map(|i| choose(s, &format!("node-{t}-{i}"), &taken).unwrap())
                .collect();
            if picks.len() < hosts {
                collided += 1;
            }
        }
        collided as f64 / trials as f64
    }

    #[test]
    fn concurrent_hosts_rarely_pick_the_same_address() {
        for hosts in 2..=8 {
            let rate = collision_rate(hosts, 2000);
            // A uniform start in 254 addresses meets another with the
            // birthday probability; runs of taken addresses raise it a
            // little. The bound is generous but fails for a start that
            // ignores the host name (rate 1.0).
            let pairs = (hosts * (hosts - 1) / 2) as f64;
            let birthday = pairs / 254.0;
            assert!(
                rate <= 2.0 * birthday + 0.02,
                "{hosts} hosts collide in {:.1}% of trials",
                rate * 100.0
            );
        }
    }

    fn arb_claim() -> impl Strategy<Value = Claim> {
        (0u8..6, 0u8..5, any::<bool>(), 0u64..4)
            .prop_map(|(ip, ep, req, at)| claim([10, 0, 0, ip + 1], ep, req, at))
    }

    proptest! {
        #[test]
        fn winner_is_a_total_order(a in arb_claim(), b in arb_claim(), c in arb_claim()) {
            prop_assert_eq!(winner(&a, &b), winner(&b, &a));
            let w = winner(winner(&a, &b), &c);
            prop_assert_eq!(w, winner(&a, winner(&b, &c)));
            prop_assert!(w == &a || w == &b || w == &c);
        }

        #[test]
        fn losers_leave_one_claim_per_address(
            claims in proptest::collection::vec(arb_claim(), 0..16),
        ) {
            let lost = losers(&claims);
            let mut rev = claims.clone();
            rev.reverse();
            prop_assert_eq!(losers(&rev), lost.clone());
            let mut left: Vec<&Claim> = claims
                .iter()
                .filter(|c| !lost.iter().any(|(l, _)| l == *c))
                .collect();
            left.sort_by_key(|c| (c.ip, c.endpoint.clone(), c.host.clone(), c.at_ms, c.requested));
            left.dedup();
            let ips: BTreeSet<Ipv4Addr> = claims.iter().map(|c| c.ip).collect();
            prop_assert_eq!(left.len(), ips.len());
            for (l, w) in &lost {
                prop_assert_eq!(winner(l, w), w);
                prop_assert_eq!(l.ip, w.ip);
            }
        }

        #[test]
        fn choose_never_returns_taken_or_unusable(
            prefix in 24u8..=30,
            taken_bits in proptest::collection::vec(any::<u8>(), 0..80),
            host in "[a-z]{1,8}",
        ) {
            let s = Ipv4Net::new(Ipv4Addr::new(10, 1, 0, 0), prefix).unwrap();
            let taken: BTreeSet<Ipv4Addr> = taken_bits
                .iter()
                .map(|b| Ipv4Addr::new(10, 1, 0, *b))
                .collect();
            let free = s.hosts().filter(|ip| usable(s, *ip) && !taken.contains(ip)).count();
            match choose(s, &host, &taken) {
                Some(ip) => prop_assert!(usable(s, ip) && !taken.contains(&ip)),
                None => prop_assert_eq!(free, 0),
            }
        }
    }
}
