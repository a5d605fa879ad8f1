//! Child processes owned by the test: guards that kill on drop, commands
//! with a timeout, and where the serf and swimnet binaries are.

use super::*;

/// A child process that is killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    pub(super) child: Child,
    pub(super) exited: Option<ExitStatus>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Non-blocking: the exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
            }
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Sends a signal by PID (`kill -SIG pid`). Only to our own child, and
    /// only while it has not been reaped.
    pub fn signal(&mut self, sig: &str) {
        if !self.is_running() {
            return;
        }
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(
            st.success(),
            "kill -{sig} {} ({}) failed",
            self.pid(),
            self.name
        );
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            if let Ok(st) = self.child.wait() {
                self.exited = Some(st);
            }
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop: SIGINT, wait up to `timeout`, then SIGKILL. Returns
    /// the exit status if it exited by itself.
    pub fn stop_gracefully(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("INT");
        let st = self.wait_exit(timeout);
        if st.is_none() {
            self.kill9();
        }
        st
    }

    pub fn log_text(&self) -> String {
        read_lossy(&self.log)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_text(), lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let running = self.is_running();
        if running {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "----- {} (pid {}, {}), last lines of {} -----\n{}",
                self.name,
                self.child.id(),
                if running { "was running" } else { "had exited" },
                self.log.display(),
                self.log_tail(40)
            );
        }
    }
}

pub(super) fn read_lossy(p: &Path) -> String {
    match fs::read(p) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    }
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Output of a short command run with a deadline.
#[derive(Debug)]
pub struct CmdOut {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub cmdline: String,
}

impl CmdOut {
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {}{}\nstdout: {}\nstderr: {}",
            self.cmdline,
            match self.code {
                Some(c) => format!("exit {c}"),
                None => "killed".into(),
            },
            if self.timed_out { " (timed out)" } else { "" },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs a command to completion, killing it after `timeout`.
pub fn run_cmd(program: &Path, args: &[String], timeout: Duration) -> CmdOut {
    let cmdline = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{cmdline}`: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    CmdOut {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
        cmdline,
    }
}

pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The serf binary; panics (the test fails, never skips) when it is missing
/// or does not run.
pub fn serf_bin() -> PathBuf {
    let bin = match std::env::var_os("SERF_BIN") {
        Some(p) => PathBuf::from(p),
        None => find_in_path("serf").unwrap_or_else(|| {
            panic!("serf not found in PATH: {INSTALL_HINT}");
        }),
    };
    assert!(
        bin.is_file(),
        "serf not found at {}: {INSTALL_HINT}",
        bin.display()
    );
    let out = run_cmd(&bin, &["version".to_string()], Duration::from_secs(10));
    assert!(
        out.ok() && out.stdout.contains("Agent Protocol"),
        "`{} version` does not work ({}): {INSTALL_HINT}",
        bin.display(),
        out.describe()
    );
    bin
}

pub fn swimnet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_swimnet"))
}

/// A new key from `serf keygen` (base64 of 32 random bytes).
pub fn keygen() -> String {
    let out = run_cmd(
        &serf_bin(),
        &["keygen".to_string()],
        Duration::from_secs(10),
    );
    assert!(out.ok(), "serf keygen failed: {}", out.describe());
    out.stdout.trim().to_string()
}
