//! Per-network gossip rounds, backlog pushes, and the peer choice and
//! randomness they use.

use super::*;

impl TableState {
    #[doc(hidden)]
    /// One per-network gossip round: for every joined network with
    /// something queued, one compound to up to `fanout` random peers.
    /// With a `view` (from [`swimnet_core::Memberlist::topology_view`],
    /// taken just before), the peers are biased toward near ones, with at
    /// least one uniform pick per round; `None` chooses uniformly.
    pub fn gossip_tick(&mut self, view: Option<&TopologyView>) {
        let nids: Vec<String> = self.networks();
        let budget = self.cfg.packet_buffer_size.saturating_sub(PACKET_OVERHEAD);
        for nid in nids {
            let queued = self
                .local
                .get(&nid)
                .is_some_and(|n| !n.own.is_empty() || !n.relay.is_empty());
            if !queued {
                continue;
            }
            let peers = self.peer_addrs(&nid);
            if peers.is_empty() {
                // Nobody to tell yet. Keep the newest events for a peer that
                // attaches later (older ones reach it by bulk sync) instead
                // of letting the queue grow with every write.
                if let Some(net) = self.local.get_mut(&nid) {
                    net.own.prune(LONE_QUEUE_MAX);
                    net.relay.prune(LONE_QUEUE_MAX);
                }
                continue;
            }
            self.maybe_push_backlog(&nid, &peers);
            let n_nodes = peers.len() + 1;
            // Events of our own that have not been sent yet go to uniformly
            // random peers, so they enter every region on their first round
            // rather than through the one uniform slot of each round. Relays
            // stay biased; this costs about 1 % more cross-region bytes (no
            // effect on write latency could be measured over two seeds).
            let fresh_own = self
                .local
                .get(&nid)
                .is_some_and(|n| n.own.untransmitted_more_than(0));
            let chosen = if fresh_own {
                self.pick(peers, self.cfg.fanout)
            } else {
                self.choose_peers(peers, self.cfg.fanout, view, Some(&nid))
            };
            let Some(net) = self.local.get_mut(&nid) else {
                continue;
            };
            let mut parts = net
                .own
                .get_broadcasts(COMPOUND_PART_OVERHEAD, budget, n_nodes);
            let used: usize = parts.iter().map(|p| p.len() + COMPOUND_PART_OVERHEAD).sum();
            if budget > used {
                parts.extend(net.relay.get_broadcasts(
                    COMPOUND_PART_OVERHEAD,
                    budget - used,
                    n_nodes,
                ));
            }
            if parts.is_empty() {
                continue;
            }
            let compound = wire::encode_compound(&parts);
            for (_, addr) in chosen {
                self.stats.gossip_packets += 1;
                self.outbox
                    .push_back(Outgoing::Packet(addr, compound.clone()));
            }
        }
    }

    /// Backlog push: when this node's own untransmitted events of `nid` are
    /// more than [`NdbConfig::backlog_push_bytes`], they leave the gossip
    /// queue and go to the network's peers in one stream each, as a bulk
    /// sync with `unsolicited = false` and no network list. Docker treats
    /// such a message as the answer to a sync and simply applies its events;
    /// swimnet recognises it by the empty network list. Gossip would need
    /// `backlog / packet size * retransmits` rounds for the same events.
    pub(super) fn maybe_push_backlog(&mut self, nid: &str, peers: &[(String, SocketAddr)]) {
        let threshold = self.cfg.backlog_push_bytes;
        let Some(net) = self.local.get_mut(nid) else {
            return;
        };
        if threshold == 0 || net.own.untransmitted_bytes() <= threshold {
            return;
        }
        let parts = net.own.take_untransmitted();
        let everyone = peers.len() <= self.cfg.backlog_push_peers;
        if !everyone {
            // Gossip still has to reach the peers the push skips.
            for p in &parts {
                net.own.queue(None, p.clone());
            }
        }
        self.stats.backlog_events_pushed += parts.len() as u64;
        let msg = BulkSyncMessage {
            l_time: self.table_clock,
            unsolicited: false,
            node_name: self.name.clone(),
            networks: Vec::new(),
            payload: wire::encode_compound(&parts),
        }
        .encode_gossip();
        let targets = self.pick(peers.to_vec(), self.cfg.backlog_push_peers);
        for (_, addr) in targets {
            self.stats.backlog_pushes_sent += 1;
            self.outbox.push_back(Outgoing::Stream(addr, msg.clone()));
        }
    }

    pub(super) fn rand(&mut self) -> u64 {
        SplitMix(&mut self.rng).next_u64()
    }

    /// `k` of `peers`: latency-aware through `view` when it allows (see
    /// [`TopologyView::select`]), else uniformly with [`Self::pick`],
    /// drawing the same numbers as before topology awareness existed.
    ///
    /// With `walk_of` (a joined network), the near picks continue that
    /// network's walk through the near cluster
    /// ([`TopologyView::select_rotating`]), for gossip rounds.
    pub(super) fn choose_peers(
        &mut self,
        peers: Vec<(String, SocketAddr)>,
        k: usize,
        view: Option<&TopologyView>,
        walk_of: Option<&str>,
    ) -> Vec<(String, SocketAddr)> {
        if let Some(view) = view {
            let names: Vec<&str> = peers.iter().map(|(n, _)| n.as_str()).collect();
            let rng = &mut SplitMix(&mut self.rng);
            let walk = walk_of
                .and_then(|nid| self.local.get_mut(nid))
                .map(|net| &mut net.near_walk);
            let picked = match walk {
                Some(walk) => view.select_rotating(rng, &names, k, walk),
                None => view.select(rng, &names, k),
            };
            if let Some(idx) = picked {
                self.stats.topology_choices += 1;
                return idx.into_iter().map(|i| peers[i].clone()).collect();
            }
        }
        self.pick(peers, k)
    }

    pub(super) fn pick<T>(&mut self, mut v: Vec<T>, k: usize) -> Vec<T> {
        let k = k.min(v.len());
        for i in 0..k {
            let j = i + (self.rand() % (v.len() - i) as u64) as usize;
            v.swap(i, j);
        }
        v.truncate(k);
        v
    }

    #[doc(hidden)]
    /// Deterministic jitter in `[0, max)`, used to stagger timers.
    pub fn jitter(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis() as u64;
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rand() % ms)
    }
}

/// NetworkDB's random source (splitmix64 over one `u64` of state) as a
/// [`RngCore`], so the core's [`swimnet_core::topology`] can draw from it.
pub(super) struct SplitMix<'a>(&'a mut u64);

impl RngCore for SplitMix<'_> {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        *self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
