//! The transmit-limited broadcast queue (memberlist's `TransmitLimitedQueue`).
//!
//! Each queued message is handed out at most `retransmit_mult *
//! ceil(log10(n + 1))` times. Messages sent fewer times go first; within the
//! same count, the largest message that still fits, then the newest. A
//! message queued under a name replaces the one queued under the same name
//! (a newer alive/suspect/dead about node X makes the older one moot).
//! With a length cap ([`TransmitLimitedQueue::with_max_len`]), queueing
//! into a full queue drops the oldest message first.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::formulas::retransmit_limit;

type Order = (usize, Reverse<usize>, Reverse<u64>);

#[derive(Debug)]
struct Item {
    name: Option<Vec<u8>>,
    msg: Vec<u8>,
    transmits: usize,
}

/// A broadcast queue whose entries expire after a retransmit budget.
#[derive(Debug)]
pub struct TransmitLimitedQueue {
    retransmit_mult: usize,
    order: BTreeSet<Order>,
    /// By id, so the oldest is first.
    items: BTreeMap<u64, Item>,
    names: HashMap<Vec<u8>, u64>,
    next_id: u64,
    max_len: usize,
    dropped: u64,
}

impl TransmitLimitedQueue {
    /// An empty queue with memberlist's `RetransmitMult`.
    pub fn new(retransmit_mult: usize) -> Self {
        TransmitLimitedQueue {
            retransmit_mult,
            order: BTreeSet::new(),
            items: BTreeMap::new(),
            names: HashMap::new(),
            next_id: 0,
            max_len: usize::MAX,
            dropped: 0,
        }
    }

