//! The msgpack dialect of hashicorp/go-msgpack, written by hand.
//!
//! memberlist encodes every message with go-msgpack's default
//! `MsgpackHandle`. Its output differs from what general-purpose Rust msgpack
//! crates produce, and memberlist peers compare nothing but bytes, so we keep
//! our own small encoder and decoder:
//!
//! * Structs are **maps** keyed by the Go field names, sorted by bytes
//!   (rmp-serde writes arrays by default).
//! * Strings *and* byte slices use the old "raw" family only: fixstr, str16,
//!   str32. go-msgpack never writes str8 (rmp's `write_str` picks str8 for
//!   32..=255 bytes) and never bin (rmp-serde writes `Vec<u8>` as an array, or
//!   bin with `serde_bytes`). go-msgpack 0.5.5 even rejects bin for strings.
//! * Go `int` values that are not negative are written in the unsigned forms,
//!   as go-msgpack 0.5.5 (memberlist 0.2.2's version) does.
//!
//! The [`Reader`] is deliberately lenient, like Go's decoder: str8 and the bin
//! family are accepted for strings and bytes, arrays of small integers for
//! bytes, signed and unsigned integer forms (range-checked), `nil` for any
//! value, and structs as maps (keys in any order, unknown keys skipped) or as
//! arrays (fields in Go source order).
//!
//! The reader never reads past the end of the value it is asked for and
//! reports [`WireError::Incomplete`] when the input stops early, which the
//! stream decoder uses to wait for more bytes. Lengths announced by the peer
//! are checked against the bytes actually present before anything is
//! allocated.

use std::borrow::Cow;

use crate::error::WireError;

/// Deepest nesting of containers [`Reader::skip_value`] walks through.
pub const MAX_SKIP_DEPTH: usize = 32;

// Marker bytes.
const NIL: u8 = 0xc0;
const FALSE: u8 = 0xc2;
const TRUE: u8 = 0xc3;
const BIN8: u8 = 0xc4;
const BIN16: u8 = 0xc5;
const BIN32: u8 = 0xc6;
const EXT8: u8 = 0xc7;
const EXT16: u8 = 0xc8;
const EXT32: u8 = 0xc9;
const FLOAT32: u8 = 0xca;
const FLOAT64: u8 = 0xcb;
const UINT8: u8 = 0xcc;
const UINT16: u8 = 0xcd;
const UINT32: u8 = 0xce;
const UINT64: u8 = 0xcf;
const INT8: u8 = 0xd0;
const INT16: u8 = 0xd1;
const INT32: u8 = 0xd2;
const INT64: u8 = 0xd3;
const FIXEXT1: u8 = 0xd4;
const FIXEXT16: u8 = 0xd8;
const STR8: u8 = 0xd9;
const STR16: u8 = 0xda;
const STR32: u8 = 0xdb;
const ARRAY16: u8 = 0xdc;
const ARRAY32: u8 = 0xdd;
const MAP16: u8 = 0xde;
const MAP32: u8 = 0xdf;

