//! `swimnet sim`: writes its report files, replays byte for byte with the
//! same seed, and fails with the seed to replay when an invariant breaks.

use std::path::Path;
use std::process::Command;

fn sim(scenario: &Path, out: &Path, seed: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_swimnet"))
        .args([
            "sim",
            scenario.to_str().unwrap(),
            "--quiet",
            "--seed",
            seed,
            "--out",
        ])
        .arg(out)
        .output()
        .expect("runs")
}

#[test]
fn sim_writes_reports_and_replays_identically() {
    let dir = std::env::temp_dir().join(format!("swimnet-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sc = dir.join("small.toml");
    std::fs::write(
        &sc,
        "name = \"small\"\nnodes = 20\nduration = \"20s\"\n[[broadcast]]\nat = \"1s\"\n[[crash]]\nat = \"2s\"\ncount = 1\n",
    )
    .unwrap();
    let a = sim(&sc, &dir.join("a"), "3");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let stdout = String::from_utf8_lossy(&a.stdout);
    assert!(stdout.contains("invariants: all held"), "{stdout}");
    for f in [
        "report.json",
        "summary.txt",
        "host.json",
        "dissemination.svg",
        "detection.svg",
    ] {
        assert!(dir.join("a").join(f).is_file(), "{f} written");
    }
    let b = sim(&sc, &dir.join("b"), "3");
    assert!(b.status.success());
    let ra = std::fs::read(dir.join("a/report.json")).unwrap();
    assert_eq!(ra, std::fs::read(dir.join("b/report.json")).unwrap());
    let json: serde_json::Value = serde_json::from_slice(&ra).unwrap();
    assert_eq!(json["seed"], 3);
    assert_eq!(json["broadcasts"][0]["informed"], 19);

    // A partition that never heals, with no time to settle: the run fails.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\nnodes = 20\nduration = \"40s\"\nsettle = \"1s\"\n[[partition]]\nat = \"2s\"\n",
    )
    .unwrap();
    let c = sim(&bad, &dir.join("c"), "5");
    assert!(!c.status.success());
    let err = String::from_utf8_lossy(&c.stderr);
    assert!(err.contains("--seed 5"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
