//! The UDP packet pipeline, both directions.
//!
//! Sending, innermost first:
//!
//! ```text
//! inner    one message, or a compound of several
//! compress [0x09] msgpack(compress{0, lzw(inner)})      only if shorter than inner
//! crc      [0x0C] crc32_be(x) x                         peers with protocol max >= 5
//! encrypt  [vsn] nonce ct tag   (AAD = label)           when a key is set
//! label    [0xF4] len label x                           when a label is set (HEAD only)
//! ```
//!
//! Receiving undoes the steps in reverse with [`open_packet`], then
//! [`for_each_message_within`] walks compound and compress wrappers down to
//! single messages, paid from the datagram's [`DecodeBudget`].

use std::borrow::Cow;

use crate::budget::DecodeBudget;
use crate::codec::{self, Message};
use crate::compound::decode_compound;
use crate::compress::{compress_payload, decompress_payload_within};
use crate::crc::strip_crc;
use crate::error::WireError;
use crate::label::{check_label, encode_label_header, split_label};
use crate::msg::MessageType;
use crate::security::{
    begin_encrypt, decrypt_payload, finish_encrypt, EncryptionVersion, Key, Keyring, NONCE_SIZE,
    VERSION_SIZE,
};

/// How many compound/compress wrappers [`for_each_message`] unwraps inside
/// each other before giving up with [`WireError::NestingTooDeep`].
pub const MAX_NESTING: usize = 4;

/// What [`seal_packet`] wraps around a packet's inner bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SealOptions<'a> {
    /// Add a CRC prefix (memberlist does when the target's protocol max is ≥ 5).
    pub crc: bool,
    /// Try LZW compression; used only if it makes the packet smaller.
    pub compress: bool,
    /// Encrypt with this key, nonce (fresh and random per packet) and version.
    pub encrypt: Option<(&'a Key, [u8; 12], EncryptionVersion)>,
    /// Label to put in front (empty: none). Also the encryption AAD.
    pub label: &'a [u8],
}

/// Builds a datagram around `inner` (one message or a compound) and appends
/// it to `out`: compress (only if smaller), then CRC, then encrypt (AAD =
/// label), then the label header.
///
/// # Panics
/// If the label is longer than [`crate::label::LABEL_MAX`] (a configuration
/// error).
pub fn seal_packet(inner: &[u8], opts: &SealOptions<'_>, out: &mut Vec<u8>) {
    encode_label_header(opts.label, out);
    let enc = opts
        .encrypt
        .map(|(key, nonce, vsn)| (key, nonce, vsn, begin_encrypt(vsn, &nonce, out)));
    // From here the plaintext is built in `out`, so encryption works in place.
    let crc_at = out.len();
    if opts.crc {
        out.extend_from_slice(&[MessageType::HasCrc as u8, 0, 0, 0, 0]);
    }
    let payload_at = out.len();
    let mut compressed = false;
    if opts.compress {
        compress_payload(inner, out);
        if out.len() - payload_at < inner.len() {
            compressed = true;
        } else {
            out.truncate(payload_at);
        }
    }
    if !compressed {
        out.extend_from_slice(inner);
    }
    if opts.crc {
        let crc = crc32fast::hash(&out[payload_at..]);
        out[crc_at + 1..crc_at + 5].copy_from_slice(&crc.to_be_bytes());
    }
    if let Some((key, nonce, vsn, start)) = enc {
        finish_encrypt(vsn, key, &nonce, opts.label, out, start);
    }
}

/// How [`open_packet`] treats an incoming datagram.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions<'a> {
    /// Our keys; `None` when encryption is off.
    pub keyring: Option<&'a Keyring>,
    /// With a keyring: drop packets that do not decrypt. Without it, such
    /// packets are read as plaintext (for rolling encryption out).
    pub verify_incoming: bool,
    /// Our label (empty: none). A packet must carry exactly this label.
    pub label: &'a [u8],
}

/// Undoes the label, encryption and CRC layers of a datagram and returns the
/// inner message bytes (type byte first; maybe a compound or compress
/// message: pass them to [`for_each_message_within`]).
///
/// Returns borrowed bytes when nothing had to be decrypted. Errors:
/// [`WireError::BadLabel`] / [`WireError::EmptyLabel`] /
/// [`WireError::Truncated`] for label problems, the decryption errors of
/// [`crate::security::decrypt_payload`] when `verify_incoming` is set,
/// [`WireError::Crc`] / [`WireError::Truncated`] for a bad CRC prefix.
pub fn open_packet<'b>(
    datagram: &'b [u8],
    opts: &OpenOptions<'_>,
) -> Result<Cow<'b, [u8]>, WireError> {
    open_packet_with_nonce(datagram, opts).map(|o| o.inner)
}

