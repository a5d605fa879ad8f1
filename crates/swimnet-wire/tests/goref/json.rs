//! Hex, Go's JSON views and the test's random numbers.

use super::*;

pub(crate) use swimnet_testkit::{hex, unhex};

/// Hex for a byte field as Go shows it after decoding what we sent: we send
/// empty byte fields as msgpack nil, which Go reads as a nil slice (`null`).
pub(crate) fn hnull(b: &[u8]) -> Value {
    if b.is_empty() {
        Value::Null
    } else {
        Value::String(hex(b))
    }
}

pub(crate) fn jstr(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("field {k} is not a string in {v}"))
        .to_owned()
}

pub(crate) fn ju(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("field {k} is not an unsigned number in {v}"))
}

pub(crate) fn ji(v: &Value, k: &str) -> i64 {
    v[k].as_i64()
        .unwrap_or_else(|| panic!("field {k} is not a number in {v}"))
}

pub(crate) fn jb(v: &Value, k: &str) -> bool {
    v[k].as_bool()
        .unwrap_or_else(|| panic!("field {k} is not a bool in {v}"))
}

/// A byte field: hex, or null for a nil slice (read as empty).
pub(crate) fn jbytes(v: &Value, k: &str) -> Vec<u8> {
    match &v[k] {
        Value::Null => Vec::new(),
        Value::String(s) => unhex(s),
        other => panic!("field {k} is not hex or null: {other}"),
    }
}

pub(crate) fn key(bytes: &[u8]) -> Key {
    Key::new(bytes).expect("valid key")
}

pub(crate) fn vsn_of(n: u64) -> EncryptionVersion {
    match n {
        0 => EncryptionVersion::V0Padded,
        1 => EncryptionVersion::V1,
        _ => panic!("bad encryption version {n}"),
    }
}

pub(crate) fn nonce_at(b: &[u8], at: usize) -> [u8; 12] {
    b[at..at + 12].try_into().unwrap()
}

/// splitmix64, seeded from the clock: fresh nonces and data on every run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Rng(t.as_nanos() as u64 ^ 0x005e_ed0f_5317_u64)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    pub(crate) fn text(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| b' ' + (self.next() % 95) as u8).collect()
    }
    pub(crate) fn nonce(&mut self) -> [u8; 12] {
        self.bytes(12).try_into().unwrap()
    }
}
