//! swimnet's own overlay table values and the endpoint description kept
//! in an interface alias: overlay definitions (`defs::decode`), address
//! claims (`ipam::decode`) and `LocalEndpoint::from_alias`, fed arbitrary
//! bytes. Whatever decodes is bounded, and encodes again to a value that
//! decodes to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_overlay::defs::{self, MAX_DEF_BYTES};
use swimnet_overlay::ipam::{self, MAX_CLAIM_BYTES};
use swimnet_overlay::model::MAX_ALIAS;
use swimnet_overlay::LocalEndpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = defs::decode(data) {
        assert!(data.len() <= MAX_DEF_BYTES);
        assert_eq!(defs::decode(&defs::encode(&record)).unwrap(), record);
    }
    if let Ok(claim) = ipam::decode(data) {
        assert!(data.len() <= MAX_CLAIM_BYTES);
        assert_eq!(ipam::decode(&ipam::encode(&claim)).unwrap(), claim);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(ep) = LocalEndpoint::from_alias(text, "swve-000000000", 4096, "ov") {
            assert!(text.len() <= MAX_ALIAS);
            let again = LocalEndpoint::from_alias(&ep.alias(), &ep.host_ifname, 4096, "ov");
            assert_eq!(again, Some(ep));
        }
    }
});
