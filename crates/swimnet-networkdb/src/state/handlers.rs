//! Incoming table events and the dispatch of every NetworkDB message.

use super::*;

impl TableState {
    pub(super) fn owner_attachment(&self, owner: &str, nid: &str) -> Option<&Attachment> {
        self.attachments.get(owner).and_then(|a| a.get(nid))
    }

    /// Applies a table event; returns whether to relay it.
    pub(super) fn handle_table_event(
        &mut self,
        now: Instant,
        ev: &TableEvent,
        src: Source,
    ) -> bool {
        if ev.node_name == self.name {
            return self.on_own_event(now, ev);
        }
        if !witness(&mut self.table_clock, ev.l_time) {
            self.stats.clock_far_future += 1;
            return false;
        }
        let Some(net) = self.local.get(&ev.network_id) else {
            return false;
        };
        if net.leaving {
            return false;
        }
        match self.owner_attachment(&ev.node_name, &ev.network_id) {
            Some(a) if !a.leaving => {}
            Some(_) => return false,
            None => {
                if matches!(
                    self.nodes.get(&ev.node_name).map(|n| n.state),
                    Some(PeerState::Left)
                ) {
                    return false;
                }
                // Hold it until the owner's attachment is known.
                if self.held_count >= self.cfg.max_held_events {
                    self.stats.held_dropped += 1;
                    return false;
                }
                self.held
                    .entry((ev.node_name.clone(), ev.network_id.clone()))
                    .or_default()
                    .push((now, ev.clone()));
                self.held_count += 1;
                self.stats.table_events_held += 1;
                return false;
            }
        }
        let deleting = TableEventType::try_from(ev.r#type) == Ok(TableEventType::Delete);
        let k = (
            ev.network_id.clone(),
            ev.table_name.clone(),
            Arc::from(ev.key.as_str()),
        );
        let existing = self.entries.get(&k);
        let known = existing.is_some();
        if let Some(e) = existing {
            let new = (
                ev.l_time,
                ev.node_name.as_str(),
                deleting,
                ev.value.as_slice(),
            );
            let old = (e.ltime, e.owner.as_str(), e.deleting, e.value.as_slice());
            if new <= old {
                self.stats.table_events_stale += 1;
                return false;
            }
        }
        let was_live = existing.is_some_and(|e| !e.deleting);
        if !self.remote_event_within_limits(ev, !known) {
            return false;
        }
        if !deleting
            && !was_live
            && self.live_count(&ev.network_id, &ev.table_name) >= self.cfg.max_entries_per_table
        {
            self.stats.table_full_drops += 1;
            return false;
        }
        let owner_failed = matches!(
            self.nodes.get(&ev.node_name).map(|n| n.state),
            Some(PeerState::Failed)
        );
        let reap_at = if deleting {
            let secs = if ev.residual_reap_time > 0 {
                Duration::from_secs(ev.residual_reap_time as u64)
            } else {
                self.cfg.reap_entry_interval
            };
            Some(now + secs)
        } else if owner_failed {
            Some(now + self.cfg.reap_entry_interval)
        } else {
            None
        };
        self.entries.insert(
            k,
            Entry {
                owner: ev.node_name.clone(),
                ltime: ev.l_time,
                value: ev.value.clone(),
                deleting,
                reap_at,
            },
        );
        self.stats.table_events_applied += 1;
        let Some(net) = self.local.get(&ev.network_id) else {
            return false;
        };
        if !net.in_sync {
            return false;
        }
        match src {
            Source::Push => return false,
            Source::Bulk if net.relay.len() >= self.cfg.max_relay_queue_on_sync => return false,
            _ => {}
        }
        if deleting && !known {
            let residual = u64::try_from(ev.residual_reap_time).unwrap_or(0);
            return residual > self.cfg.reap_entry_interval.as_secs() / 6;
        }
        true
    }

    pub(super) fn process_table_event(&mut self, now: Instant, ev: TableEvent, src: Source) {
        let k = (
            ev.network_id.clone(),
            ev.table_name.clone(),
            Arc::from(ev.key.as_str()),
        );
        if self.watched(vec![k], |s| s.handle_table_event(now, &ev, src)) {
            let name = format!("{}\0{}", ev.table_name, ev.key);
            if let Some(net) = self.local.get_mut(&ev.network_id) {
                net.relay.queue(Some(name.as_bytes()), ev.encode_gossip());
                self.stats.table_events_relayed += 1;
                self.bound_relay_queue(&ev.network_id);
            }
        }
    }

    /// Handles every message in `buf`, paying its compound parts from
    /// `budget` when it came in a datagram (see
    /// [`wire::for_each_message_in_budget`]). A bulk sync in a datagram is
    /// dropped and counted (`NdbStats::bulk_syncs_in_datagram`): Docker and
    /// this crate send them over TCP only, and its payload would be a second
    /// walk the datagram's budget does not pay for.
    pub(super) fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
        budget: Option<&mut DecodeBudget>,
    ) {
        let in_datagram = budget.is_some();
        let mut handle = |m| match m {
            Ok(Message::NodeEvent(ev)) => {
                if self.handle_node_event(now, &ev) {
                    self.queue_node_event(&ev);
                }
            }
            Ok(Message::NetworkEvent(ev)) => {
                if self.handle_network_event(now, &ev) {
                    self.queue_network_event(&ev);
                }
            }
            Ok(Message::TableEvent(ev)) => self.process_table_event(now, ev, Source::Gossip),
            Ok(Message::BulkSync(_)) if in_datagram => self.stats.bulk_syncs_in_datagram += 1,
            Ok(Message::BulkSync(b)) => self.handle_bulk_sync(now, from, b),
            Ok(Message::PushPull(_)) | Ok(Message::Compound(_)) => {}
            Err(e) => self.count_decode_error(&e),
        };
        match budget {
            Some(budget) => wire::for_each_message_in_budget(buf, budget, &mut handle),
            None => wire::for_each_message(buf, &mut handle),
        }
    }
}
