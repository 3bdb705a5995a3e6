//! `mcpr --url URL stdio`: a stdio MCP server that forwards every message to a router
//! already running at URL (streamable HTTP), for desktop clients that only speak stdio.
//!
//! A stdio client matches answers by id and waits for each one, so every request gets an
//! answer on its own id, whatever happens on the way: a refusal of the router (401, 403,
//! 404, 429, 5xx: its JSON-RPC error body names the problem), an unreachable router, or an
//! answer stream that ends before the answer becomes a JSON-RPC error on that id, with the
//! router's message. A notification or a response of the client has no id to answer on:
//! its refusal is logged on stderr. A session the router no longer knows (404: it
//! restarted with another key, or the session expired) is opened again with the client's
//! own `initialize`, and the request sent again, unseen by the client. The key of a router
//! that requires one (`--api-key`, `MCPR_API_KEY`, else `MCP_API_KEY`, as `mcpr call` reads
//! them) goes on every HTTP request. After `initialize`, the session's GET stream brings
//! what the router sends on its own (list changes, resource updates).
//!
//! Over 600 lines on purpose: the bridge is one state machine (`Router`: the session, its
//! re-initialization, the GET stream and the refusals turned into answers) whose steps share
//! that state; split over files, one protocol exchange would be read in several places.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use mcpr_core::jsonrpc::{Message, code};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// What a refusal of the router is called when its body does not say (the gateway's
/// `auth::UNAUTHORIZED` and `auth::RATE_LIMITED`).
const UNAUTHORIZED: i64 = -32003;
const RATE_LIMITED: i64 = -32004;

/// HeaderMismatch (2026-07-28): the tool list may have changed since it was fetched.
const HEADER_MISMATCH: i64 = -32020;

/// The id of the bridge's own `initialize` when it opens a session again.
const REINITIALIZE_ID: &str = "mcpr-bridge-reinitialize";

pub async fn run(url: &str, api_key: Option<&str>) -> anyhow::Result<()> {
    let endpoint = mcp_endpoint(url);
    let mut headers = HeaderMap::new();
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
            .context("the API key is not a valid HTTP header value")?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
        if endpoint.starts_with("http://") && !is_loopback_url(&endpoint) {
            tracing::warn!(%endpoint, "the API key goes to the router over plain HTTP");
        }
    }
    let client = mcpr_tls::http_client()?
        .default_headers(headers)
        .build()
        .context("building the HTTP client")?;
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let router = Router {
        client,
        endpoint,
        has_key: api_key.is_some(),
        session: Arc::default(),
        initialize: Arc::default(),
        reopening: Arc::default(),
        listener: Arc::default(),
        tool_headers: Arc::default(),
        out: tx,
    };
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            stdout.write_all(line.as_bytes()).await?;
            stdout.write_all(b"\n").await?;
            stdout.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    tracing::info!(endpoint = %router.endpoint, key = router.has_key, "bridging stdio to the router");
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(line) = lines.next_line().await? {
        while in_flight.try_join_next().is_some() {}
        if line.trim().is_empty() {
            continue;
        }
        let message = serde_json::from_str::<Value>(&line).ok();
        let forward = router.clone().forward(line, message.clone());
        // initialize must finish (and set the session) before anything else goes out.
        if method_of(message.as_ref()) == Some("initialize") {
            forward.await;
            router.listen();
        } else {
            in_flight.spawn(forward);
        }
    }
    // The client has said everything: its requests still get their answers, then the
    // session ends.
    while in_flight.join_next().await.is_some() {}
    if let Some(listener) = router.listener.lock().unwrap().take() {
        listener.abort();
    }
    let last_session = router.session.read().unwrap().clone();
    if let Some(id) = last_session {
        let _ = router
            .client
            .delete(&router.endpoint)
            .header("mcp-session-id", id)
            .send()
            .await;
    }
    drop(router);
    writer.await??;
    Ok(())
}

/// Where the bridge forwards to, and what it keeps between messages.
#[derive(Clone)]
struct Router {
    client: reqwest::Client,
    endpoint: String,
    has_key: bool,
    session: Arc<RwLock<Option<String>>>,
    /// The client's `initialize` line, sent again when the router forgets the session.
    initialize: Arc<RwLock<Option<String>>>,
    /// Held while a session is opened again, so that the requests refused together open one.
    reopening: Arc<tokio::sync::Mutex<()>>,
    /// The task reading the session's GET stream.
    listener: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    tool_headers: Arc<ToolHeaders>,
    /// Lines for stdout.
    out: mpsc::Sender<String>,
}

