//! Readers of `/proc/<pid>/status` and `/proc/<pid>/stat` for the live
//! budget tests: peak and current resident set size, and CPU time used.

use std::sync::OnceLock;
use std::time::Duration;

/// A `kB` field of `/proc/<pid>/status` (such as `VmHWM` or `VmRSS`), in KiB.
/// Panics when the process or the field is missing.
fn status_kib(pid: u32, field: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {path}"))
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

/// Current resident set size (`VmRSS`) of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    // The command name (field 2) is in parentheses and may hold spaces; the
    // fields after it start at field 3, so utime and stime (fields 14 and
    // 15) are at 11 and 12 here.
    let rest = &stat[stat.rfind(')').expect("command name in stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> u64 {
        fields[i]
            .parse()
            .unwrap_or_else(|e| panic!("field {} of {path}: {e}", i + 3))
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks_per_second())
}

/// Clock ticks per second of the CPU times in `/proc` (`getconf CLK_TCK`,
/// 100 when that cannot be run).
fn clock_ticks_per_second() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&hz| hz > 0)
            .unwrap_or(100)
    })
}
