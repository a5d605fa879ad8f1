//! The CLI's client for the local API.

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

    fn error(&self, e: ureq::Error) -> String {
        match e {
            ureq::Error::Status(code, resp) => {
                let text = resp.into_string().unwrap_or_default();
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => v["error"].as_str().unwrap_or(&text).to_string(),
                    Err(_) => format!("the agent answered HTTP {code}: {text}"),
                }
            }
            ureq::Error::Transport(_) => format!(
                "cannot reach the swimnet agent API at {}: is the agent running? (start one with `swimnet agent`, or pass --api IP:PORT)",
                self.api
            ),
        }
    }

    /// `GET path`, decoded.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let resp = self
            .request(&self.agent, "GET", path)
            .call()
            .map_err(|e| self.error(e))?;
        resp.into_json()
            .map_err(|e| format!("bad answer from the agent: {e}"))
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
        resp.into_json()
            .map_err(|e| format!("bad answer from the agent: {e}"))
    }

    /// `PUT path` with a raw body, decoded.
    pub fn put_bytes<T: DeserializeOwned>(&self, path: &str, body: &[u8]) -> Result<T, String> {
        let resp = self
            .request(&self.agent, "PUT", path)
            .set("Content-Type", "application/octet-stream")
            .send_bytes(body)
            .map_err(|e| self.error(e))?;
        resp.into_json()
            .map_err(|e| format!("bad answer from the agent: {e}"))
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
        resp.into_json()
            .map_err(|e| format!("bad answer from the agent: {e}"))
    }
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
