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
}
