//! The overlay DNS responder's protocol (swimnet-overlay's `dns` module):
//! arbitrary bytes as a query, over both transports, with a small fixed
//! book; whatever it answers must be a DNS response hickory parses, with
//! the query's ID, within the transport's size budget.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use swimnet_overlay::dns::{answer, answer_over, Transport, UDP_EDNS_MAX};
use swimnet_overlay::NameBook;

const FRONT: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const BACK: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// Two overlays in scope; `many` has more addresses than one answer holds.
fn fixture() -> &'static (NameBook, BTreeSet<String>) {
    static FIXTURE: OnceLock<(NameBook, BTreeSet<String>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut front = BTreeMap::new();
        front.insert("web".to_string(), BTreeSet::from([Ipv4Addr::new(10, 0, 1, 2)]));
        let many = (1..=60).map(|i| Ipv4Addr::new(10, 0, 1, 100 + i)).collect();
        front.insert("many".to_string(), many);
        let mut back = BTreeMap::new();
        back.insert("Db".to_string(), BTreeSet::from([Ipv4Addr::new(10, 0, 2, 2)]));
        let mut overlays = BTreeMap::new();
        overlays.insert(FRONT.to_string(), ("front".to_string(), front));
        overlays.insert(BACK.to_string(), ("back".to_string(), back));
        let scope = BTreeSet::from([FRONT.to_string(), BACK.to_string()]);
        (NameBook { overlays }, scope)
    })
}

fuzz_target!(|data: &[u8]| {
    let (book, scope) = fixture();
    let udp = answer(data, book, scope);
    assert_eq!(udp, answer_over(data, book, scope, Transport::Udp));
    for (out, limit) in [
        (udp, usize::from(UDP_EDNS_MAX)),
        (answer_over(data, book, scope, Transport::Tcp), usize::from(u16::MAX)),
    ] {
        let Some(out) = out else { continue };
        assert!(out.len() <= limit, "{} bytes", out.len());
        let m = Message::from_vec(&out).expect("every answer parses");
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.id, u16::from_be_bytes([data[0], data[1]]));
        assert!(m.answers.len() <= swimnet_overlay::dns::MAX_ANSWER_RECORDS);
    }
});
