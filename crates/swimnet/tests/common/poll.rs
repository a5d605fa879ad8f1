//! Bounded polling: wait for a condition, with the last error on timeout.

use super::*;

/// Polls `f` every `poll` until it returns `Ok` or `timeout` passes; returns
/// the value and the time it took, or the last error.
pub fn poll_until<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> Result<(T, Duration), String> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok((v, start.elapsed())),
            Err(e) => {
                if start.elapsed() >= timeout {
                    return Err(e);
                }
            }
        }
        thread::sleep(poll);
    }
}

/// Like [`poll_until`] with a 100 ms poll, panicking with `what` on timeout.
pub fn wait_for<T>(
    what: impl Display,
    timeout: Duration,
    f: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    match poll_until(timeout, Duration::from_millis(100), f) {
        Ok(v) => v,
        Err(e) => panic!("timed out after {timeout:?} waiting for {what}; last state: {e}"),
    }
}

/// Condition: `node` lists each of `names` with status `status`.
pub fn shows(node: &dyn Node, names: &[&str], status: &str) -> Result<Vec<Member>, String> {
    let m = node.members()?;
    for n in names {
        match status_of(&m, n) {
            Some(s) if s == status => {}
            other => {
                return Err(format!(
                    "{} shows {n} as {:?} (want {status}); view: {}",
                    node.name(),
                    other,
                    summary(&m)
                ))
            }
        }
    }
    Ok(m)
}

/// Waits until every node in `observers` lists every name in `names` alive.
pub fn wait_all_alive(observers: &[&dyn Node], names: &[&str], timeout: Duration) -> Duration {
    let (_, took) = wait_for(format!("{names:?} alive everywhere"), timeout, || {
        for o in observers {
            shows(*o, names, "alive")?;
        }
        Ok(())
    });
    took
}
