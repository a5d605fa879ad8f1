//! Serves the HTTP listeners (the JSON API and the optional diagnostic
//! listener) connection by connection, with budgets: at most
//! `max_connections` at once (the rest are answered 503 and closed at
//! once), a deadline for a request's headers that is also the idle
//! keep-alive timeout, and the request timeout of [`crate::http_guard`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The HTTP budgets (`swimnet agent --api-max-connections`,
/// `--api-idle-timeout`, `--api-request-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once per listener (lowered at start when the
    /// open-file limit is small, see [`crate::fdlimit::api_connection_cap`]).
    pub max_connections: usize,
    /// A connection is closed when a request's headers have not fully
    /// arrived this long after the connection opened or the previous
    /// response ended (so idle keep-alive connections are closed too).
    pub idle_timeout: Duration,
    /// A request is answered 408 when its response has not started by then.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Parses a duration as the CLI takes it: `30s`, `500ms`, `2m`, or bare
/// seconds (`30`); zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{t:?} is not a duration: write e.g. 30s or 500ms"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{t:?}: the unit must be ms, s or m")),
    };
    if d.is_zero() {
        return Err(format!("{t:?}: the duration must be above zero"));
    }
    Ok(d)
}

/// What the HTTP listeners counted, shown under `"api"` in `GET /v1/stats`.
#[derive(Debug, Default, Serialize)]
pub struct ApiCounters {
    /// Connections being served now.
    pub connections_open: AtomicU64,
    /// Connections accepted and served since start.
    pub connections_served: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Connections closed because no complete request head arrived within
    /// the idle timeout.
    pub connections_idle_closed: AtomicU64,
    /// `accept` failures (e.g. out of file descriptors).
    pub accept_errors: AtomicU64,
    /// Requests refused by the Host/Origin/token/content-type checks.
    pub requests_refused: AtomicU64,
    /// Requests answered 408 after the request timeout.
    pub requests_timed_out: AtomicU64,
}

/// What an over-the-cap connection is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 64\r\n\r\n{\"error\":\"too many open API connections; try again in a moment\"}";

/// Most bytes buffered while reading one request head (hyper's default is
/// about 400 KiB per connection); a longer head is answered 431.
const HEAD_BUFFER_MAX: usize = 16 * 1024;

/// Most header fields in one request.
const HEADERS_MAX: usize = 64;

/// Over-the-cap connections being told [`BUSY`] at once; beyond that they
/// are closed without a word.
const REFUSING_MAX: usize = 64;

/// Tells an over-the-cap client [`BUSY`] and closes: the answer is written,
/// the write side shut, and what the client sent is read and dropped (at
/// most 64 KiB, for at most 250 ms) so the close does not reset the
/// connection before the client has read the answer.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_millis(250), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Accepts connections on `listener` forever, serving each with `app`
/// under `limits` (the request timeout is applied by the router's guard).
/// Spawn it as a task; it ends only with the runtime.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    counters: Arc<ApiCounters>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(REFUSING_MAX));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "API accept error");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            counters.connections_refused.fetch_add(1, Ordering::Relaxed);
            match refusing.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(stream),
            }
            continue;
        };
        counters.connections_open.fetch_add(1, Ordering::Relaxed);
        counters.connections_served.fetch_add(1, Ordering::Relaxed);
        let service = TowerToHyperService::new(app.clone());
        let counters = counters.clone();
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.idle_timeout)
                .max_buf_size(HEAD_BUFFER_MAX)
                .max_headers(HEADERS_MAX)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if served.as_ref().is_err_and(|e| e.is_timeout()) {
                counters
                    .connections_idle_closed
                    .fetch_add(1, Ordering::Relaxed);
            }
            counters.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn the_busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("too many"));
    }
}
