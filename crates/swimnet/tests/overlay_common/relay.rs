//! A TCP relay from a loopback address of the root namespace to an address
//! inside a host namespace (the agent's API on the namespace's own
//! 127.0.0.1). A client that cannot enter a namespace, such as the browser
//! of tests/ui_browser.rs, reaches the agent through it while the API stays
//! on loopback, as the agent requires without a token.
//!
//! Each accepted connection is served by a thread that enters the host
//! namespace (`setns`, that thread only), connects to the target and then
//! copies bytes both ways; when the target refuses (agent down), the client
//! sees its connection closed. Dropping the relay stops accepting; copies
//! in flight end when either side closes.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A listening relay; stops accepting when dropped.
pub struct Relay {
    listen: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on `listen` (root namespace) and relays every connection to
    /// `target` inside namespace `ns`. Panics when it cannot listen or the
    /// namespace does not exist.
    pub fn start(listen: SocketAddr, ns: &str, target: SocketAddr) -> Relay {
        let nsfile = Path::new("/run/netns").join(ns);
        assert!(
            nsfile.exists(),
            "relay to {target} in {ns}: no namespace at {}",
            nsfile.display()
        );
        let listener = TcpListener::bind(listen).unwrap_or_else(|e| {
            panic!("relay to {target} in {ns}: cannot listen on {listen}: {e}")
        });
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(client) = conn {
                    let nsfile = nsfile.clone();
                    thread::spawn(move || serve(client, &nsfile, target));
                }
            }
        });
        Relay {
            listen,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.listen, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Connects to `target` from inside the namespace bound at `nsfile`; the
/// calling thread stays in that namespace.
fn connect_in(nsfile: &Path, target: SocketAddr) -> io::Result<TcpStream> {
    let ns = File::open(nsfile)?;
    // SAFETY: setns with a valid descriptor of a network namespace changes
    // only the calling thread's network namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    TcpStream::connect_timeout(&target, Duration::from_secs(5))
}

/// Copies both ways between `client` and a new connection to `target`.
fn serve(client: TcpStream, nsfile: &Path, target: SocketAddr) {
    let Ok(server) = connect_in(nsfile, target) else {
        return;
    };
    let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || {
        let _ = io::copy(&mut c_in, &mut s_out);
        // The client is done sending: the target still answers.
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let (mut s_in, mut c_out) = (server, client);
    let _ = io::copy(&mut s_in, &mut c_out);
    // The target closed (or failed): nothing more will come either way.
    let _ = c_out.shutdown(Shutdown::Both);
    let _ = s_in.shutdown(Shutdown::Both);
    let _ = up.join();
}