/// The `x-mcp-header` annotations of the router's tools (`mcp_headers::param_annotations`),
/// by tool name, from the router's own modern `tools/list`: a modern `tools/call` must
/// mirror the annotated arguments in `Mcp-Param-*` headers, which stdio clients do not send.
#[derive(Default)]
struct ToolHeaders {
    by_tool: RwLock<HashMap<String, Vec<(String, String)>>>,
}

/// Why the router gave no answer to a message: the JSON-RPC error its client gets.
#[derive(Debug)]
struct Refusal {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl Refusal {
    fn new(code: i64, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn answer(&self, id: &Value) -> String {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        json!({"jsonrpc": "2.0", "id": id, "error": error}).to_string()
    }
}

impl Router {
    /// Sends one line of the client to the router and its answer, or the refusal on the
    /// ids of its requests, to stdout.
    async fn forward(self, line: String, message: Option<Value>) {
        let ids = request_ids(message.as_ref());
        if method_of(message.as_ref()) == Some("initialize") {
            *self.initialize.write().unwrap() = Some(line.clone());
        }
        let outcome = match self.exchange(&line, message.as_ref()).await {
            Ok(Some(response)) => self.relay_answer(response, &ids).await,
            Ok(None) => Ok(()),
            Err(refusal) => Err(refusal),
        };
        let Err(refusal) = outcome else { return };
        if ids.is_empty() {
            let what = method_of(message.as_ref()).unwrap_or("a response");
            tracing::warn!(method = what, error = %refusal.message, code = refusal.code, "the router refused a message of the client");
        }
        for id in &ids {
            let _ = self.out.send(refusal.answer(id)).await;
        }
    }

    /// POSTs `line`: the router's answer (None for an accepted notification or response),
    /// or why there is none. Sends it again after a HeaderMismatch with fresh tool headers,
    /// and after a 404 of the session in a new session.
    async fn exchange(
        &self,
        line: &str,
        message: Option<&Value>,
    ) -> Result<Option<reqwest::Response>, Refusal> {
        let is_call = method_of(message) == Some("tools/call");
        let is_initialize = method_of(message) == Some("initialize");
        let mut refreshed = false;
        let mut reopened = false;
        loop {
            let modern = match message {
                Some(message) => self.modern_headers(message, refreshed).await,
                None => Vec::new(),
            };
            let retry_on_mismatch = !refreshed && !modern.is_empty() && is_call;
            let mut request = self
                .client
                .post(&self.endpoint)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .body(line.to_owned());
            for (name, value) in modern {
                request = request.header(name, value);
            }
            let session = (!is_initialize)
                .then(|| self.session.read().unwrap().clone())
                .flatten();
            if let Some(s) = &session {
                request = request.header("mcp-session-id", s);
            }
            let response = request.send().await.map_err(|e| self.unreachable(&e))?;
            if let Some(s) = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                *self.session.write().unwrap() = Some(s.to_owned());
            }
            let status = response.status();
            if status.is_success() {
                return Ok((status != StatusCode::ACCEPTED).then_some(response));
            }
            let refusal = self.refusal(response).await;
            if retry_on_mismatch
                && status == StatusCode::BAD_REQUEST
                && refusal.code == HEADER_MISMATCH
            {
                // The tool's headers were wrong: its list may have changed since it was read.
                refreshed = true;
                continue;
            }
            // The transport's "unknown or expired session" (invalid request), not a 404 of
            // the modern era (an unknown method) or of a view (an unknown provider).
            if status == StatusCode::NOT_FOUND
                && refusal.code == code::INVALID_REQUEST
                && let Some(stale) = session
                && !reopened
            {
                self.reopen_session(&stale).await.map_err(|e| {
                    Refusal::new(
                        e.code,
                        format!(
                            "the router no longer knows this session ({}), and opening a new one failed: {}",
                            refusal.message, e.message
                        ),
                    )
                })?;
                reopened = true;
                continue;
            }
            return Err(refusal);
        }
    }

