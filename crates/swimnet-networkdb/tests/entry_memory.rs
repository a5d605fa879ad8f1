//! Heap cost of stored entries, counted by a counting global allocator (a
//! test binary of its own, so no other test's allocations are counted).
//!
//! Each entry is stored once in the entry map and once in the owner index
//! (which keys each owner holds); the key string is shared between the two,
//! not copied.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use swimnet_networkdb::{NdbConfig, TableState};

/// Bytes currently allocated through [`Counting`].
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`, which upholds
// `GlobalAlloc`'s contract; the counter has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const NET: &str = "0123456789abcdef0123456789";
const TABLE: &str = "endpoint_table";

fn write(d: &mut TableState, now: Instant, from: usize, to: usize) {
    for i in from..to {
        // A 64-hex-digit endpoint ID and a 64-byte value, as Docker writes.
        let key = format!("{i:064x}");
        d.create_entry(now, NET, TABLE, &key, &[7u8; 64]).unwrap();
    }
    // A gossip round of a network without peers trims its queue to
    // `LONE_QUEUE_MAX` events.
    d.gossip_tick(None);
}

#[test]
fn ten_thousand_entries_cost_at_most_the_bound_each() {
    let now = Instant::now();
    let mut d = TableState::new(
        "me".into(),
        SocketAddr::from(([10, 0, 0, 1], 7946)),
        NdbConfig::default(),
        4,
        1,
    );
    d.join_network(now, NET).unwrap();
    // The first 10,000 writes fill this lone network's gossip queue to its
    // cap (`LONE_QUEUE_MAX` events, after the gossip round); the next
    // 10,000 cost only their entries, which is what is measured.
    write(&mut d, now, 0, 10_000);
    let before = LIVE.load(Ordering::Relaxed);
    write(&mut d, now, 10_000, 20_000);
    let per_entry = (LIVE.load(Ordering::Relaxed) - before) / 10_000;
    assert_eq!(d.table_entries(NET, TABLE).len(), 20_000);
    println!("{per_entry} heap bytes per entry");
    // Measured 489 with the key shared between the map and the owner
    // index; a second copy of the key string in the index costs 566.
    assert!(per_entry <= 520, "{per_entry} heap bytes per entry");
}
