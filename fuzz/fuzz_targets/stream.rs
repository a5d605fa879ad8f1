//! TCP stream messages: `decode_stream_message` / `decode_stream_reply` with
//! several option sets, prefix consistency (a prefix of an accepted message
//! is never accepted as a different message), and the incremental
//! `StreamDecoder` fed in pieces: the same result as a whole decode, the
//! decoded message within the caps (node states, user state, decoded size),
//! memory bounded by what arrived, and parse work linear in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_wire::msg::PushNodeState;
use swimnet_wire::security::{Key, Keyring};
use swimnet_wire::stream::{
    decode_stream_message, decode_stream_reply, StreamDecodeOptions, StreamDecoder, StreamMessage,
};

/// The decoded message stays within the caps of `opts`.
fn assert_within_caps(msg: &StreamMessage, opts: &StreamDecodeOptions<'_>) {
    match msg {
        StreamMessage::PushPull {
            states, user_state, ..
        } => {
            assert!(states.len() <= opts.max_nodes as usize, "too many states");
            assert!(user_state.len() <= opts.max_bytes, "user state too large");
            let heap: usize = states
                .iter()
                .map(|s| s.name.len() + s.addr.len() + s.meta.len() + s.vsn.len())
                .sum();
            let decoded = heap + states.len() * std::mem::size_of::<PushNodeState>();
            assert!(decoded <= opts.max_decoded, "decoded size over the cap");
        }
        StreamMessage::User(data) => assert!(data.len() <= opts.max_bytes, "user message"),
        _ => {}
    }
}

/// Feeds `data` to a decoder in pieces cut where `cuts` says, checking the
/// memory bound after each; returns the message and bytes used, or whether
/// it failed.
fn feed_in_pieces(
    data: &[u8],
    cuts: u8,
    opts: &StreamDecodeOptions<'_>,
) -> Result<Option<(StreamMessage, usize)>, ()> {
    let mut dec = StreamDecoder::message();
    let step = 1 + cuts as usize % 17;
    for piece in data.chunks(step) {
        let r = dec.push(piece, opts);
        // What it holds: what arrived (the buffer at most doubles) plus the
        // decoded states, never a declared size.
        assert!(
            dec.memory() <= opts.max_decoded + 2 * data.len() + 256,
            "decoder holds {} for {} input bytes",
            dec.memory(),
            data.len()
        );
        match r {
            Ok(Some(m)) => return Ok(Some((m, dec.consumed()))),
            Ok(None) => {}
            Err(_) => return Err(()),
        }
    }
    // Without decryption or decompression, every byte is scanned once and
    // parsed once, however the input was cut.
    if opts.keyring.is_none() && !data.contains(&9) {
        assert!(
            dec.scanned() <= 2 * data.len() as u64 + 16,
            "scanned {} for {} bytes",
            dec.scanned(),
            data.len()
        );
    }
    Ok(None)
}

fuzz_target!(|data: &[u8]| {
    let keyring = Keyring::new(Key::new(&[0; 16]).expect("16-byte key"));
    let base = StreamDecodeOptions {
        max_nodes: 4096,
        max_bytes: 1 << 20,
        max_decoded: 64 << 10,
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
    let cuts = data.first().copied().unwrap_or(0);
    for opts in &configs {
        let full = decode_stream_message(data, opts);
        let _ = decode_stream_reply(data, opts);
        let pieces = feed_in_pieces(data, cuts, opts);
        match &full {
            Ok(Some((msg, used))) => {
                assert!(*used <= data.len(), "consumed more than the input");
                assert_within_caps(msg, opts);
                // The message is complete in exactly `used` bytes: the same
                // message is decoded from that prefix alone.
                let again = decode_stream_message(&data[..*used], opts);
                assert_eq!(
                    again,
                    Ok(Some((msg.clone(), *used))),
                    "decoding depends on bytes after the message"
                );
                assert_eq!(
                    pieces,
                    Ok(Some((msg.clone(), *used))),
                    "pieces decode differently"
                );
            }
            Ok(None) => assert_eq!(pieces, Ok(None), "pieces decode differently"),
            Err(_) => assert!(pieces.is_err(), "pieces accepted what a whole decode refused"),
        }
    }
});
