//! Membership: memberlist's join/leave notifications and NetworkDB's
//! node and network events.

use super::*;

impl TableState {
    #[doc(hidden)]
    /// memberlist reported `node` alive (join, or back from dead/left).
    pub fn on_member_join(&mut self, now: Instant, node: &Node) {
        if *node.name == *self.name {
            return;
        }
        let owners: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|(n, i)| **n == *node.name || i.addr == Some(node.addr))
            .map(|(n, _)| n.clone())
            .collect();
        let keys = owners
            .iter()
            .flat_map(|o| self.entries.keys_of(o, None))
            .collect();
        self.watched(keys, |s| s.on_member_join_inner(now, node));
    }

    pub(super) fn on_member_join_inner(&mut self, now: Instant, node: &Node) {
        let name = node.name.to_string();
        // Reincarnation: the same address under another name retires the old one.
        let stale: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, i)| {
                **n != name
                    && **n != self.name
                    && i.addr == Some(node.addr)
                    && i.state != PeerState::Left
            })
            .map(|(n, _)| n.clone())
            .collect();
        for old in stale {
            self.mark_left(&old, now);
        }
        let info = self.nodes.entry(name.clone()).or_insert(NodeInfo {
            addr: Some(node.addr),
            state: PeerState::Active,
            ltime: 0,
            reap_at: None,
        });
        info.addr = Some(node.addr);
        let was_active = info.state == PeerState::Active;
        info.state = PeerState::Active;
        self.release_parked_attachments(now, &name);
        let Some(info) = self.nodes.get_mut(&name) else {
            return;
        };
        if !was_active {
            info.state = PeerState::Active;
            info.reap_at = None;
            // Restore the suspended entries.
            self.entries.set_live_reap_of(&name, None);
            // Like Docker's reconnectNode: resynchronise the shared networks
            // with the returning node at once instead of waiting for the
            // periodic bulk sync.
            let common: Vec<String> = self
                .networks()
                .into_iter()
                .filter(|n| {
                    self.attachments
                        .get(&name)
                        .and_then(|a| a.get(n))
                        .is_some_and(|a| !a.leaving)
                })
                .collect();
            if !common.is_empty() && !self.syncs.iter().any(|s| s.peer == name) {
                self.start_bulk_sync(now, &name, node.addr, common, None);
            }
        }
    }

    #[doc(hidden)]
    /// memberlist reported `node` dead or left. Without a prior NodeEvent
    /// LEAVE the node is *failed*: suspended, its entries hidden and set to
    /// expire after [`NdbConfig::reap_entry_interval`].
    pub fn on_member_leave(&mut self, now: Instant, node: &Node) {
        let name = node.name.to_string();
        if name == self.name {
            return;
        }
        let keys = self.entries.keys_of(&name, None);
        self.watched(keys, |s| s.on_member_leave_inner(now, &name));
    }

    pub(super) fn on_member_leave_inner(&mut self, now: Instant, name: &str) {
        let reap = now + self.cfg.reap_entry_interval;
        let node_reap = now + self.cfg.node_reap_interval;
        if let Some(info) = self.nodes.get_mut(name) {
            if info.state == PeerState::Active {
                info.state = PeerState::Failed;
                info.reap_at = Some(node_reap);
                self.entries.set_live_reap_of(name, Some(reap));
            }
        }
    }

    pub(super) fn mark_left(&mut self, name: &str, now: Instant) {
        let reap = now + self.cfg.node_reap_interval;
        if let Some(info) = self.nodes.get_mut(name) {
            info.state = PeerState::Left;
            info.reap_at = Some(reap);
        }
        self.entries.remove_owner(name, None);
        self.attachments.remove(name);
        self.recount_attachments();
        self.held.retain(|(o, _), _| o != name);
        self.recount_held();
    }

    // ------------------------------------------------------------ handlers

    pub(super) fn handle_node_event(&mut self, now: Instant, ev: &NodeEvent) -> bool {
        let keys = self.entries.keys_of(&ev.node_name, None);
        self.watched(keys, |s| s.handle_node_event_inner(now, ev))
    }

    pub(super) fn handle_node_event_inner(&mut self, now: Instant, ev: &NodeEvent) -> bool {
        if !witness(&mut self.network_clock, ev.l_time) {
            self.stats.clock_far_future += 1;
            return false;
        }
        if ev.node_name == self.name {
            return false;
        }
        let Some(info) = self.nodes.get_mut(&ev.node_name) else {
            return false;
        };
        if ev.l_time <= info.ltime {
            return false;
        }
        info.ltime = ev.l_time;
        match NodeEventType::try_from(ev.r#type) {
            Ok(NodeEventType::Leave) => {
                let name = ev.node_name.clone();
                self.mark_left(&name, now);
            }
            _ => {
                if info.state != PeerState::Active && info.addr.is_some() {
                    info.state = PeerState::Active;
                    info.reap_at = None;
                    let name = ev.node_name.clone();
                    self.entries.set_live_reap_of(&name, None);
                }
            }
        }
        true
    }

    pub(super) fn handle_network_event(&mut self, now: Instant, ev: &NetworkEvent) -> bool {
        if !witness(&mut self.network_clock, ev.l_time) {
            self.stats.clock_far_future += 1;
            return false;
        }
        if ev.node_name == self.name {
            return false;
        }
        let leave = NetworkEventType::try_from(ev.r#type) == Ok(NetworkEventType::Leave);
        if matches!(
            self.nodes.get(&ev.node_name).map(|n| n.state),
            Some(PeerState::Left)
        ) {
            return false;
        }
        if !self.attachment_owner_known(ev) {
            return false;
        }
        let known = self
            .attachments
            .get(&ev.node_name)
            .is_some_and(|n| n.contains_key(&ev.network_id));
        if !known && (leave || !self.attachment_room(&ev.node_name)) {
            return false;
        }
        let was_attached = known
            && self
                .attachments
                .get(&ev.node_name)
                .and_then(|n| n.get(&ev.network_id))
                .is_some_and(|a| !a.leaving);
        let reap = now + self.cfg.reap_network_interval;
        let nets = self.attachments.entry(ev.node_name.clone()).or_default();
        match nets.get_mut(&ev.network_id) {
            Some(a) => {
                if a.ltime >= ev.l_time {
                    return false;
                }
                a.ltime = ev.l_time;
                a.leaving = leave;
                a.reap_at = leave.then_some(reap);
            }
            None => {
                nets.insert(
                    ev.network_id.clone(),
                    Attachment {
                        ltime: ev.l_time,
                        leaving: false,
                        reap_at: None,
                    },
                );
                self.attachment_count += 1;
            }
        }
        if was_attached == leave {
            self.record_network_change(&ev.network_id, &ev.node_name, !leave, ChangeOrigin::Remote);
        }
        let key = (ev.node_name.clone(), ev.network_id.clone());
        if leave {
            // Hard-delete the leaver's entries in that network, drop held ones.
            let (node, nid) = (&ev.node_name, &ev.network_id);
            let keys = self.entries.keys_of(node, Some(nid));
            self.watched(keys, |s| s.entries.remove_owner(node, Some(nid)));
            if let Some(v) = self.held.remove(&key) {
                self.stats.held_dropped += v.len() as u64;
            }
            self.recount_held();
        } else if let Some(v) = self.held.remove(&key) {
            self.recount_held();
            for (_, tev) in v {
                self.stats.held_released += 1;
                self.process_table_event(now, tev, Source::Gossip);
            }
        }
        true
    }
}
