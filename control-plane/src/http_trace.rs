//! A SERVER span for every admin HTTP call (REST API, UI, OAuth), while tracing is on
//! (`mcpr_core::telemetry`): named `{method} {route}` as the OpenTelemetry HTTP conventions
//! name server spans, continuing a caller's `traceparent` header.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use mcpr_core::telemetry::{self, mcp};
use tracing::Instrument as _;

/// The middleware: one branch, and nothing else, while tracing is off.
pub async fn http_span(request: Request, next: Next) -> Response {
    if !telemetry::enabled() {
        return next.run(request).await;
    }
    Box::pin(traced(request, next)).await
}

async fn traced(request: Request, next: Next) -> Response {
    // The route (`/api/v1/servers/{name}`), not the path: a span name of low cardinality.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let parent = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        mcp::TraceContext {
            traceparent: header("traceparent"),
            tracestate: header("tracestate"),
        }
        .parent()
    };
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let span = mcp::operation_span(name, mcp::Side::Server, parent);
    mcp::set(&span, "http.request.method", method);
    if let Some(route) = route {
        mcp::set(&span, "http.route", route);
    }
    mcp::set(&span, "url.path", request.uri().path());
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    mcp::set_int(
        &span,
        "http.response.status_code",
        i64::from(status.as_u16()),
    );
    if status.is_server_error() {
        mcp::set(&span, "error.type", status.as_str());
    }
    response
}