/// Appends go-msgpack-style values to a `Vec<u8>`.
///
/// Create one over the output buffer, write values, drop it. Nothing is ever
/// removed from the buffer.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Starts appending to `out` (existing contents are kept).
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    /// Writes `nil` (0xc0).
    #[inline]
    pub fn write_nil(&mut self) {
        self.out.push(NIL);
    }

    /// Writes a bool (0xc2 / 0xc3).
    #[inline]
    pub fn write_bool(&mut self, v: bool) {
        self.out.push(if v { TRUE } else { FALSE });
    }

    /// Writes an unsigned integer in its smallest unsigned form
    /// (positive fixint, 0xcc, 0xcd, 0xce or 0xcf).
    #[inline]
    pub fn write_uint(&mut self, v: u64) {
        if v <= 0x7f {
            self.out.push(v as u8);
        } else if v <= 0xff {
            self.out.extend_from_slice(&[UINT8, v as u8]);
        } else if v <= 0xffff {
            self.out.push(UINT16);
            self.out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= 0xffff_ffff {
            self.out.push(UINT32);
            self.out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.out.push(UINT64);
            self.out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Writes a Go `int` the way go-msgpack 0.5.5 does: non-negative values in
    /// the unsigned forms, negative ones in the smallest signed form.
    pub fn write_int(&mut self, v: i64) {
        if v >= 0 {
            self.write_uint(v as u64);
        } else if v >= -32 {
            self.out.push(v as i8 as u8);
        } else if v >= i64::from(i8::MIN) {
            self.out.extend_from_slice(&[INT8, v as i8 as u8]);
        } else if v >= i64::from(i16::MIN) {
            self.out.push(INT16);
            self.out.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= i64::from(i32::MIN) {
            self.out.push(INT32);
            self.out.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            self.out.push(INT64);
            self.out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Writes raw bytes as a msgpack "raw string": fixstr, str16 or str32
    /// (never str8, never bin). Used for Go strings and non-nil `[]byte`.
    ///
    /// Lengths over `u32::MAX` cannot be represented; callers never get near
    /// that (a debug assertion checks it).
    #[inline]
    pub fn write_raw(&mut self, v: &[u8]) {
        let n = v.len();
        debug_assert!(
            n <= u32::MAX as usize,
            "msgpack string longer than u32::MAX"
        );
        if n < 32 {
            self.out.push(0xa0 | n as u8);
        } else if n <= 0xffff {
            self.out.push(STR16);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.out.push(STR32);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.out.extend_from_slice(v);
    }

    /// Writes a Go string (see [`Writer::write_raw`]).
    #[inline]
    pub fn write_str(&mut self, v: &str) {
        self.write_raw(v.as_bytes());
    }

    /// Writes a Go `[]byte` field: `nil` when empty (a Go nil slice), else a
    /// raw string.
    #[inline]
    pub fn write_bytes(&mut self, v: &[u8]) {
        if v.is_empty() {
            self.write_nil();
        } else {
            self.write_raw(v);
        }
    }

    /// Writes a map header for `n` entries (fixmap, map16 or map32).
    #[inline]
    pub fn write_map_len(&mut self, n: u32) {
        if n < 16 {
            self.out.push(0x80 | n as u8);
        } else if n <= 0xffff {
            self.out.push(MAP16);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.out.push(MAP32);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// Writes an array header for `n` elements (fixarray, array16 or array32).
    #[inline]
    pub fn write_array_len(&mut self, n: u32) {
        if n < 16 {
            self.out.push(0x90 | n as u8);
        } else if n <= 0xffff {
            self.out.push(ARRAY16);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.out.push(ARRAY32);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// Writes a Go `float64`: always the 9-byte float64 form (0xcb), as
    /// go-msgpack does, whatever the value.
    #[inline]
    pub fn write_f64(&mut self, v: f64) {
        self.out.push(FLOAT64);
        self.out.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    /// Appends bytes that are already msgpack-encoded (e.g. a constant key).
    #[inline]
    pub fn write_encoded(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
}

/// A Go struct field name (at most 15 bytes) packed into an integer, so that
/// matching map keys costs integer compares instead of string compares.
///
/// Build the field lists once, as constants: `const F: [FieldKey; 2] =
/// [FieldKey::new("SeqNo"), FieldKey::new("Payload")];`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldKey(u128);

impl FieldKey {
    /// Packs a field name.
    ///
    /// # Panics
    /// If `name` is longer than 15 bytes (at compile time when used in a
    /// constant). memberlist's longest field name has 12.
    pub const fn new(name: &str) -> FieldKey {
        let b = name.as_bytes();
        assert!(b.len() <= 15, "field names are at most 15 bytes");
        let mut k = (b.len() as u128) << 120;
        let mut i = 0;
        while i < b.len() {
            k |= (b[i] as u128) << (8 * i);
            i += 1;
        }
        FieldKey(k)
    }

    /// Packs a key read from the wire; `None` if it is too long to be any
    /// field name.
    #[inline]
    pub fn from_raw(raw: &[u8]) -> Option<FieldKey> {
        fn le64(s: &[u8]) -> u64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(s);
            u64::from_le_bytes(b)
        }
        fn le32(s: &[u8]) -> u64 {
            let mut b = [0u8; 4];
            b.copy_from_slice(s);
            u64::from(u32::from_le_bytes(b))
        }
        // Fixed-size (possibly overlapping) loads instead of a variable
        // length copy: key matching is on every decoder's hot path.
        let n = raw.len();
        let (lo, hi) = match n {
            16.. => return None,
            9..=15 => (le64(&raw[..8]), le64(&raw[n - 8..]) >> (8 * (16 - n))),
            8 => (le64(raw), 0),
            4..=7 => (le32(&raw[..4]) | le32(&raw[n - 4..]) << (8 * (n - 4)), 0),
            _ => (
                raw.iter().rev().fold(0u64, |k, &b| k << 8 | u64::from(b)),
                0,
            ),
        };
        Some(FieldKey(
            u128::from(lo) | u128::from(hi) << 64 | (n as u128) << 120,
        ))
    }
}

#[cfg(test)]
#[test]
fn field_key_packing_matches_const() {
    let names = [
        "",
        "A",
        "Vsn",
        "Node",
        "SeqNo",
        "Target",
        "Payload",
        "UserMsgLen",
        "Incarnation",
        "UserStateLen",
        "abcdefghijklmno",
    ];
    for n in names {
        assert_eq!(
            FieldKey::from_raw(n.as_bytes()),
            Some(FieldKey::new(n)),
            "{n}"
        );
    }
    for n in 0..16 {
        let s: String = "abcdefghijklmno"[..n].to_string();
        assert_eq!(FieldKey::from_raw(s.as_bytes()), Some(FieldKey::new(&s)));
    }
    assert_eq!(FieldKey::from_raw(&[b'x'; 16]), None);
    assert_ne!(FieldKey::from_raw(b"Node"), FieldKey::from_raw(b"Nod"));
}

/// The header of a value that is decoded into a Go struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructHeader {
    /// A map with this many key/value pairs.
    Map(u32),
    /// An array with this many elements (fields in Go source order).
    Array(u32),
    /// `nil`: the struct keeps its zero value.
    Nil,
}

/// Reads go-msgpack values from a byte slice, one at a time.
///
/// The reader keeps a position; each `read_*` call consumes exactly one value
/// (or nothing, on error). On [`WireError::Incomplete`] the position is
/// unspecified: start again with more input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_len: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            max_len: usize::MAX,
        }
    }

    /// Caps the length any string, bin or array may announce; a longer one is
    /// [`WireError::TooLarge`] *before* waiting for its bytes. Streams use it
    /// so that a bogus str32 header cannot make the caller buffer gigabytes.
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Number of bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not consumed yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next marker byte, without consuming it.
    pub fn peek(&self) -> Result<u8, WireError> {
        self.buf.get(self.pos).copied().ok_or(WireError::Incomplete)
    }

    /// Consumes `n` raw bytes (not msgpack) and returns them; used for the
    /// user data that follows some stream headers.
    pub fn read_raw_bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Incomplete)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Incomplete)?;
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, WireError> {
        let b = *self.buf.get(self.pos).ok_or(WireError::Incomplete)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let s = self.read_raw_bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    fn be16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    #[inline]
    fn be32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    fn be64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Checks an announced length against the cap set by
    /// [`Reader::with_max_len`].
    fn check_len(&self, n: usize, what: &'static str) -> Result<(), WireError> {
        if n > self.max_len {
            return Err(WireError::TooLarge {
                what,
                len: n as u64,
                max: self.max_len as u64,
            });
        }
        Ok(())
    }

    /// Consumes a `nil` if that is the next value and returns true; otherwise
    /// consumes nothing and returns false.
    pub fn read_nil(&mut self) -> Result<bool, WireError> {
        if self.peek()? == NIL {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Reads any integer form as an `i128` (wide enough for every form).
    /// `nil` reads as 0, as Go gives the zero value.
    fn read_integer(&mut self, expected: &'static str) -> Result<i128, WireError> {
        let start = self.pos;
        let m = self.byte()?;
        let v = match m {
            0x00..=0x7f => i128::from(m),
            0xe0..=0xff => i128::from(m as i8),
            NIL => 0,
            UINT8 => i128::from(self.byte()?),
            UINT16 => i128::from(self.be16()?),
            UINT32 => i128::from(self.be32()?),
            UINT64 => i128::from(self.be64()?),
            INT8 => i128::from(self.byte()? as i8),
            INT16 => i128::from(self.be16()? as i16),
            INT32 => i128::from(self.be32()? as i32),
            INT64 => i128::from(self.be64()? as i64),
            _ => {
                self.pos = start;
                return Err(WireError::Msgpack { expected, found: m });
            }
        };
        Ok(v)
    }

    /// Reads an integer that must fit in `0..=max` (a Go unsigned or
    /// non-negative field); `target` names the Go type for errors.
    pub fn read_uint_max(&mut self, max: u64, target: &'static str) -> Result<u64, WireError> {
        let v = self.read_integer("integer")?;
        if v < 0 || v > i128::from(max) {
            return Err(WireError::IntOutOfRange { value: v, target });
        }
        Ok(v as u64)
    }

    /// Reads a Go `uint8`.
    pub fn read_u8(&mut self) -> Result<u8, WireError> {
        Ok(self.read_uint_max(u64::from(u8::MAX), "uint8")? as u8)
    }

    /// Reads a Go `uint16`.
    pub fn read_u16(&mut self) -> Result<u16, WireError> {
        Ok(self.read_uint_max(u64::from(u16::MAX), "uint16")? as u16)
    }

    /// Reads a Go `uint32`.
    pub fn read_u32(&mut self) -> Result<u32, WireError> {
        Ok(self.read_uint_max(u64::from(u32::MAX), "uint32")? as u32)
    }

    /// Reads a Go `uint64`.
    pub fn read_u64(&mut self) -> Result<u64, WireError> {
        self.read_uint_max(u64::MAX, "uint64")
    }

    /// Reads a Go `int` (64-bit), from signed or unsigned forms.
    pub fn read_i64(&mut self) -> Result<i64, WireError> {
        let v = self.read_integer("integer")?;
        i64::try_from(v).map_err(|_| WireError::IntOutOfRange {
            value: v,
            target: "int",
        })
    }

    /// Reads a Go `float64`: a float64 or float32, or any integer form
    /// (converted), as go-msgpack accepts; `nil` reads as 0. NaN and
    /// infinities are returned as they are: checking them is the caller's job.
    pub fn read_f64(&mut self) -> Result<f64, WireError> {
        let start = self.pos;
        match self.byte()? {
            FLOAT64 => Ok(f64::from_bits(self.be64()?)),
            FLOAT32 => Ok(f64::from(f32::from_bits(self.be32()?))),
            _ => {
                self.pos = start;
                Ok(self.read_integer("float")? as f64)
            }
        }
    }

    /// Reads a bool: 0xc2/0xc3, or the fixints 0 and 1 (as Go accepts);
    /// `nil` reads as false.
    pub fn read_bool(&mut self) -> Result<bool, WireError> {
        let m = self.peek()?;
        let v = match m {
            FALSE | 0 | NIL => false,
            TRUE | 1 => true,
            _ => {
                return Err(WireError::Msgpack {
                    expected: "bool",
                    found: m,
                })
            }
        };
        self.pos += 1;
        Ok(v)
    }

    /// Reads the header of a string/bin value and returns its length, or
    /// `None` for a marker of another kind (nothing consumed then).
    fn raw_len(&mut self) -> Result<Option<usize>, WireError> {
        let start = self.pos;
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            NIL => 0,
            STR8 | BIN8 => usize::from(self.byte()?),
            STR16 | BIN16 => usize::from(self.be16()?),
            STR32 | BIN32 => self.be32()? as usize,
            _ => {
                self.pos = start;
                return Ok(None);
            }
        };
        self.check_len(n, "msgpack string")?;
        Ok(Some(n))
    }

    /// Reads a string or bin value (any of fixstr, str8/16/32, bin8/16/32)
    /// and borrows its bytes. `nil` reads as empty.
    pub fn read_raw(&mut self) -> Result<&'a [u8], WireError> {
        let m = self.peek()?;
        match self.raw_len()? {
            Some(n) => self.read_raw_bytes(n),
            None => Err(WireError::Msgpack {
                expected: "string",
                found: m,
            }),
        }
    }

    /// Reads a Go string field and checks it is UTF-8 (`field` names it in
    /// the error).
    pub fn read_str(&mut self, field: &'static str) -> Result<&'a str, WireError> {
        let raw = self.read_raw()?;
        std::str::from_utf8(raw).map_err(|_| WireError::InvalidUtf8 { field })
    }

    /// Reads a Go `[]byte` field: a string or bin value (borrowed), an array
    /// of integers 0..=255 (copied), or `nil` (empty).
    pub fn read_bytes(&mut self) -> Result<Cow<'a, [u8]>, WireError> {
        let m = self.peek()?;
        if let Some(n) = self.raw_len()? {
            return Ok(Cow::Borrowed(self.read_raw_bytes(n)?));
        }
        let n = match m {
            0x90..=0x9f | ARRAY16 | ARRAY32 => self.read_array_len()? as usize,
            _ => {
                return Err(WireError::Msgpack {
                    expected: "bytes",
                    found: m,
                })
            }
        };
        self.check_len(n, "msgpack byte array")?;
        // Each element takes at least one byte: never allocate more than the
        // input could hold.
        let mut v = Vec::with_capacity(n.min(self.remaining().len()));
        for _ in 0..n {
            v.push(self.read_u8()?);
        }
        Ok(Cow::Owned(v))
    }

    /// Reads a map header and returns the number of key/value pairs.
    pub fn read_map_len(&mut self) -> Result<u32, WireError> {
        let m = self.peek()?;
        let n = match m {
            0x80..=0x8f => {
                self.pos += 1;
                u32::from(m & 0x0f)
            }
            MAP16 => {
                self.pos += 1;
                u32::from(self.be16()?)
            }
            MAP32 => {
                self.pos += 1;
                self.be32()?
            }
            _ => {
                return Err(WireError::Msgpack {
                    expected: "map",
                    found: m,
                })
            }
        };
        Ok(n)
    }

    /// Reads an array header and returns the number of elements.
    pub fn read_array_len(&mut self) -> Result<u32, WireError> {
        let m = self.peek()?;
        let n = match m {
            0x90..=0x9f => {
                self.pos += 1;
                u32::from(m & 0x0f)
            }
            ARRAY16 => {
                self.pos += 1;
                u32::from(self.be16()?)
            }
            ARRAY32 => {
                self.pos += 1;
                self.be32()?
            }
            _ => {
                return Err(WireError::Msgpack {
                    expected: "array",
                    found: m,
                })
            }
        };
        Ok(n)
    }

    /// Reads the header of a value that decodes into a Go struct: a map, an
    /// array, or `nil`.
    pub fn read_struct_header(&mut self) -> Result<StructHeader, WireError> {
        let m = self.peek()?;
        match m {
            0x80..=0x8f | MAP16 | MAP32 => Ok(StructHeader::Map(self.read_map_len()?)),
            0x90..=0x9f | ARRAY16 | ARRAY32 => Ok(StructHeader::Array(self.read_array_len()?)),
            NIL => {
                self.pos += 1;
                Ok(StructHeader::Nil)
            }
            _ => Err(WireError::Msgpack {
                expected: "map or array (struct)",
                found: m,
            }),
        }
    }

    /// Decodes a Go struct whose fields, in Go source order, are `fields`.
    /// For every field present, `field(index, reader)` is called and must
    /// consume exactly that field's value. Map keys that match no field are
    /// skipped, as are array elements beyond the known fields; absent fields
    /// keep whatever the caller initialised (the zero value).
    pub fn read_struct<F>(&mut self, fields: &[FieldKey], mut field: F) -> Result<(), WireError>
    where
        F: FnMut(usize, &mut Reader<'a>) -> Result<(), WireError>,
    {
        match self.read_struct_header()? {
            StructHeader::Nil => Ok(()),
            StructHeader::Map(n) => {
                for _ in 0..n {
                    let key = FieldKey::from_raw(self.read_raw()?);
                    match fields.iter().position(|f| Some(*f) == key) {
                        Some(i) => field(i, self)?,
                        None => self.skip_value()?,
                    }
                }
                Ok(())
            }
            StructHeader::Array(n) => {
                for i in 0..n as usize {
                    if i < fields.len() {
                        field(i, self)?;
                    } else {
                        self.skip_value()?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Skips one complete value of any kind (nested maps and arrays, ext,
    /// floats, ...), at most [`MAX_SKIP_DEPTH`] containers deep.
    pub fn skip_value(&mut self) -> Result<(), WireError> {
        self.skip_depth(0)
    }

    fn skip_depth(&mut self, depth: usize) -> Result<(), WireError> {
        let m = self.byte()?;
        let skip = |r: &mut Self, n: usize| -> Result<(), WireError> {
            r.check_len(n, "msgpack value")?;
            r.read_raw_bytes(n).map(|_| ())
        };
        let children: u64 = match m {
            0x00..=0x7f | 0xe0..=0xff | NIL | FALSE | TRUE => 0,
            0x80..=0x8f => 2 * u64::from(m & 0x0f),
            0x90..=0x9f => u64::from(m & 0x0f),
            0xa0..=0xbf => return skip(self, usize::from(m & 0x1f)),
            BIN8 | STR8 => {
                let n = usize::from(self.byte()?);
                return skip(self, n);
            }
            BIN16 | STR16 => {
                let n = usize::from(self.be16()?);
                return skip(self, n);
            }
            BIN32 | STR32 => {
                let n = self.be32()? as usize;
                return skip(self, n);
            }
            EXT8 => {
                let n = usize::from(self.byte()?);
                return skip(self, n.saturating_add(1));
            }
            EXT16 => {
                let n = usize::from(self.be16()?);
                return skip(self, n.saturating_add(1));
            }
            EXT32 => {
                let n = self.be32()? as usize;
                return skip(self, n.saturating_add(1));
            }
            FLOAT32 => return skip(self, 4),
            FLOAT64 => return skip(self, 8),
            UINT8 | INT8 => return skip(self, 1),
            UINT16 | INT16 => return skip(self, 2),
            UINT32 | INT32 => return skip(self, 4),
            UINT64 | INT64 => return skip(self, 8),
            FIXEXT1..=FIXEXT16 => return skip(self, 1 + (1usize << (m - FIXEXT1))),
            ARRAY16 => u64::from(self.be16()?),
            ARRAY32 => u64::from(self.be32()?),
            MAP16 => 2 * u64::from(self.be16()?),
            MAP32 => 2 * u64::from(self.be32()?),
            // 0xc1 is "never used".
            _ => {
                return Err(WireError::Msgpack {
                    expected: "any value",
                    found: m,
                })
            }
        };
        if children == 0 {
            return Ok(());
        }
        if depth >= MAX_SKIP_DEPTH {
            return Err(WireError::NestingTooDeep);
        }
        // Each child takes at least one byte, so this loop is bounded by the
        // input length: it ends in Incomplete long before u64 wraps.
        for _ in 0..children {
            self.skip_depth(depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut Writer::new(&mut v));
        v
    }

    #[test]
    fn uint_forms() {
        assert_eq!(w(|w| w.write_uint(0)), [0]);
        assert_eq!(w(|w| w.write_uint(127)), [0x7f]);
        assert_eq!(w(|w| w.write_uint(128)), [0xcc, 0x80]);
        assert_eq!(w(|w| w.write_uint(300)), [0xcd, 0x01, 0x2c]);
        assert_eq!(w(|w| w.write_uint(70000)), [0xce, 0, 1, 0x11, 0x70]);
        assert_eq!(w(|w| w.write_uint(1 << 40)), [0xcf, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(w(|w| w.write_int(300)), [0xcd, 0x01, 0x2c]);
        assert_eq!(w(|w| w.write_int(-1)), [0xff]);
        assert_eq!(w(|w| w.write_int(-33)), [0xd0, 0xdf]);
        assert_eq!(w(|w| w.write_int(-300)), [0xd1, 0xfe, 0xd4]);
    }

    #[test]
    fn int_roundtrip_all_forms() {
        for v in [
            0i64,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i64::MIN,
            i64::MAX,
        ] {
            let b = w(|w| w.write_int(v));
            let mut r = Reader::new(&b);
            assert_eq!(r.read_i64().unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn raw_forms_never_str8() {
        assert_eq!(w(|w| w.write_raw(b"")), [0xa0]);
        assert_eq!(w(|w| w.write_raw(&[1; 31]))[0], 0xbf);
        let b = w(|w| w.write_raw(&[1; 32]));
        assert_eq!(&b[..3], &[0xda, 0, 32]);
        let b = w(|w| w.write_raw(&[1; 255]));
        assert_eq!(&b[..3], &[0xda, 0, 255]);
        let b = w(|w| w.write_raw(&[1; 65536]));
        assert_eq!(&b[..5], &[0xdb, 0, 1, 0, 0]);
        assert_eq!(w(|w| w.write_bytes(b"")), [0xc0]);
    }

    #[test]
    fn lenient_reads() {
        // str8, bin8, array of ints
        for b in [
            &[0xd9, 2, b'h', b'i'][..],
            &[0xc4, 2, b'h', b'i'],
            &[0x92, b'h', b'i'],
            &[0xa2, b'h', b'i'],
        ] {
            let mut r = Reader::new(b);
            assert_eq!(&*r.read_bytes().unwrap(), b"hi");
            assert!(r.is_empty());
        }
        let mut r = Reader::new(&[0x91, 0xcd, 1, 0]);
        assert!(matches!(
            r.read_bytes(),
            Err(WireError::IntOutOfRange { .. })
        ));
        // signed forms for unsigned targets
        assert_eq!(Reader::new(&[0xd1, 1, 0x2c]).read_u32().unwrap(), 300);
        assert!(matches!(
            Reader::new(&[0xff]).read_u32(),
            Err(WireError::IntOutOfRange { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xcd, 1, 0]).read_u8(),
            Err(WireError::IntOutOfRange { .. })
        ));
        assert!(Reader::new(&[1]).read_bool().unwrap());
        assert!(!Reader::new(&[0xc0]).read_bool().unwrap());
        assert_eq!(Reader::new(&[0xc0]).read_u16().unwrap(), 0);
    }

    #[test]
    fn incomplete_everywhere() {
        let full: &[u8] = &[0xdb, 0, 0, 0, 3, 1, 2, 3];
        for cut in 0..full.len() {
            assert_eq!(
                Reader::new(&full[..cut]).read_raw(),
                Err(WireError::Incomplete)
            );
            assert_eq!(
                Reader::new(&full[..cut]).skip_value(),
                Err(WireError::Incomplete)
            );
        }
        assert_eq!(Reader::new(full).read_raw().unwrap(), &[1, 2, 3]);
    }

    #[test]
    fn max_len_is_checked_before_waiting() {
        let b = [0xdb, 0xff, 0xff, 0xff, 0xff];
        let mut r = Reader::new(&b).with_max_len(1000);
        assert!(matches!(r.read_raw(), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn skip_nested_and_depth_bound() {
        // {"a": [1, 2.0, {"b": ext}], "c": nil}
        let b = [
            0x82, 0xa1, b'a', 0x93, 1, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0xa1, b'b', 0xd4, 1, 9,
            0xa1, b'c', 0xc0,
        ];
        let mut r = Reader::new(&b);
        r.skip_value().unwrap();
        assert!(r.is_empty());
        let deep = vec![0x91u8; 100];
        assert_eq!(
            Reader::new(&deep).skip_value(),
            Err(WireError::NestingTooDeep)
        );
        assert!(matches!(
            Reader::new(&[0xc1]).skip_value(),
            Err(WireError::Msgpack { .. })
        ));
        // A huge array claim ends in Incomplete, not a hang.
        assert_eq!(
            Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2]).skip_value(),
            Err(WireError::Incomplete)
        );
    }

    #[test]
    fn float64_like_go() {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.write_f64(1.5);
        w.write_f64(0.0);
        assert_eq!(
            out,
            [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let mut r = Reader::new(&out);
        assert_eq!(r.read_f64(), Ok(1.5));
        assert_eq!(r.read_f64(), Ok(0.0));
        assert!(r.is_empty());
        // float32, integers and nil are numbers too; a string is not.
        let b = [
            0xca, 0x3f, 0xc0, 0, 0, 0xff, 0xcd, 0x01, 0x2c, 0xc0, 0xa1, b'x',
        ];
        let mut r = Reader::new(&b);
        assert_eq!(r.read_f64(), Ok(1.5));
        assert_eq!(r.read_f64(), Ok(-1.0));
        assert_eq!(r.read_f64(), Ok(300.0));
        assert_eq!(r.read_f64(), Ok(0.0));
        assert!(matches!(r.read_f64(), Err(WireError::Msgpack { .. })));
        assert_eq!(
            Reader::new(&[0xcb, 0, 0]).read_f64(),
            Err(WireError::Incomplete)
        );
    }
}
