//! The modern MCP era (2026-07-28, SEP-2575) on the HTTP front door: stateless requests, each
//! carrying its protocol version, client capabilities and client info in `_meta` and its
//! method and name in standard headers (SEP-2243), no `initialize` and no session.
//!
//! The gateway answers what it owns (`server/discover`, from the upstream's `initialize`
//! result on the transparent view) and relays the rest with the request's `_meta`. The agent
//! keeps it for an upstream reached in the modern era, and strips the modern keys on a
//! connection opened with `initialize` (`node-agent/src/upstream/era.rs`), which serves only
//! legacy requests. What such a legacy server asks the client in the middle of a call
//! (elicitation, sampling, roots) comes back as an InputRequiredResult (`modern_bridge.rs`).
//!
//! One pass per request: batch and kind, `_meta` and header checks, removed methods,
//! dispatch. Errors that the transport specifies carry their HTTP status (`status_of`).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mcpr_core::jsonrpc::{self, Kind, Message, RpcError, code};
use mcpr_core::mcp_headers::{self as std_headers, MODERN_VERSION};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::Gateway;
use crate::transport::{MODERN_SESSION, VERSION, header_str};
use crate::views::{SUPPORTED_VERSIONS, View};

/// MCP error codes of the modern era.
pub mod error_code {
    pub const HEADER_MISMATCH: i64 = -32020;
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// Methods of the legacy era that 2026-07-28 removed: 404 and -32601, as the transport says.
const REMOVED_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Every protocol version the gateway speaks, oldest first (`server/discover`).
pub fn supported_versions() -> Vec<&'static str> {
    let mut versions: Vec<&str> = SUPPORTED_VERSIONS.iter().rev().copied().collect();
    versions.push(MODERN_VERSION);
    versions
}

/// Whether a POST belongs to the modern era: a modern `MCP-Protocol-Version` header, or a
/// request whose `_meta` names its protocol version.
pub fn applies(headers: &HeaderMap, messages: &[Message]) -> bool {
    let header_is_modern = header_str(headers, &VERSION)
        .is_some_and(|v| !SUPPORTED_VERSIONS.contains(&v) && std_headers::is_modern_version(v));
    header_is_modern || messages.iter().any(names_its_version)
}

/// Whether a message's `_meta` names its protocol version (the text test first keeps legacy
/// requests from being parsed twice; the parse keeps an argument that merely mentions the
/// key from counting).
pub(crate) fn names_its_version(message: &Message) -> bool {
    message
        .params
        .as_ref()
        .is_some_and(|params| std_headers::protocol_version_in(params.get()).is_some())
}

/// What a modern request asked for, read once from its `_meta`.
pub struct RequestMeta {
    /// `io.modelcontextprotocol/clientCapabilities`.
    pub capabilities: Map<String, Value>,
    /// `io.modelcontextprotocol/logLevel`: no log notifications without it.
    pub log_level: Option<String>,
}

/// Answers one modern request: a POST (with its `headers`), or a line of the stdio front
/// door (`None`: that transport has no headers to check).
pub async fn handle(
    gateway: &Arc<Gateway>,
    view: View,
    headers: Option<&HeaderMap>,
    mut messages: Vec<Message>,
    batch: bool,
) -> Response {
    if batch {
        return refusal(
            StatusCode::BAD_REQUEST,
            Value::Null,
            RpcError::new(
                code::INVALID_REQUEST,
                "JSON-RPC batches are not part of protocol 2026-07-28",
            ),
        );
    }
    let message = messages.pop().expect("a parsed body holds a message");
    match message.kind() {
        Ok(Kind::Request) => {}
        // Nothing to act on: there is no session a notification could concern.
        Ok(Kind::Notification) => return StatusCode::ACCEPTED.into_response(),
        Ok(Kind::Response) | Err(_) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                message.id.unwrap_or(Value::Null),
                RpcError::new(
                    code::INVALID_REQUEST,
                    "a stateless (2026-07-28) request was expected; responses to server requests travel in inputResponses",
                ),
            );
        }
    }
    let client_id = message.id.clone().unwrap_or(Value::Null);
    let method = message.method.clone().unwrap_or_default();
    let params = match message
        .params
        .as_ref()
        .map(|p| serde_json::from_str::<Value>(p.get()))
    {
        Some(Ok(params)) => Some(params),
        Some(Err(e)) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                client_id,
                RpcError::invalid_params(format!("params are not JSON: {e}")),
            );
        }
        None => None,
    };
    let meta = match check_request(gateway, &view, headers, &method, params.as_ref()) {
        Ok(meta) => meta,
        Err(error) => return refusal(status_of(&error, true), client_id, error),
    };
    if REMOVED_METHODS.contains(&method.as_str()) {
        let error = RpcError::new(
            code::METHOD_NOT_FOUND,
            format!("method not found: {method} (removed in protocol 2026-07-28)"),
        );
        return refusal(StatusCode::NOT_FOUND, client_id, error);
    }
    if method == "server/discover" {
        let answer = match discover(gateway, &view).await {
            Ok(result) => Message::result(client_id, jsonrpc::to_raw(&result)),
            Err(error) => Message::error(client_id, &error),
        };
        return answer_response(&answer, Vec::new());
    }
    if !matches!(view, View::Transparent(_))
        && !matches!(
            method.as_str(),
            "tools/list" | "tools/call" | "subscriptions/listen"
        )
    {
        let error = RpcError::method_not_found(&method);
        return refusal(StatusCode::NOT_FOUND, client_id, error);
    }
    if method == "subscriptions/listen" {
        // Boxed, as the other rare, long-lived paths: its future would add kilobytes to
        // every request's (docs/BENCHMARKS.md).
        return Box::pin(listen(
            gateway,
            view,
            message,
            params.as_ref(),
            came(headers),
        ))
        .await;
    }
    let came = came(headers);
    crate::transport::modern_bridge::call(gateway, view, message, params, meta, came).await
}

