//! The node kinds the agent runs, seen by the driver through one trait:
//! [`AgentNode`] is [`SansIoNode`] plus what the agent's API asks of a node
//! beyond membership (NetworkDB's tables, metadata) and where each node
//! kind's application events go. Implemented by a plain [`Memberlist`]
//! (`--protocol memberlist`), [`SerfNode`] (`serf`) and [`NetworkDb`]
//! (`networkdb`); the agent picks one at start-up.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use swimnet_core::{Memberlist, NoopDelegate, SansIoNode};
use swimnet_networkdb::{NetworkDb, RestartState, RestoreReport, TableChange};
use swimnet_serf::{SerfEvent, SerfNode};

use crate::agent_events::AgentEvent;
use crate::cluster_keys::{KeyOp, KeyOpReport};
use crate::commands::{TableCommand, TableError, TableReply};
use crate::figures::{LayerFigures, NetworkFigures};
use crate::serf_cmd::{not_serf, SerfCommand, SerfReply};

/// A node the agent's driver can run.
pub trait AgentNode: SansIoNode + Send + 'static {
    /// Carries out a NetworkDB command; node kinds without tables answer
    /// [`TableError::NotNetworkDb`].
    fn table(&mut self, now: Instant, cmd: TableCommand) -> Result<TableReply, TableError>;

    /// Replaces our metadata (announced with a new incarnation); the error
    /// says why it was refused.
    fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<(), String>;

    /// Carries out a Serf command; node kinds other than Serf refuse it
    /// with [`crate::serf_cmd::not_serf`].
    fn serf(&mut self, now: Instant, cmd: SerfCommand) -> Result<SerfReply, String>;

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

    /// The node kind's own figures for a status snapshot (`GET /v1/stats`,
    /// `GET /metrics`); call between inputs, it changes nothing.
    fn layer_figures(&self) -> LayerFigures {
        LayerFigures::Memberlist
    }

    /// What the node keeps across a restart besides membership (NetworkDB:
    /// networks, own entries, clocks; at most `max_entries` entries); `None`
    /// for node kinds without tables. Read-only.
    fn restart_tables(&self, _max_entries: usize) -> Option<RestartState> {
        None
    }

    /// Gives a fresh node back what [`Self::restart_tables`] kept, before it
    /// joins (see [`NetworkDb::restore`]); `None` for node kinds without
    /// tables, which ignore it.
    fn restore_tables(&mut self, _now: Instant, _kept: RestartState) -> Option<RestoreReport> {
        None
    }

    /// Starts a cluster-wide key operation (this node included) that gives
    /// up waiting for answers after `timeout`; returns its id, whose report
    /// comes out of [`AgentNode::poll_key_report`]. Timers run through the
    /// node's `poll_timeout`. One at a time; the error says why it could
    /// not start, and nothing changed then. By default the membership
    /// core's own key messages ([`swimnet_core::key_ops`]).
    fn start_key_op(&mut self, now: Instant, op: KeyOp, timeout: Duration) -> Result<u64, String> {
        self.core_mut()
            .start_key_op(now, op, timeout)
            .map_err(|e| e.to_string())
    }

    /// The next finished key operation's id and report; drained by the
    /// driver after every input.
    fn poll_key_report(&mut self) -> Option<(u64, KeyOpReport)> {
        self.core_mut()
            .poll_key_op_outcome()
            .map(|o| (o.id, KeyOpReport::from(o)))
    }
}

