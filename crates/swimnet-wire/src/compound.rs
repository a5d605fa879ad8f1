//! Compound messages: several messages in one packet (type 7).
//!
//! Layout: `[0x07][n: u8][n × u16-be part length][part 1]...[part n]`, each
//! part a whole message starting with its own type byte.

use crate::error::WireError;
use crate::msg::MessageType;

/// Most parts one compound can carry (the count is one byte).
pub const MAX_PARTS: usize = 255;

/// Appends a compound message holding `parts` to `out`, type byte included.
///
/// The caller guarantees at most [`MAX_PARTS`] parts of at most 65,535 bytes
/// each (memberlist's packet budget keeps them far below); this is checked
/// with debug assertions only.
pub fn encode_compound(parts: &[&[u8]], out: &mut Vec<u8>) {
    debug_assert!(
        parts.len() <= MAX_PARTS,
        "a compound holds at most 255 parts"
    );
    let total: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(2 + 2 * parts.len() + total);
    out.push(MessageType::Compound as u8);
    out.push(parts.len() as u8);
    for p in parts {
        debug_assert!(
            p.len() <= usize::from(u16::MAX),
            "a compound part is at most 65535 bytes"
        );
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// The parts of a decoded compound message, borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compound<'a> {
    /// The complete parts, in order.
    pub parts: Vec<&'a [u8]>,
    /// How many parts at the end ran past the input and were dropped.
    pub truncated: usize,
}

/// Splits a compound message. `body` is everything *after* the 0x07 type
/// byte.
///
/// Errors when the count byte is missing ([`WireError::MissingLength`]) or
/// the length table is cut short ([`WireError::Truncated`]). A part that runs
/// past the end is not an error: it and every later part are counted in
/// [`Compound::truncated`], and the earlier parts are returned, as memberlist
/// does.
pub fn decode_compound(body: &[u8]) -> Result<Compound<'_>, WireError> {
    let (&n, rest) = body.split_first().ok_or(WireError::MissingLength)?;
    let n = usize::from(n);
    let (lens, mut data) = rest.split_at_checked(2 * n).ok_or(WireError::Truncated {
        what: "compound length table",
    })?;
    let mut parts = Vec::with_capacity(n);
    for (i, len) in lens.chunks_exact(2).enumerate() {
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        match data.split_at_checked(len) {
            Some((part, tail)) => {
                parts.push(part);
                data = tail;
            }
            None => {
                return Ok(Compound {
                    parts,
                    truncated: n - i,
                })
            }
        }
    }
    Ok(Compound {
        parts,
        truncated: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden() {
        let mut out = Vec::new();
        encode_compound(&[&[0x04, 0x80], &[0x08, 1, 2, 3]], &mut out);
        assert_eq!(
            out,
            [0x07, 0x02, 0x00, 0x02, 0x00, 0x04, 0x04, 0x80, 0x08, 0x01, 0x02, 0x03]
        );
        let c = decode_compound(&out[1..]).unwrap();
        assert_eq!(c.parts, vec![&[0x04, 0x80][..], &[8, 1, 2, 3]]);
        assert_eq!(c.truncated, 0);
    }

    #[test]
    fn truncation() {
        assert_eq!(decode_compound(&[]), Err(WireError::MissingLength));
        assert!(matches!(
            decode_compound(&[2, 0, 1, 0]),
            Err(WireError::Truncated { .. })
        ));
        let c = decode_compound(&[3, 0, 1, 0, 5, 0, 1, 0xaa, 0xbb]).unwrap();
        assert_eq!(c.parts, vec![&[0xaa][..]]);
        assert_eq!(c.truncated, 2);
        let c = decode_compound(&[0]).unwrap();
        assert!(c.parts.is_empty());
    }
}
