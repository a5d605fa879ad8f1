//! Local commands: network joins and leaves, entry writes.

use super::*;

impl TableState {
    #[doc(hidden)]
    /// Queues a NodeEvent about this node (JOIN on cluster join, LEAVE before leaving).
    pub fn send_node_event(&mut self, kind: NodeEventType) {
        let ltime = increment(&mut self.network_clock);
        if let Some(me) = self.nodes.get_mut(&self.name) {
            me.ltime = ltime;
        }
        let ev = NodeEvent {
            r#type: kind as i32,
            l_time: ltime,
            node_name: self.name.clone(),
        };
        self.queue_node_event(&ev);
    }

    /// Queues a node event for the cluster, replacing any queued one about
    /// the same node (only the newest matters: it was applied last).
    pub(super) fn queue_node_event(&mut self, ev: &NodeEvent) {
        let name = format!("node\0{}", ev.node_name);
        self.broadcasts
            .queue(Some(name.as_bytes()), ev.encode_gossip());
    }

    pub(super) fn queue_network_event(&mut self, ev: &NetworkEvent) {
        let name = format!("net\0{}\0{}", ev.network_id, ev.node_name);
        self.broadcasts
            .queue(Some(name.as_bytes()), ev.encode_gossip());
    }

    /// Docker's `JoinNetwork`: attach, announce, and bulk sync with every
    /// known peer of the network (without waiting for anything).
    pub fn join_network(&mut self, now: Instant, nid: &str) -> Result<(), NdbError> {
        if self.local.get(nid).is_some_and(|n| !n.leaving) {
            return Err(NdbError::AlreadyJoined(nid.into()));
        }
        let ltime = increment(&mut self.network_clock);
        let mult = self.cfg.retransmit_mult;
        let net = self
            .local
            .entry(nid.to_string())
            .or_insert_with(|| LocalNetwork {
                ltime,
                leaving: false,
                reap_at: None,
                in_sync: false,
                own: TransmitLimitedQueue::new(mult),
                relay: TransmitLimitedQueue::new(mult),
                near_walk: NearRotation::default(),
            });
        net.ltime = ltime;
        net.leaving = false;
        net.reap_at = None;
        net.in_sync = false;
        self.queue_network_event(&NetworkEvent {
            r#type: NetworkEventType::Join as i32,
            l_time: ltime,
            node_name: self.name.clone(),
            network_id: nid.to_string(),
        });
        let me = self.name.clone();
        self.record_network_change(nid, &me, true, ChangeOrigin::Local);
        let peers = self.peer_addrs(nid);
        if peers.is_empty() {
            if let Some(n) = self.local.get_mut(nid) {
                n.in_sync = true;
            }
        }
        for (peer, addr) in peers {
            self.start_bulk_sync(now, &peer, addr, vec![nid.to_string()], Some(nid));
        }
        Ok(())
    }

    /// Docker's `LeaveNetwork` (2025+): own entries become tombstones with
    /// fresh times, others' entries are dropped, a LEAVE is announced.
    pub fn leave_network(&mut self, now: Instant, nid: &str) -> Result<(), NdbError> {
        if self.local.get(nid).is_none_or(|n| n.leaving) {
            return Err(NdbError::NetworkNotJoined(nid.into()));
        }
        let keys = self
            .entries
            .range((nid.to_string(), String::new(), Arc::from(""))..)
            .take_while(|(k, _)| k.0 == nid)
            .map(|(k, _)| k.clone())
            .collect();
        self.watched(keys, |s| s.leave_network_inner(now, nid));
        Ok(())
    }

