//! The open-file limit: raised at start so the gossip listener, the API
//! and the streams have room, and read to size the API connection cap.
#![allow(unsafe_code)]

/// File descriptors kept free for gossip (its TCP listener, streams and
/// UDP socket) whatever the API holds.
pub const GOSSIP_FD_RESERVE: u64 = 512;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit where the process may,
/// and returns the soft limit in force afterwards (`None` when it cannot be
/// read). Call once at agent start, before opening sockets.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` owned by this frame;
    // getrlimit writes only into it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit` that setrlimit only reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
    Some(lim.rlim_cur as u64)
}

/// The API connection cap that leaves [`GOSSIP_FD_RESERVE`] descriptors and
/// half of the rest to gossip: `wanted`, lowered when the soft limit
/// `nofile` is small (at least 8 connections).
pub fn api_connection_cap(wanted: usize, nofile: Option<u64>) -> usize {
    match nofile {
        Some(n) => {
            let room = n.saturating_sub(GOSSIP_FD_RESERVE) / 2;
            wanted.min(room.max(8) as usize)
        }
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_gossip() {
        assert_eq!(api_connection_cap(256, Some(1_048_576)), 256);
        assert_eq!(api_connection_cap(256, Some(1024)), 256);
        assert_eq!(api_connection_cap(256, Some(800)), 144);
        assert_eq!(api_connection_cap(256, Some(256)), 8);
        assert_eq!(api_connection_cap(256, None), 256);
    }

    #[test]
    fn raising_keeps_the_soft_limit_at_least_where_it_was() {
        let n = raise_nofile_limit().expect("getrlimit works on this platform");
        assert!(n >= 64);
    }
}