/// What the span of a modern request records of how it came (`None` while tracing is off):
/// over HTTP its `traceparent` header is the parent unless `params._meta` names one.
fn came(headers: Option<&HeaderMap>) -> Option<crate::views::Came> {
    if !mcpr_core::telemetry::enabled() {
        return None;
    }
    Some(crate::views::Came {
        transport: Some(if headers.is_some() { "tcp" } else { "pipe" }),
        context: headers.and_then(super::header_trace_context),
        protocol_version: Some(MODERN_VERSION),
        caller: super::caller,
        ..Default::default()
    })
}

/// Checks the per-request protocol data: `_meta` (version, capabilities), and over HTTP
/// the version header against it and the standard headers against the body.
fn check_request(
    gateway: &Gateway,
    view: &View,
    headers: Option<&HeaderMap>,
    method: &str,
    params: Option<&Value>,
) -> Result<RequestMeta, RpcError> {
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let meta_version = meta
        .and_then(|m| m.get(std_headers::META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    let capabilities = meta
        .and_then(|m| m.get(std_headers::META_CLIENT_CAPABILITIES))
        .and_then(Value::as_object);
    let Some(meta_version) = meta_version else {
        return Err(malformed_meta(std_headers::META_PROTOCOL_VERSION));
    };
    if let Some(headers) = headers {
        check_version_header(headers, meta_version)?;
    }
    if meta_version != MODERN_VERSION {
        return Err(RpcError {
            code: error_code::UNSUPPORTED_PROTOCOL_VERSION,
            message: format!("unsupported protocol version {meta_version:?}"),
            data: Some(json!({"requested": meta_version, "supported": supported_versions()})),
        });
    }
    let Some(capabilities) = capabilities else {
        return Err(malformed_meta(std_headers::META_CLIENT_CAPABILITIES));
    };
    if let Some(headers) = headers {
        let annotations = header_params(gateway, view, method, params);
        std_headers::validate_request_headers(
            |name| single_header(headers, name),
            method,
            params,
            &annotations,
        )
        .map_err(|reason| RpcError::new(error_code::HEADER_MISMATCH, reason))?;
    }
    Ok(RequestMeta {
        capabilities: capabilities.clone(),
        log_level: meta
            .and_then(|m| m.get(std_headers::META_LOG_LEVEL))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn malformed_meta(missing: &str) -> RpcError {
    RpcError {
        code: code::INVALID_PARAMS,
        message: format!("invalid params: the request's _meta lacks {missing}"),
        data: Some(json!({"missing": [missing]})),
    }
}

/// Over HTTP, `MCP-Protocol-Version` must be there and match the request's `_meta`.
fn check_version_header(headers: &HeaderMap, meta_version: &str) -> Result<(), RpcError> {
    let Some(header_version) = header_str(headers, &VERSION) else {
        return Err(RpcError::new(
            error_code::HEADER_MISMATCH,
            format!(
                "missing MCP-Protocol-Version header (the request's _meta names {meta_version})"
            ),
        ));
    };
    if header_version != meta_version {
        return Err(RpcError::new(
            error_code::HEADER_MISMATCH,
            format!(
                "MCP-Protocol-Version header {header_version:?} does not match the request's _meta protocolVersion {meta_version:?}"
            ),
        ));
    }
    Ok(())
}

/// The `x-mcp-header` annotations of the tool a `tools/call` names, for its `Mcp-Param-*`
/// headers.
fn header_params(
    gateway: &Gateway,
    view: &View,
    method: &str,
    params: Option<&Value>,
) -> Vec<(String, String)> {
    if method != "tools/call" {
        return Vec::new();
    }
    let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
        return Vec::new();
    };
    let (provider, tool) = match view {
        View::Transparent(provider) => (provider.as_str(), name),
        View::Flat => match name.split_once(crate::snapshot::FLAT_SEPARATOR) {
            Some(split) => split,
            None => return Vec::new(),
        },
        View::Hierarchical => return Vec::new(),
    };
    let snapshot = gateway.snapshot.load();
    snapshot
        .providers
        .get(provider)
        .and_then(|p| p.tools.iter().find(|t| t.name == tool))
        .map(|t| t.header_params.clone())
        .unwrap_or_default()
}

/// `server/discover`: the transparent view describes its provider from the upstream's
/// `initialize` result; the other views describe the router.
async fn discover(gateway: &Gateway, view: &View) -> Result<Value, RpcError> {
    let (capabilities, server_info, instructions) = match view {
        View::Transparent(name) => {
            // What a provider is, only to callers that may use it (API key scopes).
            crate::access::authorize_provider(name)?;
            let info = gateway.provider_server_info(name).await?;
            (
                crate::views::transparent_capabilities(&info),
                info.get("serverInfo").cloned().unwrap_or_else(router_info),
                info.get("instructions").cloned(),
            )
        }
        View::Hierarchical | View::Flat => (
            json!({"tools": {"listChanged": true}}),
            router_info(),
            Some(Value::String(crate::views::INSTRUCTIONS.to_owned())),
        ),
    };
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": supported_versions(),
        "capabilities": capabilities,
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {(std_headers::META_SERVER_INFO): server_info},
    });
    if let Some(instructions) = instructions {
        result["instructions"] = instructions;
    }
    Ok(result)
}

fn router_info() -> Value {
    json!({"name": "mcp-router", "title": "MCP Router", "version": env!("CARGO_PKG_VERSION")})
}

/// `subscriptions/listen`: relayed to the provider, whose notifications for it (tagged with
/// the subscription id, which the agent maps back to this request) stream to the client
/// until it hangs up; then the upstream subscription is cancelled. A listen request never
/// answers, so when the relay's time limit ends it the gateway opens it again, unseen by the
/// client (no second acknowledgement). An upstream that does not know the method (the
/// legacy era) gets the gateway's own stream (`modern_listen.rs`).
async fn listen(
    gateway: &Arc<Gateway>,
    view: View,
    message: Message,
    params: Option<&Value>,
    came: Option<crate::views::Came>,
) -> Response {
    let client_id = message.id.clone().unwrap_or(Value::Null);
    let filter = crate::transport::modern_listen::Filter::from_params(params);
    if !matches!(view, View::Transparent(_)) {
        // No upstream to ask: the view's list changes are the gateway's own.
        return served_listen(gateway, view, client_id, filter).await;
    }
    let request = message.to_bytes();
    let mut relayed = relay(gateway, view.clone(), message, came);
    let first = tokio::select! {
        biased;
        early = &mut relayed.answer => {
            let unknown_upstream = early
                .as_ref()
                .and_then(|a| a.error.as_ref())
                .and_then(|e| serde_json::from_str::<RpcError>(e.get()).ok())
                .is_some_and(|e| e.code == code::METHOD_NOT_FOUND);
            if unknown_upstream {
                return served_listen(gateway, view, client_id, filter).await;
            }
            return match early {
                Some(mut early) => {
                    early.id = Some(client_id);
                    answer_response(&early, Vec::new())
                }
                None => StatusCode::ACCEPTED.into_response(),
            };
        }
        Some(first) = relayed.events.recv() => first,
    };
    let (out, to_client) = mpsc::channel::<Vec<u8>>(64);
    let _ = out.try_send(restore_ids(&first, &relayed.internal, &client_id));
    let pump = ListenPump {
        gateway: gateway.clone(),
        view,
        request,
        client_id,
        acknowledged: is_acknowledgement(&first),
    };
    tokio::spawn(crate::access::inherit(pump.run(relayed, out)));
    let events = futures::stream::unfold(to_client, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    })
    .map(|bytes| Ok::<_, std::convert::Infallible>(sse_event(&bytes)));
    sse_stream_response(Body::from_stream(events))
}

/// Carries a relayed listen stream to its client, opening it again upstream when the relay's
/// time limit ends it, until the client hangs up or the upstream ends it for good.
struct ListenPump {
    gateway: Arc<Gateway>,
    view: View,
    /// The client's request, to send again.
    request: Vec<u8>,
    client_id: Value,
    acknowledged: bool,
}

impl ListenPump {
    async fn run(mut self, mut current: Relayed, out: mpsc::Sender<Vec<u8>>) {
        loop {
            // Dropped when this relay is over: the upstream subscription is cancelled.
            let cancel = CancelOnDrop {
                gateway: self.gateway.clone(),
                view: self.view.clone(),
                internal: current.internal.clone(),
                _guard: current.stream,
            };
            loop {
                tokio::select! {
                    _ = out.closed() => return,
                    Some(bytes) = current.events.recv() => {
                        let ack = is_acknowledgement(&bytes);
                        if ack && self.acknowledged {
                            continue;
                        }
                        self.acknowledged |= ack;
                        let bytes = restore_ids(&bytes, &cancel.internal, &self.client_id);
                        if out.send(bytes).await.is_err() {
                            return;
                        }
                    }
                    answer = &mut current.answer => {
                        let Some(mut answer) = answer else { return };
                        let timed_out = answer
                            .error
                            .as_ref()
                            .and_then(|e| serde_json::from_str::<RpcError>(e.get()).ok())
                            .is_some_and(|e| e.code == code::UPSTREAM_TIMEOUT);
                        if timed_out {
                            break;
                        }
                        answer.id = Some(self.client_id.clone());
                        let _ = out.send(answer.to_bytes()).await;
                        return;
                    }
                }
            }
            drop(cancel);
            let Ok(message) = Message::parse(&self.request) else {
                return;
            };
            current = relay(&self.gateway, self.view.clone(), message, None);
        }
    }
}

fn is_acknowledgement(bytes: &[u8]) -> bool {
    Message::parse(bytes)
        .ok()
        .and_then(|m| m.method)
        .is_some_and(|m| m == "notifications/subscriptions/acknowledged")
}

/// A modern request on its way to the provider under its own `internal_id`.
pub struct Relayed {
    pub internal: Value,
    /// The provider's answer (with the internal id).
    pub answer: std::pin::Pin<Box<dyn std::future::Future<Output = Option<Message>> + Send>>,
    /// What the upstream sends about the request before its answer.
    pub events: mpsc::Receiver<Vec<u8>>,
    /// Keeps `events` routed to this request.
    pub stream: crate::relay::delivery::StreamGuard,
}

/// Starts relaying `message` on `view` under a fresh id; the answer runs when polled, with
/// the caller's access (`auth.rs`), wherever it is polled from.
pub fn relay(
    gateway: &Arc<Gateway>,
    view: View,
    mut message: Message,
    came: Option<crate::views::Came>,
) -> Relayed {
    let internal = internal_id();
    message.id = Some(internal.clone());
    let (tx, events) = mpsc::channel::<Vec<u8>>(64);
    let stream = gateway
        .delivery
        .open_stream(MODERN_SESSION, &internal.to_string(), tx);
    let relay_gateway = gateway.clone();
    let answer = Box::pin(crate::access::inherit(async move {
        relay_gateway
            .handle_from(&view, MODERN_SESSION, message, came)
            .await
    }));
    Relayed {
        internal,
        answer,
        events,
        stream,
    }
}

/// The gateway's own listen stream for `view`, open until the client hangs up.
async fn served_listen(
    gateway: &Arc<Gateway>,
    view: View,
    subscription_id: Value,
    filter: crate::transport::modern_listen::Filter,
) -> Response {
    let (registration, events) =
        crate::transport::modern_listen::open(gateway, view, subscription_id, filter).await;
    let events =
        futures::stream::unfold(
            events,
            |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
        )
        .map(move |bytes| {
            let _keep = &registration;
            Ok::<_, std::convert::Infallible>(sse_event(&bytes))
        });
    sse_stream_response(Body::from_stream(events))
}

/// Cancels a relayed request when the client's stream is gone.
struct CancelOnDrop {
    gateway: Arc<Gateway>,
    view: View,
    internal: Value,
    _guard: crate::relay::delivery::StreamGuard,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let gateway = self.gateway.clone();
        let view = self.view.clone();
        let cancel = Message::notification(
            "notifications/cancelled",
            Some(json!({"requestId": self.internal, "reason": "the client closed the stream"})),
        );
        tokio::spawn(crate::access::inherit(async move {
            gateway.handle(&view, MODERN_SESSION, cancel).await;
        }));
    }
}

