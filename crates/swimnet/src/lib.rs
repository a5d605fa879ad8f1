//! The swimnet agent: the membership core driven on real sockets, with a
//! local HTTP API, Serf compatibility, and the CLI's client.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod agent;
pub mod agent_events;
pub mod agent_node;
pub mod api;
pub mod api_events;
pub mod api_keys;
pub mod api_metrics;
pub mod api_overlay;
pub mod api_serf;
pub mod api_server;
pub mod client;
pub mod cluster_keys;
pub mod commands;
pub mod demo;
pub mod diag;
pub mod driver;
pub mod escape;
pub mod event_handler;
pub mod event_log;
pub mod fdlimit;
pub mod figures;
pub mod http_guard;
pub mod join;
pub mod keyfile;
pub mod memory;
pub mod metrics;
pub mod overlay;
pub mod resolve;
pub mod serf_cmd;
pub mod snapshot;
mod stream_io;
