//! The sending path: sealing datagrams (CRC, compression, encryption,
//! label), piggy-backing queued broadcasts on outgoing messages, and
//! encoding stream messages.

use std::net::SocketAddr;

use rand::RngCore;
use swimnet_wire::codec::Message;
use swimnet_wire::compound::encode_compound;
use swimnet_wire::msg::MessageType;
use swimnet_wire::overhead;
use swimnet_wire::packet::{self, SealOptions};
use swimnet_wire::security::{EncryptionVersion, Key, NONCE_SIZE};
use swimnet_wire::stream::{self, StreamEncodeOptions, StreamMessage};

use crate::delegate::Delegate;
use crate::member::{ip_bytes, Member};

use super::{encode, Memberlist, Transmit, MAX_PIGGYBACK};

impl<D: Delegate> Memberlist<D> {
    /// The primary key, a fresh nonce and the format to encrypt the next
    /// outgoing payload with, or `None` when encryption is off.
    pub(super) fn encryption(&mut self) -> Option<(Key, [u8; NONCE_SIZE], EncryptionVersion)> {
        if !self.config.encryption_enabled() {
            return None;
        }
        let key = self.config.keyring.as_ref()?.primary().clone();
        let mut nonce = [0u8; NONCE_SIZE];
        self.rng.fill_bytes(&mut nonce);
        Some((key, nonce, self.encryption_version()))
    }

    /// The encryption format our protocol version calls for (v0 with
    /// padding for protocol 1, v1 otherwise).
    fn encryption_version(&self) -> EncryptionVersion {
        EncryptionVersion::for_protocol_version(self.config.protocol_version)
    }

    /// Bytes sealing adds to every datagram we send whatever it carries:
    /// the label header and, when on, encryption. The budget of a datagram
    /// is [`crate::Config::udp_buffer_size`] minus this.
    pub(super) fn seal_overhead(&self) -> usize {
        let encryption = if self.config.encryption_enabled() {
            overhead::encryption(self.encryption_version())
        } else {
            0
        };
        overhead::label(&self.config.label) + encryption
    }

    /// Seals `inner` (CRC for peers that read it, compression, encryption,
    /// label) and queues the datagram for `dst`.
    pub(super) fn raw_send(&mut self, dst: SocketAddr, pmax: Option<u8>, inner: &[u8]) {
        let enc = self.encryption();
        let opts = SealOptions {
            crc: pmax.is_some_and(|p| p >= 5),
            compress: self.config.enable_compression,
            encrypt: enc.as_ref().map(|(k, n, v)| (k, *n, *v)),
            label: &self.config.label,
        };
        let mut payload = Vec::with_capacity(inner.len() + 64);
        packet::seal_packet(inner, &opts, &mut payload);
        self.stats.packets_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        self.out.transmits.push_back(Transmit { dst, payload });
    }

    /// The highest protocol version the member at `addr` speaks.
    pub(super) fn pmax_for_addr(&self, addr: SocketAddr) -> Option<u8> {
        self.table
            .nodes
            .iter()
            .find(|m| m.addr == addr)
            .map(Member::pmax)
    }

    /// The highest protocol version the member called `name` speaks.
    pub(super) fn pmax_for_name(&self, name: &str) -> Option<u8> {
        self.member(name).map(Member::pmax)
    }

    /// Sends one message, piggy-backing queued broadcasts that fit.
    pub(super) fn send_msg(&mut self, dst: SocketAddr, node: Option<&str>, msg: &Message) {
        let buf = encode(msg);
        self.stats.count_sent(msg.message_type(), buf.len());
        let avail = self
            .config
            .udp_buffer_size
            .saturating_sub(buf.len() + overhead::COMPOUND_HEADER + self.seal_overhead());
        let extra = self.get_broadcasts(overhead::COMPOUND_PART, avail);
        let pmax = node.and_then(|n| self.pmax_for_name(n));
        if extra.is_empty() {
            self.raw_send(dst, pmax, &buf);
        } else {
            let mut parts: Vec<&[u8]> = Vec::with_capacity(extra.len() + 1);
            parts.push(&buf);
            parts.extend(extra.iter().map(Vec::as_slice));
            let mut compound = Vec::with_capacity(self.config.udp_buffer_size);
            encode_compound(&parts, &mut compound);
            self.raw_send(dst, pmax, &compound);
        }
    }

    /// Takes queued broadcasts (ours, then the delegate's) that fit in
    /// `limit` bytes, each costing `part_overhead` more, and counts them as sent.
    pub(super) fn get_broadcasts(&mut self, part_overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let n = self.table.nodes.len();
        let mut out = self.broadcasts.get_broadcasts(part_overhead, limit, n);
        for m in &out {
            if let Some(&t) = m.first() {
                self.stats.count_sent_type_byte(t, m.len());
            }
        }
        let used: usize = out.iter().map(|m| m.len() + part_overhead).sum();
        let avail = limit.saturating_sub(used);
        if avail > part_overhead + overhead::USER_MSG_HEADER {
            for msg in self
                .delegate
                .get_broadcasts(part_overhead + overhead::USER_MSG_HEADER, avail, n)
                .into_iter()
                .take(MAX_PIGGYBACK.saturating_sub(out.len()))
            {
                let mut framed = Vec::with_capacity(msg.len() + 1);
                framed.push(MessageType::User as u8);
                framed.extend_from_slice(&msg);
                self.stats.count_sent(MessageType::User, framed.len());
                out.push(framed);
            }
        }
        out
    }

    /// Queues `msg` about `node` for gossip, replacing older news of it.
    pub(super) fn broadcast(&mut self, node: &str, msg: &Message) {
        self.broadcasts.queue(Some(node.as_bytes()), encode(msg));
        self.stats.broadcasts_dropped = self.broadcasts.dropped();
    }

    /// Encodes a stream message: `reply` for the responder's side (no label header).
    pub(super) fn encode_stream(&mut self, msg: &StreamMessage, reply: bool) -> Vec<u8> {
        let enc = self.encryption();
        let opts = StreamEncodeOptions {
            compress: self.config.enable_compression,
            encrypt: enc.as_ref().map(|(k, n, v)| (k, *n, *v)),
            label: &self.config.label,
        };
        let mut out = Vec::new();
        if reply {
            stream::encode_stream_reply(msg, &opts, &mut out);
        } else {
            stream::encode_stream_message(msg, &opts, &mut out);
        }
        out
    }

    /// Our address bytes, port and name, as pings carry them.
    pub(super) fn self_source(&self) -> (Vec<u8>, u16, String) {
        (
            ip_bytes(&self.config.advertise),
            self.config.advertise.port(),
            self.name.to_string(),
        )
    }

    /// A fresh sequence number for a ping or a check.
    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }
}
