//! [`Stats`]: the counters of what came in, what went out and what was
//! dropped.

use swimnet_wire::msg::MessageType;

#[cfg(doc)]
use super::Memberlist;
#[cfg(doc)]
use crate::config::{Config, META_MAX_SIZE};

/// Entries in [`Stats::messages_in`] and [`Stats::messages_out`]: one per
/// memberlist message type code 0..=13.
pub const MESSAGE_TYPE_COUNT: usize = 14;

/// Counters for what came in, what went out and what was dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to [`Memberlist::handle_packet`].
    pub packets_in: u64,
    /// Their bytes.
    pub bytes_in: u64,
    /// Datagrams produced.
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Datagrams dropped: undecryptable, wrong label, CRC mismatch.
    pub packets_dropped: u64,
    /// Messages inside datagrams that failed to decode.
    pub messages_malformed: u64,
    /// Datagrams whose decoding ran out of their decode budget
    /// ([`Config::datagram_max_decoded_bytes`], [`Config::datagram_max_parts`]);
    /// what did not fit was dropped.
    pub datagrams_over_budget: u64,
    /// Encrypted datagrams dropped as exact replays of one authenticated
    /// within [`Config::replay_window`].
    pub packets_replayed: u64,
    /// Messages received, by memberlist type code (index = type byte, up to
    /// 13); read one kind with [`Stats::received`].
    pub messages_in: [u64; MESSAGE_TYPE_COUNT],
    /// Messages sent, by type code; read one kind with [`Stats::sent`].
    pub messages_out: [u64; MESSAGE_TYPE_COUNT],
    /// Bytes of the messages received, by type code: each message's own
    /// encoding (after decompression, without compound framing or packet
    /// sealing); read one kind with [`Stats::received_bytes`].
    pub message_bytes_in: [u64; MESSAGE_TYPE_COUNT],
    /// Bytes of the messages sent, by type code, counted as
    /// [`Stats::message_bytes_in`]; read one kind with [`Stats::sent_bytes`].
    pub message_bytes_out: [u64; MESSAGE_TYPE_COUNT],
    /// Members that became suspect in our table (suspicions started, by us
    /// or learned from gossip).
    pub suspicions: u64,
    /// Members declared dead in our table (failures; graceful leaves are
    /// not counted).
    pub dead_verdicts: u64,
    /// Datagrams and stream messages dropped because no key of the keyring
    /// could decrypt them (the datagrams are also in `packets_dropped`, the
    /// streams in `streams_failed`).
    pub decrypt_failures: u64,
    /// Probes that succeeded.
    pub probes_ok: u64,
    /// Probes that failed (target became suspect).
    pub probes_failed: u64,
    /// Probes saved only by the TCP fallback ping (also in `probes_ok`).
    pub probes_tcp_rescued: u64,
    /// Probes answered after the indirect pings went out: an ack relayed by
    /// a helper, or a late direct ack (also in `probes_ok`).
    pub probes_indirect: u64,
    /// TCP pings refused by the target's host (nothing listening).
    pub pings_refused: u64,
    /// Last checks sent to suspects before declaring them dead.
    pub final_checks: u64,
    /// Last checks the suspect answered (a dead verdict avoided).
    pub final_checks_answered: u64,
    /// Members declared dead because their host refused two TCP pings
    /// ([`Config::refusal_verdicts`]), before their suspicion ran out.
    pub refusal_verdicts: u64,
    /// Refutations of suspicion about ourselves.
    pub refutations: u64,
    /// Push/pulls completed (either side).
    pub push_pulls: u64,
    /// Catch-up push/pulls started because the gossip backlog was deep
    /// ([`Config::catch_up_backlog`]).
    pub catch_ups: u64,
    /// Streams that failed (decode error, peer error, timeout).
    pub streams_failed: u64,
    /// Inbound streams refused for exceeding the concurrency limit.
    pub streams_refused: u64,
    /// Inbound streams refused because their source IP already had
    /// [`crate::StreamLimits::max_unauthenticated_per_source`] streams not
    /// yet authenticated (only with encryption required).
    pub streams_refused_per_source: u64,
    /// Streams failed for a message over a [`crate::StreamLimits`] limit
    /// (size, node count, decoded size); also in `streams_failed`.
    pub streams_over_limit: u64,
    /// Inbound streams closed to keep
    /// [`crate::StreamLimits::inbound_budget_bytes`] (the biggest holder
    /// goes first); also in `streams_failed`.
    pub streams_over_budget: u64,
    /// Inbound streams closed for not sending their frame header within
    /// [`crate::StreamLimits::first_bytes_timeout`]; also in `streams_failed`.
    pub streams_first_bytes_timeout: u64,
    /// Bytes examined while decoding streams (parsing, decryption,
    /// decompression): about the bytes received, however they were cut.
    pub stream_bytes_scanned: u64,
    /// Ack payloads from direct probes that were not a usable coordinate
    /// (undecodable, another version, non-finite or absurd values, an RTT
    /// over 10 s); our coordinate was left as it was.
    pub coordinates_rejected: u64,
    /// Peer choices (gossip targets, indirect-probe helpers, push/pull
    /// partners) made latency-aware rather than uniformly; stays 0 while
    /// [`Config::topology`] is off or coordinates are unsettled.
    pub topology_choices: u64,
    /// Alive messages (and alive push/pull states) dropped for a name
    /// longer than [`crate::config::NODE_NAME_MAX`] or empty, metadata over
    /// [`META_MAX_SIZE`], or a version field that is not 6 consistent bytes.
    pub alives_invalid: u64,
    /// Alive claims refused because their name belongs to a live member at
    /// another address (a second node started with a name in use), and
    /// joins refused because the cluster already has a live node by our
    /// name; reported as [`crate::Event::NameConflict`] and in a failed
    /// join.
    pub name_conflicts: u64,
    /// Alive, suspect and dead claims dropped for an incarnation more than
    /// [`Config::max_incarnation_jump`] above what we know of the node.
    pub incarnation_jumps_rejected: u64,
    /// Accusations about us we could not outbid (our incarnation or theirs
    /// is already `u32::MAX`); the refutation is not wrapped to 0.
    pub refutations_impossible: u64,
    /// New nodes not added because the table was full ([`Config::max_members`]).
    pub members_rejected: u64,
    /// Queued broadcasts dropped to stay within [`Config::max_queued_broadcasts`].
    pub broadcasts_dropped: u64,
    /// Pings and indirect pings left unanswered because they would have
    /// sent to addresses of non-members beyond [`Config::reply_limit`].
    pub replies_limited: u64,
    /// Indirect pings dropped because `reply_limit.max_relays` were pending.
    pub relays_rejected: u64,
    /// Key-operation messages refused because their datagram was not
    /// encrypted with a key of our keyring (see [`crate::key_ops`]).
    pub key_ops_refused: u64,
    /// Key-operation answers dropped: no operation of ours waits for them,
    /// or they came from an address we did not ask (or asked and heard).
    pub key_op_answers_dropped: u64,
}

