//! The underlay of multi-host tests: host namespaces plugged into a bridge
//! `br0` that lives in a namespace of its own. Shared by
//! `ndb_common/mod.rs` and `overlay_common/mod.rs`.

use std::process::Command;

/// Runs `ip ARGS` and panics with its stderr when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Plugs the namespace `ns` into `br0` of the namespace `underlay` through
/// a veth pair whose bridge end is `veth`; the pair is created inside
/// `underlay`, so the root namespace is never touched. In `ns`, `eth0` gets
/// `addr/24`, and `eth0` and `lo` come up. Call once per host namespace,
/// after both namespaces exist and `br0` is up.
pub fn plug_host(underlay: &str, veth: &str, ns: &str, addr: &str) {
    ip(&[
        "-n", underlay, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ]);
    ip(&["-n", underlay, "link", "set", veth, "master", "br0"]);
    ip(&["-n", underlay, "link", "set", veth, "up"]);
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", ns, "link", "set", "eth0", "up"]);
    ip(&["-n", ns, "link", "set", "lo", "up"]);
}
