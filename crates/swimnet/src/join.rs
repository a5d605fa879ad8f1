//! Joining the cluster in the background at start: `--join` seeds are
//! tried with a short backoff until one answers; `--retry-join` seeds
//! every `--retry-interval`, at most `--retry-max` times (Serf's
//! `-retry-join`). Host names are resolved again at every attempt
//! ([`crate::resolve::resolve_seeds`]). Every failed attempt is logged
//! on one line.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::driver::Command;
use crate::escape::esc;
use crate::resolve::resolve_seeds;

/// First wait after a failed `--join` attempt; doubled after each failure.
const SEED_BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// Longest wait between `--join` attempts.
const SEED_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Serf-style `--retry-join` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryJoin {
    /// Addresses (host names or IP literals, `HOST:PORT`); empty: none.
    pub seeds: Vec<String>,
    /// Wait between attempts.
    pub interval: Duration,
    /// Attempts before giving up; 0 retries forever.
    pub max_attempts: u32,
}

impl Default for RetryJoin {
    /// No retry-join; Serf's defaults (30 s, forever) for the rest.
    fn default() -> Self {
        RetryJoin {
            seeds: Vec::new(),
            interval: Duration::from_secs(30),
            max_attempts: 0,
        }
    }
}

/// One join attempt: resolves the seeds and asks the driver to join them.
/// Answers the number of nodes joined through, or one line saying why none.
async fn attempt(tx: &mpsc::Sender<Command>, seeds: &[String]) -> Result<usize, String> {
    let (addrs, mut errors) = resolve_seeds(seeds).await;
    if !addrs.is_empty() {
        let (rtx, rrx) = oneshot::channel();
        tx.send(Command::Join(addrs, rtx))
            .await
            .map_err(|_| "the agent stopped".to_string())?;
        match rrx.await {
            Ok(Ok(n)) => return Ok(n),
            Ok(Err(e)) => errors.push(e),
            Err(_) => return Err("the agent stopped".into()),
        }
    }
    Err(errors.join("; "))
}

/// Tries `seeds` until a join succeeds, waiting `wait(failures)` after
/// each failure; `None` from `wait` gives up. Returns the nodes joined
/// through, or why it gave up.
async fn join_until_joined(
    tx: mpsc::Sender<Command>,
    seeds: Vec<String>,
    flag: &'static str,
    mut wait: impl FnMut(u32) -> Option<Duration>,
) -> Result<usize, String> {
    let mut failures = 0u32;
    loop {
        match attempt(&tx, &seeds).await {
            Ok(n) => {
                tracing::info!(nodes = n, via = flag, "joined the cluster");
                return Ok(n);
            }
            Err(e) if tx.is_closed() => return Err(e),
            Err(e) => {
                failures = failures.saturating_add(1);
                let Some(pause) = wait(failures) else {
                    tracing::error!(via = flag, attempts = failures, error = %esc(&e), "could not join: giving up");
                    return Err(format!(
                        "{flag}: could not join after {failures} attempt(s): {e}"
                    ));
                };
                tracing::warn!(via = flag, attempt = failures, error = %esc(&e), retry_in = ?pause, "could not join yet");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Joins the `--join` seeds in the background, retrying with backoff
/// (200 ms doubling to 10 s) until one answers or the driver stops.
pub fn spawn_seed_join(tx: mpsc::Sender<Command>, seeds: Vec<String>) {
    tokio::spawn(join_until_joined(tx, seeds, "--join", |failures| {
        let doublings = failures.saturating_sub(1).min(16);
        Some((SEED_BACKOFF_FIRST * 2u32.pow(doublings)).min(SEED_BACKOFF_MAX))
    }));
}

/// Joins the `--retry-join` seeds in the background every
/// `retry.interval` until a join succeeds; after `retry.max_attempts`
/// failed attempts (when not 0) the task ends with the error, which the
/// agent treats as fatal, as Serf does.
pub fn spawn_retry_join(
    tx: mpsc::Sender<Command>,
    retry: RetryJoin,
) -> JoinHandle<Result<usize, String>> {
    let RetryJoin {
        seeds,
        interval,
        max_attempts,
    } = retry;
    tokio::spawn(join_until_joined(
        tx,
        seeds,
        "--retry-join",
        move |failures| (max_attempts == 0 || failures < max_attempts).then_some(interval),
    ))
}

/// Resolves with the error of a `--retry-join` task that gave up; never
/// resolves when there is no task or it joined.
pub async fn gave_up(task: Option<JoinHandle<Result<usize, String>>>) -> String {
    match task {
        Some(t) => match t.await {
            Ok(Err(e)) => e,
            Err(e) => format!("--retry-join: the join task failed: {e}"),
            Ok(Ok(_)) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake driver that fails the first `fail` joins, then succeeds.
    fn fake_driver(fail: usize) -> (mpsc::Sender<Command>, JoinHandle<usize>) {
        let (tx, mut rx) = mpsc::channel(8);
        let driver = tokio::spawn(async move {
            let mut seen = 0;
            while let Some(cmd) = rx.recv().await {
                if let Command::Join(_, reply) = cmd {
                    seen += 1;
                    let r = if seen <= fail {
                        Err("connection refused".to_string())
                    } else {
                        Ok(1)
                    };
                    let _ = reply.send(r);
                }
            }
            seen
        });
        (tx, driver)
    }

    fn retry(max_attempts: u32) -> RetryJoin {
        RetryJoin {
            seeds: vec!["127.0.0.1:7946".into()],
            interval: Duration::from_secs(30),
            max_attempts,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_join_retries_every_interval_until_it_joins() {
        let (tx, driver) = fake_driver(3);
        let start = tokio::time::Instant::now();
        let r = spawn_retry_join(tx, retry(0)).await.unwrap();
        assert_eq!(r, Ok(1));
        assert_eq!(start.elapsed(), Duration::from_secs(90), "three waits");
        assert_eq!(driver.await.unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_join_gives_up_after_max_attempts() {
        let (tx, driver) = fake_driver(usize::MAX);
        let e = spawn_retry_join(tx, retry(2)).await.unwrap().unwrap_err();
        assert!(
            e.starts_with("--retry-join: could not join after 2 attempt(s)"),
            "{e}"
        );
        assert!(e.contains("connection refused"), "{e}");
        assert_eq!(driver.await.unwrap(), 2);
    }
}
