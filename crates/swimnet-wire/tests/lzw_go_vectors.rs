//! Our LZW encoder against Go 1.19's `compress/lzw` (LSB, literal width 8).
//!
//! Inputs come from a xorshift32 generator that is trivial to rewrite in Go;
//! the expected (length, CRC-32) of each compressed output was produced by
//! go1.19.8's `compress/lzw` writing the same inputs (Debian bookworm's golang-go).
//! Inputs of several hundred KB cross many clear codes; the sweeps cover
//! every input length around the first clear, including the case where the
//! final flush itself triggers the clear.

use swimnet_wire::lzw::{compress, decompress};

fn gen(seed: u32, alpha: u32, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % alpha) as u8
        })
        .collect()
}

fn lzw(input: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    compress(input, &mut v);
    v
}

/// (seed, alphabet, input length, Go output length, Go output CRC-32).
const GO: &[(u32, u32, usize, usize, u32)] = &[
    (1, 256, 0, 3, 0x3a62ebfd),
    (1, 256, 1, 4, 0x3099ed98),
    (1, 256, 2, 5, 0x8e88aa28),
    (7, 256, 5000, 6704, 0xd528d74e),
    (2, 4, 200000, 59563, 0xaf755042),
    (3, 26, 100000, 74315, 0x4ccc42c1),
    (4, 1, 200000, 761, 0x743fc6e7),
    (5, 2, 70000, 10724, 0x3637b5f3),
    (6, 256, 1400, 1778, 0x8a654efc),
    (8, 16, 9000, 5683, 0xd4fff4f3),
    (9, 3, 12345, 3031, 0x94b5e4bb),
    (10, 200, 65536, 88233, 0x5d786f2e),
];

#[test]
fn matches_go_and_roundtrips() {
    for &(seed, alpha, n, go_len, go_crc) in GO {
        let input = gen(seed, alpha, n);
        let c = lzw(&input);
        assert_eq!(
            (c.len(), crc32fast::hash(&c)),
            (go_len, go_crc),
            "seed {seed} alpha {alpha} n {n}"
        );
        assert_eq!(decompress(&c, n).unwrap(), input);
    }
}

/// (seed, alphabet, lengths, total Go output bytes, CRC-32 of all outputs concatenated).
const SWEEPS: &[(u32, u32, std::ops::Range<usize>, usize, u32)] = &[
    (11, 256, 3700..4300, 3270495, 0x27f02c84),
    (12, 64, 4000..6000, 10541003, 0xb4ba6e6d),
];

#[test]
fn sweeps_around_the_first_clear_match_go() {
    for (seed, alpha, range, go_total, go_crc) in SWEEPS.iter().cloned() {
        let mut h = crc32fast::Hasher::new();
        let mut total = 0;
        for n in range.clone() {
            let input = gen(seed, alpha, n);
            let c = lzw(&input);
            h.update(&c);
            total += c.len();
            if n % 97 == 0 {
                assert_eq!(decompress(&c, n).unwrap(), input);
            }
        }
        assert_eq!(
            (total, h.finalize()),
            (go_total, go_crc),
            "sweep seed {seed}"
        );
    }
}
