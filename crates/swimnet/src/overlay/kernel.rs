//! The overlay manager on the real kernel: netlink for the data plane,
//! the DNS responder of `swimnet_overlay::dns_responder` in each namespace.

use swimnet_overlay::dns_responder::DnsResponder;
use swimnet_overlay::netlink::Netlink;
use swimnet_overlay::OverlayError;

use super::{OverlayConfig, OverlayHandle};
use crate::commands::Command;

/// Starts the manager with the netlink data plane (opened at the first
/// overlay operation) and real DNS responders.
pub fn spawn(cfg: OverlayConfig, commands: tokio::sync::mpsc::Sender<Command>) -> OverlayHandle {
    let factory = Box::new(|| -> Result<Netlink, OverlayError> { Netlink::new() });
    let dns = Box::new(|netns: &str, scope, book| {
        DnsResponder::start(netns, scope, book)
            .map(|r| -> super::manager::Responder { Box::new(r) })
    });
    super::service::spawn(cfg, commands, factory, dns)
}
