//! AES-GCM payload decryption with a multi-key keyring, plus
//! encrypt -> decrypt round trips of the fuzz input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_wire::security::{decrypt_payload, encrypt_payload, EncryptionVersion, Key, Keyring};

fuzz_target!(|data: &[u8]| {
    let k1 = Key::new(&[1; 16]).expect("16-byte key");
    let k2 = Key::new(&[2; 32]).expect("32-byte key");
    let keyring = Keyring::from_keys(vec![k1, k2.clone()]).expect("distinct keys");
    let _ = decrypt_payload(&keyring, data, b"");
    let _ = decrypt_payload(&keyring, data, b"label");

    for vsn in [EncryptionVersion::V0Padded, EncryptionVersion::V1] {
        let mut out = Vec::new();
        encrypt_payload(vsn, &k2, &[7; 12], data, b"aad", &mut out);
        assert_eq!(
            decrypt_payload(&keyring, &out, b"aad").expect("round trip"),
            data
        );
        assert!(decrypt_payload(&keyring, &out, b"other").is_err());
    }
});
