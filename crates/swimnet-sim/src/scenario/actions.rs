//! The scenario's faults and workload as a timeline of [`Action`]s, and what
//! each action does to the cluster when its time comes.
//!
//! [`Runner::timeline`] turns the scenario's sections into actions (one
//! function per section, in a fixed order: the order of random draws is
//! part of the result); [`Runner::apply`] dispatches each action to a small
//! function of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::Rng;

use super::format::Pick;
use super::measure::{CrashTrace, MetaTrace, WriteTrace};
use super::runner::{net_name, Runner, Tables};
use crate::NodeId;
use swimnet_core::SansIoNode;

/// One thing the runner does to the cluster at a point of the measured phase.
#[derive(Debug, Clone)]
pub(super) enum Action {
    /// Sets the background loss of every datagram.
    SetLoss(f64),
    /// Sets the inbound datagram loss of these nodes.
    NodeLoss(Vec<NodeId>, f64),
    /// Sets the loss of these one-way links.
    LinkLoss(Vec<[usize; 2]>, f64),
    /// Splits the nodes into contiguous groups (only group 0 to group 1
    /// when asymmetric).
    Partition { groups: usize, asymmetric: bool },
    /// Ends the partition.
    Heal,
    /// Crashes a node, to be restarted after the given time if any.
    Crash(NodeId, Option<Duration>),
    /// Restarts a crashed node.
    Restart(NodeId),
    /// Stalls a node for a while.
    Stall(NodeId, Duration),
    /// Adds a node that joins through the seeds.
    Join,
    /// A random non-seed node leaves gracefully.
    Leave,
    /// A node (given, or random non-seed) changes its metadata.
    Broadcast(Option<NodeId>),
    /// A writer of a network writes a new entry.
    Write { net: usize, writer: usize },
}

/// Actions with their times and the order they were scheduled in (which
/// breaks ties between actions due at the same time).
#[derive(Default)]
pub(super) struct Timeline {
    actions: Vec<(Duration, usize, Action)>,
}

impl Timeline {
    /// Schedules `a` at `at`, after everything scheduled so far for that time.
    fn push(&mut self, at: Duration, a: Action) {
        let k = self.actions.len();
        self.actions.push((at, k, a));
    }

    /// The actions in the order they run.
    pub(super) fn into_sorted(mut self) -> Vec<(Duration, usize, Action)> {
        self.actions.sort_by_key(|a| (a.0, a.1));
        self.actions
    }
}

/// The start of a window, or the end of the measured phase when open.
fn until_or(until: Option<super::Dur>, end: Duration) -> Duration {
    until.map_or(end, |d| d.0)
}

impl<C: SansIoNode + Tables + 'static> Runner<'_, C> {
    /// Every action of the scenario, one section after the other.
    pub(super) fn timeline(&mut self) -> Timeline {
        let mut tl = Timeline::default();
        self.loss_actions(&mut tl);
        self.partition_actions(&mut tl);
        self.crash_actions(&mut tl);
        self.stall_actions(&mut tl);
        self.churn_actions(&mut tl);
        self.broadcast_actions(&mut tl);
        self.write_actions(&mut tl);
        tl
    }

    /// `[[loss]]`: each window sets a loss and puts it back at its end.
    fn loss_actions(&mut self, tl: &mut Timeline) {
        let sc = self.sc;
        let end = sc.duration.0;
        for l in &sc.loss {
            let until = until_or(l.until, end);
            if !l.links.is_empty() {
                tl.push(l.from.0, Action::LinkLoss(l.links.clone(), l.rate));
                tl.push(until, Action::LinkLoss(l.links.clone(), 0.0));
            } else if l.pick.nodes.is_empty() && l.pick.count == 0 && l.pick.fraction == 0.0 {
                tl.push(l.from.0, Action::SetLoss(l.rate));
                tl.push(until, Action::SetLoss(self.base_loss));
            } else {
                let who = self.pick(&l.pick);
                tl.push(l.from.0, Action::NodeLoss(who.clone(), l.rate));
                tl.push(until, Action::NodeLoss(who, 0.0));
            }
        }
    }

    /// `[[partition]]`: a split and its heal.
    fn partition_actions(&mut self, tl: &mut Timeline) {
        let sc = self.sc;
        let end = sc.duration.0;
        for p in &sc.partition {
            let split = Action::Partition {
                groups: p.groups,
                asymmetric: p.asymmetric,
            };
            tl.push(p.at.0, split);
            tl.push(until_or(p.heal, end), Action::Heal);
        }
    }

