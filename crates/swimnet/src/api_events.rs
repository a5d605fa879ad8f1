//! `GET /v1/events`: the agent's events as they happen, one JSON object
//! per line ([`EventView`]), until the client goes away or the agent
//! stops. `?type=` takes an [`EventFilter`] (`member-join,member-failed`,
//! `table`, `user:deploy`), `?network=` keeps the events of one NetworkDB
//! network. At most [`MAX_EVENT_STREAMS`] streams are open at once; a
//! stream more than [`crate::agent_events::EVENT_BUFFER`] events behind
//! gets a final `lagged` line and ends. A blank line is sent after
//! [`KEEPALIVE`] without events.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::agent_events::{EventCounters, EventFilter, EventView, Published, MAX_EVENT_STREAMS};
use crate::api::ApiState;
use crate::commands::Command;

/// What the events endpoint shares between requests: the counters and the
/// stream slots.
#[derive(Debug)]
pub struct EventStreams {
    /// Counted here and shown in `GET /v1/stats` under `"events"`.
    pub counters: Arc<EventCounters>,
    slots: Arc<Semaphore>,
}

impl EventStreams {
    /// Slots for [`MAX_EVENT_STREAMS`] streams, counting into `counters`.
    pub fn new(counters: Arc<EventCounters>) -> Self {
        EventStreams {
            counters,
            slots: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
        }
    }
}

/// The events routes, merged into [`crate::api::router`] (before its guard).
pub fn routes() -> Router<ApiState> {
    Router::new().route("/v1/events", get(events))
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    network: Option<String>,
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

/// A stream's state: its subscription, what it keeps, and its slot.
struct Stream {
    rx: broadcast::Receiver<Arc<Published>>,
    filter: EventFilter,
    network: Option<String>,
    counters: Arc<EventCounters>,
    done: bool,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.counters.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stream {
    /// The next line to send, `None` at the end.
    async fn next_line(&mut self) -> Option<axum::body::Bytes> {
        if self.done {
            return None;
        }
        loop {
            let next = tokio::time::timeout(KEEPALIVE, self.rx.recv()).await;
            let Ok(next) = next else {
                return Some(axum::body::Bytes::from_static(b"\n"));
            };
            match next {
                Ok(p) => {
                    if !self.filter.matches(&p.event) {
                        continue;
                    }
                    if let Some(n) = &self.network {
                        if p.event.network() != Some(n.as_str()) {
                            continue;
                        }
                    }
                    return Some(line(&EventView::of(&p)));
                }
                Err(RecvError::Lagged(missed)) => {
                    self.done = true;
                    self.counters.streams_lagged.fetch_add(1, Ordering::Relaxed);
                    return Some(line(&EventView::lagged(missed)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// A blank line goes out after this long without an event, so a stream
/// whose client has gone is noticed (and its slot freed) within it.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

fn line(v: &EventView) -> axum::body::Bytes {
    let mut l = serde_json::to_vec(v).unwrap_or_default();
    l.push(b'\n');
    l.into()
}

async fn events(State(state): State<ApiState>, Query(q): Query<EventsQuery>) -> Response {
    let filter = match EventFilter::parse(q.kind.as_deref().unwrap_or("")) {
        Ok(f) => f,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let shared = &state.events;
    let Ok(slot) = shared.slots.clone().try_acquire_owned() else {
        shared
            .counters
            .streams_refused
            .fetch_add(1, Ordering::Relaxed);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams open (at most {MAX_EVENT_STREAMS}); close one and try again"),
        );
    };
    let (tx, rx) = oneshot::channel();
    let gone = || {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        )
    };
    if state.commands.send(Command::Subscribe(tx)).await.is_err() {
        return gone();
    }
    let Ok(rx) = rx.await else {
        return gone();
    };
    shared.counters.streams_open.fetch_add(1, Ordering::Relaxed);
    let stream = Stream {
        rx,
        filter,
        network: q.network.filter(|n| !n.is_empty()),
        counters: shared.counters.clone(),
        done: false,
        _slot: slot,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let l = s.next_line().await?;
        Some((Ok::<_, std::convert::Infallible>(l), s))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}
