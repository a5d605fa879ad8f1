//! `GET /metrics` (Prometheus text) and `GET /v1/health` on the JSON API's
//! listener. Both follow the API's access rules ([`crate::http_guard`]):
//! with `--api-token-file` they need `Authorization: Bearer TOKEN` like
//! every other path (Prometheus sends it with `authorization:
//! credentials_file:` in the scrape config), and the `Host` must be an IP,
//! `localhost` or an `--api-host` name. Each request asks the driver for
//! one status snapshot; nothing is kept between scrapes.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::oneshot;

use crate::api::ApiState;
use crate::commands::{Command, StatusView};

/// The routes of this module, merged into [`crate::api::router`].
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/health", get(health))
}

/// The driver's status snapshot, or `None` once it has stopped (after a
/// leave).
pub(crate) async fn snapshot(state: &ApiState) -> Option<StatusView> {
    let (tx, rx) = oneshot::channel();
    state.commands.send(Command::Stats(tx)).await.ok()?;
    rx.await.ok()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    match snapshot(&state).await {
        Some(v) => (
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            crate::metrics::render_with(
                &v,
                &state.http_counters,
                state
                    .overlay
                    .as_ref()
                    .map(|o| o.counters.snapshot())
                    .as_ref(),
            ),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": "the agent is shutting down" })),
        )
            .into_response(),
    }
}

/// The body and status of `GET /v1/health` for a snapshot (`None`: the
/// driver has stopped): 200 `ok` while the agent runs, 503 `leaving` once a
/// leave has started.
pub fn health_answer(v: Option<&StatusView>) -> (StatusCode, serde_json::Value) {
    match v {
        Some(v) if !v.leaving => (
            StatusCode::OK,
            serde_json::json!({
                "status": "ok",
                "node": v.name,
                "members_alive": v.members.alive,
            }),
        ),
        Some(v) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "status": "leaving",
                "node": v.name,
                "members_alive": v.members.alive,
            }),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "leaving" }),
        ),
    }
}

async fn health(State(state): State<ApiState>) -> Response {
    let v = snapshot(&state).await;
    let (status, body) = health_answer(v.as_ref());
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::LayerFigures;
    use crate::metrics::tests::view;

    #[test]
    fn health_is_ok_while_running_and_503_leaving_after() {
        let mut v = view(LayerFigures::Memberlist);
        let (status, body) = health_answer(Some(&v));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            serde_json::json!({"status": "ok", "node": "n1", "members_alive": 3})
        );
        v.leaving = true;
        let (status, body) = health_answer(Some(&v));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "leaving");
        let (status, body) = health_answer(None);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "leaving");
    }
}