/// A fresh id for a relayed modern request, unique across clients.
pub fn internal_id() -> Value {
    Value::String(format!("modern-{}", uuid::Uuid::new_v4().simple()))
}

/// Puts the client's own id back where an upstream message names the relayed request's
/// (the subscription id of listen notifications).
pub fn restore_ids(bytes: &[u8], internal: &Value, client: &Value) -> Vec<u8> {
    let internal_text = internal.to_string();
    let Ok(text) = std::str::from_utf8(bytes) else {
        return bytes.to_vec();
    };
    if !text.contains(&internal_text) {
        return bytes.to_vec();
    }
    text.replace(&internal_text, &client.to_string())
        .into_bytes()
}

/// The HTTP status the 2026-07-28 transport gives a JSON-RPC error: 400 for header
/// mismatches, missing capabilities, unsupported versions and (`malformed_meta`) requests
/// whose `_meta` is incomplete, 404 for unknown methods, else 200.
pub fn status_of(error: &RpcError, malformed_meta: bool) -> StatusCode {
    match error.code {
        error_code::HEADER_MISMATCH
        | error_code::MISSING_REQUIRED_CLIENT_CAPABILITY
        | error_code::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        code::INVALID_PARAMS if malformed_meta => StatusCode::BAD_REQUEST,
        code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// A final answer, after any notifications that came first (then as SSE).
pub fn answer_response(answer: &Message, before: Vec<Vec<u8>>) -> Response {
    let limits = mcpr_core::settings::Limits::current();
    let size = crate::transport::limits::answer_size(answer);
    if size > limits.max_response_bytes {
        let id = answer.id.clone().unwrap_or(Value::Null);
        let error = crate::transport::limits::too_large(size, limits);
        return answer_response(&Message::error(id, &error), before);
    }
    let body = answer.to_bytes();
    if before.is_empty() {
        let error = answer
            .error
            .as_ref()
            .and_then(|e| serde_json::from_str::<RpcError>(e.get()).ok());
        let status = error
            .as_ref()
            .map_or(StatusCode::OK, |e| status_of(e, false));
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(error) = &error {
            crate::access::mark_refused_scope(&mut response, error);
        }
        return response;
    }
    let mut events = Vec::new();
    for message in before.iter().chain(std::iter::once(&body)) {
        events.extend_from_slice(&sse_event(message));
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        events,
    )
        .into_response()
}

/// An SSE answer: `first`, then every message from `rest` until its senders are gone.
pub fn stream_response(first: Vec<u8>, rest: mpsc::Receiver<Vec<u8>>) -> Response {
    let rest = futures::stream::unfold(
        rest,
        |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
    );
    let events = futures::stream::once(async move { first })
        .chain(rest)
        .map(|bytes| Ok::<_, std::convert::Infallible>(sse_event(&bytes)));
    sse_stream_response(Body::from_stream(events))
}

/// A streamed SSE answer.
fn sse_stream_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn refusal(status: StatusCode, id: Value, error: RpcError) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Message::error(id, &error).to_bytes(),
    )
        .into_response()
}

