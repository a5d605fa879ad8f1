//! Configuration and the LAN / WAN / Local presets with memberlist's numbers.

use std::net::SocketAddr;
use std::time::Duration;

use swimnet_wire::budget::DecodeBudget;
use swimnet_wire::compress::MAX_DECOMPRESSED;
use swimnet_wire::security::Keyring;

use crate::coordinate::CoordinateConfig;
use crate::reply_limit::ReplyLimitConfig;
use crate::topology::TopologyConfig;

/// Largest node metadata memberlist accepts (`MetaMaxSize`).
pub const META_MAX_SIZE: usize = 512;
/// Longest node name, in bytes, for our own name and for names peers
/// announce (an alive with a longer one is dropped). Memberlist sets none;
/// 255 is a full DNS name, longer than any hostname-based name real
/// deployments use.
pub const NODE_NAME_MAX: usize = 255;
/// Default [`Config::max_incarnation_jump`].
pub const DEFAULT_MAX_INCARNATION_JUMP: u32 = 1 << 16;
/// Default [`Config::max_members`].
pub const DEFAULT_MAX_MEMBERS: usize = 65_536;
/// Default [`Config::max_queued_broadcasts`].
pub const DEFAULT_MAX_QUEUED_BROADCASTS: usize = 65_536;
/// Lowest memberlist protocol version this core can speak.
pub const PROTOCOL_VERSION_MIN: u8 = 1;
/// Highest memberlist protocol version this core understands.
pub const PROTOCOL_VERSION_MAX: u8 = 5;
/// Smallest allowed [`Config::datagram_max_decoded_bytes`]: a whole
/// datagram's bytes must fit.
pub const MIN_DATAGRAM_DECODED_BYTES: usize = 65_536;
/// Smallest allowed [`Config::datagram_max_parts`].
pub const MIN_DATAGRAM_PARTS: usize = 512;

