//! Go structs as msgpack maps, declared once per struct.
//!
//! memberlist and Serf send Go structs encoded by go-msgpack 0.5.5: a map
//! whose keys are the Go field names in byte order, each value in the form
//! its Go type gets (see [`crate::msgpack`]). Reading is lenient: keys in any
//! order, unknown keys skipped, missing fields left at their zero value, and
//! the array form (fields in Go source order) accepted too.
//!
//! [`msgpack_struct!`](crate::msgpack_struct!) turns one list of
//! `"GoName"(go position) => rust_field: Codec` entries into an
//! implementation of [`MsgpackStruct`]: the field table in Go source order,
//! the encoder (straight-line code, keys as precomputed bytes) and the
//! decoder. The entries are written in wire order (Go names sorted by
//! bytes); the compiler checks that order and that the positions are
//! `0..n`, each once.
//!
//! The codec of an entry is a type implementing [`FieldCodec`] that says how
//! one Go field type is written and read ([`Uint`], [`Str`], [`Bytes`],
//! [`OmitEmpty`]...). Crates with other field shapes add their own.
//!
//! ```
//! use swimnet_wire::msgpack::{Reader, Writer};
//! use swimnet_wire::msgpack_struct::{MsgpackStruct, Str, Uint};
//!
//! #[derive(Debug, Default, PartialEq)]
//! struct Hello {
//!     seq_no: u32,
//!     node: String,
//! }
//!
//! // Go: `type hello struct { SeqNo uint32; Node string }`.
//! swimnet_wire::msgpack_struct! {
//!     Hello {
//!         "Node"(1) => node: Str,
//!         "SeqNo"(0) => seq_no: Uint,
//!     }
//! }
//!
//! let hello = Hello { seq_no: 7, node: "n1".into() };
//! let mut out = Vec::new();
//! hello.write_msgpack(&mut Writer::new(&mut out));
//! assert_eq!(out, b"\x82\xa4Node\xa2n1\xa5SeqNo\x07");
//! assert_eq!(Hello::read_msgpack(&mut Reader::new(&out)).unwrap(), hello);
//! // The array form lists the fields in Go source order.
//! assert_eq!(Hello::read_msgpack(&mut Reader::new(b"\x92\x07\xa2n1")).unwrap(), hello);
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::error::WireError;
use crate::msgpack::{FieldKey, Reader, Writer};

/// A Rust struct that travels as a Go struct (a msgpack map keyed by the Go
/// field names). Implement it with [`msgpack_struct!`](crate::msgpack_struct!).
pub trait MsgpackStruct: Sized + Default {
    /// The Go field names in Go source order (the order of the array form).
    const GO_FIELDS: &'static [FieldKey];

    /// Appends the struct as go-msgpack writes it: a map with the fields
    /// sorted by Go name, fields that Go omits when empty left out.
    fn write_msgpack(&self, w: &mut Writer<'_>);

    /// Reads one msgpack value (map, array or nil) into a struct and leaves
    /// the reader just after it. Unknown keys are skipped, absent fields keep
    /// their zero value.
    fn read_msgpack(r: &mut Reader<'_>) -> Result<Self, WireError>;
}

/// How one Go field type of Rust type `T` is written and read.
///
/// Codecs are types that are never built; the macro calls their functions.
pub trait FieldCodec<T> {
    /// Whether the field is written at all (false only for Go's `omitempty`
    /// on a zero value).
    #[inline]
    fn present(_value: &T) -> bool {
        true
    }

    /// Appends the value (the key is already written).
    fn write(w: &mut Writer<'_>, value: &T);

    /// Reads one value into `slot`. `go_name` names the field in errors.
    fn read(r: &mut Reader<'_>, go_name: &'static str, slot: &mut T) -> Result<(), WireError>;
}

/// An unsigned Go integer (`uint8`..`uint64`), written in the smallest
/// unsigned form and read range-checked into the Rust type.
#[derive(Debug)]
pub struct Uint;

macro_rules! uint_codec {
    ($($t:ty => $read:ident),*) => {$(
        impl FieldCodec<$t> for Uint {
            #[inline]
            fn write(w: &mut Writer<'_>, value: &$t) {
                w.write_uint(u64::from(*value));
            }

            #[inline]
            fn read(r: &mut Reader<'_>, _: &'static str, slot: &mut $t) -> Result<(), WireError> {
                *slot = r.$read()?;
                Ok(())
            }
        }
    )*};
}

uint_codec!(u8 => read_u8, u16 => read_u16, u32 => read_u32, u64 => read_u64);

/// A Go `int` that this crate keeps as `u32` (counts and lengths): written
/// unsigned, read range-checked with the target named `int`.
#[derive(Debug)]
pub struct GoInt;

impl FieldCodec<u32> for GoInt {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &u32) {
        w.write_uint(u64::from(*value));
    }

    #[inline]
    fn read(r: &mut Reader<'_>, _: &'static str, slot: &mut u32) -> Result<(), WireError> {
        *slot = r.read_uint_max(u64::from(u32::MAX), "int")? as u32;
        Ok(())
    }
}

/// A signed Go integer kept as `i64` (`int`, `int64`, `time.Duration`):
/// unsigned forms when not negative, as go-msgpack 0.5.5 writes them.
#[derive(Debug)]
pub struct Int;

impl FieldCodec<i64> for Int {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &i64) {
        w.write_int(*value);
    }

    #[inline]
    fn read(r: &mut Reader<'_>, _: &'static str, slot: &mut i64) -> Result<(), WireError> {
        *slot = r.read_i64()?;
        Ok(())
    }
}

/// A Go `bool`.
#[derive(Debug)]
pub struct Bool;

impl FieldCodec<bool> for Bool {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &bool) {
        w.write_bool(*value);
    }

