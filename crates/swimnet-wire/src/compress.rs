//! `compress` messages (type 9): `[0x09] msgpack(compress{Algo: 0, Buf: lzw(inner)})`.

use crate::budget::{BudgetLimit, DecodeBudget};
use crate::error::WireError;
use crate::lzw;
use crate::msg::MessageType;
use crate::msgpack::{FieldKey, Reader, Writer};
use std::borrow::Cow;

/// Largest decompressed size accepted (memberlist HEAD's
/// `maxDecompressedBytes`, 40 MiB).
pub const MAX_DECOMPRESSED: usize = 40 << 20;

/// The only algorithm memberlist defines: LZW.
pub const LZW_ALGO: u8 = 0;

/// Appends `[0x09] msgpack(compress{Algo: 0, Buf: lzw(inner)})` to `out`.
///
/// `inner` is a whole message (type byte first). On packets, memberlist
/// only uses the result when it is shorter than `inner`
/// ([`crate::packet::seal_packet`] does that check); on streams it always
/// does.
pub fn compress_payload(inner: &[u8], out: &mut Vec<u8>) {
    out.push(MessageType::Compress as u8);
    Writer::new(out).write_encoded(b"\x82\xa4Algo\x00\xa3Buf");
    // Compress straight into `out` behind room for the largest string
    // header (str32, 5 bytes), then slide the data down if a shorter header
    // fits: saves a temporary buffer.
    let hdr_at = out.len();
    out.extend_from_slice(&[0; 5]);
    lzw::compress(inner, out);
    let n = out.len() - hdr_at - 5;
    let mut hdr = [0u8; 5];
    let hdr_len = if n < 32 {
        hdr[0] = 0xa0 | n as u8;
        1
    } else if n <= 0xffff {
        hdr[0] = 0xda;
        hdr[1..3].copy_from_slice(&(n as u16).to_be_bytes());
        3
    } else {
        hdr[0] = 0xdb;
        hdr[1..5].copy_from_slice(&(n as u32).to_be_bytes());
        5
    };
    out.copy_within(hdr_at + 5.., hdr_at + hdr_len);
    out.truncate(hdr_at + hdr_len + n);
    out[hdr_at..hdr_at + hdr_len].copy_from_slice(&hdr[..hdr_len]);
}

/// Decodes a compress message and returns the decompressed inner bytes.
///
/// `body` is everything *after* the 0x09 type byte (bytes after the msgpack
/// value are ignored). Errors: bad msgpack, an algorithm other than LZW
/// ([`WireError::UnsupportedCompression`]), a malformed LZW stream, or more
/// than `max_out` bytes of output ([`WireError::TooLarge`]).
pub fn decompress_payload(body: &[u8], max_out: usize) -> Result<Vec<u8>, WireError> {
    let mut r = Reader::new(body);
    let (algo, buf) = read_compress(&mut r)?;
    if algo != LZW_ALGO {
        return Err(WireError::UnsupportedCompression(algo));
    }
    lzw::decompress(&buf, max_out)
}

/// [`decompress_payload`] paid from `budget`: at most what is left of its
/// bytes may be decoded, and every byte decoded is taken from it, also when
/// the stream then turns out malformed. Output that would not fit leaves the
/// budget exceeded ([`BudgetLimit::Bytes`]) and returns the
/// [`WireError::TooLarge`].
pub fn decompress_payload_within(
    body: &[u8],
    budget: &mut DecodeBudget,
) -> Result<Vec<u8>, WireError> {
    let mut r = Reader::new(body);
    let (algo, buf) = read_compress(&mut r)?;
    if algo != LZW_ALGO {
        return Err(WireError::UnsupportedCompression(algo));
    }
    let mut produced = 0;
    let result = lzw::decompress_counting(&buf, budget.bytes_left(), &mut produced);
    if matches!(result, Err(WireError::TooLarge { .. })) {
        budget.exhaust(BudgetLimit::Bytes);
    } else {
        budget.take_bytes(produced);
    }
    result
}

/// Reads a `compress` struct, borrowing its buffer when it is a string or
/// bin value: `(Algo, Buf)`.
pub(crate) fn read_compress<'a>(r: &mut Reader<'a>) -> Result<(u8, Cow<'a, [u8]>), WireError> {
    let mut algo = 0u8;
    let mut buf = Cow::Borrowed(&[][..]);
    r.read_struct(&[FieldKey::new("Algo"), FieldKey::new("Buf")], |i, r| {
        match i {
            0 => algo = r.read_u8()?,
            _ => buf = r.read_bytes()?,
        }
        Ok(())
    })?;
    Ok((algo, buf))
}
