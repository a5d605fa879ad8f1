//! A background thread that records every membership view of a set of
//! observers, to check that no node was ever wrongly marked failed.

use super::*;

/// Where the monitor reads a membership view from.
#[derive(Clone, Debug)]
pub enum Observer {
    Serf {
        name: String,
        bin: PathBuf,
        rpc: String,
    },
    Swim {
        name: String,
        api: String,
    },
}

impl Observer {
    fn name(&self) -> &str {
        match self {
            Observer::Serf { name, .. } | Observer::Swim { name, .. } => name,
        }
    }

    fn members(&self) -> Result<Vec<Member>, String> {
        match self {
            Observer::Serf { bin, rpc, .. } => serf_members(bin, rpc),
            Observer::Swim { api, .. } => swim_members_http(api),
        }
    }
}

#[derive(Debug, Default)]
pub struct MonitorReport {
    pub rounds: u64,
    /// "t=…s <observer> saw <subject> <status>"
    pub violations: Vec<String>,
    /// Failed queries (an observer that did not answer).
    pub errors: Vec<String>,
}

/// Polls every observer's view in a background thread and records every
/// time one of `subjects` is seen in a status other than `alive` (or, with
/// `require_present`, missing).
pub struct Monitor {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<MonitorReport>>,
}

impl Monitor {
    pub fn start(
        observers: Vec<Observer>,
        subjects: Vec<String>,
        require_present: bool,
    ) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let mut rep = MonitorReport::default();
            while !stop2.load(Ordering::Relaxed) {
                for o in &observers {
                    match o.members() {
                        Ok(m) => {
                            for s in &subjects {
                                let st = status_of(&m, s);
                                let bad = match &st {
                                    Some(st) => st != "alive",
                                    None => require_present,
                                };
                                if bad && rep.violations.len() < 200 {
                                    rep.violations.push(format!(
                                        "t={:.1}s {} saw {s} {}",
                                        start.elapsed().as_secs_f64(),
                                        o.name(),
                                        st.as_deref().unwrap_or("missing")
                                    ));
                                }
                            }
                        }
                        Err(e) => {
                            if rep.errors.len() < 50 {
                                rep.errors.push(format!(
                                    "t={:.1}s {}: {e}",
                                    start.elapsed().as_secs_f64(),
                                    o.name()
                                ));
                            }
                        }
                    }
                }
                rep.rounds += 1;
                thread::sleep(Duration::from_millis(200));
            }
            rep
        });
        Monitor {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> MonitorReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().expect("monitor thread")
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
