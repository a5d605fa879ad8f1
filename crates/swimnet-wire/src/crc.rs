//! CRC-prefixed packets (type 12):
//! `[0x0C][CRC-32/IEEE of the rest, big-endian][rest]`.
//!
//! memberlist adds the prefix only for peers that advertise protocol
//! max ≥ 5; receivers must accept packets with and without it.

use crate::error::WireError;
use crate::msg::MessageType;

/// Appends `[0x0C][crc32(inner) big-endian][inner]` to `out`.
pub fn add_crc(inner: &[u8], out: &mut Vec<u8>) {
    out.reserve(5 + inner.len());
    out.push(MessageType::HasCrc as u8);
    out.extend_from_slice(&crc32fast::hash(inner).to_be_bytes());
    out.extend_from_slice(inner);
}

/// Checks a CRC-prefixed packet (starting with its 0x0C type byte) and
/// returns the bytes after the 5-byte prefix.
///
/// Errors: [`WireError::UnexpectedType`] if the first byte is not 0x0C,
/// [`WireError::Truncated`] when shorter than 5 bytes, [`WireError::Crc`] on
/// a mismatch.
pub fn strip_crc(packet: &[u8]) -> Result<&[u8], WireError> {
    match packet.first() {
        Some(&t) if t == MessageType::HasCrc as u8 => {}
        Some(&t) => {
            return Err(WireError::UnexpectedType {
                found: t,
                context: "expected a CRC packet",
            })
        }
        None => return Err(WireError::Empty),
    }
    let (hdr, rest) = packet
        .split_at_checked(5)
        .ok_or(WireError::Truncated { what: "CRC header" })?;
    let expected = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]);
    let actual = crc32fast::hash(rest);
    if expected != actual {
        return Err(WireError::Crc { expected, actual });
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let mut p = Vec::new();
        add_crc(b"\x04abc", &mut p);
        assert_eq!(strip_crc(&p).unwrap(), b"\x04abc");
        let mut bad = p.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(strip_crc(&bad), Err(WireError::Crc { .. })));
        assert!(matches!(
            strip_crc(&p[..4]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            strip_crc(b"\x04"),
            Err(WireError::UnexpectedType { .. })
        ));
        assert_eq!(strip_crc(b""), Err(WireError::Empty));
    }
}
