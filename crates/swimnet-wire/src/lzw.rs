//! LZW exactly as Go's `compress/lzw` does it with LSB bit order and 8-bit
//! literals, which is what memberlist's `compress` messages carry.
//!
//! The format is the GIF flavour of LZW: codes 0-255 are literals, 256 is
//! *clear*, 257 is *end of information* (EOI); new strings get codes from
//! 258 on. Codes start 9 bits wide and widen by one bit as soon as the next
//! code to hand out reaches `1 << width` (no "early change"), up to 12 bits.
//! Bits are packed least significant first.
//!
//! Go 1.19's writer, which our encoder reproduces bit for bit:
//! * starts with a clear code (older Go writers did not; the decoder accepts
//!   both);
//! * when the next code to hand out would be 4095, emits a clear code (at the
//!   current width) instead of defining it, and starts over at 9 bits;
//! * ends with the pending code, then EOI, then zero bits up to a byte.
//!
//! The decoder requires EOI (Go reports "unexpected EOF" without it) and
//! ignores anything after it.

use crate::error::{LzwError, WireError};

const CLEAR: u32 = 256;
const EOI: u32 = 257;
/// Code at which the writer clears instead of defining a string.
const MAX_CODE: u32 = 4095;
const MIN_WIDTH: u32 = 9;
const MAX_WIDTH: u32 = 12;

/// Packs codes LSB-first into an output vector.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter<'_> {
    #[inline(always)]
    fn put(&mut self, code: u32, width: u32) {
        self.acc |= u64::from(code) << self.bits;
        self.bits += width;
        if self.bits >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.bits -= 32;
        }
    }

    fn finish(self) {
        let n = self.bits.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..n]);
    }
}

/// Compresses `input` and appends the LZW stream to `out`.
///
/// The output is byte for byte what Go 1.19's
/// `lzw.NewWriter(w, lzw.LSB, 8)` writes for the same input (an empty input
/// gives the three bytes of "clear, EOI").
pub fn compress(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len() / 2 + 8);
    let mut w = BitWriter {
        out,
        acc: 0,
        bits: 0,
    };
    w.put(CLEAR, MIN_WIDTH);
    let Some((&first, rest)) = input.split_first() else {
        w.put(EOI, MIN_WIDTH);
        w.finish();
        return;
    };

    // Dictionary: open addressing, each slot `key << 12 | code` where
    // key = prefix code << 8 | next byte (20 bits). 0 marks an empty slot
    // (no real entry has code 0). Between two clears at most
    // MAX_CODE - 258 strings are defined; size the table for the load
    // this input can produce (load at most 1/2), so short packets zero
    // little memory. The hash is a cheap xor-fold: the lookup sits on the
    // per-byte dependency chain.
    let max_entries = rest.len().min((MAX_CODE - 258) as usize).max(16);
    let slots = (max_entries * 2).next_power_of_two();
    let mask = slots - 1;
    let mut table = vec![0u32; slots];

    let mut width = MIN_WIDTH;
    let mut hi = EOI; // last code handed out
    let mut overflow = 1u32 << MIN_WIDTH;
    let mut code = u32::from(first);

    'bytes: for &b in rest {
        let key = code << 8 | u32::from(b);
        let mut slot = ((key ^ (key >> 12)) as usize) & mask;
        loop {
            let e = table[slot];
            if e == 0 {
                break;
            }
            if e >> 12 == key {
                code = e & 0xfff;
                continue 'bytes;
            }
            slot = (slot + 1) & mask;
        }
        w.put(code, width);
        code = u32::from(b);
        hi += 1;
        if hi == overflow {
            width += 1;
            overflow <<= 1;
        }
        if hi == MAX_CODE {
            w.put(CLEAR, width);
            width = MIN_WIDTH;
            hi = EOI;
            overflow = 1 << MIN_WIDTH;
            table.fill(0);
            continue;
        }
        table[slot] = key << 12 | hi;
    }

    w.put(code, width);
    hi += 1;
    if hi == overflow {
        width += 1;
    }
    if hi == MAX_CODE {
        w.put(CLEAR, width);
        width = MIN_WIDTH;
    }
    w.put(EOI, width);
    w.finish();
}

/// Decompresses a Go-style LZW stream (LSB, 8-bit literals).
///
/// Returns the decoded bytes, [`WireError::Lzw`] for a malformed stream
/// (undefined code, or input ending before EOI), or
/// [`WireError::TooLarge`] as soon as the output would exceed `max_out`
/// bytes (memberlist HEAD uses 40 MiB, see
/// [`crate::compress::MAX_DECOMPRESSED`]).
pub fn decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, WireError> {
    decompress_counting(input, max_out, &mut 0)
}

