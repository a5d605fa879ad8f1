//! The kernel data plane over netlink ([`rtnetlink`]): VXLAN devices,
//! bridges, veth pairs, addresses, neighbour and FDB entries.
//!
//! [`Netlink`] talks to the kernel of one network namespace (the "host":
//! the agent's own, or a named one for tests). Endpoint namespaces are
//! programmed through a second, short-lived connection opened inside them.
//! Only devices named by [`crate::model`] are ever listed, changed or
//! removed; every operation is idempotent.

mod kernel;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures_util::TryStreamExt;
use netlink_packet_route::link::{InfoKind, InfoVxlan, LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth, LinkVxlan};

use crate::dataplane::{DataPlane, FoundEndpoint};
use crate::model::{bridge_name, vni_of_device, vxlan_name, LocalEndpoint, Mac, OverlayDef};
use crate::netns::open_netns;
use crate::OverlayError;

use kernel::{
    alias_of, all_links, controller_of, errno_of, is_kind, link_by_name, mtu_of, name_of,
    vxlan_info, Conn, MAX_DUMP_ENTRIES,
};
pub use kernel::{kernel_error, vxlan_create_error};

/// Most `ethN` names tried inside one namespace by [`DataPlane::free_ifname`].
pub const MAX_ETH_INDEX: u32 = 4096;

/// [`crate::dataplane::DataPlane`] over netlink.
pub struct Netlink {
    /// The connection to the host namespace's kernel.
    host: Conn,
}

impl Netlink {
    /// A data plane for the calling process's own network namespace. Call
    /// it from inside a tokio runtime: the connection task is spawned on it.
    pub fn new() -> Result<Netlink, OverlayError> {
        Ok(Netlink {
            host: Conn::here()?,
        })
    }

    /// A data plane for the named network namespace `/run/netns/NAME`
    /// (its netlink socket is opened inside it, the calling thread stays
    /// where it is). Call it from inside a tokio runtime.
    pub fn in_netns(name: &str) -> Result<Netlink, OverlayError> {
        Ok(Netlink {
            host: Conn::in_netns(name)?,
        })
    }

    /// The index of the host device `name`, `None` when it does not exist.
    async fn index_of(&self, name: &str) -> Result<Option<u32>, OverlayError> {
        Ok(link_by_name(&self.host.handle, name)
            .await?
            .map(|m| m.header.index))
    }

