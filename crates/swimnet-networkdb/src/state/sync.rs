//! Bulk sync (anti-entropy): the periodic round, building and answering
//! syncs, their deadlines, the reaper, and memberlist's push/pull state.

use super::*;

impl TableState {
    #[doc(hidden)]
    /// Periodic anti-entropy: every joined network not yet covered this round
    /// is synced with one random peer; a sync covers all networks shared
    /// with that peer. Peers with a sync still pending are skipped. With a
    /// `view`, the peer is a near one most of the time (see
    /// [`Self::gossip_tick`]); `None` chooses uniformly.
    pub fn bulk_sync_tick(&mut self, now: Instant, view: Option<&TopologyView>) {
        let mut covered: BTreeSet<String> = BTreeSet::new();
        for nid in self.networks() {
            if covered.contains(&nid) {
                continue;
            }
            let peers: Vec<(String, SocketAddr)> = self
                .peer_addrs(&nid)
                .into_iter()
                .filter(|(p, _)| !self.syncs.iter().any(|s| &s.peer == p))
                .collect();
            let Some((peer, addr)) = self.choose_peers(peers, 1, view, None).pop() else {
                continue;
            };
            let common: Vec<String> = self
                .networks()
                .into_iter()
                .filter(|n| {
                    self.attachments
                        .get(&peer)
                        .and_then(|a| a.get(n))
                        .is_some_and(|a| !a.leaving)
                })
                .collect();
            covered.extend(common.iter().cloned());
            self.start_bulk_sync(now, &peer, addr, common, None);
        }
    }

    pub(super) fn start_bulk_sync(
        &mut self,
        now: Instant,
        peer: &str,
        addr: SocketAddr,
        networks: Vec<String>,
        join_network: Option<&str>,
    ) {
        let (ltime, msg) = self.build_bulk_sync(now, networks, true, peer);
        self.syncs.push(PendingSync {
            peer: peer.to_string(),
            ltime,
            deadline: now + self.cfg.bulk_sync_timeout,
            join_network: join_network.map(str::to_string),
        });
        self.stats.bulk_syncs_sent += 1;
        self.outbox.push_back(Outgoing::Stream(addr, msg));
    }