    pub(super) fn leave_network_inner(&mut self, now: Instant, nid: &str) {
        let ltime = increment(&mut self.network_clock);
        let reap_net = now + self.cfg.reap_network_interval;
        if let Some(n) = self.local.get_mut(nid) {
            n.ltime = ltime;
            n.leaving = true;
            n.in_sync = false;
            n.reap_at = Some(reap_net);
            n.own.clear();
            n.relay.clear();
        }
        let keys: Vec<EntryKey> = self
            .entries
            .range((nid.to_string(), String::new(), Arc::from(""))..)
            .take_while(|(k, _)| k.0 == nid)
            .map(|(k, _)| k.clone())
            .collect();
        let reap = now + self.cfg.reap_entry_interval;
        for k in keys {
            let mine = self.entries.get(&k).is_some_and(|e| e.owner == self.name);
            if mine {
                let t = increment(&mut self.table_clock);
                if let Some(e) = self.entries.get(&k).filter(|e| !e.deleting) {
                    let tomb = Entry {
                        ltime: t,
                        deleting: true,
                        reap_at: Some(reap),
                        ..e.clone()
                    };
                    self.entries.insert(k, tomb);
                }
            } else {
                self.entries.remove(&k);
            }
        }
        self.held.retain(|(_, n), v| {
            if n == nid {
                v.clear();
            }
            !v.is_empty()
        });
        self.recount_held();
        self.syncs
            .retain(|s| s.join_network.as_deref() != Some(nid));
        self.queue_network_event(&NetworkEvent {
            r#type: NetworkEventType::Leave as i32,
            l_time: ltime,
            node_name: self.name.clone(),
            network_id: nid.to_string(),
        });
        let me = self.name.clone();
        self.record_network_change(nid, &me, false, ChangeOrigin::Local);
    }

    pub(super) fn check_kv(&self, key: &str, value: &[u8]) -> Result<(), NdbError> {
        if key.is_empty() || key.len() > self.cfg.max_key_len {
            return Err(NdbError::BadKey {
                len: key.len(),
                max: self.cfg.max_key_len,
            });
        }
        if value.len() > self.cfg.max_value_len {
            return Err(NdbError::ValueTooLarge {
                len: value.len(),
                max: self.cfg.max_value_len,
            });
        }
        Ok(())
    }

    /// `Ok` when this node is attached to `nid` (joined, not leaving),
    /// otherwise [`NdbError::NetworkNotJoined`] (kind
    /// [`super::NdbErrorKind::NotAttached`]). Call it before reading a
    /// network's tables or peers when "not attached" must not look like an
    /// empty network; changes nothing.
    pub fn check_attached(&self, nid: &str) -> Result<(), NdbError> {
        if self.local.get(nid).is_some_and(|n| !n.leaving) {
            Ok(())
        } else {
            Err(NdbError::NetworkNotJoined(nid.into()))
        }
    }

    pub(super) fn gossip_budget(&self) -> usize {
        self.cfg
            .packet_buffer_size
            .saturating_sub(PACKET_OVERHEAD + COMPOUND_PART_OVERHEAD)
    }

