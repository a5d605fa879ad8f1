//! Event handlers (`swimnet agent --event-handler [FILTER=]PATH`): a
//! program run for each event, with Serf's conventions so Serf handler
//! scripts work unchanged.
//!
//! - It runs as `/bin/sh -c PATH` in its own process group, with the
//!   agent's environment plus `SERF_EVENT` (Serf's types only),
//!   `SWIMNET_EVENT` (every type), `SERF_SELF_NAME`/`SWIMNET_SELF_NAME`,
//!   `SERF_SELF_ROLE`, one `SERF_TAG_<NAME>` per tag of this node (the
//!   name upper-cased, characters other than `A-Z0-9_` as `_`),
//!   `SERF_USER_EVENT`/`SERF_USER_LTIME` for user events,
//!   `SERF_QUERY_NAME`/`SERF_QUERY_LTIME` for queries, and
//!   `SWIMNET_NETWORK`, `SWIMNET_TABLE`, `SWIMNET_KEY`, `SWIMNET_NODE` for
//!   table and network events.
//! - On stdin: for member events one line `NAME\tIP\tROLE\tTAGS` (tabs and
//!   newlines in name, role and tags written `\t`, `\n`; tags as
//!   `k=v,k2=v2`); for user events and queries the payload (a newline
//!   added when it has none); for table events the value (the previous one
//!   for a delete), as is.
//! - It is killed (its whole process group) when it runs longer than the
//!   handler timeout, or when the agent stops while it runs. Its stdout and stderr are kept up to
//!   [`OUTPUT_CAP`] bytes each and logged; for a query, its stdout is the
//!   response.
//!
//! Handlers run one at a time on a worker task fed by a bounded queue
//! ([`QUEUE_LEN`]); the driver never waits for it: when the queue is full
//! the event is dropped for the handlers and counted
//! (`handler_queue_dropped`).

#![allow(unsafe_code)]

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::agent_events::{AgentEvent, EventCounters, EventFilter, HandlerJob, SelfInfo};
use crate::commands::Command;
use crate::escape::esc;

/// Events waiting for the handlers; more are dropped.
pub const QUEUE_LEN: usize = 256;

/// Bytes of a handler's stdout (and, apart, of its stderr) kept; the rest
/// is read and dropped. Serf keeps 8 KiB.
pub const OUTPUT_CAP: usize = 8 * 1024;

/// The default `--event-handler-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One `--event-handler [FILTER=]PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerSpec {
    /// The events it is run for.
    pub filter: EventFilter,
    /// What `/bin/sh -c` runs.
    pub command: String,
}

impl HandlerSpec {
    /// Parses `[FILTER=]PATH` as Serf does: what comes before the first
    /// `=` is the filter (see [`EventFilter`]); without one, every event.
    pub fn parse(text: &str) -> Result<HandlerSpec, String> {
        let (filter, command) = match text.split_once('=') {
            Some((f, c)) => (
                EventFilter::parse(f).map_err(|e| format!("--event-handler {text:?}: {e}"))?,
                c,
            ),
            None => (EventFilter::default(), text),
        };
        if command.trim().is_empty() {
            return Err(format!(
                "--event-handler {text:?}: give the program to run, e.g. member-join=/usr/local/bin/on-join"
            ));
        }
        Ok(HandlerSpec {
            filter,
            command: command.to_string(),
        })
    }
}

/// The handlers and their timeout.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    /// Every `--event-handler`, in order.
    pub handlers: Vec<HandlerSpec>,
    /// A handler still running after this is killed.
    pub timeout: Duration,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            handlers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Starts the handler worker and returns its queue, or `None` when no
/// handler is configured. `commands` carries query responses to the
/// driver. Call from inside a tokio runtime; the worker ends when the
/// queue's sender is dropped.
pub fn spawn(
    config: HandlerConfig,
    commands: mpsc::Sender<Command>,
    counters: Arc<EventCounters>,
) -> Option<mpsc::Sender<HandlerJob>> {
    if config.handlers.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<HandlerJob>(QUEUE_LEN);
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            for spec in config
                .handlers
                .iter()
                .filter(|h| h.filter.matches(&job.event))
            {
                let out = run(spec, &job, config.timeout, &counters).await;
                if let (Some(stdout), AgentEvent::Query { id, name, .. }) = (out, &job.event) {
                    respond(&commands, *id, name, stdout).await;
                }
            }
        }
    });
    Some(tx)
}