    /// Opens a new session with the client's own `initialize` in place of `stale`, unless
    /// another request has done so already.
    async fn reopen_session(&self, stale: &str) -> Result<(), Refusal> {
        let _reopening = self.reopening.lock().await;
        if self.session.read().unwrap().as_deref() != Some(stale) {
            return Ok(());
        }
        let Some(line) = self.initialize.read().unwrap().clone() else {
            return Err(Refusal::new(
                code::INVALID_REQUEST,
                "the client never sent initialize",
            ));
        };
        let mut initialize: Value = serde_json::from_str(&line)
            .map_err(|e| Refusal::new(code::INVALID_REQUEST, format!("initialize: {e}")))?;
        initialize["id"] = json!(REINITIALIZE_ID);
        let response = self
            .client
            .post(&self.endpoint)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            return Err(self.refusal(response).await);
        }
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = last_message(response)
            .await
            .map_err(|e| Refusal::new(code::UPSTREAM_UNAVAILABLE, format!("initialize: {e:#}")))?;
        if let Some(error) = answer.get("error") {
            return Err(Refusal::new(
                error["code"].as_i64().unwrap_or(code::INTERNAL_ERROR),
                format!(
                    "initialize: {}",
                    error["message"].as_str().unwrap_or("refused")
                ),
            ));
        }
        let Some(session) = session else {
            return Err(Refusal::new(
                code::INTERNAL_ERROR,
                "initialize was answered without an Mcp-Session-Id",
            ));
        };
        let initialized = self
            .client
            .post(&self.endpoint)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !initialized.status().is_success() {
            return Err(self.refusal(initialized).await);
        }
        tracing::warn!(
            "the router no longer knew the session: opened a new one with the client's initialize (subscriptions and the log level of the old one are gone)"
        );
        *self.session.write().unwrap() = Some(session);
        self.listen();
        Ok(())
    }

