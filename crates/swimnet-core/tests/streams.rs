//! Inbound stream limits on one core, on virtual time: incremental parsing,
//! the per-source cap, the inbound budget and the first-bytes deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_core::wire::security::{Key, Keyring};
use swimnet_core::{Config, Memberlist, NoopDelegate, StreamCommand, StreamId};

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn core(now: Instant, encrypted: bool) -> Memberlist<NoopDelegate> {
    let mut config = Config::lan("me", addr([127, 0, 0, 1], 7946));
    if encrypted {
        config.keyring = Some(Keyring::new(Key::new(&[1; 16]).unwrap()));
    }
    Memberlist::new(config, NoopDelegate, now, 7).unwrap()
}

fn commands(ml: &mut Memberlist<NoopDelegate>) -> Vec<StreamCommand> {
    std::iter::from_fn(|| ml.poll_stream()).collect()
}

fn closed(cmds: &[StreamCommand], id: StreamId) -> bool {
    cmds.iter().any(|c| match c {
        StreamCommand::Close { id: i } | StreamCommand::Reply { id: i, .. } => *i == id,
        _ => false,
    })
}

/// A plain push/pull announcing `nodes` node states, each an empty map.
fn empty_states_push_pull(nodes: u32) -> Vec<u8> {
    let mut out = vec![6, 0x83];
    out.extend_from_slice(b"\xa5Nodes\xce");
    out.extend_from_slice(&nodes.to_be_bytes());
    out.extend_from_slice(b"\xacUserStateLen\x00\xa4Join\xc2");
    out.resize(out.len() + nodes as usize, 0x80);
    out
}

/// An encrypted frame header declaring `len` bytes.
fn encrypted_header(len: u32) -> Vec<u8> {
    let mut h = vec![10];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

#[test]
fn million_node_states_are_parsed_in_one_pass() {
    let now = Instant::now();
    let mut ml = core(now, false);
    let bytes = empty_states_push_pull(1 << 20);
    let id = ml.handle_stream_accept(now, addr([10, 0, 0, 2], 5000));
    for piece in bytes.chunks(64 * 1024) {
        ml.handle_stream_data(now, id, piece, false);
    }
    // 2^20 decoded states would take ~128 MiB: over the decoded limit, so
    // the stream fails; before that, every byte was examined about once
    // (re-parsing from the start every 64 KiB examined ~16x the input).
    let stats = ml.stats();
    assert_eq!(stats.streams_over_limit, 1);
    assert_eq!(stats.streams_failed, 1);
    assert!(
        stats.stream_bytes_scanned <= 2 * bytes.len() as u64,
        "scanned {} of {}",
        stats.stream_bytes_scanned,
        bytes.len()
    );
    assert!(closed(&commands(&mut ml), id));
    assert_eq!(ml.inbound_stream_memory(), 0);
}

#[test]
fn push_pull_under_the_limits_is_merged_whatever_the_pieces() {
    let now = Instant::now();
    let mut ml = core(now, false);
    let bytes = empty_states_push_pull(1000);
    let id = ml.handle_stream_accept(now, addr([10, 0, 0, 2], 5000));
    for piece in bytes.chunks(7) {
        ml.handle_stream_data(now, id, piece, false);
    }
    let cmds = commands(&mut ml);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, StreamCommand::Reply { id: i, .. } if *i == id)),
        "{cmds:?}"
    );
    assert_eq!(ml.stats().push_pulls, 1);
    assert!(ml.stats().stream_bytes_scanned <= 2 * bytes.len() as u64);
}

#[test]
fn one_source_may_hold_only_a_few_unauthenticated_streams() {
    let now = Instant::now();
    let mut ml = core(now, true);
    let hostile = [10, 0, 0, 66];
    let ids: Vec<StreamId> = (0..4)
        .map(|i| ml.handle_stream_accept(now, addr(hostile, 6000 + i)))
        .collect();
    assert!(commands(&mut ml).is_empty());
    let fifth = ml.handle_stream_accept(now, addr(hostile, 6100));
    assert!(closed(&commands(&mut ml), fifth));
    assert_eq!(ml.stats().streams_refused_per_source, 1);
    // Another source is not affected.
    let other = ml.handle_stream_accept(now, addr([10, 0, 0, 7], 6000));
    assert!(!closed(&commands(&mut ml), other));
    // A slot comes back when one of the four ends.
    ml.handle_stream_error(now, ids[0], "reset");
    let again = ml.handle_stream_accept(now, addr(hostile, 6200));
    assert!(!closed(&commands(&mut ml), again));
    // Without encryption required there is no per-source cap.
    let mut plain = core(now, false);
    for i in 0..10 {
        plain.handle_stream_accept(now, addr(hostile, 7000 + i));
    }
    assert!(commands(&mut plain).is_empty());
}