    /// Deletes the host device `name` if it exists (absent is success).
    async fn delete_link(&self, name: &str) -> Result<(), OverlayError> {
        let Some(index) = self.index_of(name).await? else {
            return Ok(());
        };
        match self.host.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno_of(&e) == Some(nix::libc::ENODEV) => Ok(()),
            Err(e) => Err(kernel_error(format!("deleting device {name}"), &e)),
        }
    }

    /// Applies `msg` (an RTM_SETLINK) to the host namespace.
    async fn set_link(
        &self,
        msg: LinkMessage,
        op: impl FnOnce() -> String,
    ) -> Result<(), OverlayError> {
        self.host
            .handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| kernel_error(op(), &e))
    }

    /// Makes sure the overlay's VXLAN device exists with exactly these
    /// settings (recreating it when it differs) and returns its index.
    async fn ensure_vxlan(
        &self,
        vni: u32,
        vtep: Ipv4Addr,
        port: u16,
        mtu: Option<u32>,
    ) -> Result<u32, OverlayError> {
        let name = vxlan_name(vni);
        if let Some(msg) = link_by_name(&self.host.handle, &name).await? {
            if vxlan_matches(&msg, vni, vtep, port) {
                return Ok(msg.header.index);
            }
            self.delete_link(&name).await?;
        }
        let mut builder = LinkVxlan::new(&name, vni)
            .port(port)
            .local(vtep)
            .learning(false)
            .proxy(true);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let created = self.host.handle.link().add(builder.build()).execute().await;
        if let Err(e) = created {
            if errno_of(&e) == Some(nix::libc::EEXIST) {
                if let Some(foreign) = self.foreign_vxlan(vni, port).await? {
                    return Err(OverlayError::VniInUse {
                        vni,
                        by: format!("device {foreign}"),
                    });
                }
            }
            return Err(vxlan_create_error(&name, &e));
        }
        self.index_of(&name)
            .await?
            .ok_or_else(|| OverlayError::Kernel {
                op: format!("creating vxlan device {name}"),
                detail: "the device vanished right after it was created".into(),
            })
    }

    /// The name of a VXLAN device not named by us that uses `vni` on `port`.
    async fn foreign_vxlan(&self, vni: u32, port: u16) -> Result<Option<String>, OverlayError> {
        let ours = vxlan_name(vni);
        for msg in all_links(&self.host.handle).await? {
            let Some(info) = vxlan_info(&msg) else {
                continue;
            };
            let same_vni = info.contains(&InfoVxlan::Id(vni));
            let same_port = info
                .iter()
                .all(|i| !matches!(i, InfoVxlan::Port(p) if *p != port));
            let name = name_of(&msg).unwrap_or_default();
            if same_vni && same_port && name != ours {
                return Ok(Some(name.to_string()));
            }
        }
        Ok(None)
    }

    /// Makes sure the overlay's bridge exists and returns its index.
    async fn ensure_bridge(&self, vni: u32) -> Result<u32, OverlayError> {
        let name = bridge_name(vni);
        if let Some(msg) = link_by_name(&self.host.handle, &name).await? {
            if is_kind(&msg, &InfoKind::Bridge) {
                return Ok(msg.header.index);
            }
            self.delete_link(&name).await?;
        }
        let created = self
            .host
            .handle
            .link()
            .add(LinkBridge::new(&name).build())
            .execute()
            .await;
        match created {
            Err(e) if errno_of(&e) != Some(nix::libc::EEXIST) => {
                return Err(kernel_error(format!("creating bridge {name}"), &e))
            }
            _ => {}
        }
        self.index_of(&name)
            .await?
            .ok_or_else(|| OverlayError::Kernel {
                op: format!("creating bridge {name}"),
                detail: "the device vanished right after it was created".into(),
            })
    }

    /// The index of the overlay's VXLAN device, `None` when it is absent.
    /// The index of the overlay's VXLAN device, or an error naming `op`
    /// when it does not exist (an entry cannot be added without it).
    async fn existing_vxlan_index(
        &mut self,
        vni: u32,
        op: impl Fn() -> String,
    ) -> Result<u32, OverlayError> {
        self.vxlan_index(vni)
            .await?
            .ok_or_else(|| OverlayError::Kernel {
                op: op(),
                detail: "no such device".into(),
            })
    }

    async fn vxlan_index(&self, vni: u32) -> Result<Option<u32>, OverlayError> {
        self.index_of(&vxlan_name(vni)).await
    }

    /// Creates the veth pair of `ep` and moves its other end into the
    /// endpoint namespace, configured; the caller deletes the pair when
    /// this fails.
    async fn build_endpoint(
        &self,
        ep: &LocalEndpoint,
        bridge: u32,
        peer_tmp: &str,
        ns_fd: &std::fs::File,
        inside: &Conn,
    ) -> Result<(), OverlayError> {
        let op = || {
            format!(
                "creating veth pair {} for endpoint {}",
                ep.host_ifname, ep.name
            )
        };
        self.host
            .handle
            .link()
            .add(LinkVeth::new(&ep.host_ifname, peer_tmp).mtu(ep.mtu).build())
            .execute()
            .await
            .map_err(|e| kernel_error(op(), &e))?;
        let host_index =
            self.index_of(&ep.host_ifname)
                .await?
                .ok_or_else(|| OverlayError::Kernel {
                    op: op(),
                    detail: "the device vanished right after it was created".into(),
                })?;
        let msg = LinkUnspec::new_with_index(host_index)
            .alias(ep.alias())
            .controller(bridge)
            .up()
            .build();
        self.set_link(msg, || {
            format!("attaching {} to its bridge", ep.host_ifname)
        })
        .await?;
        let peer = self
            .index_of(peer_tmp)
            .await?
            .ok_or_else(|| OverlayError::Kernel {
                op: op(),
                detail: format!("the peer {peer_tmp} vanished"),
            })?;
        let msg = LinkUnspec::new_with_index(peer)
            .setns_by_fd(ns_fd.as_raw_fd())
            .build();
        self.set_link(msg, || {
            format!("moving {peer_tmp} into namespace {:?}", ep.netns)
        })
        .await?;
        inside.configure_endpoint(ep, peer_tmp).await
    }

    /// Whether the endpoint `ep` already exists as asked: the host end
    /// carries its alias and the namespace holds `ep.ifname` with its MAC.
    async fn endpoint_is_complete(
        &self,
        ep: &LocalEndpoint,
        host: &LinkMessage,
        inside: &Conn,
    ) -> Result<bool, OverlayError> {
        if alias_of(host) != Some(ep.alias().as_str()) {
            return Ok(false);
        }
        let Some(peer) = link_by_name(&inside.handle, &ep.ifname).await? else {
            return Ok(false);
        };
        Ok(peer
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Address(m) if m.as_slice() == ep.mac.0.as_slice())))
    }
}