    pub(super) fn build_bulk_sync(
        &mut self,
        now: Instant,
        networks: Vec<String>,
        unsolicited: bool,
        receiver: &str,
    ) -> (u64, Vec<u8>) {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        // Attachments first (moby PR #53437), so the receiver learns who is
        // attached before it sees their entries. Not about the receiver.
        for nid in &networks {
            if let Some(n) = self.local.get(nid) {
                parts.push(
                    NetworkEvent {
                        r#type: if n.leaving {
                            NetworkEventType::Leave
                        } else {
                            NetworkEventType::Join
                        } as i32,
                        l_time: n.ltime,
                        node_name: self.name.clone(),
                        network_id: nid.clone(),
                    }
                    .encode_gossip(),
                );
            }
            for (node, nets) in &self.attachments {
                if node == receiver {
                    continue;
                }
                if let Some(a) = nets.get(nid) {
                    parts.push(
                        NetworkEvent {
                            r#type: if a.leaving {
                                NetworkEventType::Leave
                            } else {
                                NetworkEventType::Join
                            } as i32,
                            l_time: a.ltime,
                            node_name: node.clone(),
                            network_id: nid.clone(),
                        }
                        .encode_gossip(),
                    );
                }
            }
        }
        for nid in &networks {
            let start = (nid.clone(), String::new(), Arc::from(""));
            for (k, e) in self.entries.range(start..).take_while(|(k, _)| &k.0 == nid) {
                let residual = match (e.deleting, e.reap_at) {
                    (true, Some(at)) => at.saturating_duration_since(now).as_secs().max(1),
                    (true, None) => self.cfg.reap_entry_interval.as_secs(),
                    _ => 0,
                };
                parts.push(
                    TableEvent {
                        r#type: if e.deleting {
                            TableEventType::Delete
                        } else {
                            TableEventType::Create
                        } as i32,
                        l_time: e.ltime,
                        node_name: e.owner.clone(),
                        network_id: k.0.clone(),
                        table_name: k.1.clone(),
                        key: k.2.to_string(),
                        value: e.value.clone(),
                        residual_reap_time: residual.min(i32::MAX as u64) as i32,
                    }
                    .encode_gossip(),
                );
            }
        }
        let ltime = increment(&mut self.table_clock);
        let msg = BulkSyncMessage {
            l_time: ltime,
            unsolicited,
            node_name: self.name.clone(),
            networks,
            payload: wire::encode_compound(&parts),
        };
        (ltime, msg.encode_gossip())
    }

    #[doc(hidden)]
    /// Gives up on bulk syncs past their deadline; a network whose join
    /// syncs are all done or given up is marked in sync.
    pub fn expire_syncs(&mut self, now: Instant) {
        let mut finished = Vec::new();
        self.syncs.retain(|s| {
            if s.deadline <= now {
                finished.push(s.join_network.clone());
                false
            } else {
                true
            }
        });
        self.stats.bulk_sync_timeouts += finished.len() as u64;
        for nid in finished.into_iter().flatten() {
            self.maybe_in_sync(&nid);
        }
    }

    #[doc(hidden)]
    /// The earliest pending bulk-sync deadline.
    pub fn next_sync_deadline(&self) -> Option<Instant> {
        self.syncs.iter().map(|s| s.deadline).min()
    }

    pub(super) fn maybe_in_sync(&mut self, nid: &str) {
        if self
            .syncs
            .iter()
            .any(|s| s.join_network.as_deref() == Some(nid))
        {
            return;
        }
        if let Some(n) = self.local.get_mut(nid) {
            if !n.leaving {
                n.in_sync = true;
            }
        }
    }

    #[doc(hidden)]
    /// Drops expired tombstones, hidden entries of failed nodes, held
    /// events, left networks and forgotten nodes.
    pub fn reap(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| e.reap_at.is_none_or(|at| at > now));
        let horizon = self.cfg.reap_entry_interval;
        let mut dropped = 0u64;
        self.held.retain(|_, v| {
            let before = v.len();
            v.retain(|(at, _)| now.saturating_duration_since(*at) < horizon);
            dropped += (before - v.len()) as u64;
            !v.is_empty()
        });
        self.stats.held_dropped += dropped;
        self.recount_held();
        self.local
            .retain(|_, n| !(n.leaving && n.reap_at.is_some_and(|at| at <= now)));
        for nets in self.attachments.values_mut() {
            nets.retain(|_, a| !(a.leaving && a.reap_at.is_some_and(|at| at <= now)));
        }
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, i)| *n != &self.name && i.reap_at.is_some_and(|at| at <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for n in gone {
            self.nodes.remove(&n);
            self.attachments.remove(&n);
            self.entries.remove_owner(&n, None);
        }
        self.attachments.retain(|_, nets| !nets.is_empty());
        self.recount_attachments();
        self.forget_old_answers(now);
    }

    pub(super) fn recount_held(&mut self) {
        self.held_count = self.held.values().map(Vec::len).sum();
    }

    pub(super) fn handle_bulk_sync(&mut self, now: Instant, from: SocketAddr, b: BulkSyncMessage) {
        // The answer to a sync this node asked a member for may move the
        // clock any distance (a fresh node catching up); anything else only
        // within the window.
        let ours = !b.unsolicited && self.syncs.iter().any(|s| s.peer == b.node_name);
        let clock_ok = if ours {
            guard::catch_up(&mut self.table_clock, b.l_time)
        } else {
            witness(&mut self.table_clock, b.l_time)
        };
        if !clock_ok {
            self.stats.clock_far_future += 1;
            return;
        }
        if b.node_name == self.name || !self.bulk_sync_sender_known(&b.node_name) {
            return;
        }
        if !b.unsolicited && b.networks.is_empty() {
            self.handle_backlog_push(now, b);
            return;
        }
        self.stats.bulk_syncs_received += 1;
        // Every pending sync to that peer older than this message is answered.
        let mut done = Vec::new();
        let before = self.syncs.len();
        self.syncs.retain(|s| {
            if s.peer == b.node_name && s.ltime < b.l_time {
                done.push(s.join_network.clone());
                false
            } else {
                true
            }
        });
        self.stats.bulk_syncs_completed += (before - self.syncs.len()) as u64;
        let attached_before = self.sender_attachments(&b);
        self.apply_bulk_attachments(now, &b, Source::Bulk);
        if b.unsolicited && attached_before != self.sender_attachments(&b) {
            // The sender (re)joined some of these networks since it was
            // last answered (a restart, or a new attachment): it needs
            // the answer now, whatever the rate limit.
            self.answered.retain(|(peer, _), _| *peer != b.node_name);
        }
        for nid in done.into_iter().flatten() {
            self.maybe_in_sync(&nid);
        }
        if b.unsolicited {
            let Some(nets) = self.networks_to_answer(now, &b.node_name, &b.networks) else {
                return;
            };
            let addr = self
                .nodes
                .get(&b.node_name)
                .and_then(|n| n.addr)
                .unwrap_or(from);
            let (_, msg) = self.build_bulk_sync(now, nets, false, &b.node_name);
            self.stats.bulk_syncs_sent += 1;
            self.outbox.push_back(Outgoing::Stream(addr, msg));
        }
    }

    /// Applies the network events of a bulk sync's payload (attachments
    /// first, so its entries find their owners attached), relaying those
    /// that changed something as gossip would, then its table events;
    /// undecodable parts are counted and skipped. (A joiner's bulk sync
    /// carries its own attachment: not relaying it left the nodes its few
    /// own transmissions missed waiting for the next push/pull.)
    ///
    /// The payload is read twice, attachments on the first pass and table
    /// events on the second, so nothing of it is collected in memory.
    pub(super) fn apply_bulk_attachments(
        &mut self,
        now: Instant,
        b: &BulkSyncMessage,
        src: Source,
    ) {
        b.for_each_payload_message(&mut |m| match m {
            Ok(Message::NetworkEvent(ev)) => {
                if self.handle_network_event(now, &ev) {
                    self.queue_network_event(&ev);
                }
            }
            Ok(_) => {}
            Err(e) => self.count_decode_error(&e),
        });
        b.for_each_payload_message(&mut |m| {
            if let Ok(Message::TableEvent(ev)) = m {
                let src = match src {
                    Source::Push
                        if self.peer_addrs(&ev.network_id).len() >= self.cfg.backlog_push_peers =>
                    {
                        Source::Bulk
                    }
                    other => other,
                };
                self.process_table_event(now, ev, src);
            }
        });
    }

    /// The Lamport times of the sender's attachments to the networks of
    /// bulk sync `b`, as this node knows them.
    fn sender_attachments(&self, b: &BulkSyncMessage) -> Vec<Option<u64>> {
        let nets = self.attachments.get(&b.node_name);
        b.networks
            .iter()
            .map(|nid| nets.and_then(|n| n.get(nid)).map(|a| a.ltime))
            .collect()
    }

    pub(super) fn count_decode_error(&mut self, e: &wire::DecodeError) {
        self.stats.decode_errors += 1;
        if matches!(e, wire::DecodeError::TooManyParts { .. }) {
            self.stats.compounds_too_many_parts += 1;
        }
    }

    /// A backlog push (see [`Self::maybe_push_backlog`]): the sender's own
    /// events, sent once to (up to `backlog_push_peers` of) the network's
    /// peers. Applied like bulk-synced events; relayed only when the
    /// network is larger than a push reaches. Answers no pending sync.
    pub(super) fn handle_backlog_push(&mut self, now: Instant, b: BulkSyncMessage) {
        self.stats.backlog_pushes_received += 1;
        self.apply_bulk_attachments(now, &b, Source::Push);
    }

    /// This node's networks and the attachments it knows, for memberlist's
    /// push/pull (`join`: a join exchange, which bumps the network clock).
    pub(super) fn push_pull_state(&mut self, join: bool) -> NetworkPushPull {
        if join {
            let t = increment(&mut self.network_clock);
            for n in self.local.values_mut() {
                n.ltime = t;
            }
        }
        let mut networks = Vec::new();
        for (nid, n) in &self.local {
            networks.push(wire::NetworkEntry {
                network_id: nid.clone(),
                l_time: n.ltime,
                node_name: self.name.clone(),
                leaving: n.leaving,
            });
        }
        for (node, nets) in &self.attachments {
            for (nid, a) in nets {
                networks.push(wire::NetworkEntry {
                    network_id: nid.clone(),
                    l_time: a.ltime,
                    node_name: node.clone(),
                    leaving: a.leaving,
                });
            }
        }
        NetworkPushPull {
            l_time: self.network_clock,
            networks,
            node_name: self.name.clone(),
        }
    }
}
