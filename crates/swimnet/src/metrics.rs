//! `GET /metrics`: a status snapshot ([`StatusView`], taken by the driver in
//! one step, so no lock is held across the core) rendered in the Prometheus
//! text format (version 0.0.4) through `prometheus-client`. The registry is
//! built anew on each scrape from the snapshot's figures
//! ([`crate::figures`]); every name starts with `swimnet_`, counters end in
//! `_total`, byte counts in `_bytes_total`. The README lists every metric.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::api_server::ApiCounters;
use crate::commands::StatusView;
use crate::figures::{self, LayerFigures, Named};

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Labels of one series: `(label name, value)` pairs.
type Labels = Vec<(&'static str, String)>;

/// A registry being filled from one snapshot.
struct Metrics {
    registry: Registry,
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        let c: Counter = Counter::default();
        c.inc_by(value);
        self.registry.register(name, help, c);
    }

    fn byte_counter(&mut self, name: &str, help: &str, value: u64) {
        let c: Counter = Counter::default();
        c.inc_by(value);
        self.registry.register_with_unit(name, help, Unit::Bytes, c);
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        let g: Gauge = Gauge::default();
        g.set(gauge_value(value));
        self.registry.register(name, help, g);
    }

    fn counters(&mut self, name: &str, help: &str, unit: Option<Unit>, series: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, value) in series {
            family.get_or_create(&labels).inc_by(value);
        }
        match unit {
            Some(u) => self.registry.register_with_unit(name, help, u, family),
            None => self.registry.register(name, help, family),
        }
    }

    fn gauges(&mut self, name: &str, help: &str, series: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Gauge>::default();
        for (labels, value) in series {
            family.get_or_create(&labels).set(gauge_value(value));
        }
        self.registry.register(name, help, family);
    }

    /// One counter per entry of `list`, named `<prefix><name>`.
    fn named_counters(&mut self, prefix: &str, list: &[Named]) {
        for n in list {
            self.counter(&format!("{prefix}{}", n.name), n.help, n.value);
        }
    }
}

fn label(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_string())]
}

fn kind_series(values: &[u64]) -> Vec<(Labels, u64)> {
    figures::by_kind(values)
        .into_iter()
        .map(|(k, v)| (label("kind", k), v))
        .collect()
}

