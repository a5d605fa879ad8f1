//! The overlay manager's view of NetworkDB: a client of the driver's
//! command channel, like the API. Every table read and write the overlay
//! makes goes through here; nothing here decides anything.

use std::sync::Arc;

use swimnet_networkdb::TableEntry;
use swimnet_overlay::OverlayError;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::agent_events::Published;
use crate::commands::{Command, TableCommand, TableError, TableReply};

/// The driver, seen as a store of networks and tables.
#[derive(Clone, Debug)]
pub struct Tables {
    commands: mpsc::Sender<Command>,
}

fn stopped() -> OverlayError {
    OverlayError::Kernel {
        op: "asking the agent's control plane".into(),
        detail: "the agent is shutting down".into(),
    }
}

fn table_error(what: &str, e: TableError) -> OverlayError {
    match e {
        TableError::NotNetworkDb => OverlayError::NotNetworkDb,
        other => OverlayError::Kernel {
            op: what.to_string(),
            detail: other.to_string(),
        },
    }
}

impl Tables {
    /// A client of the driver behind `commands`.
    pub fn new(commands: mpsc::Sender<Command>) -> Tables {
        Tables { commands }
    }

    async fn run_raw(
        &self,
        cmd: TableCommand,
    ) -> Result<Result<TableReply, TableError>, OverlayError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Table(cmd, tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    async fn run(&self, what: &str, cmd: TableCommand) -> Result<TableReply, OverlayError> {
        self.run_raw(cmd).await?.map_err(|e| table_error(what, e))
    }

    /// Attaches this node to the network `nid` (nothing when attached).
    pub async fn join(&self, nid: &str) -> Result<(), OverlayError> {
        if self.networks().await?.iter().any(|n| n == nid) {
            return Ok(());
        }
        self.run("joining a network", TableCommand::JoinNetwork(nid.into()))
            .await
            .map(drop)
    }

    /// Detaches this node from the network `nid` (nothing when not attached).
    pub async fn leave(&self, nid: &str) -> Result<(), OverlayError> {
        if !self.networks().await?.iter().any(|n| n == nid) {
            return Ok(());
        }
        self.run("leaving a network", TableCommand::LeaveNetwork(nid.into()))
            .await
            .map(drop)
    }

    /// The networks this node is attached to.
    pub async fn networks(&self) -> Result<Vec<String>, OverlayError> {
        match self.run("listing networks", TableCommand::Networks).await? {
            TableReply::Networks(n) => Ok(n),
            _ => Ok(Vec::new()),
        }
    }

    /// The names of the active nodes attached to `nid`.
    pub async fn network_peers(&self, nid: &str) -> Result<Vec<String>, OverlayError> {
        let cmd = TableCommand::NetworkPeers(nid.into());
        match self.run("listing network peers", cmd).await? {
            TableReply::Peers(p) => Ok(p.into_iter().map(|(n, _)| n).collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// The visible entries of a table (empty when not attached).
    pub async fn list(&self, nid: &str, table: &str) -> Result<Vec<TableEntry>, OverlayError> {
        let cmd = TableCommand::List {
            nid: nid.into(),
            table: table.into(),
        };
        match self.run("reading a table", cmd).await? {
            TableReply::Entries(e) => Ok(e),
            _ => Ok(Vec::new()),
        }
    }

    /// The entries of a table including those of failed owners not yet
    /// reaped (address claims must not be handed out while their holder
    /// may come back).
    pub async fn list_with_failed(
        &self,
        nid: &str,
        table: &str,
    ) -> Result<Vec<TableEntry>, OverlayError> {
        let cmd = TableCommand::ListWithFailed {
            nid: nid.into(),
            table: table.into(),
        };
        match self.run("reading a table", cmd).await? {
            TableReply::Entries(e) => Ok(e),
            _ => Ok(Vec::new()),
        }
    }

    /// Creates or updates an entry owned by this node.
    pub async fn put(
        &self,
        nid: &str,
        table: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), OverlayError> {
        let cmd = TableCommand::Put {
            nid: nid.into(),
            table: table.into(),
            key: key.into(),
            value,
        };
        self.run("writing a table entry", cmd).await.map(drop)
    }

    /// Deletes an entry owned by this node (nothing when absent).
    pub async fn delete(&self, nid: &str, table: &str, key: &str) -> Result<(), OverlayError> {
        let cmd = TableCommand::Delete {
            nid: nid.into(),
            table: table.into(),
            key: key.into(),
        };
        match self.run_raw(cmd).await? {
            Ok(_) | Err(TableError::NotFound(_)) | Err(TableError::NotAttached(_)) => Ok(()),
            Err(e) => Err(table_error("deleting a table entry", e)),
        }
    }

    /// A subscription to every agent event from now on.
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<Arc<Published>>, OverlayError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }
}