    /// The refusal a non-2xx answer carries: the router's JSON-RPC error when its body is
    /// one, else the status and the start of the body.
    async fn refusal(&self, response: reqwest::Response) -> Refusal {
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        let error = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").cloned());
        let mut refusal = match error {
            Some(error) => Refusal {
                code: error["code"].as_i64().unwrap_or(code::INTERNAL_ERROR),
                message: error["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| error.to_string()),
                data: error.get("data").cloned(),
            },
            None => {
                let code = match status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UNAUTHORIZED,
                    StatusCode::TOO_MANY_REQUESTS => RATE_LIMITED,
                    _ => code::UPSTREAM_UNAVAILABLE,
                };
                let text = body.trim();
                let message = match text.is_empty() {
                    true => format!("the router at {} answered {status}", self.endpoint),
                    false => format!(
                        "the router at {} answered {status}: {}",
                        self.endpoint,
                        truncated(text, 300)
                    ),
                };
                Refusal::new(code, message)
            }
        };
        if status == StatusCode::UNAUTHORIZED {
            refusal.message = match self.has_key {
                true => format!(
                    "{} (mcpr stdio sent the key of --api-key or MCPR_API_KEY)",
                    refusal.message
                ),
                false => format!(
                    "{} (give mcpr stdio the key with --api-key or MCPR_API_KEY)",
                    refusal.message
                ),
            };
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Some(wait) = retry_after
            && !refusal.message.contains("retry")
        {
            refusal.message = format!("{} (retry after {wait} s)", refusal.message);
        }
        refusal
    }

    fn unreachable(&self, e: &reqwest::Error) -> Refusal {
        let mut message = format!("cannot reach the router at {}: {e}", self.endpoint);
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Refusal::new(code::UPSTREAM_UNAVAILABLE, message)
    }

    /// Writes the messages of an answer (plain JSON or SSE) to stdout; an answer stream
    /// that ends before answering the requests of `ids` is a refusal of those still open.
    async fn relay_answer(
        &self,
        response: reqwest::Response,
        ids: &[Value],
    ) -> Result<(), Refusal> {
        let mut open: Vec<&Value> = ids.iter().collect();
        if !is_sse(&response) {
            let text = response.text().await.map_err(|e| {
                Refusal::new(
                    code::UPSTREAM_UNAVAILABLE,
                    format!("reading the router's answer: {e}"),
                )
            })?;
            let text = text.trim();
            if text.is_empty() {
                return match open.is_empty() {
                    true => Ok(()),
                    false => Err(Refusal::new(
                        code::UPSTREAM_UNAVAILABLE,
                        "the router answered with an empty body",
                    )),
                };
            }
            let _ = self.out.send(text.to_owned()).await;
            return Ok(());
        }
        let mut body = response.bytes_stream();
        let mut parser = mcpr_core::sse::SseParser::default();
        let mut broken = None;
        let mut ended = false;
        while !ended {
            let events = match body.next().await {
                Some(Ok(chunk)) => parser.push(&chunk),
                Some(Err(e)) => {
                    broken = Some(e.to_string());
                    ended = true;
                    parser.finish()
                }
                None => {
                    ended = true;
                    parser.finish()
                }
            };
            for data in events {
                // A priming event (SEP-1699) carries no message.
                if data.trim().is_empty() {
                    continue;
                }
                if !open.is_empty()
                    && let Ok(message) = Message::parse(data.as_bytes())
                    && message.method.is_none()
                    && let Some(id) = &message.id
                {
                    open.retain(|open| *open != id);
                }
                let _ = self.out.send(data).await;
            }
        }
        if open.is_empty() {
            return Ok(());
        }
        let why = broken.unwrap_or_else(|| "it closed the stream".to_owned());
        Err(Refusal::new(
            code::UPSTREAM_UNAVAILABLE,
            format!("the router's answer stream ended before the answer: {why}"),
        ))
    }

    /// Opens the session's GET stream (legacy era), which carries what the router sends
    /// outside any request, and keeps it open (resuming after `Last-Event-ID`) until the
    /// session changes or the router says it has none for this view (405).
    fn listen(&self) {
        let Some(session) = self.session.read().unwrap().clone() else {
            return;
        };
        let router = self.clone();
        let listener = tokio::spawn(async move {
            let mut last_event_id: Option<String> = None;
            let mut failures = 0u32;
            loop {
                let mut request = router
                    .client
                    .get(&router.endpoint)
                    .header("accept", "text/event-stream")
                    .header("mcp-session-id", &session);
                if let Some(last) = &last_event_id {
                    request = request.header("last-event-id", last);
                }
                let mut wait = Duration::from_secs(1);
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        failures = 0;
                        let mut parser = mcpr_core::sse::SseParser::default();
                        let mut body = response.bytes_stream();
                        while let Some(Ok(chunk)) = body.next().await {
                            for data in parser.push(&chunk) {
                                if !data.trim().is_empty() && router.out.send(data).await.is_err() {
                                    return;
                                }
                            }
                            if parser.last_id.is_some() {
                                last_event_id = parser.last_id.clone();
                            }
                        }
                        if let Some(retry) = parser.retry {
                            wait = retry;
                        }
                    }
                    Ok(response)
                        if matches!(
                            response.status(),
                            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND
                        ) =>
                    {
                        // No stream for this view, or the session is gone (the next
                        // request opens a new one, and a new stream).
                        return;
                    }
                    Ok(response) => {
                        failures += 1;
                        let refusal = router.refusal(response).await;
                        tracing::warn!(error = %refusal.message, "the router refused the session's GET stream");
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %router.unreachable(&e).message, "the session's GET stream broke");
                    }
                }
                // Up to a minute between attempts while the router is away.
                tokio::time::sleep(wait * 2u32.pow(failures.min(6))).await;
            }
        });
        // One stream, of the current session.
        if let Some(previous) = self.listener.lock().unwrap().replace(listener) {
            previous.abort();
        }
    }

    /// The HTTP headers of a modern (2026-07-28) request, which stdio does not have: the
    /// version its `_meta` names and the standard headers (`Mcp-Method`, `Mcp-Name`,
    /// `Mcp-Param-*`) its body implies. None for a legacy message.
    async fn modern_headers(&self, message: &Value, refresh: bool) -> Vec<(String, String)> {
        let params = message.get("params");
        let Some(version) = mcpr_core::mcp_headers::meta_protocol_version(params) else {
            return Vec::new();
        };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let annotations = match mcpr_core::mcp_headers::name_of(method, params) {
            Some(tool) if method == "tools/call" => self.annotations(&tool, params, refresh).await,
            _ => Vec::new(),
        };
        let mut headers = mcpr_core::mcp_headers::request_headers(method, params, &annotations);
        headers.push(("mcp-protocol-version".to_owned(), version.to_owned()));
        headers
    }

    /// The annotations of `tool`; the tool list is fetched when the tool is not in it yet
    /// (or `refresh` says it is stale).
    async fn annotations(
        &self,
        tool: &str,
        params: Option<&Value>,
        refresh: bool,
    ) -> Vec<(String, String)> {
        if !refresh && let Some(known) = self.tool_headers.by_tool.read().unwrap().get(tool) {
            return known.clone();
        }
        let meta = params.and_then(|p| p.get("_meta")).cloned();
        match self.list_tools(meta).await {
            Ok(tools) => {
                let found = tools.get(tool).cloned().unwrap_or_default();
                *self.tool_headers.by_tool.write().unwrap() = tools;
                found
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not list the router's tools for their x-mcp-header arguments");
                Vec::new()
            }
        }
    }

    /// Every page of the router's modern `tools/list`, as annotations by tool name.
    async fn list_tools(
        &self,
        meta: Option<Value>,
    ) -> anyhow::Result<HashMap<String, Vec<(String, String)>>> {
        let version = meta
            .as_ref()
            .and_then(|m| m.get(mcpr_core::mcp_headers::META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
            .unwrap_or(mcpr_core::mcp_headers::MODERN_VERSION)
            .to_owned();
        let mut tools = HashMap::new();
        let mut cursor: Option<String> = None;
        for _page in 0..100 {
            let mut params = json!({ "_meta": meta.clone().unwrap_or_else(|| json!({})) });
            if let Some(cursor) = &cursor {
                params["cursor"] = json!(cursor);
            }
            let body = json!({"jsonrpc": "2.0", "id": "mcpr-bridge-tools", "method": "tools/list", "params": params});
            let response = self
                .client
                .post(&self.endpoint)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", &version)
                .header("mcp-method", "tools/list")
                .json(&body)
                .send()
                .await?;
            let answer = last_message(response).await?;
            let result = answer.get("result").with_context(|| {
                format!(
                    "tools/list was refused: {}",
                    answer.get("error").unwrap_or(&answer)
                )
            })?;
            for tool in result["tools"].as_array().into_iter().flatten() {
                if let Some(name) = tool["name"].as_str() {
                    let annotations =
                        mcpr_core::mcp_headers::param_annotations(&tool["inputSchema"]);
                    tools.insert(name.to_owned(), annotations);
                }
            }
            cursor = result["nextCursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(tools)
    }
}

fn method_of(message: Option<&Value>) -> Option<&str> {
    message?.get("method")?.as_str()
}

/// The ids of the requests in a line (one message or a batch): the ids a refusal answers.
fn request_ids(message: Option<&Value>) -> Vec<Value> {
    let is_request =
        |m: &Value| m.get("method").is_some() && m.get("id").is_some_and(|id| !id.is_null());
    match message {
        Some(Value::Array(batch)) => batch
            .iter()
            .filter(|m| is_request(m))
            .map(|m| m["id"].clone())
            .collect(),
        Some(m) if is_request(m) => vec![m["id"].clone()],
        _ => Vec::new(),
    }
}

fn truncated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn is_loopback_url(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.")
}

/// The last JSON-RPC message of an answer, plain JSON or SSE.
async fn last_message(response: reqwest::Response) -> anyhow::Result<Value> {
    let is_sse = is_sse(&response);
    let text = response.text().await?;
    let data = if is_sse {
        let mut parser = mcpr_core::sse::SseParser::default();
        let mut events = parser.push(text.as_bytes());
        events.extend(parser.finish());
        events
            .into_iter()
            .rfind(|d| !d.trim().is_empty())
            .unwrap_or_default()
    } else {
        text
    };
    serde_json::from_str(&data).context("the router's answer is not JSON")
}

fn is_sse(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

fn mcp_endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let after_scheme = url.split("://").nth(1).unwrap_or(url);
    if after_scheme.contains('/') {
        url.to_owned()
    } else {
        format!("{url}/mcp")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn endpoint() {
        assert_eq!(
            super::mcp_endpoint("http://127.0.0.1:8000"),
            "http://127.0.0.1:8000/mcp"
        );
        assert_eq!(
            super::mcp_endpoint("http://127.0.0.1:8000/"),
            "http://127.0.0.1:8000/mcp"
        );
        assert_eq!(super::mcp_endpoint("http://h/mcp/all"), "http://h/mcp/all");
    }

    #[test]
    fn ids_a_refusal_answers() {
        let request = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
        assert_eq!(super::request_ids(Some(&request)), vec![json!(7)]);
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert!(super::request_ids(Some(&notification)).is_empty());
        let response = json!({"jsonrpc": "2.0", "id": 3, "result": {}});
        assert!(super::request_ids(Some(&response)).is_empty());
        let batch = json!([request, notification, {"jsonrpc": "2.0", "id": "b", "method": "ping"}]);
        assert_eq!(super::request_ids(Some(&batch)), vec![json!(7), json!("b")]);
        assert!(super::request_ids(None).is_empty());
    }

    #[test]
    fn loopback() {
        assert!(super::is_loopback_url("http://127.0.0.1:8000/mcp"));
        assert!(super::is_loopback_url("http://localhost:8000/mcp"));
        assert!(super::is_loopback_url("http://[::1]:8000/mcp"));
        assert!(!super::is_loopback_url("http://example.com/mcp"));
    }
}
