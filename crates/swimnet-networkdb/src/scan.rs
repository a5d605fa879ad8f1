//! Zero-copy reading of the two NetworkDB messages that wrap others: the
//! [`crate::wire::GossipMessage`] envelope and the
//! [`crate::wire::CompoundMessage`] list of parts.
//!
//! prost would decode a compound into a `Vec` of owned parts before anything
//! looks at them, so a 20 MiB compound of empty parts (two bytes each) costs
//! ten million allocations. Here the parts are visited as slices of the
//! input, nothing is allocated, and the caller decides when to stop.
//!
//! The rules are proto3's as prost applies them, for the field types these
//! two messages use: a scalar field seen twice keeps the last value, unknown
//! fields are skipped, a known field with the wrong wire type is an error.
//! Groups (wire types 3 and 4, which no proto3 encoder emits) are refused.

/// Why bytes could not be read as an envelope or a compound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// One protobuf field value, borrowed from the input.
enum Value<'a> {
    Varint(u64),
    Fixed,
    Bytes(&'a [u8]),
}

fn varint(buf: &mut &[u8]) -> Result<u64, Malformed> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(Malformed)?;
        *buf = rest;
        if i == 9 && b > 1 {
            return Err(Malformed);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Malformed)
}

/// Reads the next field: `Ok(None)` at the end of the input.
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<Option<(u64, Value<'a>)>, Malformed> {
    if buf.is_empty() {
        return Ok(None);
    }
    let key = varint(buf)?;
    if key > u64::from(u32::MAX) {
        return Err(Malformed);
    }
    let tag = key >> 3;
    if tag == 0 {
        return Err(Malformed);
    }
    let value = match key & 7 {
        0 => Value::Varint(varint(buf)?),
        1 | 5 => {
            let n = if key & 7 == 1 { 8 } else { 4 };
            if buf.len() < n {
                return Err(Malformed);
            }
            *buf = &buf[n..];
            Value::Fixed
        }
        2 => {
            let len = usize::try_from(varint(buf)?).map_err(|_| Malformed)?;
            if buf.len() < len {
                return Err(Malformed);
            }
            let (bytes, rest) = buf.split_at(len);
            *buf = rest;
            Value::Bytes(bytes)
        }
        _ => return Err(Malformed),
    };
    Ok(Some((tag, value)))
}

/// An envelope's `type` (as prost reads an `int32` enum: the low 32 bits)
/// and `data`, borrowed from `buf`.
pub(crate) fn envelope(buf: &[u8]) -> Result<(i32, &[u8]), Malformed> {
    let mut rest = buf;
    let (mut t, mut data): (i32, &[u8]) = (0, &[]);
    while let Some((tag, value)) = next_field(&mut rest)? {
        match (tag, value) {
            (1, Value::Varint(v)) => t = v as i32,
            (2, Value::Bytes(b)) => data = b,
            (1 | 2, _) => return Err(Malformed),
            _ => {}
        }
    }
    Ok((t, data))
}

/// The payload of one `SimpleMessage` (empty when absent).
fn simple_message_payload(buf: &[u8]) -> Result<&[u8], Malformed> {
    let mut rest = buf;
    let mut payload: &[u8] = &[];
    while let Some((tag, value)) = next_field(&mut rest)? {
        match (tag, value) {
            (1, Value::Bytes(b)) => payload = b,
            (1, _) => return Err(Malformed),
            _ => {}
        }
    }
    Ok(payload)
}

/// Checks that `data` (a compound's inner bytes) is well formed and counts
/// its parts, stopping as soon as the count passes `max`: `Ok(n)` with
/// `n <= max`, or `Ok(max + 1)` for "more than `max`". Allocates nothing.
pub(crate) fn count_parts(data: &[u8], max: usize) -> Result<usize, Malformed> {
    let mut n = 0usize;
    let mut rest = data;
    while let Some((tag, value)) = next_field(&mut rest)? {
        match (tag, value) {
            (1, Value::Bytes(b)) => {
                simple_message_payload(b)?;
                n += 1;
                if n > max {
                    return Ok(n);
                }
            }
            (1, _) => return Err(Malformed),
            _ => {}
        }
    }
    Ok(n)
}

/// Calls `f` with each part's payload, in order. Call it on input that
/// [`count_parts`] accepted (it stops silently at a malformed field).
pub(crate) fn for_each_part<'a>(data: &'a [u8], f: &mut dyn FnMut(&'a [u8])) {
    let mut rest = data;
    while let Ok(Some((tag, value))) = next_field(&mut rest) {
        if let (1, Value::Bytes(b)) = (tag, value) {
            match simple_message_payload(b) {
                Ok(p) => f(p),
                Err(Malformed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CompoundMessage, GossipMessage, SimpleMessage};
    use prost::Message as _;

    /// The scanner reads what prost writes, parts and envelope alike, and
    /// refuses what prost refuses.
    #[test]
    fn agrees_with_prost() {
        let parts: Vec<Vec<u8>> = vec![vec![], vec![8, 2, 18, 1, 7], vec![0xff; 300]];
        let c = CompoundMessage {
            messages: parts
                .iter()
                .map(|p| SimpleMessage { payload: p.clone() })
                .collect(),
        }
        .encode_to_vec();
        assert_eq!(count_parts(&c, 10), Ok(3));
        assert_eq!(count_parts(&c, 2), Ok(3), "stops at max + 1");
        let mut seen = Vec::new();
        for_each_part(&c, &mut |p| seen.push(p.to_vec()));
        assert_eq!(seen, parts);
        let env = GossipMessage {
            r#type: 5,
            data: c.clone(),
        }
        .encode_to_vec();
        assert_eq!(envelope(&env), Ok((5, &c[..])));
        for bad in [&[0x0a, 5, 1][..], &[0x08][..], &[0x00, 1][..], &[0x0b][..]] {
            assert_eq!(count_parts(bad, 10), Err(Malformed), "{bad:?}");
            assert!(CompoundMessage::decode(bad).is_err(), "{bad:?}");
        }
        // A varint for field 1 is a wire-type mismatch for both.
        assert_eq!(envelope(&[0x12 & !7, 1]), Err(Malformed));
        assert!(GossipMessage::decode(&[0x10, 1][..]).is_err());
    }
}