/// Everything that shapes a [`crate::Memberlist`]'s behaviour.
///
/// Build one with [`Config::lan`], [`Config::wan`] or [`Config::local`] (the
/// numbers of memberlist's `DefaultLANConfig`, `DefaultWANConfig` and
/// `DefaultLocalConfig`), then set the node name and advertise address. The
/// config is read when the core is created; later changes go through the
/// core's commands (keys, metadata).
#[derive(Clone, Debug)]
pub struct Config {
    /// Unique node name (the key of every membership table).
    pub name: String,
    /// Address and port peers use to reach this node, for UDP and TCP alike.
    pub advertise: SocketAddr,
    /// Memberlist protocol version to speak (1..=5; memberlist's default is 2).
    pub protocol_version: u8,
    /// Smallest delegate protocol version we accept (Serf: 2).
    pub delegate_protocol_min: u8,
    /// Largest delegate protocol version we accept (Serf: 5).
    pub delegate_protocol_max: u8,
    /// Delegate protocol version we speak (Serf agent: 5; plain memberlist: 0).
    pub delegate_protocol_version: u8,
    /// Deadline for a whole TCP exchange (push/pull, user stream).
    pub tcp_timeout: Duration,
    /// Peers asked to probe a node indirectly when a direct probe fails.
    pub indirect_checks: usize,
    /// Broadcasts are sent `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: usize,
    /// Suspicion timeout multiplier (minimum timeout in probe intervals, scaled by log10 n).
    pub suspicion_mult: usize,
    /// Maximum suspicion timeout, as a multiple of the minimum.
    pub suspicion_max_timeout_mult: usize,
    /// Interval between periodic full-state syncs (scaled up above 32 nodes). Zero disables them.
    pub push_pull_interval: Duration,
    /// Interval between probes.
    pub probe_interval: Duration,
    /// Time to wait for a direct ack before asking for indirect probes.
    pub probe_timeout: Duration,
    /// Never fall back to a TCP ping.
    pub disable_tcp_pings: bool,
    /// Lifeguard awareness ceiling: probe intervals stretch up to this multiple.
    pub awareness_max_multiplier: usize,
    /// Peers gossiped to every gossip interval.
    pub gossip_nodes: usize,
    /// Interval between gossip rounds. Zero disables gossip.
    pub gossip_interval: Duration,
    /// How long dead nodes keep receiving gossip, and stay in the table before reaping.
    pub gossip_to_the_dead_time: Duration,
    /// Drop packets and streams that are not encrypted when a keyring is set.
    pub gossip_verify_incoming: bool,
    /// Encrypt what we send when a keyring is set.
    pub gossip_verify_outgoing: bool,
    /// LZW-compress packets (when it helps) and streams.
    pub enable_compression: bool,
    /// Byte budget for one gossip packet and for piggy-backing.
    pub udp_buffer_size: usize,
    /// swimnet addition: most bytes one received datagram may decode to:
    /// its own bytes plus everything decompression makes of it, also when
    /// decompression fails. What does not fit is dropped and the datagram
    /// counted in [`crate::Stats::datagrams_over_budget`]. Default
    /// [`DecodeBudget::DATAGRAM_BYTES`] (1 MiB; memberlist allows 40 MiB);
    /// at least 65,536 (a whole datagram), at most 40 MiB.
    pub datagram_max_decoded_bytes: usize,
    /// swimnet addition: most parts one received datagram may hold: every
    /// compound and compress wrapper, message, empty or undecodable part,
    /// and the parts a delegate opens inside user messages
    /// ([`crate::Delegate::notify_packet_msg`]). The rest is dropped and the
    /// datagram counted in [`crate::Stats::datagrams_over_budget`]. Default
    /// [`DecodeBudget::DATAGRAM_PARTS`] (4,096); at least 512 (one compress
    /// wrapper around a full 255-part compound, with room to spare).
    pub datagram_max_parts: usize,
    /// swimnet addition: how long the nonce of an authenticated encrypted
    /// datagram is remembered to drop exact replays of it (counted in
    /// [`crate::Stats::packets_replayed`]). Default 60 s; zero turns replay
    /// protection off. Go peers use a fresh random nonce per datagram, so
    /// nothing legitimate is dropped.
    pub replay_window: Duration,
    /// swimnet addition: most nonces remembered for
    /// [`Config::replay_window`] (about 50 bytes each); when more
    /// authenticated datagrams arrive within one window, the oldest are
    /// forgotten first. Default 32,768 (550 datagrams a second over 60 s,
    /// about 1.6 MiB); zero turns replay protection off.
    pub replay_cache_capacity: usize,
    /// After this long dead, a node may come back with another address (0: never).
    pub dead_node_reclaim_time: Duration,
    /// Keyring for AES-GCM; `None` means plaintext.
    pub keyring: Option<Keyring>,
    /// Label bound to every packet and stream (memberlist >= 0.3). Must be empty to talk to memberlist 0.2.2.
    pub label: Vec<u8>,
    /// Node metadata announced in alive messages (at most [`META_MAX_SIZE`] bytes).
    pub meta: Vec<u8>,
    /// swimnet addition: how often to try a push/pull with a node we believe dead, so that partitions heal
    /// (Serf's `ReconnectInterval`). Zero disables reconnects.
    pub reconnect_interval: Duration,
    /// swimnet addition: how long a dead node is remembered for reconnect attempts (Serf's `ReconnectTimeout`).
    pub reconnect_timeout: Duration,
    /// swimnet addition: one probe timeout before a suspicion runs out, check
    /// the suspect once more (a ping carrying the suspicion, indirect pings
    /// through `indirect_checks` helpers and a TCP ping, all at once) and
    /// declare it dead at the deadline only if nothing answered; an answer
    /// gives its refutation one more minimum suspicion timeout. Memberlist
    /// declares it dead at the deadline without asking; the check costs no
    /// detection time (except when confirmations cut the deadline to less
    /// than one probe timeout away) and removes false "dead" verdicts when a
    /// refutation was lost.
    pub probe_before_dead: bool,
    /// swimnet addition: crash verdicts from refused TCP pings. A TCP ping
    /// refused by the suspect's host (a reset: the host is up, but nothing
    /// listens on the member's port) shows that its process is not running.
    /// After a first refusal, the suspect is checked again (ping with the
    /// suspicion, indirect pings, TCP ping) [`Config::refusal_recheck`]
    /// later; if that TCP ping is refused as well and nothing answers the
    /// check within its window (one probe timeout), the suspect is declared
    /// dead then instead of at the end of its suspicion timeout. Any answer
    /// clears the evidence. A host that is slow, paused, partitioned or
    /// behind a lossy link never refuses (its socket stays open, or nothing
    /// comes back at all), so its suspicion runs exactly as in memberlist.
    /// Nothing changes on the wire: peers see an ordinary dead message.
    /// Default: on.
    pub refusal_verdicts: bool,
    /// Least time between the two refusals a crash verdict needs (see
    /// [`Config::refusal_verdicts`]): long enough that a process being
    /// restarted in place gets back to listening first. Default: 500 ms.
    pub refusal_recheck: Duration,
    /// swimnet addition: catch-up push/pull. When more than this many
    /// broadcasts wait in our gossip queue for their first transmission
    /// (say many nodes joined at once, and we learned of them faster than
    /// gossip can pass them on), we also start a push/pull with a random
    /// alive peer, at most once per [`Config::catch_up_interval`]. Full state
    /// exchanges spread such a burst in O(log N) exchanges, where gossip
    /// alone is limited to a few dozen messages per packet: memberlist takes
    /// about 95 s for 2,000 simultaneous joins. Plain push/pull on the wire,
    /// so peers need nothing new. `0` turns it off. Default: 16 (more alive
    /// messages than one gossip round of three packets usually clears). It
    /// costs one full-state exchange per interval per node while the burst
    /// lasts.
    pub catch_up_backlog: usize,
    /// Least time between two catch-up push/pulls (see
    /// [`Config::catch_up_backlog`]). Default: 1 s.
    pub catch_up_interval: Duration,
    /// Largest number of concurrent inbound push/pull exchanges (memberlist: 128).
    pub max_push_pull_requests: usize,
    /// Limits on TCP streams: message size, node states, decoded size, and
    /// the budget over inbound streams not yet complete (see
    /// [`crate::StreamLimits`] for each knob and its default).
    pub stream_limits: crate::StreamLimits,
    /// Vivaldi network coordinates, as Serf keeps them (default: on, with
    /// Serf's settings). When set, the core puts our coordinate in the ack
    /// of every direct ping it answers (Serf's ack payload), and updates it
    /// from every direct probe whose ack carries a peer's coordinate; see
    /// [`crate::Memberlist::coordinate`]. A [`crate::Delegate::ack_payload`]
    /// that returns bytes takes the place of the coordinate in our acks;
    /// [`crate::Delegate::notify_ping_complete`] is called either way.
    /// Peers without a ping delegate (plain memberlist, Docker's NetworkDB)
    /// ignore ack payloads. `None` turns coordinates off: acks then carry
    /// only what the delegate returns.
    pub coordinates: Option<CoordinateConfig>,
    /// swimnet addition: latency-aware peer selection. When enabled, gossip
    /// targets, two in three probes, indirect-probe helpers (of probes and
    /// of the final check of a suspect) and the periodic push/pull partner
    /// are biased toward the near cluster (our region, by Vivaldi
    /// distance), always keeping at least one uniformly random gossip
    /// target; see [`crate::topology`]. Uses [`Config::coordinates`]
    /// (without them every choice stays uniform). **On by default**: it
    /// cuts cross-region traffic without slowing dissemination or failure
    /// detection (measurements in docs/BENCHMARKS.md). Until a node holds
    /// usable coordinates for 5 % of its members, and on a network without
    /// latency structure (a LAN), choices stay uniform. [`TopologyConfig::off`] restores memberlist's
    /// uniform choice; with it off the core draws exactly the same random
    /// numbers as before selection existed.
    pub topology: TopologyConfig,
    /// swimnet addition: the most an alive, suspect or dead message (or a
    /// push/pull node state) may raise a node's incarnation above the one we
    /// know (0 for a node we do not know). Honest incarnations grow by one
    /// per refutation; larger claims are dropped and counted in
    /// [`crate::Stats::incarnation_jumps_rejected`]. See
    /// `crates/swimnet-core/src/validate.rs` for the reasoning, including
    /// accusations about ourselves. Default: 65,536.
    pub max_incarnation_jump: u32,
    /// swimnet addition: the most entries of the member table, counting
    /// members (ourselves and dead ones not yet reaped included) plus
    /// tombstones of reaped ones. A new node that would go over it is
    /// dropped and counted in [`crate::Stats::members_rejected`]; known
    /// nodes are still updated. Default: 65,536.
    pub max_members: usize,
    /// swimnet addition: the most membership broadcasts waiting in the
    /// gossip queue; the oldest is dropped (and counted in
    /// [`crate::Stats::broadcasts_dropped`]) to make room. There is at most
    /// one per node, so this only bites with more nodes than it allows.
    /// Default: 65,536.
    pub max_queued_broadcasts: usize,
    /// swimnet addition: budget for acks and indirect probes aimed at
    /// addresses that are not members' (reflection); see
    /// [`crate::reply_limit`].
    pub reply_limit: ReplyLimitConfig,
    /// swimnet addition: take part in cluster-wide key operations
    /// ([`crate::key_ops`]): answer authenticated key-operation user
    /// messages instead of handing them to the delegate, and allow
    /// [`crate::Memberlist::start_key_op`]. Off by default (Serf nodes use
    /// Serf's key queries); the agent turns it on for plain memberlist and
    /// NetworkDB nodes.
    pub cluster_key_ops: bool,
}

