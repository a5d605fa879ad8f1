//! Cluster-wide key operations for plain memberlist and NetworkDB clusters
//! (swimnet addition; Serf clusters use Serf's own key queries instead).
//!
//! A node asks every live member to install, use or remove a key, or to
//! list its keys, and collects the answers until a timeout
//! ([`crate::Memberlist::start_key_op`]). Requests and answers travel as
//! memberlist *user messages* in datagrams, starting with [`MAGIC`]. Other
//! programs drop them without harm: Go memberlist hands user messages to
//! its delegate, Docker's NetworkDB fails to decode them as a protobuf
//! gossip message (the first byte, `0xFF`, is not a valid protobuf field
//! tag) and logs one line, Serf logs an unknown message type.
//!
//! Only datagrams that were decrypted with a key of our keyring carry key
//! operations: a request or answer that arrived in plaintext is refused and
//! counted ([`crate::Stats::key_ops_refused`]), so only holders of a
//! cluster key can change keyrings.
//!
//! Request: `MAGIC 0x01 op id:u64 key_len:u8 key`. Answer: `MAGIC 0x02 id:u64
//! status:u8 err_len:u8 err count:u8 (key_len:u8 key)*`, big-endian, exact
//! lengths; anything else is malformed.

use std::collections::BTreeMap;

/// First bytes of every key-operation user message (`0xFF`, then "swk",
/// then format version 1).
pub const MAGIC: [u8; 5] = [0xFF, b's', b'w', b'k', 1];

/// Most keys an answer lists; a node with more keys reports the first ones
/// and an error.
pub const MAX_KEYS_LISTED: usize = 32;

/// Longest error text an answer carries (longer ones are cut).
pub const MAX_ERROR_LEN: usize = 200;

const KIND_REQUEST: u8 = 1;
const KIND_ANSWER: u8 = 2;

/// A keyring operation applied to every live member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOp {
    /// Add this key to every keyring (not as primary).
    Install(Vec<u8>),
    /// Make this installed key the primary everywhere.
    Use(Vec<u8>),
    /// Remove this key everywhere (it must not be anyone's primary).
    Remove(Vec<u8>),
    /// Report every member's keys.
    List,
}

impl KeyOp {
    /// The operation's name: `install`, `use`, `remove` or `list`.
    pub fn name(&self) -> &'static str {
        match self {
            KeyOp::Install(_) => "install",
            KeyOp::Use(_) => "use",
            KeyOp::Remove(_) => "remove",
            KeyOp::List => "list",
        }
    }

    fn code_and_key(&self) -> (u8, &[u8]) {
        match self {
            KeyOp::Install(k) => (1, k),
            KeyOp::Use(k) => (2, k),
            KeyOp::Remove(k) => (3, k),
            KeyOp::List => (4, &[]),
        }
    }
}

/// One member's answer to a key operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAnswer {
    /// `Err` with the member's reason when it could not apply the operation.
    pub result: Result<(), String>,
    /// The member's keys after the operation, primary first (at most
    /// [`MAX_KEYS_LISTED`]).
    pub keys: Vec<Vec<u8>>,
}

/// The outcome of a cluster-wide key operation, from
/// [`crate::Memberlist::poll_key_op_outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOpOutcome {
    /// The id [`crate::Memberlist::start_key_op`] returned.
    pub id: u64,
    /// The operation.
    pub op: KeyOp,
    /// Answers by node name, ours included.
    pub answers: BTreeMap<String, KeyAnswer>,
    /// Live members asked (ours included) that did not answer in time.
    pub missing: Vec<String>,
}

impl KeyOpOutcome {
    /// Members asked, ours included.
    pub fn total(&self) -> usize {
        self.answers.len() + self.missing.len()
    }
}

/// Signs of a keyring mismatch, rate-limited per peer (see
/// [`crate::Memberlist::poll_key_notice`]), for the driver to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyNotice {
    /// A datagram from this address could not be decrypted with any key of
    /// our keyring (or was plaintext while we require encryption).
    CannotDecrypt(std::net::SocketAddr),
    /// With encryption on, a probe of this member failed although
    /// datagrams from its address reached us during the probe: it may be
    /// unable to decrypt what we
    /// send (our primary key is missing from its keyring), or the path to
    /// it is one-way.
    ProbesUnanswered {
        /// The member's name.
        node: String,
        /// Its address.
        addr: std::net::SocketAddr,
    },
    /// A key operation changed our keyring (persist it).
    KeyringChanged {
        /// `install`, `use` or `remove`.
        op: &'static str,
    },
}

/// A decoded key-operation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOpMessage {
    /// Apply `op` and answer with `id`.
    Request {
        /// The requester's operation id.
        id: u64,
        /// What to do.
        op: KeyOp,
    },
    /// A member's answer to request `id`.
    Answer {
        /// The request's id.
        id: u64,
        /// The member's result and keys.
        answer: KeyAnswer,
    },
}

/// True when a user message is a key-operation message (starts with [`MAGIC`]).
pub fn is_key_op_message(msg: &[u8]) -> bool {
    msg.starts_with(&MAGIC)
}

