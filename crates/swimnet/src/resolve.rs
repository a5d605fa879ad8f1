//! Addresses given as host names (`localhost:7946`, `seed.example:7946`)
//! as well as IP literals. Local addresses (`--bind`, `--advertise`,
//! `--api`) are resolved once at start with [`resolve_now`]; join
//! addresses are only checked for form at start ([`check_seed`]) and
//! resolved again at every join attempt with [`resolve_seeds`], so a seed
//! whose name does not resolve yet (or moves) is picked up by a later try.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::api::parse_addr;

/// Port used when an address gives none (memberlist's default).
pub const DEFAULT_PORT: u16 = 7946;
/// Addresses taken from one host name's answer; the rest are ignored.
pub const MAX_ADDRS_PER_NAME: usize = 16;
/// Longest host name accepted (DNS's limit).
const MAX_HOST_LEN: usize = 253;
/// How long one name lookup may take before the attempt counts it as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// An address as given: an IP literal, or a host name with its port.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Ip(SocketAddr),
    Name(String, u16),
}

/// Splits `HOST:PORT`, `HOST`, `IP:PORT`, `IP` or `[IPv6]:PORT` without
/// looking anything up.
fn parse_target(text: &str) -> Result<Target, String> {
    let t = text.trim();
    if let Ok(a) = parse_addr(t) {
        return Ok(Target::Ip(a));
    }
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("{t:?}: the port {p:?} is not a number from 0 to 65535"))?;
            (h, port)
        }
        None => (t, DEFAULT_PORT),
    };
    let valid = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid {
        return Err(format!(
            "{t:?} is not an address: write HOST:PORT or IP:PORT, e.g. localhost:7946 or 127.0.0.1:7946"
        ));
    }
    Ok(Target::Name(host.to_string(), port))
}

/// Prefers an IPv4 address among a lookup's answers (`localhost` often
/// lists `::1` first, while agents usually listen on IPv4).
fn prefer_ipv4(addrs: impl Iterator<Item = SocketAddr>) -> Option<SocketAddr> {
    let all: Vec<SocketAddr> = addrs.take(MAX_ADDRS_PER_NAME).collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or_else(|| all.first())
        .copied()
}

/// Resolves `text` (host name or IP literal, port optional) to one address
/// now, blocking: for the addresses this agent binds or advertises and
/// for the client's `--api`. A name with several answers gives the first
/// IPv4 one. Used as a clap value parser.
pub fn resolve_now(text: &str) -> Result<SocketAddr, String> {
    match parse_target(text)? {
        Target::Ip(a) => Ok(a),
        Target::Name(host, port) => {
            let answers = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host:?}: {e}"))?;
            prefer_ipv4(answers).ok_or_else(|| format!("{host:?} resolves to no address"))
        }
    }
}

/// Checks that `text` is a join address (host name or IP literal, port
/// optional) without resolving it, and returns it trimmed. Used as a clap
/// value parser for `--join` and `--retry-join`.
pub fn check_seed(text: &str) -> Result<String, String> {
    parse_target(text).map(|_| text.trim().to_string())
}

/// Resolves join addresses for one attempt: IP literals as they are,
/// host names by the system resolver (at most [`MAX_ADDRS_PER_NAME`] each,
/// [`LOOKUP_TIMEOUT`] each). Returns the distinct addresses found and a
/// one-line error for each seed that gave none.
pub async fn resolve_seeds(seeds: &[String]) -> (Vec<SocketAddr>, Vec<String>) {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut errors = Vec::new();
    for seed in seeds {
        let found: Result<Vec<SocketAddr>, String> = match parse_target(seed) {
            Err(e) => Err(e),
            Ok(Target::Ip(a)) => Ok(vec![a]),
            Ok(Target::Name(host, port)) => {
                let lookup = tokio::net::lookup_host((host.as_str(), port));
                match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Err(_) => Err(format!(
                        "{seed}: no answer from the resolver in {LOOKUP_TIMEOUT:?}"
                    )),
                    Ok(Err(e)) => Err(format!("{seed}: cannot resolve: {e}")),
                    Ok(Ok(it)) => Ok(it.take(MAX_ADDRS_PER_NAME).collect()),
                }
            }
        };
        match found {
            Ok(list) if list.is_empty() => errors.push(format!("{seed}: resolves to no address")),
            Ok(list) => {
                for a in list {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (addrs, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_names_and_bad_forms() {
        assert_eq!(
            resolve_now("127.0.0.1:7000").unwrap(),
            "127.0.0.1:7000".parse().unwrap()
        );
        assert_eq!(resolve_now("127.0.0.2").unwrap().port(), DEFAULT_PORT);
        let local = resolve_now("localhost:7001").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 7001, "{local}");
        assert!(local.is_ipv4(), "IPv4 preferred: {local}");
        assert_eq!(check_seed(" localhost:7946 ").unwrap(), "localhost:7946");
        for bad in ["", "host:port", "a b:1", "localhost:70000", "-:x"] {
            assert!(check_seed(bad).is_err(), "{bad:?} accepted");
        }
        // (No lookup of a name that fails: that would ask a real DNS server.)
    }

    #[tokio::test]
    async fn seeds_are_resolved_per_attempt_with_errors_per_seed() {
        let seeds = vec![
            "localhost:7002".to_string(),
            "127.0.0.1:7002".to_string(),
            "bad host:7946".to_string(),
        ];
        let (addrs, errors) = resolve_seeds(&seeds).await;
        assert!(addrs.contains(&"127.0.0.1:7002".parse().unwrap()));
        assert_eq!(
            addrs
                .iter()
                .filter(|a| a.to_string() == "127.0.0.1:7002")
                .count(),
            1,
            "duplicates merged: {addrs:?}"
        );
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("bad host:7946"), "{errors:?}");
    }
}