    /// `[[crash]]`: one crash per picked node.
    fn crash_actions(&mut self, tl: &mut Timeline) {
        let sc = self.sc;
        for c in &sc.crash {
            for id in self.pick(&c.pick) {
                tl.push(c.at.0, Action::Crash(id, c.restart_after.map(|d| d.0)));
            }
        }
    }

    /// `[[stall]]`: `per_host` stalls per picked node at random times of the
    /// window (each ending within it).
    fn stall_actions(&mut self, tl: &mut Timeline) {
        let sc = self.sc;
        let end = sc.duration.0;
        for s in &sc.stall {
            let until = until_or(s.until, end);
            let span = until.saturating_sub(s.from.0).saturating_sub(s.duration.0);
            for id in self.pick(&s.pick) {
                for _ in 0..s.per_host {
                    let off = span.mul_f64(self.rng.gen::<f64>());
                    tl.push(s.from.0 + off, Action::Stall(id, s.duration.0));
                }
            }
        }
    }

    /// `[[churn]]`: joins and leaves at even steps of the window.
    fn churn_actions(&mut self, tl: &mut Timeline) {
        let sc = self.sc;
        let end = sc.duration.0;
        for c in &sc.churn {
            let until = until_or(c.until, end);
            for (rate, a) in [
                (c.joins_per_s, Action::Join),
                (c.leaves_per_s, Action::Leave),
            ] {
                if rate <= 0.0 {
                    continue;
                }
                let step = Duration::from_secs_f64(1.0 / rate);
                let mut t = c.from.0 + step;
                while t <= until {
                    tl.push(t, a.clone());
                    t += step;
                }
            }
        }
    }

    /// `[[broadcast]]`: `count` metadata changes `every` apart.
    fn broadcast_actions(&mut self, tl: &mut Timeline) {
        let sc = self.sc;
        for b in &sc.broadcast {
            for k in 0..b.count {
                tl.push(b.at.0 + b.every.0 * k as u32, Action::Broadcast(b.node));
            }
        }
    }

    /// `[workload]`: every writer of every network writes at `rate`.
    fn write_actions(&mut self, tl: &mut Timeline) {
        let sc = self.sc;
        let Some(w) = &sc.workload else {
            return;
        };
        let until = until_or(w.until, sc.duration.0);
        if w.rate <= 0.0 {
            return;
        }
        let step = Duration::from_secs_f64(1.0 / w.rate);
        for net in 0..w.networks {
            for writer in 0..self.writers[net].len() {
                // Stagger writers evenly within one step.
                let mut t = w.from.0
                    + step.mul_f64(
                        (writer as f64 + 0.5) / w.writers as f64 / w.networks as f64
                            * (net as f64 + 1.0),
                    );
                while t < until {
                    tl.push(t, Action::Write { net, writer });
                    t += step;
                }
            }
        }
    }

    /// Does what `a` says, now.
    pub(super) fn apply(&mut self, a: Action) {
        match a {
            Action::SetLoss(r) => self.h.net.loss = r,
            Action::NodeLoss(ids, r) => self.set_node_loss(&ids, r),
            Action::LinkLoss(links, r) => self.set_link_loss(&links, r),
            Action::Partition { groups, asymmetric } => self.split(groups, asymmetric),
            Action::Heal => self.heal(),
            Action::Crash(id, restart) => self.crash(id, restart),
            Action::Restart(id) => self.restart(id),
            Action::Stall(id, d) => self.stall(id, d),
            Action::Join => self.join_new_node(),
            Action::Leave => self.leave_random_node(),
            Action::Broadcast(node) => self.broadcast(node),
            Action::Write { net, writer } => self.write(net, writer),
        }
    }

    fn set_node_loss(&mut self, ids: &[NodeId], rate: f64) {
        for &i in ids {
            self.h.set_node_loss(i, rate);
        }
    }

    fn set_link_loss(&mut self, links: &[[usize; 2]], rate: f64) {
        for &[a, b] in links {
            if a < self.h.len() && b < self.h.len() {
                self.h.set_link_loss(a, b, rate);
            }
        }
    }

    /// Splits the nodes into `groups` contiguous blocks of ids.
    fn split(&mut self, groups: usize, asymmetric: bool) {
        let n = self.h.len();
        let g = move |i: NodeId| ((i * groups) / n).min(groups - 1) as u32;
        self.m.partitions.push((self.t(), None));
        if asymmetric {
            self.h.partition_directed(g, [(0, 1)]);
        } else {
            self.h.partition(g);
        }
    }