/// Sends a query handler's output as the response.
async fn respond(commands: &mpsc::Sender<Command>, id: u64, name: &str, payload: Vec<u8>) {
    if payload.is_empty() {
        return;
    }
    let (reply, rx) = oneshot::channel();
    if commands
        .send(Command::RespondQuery { id, payload, reply })
        .await
        .is_err()
    {
        return;
    }
    if let Ok(Err(e)) = rx.await {
        tracing::warn!(query = %esc(name), error = %esc(&e), "could not respond to a query with the handler's output");
    }
}

/// `SERF_TAG_` + the tag name upper-cased, anything but `A-Z0-9_` as `_`.
pub fn tag_env_name(tag: &str) -> String {
    let clean: String = tag
        .to_uppercase()
        .chars()
        .map(|c| {
            if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("SERF_TAG_{clean}")
}

/// Serf's `eventClean`: tabs and newlines written as `\t`, `\n`.
fn clean(v: &str) -> String {
    v.replace('\t', "\\t").replace('\n', "\\n")
}

/// An environment value without NUL (which no environment can hold).
fn env_value(v: &str) -> String {
    v.replace('\0', "\\x00")
}

/// The environment variables of one invocation (added to the agent's).
pub fn handler_env(event: &AgentEvent, me: &SelfInfo) -> Vec<(String, String)> {
    let kind = event.kind();
    let mut env = vec![
        ("SWIMNET_EVENT".to_string(), kind.to_string()),
        ("SERF_SELF_NAME".to_string(), me.name.clone()),
        ("SWIMNET_SELF_NAME".to_string(), me.name.clone()),
        (
            "SERF_SELF_ROLE".to_string(),
            me.tags.get("role").cloned().unwrap_or_default(),
        ),
    ];
    if !kind.starts_with("table-") && !kind.starts_with("network-") {
        env.push(("SERF_EVENT".into(), kind.into()));
    }
    for (k, v) in &me.tags {
        env.push((tag_env_name(k), v.clone()));
    }
    match event {
        AgentEvent::User { name, ltime, .. } => {
            env.push(("SERF_USER_EVENT".into(), name.clone()));
            env.push(("SERF_USER_LTIME".into(), ltime.to_string()));
        }
        AgentEvent::Query { name, ltime, .. } => {
            env.push(("SERF_QUERY_NAME".into(), name.clone()));
            env.push(("SERF_QUERY_LTIME".into(), ltime.to_string()));
        }
        AgentEvent::Table(c) => {
            env.push(("SWIMNET_NETWORK".into(), c.network_id.clone()));
            env.push(("SWIMNET_TABLE".into(), c.table.clone()));
            env.push(("SWIMNET_KEY".into(), c.key.clone()));
        }
        AgentEvent::Network { network, node, .. } => {
            env.push(("SWIMNET_NETWORK".into(), network.clone()));
            env.push(("SWIMNET_NODE".into(), node.clone()));
        }
        AgentEvent::Member { .. } => {}
    }
    env.into_iter().map(|(k, v)| (k, env_value(&v))).collect()
}

/// What an invocation gets on stdin.
pub fn handler_stdin(event: &AgentEvent) -> Vec<u8> {
    match event {
        AgentEvent::Member { node, .. } => {
            let tags = swimnet_serf::tags::decode_tags(&node.meta);
            let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "{}\t{}\t{}\t{}\n",
                clean(&node.name),
                node.addr.ip(),
                clean(tags.get("role").map_or("", String::as_str)),
                clean(&pairs.join(","))
            )
            .into_bytes()
        }
        AgentEvent::User { payload, .. } | AgentEvent::Query { payload, .. } => {
            let mut p = payload.clone();
            if p.last().is_some_and(|b| *b != b'\n') {
                p.push(b'\n');
            }
            p
        }
        AgentEvent::Table(c) => c
            .value
            .clone()
            .or_else(|| c.prev.clone())
            .unwrap_or_default(),
        AgentEvent::Network { .. } => Vec::new(),
    }
}

/// Reads `r` to its end, keeping the first `cap` bytes; says whether more
/// came.
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut over = false;
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, over),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                over |= n > room;
            }
        }
    }
}

