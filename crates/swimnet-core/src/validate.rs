//! Checks on what peers claim about nodes, applied before a claim reaches
//! the member table.
//!
//! Alive, suspect and dead messages, and the node states of a push/pull
//! (which the core turns into the same three messages), all pass through
//! these checks:
//!
//! * an alive must carry a name of 1..=[`NODE_NAME_MAX`] bytes, at most
//!   [`META_MAX_SIZE`] bytes of metadata (the limits a local node is held
//!   to) and a well-formed 6-byte version field ([`versions_valid`]);
//! * no message may claim an incarnation more than
//!   [`crate::Config::max_incarnation_jump`] above the one we know for that
//!   node ([`incarnation_plausible`]; for a node we do not know, above
//!   [`STRANGER_INCARNATION_MAX`]).
//!
//! Why the incarnation bound. A node's incarnation only grows when the node
//! itself refutes an accusation, one step at a time, so a claim far above
//! what we know cannot be honest. Memberlist accepts any value; a forged
//! `dead` at `u32::MAX` then cannot be refuted (there is no higher
//! incarnation) and the victim stays expelled. With the bound, such a claim
//! is dropped by every node that knows the victim, and by the victim itself.
//!
//! Accusations about ourselves. Honest peers only accuse us at an
//! incarnation they saw from us, so one above our own can only follow a
//! restart that reset our counter while the cluster remembers the old one.
//! We accept those within the same bound and refute above them, which is how
//! a restarted node catches up; a larger one is dropped and counted. What
//! is left to a forger is walking our incarnation up by at most the bound
//! per forged message, each one visible in [`crate::Stats::refutations`];
//! the refutation itself saturates instead of wrapping.

use swimnet_wire::msg::Alive;

use crate::config::{META_MAX_SIZE, NODE_NAME_MAX};

/// Why an alive message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliveProblem {
    /// The node name is empty or longer than [`NODE_NAME_MAX`].
    Name,
    /// The metadata is longer than [`META_MAX_SIZE`].
    Meta,
    /// The version field is not 6 consistent bytes.
    Versions,
}

/// Checks an alive message's name, metadata and versions; on success returns
/// its six version bytes. Call it before anything else looks at the message.
pub(crate) fn check_alive(a: &Alive) -> Result<[u8; 6], AliveProblem> {
    if a.node.is_empty() || a.node.len() > NODE_NAME_MAX {
        return Err(AliveProblem::Name);
    }
    if a.meta.len() > META_MAX_SIZE {
        return Err(AliveProblem::Meta);
    }
    let vsn: [u8; 6] = a
        .vsn
        .as_slice()
        .try_into()
        .map_err(|_| AliveProblem::Versions)?;
    if !versions_valid(&vsn) {
        return Err(AliveProblem::Versions);
    }
    Ok(vsn)
}

/// Whether six version bytes (`[pmin, pmax, pcur, dmin, dmax, dcur]`) are
/// what a real memberlist node announces: a protocol range starting at 1 or
/// above with the current version inside it, and a delegate range (all zero
/// without a delegate) with its current version inside it.
pub(crate) fn versions_valid(v: &[u8; 6]) -> bool {
    let [pmin, pmax, pcur, dmin, dmax, dcur] = *v;
    pmin >= 1 && (pmin..=pmax).contains(&pcur) && (dmin..=dmax).contains(&dcur)
}

/// The highest incarnation accepted for a node we know nothing of: half
/// the range. A long-lived member may have refuted far more often than
/// [`crate::Config::max_incarnation_jump`] allows in one step, so a joining
/// node takes any first sighting below this; above it, the real owner of a
/// squatted name could not refute.
pub(crate) const STRANGER_INCARNATION_MAX: u32 = u32::MAX / 2;

/// Whether a peer's claim of incarnation `claimed` for a node we know at
/// `known` (0 for a node we do not know) is plausible: at most `max_jump`
/// above it. Lower claims are plausible here (they are stale, and the
/// caller ignores them as such).
pub(crate) fn incarnation_plausible(known: u32, claimed: u32, max_jump: u32) -> bool {
    claimed <= known.saturating_add(max_jump)
}

/// The incarnation to refute an accusation at `accused` with, when ours is
/// `own`: one above both. `None` when there is none (one of them is already
/// `u32::MAX`): the refutation is impossible, never wrapped to 0.
pub(crate) fn refutation_incarnation(own: u32, accused: u32) -> Option<u32> {
    own.max(accused).checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(name: &str, meta: usize, vsn: &[u8]) -> Alive {
        Alive {
            incarnation: 1,
            node: name.into(),
            addr: vec![127, 0, 0, 1],
            port: 7946,
            meta: vec![0; meta],
            vsn: vsn.to_vec(),
        }
    }

    #[test]
    fn alive_limits_match_local_ones() {
        let ok = [1, 5, 2, 0, 0, 0];
        assert_eq!(check_alive(&alive("a", 0, &ok)), Ok(ok));
        assert!(check_alive(&alive("a", META_MAX_SIZE, &ok)).is_ok());
        let long = "x".repeat(NODE_NAME_MAX);
        assert!(check_alive(&alive(&long, 0, &ok)).is_ok());
        assert_eq!(
            check_alive(&alive("a", META_MAX_SIZE + 1, &ok)),
            Err(AliveProblem::Meta)
        );
        let too_long = "x".repeat(NODE_NAME_MAX + 1);
        assert_eq!(
            check_alive(&alive(&too_long, 0, &ok)),
            Err(AliveProblem::Name)
        );
        assert_eq!(check_alive(&alive("", 0, &ok)), Err(AliveProblem::Name));
    }

    #[test]
    fn versions_must_be_six_consistent_bytes() {
        for bad in [
            &[][..],
            &[1, 5, 2],
            &[1, 5, 2, 0, 0],
            &[1, 5, 2, 0, 0, 0, 0],
            &[0, 5, 2, 0, 0, 0],
            &[3, 2, 2, 0, 0, 0],
            &[1, 5, 6, 0, 0, 0],
            &[1, 5, 2, 2, 5, 1],
            &[1, 5, 2, 5, 2, 4],
        ] {
            assert_eq!(
                check_alive(&alive("a", 0, bad)),
                Err(AliveProblem::Versions),
                "{bad:?}"
            );
        }
        // Serf's and plain memberlist's fields pass.
        assert!(check_alive(&alive("a", 0, &[1, 5, 2, 2, 5, 4])).is_ok());
        assert!(check_alive(&alive("a", 0, &[1, 5, 5, 0, 0, 0])).is_ok());
    }

    #[test]
    fn incarnations_are_bounded_and_never_wrap() {
        assert!(incarnation_plausible(3, 3 + 1000, 1000));
        assert!(!incarnation_plausible(3, 3 + 1001, 1000));
        assert!(!incarnation_plausible(0, u32::MAX, 1 << 16));
        assert!(incarnation_plausible(u32::MAX - 1, u32::MAX, 1 << 16));
        assert!(incarnation_plausible(10, 2, 0));
        assert_eq!(refutation_incarnation(4, 2), Some(5));
        assert_eq!(refutation_incarnation(4, 9), Some(10));
        assert_eq!(refutation_incarnation(1, u32::MAX), None);
        assert_eq!(refutation_incarnation(u32::MAX, 3), None);
    }
}