    /// Ends the partition and starts timing how long agreement takes.
    fn heal(&mut self) {
        self.h.heal();
        let now_t = self.t();
        if let Some(p) = self.m.partitions.last_mut() {
            p.1.get_or_insert(now_t);
        }
        self.m.last_heal = Some(now_t);
        self.m.membership_after_heal = None;
        self.m.tables_after_heal = None;
    }

    /// Crashes `id` (if running) and traces who should notice.
    fn crash(&mut self, id: NodeId, restart: Option<Duration>) {
        if !self.h.is_running(id) {
            return;
        }
        self.h.crash(id);
        self.crashed_ever.insert(id);
        let observers: BTreeSet<NodeId> = (0..self.h.len())
            .filter(|&i| self.h.is_running(i))
            .collect();
        self.m.crashes.push(CrashTrace {
            node: id,
            at: self.t(),
            restarted: None,
            observers,
            first_suspect: None,
            dead: BTreeMap::new(),
        });
        if let Some(after) = restart {
            self.pending.push((self.t() + after, Action::Restart(id)));
        }
    }

    /// Restarts `id` with a fresh core that joins the seeds and its networks.
    fn restart(&mut self, id: NodeId) {
        let t = self.t();
        if let Some(c) = self.m.crashes.iter_mut().rev().find(|c| c.node == id) {
            c.restarted.get_or_insert(t);
        }
        let seeds = self.seeds_for(id);
        let settings = self.sc.config.clone();
        self.h
            .restart(id, move |n, a| settings.config(n, a), &seeds);
        self.attach_networks(id);
    }

    fn stall(&mut self, id: NodeId, d: Duration) {
        if self.h.is_running(id) && !self.h.is_stalled(id) {
            self.h.stall(id, d);
        }
    }

    fn join_new_node(&mut self) {
        let id = self.add_node();
        let seeds = self.seeds_for(id);
        self.h.join(id, &seeds);
        self.attach_networks(id);
    }

    /// One random non-seed node leaves; its process stops 5 s later.
    fn leave_random_node(&mut self) {
        let who = self.pick(&Pick {
            count: 1,
            ..Pick::default()
        });
        for id in who {
            if self.left.contains(&id) {
                continue;
            }
            self.left.insert(id);
            self.h.leave(id, Duration::from_secs(5));
        }
    }

    /// `node` (or a random non-seed node) sets a new meta, traced until
    /// every running node has it.
    fn broadcast(&mut self, node: Option<NodeId>) {
        let node = match node {
            Some(n) if n < self.h.len() && self.h.is_running(n) => n,
            Some(_) => return,
            None => match self.pick(&Pick {
                count: 1,
                ..Pick::default()
            })[..]
            {
                [n, ..] => n,
                [] => return,
            },
        };
        self.meta_seq += 1;
        let meta = format!("b{}", self.meta_seq).into_bytes();
        let targets: BTreeSet<NodeId> = (0..self.h.len())
            .filter(|&i| i != node && self.h.is_running(i) && !self.left.contains(&i))
            .collect();
        let now = self.h.now();
        if let Some(c) = self.h.core_mut(node) {
            let _ = c.core_mut().set_meta(now, meta.clone());
        }
        self.m.metas.push(MetaTrace {
            node,
            meta,
            at: self.t(),
            targets,
            seen: BTreeMap::new(),
        });
        self.h.flush(node);
    }

    /// Writer number `writer` of network `net` writes a new entry whose
    /// value starts with the write's sequence number.
    fn write(&mut self, net: usize, writer: usize) {
        let Some(&owner) = self.writers[net].get(writer) else {
            return;
        };
        if !self.h.is_running(owner) || self.h.is_stalled(owner) || self.left.contains(&owner) {
            return;
        }
        let size = self.sc.workload.as_ref().map_or(64, |w| w.value_size);
        let seq = self.m.writes.len() as u64;
        let mut value = seq.to_be_bytes().to_vec();
        value.resize(size, b'v');
        let key = format!("k{owner}-{seq}");
        let now = self.h.now();
        let ok = match self.h.core_mut(owner) {
            Some(c) => c.write(now, &net_name(net), &key, &value),
            None => false,
        };
        self.h.flush(owner);
        if !ok {
            self.fail(format!(
                "node {owner} could not write {key} in {}",
                net_name(net)
            ));
            return;
        }
        let targets: BTreeSet<NodeId> = self.attached[net]
            .iter()
            .copied()
            .filter(|&i| i != owner && self.h.is_running(i) && !self.left.contains(&i))
            .collect();
        self.m.writes.push(WriteTrace {
            at: self.t(),
            net,
            writer: owner,
            targets,
            seen: BTreeMap::new(),
        });
        self.expected.insert((net, key), (owner, value));
    }
}
