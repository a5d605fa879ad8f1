//! Named network namespaces (`ip netns` convention: a bind mount at
//! `/run/netns/NAME`): checking that one exists and running code inside one
//! to open sockets there (netlink, DNS). A socket keeps the namespace it
//! was created in, so code run here may hand its sockets back to the
//! caller, whose thread never changes namespace.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

use crate::OverlayError;

/// Where `ip netns` mounts named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The path of the named namespace `name`, after checking the name is one
/// `ip netns` could have made (no `/`, not `.` or `..`, at most 255 bytes).
pub fn netns_path(name: &str) -> Result<PathBuf, OverlayError> {
    if name.is_empty()
        || name.len() > 255
        || name.contains('/')
        || name == "."
        || name == ".."
        || name.contains('\0')
    {
        return Err(OverlayError::Invalid(format!(
            "not a network namespace name: {:?}",
            crate::model::clip(name)
        )));
    }
    Ok(PathBuf::from(NETNS_DIR).join(name))
}

/// Opens the named namespace, or says it does not exist.
pub fn open_netns(name: &str) -> Result<File, OverlayError> {
    let path = netns_path(name)?;
    File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => OverlayError::NoSuchNetns(name.to_string()),
        std::io::ErrorKind::PermissionDenied => {
            OverlayError::NoPermission(format!("opening {}", path.display()))
        }
        _ => OverlayError::Kernel {
            op: format!("opening {}", path.display()),
            detail: e.to_string(),
        },
    })
}

/// Runs `f` on a fresh thread that has entered the named namespace and
/// returns its result; the calling thread stays where it is. Use it to
/// create sockets inside the namespace (they stay bound there).
pub fn run_in_netns<T, F>(name: &str, f: F) -> Result<T, OverlayError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = open_netns(name)?;
    let owned = name.to_string();
    let worker = std::thread::Builder::new()
        .name("swimnet-netns".into())
        .spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| match e {
                nix::errno::Errno::EPERM => {
                    OverlayError::NoPermission(format!("entering network namespace {owned:?}"))
                }
                other => OverlayError::Kernel {
                    op: format!("entering network namespace {owned:?}"),
                    detail: other.desc().to_string(),
                },
            })?;
            Ok(f())
        })
        .map_err(|e| OverlayError::Kernel {
            op: "starting a thread".into(),
            detail: e.to_string(),
        })?;
    worker.join().map_err(|_| OverlayError::Kernel {
        op: format!("inside network namespace {name:?}"),
        detail: "the worker thread panicked".into(),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_paths_are_refused() {
        for bad in ["", ".", "..", "a/b", "../etc"] {
            assert!(
                matches!(netns_path(bad), Err(OverlayError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert_eq!(netns_path("ep1").unwrap(), PathBuf::from("/run/netns/ep1"));
    }

    #[test]
    fn a_missing_namespace_is_named_in_the_error() {
        let err = run_in_netns("swimnet-no-such-ns", || ()).unwrap_err();
        assert_eq!(err, OverlayError::NoSuchNetns("swimnet-no-such-ns".into()));
        assert!(err.to_string().contains("/run/netns/swimnet-no-such-ns"));
    }
}
