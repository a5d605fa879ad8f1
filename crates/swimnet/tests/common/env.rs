//! A test's environment: its own 127.0.<net>.0/24, its log directory and
//! pid file, and the agents it starts there.

use super::*;

/// One test's loopback network `127.0.<net>.0/24`, log directory and pid file.
pub struct Env {
    pub test: String,
    pub net: u8,
    pub dir: PathBuf,
    pub serf: PathBuf,
    pub swimnet: PathBuf,
    setpriv: Option<PathBuf>,
    pidfile: PathBuf,
}

impl Env {
    /// `net` picks the third octet. `SWIMNET_INTEROP_NET_OFFSET` shifts all
    /// of them (e.g. to run two copies of the suite side by side).
    pub fn new(test: &str, net: u8) -> Env {
        let offset: u16 = std::env::var("SWIMNET_INTEROP_NET_OFFSET")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let net = u8::try_from((net as u16 + offset) % 256).unwrap();
        let serf = serf_bin();
        let swimnet = swimnet_bin();
        assert!(
            swimnet.is_file(),
            "swimnet binary missing at {}",
            swimnet.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("interop_serf")
            .join(test);
        let pidfile = dir.join("pids");
        kill_stale(&pidfile, net);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create log dir");
        let setpriv = find_in_path("setpriv").filter(|p| {
            run_cmd(
                p,
                &[
                    "--pdeathsig".into(),
                    "KILL".into(),
                    "--".into(),
                    "true".into(),
                ],
                Duration::from_secs(5),
            )
            .ok()
        });
        eprintln!(
            "[{test}] logs in {} (network 127.0.{net}.0/24)",
            dir.display()
        );
        Env {
            test: test.to_string(),
            net,
            dir,
            serf,
            swimnet,
            setpriv,
            pidfile,
        }
    }

    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.net, host)
    }

    /// The arguments of `swimnet agent` for agent `name` on
    /// `127.0.<net>.<host>` (gossip :7946, API :7380, profile local) in
    /// `protocol` mode; callers append their own flags.
    pub fn agent_args(&self, name: &str, host: u8, protocol: &str) -> Vec<String> {
        let ip = self.ip(host);
        [
            "agent",
            "--node",
            name,
            "--bind",
            &format!("{ip}:{GOSSIP_PORT}"),
            "--api",
            &format!("{ip}:{SWIM_API_PORT}"),
            "--profile",
            "local",
            "--protocol",
            protocol,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Starts a long-running process with stdout+stderr to `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str, program: &Path, args: &[String]) -> Proc {
        self.spawn_env(name, program, args, &[])
    }

    /// [`Env::spawn`] with extra environment variables for the child.
    pub fn spawn_env(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
        vars: &[(&str, &str)],
    ) -> Proc {
        let log = self.dir.join(format!("{name}.log"));
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log");
        let f2 = f.try_clone().expect("dup log fd");
        let mut cmd = match &self.setpriv {
            Some(sp) => {
                let mut c = Command::new(sp);
                c.args(["--pdeathsig", "KILL", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args).stdin(Stdio::null()).stdout(f).stderr(f2);
        cmd.envs(vars.iter().copied());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {:?}: {e}", program.display(), args));
        if let Ok(mut pf) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.pidfile)
        {
            let _ = writeln!(pf, "{}", child.id());
        }
        Proc {
            name: name.to_string(),
            log,
            child,
            exited: None,
        }
    }

    fn check_free(&self, ip: Ipv4Addr, name: &str) {
        if let Err(e) = UdpSocket::bind((ip, GOSSIP_PORT)) {
            panic!(
                "[{}] cannot start {name}: {ip}:{GOSSIP_PORT} is in use ({e}); an agent from an \
                 earlier run may still be running",
                self.test
            );
        }
    }

    /// Starts a serf agent on `127.0.<net>.<host>:7946` (RPC on :7373) with
    /// `-profile=local` (or `opts.profile`) and `-log-level=debug`, and waits until its RPC answers.
    pub fn serf(&self, name: &str, host: u8, opts: &SerfOpts) -> Serf {
        let ip = self.ip(host);
        self.check_free(ip, name);
        let mut args = vec![
            "agent".to_string(),
            format!("-node={name}"),
            format!("-bind={ip}:{GOSSIP_PORT}"),
            format!("-rpc-addr={ip}:{SERF_RPC_PORT}"),
            format!("-profile={}", opts.profile.unwrap_or("local")),
            "-log-level=debug".into(),
        ];
        if let Some(k) = &opts.key {
            args.push(format!("-encrypt={k}"));
        }
        for (k, v) in &opts.tags {
            args.push("-tag".into());
            args.push(format!("{k}={v}"));
        }
        for j in &opts.join {
            args.push(format!("-join={j}"));
        }
        for h in &opts.event_handlers {
            args.push(format!("-event-handler={h}"));
        }
        let proc = self.spawn(name, &self.serf, &args);
        let mut s = Serf {
            name: name.to_string(),
            ip,
            bin: self.serf.clone(),
            proc,
        };
        if opts.expect_start_failure {
            return s;
        }
        // Up when its RPC lists itself; with -join, when the join went
        // through too (serf starts its RPC first, then joins, and exits if
        // the join fails).
        let want = if opts.join.is_empty() { 1 } else { 2 };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = s.proc.try_exit() {
                panic!(
                    "serf agent {name} exited during start-up ({st}) (if serf itself is broken: \
                     {INSTALL_HINT})\n{}",
                    s.proc.log_tail(30)
                );
            }
            if let Ok(m) = s.members() {
                if m.iter().any(|x| x.name == name) && m.len() >= want {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "serf agent {name} did not start within 20 s:\n{}",
                s.proc.log_tail(30)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `swimnet agent --protocol serf --profile local` on
    /// `127.0.<net>.<host>:7946` with its API on :7380, and waits until the
    /// API lists the node itself.
    pub fn swim(&self, name: &str, host: u8, opts: &SwimOpts) -> Swim {
        let ip = self.ip(host);
        self.check_free(ip, name);
        let mut args = vec![
            "agent".to_string(),
            "--node".into(),
            name.into(),
            "--bind".into(),
            format!("{ip}:{GOSSIP_PORT}"),
            "--api".into(),
            format!("{ip}:{SWIM_API_PORT}"),
            "--profile".into(),
            opts.profile.unwrap_or("local").into(),
            "--protocol".into(),
            "serf".into(),
            "--log-level".into(),
            "debug".into(),
        ];
        if let Some(k) = &opts.key {
            args.push("--encrypt".into());
            args.push(k.clone());
        }
        for (k, v) in &opts.tags {
            args.push("--tag".into());
            args.push(format!("{k}={v}"));
        }
        for j in &opts.join {
            args.push("--join".into());
            args.push(j.clone());
        }
        let proc = self.spawn(name, &self.swimnet, &args);
        let mut s = Swim {
            name: name.to_string(),
            ip,
            bin: self.swimnet.clone(),
            proc,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = s.proc.try_exit() {
                panic!(
                    "swimnet agent {name} exited during start-up ({st}):\n{}",
                    s.proc.log_tail(30)
                );
            }
            if let Ok(m) = s.members() {
                if m.iter().any(|x| x.name == name) {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "swimnet agent {name} did not serve its API within 20 s:\n{}",
                s.proc.log_tail(30)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Kills agents left over from an earlier run of the same test (by PID from
/// the pid file, only if the command line still is one of our agents on
/// this test's network).
fn kill_stale(pidfile: &Path, net: u8) {
    let text = read_lossy(pidfile);
    let needle = format!("127.0.{net}.");
    for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let cmdline = read_lossy(Path::new(&format!("/proc/{pid}/cmdline"))).replace('\0', " ");
        let ours = cmdline.contains(&needle)
            && (cmdline.contains("serf agent") || cmdline.contains("swimnet agent"));
        if ours {
            eprintln!("killing stale agent {pid}: {cmdline}");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[derive(Default, Clone)]
pub struct SerfOpts {
    pub key: Option<String>,
    pub tags: Vec<(String, String)>,
    pub join: Vec<String>,
    /// Do not wait for the RPC (the agent is expected to exit, e.g. a failing `-join`).
    pub expect_start_failure: bool,
    /// `-event-handler` values (`[FILTER=]PATH`).
    pub event_handlers: Vec<String>,
    /// Timer profile (`-profile`); `local` when unset.
    pub profile: Option<&'static str>,
}

#[derive(Default, Clone)]
pub struct SwimOpts {
    pub key: Option<String>,
    pub tags: Vec<(String, String)>,
    pub join: Vec<String>,
    /// Timer profile (`--profile`); `local` when unset.
    pub profile: Option<&'static str>,
}

pub fn tags(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
