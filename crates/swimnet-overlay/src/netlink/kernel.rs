//! Netlink plumbing for [`super::Netlink`]: connections (in this or a
//! named namespace), link lookups and attribute readers, endpoint set-up
//! inside its namespace, and the mapping of kernel errors to
//! [`OverlayError`].

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use nix::errno::Errno;
use rtnetlink::{Handle, LinkUnspec};

use crate::model::LocalEndpoint;
use crate::netns::run_in_netns;
use crate::OverlayError;

/// Most messages read from one kernel dump (links, addresses, neighbours);
/// a bigger answer is refused rather than held in memory.
pub const MAX_DUMP_ENTRIES: usize = 262_144;

/// One netlink connection, bound to the namespace it was opened in.
pub(crate) struct Conn {
    /// Requests go through this handle; the connection task ends when the
    /// last handle is dropped.
    pub(crate) handle: Handle,
}

impl Conn {
    /// A connection in the calling process's namespace, its task spawned
    /// on the current tokio runtime.
    pub(crate) fn here() -> Result<Conn, OverlayError> {
        let rt = runtime()?;
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| socket_error(&e))?;
        rt.spawn(conn);
        Ok(Conn { handle })
    }

    /// A connection whose socket was opened inside `/run/netns/NAME`.
    pub(crate) fn in_netns(name: &str) -> Result<Conn, OverlayError> {
        let rt = runtime()?;
        let inner = rt.clone();
        let opened = run_in_netns(name, move || {
            let _entered = inner.enter();
            rtnetlink::new_connection()
        })?;
        let (conn, handle, _) = opened.map_err(|e| socket_error(&e))?;
        rt.spawn(conn);
        Ok(Conn { handle })
    }

    /// The index of the interface holding the IPv4 address `ip`.
    pub(crate) async fn index_holding(&self, ip: Ipv4Addr) -> Result<Option<u32>, OverlayError> {
        let op = "listing addresses";
        let mut stream = self.handle.address().get().execute();
        let mut seen = 0usize;
        while let Some(msg) = stream.try_next().await.map_err(|e| kernel_error(op, &e))? {
            seen += 1;
            if seen > MAX_DUMP_ENTRIES {
                return Err(too_many(op));
            }
            if holds(&msg, ip) {
                return Ok(Some(msg.header.index));
            }
        }
        Ok(None)
    }

    /// Inside the endpoint's namespace (this connection's): renames the
    /// veth end `current` to `ep.ifname`, sets its MAC, MTU and address,
    /// brings it and `lo` up. Idempotent.
    pub(crate) async fn configure_endpoint(
        &self,
        ep: &LocalEndpoint,
        current: &str,
    ) -> Result<(), OverlayError> {
        let ns = &ep.netns;
        let index = link_by_name(&self.handle, current)
            .await?
            .ok_or_else(|| OverlayError::Kernel {
                op: format!("configuring {current} in namespace {ns:?}"),
                detail: "the device is not there".into(),
            })?
            .header
            .index;
        let mut msg = LinkUnspec::new_with_index(index)
            .address(ep.mac.0.to_vec())
            .mtu(ep.mtu);
        if current != ep.ifname {
            msg = msg.name(ep.ifname.clone());
        }
        self.set(msg.build(), || {
            format!("naming {current} {} in namespace {ns:?}", ep.ifname)
        })
        .await?;
        self.set(LinkUnspec::new_with_index(index).up().build(), || {
            format!("setting {} up in namespace {ns:?}", ep.ifname)
        })
        .await?;
        self.handle
            .address()
            .add(index, IpAddr::V4(ep.ip), ep.prefix_len)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                kernel_error(
                    format!(
                        "adding {}/{} to {} in namespace {ns:?}",
                        ep.ip, ep.prefix_len, ep.ifname
                    ),
                    &e,
                )
            })?;
        let lo = link_by_name(&self.handle, "lo").await?;
        if let Some(lo) = lo {
            self.set(
                LinkUnspec::new_with_index(lo.header.index).up().build(),
                || format!("setting lo up in namespace {ns:?}"),
            )
            .await?;
        }
        Ok(())
    }

    /// Applies the RTM_SETLINK `msg`.
    async fn set(&self, msg: LinkMessage, op: impl FnOnce() -> String) -> Result<(), OverlayError> {
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| kernel_error(op(), &e))
    }
}

/// The tokio runtime we are called from.
fn runtime() -> Result<tokio::runtime::Handle, OverlayError> {
    tokio::runtime::Handle::try_current().map_err(|_| OverlayError::Kernel {
        op: "opening a netlink connection".into(),
        detail: "not called from inside a tokio runtime".into(),
    })
}

/// Whether the address message `msg` is the IPv4 address `ip`.
fn holds(msg: &AddressMessage, ip: Ipv4Addr) -> bool {
    msg.attributes.iter().any(|a| match a {
        AddressAttribute::Local(IpAddr::V4(v4)) | AddressAttribute::Address(IpAddr::V4(v4)) => {
            *v4 == ip
        }
        _ => false,
    })
}

/// The error for opening a netlink socket.
fn socket_error(e: &std::io::Error) -> OverlayError {
    match e.raw_os_error() {
        Some(n) if n == Errno::EPERM as i32 || n == Errno::EACCES as i32 => {
            OverlayError::NoPermission("opening a netlink socket".into())
        }
        _ => OverlayError::Kernel {
            op: "opening a netlink socket".into(),
            detail: e.to_string(),
        },
    }
}

