//! AES-GCM encryption of packets and stream frames, and the keyring.
//!
//! Encrypted payload: `[vsn u8][nonce: 12 bytes][ciphertext || 16-byte tag]`.
//! Version 1 encrypts the plaintext as is; version 0 (memberlist protocol
//! version 1) first pads it PKCS#7-style to a multiple of 16 (always 1..=16
//! pad bytes). Keys of 16, 24 and 32 bytes select AES-128/192/256.
//!
//! Nonces come from the caller (this crate has no randomness): use 12 fresh
//! random bytes for every message.

use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aes::Aes192;
use aes_gcm::{AeadInPlace, Aes128Gcm, Aes256Gcm, AesGcm, KeyInit, Nonce, Tag};

use crate::error::WireError;

type Aes192Gcm = AesGcm<Aes192, U12>;

/// Length of the version byte.
pub const VERSION_SIZE: usize = 1;
/// Length of a GCM nonce.
pub const NONCE_SIZE: usize = 12;
/// Length of a GCM tag.
pub const TAG_SIZE: usize = 16;
/// AES block size (the v0 padding unit).
pub const BLOCK_SIZE: usize = 16;

/// The encryption format version, the first byte of an encrypted payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EncryptionVersion {
    /// Version 0: PKCS#7 padding before encryption (memberlist protocol
    /// version 1).
    V0Padded = 0,
    /// Version 1: no padding (memberlist protocol version ≥ 2; the normal
    /// case).
    V1 = 1,
}

impl EncryptionVersion {
    /// The version memberlist uses for a given *own* protocol version:
    /// 1 → [`EncryptionVersion::V0Padded`], anything else → [`EncryptionVersion::V1`].
    pub fn for_protocol_version(protocol_version: u8) -> Self {
        if protocol_version == 1 {
            EncryptionVersion::V0Padded
        } else {
            EncryptionVersion::V1
        }
    }

    /// Maps a version byte to a version, or `None` if it is not 0 or 1.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(EncryptionVersion::V0Padded),
            1 => Some(EncryptionVersion::V1),
            _ => None,
        }
    }

    /// Largest number of bytes encryption adds (v1: 29, v0: 45), as used in
    /// memberlist's packet budgets.
    pub fn max_overhead(self) -> usize {
        crate::overhead::encryption(self)
    }
}

#[derive(Clone)]
enum Cipher {
    Aes128(Aes128Gcm),
    Aes192(Aes192Gcm),
    Aes256(Aes256Gcm),
}

impl Cipher {
    fn encrypt(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Tag {
        let nonce = Nonce::from_slice(nonce);
        let r = match self {
            Cipher::Aes128(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Cipher::Aes192(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Cipher::Aes256(c) => c.encrypt_in_place_detached(nonce, aad, buf),
        };
        // aes-gcm only fails for inputs over 64 GiB, which no packet or
        // stream frame (u32 length) can reach.
        r.expect("AES-GCM input within size limits")
    }

    /// Decrypts in place; on failure `buf` is left unchanged.
    fn decrypt(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let nonce = Nonce::from_slice(nonce);
        let tag = Tag::from_slice(tag);
        match self {
            Cipher::Aes128(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Cipher::Aes192(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Cipher::Aes256(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
        }
        .is_ok()
    }
}

/// An AES key (16, 24 or 32 bytes) with its expanded cipher state, so that
/// each packet costs no key schedule.
///
/// `Debug` shows only the key size, never the key bytes.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
    len: u8,
    cipher: Cipher,
}

impl Key {
    /// Builds a key from its raw bytes. Errors with
    /// [`WireError::BadKeyLength`] unless there are 16, 24 or 32 of them.
    pub fn new(bytes: &[u8]) -> Result<Key, WireError> {
        let cipher = match bytes.len() {
            16 => Cipher::Aes128(
                Aes128Gcm::new_from_slice(bytes).map_err(|_| WireError::BadKeyLength(16))?,
            ),
            24 => Cipher::Aes192(
                Aes192Gcm::new_from_slice(bytes).map_err(|_| WireError::BadKeyLength(24))?,
            ),
            32 => Cipher::Aes256(
                Aes256Gcm::new_from_slice(bytes).map_err(|_| WireError::BadKeyLength(32))?,
            ),
            n => return Err(WireError::BadKeyLength(n)),
        };
        let mut b = [0u8; 32];
        b[..bytes.len()].copy_from_slice(bytes);
        Ok(Key {
            bytes: b,
            len: bytes.len() as u8,
            cipher,
        })
    }

    /// The raw key bytes (16, 24 or 32 of them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(AES-{})", usize::from(self.len) * 8)
    }
}

/// The installed keys, primary first.
///
/// The primary key encrypts everything we send; every key is tried, in
/// order, on what we receive. Never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// A keyring holding only `primary`.
    pub fn new(primary: Key) -> Keyring {
        Keyring {
            keys: vec![primary],
        }
    }

    /// A keyring from `keys`, the first one primary. Errors on an empty list
    /// ([`WireError::EmptyKeyring`]) or a key given twice
    /// ([`WireError::DuplicateKey`]).
    pub fn from_keys(keys: Vec<Key>) -> Result<Keyring, WireError> {
        if keys.is_empty() {
            return Err(WireError::EmptyKeyring);
        }
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].contains(k) {
                return Err(WireError::DuplicateKey);
            }
        }
        Ok(Keyring { keys })
    }

    /// The key used to encrypt.
    pub fn primary(&self) -> &Key {
        &self.keys[0]
    }

    /// All keys, primary first: the order decryption tries them in.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// True when a key with these bytes is installed.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.position(key).is_some()
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.keys.iter().position(|k| k.as_bytes() == key)
    }