/// Encodes a request for `op` with `id` (a user message's payload).
pub fn encode_request(id: u64, op: &KeyOp) -> Vec<u8> {
    let (code, key) = op.code_and_key();
    let mut out = Vec::with_capacity(MAGIC.len() + 11 + key.len());
    out.extend_from_slice(&MAGIC);
    out.push(KIND_REQUEST);
    out.push(code);
    out.extend_from_slice(&id.to_be_bytes());
    out.push(key.len() as u8);
    out.extend_from_slice(key);
    out
}

/// Encodes an answer to request `id` (a user message's payload); the error
/// text is cut to [`MAX_ERROR_LEN`] bytes and the keys to [`MAX_KEYS_LISTED`].
pub fn encode_answer(id: u64, answer: &KeyAnswer) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + answer.keys.len() * 33);
    out.extend_from_slice(&MAGIC);
    out.push(KIND_ANSWER);
    out.extend_from_slice(&id.to_be_bytes());
    let err = match &answer.result {
        Ok(()) => "",
        Err(e) => e.as_str(),
    };
    let mut cut = err.len().min(MAX_ERROR_LEN);
    while !err.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push(u8::from(answer.result.is_err()));
    out.push(cut as u8);
    out.extend_from_slice(&err.as_bytes()[..cut]);
    let keys = &answer.keys[..answer.keys.len().min(MAX_KEYS_LISTED)];
    out.push(keys.len() as u8);
    for k in keys {
        out.push(k.len() as u8);
        out.extend_from_slice(k);
    }
    out
}

/// A cursor over a message that fails on reading past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    fn key(&mut self) -> Option<Vec<u8>> {
        let n = usize::from(self.u8()?);
        if !matches!(n, 16 | 24 | 32) {
            return None;
        }
        self.take(n).map(<[u8]>::to_vec)
    }
}

/// Decodes a key-operation message; `None` when it is malformed (wrong
/// magic, unknown kind or op, a key of a length AES does not use, too many
/// keys, bytes left over).
pub fn decode(msg: &[u8]) -> Option<KeyOpMessage> {
    let mut r = Reader(msg.strip_prefix(&MAGIC[..])?);
    let decoded = match r.u8()? {
        KIND_REQUEST => {
            let code = r.u8()?;
            let id = r.u64()?;
            let op = match code {
                1 => KeyOp::Install(r.key()?),
                2 => KeyOp::Use(r.key()?),
                3 => KeyOp::Remove(r.key()?),
                4 if r.u8()? == 0 => KeyOp::List,
                _ => return None,
            };
            KeyOpMessage::Request { id, op }
        }
        KIND_ANSWER => {
            let id = r.u64()?;
            let failed = r.u8()?;
            let err_len = usize::from(r.u8()?);
            let err = String::from_utf8_lossy(r.take(err_len)?).into_owned();
            let result = match failed {
                0 if err_len == 0 => Ok(()),
                1 => Err(err),
                _ => return None,
            };
            let count = usize::from(r.u8()?);
            if count > MAX_KEYS_LISTED {
                return None;
            }
            let keys = (0..count).map(|_| r.key()).collect::<Option<Vec<_>>>()?;
            KeyOpMessage::Answer {
                id,
                answer: KeyAnswer { result, keys },
            }
        }
        _ => return None,
    };
    r.0.is_empty().then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_keys_are_refused() {
        for op in [
            KeyOp::Install(vec![1; 32]),
            KeyOp::Use(vec![2; 16]),
            KeyOp::Remove(vec![3; 24]),
            KeyOp::List,
        ] {
            let bytes = encode_request(7, &op);
            assert!(is_key_op_message(&bytes));
            assert_eq!(decode(&bytes), Some(KeyOpMessage::Request { id: 7, op }));
        }
        let bad_len = encode_request(1, &KeyOp::Install(vec![1; 20]));
        assert_eq!(decode(&bad_len), None);
        let mut trailing = encode_request(1, &KeyOp::List);
        trailing.push(0);
        assert_eq!(decode(&trailing), None);
    }

    #[test]
    fn answers_round_trip_and_truncations_are_malformed() {
        let answer = KeyAnswer {
            result: Err("keyring: cannot remove the primary key".into()),
            keys: vec![vec![1; 32], vec![2; 16]],
        };
        let bytes = encode_answer(9, &answer);
        assert_eq!(
            decode(&bytes),
            Some(KeyOpMessage::Answer {
                id: 9,
                answer: answer.clone()
            })
        );
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n]), None, "prefix of {n} bytes");
        }
        let ok = KeyAnswer {
            result: Ok(()),
            keys: vec![],
        };
        assert_eq!(
            decode(&encode_answer(3, &ok)),
            Some(KeyOpMessage::Answer { id: 3, answer: ok })
        );
    }

    #[test]
    fn long_errors_and_many_keys_are_cut_to_the_limits() {
        let answer = KeyAnswer {
            result: Err("é".repeat(300)),
            keys: vec![vec![5; 16]; MAX_KEYS_LISTED + 5],
        };
        let Some(KeyOpMessage::Answer { answer: got, .. }) = decode(&encode_answer(1, &answer))
        else {
            panic!("answer did not decode");
        };
        assert!(got.result.unwrap_err().len() <= MAX_ERROR_LEN);
        assert_eq!(got.keys.len(), MAX_KEYS_LISTED);
    }
}