/// The error for a dump that did not stop.
fn too_many(op: &str) -> OverlayError {
    OverlayError::Kernel {
        op: op.to_string(),
        detail: format!("more than {MAX_DUMP_ENTRIES} entries"),
    }
}

/// The device `name`, `None` when there is none.
pub(crate) async fn link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkMessage>, OverlayError> {
    let mut stream = handle.link().get().match_name(name.to_string()).execute();
    match stream.try_next().await {
        Ok(found) => Ok(found),
        Err(e) if errno_of(&e) == Some(Errno::ENODEV as i32) => Ok(None),
        Err(e) => Err(kernel_error(format!("looking up device {name}"), &e)),
    }
}

/// Every device of the connection's namespace.
pub(crate) async fn all_links(handle: &Handle) -> Result<Vec<LinkMessage>, OverlayError> {
    let op = "listing devices";
    let mut stream = handle.link().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(|e| kernel_error(op, &e))? {
        if out.len() >= MAX_DUMP_ENTRIES {
            return Err(too_many(op));
        }
        out.push(msg);
    }
    Ok(out)
}

/// The device's name.
pub(crate) fn name_of(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The device's interface alias.
pub(crate) fn alias_of(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The index of the device's controller (the bridge it is enslaved to).
pub(crate) fn controller_of(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(c) => Some(*c),
        _ => None,
    })
}

/// The device's MTU.
pub(crate) fn mtu_of(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// The device's link infos.
fn infos(msg: &LinkMessage) -> &[LinkInfo] {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

/// Whether the device is of kind `kind`.
pub(crate) fn is_kind(msg: &LinkMessage, kind: &InfoKind) -> bool {
    infos(msg)
        .iter()
        .any(|i| matches!(i, LinkInfo::Kind(k) if k == kind))
}

/// The VXLAN settings of the device, `None` when it is not a VXLAN device.
pub(crate) fn vxlan_info(msg: &LinkMessage) -> Option<&[InfoVxlan]> {
    infos(msg).iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vxlan(v)) => Some(v.as_slice()),
        _ => None,
    })
}

/// The errno of a netlink error answer (positive), if it is one.
pub(crate) fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| c.get().abs()),
        _ => None,
    }
}

/// Maps a failed netlink request (`op` says what was being done) to an
/// [`OverlayError`]: missing permission (`EPERM`, `EACCES`) becomes
/// [`OverlayError::NoPermission`], anything else [`OverlayError::Kernel`]
/// with the errno's description.
pub fn kernel_error(op: impl Into<String>, e: &rtnetlink::Error) -> OverlayError {
    let op = op.into();
    match errno_of(e) {
        Some(n) if n == Errno::EPERM as i32 || n == Errno::EACCES as i32 => {
            OverlayError::NoPermission(op)
        }
        Some(n) => OverlayError::Kernel {
            op,
            detail: Errno::from_raw(n).desc().to_string(),
        },
        None => OverlayError::Kernel {
            op,
            detail: e.to_string(),
        },
    }
}

/// Maps a failed creation of the VXLAN device `name`: the kernel not
/// knowing the device type (`EOPNOTSUPP`, iproute2's "unknown device type")
/// becomes [`OverlayError::NoVxlan`]; the rest as [`kernel_error`].
pub fn vxlan_create_error(name: &str, e: &rtnetlink::Error) -> OverlayError {
    if errno_of(e) == Some(Errno::EOPNOTSUPP as i32) {
        return OverlayError::NoVxlan(format!("creating {name}: unknown device type vxlan"));
    }
    kernel_error(format!("creating vxlan device {name}"), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::ErrorMessage;
    use std::num::NonZeroI32;

    fn nack(errno: Errno) -> rtnetlink::Error {
        let mut m = ErrorMessage::default();
        m.code = NonZeroI32::new(-(errno as i32));
        rtnetlink::Error::NetlinkError(m)
    }

    #[test]
    fn unknown_device_type_means_no_vxlan() {
        let err = vxlan_create_error("swvx-001000", &nack(Errno::EOPNOTSUPP));
        assert!(matches!(err, OverlayError::NoVxlan(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("no VXLAN support"), "{text}");
        assert!(text.contains("swvx-001000"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn permission_errors_name_the_operation() {
        for errno in [Errno::EPERM, Errno::EACCES] {
            let err = vxlan_create_error("swvx-001000", &nack(errno));
            assert_eq!(
                err,
                OverlayError::NoPermission("creating vxlan device swvx-001000".into())
            );
            assert!(err.to_string().contains("CAP_NET_ADMIN"));
        }
    }

    #[test]
    fn other_errors_carry_the_errno_description() {
        let err = kernel_error("adding neighbour", &nack(Errno::EINVAL));
        assert_eq!(
            err,
            OverlayError::Kernel {
                op: "adding neighbour".into(),
                detail: "Invalid argument".into(),
            }
        );
        let err = kernel_error("x", &rtnetlink::Error::RequestFailed);
        assert!(matches!(err, OverlayError::Kernel { .. }));
        assert_eq!(errno_of(&nack(Errno::EEXIST)), Some(Errno::EEXIST as i32));
    }
}
