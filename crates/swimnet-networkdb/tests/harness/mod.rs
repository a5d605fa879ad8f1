//! A small deterministic harness for [`NetworkDb`] nodes: virtual clock,
//! packet and stream delivery with seeded delays and optional loss.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use swimnet_core::{Config, StreamCommand, StreamId};
use swimnet_networkdb::{NdbConfig, NetworkDb, TableEntry};

enum Delivery {
    Packet {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    StreamOpen {
        to: usize,
        from: SocketAddr,
        origin: Option<(usize, StreamId)>,
        data: Vec<u8>,
    },
    StreamReply {
        to: usize,
        id: StreamId,
        data: Vec<u8>,
    },
    StreamError {
        to: usize,
        id: StreamId,
    },
}

/// The simulated cluster.
pub struct Cluster {
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<NetworkDb>,
    pub addrs: Vec<SocketAddr>,
    queue: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    rng: u64,
    /// Probability of losing a datagram.
    pub loss: f64,
    /// Nodes cut off from everything (crashed or partitioned away).
    pub down: BTreeSet<usize>,
    /// Nodes that keep running but whose traffic is all dropped (isolated).
    pub cut: BTreeSet<usize>,
    /// Nodes whose inbound TCP connections hang silently (never answered).
    pub tcp_black_hole: BTreeSet<usize>,
    reply_to: HashMap<(usize, StreamId), (usize, StreamId)>,
    /// Datagrams delivered.
    pub delivered: u64,
    /// Largest datagram allowed (memberlist's UDP buffer size).
    pub max_packet: usize,
    /// Largest datagram seen.
    pub max_seen: usize,
    /// Applied to the memberlist settings of every node added.
    pub core_tweak: fn(&mut Config),
    /// Bytes each node handed to the network (datagrams and stream data).
    pub sent_bytes: Vec<u64>,
}

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 1, i as u8 + 1)), 7946)
}

pub fn name(i: usize) -> String {
    format!("{:012x}", 0xabc000 + i)
}

impl Cluster {
    /// `n` nodes; node 0 is the seed, the others join through it.
    pub fn new(n: usize, seed: u64, ndb: NdbConfig) -> Cluster {
        Cluster::new_with(n, seed, ndb, |_| {})
    }

    /// Like [`Cluster::new`], with `tweak` applied to every node's
    /// memberlist settings.
    pub fn new_with(n: usize, seed: u64, ndb: NdbConfig, tweak: fn(&mut Config)) -> Cluster {
        let start = Instant::now();
        let mut c = Cluster {
            start,
            now: start,
            nodes: Vec::new(),
            addrs: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            rng: seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1,
            loss: 0.0,
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            tcp_black_hole: BTreeSet::new(),
            reply_to: HashMap::new(),
            delivered: 0,
            max_packet: 1400,
            max_seen: 0,
            core_tweak: tweak,
            sent_bytes: Vec::new(),
        };
        for i in 0..n {
            let _ = i;
            c.add_node(ndb.clone(), seed);
        }
        for i in 1..n {
            let a0 = c.addrs[0];
            let now = c.now;
            c.nodes[i].join(now, &[a0]).expect("join");
            c.flush(i);
            c.run_for(Duration::from_millis(50));
        }
        for _ in 0..60 {
            if c.nodes.iter().all(|db| db.cluster_peers().len() == n) {
                break;
            }
            c.run_for(Duration::from_secs(1));
        }
        c
    }

    pub fn add_node(&mut self, ndb: NdbConfig, seed: u64) -> usize {
        let i = self.nodes.len();
        let mut cfg = NetworkDb::docker_memberlist(Config::local(name(i), addr(i)));
        (self.core_tweak)(&mut cfg);
        let db = NetworkDb::new(cfg, ndb, self.now, seed.wrapping_add(i as u64 * 7919)).unwrap();
        self.nodes.push(db);
        self.addrs.push(addr(i));
        self.sent_bytes.push(0);
        self.flush(i);
        i
    }

