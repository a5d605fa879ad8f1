//! `GET /v1/events`: the agent's events as they happen, one JSON object
//! per line ([`EventView`]), until the client goes away or the agent
//! stops. `?type=` takes an [`EventFilter`] (`member-join,member-failed`,
//! `table`, `user:deploy`), `?network=` keeps the events of one NetworkDB
//! network. At most [`MAX_EVENT_STREAMS`] streams are open at once; a
//! stream more than [`crate::agent_events::EVENT_BUFFER`] events behind
//! gets a final `lagged` line and ends. A blank line is sent after
//! [`KEEPALIVE`] without events.
//!
//! `?format=sse` sends the same events as server-sent events instead (what
//! a browser's `EventSource` and the dashboard read): each JSON object in
//! a `data:` field, its `seq` as the `id:`, a comment line as keepalive.
//! Filters, the stream cap and the lag rule are the same.

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
    #[serde(default)]
    format: Option<String>,
}

/// How a stream frames its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// One JSON object per line (`application/x-ndjson`).
    Lines,
    /// Server-sent events (`text/event-stream`).
    Sse,
}

impl Framing {
    fn parse(format: Option<&str>) -> Result<Framing, String> {
        match format.unwrap_or("") {
            "" | "ndjson" | "json" => Ok(Framing::Lines),
            "sse" => Ok(Framing::Sse),
            other => Err(format!(
                "format={other:?}: use format=sse or leave it out (one JSON object per line)"
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Framing::Lines => "application/x-ndjson",
            Framing::Sse => "text/event-stream",
        }
    }

    /// What goes out after [`KEEPALIVE`] without an event.
    fn keepalive(self) -> axum::body::Bytes {
        match self {
            Framing::Lines => axum::body::Bytes::from_static(b"\n"),
            Framing::Sse => axum::body::Bytes::from_static(b": keepalive\n\n"),
        }
    }

    /// One event, framed.
    fn event(self, v: &EventView) -> axum::body::Bytes {
        let json = serde_json::to_vec(v).unwrap_or_default();
        match self {
            Framing::Lines => {
                let mut l = json;
                l.push(b'\n');
                l.into()
            }
            Framing::Sse => {
                // serde_json escapes newlines inside strings, so the JSON
                // is one line and fits one `data:` field.
                let mut l = Vec::with_capacity(json.len() + 32);
                if v.seq != 0 {
                    l.extend_from_slice(format!("id: {}\n", v.seq).as_bytes());
                }
                l.extend_from_slice(b"data: ");
                l.extend_from_slice(&json);
                l.extend_from_slice(b"\n\n");
                l.into()
            }
        }
    }
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
    framing: Framing,
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
                return Some(self.framing.keepalive());
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
                    return Some(self.framing.event(&EventView::of(&p)));
                }
                Err(RecvError::Lagged(missed)) => {
                    self.done = true;
                    self.counters.streams_lagged.fetch_add(1, Ordering::Relaxed);
                    return Some(self.framing.event(&EventView::lagged(missed)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// A blank line goes out after this long without an event, so a stream
/// whose client has gone is noticed (and its slot freed) within it.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

async fn events(State(state): State<ApiState>, Query(q): Query<EventsQuery>) -> Response {
    let filter = match EventFilter::parse(q.kind.as_deref().unwrap_or("")) {
        Ok(f) => f,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let framing = match Framing::parse(q.format.as_deref()) {
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
        framing,
        done: false,
        _slot: slot,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let l = s.next_line().await?;
        Some((Ok::<_, std::convert::Infallible>(l), s))
    });
    (
        [
            (axum::http::header::CONTENT_TYPE, framing.content_type()),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_framing_puts_one_event_in_one_data_field() {
        assert_eq!(Framing::parse(None), Ok(Framing::Lines));
        assert_eq!(Framing::parse(Some("sse")), Ok(Framing::Sse));
        assert!(Framing::parse(Some("xml")).is_err());
        let v = EventView {
            kind: "user".into(),
            seq: 7,
            name: Some("a\nb".into()),
            ..Default::default()
        };
        let text = String::from_utf8(Framing::Sse.event(&v).to_vec()).unwrap();
        assert!(text.starts_with("id: 7\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"), "{text}");
        assert_eq!(text.matches('\n').count(), 3, "{text}");
        assert_eq!(&Framing::Sse.keepalive()[..], b": keepalive\n\n");
        let line = Framing::Lines.event(&v);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(Framing::Lines.content_type(), "application/x-ndjson");
        assert_eq!(Framing::Sse.content_type(), "text/event-stream");
    }
}