/// [`decompress`], also telling how much work was done: `produced` is set
/// to the number of bytes decoded, on success (the output's length) and on
/// error alike (the bytes decoded before the stream turned out malformed or
/// too large). Use it to charge a failed decompression to a
/// [`crate::budget::DecodeBudget`].
pub fn decompress_counting(
    input: &[u8],
    max_out: usize,
    produced: &mut usize,
) -> Result<Vec<u8>, WireError> {
    // Every string in the table has already appeared in the output: a code
    // is defined as "the previous code's string plus the first byte of the
    // next one", and those two are adjacent in the output. So the table
    // stores where each string sits in `out` and decoding a code is a copy
    // from earlier output. Codes are defined in order from 258, so the
    // table is a Vec indexed by `code - 258`, emptied on clear.
    let mut table: Vec<(usize, usize)> =
        Vec::with_capacity(input.len().min((MAX_CODE - 257) as usize));
    // `out[..end]` is the output so far. The vector is kept at least SLACK
    // bytes longer than `end` so that short strings are copied with one
    // fixed-size move (the bytes past the string are overwritten later).
    const SLACK: usize = 16;
    let mut out: Vec<u8> =
        vec![0; input.len().saturating_mul(3).min(max_out).min(1 << 20) + SLACK + MAX_STRING];
    let mut end = 0usize;
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    let mut pos = 0usize;

    let mut width = MIN_WIDTH;
    let mut hi = EOI; // next code to define, as Go counts it
    let mut overflow = 1u32 << MIN_WIDTH;
    // (offset, length) in `out` of the previous code's string; None right
    // after a clear and while the table is full.
    let mut last: Option<(usize, usize)> = None;

    loop {
        if out.len() < end + SLACK + MAX_STRING {
            // Room for the longest possible next string plus the slack; grow
            // geometrically but never far past `max_out`.
            let want = (out.len() * 2).min(max_out.saturating_add(SLACK + MAX_STRING));
            out.resize(want.max(end + SLACK + MAX_STRING), 0);
        }
        // Read one code, refilling the bit buffer 7 bytes at a time when we can.
        if bits < width {
            if let Some(chunk) = input.get(pos..pos + 8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                let take = (63 - bits) / 8;
                acc |= u64::from_le_bytes(b) << bits;
                bits += take * 8;
                acc &= (1u64 << bits) - 1;
                pos += take as usize;
            } else {
                while bits < width {
                    let Some(&b) = input.get(pos) else {
                        *produced = end;
                        return Err(LzwError::UnexpectedEof.into());
                    };
                    pos += 1;
                    acc |= u64::from(b) << bits;
                    bits += 8;
                }
            }
        }
        let code = (acc & ((1 << width) - 1)) as u32;
        acc >>= width;
        bits -= width;

        let start = end;
        let room = max_out - start;
        let mut too_large = |n: usize| {
            *produced = start;
            WireError::TooLarge {
                what: "decompressed payload",
                len: (start + n) as u64,
                max: max_out as u64,
            }
        };
        if code < CLEAR {
            if room < 1 {
                return Err(too_large(1));
            }
            out[end] = code as u8;
            end += 1;
            if let Some((off, len)) = last {
                table.push((off, len + 1));
            }
        } else if code == CLEAR {
            table.clear();
            width = MIN_WIDTH;
            hi = EOI;
            overflow = 1 << MIN_WIDTH;
            last = None;
            continue;
        } else if code == EOI {
            *produced = end;
            out.truncate(end);
            return Ok(out);
        } else {
            let idx = (code - 258) as usize;
            if let Some(&(off, len)) = table.get(idx) {
                if room < len {
                    return Err(too_large(len));
                }
                copy_back(&mut out, off, len, end);
                end += len;
                if let Some((off, len)) = last {
                    table.push((off, len + 1));
                }
            } else if let (true, Some((off, len))) = (idx == table.len(), last) {
                // The code being defined right now ("KwKwK"): the previous
                // string plus its own first byte.
                if room < len + 1 {
                    return Err(too_large(len + 1));
                }
                copy_back(&mut out, off, len, end);
                end += len;
                out[end] = out[off];
                end += 1;
                table.push((off, len + 1));
            } else {
                *produced = end;
                return Err(LzwError::InvalidCode(code as u16).into());
            }
        }
        last = Some((start, end - start));
        hi += 1;
        if hi >= overflow {
            if width == MAX_WIDTH {
                // Table full: stop defining strings until the next clear.
                last = None;
                hi -= 1;
            } else {
                width += 1;
                overflow <<= 1;
            }
        }
    }
}

/// Longest string a code can stand for: one byte per code defined since the
/// last clear, plus one.
const MAX_STRING: usize = 4096 + 1;

