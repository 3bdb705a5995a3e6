//! The `remote` runtime: a streamable-HTTP MCP server elsewhere (MCP 2025-03-26 and later
//! transports). Each request is a POST whose answer is either one JSON message or an SSE
//! stream carrying the response (and perhaps notifications and requests before it).
//!
//! A client request of the modern era (2026-07-28: its `_meta` names its protocol version)
//! goes out as one: with that version in `MCP-Protocol-Version` and the standard headers
//! (SEP-2243) its body implies, so a server that speaks both eras answers it as a modern
//! request; its HTTP 400 and 404 answers carry JSON-RPC errors, not a lost session.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use mcpr_core::jsonrpc::{Kind, Message};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Connection, Outbound, UpstreamEvent};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

pub struct HttpTransport {
    client: reqwest::Client,
    /// Parsed once: parsing a URL for every request was a measurable share of the
    /// data path's CPU (docs/BENCHMARKS.md).
    url: reqwest::Url,
    headers: HeaderMap,
    session_id: RwLock<Option<String>>,
    protocol_version: RwLock<Option<String>>,
    /// Input schemas by tool name, for the `Mcp-Param-*` headers of modern tool calls.
    tool_schemas: RwLock<std::collections::HashMap<String, Value>>,
    /// Set once the server refused a modern request for its version: it speaks the legacy
    /// era only, and modern requests go to it as legacy ones (their `_meta` ignored).
    legacy_only: std::sync::atomic::AtomicBool,
}

/// What a POST brought back.
enum Sent {
    /// The HTTP response, to read as JSON or SSE.
    Response(reqwest::Response),
    /// A JSON-RPC error a modern request was answered with (HTTP 400 or 404).
    Answer(Message),
    /// A server of the legacy era refused a modern request for its protocol version.
    RefusedModern,
}

#[derive(Debug)]
pub struct HttpError {
    pub message: String,
    /// The upstream session is unusable (server gone or session expired): reconnect.
    pub session_lost: bool,
}

impl HttpError {
    fn lost(message: String) -> Self {
        HttpError {
            message,
            session_lost: true,
        }
    }
    fn failed(message: String) -> Self {
        HttpError {
            message,
            session_lost: false,
        }
    }
}

pub fn connect(
    url: &str,
    headers: &BTreeMap<String, String>,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    request_timeout: Duration,
) -> Result<Arc<Connection>, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name =
            HeaderName::try_from(name.as_str()).map_err(|e| format!("header {name:?}: {e}"))?;
        let mut value =
            HeaderValue::try_from(value.as_str()).map_err(|e| format!("header {name}: {e}"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    let client = mcpr_tls::http_client()
        .map_err(|e| format!("{e:#}"))?
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))?;
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let transport = HttpTransport {
        client,
        url: parsed,
        headers: map,
        session_id: RwLock::new(None),
        protocol_version: RwLock::new(None),
        tool_schemas: RwLock::default(),
        legacy_only: Default::default(),
    };
    Ok(Connection::new(
        Outbound::Http(Box::new(transport)),
        events,
        request_timeout,
    ))
}

impl HttpTransport {
    pub fn set_protocol_version(&self, version: String) {
        *self.protocol_version.write().unwrap() = Some(version);
    }

    /// Drops the session and version a refused `initialize` may have left: a modern-era
    /// upstream has neither.
    pub fn forget_session(&self) {
        *self.session_id.write().unwrap() = None;
        *self.protocol_version.write().unwrap() = None;
    }

    /// Remembers the tools' input schemas (after each `tools/list` of the handshake).
    pub fn set_tools(&self, tools_json: &str) {
        let tools: Vec<Value> = serde_json::from_str(tools_json).unwrap_or_default();
        let schemas = tools
            .into_iter()
            .filter_map(|tool| {
                let name = tool.get("name")?.as_str()?.to_owned();
                Some((name, tool.get("inputSchema")?.clone()))
            })
            .collect();
        *self.tool_schemas.write().unwrap() = schemas;
    }

