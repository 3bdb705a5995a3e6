//! The streamable HTTP front door (MCP transports 2025-03-26 … 2025-11-25). Each request is
//! one linear pass: origin and header checks, body limit, session, then the view's handler.
//!
//! Responses to requests are single JSON bodies (or one SSE event when the client accepts
//! only `text/event-stream`); the GET stream is not offered (405), as the transport allows.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dashmap::DashMap;
use mcpr_core::jsonrpc::{Message, RpcError, code};
use serde_json::Value;

use crate::Gateway;
use crate::views::{SUPPORTED_VERSIONS, View};

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";

/// Largest accepted MCP request body.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A client session created by `initialize`.
#[derive(Debug)]
pub struct ClientSession {
    pub view: View,
    pub protocol_version: String,
    pub created: Instant,
    /// Seconds since `created` of the last request, for idle expiry.
    pub last_seen: std::sync::atomic::AtomicU64,
}

impl ClientSession {
    fn touch(&self) {
        self.last_seen.store(
            self.created.elapsed().as_secs(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn idle_for(&self) -> std::time::Duration {
        let last = self.last_seen.load(std::sync::atomic::Ordering::Relaxed);
        self.created
            .elapsed()
            .saturating_sub(std::time::Duration::from_secs(last))
    }
}

/// Forgets sessions idle for longer than `idle`; their clients get 404 and initialize anew,
/// as the transport specifies.
pub fn expire_sessions(sessions: &Sessions, idle: std::time::Duration) -> usize {
    let before = sessions.len();
    sessions.retain(|_, s| s.idle_for() < idle);
    before - sessions.len()
}

pub type Sessions = DashMap<String, ClientSession>;

#[derive(Clone)]
struct Route {
    gateway: Arc<Gateway>,
    view: Option<View>,
}

/// The MCP routes: `mcp_path` (hierarchical, also with a trailing slash), `/mcp/all` and
/// `/mcp/p/{provider}`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let path = gateway.config.mcp_path.trim_end_matches('/').to_owned();
    let view = |view: Option<View>| Route {
        gateway: gateway.clone(),
        view,
    };
    let mut router = Router::new()
        .route(
            &path,
            post(post_fixed)
                .get(get_stream)
                .delete(delete_fixed)
                .with_state(view(Some(View::Hierarchical))),
        )
        .route(
            &format!("{path}/"),
            post(post_fixed)
                .get(get_stream)
                .delete(delete_fixed)
                .with_state(view(Some(View::Hierarchical))),
        )
        .route(
            "/mcp/all",
            post(post_fixed)
                .get(get_stream)
                .delete(delete_fixed)
                .with_state(view(Some(View::Flat))),
        )
        .route(
            "/mcp/p/{provider}",
            post(post_provider)
                .get(get_stream)
                .delete(delete_provider)
                .with_state(view(None)),
        );
    if path != "/mcp" {
        router = router.route(
            "/mcp",
            post(post_fixed)
                .get(get_stream)
                .delete(delete_fixed)
                .with_state(view(Some(View::Hierarchical))),
        );
    }
    router
}

async fn post_fixed(State(route): State<Route>, headers: HeaderMap, body: Body) -> Response {
    let view = route.view.clone().expect("fixed routes have a view");
    handle_post(&route.gateway, view, &headers, body).await
}

async fn post_provider(
    State(route): State<Route>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !route
        .gateway
        .snapshot
        .load()
        .providers
        .contains_key(&provider)
    {
        return rpc_refusal(
            StatusCode::NOT_FOUND,
            code::INVALID_PARAMS,
            &format!("unknown provider {provider:?}"),
        );
    }
    handle_post(&route.gateway, View::Transparent(provider), &headers, body).await
}

async fn get_stream() -> Response {
    let mut response = rpc_refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        code::INVALID_REQUEST,
        "this endpoint does not offer a server-to-client SSE stream; POST JSON-RPC messages",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
    response
}

async fn delete_fixed(State(route): State<Route>, headers: HeaderMap) -> Response {
    end_session(
        &route.gateway,
        route.view.as_ref().expect("fixed routes have a view"),
        &headers,
    )
}

async fn delete_provider(
    State(route): State<Route>,
    Path(provider): Path<String>,
    headers: HeaderMap,
) -> Response {
    end_session(&route.gateway, &View::Transparent(provider), &headers)
}

fn end_session(gateway: &Gateway, view: &View, headers: &HeaderMap) -> Response {
    let Some(id) = header_str(headers, SESSION_HEADER) else {
        return rpc_refusal(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "DELETE needs the Mcp-Session-Id header",
        );
    };
    match gateway.sessions.remove_if(id, |_, s| &s.view == view) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => rpc_refusal(
            StatusCode::NOT_FOUND,
            code::INVALID_REQUEST,
            "unknown or expired session",
        ),
    }
}

async fn handle_post(gateway: &Gateway, view: View, headers: &HeaderMap, body: Body) -> Response {
    if let Err(refusal) = check_origin(gateway, headers) {
        return refusal;
    }
    let accept = header_str(headers, header::ACCEPT.as_str())
        .unwrap_or("*/*")
        .to_ascii_lowercase();
    let wants_json = accept.contains("application/json")
        || accept.contains("*/*")
        || accept.contains("application/*");
    let wants_sse = accept.contains("text/event-stream");
    if !wants_json && !wants_sse {
        return rpc_refusal(
            StatusCode::NOT_ACCEPTABLE,
            code::INVALID_REQUEST,
            "Accept must include application/json or text/event-stream",
        );
    }
    if let Some(content_type) = header_str(headers, header::CONTENT_TYPE.as_str()) {
        if !content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return rpc_refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_REQUEST,
                "Content-Type must be application/json",
            );
        }
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return rpc_refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::INVALID_REQUEST,
                &format!("request body is over {MAX_BODY_BYTES} bytes"),
            );
        }
        Err(BodyError::Broken(e)) => {
            return rpc_refusal(
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                &format!("reading the request body: {e}"),
            );
        }
    };
    let (messages, batch) = match parse_body(&body) {
        Ok(parsed) => parsed,
        Err(error) => return rpc_error_response(StatusCode::BAD_REQUEST, Value::Null, &error),
    };
    if let Some(version) = header_str(headers, VERSION_HEADER) {
        if !SUPPORTED_VERSIONS.contains(&version) {
            return rpc_refusal(
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                &format!(
                    "unsupported MCP-Protocol-Version {version:?} (supported: {})",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            );
        }
    }

    let initialize = messages
        .iter()
        .find(|m| m.method.as_deref() == Some("initialize") && m.id.is_some());
    let is_initialize = initialize.is_some();
    let mut new_session = None;
    let session_id = if let Some(init) = initialize {
        if batch && messages.len() > 1 {
            return rpc_refusal(
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                "initialize must not be part of a batch",
            );
        }
        let requested = init
            .params_value()
            .ok()
            .and_then(|p| {
                p.get("protocolVersion")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let id = uuid::Uuid::new_v4().simple().to_string();
        new_session = Some((
            id.clone(),
            ClientSession {
                view: view.clone(),
                protocol_version: crate::views::negotiate_version(&requested).to_owned(),
                created: Instant::now(),
                last_seen: Default::default(),
            },
        ));
        id
    } else {
        let Some(id) = header_str(headers, SESSION_HEADER) else {
            return rpc_refusal(
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                "missing Mcp-Session-Id header: send initialize first",
            );
        };
        match gateway.sessions.get(id) {
            Some(session) if session.view == view => {
                session.touch();
                id.to_owned()
            }
            _ => {
                return rpc_refusal(
                    StatusCode::NOT_FOUND,
                    code::INVALID_REQUEST,
                    "unknown or expired session: initialize a new one",
                );
            }
        }
    };

    let mut answers = Vec::with_capacity(messages.len());
    for message in messages {
        if let Some(answer) = gateway.handle(&view, &session_id, message).await {
            answers.push(answer);
        }
    }
    if let Some((id, session)) = new_session {
        // Only a successful initialize creates the session.
        if answers.first().is_some_and(|a| a.result.is_some()) {
            gateway.sessions.insert(id.clone(), session);
        } else {
            return json_response(StatusCode::OK, &answers[0].to_bytes(), None);
        }
    }
    if answers.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    let body = if batch {
        let parts: Vec<Vec<u8>> = answers.iter().map(Message::to_bytes).collect();
        let mut out = b"[".to_vec();
        out.extend(parts.join(&b","[..]));
        out.push(b']');
        out
    } else {
        answers[0].to_bytes()
    };
    let session_header = is_initialize.then_some(session_id.as_str());
    if wants_json {
        json_response(StatusCode::OK, &body, session_header)
    } else {
        sse_response(&body, session_header)
    }
}

enum BodyError {
    TooLarge,
    Broken(String),
}

/// Reads at most [`MAX_BODY_BYTES`]. An oversized body is drained (up to a bound) before the
/// 413 goes out, so the client reads the refusal instead of a reset connection.
async fn read_body(body: Body) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    const DRAIN_LIMIT: usize = 16 * MAX_BODY_BYTES;
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
        seen += chunk.len();
        if seen > MAX_BODY_BYTES {
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    seen += chunk.len();
                    if seen > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
            return Err(BodyError::TooLarge);
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(collected))
}

/// A single message or a batch (JSON array, 2025-03-26).
fn parse_body(body: &[u8]) -> Result<(Vec<Message>, bool), RpcError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let values: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(body)
            .map_err(|e| RpcError::new(code::PARSE_ERROR, format!("invalid JSON: {e}")))?;
        if values.is_empty() {
            return Err(RpcError::new(code::INVALID_REQUEST, "empty batch"));
        }
        let messages = values
            .iter()
            .map(|v| Message::parse(v.get().as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((messages, true))
    } else {
        let message = Message::parse(body).map_err(|e| {
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                RpcError::new(
                    code::INVALID_REQUEST,
                    format!("not a JSON-RPC 2.0 message: {}", e.message),
                )
            } else {
                e
            }
        })?;
        Ok((vec![message], false))
    }
}