    #[inline]
    fn read(r: &mut Reader<'_>, _: &'static str, slot: &mut bool) -> Result<(), WireError> {
        *slot = r.read_bool()?;
        Ok(())
    }
}

/// A Go `string`: a raw string, never nil; must be UTF-8 when read.
#[derive(Debug)]
pub struct Str;

impl FieldCodec<String> for Str {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &String) {
        w.write_str(value);
    }

    #[inline]
    fn read(r: &mut Reader<'_>, go_name: &'static str, slot: &mut String) -> Result<(), WireError> {
        *slot = r.read_str(go_name)?.to_owned();
        Ok(())
    }
}

/// A Go `[]byte` that is nil when empty: written as `nil` when empty, else
/// as a raw string.
#[derive(Debug)]
pub struct Bytes;

impl FieldCodec<Vec<u8>> for Bytes {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &Vec<u8>) {
        w.write_bytes(value);
    }

    #[inline]
    fn read(r: &mut Reader<'_>, _: &'static str, slot: &mut Vec<u8>) -> Result<(), WireError> {
        *slot = r.read_bytes()?.into_owned();
        Ok(())
    }
}

/// A Go `[]byte` that is never nil: always a raw string, even when empty
/// (`a0`). Read like [`Bytes`].
#[derive(Debug)]
pub struct Raw;

impl FieldCodec<Vec<u8>> for Raw {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &Vec<u8>) {
        w.write_raw(value);
    }

    #[inline]
    fn read(
        r: &mut Reader<'_>,
        go_name: &'static str,
        slot: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        Bytes::read(r, go_name, slot)
    }
}

/// Go's `omitempty` tag: the field (key and value) is left out when it
/// holds its zero value; otherwise written with codec `C`.
#[derive(Debug)]
pub struct OmitEmpty<C>(PhantomData<C>);

impl<T: Default + PartialEq, C: FieldCodec<T>> FieldCodec<T> for OmitEmpty<C> {
    #[inline]
    fn present(value: &T) -> bool {
        *value != T::default()
    }

    #[inline]
    fn write(w: &mut Writer<'_>, value: &T) {
        C::write(w, value);
    }

    #[inline]
    fn read(r: &mut Reader<'_>, go_name: &'static str, slot: &mut T) -> Result<(), WireError> {
        C::read(r, go_name, slot)
    }
}

/// A nested Go struct (or pointer to one) that implements [`MsgpackStruct`].
#[derive(Debug)]
pub struct Nested;

impl<T: MsgpackStruct> FieldCodec<T> for Nested {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &T) {
        value.write_msgpack(w);
    }

    #[inline]
    fn read(r: &mut Reader<'_>, _: &'static str, slot: &mut T) -> Result<(), WireError> {
        *slot = T::read_msgpack(r)?;
        Ok(())
    }
}

/// A Go pointer that may be nil: `None` is written and read as `nil`,
/// `Some` with codec `C`.
#[derive(Debug)]
pub struct Opt<C>(PhantomData<C>);

