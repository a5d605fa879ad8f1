//! Raw memberlist packets built by hand, to check a live agent answers
//! them.

use super::*;

fn mp_str(out: &mut Vec<u8>, b: &[u8]) {
    assert!(b.len() < 32);
    out.push(0xa0 | b.len() as u8);
    out.extend_from_slice(b);
}

/// A plaintext memberlist ping (SeqNo 7, SourceNode "n1", as
/// [`check_ping_vector`] pins it byte for byte) with `Node` set to the target's name and the Source address set to
/// the sending socket, so an ack would come back to it.
pub fn plaintext_ping(target: &str, src: SocketAddr) -> Vec<u8> {
    let ip = match src {
        SocketAddr::V4(a) => a.ip().octets(),
        SocketAddr::V6(_) => panic!("IPv4 only"),
    };
    let mut m = vec![0x00, 0x85];
    mp_str(&mut m, b"Node");
    mp_str(&mut m, target.as_bytes());
    mp_str(&mut m, b"SeqNo");
    m.push(0x07);
    mp_str(&mut m, b"SourceAddr");
    mp_str(&mut m, &ip);
    mp_str(&mut m, b"SourceNode");
    mp_str(&mut m, b"n1");
    mp_str(&mut m, b"SourcePort");
    m.push(0xcd);
    m.extend_from_slice(&src.port().to_be_bytes());
    m
}

/// Sends the plaintext ping from a socket bound to `from` (port chosen by
/// the kernel) to `to:7946` and returns whatever datagram comes back within
/// `wait` (None if nothing does).
pub fn ping_plaintext(
    from: Ipv4Addr,
    to: Ipv4Addr,
    target: &str,
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((from, 0)).expect("bind UDP prober");
    let src = sock.local_addr().unwrap();
    let pkt = plaintext_ping(target, src);
    sock.send_to(&pkt, (to, GOSSIP_PORT)).expect("send ping");
    let mut buf = [0u8; 65536];
    sock.set_read_timeout(Some(wait)).unwrap();
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            None
        }
        Err(e) => panic!("recv: {e}"),
    }
}

/// Checks [`plaintext_ping`] against a known-good encoding of the ping to
/// "n2" from 127.0.0.1:7946: a msgpack map of `Node`, `SeqNo`,
/// `SourceAddr`, `SourceNode` and `SourcePort` after type byte 0 (ping).
pub fn check_ping_vector() {
    let got = plaintext_ping("n2", "127.0.0.1:7946".parse().unwrap());
    let want = "0085a44e6f6465a26e32a55365714e6f07aa536f7572636541646472a47f000001aa536f757263654e6f6465a26e31aa536f75726365506f7274cd1f0a";
    let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex, want,
        "plaintext ping encoder does not match the known-good encoding"
    );
}

pub fn file_exists(p: &Path) -> bool {
    File::open(p).is_ok()
}