/// Refuses cross-origin browser requests (DNS rebinding): an `Origin`, when present, must be
/// a loopback origin, the request's own host, or in the allow-list.
fn check_origin(gateway: &Gateway, headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = header_str(headers, header::ORIGIN.as_str()) else {
        return Ok(());
    };
    if gateway
        .config
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    let origin_host = origin.split("://").nth(1).unwrap_or_default();
    let origin_hostname = hostname(origin_host);
    let loopback = matches!(origin_hostname, "localhost" | "127.0.0.1" | "[::1]");
    let same_host = header_str(headers, header::HOST.as_str())
        .is_some_and(|h| h.eq_ignore_ascii_case(origin_host));
    if loopback || same_host {
        Ok(())
    } else {
        Err(rpc_refusal(
            StatusCode::FORBIDDEN,
            code::INVALID_REQUEST,
            &format!("origin {origin:?} is not allowed (set MCPR_ALLOWED_ORIGINS)"),
        ))
    }
}

fn hostname(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port.split_inclusive(']').next().unwrap_or(host_port);
    }
    host_port.split(':').next().unwrap_or(host_port)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_response(status: StatusCode, body: &[u8], session: Option<&str>) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_vec(),
    )
        .into_response();
    if let Some(session) = session {
        response.headers_mut().insert(
            SESSION_HEADER,
            HeaderValue::from_str(session).expect("session ids are hex"),
        );
    }
    response
}