    /// Docker's `CreateEntry`. Allowed over a tombstone.
    pub fn create_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), NdbError> {
        self.check_attached(nid)?;
        self.check_kv(key, value)?;
        let k = (nid.to_string(), table.to_string(), Arc::from(key));
        if let Some(e) = self.entries.get(&k) {
            if !e.deleting && self.owner_visible(&e.owner) {
                return Err(NdbError::EntryExists {
                    table: table.into(),
                    nid: nid.into(),
                    key: key.into(),
                });
            }
        }
        self.check_room(&k)?;
        self.local_write(now, k, TableEventType::Create, value.to_vec())
    }

    /// Whether a new live entry `k` fits: the tables per network, the
    /// stored records and the live entries of its table.
    pub(super) fn check_room(&self, k: &EntryKey) -> Result<(), NdbError> {
        let (nid, table) = (k.0.as_str(), k.1.as_str());
        if !self.entries.has_table(nid, table)
            && self.entries.table_count(nid) >= self.cfg.max_tables_per_network
        {
            return Err(NdbError::TooManyTables {
                table: table.into(),
                nid: nid.into(),
                max: self.cfg.max_tables_per_network,
            });
        }
        if !self.entries.contains_key(k) && self.entries.len() >= self.cfg.max_entries {
            return Err(NdbError::StoreFull {
                max: self.cfg.max_entries,
            });
        }
        if self.live_count(nid, table) >= self.cfg.max_entries_per_table {
            return Err(NdbError::TableFull {
                table: table.into(),
                nid: nid.into(),
                max: self.cfg.max_entries_per_table,
            });
        }
        Ok(())
    }

    /// Creates the entry, or updates it when a live one is visible (the
    /// agent's `put`): [`Self::update_entry`] if [`Self::get_entry`] finds
    /// it, else [`Self::create_entry`], with their errors.
    pub fn put_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), NdbError> {
        if self.get_entry(nid, table, key).is_ok() {
            self.update_entry(now, nid, table, key, value)
        } else {
            self.create_entry(now, nid, table, key, value)
        }
    }

    /// Docker's `UpdateEntry`: only the owner may update a live entry.
    pub fn update_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), NdbError> {
        self.check_attached(nid)?;
        self.check_kv(key, value)?;
        let k = (nid.to_string(), table.to_string(), Arc::from(key));
        self.check_own_live(&k, |table, nid, key| NdbError::UpdateMissing {
            table,
            nid,
            key,
        })?;
        self.local_write(now, k, TableEventType::Update, value.to_vec())
    }

    /// Docker's `DeleteEntry`: leaves a tombstone for the reap interval.
    pub fn delete_entry(
        &mut self,
        now: Instant,
        nid: &str,
        table: &str,
        key: &str,
    ) -> Result<(), NdbError> {
        self.check_attached(nid)?;
        let k = (nid.to_string(), table.to_string(), Arc::from(key));
        self.check_own_live(&k, |table, nid, key| NdbError::DeleteMissing {
            table,
            nid,
            key,
        })?;
        self.local_write(now, k, TableEventType::Delete, Vec::new())
    }

    pub(super) fn local_write(
        &mut self,
        now: Instant,
        k: EntryKey,
        kind: TableEventType,
        value: Vec<u8>,
    ) -> Result<(), NdbError> {
        let deleting = kind == TableEventType::Delete;
        let ltime = self.table_clock.saturating_add(1);
        let ev = TableEvent {
            r#type: kind as i32,
            l_time: ltime,
            node_name: self.name.clone(),
            network_id: k.0.clone(),
            table_name: k.1.clone(),
            key: k.2.to_string(),
            value: value.clone(),
            residual_reap_time: if deleting {
                self.cfg.reap_entry_interval.as_secs().min(i32::MAX as u64) as i32
            } else {
                0
            },
        };
        let bytes = ev.encode_gossip();
        let budget = self.gossip_budget();
        if bytes.len() > budget {
            return Err(NdbError::ValueTooLarge {
                len: value.len(),
                max: budget.saturating_sub(bytes.len() - value.len()),
            });
        }
        let prev = self.cfg.report_local_changes.then(|| self.visible(&k));
        self.table_clock = ltime;
        self.entries.insert(
            k.clone(),
            Entry {
                owner: self.name.clone(),
                ltime,
                value,
                deleting,
                reap_at: deleting.then(|| now + self.cfg.reap_entry_interval),
            },
        );
        if let Some(net) = self.local.get_mut(&k.0) {
            let name = format!("{}\0{}", k.1, k.2);
            net.own.queue(Some(name.as_bytes()), bytes);
        }
        if let Some(prev) = prev {
            let value = self.visible(&k);
            self.record_change(k, prev, value, ChangeOrigin::Local);
        }
        Ok(())
    }

    /// Checks that entry `k` is live, visible and owned by this node, the
    /// condition for updating or deleting it: another owner's entry gives
    /// [`NdbError::NotOwner`], a missing, deleted or hidden one `missing`.
    fn check_own_live(
        &self,
        k: &super::EntryKey,
        missing: impl FnOnce(String, String, String) -> NdbError,
    ) -> Result<(), NdbError> {
        let (nid, table, key) = (&k.0, &k.1, &k.2);
        match self.entries.get(k) {
            Some(e) if !e.deleting && self.owner_visible(&e.owner) => {
                if e.owner != self.name {
                    return Err(NdbError::NotOwner {
                        table: table.clone(),
                        nid: nid.clone(),
                        key: key.to_string(),
                        owner: e.owner.clone(),
                    });
                }
                Ok(())
            }
            _ => Err(missing(table.clone(), nid.clone(), key.to_string())),
        }
    }
}