impl<T: Default, C: FieldCodec<T>> FieldCodec<Option<T>> for Opt<C> {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &Option<T>) {
        match value {
            Some(v) => C::write(w, v),
            None => w.write_nil(),
        }
    }

    #[inline]
    fn read(
        r: &mut Reader<'_>,
        go_name: &'static str,
        slot: &mut Option<T>,
    ) -> Result<(), WireError> {
        *slot = if r.read_nil()? {
            None
        } else {
            let mut v = T::default();
            C::read(r, go_name, &mut v)?;
            Some(v)
        };
        Ok(())
    }
}

/// A Go slice that is never nil: always an array, even when empty.
/// Elements use codec `C`.
#[derive(Debug)]
pub struct Seq<C>(PhantomData<C>);

/// A Go slice that is nil when empty: `nil` when empty, else an array.
/// Elements use codec `C`.
#[derive(Debug)]
pub struct NilSeq<C>(PhantomData<C>);

impl<T: Default, C: FieldCodec<T>> FieldCodec<Vec<T>> for Seq<C> {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &Vec<T>) {
        w.write_array_len(len_u32(value.len()));
        for v in value {
            C::write(w, v);
        }
    }

    #[inline]
    fn read(r: &mut Reader<'_>, go_name: &'static str, slot: &mut Vec<T>) -> Result<(), WireError> {
        *slot = read_seq::<T, C>(r, go_name)?;
        Ok(())
    }
}

impl<T: Default, C: FieldCodec<T>> FieldCodec<Vec<T>> for NilSeq<C> {
    #[inline]
    fn write(w: &mut Writer<'_>, value: &Vec<T>) {
        if value.is_empty() {
            w.write_nil();
        } else {
            Seq::<C>::write(w, value);
        }
    }

    #[inline]
    fn read(r: &mut Reader<'_>, go_name: &'static str, slot: &mut Vec<T>) -> Result<(), WireError> {
        *slot = read_seq::<T, C>(r, go_name)?;
        Ok(())
    }
}

/// Reads a slice sent as an array or as `nil` (empty). The capacity is
/// bounded by the bytes left, since every element takes at least one byte.
pub fn read_seq<T: Default, C: FieldCodec<T>>(
    r: &mut Reader<'_>,
    go_name: &'static str,
) -> Result<Vec<T>, WireError> {
    let n = if r.read_nil()? {
        0
    } else {
        r.read_array_len()?
    };
    let mut out = Vec::with_capacity((n as usize).min(r.remaining().len()));
    for _ in 0..n {
        let mut v = T::default();
        C::read(r, go_name, &mut v)?;
        out.push(v);
    }
    Ok(out)
}

/// A Go map, never nil when written (an empty map is `80`). Keys use codec
/// `K`, values `V`. Read entries are added to what the field holds, as Go
/// decodes into an existing map.
#[derive(Debug)]
pub struct Map<K, V>(PhantomData<(K, V)>);

impl<KT, VT, K, V> FieldCodec<BTreeMap<KT, VT>> for Map<K, V>
where
    KT: Ord + Default,
    VT: Default,
    K: FieldCodec<KT>,
    V: FieldCodec<VT>,
{
    #[inline]
    fn write(w: &mut Writer<'_>, value: &BTreeMap<KT, VT>) {
        w.write_map_len(len_u32(value.len()));
        for (k, v) in value {
            K::write(w, k);
            V::write(w, v);
        }
    }

    fn read(
        r: &mut Reader<'_>,
        go_name: &'static str,
        slot: &mut BTreeMap<KT, VT>,
    ) -> Result<(), WireError> {
        let n = if r.read_nil()? { 0 } else { r.read_map_len()? };
        for _ in 0..n {
            let (mut k, mut v) = (KT::default(), VT::default());
            K::read(r, go_name, &mut k)?;
            V::read(r, go_name, &mut v)?;
            slot.insert(k, v);
        }
        Ok(())
    }
}

/// A container length as msgpack's `u32` (saturating; real lengths are far
/// smaller).
#[inline]
pub fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The msgpack encoding of a field name as a map key: a fixstr header and
/// the name. Called by [`msgpack_struct!`](crate::msgpack_struct!) in
/// constants; `N` is the name's length plus one.
///
/// # Panics
/// At compile time, if `N` is not the name's length plus one or the name has
/// 32 bytes or more.
pub const fn fixstr_key<const N: usize>(name: &str) -> [u8; N] {
    let b = name.as_bytes();
    assert!(b.len() < 32, "a Go field name has at most 31 bytes");
    assert!(b.len() + 1 == N, "key array length is the name length + 1");
    let mut out = [0u8; N];
    out[0] = 0xa0 | b.len() as u8;
    let mut i = 0;
    while i < b.len() {
        out[i + 1] = b[i];
        i += 1;
    }
    out
}