    /// The modern protocol version a request's `_meta` names, if any.
    fn modern_version(msg: &Message) -> Option<String> {
        let params = msg.params.as_ref()?;
        if !mcpr_core::mcp_headers::mentions_protocol_version(params.get()) {
            return None;
        }
        let params: Value = serde_json::from_str(params.get()).ok()?;
        mcpr_core::mcp_headers::meta_protocol_version(Some(&params)).map(str::to_owned)
    }

    fn post(&self, msg: &Message, modern: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(msg.to_bytes());
        if let Some(session) = self.session_id.read().unwrap().as_deref() {
            request = request.header(SESSION_HEADER, session);
        }
        if let Some(version) = modern {
            request = request.header(VERSION_HEADER, version);
            for (name, value) in self.standard_headers(msg) {
                request = request.header(name, value);
            }
        } else if let Some(version) = self.protocol_version.read().unwrap().as_deref() {
            request = request.header(VERSION_HEADER, version);
        }
        request
    }

    /// `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` for a modern request.
    fn standard_headers(&self, msg: &Message) -> Vec<(String, String)> {
        let method = msg.method.as_deref().unwrap_or_default();
        let params: Option<Value> = msg
            .params
            .as_ref()
            .and_then(|p| serde_json::from_str(p.get()).ok());
        let schemas = self.tool_schemas.read().unwrap();
        let schema = params
            .as_ref()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .and_then(|name| schemas.get(name));
        mcpr_core::mcp_headers::request_headers(method, params.as_ref(), schema)
    }

    /// POSTs `msg`; a modern request to a server that turns out to speak the legacy era
    /// only is sent again as a legacy one (and so are all later ones).
    async fn send(&self, msg: &Message) -> Result<Sent, HttpError> {
        let legacy_only = self.legacy_only.load(std::sync::atomic::Ordering::Relaxed);
        let modern = if legacy_only {
            None
        } else {
            Self::modern_version(msg)
        };
        match self.send_as(msg, modern.as_deref()).await? {
            Sent::RefusedModern => {
                tracing::info!(url = %self.url, "the upstream refused protocol 2026-07-28; it gets legacy requests from now on");
                self.legacy_only
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                self.send_as(msg, None).await
            }
            sent => Ok(sent),
        }
    }

