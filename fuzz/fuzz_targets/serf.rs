//! Serf messages inside memberlist user messages: `Message::decode`, tag
//! decoding, and the Serf delegate fed arbitrary user messages.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use swimnet_core::Delegate;
use swimnet_serf::messages::Message;
use swimnet_serf::{tags, SerfDelegate};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        // Whatever we accept, we can write back.
        let _ = m.encode();
    }
    let _ = tags::decode_tags(data);
    let _ = tags::try_decode_tags(data);
    let mut d = SerfDelegate::new("fuzz", Default::default()).expect("empty tags fit");
    let from: SocketAddr = "127.0.0.1:7946".parse().expect("address");
    d.notify_msg(Instant::now(), from, data);
    d.merge_remote_state(Instant::now(), data, false);
    for action in d.take_actions() {
        if let swimnet_serf::SerfAction::Key { reply, .. } = action {
            let _ = d.key_response(&reply, Ok(()), &[vec![0u8; 32]]);
        }
    }
});