/// The field table in Go source order, from `(go position, go name)` entries
/// listed in wire order. Called by [`msgpack_struct!`](crate::msgpack_struct!)
/// in constants.
///
/// # Panics
/// At compile time, if the names are not strictly sorted by bytes (go-msgpack
/// writes them sorted) or the positions are not each of `0..N` once.
pub const fn go_field_order<const N: usize>(entries: [(usize, &str); N]) -> [FieldKey; N] {
    let mut out = [FieldKey::new(""); N];
    let mut seen = [false; N];
    let mut i = 0;
    while i < N {
        let (pos, name) = entries[i];
        assert!(pos < N, "a Go field position is out of range");
        assert!(!seen[pos], "a Go field position is used twice");
        seen[pos] = true;
        out[pos] = FieldKey::new(name);
        if i > 0 {
            assert!(
                bytes_less(entries[i - 1].1.as_bytes(), name.as_bytes()),
                "fields must be listed in wire order (Go names sorted by bytes)"
            );
        }
        i += 1;
    }
    out
}

/// `a < b`, comparing bytes (in a `const fn`).
const fn bytes_less(a: &[u8], b: &[u8]) -> bool {
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// Implements [`MsgpackStruct`] for a struct from one list of its Go fields.
///
/// ```text
/// msgpack_struct! {
///     RustType {
///         "GoName"(go_position) => rust_field: Codec,
///         ...
///     }
/// }
/// ```
///
/// List the entries in wire order (Go names sorted by bytes, as go-msgpack
/// writes them); `go_position` is the field's index in the Go struct (the
/// array form). `Codec` implements [`FieldCodec`] for the field's type. The
/// type must implement `Default` (the zero value of missing fields). See the
/// [module docs](crate::msgpack_struct) for an example.
///
/// Entries out of wire order do not compile:
///
/// ```compile_fail
/// use swimnet_wire::msgpack_struct::{Str, Uint};
/// #[derive(Default)]
/// struct Hello { seq_no: u32, node: String }
/// swimnet_wire::msgpack_struct! {
///     Hello {
///         "SeqNo"(0) => seq_no: Uint,
///         "Node"(1) => node: Str,
///     }
/// }
/// # use swimnet_wire::msgpack_struct::MsgpackStruct;
/// # let _ = Hello::GO_FIELDS;
/// ```
///
/// nor do positions that are not `0..n` each once:
///
/// ```compile_fail
/// use swimnet_wire::msgpack_struct::{Str, Uint};
/// #[derive(Default)]
/// struct Hello { seq_no: u32, node: String }
/// swimnet_wire::msgpack_struct! {
///     Hello {
///         "Node"(0) => node: Str,
///         "SeqNo"(0) => seq_no: Uint,
///     }
/// }
/// # use swimnet_wire::msgpack_struct::MsgpackStruct;
/// # let _ = Hello::GO_FIELDS;
/// ```
#[macro_export]
macro_rules! msgpack_struct {
    ($ty:ty { $($go:literal ($pos:literal) => $field:ident : $codec:ty),+ $(,)? }) => {
        impl $crate::msgpack_struct::MsgpackStruct for $ty {
            const GO_FIELDS: &'static [$crate::msgpack::FieldKey] =
                &$crate::msgpack_struct::go_field_order([$(($pos, $go)),+]);

            #[inline]
            fn write_msgpack(&self, w: &mut $crate::msgpack::Writer<'_>) {
                use $crate::msgpack_struct::FieldCodec;
                let present: u32 = 0 $(+ u32::from(<$codec as FieldCodec<_>>::present(&self.$field)))+;
                w.write_map_len(present);
                $(
                    if <$codec as FieldCodec<_>>::present(&self.$field) {
                        const KEY: [u8; $go.len() + 1] = $crate::msgpack_struct::fixstr_key($go);
                        w.write_encoded(&KEY);
                        <$codec as FieldCodec<_>>::write(w, &self.$field);
                    }
                )+
            }

            fn read_msgpack(
                r: &mut $crate::msgpack::Reader<'_>,
            ) -> ::core::result::Result<Self, $crate::WireError> {
                use $crate::msgpack_struct::FieldCodec;
                let mut m = <Self as ::core::default::Default>::default();
                r.read_struct(Self::GO_FIELDS, |i, r| {
                    match i {
                        $($pos => <$codec as FieldCodec<_>>::read(r, $go, &mut m.$field)?,)+
                        _ => r.skip_value()?,
                    }
                    Ok(())
                })?;
                Ok(m)
            }
        }
    };
}
