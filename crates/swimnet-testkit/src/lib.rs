//! Test helpers shared by swimnet's crates (a dev-dependency only; never
//! published).
//!
//! * [`unhex`] and [`hex`]: bytes to and from the hex used in golden vectors;
//! * [`vectors`] and [`vector`]: golden-vector files, one `name hex` line per
//!   vector;
//! * [`open_plain`] and [`decode_sent`]: the memberlist messages inside the
//!   datagrams a node sent (no encryption, no label).
//!
//! Every helper panics with a message saying what is wrong: they are for
//! tests, where a panic is the failure report.
//!
//! ```
//! use swimnet_testkit::{hex, unhex, vector};
//!
//! assert_eq!(unhex("00ff 10"), [0x00, 0xff, 0x10]);
//! assert_eq!(hex(&[0x00, 0xff, 0x10]), "00ff10");
//! let file = "# comment\nping 80\nack 8100\n";
//! assert_eq!(vector(file, "ack"), [0x81, 0x00]);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::collections::HashMap;

use swimnet_wire::codec::Message;
use swimnet_wire::packet::{for_each_message, open_packet, OpenOptions};

/// Decodes hex digits into bytes. White space between digits is ignored.
///
/// # Panics
/// On an odd number of digits or a character that is not a hex digit.
pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex length: {s}");
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("hex digits are ASCII");
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("not hex: {pair:?}"))
        })
        .collect()
}

/// Lower-case hex of `bytes`, two digits a byte, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a golden-vector file: one `name hex` line per vector; blank lines
/// and lines starting with `#` are skipped; a name with no hex is an empty
/// vector.
///
/// # Panics
/// On bad hex.
pub fn vectors(file: &str) -> HashMap<String, Vec<u8>> {
    file.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, hex) = l.split_once(' ').unwrap_or((l, ""));
            (name.to_string(), unhex(hex.trim()))
        })
        .collect()
}

/// The vector called `name` in a golden-vector file (see [`vectors`]).
///
/// # Panics
/// If the file has no such vector.
pub fn vector(file: &str, name: &str) -> Vec<u8> {
    vectors(file)
        .remove(name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

/// The memberlist messages in one datagram sent without encryption or
/// label, in order (compound and compressed messages are opened).
///
/// # Panics
/// If the datagram or one of its messages does not decode.
pub fn open_plain(datagram: &[u8]) -> Vec<Message> {
    let opts = OpenOptions {
        keyring: None,
        verify_incoming: false,
        label: b"",
    };
    let inner = open_packet(datagram, &opts).expect("a plain datagram");
    let mut out = Vec::new();
    for_each_message(&inner, 1 << 20, &mut |m| out.push(m.expect("a message")));
    out
}

/// Every message of every datagram in `sent` (destination, datagram), each
/// paired with its datagram's destination. Feed it what a node wants to
/// send, e.g. `std::iter::from_fn(|| node.poll_transmit().map(|t| (t.dst,
/// t.payload)))`.
///
/// # Panics
/// As [`open_plain`].
pub fn decode_sent<A: Copy, B: AsRef<[u8]>>(
    sent: impl IntoIterator<Item = (A, B)>,
) -> Vec<(A, Message)> {
    let mut out = Vec::new();
    for (dst, datagram) in sent {
        out.extend(open_plain(datagram.as_ref()).into_iter().map(|m| (dst, m)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use swimnet_wire::codec::encode;
    use swimnet_wire::msg::NackResp;

    #[test]
    fn hex_round_trip_and_vectors() {
        assert_eq!(unhex(&hex(&[1, 0xab, 0xff])), [1, 0xab, 0xff]);
        let file = "# c\n\nempty\nx 0a0b\n";
        let v = vectors(file);
        assert_eq!(v["empty"], Vec::<u8>::new());
        assert_eq!(v["x"], [10, 11]);
    }

    #[test]
    #[should_panic(expected = "odd hex length")]
    fn odd_hex_panics() {
        unhex("abc");
    }

    #[test]
    #[should_panic(expected = "no vector y")]
    fn missing_vector_panics() {
        vector("x 00", "y");
    }

    #[test]
    fn sent_datagrams_decode() {
        let m = Message::NackResp(NackResp { seq_no: 9 });
        let mut datagram = Vec::new();
        encode(&m, &mut datagram);
        assert_eq!(decode_sent([(1u8, datagram)]), vec![(1, m)]);
    }
}
