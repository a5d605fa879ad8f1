//! Vivaldi network coordinates in a mixed cluster.

use super::*;

// ---------------------------------------------------------------------------
// Vivaldi network coordinates in a mixed cluster
// ---------------------------------------------------------------------------

/// Parses `Estimated A <-> B rtt: X ms ...` (the first line of both `serf
/// rtt` and `swimnet rtt`) into milliseconds.
fn parse_rtt_ms(out: &str) -> Result<f64, String> {
    let line = out
        .lines()
        .find(|l| l.starts_with("Estimated "))
        .ok_or_else(|| format!("no estimate in {out:?}"))?;
    let after = line
        .split("rtt: ")
        .nth(1)
        .ok_or_else(|| format!("no 'rtt:' in {line:?}"))?;
    let ms = after
        .split_whitespace()
        .next()
        .and_then(|x| x.parse::<f64>().ok())
        .ok_or_else(|| format!("no number in {line:?}"))?;
    if after.split_whitespace().nth(1) != Some("ms") {
        return Err(format!("unit is not ms in {line:?}"));
    }
    Ok(ms)
}

/// Polls a CLI until it prints an RTT estimate (coordinates only arrive with
/// probe acks, so each side needs a few probes of the other), and checks it
/// is plausible for loopback: positive and under 50 ms.
fn wait_rtt(what: &str, mut run: impl FnMut() -> CmdOut) -> f64 {
    let (ms, took) = wait_for(what, Duration::from_secs(60), || {
        let out = run();
        if !out.ok() {
            return Err(out.describe());
        }
        parse_rtt_ms(&out.stdout)
    });
    eprintln!("{what}: {ms:.3} ms (after {:.1} s)", took.as_secs_f64());
    assert!(
        ms > 0.0 && ms < 50.0,
        "{what}: implausible loopback estimate {ms} ms"
    );
    ms
}

/// Two serf agents and a swimnet agent: serf caches the swimnet node's
/// coordinate from its acks (`serf rtt sw1` answers from s1, and `serf rtt
/// s2 sw1` from s1 as well), and the swimnet node learns the serf agents'
/// coordinates from theirs (`swimnet rtt s1`, `swimnet rtt s1 s2`). Neither
/// side refuses the other's payloads: swimnet counts no rejected coordinate,
/// and the serf logs have no ping payload errors.
#[test]
fn rtt_estimates_in_mixed_cluster() {
    let env = Env::new("rtt_estimates_in_mixed_cluster", 117);
    let key = None;
    let serfs = start_serfs(&env, &key, 2);
    let sw = env.swim("sw1", 21, &swim_opts(&key, vec![serfs[0].addr()]));
    let all = nodes(&serfs, &[&sw]);
    let all_names = names(&all);
    wait_all_alive(&all, &all_names, CONVERGE);

    wait_rtt("serf rtt sw1 (on s1)", || serfs[0].cmd("rtt", &["sw1"]));
    wait_rtt("serf rtt s2 sw1 (on s1)", || {
        serfs[0].cmd("rtt", &["s2", "sw1"])
    });
    wait_rtt("swimnet rtt s1", || sw.cli("rtt", &["s1"]));
    wait_rtt("swimnet rtt s1 s2", || sw.cli("rtt", &["s1", "s2"]));

    // The coordinate listing shows ours and both serf agents', 8-D.
    let out = sw.cli("coordinates", &["--format", "json"]);
    assert!(out.ok(), "swimnet coordinates: {}", out.describe());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let listed: Vec<&str> = v["coordinates"]
        .as_array()
        .expect("coordinates array")
        .iter()
        .map(|c| {
            assert_eq!(c["coord"]["vec"].as_array().map(Vec::len), Some(8), "{c}");
            c["node"].as_str().expect("node name")
        })
        .collect();
    assert_eq!(listed, ["s1", "s2", "sw1"]);

    // Clear errors for a node that does not exist.
    let out = sw.cli("rtt", &["nosuchnode"]);
    assert!(!out.ok(), "rtt to an unknown node must fail");
    assert!(
        out.stderr.contains("unknown node \"nosuchnode\""),
        "unclear error: {}",
        out.describe()
    );

    assert_eq!(sw.stat("coordinates_rejected").unwrap(), 0);
    let serf_refs: Vec<&Serf> = serfs.iter().collect();
    assert_serf_logs_clean(&serf_refs, &all_names, false, "after rtt estimates");
}