/// A datagram with its label, encryption and CRC layers removed, from
/// [`open_packet_with_nonce`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedPacket<'b> {
    /// The inner message bytes, as [`open_packet`] returns them.
    pub inner: Cow<'b, [u8]>,
    /// The AES-GCM nonce when the datagram was decrypted and authenticated;
    /// `None` for plaintext.
    pub nonce: Option<[u8; NONCE_SIZE]>,
}

/// [`open_packet`], also returning the AES-GCM nonce of a datagram that was
/// decrypted and authenticated (`None` for plaintext). Every encrypted
/// datagram a peer sends carries a fresh random nonce, so a nonce seen
/// before marks an exact replay.
pub fn open_packet_with_nonce<'b>(
    datagram: &'b [u8],
    opts: &OpenOptions<'_>,
) -> Result<OpenedPacket<'b>, WireError> {
    let (label, rest) = split_label(datagram).map_err(|e| match e {
        WireError::Incomplete => WireError::Truncated {
            what: "label header",
        },
        e => e,
    })?;
    check_label(opts.label, label)?;
    let mut data = Cow::Borrowed(rest);
    let mut nonce = None;
    if let Some(keyring) = opts.keyring {
        match decrypt_payload(keyring, rest, label) {
            Ok(plain) => {
                // Decryption succeeded, so `rest` holds a version byte and
                // a whole nonce.
                nonce = rest
                    .get(VERSION_SIZE..VERSION_SIZE + NONCE_SIZE)
                    .and_then(|n| n.try_into().ok());
                data = Cow::Owned(plain);
            }
            Err(e) if opts.verify_incoming => return Err(e),
            Err(_) => {} // plaintext fallback
        }
    }
    if data.first() == Some(&(MessageType::HasCrc as u8)) {
        data = match data {
            Cow::Borrowed(b) => Cow::Borrowed(strip_crc(b)?),
            Cow::Owned(mut v) => {
                strip_crc(&v)?;
                v.drain(..5);
                Cow::Owned(v)
            }
        };
    }
    Ok(OpenedPacket { inner: data, nonce })
}

/// Walks the inner bytes of a packet and calls `f` once per message found:
/// with `Ok` for each decoded message, with `Err` for each part that could
/// not be decoded (unknown or misplaced type, bad msgpack, bad compression,
/// a compound whose tail was truncated, nesting deeper than
/// [`MAX_NESTING`]).
///
/// A budget of `inner.len() + max_decompressed` bytes and
/// [`DecodeBudget::DATAGRAM_PARTS`] parts is spent as in
/// [`for_each_message_within`] (`max_decompressed` is the decompressed
/// bytes allowed: [`crate::compress::MAX_DECOMPRESSED`] is memberlist's
/// limit). Never panics, whatever the input.
pub fn for_each_message(
    inner: &[u8],
    max_decompressed: usize,
    f: &mut dyn FnMut(Result<Message, WireError>),
) {
    let mut budget = DecodeBudget::new(
        inner.len().saturating_add(max_decompressed),
        DecodeBudget::DATAGRAM_PARTS,
    );
    for_each_message_within(inner, &mut budget, &mut |m, _| f(m));
}

/// Walks the inner bytes of a packet (from [`open_packet`]), paid from
/// `budget`, and calls `f` once per message found, as soon as it is
/// decoded: with `Ok` for each message, with `Err` for each part that could
/// not be decoded (unknown or misplaced type, bad msgpack, bad compression,
/// a compound whose tail was truncated, nesting deeper than
/// [`MAX_NESTING`]). `f` also gets the budget, to take parts of its own
/// from it (see [`crate::budget`]).
///
/// Compound and compress wrappers are unwrapped recursively in any
/// combination. `inner`'s bytes and every decompressed byte are taken from
/// the budget's bytes; every wrapper, message and undecodable part takes
/// one part. When the budget runs out the walk stops and the rest of the
/// packet is dropped without calling `f`: check
/// [`DecodeBudget::exceeded`] afterwards. Never panics, whatever the input.
pub fn for_each_message_within(
    inner: &[u8],
    budget: &mut DecodeBudget,
    f: &mut dyn FnMut(Result<Message, WireError>, &mut DecodeBudget),
) {
    for_each_sized_message_within(inner, budget, &mut |m, _, budget| f(m, budget));
}

