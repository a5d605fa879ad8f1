//! [`SerfNode`]'s commands beyond membership: queries (user, ping and key
//! queries) and their answers, runtime tags, force-leave, and the bounded
//! list of recently received user events and queries.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swimnet_core::NodeState;

use super::{SerfEvent, SerfNode, MAX_RECENT_EVENTS};
use crate::delegate::{key_query_name, KeyOp, PING_QUERY};
use crate::error::{ForceLeaveError, TagsError};
use crate::messages::{
    ip_to_bytes, KeyRequest, Query, Relay, RelayHeader, SerfMessage, QUERY_FLAG_ACK,
};
use crate::query::{
    default_query_timeout, KeyReport, QueryError, QueryHandle, QueryParams, QueryStatus,
    MAX_QUERY_TIMEOUT,
};
use crate::INTERNAL_QUERY_PREFIX;

/// A received user event or query, kept for [`SerfNode::recent_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentEvent {
    /// Sequence number, from 1, growing by one per event.
    pub seq: u64,
    /// When it was received.
    pub at: Instant,
    /// [`SerfEvent::User`] or [`SerfEvent::Query`].
    pub event: SerfEvent,
}

impl SerfNode {
    /// Keeps `event` in the bounded recent list.
    pub(super) fn remember(&mut self, at: Instant, event: SerfEvent) {
        if self.recent.len() >= MAX_RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent_seq += 1;
        self.recent.push_back(RecentEvent {
            seq: self.recent_seq,
            at,
            event,
        });
    }

