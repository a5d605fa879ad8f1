//! A swimnet agent, queried through its HTTP API.

use super::*;

pub struct Swim {
    pub name: String,
    pub ip: Ipv4Addr,
    pub bin: PathBuf,
    pub proc: Proc,
}

impl Swim {
    pub fn addr(&self) -> String {
        format!("{}:{GOSSIP_PORT}", self.ip)
    }

    pub fn api(&self) -> String {
        format!("{}:{SWIM_API_PORT}", self.ip)
    }

    /// `swimnet <sub> --api <ours> <args...>` (the CLI contract puts
    /// `--api` right after the subcommand).
    pub fn cli(&self, sub: &str, args: &[&str]) -> CmdOut {
        let mut a = vec![sub.to_string(), "--api".into(), self.api()];
        a.extend(args.iter().map(|s| s.to_string()));
        run_cmd(&self.bin, &a, Duration::from_secs(30))
    }

    /// `swimnet members --api X --format json`.
    pub fn members_cli(&self) -> Result<Vec<Member>, String> {
        let out = self.cli("members", &["--format", "json"]);
        if !out.ok() {
            return Err(out.describe());
        }
        parse_members(&out.stdout)
    }

    /// `GET /v1/stats`.
    pub fn stats(&self) -> Result<Value, String> {
        let (code, body) = http(&self.api(), "GET", "/v1/stats", None)
            .map_err(|e| format!("GET /v1/stats: {e}"))?;
        if code != 200 {
            return Err(format!("GET /v1/stats -> {code}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("bad stats JSON ({e}): {body}"))
    }

    /// A counter from `stats.stats`.
    pub fn stat(&self, key: &str) -> Result<u64, String> {
        let v = self.stats()?;
        v.get("stats")
            .and_then(|s| s.get(key))
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no stats.{key} in {v}"))
    }

    pub fn incarnation(&self) -> Result<u64, String> {
        let v = self.stats()?;
        v.get("incarnation")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no incarnation in {v}"))
    }

    /// `swimnet keys --api X list --local --format json` → (primary, keys).
    pub fn keys(&self) -> Result<(String, Vec<String>), String> {
        let out = self.cli("keys", &["list", "--local", "--format", "json"]);
        if !out.ok() {
            return Err(out.describe());
        }
        let v: Value = serde_json::from_str(&out.stdout)
            .map_err(|e| format!("bad keys JSON ({e}): {}", out.stdout))?;
        let primary = v
            .get("primary")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no primary: {v}"))?
            .to_string();
        let keys = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no keys: {v}"))?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        Ok((primary, keys))
    }

    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

impl Node for Swim {
    fn name(&self) -> &str {
        &self.name
    }

    /// `GET /v1/members` (cheaper than the CLI for polling loops).
    fn members(&self) -> Result<Vec<Member>, String> {
        swim_members_http(&self.api())
    }

    fn observer(&self) -> Observer {
        Observer::Swim {
            name: self.name.clone(),
            api: self.api(),
        }
    }
}

pub(super) fn swim_members_http(api: &str) -> Result<Vec<Member>, String> {
    let (code, body) =
        http(api, "GET", "/v1/members", None).map_err(|e| format!("GET {api}/v1/members: {e}"))?;
    if code != 200 {
        return Err(format!("GET {api}/v1/members -> {code}: {body}"));
    }
    parse_members(&body)
}

/// A minimal HTTP/1.1 client (one request per connection).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let sa: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("malformed HTTP response: {text:?}")))?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}
