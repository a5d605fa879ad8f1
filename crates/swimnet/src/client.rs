//! The CLI's client for the local API.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;

/// Talks to one agent's API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    api: SocketAddr,
    agent: ureq::Agent,
    /// `Authorization` header value, when the agent wants a token.
    auth: Option<String>,
}

/// The environment variable holding the API token for the CLI.
pub const TOKEN_ENV: &str = "SWIMNET_API_TOKEN";

impl Client {
    /// A client for the API at `api`.
    pub fn new(api: SocketAddr) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(Duration::from_secs(60))
            .build();
        Client {
            base: format!("http://{api}"),
            api,
            agent,
            auth: None,
        }
    }

    /// A client for the API at `api` that sends the token from
    /// `token_file` (checked like a key file) or else from the
    /// `SWIMNET_API_TOKEN` environment variable, if either is given.
    pub fn connect(api: SocketAddr, token_file: Option<&std::path::Path>) -> Result<Self, String> {
        let token = match token_file {
            Some(p) => Some(crate::keyfile::load_token_file(p)?),
            None => std::env::var(TOKEN_ENV)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        };
        Ok(Client::new(api).with_token(token))
    }

    /// The same client sending `Authorization: Bearer TOKEN` when `token`
    /// is given.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.auth = token.map(|t| format!("Bearer {t}"));
        self
    }

    /// A request with the headers every call carries.
    fn request(&self, agent: &ureq::Agent, method: &str, path: &str) -> ureq::Request {
        let req = agent.request(method, &format!("{}{path}", self.base));
        match &self.auth {
            Some(a) => req.set("Authorization", a),
            None => req,
        }
    }

    /// One line saying what answered: nothing (connection refused, or no
    /// answer), a server that is not a swimnet agent (its page is not
    /// printed), or the agent with its own error message.
    fn error(&self, e: ureq::Error) -> String {
        match e {
            ureq::Error::Status(code, resp) => self.status_error(code, resp),
            ureq::Error::Transport(t) => {
                use std::error::Error as _;
                let refused = t
                    .source()
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
                if refused {
                    format!(
                        "no agent at {}: connection refused (start one with `swimnet agent`, or pass --api IP:PORT)",
                        self.api
                    )
                } else {
                    one_line(&format!("no answer from {}: {t}", self.api))
                }
            }
        }
    }

    /// A 4xx/5xx answer: the agent's message (its `{"error": ...}`, or the
    /// plain text it sent), or a statement that something other than a
    /// swimnet API answered.
    fn status_error(&self, code: u16, resp: ureq::Response) -> String {
        let json = is_json(&resp);
        let swimnet = resp
            .header("server")
            .is_some_and(|s| s.starts_with("swimnet/"));
        let what = format!(" with {}", one_line(resp.content_type()));
        let mut text = String::new();
        let _ = resp
            .into_reader()
            .take(ERROR_BODY_MAX)
            .read_to_string(&mut text);
        let message = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) if json => v.get("error").and_then(|e| e.as_str()).map(one_line),
            _ if swimnet => Some(one_line(&text)),
            _ => None,
        };
        match message {
            Some(m) => format!("{m} (the agent at {} answered {code})", self.api),
            None => self.not_swimnet(code, &what),
        }
    }

    /// The error for a server at `--api` that answered, but not as a
    /// swimnet agent does.
    fn not_swimnet(&self, code: u16, what: &str) -> String {
        format!(
            "{} is not a swimnet agent API: it answered HTTP {code}{what} (pass --api IP:PORT of a swimnet agent)",
            self.api
        )
    }

    /// Decodes a 2xx answer, which a swimnet agent always sends as JSON.
    fn decode<T: DeserializeOwned>(&self, resp: ureq::Response) -> Result<T, String> {
        if !is_json(&resp) {
            let what = format!(" with {}", one_line(resp.content_type()));
            return Err(self.not_swimnet(resp.status(), &what));
        }
        resp.into_json()
            .map_err(|e| one_line(&format!("bad answer from the agent at {}: {e}", self.api)))
    }

    /// `GET path`, decoded.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let resp = self
            .request(&self.agent, "GET", path)
            .call()
            .map_err(|e| self.error(e))?;
        self.decode(resp)
    }

    /// `POST path` with a JSON body, decoded.
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, String> {
        let resp = self
            .request(&self.agent, "POST", path)
            .send_json(body)
            .map_err(|e| self.error(e))?;
        self.decode(resp)
    }

    /// `PUT path` with a raw body, decoded. A body over the API's request
    /// limit ([`REQUEST_BODY_MAX`]) is refused here, unsent.
    pub fn put_bytes<T: DeserializeOwned>(&self, path: &str, body: &[u8]) -> Result<T, String> {
        if body.len() > REQUEST_BODY_MAX {
            return Err(format!(
                "the value is {} bytes, over the API's 2 MiB request limit",
                body.len()
            ));
        }
        let resp = self
            .request(&self.agent, "PUT", path)
            .set("Content-Type", "application/octet-stream")
            .send_bytes(body)
            .map_err(|e| self.error(e))?;
        self.decode(resp)
    }

    /// `GET path` as a never-ending stream (no read timeout): the body,
    /// buffered for reading line by line.
    pub fn watch(
        &self,
        path: &str,
    ) -> Result<std::io::BufReader<Box<dyn std::io::Read + Send + Sync>>, String> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .build();
        let resp = self
            .request(&agent, "GET", path)
            .call()
            .map_err(|e| self.error(e))?;
        if resp.content_type() != "application/x-ndjson" {
            let what = format!(" with {}", one_line(resp.content_type()));
            return Err(self.not_swimnet(resp.status(), &what));
        }
        Ok(std::io::BufReader::new(resp.into_reader()))
    }

    /// `POST path` with a JSON body, answered as a stream (no read
    /// timeout, e.g. a query's acks and answers as they come): the body,
    /// buffered for reading line by line.
    pub fn post_stream(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<std::io::BufReader<Box<dyn std::io::Read + Send + Sync>>, String> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .build();
        let resp = self
            .request(&agent, "POST", path)
            .send_json(body)
            .map_err(|e| self.error(e))?;
        Ok(std::io::BufReader::new(resp.into_reader()))
    }

    /// `DELETE path`, decoded.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let resp = self
            .request(&self.agent, "DELETE", path)
            .set("Content-Type", "application/json")
            .call()
            .map_err(|e| self.error(e))?;
        self.decode(resp)
    }
}

impl Client {
    /// `DELETE path` answered `204 No Content` (the overlay endpoints).
    pub fn delete_no_content(&self, path: &str) -> Result<(), String> {
        self.request(&self.agent, "DELETE", path)
            .set("Content-Type", "application/json")
            .call()
            .map(drop)
            .map_err(|e| self.error(e))
    }
}

/// The largest request body the agent's API takes (axum's default body
/// limit, which the API keeps).
pub const REQUEST_BODY_MAX: usize = 2 << 20;

/// Most bytes of an error answer read (a swimnet error is one short line).
const ERROR_BODY_MAX: u64 = 64 * 1024;

fn is_json(resp: &ureq::Response) -> bool {
    resp.content_type() == "application/json"
}

/// `text` on one line (line breaks become spaces), at most 300 characters.
fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    line.trim().to_string()
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved
/// characters), so network, table and key names may hold any character.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