impl Config {
    /// memberlist's `DefaultLANConfig`: tuned for a local network.
    pub fn lan(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Config {
            name: name.into(),
            advertise,
            protocol_version: 2,
            delegate_protocol_min: 0,
            delegate_protocol_max: 0,
            delegate_protocol_version: 0,
            tcp_timeout: Duration::from_secs(10),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            disable_tcp_pings: false,
            awareness_max_multiplier: 8,
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            gossip_to_the_dead_time: Duration::from_secs(30),
            gossip_verify_incoming: true,
            gossip_verify_outgoing: true,
            enable_compression: true,
            udp_buffer_size: 1400,
            datagram_max_decoded_bytes: DecodeBudget::DATAGRAM_BYTES,
            datagram_max_parts: DecodeBudget::DATAGRAM_PARTS,
            replay_window: Duration::from_secs(60),
            replay_cache_capacity: 32_768,
            dead_node_reclaim_time: Duration::ZERO,
            keyring: None,
            label: Vec::new(),
            meta: Vec::new(),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(24 * 3600),
            probe_before_dead: true,
            refusal_verdicts: true,
            refusal_recheck: Duration::from_millis(500),
            catch_up_backlog: 16,
            catch_up_interval: Duration::from_secs(1),
            max_push_pull_requests: 128,
            stream_limits: crate::StreamLimits::default(),
            coordinates: Some(CoordinateConfig::default()),
            topology: TopologyConfig::default(),
            max_incarnation_jump: DEFAULT_MAX_INCARNATION_JUMP,
            max_members: DEFAULT_MAX_MEMBERS,
            max_queued_broadcasts: DEFAULT_MAX_QUEUED_BROADCASTS,
            reply_limit: ReplyLimitConfig::default(),
            cluster_key_ops: false,
        }
    }

