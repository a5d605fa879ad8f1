//! Classifies wire traffic by memberlist message kind, for the reports.

use crate::Traffic;

/// The name of a memberlist message type byte.
pub fn kind_name(t: u8) -> &'static str {
    match t {
        0 => "ping",
        1 => "indirect_ping",
        2 => "ack",
        3 => "suspect",
        4 => "alive",
        5 => "dead",
        6 => "push_pull",
        7 => "compound",
        8 => "user",
        9 => "compressed",
        10 => "encrypted",
        11 => "nack",
        12 => "crc",
        13 => "err",
        _ => "other",
    }
}

fn add(t: &mut Traffic, kind: &'static str, packets: u64, bytes: u64) {
    *t.packets.entry(kind).or_default() += packets;
    *t.bytes.entry(kind).or_default() += bytes;
}

/// Adds one message's bytes (and one packet, when `count`) under its kind;
/// compound messages are split into their parts, their framing counted as
/// `compound`, and a CRC prefix counted as `crc`.
fn message(buf: &[u8], count: bool, t: &mut Traffic) {
    let Some(&ty) = buf.first() else {
        return;
    };
    match ty {
        12 if buf.len() >= 5 => {
            add(t, "crc", 0, 5);
            message(&buf[5..], count, t);
        }
        7 if buf.len() >= 2 => {
            let n = buf[1] as usize;
            let header = 2 + 2 * n;
            if buf.len() < header {
                add(t, "compound", count as u64, buf.len() as u64);
                return;
            }
            add(t, "compound", 0, header as u64);
            let mut off = header;
            for i in 0..n {
                let len = u16::from_be_bytes([buf[2 + 2 * i], buf[3 + 2 * i]]) as usize;
                let end = (off + len).min(buf.len());
                message(&buf[off..end], count, t);
                off = end;
            }
            if off < buf.len() {
                add(t, "compound", 0, (buf.len() - off) as u64);
            }
        }
        9 => match swimnet_core::wire::compress::decompress_payload(&buf[1..], 1 << 20) {
            Ok(inner) if !inner.is_empty() => {
                // Attribute the compressed bytes to the inner kinds in
                // proportion to their uncompressed sizes.
                let mut sub = Traffic::default();
                message(&inner, count, &mut sub);
                let total: u64 = sub.bytes.values().sum::<u64>().max(1);
                let wire = buf.len() as u64;
                let mut given = 0;
                let n = sub.bytes.len();
                for (i, (k, b)) in sub.bytes.iter().enumerate() {
                    let share = if i + 1 == n {
                        wire - given
                    } else {
                        wire * b / total
                    };
                    given += share;
                    *t.bytes.entry(k).or_default() += share;
                }
                for (k, p) in sub.packets {
                    *t.packets.entry(k).or_default() += p;
                }
            }
            _ => add(t, "compressed", count as u64, buf.len() as u64),
        },
        _ => add(t, kind_name(ty), count as u64, buf.len() as u64),
    }
}

/// Counts a datagram (each message inside a compound counts as one packet
/// of its kind; compressed packets are opened and their bytes shared out
/// among the kinds inside).
pub fn classify_packet(buf: &[u8], t: &mut Traffic) {
    message(buf, true, t);
}

/// Counts a stream message (one per stream write) under `stream_<kind>`.
pub fn classify_stream(buf: &[u8], t: &mut Traffic) {
    let kind = match buf.first() {
        Some(6) => "stream_push_pull",
        Some(8) => "stream_user",
        Some(0) => "stream_ping",
        Some(2) => "stream_ack",
        Some(9) => "stream_compressed",
        Some(10) => "stream_encrypted",
        _ => "stream_other",
    };
    add(t, kind, 1, buf.len() as u64);
}