    /// Replaces node `i` with a fresh one of the same name and address (a
    /// process restart): nothing of the old one is kept, traffic in flight
    /// to it is still delivered to the new one.
    pub fn replace_node(&mut self, i: usize, ndb: NdbConfig, seed: u64) {
        let mut cfg = NetworkDb::docker_memberlist(Config::local(name(i), addr(i)));
        (self.core_tweak)(&mut cfg);
        self.nodes[i] = NetworkDb::new(cfg, ndb, self.now, seed).unwrap();
        self.down.remove(&i);
        self.flush(i);
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn delay(&mut self) -> Duration {
        Duration::from_micros(500 + self.rand() % 4500)
    }

    fn push(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    fn by_addr(&self, a: SocketAddr) -> Option<usize> {
        self.addrs.iter().position(|x| *x == a)
    }

    /// Moves a node's outputs into the network.
    pub fn flush(&mut self, i: usize) {
        let now = self.now;
        while let Some(t) = self.nodes[i].poll_transmit() {
            assert!(
                t.payload.len() <= self.max_packet,
                "node {i} sent a {}-byte datagram",
                t.payload.len()
            );
            self.max_seen = self.max_seen.max(t.payload.len());
            self.sent_bytes[i] += t.payload.len() as u64;
            let Some(to) = self.by_addr(t.dst) else {
                continue;
            };
            if self.down.contains(&i) || self.down.contains(&to) {
                continue;
            }
            if self.cut.contains(&i) || self.cut.contains(&to) {
                continue;
            }
            if self.loss > 0.0 && (self.rand() % 1_000_000) as f64 / 1e6 < self.loss {
                continue;
            }
            let at = now + self.delay();
            let from = self.addrs[i];
            self.push(
                at,
                Delivery::Packet {
                    to,
                    from,
                    bytes: t.payload,
                },
            );
        }
        while let Some(c) = self.nodes[i].poll_stream() {
            match c {
                StreamCommand::Open {
                    id,
                    to,
                    data,
                    expect_reply,
                    deadline,
                } => {
                    self.sent_bytes[i] += data.len() as u64;
                    let target = self.by_addr(to);
                    match target {
                        Some(t)
                            if !self.down.contains(&t)
                                && !self.down.contains(&i)
                                && !self.cut.contains(&t)
                                && !self.cut.contains(&i)
                                && !self.tcp_black_hole.contains(&t) =>
                        {
                            let at = now + 2 * self.delay();
                            let from = self.addrs[i];
                            self.push(
                                at,
                                Delivery::StreamOpen {
                                    to: t,
                                    from,
                                    origin: expect_reply.then_some((i, id)),
                                    data,
                                },
                            );
                        }
                        _ => {
                            if expect_reply {
                                self.push(deadline, Delivery::StreamError { to: i, id });
                            }
                        }
                    }
                }
                StreamCommand::Reply { id, data } => {
                    self.sent_bytes[i] += data.len() as u64;
                    if let Some((origin, oid)) = self.reply_to.remove(&(i, id)) {
                        if !self.down.contains(&origin) && !self.down.contains(&i) {
                            let at = now + self.delay();
                            self.push(
                                at,
                                Delivery::StreamReply {
                                    to: origin,
                                    id: oid,
                                    data,
                                },
                            );
                        }
                    }
                }
                StreamCommand::Close { id } => {
                    if let Some((origin, oid)) = self.reply_to.remove(&(i, id)) {
                        let at = now + self.delay();
                        self.push(
                            at,
                            Delivery::StreamError {
                                to: origin,
                                id: oid,
                            },
                        );
                    }
                }
            }
        }
        while self.nodes[i].poll_event().is_some() {}
    }

    fn apply(&mut self, d: Delivery) {
        let now = self.now;
        match d {
            Delivery::Packet { to, from, bytes } => {
                if self.down.contains(&to) {
                    return;
                }
                self.delivered += 1;
                self.nodes[to].handle_packet(now, from, &bytes);
                self.flush(to);
            }
            Delivery::StreamOpen {
                to,
                from,
                origin,
                data,
            } => {
                if self.down.contains(&to) {
                    return;
                }
                let sid = self.nodes[to].handle_stream_accept(now, from);
                if let Some(o) = origin {
                    self.reply_to.insert((to, sid), o);
                }
                self.nodes[to].handle_stream_data(now, sid, &data, true);
                self.flush(to);
            }
            Delivery::StreamReply { to, id, data } => {
                if self.down.contains(&to) {
                    return;
                }
                self.nodes[to].handle_stream_data(now, id, &data, true);
                self.flush(to);
            }
            Delivery::StreamError { to, id } => {
                self.nodes[to].handle_stream_error(now, id, "connection failed");
                self.flush(to);
            }
        }
    }

    /// Runs the cluster until `dur` of virtual time has passed.
    pub fn run_for(&mut self, dur: Duration) {
        let until = self.now + dur;
        loop {
            let next_delivery = self.queue.keys().next().map(|k| k.0);
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.down.contains(i))
                .filter_map(|(_, n)| n.poll_timeout())
                .min();
            let next = match (next_delivery, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_delivery == Some(next) {
                let key = *self.queue.keys().next().expect("nonempty");
                let d = self.queue.remove(&key).expect("present");
                self.apply(d);
            } else {
                for i in 0..self.nodes.len() {
                    if self.down.contains(&i) {
                        continue;
                    }
                    if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                        let now = self.now;
                        self.nodes[i].handle_timeout(now);
                        self.flush(i);
                    }
                }
            }
        }
        self.now = until;
    }

    /// Runs a command on node `i` at the current time and flushes it.
    pub fn on<R>(&mut self, i: usize, f: impl FnOnce(&mut NetworkDb, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[i], now);
        self.flush(i);
        r
    }

    pub fn table(&self, i: usize, nid: &str, table: &str) -> Vec<TableEntry> {
        self.nodes[i].table_entries(nid, table)
    }
}
