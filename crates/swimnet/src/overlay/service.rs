//! The request channel between the API and the overlay manager, and the
//! start of the manager's tasks.

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use swimnet_overlay::dataplane::DataPlane;
use swimnet_overlay::OverlayError;
use tokio::sync::{mpsc, oneshot};

use super::manager::{DnsStarter, Manager, PlaneFactory};
use super::tables::Tables;
use super::{CreatedView, EndpointView, OverlayConfig, OverlayCounters, OverlayView};
use crate::commands::Command;

/// Requests queued for the manager at most.
pub const REQUEST_QUEUE: usize = 64;

/// One request to the overlay manager, with where to answer.
#[derive(Debug)]
pub enum OverlayRequest {
    /// `POST /v1/overlays`.
    Create {
        /// Name.
        name: String,
        /// Subnet.
        subnet: Ipv4Net,
        /// VNI, or pick one.
        vni: Option<u32>,
        /// The answer.
        reply: oneshot::Sender<Result<CreatedView, OverlayError>>,
    },
    /// `GET /v1/overlays`.
    List(oneshot::Sender<Result<Vec<OverlayView>, OverlayError>>),
    /// `DELETE /v1/overlays/{name}`.
    Delete(String, oneshot::Sender<Result<(), OverlayError>>),
    /// `POST /v1/overlays/{name}/endpoints`.
    Attach {
        /// Overlay name.
        overlay: String,
        /// Namespace.
        netns: String,
        /// Address asked for.
        ip: Option<Ipv4Addr>,
        /// Endpoint name (default: the namespace's).
        name: Option<String>,
        /// The answer.
        reply: oneshot::Sender<Result<EndpointView, OverlayError>>,
    },
    /// `DELETE /v1/overlays/{name}/endpoints/{netns}`.
    Detach {
        /// Overlay name.
        overlay: String,
        /// Namespace.
        netns: String,
        /// The answer.
        reply: oneshot::Sender<Result<(), OverlayError>>,
    },
    /// `GET /v1/overlays/{name}/endpoints`.
    Endpoints(
        String,
        oneshot::Sender<Result<Vec<EndpointView>, OverlayError>>,
    ),
}

/// How the API reaches the overlay manager.
#[derive(Debug, Clone)]
pub struct OverlayHandle {
    /// Requests.
    pub requests: mpsc::Sender<OverlayRequest>,
    /// Its counters.
    pub counters: Arc<OverlayCounters>,
}

/// Starts the overlay manager of an agent run with `--protocol networkdb`:
/// its background loop and the task serving requests, each request in a
/// task of its own (create, delete, attach and detach still run one at a
/// time). `commands` is the driver's channel.
pub fn spawn<D: DataPlane + 'static>(
    cfg: OverlayConfig,
    commands: mpsc::Sender<Command>,
    factory: PlaneFactory<D>,
    dns_start: DnsStarter,
) -> OverlayHandle {
    let tables = Tables::new(commands);
    let mgr = Arc::new(Manager::new(cfg, tables.clone(), factory, dns_start));
    let counters = mgr.counters();
    let (tx, mut rx) = mpsc::channel::<OverlayRequest>(REQUEST_QUEUE);
    let bg = mgr.clone();
    tokio::spawn(async move {
        match tables.subscribe().await {
            Ok(events) => bg.run(events).await,
            Err(e) => tracing::warn!(error = %e, "overlays: no event subscription"),
        }
    });
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let m = mgr.clone();
            tokio::spawn(async move { serve(&m, req).await });
        }
    });
    OverlayHandle {
        requests: tx,
        counters,
    }
}

/// Carries out one request.
pub(crate) async fn serve<D: DataPlane>(m: &Manager<D>, req: OverlayRequest) {
    match req {
        OverlayRequest::Create {
            name,
            subnet,
            vni,
            reply,
        } => {
            let _ = reply.send(m.create(&name, subnet, vni).await);
        }
        OverlayRequest::List(reply) => {
            let _ = reply.send(m.list().await);
        }
        OverlayRequest::Delete(name, reply) => {
            let _ = reply.send(m.delete(&name).await);
        }
        OverlayRequest::Attach {
            overlay,
            netns,
            ip,
            name,
            reply,
        } => {
            let r = m.attach(&overlay, &netns, ip, name.as_deref()).await;
            let _ = reply.send(r);
        }
        OverlayRequest::Detach {
            overlay,
            netns,
            reply,
        } => {
            let _ = reply.send(m.detach(&overlay, &netns).await);
        }
        OverlayRequest::Endpoints(name, reply) => {
            let _ = reply.send(m.endpoints(&name).await);
        }
    }
}