/// `--protocol memberlist`: membership only.
impl AgentNode for Memberlist<NoopDelegate> {
    fn table(&mut self, _now: Instant, _cmd: TableCommand) -> Result<TableReply, TableError> {
        Err(TableError::NotNetworkDb)
    }
    fn set_meta(&mut self, now: Instant, meta: Vec<u8>) -> Result<(), String> {
        Memberlist::set_meta(self, now, meta).map_err(|e| e.to_string())
    }
    fn serf(&mut self, _now: Instant, _cmd: SerfCommand) -> Result<SerfReply, String> {
        Err(not_serf("memberlist"))
    }
    fn respond_query(&mut self, _now: Instant, id: u64, payload: Vec<u8>) -> Result<(), String> {
        no_queries(id, payload)
    }
    fn on_app_event(event: Infallible) -> Option<AgentEvent> {
        match event {}
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
    fn start_key_op(&mut self, now: Instant, op: KeyOp, timeout: Duration) -> Result<u64, String> {
        // Serf's own key queries, so serf agents in the cluster take part.
        self.start_key_query(now, &op, 0, Some(timeout))
            .map(|h| h.0)
            .map_err(|e| e.to_string())
    }
    fn poll_key_report(&mut self) -> Option<(u64, KeyOpReport)> {
        let (handle, r) = SerfNode::poll_key_report(self)?;
        let report = KeyOpReport {
            responded: r.responded,
            total: r.total,
            failures: r.failures,
            keys: r.keys,
        };
        Some((handle.0, report))
    }
    fn serf(&mut self, now: Instant, cmd: SerfCommand) -> Result<SerfReply, String> {
        crate::serf_cmd::run(self, now, cmd)
    }
    fn respond_query(&mut self, now: Instant, id: u64, payload: Vec<u8>) -> Result<(), String> {
        SerfNode::respond_query(self, now, id, &payload).map_err(|e| e.to_string())
    }
    fn on_app_event(event: SerfEvent) -> Option<AgentEvent> {
        match event {
            SerfEvent::User(e) => {
                tracing::info!(
                    name = %crate::escape::esc(&e.name),
                    payload = %crate::escape::esc(log_payload(&e.payload)),
                    ltime = e.ltime,
                    coalesce = e.cc,
                    "serf user event"
                );
                return Some(AgentEvent::User {
                    name: e.name,
                    ltime: e.ltime,
                    payload: e.payload,
                    coalesce: e.cc,
                });
            }
            SerfEvent::Query(q) => {
                tracing::info!(
                    name = %crate::escape::esc(&q.name),
                    payload = %crate::escape::esc(log_payload(&q.payload)),
                    from = %crate::escape::esc(&q.source_node),
                    id = q.id,
                    ltime = q.ltime,
                    "serf query"
                );
                return Some(AgentEvent::Query {
                    id: q.id,
                    name: q.name,
                    ltime: q.ltime,
                    payload: q.payload,
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
    fn layer_figures(&self) -> LayerFigures {
        LayerFigures::Serf {
            counters: self.serf().counters().clone(),
            queue: self.serf().pending_broadcasts() as u64,
        }
    }
}

/// The answer of node kinds that take no queries.
fn no_queries(id: u64, _payload: Vec<u8>) -> Result<(), String> {
    Err(format!(
        "cannot respond to query {id}: only an agent run with --protocol serf answers Serf queries"
    ))
}

/// A payload for a log line: lossy UTF-8, at most 256 bytes of it.
fn log_payload(p: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&p[..p.len().min(256)])
}

fn ndb_error(e: swimnet_networkdb::NdbError) -> TableError {
    if let swimnet_networkdb::NdbError::NetworkNotJoined(nid) = e {
        return TableError::NotAttached(nid);
    }
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
    fn serf(&mut self, _now: Instant, _cmd: SerfCommand) -> Result<SerfReply, String> {
        Err(not_serf("networkdb"))
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
    fn layer_figures(&self) -> LayerFigures {
        let mut networks: Vec<NetworkFigures> = self
            .networks()
            .into_iter()
            .filter_map(|network| {
                let (entries, queue) = self.network_stats(&network)?;
                Some(NetworkFigures {
                    network,
                    entries: entries as u64,
                    queue: queue as u64,
                })
            })
            .collect();
        networks.sort_by(|a, b| a.network.cmp(&b.network));
        LayerFigures::NetworkDb {
            stats: self.stats().clone(),
            networks,
        }
    }

    fn restart_tables(&self, max_entries: usize) -> Option<RestartState> {
        Some(self.restart_state(max_entries))
    }
    fn restore_tables(&mut self, now: Instant, kept: RestartState) -> Option<RestoreReport> {
        Some(self.restore(now, kept))
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
            TableCommand::CheckAttached(nid) => done(self.check_attached(&nid)),
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
            TableCommand::ListWithFailed { nid, table } => Ok(TableReply::Entries(
                self.table_entries_with_failed(&nid, &table),
            )),
        }
    }
}
