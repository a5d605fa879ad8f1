//! LZW: decompress arbitrary bytes, and compress -> decompress must give
//! the input back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_wire::compress::{compress_payload, decompress_payload};
use swimnet_wire::lzw;

fuzz_target!(|data: &[u8]| {
    let _ = lzw::decompress(data, 1 << 20);
    let _ = decompress_payload(data, 1 << 20);

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
