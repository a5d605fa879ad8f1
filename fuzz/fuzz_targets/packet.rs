//! UDP datagrams: `open_packet` with and without a keyring, then
//! `for_each_message` over whatever comes out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_wire::packet::{for_each_message, open_packet, OpenOptions};
use swimnet_wire::security::{Key, Keyring};

fuzz_target!(|data: &[u8]| {
    // The fuzzer finds the all-zero key's valid tags only by luck; the
    // plaintext fallback path (verify_incoming = false) is the one it
    // explores, along with labels and CRCs.
    let keyring = Keyring::new(Key::new(&[0; 16]).expect("16-byte key"));
    let configs = [
        OpenOptions {
            keyring: None,
            verify_incoming: false,
            label: b"",
        },
        OpenOptions {
            keyring: None,
            verify_incoming: false,
            label: b"lbl",
        },
        OpenOptions {
            keyring: Some(&keyring),
            verify_incoming: true,
            label: b"",
        },
        OpenOptions {
            keyring: Some(&keyring),
            verify_incoming: false,
            label: b"",
        },
    ];
    for opts in &configs {
        if let Ok(inner) = open_packet(data, opts) {
            // A small decompression budget keeps iterations fast.
            for_each_message(&inner, 1 << 20, &mut |m| {
                let _ = m;
            });
        }
    }
    for_each_message(data, 1 << 20, &mut |_| {});
});
