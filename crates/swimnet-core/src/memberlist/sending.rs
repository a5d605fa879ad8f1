//! The sending path: sealing datagrams (CRC, compression, encryption,
//! label), piggy-backing queued broadcasts on outgoing messages, and
//! encoding stream messages.

use std::net::SocketAddr;

use rand::RngCore;
use swimnet_wire::codec::Message;
use swimnet_wire::compound::encode_compound;
use swimnet_wire::packet::{self, SealOptions};
use swimnet_wire::security::{EncryptionVersion, Key};
use swimnet_wire::stream::{self, StreamEncodeOptions, StreamMessage};

use crate::delegate::Delegate;
use crate::member::{ip_bytes, Member};

use super::{
    encode, type_index, Memberlist, Transmit, COMPOUND_HEADER_OVERHEAD, COMPOUND_OVERHEAD,
    MAX_PIGGYBACK, USER_MSG_OVERHEAD,
};

impl<D: Delegate> Memberlist<D> {
    pub(super) fn encryption(&mut self) -> Option<(Key, [u8; 12], EncryptionVersion)> {
        if !self.config.encryption_enabled() {
            return None;
        }
        let key = self.config.keyring.as_ref()?.primary().clone();
        let mut nonce = [0u8; 12];
        self.rng.fill_bytes(&mut nonce);
        let vsn = if self.config.protocol_version < 2 {
            EncryptionVersion::V0Padded
        } else {
            EncryptionVersion::V1
        };
        Some((key, nonce, vsn))
    }

    pub(super) fn encryption_overhead(&self) -> usize {
        if !self.config.encryption_enabled() {
            return 0;
        }
        if self.config.protocol_version < 2 {
            45
        } else {
            29
        }
    }

    pub(super) fn label_overhead(&self) -> usize {
        if self.config.label.is_empty() {
            0
        } else {
            2 + self.config.label.len()
        }
    }

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

    pub(super) fn pmax_for_addr(&self, addr: SocketAddr) -> Option<u8> {
        self.table
            .nodes
            .iter()
            .find(|m| m.addr == addr)
            .map(Member::pmax)
    }

    pub(super) fn pmax_for_name(&self, name: &str) -> Option<u8> {
        self.member(name).map(Member::pmax)
    }

    /// Sends one message, piggy-backing queued broadcasts that fit.
    pub(super) fn send_msg(&mut self, dst: SocketAddr, node: Option<&str>, msg: &Message) {
        self.stats.messages_out[type_index(msg)] += 1;
        let buf = encode(msg);
        let avail = self.config.udp_buffer_size.saturating_sub(
            buf.len()
                + COMPOUND_HEADER_OVERHEAD
                + self.label_overhead()
                + self.encryption_overhead(),
        );
        let extra = self.get_broadcasts(COMPOUND_OVERHEAD, avail);
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

    pub(super) fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let n = self.table.nodes.len();
        let mut out = self.broadcasts.get_broadcasts(overhead, limit, n);
        for m in &out {
            if let Some(&t) = m.first() {
                if let Some(c) = self.stats.messages_out.get_mut(t as usize) {
                    *c += 1;
                }
            }
        }
        let used: usize = out.iter().map(|m| m.len() + overhead).sum();
        let avail = limit.saturating_sub(used);
        if avail > overhead + USER_MSG_OVERHEAD {
            for msg in self
                .delegate
                .get_broadcasts(overhead + USER_MSG_OVERHEAD, avail, n)
                .into_iter()
                .take(MAX_PIGGYBACK.saturating_sub(out.len()))
            {
                let mut framed = Vec::with_capacity(msg.len() + 1);
                framed.push(8);
                framed.extend_from_slice(&msg);
                self.stats.messages_out[8] += 1;
                out.push(framed);
            }
        }
        out
    }

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

    pub(super) fn self_source(&self) -> (Vec<u8>, u16, String) {
        (
            ip_bytes(&self.config.advertise),
            self.config.advertise.port(),
            self.name.to_string(),
        )
    }

    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }
}