/// Kills a handler's process group when dropped while armed: on a
/// timeout, and when the agent stops with a handler still running.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_group(pid);
        }
    }
}

/// Kills the process group `pid` leads.
fn kill_group(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // -pid names the process group the child leads (spawned with
    // process_group(0)), which holds only the handler and its children.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Runs one handler for one event; returns its stdout when it exited
/// successfully. Failures, timeouts and truncated output are counted and
/// logged.
async fn run(
    spec: &HandlerSpec,
    job: &HandlerJob,
    timeout: Duration,
    counters: &EventCounters,
) -> Option<Vec<u8>> {
    let kind = job.event.kind();
    counters.handler_runs.fetch_add(1, Ordering::Relaxed);
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .envs(handler_env(&job.event, &job.me))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            counters.handler_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(handler = %esc(&spec.command), event = kind, error = %e, "could not start an event handler");
            return None;
        }
    };
    let mut group = GroupGuard(child.id());
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let input = handler_stdin(&job.event);
    let work = async {
        let feed = async {
            if let Some(mut s) = stdin {
                // A handler that does not read its stdin is fine.
                let _ = s.write_all(&input).await;
            }
        };
        let out = async {
            match stdout {
                Some(s) => read_capped(s, OUTPUT_CAP).await,
                None => (Vec::new(), false),
            }
        };
        let err = async {
            match stderr {
                Some(s) => read_capped(s, OUTPUT_CAP).await,
                None => (Vec::new(), false),
            }
        };
        let ((), out, err, status) = tokio::join!(feed, out, err, child.wait());
        (out, err, status)
    };
    let started = std::time::Instant::now();
    let Ok(((stdout, out_over), (stderr, err_over), status)) =
        tokio::time::timeout(timeout, work).await
    else {
        drop(group);
        counters.handler_timeouts.fetch_add(1, Ordering::Relaxed);
        counters.handler_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(handler = %esc(&spec.command), event = kind, timeout = ?timeout, "event handler ran past its timeout: killed");
        let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
        return None;
    };
    // It exited and its output is closed: nothing of it is left to kill
    // (and its process group ID may be reused).
    group.0 = None;
    let elapsed = started.elapsed();
    if out_over || err_over {
        counters
            .handler_output_truncated
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(handler = %esc(&spec.command), event = kind, cap = OUTPUT_CAP, "event handler output over the cap; the rest was dropped");
    }
    let shown = |b: &[u8]| esc(String::from_utf8_lossy(b).trim_end().to_string()).to_string();
    match status {
        Ok(s) if s.success() => {
            tracing::debug!(handler = %esc(&spec.command), event = kind, ?elapsed, stdout = %shown(&stdout), stderr = %shown(&stderr), "event handler done");
            Some(stdout)
        }
        Ok(s) => {
            counters.handler_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(handler = %esc(&spec.command), event = kind, status = %s, stderr = %shown(&stderr), "event handler failed");
            None
        }
        Err(e) => {
            counters.handler_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(handler = %esc(&spec.command), event = kind, error = %e, "could not wait for an event handler");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swimnet_core::{Node, NodeState};

    fn member(kind: &str) -> AgentEvent {
        let mut tags = std::collections::BTreeMap::new();
        tags.insert("role".to_string(), "web\tfront".to_string());
        tags.insert("dc".to_string(), "east".to_string());
        let node = Node {
            name: "node\n1".into(),
            addr: "10.0.0.5:7946".parse().unwrap(),
            meta: swimnet_serf::tags::encode_tags(&tags),
            vsn: [1, 5, 2, 2, 5, 4],
            incarnation: 1,
            state: if kind == "failed" {
                NodeState::Dead
            } else {
                NodeState::Alive
            },
        };
        let e = if kind == "failed" {
            swimnet_core::Event::Leave(node)
        } else {
            swimnet_core::Event::Join(node)
        };
        AgentEvent::from_core(&e).unwrap()
    }

    #[test]
    fn specs_parse_like_serf() {
        let s = HandlerSpec::parse("/bin/handler").unwrap();
        assert!(s.filter.matches(&member("join")));
        assert_eq!(s.command, "/bin/handler");
        let s = HandlerSpec::parse("member-failed,user:deploy=/bin/h arg=1").unwrap();
        assert_eq!(s.command, "/bin/h arg=1");
        assert!(!s.filter.matches(&member("join")));
        assert!(s.filter.matches(&member("failed")));
        assert!(HandlerSpec::parse("member-joined=/bin/h").is_err());
        assert!(HandlerSpec::parse("member-join=").is_err());
    }

    #[test]
    fn member_events_get_serf_env_and_stdin() {
        let mut me = SelfInfo {
            name: "me".into(),
            ..SelfInfo::default()
        };
        me.tags.insert("role".into(), "db".into());
        me.tags.insert("rack-id".into(), "r1".into());
        let env = handler_env(&member("failed"), &me);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("SERF_EVENT"), Some("member-failed"));
        assert_eq!(get("SWIMNET_EVENT"), Some("member-failed"));
        assert_eq!(get("SERF_SELF_NAME"), Some("me"));
        assert_eq!(get("SERF_SELF_ROLE"), Some("db"));
        assert_eq!(get("SERF_TAG_RACK_ID"), Some("r1"));
        assert_eq!(get("SERF_TAG_ROLE"), Some("db"));
        assert_eq!(
            String::from_utf8(handler_stdin(&member("join"))).unwrap(),
            "node\\n1\t10.0.0.5\tweb\\tfront\tdc=east,role=web\\tfront\n"
        );
    }

    #[test]
    fn user_table_and_network_events_get_their_fields() {
        let me = SelfInfo::default();
        let user = AgentEvent::User {
            name: "deploy".into(),
            ltime: 9,
            payload: b"v1".to_vec(),
            coalesce: true,
        };
        let env = handler_env(&user, &me);
        assert!(env.contains(&("SERF_USER_EVENT".into(), "deploy".into())));
        assert!(env.contains(&("SERF_USER_LTIME".into(), "9".into())));
        assert_eq!(handler_stdin(&user), b"v1\n");
        let table = AgentEvent::Table(swimnet_networkdb::TableChange {
            network_id: "n1".into(),
            table: "t".into(),
            key: "k\0x".into(),
            value: None,
            prev: Some(b"old".to_vec()),
            origin: swimnet_networkdb::ChangeOrigin::Remote,
        });
        let env = handler_env(&table, &me);
        assert!(env.contains(&("SWIMNET_EVENT".into(), "table-delete".into())));
        assert!(env.contains(&("SWIMNET_KEY".into(), "k\\x00x".into())));
        assert!(!env.iter().any(|(k, _)| k == "SERF_EVENT"));
        assert_eq!(handler_stdin(&table), b"old");
        assert_eq!(tag_env_name("a.b-c"), "SERF_TAG_A_B_C");
    }

    fn job(event: AgentEvent) -> HandlerJob {
        HandlerJob {
            event,
            me: SelfInfo::default(),
        }
    }

    #[tokio::test]
    async fn a_handler_past_its_timeout_is_killed_with_its_children() {
        let counters = EventCounters::default();
        let spec = HandlerSpec::parse("sleep 30 & sleep 30; echo never").unwrap();
        let started = std::time::Instant::now();
        let out = run(
            &spec,
            &job(member("join")),
            Duration::from_millis(300),
            &counters,
        )
        .await;
        assert_eq!(out, None);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not waited for: {:?}",
            started.elapsed()
        );
        assert_eq!(counters.handler_timeouts.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn output_is_capped_and_stdout_returned() {
        let counters = EventCounters::default();
        let spec = HandlerSpec::parse("cat; head -c 20000 /dev/zero >&2").unwrap();
        let user = AgentEvent::User {
            name: "n".into(),
            ltime: 1,
            payload: b"hello".to_vec(),
            coalesce: false,
        };
        let out = run(&spec, &job(user), Duration::from_secs(10), &counters).await;
        assert_eq!(out.as_deref(), Some(&b"hello\n"[..]));
        assert_eq!(counters.handler_output_truncated.load(Ordering::Relaxed), 1);
        let failing = HandlerSpec::parse("exit 3").unwrap();
        let out = run(
            &failing,
            &job(member("join")),
            Duration::from_secs(10),
            &counters,
        )
        .await;
        assert_eq!(out, None);
        assert_eq!(counters.handler_failures.load(Ordering::Relaxed), 1);
    }
}
