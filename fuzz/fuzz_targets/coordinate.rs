//! Serf's ack payload (a Vivaldi coordinate): `decode_ping_payload`, then
//! whatever decodes is fed to a coordinate client as an observation.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use swimnet_core::coordinate::{
    decode_ping_payload, encode_ping_payload, CoordinateClient, CoordinateConfig,
};

fuzz_target!(|data: &[u8]| {
    let Ok(c) = decode_ping_payload(data) else {
        return;
    };
    // Whatever we accept, we can write back, and it reads the same (bitwise,
    // so NaNs compare too).
    let mut out = Vec::new();
    encode_ping_payload(&c, &mut out);
    let again = decode_ping_payload(&out).expect("our own encoding decodes");
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&c.vec), bits(&again.vec));
    // A peer's coordinate, however odd, never leaves ours invalid.
    let mut client = CoordinateClient::new(CoordinateConfig::default(), 0).expect("defaults");
    let rtt = Duration::from_micros(u64::from(data.len() as u16) * 10);
    for _ in 0..3 {
        let _ = client.update("peer", &c, rtt);
        assert!(client.coordinate().check().is_ok());
    }
});
