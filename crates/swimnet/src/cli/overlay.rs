//! `swimnet overlay create|list|delete|attach|detach|endpoints` (clients of
//! the API's `/v1/overlays`), and the overlay flags of `swimnet agent`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use swimnet::api_server::parse_duration;
use swimnet::client::{segment, Client};
use swimnet::overlay::{CreatedView, EndpointView, OverlayOptions, OverlayView};

/// The overlay flags of `swimnet agent` (each also a config key and a
/// `SWIMNET_` variable).
#[derive(Args)]
pub struct OverlayAgentArgs {
    /// Local VXLAN tunnel endpoint of overlay networks, a unicast IPv4
    /// address other hosts reach (default: the advertise address, else
    /// the bind address).
    #[arg(long, value_parser = parse_vtep)]
    vtep_addr: Option<Ipv4Addr>,
    /// UDP port of overlay (VXLAN) traffic.
    #[arg(long, default_value_t = swimnet_overlay::model::VXLAN_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    vxlan_port: u16,
    /// How often the overlays' kernel entries are compared with the tables
    /// and repaired (seconds, or `500ms`, `1m`).
    #[arg(long, default_value = "5", value_parser = parse_duration)]
    overlay_reconcile: Duration,
    /// How long overlay create and attach wait for concurrent definitions
    /// and address claims to show up (milliseconds, or `2s`).
    #[arg(long, default_value = "1000", value_parser = parse_millis)]
    overlay_settle: Duration,
}

impl OverlayAgentArgs {
    /// The agent's overlay options.
    pub fn options(&self) -> OverlayOptions {
        OverlayOptions {
            vtep_addr: self.vtep_addr,
            vxlan_port: self.vxlan_port,
            reconcile: self.overlay_reconcile,
            settle: self.overlay_settle,
        }
    }
}

fn parse_vtep(text: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address"))?;
    swimnet::overlay::check_vtep(ip)?;
    Ok(ip)
}

/// A duration where a bare number is milliseconds (`1000`, `250ms`, `2s`).
fn parse_millis(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = t.parse().map_err(|_| format!("{t:?} is too large"))?;
        return Ok(Duration::from_millis(ms));
    }
    parse_duration(t)
}

/// Output format.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OverlayFormat {
    /// Readable text.
    Text,
    /// The API's JSON.
    Json,
}

/// `swimnet overlay` and its agent address.
#[derive(Args)]
pub struct OverlayArgs {
    /// Agent API address.
    #[arg(long, global = true, default_value = crate::DEFAULT_API, value_parser = crate::parse_addr)]
    pub api: SocketAddr,
    #[command(subcommand)]
    pub op: OverlayCmd,
}

/// `swimnet overlay` subcommands.
#[derive(Subcommand)]
pub enum OverlayCmd {
    /// Define an overlay network for the whole cluster (idempotent).
    Create {
        /// Overlay name (a DNS label).
        name: String,
        /// Its IPv4 subnet, e.g. 10.0.1.0/24.
        #[arg(long)]
        subnet: String,
        /// Its VXLAN network identifier (default: derived from the name).
        #[arg(long)]
        vni: Option<u32>,
    },
    /// List the overlays: name, network ID, subnet, VNI, hosts attached.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OverlayFormat,
    },
    /// Delete an overlay (refused while endpoints are attached anywhere).
    Delete {
        /// Overlay name.
        name: String,
    },
    /// Give a network namespace an interface on the overlay.
    Attach {
        /// Overlay name.
        name: String,
        /// The named network namespace (/run/netns/NETNS).
        #[arg(long)]
        netns: String,
        /// The address to use (default: a free one).
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// The endpoint's name for DNS (default: the namespace's name).
        #[arg(long = "name")]
        epname: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OverlayFormat,
    },
    /// Remove a namespace's interface on the overlay.
    Detach {
        /// Overlay name.
        name: String,
        /// The named network namespace.
        #[arg(long)]
        netns: String,
    },
    /// List every endpoint of the overlay, cluster-wide.
    Endpoints {
        /// Overlay name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OverlayFormat,
    },
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
}

