//! Upstream MCP sessions: the agent's side of a conversation with one MCP server, over stdio
//! (`process` runtime) or streamable HTTP (`remote` runtime). Requests from the gateway get a
//! fresh upstream id (so many clients can share one session) and their own id back on the
//! response; everything else in the message passes through untouched. An upstream of the
//! modern era alone (2026-07-28) is found by `server/discover` and spoken to statelessly
//! (`modern.rs`); one opened with `initialize` gets legacy requests only (`era.rs`).

pub mod era;
pub mod lines;
pub mod modern;
pub mod process;
pub mod remote;
pub mod routing;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use mcpr_core::jsonrpc::{self, Kind, Message, RpcError, code};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

/// The protocol version the agent offers upstream servers when it connects.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// How long a stdio server that refused `initialize` for speaking only the modern era gets
/// to answer `server/discover` on the same connection.
const STDIO_DISCOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the agent learned from an upstream at connect time.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The `initialize` result, raw (capabilities, serverInfo, instructions, protocolVersion).
    pub server_info_json: String,
    /// The tools, raw, all pages concatenated.
    pub tools_json: String,
    pub tool_count: usize,
}

/// Something the upstream told us outside of a response.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// `notifications/tools/list_changed`: the tool list must be fetched again.
    ToolsChanged,
}

/// How messages leave for the upstream server.
enum Outbound {
    /// Line-delimited JSON on the child's stdin.
    Lines(mpsc::Sender<Vec<u8>>),
    Http(Box<remote::HttpTransport>),
}

/// One live upstream MCP session.
pub struct Connection {
    outbound: Outbound,
    pending: DashMap<u64, oneshot::Sender<Message>>,
    next_id: AtomicU64,
    /// Becomes `Some(reason)` once the session is gone; never goes back to `None`.
    closed: watch::Sender<Option<String>>,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    request_timeout: Duration,
    /// Where what the upstream sends on its own goes (see `routing`).
    pub routing: routing::Routing,
    /// Set when the upstream speaks only the modern era: the agent's per-request `_meta`.
    modern: std::sync::OnceLock<modern::ModernUpstream>,
    /// What started a stdio server (command and arguments), to remember that it speaks
    /// only the modern era (`modern::remember_modern_only`).
    launch: std::sync::OnceLock<String>,
    /// Set by a process upstream: becomes true once its process has exited.
    exited: std::sync::OnceLock<watch::Receiver<bool>>,
}

