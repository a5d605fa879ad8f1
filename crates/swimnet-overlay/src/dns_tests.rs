//! Unit tests of [`super::answer`]: the protocol, without sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use proptest::prelude::*;

use super::*;

const FRONT: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const BACK: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, last)
}

/// Overlay `front` (web, db, two `dup`s) and overlay `back` (cache, and a
/// second `web`).
fn book() -> NameBook {
    let mut front = BTreeMap::new();
    front.insert("web".to_string(), BTreeSet::from([ip(2)]));
    front.insert("DB".to_string(), BTreeSet::from([ip(3)]));
    front.insert("dup".to_string(), BTreeSet::from([ip(5), ip(4)]));
    let mut back = BTreeMap::new();
    back.insert(
        "cache".to_string(),
        BTreeSet::from([Ipv4Addr::new(10, 0, 2, 2)]),
    );
    back.insert(
        "web".to_string(),
        BTreeSet::from([Ipv4Addr::new(10, 0, 2, 3)]),
    );
    let mut overlays = BTreeMap::new();
    overlays.insert(FRONT.to_string(), ("front".to_string(), front));
    overlays.insert(BACK.to_string(), ("back".to_string(), back));
    NameBook { overlays }
}

fn scope(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

fn ask_over(m: &Message, scope: &BTreeSet<String>, transport: Transport) -> Message {
    let bytes = answer_over(&m.to_vec().unwrap(), &book(), scope, transport).expect("an answer");
    Message::from_vec(&bytes).expect("our answer parses")
}

fn ask(name: &str, rtype: RecordType) -> Message {
    ask_over(&query(name, rtype), &scope(&[FRONT]), Transport::Udp)
}

fn addresses(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0,
            other => panic!("not an A record: {other:?}"),
        })
        .collect()
}

#[test]
fn dns_a_query_for_an_endpoint_gets_its_address_with_the_short_ttl() {
    let r = ask("web", RecordType::A);
    assert_eq!(r.metadata.id, 0x4242);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert!(r.metadata.recursion_desired, "RD is copied");
    assert!(!r.metadata.truncation);
    assert_eq!(
        r.queries,
        query("web.", RecordType::A).queries,
        "question echoed"
    );
    assert_eq!(addresses(&r), vec![ip(2)]);
    assert_eq!(r.answers[0].ttl, DNS_TTL);
    assert_eq!(r.answers[0].name, Name::from_ascii("web.").unwrap());
}

