//! UDP datagrams: `open_packet` with and without a keyring, then
//! `for_each_message_within` over whatever comes out, with the default
//! datagram budget. Asserts the budget holds for any input: no more parts
//! handed out than allowed, and no more memory allocated during the walk
//! than the decoded-byte budget allows (measured by a counting allocator,
//! independently of the budget's own bookkeeping).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use swimnet_wire::budget::DecodeBudget;
use swimnet_wire::packet::{for_each_message_within, open_packet, OpenOptions};
use swimnet_wire::security::{Key, Keyring};
use swimnet_wire::WireError;

/// Counts the bytes live on the heap and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's own
// arguments, so each upholds exactly the contract `System` does; the
// counters are plain atomics and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // Counted as the new block allocated before the old one is
            // freed: the worst case of a moving realloc.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Most heap one walk may hold beyond its decoded bytes: per nesting level
/// LZW's code table (64 KiB), its first output buffer (three times its
/// input, at most 196 KiB) and a compound's part list (4 KiB).
const WALK_OVERHEAD: usize = 1 << 20;

/// Walks `inner` with the default datagram budget and checks the caps.
fn walk_checked(inner: &[u8]) {
    let mut budget = DecodeBudget::datagram();
    let mut parts = 0usize;
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    for_each_message_within(inner, &mut budget, &mut |m, _| {
        // A truncated compound's tail is reported on the compound's part.
        if !matches!(m, Err(WireError::CompoundTruncated { .. })) {
            parts += 1;
        }
    });
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(
        parts <= DecodeBudget::DATAGRAM_PARTS - budget.parts_left(),
        "{parts} parts handed out, {} left of {}",
        budget.parts_left(),
        DecodeBudget::DATAGRAM_PARTS
    );
    // Everything decompressed may be alive at once (nested wrappers), each
    // output buffer up to twice its bytes or the bytes left in the budget,
    // and a message decoded from it is at most a copy of its part: three
    // times the budget at worst, whatever the input.
    assert!(
        peak <= 3 * DecodeBudget::DATAGRAM_BYTES + WALK_OVERHEAD,
        "the walk held {peak} bytes at its peak, over 3 x {} + {WALK_OVERHEAD}",
        DecodeBudget::DATAGRAM_BYTES
    );
}

fuzz_target!(|data: &[u8]| {
    // The fuzzer finds the all-zero key's valid tags only by luck; the
    // plaintext fallback path (verify_incoming = false) is the one it
    // explores, along with labels and CRCs.
    let keyring = Keyring::new(Key::new(&[0; 16]).expect("16-byte key"));
    let configs = [
        OpenOptions {
            keyring: None,
            verify_incoming: false,
            label: b"",
        },
        OpenOptions {
            keyring: None,
            verify_incoming: false,
            label: b"lbl",
        },
        OpenOptions {
            keyring: Some(&keyring),
            verify_incoming: true,
            label: b"",
        },
        OpenOptions {
            keyring: Some(&keyring),
            verify_incoming: false,
            label: b"",
        },
    ];
    for opts in &configs {
        if let Ok(inner) = open_packet(data, opts) {
            walk_checked(&inner);
        }
    }
    walk_checked(data);
});
