//! The admin web UI: plain HTML, JS and CSS compiled into the binary (no build step, no
//! external resources), talking to the REST API.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
/// The Activity page, in a file of its own (`#/activity`).
const ACTIVITY_JS: &str = include_str!("../ui/activity.js");
/// The API keys and OAuth page (`#/keys`).
const KEYS_JS: &str = include_str!("../ui/keys.js");
/// "Add from URL" and the MCP Registry search (`#/add`).
const ADD_FROM_JS: &str = include_str!("../ui/addfrom.js");
/// "Try a tool" on the Tools page: calls MCP through the gateway (`#/tools`).
const TRY_TOOL_JS: &str = include_str!("../ui/trytool.js");
const STYLE: &str = include_str!("../ui/style.css");

pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { page("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/activity.js",
            get(|| async { page("text/javascript; charset=utf-8", ACTIVITY_JS) }),
        )
        .route(
            "/ui/keys.js",
            get(|| async { page("text/javascript; charset=utf-8", KEYS_JS) }),
        )
        .route(
            "/ui/addfrom.js",
            get(|| async { page("text/javascript; charset=utf-8", ADD_FROM_JS) }),
        )
        .route(
            "/ui/trytool.js",
            get(|| async { page("text/javascript; charset=utf-8", TRY_TOOL_JS) }),
        )
        .route(
            "/ui/style.css",
            get(|| async { page("text/css; charset=utf-8", STYLE) }),
        )
}

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        body,
    )
}