/// What [`for_each_sized_message_within`] calls per message: the message
/// (or why it could not be decoded), the length of its own encoding, and the
/// walk's budget.
pub type SizedMessageFn<'f> = dyn FnMut(Result<Message, WireError>, usize, &mut DecodeBudget) + 'f;

/// [`for_each_message_within`], with the length in bytes of each message's
/// own encoding (type byte included; after decompression, without the
/// compound framing) passed to `f` too, for per-kind byte counts.
pub fn for_each_sized_message_within(
    inner: &[u8],
    budget: &mut DecodeBudget,
    f: &mut SizedMessageFn<'_>,
) {
    if budget.take_bytes(inner.len()) {
        walk(inner, 0, budget, f);
    }
}

fn walk(bytes: &[u8], depth: usize, budget: &mut DecodeBudget, f: &mut SizedMessageFn<'_>) {
    if !budget.take_part() {
        return;
    }
    let Some((&t, body)) = bytes.split_first() else {
        return f(Err(WireError::Empty), 0, budget);
    };
    let wrapper = t == MessageType::Compound as u8 || t == MessageType::Compress as u8;
    if wrapper && depth >= MAX_NESTING {
        return f(Err(WireError::NestingTooDeep), bytes.len(), budget);
    }
    if t == MessageType::Compound as u8 {
        match decode_compound(body) {
            Ok(c) => {
                for part in c.parts {
                    walk(part, depth + 1, budget, f);
                    if budget.exceeded().is_some() {
                        return;
                    }
                }
                if c.truncated > 0 {
                    f(
                        Err(WireError::CompoundTruncated { count: c.truncated }),
                        0,
                        budget,
                    );
                }
            }
            Err(e) => f(Err(e), bytes.len(), budget),
        }
    } else if t == MessageType::Compress as u8 {
        match decompress_payload_within(body, budget) {
            Ok(plain) => walk(&plain, depth + 1, budget, f),
            Err(_) if budget.exceeded().is_some() => {}
            Err(e) => f(Err(e), bytes.len(), budget),
        }
    } else {
        f(codec::decode(bytes), bytes.len(), budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::BudgetLimit;
    use crate::compound::encode_compound;
    use crate::msg::*;

    fn msgs(inner: &[u8]) -> Vec<Result<Message, WireError>> {
        let mut v = Vec::new();
        for_each_message(inner, 1 << 20, &mut |m| v.push(m));
        v
    }

    fn ping(seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        codec::encode(
            &Message::Ping(Ping {
                seq_no: seq,
                node: "n".into(),
                ..Default::default()
            }),
            &mut v,
        );
        v
    }

    #[test]
    fn nested_wrappers() {
        let (a, b) = (ping(1), ping(2));
        let mut comp = Vec::new();
        encode_compound(&[&a, &b], &mut comp);
        let mut z = Vec::new();
        compress_payload(&comp, &mut z);
        let mut outer = Vec::new();
        encode_compound(&[&z, &a, &[0x63]], &mut outer);
        let got = msgs(&outer);
        assert_eq!(got.len(), 4);
        assert!(matches!(&got[0], Ok(Message::Ping(p)) if p.seq_no == 1));
        assert!(matches!(&got[1], Ok(Message::Ping(p)) if p.seq_no == 2));
        assert!(matches!(&got[2], Ok(Message::Ping(p)) if p.seq_no == 1));
        assert_eq!(got[3], Err(WireError::UnknownType(0x63)));
    }

    #[test]
    fn sized_walk_gives_each_message_its_own_length() {
        let (a, b) = (ping(1), ping(300));
        let mut comp = Vec::new();
        encode_compound(&[&a, &b], &mut comp);
        let mut z = Vec::new();
        compress_payload(&comp, &mut z);
        let mut outer = Vec::new();
        encode_compound(&[&z, &a], &mut outer);
        let mut budget = DecodeBudget::new(1 << 20, DecodeBudget::DATAGRAM_PARTS);
        let mut sizes = Vec::new();
        for_each_sized_message_within(&outer, &mut budget, &mut |m, len, _| {
            assert!(m.is_ok());
            sizes.push(len);
        });
        assert_ne!(a.len(), b.len());
        assert_eq!(sizes, vec![a.len(), b.len(), a.len()]);
    }

    #[test]
    fn message_type_names_are_distinct() {
        let types: Vec<MessageType> = (0..=255).filter_map(MessageType::from_u8).collect();
        let names: std::collections::HashSet<&str> = types.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), types.len());
        assert_eq!(types.len(), 15);
        assert_eq!(MessageType::AckResp.name(), "ack");
        assert_eq!(MessageType::PushPull.name(), "push_pull");
    }

    #[test]
    fn nesting_limit_and_truncation() {
        let mut m = ping(1);
        for _ in 0..MAX_NESTING {
            let mut c = Vec::new();
            encode_compound(&[&m], &mut c);
            m = c;
        }
        assert!(msgs(&m)[0].is_ok());
        let mut c = Vec::new();
        encode_compound(&[&m], &mut c);
        assert_eq!(msgs(&c), vec![Err(WireError::NestingTooDeep)]);
        let got = msgs(&[7, 2, 0, 1, 0, 9, 0xff]);
        assert_eq!(
            got,
            vec![
                Err(WireError::UnknownType(0xff)),
                Err(WireError::CompoundTruncated { count: 1 })
            ]
        );
        assert_eq!(msgs(&[]), vec![Err(WireError::Empty)]);
    }

    #[test]
    fn decompression_budget_is_shared() {
        let big = vec![8u8; 10_000];
        let mut z = Vec::new();
        compress_payload(&big, &mut z);
        let mut c = Vec::new();
        encode_compound(&[&z, &z], &mut c);
        let mut got = Vec::new();
        for_each_message(&c, 15_000, &mut |m| got.push(m));
        // The second decompression does not fit: the walk stops there.
        assert_eq!(got.len(), 1);
        assert!(got[0].is_ok());
    }

    /// Walks `inner` with a budget of `bytes` and `parts`; answers the
    /// messages seen (errors included) and the budget afterwards.
    fn walk_within(inner: &[u8], bytes: usize, parts: usize) -> (usize, DecodeBudget) {
        let mut budget = DecodeBudget::new(bytes, parts);
        let mut n = 0;
        for_each_message_within(inner, &mut budget, &mut |_, _| n += 1);
        (n, budget)
    }

    #[test]
    fn every_part_counts_and_the_rest_is_dropped() {
        // 255 parts: 100 pings, 100 empty parts, 55 unknown types.
        let p = ping(1);
        let mut parts: Vec<&[u8]> = vec![&p; 100];
        parts.extend([&[] as &[u8]; 100]);
        parts.extend([&[0x63u8] as &[u8]; 55]);
        let mut c = Vec::new();
        encode_compound(&parts, &mut c);
        // The compound itself is one part, and each of its parts one more.
        let (n, b) = walk_within(&c, 1 << 20, 256);
        assert_eq!((n, b.exceeded(), b.parts_left()), (255, None, 0));
        let (n, b) = walk_within(&c, 1 << 20, 151);
        assert_eq!((n, b.exceeded()), (150, Some(BudgetLimit::Parts)));
        // The inner bytes are paid for too.
        let (n, b) = walk_within(&c, c.len() - 1, 1000);
        assert_eq!((n, b.exceeded()), (0, Some(BudgetLimit::Bytes)));
    }

    #[test]
    fn nested_compress_bombs_share_one_byte_budget() {
        // compress(compound(255 × compress(1 MiB of zeros))): 255 MiB if
        // each decompression had its own allowance.
        let inner = vec![0u8; 1 << 20];
        let mut z = Vec::new();
        compress_payload(&inner, &mut z);
        let mut c = Vec::new();
        encode_compound(&[&z[..]; 255], &mut c);
        let mut outer = Vec::new();
        compress_payload(&c, &mut outer);
        let budget = 4 << 20;
        let (n, b) = walk_within(&outer, budget, 1 << 20);
        // Each whole inner decompression that fits is one (undecodable)
        // message; the next one does not fit.
        let fit = (budget - outer.len() - c.len()) / inner.len();
        assert!(fit >= 3);
        assert_eq!(n, fit);
        assert_eq!(b.exceeded(), Some(BudgetLimit::Bytes));
    }

    #[test]
    fn failed_decompressions_are_charged() {
        // An LZW stream that decodes 100 KiB and then hits an undefined code.
        let mut lz = Vec::new();
        crate::lzw::compress(&vec![0u8; 100 << 10], &mut lz);
        lz.truncate(lz.len() - 2);
        lz.extend_from_slice(&[0xff, 0xff, 0xff]);
        let mut bad = vec![MessageType::Compress as u8];
        crate::msgpack::Writer::new(&mut bad).write_encoded(b"\x82\xa4Algo\x00\xa3Buf");
        bad.push(0xc5);
        bad.extend_from_slice(&(lz.len() as u16).to_be_bytes());
        bad.extend_from_slice(&lz);
        let mut c = Vec::new();
        encode_compound(&[&bad[..]; 20], &mut c);
        // 20 × ~100 KiB of output: ten fit 1 MiB, each reported as an error.
        let (n, b) = walk_within(&c, 1 << 20, 1000);
        assert!((9..=10).contains(&n), "{n} errors");
        assert_eq!(b.exceeded(), Some(BudgetLimit::Bytes));
    }

    #[test]
    fn seal_open_all_layers() {
        let key = Key::new(&[9; 32]).unwrap();
        let kr = Keyring::new(key.clone());
        let inner = {
            let mut parts = Vec::new();
            for i in 0..10 {
                parts.push(ping(i));
            }
            let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
            let mut c = Vec::new();
            encode_compound(&refs, &mut c);
            c
        };
        for crc in [false, true] {
            for compress in [false, true] {
                for enc in [false, true] {
                    for label in [&b""[..], b"lbl"] {
                        let opts = SealOptions {
                            crc,
                            compress,
                            encrypt: enc.then_some((&key, [1; 12], EncryptionVersion::V1)),
                            label,
                        };
                        let mut pkt = Vec::new();
                        seal_packet(&inner, &opts, &mut pkt);
                        let open = OpenOptions {
                            keyring: enc.then_some(&kr),
                            verify_incoming: true,
                            label,
                        };
                        let got = open_packet(&pkt, &open).unwrap();
                        let mut n = 0;
                        for_each_message(&got, 1 << 20, &mut |m| {
                            assert!(m.is_ok());
                            n += 1
                        });
                        assert_eq!(n, 10);
                        if compress {
                            assert!(got[0] == 9);
                        }
                        // wrong label
                        let bad = OpenOptions {
                            label: b"x",
                            ..open
                        };
                        assert!(matches!(
                            open_packet(&pkt, &bad),
                            Err(WireError::BadLabel { .. })
                        ));
                    }
                }
            }
        }
    }

    #[test]
    fn nonce_of_authenticated_packets_only() {
        let key = Key::new(&[9; 16]).unwrap();
        let kr = Keyring::new(key.clone());
        let p = ping(5);
        let nonce = [7u8; 12];
        let mut pkt = Vec::new();
        let seal = SealOptions {
            crc: true,
            encrypt: Some((&key, nonce, EncryptionVersion::V1)),
            label: b"lbl",
            ..Default::default()
        };
        seal_packet(&p, &seal, &mut pkt);
        let open = OpenOptions {
            keyring: Some(&kr),
            verify_incoming: false,
            label: b"lbl",
        };
        let got = open_packet_with_nonce(&pkt, &open).unwrap();
        assert_eq!((&got.inner[..], got.nonce), (&p[..], Some(nonce)));
        // Plaintext read through the fallback has no nonce.
        let mut plain = Vec::new();
        seal_packet(
            &p,
            &SealOptions {
                label: b"lbl",
                ..Default::default()
            },
            &mut plain,
        );
        assert_eq!(open_packet_with_nonce(&plain, &open).unwrap().nonce, None);
    }

    #[test]
    fn plaintext_fallback() {
        let kr = Keyring::new(Key::new(&[9; 16]).unwrap());
        let p = ping(5);
        let strict = OpenOptions {
            keyring: Some(&kr),
            verify_incoming: true,
            label: b"",
        };
        assert!(open_packet(&p, &strict).is_err());
        let lax = OpenOptions {
            verify_incoming: false,
            ..strict
        };
        assert_eq!(&*open_packet(&p, &lax).unwrap(), &p[..]);
    }

    #[test]
    fn compression_only_when_smaller() {
        let p = ping(5);
        let mut out = Vec::new();
        seal_packet(
            &p,
            &SealOptions {
                compress: true,
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(out, p);
    }
}
