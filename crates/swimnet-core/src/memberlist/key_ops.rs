//! Cluster-wide key operations (see [`crate::key_ops`] for the messages):
//! the requester's one operation in flight, the answers it collects, the
//! member side that applies a request and answers, and the rate-limited
//! [`KeyNotice`]s about keyring mismatches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swimnet_wire::security::Key;

use crate::delegate::Delegate;
use crate::error::Error;
use crate::key_ops::{
    decode, encode_answer, encode_request, KeyAnswer, KeyNotice, KeyOp, KeyOpMessage, KeyOpOutcome,
    MAX_KEYS_LISTED,
};
use crate::member::NodeState;
use crate::timer::TimerKind;

use super::Memberlist;

/// Longest timeout a key operation may be given.
pub const MAX_KEY_OP_TIMEOUT: Duration = Duration::from_secs(300);
/// A notice about one peer is given at most once per this interval.
const NOTICE_INTERVAL: Duration = Duration::from_secs(60);
/// Peers remembered for notice rate limiting.
const NOTICE_PEERS_MAX: usize = 1024;
/// Notices kept until polled (the oldest are dropped beyond this).
const NOTICES_MAX: usize = 64;
/// The request goes out again to members that have not answered every
/// `timeout / RESENDS_PER_TIMEOUT` (datagrams get lost).
const RESENDS_PER_TIMEOUT: u32 = 4;
/// Finished outcomes kept until polled.
const OUTCOMES_MAX: usize = 4;

/// The key-operation state of one node.
#[derive(Debug, Default)]
pub(super) struct KeyOpState {
    in_flight: Option<InFlight>,
    next_id: u64,
    outcomes: VecDeque<KeyOpOutcome>,
    notices: VecDeque<KeyNotice>,
    /// When each (notice kind, peer) was last reported.
    noticed: HashMap<(u8, SocketAddr), Instant>,
}

/// The operation this node started and waits on.
#[derive(Debug)]
struct InFlight {
    id: u64,
    op: KeyOp,
    request: Vec<u8>,
    /// The operation's timeout (resends come every quarter of it).
    timeout: Duration,
    /// Members asked that have not answered, by address.
    pending: BTreeMap<SocketAddr, Arc<str>>,
    answers: BTreeMap<String, KeyAnswer>,
}

impl KeyOpState {
    /// Queues `notice` unless the same kind was reported for `addr` within
    /// [`NOTICE_INTERVAL`] (or too many peers are remembered to tell).
    fn notice(&mut self, now: Instant, kind: u8, addr: SocketAddr, notice: KeyNotice) {
        if let Some(last) = self.noticed.get(&(kind, addr)) {
            if now.saturating_duration_since(*last) < NOTICE_INTERVAL {
                return;
            }
        }
        if self.noticed.len() >= NOTICE_PEERS_MAX {
            self.noticed
                .retain(|_, t| now.saturating_duration_since(*t) < NOTICE_INTERVAL);
            if self.noticed.len() >= NOTICE_PEERS_MAX {
                return;
            }
        }
        self.noticed.insert((kind, addr), now);
        self.push_notice(notice);
    }

    fn push_notice(&mut self, notice: KeyNotice) {
        if self.notices.len() >= NOTICES_MAX {
            self.notices.pop_front();
        }
        self.notices.push_back(notice);
    }
}

impl<D: Delegate> Memberlist<D> {
    /// Starts a cluster-wide key operation: applies `op` to our own keyring,
    /// sends it to every alive or suspect member (again, to those that have
    /// not answered, every quarter of `timeout`), and collects answers until
    /// all have answered or `timeout` has passed; the result comes out of
    /// [`Memberlist::poll_key_op_outcome`] with the returned id. Needs
    /// [`crate::Config::cluster_key_ops`], a keyring and outgoing
    /// encryption. One operation at a time: fails, changing nothing, while
    /// one is in flight, for a timeout of zero or over 5 minutes, or for a
    /// key AES cannot use.
    pub fn start_key_op(
        &mut self,
        now: Instant,
        op: KeyOp,
        timeout: Duration,
    ) -> Result<u64, Error> {
        if !self.config.cluster_key_ops {
            return Err(Error::KeyOp(
                "cluster-wide key operations are turned off on this node".into(),
            ));
        }
        if self.leaving {
            return Err(Error::Left);
        }
        if !self.config.encryption_enabled() {
            return Err(Error::NoKeyring);
        }
        if let Some(f) = &self.key_ops.in_flight {
            return Err(Error::KeyOp(format!(
                "a cluster-wide key operation ({}) is already running: wait for its report",
                f.op.name()
            )));
        }
        if timeout.is_zero() || timeout > MAX_KEY_OP_TIMEOUT {
            return Err(Error::KeyOp(format!(
                "the timeout must be above zero and at most {} s",
                MAX_KEY_OP_TIMEOUT.as_secs()
            )));
        }
        if let KeyOp::Install(k) | KeyOp::Use(k) | KeyOp::Remove(k) = &op {
            Key::new(k).map_err(|e| Error::Keyring(e.to_string()))?;
        }
        self.key_ops.next_id += 1;
        let id = self.key_ops.next_id;
        let request = encode_request(id, &op);
        let mine = self.apply_key_op(&op);
        let me = self.name.clone();
        let pending: BTreeMap<SocketAddr, Arc<str>> = self
            .table
            .nodes
            .iter()
            .filter(|m| m.name != me && matches!(m.state, NodeState::Alive | NodeState::Suspect))
            .map(|m| (m.addr, m.name.clone()))
            .collect();
        let mut answers = BTreeMap::new();
        answers.insert(me.to_string(), mine);
        for addr in pending.keys() {
            self.send_user_packet(*addr, &request);
        }
        self.key_ops.in_flight = Some(InFlight {
            id,
            op,
            request,
            timeout,
            pending,
            answers,
        });
        self.timers.schedule(
            now + timeout / RESENDS_PER_TIMEOUT,
            TimerKind::KeyOpResend { id },
        );
        self.timers
            .schedule(now + timeout, TimerKind::KeyOpDeadline { id });
        self.finish_key_op_if_complete();
        Ok(id)
    }

