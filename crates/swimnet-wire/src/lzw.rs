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
    let mut codes = CodeTable::new(input.len());
    let mut out = Output::new(input.len(), max_out);
    let mut reader = CodeReader {
        input,
        pos: 0,
        acc: 0,
        bits: 0,
    };
    loop {
        out.reserve_string();
        let Some(code) = reader.read(codes.width) else {
            *produced = out.end;
            return Err(LzwError::UnexpectedEof.into());
        };
        if code == CLEAR {
            codes.clear();
            continue;
        }
        if code == EOI {
            *produced = out.end;
            return Ok(out.finish());
        }
        let start = out.end;
        if let Err(e) = out.decode(code, &mut codes) {
            *produced = start;
            return Err(e);
        }
        codes.define_after(start, out.end);
    }
}

/// Reads codes LSB-first, refilling its bit buffer 7 bytes at a time when
/// the input has 8 left.
struct CodeReader<'a> {
    input: &'a [u8],
    pos: usize,
    acc: u64,
    bits: u32,
}

impl CodeReader<'_> {
    /// The next `width`-bit code, or None when the input ends first.
    #[inline(always)]
    fn read(&mut self, width: u32) -> Option<u32> {
        if self.bits < width {
            if let Some(chunk) = self.input.get(self.pos..self.pos + 8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                let take = (63 - self.bits) / 8;
                self.acc |= u64::from_le_bytes(b) << self.bits;
                self.bits += take * 8;
                self.acc &= (1u64 << self.bits) - 1;
                self.pos += take as usize;
            } else {
                while self.bits < width {
                    let &b = self.input.get(self.pos)?;
                    self.pos += 1;
                    self.acc |= u64::from(b) << self.bits;
                    self.bits += 8;
                }
            }
        }
        let code = (self.acc & ((1 << width) - 1)) as u32;
        self.acc >>= width;
        self.bits -= width;
        Some(code)
    }
}

/// The strings defined since the last clear, and the code width.
///
/// Every string in the table has already appeared in the output: a code
/// is defined as "the previous code's string plus the first byte of the
/// next one", and those two are adjacent in the output. So the table
/// stores where each string sits in the output and decoding a code is a
/// copy from earlier output. Codes are defined in order from 258, so the
/// table is a Vec indexed by `code - 258`, emptied on clear.
struct CodeTable {
    /// (offset, length) in the output of the string of code `258 + i`.
    strings: Vec<(usize, usize)>,
    width: u32,
    /// Next code to define, as Go counts it.
    hi: u32,
    overflow: u32,
    /// (offset, length) in the output of the previous code's string; None
    /// right after a clear and while the table is full.
    last: Option<(usize, usize)>,
}

impl CodeTable {
    fn new(input_len: usize) -> Self {
        CodeTable {
            strings: Vec::with_capacity(input_len.min((MAX_CODE - 257) as usize)),
            width: MIN_WIDTH,
            hi: EOI,
            overflow: 1 << MIN_WIDTH,
            last: None,
        }
    }

    /// A clear code: forget every string, back to 9-bit codes.
    #[inline(always)]
    fn clear(&mut self) {
        self.strings.clear();
        self.width = MIN_WIDTH;
        self.hi = EOI;
        self.overflow = 1 << MIN_WIDTH;
        self.last = None;
    }

    /// Defines the string "previous string plus the first byte of the
    /// string just decoded", if there is a previous string.
    #[inline(always)]
    fn extend_last(&mut self) {
        if let Some((off, len)) = self.last {
            self.strings.push((off, len + 1));
        }
    }

    /// After a code decoded to `out[start..end]`: it becomes the previous
    /// string, and the code width grows when the next code needs it (at 12
    /// bits the table is full and defines nothing until the next clear).
    #[inline(always)]
    fn define_after(&mut self, start: usize, end: usize) {
        self.last = Some((start, end - start));
        self.hi += 1;
        if self.hi >= self.overflow {
            if self.width == MAX_WIDTH {
                self.last = None;
                self.hi -= 1;
            } else {
                self.width += 1;
                self.overflow <<= 1;
            }
        }
    }
}

/// The decoded bytes: `out[..end]`, within `max_out`.
struct Output {
    /// Kept at least `SLACK` bytes longer than `end` so that short strings
    /// are copied with one fixed-size move (the bytes past the string are
    /// overwritten later).
    out: Vec<u8>,
    end: usize,
    max_out: usize,
}

/// Room kept past the output's end for fixed-size copies.
const SLACK: usize = 16;

impl Output {
    fn new(input_len: usize, max_out: usize) -> Self {
        Output {
            out: vec![
                0;
                input_len.saturating_mul(3).min(max_out).min(1 << 20) + SLACK + MAX_STRING
            ],
            end: 0,
            max_out,
        }
    }

    /// Makes room for the longest possible next string plus the slack;
    /// grows geometrically but never far past `max_out`.
    #[inline(always)]
    fn reserve_string(&mut self) {
        if self.out.len() < self.end + SLACK + MAX_STRING {
            let want = (self.out.len() * 2).min(self.max_out.saturating_add(SLACK + MAX_STRING));
            self.out.resize(want.max(self.end + SLACK + MAX_STRING), 0);
        }
    }

    /// Appends the string of `code` (a literal or a defined code), defining
    /// the string the previous code implies. Errors when the code is
    /// undefined or the output would pass `max_out`.
    #[inline(always)]
    fn decode(&mut self, code: u32, codes: &mut CodeTable) -> Result<(), WireError> {
        let room = self.max_out - self.end;
        if code < CLEAR {
            if room < 1 {
                return Err(self.too_large(1));
            }
            self.out[self.end] = code as u8;
            self.end += 1;
            codes.extend_last();
            return Ok(());
        }
        let idx = (code - 258) as usize;
        if let Some(&(off, len)) = codes.strings.get(idx) {
            if room < len {
                return Err(self.too_large(len));
            }
            copy_back(&mut self.out, off, len, self.end);
            self.end += len;
            codes.extend_last();
        } else if let (true, Some((off, len))) = (idx == codes.strings.len(), codes.last) {
            // The code being defined right now ("KwKwK"): the previous
            // string plus its own first byte.
            if room < len + 1 {
                return Err(self.too_large(len + 1));
            }
            copy_back(&mut self.out, off, len, self.end);
            self.end += len;
            self.out[self.end] = self.out[off];
            self.end += 1;
            codes.strings.push((off, len + 1));
        } else {
            return Err(LzwError::InvalidCode(code as u16).into());
        }
        Ok(())
    }

    /// The error for a string of `n` more bytes that would pass `max_out`.
    #[cold]
    fn too_large(&self, n: usize) -> WireError {
        WireError::TooLarge {
            what: "decompressed payload",
            len: (self.end + n) as u64,
            max: self.max_out as u64,
        }
    }

    /// The decoded bytes.
    fn finish(mut self) -> Vec<u8> {
        self.out.truncate(self.end);
        self.out
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
