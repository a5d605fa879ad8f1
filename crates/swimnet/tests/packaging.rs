//! Packaging: the systemd unit (packaging/swimnet.service) passes
//! `systemd-analyze verify` with no warning, rates "OK" or better in
//! `systemd-analyze security`, and its command line starts an agent that
//! leaves and exits 0 on SIGTERM; the shell completions and man pages come
//! out of the binary; the container recipe runs the static binary as a
//! non-root user. Live agents bind 127.0.190.x only.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A scratch directory under the test target dir, emptied.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("packaging")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The unit with ExecStart pointing at the binary under test, next to the
/// man pages that binary writes (verify runs `man` for Documentation=).
fn unit_under_test() -> (PathBuf, PathBuf) {
    let dir = scratch("unit");
    let unit = read("packaging/swimnet.service").replace(
        "/usr/local/bin/swimnet",
        swimnet_bin().to_str().expect("UTF-8 path"),
    );
    let path = dir.join("swimnet.service");
    std::fs::write(&path, unit).unwrap();
    let man = dir.join("man");
    let out = Command::new(swimnet_bin())
        .args(["man", "--out"])
        .arg(man.join("man1"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (path, man)
}

#[test]
fn systemd_unit_verifies_cleanly_and_is_hardened() {
    let (unit, man) = unit_under_test();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", &man)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed for this test");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown or misspelt directives are warnings with exit code 0: the
    // output must be empty too.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for swimnet.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // 0 is a fully locked-down unit, 10 an unprotected one; the unit's
    // remaining exposure is its network access, which the agent needs.
    assert!(exposure <= 2.0, "exposure {exposure}:\n{text}");

    let unit = read("packaging/swimnet.service");
    for line in [
        "DynamicUser=yes",
        "StateDirectory=swimnet",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
}

/// The unit's `Environment=` defaults, then the overrides, expanded into
/// its `ExecStart=` the way systemd does (`${VAR}` one word, `$VAR` split
/// at spaces).
fn exec_start(overrides: &[(&str, &str)]) -> Vec<String> {
    let unit = read("packaging/swimnet.service");
    let mut env = BTreeMap::new();
    for line in unit.lines() {
        if let Some(list) = line.strip_prefix("Environment=") {
            for kv in list.split_whitespace() {
                let (k, v) = kv.split_once('=').unwrap();
                env.insert(k.to_string(), v.to_string());
            }
        }
    }
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    let cmd = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    let mut argv = Vec::new();
    for word in cmd.split_whitespace() {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            argv.push(env.get(name).cloned().unwrap_or_default());
        } else if let Some(name) = word.strip_prefix('$') {
            let value = env.get(name).cloned().unwrap_or_default();
            argv.extend(value.split_whitespace().map(str::to_string));
        } else {
            argv.push(word.to_string());
        }
    }
    argv
}

#[test]
fn unit_command_line_runs_an_agent_that_leaves_on_sigterm() {
    let env = Env::new("unit_command_line", 190);
    let ip = env.ip(1);
    let bind = format!("{ip}:{GOSSIP_PORT}");
    let api = format!("{ip}:{SWIM_API_PORT}");
    let argv = exec_start(&[
        ("SWIMNET_NODE", "unit-node"),
        ("SWIMNET_BIND", &bind),
        ("SWIMNET_API", &api),
        ("SWIMNET_AGENT_ARGS", "--protocol networkdb --profile local"),
    ]);
    assert_eq!(argv[0], "/usr/local/bin/swimnet", "{argv:?}");
    let mut proc = env.spawn("unit-node", &env.swimnet, &argv[1..]);
    let started = Instant::now();
    let members = loop {
        if let Ok((200, body)) = http(&api, "GET", "/v1/members", None) {
            break body;
        }
        assert!(
            proc.is_running(),
            "the agent exited:\n{}",
            proc.log_tail(20)
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no API after 20 s:\n{}",
            proc.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(members.contains("unit-node"), "{members}");
    // systemd stops the unit with SIGTERM and waits TimeoutStopSec=30.
    let t = Instant::now();
    proc.signal("TERM");
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .expect("the agent did not exit within TimeoutStopSec");
    assert!(status.success(), "{status}:\n{}", proc.log_tail(20));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(proc.log_text().contains("leaving"), "{}", proc.log_tail(20));
}

#[test]
fn completions_and_man_page_come_from_the_binary() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(swimnet_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for sub in ["agent", "members", "table", "network", "keys", "man"] {
            assert!(text.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let out = Command::new(swimnet_bin()).arg("man").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH swimnet 1"), "{page}");
    assert!(page.contains("swimnet\\-agent(1)"), "{page}");
    let out = Command::new(swimnet_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn container_recipe_runs_the_static_binary_unprivileged() {
    let recipe = read("packaging/Containerfile");
    let instructions: Vec<&str> = recipe
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(instructions[0], "FROM scratch");
    assert!(instructions.contains(&"COPY swimnet /usr/local/bin/swimnet"));
    assert!(instructions.contains(&r#"ENTRYPOINT ["/usr/local/bin/swimnet"]"#));
    let user = instructions
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    // The image has no loader: the build script refuses a dynamic binary
    // (the test build is one).
    let out = Command::new(repo_file("scripts/build-container.sh"))
        .args(["--context"])
        .arg(scratch("container"))
        .env("SWIMNET_BIN", swimnet_bin())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dynamically linked"), "{err}");
}

#[test]
fn license_is_the_declared_mpl_2_0() {
    assert!(read("LICENSE").starts_with("Mozilla Public License Version 2.0"));
    assert!(read("Cargo.toml").contains("license = \"MPL-2.0\""));
}