fn sse_event(message: &[u8]) -> Bytes {
    let mut event = b"event: message\ndata: ".to_vec();
    event.extend_from_slice(message);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

/// A header's only value; repeated or non-text values are refused (intermediaries may
/// resolve duplicates differently from us).
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("the {name} header is repeated"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| format!("the {name} header holds characters a header value may not"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_transport() {
        let error = |code| RpcError::new(code, "x");
        assert_eq!(
            status_of(&error(error_code::HEADER_MISMATCH), false),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_of(&error(code::METHOD_NOT_FOUND), false),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_of(&error(code::INVALID_PARAMS), false),
            StatusCode::OK
        );
        assert_eq!(
            status_of(&error(code::INVALID_PARAMS), true),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn only_the_meta_key_makes_a_request_modern() {
        let call = |params: Value| Message::request(json!(1), "tools/call", Some(params));
        let mention = call(
            json!({"name": "echo", "arguments": {"text": "io.modelcontextprotocol/protocolVersion"}}),
        );
        assert!(!names_its_version(&mention));
        let modern = call(
            json!({"name": "echo", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        );
        assert!(names_its_version(&modern));
    }

    #[test]
    fn ids_are_restored_in_listen_notifications() {
        let internal = Value::String("modern-1".into());
        let bytes = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"modern-1"}}}"#;
        let restored = restore_ids(bytes, &internal, &json!(7));
        assert!(
            String::from_utf8(restored)
                .unwrap()
                .contains(r#"subscriptionId":7"#)
        );
    }
}
