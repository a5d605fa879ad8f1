//! The netlink data plane against the real kernel, inside network
//! namespaces this test creates (prefix `swk-`, underlay 10.201.0.0/16).
//! Needs root; every set-up step that fails fails the test. `ip` is used
//! only to set up and to check; the code under test talks netlink.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use swimnet_overlay::dataplane::{DataPlane, FoundEndpoint};
use swimnet_overlay::model::{bridge_name, host_veth_name, vxlan_name};
use swimnet_overlay::netlink::Netlink;
use swimnet_overlay::{LocalEndpoint, Mac, OverlayDef, OverlayError};

/// Runs `ip ARGS`, panicking with its error output when it fails.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `ip ARGS` succeeds.
fn ip_ok(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .expect("run ip")
        .status
        .success()
}

/// Named namespaces made for one test, deleted when it ends (also on panic).
struct Namespaces(Vec<String>);

impl Namespaces {
    fn new(names: &[&str]) -> Namespaces {
        let guard = Namespaces(names.iter().map(|n| n.to_string()).collect());
        for name in names {
            assert!(name.starts_with("swk-") && name.len() <= 15, "{name}");
            let _ = ip_ok(&["netns", "del", name]);
            ip(&["netns", "add", name]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        guard
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = ip_ok(&["netns", "del", name]);
        }
    }
}

/// Gives a host namespace an underlay device `d0` holding `vtep/24`.
fn dummy_underlay(ns: &str, vtep: &str, mtu: &str) {
    // No dummy module on every kernel: a veth pair kept in the namespace.
    ip(&[
        "-n", ns, "link", "add", "d0", "mtu", mtu, "type", "veth", "peer", "name", "d1",
    ]);
    ip(&["-n", ns, "addr", "add", &format!("{vtep}/24"), "dev", "d0"]);
    ip(&["-n", ns, "link", "set", "d0", "up"]);
}

fn def(vni: u32) -> OverlayDef {
    OverlayDef {
        name: format!("ov{vni}"),
        id: format!("{vni:064x}"),
        subnet: "10.9.0.0/16".parse().unwrap(),
        vni,
        created_ms: 1,
        creator: "n1".into(),
    }
}

fn endpoint(vni: u32, id_digit: char, netns: &str, ip: Ipv4Addr, ifname: &str) -> LocalEndpoint {
    let id = id_digit.to_string().repeat(64);
    LocalEndpoint {
        host_ifname: host_veth_name(&id),
        id,
        overlay_id: format!("{vni:064x}"),
        vni,
        name: format!("ep-{netns}"),
        netns: netns.into(),
        ip,
        prefix_len: 16,
        mac: Mac::from_ip(ip),
        ifname: ifname.into(),
        mtu: 1450,
    }
}

/// Names of the devices in `ns` that look like an endpoint's veth end.
fn veth_leftovers(ns: &str) -> Vec<String> {
    ip(&["-n", ns, "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with("swve-") || n.starts_with("swvp-"))
        .collect()
}

#[tokio::test]
async fn overlay_and_entries_are_idempotent_and_listed_exactly() {
    let _ns = Namespaces::new(&["swk-a-h"]);
    dummy_underlay("swk-a-h", "10.201.1.1", "1400");
    let vtep: Ipv4Addr = "10.201.1.1".parse().unwrap();
    let mut dp = Netlink::in_netns("swk-a-h").unwrap();
    let vni = 0x1001;
    assert_eq!(dp.underlay_mtu(vtep).await.unwrap(), 1400);
    for _ in 0..2 {
        dp.ensure_overlay(&def(vni), vtep, 4789).await.unwrap();
    }
    assert_eq!(dp.overlays().await.unwrap(), BTreeSet::from([vni]));
    let shown = ip(&["-n", "swk-a-h", "-d", "link", "show", &vxlan_name(vni)]);
    for want in [
        "vxlan id 4097 ",
        "local 10.201.1.1",
        "dstport 4789",
        "nolearning",
        "proxy",
        "master swbr-001001",
        "mtu 1400",
        ",UP",
    ] {
        assert!(shown.contains(want), "{want:?} not in {shown}");
    }
    assert!(ip(&["-n", "swk-a-h", "link", "show", &bridge_name(vni)]).contains(",UP"));
    // A different port recreates the device with it.
    dp.ensure_overlay(&def(vni), vtep, 4790).await.unwrap();
    let shown = ip(&["-n", "swk-a-h", "-d", "link", "show", &vxlan_name(vni)]);
    assert!(
        shown.contains("dstport 4790") && shown.contains("master"),
        "{shown}"
    );

    let (ip1, ip2) = (Ipv4Addr::new(10, 9, 0, 7), Ipv4Addr::new(10, 9, 0, 8));
    let (vt1, vt2) = (Ipv4Addr::new(10, 201, 1, 2), Ipv4Addr::new(10, 201, 1, 3));
    for _ in 0..2 {
        dp.add_neighbour(vni, ip1, Mac::from_ip(ip1)).await.unwrap();
        dp.add_fdb(vni, Mac::from_ip(ip1), vt1).await.unwrap();
    }
    dp.add_neighbour(vni, ip2, Mac::from_ip(ip2)).await.unwrap();
    dp.add_fdb(vni, Mac::from_ip(ip2), vt1).await.unwrap();
    // Replacing moves the MAC to the other VTEP.
    dp.add_fdb(vni, Mac::from_ip(ip2), vt2).await.unwrap();
    assert_eq!(
        dp.neighbours(vni).await.unwrap(),
        BTreeSet::from([(ip1, Mac::from_ip(ip1)), (ip2, Mac::from_ip(ip2))])
    );
    assert_eq!(
        dp.fdb(vni).await.unwrap(),
        BTreeSet::from([(Mac::from_ip(ip1), vt1), (Mac::from_ip(ip2), vt2)])
    );
    let fdb = Command::new("bridge")
        .args(["-n", "swk-a-h", "fdb", "show", "dev", &vxlan_name(vni)])
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout);
    assert!(
        fdb.contains("02:42:0a:09:00:07 dst 10.201.1.2 self permanent"),
        "{fdb}"
    );

    for _ in 0..2 {
        dp.remove_neighbour(vni, ip1, Mac::from_ip(ip1))
            .await
            .unwrap();
        dp.remove_fdb(vni, Mac::from_ip(ip1), vt1).await.unwrap();
    }
    assert_eq!(
        dp.neighbours(vni).await.unwrap(),
        BTreeSet::from([(ip2, Mac::from_ip(ip2))])
    );
    assert_eq!(
        dp.fdb(vni).await.unwrap(),
        BTreeSet::from([(Mac::from_ip(ip2), vt2)])
    );
    for _ in 0..2 {
        dp.remove_overlay(vni).await.unwrap();
    }
    assert!(dp.overlays().await.unwrap().is_empty());
    assert!(dp.neighbours(vni).await.unwrap().is_empty());
    assert!(!ip_ok(&["-n", "swk-a-h", "link", "show", &vxlan_name(vni)]));
    assert!(!ip_ok(&[
        "-n",
        "swk-a-h",
        "link",
        "show",
        &bridge_name(vni)
    ]));
    // Entries on a missing device: removing succeeds, adding says why not.
    dp.remove_fdb(vni, Mac::from_ip(ip2), vt2).await.unwrap();
    let err = dp
        .add_neighbour(vni, ip1, Mac::from_ip(ip1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no such device"), "{err}");
}

#[tokio::test]
async fn attach_and_detach_build_and_remove_the_endpoint() {
    let _ns = Namespaces::new(&["swk-b-h", "swk-b-e"]);
    dummy_underlay("swk-b-h", "10.201.3.1", "1500");
    let vtep: Ipv4Addr = "10.201.3.1".parse().unwrap();
    let mut dp = Netlink::in_netns("swk-b-h").unwrap();
    let vni = 0x1002;
    dp.ensure_overlay(&def(vni), vtep, 4789).await.unwrap();
    assert_eq!(dp.free_ifname("swk-b-e").await.unwrap(), "eth0");
    let ep = endpoint(vni, 'b', "swk-b-e", Ipv4Addr::new(10, 9, 0, 5), "eth0");
    for _ in 0..2 {
        dp.attach(&ep).await.unwrap();
    }
    let shown = ip(&["-n", "swk-b-e", "addr", "show", "eth0"]);
    for want in [
        "10.9.0.5/16",
        "link/ether 02:42:0a:09:00:05",
        "mtu 1450",
        ",UP",
    ] {
        assert!(shown.contains(want), "{want:?} not in {shown}");
    }
    assert!(ip(&["-n", "swk-b-e", "link", "show", "lo"]).contains(",UP"));
    let host = ip(&["-n", "swk-b-h", "-d", "link", "show", &ep.host_ifname]);
    assert!(
        host.contains("master swbr-001002") && host.contains(",UP"),
        "{host}"
    );
    let found = dp.endpoints().await.unwrap();
    assert_eq!(
        found,
        vec![FoundEndpoint {
            host_ifname: ep.host_ifname.clone(),
            vni,
            alias: ep.alias(),
        }]
    );
    let back = LocalEndpoint::from_alias(&found[0].alias, &ep.host_ifname, vni, &ep.overlay_id);
    assert_eq!(back, Some(ep.clone()));
    assert_eq!(dp.free_ifname("swk-b-e").await.unwrap(), "eth1");

    for _ in 0..2 {
        dp.detach(&ep).await.unwrap();
    }
    assert!(!ip_ok(&["-n", "swk-b-e", "link", "show", "eth0"]));
    assert!(dp.endpoints().await.unwrap().is_empty());
    assert!(veth_leftovers("swk-b-h").is_empty());

    // A missing namespace: named in the error, nothing left behind.
    let lost = endpoint(vni, 'c', "swk-b-none", Ipv4Addr::new(10, 9, 0, 6), "eth0");
    let err = dp.attach(&lost).await.unwrap_err();
    assert_eq!(err, OverlayError::NoSuchNetns("swk-b-none".into()));
    assert!(veth_leftovers("swk-b-h").is_empty());

    // Failing half-way (the name is taken inside) rolls the veth pair back.
    ip(&[
        "-n", "swk-b-e", "link", "add", "eth0", "type", "veth", "peer", "name", "x1",
    ]);
    let err = dp.attach(&ep).await.unwrap_err();
    assert!(matches!(err, OverlayError::Kernel { .. }), "{err:?}");
    assert!(err.to_string().contains("eth0"), "{err}");
    assert!(veth_leftovers("swk-b-h").is_empty(), "host side left over");
    assert!(
        veth_leftovers("swk-b-e").is_empty(),
        "namespace side left over"
    );
    assert!(dp.endpoints().await.unwrap().is_empty());
}

/// One "host" of the data path test: its namespace, underlay address on
/// the shared bridge, and one endpoint namespace.
fn underlay_host(n: u8) {
    let host = format!("swk-h{n}");
    ip(&[
        "-n",
        &host,
        "link",
        "add",
        "v0",
        "type",
        "veth",
        "peer",
        "name",
        &format!("u{n}"),
        "netns",
        "swk-u",
    ]);
    ip(&[
        "-n",
        "swk-u",
        "link",
        "set",
        &format!("u{n}"),
        "master",
        "br0",
        "up",
    ]);
    ip(&[
        "-n",
        &host,
        "addr",
        "add",
        &format!("10.201.0.{n}/24"),
        "dev",
        "v0",
    ]);
    ip(&["-n", &host, "link", "set", "v0", "up"]);
}

fn ping(from_ns: &str, to: Ipv4Addr, extra: &[&str]) -> bool {
    let to = to.to_string();
    let mut args = vec!["netns", "exec", from_ns, "ping", "-c1", "-W2"];
    args.extend_from_slice(extra);
    args.push(&to);
    ip_ok(&args)
}

#[tokio::test]
async fn two_hosts_reach_each_other_through_the_programmed_entries() {
    let _ns = Namespaces::new(&["swk-u", "swk-h1", "swk-h2", "swk-e1", "swk-e2"]);
    ip(&["-n", "swk-u", "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", "swk-u", "link", "set", "br0", "up"]);
    underlay_host(1);
    underlay_host(2);
    let vni = 0x1003;
    let vteps = [Ipv4Addr::new(10, 201, 0, 1), Ipv4Addr::new(10, 201, 0, 2)];
    let ips = [Ipv4Addr::new(10, 9, 1, 1), Ipv4Addr::new(10, 9, 1, 2)];
    let mut planes = [
        Netlink::in_netns("swk-h1").unwrap(),
        Netlink::in_netns("swk-h2").unwrap(),
    ];
    let mut eps = Vec::new();
    for (i, dp) in planes.iter_mut().enumerate() {
        dp.ensure_overlay(&def(vni), vteps[i], 4789).await.unwrap();
        let mtu = dp.underlay_mtu(vteps[i]).await.unwrap() - 50;
        assert_eq!(mtu, 1450);
        let digit = if i == 0 { 'd' } else { 'e' };
        let ep = endpoint(vni, digit, &format!("swk-e{}", i + 1), ips[i], "eth0");
        dp.attach(&ep).await.unwrap();
        eps.push(ep);
    }
    for (i, dp) in planes.iter_mut().enumerate() {
        let other = &eps[1 - i];
        dp.add_neighbour(vni, other.ip, other.mac).await.unwrap();
        dp.add_fdb(vni, other.mac, vteps[1 - i]).await.unwrap();
    }
    // New links come up asynchronously (the kernel's link watcher may
    // delay them by a second under load): allow a few attempts at first.
    let reached = (0..5).any(|_| ping("swk-e1", ips[1], &[]));
    assert!(reached, "plain ping failed 5 times");
    assert!(
        ping("swk-e1", ips[1], &["-M", "do", "-s", "1422"]),
        "MTU-size ping (1450 bytes, don't fragment) failed"
    );
    assert!(ping("swk-e2", ips[0], &["-M", "do", "-s", "1422"]));
    for (i, dp) in planes.iter_mut().enumerate() {
        let other = &eps[1 - i];
        dp.remove_neighbour(vni, other.ip, other.mac).await.unwrap();
        dp.remove_fdb(vni, other.mac, vteps[1 - i]).await.unwrap();
        assert!(dp.fdb(vni).await.unwrap().is_empty());
    }
    assert!(
        !ping("swk-e1", ips[1], &[]),
        "ping works without the entries"
    );
    for (dp, ep) in planes.iter_mut().zip(&eps) {
        dp.detach(ep).await.unwrap();
        dp.remove_overlay(vni).await.unwrap();
    }
}

#[tokio::test]
async fn the_own_namespace_can_be_read() {
    // Read-only: the test process's namespace is not ours to change.
    let mut dp = Netlink::new().unwrap();
    assert!(dp.overlays().await.is_ok());
    assert!(dp.endpoints().await.is_ok());
    let lo = dp.underlay_mtu(Ipv4Addr::LOCALHOST).await.unwrap();
    assert!(lo >= 1280, "lo MTU {lo}");
}

#[tokio::test]
async fn a_foreign_device_with_the_vni_is_named() {
    let _ns = Namespaces::new(&["swk-d-h"]);
    dummy_underlay("swk-d-h", "10.201.4.1", "1500");
    let vni = 0x1004;
    ip(&[
        "-n",
        "swk-d-h",
        "link",
        "add",
        "fx0",
        "type",
        "vxlan",
        "id",
        "4100",
        "dstport",
        "4789",
        "nolearning",
    ]);
    let mut dp = Netlink::in_netns("swk-d-h").unwrap();
    let err = dp
        .ensure_overlay(&def(vni), "10.201.4.1".parse().unwrap(), 4789)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OverlayError::VniInUse {
            vni,
            by: "device fx0".into()
        }
    );
    assert_eq!(err.to_string(), "VNI 4100 is already in use by device fx0");
    assert!(dp.overlays().await.unwrap().is_empty());
    // Another port is not a clash.
    dp.ensure_overlay(&def(vni), "10.201.4.1".parse().unwrap(), 4790)
        .await
        .unwrap();
    assert_eq!(dp.overlays().await.unwrap(), BTreeSet::from([vni]));
}

/// Set in the child process of [`without_cap_net_admin_the_error_says_so`]
/// to the namespace it works in.
const CHILD_ENV: &str = "SWK_NO_NET_ADMIN_NS";

#[tokio::test]
async fn without_cap_net_admin_the_error_says_so() {
    if let Ok(ns) = std::env::var(CHILD_ENV) {
        // Child: runs without CAP_NET_ADMIN.
        let mut dp = Netlink::in_netns(&ns).unwrap();
        let err = dp
            .ensure_overlay(&def(0x1005), "10.201.5.1".parse().unwrap(), 4789)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            OverlayError::NoPermission(format!("creating vxlan device {}", vxlan_name(0x1005)))
        );
        let text = err.to_string();
        assert!(text.contains("operation not permitted") && text.contains("CAP_NET_ADMIN"));
        println!("SWK-CHILD-CHECKED: {text}");
        return;
    }
    let _ns = Namespaces::new(&["swk-p-h"]);
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(["--bounding-set=-net_admin", "--inh-caps=-net_admin", "--"])
        .arg(exe)
        .args([
            "--exact",
            "without_cap_net_admin_the_error_says_so",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "swk-p-h")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SWK-CHILD-CHECKED"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!ip_ok(&[
        "-n",
        "swk-p-h",
        "link",
        "show",
        &vxlan_name(0x1005)
    ]));
}