    async fn send_as(&self, msg: &Message, modern: Option<&str>) -> Result<Sent, HttpError> {
        let response = self.post(msg, modern).send().await.map_err(|e| {
            HttpError::lost(format!(
                "cannot reach {}: {}",
                self.url,
                mcpr_core::error_chain(&e)
            ))
        })?;
        if let Some(session) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            let mut current = self.session_id.write().unwrap();
            if current.as_deref() != Some(session) {
                *current = Some(session.to_owned());
            }
        }
        let status = response.status();
        // 2026-07-28 gives JSON-RPC errors an HTTP status (400, 404): the body is the
        // answer — unless a server of the legacy era (it gave us a session) refuses the
        // version itself: a body that is no JSON-RPC error, or an invalid-request one.
        if modern.is_some() && status.is_client_error() {
            let body = response.bytes().await.unwrap_or_default();
            let answer = Message::parse(&body).ok().filter(|m| m.error.is_some());
            let refused_version = answer.as_ref().is_none_or(|m| {
                m.error
                    .as_ref()
                    .and_then(|e| {
                        serde_json::from_str::<mcpr_core::jsonrpc::RpcError>(e.get()).ok()
                    })
                    .is_some_and(|e| e.code == mcpr_core::jsonrpc::code::INVALID_REQUEST)
            });
            if refused_version && self.session_id.read().unwrap().is_some() {
                return Ok(Sent::RefusedModern);
            }
            return match answer {
                Some(answer) => Ok(Sent::Answer(answer)),
                None => Err(HttpError::failed(format!(
                    "{} answered HTTP {status}: {}",
                    self.url,
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ))),
            };
        }
        if status == reqwest::StatusCode::NOT_FOUND && self.session_id.read().unwrap().is_some() {
            return Err(HttpError::lost(format!(
                "{} ended the session (404)",
                self.url
            )));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(HttpError::failed(format!(
                "{} answered HTTP {status}: {body}",
                self.url
            )));
        }
        Ok(Sent::Response(response))
    }

    /// Follows the server's own SSE stream (GET), where it sends what belongs to no request
    /// (list-changed, resource updates), until the session closes. A server that offers no
    /// such stream (405) is left alone.
    pub async fn listen(&self, conn: &Connection) {
        let mut retry = Duration::from_millis(250);
        loop {
            let mut request = self
                .client
                .get(self.url.clone())
                .headers(self.headers.clone())
                .header(ACCEPT, "text/event-stream");
            if let Some(session) = self.session_id.read().unwrap().as_deref() {
                request = request.header(SESSION_HEADER, session);
            }
            if let Some(version) = self.protocol_version.read().unwrap().as_deref() {
                request = request.header(VERSION_HEADER, version);
            }
            match request.send().await {
                Ok(response) if response.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED => {
                    return;
                }
                Ok(response) if response.status().is_success() => {
                    retry = Duration::from_millis(250);
                    let mut body = response.bytes_stream();
                    let mut parser = SseParser::default();
                    while let Some(Ok(chunk)) = body.next().await {
                        for data in parser.feed(&chunk) {
                            let Ok(message) = Message::parse(data.as_bytes()) else {
                                continue;
                            };
                            if let Some(answer) = conn.on_message(message, None) {
                                let _ = self.notify(&answer).await;
                            }
                        }
                    }
                }
                Ok(_) | Err(_) => {}
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(Duration::from_secs(10));
        }
    }

    pub async fn notify(&self, msg: &Message) -> Result<(), HttpError> {
        self.send(msg).await.map(drop)
    }

    /// POSTs a request whose upstream id is `id` and returns its response.
    pub async fn request(
        &self,
        conn: &Connection,
        msg: &Message,
        id: u64,
    ) -> Result<Message, HttpError> {
        let response = match self.send(msg).await? {
            Sent::Response(response) => response,
            Sent::Answer(answer) => return Ok(answer),
            Sent::RefusedModern => {
                return Err(HttpError::failed(format!(
                    "{} refused the request's protocol version",
                    self.url
                )));
            }
        };
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            let bytes = response
                .bytes()
                .await
                .map_err(|e| HttpError::failed(format!("reading response: {e}")))?;
            return Message::parse(&bytes)
                .map_err(|e| HttpError::failed(format!("upstream sent an invalid response: {e}")));
        }
        let mut body = response.bytes_stream();
        let mut parser = SseParser::default();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| HttpError::failed(format!("SSE stream broke: {e}")))?;
            for data in parser.feed(&chunk) {
                let Ok(message) = Message::parse(data.as_bytes()) else {
                    continue;
                };
                if message.kind() == Ok(Kind::Response)
                    && message.id.as_ref().and_then(Value::as_u64) == Some(id)
                {
                    return Ok(message);
                }
                if let Some(answer) = conn.on_message(message, Some(id)) {
                    let _ = self.notify(&answer).await;
                }
            }
        }
        Err(HttpError::failed(
            "SSE stream ended before the response arrived".into(),
        ))
    }
}

/// Incremental `text/event-stream` parser yielding each event's data.
#[derive(Default)]
pub struct SseParser {
    buffer: String,
}

impl SseParser {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        if self.buffer.contains('\r') {
            self.buffer = self.buffer.replace("\r\n", "\n").replace('\r', "\n");
        }
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(
            p.feed(b"event: message\r\nid: 1\r\ndata: {\"a\":")
                .is_empty()
        );
        assert_eq!(
            p.feed(b"1}\r\n\r\ndata: x\ndata: y\n\n: comment\n\n"),
            vec!["{\"a\":1}", "x\ny"]
        );
    }
}
