//! Errors returned to the local caller (misuse or a failed command).
//! A peer's bad input is never an error here: it is counted in
//! [`crate::Stats`] and dropped.

/// What went wrong with a local command or the configuration.
///
/// No variant leaves the core half-changed: when a command returns an error,
/// the state is as it was before the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work; the text says which setting to fix.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Node metadata is over memberlist's 512-byte limit.
    #[error(
        "node metadata is {len} bytes, over the {max}-byte limit: shorten the tags or metadata"
    )]
    MetaTooLarge {
        /// Size of the metadata that was refused.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The node has left the cluster; it takes no more membership commands.
    #[error("this node has left the cluster")]
    Left,
    /// A key command was given but encryption is not configured.
    #[error("encryption is not enabled on this node: start it with a key first")]
    NoKeyring,
    /// A keyring change was refused (unknown key, removing the primary, bad length).
    #[error("keyring: {0}")]
    Keyring(String),
    /// A cluster-wide key operation could not start; the text says why.
    #[error("{0}")]
    KeyOp(String),
}

/// Why a peer's push/pull state was not merged (reported in
/// [`crate::Event::MergeRefused`] and inside a failed join).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeRefusal {
    /// A live member in it speaks protocol or delegate versions this node
    /// cannot work with; the text names the member and the ranges.
    #[error("{0}")]
    IncompatibleVersions(String),
    /// The delegate vetoed the merge ([`crate::Delegate::notify_merge`]).
    #[error("{0}")]
    Vetoed(Veto),
    /// The cluster we tried to join already has a live node by our name at
    /// another address (only checked when joining).
    #[error("the node name {name:?} is already taken by a live member at {holder}: give this node another name")]
    NameTaken {
        /// Our node name.
        name: String,
        /// Where the member holding it is.
        holder: std::net::SocketAddr,
    },
}

/// Why a join through one address failed (reported in
/// [`crate::Event::JoinResult`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The exchange did not complete: refused, failed, timed out or closed;
    /// the text says which.
    #[error("{0}")]
    Stream(String),
    /// The peer answered with an error message (its text).
    #[error("remote error: {0}")]
    Remote(String),
    /// The peer answered with something other than a push/pull.
    #[error("unexpected reply to push/pull")]
    UnexpectedReply,
    /// The peer's state was not merged.
    #[error(transparent)]
    Refused(#[from] MergeRefusal),
}

/// A delegate's refusal of an alive message or of a join's merge, with the
/// reason it gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Veto(pub String);