    /// The next finished key operation (all answered, or timed out); `None`
    /// when none is waiting. Drain it after every input.
    pub fn poll_key_op_outcome(&mut self) -> Option<KeyOpOutcome> {
        self.key_ops.outcomes.pop_front()
    }

    /// The next [`KeyNotice`] to log (at most one per kind and peer a
    /// minute); `None` when none is waiting. Only the latest 64 are kept.
    pub fn poll_key_notice(&mut self) -> Option<KeyNotice> {
        self.key_ops.notices.pop_front()
    }

    /// Resends the request in flight to the members that have not answered,
    /// and schedules the next resend.
    pub(super) fn on_key_op_resend(&mut self, now: Instant, id: u64) {
        let Some(f) = &self.key_ops.in_flight else {
            return;
        };
        if f.id != id {
            return;
        }
        let (request, addrs): (Vec<u8>, Vec<SocketAddr>) =
            (f.request.clone(), f.pending.keys().copied().collect());
        let next = now + f.timeout / RESENDS_PER_TIMEOUT;
        for addr in addrs {
            self.send_user_packet(addr, &request);
        }
        self.timers.schedule(next, TimerKind::KeyOpResend { id });
    }

    /// The operation's time is up: it finishes with who answered.
    pub(super) fn on_key_op_deadline(&mut self, id: u64) {
        if self.key_ops.in_flight.as_ref().is_some_and(|f| f.id == id) {
            self.finish_key_op();
        }
    }

    fn finish_key_op_if_complete(&mut self) {
        if self
            .key_ops
            .in_flight
            .as_ref()
            .is_some_and(|f| f.pending.is_empty())
        {
            self.finish_key_op();
        }
    }

    fn finish_key_op(&mut self) {
        let Some(f) = self.key_ops.in_flight.take() else {
            return;
        };
        let outcome = KeyOpOutcome {
            id: f.id,
            op: f.op,
            answers: f.answers,
            missing: f.pending.into_values().map(|n| n.to_string()).collect(),
        };
        if self.key_ops.outcomes.len() >= OUTCOMES_MAX {
            self.key_ops.outcomes.pop_front();
        }
        self.key_ops.outcomes.push_back(outcome);
    }

    /// A key-operation user message from `from`; `authenticated` when its
    /// datagram was decrypted with a key of our keyring. Plaintext ones are
    /// refused and counted; malformed ones and answers nobody waits for
    /// are counted and dropped.
    pub(super) fn on_key_op_message(&mut self, from: SocketAddr, msg: &[u8], authenticated: bool) {
        if !authenticated {
            self.stats.key_ops_refused += 1;
            return;
        }
        match decode(msg) {
            None => self.stats.messages_malformed += 1,
            Some(KeyOpMessage::Request { id, op }) => {
                let answer = self.apply_key_op(&op);
                self.send_user_packet(from, &encode_answer(id, &answer));
            }
            Some(KeyOpMessage::Answer { id, answer }) => {
                let name = match &mut self.key_ops.in_flight {
                    Some(f) if f.id == id => f.pending.remove(&from),
                    _ => None,
                };
                let Some(name) = name else {
                    self.stats.key_op_answers_dropped += 1;
                    return;
                };
                if let Some(f) = &mut self.key_ops.in_flight {
                    f.answers.insert(name.to_string(), answer);
                }
                self.finish_key_op_if_complete();
            }
        }
    }

    /// Applies `op` to our keyring; a change is announced as
    /// [`KeyNotice::KeyringChanged`]. Returns our answer with our keys.
    fn apply_key_op(&mut self, op: &KeyOp) -> KeyAnswer {
        let before = self.config.keyring.clone();
        let result = match op {
            KeyOp::Install(k) => self.install_key(k),
            KeyOp::Use(k) => self.use_key(k),
            KeyOp::Remove(k) => self.remove_key(k),
            KeyOp::List => match self.config.keyring {
                Some(_) => Ok(()),
                None => Err(Error::NoKeyring),
            },
        };
        let keys: Vec<Vec<u8>> = self
            .config
            .keyring
            .as_ref()
            .map(|r| r.keys().iter().map(|k| k.as_bytes().to_vec()).collect())
            .unwrap_or_default();
        if before != self.config.keyring {
            self.key_ops
                .push_notice(KeyNotice::KeyringChanged { op: op.name() });
        }
        let mut result = result.map_err(|e| e.to_string());
        if result.is_ok() && keys.len() > MAX_KEYS_LISTED {
            result = Err(format!(
                "{} keys installed; only the first {MAX_KEYS_LISTED} are listed",
                keys.len()
            ));
        }
        KeyAnswer { result, keys }
    }

    /// A datagram from `from` could not be decrypted: tell the driver
    /// (rate-limited).
    pub(super) fn notice_undecryptable(&mut self, now: Instant, from: SocketAddr) {
        self.key_ops
            .notice(now, 0, from, KeyNotice::CannotDecrypt(from));
    }

    /// A probe of `node` at `addr` failed although its datagrams reached
    /// us meanwhile: tell the driver (rate-limited).
    pub(super) fn notice_probes_unanswered(&mut self, now: Instant, node: &str, addr: SocketAddr) {
        let notice = KeyNotice::ProbesUnanswered {
            node: node.to_string(),
            addr,
        };
        self.key_ops.notice(now, 1, addr, notice);
    }
}