/// Identity, members, health and queues.
fn identity(m: &mut Metrics, v: &StatusView) {
    m.gauges(
        "node_info",
        "This agent: node name, protocol and swimnet version (always 1)",
        vec![(
            vec![
                ("node", v.name.clone()),
                ("protocol", v.layer.protocol().to_string()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ],
            1,
        )],
    );
    m.gauge(
        "incarnation",
        "This node's incarnation number",
        u64::from(v.incarnation),
    );
    m.gauges(
        "members",
        "Members in this node's table by status (alive, suspect, failed, left), itself included",
        v.members
            .by_status()
            .into_iter()
            .map(|(s, n)| (label("status", s), n))
            .collect(),
    );
    m.gauge(
        "health_score",
        "Lifeguard local health (awareness) score: 0 is healthy, higher means probes time out longer",
        v.health_score as u64,
    );
    m.gauge(
        "leaving",
        "1 while the agent is leaving the cluster, else 0",
        u64::from(v.leaving),
    );
    m.gauge(
        "gossip_queue_messages",
        "memberlist broadcasts (alive, suspect, dead) waiting to be gossiped",
        v.broadcast_queue,
    );
}

/// Datagrams and messages by kind.
fn traffic(m: &mut Metrics, v: &StatusView) {
    let s = &v.stats;
    m.counter("packets_received", "Datagrams received", s.packets_in);
    m.counter("packets_sent", "Datagrams sent", s.packets_out);
    m.byte_counter(
        "packets_received",
        "Bytes of the datagrams received",
        s.bytes_in,
    );
    m.byte_counter("packets_sent", "Bytes of the datagrams sent", s.bytes_out);
    m.counters(
        "messages_received",
        "memberlist messages received in datagrams, by message kind",
        None,
        kind_series(&s.messages_in),
    );
    m.counters(
        "messages_sent",
        "memberlist messages sent in datagrams (piggy-backed gossip included), by message kind",
        None,
        kind_series(&s.messages_out),
    );
    m.counters(
        "messages_received",
        "Bytes of the memberlist messages received, by message kind (each message's own encoding, without compound framing, compression or encryption)",
        Some(Unit::Bytes),
        kind_series(&s.message_bytes_in),
    );
    m.counters(
        "messages_sent",
        "Bytes of the memberlist messages sent, by message kind (each message's own encoding, without compound framing, compression or encryption)",
        Some(Unit::Bytes),
        kind_series(&s.message_bytes_out),
    );
}

/// Probes, the failure detector's verdicts, push/pulls and stream health.
fn detection(m: &mut Metrics, v: &StatusView) {
    let s = &v.stats;
    let direct = s
        .probes_ok
        .saturating_sub(s.probes_indirect)
        .saturating_sub(s.probes_tcp_rescued);
    m.counters(
        "probes",
        "Probes of other members by outcome: answered directly, only after the indirect pings, only over TCP, or failed",
        None,
        vec![
            (label("result", "direct"), direct),
            (label("result", "indirect"), s.probes_indirect),
            (label("result", "tcp"), s.probes_tcp_rescued),
            (label("result", "failed"), s.probes_failed),
        ],
    );
    m.counter(
        "suspicions",
        "Members that became suspect in this node's table",
        s.suspicions,
    );
    m.counter(
        "refutations",
        "Suspicions or death notices about this node that it refuted",
        s.refutations,
    );
    m.counter(
        "dead_verdicts",
        "Members declared dead (failed) in this node's table; graceful leaves are not counted",
        s.dead_verdicts,
    );
    m.counter(
        "push_pulls",
        "Push/pull state exchanges completed (either side)",
        s.push_pulls,
    );
    m.counter(
        "stream_failures",
        "Streams that failed (decode error, peer error, timeout, a budget)",
        s.streams_failed,
    );
    m.counter(
        "decrypt_failures",
        "Datagrams and stream messages no key of the keyring could decrypt",
        s.decrypt_failures,
    );
    m.counter(
        "final_checks",
        "Last checks of suspects before a dead verdict",
        s.final_checks,
    );
    m.counter(
        "final_checks_answered",
        "Last checks a suspect answered (a dead verdict avoided)",
        s.final_checks_answered,
    );
    m.counter(
        "refusal_verdicts",
        "Members declared dead after their host refused two TCP pings",
        s.refusal_verdicts,
    );
    m.counter(
        "catch_ups",
        "Catch-up push/pulls started for a deep gossip backlog",
        s.catch_ups,
    );
    m.counter(
        "pings_refused",
        "TCP pings refused by the target's host",
        s.pings_refused,
    );
    m.byte_counter(
        "stream_scanned",
        "Bytes examined while decoding streams",
        s.stream_bytes_scanned,
    );
    m.counter(
        "topology_choices",
        "Peer choices made latency-aware",
        s.topology_choices,
    );
    m.counter(
        "driver_stream_errors",
        "Streams that failed in the driver: size cap, deadline, connect or IO error",
        v.driver.stream_errors,
    );
    m.counter(
        "io_errors",
        "Socket errors (datagram send and receive, accept)",
        v.driver.io_errors,
    );
}

/// Every counter of dropped or refused input, by layer and reason.
fn drops(m: &mut Metrics, v: &StatusView, api: &ApiCounters) {
    let series = figures::all_drops(v, api)
        .into_iter()
        .map(|(layer, n)| {
            (
                vec![("layer", layer.to_string()), ("reason", n.name.to_string())],
                n.value,
            )
        })
        .collect();
    m.counters(
        "dropped",
        "Input dropped or refused by a limit or a check, by the layer that counted it (core, driver, api, networkdb, serf) and the reason (the counter's name in GET /v1/stats)",
        None,
        series,
    );
}

fn http(m: &mut Metrics, api: &ApiCounters) {
    use std::sync::atomic::Ordering;
    m.gauge(
        "api_connections_open",
        "HTTP API connections being served now",
        api.connections_open.load(Ordering::Relaxed),
    );
    m.named_counters("api_", &figures::api_activity(api));
}

fn layer(m: &mut Metrics, v: &StatusView) {
    match &v.layer {
        LayerFigures::Memberlist => {}
        LayerFigures::Serf { counters, queue } => {
            m.gauge(
                "serf_queue_messages",
                "Serf messages (intents, events, queries) waiting to be gossiped",
                *queue,
            );
            m.counters(
                "serf_messages_received",
                "Serf messages received, by Serf message kind",
                None,
                figures::serf_received(counters)
                    .into_iter()
                    .map(|(k, n)| (label("kind", k), n))
                    .collect(),
            );
            m.named_counters("serf_", &figures::serf_activity(counters));
        }
        LayerFigures::NetworkDb { stats, networks } => {
            m.gauge(
                "networkdb_networks",
                "NetworkDB networks this node is attached to",
                networks.len() as u64,
            );
            m.gauges(
                "networkdb_entries",
                "Table entries stored per attached network (every table and owner)",
                networks
                    .iter()
                    .map(|n| (label("network", &n.network), n.entries))
                    .collect(),
            );
            m.gauges(
                "networkdb_queue_messages",
                "Table events of this node waiting to be gossiped, per attached network",
                networks
                    .iter()
                    .map(|n| (label("network", &n.network), n.queue))
                    .collect(),
            );
            m.named_counters("networkdb_", &figures::ndb_activity(stats));
        }
    }
}

/// The overlay manager's figures (`--protocol networkdb`).
fn overlay(m: &mut Metrics, f: &crate::overlay::OverlayFigures) {
    m.gauge(
        "overlay_networks",
        "Overlay networks defined in the cluster (winning definitions)",
        f.overlays,
    );
    m.gauge(
        "overlay_local_endpoints",
        "Overlay endpoints on this host",
        f.local_endpoints,
    );
    m.gauge(
        "overlay_neighbour_entries",
        "Neighbour entries programmed on this host's VXLAN devices",
        f.neighbours,
    );
    m.gauge(
        "overlay_fdb_entries",
        "FDB entries programmed on this host's VXLAN devices",
        f.fdb_entries,
    );
    m.counter(
        "overlay_reconcile_runs",
        "Overlay reconcile runs (one per overlay with local endpoints per pass)",
        f.reconcile_runs,
    );
    m.counter(
        "overlay_repairs",
        "Neighbour and FDB entries put back after being removed behind the agent's back",
        f.repairs,
    );
    m.counter(
        "overlay_decode_failures",
        "Overlay table values (definitions, claims, records) that did not decode",
        f.decode_failures,
    );
    m.counter(
        "overlay_conflicts_lost",
        "Own overlay definitions or address claims that lost to another node's",
        f.conflicts_lost,
    );
    m.counter(
        "overlay_kernel_errors",
        "Kernel operations that failed during overlay reconcile",
        f.kernel_errors,
    );
}

/// Renders `view` (and the HTTP listeners' counters `api`) as Prometheus
/// text. Pure: call it with a snapshot the driver answered.
pub fn render(view: &StatusView, api: &ApiCounters) -> String {
    render_with(view, api, None)
}

/// [`render`] with the overlay manager's figures, when the agent has one.
pub fn render_with(
    view: &StatusView,
    api: &ApiCounters,
    overlays: Option<&crate::overlay::OverlayFigures>,
) -> String {
    let mut m = Metrics {
        registry: Registry::with_prefix("swimnet"),
    };
    identity(&mut m, view);
    traffic(&mut m, view);
    detection(&mut m, view);
    drops(&mut m, view, api);
    http(&mut m, api);
    layer(&mut m, view);
    if let Some(f) = overlays {
        overlay(&mut m, f);
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &m.registry);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::figures::{MemberCounts, NetworkFigures};
    use swimnet_core::wire::msg::MessageType;

    /// One sample line: name, labels, value.
    type Sample = (String, BTreeMap<String, String>, f64);

    /// Parses the sample lines of Prometheus text (labels without commas
    /// or quotes in their values, which is all these tests use).
    pub(crate) fn samples(text: &str) -> Vec<Sample> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a value");
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').expect("k=v");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels, value.parse().expect("a number"))
            })
            .collect()
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0]
    }

    /// A snapshot with known figures (shared with the other modules' tests).
    pub(crate) fn view(layer: LayerFigures) -> StatusView {
        let mut stats = swimnet_core::Stats::default();
        stats.messages_in[MessageType::Ping as usize] = 7;
        stats.message_bytes_out[MessageType::AckResp as usize] = 420;
        stats.probes_ok = 10;
        stats.probes_indirect = 2;
        stats.probes_tcp_rescued = 1;
        stats.probes_failed = 3;
        stats.dead_verdicts = 4;
        stats.packets_replayed = 5;
        stats.bytes_in = 1234;
        StatusView {
            name: "n1".into(),
            incarnation: 3,
            health_score: 2,
            stats,
            driver: crate::driver::DriverStats {
                connections_refused: 6,
                ..Default::default()
            },
            members: MemberCounts {
                alive: 3,
                suspect: 1,
                failed: 1,
                left: 0,
            },
            broadcast_queue: 9,
            leaving: false,
            layer,
        }
    }

    /// NetworkDB figures with two networks.
    pub(crate) fn ndb() -> LayerFigures {
        let stats = swimnet_networkdb::NdbStats {
            entry_limit_drops: 8,
            table_events_applied: 11,
            ..Default::default()
        };
        LayerFigures::NetworkDb {
            stats,
            networks: vec![
                NetworkFigures {
                    network: "net-a".into(),
                    entries: 12,
                    queue: 1,
                },
                NetworkFigures {
                    network: "net-b".into(),
                    entries: 0,
                    queue: 0,
                },
            ],
        }
    }

    #[test]
    fn figures_render_under_their_names_and_labels() {
        let api = ApiCounters::default();
        api.requests_refused
            .store(13, std::sync::atomic::Ordering::Relaxed);
        let s = samples(&render(&view(ndb()), &api));
        let v = |name: &str, labels: &[(&str, &str)]| value(&s, name, labels);
        assert_eq!(
            v(
                "swimnet_node_info",
                &[("node", "n1"), ("protocol", "networkdb")]
            ),
            1.0
        );
        assert_eq!(v("swimnet_members", &[("status", "alive")]), 3.0);
        assert_eq!(v("swimnet_members", &[("status", "suspect")]), 1.0);
        assert_eq!(v("swimnet_members", &[("status", "failed")]), 1.0);
        assert_eq!(v("swimnet_health_score", &[]), 2.0);
        assert_eq!(v("swimnet_gossip_queue_messages", &[]), 9.0);
        assert_eq!(
            v("swimnet_messages_received_total", &[("kind", "ping")]),
            7.0
        );
        assert_eq!(
            v("swimnet_messages_sent_bytes_total", &[("kind", "ack")]),
            420.0
        );
        assert_eq!(v("swimnet_packets_received_bytes_total", &[]), 1234.0);
        assert_eq!(v("swimnet_probes_total", &[("result", "direct")]), 7.0);
        assert_eq!(v("swimnet_probes_total", &[("result", "indirect")]), 2.0);
        assert_eq!(v("swimnet_probes_total", &[("result", "tcp")]), 1.0);
        assert_eq!(v("swimnet_probes_total", &[("result", "failed")]), 3.0);
        assert_eq!(v("swimnet_dead_verdicts_total", &[]), 4.0);
        let drop = |layer, reason| {
            v(
                "swimnet_dropped_total",
                &[("layer", layer), ("reason", reason)],
            )
        };
        assert_eq!(drop("core", "packets_replayed"), 5.0);
        assert_eq!(drop("driver", "connections_refused"), 6.0);
        assert_eq!(drop("api", "requests_refused"), 13.0);
        assert_eq!(drop("networkdb", "entry_limit_drops"), 8.0);
        assert_eq!(
            v("swimnet_networkdb_entries", &[("network", "net-a")]),
            12.0
        );
        assert_eq!(
            v("swimnet_networkdb_queue_messages", &[("network", "net-a")]),
            1.0
        );
        assert_eq!(v("swimnet_networkdb_entries", &[("network", "net-b")]), 0.0);
        assert_eq!(v("swimnet_networkdb_table_events_applied_total", &[]), 11.0);
        // No Serf figures on a NetworkDB agent.
        assert!(s.iter().all(|(n, _, _)| !n.starts_with("swimnet_serf_")));
    }

    #[test]
    fn every_metric_has_help_a_type_and_the_prefix() {
        let serf = LayerFigures::Serf {
            counters: Default::default(),
            queue: 2,
        };
        let overlays = crate::overlay::OverlayFigures::default();
        for layer in [LayerFigures::Memberlist, serf, ndb()] {
            let text = render_with(&view(layer), &ApiCounters::default(), Some(&overlays));
            let helped: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# HELP "))
                .map(|l| l.split(' ').next().unwrap())
                .collect();
            let typed: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .map(|l| l.split(' ').next().unwrap())
                .collect();
            assert_eq!(helped, typed);
            let unique: std::collections::BTreeSet<&&str> = helped.iter().collect();
            assert_eq!(unique.len(), helped.len(), "a metric registered twice");
            for (name, _, _) in samples(&text) {
                assert!(name.starts_with("swimnet_"), "{name}");
                assert!(helped.contains(&name.as_str()), "{name} has no HELP");
            }
        }
    }

    #[test]
    fn serf_figures_render_in_serf_mode() {
        let mut counters = swimnet_serf::SerfCounters::default();
        counters.received[3] = 5;
        counters.clock_jumps_rejected = 2;
        let layer = LayerFigures::Serf { counters, queue: 4 };
        let s = samples(&render(&view(layer), &ApiCounters::default()));
        assert_eq!(value(&s, "swimnet_serf_queue_messages", &[]), 4.0);
        assert_eq!(
            value(
                &s,
                "swimnet_serf_messages_received_total",
                &[("kind", "user_event")]
            ),
            5.0
        );
        let drop = [("layer", "serf"), ("reason", "clock_jumps_rejected")];
        assert_eq!(value(&s, "swimnet_dropped_total", &drop), 2.0);
        assert!(s
            .iter()
            .all(|(n, _, _)| !n.starts_with("swimnet_networkdb_")));
    }
}

#[cfg(test)]
mod readme {
    use super::tests::{ndb, view};
    use super::*;

    /// The README's metrics table names every metric (`swimnet_NAME` in
    /// backticks) that any node kind exports.
    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../../README.md");
        let serf = LayerFigures::Serf {
            counters: Default::default(),
            queue: 0,
        };
        let overlays = crate::overlay::OverlayFigures::default();
        for layer in [LayerFigures::Memberlist, serf, ndb()] {
            let text = render_with(&view(layer), &ApiCounters::default(), Some(&overlays));
            for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
                let name = name.split(' ').next().unwrap();
                assert!(
                    readme.contains(&format!("`{name}`")) || readme.contains(&format!("`{name}{{")),
                    "README.md does not document {name}"
                );
            }
        }
    }
}
