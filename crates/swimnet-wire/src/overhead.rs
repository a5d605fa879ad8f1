//! How many bytes each framing layer adds around a message: the figures
//! packet budgets are computed from (what fits in one datagram next to the
//! message it rides on). Declared once here, next to the codecs that write
//! those bytes, so that no layer above re-derives them.
//!
//! ```
//! use swimnet_wire::overhead;
//! // A user message in a datagram with CRC and v1 encryption, no label.
//! assert_eq!(overhead::USER_DATAGRAM, 1 + 5 + 29);
//! assert_eq!(overhead::label(b"cluster-a"), 2 + 9);
//! ```

use crate::security::{EncryptionVersion, BLOCK_SIZE, NONCE_SIZE, TAG_SIZE, VERSION_SIZE};

/// Compound envelope: its type byte and its one-byte part count
/// (see [`crate::compound`]).
pub const COMPOUND_HEADER: usize = 2;

/// Each part of a compound: its big-endian `u16` length.
pub const COMPOUND_PART: usize = 2;

/// A user (delegate) message: its type byte.
pub const USER_MSG_HEADER: usize = 1;

/// CRC prefix: type byte and CRC-32 (see [`crate::crc`]).
pub const CRC_HEADER: usize = 5;

/// Encryption format v1: version byte, nonce and GCM tag (29 bytes).
pub const ENCRYPTION_V1: usize = VERSION_SIZE + NONCE_SIZE + TAG_SIZE;

/// Encryption format v0 at most: v1's bytes plus up to one block of
/// PKCS#7 padding (45 bytes).
pub const ENCRYPTION_V0_MAX: usize = ENCRYPTION_V1 + BLOCK_SIZE;

/// What the memberlist layers add around one user message sent alone in a
/// datagram, at most: its type byte, a CRC prefix and v1 encryption (no
/// label).
pub const USER_DATAGRAM: usize = USER_MSG_HEADER + CRC_HEADER + ENCRYPTION_V1;

/// Largest number of bytes encryption in format `vsn` adds to a payload.
pub const fn encryption(vsn: EncryptionVersion) -> usize {
    match vsn {
        EncryptionVersion::V0Padded => ENCRYPTION_V0_MAX,
        EncryptionVersion::V1 => ENCRYPTION_V1,
    }
}

/// Bytes a label header adds: its type byte, its length byte and the label,
/// or nothing for an empty label (see [`crate::label`]).
pub const fn label(label: &[u8]) -> usize {
    if label.is_empty() {
        0
    } else {
        2 + label.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compound::encode_compound;
    use crate::crc::add_crc;
    use crate::label::encode_label_header;
    use crate::security::{encrypted_length, EncryptionVersion};

    #[test]
    fn figures_match_what_the_encoders_write() {
        let mut out = Vec::new();
        encode_compound(&[b"ab", b"cde"], &mut out);
        assert_eq!(out.len(), COMPOUND_HEADER + 2 * COMPOUND_PART + 5);
        out.clear();
        add_crc(b"abc", &mut out);
        assert_eq!(out.len(), CRC_HEADER + 3);
        out.clear();
        encode_label_header(b"lbl", &mut out);
        assert_eq!(out.len(), label(b"lbl"));
        assert_eq!(label(b""), 0);
        assert_eq!(
            encrypted_length(EncryptionVersion::V1, 100),
            100 + ENCRYPTION_V1
        );
        let worst = (0..64)
            .map(|n| encrypted_length(EncryptionVersion::V0Padded, n) - n)
            .max();
        assert_eq!(worst, Some(ENCRYPTION_V0_MAX));
        assert_eq!(encryption(EncryptionVersion::V1), 29);
        assert_eq!(encryption(EncryptionVersion::V0Padded), 45);
        assert_eq!(USER_DATAGRAM, 35);
    }
}