/// Appends a copy of `out[off..off + len]` at `out[end..]`. The caller keeps
/// `out.len() >= end + len + 16` and `off + len <= end`.
///
/// Short strings (the common case) are moved 16 bytes at a time, which may
/// write up to 15 bytes past `end + len`; those bytes are overwritten later.
/// A chunk that reads past `off + len` only feeds those throw-away bytes, so
/// the overlap with the destination is harmless.
#[inline(always)]
fn copy_back(out: &mut [u8], off: usize, len: usize, end: usize) {
    if len <= 128 {
        let mut k = 0;
        while k < len {
            let mut tmp = [0u8; 16];
            tmp.copy_from_slice(&out[off + k..off + k + 16]);
            out[end + k..end + k + 16].copy_from_slice(&tmp);
            k += 16;
        }
    } else {
        out.copy_within(off..off + len, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lzw(input: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        compress(input, &mut v);
        v
    }

    #[test]
    fn golden_hello() {
        let c = lzw(b"hello hello hello hello");
        assert_eq!(
            c,
            [
                0x00, 0xd1, 0x94, 0x61, 0xc3, 0xe6, 0x0d, 0x08, 0x81, 0x04, 0x0d, 0x22, 0x2c, 0x78,
                0x70, 0x60, 0xc1, 0x80
            ]
        );
        assert_eq!(decompress(&c, 1000).unwrap(), b"hello hello hello hello");
    }

    #[test]
    fn counting_reports_the_work_done() {
        let input = vec![b'z'; 50_000];
        let c = lzw(&input);
        let mut produced = 0;
        assert_eq!(
            decompress_counting(&c, 1 << 20, &mut produced).unwrap(),
            input
        );
        assert_eq!(produced, 50_000);
        // Too large: stopped before the string that would not fit.
        produced = 0;
        assert!(matches!(
            decompress_counting(&c, 20_000, &mut produced),
            Err(WireError::TooLarge { .. })
        ));
        assert!(produced <= 20_000 && produced > 19_000, "{produced}");
        // Cut short: everything decoded before the end is reported.
        produced = 0;
        assert_eq!(
            decompress_counting(&c[..c.len() - 3], 1 << 20, &mut produced),
            Err(LzwError::UnexpectedEof.into())
        );
        assert!(produced > 40_000, "{produced}");
    }

    #[test]
    fn empty() {
        let c = lzw(b"");
        // clear (256) then EOI (257), 9 bits each.
        assert_eq!(c, [0x00, 0x03, 0x02]);
        assert_eq!(decompress(&c, 10).unwrap(), b"");
    }

    #[test]
    fn no_initial_clear_and_errors() {
        let c = lzw(b"abcabcabc");
        // Short input: every code is 9 bits wide. Re-pack without the
        // leading clear code, as pre-1.17 Go writers produced.
        let mut codes = Vec::new();
        let mut acc = 0u64;
        let mut bits = 0;
        let mut pos = 0;
        loop {
            while bits < 9 {
                acc |= u64::from(c[pos]) << bits;
                pos += 1;
                bits += 8;
            }
            let code = (acc & 0x1ff) as u32;
            acc >>= 9;
            bits -= 9;
            codes.push(code);
            if code == 257 {
                break;
            }
        }
        assert_eq!(codes[0], 256);
        let mut v = Vec::new();
        let mut w = BitWriter {
            out: &mut v,
            acc: 0,
            bits: 0,
        };
        for &code in &codes[1..] {
            w.put(code, 9);
        }
        w.finish();
        assert_eq!(decompress(&v, 100).unwrap(), b"abcabcabc");
        // No EOI
        assert_eq!(
            decompress(&c[..c.len() - 2], 100),
            Err(WireError::Lzw(LzwError::UnexpectedEof))
        );
        assert_eq!(
            decompress(&[], 100),
            Err(WireError::Lzw(LzwError::UnexpectedEof))
        );
        // Too large
        assert!(matches!(decompress(&c, 5), Err(WireError::TooLarge { .. })));
        // Undefined code right after clear: 300.
        let mut v = Vec::new();
        let mut w = BitWriter {
            out: &mut v,
            acc: 0,
            bits: 0,
        };
        w.put(256, 9);
        w.put(300, 9);
        w.put(257, 9);
        w.finish();
        assert_eq!(
            decompress(&v, 100),
            Err(WireError::Lzw(LzwError::InvalidCode(300)))
        );
    }

    #[test]
    fn long_inputs_roundtrip() {
        let mut x = 0x1234_5678u32;
        let mut rnd = Vec::new();
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            rnd.push((x % 7) as u8 + b'a');
        }
        let c = lzw(&rnd);
        assert_eq!(decompress(&c, rnd.len()).unwrap(), rnd);
        let rep = vec![b'z'; 200_000];
        let c = lzw(&rep);
        assert_eq!(decompress(&c, rep.len()).unwrap(), rep);
    }
}
