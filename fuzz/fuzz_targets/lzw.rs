//! LZW: decompress arbitrary bytes, and compress -> decompress must give
//! the input back. Decompression never produces more than it is allowed,
//! and what it reports as produced is what a budget is charged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_wire::budget::DecodeBudget;
use swimnet_wire::compress::{compress_payload, decompress_payload, decompress_payload_within};
use swimnet_wire::lzw;

/// Output allowed per call.
const MAX_OUT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut produced = 0;
    match lzw::decompress_counting(data, MAX_OUT, &mut produced) {
        Ok(out) => assert_eq!(out.len(), produced),
        Err(_) => assert!(produced <= MAX_OUT),
    }
    let _ = decompress_payload(data, MAX_OUT);

    // A budget is charged exactly what came out, and never goes past its
    // bytes.
    let mut budget = DecodeBudget::new(MAX_OUT, 1);
    let result = decompress_payload_within(data, &mut budget);
    match (&result, budget.exceeded()) {
        (Ok(out), None) => assert_eq!(out.len(), MAX_OUT - budget.bytes_left()),
        (Ok(_), Some(_)) => panic!("a decompression that fit exceeded the budget"),
        (Err(_), _) => assert!(budget.bytes_left() <= MAX_OUT),
    }

    let mut c = Vec::new();
    lzw::compress(data, &mut c);
    let back = lzw::decompress(&c, data.len()).expect("our own LZW output decodes");
    assert_eq!(back, data, "LZW round trip changed the data");

    let mut z = Vec::new();
    compress_payload(data, &mut z);
    assert_eq!(
        decompress_payload(&z[1..], data.len()).expect("compress message decodes"),
        data
    );
});
