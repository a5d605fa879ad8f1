//! The node kinds the agent runs, seen by the driver through one trait:
//! [`AgentNode`] is [`SansIoNode`] plus what the agent's API asks of a node
//! beyond membership (NetworkDB's tables, metadata) and where each node
//! kind's application events go. Implemented by a plain [`Memberlist`]
//! (`--protocol memberlist`), [`SerfNode`] (`serf`) and [`NetworkDb`]
//! (`networkdb`); the agent picks one at start-up.

use std::convert::Infallible;
use std::time::Instant;

use swimnet_core::{Memberlist, NoopDelegate, SansIoNode};
use swimnet_networkdb::{NetworkDb, TableChange};
use swimnet_serf::{SerfEvent, SerfNode};

use crate::agent_events::AgentEvent;
use crate::commands::{TableCommand, TableError, TableReply};

/// A node the agent's driver can run.
pub trait AgentNode: SansIoNode + Send + 'static {
    /// Carries out a NetworkDB command; node kinds without tables answer
    /// [`TableError::NotNetworkDb`].
    fn table(&mut self, now: Instant, cmd: TableCommand) -> Result<TableReply, TableError>;

    /// Replaces our metadata (announced with a new incarnation); the error
    /// says why it was refused.
    fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<(), String>;

    /// Takes one of the node's application events (drained by the driver
    /// after every input): returns the agent event to publish (to event
    /// streams, table watchers and handlers), if it is one; other kinds
    /// are logged.
    fn on_app_event(event: Self::AppEvent) -> Option<AgentEvent>;

    /// Answers the Serf query with handle `id` (from an
    /// [`AgentEvent::Query`]) with `payload`; the error says why it could
    /// not be sent.
    fn respond_query(&mut self, now: Instant, id: u64, payload: Vec<u8>) -> Result<(), String>;

    /// The next event the node reports outside its application events
    /// (NetworkDB's network attachments), drained by the driver after
    /// every input; `None` for node kinds without such events.
    fn poll_agent_event(&mut self) -> Option<AgentEvent> {
        None
    }
}

/// The answer of node kinds that take no queries.
fn no_queries(id: u64, _payload: Vec<u8>) -> Result<(), String> {
    Err(format!(
        "cannot respond to query {id}: this agent does not answer Serf queries (not supported)"
    ))
}

/// `--protocol memberlist`: membership only.
impl AgentNode for Memberlist<NoopDelegate> {
    fn table(&mut self, _now: Instant, _cmd: TableCommand) -> Result<TableReply, TableError> {
        Err(TableError::NotNetworkDb)
    }
    fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<(), String> {
        Memberlist::set_meta(self, now, meta).map_err(|e| e.to_string())
    }
    fn on_app_event(event: Infallible) -> Option<AgentEvent> {
        match event {}
    }
    fn respond_query(&mut self, _now: Instant, id: u64, payload: Vec<u8>) -> Result<(), String> {
        no_queries(id, payload)
    }
}

/// `--protocol serf`: a Serf member.
impl AgentNode for SerfNode {
    fn table(&mut self, _now: Instant, _cmd: TableCommand) -> Result<TableReply, TableError> {
        Err(TableError::NotNetworkDb)
    }
    fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<(), String> {
        self.core_mut()
            .set_meta(now, meta)
            .map_err(|e| e.to_string())
    }
    fn respond_query(&mut self, _now: Instant, id: u64, payload: Vec<u8>) -> Result<(), String> {
        no_queries(id, payload)
    }
    fn on_app_event(event: SerfEvent) -> Option<AgentEvent> {
        match event {
            SerfEvent::User(e) => {
                tracing::debug!(name = %crate::escape::esc(&e.name), ltime = e.ltime, "serf user event");
                return Some(AgentEvent::User {
                    name: e.name,
                    ltime: e.ltime,
                    payload: e.payload,
                    coalesce: e.cc,
                });
            }
            SerfEvent::KeyringChanged { op } => {
                tracing::info!(op, "keyring changed by a Serf key query");
            }
            SerfEvent::KeyringNotSaved { error } => {
                tracing::error!(error = %crate::escape::esc(&error), "could not persist the keyring");
            }
            _ => {}
        }
        None
    }
}

fn ndb_error(e: swimnet_networkdb::NdbError) -> TableError {
    match e.kind() {
        swimnet_networkdb::NdbErrorKind::NotFound => TableError::NotFound(e.to_string()),
        _ => TableError::Failed(e.to_string()),
    }
}

/// `--protocol networkdb`: Docker's NetworkDB.
impl AgentNode for NetworkDb {
    fn set_meta(&mut self, _now: Instant, _meta: Vec<u8>) -> Result<(), String> {
        Err("node metadata cannot be changed in networkdb mode".into())
    }
    fn on_app_event(event: TableChange) -> Option<AgentEvent> {
        AgentEvent::from_table_change(event)
    }
    fn poll_agent_event(&mut self) -> Option<AgentEvent> {
        self.poll_network_change().map(|c| AgentEvent::Network {
            attached: c.attached,
            network: c.network_id,
            node: c.node,
            origin: c.origin,
        })
    }
    fn respond_query(&mut self, _now: Instant, id: u64, payload: Vec<u8>) -> Result<(), String> {
        no_queries(id, payload)
    }
    fn table(&mut self, now: Instant, cmd: TableCommand) -> Result<TableReply, TableError> {
        let done = |r: Result<(), swimnet_networkdb::NdbError>| {
            r.map(|()| TableReply::Done).map_err(ndb_error)
        };
        match cmd {
            TableCommand::Networks => Ok(TableReply::Networks(self.networks())),
            TableCommand::JoinNetwork(nid) => done(self.join_network(now, &nid)),
            TableCommand::LeaveNetwork(nid) => done(self.leave_network(now, &nid)),
            TableCommand::NetworkPeers(nid) => Ok(TableReply::Peers(self.network_peer_ips(&nid))),
            TableCommand::ClusterPeers => Ok(TableReply::Peers(self.cluster_peer_ips())),
            TableCommand::NetworkStats(nid) => Ok(TableReply::Stats(self.network_stats(&nid))),
            TableCommand::Create {
                nid,
                table,
                key,
                value,
            } => done(self.create_entry(now, &nid, &table, &key, &value)),
            TableCommand::Update {
                nid,
                table,
                key,
                value,
            } => done(self.update_entry(now, &nid, &table, &key, &value)),
            TableCommand::Put {
                nid,
                table,
                key,
                value,
            } => done(self.put_entry(now, &nid, &table, &key, &value)),
            TableCommand::Delete { nid, table, key } => {
                done(self.delete_entry(now, &nid, &table, &key))
            }
            TableCommand::Get { nid, table, key } => self
                .get_entry(&nid, &table, &key)
                .map(TableReply::Value)
                .map_err(ndb_error),
            TableCommand::List { nid, table } => {
                Ok(TableReply::Entries(self.table_entries(&nid, &table)))
            }
        }
    }
}
