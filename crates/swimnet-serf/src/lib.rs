//! Serf compatibility for swimnet (sans-IO).
//!
//! A swimnet node that joins a [Serf](https://github.com/hashicorp/serf)
//! 0.9.4 cluster needs more than memberlist's protocol to be a well-behaved
//! member. Serf runs on top of memberlist: it keeps its own state in
//! memberlist's node metadata, user messages and push/pull user state, and
//! a node that ignores them shows up in Serf as failed or without tags. So
//! this crate gives a swimnet node:
//!
//! * delegate protocol versions within Serf's range
//!   ([`PROTOCOL_VERSION_MIN`]..=[`PROTOCOL_VERSION_MAX`]), set in the core's
//!   config;
//! * its tags in the node metadata ([`tags`]);
//! * Serf's messages inside memberlist user messages ([`messages`]): it
//!   keeps Serf's Lamport clocks current ([`LamportClock`]), answers Serf's
//!   internal key queries (`serf keys ...`) and acks, and re-broadcasts what
//!   it sees as Serf nodes do;
//! * Serf's user events and queries both ways ([`query`]): queries sent
//!   with filters and Serf's default timeout, their acks and answers
//!   collected ([`SerfNode::query`], [`SerfNode::query_status`]), received
//!   user queries handed out as [`SerfEvent::Query`] and answered with
//!   [`SerfNode::respond_query`], cluster-wide key operations with Serf's
//!   own key queries ([`SerfNode::start_key_query`], [`KeyReport`]),
//!   runtime tags ([`SerfNode::set_tags`]) and force-leave
//!   ([`SerfNode::force_leave`]);
//! * a leave intent before the memberlist leave, so that Serf shows it
//!   `left` rather than `failed`.
//!
//! [`SerfDelegate`] implements [`swimnet_core::Delegate`] with all of that.
//! Like the core, it does no IO and reads no clock: what it cannot do from
//! inside the core's handlers (touch the keyring, send a packet) comes out as
//! [`SerfAction`]s. [`SerfNode`] owns a core with that delegate and carries
//! the actions out itself, runs Serf's graceful leave (intent, grace
//! period, memberlist leave) on its own timer and is driven, like every
//! swimnet node, through [`swimnet_core::SansIoNode`].
//!
//! Wire details (type codes, field names, query names, response layouts)
//! were taken from reading serf 0.9.4's Go source and checked against
//! vectors produced by that source (see the tests).
//!
//! A Serf message is the payload of a memberlist user message: a type byte
//! and a go-msgpack body, declared once per struct in [`messages`]:
//!
//! ```
//! use swimnet_serf::messages::{Message, SerfMessage, UserEvent};
//!
//! let event = UserEvent {
//!     ltime: 3,
//!     name: "deploy".into(),
//!     payload: b"v2".to_vec(),
//!     cc: false,
//! };
//! let bytes = event.encode();
//! assert_eq!(bytes[0], 3); // messageUserEventType
//! assert_eq!(UserEvent::decode(&bytes).unwrap(), event);
//! assert_eq!(Message::decode(&bytes).unwrap(), Message::UserEvent(event));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod delegate;
pub mod error;
pub mod lamport;
pub mod messages;
mod node;
pub mod query;
pub mod tags;

pub use delegate::{
    key_query_name, no_keyring_message, KeyOp, QueryReply, SerfAction, SerfConfig, SerfCounters,
    SerfDelegate, CONFLICT_QUERY, INSTALL_KEY_QUERY, INTERNAL_QUERY_PREFIX, LIST_KEYS_QUERY,
    MIN_ENCODED_KEY_LENGTH, PING_QUERY, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN,
    REMOVE_KEY_QUERY, USER_EVENT_SIZE_LIMIT, USE_KEY_QUERY,
};
pub use error::{ForceLeaveError, SerfError, TagsError, UserEventError};
pub use lamport::{LamportClock, LamportTime};
pub use node::{KeyringSaver, RecentEvent, SerfEvent, SerfNode, MAX_RECENT_EVENTS};
pub use query::{
    IncomingQuery, KeyReport, NodeResponse, QueryError, QueryHandle, QueryParams, QueryStatus,
};
pub use tags::{check_tags, decode_tags, encode_tags, encoded_tags_len, try_decode_tags};
