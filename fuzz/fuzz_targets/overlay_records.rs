//! Docker's overlay records (swimnet-overlay's `records` module): both
//! decoders fed arbitrary bytes; a decoded peer record's `entry()` never
//! panics, and whatever decodes is encoded again and must decode to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_overlay::records::{EndpointRecord, PeerRecord, MAX_RECORD_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = PeerRecord::decode(data) {
        assert!(data.len() <= MAX_RECORD_BYTES);
        if let Ok(entry) = p.entry() {
            // A valid entry survives its own record form.
            let again = PeerRecord::new(entry.ip, 0, entry.mac, entry.vtep);
            assert_eq!(PeerRecord::decode(&again.encode()).unwrap().entry().unwrap(), entry);
        }
        assert_eq!(PeerRecord::decode(&p.encode()).unwrap(), p);
    }
    if let Ok(e) = EndpointRecord::decode(data) {
        assert!(data.len() <= MAX_RECORD_BYTES);
        assert_eq!(EndpointRecord::decode(&e.encode()).unwrap(), e);
    }
});
