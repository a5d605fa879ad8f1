//! `swimnet info [--format json]`: the figures of `GET /v1/stats` (the same
//! ones `GET /metrics` exports), printed for a person: identity, members by
//! status, health, traffic by message kind, queue depths, NetworkDB's
//! networks or Serf's queue, and the limit counters that are not zero.

use std::fmt::Write;

use serde_json::Value;
use swimnet::client::Client;

/// Runs `swimnet info`: prints the agent's `/v1/stats` as text, or as
/// indented JSON when `json`.
pub fn run(client: Client, json: bool) -> Result<(), String> {
    let v: Value = client.get("/v1/stats")?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", text(&v));
    }
    Ok(())
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `1536` -> `1.5 KiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The `/v1/stats` body `v` as the text `swimnet info` prints.
fn text(v: &Value) -> String {
    let s = &v["stats"];
    let mut out = String::new();
    let status = if v["leaving"].as_bool() == Some(true) {
        "leaving"
    } else {
        "running"
    };
    let _ = writeln!(out, "node:        {}", v["name"].as_str().unwrap_or("?"));
    let _ = writeln!(
        out,
        "protocol:    {}",
        v["protocol"].as_str().unwrap_or("?")
    );
    let _ = writeln!(out, "status:      {status}");
    let _ = writeln!(out, "incarnation: {}", num(&v["incarnation"]));
    let _ = writeln!(
        out,
        "health:      score {} (0 is healthy)",
        num(&v["health_score"])
    );
    let m = &v["members"];
    let _ = writeln!(
        out,
        "members:     {} alive, {} suspect, {} failed, {} left",
        num(&m["alive"]),
        num(&m["suspect"]),
        num(&m["failed"]),
        num(&m["left"])
    );
    let _ = writeln!(
        out,
        "queues:      {} gossip broadcast(s) waiting",
        num(&v["broadcast_queue"])
    );
    let _ = writeln!(
        out,
        "failure detection: probes {} ok ({} indirect, {} over TCP), {} failed; {} suspicion(s), {} refutation(s), {} dead verdict(s)",
        num(&s["probes_ok"]),
        num(&s["probes_indirect"]),
        num(&s["probes_tcp_rescued"]),
        num(&s["probes_failed"]),
        num(&s["suspicions"]),
        num(&s["refutations"]),
        num(&s["dead_verdicts"])
    );
    let _ = writeln!(
        out,
        "streams:     {} push/pull(s), {} failed, {} decrypt failure(s)",
        num(&s["push_pulls"]),
        num(&s["streams_failed"]),
        num(&s["decrypt_failures"])
    );
    traffic(&mut out, s);
    layer(&mut out, v);
    limits(&mut out, &v["limits"]);
    out
}

/// Datagrams in and out, then messages by kind.
fn traffic(out: &mut String, s: &Value) {
    let _ = writeln!(
        out,
        "traffic:     {} datagram(s) in ({}), {} out ({})",
        num(&s["packets_in"]),
        bytes(num(&s["bytes_in"])),
        num(&s["packets_out"]),
        bytes(num(&s["bytes_out"]))
    );
    let _ = writeln!(
        out,
        "  {:<14} {:>10} {:>12} {:>10} {:>12}",
        "kind", "msgs in", "bytes in", "msgs out", "bytes out"
    );
    let Some(kinds) = s["messages_in"].as_object() else {
        return;
    };
    for kind in kinds.keys() {
        let _ = writeln!(
            out,
            "  {:<14} {:>10} {:>12} {:>10} {:>12}",
            kind,
            num(&s["messages_in"][kind]),
            bytes(num(&s["message_bytes_in"][kind])),
            num(&s["messages_out"][kind]),
            bytes(num(&s["message_bytes_out"][kind]))
        );
    }
}

/// NetworkDB's networks, or Serf's queue and events.
fn layer(out: &mut String, v: &Value) {
    if let Some(ndb) = v.get("networkdb") {
        let networks = ndb["networks"].as_array().cloned().unwrap_or_default();
        let _ = writeln!(out, "networkdb:   {} network(s)", networks.len());
        if !networks.is_empty() {
            let _ = writeln!(out, "  {:<30} {:>10} {:>8}", "network", "entries", "queue");
        }
        for n in &networks {
            let _ = writeln!(
                out,
                "  {:<30} {:>10} {:>8}",
                n["network"].as_str().unwrap_or("?"),
                num(&n["entries"]),
                num(&n["queue"])
            );
        }
    }
    if let Some(serf) = v.get("serf") {
        let _ = writeln!(
            out,
            "serf:        {} message(s) waiting, {} user event(s)",
            num(&serf["queue"]),
            num(&serf["user_events"])
        );
    }
}

/// The limit counters that are not zero, as `layer/reason count`.
fn limits(out: &mut String, limits: &Value) {
    let mut bit: Vec<String> = Vec::new();
    for (layer, counters) in limits.as_object().into_iter().flatten() {
        for (reason, n) in counters.as_object().into_iter().flatten() {
            if num(n) > 0 {
                bit.push(format!("  {layer}/{reason} {}", num(n)));
            }
        }
    }
    if bit.is_empty() {
        let _ = writeln!(out, "limits:      none has dropped anything");
    } else {
        let _ = writeln!(out, "limits that dropped or refused input:");
        for line in bit {
            let _ = writeln!(out, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Value {
        serde_json::json!({
            "name": "n1", "protocol": "networkdb", "incarnation": 2,
            "health_score": 1, "leaving": false, "broadcast_queue": 4,
            "members": {"alive": 3, "suspect": 0, "failed": 1, "left": 0},
            "stats": {
                "packets_in": 10, "bytes_in": 2048, "packets_out": 12, "bytes_out": 100,
                "probes_ok": 5, "probes_indirect": 1, "probes_tcp_rescued": 0,
                "probes_failed": 2, "suspicions": 1, "refutations": 0, "dead_verdicts": 1,
                "messages_in": {"ack": 4, "ping": 6},
                "message_bytes_in": {"ack": 120, "ping": 3000},
                "messages_out": {"ack": 6, "ping": 4},
                "message_bytes_out": {"ack": 180, "ping": 2000}
            },
            "networkdb": {"networks": [{"network": "net1", "entries": 7, "queue": 1}]},
            "limits": {"core": {"packets_replayed": 3, "packets_dropped": 0}, "api": {}}
        })
    }

    #[test]
    fn info_prints_the_figures_by_name() {
        let t = text(&stats());
        assert!(t.contains("node:        n1\n"), "{t}");
        assert!(
            t.contains("members:     3 alive, 0 suspect, 1 failed, 0 left"),
            "{t}"
        );
        assert!(t.contains("health:      score 1"), "{t}");
        assert!(t.contains("1 dead verdict(s)"), "{t}");
        assert!(t.contains("10 datagram(s) in (2.0 KiB)"), "{t}");
        assert!(
            t.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["ping", "6", "2.9", "KiB", "4", "2.0", "KiB"]),
            "{t}"
        );
        assert!(
            t.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["net1", "7", "1"]),
            "{t}"
        );
        assert!(t.contains("  core/packets_replayed 3\n"), "{t}");
        assert!(
            !t.contains("packets_dropped"),
            "zero limits are not listed: {t}"
        );
    }

    #[test]
    fn quiet_limits_say_so() {
        let mut v = stats();
        v["limits"] = serde_json::json!({"core": {"packets_replayed": 0}});
        assert!(text(&v).contains("limits:      none has dropped anything"));
    }
}