/// Whether the VXLAN device `msg` has exactly the settings we ask for.
fn vxlan_matches(msg: &LinkMessage, vni: u32, vtep: Ipv4Addr, port: u16) -> bool {
    let Some(info) = vxlan_info(msg) else {
        return false;
    };
    [
        InfoVxlan::Id(vni),
        InfoVxlan::Local(vtep),
        InfoVxlan::Port(port),
        InfoVxlan::Learning(false),
        InfoVxlan::Proxy(true),
    ]
    .iter()
    .all(|want| info.contains(want))
}

/// The temporary name of an endpoint's veth end while it is still in the
/// host namespace (renamed to `ethN` inside the endpoint's namespace).
fn peer_tmp_name(host_ifname: &str) -> String {
    host_ifname.replacen("swve-", "swvp-", 1)
}

/// A neighbour message naming the FDB entry `mac → vtep` on `index`.
fn fdb_message(index: u32, mac: Mac, vtep: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes = vec![
        NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()),
        NeighbourAttribute::Destination(NeighbourAddress::Inet(vtep)),
    ];
    msg
}

/// The IPv4 destination and 6-byte link-layer address of a neighbour entry.
fn neighbour_parts(msg: &NeighbourMessage) -> (Option<Ipv4Addr>, Option<Mac>) {
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => ip = Some(*v4),
            // FDB entries (AF_BRIDGE) carry their VTEP as raw bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                ip = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                let mut b = [0u8; 6];
                b.copy_from_slice(l);
                mac = Some(Mac(b));
            }
            _ => {}
        }
    }
    (ip, mac)
}

impl Netlink {
    /// Every neighbour message of `family` on the device `index`.
    async fn dump_neighbours(
        &self,
        family: AddressFamily,
        index: u32,
        op: &str,
    ) -> Result<Vec<NeighbourMessage>, OverlayError> {
        let mut stream = self
            .host
            .handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute();
        let mut out = Vec::new();
        let mut seen = 0usize;
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| kernel_error(op.to_string(), &e))?
        {
            seen += 1;
            if seen > MAX_DUMP_ENTRIES {
                return Err(OverlayError::Kernel {
                    op: op.to_string(),
                    detail: format!("more than {MAX_DUMP_ENTRIES} entries"),
                });
            }
            if msg.header.ifindex == index {
                out.push(msg);
            }
        }
        Ok(out)
    }
}

impl DataPlane for Netlink {
    async fn ensure_overlay(
        &mut self,
        def: &OverlayDef,
        vtep: Ipv4Addr,
        port: u16,
    ) -> Result<(), OverlayError> {
        let mtu = self.underlay_mtu(vtep).await.ok();
        let vxlan = self.ensure_vxlan(def.vni, vtep, port, mtu).await?;
        let bridge = self.ensure_bridge(def.vni).await?;
        let msg = LinkUnspec::new_with_index(bridge).up().build();
        self.set_link(msg, || {
            format!("setting bridge {} up", bridge_name(def.vni))
        })
        .await?;
        let msg = LinkUnspec::new_with_index(vxlan)
            .controller(bridge)
            .up()
            .build();
        self.set_link(msg, || {
            format!("attaching {} to its bridge", vxlan_name(def.vni))
        })
        .await
    }

    async fn remove_overlay(&mut self, vni: u32) -> Result<(), OverlayError> {
        self.delete_link(&vxlan_name(vni)).await?;
        self.delete_link(&bridge_name(vni)).await
    }

