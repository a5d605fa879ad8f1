//! The overlay endpoints of the API (agents run with `--protocol
//! networkdb`; others answer 409), each handed to the overlay manager
//! ([`crate::overlay`]):
//!
//! * `POST /v1/overlays` `{"name", "subnet", "vni"?}`: 201 (200 when it
//!   existed with the same settings) `{"name","id","subnet","vni","created"}`;
//! * `GET /v1/overlays`: `[{"name","id","subnet","vni","hosts"}]`;
//! * `DELETE /v1/overlays/{name}`: 204;
//! * `POST /v1/overlays/{name}/endpoints` `{"netns","ip"?,"name"?}`: 201,
//!   the endpoint with `ifname` and `mtu`;
//! * `DELETE /v1/overlays/{name}/endpoints/{netns}`: 204;
//! * `GET /v1/overlays/{name}/endpoints`: every endpoint cluster-wide.
//!
//! Errors are `{"error": "..."}`: 400 invalid input, 404 unknown overlay,
//! endpoint or namespace, 409 conflict / in use / address taken / VNI in
//! use / not NetworkDB, 507 subnet full, 403 no `CAP_NET_ADMIN`, 501 no
//! VXLAN, 500 other kernel errors.

use std::net::Ipv4Addr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use swimnet_overlay::OverlayError;
use tokio::sync::oneshot;

use crate::api::{ApiError, ApiState};
use crate::overlay::OverlayRequest;

/// The overlay routes, merged into [`crate::api::router`].
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/overlays", get(list).post(create))
        .route("/v1/overlays/:name", delete(remove))
        .route("/v1/overlays/:name/endpoints", get(endpoints).post(attach))
        .route("/v1/overlays/:name/endpoints/:netns", delete(detach))
}

/// The HTTP status of an overlay error.
pub fn status_of(e: &OverlayError) -> StatusCode {
    match e {
        OverlayError::Invalid(_) => StatusCode::BAD_REQUEST,
        OverlayError::NoSuchOverlay(_)
        | OverlayError::NoSuchEndpoint { .. }
        | OverlayError::NoSuchNetns(_) => StatusCode::NOT_FOUND,
        OverlayError::Conflict { .. }
        | OverlayError::VniInUse { .. }
        | OverlayError::AddressTaken { .. }
        | OverlayError::InUse(..)
        | OverlayError::NotNetworkDb
        | OverlayError::NotHere(..) => StatusCode::CONFLICT,
        OverlayError::SubnetFull(..) => StatusCode::INSUFFICIENT_STORAGE,
        OverlayError::NoPermission(_) => StatusCode::FORBIDDEN,
        OverlayError::NoVxlan(_) => StatusCode::NOT_IMPLEMENTED,
        OverlayError::Kernel { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn api_error(e: OverlayError) -> ApiError {
    ApiError(status_of(&e), e.to_string())
}

/// Sends a request to the overlay manager and waits for its answer.
async fn ask<T>(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<Result<T, OverlayError>>) -> OverlayRequest,
) -> Result<T, ApiError> {
    let Some(handle) = &state.overlay else {
        return Err(api_error(OverlayError::NotNetworkDb));
    };
    let (tx, rx) = oneshot::channel();
    handle
        .requests
        .send(make(tx))
        .await
        .map_err(|_| crate::api::gone())?;
    rx.await.map_err(|_| crate::api::gone())?.map_err(api_error)
}

fn need_body<T>(body: Option<Json<T>>, example: &str) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .ok_or_else(|| crate::api::bad(format!("send a JSON body {example}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    subnet: String,
    vni: Option<u32>,
}

async fn create(
    State(state): State<ApiState>,
    body: Option<Json<CreateBody>>,
) -> Result<Response, ApiError> {
    let b = need_body(body, r#"{"name": "NAME", "subnet": "CIDR", "vni": N}"#)?;
    let subnet = parse_subnet(&b.subnet).map_err(api_error)?;
    let v = ask(&state, |reply| OverlayRequest::Create {
        name: b.name,
        subnet,
        vni: b.vni,
        reply,
    })
    .await?;
    let code = if v.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(v)).into_response())
}

/// Parses a subnet given by a user: `A.B.C.D/LEN` with no host bits set.
pub fn parse_subnet(text: &str) -> Result<ipnet::Ipv4Net, OverlayError> {
    let bad = || {
        OverlayError::Invalid(format!(
            "subnet {:?} is not an IPv4 CIDR such as 10.0.1.0/24",
            swimnet_overlay::model::clip(text)
        ))
    };
    let net: ipnet::Ipv4Net = text.parse().map_err(|_| bad())?;
    if net.trunc() != net {
        return Err(OverlayError::Invalid(format!(
            "subnet {net} has host bits set: did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let v = ask(&state, OverlayRequest::List).await?;
    Ok(Json(v).into_response())
}

async fn remove(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    ask(&state, |reply| OverlayRequest::Delete(name, reply)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachBody {
    netns: String,
    ip: Option<String>,
    name: Option<String>,
}

async fn attach(
    State(state): State<ApiState>,
    Path(overlay): Path<String>,
    body: Option<Json<AttachBody>>,
) -> Result<Response, ApiError> {
    let b = need_body(body, r#"{"netns": "NETNS", "ip": "IP", "name": "NAME"}"#)?;
    let ip = match &b.ip {
        None => None,
        Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| {
            crate::api::bad(format!(
                "ip {:?} is not an IPv4 address",
                swimnet_overlay::model::clip(text)
            ))
        })?),
    };
    let v = ask(&state, |reply| OverlayRequest::Attach {
        overlay,
        netns: b.netns,
        ip,
        name: b.name,
        reply,
    })
    .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn detach(
    State(state): State<ApiState>,
    Path((overlay, netns)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ask(&state, |reply| OverlayRequest::Detach {
        overlay,
        netns,
        reply,
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn endpoints(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let v = ask(&state, |reply| OverlayRequest::Endpoints(name, reply)).await?;
    Ok(Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_contract_status() {
        let cases = [
            (OverlayError::Invalid("x".into()), 400),
            (OverlayError::NoSuchOverlay("a".into()), 404),
            (OverlayError::NoSuchNetns("n".into()), 404),
            (OverlayError::InUse("a".into(), 2), 409),
            (OverlayError::NotNetworkDb, 409),
            (OverlayError::SubnetFull("s".into(), "a".into()), 507),
            (OverlayError::NoPermission("x".into()), 403),
            (OverlayError::NoVxlan("x".into()), 501),
            (
                OverlayError::Kernel {
                    op: "o".into(),
                    detail: "d".into(),
                },
                500,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(status_of(&e).as_u16(), code, "{e}");
        }
    }

    #[test]
    fn subnets_with_host_bits_are_refused_with_the_fix() {
        assert_eq!(
            parse_subnet("10.1.0.0/24").unwrap().to_string(),
            "10.1.0.0/24"
        );
        let e = parse_subnet("10.1.0.5/24").unwrap_err().to_string();
        assert!(e.contains("did you mean 10.1.0.0/24"), "{e}");
        assert!(parse_subnet("10.1.0.0").is_err());
        assert!(parse_subnet("fd00::/64").is_err());
    }
}