    /// Adds `key` as a secondary key (tried last on receive). Does nothing
    /// if it is already installed.
    pub fn install(&mut self, key: Key) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Makes the installed key with these bytes the primary one; the other
    /// keys keep their order. Errors with [`WireError::KeyNotInstalled`] if
    /// it is not installed (install it first).
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), WireError> {
        let i = self.position(key).ok_or(WireError::KeyNotInstalled)?;
        let k = self.keys.remove(i);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Removes a secondary key. Errors with [`WireError::RemovePrimaryKey`]
    /// for the primary key (make another key primary first) and with
    /// [`WireError::KeyNotInstalled`] if there is no such key (Go treats
    /// that as a no-op; callers that want that can ignore this error).
    pub fn remove(&mut self, key: &[u8]) -> Result<(), WireError> {
        match self.position(key) {
            Some(0) => Err(WireError::RemovePrimaryKey),
            Some(i) => {
                self.keys.remove(i);
                Ok(())
            }
            None => Err(WireError::KeyNotInstalled),
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Size of the encrypted payload for `plaintext_len` bytes of plaintext:
/// `1 + 12 + len + 16`, plus the padding (1..=16) for v0.
pub fn encrypted_length(vsn: EncryptionVersion, plaintext_len: usize) -> usize {
    let pad = match vsn {
        EncryptionVersion::V0Padded => BLOCK_SIZE - plaintext_len % BLOCK_SIZE,
        EncryptionVersion::V1 => 0,
    };
    VERSION_SIZE + NONCE_SIZE + plaintext_len + pad + TAG_SIZE
}

/// Appends `[vsn][nonce][ciphertext][tag]` for `plaintext` to `out`,
/// authenticated together with `aad` (packets: the label; stream frames:
/// the 5-byte frame header and the label). Exactly
/// [`encrypted_length`] bytes are appended.
pub fn encrypt_payload(
    vsn: EncryptionVersion,
    key: &Key,
    nonce: &[u8; 12],
    plaintext: &[u8],
    aad: &[u8],
    out: &mut Vec<u8>,
) {
    out.reserve(encrypted_length(vsn, plaintext.len()));
    let start = begin_encrypt(vsn, nonce, out);
    out.extend_from_slice(plaintext);
    finish_encrypt(vsn, key, nonce, aad, out, start);
}

/// Writes `[vsn][nonce]` and returns where the plaintext must start; the
/// caller then appends the plaintext and calls [`finish_encrypt`]. Lets the
/// packet and stream encoders build the plaintext in place.
pub(crate) fn begin_encrypt(vsn: EncryptionVersion, nonce: &[u8; 12], out: &mut Vec<u8>) -> usize {
    out.push(vsn as u8);
    out.extend_from_slice(nonce);
    out.len()
}

/// Pads (v0) and encrypts `out[start..]` in place, then appends the tag.
pub(crate) fn finish_encrypt(
    vsn: EncryptionVersion,
    key: &Key,
    nonce: &[u8; 12],
    aad: &[u8],
    out: &mut Vec<u8>,
    start: usize,
) {
    if vsn == EncryptionVersion::V0Padded {
        let pad = BLOCK_SIZE - (out.len() - start) % BLOCK_SIZE;
        out.resize(out.len() + pad, pad as u8);
    }
    let tag = key.cipher.encrypt(nonce, aad, &mut out[start..]);
    out.extend_from_slice(&tag);
}

/// Decrypts an encrypted payload with the first key of `keyring` that
/// authenticates it (primary first) and returns the plaintext, padding
/// removed.
///
/// Errors: [`WireError::Empty`] for no bytes,
/// [`WireError::UnsupportedEncryptionVersion`] for a version byte other than
/// 0/1, [`WireError::Truncated`] below the minimum size (29 bytes for v1, 45
/// for v0), [`WireError::Decrypt`] when no key works, and
/// [`WireError::BadPadding`] for v0 padding longer than the plaintext.
pub fn decrypt_payload(keyring: &Keyring, msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, WireError> {
    decrypt_payload_indexed(keyring, msg, aad).map(|(p, _)| p)
}

/// Like [`decrypt_payload`], and also returns the index in
/// [`Keyring::keys`] of the key that worked (for per-key metrics).
pub fn decrypt_payload_indexed(
    keyring: &Keyring,
    msg: &[u8],
    aad: &[u8],
) -> Result<(Vec<u8>, usize), WireError> {
    let (&v, _) = msg.split_first().ok_or(WireError::Empty)?;
    let vsn = EncryptionVersion::from_u8(v).ok_or(WireError::UnsupportedEncryptionVersion(v))?;
    if msg.len() < encrypted_length(vsn, 0) {
        return Err(WireError::Truncated {
            what: "encrypted payload",
        });
    }
    let nonce = &msg[VERSION_SIZE..VERSION_SIZE + NONCE_SIZE];
    let (ct, tag) =
        msg[VERSION_SIZE + NONCE_SIZE..].split_at(msg.len() - VERSION_SIZE - NONCE_SIZE - TAG_SIZE);
    let mut buf = ct.to_vec();
    for (i, key) in keyring.keys().iter().enumerate() {
        if key.cipher.decrypt(nonce, aad, &mut buf, tag) {
            if vsn == EncryptionVersion::V0Padded {
                let pad = usize::from(*buf.last().ok_or(WireError::BadPadding)?);
                let keep = buf.len().checked_sub(pad).ok_or(WireError::BadPadding)?;
                buf.truncate(keep);
            }
            return Ok((buf, i));
        }
    }
    Err(WireError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8, n: usize) -> Key {
        Key::new(&vec![b; n]).unwrap()
    }

    #[test]
    fn key_lengths_and_debug() {
        for n in [16, 24, 32] {
            assert_eq!(key(7, n).as_bytes(), &vec![7; n][..]);
        }
        for n in [0, 15, 17, 31, 33] {
            assert_eq!(
                Key::new(&vec![1; n]).unwrap_err(),
                WireError::BadKeyLength(n)
            );
        }
        let d = format!("{:?}", key(0xab, 32));
        assert_eq!(d, "Key(AES-256)");
        let kr = Keyring::new(key(0xab, 16));
        assert!(!format!("{kr:?}").contains("171"));
    }

    #[test]
    fn keyring_ops() {
        let (a, b, c) = (key(1, 16), key(2, 24), key(3, 32));
        assert_eq!(
            Keyring::from_keys(vec![]).unwrap_err(),
            WireError::EmptyKeyring
        );
        assert_eq!(
            Keyring::from_keys(vec![a.clone(), a.clone()]).unwrap_err(),
            WireError::DuplicateKey
        );
        let mut kr = Keyring::new(a.clone());
        kr.install(b.clone());
        kr.install(b.clone());
        kr.install(c.clone());
        assert_eq!(kr.keys(), &[a.clone(), b.clone(), c.clone()]);
        assert_eq!(kr.use_key(&[9; 16]), Err(WireError::KeyNotInstalled));
        kr.use_key(c.as_bytes()).unwrap();
        assert_eq!(kr.keys(), &[c.clone(), a.clone(), b.clone()]);
        assert_eq!(kr.remove(c.as_bytes()), Err(WireError::RemovePrimaryKey));
        kr.remove(a.as_bytes()).unwrap();
        assert_eq!(kr.keys(), &[c.clone(), b.clone()]);
        assert_eq!(kr.remove(a.as_bytes()), Err(WireError::KeyNotInstalled));
        assert_eq!(kr.primary(), &c);
    }

    #[test]
    fn v0_v1_roundtrip_and_lengths() {
        let k = key(5, 32);
        let kr = Keyring::new(k.clone());
        for vsn in [EncryptionVersion::V0Padded, EncryptionVersion::V1] {
            for n in [0usize, 1, 15, 16, 17, 100] {
                let pt = vec![0x5a; n];
                let mut out = vec![0xee];
                encrypt_payload(vsn, &k, &[3; 12], &pt, b"aad", &mut out);
                assert_eq!(out.len() - 1, encrypted_length(vsn, n));
                assert_eq!(decrypt_payload(&kr, &out[1..], b"aad").unwrap(), pt);
                assert_eq!(
                    decrypt_payload(&kr, &out[1..], b"other"),
                    Err(WireError::Decrypt)
                );
            }
        }
        assert_eq!(
            encrypted_length(EncryptionVersion::V0Padded, 16),
            1 + 12 + 32 + 16
        );
        assert_eq!(decrypt_payload(&kr, &[], b""), Err(WireError::Empty));
    }

    #[test]
    fn rejects_bad_headers() {
        let kr = Keyring::new(key(5, 16));
        assert_eq!(
            decrypt_payload(&kr, &[2; 64], b""),
            Err(WireError::UnsupportedEncryptionVersion(2))
        );
        assert!(matches!(
            decrypt_payload(&kr, &[1; 28], b""),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            decrypt_payload(&kr, &[0; 44], b""),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(decrypt_payload(&kr, &[1; 29], b""), Err(WireError::Decrypt));
    }
}