#[test]
fn dns_name_dot_overlay_any_case_and_trailing_dot_resolve() {
    for name in [
        "web.front",
        "web.front.",
        "WEB.Front",
        "web.",
        "Web",
        "db",
        "db.FRONT.",
    ] {
        let r = ask(name, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(addresses(&r).len(), 1, "{name}");
        // The answer carries the name exactly as asked (0x20 randomisation).
        let mut asked = Name::from_ascii(name).unwrap();
        asked.set_fqdn(true);
        assert!(r.answers[0].name.eq_case(&asked), "{}", r.answers[0].name);
    }
    assert_eq!(addresses(&ask("DB.front", RecordType::A)), vec![ip(3)]);
}

#[test]
fn dns_a_name_used_twice_answers_every_address() {
    assert_eq!(addresses(&ask("dup", RecordType::A)), vec![ip(4), ip(5)]);
    // The same name on two overlays in scope: both addresses for the bare
    // name, one for each qualified name.
    let both = scope(&[FRONT, BACK]);
    let r = ask_over(&query("web", RecordType::A), &both, Transport::Udp);
    assert_eq!(addresses(&r), vec![ip(2), Ipv4Addr::new(10, 0, 2, 3)]);
    let r = ask_over(&query("web.back", RecordType::A), &both, Transport::Udp);
    assert_eq!(addresses(&r), vec![Ipv4Addr::new(10, 0, 2, 3)]);
}

#[test]
fn dns_scope_hides_the_names_of_other_overlays() {
    for name in [
        "cache",
        "cache.back",
        "web.back",
        "back",
        "nope",
        "example.com",
        "web.front.x",
    ] {
        let r = ask(name, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(r.answers.is_empty(), "{name}");
        assert_eq!(r.queries.len(), 1, "question echoed for {name}");
    }
    // Empty scope: nothing is known.
    let r = ask_over(&query("web", RecordType::A), &scope(&[]), Transport::Udp);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    // A scope naming an overlay the book does not know yet: NXDOMAIN too.
    let r = ask_over(
        &query("web", RecordType::A),
        &scope(&[&"9".repeat(64)]),
        Transport::Udp,
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn dns_known_names_answer_other_types_with_no_records() {
    for (name, rtype) in [
        ("web", RecordType::AAAA),
        ("web.front", RecordType::MX),
        ("front", RecordType::A),
        ("FRONT.", RecordType::AAAA),
    ] {
        let r = ask(name, rtype);
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NoError,
            "{name} {rtype}"
        );
        assert!(r.answers.is_empty(), "{name} {rtype}");
    }
    assert_eq!(
        ask("nope", RecordType::AAAA).metadata.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(addresses(&ask("web", RecordType::ANY)), vec![ip(2)]);
}

#[test]
fn dns_malformed_queries_get_formerr_notimp_or_nothing() {
    // Two questions.
    let mut two = query("web", RecordType::A);
    two.add_query(Query::query(Name::from_ascii("db").unwrap(), RecordType::A));
    let r = ask_over(&two, &scope(&[FRONT]), Transport::Udp);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(r.metadata.id, 0x4242);
    assert!(r.answers.is_empty() && r.queries.is_empty());
    // No question at all.
    let none = Message::new(7, MessageType::Query, OpCode::Query);
    let r = ask_over(&none, &scope(&[FRONT]), Transport::Udp);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    // A header that promises a question the bytes do not hold.
    let mut cut = query("web", RecordType::A).to_vec().unwrap();
    cut.truncate(15);
    let r = Message::from_vec(&answer(&cut, &book(), &scope(&[FRONT])).unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(r.metadata.id, 0x4242);
    // Another opcode.
    let mut notify = query("web", RecordType::A);
    notify.metadata.op_code = OpCode::Notify;
    let r = ask_over(&notify, &scope(&[FRONT]), Transport::Udp);
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(r.metadata.op_code, OpCode::Notify);
    // A response is never answered (two responders would loop), nor is
    // anything shorter than a header.
    let mut resp = query("web", RecordType::A);
    resp.metadata.message_type = MessageType::Response;
    assert_eq!(
        answer(&resp.to_vec().unwrap(), &book(), &scope(&[FRONT])),
        None
    );
    assert_eq!(answer(&[0x42; 11], &book(), &scope(&[FRONT])), None);
    assert_eq!(answer(&[], &book(), &scope(&[FRONT])), None);
}

#[test]
fn dns_class_and_edns_version_are_checked() {
    let mut chaos = query("version.bind", RecordType::TXT);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let r = ask_over(&chaos, &scope(&[FRONT]), Transport::Udp);
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let mut v1 = query("web", RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    v1.set_edns(edns);
    let r = ask_over(&v1, &scope(&[FRONT]), Transport::Udp);
    // BADVERS and BADSIG share the extended code 16.
    assert_eq!(u16::from(r.metadata.response_code), 16);
    assert!(r.answers.is_empty());
    assert_eq!(r.edns.as_ref().map(|e| e.version()), Some(0));
}

/// A book where `many` has `n` addresses.
fn crowded(n: u8) -> NameBook {
    let mut b = book();
    let set = (1..=n).map(|i| Ipv4Addr::new(10, 0, 9, i)).collect();
    b.overlays
        .get_mut(FRONT)
        .unwrap()
        .1
        .insert("many".into(), set);
    b
}

#[test]
fn dns_answers_are_capped_and_truncated_to_the_udp_budget() {
    let q = query("many", RecordType::A);
    let s = scope(&[FRONT]);
    // 20 records (12 + 10 + 20 * 16 = 342 bytes) fit the classic budget.
    let bytes = answer(&q.to_vec().unwrap(), &crowded(20), &s).unwrap();
    let r = Message::from_vec(&bytes).unwrap();
    assert_eq!((r.answers.len(), r.metadata.truncation), (20, false));
    // 200 addresses: capped at 32 records, 534 bytes, too many for 512.
    let b = crowded(200);
    let r = Message::from_vec(&answer_over(&q.to_vec().unwrap(), &b, &s, Transport::Tcp).unwrap())
        .unwrap();
    assert_eq!(r.answers.len(), MAX_ANSWER_RECORDS);
    assert!(!r.metadata.truncation);
    assert_eq!(addresses(&r)[0], Ipv4Addr::new(10, 0, 9, 1));
    let bytes = answer(&q.to_vec().unwrap(), &b, &s).unwrap();
    assert!(bytes.len() <= UDP_CLASSIC_MAX, "{} bytes", bytes.len());
    let r = Message::from_vec(&bytes).unwrap();
    assert!(
        r.metadata.truncation,
        "TC tells the client to retry over TCP"
    );
    assert!(r.answers.is_empty());
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.queries.len(), 1);
    // With EDNS offering 1232 bytes it fits whole, and our OPT says 1232.
    let mut asked = q.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    asked.set_edns(edns.clone());
    let r = Message::from_vec(&answer(&asked.to_vec().unwrap(), &b, &s).unwrap()).unwrap();
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), MAX_ANSWER_RECORDS);
    assert_eq!(r.edns.map(|e| e.max_payload()), Some(UDP_EDNS_MAX));
    // A client offering less than 512 still gets 512 at most.
    edns.set_max_payload(100);
    asked.set_edns(edns);
    let bytes = answer(&asked.to_vec().unwrap(), &b, &s).unwrap();
    assert!(bytes.len() <= UDP_CLASSIC_MAX);
    assert!(Message::from_vec(&bytes).unwrap().metadata.truncation);
}

#[test]
fn dns_compression_loops_and_hostile_counts_are_refused_quickly() {
    // Header claiming 65535 questions, then a name that points at itself.
    let mut evil = vec![
        0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    evil.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
    let r = Message::from_vec(&answer(&evil, &book(), &scope(&[FRONT])).unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(r.metadata.id, 0x1234);
}

proptest! {
    #[test]
    fn dns_arbitrary_bytes_get_a_parseable_answer_or_none(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let s = scope(&[FRONT, BACK]);
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Some(out) = answer_over(&bytes, &book(), &s, transport) {
                let m = Message::from_vec(&out).expect("answers parse");
                prop_assert_eq!(m.metadata.message_type, MessageType::Response);
                prop_assert_eq!(m.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
                if transport == Transport::Udp {
                    prop_assert!(out.len() <= usize::from(UDP_EDNS_MAX));
                }
            }
        }
    }

    #[test]
    fn dns_any_query_for_a_known_name_is_answered(
        pick in 0usize..4,
        upper in any::<bool>(),
        qualified in any::<bool>(),
        dot in any::<bool>(),
    ) {
        let names = ["web", "db", "dup", "front"];
        let mut name = names[pick].to_string();
        if qualified && pick < 3 {
            name.push_str(".front");
        }
        if upper {
            name = name.to_uppercase();
        }
        if dot {
            name.push('.');
        }
        let r = ask(&name, RecordType::A);
        prop_assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        prop_assert_eq!(r.answers.is_empty(), pick == 3);
    }
}
