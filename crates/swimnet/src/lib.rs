//! The swimnet agent: the membership core driven on real sockets, with a
//! local HTTP API, Serf compatibility, and the CLI's client.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod client;
pub mod demo;
pub mod diag;
pub mod driver;
pub mod keyfile;
pub mod serf_hook;