    /// The received user events and queries kept (at most
    /// [`MAX_RECENT_EVENTS`], oldest first) with a sequence number above
    /// `after` (0: all of them).
    pub fn recent_events(&self, after: u64) -> impl Iterator<Item = &RecentEvent> + '_ {
        self.recent.iter().filter(move |e| e.seq > after)
    }

    /// Members that are alive or suspect (memberlist's `NumMembers`):
    /// what a query expects at most and what a key query counts.
    pub fn live_members(&self) -> usize {
        self.core
            .members()
            .filter(|m| matches!(m.state, NodeState::Alive | NodeState::Suspect))
            .count()
    }

    /// Next random query id (splitmix64 over the node's seed).
    fn next_query_id(&mut self) -> u32 {
        self.query_ids = self.query_ids.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.query_ids;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        // Serf sends `uint32(rand.Int31())`: 31 random bits.
        ((z ^ (z >> 31)) as u32) & 0x7fff_ffff
    }

    /// Sends a user query to the cluster, as `serf query` does: it is
    /// gossiped to every node; those passing `params`' filters ack it (if
    /// asked) and may answer until it closes at now + timeout. This node
    /// handles it too (it shows up as a [`SerfEvent::Query`]). Follow it
    /// with [`SerfNode::query_status`]. Refuses, changing nothing, a name
    /// starting with `_serf_`, a tag filter that does not compile, a
    /// timeout over 10 minutes, a query over 1024 bytes, too many open
    /// queries, or a node that is leaving.
    pub fn query(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: &QueryParams,
    ) -> Result<QueryHandle, QueryError> {
        if name.starts_with(INTERNAL_QUERY_PREFIX) {
            return Err(QueryError::InternalName(name.to_string()));
        }
        self.send_query(now, name, payload, params, None)
    }

    /// Serf's reachability check: a `_serf_ping` query with acks asked of
    /// every node and no answers. Compare the acks of
    /// [`SerfNode::query_status`] with the member list once it finished.
    pub fn ping_query(
        &mut self,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<QueryHandle, QueryError> {
        let params = QueryParams {
            request_ack: true,
            timeout,
            ..QueryParams::default()
        };
        self.send_query(now, PING_QUERY, &[], &params, None)
    }

    /// Starts a cluster-wide key operation with Serf's own key queries
    /// (`_serf_install-key`, `_serf_use-key`, `_serf_remove-key`,
    /// `_serf_list-keys`), as `serf keys` does; this node applies it too.
    /// Read the outcome with [`SerfNode::key_report`]: the query finishes
    /// when every member answered or at its default timeout.
    pub fn start_key_query(
        &mut self,
        now: Instant,
        op: &KeyOp,
        relay_factor: u8,
        timeout: Option<Duration>,
    ) -> Result<QueryHandle, QueryError> {
        let key = match op {
            KeyOp::Install(k) | KeyOp::Use(k) | KeyOp::Remove(k) => k.clone(),
            KeyOp::List => Vec::new(),
        };
        let payload = KeyRequest { key }.encode();
        let params = QueryParams {
            relay_factor,
            timeout,
            ..QueryParams::default()
        };
        let handle =
            self.send_query(now, key_query_name(op), &payload, &params, Some(op.name()))?;
        self.key_queries
            .retain(|h| self.core.delegate().queries().status(*h).is_some());
        self.key_queries.push(handle);
        Ok(handle)
    }

    /// The next key query started with [`SerfNode::start_key_query`] that
    /// has finished, with its report (handed out once; the query stays
    /// readable with [`SerfNode::key_report`] until forgotten). Call it
    /// after inputs, as the agent's driver does.
    pub fn poll_key_report(&mut self) -> Option<(QueryHandle, KeyReport)> {
        let i = self
            .key_queries
            .iter()
            .position(|h| !matches!(self.key_report(*h), Some(r) if !r.finished))?;
        let handle = self.key_queries.remove(i);
        match self.key_report(handle) {
            Some(r) => Some((handle, r)),
            None => self.poll_key_report(),
        }
    }

    /// The outcome so far of a key query started with
    /// [`SerfNode::start_key_query`]; `None` for an unknown handle or a
    /// query that is not a key query.
    pub fn key_report(&self, handle: QueryHandle) -> Option<KeyReport> {
        let book = self.core.delegate().queries();
        let op = book.key_op(handle)?;
        Some(KeyReport::from_status(op, book.status(handle)?))
    }

    /// What a query of ours collected so far (acks, responses, finished);
    /// kept after it finished until [`SerfNode::forget_query`] (at most 64
    /// finished queries are kept, the oldest forgotten first).
    pub fn query_status(&self, handle: QueryHandle) -> Option<&QueryStatus> {
        self.core.delegate().queries().status(handle)
    }

    /// Forgets a finished query of ours once its results were read.
    pub fn forget_query(&mut self, handle: QueryHandle) {
        self.core.delegate_mut().queries_mut().forget(handle);
    }

    fn send_query(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: &QueryParams,
        key_op: Option<&'static str>,
    ) -> Result<QueryHandle, QueryError> {
        if self.leave_at.is_some() || self.core.delegate().is_leaving() {
            return Err(QueryError::Leaving);
        }
        let members = self.live_members();
        let timeout = match params.timeout {
            Some(t) if t > MAX_QUERY_TIMEOUT => return Err(QueryError::BadTimeout(t)),
            Some(t) if !t.is_zero() => t,
            _ => default_query_timeout(self.core.config().gossip_interval, members),
        };
        let filters = params.encode_filters()?;
        let me = self.core.config().advertise;
        let q = Query {
            ltime: 0,
            id: self.next_query_id(),
            addr: ip_to_bytes(me.ip()),
            port: me.port(),
            source_node: self.core.name().to_string(),
            filters,
            flags: if params.request_ack {
                QUERY_FLAG_ACK
            } else {
                0
            },
            relay_factor: params.relay_factor,
            timeout: i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX),
            name: name.to_string(),
            payload: payload.to_vec(),
        };
        let handle = self
            .core
            .delegate_mut()
            .send_query(now, me, q, members, key_op)?;
        self.after(now);
        Ok(handle)
    }

    /// Answers a received query (the `id` of its [`SerfEvent::Query`]),
    /// as Serf's `Query.Respond`: one answer per query, sent straight to
    /// the asker (and through `relay_factor` other members if the asker
    /// asked for relays). Refuses an unknown or already answered id, a
    /// query past its deadline, or an answer over 1024 bytes encoded.
    pub fn respond_query(
        &mut self,
        now: Instant,
        id: u64,
        payload: &[u8],
    ) -> Result<(), QueryError> {
        let me = self.core.name().to_string();
        let (to, raw, relay_factor) = self
            .core
            .delegate_mut()
            .queries_mut()
            .respond(now, id, &me, payload)?;
        self.send(now, to, &raw);
        self.relay_response(relay_factor, to, &raw, id);
        self.after(now);
        Ok(())
    }

    /// Serf's `relayResponse`: a copy of `raw` for `to`, wrapped in a relay
    /// message, through up to `relay_factor` alive members other than us
    /// that speak Serf protocol 5; nothing when the cluster is too small.
    pub(super) fn relay_response(
        &mut self,
        relay_factor: u8,
        to: SocketAddr,
        raw: &[u8],
        salt: u64,
    ) {
        let k = usize::from(relay_factor);
        if k == 0 || self.core.num_members() < k + 1 {
            return;
        }
        let relay = Relay {
            header: RelayHeader {
                dest_ip: ip_to_bytes(to.ip()),
                dest_port: i64::from(to.port()),
                dest_zone: String::new(),
                dest_name: String::new(),
            },
            inner: raw.to_vec(),
        }
        .encode();
        if relay.len() > self.core.delegate().config().query_response_size_limit {
            return;
        }
        let me = self.core.name().to_string();
        let via: Vec<SocketAddr> = self
            .core
            .members()
            .filter(|m| m.state == NodeState::Alive && m.vsn[4] >= 5 && *m.name != *me)
            .map(|m| m.addr)
            .collect();
        if via.is_empty() {
            return;
        }
        let start = (salt as usize) % via.len();
        for addr in via.iter().cycle().skip(start).take(k.min(via.len())) {
            self.core.send_user_packet(*addr, &relay);
        }
    }

    /// Replaces our tags at runtime, as `serf tags -set/-delete`: the new
    /// metadata is announced with a new incarnation. Tags over the 512-byte
    /// metadata limit are refused and nothing changes.
    pub fn set_tags(
        &mut self,
        now: Instant,
        tags: BTreeMap<String, String>,
    ) -> Result<(), TagsError> {
        if self.leave_at.is_some() || self.core.delegate().is_leaving() {
            return Err(TagsError::Leaving);
        }
        let old = self.core.delegate().tags().clone();
        let meta = self.core.delegate_mut().set_tags(tags)?;
        if self.core.set_meta(now, meta).is_err() {
            // Same size limit as ours, and not leaving: not expected; keep
            // both sides consistent anyway.
            let _ = self.core.delegate_mut().set_tags(old);
            return Err(TagsError::Leaving);
        }
        self.after(now);
        Ok(())
    }

    /// Serf's force-leave: a leave intent about `node` (normally a failed
    /// one) goes to every alive member and into gossip, so Serf nodes show
    /// it `left` and stop trying to reconnect (with `prune`, they also
    /// erase it at once). swimnet's own member table keeps memberlist's
    /// view (`failed` until reaped). An alive node refutes the intent.
    pub fn force_leave(
        &mut self,
        now: Instant,
        node: &str,
        prune: bool,
    ) -> Result<(), ForceLeaveError> {
        if node == self.core.name() {
            return Err(ForceLeaveError::OwnNode(node.to_string()));
        }
        if self.core.member_by_name(node).is_none() {
            return Err(ForceLeaveError::UnknownNode(node.to_string()));
        }
        let intent = self
            .core
            .delegate_mut()
            .force_leave_intent(now, node, prune);
        let live: Vec<SocketAddr> = self
            .core
            .members()
            .filter(|m| m.state == NodeState::Alive && *m.name != *self.core.name())
            .map(|m| m.addr)
            .collect();
        for addr in live {
            self.core.send_user_packet(addr, &intent);
        }
        self.after(now);
        Ok(())
    }
}
