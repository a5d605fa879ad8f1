//! The cluster-wide key endpoints (`swimnet keys` without `--local`):
//!
//! * `GET /v1/cluster-keys[?timeout_ms=N]`: every member's keys;
//! * `POST /v1/cluster-keys/install|use|remove` with `{"key": "BASE64",
//!   "timeout_ms": N}` (`timeout_ms` optional, default 5000, at most
//!   60000): the operation on every alive or suspect member. `use` first
//!   lists the keys and is refused (409) unless every member answered and
//!   holds the key.
//!
//! Each answers `200` with a [`KeyOpReport`]: `{"responded": N, "total": M,
//! "failures": {"NODE": "ERROR", ...}, "keys": {"BASE64": HOLDERS, ...}}`,
//! also when some members failed or did not answer (their failures say
//! so); `400` for a bad key or timeout or when the operation cannot start
//! (no encryption, one already running); `409` for a refused
//! `use`.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::api::ApiState;
use crate::cluster_keys::{use_refusal, KeyOp, KeyOpReport, DEFAULT_KEY_OP_TIMEOUT};
use crate::commands::Command;
use crate::keyfile::parse_key;

/// Longest `timeout_ms` accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster-wide key routes, merged into [`crate::api::router`].
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/cluster-keys", get(list))
        .route("/v1/cluster-keys/:op", post(change))
}

/// An error answer: a status and `{"error": "..."}`.
struct KeyApiError(StatusCode, String);

impl IntoResponse for KeyApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> KeyApiError {
    KeyApiError(StatusCode::BAD_REQUEST, msg.into())
}

#[derive(Deserialize)]
struct TimeoutQuery {
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct ChangeBody {
    key: String,
    timeout_ms: Option<u64>,
}

fn timeout(ms: Option<u64>) -> Result<Duration, KeyApiError> {
    let t = ms.map_or(DEFAULT_KEY_OP_TIMEOUT, Duration::from_millis);
    if t.is_zero() || t > MAX_TIMEOUT {
        return Err(bad(format!(
            "timeout_ms must be between 1 and {}",
            MAX_TIMEOUT.as_millis()
        )));
    }
    Ok(t)
}

/// Runs one cluster-wide operation through the driver.
async fn run(state: &ApiState, op: KeyOp, timeout: Duration) -> Result<KeyOpReport, KeyApiError> {
    let gone = || {
        KeyApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down".into(),
        )
    };
    let (reply, rx) = oneshot::channel();
    let cmd = Command::ClusterKeys { op, timeout, reply };
    state.commands.send(cmd).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?.map_err(bad)
}

async fn list(
    State(state): State<ApiState>,
    Query(q): Query<TimeoutQuery>,
) -> Result<Json<KeyOpReport>, KeyApiError> {
    let t = timeout(q.timeout_ms)?;
    Ok(Json(run(&state, KeyOp::List, t).await?))
}

async fn change(
    State(state): State<ApiState>,
    Path(op): Path<String>,
    body: Option<Json<ChangeBody>>,
) -> Result<Json<KeyOpReport>, KeyApiError> {
    let Some(Json(body)) = body else {
        return Err(bad(r#"send a JSON body {"key": "BASE64"}"#));
    };
    let key = parse_key(&body.key).map_err(bad)?;
    let t = timeout(body.timeout_ms)?;
    let op = match op.as_str() {
        "install" => KeyOp::Install(key),
        "use" => {
            let listed = run(&state, KeyOp::List, t).await?;
            if let Some(why) = use_refusal(&listed, &key) {
                return Err(KeyApiError(StatusCode::CONFLICT, why));
            }
            KeyOp::Use(key)
        }
        "remove" => KeyOp::Remove(key),
        other => {
            return Err(KeyApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown key operation \"{}\": use install, use or remove",
                    crate::escape::esc(other)
                ),
            ))
        }
    };
    Ok(Json(run(&state, op, t).await?))
}
