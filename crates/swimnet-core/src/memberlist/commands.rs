//! Commands a caller issues between inputs: join, leave, metadata, user
//! messages and key management.

use std::net::SocketAddr;
use std::time::Instant;

use rand::seq::SliceRandom;
use swimnet_wire::codec::Message;
use swimnet_wire::msg::{Dead, MessageType};
use swimnet_wire::security::{Key, Keyring};
use swimnet_wire::stream::StreamMessage;

use crate::config::META_MAX_SIZE;
use crate::delegate::Delegate;
use crate::error::Error;
use crate::member::{Member, Node, NodeState};

use super::{encode, Event, Memberlist, StreamCommand, LEAVE_DIRECT, LEAVE_TIMEOUT_PROBES};
use crate::timer::TimerKind;

impl<D: Delegate> Memberlist<D> {
    /// Starts a join: a push/pull with `Join=true` to each address. Each
    /// attempt ends with an [`Event::JoinResult`].
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), Error> {
        if self.leaving {
            return Err(Error::Left);
        }
        for &addr in addrs {
            self.start_push_pull(now, addr, true);
        }
        Ok(())
    }

    /// Replaces our metadata and announces it with a new incarnation.
    /// Refuses metadata over 512 bytes, leaving everything unchanged.
    pub fn set_meta(&mut self, _now: Instant, meta: Vec<u8>) -> Result<(), Error> {
        if meta.len() > META_MAX_SIZE {
            return Err(Error::MetaTooLarge {
                len: meta.len(),
                max: META_MAX_SIZE,
            });
        }
        if self.leaving {
            return Err(Error::Left);
        }
        self.config.meta = meta.clone();
        self.incarnation = self.incarnation.wrapping_add(1);
        let inc = self.incarnation;
        let name = self.name.clone();
        if let Some(me) = self.member_mut(&name) {
            me.meta = meta;
            me.incarnation = inc;
        }
        let alive = self.local_alive();
        self.broadcasts
            .queue(Some(name.as_bytes()), encode(&Message::Alive(alive)));
        Ok(())
    }

    /// Leaves gracefully: broadcasts our own `dead` (which peers record as
    /// left) and stops refuting. [`Event::LeaveComplete`] follows once the
    /// broadcast has used its retransmits, at once if nobody else is alive,
    /// and at the latest [`LEAVE_TIMEOUT_PROBES`] probe intervals from now
    /// (a cluster that does not answer can stall the broadcast; the event
    /// then says it timed out).
    pub fn leave(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        let d = Dead {
            incarnation: self.incarnation,
            node: self.name.to_string(),
            from: self.name.to_string(),
        };
        let msg = encode(&Message::Dead(d));
        // swimnet addition: besides gossip (a few transmits that can miss a
        // node), tell up to LEAVE_DIRECT random live peers directly, so they
        // record "left" rather than finding out later by failed probes.
        let me = self.name.clone();
        let mut peers: Vec<(SocketAddr, u8)> = self
            .table
            .nodes
            .iter()
            .filter(|m| m.name != me && m.state == NodeState::Alive)
            .map(|m| (m.addr, m.pmax()))
            .collect();
        peers.shuffle(&mut self.rng);
        for (addr, pmax) in peers.into_iter().take(LEAVE_DIRECT) {
            self.stats.count_sent(MessageType::Dead, msg.len());
            self.raw_send(addr, Some(pmax), &msg);
        }
        let id = self.broadcasts.queue(Some(self.name.as_bytes()), msg);
        let name = self.name.clone();
        if let Some(me) = self.member_mut(&name) {
            me.state = NodeState::Left;
            me.state_change = now;
        }
        let anyone = self
            .table
            .nodes
            .iter()
            .any(|m| m.name != self.name && m.state == NodeState::Alive);
        if anyone {
            self.leave_broadcast = Some(id);
            let deadline = now + self.config.probe_interval * LEAVE_TIMEOUT_PROBES;
            self.timers.schedule(deadline, TimerKind::LeaveDeadline);
        } else {
            self.out
                .events
                .push_back(Event::LeaveComplete { timed_out: false });
        }
    }

    /// Adds `nodes` to the member table as alive, as they are, without
    /// gossiping about them: for simulators that start from a converged
    /// cluster by handing every node the same table (the names' `Arc`s are
    /// shared, not copied). Ourselves and nodes already known are skipped.
    /// Emits [`Event::Join`] for each node added.
    pub fn preload_members(&mut self, now: Instant, nodes: &[Node]) {
        // Size the table once: doubling growth would leave up to half of a
        // large table's capacity unused.
        self.table.nodes.reserve_exact(nodes.len());
        self.table.index.reserve(&self.table.nodes, nodes.len());
        for n in nodes {
            if *n.name == *self.name || self.member_pos(&n.name).is_some() {
                continue;
            }
            self.insert_member(Member {
                name: n.name.clone(),
                addr: n.addr,
                mapped: false,
                meta: n.meta.clone(),
                vsn: n.vsn,
                incarnation: n.incarnation,
                state: NodeState::Alive,
                state_change: now,
            });
            let mut snap = n.clone();
            snap.state = NodeState::Alive;
            self.out.events.push_back(Event::Join(snap));
        }
    }

    /// Sends a user message to `to` in one datagram, with CRC when the
    /// receiver is a known node that understands it.
    pub fn send_user_packet(&mut self, to: SocketAddr, msg: &[u8]) {
        let mut buf = Vec::with_capacity(msg.len() + 1);
        buf.push(MessageType::User as u8);
        buf.extend_from_slice(msg);
        let pmax = self.pmax_for_addr(to);
        self.stats.count_sent(MessageType::User, buf.len());
        self.raw_send(to, pmax, &buf);
    }

    /// Sends a user message over TCP (memberlist's `SendReliable`).
    pub fn send_user_stream(&mut self, now: Instant, to: SocketAddr, msg: Vec<u8>) {
        let data = self.encode_stream(&StreamMessage::User(msg), false);
        let id = self.new_stream_id();
        self.out.stream_cmds.push_back(StreamCommand::Open {
            id,
            to,
            data,
            expect_reply: false,
            deadline: now + self.config.tcp_timeout,
        });
    }

    /// The keyring, if encryption is configured.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.config.keyring.as_ref()
    }

    /// Adds a key to the keyring (not as primary). Idempotent.
    pub fn install_key(&mut self, key: &[u8]) -> Result<(), Error> {
        let key = Key::new(key).map_err(|e| Error::Keyring(e.to_string()))?;
        let ring = self.config.keyring.as_mut().ok_or(Error::NoKeyring)?;
        ring.install(key);
        Ok(())
    }

    /// Makes an installed key the primary (used to encrypt from now on).
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), Error> {
        let ring = self.config.keyring.as_mut().ok_or(Error::NoKeyring)?;
        ring.use_key(key).map_err(|e| Error::Keyring(e.to_string()))
    }

    /// Removes a key; the primary key cannot be removed. Removing a key
    /// that is not installed changes nothing and succeeds, as in memberlist
    /// and `serf keys -remove`, so rotations can be retried safely.
    pub fn remove_key(&mut self, key: &[u8]) -> Result<(), Error> {
        let ring = self.config.keyring.as_mut().ok_or(Error::NoKeyring)?;
        if !ring.contains(key) {
            return Ok(());
        }
        ring.remove(key).map_err(|e| Error::Keyring(e.to_string()))
    }
}