impl Connection {
    fn new(
        outbound: Outbound,
        events: mpsc::UnboundedSender<UpstreamEvent>,
        request_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Connection {
            outbound,
            pending: DashMap::new(),
            next_id: AtomicU64::new(1),
            closed: watch::channel(None).0,
            events,
            request_timeout,
            routing: routing::Routing::default(),
            modern: std::sync::OnceLock::new(),
            launch: std::sync::OnceLock::new(),
            exited: std::sync::OnceLock::new(),
        })
    }

    /// Resolves once what served the session is gone: at once for a remote server, when
    /// the process has exited for a process one (so that a server moved to another agent
    /// never runs on two at once).
    pub async fn gone(&self) {
        if let Some(exited) = self.exited.get() {
            let mut exited = exited.clone();
            let _ = exited.wait_for(|exited| *exited).await.map(|_| ());
        }
    }

    /// Marks the session gone and fails every request in flight with `reason`.
    pub fn close(&self, reason: String) {
        self.closed.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
        self.pending.clear();
    }

    pub fn close_reason(&self) -> Option<String> {
        self.closed.borrow().clone()
    }

    /// Resolves when the session is gone, with the reason.
    pub async fn closed(&self) -> String {
        let mut rx = self.closed.subscribe();
        let reason = rx
            .wait_for(|r| r.is_some())
            .await
            .map(|r| r.clone().unwrap_or_default());
        reason.unwrap_or_else(|_| "connection dropped".into())
    }

    /// Sends a request of the agent's own and waits for its response. Before the upstream
    /// is known to be modern, the agent's requests go as they are: `initialize` and what
    /// follows it are legacy by construction, and `server/discover` is meant as it is.
    pub async fn request(&self, msg: Message) -> Result<Message, RpcError> {
        match self.modern.get() {
            Some(_) => self.request_from(msg, routing::Origin::none()).await,
            None => self.send_request(msg, routing::Origin::none()).await,
        }
    }

    /// Sends a client's request and waits for its response; the response carries `msg`'s
    /// own id. What the upstream sends meanwhile about it is routed back to `origin`. To an
    /// upstream of the modern era alone the request goes stateless (`modern.rs`); to one
    /// opened with `initialize` as a legacy request (`era.rs`).
    pub async fn request_from(
        &self,
        mut msg: Message,
        origin: routing::Origin,
    ) -> Result<Message, RpcError> {
        // A request of a dropped trace only passes its context on, in `_meta`.
        if mcpr_core::telemetry::enabled()
            && !mcpr_core::telemetry::mcp::put_dropped_in_meta(&mut msg)
        {
            // Boxed: an untraced request's future stays the size it was.
            return Box::pin(self.request_traced(msg, origin)).await;
        }
        self.request_untraced(msg, origin).await
    }

    /// The request to the upstream as the agent's CLIENT span, whose context the upstream
    /// receives in `params._meta` (SEP-414; `remote.rs` also sends it as the HTTP
    /// `traceparent` header).
    async fn request_traced(
        &self,
        mut msg: Message,
        origin: routing::Origin,
    ) -> Result<Message, RpcError> {
        use mcpr_core::telemetry::mcp;
        let span = mcp::request_span(&msg, mcp::Side::Client, None);
        let transport = match self.outbound {
            Outbound::Http(_) => "tcp",
            _ => "pipe",
        };
        mcp::set(&span, "network.transport", transport);
        mcp::TraceContext::of(&span).put_in_meta(&mut msg);
        mcp::relayed_in(span, self.request_untraced(msg, origin)).await
    }

    async fn request_untraced(
        &self,
        mut msg: Message,
        origin: routing::Origin,
    ) -> Result<Message, RpcError> {
        match self.modern.get() {
            Some(upstream) => {
                modern::relay(self, upstream, msg, origin, self.request_timeout).await
            }
            None => {
                if let Some(answer) = era::refuse_modern_only(&msg) {
                    return Ok(answer);
                }
                era::to_legacy(&mut msg);
                if let Some(answer) = self.kept_subscription(&msg, &origin) {
                    return Ok(answer);
                }
                self.send_request(msg, origin).await
            }
        }
    }

    /// A client's unsubscribe that other clients' subscriptions keep alive upstream is
    /// answered here (see `Routing::note_subscription`).
    fn kept_subscription(&self, msg: &Message, origin: &routing::Origin) -> Option<Message> {
        let method = msg.method.as_deref()?;
        if origin.is_none() || !matches!(method, "resources/subscribe" | "resources/unsubscribe") {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Params {
            uri: String,
        }
        let params: Params = serde_json::from_str(msg.params.as_ref()?.get()).ok()?;
        if self
            .routing
            .note_subscription(method, &params.uri, &origin.client_session)
        {
            return None;
        }
        Some(Message::result(
            msg.id.clone().unwrap_or(Value::Null),
            jsonrpc::to_raw(&json!({})),
        ))
    }

    /// Sends one request as it is and waits for its response (see `request_from`).
    pub(crate) async fn send_request(
        &self,
        mut msg: Message,
        origin: routing::Origin,
    ) -> Result<Message, RpcError> {
        if let Some(reason) = self.close_reason() {
            return Err(RpcError::new(
                code::UPSTREAM_UNAVAILABLE,
                format!("upstream session closed: {reason}"),
            ));
        }
        let original_id = msg.id.take().unwrap_or(Value::Null);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        msg.id = Some(json!(id));
        let msg = self.routing.outgoing(msg, id, origin);
        // However this ends (answer, error, timeout, caller gone), stop routing for it.
        struct Finished<'a>(&'a routing::Routing, u64);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.finished(self.1);
            }
        }
        let _finished = Finished(&self.routing, id);
        let method = msg.method.clone().unwrap_or_default();
        let mut response = match &self.outbound {
            Outbound::Lines(tx) => {
                let (done_tx, done_rx) = oneshot::channel();
                self.pending.insert(id, done_tx);
                if tx.send(msg.to_bytes()).await.is_err() {
                    self.pending.remove(&id);
                    return Err(self.gone_error());
                }
                match tokio::time::timeout(self.request_timeout, done_rx).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(_)) => return Err(self.gone_error()),
                    Err(_) => {
                        self.pending.remove(&id);
                        self.notify_cancelled(id, "request timed out at the gateway")
                            .await;
                        return Err(self.timeout_error(&method));
                    }
                }
            }
            Outbound::Http(http) => {
                match tokio::time::timeout(self.request_timeout, http.request(self, &msg, id)).await
                {
                    Ok(Ok(response)) => response,
                    Ok(Err(e)) => {
                        if e.session_lost {
                            self.close(e.message.clone());
                        }
                        return Err(RpcError::new(code::UPSTREAM_UNAVAILABLE, e.message));
                    }
                    Err(_) => return Err(self.timeout_error(&method)),
                }
            }
        };
        response.id = Some(original_id);
        Ok(response)
    }

    /// Sends a notification (fire and forget); on a legacy connection without the modern
    /// envelope (`era.rs`).
    pub async fn notify(&self, mut msg: Message) -> Result<(), RpcError> {
        if self.modern.get().is_none() {
            era::to_legacy(&mut msg);
        }
        match &self.outbound {
            Outbound::Lines(tx) => tx.send(msg.to_bytes()).await.map_err(|_| self.gone_error()),
            Outbound::Http(http) => http
                .notify(&msg)
                .await
                .map_err(|e| RpcError::new(code::UPSTREAM_UNAVAILABLE, e.message)),
        }
    }

    async fn notify_cancelled(&self, id: u64, reason: &str) {
        let cancel = Message::notification(
            "notifications/cancelled",
            Some(json!({"requestId": id, "reason": reason})),
        );
        let _ = self.notify(cancel).await;
    }

    fn gone_error(&self) -> RpcError {
        let reason = self
            .close_reason()
            .unwrap_or_else(|| "connection lost".into());
        RpcError::new(
            code::UPSTREAM_UNAVAILABLE,
            format!("upstream server went away: {reason}"),
        )
    }

    fn timeout_error(&self, method: &str) -> RpcError {
        RpcError::new(
            code::UPSTREAM_TIMEOUT,
            format!(
                "upstream server did not answer {method} within {} s",
                self.request_timeout.as_secs_f32()
            ),
        )
    }

    /// Handles one message that the upstream sent us (a response, its own request, or a
    /// notification). Returns an answer to send back for upstream requests.
    /// `arrived_with` is the upstream id of the request on whose stream the message came
    /// (streamable HTTP), if any.
    fn on_message(&self, msg: Message, arrived_with: Option<u64>) -> Option<Message> {
        match msg.kind() {
            Ok(Kind::Response) => {
                if let Some((_, waiter)) = msg
                    .id
                    .as_ref()
                    .and_then(Value::as_u64)
                    .and_then(|id| self.pending.remove(&id))
                {
                    let _ = waiter.send(msg);
                }
                None
            }
            Ok(Kind::Request) => {
                let id = msg.id.clone().unwrap_or(Value::Null);
                let method = msg.method.clone().unwrap_or_default();
                if method == "ping" {
                    return Some(Message::result(id, jsonrpc::to_raw(&json!({}))));
                }
                // Sampling, elicitation, roots: the client whose request is running answers.
                if self.routing.server_request(msg, arrived_with) {
                    return None;
                }
                Some(match method.as_str() {
                    "roots/list" => Message::result(id, jsonrpc::to_raw(&json!({"roots": []}))),
                    _ => Message::error(
                        id,
                        &RpcError::new(
                            code::INVALID_REQUEST,
                            format!("{method}: no client request is in flight to ask"),
                        ),
                    ),
                })
            }
            Ok(Kind::Notification) => {
                if msg.method.as_deref() == Some("notifications/tools/list_changed") {
                    let _ = self.events.send(UpstreamEvent::ToolsChanged);
                }
                self.routing.notification(msg, arrived_with);
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "ignoring malformed message from upstream");
                None
            }
        }
    }

    /// Starts following what the upstream sends outside of requests: for streamable HTTP its
    /// GET stream (stdio needs nothing: the reader sees every line).
    pub fn start_listening(self: &Arc<Self>) {
        // A modern-era upstream has no session stream: the agent listens with a request.
        if self.modern.get().is_some() {
            let conn = self.clone();
            tokio::spawn(async move {
                if let Some(upstream) = conn.modern.get() {
                    modern::follow(&conn, upstream).await;
                }
            });
            return;
        }
        if matches!(self.outbound, Outbound::Http(_)) {
            let conn = self.clone();
            tokio::spawn(async move {
                let Outbound::Http(http) = &conn.outbound else {
                    return;
                };
                tokio::select! {
                    _ = http.listen(&conn) => {}
                    _ = conn.closed() => {}
                }
            });
        }
    }

    /// A client cancels one of its requests (`notifications/cancelled` with the client's id):
    /// the upstream is told with its own id, and the request ends at once with an error, so
    /// nothing waits for an answer that will not come.
    pub async fn cancel(&self, client_session: &str, mut msg: Message) {
        let Ok(mut params) = msg.params_value() else {
            return;
        };
        let Some(client_id) = params.get("requestId").map(Value::to_string) else {
            return;
        };
        let Some(upstream_id) = self.routing.upstream_id(client_session, &client_id) else {
            return;
        };
        params.insert("requestId".into(), json!(upstream_id));
        msg.params = Some(jsonrpc::to_raw(&Value::Object(params)));
        let _ = self.notify(msg).await;
        if let Some((_, waiter)) = self.pending.remove(&upstream_id) {
            let _ = waiter.send(Message::error(
                json!(upstream_id),
                &RpcError::new(-32800, "request cancelled by the client"),
            ));
        }
    }

    /// Passes a client's answer to a server-to-client request back upstream.
    pub async fn respond(&self, msg: Message) {
        if let Some(answer) = self.routing.client_response(msg) {
            let _ = self.notify(answer).await;
        }
    }

    /// Names what started this stdio server (see `launch`).
    pub fn set_launch(&self, launch: String) {
        let _ = self.launch.set(launch);
    }

    /// The MCP handshake: `initialize`, `notifications/initialized`, then the tool list
    /// (or `server/discover` and the tool list for a server of the modern era alone).
    pub async fn handshake(&self, client_name: &str) -> Result<Handshake, RpcError> {
        if self
            .launch
            .get()
            .is_some_and(|launch| modern::known_modern_only(launch))
        {
            return self.open_modern(client_name).await;
        }
        let init = Message::request(
            json!(0),
            "initialize",
            Some(json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}},
                "clientInfo": {"name": client_name, "version": env!("CARGO_PKG_VERSION")},
            })),
        );
        let result = match self.request(init).await.and_then(result_of) {
            Ok(result) => result,
            Err(refused) => return self.discover_modern(client_name, refused).await,
        };
        if let Outbound::Http(http) = &self.outbound
            && let Some(version) = serde_json::from_str::<Value>(result.get())
                .ok()
                .and_then(|v| v["protocolVersion"].as_str().map(str::to_owned))
        {
            http.set_protocol_version(version);
        }
        self.notify(Message::notification("notifications/initialized", None))
            .await?;
        let (tools_json, tool_count) = self.list_tools().await?;
        Ok(Handshake {
            server_info_json: result.get().to_owned(),
            tools_json,
            tool_count,
        })
    }

    /// After `initialize` was `refused`: an HTTP upstream may be of the modern era alone
    /// (no `initialize`); `server/discover` tells, and from then on requests go stateless.
    /// Otherwise the handshake fails with the refusal.
    async fn discover_modern(
        &self,
        client_name: &str,
        refused: RpcError,
    ) -> Result<Handshake, RpcError> {
        let Outbound::Http(http) = &self.outbound else {
            // A stdio server of the modern era alone may still be there after refusing: it
            // is asked `server/discover` at once. One that ended is started again, opening
            // with `server/discover`.
            if modern::refused_for_modern_only(&refused) {
                let discovered =
                    tokio::time::timeout(STDIO_DISCOVER_WAIT, self.open_modern(client_name)).await;
                match discovered {
                    Ok(Ok(handshake)) => {
                        if let Some(launch) = self.launch.get() {
                            modern::remember_modern_only(launch);
                        }
                        return Ok(handshake);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "server/discover after a refused initialize failed")
                    }
                    Err(_) => {
                        tracing::debug!("no answer to server/discover after a refused initialize")
                    }
                }
            }
            return Err(modern::stdio_refusal(refused, self.launch.get()));
        };
        http.forget_session();
        self.open_modern(client_name).await.map_err(|e| {
            tracing::debug!(error = %e, "server/discover after a refused initialize failed too");
            refused
        })
    }

    /// Opens with `server/discover`; from then on requests go stateless.
    async fn open_modern(&self, client_name: &str) -> Result<Handshake, RpcError> {
        let meta = modern::agent_meta(client_name);
        let server_info_json = modern::discover(self, &meta).await?;
        let _ = self.modern.set(modern::ModernUpstream::new(meta));
        let (tools_json, tool_count) = self.list_tools().await?;
        Ok(Handshake {
            server_info_json,
            tools_json,
            tool_count,
        })
    }

    /// Fetches every page of `tools/list`; returns the tools as a raw JSON array.
    pub async fn list_tools(&self) -> Result<(String, usize), RpcError> {
        let mut tools: Vec<Box<serde_json::value::RawValue>> = Vec::new();
        let mut cursor: Option<String> = None;
        for _page in 0..1000 {
            let params = cursor.as_ref().map(|c| json!({"cursor": c}));
            let response = self
                .request(Message::request(json!(0), "tools/list", params))
                .await?;
            let result = result_of(response)?;
            #[derive(serde::Deserialize)]
            struct Page {
                #[serde(default)]
                tools: Vec<Box<serde_json::value::RawValue>>,
                #[serde(rename = "nextCursor")]
                next_cursor: Option<String>,
            }
            let page: Page = serde_json::from_str(result.get()).map_err(|e| {
                RpcError::internal(format!("upstream sent an invalid tools/list result: {e}"))
            })?;
            tools.extend(page.tools);
            match page.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => break,
            }
        }
        let count = tools.len();
        let tools_json = serde_json::to_string(&tools).expect("raw values serialize");
        if let Outbound::Http(http) = &self.outbound {
            http.set_tools(&tools_json);
        }
        Ok((tools_json, count))
    }
}

/// The `result` of a response, or its error as an `RpcError`.
pub fn result_of(response: Message) -> Result<Box<serde_json::value::RawValue>, RpcError> {
    if let Some(result) = response.result {
        return Ok(result);
    }
    let error = response
        .error
        .and_then(|e| serde_json::from_str::<RpcError>(e.get()).ok())
        .unwrap_or_else(|| {
            RpcError::internal("upstream sent a response with neither result nor error")
        });
    Err(error)
}
