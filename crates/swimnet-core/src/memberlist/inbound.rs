//! The datagram path: one UDP datagram in, its messages handled one by one
//! as they are decoded, within the datagram's decode budget.
//!
//! Order of the checks: label, decryption and CRC ([`packet::open_packet_with_nonce`];
//! failures are counted in [`crate::Stats::packets_dropped`]), then exact replays of
//! encrypted datagrams ([`crate::replay`], counted in
//! [`crate::Stats::packets_replayed`]), then the walk over compound and compress
//! wrappers, paid from a [`DecodeBudget`] of
//! [`Config::datagram_max_decoded_bytes`] and [`Config::datagram_max_parts`]
//! (what does not fit is dropped and the datagram counted in
//! [`crate::Stats::datagrams_over_budget`]). No message is held back: each is
//! handled before the next one is decoded.
//!
//! [`Config::datagram_max_decoded_bytes`]: crate::Config::datagram_max_decoded_bytes
//! [`Config::datagram_max_parts`]: crate::Config::datagram_max_parts

use std::net::SocketAddr;
use std::time::Instant;

use swimnet_wire::budget::DecodeBudget;
use swimnet_wire::error::WireError;
use swimnet_wire::packet::{self, OpenOptions};

use crate::delegate::Delegate;

use super::Memberlist;

impl<D: Delegate> Memberlist<D> {
    /// Handles one datagram from `from`: label check, decryption, replay
    /// check, CRC, then every message inside, each as soon as it is decoded
    /// (user messages go to [`Delegate::notify_packet_msg`] with what is
    /// left of the budget). Bad input is counted in [`crate::Stats`] and dropped.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        let opts = OpenOptions {
            keyring: self.config.keyring.as_ref(),
            verify_incoming: self.config.gossip_verify_incoming,
            label: &self.config.label,
        };
        let opened = match packet::open_packet_with_nonce(datagram, &opts) {
            Ok(opened) => opened,
            Err(e) => {
                self.stats.packets_dropped += 1;
                if e == swimnet_wire::WireError::Decrypt {
                    self.stats.decrypt_failures += 1;
                }
                if self.config.keyring.is_some() && undecryptable(&e) {
                    self.notice_undecryptable(now, from);
                }
                return;
            }
        };
        if let Some(p) = &mut self.probing.current {
            if p.target_addr == from {
                p.heard_from_target = true;
            }
        }
        let authenticated = opened.nonce.is_some();
        if let Some(nonce) = opened.nonce {
            if self.replays.is_replay(now, nonce) {
                self.stats.packets_replayed += 1;
                return;
            }
        }
        let mut budget = DecodeBudget::new(
            self.config.datagram_max_decoded_bytes,
            self.config.datagram_max_parts,
        );
        packet::for_each_sized_message_within(&opened.inner, &mut budget, &mut |m, len, budget| {
            match m {
                Ok(msg) => {
                    self.stats.count_received(msg.message_type(), len);
                    self.handle_message(now, from, msg, budget, authenticated);
                }
                Err(_) => self.stats.messages_malformed += 1,
            }
        });
        if budget.exceeded().is_some() {
            self.stats.datagrams_over_budget += 1;
        }
        self.check_leave_done();
    }
}

/// True for the errors of a datagram that could not be decrypted with our
/// keyring (or was not encrypted at all while we require it), as opposed
/// to a wrong label or a broken frame.
fn undecryptable(e: &WireError) -> bool {
    matches!(
        e,
        WireError::Decrypt
            | WireError::UnsupportedEncryptionVersion(_)
            | WireError::BadPadding
            | WireError::NotEncrypted
    )
}
