//! The DNS responder inside each endpoint's namespace (127.0.0.11:53, UDP
//! and TCP), answering A queries for the names of endpoints on the
//! namespace's overlays from the [`crate::NameBook`].

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use crate::model::NameBook;
use crate::OverlayError;

/// The address the responder listens on inside each namespace.
pub const DNS_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 11);

/// TTL of every answer (seconds): short, the tables change.
pub const DNS_TTL: u32 = 5;

/// Answers one DNS query (wire bytes) for a namespace whose endpoints are
/// on the overlays `scope` (network IDs): `NAME` or `NAME.OVERLAY` (any
/// case, trailing dot or not) → A records; a known name with no address of
/// the asked type → empty NOERROR; other names → NXDOMAIN; a malformed
/// query → FORMERR when it has a readable header, else `None` (dropped).
pub fn answer(query: &[u8], book: &NameBook, scope: &BTreeSet<String>) -> Option<Vec<u8>> {
    let _ = (query, book, scope);
    todo!()
}

/// A running responder; dropping it stops it and closes its sockets.
pub struct DnsResponder {
    _private: (),
}

impl DnsResponder {
    /// Starts a responder on 127.0.0.11:53 (UDP and TCP) inside the named
    /// namespace, answering for the overlays in `scope` from the latest
    /// book. Call from within a tokio runtime.
    pub fn start(
        netns: &str,
        scope: watch::Receiver<BTreeSet<String>>,
        book: watch::Receiver<Arc<NameBook>>,
    ) -> Result<DnsResponder, OverlayError> {
        let _ = (netns, scope, book);
        todo!()
    }
}