/// Runs a `swimnet overlay` subcommand against the agent at `client`.
pub fn run(client: Client, op: OverlayCmd) -> Result<(), String> {
    match op {
        OverlayCmd::Create { name, subnet, vni } => {
            let mut body = serde_json::json!({ "name": name, "subnet": subnet });
            if let Some(v) = vni {
                body["vni"] = v.into();
            }
            let v: CreatedView = client.post("/v1/overlays", body)?;
            if v.created {
                println!(
                    "created overlay {}: id {}, subnet {}, vni {}",
                    v.name, v.id, v.subnet, v.vni
                );
            } else {
                println!("overlay {} already exists with the same settings", v.name);
            }
        }
        OverlayCmd::List { format } => {
            let v: Vec<OverlayView> = client.get("/v1/overlays")?;
            if format == OverlayFormat::Json {
                print_json(&v);
            } else {
                print_overlays(&v);
            }
        }
        OverlayCmd::Delete { name } => {
            client.delete_no_content(&format!("/v1/overlays/{}", segment(&name)))?;
            println!("deleted overlay {name}");
        }
        OverlayCmd::Attach {
            name,
            netns,
            ip,
            epname,
            format,
        } => {
            let mut body = serde_json::json!({ "netns": netns });
            if let Some(ip) = ip {
                body["ip"] = ip.to_string().into();
            }
            if let Some(n) = epname {
                body["name"] = n.into();
            }
            let path = format!("/v1/overlays/{}/endpoints", segment(&name));
            let v: EndpointView = client.post(&path, body)?;
            if format == OverlayFormat::Json {
                print_json(&v);
            } else {
                println!(
                    "attached {} to {} in {}: ip {}/{}, mac {}, interface {}, id {}",
                    v.name,
                    v.overlay,
                    netns,
                    v.ip,
                    v.prefix_len.unwrap_or(32),
                    v.mac,
                    v.ifname.as_deref().unwrap_or("?"),
                    v.id
                );
            }
        }
        OverlayCmd::Detach { name, netns } => {
            let path = format!(
                "/v1/overlays/{}/endpoints/{}",
                segment(&name),
                segment(&netns)
            );
            client.delete_no_content(&path)?;
            println!("detached {netns} from {name}");
        }
        OverlayCmd::Endpoints { name, format } => {
            let path = format!("/v1/overlays/{}/endpoints", segment(&name));
            let v: Vec<EndpointView> = client.get(&path)?;
            if format == OverlayFormat::Json {
                print_json(&v);
            } else {
                print_endpoints(&v);
            }
        }
    }
    Ok(())
}

fn print_overlays(v: &[OverlayView]) {
    println!(
        "{:<20} {:<64} {:<18} {:<8} HOSTS",
        "NAME", "ID", "SUBNET", "VNI"
    );
    for o in v {
        println!(
            "{:<20} {:<64} {:<18} {:<8} {}",
            o.name,
            o.id,
            o.subnet,
            o.vni,
            o.hosts.join(",")
        );
    }
}

fn print_endpoints(v: &[EndpointView]) {
    println!(
        "{:<20} {:<15} {:<17} {:<16} {:<15} ID",
        "NAME", "IP", "MAC", "HOST", "VTEP"
    );
    for e in v {
        println!(
            "{:<20} {:<15} {:<17} {:<16} {:<15} {}",
            e.name, e.ip, e.mac, e.host, e.vtep, e.id
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_is_milliseconds_when_bare_and_reconcile_seconds() {
        assert_eq!(parse_millis("1000").unwrap(), Duration::from_millis(1000));
        assert_eq!(parse_millis("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_millis("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_millis("soon").is_err());
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
    }

    #[test]
    fn a_vtep_must_be_a_unicast_ipv4_address() {
        assert_eq!(parse_vtep("10.0.0.1").unwrap(), Ipv4Addr::new(10, 0, 0, 1));
        for bad in ["0.0.0.0", "224.0.0.5", "255.255.255.255", "fe80::1", "host"] {
            assert!(parse_vtep(bad).is_err(), "{bad}");
        }
    }
}
