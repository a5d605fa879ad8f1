//! Giving freed heap memory back to the kernel. The agent's memory comes
//! and goes in bursts: a node that restarts, or that many others join
//! through, takes a whole cluster's state in a few push-pulls and bulk
//! syncs, and the C allocator keeps the pages those buffers used even after
//! they are freed, because a few live allocations sit among them. Such a
//! node would carry about a megabyte more than its peers for the rest of its
//! life (measured by `scripts/soak-restart.sh`). Once a minute the agent
//! asks the allocator to return every whole free page inside its heap.
#![allow(unsafe_code)]

use std::time::Duration;

/// How often [`spawn_heap_trim`] releases free pages.
pub const HEAP_TRIM_EVERY: Duration = Duration::from_secs(60);

/// When [`spawn_heap_trim`] first releases them: soon after start, once the
/// join's push-pulls and bulk syncs are over.
pub const HEAP_TRIM_FIRST: Duration = Duration::from_secs(15);

/// Returns the free pages of the process's heap to the kernel; the memory
/// in use does not change. Cheap (a walk of the allocator's free lists);
/// call it after a burst of allocations has been freed.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a plain integer (the padding to leave at
    // the top of the heap), reads no pointer of ours and changes only the
    // allocator's own bookkeeping, under the allocator's lock, so it may be
    // called from any thread at any time without affecting live
    // allocations.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Spawns a task that calls [`release_free_heap`] [`HEAP_TRIM_FIRST`]
/// after start and then every [`HEAP_TRIM_EVERY`] until the runtime stops.
/// Call once, from inside the agent's runtime.
pub fn spawn_heap_trim() {
    tokio::spawn(async {
        let first = tokio::time::Instant::now() + HEAP_TRIM_FIRST;
        let mut every = tokio::time::interval_at(first, HEAP_TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            release_free_heap();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releasing_after_a_burst_shrinks_the_resident_heap() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        // A burst of small allocations (under the mmap threshold, so they
        // come from the heap), with every 64th kept alive so the freed
        // ones cannot be given back by shrinking the heap's top.
        let burst: Vec<Vec<u8>> = (0..32_768).map(|i| vec![i as u8; 1000]).collect();
        let kept: Vec<Vec<u8>> = burst.into_iter().step_by(64).collect();
        let before = rss_kib();
        release_free_heap();
        let after = rss_kib();
        assert_eq!(kept.len(), 512);
        assert!(
            after + 8_000 < before,
            "RSS {before} KiB before release, {after} KiB after: expected about 30 MB back"
        );
    }
}