    async fn overlays(&mut self) -> Result<BTreeSet<u32>, OverlayError> {
        let mut out = BTreeSet::new();
        for msg in all_links(&self.host.handle).await? {
            let Some(vni) = name_of(&msg).and_then(vni_of_device) else {
                continue;
            };
            let ours = match name_of(&msg) {
                Some(n) if n.starts_with("swvx-") => {
                    vxlan_info(&msg).is_some_and(|info| info.contains(&InfoVxlan::Id(vni)))
                }
                _ => is_kind(&msg, &InfoKind::Bridge),
            };
            if ours {
                out.insert(vni);
            }
        }
        Ok(out)
    }

    async fn neighbours(&mut self, vni: u32) -> Result<BTreeSet<(Ipv4Addr, Mac)>, OverlayError> {
        let Some(index) = self.vxlan_index(vni).await? else {
            return Ok(BTreeSet::new());
        };
        let op = format!("listing neighbours of {}", vxlan_name(vni));
        let msgs = self
            .dump_neighbours(AddressFamily::Inet, index, &op)
            .await?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.state == NeighbourState::Permanent)
            .filter_map(|m| match neighbour_parts(m) {
                (Some(ip), Some(mac)) => Some((ip, mac)),
                _ => None,
            })
            .collect())
    }

    async fn fdb(&mut self, vni: u32) -> Result<BTreeSet<(Mac, Ipv4Addr)>, OverlayError> {
        let Some(index) = self.vxlan_index(vni).await? else {
            return Ok(BTreeSet::new());
        };
        let op = format!("listing FDB entries of {}", vxlan_name(vni));
        let msgs = self
            .dump_neighbours(AddressFamily::Bridge, index, &op)
            .await?;
        Ok(msgs
            .iter()
            .filter_map(|m| match neighbour_parts(m) {
                (Some(vtep), Some(mac)) if mac.0 != [0; 6] => Some((mac, vtep)),
                _ => None,
            })
            .collect())
    }

    async fn add_neighbour(
        &mut self,
        vni: u32,
        ip: Ipv4Addr,
        mac: Mac,
    ) -> Result<(), OverlayError> {
        let op = || format!("adding neighbour {ip} -> {mac} on {}", vxlan_name(vni));
        let index = self.existing_vxlan_index(vni, op).await?;
        self.host
            .handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .state(NeighbourState::Permanent)
            .link_layer_address(&mac.0)
            .replace()
            .execute()
            .await
            .map_err(|e| kernel_error(op(), &e))
    }

    async fn remove_neighbour(
        &mut self,
        vni: u32,
        ip: Ipv4Addr,
        mac: Mac,
    ) -> Result<(), OverlayError> {
        let Some(index) = self.vxlan_index(vni).await? else {
            return Ok(());
        };
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)),
            NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()),
        ];
        match self.host.handle.neighbours().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno_of(&e) == Some(nix::libc::ENOENT) => Ok(()),
            Err(e) => Err(kernel_error(
                format!("removing neighbour {ip} on {}", vxlan_name(vni)),
                &e,
            )),
        }
    }

    async fn add_fdb(&mut self, vni: u32, mac: Mac, vtep: Ipv4Addr) -> Result<(), OverlayError> {
        let op = || format!("adding FDB entry {mac} -> {vtep} on {}", vxlan_name(vni));
        let index = self.existing_vxlan_index(vni, op).await?;
        self.host
            .handle
            .neighbours()
            .add_bridge(index, &mac.0)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .destination(IpAddr::V4(vtep))
            .replace()
            .execute()
            .await
            .map_err(|e| kernel_error(op(), &e))
    }

    async fn remove_fdb(&mut self, vni: u32, mac: Mac, vtep: Ipv4Addr) -> Result<(), OverlayError> {
        let Some(index) = self.vxlan_index(vni).await? else {
            return Ok(());
        };
        let msg = fdb_message(index, mac, vtep);
        match self.host.handle.neighbours().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno_of(&e) == Some(nix::libc::ENOENT) => Ok(()),
            Err(e) => Err(kernel_error(
                format!("removing FDB entry {mac} -> {vtep} on {}", vxlan_name(vni)),
                &e,
            )),
        }
    }

    async fn attach(&mut self, ep: &LocalEndpoint) -> Result<(), OverlayError> {
        let ns_fd = open_netns(&ep.netns)?;
        let bridge =
            self.index_of(&bridge_name(ep.vni))
                .await?
                .ok_or_else(|| OverlayError::Kernel {
                    op: format!("attaching endpoint {} to VNI {}", ep.name, ep.vni),
                    detail: format!("bridge {} does not exist", bridge_name(ep.vni)),
                })?;
        let inside = Conn::in_netns(&ep.netns)?;
        if let Some(host) = link_by_name(&self.host.handle, &ep.host_ifname).await? {
            if self.endpoint_is_complete(ep, &host, &inside).await? {
                let msg = LinkUnspec::new_with_index(host.header.index)
                    .controller(bridge)
                    .up()
                    .build();
                self.set_link(msg, || {
                    format!("attaching {} to its bridge", ep.host_ifname)
                })
                .await?;
                return inside.configure_endpoint(ep, &ep.ifname).await;
            }
            self.delete_link(&ep.host_ifname).await?;
        }
        let peer_tmp = peer_tmp_name(&ep.host_ifname);
        self.delete_link(&peer_tmp).await?;
        let built = self
            .build_endpoint(ep, bridge, &peer_tmp, &ns_fd, &inside)
            .await;
        if let Err(e) = built {
            // Rollback: deleting either end of a veth pair deletes both.
            let _ = self.delete_link(&ep.host_ifname).await;
            let _ = self.delete_link(&peer_tmp).await;
            return Err(e);
        }
        Ok(())
    }

    async fn detach(&mut self, ep: &LocalEndpoint) -> Result<(), OverlayError> {
        self.delete_link(&ep.host_ifname).await?;
        self.delete_link(&peer_tmp_name(&ep.host_ifname)).await
    }

    async fn endpoints(&mut self) -> Result<Vec<FoundEndpoint>, OverlayError> {
        let links = all_links(&self.host.handle).await?;
        let bridges: BTreeMap<u32, u32> = links
            .iter()
            .filter(|m| is_kind(m, &InfoKind::Bridge))
            .filter_map(|m| {
                let name = name_of(m)?;
                name.starts_with("swbr-")
                    .then(|| vni_of_device(name))
                    .flatten()
                    .map(|vni| (m.header.index, vni))
            })
            .collect();
        let mut out = Vec::new();
        for msg in &links {
            let Some(name) = name_of(msg).filter(|n| n.starts_with("swve-")) else {
                continue;
            };
            let Some(vni) = controller_of(msg).and_then(|c| bridges.get(&c)) else {
                continue;
            };
            out.push(FoundEndpoint {
                host_ifname: name.to_string(),
                vni: *vni,
                alias: alias_of(msg).unwrap_or_default().to_string(),
            });
        }
        Ok(out)
    }

    async fn free_ifname(&mut self, netns: &str) -> Result<String, OverlayError> {
        let inside = Conn::in_netns(netns)?;
        let names: BTreeSet<String> = all_links(&inside.handle)
            .await?
            .iter()
            .filter_map(|m| name_of(m).map(str::to_string))
            .collect();
        (0..MAX_ETH_INDEX)
            .map(|n| format!("eth{n}"))
            .find(|n| !names.contains(n))
            .ok_or_else(|| OverlayError::Kernel {
                op: format!("choosing an interface name in namespace {netns:?}"),
                detail: format!("eth0 to eth{} are all taken", MAX_ETH_INDEX - 1),
            })
    }

    async fn underlay_mtu(&mut self, vtep: Ipv4Addr) -> Result<u32, OverlayError> {
        let op = || format!("finding the underlay interface of VTEP {vtep}");
        let index = self
            .host
            .index_holding(vtep)
            .await?
            .ok_or_else(|| OverlayError::Kernel {
                op: op(),
                detail: "no interface has this address".into(),
            })?;
        let link = all_links(&self.host.handle)
            .await?
            .into_iter()
            .find(|m| m.header.index == index);
        link.as_ref()
            .and_then(mtu_of)
            .ok_or_else(|| OverlayError::Kernel {
                op: op(),
                detail: "the interface has no MTU".into(),
            })
    }
}
