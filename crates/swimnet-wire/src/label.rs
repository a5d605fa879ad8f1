//! Label headers (type 244, memberlist ≥ 0.3.0 only):
//! `[0xF4][n: 1..=255][n label bytes]` in front of a datagram, or once at the
//! start of a TCP connection by the side that dials.
//!
//! An empty label means no header at all, which is the only setting that
//! talks to memberlist 0.2.2 / serf 0.9.4.

use crate::error::WireError;
use crate::msg::MessageType;

/// Longest label, in bytes.
pub const LABEL_MAX: usize = 255;

/// Bytes a label adds to a packet: `2 + len`, or 0 for no label.
pub fn label_overhead(label: &[u8]) -> usize {
    crate::overhead::label(label)
}

/// Appends the header for `label` to `out`; appends nothing for an empty
/// label.
///
/// # Panics
/// If `label` is longer than [`LABEL_MAX`]: a configuration error that must
/// be caught when the label is configured, not per packet.
pub fn encode_label_header(label: &[u8], out: &mut Vec<u8>) {
    if label.is_empty() {
        return;
    }
    assert!(
        label.len() <= LABEL_MAX,
        "label is {} bytes, more than {LABEL_MAX}",
        label.len()
    );
    out.push(MessageType::HasLabel as u8);
    out.push(label.len() as u8);
    out.extend_from_slice(label);
}

/// Splits an optional label header off the front of `bytes` and returns
/// `(label, rest)`; without a header that is `(b"", bytes)`.
///
/// Errors: [`WireError::EmptyLabel`] for a size byte of 0;
/// [`WireError::Incomplete`] when the header is cut short (on a stream:
/// wait for more bytes; on a packet: drop it).
pub fn split_label(bytes: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    match bytes {
        [t, rest @ ..] if *t == MessageType::HasLabel as u8 => {
            let (&n, rest) = rest.split_first().ok_or(WireError::Incomplete)?;
            if n == 0 {
                return Err(WireError::EmptyLabel);
            }
            rest.split_at_checked(usize::from(n))
                .ok_or(WireError::Incomplete)
        }
        _ => Ok((&[], bytes)),
    }
}

/// Checks that the label found on a packet or stream is ours.
pub(crate) fn check_label(expected: &[u8], found: &[u8]) -> Result<(), WireError> {
    if expected == found {
        Ok(())
    } else {
        Err(WireError::BadLabel {
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header() {
        let mut v = Vec::new();
        encode_label_header(b"", &mut v);
        assert!(v.is_empty());
        encode_label_header(b"lbl", &mut v);
        v.push(0x00);
        assert_eq!(v, b"\xf4\x03lbl\x00");
        assert_eq!(split_label(&v).unwrap(), (&b"lbl"[..], &b"\x00"[..]));
        assert_eq!(
            split_label(b"\x00\x01").unwrap(),
            (&b""[..], &b"\x00\x01"[..])
        );
        assert_eq!(split_label(b""), Ok((&b""[..], &b""[..])));
        assert_eq!(split_label(b"\xf4"), Err(WireError::Incomplete));
        assert_eq!(split_label(b"\xf4\x00"), Err(WireError::EmptyLabel));
        assert_eq!(split_label(b"\xf4\x03lb"), Err(WireError::Incomplete));
        assert_eq!(label_overhead(b"lbl"), 5);
    }

    #[test]
    #[should_panic]
    fn too_long_label_panics() {
        encode_label_header(&[b'x'; 256], &mut Vec::new());
    }
}