    /// Caps the queue at `max_len` messages (at least 1): queueing into a
    /// full queue first drops the oldest message and counts it in
    /// [`Self::dropped`]. Call it when building the queue.
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len.max(1);
        self
    }

    /// Messages dropped so far to stay within the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues `msg`. With a `name`, any queued message of the same name is
    /// dropped first. Returns an id that [`Self::contains`] can check later.
    pub fn queue(&mut self, name: Option<&[u8]>, msg: Vec<u8>) -> u64 {
        if let Some(name) = name {
            if let Some(old) = self.names.remove(name) {
                self.remove_id(old);
            }
        }
        while self.items.len() >= self.max_len {
            let Some(oldest) = self.items.keys().next().copied() else {
                break;
            };
            self.remove_id(oldest);
            self.dropped += 1;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.order.insert((0, Reverse(msg.len()), Reverse(id)));
        if let Some(name) = name {
            self.names.insert(name.to_vec(), id);
        }
        self.items.insert(
            id,
            Item {
                name: name.map(<[u8]>::to_vec),
                msg,
                transmits: 0,
            },
        );
        id
    }

    fn remove_id(&mut self, id: u64) {
        if let Some(item) = self.items.remove(&id) {
            self.order
                .remove(&(item.transmits, Reverse(item.msg.len()), Reverse(id)));
            if let Some(name) = item.name {
                if self.names.get(&name) == Some(&id) {
                    self.names.remove(&name);
                }
            }
        }
    }

    /// Whether the message with this id is still waiting to be sent out.
    pub fn contains(&self, id: u64) -> bool {
        self.items.contains_key(&id)
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.order.clear();
        self.items.clear();
        self.names.clear();
    }

    /// Bytes of the messages not handed out even once yet (the backlog a
    /// burst of broadcasts leaves). Linear in the size of that backlog.
    pub fn untransmitted_bytes(&self) -> usize {
        self.order
            .range(
                (0, Reverse(usize::MAX), Reverse(u64::MAX))
                    ..(1, Reverse(usize::MAX), Reverse(u64::MAX)),
            )
            .map(|(_, len, _)| len.0)
            .sum()
    }

    /// Whether more than `n` messages wait for their first transmission.
    /// Costs O(min(n, backlog)).
    pub fn untransmitted_more_than(&self, n: usize) -> bool {
        self.order
            .range(
                (0, Reverse(usize::MAX), Reverse(u64::MAX))
                    ..(1, Reverse(usize::MAX), Reverse(u64::MAX)),
            )
            .nth(n)
            .is_some()
    }

    /// Removes and returns the messages never handed out yet, oldest first.
    /// Call it to deliver a backlog some other way (a stream); messages
    /// already sent at least once stay queued for their remaining transmits.
    pub fn take_untransmitted(&mut self) -> Vec<Vec<u8>> {
        let keys: Vec<Order> = self
            .order
            .range(
                (0, Reverse(usize::MAX), Reverse(u64::MAX))
                    ..(1, Reverse(usize::MAX), Reverse(u64::MAX)),
            )
            .copied()
            .collect();
        let mut ids: Vec<u64> = keys.iter().map(|k| k.2 .0).collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(item) = self.items.remove(&id) {
                self.order
                    .remove(&(0, Reverse(item.msg.len()), Reverse(id)));
                if let Some(name) = &item.name {
                    if self.names.get(name) == Some(&id) {
                        self.names.remove(name);
                    }
                }
                out.push(item.msg);
            }
        }
        out
    }

    /// Drops the oldest messages until at most `max_retain` are left
    /// (memberlist's `Prune`). Call it when nobody can be sent to, so the
    /// queue stays bounded; linear in the queue length when it prunes.
    pub fn prune(&mut self, max_retain: usize) {
        if self.items.len() <= max_retain {
            return;
        }
        let ids: Vec<u64> = self.items.keys().copied().collect();
        let excess = ids.len() - max_retain;
        for id in ids.into_iter().take(excess) {
            self.remove_id(id);
        }
    }

    /// Takes the messages to piggy-back on one packet: each costs
    /// `overhead + len` bytes out of `limit`. Every message handed out counts
    /// one transmit; it leaves the queue when it reaches the limit for a
    /// cluster of `num_nodes`.
    pub fn get_broadcasts(
        &mut self,
        overhead: usize,
        limit: usize,
        num_nodes: usize,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.items.is_empty() {
            return out;
        }
        let transmit_limit = retransmit_limit(self.retransmit_mult, num_nodes).max(1);
        let mut used = 0usize;
        let mut reinsert: Vec<Order> = Vec::new();
        let (Some(first), Some(last)) = (self.order.first(), self.order.last()) else {
            return out;
        };
        let (mut tier, max_tier) = (first.0, last.0);
        while tier <= max_tier {
            let Some(free) = limit.checked_sub(used + overhead).filter(|f| *f > 0) else {
                break;
            };
            let start = (tier, Reverse(free), Reverse(u64::MAX));
            let end = (tier + 1, Reverse(usize::MAX), Reverse(u64::MAX));
            let Some(&key) = self.order.range(start..end).next() else {
                tier += 1;
                continue;
            };
            self.order.remove(&key);
            let id = key.2 .0;
            let Some(item) = self.items.get_mut(&id) else {
                continue;
            };
            used += overhead + item.msg.len();
            item.transmits += 1;
            if item.transmits >= transmit_limit {
                let item = self.items.remove(&id).expect("present");
                if let Some(name) = &item.name {
                    if self.names.get(name) == Some(&id) {
                        self.names.remove(name);
                    }
                }
                out.push(item.msg);
            } else {
                out.push(item.msg.clone());
                reinsert.push((item.transmits, key.1, key.2));
            }
        }
        self.order.extend(reinsert);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_messages_replace_older_ones() {
        let mut q = TransmitLimitedQueue::new(4);
        let a = q.queue(Some(b"n1"), vec![1; 10]);
        let b = q.queue(Some(b"n1"), vec![2; 10]);
        q.queue(Some(b"n2"), vec![3; 10]);
        assert!(!q.contains(a));
        assert!(q.contains(b));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn budget_and_retransmit_limit() {
        let mut q = TransmitLimitedQueue::new(1);
        q.queue(None, vec![1; 100]);
        q.queue(None, vec![2; 50]);
        // n = 5 -> limit 1 * ceil(log10 6) = 1 transmit each.
        let got = q.get_broadcasts(2, 120, 5);
        assert_eq!(got, vec![vec![1; 100]]); // largest first; the 50-byte one no longer fits
        let got = q.get_broadcasts(2, 120, 5);
        assert_eq!(got, vec![vec![2; 50]]);
        assert!(q.is_empty());
    }

    #[test]
    fn fewest_transmits_first_then_newest() {
        let mut q = TransmitLimitedQueue::new(4);
        q.queue(None, vec![1; 10]);
        assert_eq!(q.get_broadcasts(2, 14, 3), vec![vec![1; 10]]);
        q.queue(None, vec![2; 10]);
        q.queue(None, vec![3; 10]);
        // Only one fits: the untransmitted newest one.
        assert_eq!(q.get_broadcasts(2, 14, 3), vec![vec![3; 10]]);
        assert_eq!(q.get_broadcasts(2, 14, 3), vec![vec![2; 10]]);
        // All at 1 transmit now; newest of equal size first.
        assert_eq!(q.get_broadcasts(2, 14, 3), vec![vec![3; 10]]);
        // Each leaves after 4 transmits.
        let mut sent = 0;
        while !q.is_empty() {
            sent += q.get_broadcasts(2, 1000, 3).len();
        }
        assert_eq!(sent, 3 * 4 - 4);
    }

    #[test]
    fn untransmitted_backlog_can_be_taken_out() {
        let mut q = TransmitLimitedQueue::new(4);
        q.queue(Some(b"a"), vec![1; 10]);
        assert_eq!(q.get_broadcasts(2, 14, 3), vec![vec![1; 10]]);
        q.queue(Some(b"b"), vec![2; 20]);
        q.queue(None, vec![3; 5]);
        assert_eq!(q.untransmitted_bytes(), 25);
        // Oldest first; the one already sent once stays.
        assert_eq!(q.take_untransmitted(), vec![vec![2; 20], vec![3; 5]]);
        assert_eq!(q.untransmitted_bytes(), 0);
        assert_eq!(q.len(), 1);
        // Names of taken messages are free again.
        let id = q.queue(Some(b"b"), vec![4; 3]);
        assert!(q.contains(id));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_capped_queue_drops_the_oldest_and_counts_it() {
        let mut q = TransmitLimitedQueue::new(4).with_max_len(2);
        q.queue(Some(b"a"), vec![1; 1]);
        q.queue(Some(b"b"), vec![2; 1]);
        // Replacing a named message is not a drop.
        q.queue(Some(b"b"), vec![3; 1]);
        assert_eq!((q.len(), q.dropped()), (2, 0));
        q.queue(Some(b"c"), vec![4; 1]);
        assert_eq!((q.len(), q.dropped()), (2, 1));
        assert_eq!(q.take_untransmitted(), vec![vec![3; 1], vec![4; 1]]);
        // The dropped message's name is free again.
        q.queue(Some(b"a"), vec![5; 1]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn prune_keeps_the_newest() {
        let mut q = TransmitLimitedQueue::new(4);
        q.queue(Some(b"a"), vec![1; 1]);
        q.queue(None, vec![2; 1]);
        q.queue(None, vec![3; 1]);
        q.prune(5);
        assert_eq!(q.len(), 3);
        q.prune(2);
        assert_eq!(q.take_untransmitted(), vec![vec![2; 1], vec![3; 1]]);
        // The pruned message's name no longer blocks a new one.
        q.queue(Some(b"a"), vec![4; 1]);
        q.prune(0);
        assert!(q.is_empty());
    }
}
