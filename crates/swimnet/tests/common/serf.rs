//! A real Serf agent, queried through the `serf` CLI.

use super::*;

pub struct Serf {
    pub name: String,
    pub ip: Ipv4Addr,
    pub bin: PathBuf,
    pub proc: Proc,
}

impl Serf {
    pub fn addr(&self) -> String {
        format!("{}:{GOSSIP_PORT}", self.ip)
    }

    pub fn rpc(&self) -> String {
        format!("{}:{SERF_RPC_PORT}", self.ip)
    }

    /// `serf <sub> -rpc-addr=<ours> <args...>`.
    pub fn cmd(&self, sub: &str, args: &[&str]) -> CmdOut {
        let mut a = vec![sub.to_string(), format!("-rpc-addr={}", self.rpc())];
        a.extend(args.iter().map(|s| s.to_string()));
        run_cmd(&self.bin, &a, Duration::from_secs(30))
    }

    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

impl Node for Serf {
    fn name(&self) -> &str {
        &self.name
    }

    fn members(&self) -> Result<Vec<Member>, String> {
        serf_members(&self.bin, &self.rpc())
    }

    fn observer(&self) -> Observer {
        Observer::Serf {
            name: self.name.clone(),
            bin: self.bin.clone(),
            rpc: self.rpc(),
        }
    }
}

pub(super) fn serf_members(bin: &Path, rpc: &str) -> Result<Vec<Member>, String> {
    let out = run_cmd(
        bin,
        &[
            "members".into(),
            "-format=json".into(),
            format!("-rpc-addr={rpc}"),
        ],
        Duration::from_secs(10),
    );
    if !out.ok() {
        return Err(out.describe());
    }
    parse_members(&out.stdout)
}
