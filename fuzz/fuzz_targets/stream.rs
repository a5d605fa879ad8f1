//! TCP stream messages: `decode_stream_message` / `decode_stream_reply` with
//! several option sets, and prefix consistency (a prefix of an accepted
//! message is never accepted as a different message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_wire::security::{Key, Keyring};
use swimnet_wire::stream::{decode_stream_message, decode_stream_reply, StreamDecodeOptions};

fuzz_target!(|data: &[u8]| {
    let keyring = Keyring::new(Key::new(&[0; 16]).expect("16-byte key"));
    let base = StreamDecodeOptions {
        max_nodes: 4096,
        max_bytes: 1 << 20,
        ..Default::default()
    };
    let configs = [
        base,
        StreamDecodeOptions {
            label: b"lbl",
            ..base
        },
        StreamDecodeOptions {
            keyring: Some(&keyring),
            verify_incoming: true,
            ..base
        },
        StreamDecodeOptions {
            keyring: Some(&keyring),
            verify_incoming: false,
            ..base
        },
    ];
    for opts in &configs {
        let full = decode_stream_message(data, opts);
        let _ = decode_stream_reply(data, opts);
        if let Ok(Some((msg, used))) = full {
            assert!(used <= data.len(), "consumed more than the input");
            // The message is complete in exactly `used` bytes: the same
            // message is decoded from that prefix alone.
            let again = decode_stream_message(&data[..used], opts);
            assert_eq!(
                again,
                Ok(Some((msg, used))),
                "decoding depends on bytes after the message"
            );
        }
    }
});
