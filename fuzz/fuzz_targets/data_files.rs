//! The files an agent reads from its data dir at start, fed arbitrary bytes:
//! the snapshot (`swimnet::snapshot::format::decode`, both as a whole file
//! and as a body under a valid header, so the JSON and the count checks are
//! reached past the checksum), the keyring (`swimnet::keyfile::parse_keyring`)
//! and the kept overlay endpoints (`swimnet::overlay::recover::decode_kept`).
//! Whatever decodes is within the limits and encodes again to bytes that
//! decode to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet::keyfile::{encode_key, parse_keyring, KEYRING_FILE_MAX};
use swimnet::overlay::recover::{decode_kept, encode_kept, MAX_ENDPOINTS_FILE};
use swimnet::snapshot::format::{self, MAX_KEYS, MAX_MEMBERS};

/// `body` under a header that names its true length and checksum.
fn with_header(body: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(body);
    let mut out = format!(
        "{} {} {} {crc:08x}\n",
        format::MAGIC,
        format::FORMAT_VERSION,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn snapshot(file: &[u8]) {
    if let Ok(snap) = format::decode(file) {
        assert!(snap.members.len() <= MAX_MEMBERS);
        assert!(snap.keyring.as_ref().map_or(0, Vec::len) <= MAX_KEYS);
        assert_eq!(format::decode(&format::encode(&snap)), Ok(snap));
    }
}

fuzz_target!(|data: &[u8]| {
    snapshot(data);
    snapshot(&with_header(data));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(keys) = parse_keyring(text) {
            assert!(text.len() as u64 <= KEYRING_FILE_MAX);
            let again: Vec<String> = keys.iter().map(|k| encode_key(k)).collect();
            let again = serde_json::to_string(&again).unwrap();
            assert_eq!(parse_keyring(&again), Ok(keys));
        }
    }
    if let Ok(kept) = decode_kept(data) {
        assert!(data.len() as u64 <= MAX_ENDPOINTS_FILE);
        assert_eq!(decode_kept(&encode_kept(&kept)), Ok(kept));
    }
});
