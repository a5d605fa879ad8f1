//! Checks of a Serf agent's log for errors and warnings about swimnet's
//! traffic.

use super::*;

/// serf/memberlist log lines that must not appear in a healthy mixed
/// cluster. Per-node patterns are checked for every name in `names`.
pub fn serf_log_problems(log: &str, names: &[&str], allow_decrypt_errors: bool) -> Vec<String> {
    let mut generic = vec![
        "Failed push/pull merge",
        "Push/Pull with",
        "Got invalid checksum",
        "Failed to decode",
        "Unsupported ping version",
        "Failed to decompress",
        "not supported",
        "Received invalid msgType",
        "Conflicting address",
        "incompatible",
        "Refuting a suspect message",
        "Refuting a dead message",
        "Refuting an alive message",
        "failed to receive",
        "Failed to read remote state",
        "Failed to push local state",
        "handler queue full",
        "truncated messages",
    ];
    if !allow_decrypt_errors {
        generic.push("Decrypt packet failed");
        generic.push("No installed keys could decrypt");
    }
    let allowed = |l: &str| {
        allow_decrypt_errors
            && (l.contains("No installed keys could decrypt")
                || l.contains("Decrypt packet failed"))
    };
    let mut per_node = Vec::new();
    for n in names {
        per_node.push(format!("Suspect {n} has failed"));
        per_node.push(format!("Marking {n} as failed"));
        per_node.push(format!("EventMemberFailed: {n} "));
        per_node.push(format!("Failed ping: {n} ("));
        per_node.push(format!("Was able to connect to {n} but"));
    }
    log.lines()
        .filter(|l| !allowed(l))
        .filter(|l| {
            generic.iter().any(|p| l.contains(p)) || per_node.iter().any(|p| l.contains(p.as_str()))
        })
        .map(|l| l.trim().to_string())
        .collect()
}

/// Panics with every problem line found in the serf agents' logs.
pub fn assert_serf_logs_clean(
    serfs: &[&Serf],
    names: &[&str],
    allow_decrypt_errors: bool,
    when: &str,
) {
    let mut all = Vec::new();
    for s in serfs {
        for l in serf_log_problems(&s.log(), names, allow_decrypt_errors) {
            all.push(format!("{}: {l}", s.name));
        }
    }
    assert!(
        all.is_empty(),
        "{when}: problem lines in serf logs:\n{}",
        all.join("\n")
    );
}
