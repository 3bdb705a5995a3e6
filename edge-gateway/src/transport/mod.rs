//! The front doors: streamable HTTP of both MCP eras and stdio, each request one linear pass
//! down to the views.
//!
//! Layering of the crate (imports only go down): `transport` → `sessions` → `views` →
//! `observe` → `snapshot` → `access`, with `relay` beside them at the bottom; `lib.rs` holds the
//! `Gateway` every layer extends with an `impl Gateway` of its own.

use axum::Router;
use axum::http::header::AsHeaderName;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpr_core::jsonrpc::{Message, RpcError, code};
use serde_json::Value;
use std::sync::Arc;

use crate::Gateway;

pub mod authenticate;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod modern;
pub mod modern_bridge;
pub mod modern_listen;
pub mod outbound;
pub mod resource_metadata;
pub mod stdio;

/// The header that names a request's protocol version, in both eras.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// [`VERSION_HEADER`] as a header name, for look-ups: a name given as text is parsed again on
/// every one (a few hundred instructions each, several a request).
pub(crate) static VERSION: HeaderName = HeaderName::from_static(VERSION_HEADER);

/// The client-session name modern requests are relayed under. The era has no sessions;
/// requests are told apart by the unique id each gets on the way (`modern::internal_id`),
/// and a `per_client` provider keeps one upstream session for all modern clients.
pub const MODERN_SESSION: &str = "modern";

/// Every HTTP route of the gateway: the MCP routes (behind the authentication step) and,
/// beside them and outside that step, the OAuth resource metadata and the health check; the
/// Host and Origin policy is a layer before everything.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let policy = gateway.config.host_policy.clone();
    http::router(gateway.clone())
        .merge(resource_metadata::router(gateway.clone()))
        .route(HEALTH_PATH, axum::routing::get(health).with_state(gateway))
        .layer(policy.layer(host_refusal))
}

/// The gateway's health check, for load balancers and orchestrators' readiness probes.
pub const HEALTH_PATH: &str = "/healthz";

/// 200 once a configuration snapshot has arrived (the gateway can route calls), 503 before:
/// a replica that never reached a control plane takes no traffic. A gateway that loses its
/// control plane later stays ready, serving from its last snapshot.
async fn health(axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>) -> Response {
    let version = gateway.snapshot_version();
    let (status, state) = match version {
        0 => (StatusCode::SERVICE_UNAVAILABLE, "waiting_for_config"),
        _ => (StatusCode::OK, "ok"),
    };
    let body = serde_json::json!({"status": state, "config_version": version});
    (status, axum::Json(body)).into_response()
}

/// A transport-level refusal: the HTTP status and a JSON-RPC error body that says why.
pub fn rpc_refusal(status: StatusCode, code: i64, message: &str) -> Response {
    let body = Message::error(Value::Null, &RpcError::new(code, message)).to_bytes();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The answer to a request the listener's Host and Origin policy refuses
/// (`mcpr_tls::host_policy`): 403 with a JSON-RPC error, like every refusal of the transport.
pub fn host_refusal(refusal: &mcpr_tls::host_policy::Refusal) -> Response {
    rpc_refusal(
        StatusCode::FORBIDDEN,
        code::INVALID_REQUEST,
        &refusal.to_string(),
    )
}

/// A header's value when it is text.
fn header_str(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A session's negotiated protocol version, for a kept span (`views::Came`).
fn session_version(gateway: &Gateway, session: &str) -> Option<String> {
    let session = gateway.sessions.get(session)?;
    Some(session.protocol_version.clone())
}

/// The credential of the request being handled, for a kept span (`views::Came`).
fn caller() -> Option<String> {
    crate::sessions::with_credential(|c| (!c.is_empty()).then(|| c.to_owned()))
}

/// The W3C trace context a client sent in its HTTP `traceparent`/`tracestate` headers: the
/// parent of the request's span in both eras, unless `params._meta` carries one.
fn header_trace_context(headers: &HeaderMap) -> Option<mcpr_core::telemetry::mcp::TraceContext> {
    // Named once: a name given as text is parsed again on every look-up.
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    header_str(headers, &TRACEPARENT).map(|traceparent| mcpr_core::telemetry::mcp::TraceContext {
        traceparent: traceparent.to_owned(),
        tracestate: header_str(headers, &TRACESTATE)
            .unwrap_or_default()
            .to_owned(),
    })
}
