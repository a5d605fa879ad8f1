//! Golden vectors produced by serf 0.9.4's own Go code (see
//! `data/serf-0.9.4-vectors.txt` for how): our encoder must produce the same
//! bytes and our decoder must read them back into the same values.

use std::collections::BTreeMap;

use swimnet_serf::messages::{
    BufferedEvent, Filter, Join, KeyRequest, KeyResponse, Leave, Message, PushPull, Query,
    QueryResponse, Relay, RelayHeader, SerfMessage, UserEvent, UserEvents,
};
use swimnet_serf::{decode_tags, encode_tags};
use swimnet_testkit::{unhex, vector};

fn v(name: &str) -> Vec<u8> {
    vector(include_str!("data/serf-0.9.4-vectors.txt"), name)
}

/// The raw key behind base64 "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=".
fn key1() -> Vec<u8> {
    unhex("e4af4eb5f3fb79f16b34a7b958242f5ef9da5c9e5c58fd12bd78b07b49248cce")
}

fn check<M: SerfMessage + PartialEq + std::fmt::Debug>(name: &str, m: M) {
    let bytes = v(name);
    assert_eq!(m.encode(), bytes, "encoding of {name}");
    assert_eq!(M::decode(&bytes).unwrap(), m, "decoding of {name}");
    // And through the generic decoder.
    assert_eq!(Message::decode(&bytes).unwrap().encode(), bytes, "{name}");
}

#[test]
fn intents() {
    check(
        "leave",
        Leave {
            ltime: 42,
            node: "swim1".into(),
            prune: false,
        },
    );
    check(
        "leave_prune",
        Leave {
            ltime: 300,
            node: "s2".into(),
            prune: true,
        },
    );
    check(
        "join",
        Join {
            ltime: 7,
            node: "s1".into(),
        },
    );
}

#[test]
fn user_events() {
    check(
        "user_event",
        UserEvent {
            ltime: 3,
            name: "deploy".into(),
            payload: b"v1".to_vec(),
            cc: true,
        },
    );
    // A nil payload.
    check(
        "user_event_nil",
        UserEvent {
            ltime: 200,
            name: "e".into(),
            payload: vec![],
            cc: false,
        },
    );
}

#[test]
fn key_requests_and_filters() {
    check("key_request_install", KeyRequest { key: key1() });
    // list-keys sends base64-decoded "": an empty, non-nil slice (a0).
    check("key_request_list", KeyRequest { key: vec![] });

    let nodes = Filter::Nodes(vec!["s2".into(), "rust1".into()]);
    assert_eq!(nodes.encode(), v("filter_nodes"));
    assert_eq!(Filter::decode(&v("filter_nodes")).unwrap(), nodes);
    let tag = Filter::Tag {
        tag: "role".into(),
        expr: "^we+b$".into(),
    };
    assert_eq!(tag.encode(), v("filter_tag"));
    assert_eq!(Filter::decode(&v("filter_tag")).unwrap(), tag);
}

fn install_query() -> Query {
    Query {
        ltime: 5,
        id: 12345,
        addr: vec![127, 0, 0, 1],
        port: 7946,
        source_node: "s1".into(),
        filters: vec![v("filter_nodes")],
        flags: 0,
        relay_factor: 0,
        timeout: 3_200_000_000,
        name: "_serf_install-key".into(),
        payload: v("key_request_install"),
    }
}

#[test]
fn queries() {
    let mut q = install_query();
    check("query_install_incl", q.clone());
    q.id = 12346;
    q.filters = vec![Filter::Nodes(vec!["s2".into()]).encode()];
    check("query_install_excl", q.clone());

    q.filters = vec![];
    q.id = 777;
    q.ltime = 9;
    q.flags = 1;
    q.name = "_serf_list-keys".into();
    q.payload = v("key_request_list");
    // net.ParseIP gives the 16-byte form.
    q.addr = [0u8; 10]
        .into_iter()
        .chain([0xff, 0xff, 127, 0, 0, 1])
        .collect();
    check("query_list_ack", q.clone());
    assert!(q.ack() && !q.no_broadcast());
    assert_eq!(q.reply_addr().unwrap(), "127.0.0.1:7946".parse().unwrap());

    q.filters = vec![v("filter_tag")];
    q.flags = 2;
    q.id = 778;
    q.name = "_serf_use-key".into();
    q.payload = v("key_request_install");
    q.relay_factor = 2;
    q.addr = vec![127, 0, 0, 1];
    check("query_use_tag", q.clone());
    assert!(!q.ack() && q.no_broadcast());
}

#[test]
fn responses() {
    check(
        "ack",
        QueryResponse {
            ltime: 9,
            id: 777,
            from: "rust1".into(),
            flags: 1,
            payload: vec![],
        },
    );
    check(
        "key_response_fail",
        KeyResponse {
            result: false,
            message: "No keyring to modify (encryption not enabled)".into(),
            keys: vec![],
            primary_key: String::new(),
        },
    );
    check(
        "key_response_ok",
        KeyResponse {
            result: true,
            ..Default::default()
        },
    );
    let list = KeyResponse {
        result: true,
        message: String::new(),
        keys: vec![
            "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=".into(),
            "MDEyMzQ1Njc4OWFiY2RlZg==".into(),
        ],
        primary_key: "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=".into(),
    };
    check("key_response_list", list.clone());
    check(
        "query_response_list",
        QueryResponse {
            ltime: 9,
            id: 777,
            from: "rust1".into(),
            flags: 0,
            payload: list.encode(),
        },
    );
}

#[test]
fn relay() {
    let bytes = v("relay");
    let relay = Relay {
        header: RelayHeader {
            dest_ip: vec![127, 0, 0, 1],
            dest_port: 7946,
            dest_zone: String::new(),
            dest_name: "s1".into(),
        },
        inner: v("ack"),
    };
    assert_eq!(relay.encode(), bytes);
    let Message::Relay(got) = Message::decode(&bytes).unwrap() else {
        panic!("not a relay");
    };
    assert_eq!(got, relay);
    assert_eq!(
        got.header.dest_addr().unwrap(),
        "127.0.0.1:7946".parse().unwrap()
    );
    let Message::QueryResponse(inner) = got.inner_message().unwrap() else {
        panic!("inner is not a query response");
    };
    assert!(inner.ack());
    assert_eq!(inner.from, "rust1");
}

#[test]
fn push_pull() {
    let mut pp = PushPull {
        ltime: 11,
        status_ltimes: BTreeMap::from([("s1".to_string(), 3)]),
        left_members: vec![],
        event_ltime: 7,
        events: vec![
            None,
            None,
            Some(UserEvents {
                ltime: 6,
                events: vec![BufferedEvent {
                    name: "deploy".into(),
                    payload: b"v1".to_vec(),
                }],
            }),
            None,
        ],
        query_ltime: 10,
    };
    check("push_pull", pp.clone());
    pp.left_members = vec!["s2".into()];
    pp.status_ltimes = BTreeMap::from([("s2".to_string(), 20)]);
    pp.events = vec![];
    check("push_pull_left", pp);
}

#[test]
fn tags() {
    let web = BTreeMap::from([("role".to_string(), "web".to_string())]);
    assert_eq!(encode_tags(&web), v("tags_role_web"));
    assert_eq!(decode_tags(&v("tags_role_web")), web);
    assert_eq!(encode_tags(&BTreeMap::new()), v("tags_empty"));
    assert!(decode_tags(&v("tags_empty")).is_empty());
}