fn sse_response(body: &[u8], session: Option<&str>) -> Response {
    let mut event = b"event: message\ndata: ".to_vec();
    event.extend_from_slice(body);
    event.extend_from_slice(b"\n\n");
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        event,
    )
        .into_response();
    if let Some(session) = session {
        response.headers_mut().insert(
            SESSION_HEADER,
            HeaderValue::from_str(session).expect("session ids are hex"),
        );
    }
    response
}

fn rpc_error_response(status: StatusCode, id: Value, error: &RpcError) -> Response {
    json_response(status, &Message::error(id, error).to_bytes(), None)
}

/// A transport-level refusal: the HTTP status and a JSON-RPC error body that says why.
pub fn rpc_refusal(status: StatusCode, code: i64, message: &str) -> Response {
    rpc_error_response(status, Value::Null, &RpcError::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let (m, batch) = parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!((m.len(), batch), (1, false));
        let (m, batch) = parse_body(br#" [{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#).unwrap();
        assert_eq!((m.len(), batch), (2, true));
        assert_eq!(parse_body(b"{nope").unwrap_err().code, code::PARSE_ERROR);
        assert_eq!(
            parse_body(br#"{"id":1}"#).unwrap_err().code,
            code::INVALID_REQUEST
        );
        assert_eq!(parse_body(b"[]").unwrap_err().code, code::INVALID_REQUEST);
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("localhost:8000"), "localhost");
        assert_eq!(hostname("[::1]:8000"), "[::1]");
        assert_eq!(hostname("example.com"), "example.com");
    }
}
