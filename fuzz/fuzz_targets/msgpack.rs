//! Single messages: `codec::decode`, the struct body decoders, and the
//! encode -> decode round trip of anything that decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_wire::codec::{self, Body};
use swimnet_wire::compound::decode_compound;
use swimnet_wire::msg::{PushNodeState, PushPullHeader, UserMsgHeader};
use swimnet_wire::msgpack::Reader;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = codec::decode(data) {
        // Whatever we accept, we can write back, and read again the same.
        let mut b = Vec::new();
        codec::encode(&m, &mut b);
        assert_eq!(
            codec::decode(&b),
            Ok(m),
            "re-encoded message decodes differently"
        );
    }
    let _ = decode_compound(data);
    let _ = Reader::new(data).skip_value();
    if let Ok(h) = PushPullHeader::decode_body(&mut Reader::new(data)) {
        let mut b = Vec::new();
        h.encode_body(&mut b);
        assert_eq!(PushPullHeader::decode_body(&mut Reader::new(&b)), Ok(h));
    }
    if let Ok(s) = PushNodeState::decode_body(&mut Reader::new(data)) {
        let mut b = Vec::new();
        s.encode_body(&mut b);
        assert_eq!(PushNodeState::decode_body(&mut Reader::new(&b)), Ok(s));
    }
    let _ = UserMsgHeader::decode_body(&mut Reader::new(data));
});
