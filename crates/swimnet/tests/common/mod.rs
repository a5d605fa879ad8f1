//! Helpers for the interop tests against real Serf agents (Debian `serf`,
//! memberlist 0.2.2 inside): process guards, agents on their own loopback
//! addresses, membership and stats queries, bounded polling, a background
//! membership monitor and log checks.
//!
//! Network rule: every socket here is on 127.0.0.0/8. Each test gets its own
//! `127.0.<net>.0/24`; every agent gets its own address in it and the default
//! ports (gossip 7946, serf RPC 7373, swimnet API 7380).
//!
//! Every process started here is owned by a [`Proc`] whose `Drop` kills it
//! (SIGKILL; graceful stops are explicit), also when the test panics. When
//! `setpriv` is available, agents are also started with a parent-death signal
//! (SIGKILL), so they die with the test thread even if the test process is
//! killed and no destructor runs. Their PIDs are written to a pid file in the
//! test's log directory; the next run of the same test kills any that are
//! still alive (checked by PID and command line) before it starts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Gossip port of every agent (memberlist's default).
pub const GOSSIP_PORT: u16 = 7946;
/// serf's RPC port (on the agent's own IP).
pub const SERF_RPC_PORT: u16 = 7373;
/// swimnet's HTTP API port (on the agent's own IP).
pub const SWIM_API_PORT: u16 = 7380;

const INSTALL_HINT: &str =
    "install the `serf` Debian package (apt-get update && apt-get install -y serf), \
     or point SERF_BIN at a serf 0.9.4 binary";

mod env;
mod members;
mod monitor;
mod poll;
mod process;
pub mod procstat;
mod raw_packets;
mod serf;
mod serf_logs;
mod swim;
mod timing;

// Each test binary uses some of these: the rest would warn as unused.
#[allow(unused_imports)]
pub use {
    env::*, members::*, monitor::*, poll::*, process::*, raw_packets::*, serf::*, serf_logs::*,
    swim::*, timing::*,
};