impl Stats {
    /// Messages of type `kind` received in datagrams so far (0 for the
    /// framing types, which are not messages of their own).
    pub fn received(&self, kind: MessageType) -> u64 {
        self.messages_in.get(kind as usize).copied().unwrap_or(0)
    }

    /// Messages of type `kind` sent in datagrams so far, piggy-backed ones
    /// included.
    pub fn sent(&self, kind: MessageType) -> u64 {
        self.messages_out.get(kind as usize).copied().unwrap_or(0)
    }

    /// Bytes of the messages of type `kind` received in datagrams so far.
    pub fn received_bytes(&self, kind: MessageType) -> u64 {
        self.message_bytes_in
            .get(kind as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Bytes of the messages of type `kind` sent in datagrams so far.
    pub fn sent_bytes(&self, kind: MessageType) -> u64 {
        self.message_bytes_out
            .get(kind as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Counts one received message of type `kind`, `len` bytes long.
    pub(super) fn count_received(&mut self, kind: MessageType, len: usize) {
        let i = kind as usize;
        if let (Some(c), Some(b)) = (
            self.messages_in.get_mut(i),
            self.message_bytes_in.get_mut(i),
        ) {
            *c += 1;
            *b += len as u64;
        }
    }

    /// Counts one sent message of type `kind`, `len` bytes long.
    pub(super) fn count_sent(&mut self, kind: MessageType, len: usize) {
        self.count_sent_type_byte(kind as u8, len);
    }

    /// Counts one sent message whose encoding starts with `type_byte`
    /// (a queued broadcast, kept encoded), `len` bytes long; unknown bytes
    /// are not counted.
    pub(super) fn count_sent_type_byte(&mut self, type_byte: u8, len: usize) {
        let i = usize::from(type_byte);
        if let (Some(c), Some(b)) = (
            self.messages_out.get_mut(i),
            self.message_bytes_out.get_mut(i),
        ) {
            *c += 1;
            *b += len as u64;
        }
    }
}
