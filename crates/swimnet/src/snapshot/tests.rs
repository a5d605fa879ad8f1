//! The snapshot's capture, files and restart helpers (the byte format has
//! its own tests in `format.rs`).

use std::time::Instant;

use swimnet_core::Config;
use swimnet_networkdb::{NdbConfig, NetworkDb};

use super::*;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "swimnet-snap-{tag}-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    prepare_dir(&d).unwrap();
    d
}

fn node_with_tables() -> NetworkDb {
    let mut c = NetworkDb::docker_memberlist(Config::local(
        "b".to_string(),
        "127.0.0.1:7946".parse().unwrap(),
    ));
    c.keyring = Some(crate::keyfile::keyring(&[vec![1u8; 32], vec![2u8; 16]]).unwrap());
    let now = Instant::now();
    let mut db = NetworkDb::new(c, NdbConfig::default(), now, 1).unwrap();
    db.join_network(now, "net1").unwrap();
    db.create_entry(now, "net1", "t", "k1", b"v1").unwrap();
    db.create_entry(now, "net1", "t", "k2", &[0, 255]).unwrap();
    db.delete_entry(now, "net1", "t", "k1").unwrap();
    db
}

#[test]
fn capture_holds_networks_live_own_entries_clocks_and_keyring() {
    let db = node_with_tables();
    let s = capture(&db);
    assert_eq!(s.node, "b");
    assert!(s.members.is_empty(), "this node is not among its members");
    assert_eq!(s.networks, vec!["net1".to_string()]);
    assert_eq!(s.entries.len(), 1, "the deleted entry is not kept");
    assert_eq!(s.entries[0].key, "k2");
    assert_eq!(s.table_clock, db.state().table_clock());
    assert_eq!(s.keyring.as_ref().map(Vec::len), Some(2));
    let tables = tables_of(&s);
    assert_eq!(tables.entries[0].value, vec![0, 255]);
    assert_eq!(tables, db.restart_state(usize::MAX));
    assert_eq!(keys_of(&s).unwrap()[0], vec![1u8; 32], "primary first");
}

#[test]
fn write_then_load_round_trips_with_mode_0600() {
    let dir = temp_dir("rt");
    let s = capture(&node_with_tables());
    write(&dir, &s).unwrap();
    assert_eq!(load(&dir, "b").unwrap(), Some(s));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path_in(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Only the snapshot: no temporary file left over.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(
        load(&temp_dir("none"), "b").unwrap(),
        None,
        "no snapshot yet"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_nodes_snapshot_is_refused_with_the_fix() {
    let dir = temp_dir("other");
    write(&dir, &capture(&node_with_tables())).unwrap();
    let e = load(&dir, "c").unwrap_err();
    assert!(e.contains("node \"b\", not \"c\""), "{e}");
    assert!(e.contains("its own data dir"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_or_truncated_snapshots_are_skipped_and_moved_aside() {
    let good = format::encode(&capture(&node_with_tables()));
    let mut flipped = good.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 1;
    for (what, bytes) in [
        ("truncated", good[..good.len() - 5].to_vec()),
        ("flipped", flipped),
        ("garbage", b"\x00\x01garbage".to_vec()),
    ] {
        let dir = temp_dir(what);
        std::fs::write(path_in(&dir), &bytes).unwrap();
        assert_eq!(load(&dir, "b").unwrap(), None, "{what}");
        assert!(!path_in(&dir).exists(), "{what}: moved aside");
        assert_eq!(std::fs::read(dir.join("snapshot.corrupt")).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn rejoin_skips_this_node_by_name_and_address_and_is_capped() {
    let me: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let mut s = Snapshot {
        node: "me".into(),
        ..Snapshot::default()
    };
    s.members.push(SnapMember {
        name: "me".into(),
        addr: "127.0.0.1:7001".parse().unwrap(),
    });
    s.members.push(SnapMember {
        name: "old-me".into(),
        addr: me,
    });
    for i in 0..100 {
        s.members.push(SnapMember {
            name: format!("n{i}"),
            addr: SocketAddr::new([127, 0, 0, 2].into(), 8000 + i),
        });
    }
    let addrs = rejoin_addrs(&s, "me", me);
    assert_eq!(addrs.len(), MAX_REJOIN);
    assert!(addrs.iter().all(|a| a.port() >= 8000));
}

#[test]
fn the_writer_writes_changes_not_clock_ticks_and_nothing_after_the_last() {
    let dir = temp_dir("writer");
    let w = writer::SnapshotWriter::new(dir.clone(), false);
    let mut s = capture(&node_with_tables());
    w.write(s.clone(), false);
    let first = load(&dir, "b").unwrap().unwrap();
    assert_eq!(first.keyring, None, "a keyring file keeps the keys");
    s.table_clock += 10;
    w.write(s.clone(), false);
    assert_eq!(
        load(&dir, "b").unwrap().unwrap().table_clock,
        first.table_clock
    );
    s.networks.push("net2".into());
    w.write(s.clone(), false);
    assert_eq!(load(&dir, "b").unwrap().unwrap().table_clock, s.table_clock);
    s.table_clock += 1;
    w.write(s.clone(), true);
    assert_eq!(
        load(&dir, "b").unwrap().unwrap(),
        Snapshot {
            keyring: None,
            ..s.clone()
        }
    );
    s.networks.clear();
    w.write(s, false);
    assert_eq!(
        load(&dir, "b").unwrap().unwrap().networks.len(),
        2,
        "closed"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
