//! The SWIM invariants the harness checks on every run, and its view of
//! whether the cluster agrees: incarnations never decrease, no node is
//! taken back alive at an incarnation it was declared dead with, and live
//! nodes declared dead are counted as false positives.

use std::time::Duration;

use swimnet_core::{Event, NodeState};

use crate::{Harness, NodeId};
use swimnet_core::SansIoNode;

/// What happened that breaks SWIM's rules, with the time it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time since the start of the run.
    pub at: Duration,
    /// What went wrong.
    pub what: String,
}

/// A live node declared dead by another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FalsePositive {
    /// Virtual time since the start of the run.
    pub at: Duration,
    /// Who declared it.
    pub observer: NodeId,
    /// Who was declared dead while running.
    pub target: NodeId,
}

impl<C: SansIoNode> Harness<C> {
    /// Suspicions raised about nodes that were running, counted per observer.
    pub fn false_suspicions(&self) -> u64 {
        self.false_suspicions
    }

    /// Live nodes declared dead so far.
    pub fn false_positives(&self) -> &[FalsePositive] {
        &self.false_positives
    }

    /// Broken invariants seen so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// True when every running node sees exactly the running nodes as alive
    /// (and no others as alive).
    pub fn converged(&self) -> bool {
        self.disagreeing_nodes(1).is_empty()
    }

    /// Up to `limit` running nodes whose view is not exactly "every running
    /// node alive, nobody else alive".
    pub fn disagreeing_nodes(&self, limit: usize) -> Vec<NodeId> {
        let running: Vec<bool> = (0..self.nodes.len()).map(|i| self.is_running(i)).collect();
        let n_running = running.iter().filter(|r| **r).count();
        let mut out = Vec::new();
        for o in 0..self.nodes.len() {
            if !running[o] {
                continue;
            }
            let ml = self.nodes[o].core.as_ref().expect("running").core();
            let mut alive = 0;
            let mut ok = true;
            for m in ml.members() {
                if m.state != NodeState::Alive {
                    continue;
                }
                alive += 1;
                match self.node_of(&m.name) {
                    Some(t) if running[t] => {}
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok || alive != n_running {
                out.push(o);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out
    }

    /// Records a violation if node `id`'s own incarnation `inc` went down
    /// since its last flush, and remembers `inc`.
    pub(crate) fn check_own_incarnation(&mut self, id: NodeId, inc: u32, elapsed: Duration) {
        if inc < self.nodes[id].last_incarnation {
            self.violations.push(Violation {
                at: elapsed,
                what: format!(
                    "node {id}'s own incarnation went from {} to {inc}",
                    self.nodes[id].last_incarnation
                ),
            });
        }
        self.nodes[id].last_incarnation = inc;
    }

    /// Checks one event node `observer` emitted against the invariants and
    /// counts false suspicions and false positives.
    pub(crate) fn observe(&mut self, observer: NodeId, e: &Event) {
        let elapsed = self.elapsed();
        let (node, alive_again) = match e {
            Event::Join(n) | Event::Update(n) => (n, true),
            Event::Leave(n) => (n, false),
            Event::Suspect { node, .. } => (node, false),
            _ => return,
        };
        let Some(target) = self.node_of(&node.name) else {
            return;
        };
        if matches!(e, Event::Suspect { .. }) && self.is_running(target) {
            self.false_suspicions += 1;
        }
        let key = (observer, target);
        let view = &mut self.views[observer];
        if view.len() <= target {
            view.resize(target + 1, 0);
        }
        let prev = view[target];
        if prev > 0 && node.incarnation < prev - 1 {
            self.violations.push(Violation {
                at: elapsed,
                what: format!(
                    "node {observer} saw node {target}'s incarnation go from {} to {}",
                    prev - 1,
                    node.incarnation
                ),
            });
        }
        view[target] = node.incarnation.saturating_add(1);
        if alive_again {
            if let Some(&dead_inc) = self.dead_at.get(&key) {
                if node.incarnation <= dead_inc {
                    self.violations.push(Violation {
                        at: elapsed,
                        what: format!(
                            "node {observer} took node {target} back alive at incarnation {} after declaring it dead at {dead_inc}",
                            node.incarnation
                        ),
                    });
                }
            }
        }
        if let Event::Leave(n) = e {
            if n.state == NodeState::Dead {
                self.dead_at.insert(key, n.incarnation);
                if self.is_running(target) {
                    self.false_positives.push(FalsePositive {
                        at: elapsed,
                        observer,
                        target,
                    });
                }
            }
        }
    }
}