#[test]
fn unauthenticated_bytes_stay_within_the_global_budget() {
    let now = Instant::now();
    let mut ml = core(now, true);
    let budget = ml.config().stream_limits.inbound_budget_bytes;
    let chunk = vec![0x55u8; 64 * 1024];
    let mut ids = Vec::new();
    // 32 streams from 8 sources, each declaring a 20 MiB frame.
    for s in 0..8u8 {
        for p in 0..4u16 {
            let id = ml.handle_stream_accept(now, addr([10, 1, 0, s], 9000 + p));
            ml.handle_stream_data(now, id, &encrypted_header(20 << 20), false);
            ids.push(id);
        }
    }
    assert!(commands(&mut ml).is_empty());
    // Each sends 3 MiB: 96 MiB in all, well over the budget.
    for _ in 0..48 {
        for &id in &ids {
            ml.handle_stream_data(now, id, &chunk, false);
            assert!(ml.inbound_stream_memory() <= budget);
        }
    }
    let dropped = commands(&mut ml)
        .iter()
        .filter(|c| matches!(c, StreamCommand::Close { .. }))
        .count() as u64;
    assert!(dropped > 0);
    assert_eq!(ml.stats().streams_over_budget, dropped);
    // A legitimate stream still gets in once room was made.
    let fresh = ml.handle_stream_accept(now, addr([10, 2, 0, 1], 9000));
    assert!(!closed(&commands(&mut ml), fresh));
}

#[test]
fn a_stream_without_its_header_in_time_is_closed() {
    let now = Instant::now();
    let mut ml = core(now, true);
    let silent = ml.handle_stream_accept(now, addr([10, 0, 0, 3], 5000));
    let partial = ml.handle_stream_accept(now, addr([10, 0, 0, 4], 5000));
    let headed = ml.handle_stream_accept(now, addr([10, 0, 0, 5], 5000));
    ml.handle_stream_data(now, partial, &[10, 0], false);
    ml.handle_stream_data(
        now + Duration::from_secs(1),
        headed,
        &encrypted_header(1000),
        false,
    );
    ml.handle_timeout(now + Duration::from_millis(4900));
    assert!(commands(&mut ml).is_empty());
    ml.handle_timeout(now + Duration::from_secs(5));
    let cmds = commands(&mut ml);
    assert!(closed(&cmds, silent) && closed(&cmds, partial), "{cmds:?}");
    assert!(!closed(&cmds, headed));
    assert_eq!(ml.stats().streams_first_bytes_timeout, 2);
    // The one that sent its header runs to the stream deadline.
    ml.handle_timeout(now + Duration::from_secs(10));
    assert!(closed(&commands(&mut ml), headed));
    assert_eq!(ml.stats().streams_failed, 3);
}

#[test]
fn timed_out_inbound_streams_give_their_slot_back() {
    let now = Instant::now();
    let mut config = Config::lan("me", addr([127, 0, 0, 1], 7946));
    config.max_push_pull_requests = 2;
    let mut ml = Memberlist::new(config, NoopDelegate, now, 7).unwrap();
    for p in 0..2 {
        ml.handle_stream_accept(now, addr([10, 0, 0, 9], 5000 + p));
    }
    ml.handle_timeout(now + Duration::from_secs(11));
    commands(&mut ml);
    let later = now + Duration::from_secs(12);
    let id = ml.handle_stream_accept(later, addr([10, 0, 0, 9], 5100));
    assert!(!closed(&commands(&mut ml), id));
    assert_eq!(ml.stats().streams_refused, 0);
}

#[test]
fn stream_limits_are_validated() {
    let mut config = Config::lan("me", addr([127, 0, 0, 1], 7946));
    config.stream_limits.max_unauthenticated_per_source = 0;
    assert!(config.validate().is_err());
    let mut config = Config::lan("me", addr([127, 0, 0, 1], 7946));
    config.stream_limits.inbound_budget_bytes = 1 << 20;
    assert!(config.validate().is_err());
    assert!(Config::lan("me", addr([127, 0, 0, 1], 7946))
        .validate()
        .is_ok());
}
