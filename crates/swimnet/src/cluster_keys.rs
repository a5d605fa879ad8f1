//! Cluster-wide key management, the agent's side: what `swimnet keys` and
//! `/v1/cluster/keys` ask for ([`KeyOp`]) and what they answer
//! ([`KeyOpReport`]), the driver's bookkeeping of the one operation in
//! flight ([`KeyOpWaiter`]), and the log lines for keyring mismatches.
//!
//! How a node kind carries an operation out is behind
//! [`crate::agent_node::AgentNode::start_key_op`] and
//! [`crate::agent_node::AgentNode::poll_key_report`]: plain memberlist and
//! NetworkDB nodes use swimnet's own authenticated key messages
//! ([`swimnet_core::key_ops`]); Serf nodes will use Serf's key queries.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use swimnet_core::key_ops::KeyOp;
use swimnet_core::key_ops::{KeyNotice, KeyOpOutcome};
use swimnet_core::wire::security::Keyring;
use tokio::sync::oneshot;

use crate::keyfile::{encode_key, KeyringFile};

/// How long a cluster-wide key operation waits for answers by default.
pub const DEFAULT_KEY_OP_TIMEOUT: Duration = Duration::from_secs(5);

/// The failure text of a member that did not answer in time.
pub const NO_ANSWER: &str = "no answer before the timeout";

/// What a cluster-wide key operation found, as `serf keys` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOpReport {
    /// Members that answered (this node included).
    pub responded: usize,
    /// Members asked: every alive or suspect member, this node included.
    pub total: usize,
    /// By node name: why the operation failed there, or [`NO_ANSWER`].
    pub failures: BTreeMap<String, String>,
    /// Every key seen (base64) and how many answering members hold it.
    pub keys: BTreeMap<String, usize>,
}

impl KeyOpReport {
    /// True when every member answered and none failed.
    pub fn all_ok(&self) -> bool {
        self.responded == self.total && self.failures.is_empty()
    }

    /// One line per failure, `NODE: ERROR`, sorted by node.
    pub fn failure_lines(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(|(n, e)| format!("{}: {}", crate::escape::esc(n), crate::escape::esc(e)))
            .collect()
    }
}

impl From<KeyOpOutcome> for KeyOpReport {
    fn from(o: KeyOpOutcome) -> Self {
        let mut report = KeyOpReport {
            responded: o.answers.len(),
            total: o.total(),
            ..KeyOpReport::default()
        };
        for (node, answer) in o.answers {
            if let Err(e) = answer.result {
                report.failures.insert(node, e);
            }
            for k in answer.keys {
                *report.keys.entry(encode_key(&k)).or_default() += 1;
            }
        }
        for node in o.missing {
            report.failures.insert(node, NO_ANSWER.into());
        }
        report
    }
}

/// Why `use` was refused after its list round: `None` when every member
/// answered and holds `key`.
pub fn use_refusal(list: &KeyOpReport, key: &[u8]) -> Option<String> {
    let b64 = encode_key(key);
    let holders = list.keys.get(&b64).copied().unwrap_or(0);
    if list.all_ok() && holders == list.total {
        return None;
    }
    let mut why = format!(
        "refusing to use the key: {holders}/{} members hold it and {}/{} answered the check",
        list.total, list.responded, list.total
    );
    if !list.failures.is_empty() {
        why.push_str(&format!(" ({})", list.failure_lines().join("; ")));
    }
    why.push_str(": install it on every member first");
    Some(why)
}

/// The driver's caller waiting for the key operation in flight.
#[derive(Debug, Default)]
pub(crate) struct KeyOpWaiter {
    waiting: Option<(u64, oneshot::Sender<Result<KeyOpReport, String>>)>,
}

impl KeyOpWaiter {
    /// Call when operation `id` has started; `reply` gets its report.
    pub(crate) fn wait(&mut self, id: u64, reply: oneshot::Sender<Result<KeyOpReport, String>>) {
        self.waiting = Some((id, reply));
    }

    /// Call with every report the node gives; answers the waiting caller.
    pub(crate) fn on_report(&mut self, id: u64, report: KeyOpReport) {
        if self.waiting.as_ref().is_some_and(|(w, _)| *w == id) {
            if let Some((_, tx)) = self.waiting.take() {
                let _ = tx.send(Ok(report));
            }
        }
    }
}

/// Logs a keyring-mismatch notice, and persists the keyring to `file`
/// after a key operation changed it.
pub(crate) fn on_key_notice(notice: KeyNotice, ring: Option<&Keyring>, file: Option<&KeyringFile>) {
    match notice {
        KeyNotice::CannotDecrypt(addr) => tracing::warn!(
            %addr,
            "cannot decrypt packets from {addr}: its primary key is not in our keyring (further ones from it are not logged for a minute)"
        ),
        KeyNotice::ProbesUnanswered { node, addr } => tracing::warn!(
            node = %crate::escape::esc(&node),
            %addr,
            "probes to this member go unanswered although its packets reach us: it may be unable to decrypt our packets (our primary key missing from its keyring) or the path to it is one-way"
        ),
        KeyNotice::KeyringChanged { op } => {
            tracing::info!(op, "keyring changed by a cluster-wide key operation");
            if let (Some(ring), Some(file)) = (ring, file) {
                let keys: Vec<Vec<u8>> =
                    ring.keys().iter().map(|k| k.as_bytes().to_vec()).collect();
                if let Err(e) = file.save(&keys) {
                    tracing::error!(error = %crate::escape::esc(&e), "could not persist the keyring");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swimnet_core::key_ops::KeyAnswer;

    fn outcome() -> KeyOpOutcome {
        let ok = |keys: Vec<Vec<u8>>| KeyAnswer {
            result: Ok(()),
            keys,
        };
        let mut answers = BTreeMap::new();
        answers.insert("a".into(), ok(vec![vec![1; 16], vec![2; 16]]));
        answers.insert("b".into(), ok(vec![vec![1; 16]]));
        answers.insert(
            "c".into(),
            KeyAnswer {
                result: Err("keyring: no such key".into()),
                keys: vec![vec![1; 16]],
            },
        );
        KeyOpOutcome {
            id: 1,
            op: KeyOp::List,
            answers,
            missing: vec!["d".into()],
        }
    }

    #[test]
    fn a_report_counts_answers_keys_and_failures() {
        let r = KeyOpReport::from(outcome());
        assert_eq!((r.responded, r.total), (3, 4));
        assert_eq!(r.keys[&encode_key(&[1; 16])], 3);
        assert_eq!(r.keys[&encode_key(&[2; 16])], 1);
        assert_eq!(r.failures["c"], "keyring: no such key");
        assert_eq!(r.failures["d"], NO_ANSWER);
        assert!(!r.all_ok());
    }

    #[test]
    fn use_is_refused_unless_every_member_answered_and_holds_the_key() {
        let mut r = KeyOpReport::from(outcome());
        let why = use_refusal(&r, &[2; 16]).unwrap();
        assert!(why.contains("1/4 members hold it"), "{why}");
        assert!(why.contains("d: no answer"), "{why}");
        r.failures.clear();
        r.responded = 4;
        r.keys.insert(encode_key(&[2; 16]), 4);
        assert_eq!(use_refusal(&r, &[2; 16]), None);
        assert!(use_refusal(&r, &[3; 16]).is_some());
    }
}