    /// memberlist's `DefaultWANConfig`: slower timers for high-latency links.
    pub fn wan(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Config {
            tcp_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_to_the_dead_time: Duration::from_secs(60),
            ..Config::lan(name, advertise)
        }
    }

    /// memberlist's `DefaultLocalConfig`: fast timers for loopback or one host.
    pub fn local(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Config {
            tcp_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead_time: Duration::from_secs(15),
            ..Config::lan(name, advertise)
        }
    }

    /// Sets the delegate versions Serf advertises (`2..=5`, speaking 5), which
    /// a node must use to be accepted by Serf agents' push/pull checks.
    pub fn with_serf_versions(mut self) -> Self {
        self.delegate_protocol_min = 2;
        self.delegate_protocol_max = 5;
        self.delegate_protocol_version = 5;
        self
    }

    /// True when packets and streams are encrypted on the way out.
    pub fn encryption_enabled(&self) -> bool {
        self.keyring.is_some() && self.gossip_verify_outgoing
    }

    /// Checks the settings that would otherwise fail later, at runtime.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |why: String| Err(crate::Error::InvalidConfig(why));
        if self.name.is_empty() {
            return bad("the node name must not be empty".into());
        }
        if self.name.len() > NODE_NAME_MAX {
            return bad(format!(
                "the node name is {} bytes, longer than {NODE_NAME_MAX}",
                self.name.len()
            ));
        }
        if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX).contains(&self.protocol_version) {
            return bad(format!(
                "protocol version {} is outside {PROTOCOL_VERSION_MIN}..={PROTOCOL_VERSION_MAX}",
                self.protocol_version
            ));
        }
        if self.delegate_protocol_min > self.delegate_protocol_max
            || !(self.delegate_protocol_min..=self.delegate_protocol_max)
                .contains(&self.delegate_protocol_version)
        {
            return bad("delegate protocol version must lie in min..=max".into());
        }
        if self.meta.len() > META_MAX_SIZE {
            return Err(crate::Error::MetaTooLarge {
                len: self.meta.len(),
                max: META_MAX_SIZE,
            });
        }
        if self.label.len() > swimnet_wire::label::LABEL_MAX {
            return bad(format!(
                "the label is longer than {} bytes",
                swimnet_wire::label::LABEL_MAX
            ));
        }
        if self.probe_interval.is_zero() || self.probe_timeout.is_zero() {
            return bad("probe interval and timeout must be positive".into());
        }
        if self.probe_timeout > self.probe_interval {
            return bad("the probe timeout must not exceed the probe interval".into());
        }
        if self.awareness_max_multiplier == 0 {
            return bad("awareness_max_multiplier must be at least 1".into());
        }
        if self.udp_buffer_size < 512 {
            return bad("udp_buffer_size must be at least 512 bytes".into());
        }
        if self.max_incarnation_jump == 0 {
            return bad("max_incarnation_jump must be at least 1".into());
        }
        if self.max_members < 2 {
            return bad("max_members must be at least 2".into());
        }
        if self.max_queued_broadcasts == 0 {
            return bad("max_queued_broadcasts must be at least 1".into());
        }
        self.reply_limit
            .validate()
            .map_err(crate::Error::InvalidConfig)?;
        if !(MIN_DATAGRAM_DECODED_BYTES..=MAX_DECOMPRESSED)
            .contains(&self.datagram_max_decoded_bytes)
        {
            return bad(format!(
                "datagram_max_decoded_bytes must lie in {MIN_DATAGRAM_DECODED_BYTES}..={MAX_DECOMPRESSED} \
                 (a whole datagram, up to memberlist's decompression cap)"
            ));
        }
        if self.datagram_max_parts < MIN_DATAGRAM_PARTS {
            return bad(format!(
                "datagram_max_parts must be at least {MIN_DATAGRAM_PARTS} (a compressed 255-part compound)"
            ));
        }
        self.stream_limits
            .validate()
            .map_err(crate::Error::InvalidConfig)?;
        if let Some(c) = &self.coordinates {
            c.validate().map_err(crate::Error::InvalidConfig)?;
        }
        self.topology
            .validate()
            .map_err(crate::Error::InvalidConfig)?;
        // Selection on with coordinates off is allowed: with no coordinate
        // there is nothing to be near to, and every choice stays uniform.
        Ok(())
    }
}
